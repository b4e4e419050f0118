FROM alpine AS src
RUN mkdir -p /files && touch /files/a /files/b

FROM alpine
COPY --from=src --chown=1000:1000 --chmod=0644 --link /files/ /data/
COPY --parents --exclude=*.tmp --exclude=*.log ./app/**/config.yaml /etc/
COPY --from=0 /files/a /a
COPY ["file with spaces.txt", "/dest dir/"]
