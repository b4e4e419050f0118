//! Published ports: Docker's `-p` syntax and `PortBindings`, host-port allocation (random ports
//! from the kernel's ephemeral range, as Docker's port allocator does) and conflict errors.
//!
//! A [`PortSpec`] is what the user asked for (host port may be 0 = random, or a range); a
//! [`PortMapping`] is what was granted (one concrete host port). The daemon stores the granted
//! mappings in the container's `NetworkSettings.Ports` and hands them back at startup.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use wharf_types::{Classify, ErrorKind};

/// Failures of parsing and allocating ports. Messages are Docker's (go-connections/nat and
/// libnetwork's port allocator).
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("invalid port specification: \"{0}\"")]
    InvalidSpec(String),
    #[error("invalid IP address: {0}")]
    InvalidIp(String),
    #[error("no port specified: {0}<empty>")]
    NoPort(String),
    #[error("invalid containerPort: {0}")]
    InvalidContainerPort(String),
    #[error("invalid hostPort: {0}")]
    InvalidHostPort(String),
    #[error("invalid ranges specified for container and host Ports: {container} and {host}")]
    RangeMismatch { container: String, host: String },
    #[error("invalid proto: {0}")]
    InvalidProto(String),
    #[error("Bind for {} failed: port is already allocated", fmt_host(.ip, *.port))]
    AlreadyAllocated { ip: IpAddr, port: u16 },
    #[error("failed to bind host port for {}:{container}/{proto}: address already in use", fmt_host(.ip, *.port))]
    AddressInUse { ip: IpAddr, port: u16, container: String, proto: Proto },
    #[error("failed to bind host port for {}:{container}/{proto}", fmt_host(.ip, *.port))]
    Bind {
        ip: IpAddr,
        port: u16,
        container: String,
        proto: Proto,
        #[source]
        source: std::io::Error,
    },
    #[error("all ports are allocated")]
    Exhausted,
    #[error("publishing {0} ports is not supported")]
    UnsupportedProto(Proto),
}

impl Classify for PortError {
    fn kind(&self) -> ErrorKind {
        match self {
            // Docker reports allocation failures as plain (500) errors.
            PortError::AlreadyAllocated { .. }
            | PortError::AddressInUse { .. }
            | PortError::Bind { .. }
            | PortError::Exhausted => ErrorKind::Internal,
            PortError::UnsupportedProto(_) => ErrorKind::NotImplemented,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

fn fmt_host(ip: &IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        IpAddr::V4(v4) => format!("{v4}:{port}"),
    }
}

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        })
    }
}

impl std::str::FromStr for Proto {
    type Err = PortError;
    fn from_str(s: &str) -> Result<Self, PortError> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" | "" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Ok(Proto::Sctp),
            _ => Err(PortError::InvalidProto(s.to_owned())),
        }
    }
}

/// One requested publication of one container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// `None` = all addresses (Docker binds both `0.0.0.0` and `::`).
    pub host_ip: Option<IpAddr>,
    /// Inclusive host port range; `(0, 0)` = a random ephemeral port.
    pub host_ports: (u16, u16),
    pub container_port: u16,
    pub proto: Proto,
}

/// A granted publication: one host address and port forwarded to one container address and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    pub proto: Proto,
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_ip: IpAddr,
    pub container_port: u16,
}

impl PortMapping {
    /// The `docker port` form: `0.0.0.0:8080` or `[::]:8080`.
    pub fn host_display(&self) -> String {
        fmt_host(&self.host_ip, self.host_port)
    }
}

fn parse_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let a: u16 = a.parse().ok()?;
    let b: u16 = b.parse().ok()?;
    (a <= b).then_some((a, b))
}

/// Parses one `-p` argument: `[ip:][hostPort:]containerPort[/proto]`, with ranges
/// (`8000-8010:80-90`), IPv6 hosts in brackets (`[::1]:80:80`) and `ip::port` for a random port
/// on one address. Returns one spec per container port.
pub fn parse_port_spec(raw: &str) -> Result<Vec<PortSpec>, PortError> {
    let (spec, proto) = match raw.rsplit_once('/') {
        Some((s, p)) => (s, p),
        None => (raw, "tcp"),
    };
    let proto: Proto = proto.parse()?;
    // Split off a bracketed IPv6 host first, then the rest by ':'.
    let (ip, rest) = if let Some(stripped) = spec.strip_prefix('[') {
        let (ip, rest) = stripped.split_once(']').ok_or_else(|| PortError::InvalidSpec(raw.into()))?;
        let rest = rest.strip_prefix(':').ok_or_else(|| PortError::InvalidSpec(raw.into()))?;
        (Some(ip.to_owned()), rest.to_owned())
    } else {
        (None, spec.to_owned())
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match (ip, parts.as_slice()) {
        (None, [c]) => (String::new(), "", *c),
        (None, [h, c]) => (String::new(), *h, *c),
        (None, [i, h, c]) => (i.to_string(), *h, *c),
        (Some(ip), [h, c]) => (ip, *h, *c),
        _ => return Err(PortError::InvalidSpec(raw.into())),
    };
    let host_ip =
        if ip.is_empty() { None } else { Some(ip.parse::<IpAddr>().map_err(|_| PortError::InvalidIp(ip.clone()))?) };
    if container.is_empty() {
        return Err(PortError::NoPort(raw.to_string()));
    }
    let (cs, ce) = parse_range(container).ok_or_else(|| PortError::InvalidContainerPort(container.into()))?;
    if cs == 0 {
        return Err(PortError::InvalidContainerPort(container.into()));
    }
    let (hs, he) = if host.is_empty() {
        (0, 0)
    } else {
        parse_range(host).ok_or_else(|| PortError::InvalidHostPort(host.into()))?
    };
    let host_range = !host.is_empty() && he - hs != ce - cs;
    if host_range && ce != cs {
        return Err(PortError::RangeMismatch { container: container.into(), host: host.into() });
    }
    Ok((cs..=ce)
        .enumerate()
        .map(|(i, cport)| {
            let host_ports = if host.is_empty() {
                (0, 0)
            } else if host_range {
                (hs, he)
            } else {
                (hs + i as u16, hs + i as u16)
            };
            PortSpec { host_ip, host_ports, container_port: cport, proto }
        })
        .collect())
}

/// One entry of the API's `HostConfig.PortBindings["80/tcp"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiPortBinding {
    #[serde(rename = "HostIp", default)]
    pub host_ip: String,
    #[serde(rename = "HostPort", default)]
    pub host_port: String,
}

/// Converts the API's `PortBindings` map into specs.
pub fn specs_from_api(bindings: &BTreeMap<String, Vec<ApiPortBinding>>) -> Result<Vec<PortSpec>, PortError> {
    let mut out = Vec::new();
    for (key, list) in bindings {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let proto: Proto = proto.parse()?;
        let container_port: u16 = port.parse().map_err(|_| PortError::InvalidContainerPort(port.into()))?;
        for b in list {
            let host_ip = if b.host_ip.is_empty() {
                None
            } else {
                Some(b.host_ip.trim_matches(['[', ']']).parse().map_err(|_| PortError::InvalidIp(b.host_ip.clone()))?)
            };
            let host_ports = if b.host_port.is_empty() {
                (0, 0)
            } else {
                parse_range(&b.host_port).ok_or_else(|| PortError::InvalidHostPort(b.host_port.clone()))?
            };
            out.push(PortSpec { host_ip, host_ports, container_port, proto });
        }
    }
    Ok(out)
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), Docker's source of
/// random host ports; 32768–60999 if unreadable.
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|w| w.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// The daemon-wide registry of host ports held by Wharf, per protocol and address. An address of
/// `0.0.0.0`/`::` conflicts with every specific address of its family, as in Docker.
#[derive(Debug)]
pub struct PortAllocator {
    held: BTreeMap<(Proto, IpAddr), std::collections::BTreeSet<u16>>,
    range: (u16, u16),
    last: BTreeMap<Proto, u16>,
}

impl Default for PortAllocator {
    fn default() -> Self {
        Self::new(ephemeral_range())
    }
}

impl PortAllocator {
    pub fn new(range: (u16, u16)) -> Self {
        Self { held: BTreeMap::new(), range, last: BTreeMap::new() }
    }

    fn taken(&self, proto: Proto, ip: IpAddr, port: u16) -> bool {
        self.held.iter().any(|((p, held_ip), ports)| {
            *p == proto
                && held_ip.is_ipv4() == ip.is_ipv4()
                && (held_ip.is_unspecified() || ip.is_unspecified() || *held_ip == ip)
                && ports.contains(&port)
        })
    }

    /// Reserves a concrete port: `want` = `(0,0)` for a random ephemeral one (next after the last
    /// one handed out, wrapping), a range for the first free in it, or a single port.
    pub fn allocate(&mut self, proto: Proto, ip: IpAddr, want: (u16, u16)) -> Result<u16, PortError> {
        let port = if want == (0, 0) {
            let (lo, hi) = self.range;
            let start = self.last.get(&proto).map_or(lo, |l| if *l >= hi { lo } else { l + 1 });
            let span = (hi - lo) as u32 + 1;
            let found = (0..span)
                .map(|i| lo + (((start - lo) as u32 + i) % span) as u16)
                .find(|p| !self.taken(proto, ip, *p))
                .ok_or(PortError::Exhausted)?;
            self.last.insert(proto, found);
            found
        } else {
            match (want.0..=want.1).find(|p| !self.taken(proto, ip, *p)) {
                Some(p) => p,
                None => return Err(PortError::AlreadyAllocated { ip, port: want.0 }),
            }
        };
        self.held.entry((proto, ip)).or_default().insert(port);
        Ok(port)
    }

    /// Marks a port as held without checks (restore at startup).
    pub fn hold(&mut self, proto: Proto, ip: IpAddr, port: u16) {
        self.held.entry((proto, ip)).or_default().insert(port);
    }

    pub fn release(&mut self, proto: Proto, ip: IpAddr, port: u16) {
        if let Some(set) = self.held.get_mut(&(proto, ip)) {
            set.remove(&port);
            if set.is_empty() {
                self.held.remove(&(proto, ip));
            }
        }
    }
}

/// The host addresses a spec binds: its own, or both unspecified addresses (`0.0.0.0`, `::`).
pub fn host_addresses(spec: &PortSpec, ipv6_host: bool) -> Vec<IpAddr> {
    match spec.host_ip {
        Some(ip) => vec![ip],
        None if ipv6_host => vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V6(Ipv6Addr::UNSPECIFIED)],
        None => vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> PortSpec {
        let v = parse_port_spec(s).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v.into_iter().next().unwrap()
    }

    #[test]
    fn parses_docker_forms() {
        assert_eq!(one("80"), PortSpec { host_ip: None, host_ports: (0, 0), container_port: 80, proto: Proto::Tcp });
        assert_eq!(one("8080:80").host_ports, (8080, 8080));
        let s = one("127.0.0.1:8080:80/udp");
        assert_eq!((s.host_ip, s.proto), (Some("127.0.0.1".parse().unwrap()), Proto::Udp));
        let s = one("127.0.0.1::80");
        assert_eq!(s.host_ports, (0, 0));
        let s = one("[::1]:80:80");
        assert_eq!(s.host_ip, Some("::1".parse().unwrap()));
        let v = parse_port_spec("8000-8002:80-82/tcp").unwrap();
        assert_eq!(
            v.iter().map(|s| (s.host_ports.0, s.container_port)).collect::<Vec<_>>(),
            [(8000, 80), (8001, 81), (8002, 82)]
        );
        // A host range for one container port: any free port in the range.
        assert_eq!(one("8000-8010:80").host_ports, (8000, 8010));
    }

    #[test]
    fn rejects_like_docker() {
        let e = |s: &str| parse_port_spec(s).unwrap_err().to_string();
        assert_eq!(e("8000-8005:80-90"), "invalid ranges specified for container and host Ports: 80-90 and 8000-8005");
        assert_eq!(e("80/foo"), "invalid proto: foo");
        assert_eq!(e("1.2.3:80:80"), "invalid IP address: 1.2.3");
        assert_eq!(e("x:80"), "invalid hostPort: x");
        assert_eq!(e("80:y"), "invalid containerPort: y");
        assert_eq!(e("1:2:3:4"), "invalid port specification: \"1:2:3:4\"");
    }

    #[test]
    fn api_bindings() {
        let mut m = BTreeMap::new();
        m.insert("9090/tcp".to_string(), vec![ApiPortBinding::default()]);
        m.insert("53/udp".to_string(), vec![ApiPortBinding { host_ip: "127.0.0.1".into(), host_port: "5353".into() }]);
        let v = specs_from_api(&m).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].proto, Proto::Udp);
        assert_eq!(v[1].host_ports, (0, 0));
    }

    #[test]
    fn allocator_conflicts_and_random_ports() {
        let mut a = PortAllocator::new((40000, 40002));
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(a.allocate(Proto::Tcp, any, (8080, 8080)).unwrap(), 8080);
        let e = a.allocate(Proto::Tcp, lo, (8080, 8080)).unwrap_err();
        assert_eq!(e.to_string(), "Bind for 127.0.0.1:8080 failed: port is already allocated");
        let e = a.allocate(Proto::Tcp, any, (8080, 8080)).unwrap_err();
        assert_eq!(e.to_string(), "Bind for 0.0.0.0:8080 failed: port is already allocated");
        // Other protocol and other family are independent.
        assert_eq!(a.allocate(Proto::Udp, any, (8080, 8080)).unwrap(), 8080);
        assert_eq!(a.allocate(Proto::Tcp, "::".parse().unwrap(), (8080, 8080)).unwrap(), 8080);
        let r: Vec<u16> = (0..3).map(|_| a.allocate(Proto::Tcp, any, (0, 0)).unwrap()).collect();
        assert_eq!(r, [40000, 40001, 40002]);
        assert!(matches!(a.allocate(Proto::Tcp, any, (0, 0)), Err(PortError::Exhausted)));
        a.release(Proto::Tcp, any, 40001);
        assert_eq!(a.allocate(Proto::Tcp, any, (0, 0)).unwrap(), 40001);
    }
}
