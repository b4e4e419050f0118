FROM alpine
HEALTHCHECK --interval=5 CMD true
