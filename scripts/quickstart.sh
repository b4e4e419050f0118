#!/usr/bin/env bash
# The main job, on a fresh machine: installs what is needed, builds Wharf (release), starts
# wharfd on private roots, and shows it working through the wharf CLI and the docker CLI.
# Everything it makes lives in one temp directory and is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
echo "== building wharf (release)"
cargo build --release --workspace --bins --locked -q
./scripts/build-init.sh release
bin="$PWD/target/release"

work="$(mktemp -d /tmp/wharf-quickstart-XXXXXX)"
sock="$work/wharf.sock"
cleanup() {
  [ -f "$work/exec/wharfd.pid" ] && kill "$(cat "$work/exec/wharfd.pid")" 2>/dev/null && sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting wharfd (data root $work/data, socket $sock)"
"$bin/wharfd" --data-root "$work/data" --exec-root "$work/exec" --config-file "$work/daemon.json" \
  -H "unix://$sock" >"$work/wharfd.log" 2>&1 &
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
export WHARF_HOST="unix://$sock"

echo; echo "== wharf version"; "$bin/wharf" version
echo; echo "== wharf info"; "$bin/wharf" info
echo; echo "== wharf events (a configuration reload, replayed)"
kill -HUP "$(cat "$work/exec/wharfd.pid")"; sleep 0.2
"$bin/wharf" events --since 1m --until 0s
if command -v docker >/dev/null; then
  echo; echo "== the real docker CLI against wharfd"
  DOCKER_HOST="unix://$sock" docker version --format 'docker CLI {{.Client.Version}} → server API {{.Server.APIVersion}} (min {{.Server.MinAPIVersion}})'
fi
echo; echo "quickstart: done"
