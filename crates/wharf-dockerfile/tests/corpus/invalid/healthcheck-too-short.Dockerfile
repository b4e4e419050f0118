FROM alpine
HEALTHCHECK --timeout=500us CMD true
