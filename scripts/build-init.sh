#!/usr/bin/env bash
# Builds wharf-init statically and installs it beside the other binaries in target/<profile>.
# wharf-init runs as PID 1 (`docker run --init`) in images that may have no libc, so it must be
# static. Cargo cannot link one workspace binary statically (crt-static would also apply to
# proc-macros), so it is built for an explicit --target, where host build scripts and
# proc-macros stay dynamic.
set -euo pipefail
profile="${1:-debug}"
cd "$(dirname "$0")/.."
triple="$(rustc -vV | sed -n 's/^host: //p')"
var="CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
flags=()
[ "$profile" = release ] && flags=(--release)
env "$var=-C target-feature=+crt-static" cargo build -q --locked -p wharf-init --target "$triple" "${flags[@]}" 2>&1 \
  | grep -v "dynamically linked" || true
install -m 0755 "target/$triple/$profile/wharf-init" "target/$profile/wharf-init"
