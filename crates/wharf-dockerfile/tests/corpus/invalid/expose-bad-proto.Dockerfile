FROM alpine
EXPOSE 80/tcp 53/dns
