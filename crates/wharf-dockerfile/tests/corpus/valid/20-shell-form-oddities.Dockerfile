FROM busybox
CMD echo "hello world"
ENTRYPOINT exec top -b
RUN [ "echo", "json form" ]
RUN ["echo", 'not json']
RUN [not json either
CMD
