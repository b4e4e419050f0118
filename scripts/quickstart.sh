#!/usr/bin/env bash
# The main job, on a fresh machine: installs what is needed, builds Wharf (release), starts
# wharfd on private roots, makes an image from the host's busybox, builds an image from a
# Dockerfile on it and runs containers with the wharf CLI (and the docker CLI, when installed).
# Everything it makes lives in one temp directory and is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/private-net.sh
./scripts/setup.sh
echo "== building wharf (release)"
cargo build --release --workspace --bins --locked -q
./scripts/build-init.sh release
bin="$PWD/target/release"

work="$(mktemp -d /tmp/wharf-quickstart-XXXXXX)"
sock="$work/wharf.sock"
cleanup() {
  if [ -S "$sock" ]; then
    for c in $("$bin/wharf" ps -aq 2>/dev/null); do "$bin/wharf" rm -f "$c" >/dev/null 2>&1 || true; done
  fi
  [ -f "$work/exec/wharfd.pid" ] && kill "$(cat "$work/exec/wharfd.pid")" 2>/dev/null && sleep 1
  private_net_cleanup wqs
  rm -rf "$work"
}
trap cleanup EXIT
private_daemon_json wqs 213 >"$work/daemon.json"

echo "== starting wharfd (data root $work/data, socket $sock)"
"$bin/wharfd" --data-root "$work/data" --exec-root "$work/exec" --config-file "$work/daemon.json" \
  -H "unix://$sock" >"$work/wharfd.log" 2>&1 &
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
export WHARF_HOST="unix://$sock"

echo; echo "== wharf version"; "$bin/wharf" version
echo; echo "== wharf info"; "$bin/wharf" info
echo; echo "== an image from the host's busybox (FROM scratch + /bin/busybox), imported"
rootfs="$work/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
tar -C "$rootfs" -c . | "$bin/wharf" import -c 'CMD ["sh"]' - busybox:latest
"$bin/wharf" images

echo; echo "== wharf run --rm busybox (a real container: namespaces, cgroups, seccomp, overlayfs)"
"$bin/wharf" run --rm busybox sh -c 'echo "hello from a wharf container: $(hostname), pid $$, $(grep -c . /proc/self/mountinfo) mounts"'
set +e
"$bin/wharf" run --rm busybox sh -c 'exit 3'
echo "exit code: $? (the container's)"
set -e

echo; echo "== wharf build: a Dockerfile built into an image (legacy builder, step cache), then run"
app="$work/app"
mkdir -p "$app"
printf '#!/bin/sh\necho "hello from a built image: $GREETING, $(cat /etc/built-at)"\n' > "$app/hello.sh"
cat > "$app/Dockerfile" <<'DOCKERFILE'
FROM busybox AS base
RUN date -u +%FT%TZ > /etc/built-at
FROM base
ARG GREETING=ahoy
ENV GREETING=$GREETING
COPY hello.sh /usr/local/bin/hello
RUN chmod +x /usr/local/bin/hello
WORKDIR /srv
CMD ["hello"]
DOCKERFILE
"$bin/wharf" build -t hello:latest --build-arg GREETING=ahoy "$app"
"$bin/wharf" run --rm hello
echo "-- rebuilt: every step comes from the cache"
"$bin/wharf" build -t hello:latest --build-arg GREETING=ahoy "$app" | grep -c "Using cache" | sed 's/$/ steps from cache/'

echo; echo "== a detached container, its logs, exec, stats, then stop and remove"
"$bin/wharf" run -d --name ticker busybox sh -c 'trap "exit 0" TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done'
sleep 1
"$bin/wharf" ps
"$bin/wharf" logs --tail 3 ticker
"$bin/wharf" exec ticker sh -c 'echo "exec inside: $(id -u)"'
"$bin/wharf" stats --no-stream ticker
"$bin/wharf" rm -f ticker

echo; echo "== wharf events (what happened, replayed from the daemon's event ring)"
sleep 1
"$bin/wharf" events --since 1m --until 0s --filter type=container --format '{{.Type}} {{.Action}} {{.Actor.Attributes.name}}'
if command -v docker >/dev/null; then
  echo; echo "== the real docker CLI against wharfd"
  DOCKER_HOST="unix://$sock" docker version --format 'docker CLI {{.Client.Version}} → server API {{.Server.APIVersion}} (min {{.Server.MinAPIVersion}})'
  DOCKER_HOST="unix://$sock" docker run --rm busybox echo "hello from docker run"
fi
echo; echo "quickstart: done"
