//! The embedded DNS server: what a container on a user-defined network reaches at
//! `127.0.0.11:53` (UDP and TCP).
//!
//! Shape: one [`DnsRegistry`] per daemon holds, per network, the names and addresses of its
//! endpoints (container name, aliases, short ID, as the daemon chooses). One [`DnsServer`] per
//! container owns two sockets created *inside the container's namespace* (a short setns thread
//! binds them; the sockets stay in that namespace) and is served by tasks on the daemon's runtime.
//! As in Docker, the sockets take a random port of `127.0.0.11` and a small nftables table inside
//! the namespace redirects port 53 to it ([`DnsMode::Dnat`]), leaving port 53 to the container's
//! own programs; [`DnsMode::Direct`] binds `127.0.0.11:53` itself.
//!
//! Answers follow Docker's resolver: a container sees only names on its own networks; `name` is
//! looked up network by network, `name.<network>` only in that network; A/AAAA come from the
//! endpoint's addresses (a known name without an address of the asked family gets an empty
//! NOERROR); PTR for an endpoint address answers `name.<network>`. Anything else is forwarded to
//! the container's external servers (from the host's resolv.conf or `--dns`): loopback servers
//! from the host's namespace, others from the container's, as Docker does. With no external
//! servers (internal networks) unknown names get NXDOMAIN; when every server fails, SERVFAIL.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wharf_types::{Classify, ContainerId, ErrorKind, NetworkId};

use crate::files::ExtServer;

/// An external server the embedded server forwards to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upstream {
    pub addr: SocketAddr,
    /// Reach it from the daemon's (host) namespace rather than the container's.
    pub from_host: bool,
}

impl From<ExtServer> for Upstream {
    fn from(e: ExtServer) -> Self {
        Upstream { addr: SocketAddr::new(e.addr, 53), from_host: e.host_loopback }
    }
}

/// TTL of answers about containers (Docker's 600 s).
const TTL: u32 = 600;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(4);

/// Where containers find the embedded server.
pub const DNS_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// Failures of starting the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("start DNS server for container {container} on {addr}")]
    Bind {
        container: String,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("redirect 127.0.0.11:53 for container {container}")]
    Dnat {
        container: String,
        #[source]
        source: crate::firewall::FirewallError,
    },
    #[error("start DNS server for container {container}")]
    Netns {
        container: String,
        #[source]
        source: crate::netns::NetnsError,
    },
}

/// How a container's `127.0.0.11:53` reaches its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsMode {
    /// Docker's way: the server listens on a random port of `127.0.0.11` and an nftables table
    /// inside the container's namespace DNATs port 53 to it, so the container's own programs
    /// may still bind port 53 (a DNS server in a container works). Costs one `nft` run per start.
    #[default]
    Dnat,
    /// Bind `127.0.0.11:53` directly: no firewall work, but a container process binding
    /// port 53 on all addresses then fails with "address already in use".
    Direct,
}

/// The table installed in a container's namespace by [`DnsMode::Dnat`].
pub const DNS_TABLE: &str = "wharf_dns";

/// Installs (or replaces) the DNAT of `127.0.0.11:53` to `port` (UDP and TCP) inside `netns`.
pub fn install_dnat(netns: &Path, port: u16) -> Result<(), crate::firewall::FirewallError> {
    use serde_json::json;
    let table = DNS_TABLE;
    let rule = |proto: &str| {
        json!({"add": {"rule": {"family": "ip", "table": table, "chain": "output", "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": DNS_ADDR.to_string()}},
            {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "dport"}}, "right": 53}},
            {"dnat": {"addr": DNS_ADDR.to_string(), "port": port}}
        ]}}})
    };
    let batch = json!({"nftables": [
        {"add": {"table": {"family": "ip", "name": table}}},
        {"delete": {"table": {"family": "ip", "name": table}}},
        {"add": {"table": {"family": "ip", "name": table}}},
        {"add": {"chain": {"family": "ip", "table": table, "name": "output", "type": "nat", "hook": "output", "prio": -100, "policy": "accept"}}},
        rule("udp"),
        rule("tcp"),
    ]});
    // The nft process inherits the namespace of the thread that spawns it.
    crate::netns::run_in(netns, || crate::firewall::run_nft(table, &batch)).map_err(|e| {
        crate::firewall::FirewallError::Spawn { tool: "nft", source: std::io::Error::other(e.to_string()) }
    })?
}

impl Classify for DnsError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

#[derive(Debug, Clone)]
struct Entry {
    container: ContainerId,
    names: Vec<String>,
    ips: Vec<IpAddr>,
}

#[derive(Debug, Default)]
struct NetRecords {
    name: String,
    entries: Vec<Entry>,
}

/// Names per network, shared by every container's server.
#[derive(Debug, Default)]
pub struct DnsRegistry {
    nets: RwLock<BTreeMap<NetworkId, NetRecords>>,
}

/// The outcome of a local lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The name exists on one of the container's networks (the list may be empty for this family).
    Found(Vec<IpAddr>),
    NotFound,
}

fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers (or replaces) a container's endpoint on a network: its DNS names and addresses.
    pub fn add_endpoint(
        &self,
        network: &NetworkId,
        network_name: &str,
        container: &ContainerId,
        names: &[String],
        ips: &[IpAddr],
    ) {
        let Ok(mut nets) = self.nets.write() else {
            return;
        };
        let rec = nets.entry(network.clone()).or_default();
        rec.name = network_name.to_ascii_lowercase();
        rec.entries.retain(|e| &e.container != container);
        rec.entries.push(Entry {
            container: container.clone(),
            names: names.iter().map(|n| norm(n)).filter(|n| !n.is_empty()).collect(),
            ips: ips.to_vec(),
        });
    }

    /// Removes a container's endpoint from a network.
    pub fn remove_endpoint(&self, network: &NetworkId, container: &ContainerId) {
        let Ok(mut nets) = self.nets.write() else {
            return;
        };
        if let Some(rec) = nets.get_mut(network) {
            rec.entries.retain(|e| &e.container != container);
            if rec.entries.is_empty() {
                nets.remove(network);
            }
        }
    }

    /// Removes every endpoint of a container (container removed).
    pub fn remove_container(&self, container: &ContainerId) {
        let Ok(mut nets) = self.nets.write() else {
            return;
        };
        for rec in nets.values_mut() {
            rec.entries.retain(|e| &e.container != container);
        }
        nets.retain(|_, r| !r.entries.is_empty());
    }

    /// Resolves `name` for `asker` (only its networks), filtered to one family.
    pub fn lookup(&self, asker: &ContainerId, name: &str, v6: bool) -> Lookup {
        let Ok(nets) = self.nets.read() else {
            return Lookup::NotFound;
        };
        let q = norm(name);
        let mine: Vec<&NetRecords> =
            nets.values().filter(|r| r.entries.iter().any(|e| &e.container == asker)).collect();
        let find = |rec: &NetRecords, n: &str| -> Option<Vec<IpAddr>> {
            let hits: Vec<IpAddr> = rec
                .entries
                .iter()
                .filter(|e| e.names.iter().any(|x| x == n))
                .flat_map(|e| e.ips.iter().copied())
                .collect();
            let known = rec.entries.iter().any(|e| e.names.iter().any(|x| x == n));
            known.then(|| hits.into_iter().filter(|ip| ip.is_ipv6() == v6).collect())
        };
        for rec in &mine {
            if let Some(ips) = find(rec, &q) {
                return Lookup::Found(ips);
            }
        }
        if let Some((head, net)) = q.rsplit_once('.') {
            for rec in mine.iter().filter(|r| r.name == net) {
                if let Some(ips) = find(rec, head) {
                    return Lookup::Found(ips);
                }
            }
        }
        Lookup::NotFound
    }

    /// Reverse lookup of an endpoint address on `asker`'s networks: `name.<network>`.
    pub fn reverse(&self, asker: &ContainerId, ip: IpAddr) -> Option<String> {
        let nets = self.nets.read().ok()?;
        nets.values().filter(|r| r.entries.iter().any(|e| &e.container == asker)).find_map(|r| {
            r.entries
                .iter()
                .find(|e| e.ips.contains(&ip))
                .and_then(|e| e.names.first())
                .map(|n| format!("{n}.{}", r.name))
        })
    }
}

/// A running DNS server for one container. Stopping (or dropping) it closes its sockets.
pub struct DnsServer {
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

struct Ctx {
    registry: Arc<DnsRegistry>,
    container: ContainerId,
    netns: Option<PathBuf>,
    upstreams: Vec<Upstream>,
}

impl DnsServer {
    /// Binds UDP and TCP on `listen` (normally `127.0.0.11:53`) inside the namespace at `netns`
    /// (or the caller's namespace when `None`, which tests use) and starts serving. Port 0 picks
    /// a free port (see [`DnsServer::udp_addr`]). Must be called inside a tokio runtime.
    pub fn start(
        registry: Arc<DnsRegistry>,
        container: ContainerId,
        netns: Option<&Path>,
        listen: SocketAddr,
        upstreams: Vec<Upstream>,
    ) -> Result<DnsServer, DnsError> {
        let cid = container.to_string();
        let bind = move || -> io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
            let u = std::net::UdpSocket::bind(listen)?;
            let t = std::net::TcpListener::bind(SocketAddr::new(listen.ip(), u.local_addr()?.port()))?;
            u.set_nonblocking(true)?;
            t.set_nonblocking(true)?;
            Ok((u, t))
        };
        let bound = match netns {
            Some(p) => {
                crate::netns::run_in(p, bind).map_err(|source| DnsError::Netns { container: cid.clone(), source })?
            }
            None => bind(),
        };
        let err = |source| DnsError::Bind { container: cid.clone(), addr: listen, source };
        let (u, t) = bound.map_err(err)?;
        let udp_addr = u.local_addr().map_err(err)?;
        let tcp_addr = t.local_addr().map_err(err)?;
        let udp = Arc::new(UdpSocket::from_std(u).map_err(err)?);
        let tcp = TcpListener::from_std(t).map_err(err)?;
        let ctx = Arc::new(Ctx { registry, container, netns: netns.map(Path::to_path_buf), upstreams });
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(serve_udp(udp, ctx.clone(), stopped.clone())),
            tokio::spawn(serve_tcp(tcp, ctx, stopped)),
        ];
        Ok(DnsServer { udp_addr, tcp_addr, stop, tasks })
    }

    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// Stops serving and waits for the sockets to close.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn serve_udp(sock: Arc<UdpSocket>, ctx: Arc<Ctx>, mut stopped: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = tokio::select! {
            _ = stopped.changed() => return,
            r = sock.recv_from(&mut buf) => match r { Ok(r) => r, Err(_) => continue },
        };
        let query = buf[..n].to_vec();
        let (sock, ctx) = (sock.clone(), ctx.clone());
        tokio::spawn(async move {
            if let Some(resp) = answer(&ctx, &query, false).await {
                let _ = sock.send_to(&resp, peer).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, ctx: Arc<Ctx>, mut stopped: watch::Receiver<bool>) {
    loop {
        let (mut conn, _) = tokio::select! {
            _ = stopped.changed() => return,
            r = listener.accept() => match r { Ok(r) => r, Err(_) => continue },
        };
        let ctx = ctx.clone();
        let mut stop = stopped.clone();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = stop.changed() => return,
                    r = read_framed(&mut conn) => match r { Ok(m) => m, Err(_) => return },
                };
                let Some(resp) = answer(&ctx, &msg, true).await else {
                    return;
                };
                if write_framed(&mut conn, &resp).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn read_framed(conn: &mut TcpStream) -> io::Result<Vec<u8>> {
    let len = conn.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    conn.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_framed(conn: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| io::Error::other("DNS message too long"))?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    conn.write_all(&out).await
}

/// Builds the reply to one wire-format query; `None` drops malformed input silently.
async fn answer(ctx: &Ctx, wire: &[u8], tcp: bool) -> Option<Vec<u8>> {
    let req = Message::from_vec(wire).ok()?;
    if req.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    let Some(q) = req.queries.first().cloned() else {
        resp.metadata.response_code = ResponseCode::FormErr;
        return resp.to_vec().ok();
    };
    resp.add_query(q.clone());
    if req.metadata.op_code != OpCode::Query {
        resp.metadata.response_code = ResponseCode::NotImp;
        return resp.to_vec().ok();
    }
    let qname = q.name.to_ascii();
    match q.query_type {
        RecordType::A | RecordType::AAAA => {
            let v6 = q.query_type == RecordType::AAAA;
            if let Lookup::Found(ips) = ctx.registry.lookup(&ctx.container, &qname, v6) {
                for ip in ips {
                    let rdata = match ip {
                        IpAddr::V4(a) => RData::A(A(a)),
                        IpAddr::V6(a) => RData::AAAA(AAAA(a)),
                    };
                    resp.add_answer(Record::from_rdata(q.name.clone(), TTL, rdata));
                }
                return resp.to_vec().ok();
            }
        }
        RecordType::PTR => {
            if let Ok(net) = q.name.parse_arpa_name()
                && let Some(target) = ctx.registry.reverse(&ctx.container, net.addr())
                && let Ok(name) = Name::from_ascii(format!("{target}."))
            {
                resp.add_answer(Record::from_rdata(q.name.clone(), TTL, RData::PTR(PTR(name))));
                return resp.to_vec().ok();
            }
        }
        _ => {
            if matches!(ctx.registry.lookup(&ctx.container, &qname, false), Lookup::Found(_)) {
                return resp.to_vec().ok();
            }
        }
    }
    if ctx.upstreams.is_empty() {
        resp.metadata.response_code = ResponseCode::NXDomain;
        return resp.to_vec().ok();
    }
    for up in &ctx.upstreams {
        if let Ok(Ok(r)) = tokio::time::timeout(UPSTREAM_TIMEOUT, forward(ctx, *up, wire, tcp)).await {
            return Some(r);
        }
    }
    resp.metadata.response_code = ResponseCode::ServFail;
    resp.to_vec().ok()
}

/// Sends the query to one upstream and returns its reply verbatim.
async fn forward(ctx: &Ctx, up: Upstream, wire: &[u8], tcp: bool) -> io::Result<Vec<u8>> {
    let target = up.addr;
    // Loopback servers are the host's own (reached from the host namespace); the others are
    // reached from inside the container, so its routes and firewall apply.
    let in_container = !up.from_host && ctx.netns.is_some();
    let local: SocketAddr =
        if target.is_ipv4() { SocketAddr::from(([0, 0, 0, 0], 0)) } else { SocketAddr::from(([0u16; 8], 0)) };
    if tcp {
        let std_sock = if in_container {
            let p = ctx.netns.clone().unwrap_or_default();
            crate::netns::run_in(&p, move || {
                socket2::Socket::new(socket2::Domain::for_address(target), socket2::Type::STREAM, None)
            })
            .map_err(io::Error::other)??
        } else {
            socket2::Socket::new(socket2::Domain::for_address(target), socket2::Type::STREAM, None)?
        };
        std_sock.set_nonblocking(true)?;
        let sock = tokio::net::TcpSocket::from_std_stream(std_sock.into());
        let mut conn = sock.connect(target).await?;
        write_framed(&mut conn, wire).await?;
        read_framed(&mut conn).await
    } else {
        let std_sock = if in_container {
            let p = ctx.netns.clone().unwrap_or_default();
            crate::netns::run_in(&p, move || std::net::UdpSocket::bind(local)).map_err(io::Error::other)??
        } else {
            std::net::UdpSocket::bind(local)?
        };
        std_sock.set_nonblocking(true)?;
        let sock = UdpSocket::from_std(std_sock)?;
        sock.connect(target).await?;
        sock.send(wire).await?;
        let mut buf = vec![0u8; 65535];
        let n = sock.recv(&mut buf).await?;
        buf.truncate(n);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u8) -> ContainerId {
        ContainerId::parse(&format!("{:0>64}", n)).unwrap()
    }
    fn nid(n: u8) -> NetworkId {
        NetworkId::parse(&format!("{:0>64}", n)).unwrap()
    }

    #[test]
    fn lookup_scopes_names_to_the_askers_networks() {
        let r = DnsRegistry::new();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        r.add_endpoint(&nid(1), "front", &cid(1), &["web".into(), "www".into()], &[ip("10.0.0.2"), ip("fd00::2")]);
        r.add_endpoint(&nid(1), "front", &cid(2), &["client".into()], &[ip("10.0.0.3")]);
        r.add_endpoint(&nid(2), "back", &cid(3), &["db".into()], &[ip("10.1.0.2")]);
        assert_eq!(r.lookup(&cid(2), "WEB.", false), Lookup::Found(vec![ip("10.0.0.2")]));
        assert_eq!(r.lookup(&cid(2), "www", true), Lookup::Found(vec![ip("fd00::2")]));
        assert_eq!(r.lookup(&cid(2), "client", true), Lookup::Found(vec![]));
        assert_eq!(r.lookup(&cid(2), "web.front", false), Lookup::Found(vec![ip("10.0.0.2")]));
        assert_eq!(r.lookup(&cid(2), "db", false), Lookup::NotFound, "db is on another network");
        assert_eq!(r.lookup(&cid(2), "web.back", false), Lookup::NotFound);
        assert_eq!(r.reverse(&cid(2), ip("10.0.0.2")), Some("web.front".into()));
        assert_eq!(r.reverse(&cid(3), ip("10.0.0.2")), None);
        r.remove_endpoint(&nid(1), &cid(1));
        assert_eq!(r.lookup(&cid(2), "web", false), Lookup::NotFound);
    }
}
