#!/usr/bin/env bash
# The main job, on a fresh machine: installs what is needed, builds Wharf (release), starts
# wharfd on private roots, makes an image from the host's busybox, builds an image from a
# Dockerfile on it and runs containers with the wharf CLI (and the docker CLI, when installed).
# Everything it makes lives in one temp directory and is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/private-net.sh
./scripts/setup.sh
profile=${WHARF_PROFILE:-release}   # WHARF_PROFILE=debug reuses a test build
echo "== building wharf ($profile)"
if [ "$profile" = release ]; then cargo build --release --workspace --bins --locked -q; else cargo build --workspace --bins --locked -q; fi
./scripts/build-init.sh "$profile"
bin="$PWD/target/$profile"

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

echo; echo "== wharf build: an example web app (FROM scratch + the host's busybox, a page served by busybox httpd)"
app="$work/app"
mkdir -p "$app"
cp -a "$rootfs" "$app/rootfs"
printf '<h1>Hello from Wharf</h1>\n' > "$app/index.html"
cat > "$app/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ARG GREETING=ahoy
RUN mkdir -p /www && echo "built on $(date -u +%F) with GREETING=$GREETING" > /www/built.txt
COPY index.html /www/
EXPOSE 8080
HEALTHCHECK --interval=1s CMD wget -qO- http://127.0.0.1:8080/ >/dev/null || exit 1
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
DOCKERFILE
"$bin/wharf" build -t hello-web:latest --build-arg GREETING=ahoy "$app"
echo "-- rebuilt: $("$bin/wharf" build --progress plain -t hello-web:latest --build-arg GREETING=ahoy "$app" 2>&1 | grep -c ' CACHED$') steps from the cache"
"$bin/wharf" run -d --name web -p 127.0.0.1::8080 hello-web
port=$("$bin/wharf" port web 8080/tcp | head -1 | sed 's/.*://')
echo "-- published on 127.0.0.1:$port; a request from the host:"
for _ in $(seq 50); do body=$(curl -fsS "http://127.0.0.1:$port/" 2>/dev/null) && break; sleep 0.1; done
echo "$body"
curl -fsS "http://127.0.0.1:$port/built.txt"
"$bin/wharf" rm -f web

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
