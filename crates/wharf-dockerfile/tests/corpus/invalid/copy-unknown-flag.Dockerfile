FROM alpine
COPY --chmown=1 a b
