# escape=`
FROM alpine
RUN echo hello `
    world
RUN echo C:\path\with\backslashes
COPY a\b c\
