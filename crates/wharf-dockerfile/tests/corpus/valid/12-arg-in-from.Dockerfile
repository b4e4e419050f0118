ARG REGISTRY=docker.io
ARG BASE_IMAGE=library/alpine
ARG BASE_TAG=3.19
FROM ${REGISTRY}/${BASE_IMAGE}:${BASE_TAG}
ARG BASE_TAG
RUN echo "based on $BASE_TAG" > /etc/base-version
