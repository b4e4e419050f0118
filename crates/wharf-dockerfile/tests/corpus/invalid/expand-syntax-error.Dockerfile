ARG V=${oops
FROM alpine:$V
