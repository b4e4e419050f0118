FROM alpine
CMD ["echo", 42]
