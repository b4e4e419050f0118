#!/usr/bin/env bash
# Installs what building and testing Wharf needs on a fresh Debian/Ubuntu machine:
# system packages (apt), the Python client used by compatibility tests (pip), and checks for
# the Rust toolchain. Safe to run again: it installs only what is missing.
set -euo pipefail

packages=(
  build-essential pkg-config libseccomp-dev   # wharf-runtime links libseccomp
  busybox-static                              # test and demo images are made from it
  iproute2 nftables iptables                  # networking (and its leak checks)
  runc                                        # an external OCI runtime for compatibility tests
  skopeo docker-registry apache2-utils        # registry interop tests (htpasswd from apache2-utils)
  curl jq socat python3 python3-pip
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

here="$(cd "$(dirname "$0")" && pwd)"
if ! python3 -c 'import docker' 2>/dev/null; then
  echo "setup: installing docker-py"
  python3 -m pip install -q --disable-pip-version-check -r "$here/requirements-test.txt" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages -r "$here/requirements-test.txt"
fi

if ! command -v cargo >/dev/null; then
  echo "setup: no Rust toolchain found; install it with rustup (https://rustup.rs) and run again" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
echo "setup: done"
