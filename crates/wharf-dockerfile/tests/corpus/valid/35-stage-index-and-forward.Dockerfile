FROM alpine AS one
RUN echo 1 > /one

FROM alpine AS two
COPY --from=three /three /three

FROM alpine AS three
RUN echo 3 > /three

FROM alpine
COPY --from=1 /three /t
COPY --from=one /one /o
