#!/usr/bin/env bash
# After the test suite: nothing the tests made may be left on the machine — mounts, network
# namespaces, veths and bridges, nft tables, cgroups, processes. Prints what leaked; exit 1 if any.
set -uo pipefail
leaks=0
report() { echo "LEAK: $*"; leaks=1; }

m=$(grep -E 'wharf-test-|/wharf/' /proc/self/mountinfo | awk '{print $5}')
[ -n "$m" ] && report "mounts: $m"
n=$(ip netns list 2>/dev/null | grep -E 'wharf' || true)
[ -n "$n" ] && report "netns: $n"
l=$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | grep -E '^(wh|ws[0-9]|wq|wb[bcir]|wt|vwh)' || true)
[ -n "$l" ] && report "links: $l"
if command -v nft >/dev/null; then
  t=$(nft list tables 2>/dev/null | grep -E 'wharf|inet (ws[0-9]+|wt[0-9a-f]+|wqs|wb[bcir])$' || true)
  [ -n "$t" ] && report "nft tables: $t"
fi
c=$(find /sys/fs/cgroup -maxdepth 3 -type d \( -name 'wharf*' -o -path '*/wharf/*' \) 2>/dev/null | grep -v '^/sys/fs/cgroup/[^/]*/wharf$' || true)
[ -n "$c" ] && report "cgroups: $c"
# Zombies are not leaks: this VM's init reaps orphans lazily.
p=$(ps -eo pid,stat,args | awk '$2 !~ /^Z/' | grep -E 'wharf-shim|wharfd|wharf-registry' | grep -v -E 'grep|cargo|/wt/' || true)
[ -n "$p" ] && report "processes: $p"
t=$(ls -d /tmp/wharf-test-* 2>/dev/null || true)
[ -n "$t" ] && report "temp dirs: $t"
if [ "$leaks" -eq 0 ]; then echo "leak check: nothing left behind"; fi
exit "$leaks"
