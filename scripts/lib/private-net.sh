# Sourced by the scripts that start their own wharfd (quickstart, benchmarks): the daemon gets
# its own bridge, subnet, firewall table and link prefix instead of the default wharf0, and
# they are removed at the end, so a script never touches or leaves the machine's default
# network (nor trips scripts/leak-check.sh).
#
#   private_daemon_json NAME OCTET [EXTRA_JSON_MEMBERS]   # prints daemon.json
#   private_net_cleanup NAME                              # after wharfd has stopped

private_daemon_json() {
  local n=$1 o=$2 extra=${3:-}
  printf '{"bridge":"%s0","bip":"10.%s.0.1/24","default-address-pools":[{"base":"10.%s.0.0/16","size":24}],"firewall-table":"%s","link-prefix":"%s"%s}\n' \
    "$n" "$o" "$o" "$n" "$n" "${extra:+,$extra}"
}

private_net_cleanup() {
  local n=$1 l
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^$n"); do
    ip link del "$l" 2>/dev/null || true
  done
  nft delete table inet "$n" 2>/dev/null || true
  iptables -t nat -S 2>/dev/null | grep -q "$n" && echo "note: iptables rules naming $n remain" >&2
  return 0
}
