FROM alpine
ENV BASE=/usr/local \
    BIN=${BASE}/bin \
    LIB="${BASE}/lib" \
    SUFFIX=${NAME:-default} \
    ESCAPED=\$NOT_EXPANDED
ENV PATH=$BIN:$PATH
