FROM alpine
COPY --from=5 /a /b
