FROM ubuntu:22.04

# Install build tooling in one layer
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        build-essential \
        # compilers and friends
        cmake \
        git \
        pkg-config \
    ; \
    rm -rf /var/lib/apt/lists/*
