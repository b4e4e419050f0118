#!/usr/bin/env bash
# Image throughput: `load` of a generated multi-hundred-MB image (docker-archive with
# uncompressed layers, as `docker save` writes, and an OCI layout with gzip layers, where
# decompression and unpack dominate), `save`, and `import` of a large rootfs tarball, with the
# real docker CLI against a release wharfd on private roots. Reports MB/s.
#
#   ./scripts/bench-images.sh            # 16 layers x 20 MB (320 MB)
#   LAYERS=24 LAYER_MB=25 ./scripts/bench-images.sh
#
# When a Docker engine answers on /var/run/docker.sock the same workload runs there too, for
# a ratio (this machine has only the docker CLI; see docs/benchmarks.md). Raw unpack speed
# without the daemon: `cargo bench -p wharf-image --bench unpack`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/private-net.sh

LAYERS=${LAYERS:-16}
LAYER_MB=${LAYER_MB:-20}
RUNS=${RUNS:-3}

[ -n "${NO_BUILD:-}" ] || cargo build --release --bins -q
WORK=$(mktemp -d /tmp/wharf-bench-images.XXXXXX)
cleanup() {
    [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    private_net_cleanup wbi
    rm -rf "$WORK"
}
trap cleanup EXIT
private_daemon_json wbi 215 >"$WORK/daemon.json"

echo "== generating $LAYERS layers of $LAYER_MB MB"
python3 - "$WORK" "$LAYERS" "$LAYER_MB" <<'EOF'
import gzip, hashlib, io, json, os, random, sys, tarfile
work, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(42)
letters = bytes(b"abcdefghijklmnopqrstuvwxyz \n"[i % 28] for i in range(256))
def layer(i, mb=mb):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        # 60% in one big file, the rest in 4 KiB files (many entries, as real layers have).
        big = rnd.randbytes(mb * 600_000).translate(letters)
        ti = tarfile.TarInfo(f"layer{i}/big.txt"); ti.size = len(big); ti.mtime = 1
        t.addfile(ti, io.BytesIO(big))
        for j in range(mb * 400_000 // 4096):
            d = rnd.randbytes(4096).translate(letters)
            ti = tarfile.TarInfo(f"layer{i}/small/{j}.txt"); ti.size = len(d); ti.mtime = 1
            t.addfile(ti, io.BytesIO(d))
    return buf.getvalue()
layers = [layer(i) for i in range(n)]
diff_ids = ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]
config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
    "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
    "history": [{"created_by": f"layer {i}"} for i in range(n)]}).encode()
cid = hashlib.sha256(config).hexdigest()
def add(t, name, data):
    ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
with tarfile.open(f"{work}/docker.tar", "w") as t:
    for d, l in zip(diff_ids, layers):
        add(t, f"blobs/sha256/{d[7:]}", l)
    add(t, f"blobs/sha256/{cid}", config)
    add(t, "manifest.json", json.dumps([{"Config": f"blobs/sha256/{cid}",
        "RepoTags": ["bench:docker"], "Layers": [f"blobs/sha256/{d[7:]}" for d in diff_ids]}]).encode())
descs = []
with tarfile.open(f"{work}/oci.tar", "w") as t:
    for l in layers:
        gz = gzip.compress(l, compresslevel=1, mtime=0)
        d = hashlib.sha256(gz).hexdigest()
        add(t, f"blobs/sha256/{d}", gz)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + d, "size": len(gz)})
    add(t, f"blobs/sha256/{cid}", config)
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cid, "size": len(config)},
        "layers": descs}).encode()
    md = hashlib.sha256(m).hexdigest()
    add(t, f"blobs/sha256/{md}", m)
    add(t, "index.json", json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + md, "size": len(m), "annotations": {"io.containerd.image.name": "docker.io/library/bench:oci"}}]}).encode())
    add(t, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
# One big rootfs tarball for import: half the image's size in one layer.
with open(f"{work}/rootfs.tar", "wb") as f:
    f.write(layer(n, mb * n // 2))
print(f"uncompressed layers: {sum(map(len, layers)) / 1e6:.0f} MB")
open(f"{work}/layers_mb", "w").write(f"{sum(map(len, layers)) / 1e6}")
EOF
RAW_MB=$(python3 -c "import os; print(os.path.getsize('$WORK/docker.tar')/1e6)")
OCI_MB=$(python3 -c "import os; print(os.path.getsize('$WORK/oci.tar')/1e6)")
ROOTFS_MB=$(python3 -c "import os; print(os.path.getsize('$WORK/rootfs.tar')/1e6)")

LAYERS_MB=$(cat "$WORK/layers_mb")
now() { date +%s.%N; }
# The daemon logs each load's phases (`-D`): spool (archive → content store) and unpack.
phases() {
    [ "$1" = wharf ] || return 0
    local line; line=$(grep -a 'wharf_daemon::image::load' "$WORK/wharfd.log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g')
    local spool unpack
    spool=$(sed -n 's/.*spool_ms=\([0-9]*\).*/\1/p' <<<"$line")
    unpack=$(sed -n 's/.*unpack_ms=\([0-9]*\).*/\1/p' <<<"$line")
    [ -n "$unpack" ] && python3 -c "print(f'    spool {$spool/1000:.2f} s, unpack {$unpack/1000:.2f} s = {$LAYERS_MB/max($unpack,1)*1000:.1f} MB/s of layer data')" || true
}
rate() { python3 -c "print(f'{$1/($3-$2):8.1f} MB/s  ({$3-$2:.2f} s)')"; }

# ext4 makes inode allocation slow for minutes after many files were deleted
# (`recently_deleted()` in the allocator): a load right after an `rmi` of the same image is
# several times slower. So every wharf run gets a fresh daemon and data root, and nothing is
# deleted until the end.
RUN=0
fresh_daemon() {
    [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    RUN=$((RUN + 1))
    local dir=$WORK/run$RUN
    mkdir -p "$dir"
    target/release/wharfd -D --data-root "$dir/data" --exec-root "$dir/exec" \
        -H "unix://$dir/wharf.sock" --config-file "$WORK/daemon.json" >"$WORK/wharfd.log" 2>&1 &
    PID=$!
    for _ in $(seq 200); do [ -S "$dir/wharf.sock" ] && docker -H "unix://$dir/wharf.sock" version >/dev/null 2>&1 && break; sleep 0.05; done
    export DOCKER_HOST=unix://$dir/wharf.sock
}

bench() { # label [host]: with a host, every step runs against it; else on fresh wharf roots
    local label=$1 host=${2:-}
    for kind in docker oci; do
        local file=$WORK/$kind.tar size=$RAW_MB
        [ "$kind" = oci ] && size=$OCI_MB
        for _ in $(seq "$RUNS"); do
            if [ -n "$host" ]; then
                export DOCKER_HOST=$host
                docker rmi -f bench:docker bench:oci >/dev/null 2>&1 || true
            else
                fresh_daemon
            fi
            local t0; t0=$(now)
            docker load -q -i "$file" >/dev/null
            local t1; t1=$(now)
            echo "$label load $kind-archive ($(printf %.0f "$size") MB): $(rate "$size" "$t0" "$t1")"
            phases "$label"
        done
    done
    [ -z "$host" ] || export DOCKER_HOST=$host
    docker image inspect bench:oci >/dev/null 2>&1 || docker load -q -i "$WORK/oci.tar" >/dev/null
    local t0; t0=$(now)
    docker save -o "$WORK/saved.tar" bench:oci
    local t1; t1=$(now)
    echo "$label save ($(printf %.0f "$RAW_MB") MB out; layers decompressed on the fly): $(rate "$RAW_MB" "$t0" "$t1")"
    [ -n "$host" ] || fresh_daemon
    t0=$(now)
    docker import "$WORK/rootfs.tar" bench:import >/dev/null
    t1=$(now)
    echo "$label import ($(printf %.0f "$ROOTFS_MB") MB): $(rate "$ROOTFS_MB" "$t0" "$t1")"
    [ -z "$host" ] || docker rmi -f bench:docker bench:oci bench:import >/dev/null 2>&1 || true
}

echo "== wharf ($(uname -r), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
fresh_daemon
echo "storage driver: $(docker info --format '{{.Driver}}')"
bench wharf

if DOCKER_HOST=unix:///var/run/docker.sock docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    echo "== docker $(DOCKER_HOST=unix:///var/run/docker.sock docker version --format '{{.Server.Version}}')"
    bench docker unix:///var/run/docker.sock
else
    echo "== docker: no engine on /var/run/docker.sock (only the CLI is installed); skipped"
fi
