# syntax=docker/dockerfile:1
FROM alpine
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc,required \
    --mount=type=ssh \
    apk add --no-cache git openssh-client && git clone git@github.com:org/private.git
RUN --mount=type=secret,id=token,env=API_TOKEN ./fetch.sh
RUN --mount=type=tmpfs,target=/tmp,size=64m --network=none make test
RUN --mount=type=bind,from=ghcr.io/org/tools:1,source=/bin/tool,target=/usr/local/bin/tool tool --version
RUN --security=insecure --network=host echo privileged
