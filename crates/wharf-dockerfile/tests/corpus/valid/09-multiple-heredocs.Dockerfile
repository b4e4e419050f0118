FROM busybox
RUN cat <<FILE1 > /file1 && cat <<FILE2 > /file2
first
FILE1
second
FILE2
COPY <<a <<b /dest/
alpha
a
beta
b
