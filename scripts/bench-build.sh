#!/usr/bin/env bash
# Build latency through the real docker CLI (legacy builder, DOCKER_BUILDKIT=0) against a wharfd
# on private roots: a 6-step build from scratch (--no-cache: FROM, ENV, COPY, RUN, COPY, CMD), a
# fully cached rebuild of the same Dockerfile, and a rebuild after the file of the late COPY
# changed (the steps before it come from the cache). Reports the median of RUNS wall-clock times.
#
#   ./scripts/bench-build.sh                 # release binaries (built first)
#   PROFILE=debug RUNS=10 ./scripts/bench-build.sh
#
# The base image is a busybox rootfs made from the host's /bin/busybox (busybox-static), imported
# as busybox:latest. When a Docker engine answers on /var/run/docker.sock the same workload runs
# there too, for a ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/private-net.sh

PROFILE=${PROFILE:-release}
RUNS=${RUNS:-5}

if [ "$PROFILE" = release ]; then cargo build --release --bins -q; else cargo build --bins -q; fi
BIN=$PWD/target/$PROFILE
WORK=$(mktemp -d /tmp/wharf-bench-build.XXXXXX)
cleanup() {
    [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    # Mounts of a daemon that died mid-build would keep the directory busy.
    grep -o " $WORK[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    private_net_cleanup wbb
    # The daemon's cgroup parent (one directory per v1 hierarchy and in the unified one).
    find /sys/fs/cgroup -maxdepth 2 -type d -name wharf-bench-build -exec rmdir {} + 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/root/data" "$WORK/root/exec" "$WORK/bb/bin" "$WORK/bb/etc" "$WORK/bb/tmp" "$WORK/ctx"
cp /bin/busybox "$WORK/bb/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$WORK/bb/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$WORK/bb/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$WORK/bb/etc/group"
tar -C "$WORK/bb" -cf "$WORK/busybox.tar" .

cat >"$WORK/ctx/Dockerfile" <<'EOF'
FROM busybox
ENV GREETING=hello
COPY app.txt /app/app.txt
RUN echo "$GREETING" > /app/greeting && cat /app/app.txt
COPY late.txt /app/late.txt
CMD ["cat", "/app/greeting"]
EOF
echo "payload" >"$WORK/ctx/app.txt"
echo "late 0" >"$WORK/ctx/late.txt"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(((e - s) / 1000000)); }

bench() { # $1: label; DOCKER_HOST set by the caller
    docker import -c 'CMD ["sh"]' "$WORK/busybox.tar" busybox:latest >/dev/null
    DOCKER_BUILDKIT=0 docker build -t bench-build "$WORK/ctx" >/dev/null 2>&1 # warm the cache
    local fresh cached late out
    fresh=$(for _ in $(seq "$RUNS"); do ms env DOCKER_BUILDKIT=0 docker build --no-cache -t bench-build "$WORK/ctx"; done | median)
    cached=$(for _ in $(seq "$RUNS"); do ms env DOCKER_BUILDKIT=0 docker build -t bench-build "$WORK/ctx"; done | median)
    out=$(DOCKER_BUILDKIT=0 docker build -t bench-build "$WORK/ctx" 2>/dev/null)
    if [ "$(grep -c "Using cache" <<<"$out")" != 5 ]; then
        echo "$1: the rebuild was not cached" >&2
        exit 1
    fi
    late=$(for i in $(seq "$RUNS"); do
        echo "late $i $RANDOM" >"$WORK/ctx/late.txt"
        ms env DOCKER_BUILDKIT=0 docker build -t bench-build "$WORK/ctx"
    done | median)
    echo "late last $RANDOM" >"$WORK/ctx/late.txt"
    out=$(DOCKER_BUILDKIT=0 docker build -t bench-build "$WORK/ctx" 2>/dev/null)
    if [ "$(grep -c "Using cache" <<<"$out")" != 3 ]; then
        echo "$1: a late change did not reuse the earlier steps" >&2
        exit 1
    fi
    printf '%-8s 6-step build (--no-cache): %5s ms   fully cached: %4s ms   late file changed: %4s ms   (median of %s)\n' \
        "$1" "$fresh" "$cached" "$late" "$RUNS"
}

private_daemon_json wbb 217 '"cgroup-parent":"/wharf-bench-build"' >"$WORK/root/daemon.json"
"$BIN/wharfd" --data-root "$WORK/root/data" --exec-root "$WORK/root/exec" \
    --config-file "$WORK/root/daemon.json" -H "unix://$WORK/root/wharf.sock" >"$WORK/wharfd.log" 2>&1 &
PID=$!
for _ in $(seq 200); do [ -S "$WORK/root/wharf.sock" ] && break; sleep 0.05; done
DOCKER_HOST="unix://$WORK/root/wharf.sock" DOCKER_CONFIG="$WORK/docker-config" bench "wharf($PROFILE)"

if docker -H unix:///var/run/docker.sock version >/dev/null 2>&1; then
    DOCKER_HOST=unix:///var/run/docker.sock bench docker
else
    echo "docker   (no Docker engine on /var/run/docker.sock: no ratio)"
fi
