FROM redis:7 AS with-check
HEALTHCHECK CMD ["redis-cli", "ping"]

FROM redis:7 AS without
HEALTHCHECK NONE
