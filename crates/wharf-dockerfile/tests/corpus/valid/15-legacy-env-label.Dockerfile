FROM debian:jessie
MAINTAINER Jane Doe <jane@example.com>
ENV DEBIAN_FRONTEND noninteractive
ENV LANG C.UTF-8
LABEL version 1.0
LABEL "com.example.vendor"="ACME Inc" description="multi word value" \
      release-date=2024-01-01
