#!/usr/bin/env bash
# Container benchmarks (issue 4): run latency, detached starts, shim and daemon memory, log
# throughput. Runs on a release build against a private wharfd; prints a Markdown table.
# Docker/Podman are measured beside it when their engines are installed (never required).
# Numbers are measurements, not assertions.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/private-net.sh
command -v hyperfine >/dev/null || { apt-get install -y -qq hyperfine >/dev/null; }
[ -x target/release/wharfd ] || { cargo build --release --workspace --bins -q && ./scripts/build-init.sh release; }
bin="$PWD/target/release"
work="$(mktemp -d /tmp/wharf-bench-XXXXXX)"
sock="$work/wharf.sock"
cleanup() {
  for c in $("$bin/wharf" -H "unix://$sock" ps -aq 2>/dev/null); do "$bin/wharf" -H "unix://$sock" rm -f "$c" >/dev/null 2>&1 || true; done
  [ -f "$work/exec/wharfd.pid" ] && kill "$(cat "$work/exec/wharfd.pid")" 2>/dev/null && sleep 1
  private_net_cleanup wbc
  rm -rf "$work"
}
trap cleanup EXIT
private_daemon_json wbc 214 >"$work/daemon.json"
"$bin/wharfd" --data-root "$work/data" --exec-root "$work/exec" --config-file "$work/daemon.json" -H "unix://$sock" >"$work/log" 2>&1 &
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
W=("$bin/wharf" -H "unix://$sock")
rootfs="$work/rootfs"; mkdir -p "$rootfs/bin" "$rootfs/etc"
cp /bin/busybox "$rootfs/bin/"; for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
tar -C "$rootfs" -c . | "${W[@]}" import -c 'CMD ["sh"]' - busybox:latest >/dev/null

summary() {
  python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))["results"][0]
print(f"{sys.argv[1]}: median {r['median']*1000:.1f} ms, mean {r['mean']*1000:.1f} ms, min {r['min']*1000:.1f} ms")
PY
}

echo "## wharf container benchmarks ($(date -u +%F), $(nproc) cores)"
echo
echo '### `run --rm busybox true`'
hyperfine -N --warmup 3 --runs 30 --export-json "$work/run.json" "${W[*]} run --rm busybox true" >/dev/null
summary wharf "$work/run.json"
if DOCKER_HOST=unix:///var/run/docker.sock docker info >/dev/null 2>&1; then
  docker image inspect busybox >/dev/null 2>&1 || tar -C "$rootfs" -c . | docker import -c 'CMD ["sh"]' - busybox:latest >/dev/null
  hyperfine -N --warmup 3 --runs 30 --export-json "$work/drun.json" "docker run --rm busybox true" >/dev/null
  summary docker "$work/drun.json"
fi

echo; echo '### network setup per container start (default bridge vs `--network none`)'
hyperfine -N --warmup 3 --runs 30 --export-json "$work/none.json" "${W[*]} run --rm --network none busybox true" >/dev/null
summary "wharf --network none" "$work/none.json"
python3 - "$work/run.json" "$work/none.json" <<'PY'
import json, sys
a, b = (json.load(open(f))["results"][0]["median"] for f in sys.argv[1:3])
print(f"bridge networking adds {max(a - b, 0) * 1000:.1f} ms per start (median difference)")
PY

echo; echo '### `exec true` in a running container'
"${W[@]}" run -d --name ex busybox sleep 600 >/dev/null
hyperfine -N --warmup 3 --runs 50 --export-json "$work/exec.json" "${W[*]} exec ex true" >/dev/null
summary "wharf exec" "$work/exec.json"
"${W[@]}" rm -f ex >/dev/null

echo; echo '### TCP through a published port (host 127.0.0.1 -> userland proxy -> container)'
"${W[@]}" run -d --name sink -p 127.0.0.1::80 busybox sh -c 'nc -l -p 80 > /dev/null' >/dev/null
port=$("${W[@]}" port sink 80/tcp | head -1 | sed 's/.*://')
sleep 0.5
python3 - "$port" <<'PY'
import socket, sys, time
port = int(sys.argv[1]); total = 1 << 30; chunk = b"x" * (1 << 20)
s = socket.create_connection(("127.0.0.1", port)); t = time.monotonic(); sent = 0
while sent < total:
    s.sendall(chunk); sent += len(chunk)
s.shutdown(socket.SHUT_WR); s.recv(1); dt = time.monotonic() - t
print(f"1 GiB in {dt:.2f} s = {total / dt / 1048576:.0f} MiB/s")
PY
"${W[@]}" rm -f sink >/dev/null

echo; echo '### 50 detached starts'
start=$(date +%s.%N)
for i in $(seq 50); do "${W[@]}" run -d --name "d$i" busybox sleep 600 >/dev/null; done
end=$(date +%s.%N)
python3 -c "print(f'wharf: {($end-$start):.2f} s for 50 (\`run -d\`), {($end-$start)/50*1000:.1f} ms each')"
pid=$(cat "$work/exec/wharfd.pid")
shims=$(pgrep -f "wharf-shim $work" || true)
python3 - "$pid" $shims <<'PY'
import sys
def kb(pid, field):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith(field): return int(l.split()[1])
    return 0
def pss(pid):
    try:
        return sum(int(l.split()[1]) for l in open(f"/proc/{pid}/smaps_rollup") if l.startswith("Pss:"))
    except OSError: return 0
shims=[int(p) for p in sys.argv[2:]]
rss=[kb(p,"VmRSS:") for p in shims]
ps=[pss(p) for p in shims]
print(f"shim RSS per container: median {sorted(rss)[len(rss)//2]/1024:.2f} MiB, PSS median {sorted(ps)[len(ps)//2]/1024:.2f} MiB ({len(shims)} shims)")
print(f"wharfd RSS with {len(shims)} running containers: {kb(int(sys.argv[1]),'VmRSS:')/1024:.1f} MiB")
PY
for i in $(seq 51 100); do "${W[@]}" run -d --name "d$i" busybox sleep 600 >/dev/null; done
python3 -c "
for l in open('/proc/$pid/status'):
    if l.startswith('VmRSS:'): print(f'wharfd RSS with 100 running containers: {int(l.split()[1])/1024:.1f} MiB')"
for i in $(seq 100); do "${W[@]}" rm -f "d$i" >/dev/null; done

echo; echo '### logs: a container printing 200 MiB'
"${W[@]}" run --name chatty busybox sh -c 'yes "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde" | head -c 209715200' >/dev/null
start=$(date +%s.%N)
bytes=$("${W[@]}" logs chatty | wc -c)
end=$(date +%s.%N)
python3 -c "print(f'read-back (wharf logs): {$bytes/1048576:.0f} MiB in {($end-$start):.2f} s = {$bytes/1048576/($end-$start):.0f} MiB/s')"
"${W[@]}" rm -f chatty >/dev/null
echo; echo "daemon idle RSS after the run: $(awk '/VmRSS/{printf "%.1f MiB", $2/1024}' /proc/$pid/status)"
