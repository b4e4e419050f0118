//! Which URLs serve a registry: Docker Hub's aliases, mirrors, insecure registries (HTTPS without
//! verification, then plain HTTP), and where per-registry certificates live.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Docker Hub as references spell it.
pub const DOCKER_HUB_DOMAIN: &str = "docker.io";
/// Docker Hub's registry API host.
pub const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
/// Docker Hub's key in credential stores (`docker login` without a server).
pub const DOCKER_HUB_INDEX: &str = "https://index.docker.io/v1/";

/// How requests are retried on transient failures (connect errors, 5xx, 429, dropped bodies).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubled for each further one.
    pub base_delay: Duration,
    /// Cap on one delay (also on a server's `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, base_delay: Duration::from_millis(200), max_delay: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let d = self.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        d.min(self.max_delay)
    }
}

/// The daemon's registry settings (the `insecure-registries`, `registry-mirrors` keys of
/// `daemon.json`, and the certs.d directory).
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Hosts (`host[:port]`) and CIDRs (`10.0.0.0/8`) reached without TLS verification, falling
    /// back to plain HTTP. The default holds `127.0.0.0/8` and `::1/128`, as Docker's does.
    pub insecure_registries: Vec<String>,
    /// Pull-through mirrors for Docker Hub, tried before it (`https://mirror.example`).
    pub mirrors: Vec<String>,
    /// Docker's certs.d layout: `<certs_dir>/<host[:port]>/` holding `*.crt` (extra CA roots) and
    /// `*.cert` + `*.key` (a client certificate).
    pub certs_dir: PathBuf,
    pub retry: RetryPolicy,
    pub connect_timeout: Duration,
    /// Longest wait for response headers (replayable requests) or for the next chunk of a blob
    /// body; then the request is retried or the download resumed.
    pub read_timeout: Duration,
    /// Largest manifest accepted (4 MiB, as containerd).
    pub max_manifest_size: usize,
    pub user_agent: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            insecure_registries: vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()],
            mirrors: Vec::new(),
            certs_dir: PathBuf::from("/etc/wharf/certs.d"),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            max_manifest_size: 4 << 20,
            user_agent: concat!("wharf/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// One base URL to try for a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://registry-1.docker.io`, `http://127.0.0.1:5000` (no trailing slash).
    pub base: String,
    /// Host and port as written (`127.0.0.1:5000`): the certs.d directory name.
    pub host: String,
    pub mirror: bool,
}

impl Endpoint {
    pub fn is_https(&self) -> bool {
        self.base.starts_with("https://")
    }
}

/// The registry host a reference's domain is served by (`docker.io` → `registry-1.docker.io`).
pub fn registry_host(domain: &str) -> &str {
    match domain {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB_REGISTRY,
        d => d,
    }
}

/// Normalises a login `serveraddress` (`https://index.docker.io/v1/`, `http://h:5000`, `h:5000`)
/// to a domain plus an optional forced scheme.
pub fn parse_server_address(s: &str) -> (String, Option<&'static str>) {
    let (scheme, rest) = if let Some(r) = s.strip_prefix("https://") {
        (Some("https"), r)
    } else if let Some(r) = s.strip_prefix("http://") {
        (Some("http"), r)
    } else {
        (None, s)
    };
    let host = rest.split('/').next().unwrap_or(rest).to_owned();
    let host = if host.is_empty() { DOCKER_HUB_DOMAIN.to_owned() } else { host };
    if registry_host(&host) == DOCKER_HUB_REGISTRY {
        return (DOCKER_HUB_DOMAIN.to_owned(), None);
    }
    (host, scheme)
}

/// `host` without port and brackets.
pub(crate) fn hostname(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl RegistryConfig {
    /// True when `host` (`host[:port]`) may be reached without verified TLS. Host names are not
    /// resolved for the CIDR check (Docker resolves them), except `localhost` (loopback); list
    /// other names explicitly.
    pub fn is_insecure(&self, host: &str) -> bool {
        let name = hostname(host);
        let ips: Vec<IpAddr> = if name == "localhost" {
            vec![IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)]
        } else {
            name.parse::<IpAddr>().into_iter().collect()
        };
        self.insecure_registries.iter().any(|entry| {
            let entry = entry.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
            entry == host || entry == name || (entry.contains('/') && ips.iter().any(|ip| in_cidr(*ip, entry)))
        })
    }

    /// The endpoints to try for `domain`, in order. Mirrors come first for Docker Hub pulls;
    /// an insecure registry gets HTTPS (unverified) then HTTP; `scheme` forces one.
    pub fn endpoints(&self, domain: &str, push: bool, scheme: Option<&str>) -> Vec<Endpoint> {
        let host = registry_host(domain).to_owned();
        let mut out = Vec::new();
        if host == DOCKER_HUB_REGISTRY && !push {
            for m in &self.mirrors {
                let base = m.trim_end_matches('/').to_owned();
                let base = if base.contains("://") { base } else { format!("https://{base}") };
                let mhost = base.split("://").nth(1).unwrap_or("").split('/').next().unwrap_or("").to_owned();
                out.push(Endpoint { base, host: mhost, mirror: true });
            }
        }
        let insecure = self.is_insecure(&host);
        if scheme != Some("http") {
            out.push(Endpoint { base: format!("https://{host}"), host: host.clone(), mirror: false });
        }
        if scheme == Some("http") || (scheme.is_none() && insecure) {
            out.push(Endpoint { base: format!("http://{host}"), host, mirror: false });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_and_mirrors() {
        let cfg = RegistryConfig { mirrors: vec!["mirror.example:5000".into()], ..Default::default() };
        let eps = cfg.endpoints("docker.io", false, None);
        assert_eq!(eps[0].base, "https://mirror.example:5000");
        assert!(eps[0].mirror);
        assert_eq!(eps[1].base, "https://registry-1.docker.io");
        assert_eq!(eps.len(), 2);
        assert_eq!(cfg.endpoints("docker.io", true, None).len(), 1);
    }

    #[test]
    fn insecure_rules() {
        let cfg = RegistryConfig {
            insecure_registries: vec!["127.0.0.0/8".into(), "::1/128".into(), "10.0.0.0/8".into(), "myreg:5000".into()],
            ..Default::default()
        };
        let strict = RegistryConfig { insecure_registries: Vec::new(), ..Default::default() };
        assert!(!strict.is_insecure("127.0.0.1:5000"));
        assert_eq!(strict.endpoints("127.0.0.1:5000", false, None).len(), 1);
        assert!(cfg.is_insecure("127.0.0.1:5000"));
        assert!(cfg.is_insecure("127.5.0.1"));
        assert!(cfg.is_insecure("[::1]:5000"));
        assert!(cfg.is_insecure("localhost:5000"));
        assert!(cfg.is_insecure("10.1.2.3:443"));
        assert!(cfg.is_insecure("myreg:5000"));
        assert!(!cfg.is_insecure("myreg:5001"));
        assert!(!cfg.is_insecure("11.0.0.1"));
        assert!(!cfg.is_insecure("registry-1.docker.io"));
        let eps = cfg.endpoints("127.0.0.1:5000", true, None);
        assert_eq!(
            eps.iter().map(|e| e.base.as_str()).collect::<Vec<_>>(),
            ["https://127.0.0.1:5000", "http://127.0.0.1:5000"]
        );
        let eps = cfg.endpoints("127.0.0.1:5000", true, Some("http"));
        assert_eq!(eps.len(), 1);
    }

    #[test]
    fn server_addresses() {
        assert_eq!(parse_server_address("https://index.docker.io/v1/"), ("docker.io".into(), None));
        assert_eq!(parse_server_address("http://127.0.0.1:5000"), ("127.0.0.1:5000".into(), Some("http")));
        assert_eq!(parse_server_address("127.0.0.1:5000"), ("127.0.0.1:5000".into(), None));
    }
}
