# syntax=docker/dockerfile:1.4
FROM alpine:3.19
RUN <<EOF
set -e
apk add --no-cache curl jq
echo "installed"
EOF
RUN <<'SCRIPT' bash
echo "literal $HOME"
SCRIPT
