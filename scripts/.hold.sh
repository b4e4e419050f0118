#!/usr/bin/env bash
# Registry throughput: push and pull of a generated multi-layer image (~100 MiB of layer data,
# gzip layers) between a wharfd on private roots and our registry server
# (`wharf-registry serve` on 127.0.0.1), driven by the real docker CLI. With skopeo installed,
# the same copy (registry → OCI dir and back) is timed for comparison.
#
#   ./scripts/bench-registry.sh                 # 5 layers x 20 MiB, release build
#   LAYERS=8 LAYER_MB=16 PROFILE=debug ./scripts/bench-registry.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/private-net.sh

LAYERS=${LAYERS:-5}
LAYER_MB=${LAYER_MB:-20}
RUNS=${RUNS:-3}
PROFILE=${PROFILE:-release}

if [ "$PROFILE" = release ]; then cargo build --release --bins -q; else cargo build --bins -q; fi
BIN=target/$PROFILE
WORK=$(mktemp -d /tmp/wharf-bench-registry.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
    private_net_cleanup wbr
    rm -rf "$WORK"
}
trap cleanup EXIT
private_daemon_json wbr 216 >"$WORK/daemon.json"

echo "== generating $LAYERS layers of $LAYER_MB MiB (incompressible-ish text, gzip level 1)"
python3 - "$WORK" "$LAYERS" "$LAYER_MB" <<'PY'
import gzip, hashlib, io, json, random, sys, tarfile
work, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(7)
letters = bytes(b"abcdefghijklmnopqrstuvwxyz \n"[i % 28] for i in range(256))
def add(t, name, data):
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 1; t.addfile(ti, io.BytesIO(data))
layers = []
for i in range(n):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        add(t, f"l{i}/big.bin", rnd.randbytes(mb * 1024 * 1024 * 7 // 10))
        for j in range(mb * 1024 * 1024 * 3 // 10 // 4096):
            add(t, f"l{i}/s/{j}.txt", rnd.randbytes(4096).translate(letters))
    layers.append(buf.getvalue())
diff_ids = ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
    "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
cid = hashlib.sha256(config).hexdigest()
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
        "digest": "sha256:" + md, "size": len(m), "annotations": {"io.containerd.image.name": "docker.io/library/bench:reg"}}]}).encode())
    add(t, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
print(f"layer data: {sum(map(len, layers)) / 2**20:.0f} MiB uncompressed, {sum(d['size'] for d in descs) / 2**20:.0f} MiB on the wire")
open(f"{work}/wire_mb", "w").write(f"{sum(d['size'] for d in descs) / 1e6}")
PY
WIRE_MB=$(cat "$WORK/wire_mb")
now() { date +%s.%N; }
rate() { python3 -c "print(f'{$1/($3-$2):8.1f} MB/s  ({$3-$2:.2f} s)')"; }

"$BIN/wharf-registry" serve --addr 127.0.0.1:0 --root "$WORK/registry" >"$WORK/registry.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "listening on" "$WORK/registry.out" && break; sleep 0.05; done
REG=$(sed -n 's/^listening on //p' "$WORK/registry.out" | head -1)
echo "== registry on $REG"

RUN=0
fresh_daemon() {
    RUN=$((RUN + 1))
    local dir=$WORK/run$RUN
    mkdir -p "$dir"
    "$BIN/wharfd" --data-root "$dir/data" --exec-root "$dir/exec" \
        -H "unix://$dir/wharf.sock" --config-file "$WORK/daemon.json" >"$dir/wharfd.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 200); do [ -S "$dir/wharf.sock" ] && docker -H "unix://$dir/wharf.sock" version >/dev/null 2>&1 && break; sleep 0.05; done
    export DOCKER_HOST=unix://$dir/wharf.sock DOCKER_CONFIG=$dir/docker-config
}

for i in $(seq "$RUNS"); do
    fresh_daemon
    docker load -q -i "$WORK/oci.tar" >/dev/null
    docker tag bench:reg "$REG/bench/reg$i:r"
    t0=$(now); docker push -q "$REG/bench/reg$i:r" >/dev/null; t1=$(now)
    echo "wharfd push ($(printf %.0f "$WIRE_MB") MB): $(rate "$WIRE_MB" "$t0" "$t1")"
    fresh_daemon   # empty store: every layer is downloaded and unpacked
    t0=$(now); docker pull -q "$REG/bench/reg$i:r" >/dev/null; t1=$(now)
    echo "wharfd pull ($(printf %.0f "$WIRE_MB") MB, download + unpack): $(rate "$WIRE_MB" "$t0" "$t1")"
done

echo "HOLD $WORK $REG"; sleep 100000
if command -v skopeo >/dev/null; then
    for i in $(seq "$RUNS"); do
        rm -rf "$WORK/skopeo-dir"
        t0=$(now)
        skopeo copy -q --src-tls-verify=false "docker://$REG/bench/reg1:r" "dir:$WORK/skopeo-dir"
        t1=$(now)
        echo "skopeo pull to dir (download only): $(rate "$WIRE_MB" "$t0" "$t1")"
        t0=$(now)
        skopeo copy -q --dest-tls-verify=false "dir:$WORK/skopeo-dir" "docker://$REG/bench/skopeo$i:s"
        t1=$(now)
        echo "skopeo push from dir: $(rate "$WIRE_MB" "$t0" "$t1")"
    done
fi
