#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs, builds every binary, runs
# every test (unit, conformance, end-to-end with real clients) and then checks that nothing was
# left behind. Needs root for the kernel-level tests (they skip, saying why, without it).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
echo "== build"
cargo build --workspace --bins --locked
./scripts/build-init.sh debug
echo "== lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -q -- -D warnings
echo "== tests"
status=0
cargo nextest run --workspace --locked --no-fail-fast || status=$?
echo "== leaks"
./scripts/leak-check.sh || status=1
exit "$status"
