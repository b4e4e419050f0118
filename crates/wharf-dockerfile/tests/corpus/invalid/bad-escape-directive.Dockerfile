# escape=|
FROM alpine
