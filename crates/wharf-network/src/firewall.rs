//! NAT, forwarding and isolation rules, kept in firewall tables that only this daemon touches.
//!
//! Model: the daemon's whole wish is one [`Desired`] value (its bridge networks and published
//! ports). Every change re-renders the complete ruleset from it and replaces the daemon's table
//! in ONE atomic transaction. That makes rule removal exact (a network or endpoint that is gone
//! simply is not rendered), reconcile at startup idempotent (render what the daemon says exists),
//! and teardown one `delete table`.
//!
//! Backend: nftables through the `nft` binary's JSON input (`nft -j -f -`). Why not netlink from
//! Rust: nftables' netlink ABI is a bytecode VM (expressions compiled to registers); the only
//! maintained encoders are libnftnl/libnftables in C, and the Rust crates that wrap raw netlink
//! cover a fraction of the expressions (no `fib`, partial NAT). The JSON schema is the stable,
//! documented interface of libnftables, the same one netavark uses; it needs no quoting, and a
//! batch is applied atomically. Cost: one exec per change (~3-5 ms), off the per-container hot path
//! only when ports are published or networks change. When `nft` is absent the same rules are
//! rendered for `iptables-restore`/`ip6tables-restore` into chains of our own.
//!
//! Rules (per bridge `B` with subnets `S`, Docker's semantics):
//! - forward: drop `B`→other-Wharf-bridge (isolation); internal networks drop anything leaving or
//!   entering `B` from elsewhere; accept replies (`ct state established,related`) and DNATed
//!   traffic to published ports into `B`; accept `B`→`B` (ICC) and `B`→out; drop other traffic into `B`.
//! - postrouting: masquerade `S` leaving through another interface (not for internal networks);
//!   masquerade hairpin traffic of a container to its own published port.
//! - prerouting/output: traffic to a local address jumps to `dnat` (output skips loopback
//!   destinations, which the userland proxy serves); `dnat` maps `[host ip] proto dport` to the
//!   container, except for traffic arriving from the container's own bridge.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wharf_types::{Classify, ErrorKind};

use crate::ports::{PortMapping, Proto};

/// Failures of programming the firewall.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("no firewall tool found: neither nft nor iptables is installed")]
    NoBackend,
    #[error("run {tool}")]
    Spawn {
        tool: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} failed to apply rules for table {table}: {stderr}")]
    Apply { tool: &'static str, table: String, stderr: String },
    #[error("set sysctl {key}")]
    Sysctl {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid firewall table name {0:?}: use 1-20 letters, digits, '-' or '_'")]
    BadName(String),
}

impl Classify for FirewallError {
    fn kind(&self) -> ErrorKind {
        match self {
            FirewallError::BadName(_) => ErrorKind::InvalidArgument,
            FirewallError::NoBackend => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }
}

/// What the firewall must know about one bridge network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeRules {
    pub bridge: String,
    pub subnets: Vec<IpNet>,
    /// `--internal`: no traffic in or out of the bridge.
    pub internal: bool,
    /// `com.docker.network.bridge.enable_ip_masquerade` (default true).
    pub masquerade: bool,
    /// `com.docker.network.bridge.enable_icc` (default true).
    pub icc: bool,
}

/// The whole desired state of the daemon's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// By bridge name.
    pub networks: BTreeMap<String, BridgeRules>,
    /// (bridge, mapping) for every published port.
    pub ports: BTreeSet<(String, PortMapping)>,
}

/// Which tool programs the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Nft,
    Iptables,
    /// No rules at all (Docker's `"iptables": false`): no NAT, no isolation, no DNAT; published
    /// ports are served by the userland proxy alone.
    Disabled,
}

impl Backend {
    /// `nft` when installed, else `iptables`.
    pub fn detect() -> Result<Backend, FirewallError> {
        if which("nft") {
            Ok(Backend::Nft)
        } else if which("iptables-restore") {
            Ok(Backend::Iptables)
        } else {
            Err(FirewallError::NoBackend)
        }
    }
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())).unwrap_or(false)
        || ["/usr/sbin", "/sbin", "/usr/bin"].iter().any(|d| std::path::Path::new(d).join(tool).is_file())
}

/// The daemon's firewall: a table name (unique per daemon, so parallel daemons never collide),
/// a backend, and the desired state it keeps in force. Not internally locked.
pub struct Firewall {
    table: String,
    backend: Backend,
    desired: Desired,
    /// Turn on IP forwarding when a network needs it (Docker's `ip-forward`, default true).
    forwarding: bool,
}

impl Firewall {
    /// `table` names the nftables table (`inet <table>`) or the iptables chain prefix.
    pub fn new(table: &str, backend: Backend) -> Result<Self, FirewallError> {
        if table.is_empty()
            || table.len() > 20
            || !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(FirewallError::BadName(table.to_owned()));
        }
        Ok(Self { table: table.to_owned(), backend, desired: Desired::default(), forwarding: true })
    }

    /// Whether adding networks turns on `net.ipv4.ip_forward` (Docker's `ip-forward`).
    pub fn set_forwarding(&mut self, on: bool) {
        self.forwarding = on;
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn desired(&self) -> &Desired {
        &self.desired
    }

    /// Adds or replaces a network's rules, turns on forwarding, and applies.
    pub fn add_network(&mut self, rules: BridgeRules) -> Result<(), FirewallError> {
        if self.forwarding {
            enable_forwarding(rules.subnets.iter().any(|s| s.addr().is_ipv6()))?;
        }
        self.desired.networks.insert(rules.bridge.clone(), rules);
        self.apply()
    }

    /// Removes a network's rules and every port published on its bridge.
    pub fn remove_network(&mut self, bridge: &str) -> Result<(), FirewallError> {
        self.desired.networks.remove(bridge);
        self.desired.ports.retain(|(b, _)| b != bridge);
        self.apply()
    }

    pub fn add_ports(&mut self, bridge: &str, mappings: &[PortMapping]) -> Result<(), FirewallError> {
        for m in mappings {
            self.desired.ports.insert((bridge.to_owned(), m.clone()));
        }
        self.apply()
    }

    pub fn remove_ports(&mut self, bridge: &str, mappings: &[PortMapping]) -> Result<(), FirewallError> {
        for m in mappings {
            self.desired.ports.remove(&(bridge.to_owned(), m.clone()));
        }
        self.apply()
    }

    /// Replaces the whole desired state (startup reconcile) and applies it: rules of networks
    /// and endpoints that no longer exist disappear.
    pub fn reconcile(&mut self, desired: Desired) -> Result<(), FirewallError> {
        if self.forwarding && !desired.networks.is_empty() {
            enable_forwarding(desired.networks.values().flat_map(|n| &n.subnets).any(|s| s.addr().is_ipv6()))?;
        }
        self.desired = desired;
        self.apply()
    }

    /// Removes everything this daemon installed.
    pub fn teardown(&mut self) -> Result<(), FirewallError> {
        self.desired = Desired::default();
        match self.backend {
            Backend::Nft => {
                let batch = json!({"nftables": [
                    {"add": {"table": {"family": "inet", "name": self.table}}},
                    {"delete": {"table": {"family": "inet", "name": self.table}}},
                ]});
                run_nft(&self.table, &batch)
            }
            Backend::Iptables => iptables_teardown(&self.table),
            Backend::Disabled => Ok(()),
        }
    }

    /// Re-renders and installs the ruleset.
    pub fn apply(&self) -> Result<(), FirewallError> {
        match self.backend {
            Backend::Nft => run_nft(&self.table, &render_nft(&self.table, &self.desired)),
            Backend::Iptables => iptables_apply(&self.table, &self.desired),
            Backend::Disabled => Ok(()),
        }
    }
}

/// Turns on `net.ipv4.ip_forward` (and IPv6 forwarding when asked), as Docker does at startup.
pub fn enable_forwarding(ipv6: bool) -> Result<(), FirewallError> {
    set_sysctl("net/ipv4/ip_forward", "1")?;
    if ipv6 {
        set_sysctl("net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}

fn set_sysctl(key: &str, value: &str) -> Result<(), FirewallError> {
    let path = format!("/proc/sys/{key}");
    if std::fs::read_to_string(&path).map(|v| v.trim() == value).unwrap_or(false) {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(|source| FirewallError::Sysctl { key: key.replace('/', "."), source })
}

pub(crate) fn run_nft(table: &str, batch: &Value) -> Result<(), FirewallError> {
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| FirewallError::Spawn { tool: "nft", source })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(batch.to_string().as_bytes()).map_err(|source| FirewallError::Spawn { tool: "nft", source })?;
    }
    let out = child.wait_with_output().map_err(|source| FirewallError::Spawn { tool: "nft", source })?;
    if !out.status.success() {
        return Err(FirewallError::Apply {
            tool: "nft",
            table: table.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

// ---- nftables rendering -------------------------------------------------------------------

fn m(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}
fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}
fn payload(proto: &str, field: &str) -> Value {
    json!({"payload": {"protocol": proto, "field": field}})
}
fn prefix(net: &IpNet) -> Value {
    json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}})
}
fn fam(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "ip" } else { "ip6" }
}
fn net_fam(net: &IpNet) -> &'static str {
    fam(&net.addr())
}

/// Renders the complete nftables batch (pure; unit-tested).
pub fn render_nft(table: &str, d: &Desired) -> Value {
    let mut cmds: Vec<Value> = vec![
        json!({"add": {"table": {"family": "inet", "name": table}}}),
        json!({"delete": {"table": {"family": "inet", "name": table}}}),
        json!({"add": {"table": {"family": "inet", "name": table}}}),
    ];
    let chain = |name: &str, ty: Option<(&str, &str, i32)>| -> Value {
        let mut c = json!({"family": "inet", "table": table, "name": name});
        if let Some((t, hook, prio)) = ty {
            c["type"] = json!(t);
            c["hook"] = json!(hook);
            c["prio"] = json!(prio);
            c["policy"] = json!("accept");
        }
        json!({"add": {"chain": c}})
    };
    cmds.push(chain("forward", Some(("filter", "forward", 0))));
    cmds.push(chain("postrouting", Some(("nat", "postrouting", 100))));
    cmds.push(chain("prerouting", Some(("nat", "prerouting", -100))));
    cmds.push(chain("output", Some(("nat", "output", -100))));
    cmds.push(chain("dnat", None));
    let rule = |chain: &str, expr: Vec<Value>, comment: Option<String>| -> Value {
        let mut r = json!({"family": "inet", "table": table, "chain": chain, "expr": expr});
        if let Some(c) = comment {
            r["comment"] = json!(c);
        }
        json!({"add": {"rule": r}})
    };
    let bridges: Vec<&str> = d.networks.keys().map(String::as_str).collect();

    // forward
    for (b, n) in &d.networks {
        let others: Vec<&str> = bridges.iter().copied().filter(|o| o != b).collect();
        if !others.is_empty() {
            cmds.push(rule(
                "forward",
                vec![
                    m("==", meta("iifname"), json!(b)),
                    m("==", meta("oifname"), json!({"set": others})),
                    json!({"drop": null}),
                ],
                Some(format!("isolate {b}")),
            ));
        }
        if n.internal {
            cmds.push(rule(
                "forward",
                vec![m("==", meta("iifname"), json!(b)), m("!=", meta("oifname"), json!(b)), json!({"drop": null})],
                Some(format!("internal {b}")),
            ));
            cmds.push(rule(
                "forward",
                vec![m("==", meta("oifname"), json!(b)), m("!=", meta("iifname"), json!(b)), json!({"drop": null})],
                Some(format!("internal {b}")),
            ));
        }
        cmds.push(rule(
            "forward",
            vec![
                m("==", meta("oifname"), json!(b)),
                m("in", json!({"ct": {"key": "state"}}), json!(["established", "related"])),
                json!({"accept": null}),
            ],
            None,
        ));
    }
    for (b, p) in &d.ports {
        if p.proto == Proto::Sctp || d.networks.get(b).is_some_and(|n| n.internal) {
            continue;
        }
        let proto = p.proto.to_string();
        cmds.push(rule(
            "forward",
            vec![
                m("==", meta("oifname"), json!(b)),
                m("!=", meta("iifname"), json!(b)),
                m("==", payload(fam(&p.container_ip), "daddr"), json!(p.container_ip.to_string())),
                m("==", payload(&proto, "dport"), json!(p.container_port)),
                json!({"accept": null}),
            ],
            None,
        ));
    }
    for (b, n) in &d.networks {
        let icc = if n.icc { json!({"accept": null}) } else { json!({"drop": null}) };
        cmds.push(rule(
            "forward",
            vec![m("==", meta("iifname"), json!(b)), m("==", meta("oifname"), json!(b)), icc],
            None,
        ));
        cmds.push(rule("forward", vec![m("==", meta("iifname"), json!(b)), json!({"accept": null})], None));
        cmds.push(rule("forward", vec![m("==", meta("oifname"), json!(b)), json!({"drop": null})], None));
    }

    // postrouting
    for (b, n) in &d.networks {
        if n.internal || !n.masquerade {
            continue;
        }
        for s in &n.subnets {
            cmds.push(rule(
                "postrouting",
                vec![
                    m("==", payload(net_fam(s), "saddr"), prefix(s)),
                    m("!=", meta("oifname"), json!(b)),
                    json!({"masquerade": null}),
                ],
                Some(format!("masquerade {b}")),
            ));
        }
    }
    for (_, p) in &d.ports {
        if p.proto == Proto::Sctp {
            continue;
        }
        let f = fam(&p.container_ip);
        cmds.push(rule(
            "postrouting",
            vec![
                m("==", payload(f, "saddr"), json!(p.container_ip.to_string())),
                m("==", payload(f, "daddr"), json!(p.container_ip.to_string())),
                m("==", payload(&p.proto.to_string(), "dport"), json!(p.container_port)),
                json!({"masquerade": null}),
            ],
            Some("hairpin".into()),
        ));
    }

    // prerouting / output / dnat
    let local = m("==", json!({"fib": {"result": "type", "flags": ["daddr"]}}), json!("local"));
    cmds.push(rule("prerouting", vec![local.clone(), json!({"jump": {"target": "dnat"}})], None));
    cmds.push(rule(
        "output",
        vec![
            m("!=", payload("ip", "daddr"), json!({"prefix": {"addr": "127.0.0.0", "len": 8}})),
            local.clone(),
            json!({"jump": {"target": "dnat"}}),
        ],
        None,
    ));
    cmds.push(rule(
        "output",
        vec![m("!=", payload("ip6", "daddr"), json!("::1")), local, json!({"jump": {"target": "dnat"}})],
        None,
    ));
    for (b, p) in &d.ports {
        if p.proto == Proto::Sctp || d.networks.get(b).is_some_and(|n| n.internal) {
            continue;
        }
        // An IPv4 container is reachable only through IPv4 host addresses (and v6 likewise);
        // the userland proxy bridges the families.
        if p.host_ip.is_ipv4() != p.container_ip.is_ipv4() {
            continue;
        }
        let f = fam(&p.container_ip);
        let mut expr = vec![m("!=", meta("iifname"), json!(b))];
        expr.push(m("==", meta("nfproto"), json!(if f == "ip" { "ipv4" } else { "ipv6" })));
        if !p.host_ip.is_unspecified() {
            expr.push(m("==", payload(f, "daddr"), json!(p.host_ip.to_string())));
        }
        expr.push(m("==", payload(&p.proto.to_string(), "dport"), json!(p.host_port)));
        expr.push(json!({"dnat": {"family": f, "addr": p.container_ip.to_string(), "port": p.container_port}}));
        cmds.push(rule("dnat", expr, Some(format!("{}/{} -> {}", p.host_display(), p.proto, p.container_port))));
    }
    json!({"nftables": cmds})
}

// ---- iptables fallback --------------------------------------------------------------------

/// Renders `iptables-restore --noflush` input for one family (pure; unit-tested). Our chains are
/// declared (which flushes them) and refilled; jumps from the built-in chains are added separately.
pub fn render_iptables(table: &str, d: &Desired, v6: bool) -> String {
    let fwd = format!("{table}-FWD");
    let post = format!("{table}-POST");
    let dnat = format!("{table}-DNAT");
    let is_fam = |ip: &IpAddr| ip.is_ipv6() == v6;
    let bridges: Vec<&String> = d.networks.keys().collect();
    let mut f = format!("*filter\n:{fwd} - [0:0]\n");
    for (b, n) in &d.networks {
        for o in bridges.iter().filter(|o| **o != b) {
            f.push_str(&format!("-A {fwd} -i {b} -o {o} -j DROP\n"));
        }
        if n.internal {
            f.push_str(&format!("-A {fwd} -i {b} ! -o {b} -j DROP\n-A {fwd} -o {b} ! -i {b} -j DROP\n"));
        }
        f.push_str(&format!("-A {fwd} -o {b} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"));
    }
    for (b, p) in &d.ports {
        if p.proto == Proto::Sctp || !is_fam(&p.container_ip) {
            continue;
        }
        f.push_str(&format!(
            "-A {fwd} -o {b} ! -i {b} -d {} -p {} --dport {} -j ACCEPT\n",
            p.container_ip, p.proto, p.container_port
        ));
    }
    for (b, n) in &d.networks {
        f.push_str(&format!("-A {fwd} -i {b} -o {b} -j {}\n", if n.icc { "ACCEPT" } else { "DROP" }));
        f.push_str(&format!("-A {fwd} -i {b} -j ACCEPT\n-A {fwd} -o {b} -j DROP\n"));
    }
    f.push_str("COMMIT\n");
    let mut n = format!("*nat\n:{post} - [0:0]\n:{dnat} - [0:0]\n");
    for (b, net) in &d.networks {
        if net.internal || !net.masquerade {
            continue;
        }
        for s in net.subnets.iter().filter(|s| is_fam(&s.addr())) {
            n.push_str(&format!("-A {post} -s {s} ! -o {b} -j MASQUERADE\n"));
        }
    }
    for (b, p) in &d.ports {
        if p.proto == Proto::Sctp || !is_fam(&p.container_ip) || p.host_ip.is_ipv4() != p.container_ip.is_ipv4() {
            continue;
        }
        if d.networks.get(b).is_some_and(|n| n.internal) {
            continue;
        }
        n.push_str(&format!(
            "-A {post} -s {c} -d {c} -p {pr} --dport {cp} -j MASQUERADE\n",
            c = p.container_ip,
            pr = p.proto,
            cp = p.container_port
        ));
        let dst = if p.host_ip.is_unspecified() { String::new() } else { format!("-d {} ", p.host_ip) };
        let to = if v6 {
            format!("[{}]:{}", p.container_ip, p.container_port)
        } else {
            format!("{}:{}", p.container_ip, p.container_port)
        };
        n.push_str(&format!(
            "-A {dnat} ! -i {b} {dst}-p {} --dport {} -j DNAT --to-destination {to}\n",
            p.proto, p.host_port
        ));
    }
    n.push_str("COMMIT\n");
    f + &n
}

fn iptables_jumps(table: &str, v6: bool) -> Vec<(&'static str, &'static str, Vec<String>)> {
    let lo = if v6 { "::1/128" } else { "127.0.0.0/8" };
    vec![
        ("filter", "FORWARD", vec!["-j".into(), format!("{table}-FWD")]),
        ("nat", "POSTROUTING", vec!["-j".into(), format!("{table}-POST")]),
        (
            "nat",
            "PREROUTING",
            vec![
                "-m".into(),
                "addrtype".into(),
                "--dst-type".into(),
                "LOCAL".into(),
                "-j".into(),
                format!("{table}-DNAT"),
            ],
        ),
        (
            "nat",
            "OUTPUT",
            vec![
                "!".into(),
                "-d".into(),
                lo.into(),
                "-m".into(),
                "addrtype".into(),
                "--dst-type".into(),
                "LOCAL".into(),
                "-j".into(),
                format!("{table}-DNAT"),
            ],
        ),
    ]
}

fn iptables_apply(table: &str, d: &Desired) -> Result<(), FirewallError> {
    for v6 in [false, true] {
        let (restore, tool) = if v6 { ("ip6tables-restore", "ip6tables") } else { ("iptables-restore", "iptables") };
        let mut child = Command::new(restore)
            .arg("--noflush")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| FirewallError::Spawn { tool: "iptables-restore", source })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(render_iptables(table, d, v6).as_bytes())
                .map_err(|source| FirewallError::Spawn { tool: "iptables-restore", source })?;
        }
        let out =
            child.wait_with_output().map_err(|source| FirewallError::Spawn { tool: "iptables-restore", source })?;
        if !out.status.success() {
            return Err(FirewallError::Apply {
                tool: "iptables-restore",
                table: table.to_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        for (t, builtin, rule) in iptables_jumps(table, v6) {
            let check =
                Command::new(tool).args(["-w", "-t", t, "-C", builtin]).args(&rule).stderr(Stdio::null()).status();
            if !check.map(|s| s.success()).unwrap_or(false) {
                let out = Command::new(tool)
                    .args(["-w", "-t", t, "-I", builtin, "1"])
                    .args(&rule)
                    .output()
                    .map_err(|source| FirewallError::Spawn { tool: "iptables", source })?;
                if !out.status.success() {
                    return Err(FirewallError::Apply {
                        tool: "iptables",
                        table: table.to_owned(),
                        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                    });
                }
            }
        }
    }
    Ok(())
}

fn iptables_teardown(table: &str) -> Result<(), FirewallError> {
    for v6 in [false, true] {
        let tool = if v6 { "ip6tables" } else { "iptables" };
        for (t, builtin, rule) in iptables_jumps(table, v6) {
            while Command::new(tool)
                .args(["-w", "-t", t, "-D", builtin])
                .args(&rule)
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
            {}
        }
        for (t, chain) in
            [("filter", format!("{table}-FWD")), ("nat", format!("{table}-POST")), ("nat", format!("{table}-DNAT"))]
        {
            let _ = Command::new(tool).args(["-w", "-t", t, "-F", &chain]).stderr(Stdio::null()).status();
            let _ = Command::new(tool).args(["-w", "-t", t, "-X", &chain]).stderr(Stdio::null()).status();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> Desired {
        let mut d = Desired::default();
        for (b, s, internal) in [("br-a", "172.18.0.0/16", false), ("br-b", "172.19.0.0/16", true)] {
            d.networks.insert(
                b.into(),
                BridgeRules {
                    bridge: b.into(),
                    subnets: vec![s.parse().unwrap()],
                    internal,
                    masquerade: true,
                    icc: true,
                },
            );
        }
        d.ports.insert((
            "br-a".into(),
            PortMapping {
                proto: Proto::Tcp,
                host_ip: "0.0.0.0".parse().unwrap(),
                host_port: 8080,
                container_ip: "172.18.0.2".parse().unwrap(),
                container_port: 80,
            },
        ));
        d
    }

    #[test]
    fn nft_render_has_isolation_masquerade_and_dnat() {
        let v = render_nft("wharf", &desired()).to_string();
        assert!(v.contains(r#""comment":"isolate br-a""#));
        assert!(v.contains(r#""comment":"internal br-b""#));
        assert!(v.contains(r#""comment":"masquerade br-a""#));
        assert!(!v.contains(r#""comment":"masquerade br-b""#), "internal networks are not masqueraded");
        assert!(v.contains(r#"{"dnat":{"addr":"172.18.0.2","family":"ip","port":80}}"#), "{v}");
        // Removing the network removes its port rules too.
        let mut d = desired();
        d.networks.remove("br-a");
        d.ports.retain(|(b, _)| b != "br-a");
        assert!(!render_nft("wharf", &d).to_string().contains("172.18.0.2"));
    }

    #[test]
    fn iptables_render() {
        let s = render_iptables("wharf", &desired(), false);
        assert!(s.contains("-A wharf-FWD -i br-a -o br-b -j DROP\n"));
        assert!(s.contains("-A wharf-POST -s 172.18.0.0/16 ! -o br-a -j MASQUERADE\n"));
        assert!(s.contains("-A wharf-DNAT ! -i br-a -p tcp --dport 8080 -j DNAT --to-destination 172.18.0.2:80\n"));
        assert!(!render_iptables("wharf", &desired(), true).contains("172.18"));
    }

    #[test]
    fn table_names_are_checked() {
        assert!(Firewall::new("wharf-t1", Backend::Nft).is_ok());
        assert!(Firewall::new("bad name", Backend::Nft).is_err());
        assert!(Firewall::new("", Backend::Nft).is_err());
    }
}
