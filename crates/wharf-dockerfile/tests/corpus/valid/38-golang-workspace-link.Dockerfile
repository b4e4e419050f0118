# syntax=docker/dockerfile:1.7-labs
FROM golang:1.22 AS deps
WORKDIR /src
COPY --link go.work go.work.sum ./
COPY --link --parents */go.mod */go.sum ./
RUN go mod download

FROM deps AS build
COPY --link . .
RUN go build ./...
