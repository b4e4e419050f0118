# syntax=docker/dockerfile:1-labs
FROM alpine
RUN --device=vendor.com/gpu=all,required nvidia-smi
RUN --mount=type=cache,id=apk-${TARGETARCH},target=/var/cache/apk,sharing=private apk add git
