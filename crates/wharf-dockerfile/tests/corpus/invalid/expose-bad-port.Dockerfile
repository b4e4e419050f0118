FROM alpine
EXPOSE http
