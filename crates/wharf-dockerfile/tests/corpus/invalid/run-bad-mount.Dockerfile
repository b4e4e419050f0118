FROM alpine
RUN --mount=type=cahce,target=/x true
