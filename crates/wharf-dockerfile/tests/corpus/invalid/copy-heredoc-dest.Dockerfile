FROM alpine
COPY src <<EOF
x
EOF
