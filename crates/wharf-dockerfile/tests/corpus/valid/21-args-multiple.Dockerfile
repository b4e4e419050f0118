FROM alpine
ARG USER=app UID=1000 GID
ARG EMPTY=
ARG QUOTED="a b c"
RUN addgroup -g ${GID:-1000} $USER && adduser -D -u $UID -G $USER $USER
