ARG VERSION=latest
FROM busybox:$VERSION
ARG VERSION
RUN echo $VERSION > image_version
FROM busybox:${VERSION}
RUN echo "global only in FROM"
