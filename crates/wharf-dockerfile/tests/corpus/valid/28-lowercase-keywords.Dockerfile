from alpine as builder
run echo building
workdir /x
from builder as final
copy --from=builder /x /y
cmd ["sh"]
