//! What a container's networking is while it runs — libnetwork's "sandbox": its endpoints, its
//! published ports, its names in the embedded DNS, its `/etc/hostname`, `/etc/hosts` and
//! `/etc/resolv.conf`.
//!
//! The container code calls [`NetworkService::attach`] when it starts a container (after the
//! namespace exists, before the runtime creates the process) and [`NetworkService::release`]
//! when the process is gone (before the namespace is removed). Events follow Docker's order:
//! `network connect` before `container start`; `network disconnect` after `container die`.
//!
//! Modes (`HostConfig.NetworkMode`): `default`/`bridge` → the default bridge; a network name or
//! ID → that network; `host` and `none` → an address-less endpoint on those networks (for
//! inspect and events); `container:<x>` → nothing of its own (the files are the other
//! container's). Extra `EndpointsConfig` entries connect more networks after the first. Ports
//! are published on the first network that gives the container its default route, as Docker's
//! gateway endpoint.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wharf_api::models::EndpointSettings;
use wharf_network::dns::Upstream;
use wharf_network::files::{self, DnsSettings};
use wharf_network::{EndpointRequest, EndpointState};
use wharf_types::{ContainerId, EngineError};

use super::model::{EndpointRecord, NetworkRecord};
use super::{NetworkService, Sandbox, classified, lock};
use crate::container::ContainerService;
use crate::container::model::ContainerRecord;

/// A container's network mode, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Host,
    None,
    Container(String),
    /// The default bridge, or a network by name or ID.
    Network(String),
}

impl Mode {
    pub fn of(r: &ContainerRecord) -> Mode {
        Self::parse(r.host_config.network_mode.as_deref().unwrap_or(""))
    }

    pub fn parse(m: &str) -> Mode {
        match m {
            "host" => Mode::Host,
            "none" => Mode::None,
            "" | "default" | "bridge" => Mode::Network("bridge".into()),
            m => match m.strip_prefix("container:") {
                Some(c) => Mode::Container(c.to_owned()),
                None => Mode::Network(m.to_owned()),
            },
        }
    }
}

/// The networks a container asks for, in attach order (its `NetworkMode` first), each with its
/// `EndpointsConfig` entry. Keys are names or IDs as the user gave them.
pub fn requested_networks(r: &ContainerRecord) -> Vec<(String, EndpointSettings)> {
    let eps = r.networking_config.as_ref().and_then(|n| n.endpoints_config.clone()).unwrap_or_default();
    let raw_mode = r.host_config.network_mode.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| "default".into());
    let primary = match Mode::of(r) {
        Mode::Host => "host".to_owned(),
        Mode::None => "none".to_owned(),
        Mode::Container(_) => return Vec::new(),
        Mode::Network(n) => n,
    };
    let aliases_of_primary = [raw_mode.as_str(), primary.as_str(), "default"];
    let primary_settings = aliases_of_primary.iter().find_map(|k| eps.get(*k)).cloned().unwrap_or_default();
    let mut out = vec![(primary.clone(), primary_settings)];
    let mut others: Vec<(&String, &EndpointSettings)> =
        eps.iter().filter(|(k, _)| !aliases_of_primary.contains(&k.as_str())).collect();
    others.sort_by(|a, b| a.0.cmp(b.0));
    out.extend(others.into_iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// Docker's `DNSNames`: container name, aliases, short ID, hostname — deduplicated.
pub fn dns_names(r: &ContainerRecord, aliases: &[String]) -> Vec<String> {
    let mut names = vec![r.name.clone()];
    names.extend(aliases.iter().cloned());
    names.push(r.id.short().to_owned());
    if let Some(h) = r.config.hostname.clone().filter(|h| !h.is_empty()) {
        names.push(h);
    }
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Docker's create-time checks of one endpoint's settings against its network.
pub fn check_settings(net: &NetworkRecord, s: &EndpointSettings) -> Result<(), EngineError> {
    let ipam = s.ipam_config.clone().unwrap_or_default();
    let wants_ip = ipam.ipv4_address.as_deref().is_some_and(|a| !a.is_empty())
        || ipam.ipv6_address.as_deref().is_some_and(|a| !a.is_empty());
    if !net.user_defined() {
        if wants_ip {
            return Err(EngineError::invalid("user specified IP address is supported on user defined networks only"));
        }
        if s.aliases.as_ref().is_some_and(|a| !a.is_empty()) {
            return Err(EngineError::invalid(
                "network-scoped alias is supported only for containers in user defined networks",
            ));
        }
    }
    if wants_ip && !net.state.subnets.is_empty() && net.ipam_config.iter().all(|c| c.subnet.is_none()) {
        return Err(EngineError::invalid(
            "user specified IP address is supported only when connecting to networks with user configured subnets",
        ));
    }
    Ok(())
}

/// Docker's create-time checks and defaults for networking: conflicting options with
/// `container:` mode, port specs, endpoint settings on the default bridge, and
/// `Config.Hostname` (the short ID, or the host's name with `--network host`). Returns warnings.
pub fn prepare_create(
    config: &mut wharf_api::models::ContainerConfig,
    hc: &wharf_api::models::HostConfig,
    nc: Option<&wharf_api::models::NetworkingConfig>,
    id: &ContainerId,
) -> Result<Vec<String>, EngineError> {
    let mut warnings = Vec::new();
    let mode = Mode::parse(hc.network_mode.as_deref().unwrap_or(""));
    let publishes = hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty()) || hc.publish_all_ports == Some(true);
    let eps = nc.and_then(|n| n.endpoints_config.clone()).unwrap_or_default();
    let has_mac = eps.values().any(|e| e.mac_address.as_deref().is_some_and(|m| !m.is_empty()));
    super::ports::validate(hc.port_bindings.as_ref())?;
    for e in eps.values() {
        if let Some(m) = e.mac_address.as_deref().filter(|m| !m.is_empty()) {
            parse_mac(m)?;
        }
    }
    match &mode {
        Mode::Container(_) => {
            let conflict =
                |what: &str| EngineError::invalid(format!("conflicting options: {what} and the network mode"));
            if publishes {
                return Err(EngineError::invalid(
                    "conflicting options: port publishing and the container type network mode",
                ));
            }
            if config.hostname.as_deref().is_some_and(|h| !h.is_empty()) {
                return Err(conflict("hostname"));
            }
            if hc.dns.as_ref().is_some_and(|d| !d.is_empty()) {
                return Err(conflict("dns"));
            }
            if hc.extra_hosts.as_ref().is_some_and(|d| !d.is_empty()) {
                return Err(conflict("custom host-to-IP mapping"));
            }
            if has_mac {
                return Err(conflict("mac-address"));
            }
        }
        Mode::Host => {
            if publishes {
                warnings.push("Published ports are discarded when using host network mode".to_owned());
            }
            if config.hostname.as_deref().is_none_or(str::is_empty) {
                config.hostname = Some(rustix::system::uname().nodename().to_string_lossy().into_owned());
            }
        }
        Mode::Network(name) => {
            let default = ["default", "bridge", name.as_str()];
            for (k, e) in &eps {
                if name == "bridge" && default.contains(&k.as_str()) || k == "bridge" {
                    let ipam = e.ipam_config.clone().unwrap_or_default();
                    if ipam.ipv4_address.as_deref().is_some_and(|a| !a.is_empty())
                        || ipam.ipv6_address.as_deref().is_some_and(|a| !a.is_empty())
                    {
                        return Err(EngineError::invalid(
                            "user specified IP address is supported on user defined networks only",
                        ));
                    }
                    if e.aliases.as_ref().is_some_and(|a| !a.is_empty()) {
                        return Err(EngineError::invalid(
                            "network-scoped alias is supported only for containers in user defined networks",
                        ));
                    }
                }
            }
        }
        Mode::None => {}
    }
    if !matches!(mode, Mode::Host | Mode::Container(_)) && config.hostname.as_deref().is_none_or(str::is_empty) {
        config.hostname = Some(id.short().to_owned());
    }
    Ok(warnings)
}

fn parse_mac(s: &str) -> Result<[u8; 6], EngineError> {
    let bad = || EngineError::invalid(format!("invalid MAC address: {s}"));
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        mac[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(mac)
}

fn endpoint_request(
    r: &ContainerRecord,
    net: &NetworkRecord,
    s: &EndpointSettings,
    netns: Option<&Path>,
) -> Result<EndpointRequest, EngineError> {
    let ipam = s.ipam_config.clone().unwrap_or_default();
    let parse = |v: Option<String>, fam: &str| -> Result<Option<IpAddr>, EngineError> {
        match v.filter(|a| !a.is_empty()) {
            None => Ok(None),
            Some(a) => {
                a.parse::<IpAddr>().map(Some).map_err(|_| EngineError::invalid(format!("invalid {fam} address: {a}")))
            }
        }
    };
    let ipv4 = match parse(ipam.ipv4_address, "IPv4")? {
        Some(IpAddr::V4(a)) => Some(a),
        Some(IpAddr::V6(a)) => return Err(EngineError::invalid(format!("invalid IPv4 address: {a}"))),
        None => None,
    };
    let ipv6 = match parse(ipam.ipv6_address, "IPv6")? {
        Some(IpAddr::V6(a)) => Some(a),
        Some(IpAddr::V4(a)) => return Err(EngineError::invalid(format!("invalid IPv6 address: {a}"))),
        None => None,
    };
    let mac = s.mac_address.as_deref().filter(|m| !m.is_empty()).map(parse_mac).transpose()?;
    let aliases = s.aliases.clone().unwrap_or_default();
    Ok(EndpointRequest {
        container: Some(r.id.clone()),
        container_name: r.name.clone(),
        netns: netns.map(Path::to_path_buf).unwrap_or_default(),
        ifname: None,
        ipv4,
        ipv6,
        mac,
        dns_names: if net.user_defined() { dns_names(r, &aliases) } else { Vec::new() },
        ports: Vec::new(),
        default_route: false,
    })
}

impl NetworkService {
    pub(crate) fn container_lock(&self, id: &ContainerId) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.locks).entry(id.clone()).or_default().clone()
    }

    /// Drops what the service keeps per container once it is gone for good (a removed
    /// container, a finished one-shot process): its lock, unless someone holds it now.
    pub fn forget_container(&self, id: &ContainerId) {
        let mut locks = lock(&self.locks);
        if locks.get(id).is_some_and(|l| Arc::strong_count(l) == 1) {
            locks.remove(id);
        }
    }

    /// The running container's sandbox, if it has one.
    pub fn sandbox(&self, id: &ContainerId) -> Option<Sandbox> {
        lock(&self.sandboxes).get(id).cloned()
    }

    /// Connects one endpoint and records it (row + event). The caller holds the container lock.
    pub(crate) async fn connect_endpoint(
        &self,
        r: &ContainerRecord,
        net: &NetworkRecord,
        s: &EndpointSettings,
        netns: Option<&Path>,
        gateway: bool,
        ports: Vec<wharf_network::PortSpec>,
    ) -> Result<EndpointState, EngineError> {
        check_settings(net, s)?;
        let mut req = endpoint_request(r, net, s, netns)?;
        req.default_route = gateway;
        req.ports = ports;
        let state = self.ctl.connect(net.id(), req).await.map_err(classified)?;
        let rec = EndpointRecord { state: state.clone(), aliases: s.aliases.clone().unwrap_or_default() };
        if let Err(e) = self.store.put_endpoint(&rec) {
            let _ = self.ctl.disconnect(net.id(), &r.id).await;
            return Err(e);
        }
        self.event(net, "connect", Some(&r.id));
        Ok(state)
    }

    /// Disconnects one endpoint and forgets it (row + event). The caller holds the lock.
    pub(crate) async fn disconnect_endpoint(&self, ep: &EndpointState) {
        if let Err(e) = self.ctl.disconnect(&ep.network, &ep.container).await {
            tracing::warn!(container = %ep.container, network = %ep.network, error = %e, "disconnect failed");
        }
        if let Err(e) = self.store.delete_endpoint(&ep.network, &ep.container) {
            tracing::warn!(container = %ep.container, error = %e.message, "forgetting an endpoint failed");
        }
        if let Some(n) = self.record(&ep.network) {
            self.event(&n, "disconnect", Some(&ep.container));
        }
    }

    /// Sets up a starting container's networking (see the module documentation). `netns` is the
    /// container's own namespace (absent for `host` and `container:` modes); `etc_dir` receives
    /// `hostname`, `hosts` and `resolv.conf`. On failure nothing is left connected.
    pub async fn attach(&self, r: &ContainerRecord, netns: Option<&Path>, etc_dir: &Path) -> Result<(), EngineError> {
        self.ready().await?;
        let guard = self.container_lock(&r.id);
        let _g = guard.lock().await;
        self.release_locked(&r.id).await;
        let mode = Mode::of(r);
        if let Mode::Container(peer) = &mode {
            self.copy_peer_files(peer, etc_dir).await?;
            lock(&self.sandboxes).insert(r.id.clone(), Sandbox::new(None, etc_dir.to_path_buf(), false));
            return Ok(());
        }
        let mut done: Vec<EndpointState> = Vec::new();
        let result = self.attach_networks(r, netns, &mut done).await;
        let result = match result {
            Ok(()) => self.write_files_and_dns(r, netns, etc_dir, &done).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.ctl.stop_dns(&r.id).await;
            for ep in done.iter().rev() {
                self.disconnect_endpoint(ep).await;
            }
            return Err(e);
        }
        Ok(())
    }

    async fn attach_networks(
        &self,
        r: &ContainerRecord,
        netns: Option<&Path>,
        done: &mut Vec<EndpointState>,
    ) -> Result<(), EngineError> {
        let mut specs = Some(super::ports::requested(r)?);
        if matches!(Mode::of(r), Mode::Host | Mode::None) {
            specs = None;
        }
        let mut have_gateway = false;
        for (key, settings) in requested_networks(r) {
            let net = self.find(&key).map_err(|e| match e.kind {
                wharf_types::ErrorKind::NotFound => {
                    EngineError::not_found(format!("failed to set up container networking: network {key} not found"))
                }
                _ => e,
            })?;
            if done.iter().any(|d| &d.network == net.id()) {
                continue;
            }
            let kind = net.state.driver.as_str();
            let gateway = !have_gateway && !net.state.internal && matches!(kind, "bridge" | "macvlan");
            let ports = if gateway && kind == "bridge" { specs.take().unwrap_or_default() } else { Vec::new() };
            have_gateway |= gateway;
            let ns = if matches!(kind, "host") { None } else { netns };
            let ep = self.connect_endpoint(r, &net, &settings, ns, gateway, ports).await?;
            done.push(ep);
        }
        Ok(())
    }

    /// Writes the container's files and starts its DNS server; registers the sandbox.
    async fn write_files_and_dns(
        &self,
        r: &ContainerRecord,
        netns: Option<&Path>,
        etc_dir: &Path,
        eps: &[EndpointState],
    ) -> Result<(), EngineError> {
        let nets: Vec<NetworkRecord> = eps.iter().filter_map(|e| self.record(&e.network)).collect();
        let internal_dns = nets.iter().any(|n| n.user_defined() && n.state.driver != "host");
        let all_internal = !nets.is_empty() && nets.iter().all(|n| n.state.internal);
        let ext = self.write_files(r, etc_dir, eps, internal_dns).await?;
        let dns = internal_dns && netns.is_some();
        if dns && let Some(ns) = netns {
            let upstreams: Vec<Upstream> =
                if all_internal { Vec::new() } else { ext.into_iter().map(Upstream::from).collect() };
            self.ctl.start_dns(&r.id, ns, upstreams).await.map_err(classified)?;
        }
        lock(&self.sandboxes)
            .insert(r.id.clone(), Sandbox::new(netns.map(Path::to_path_buf), etc_dir.to_path_buf(), dns));
        Ok(())
    }

    /// `hostname`, `hosts`, `resolv.conf` by Docker's rules; returns the servers the embedded
    /// DNS forwards to.
    async fn write_files(
        &self,
        r: &ContainerRecord,
        dir: &Path,
        eps: &[EndpointState],
        internal_dns: bool,
    ) -> Result<Vec<files::ExtServer>, EngineError> {
        let host_mode = Mode::of(r) == Mode::Host;
        let extra =
            files::parse_extra_hosts(&r.host_config.extra_hosts.clone().unwrap_or_default(), self.host_gateway())
                .map_err(classified)?;
        let host_rc = tokio::fs::read_to_string("/etc/resolv.conf").await.unwrap_or_default();
        let (hostname, hosts, resolv, ext) = if host_mode {
            let hostname = rustix::system::uname().nodename().to_string_lossy().into_owned();
            let mut hosts = tokio::fs::read_to_string("/etc/hosts").await.unwrap_or_default();
            for e in &extra {
                hosts.push_str(&format!("{}\t{}\n", e.ip, e.names));
            }
            (hostname, hosts, host_rc, Vec::new())
        } else {
            let hostname = r.config.hostname.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| r.id.short().into());
            let addresses: Vec<IpAddr> =
                eps.iter().flat_map(|e| [e.ipv4, e.ipv6]).flatten().map(|a| a.addr()).collect();
            let ipv6 = addresses.iter().any(IpAddr::is_ipv6);
            let hosts = files::hosts(&files::HostsSpec {
                hostname: hostname.clone(),
                domainname: r.config.domainname.clone().unwrap_or_default(),
                addresses,
                extra,
                ipv6,
            });
            let g = files::resolv_conf(&host_rc, &self.dns_settings(r)?, internal_dns, ipv6);
            (hostname, hosts, g.content, g.ext_servers)
        };
        tokio::fs::create_dir_all(dir).await.map_err(super::super::container::internal)?;
        for (name, body) in [("hostname", format!("{hostname}\n")), ("hosts", hosts), ("resolv.conf", resolv)] {
            // In place, not renamed: a running container has these files bind-mounted.
            tokio::fs::write(dir.join(name), body).await.map_err(super::super::container::internal)?;
        }
        Ok(ext)
    }

    /// `--dns`, `--dns-search`, `--dns-option`, else the daemon's `dns*` settings.
    fn dns_settings(&self, r: &ContainerRecord) -> Result<DnsSettings, EngineError> {
        let servers: Vec<IpAddr> = r
            .host_config
            .dns
            .iter()
            .flatten()
            .map(|s| s.parse().map_err(|_| EngineError::invalid(format!("{s} is not an ip address"))))
            .collect::<Result<_, _>>()?;
        let or = |v: Vec<String>, d: &Vec<String>| if v.is_empty() { d.clone() } else { v };
        Ok(DnsSettings {
            servers: if servers.is_empty() { self.settings.dns.clone() } else { servers },
            search: or(r.host_config.dns_search.clone().unwrap_or_default(), &self.settings.dns_search),
            options: or(r.host_config.dns_options.clone().unwrap_or_default(), &self.settings.dns_options),
        })
    }

    /// `container:<x>` mode: the files are the other container's, as Docker shares them.
    async fn copy_peer_files(&self, peer: &str, dir: &Path) -> Result<(), EngineError> {
        let svc = self.containers().ok_or_else(|| EngineError::internal("daemon shutting down"))?;
        let other = svc.lookup(peer)?;
        let from = self.sandbox(&other.id).map(|s| s.etc_dir).unwrap_or_else(|| svc.ctx.paths.container_dir(&other.id));
        tokio::fs::create_dir_all(dir).await.map_err(super::super::container::internal)?;
        for f in ["hostname", "hosts", "resolv.conf"] {
            let body = tokio::fs::read(from.join(f)).await.unwrap_or_default();
            tokio::fs::write(dir.join(f), body).await.map_err(super::super::container::internal)?;
        }
        Ok(())
    }

    /// Undoes [`NetworkService::attach`] for a container whose process is gone: DNS server,
    /// endpoints (addresses, links, ports, names), and the sandbox. Safe to call repeatedly and
    /// for containers that never had networking.
    pub async fn release(&self, id: &ContainerId) {
        let guard = self.container_lock(id);
        let _g = guard.lock().await;
        self.release_locked(id).await;
    }

    pub(crate) async fn release_locked(&self, id: &ContainerId) {
        let had = lock(&self.sandboxes).remove(id);
        if had.as_ref().is_some_and(|s| s.dns) {
            self.ctl.stop_dns(id).await;
        }
        for ep in self.endpoints_of(id) {
            self.disconnect_endpoint(&ep).await;
        }
    }

    /// Rewrites a running container's `/etc/hosts` after connect or disconnect, and turns the
    /// embedded DNS on when it joined its first user-defined network.
    pub(crate) async fn refresh_running(&self, r: &ContainerRecord) -> Result<(), EngineError> {
        let Some(sb) = self.sandbox(&r.id) else {
            return Ok(());
        };
        let eps = self.endpoints_of(&r.id);
        let nets: Vec<NetworkRecord> = eps.iter().filter_map(|e| self.record(&e.network)).collect();
        let internal_dns = sb.dns || nets.iter().any(|n| n.user_defined() && n.state.driver != "host");
        let ext = self.write_files(r, &sb.etc_dir, &eps, internal_dns).await?;
        if internal_dns
            && !sb.dns
            && let Some(ns) = &sb.netns
        {
            self.ctl.start_dns(&r.id, ns, ext.into_iter().map(Upstream::from).collect()).await.map_err(classified)?;
            if let Some(s) = lock(&self.sandboxes).get_mut(&r.id) {
                s.dns = true;
            }
        }
        Ok(())
    }
}

/// Live restore: a container that kept running gets its sandbox back and, on user-defined
/// networks, its DNS server (the endpoints themselves were restored by the reconcile).
pub(crate) async fn restore(net: &NetworkService, svc: &Arc<ContainerService>, r: &ContainerRecord) {
    let layout = crate::container::run::layout(&svc.ctx, r);
    let etc_dir = svc.ctx.paths.container_dir(&r.id);
    let netns: Option<PathBuf> = crate::container::run::own_netns(r).then_some(layout.netns);
    let eps = net.endpoints_of(&r.id);
    let internal_dns =
        eps.iter().filter_map(|e| net.record(&e.network)).any(|n| n.user_defined() && n.state.driver != "host");
    let mut dns = false;
    if internal_dns && let Some(ns) = &netns {
        let host_rc = tokio::fs::read_to_string("/etc/resolv.conf").await.unwrap_or_default();
        let ipv6 = eps.iter().any(|e| e.ipv6.is_some());
        match net.dns_settings(r) {
            Ok(settings) => {
                let g = files::resolv_conf(&host_rc, &settings, true, ipv6);
                let upstreams = g.ext_servers.into_iter().map(Upstream::from).collect();
                match net.ctl.start_dns(&r.id, ns, upstreams).await {
                    Ok(()) => dns = true,
                    Err(e) => tracing::warn!(container = %r.id, error = %e, "restarting the DNS server failed"),
                }
            }
            Err(e) => tracing::warn!(container = %r.id, error = %e.message, "bad DNS settings"),
        }
    }
    lock(&net.sandboxes).insert(r.id.clone(), Sandbox::new(netns, etc_dir, dns));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(mode: &str, eps: serde_json::Value) -> ContainerRecord {
        serde_json::from_value(serde_json::json!({
            "id": "b".repeat(64), "name": "web", "created": "2026-01-01T00:00:00Z", "image": "busybox",
            "image_id": "sha256:x", "config": {"Hostname": "bbbbbbbbbbbb"}, "host_config": {"NetworkMode": mode},
            "networking_config": {"EndpointsConfig": eps}, "path": "sh",
            "args": [], "state": {"status": "created", "pid": 0, "exit_code": 0, "error": "",
            "started_at": "0001-01-01T00:00:00Z", "finished_at": "0001-01-01T00:00:00Z", "oom_killed": false},
            "restart_count": 0, "manually_stopped": false, "has_been_started": false, "runtime": "wharf",
            "log_path": "", "rw_layer": "k"
        }))
        .unwrap()
    }

    #[test]
    fn modes_and_requested_networks() {
        let r = rec("default", serde_json::json!({"default": {"Aliases": ["x"]}}));
        let n = requested_networks(&r);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].0, "bridge");
        assert_eq!(n[0].1.aliases.as_deref(), Some(&["x".to_owned()][..]));
        let r = rec("front", serde_json::json!({"front": {"Aliases": ["web"]}, "back": {}, "a-net": {}}));
        let names: Vec<String> = requested_networks(&r).into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["front", "a-net", "back"]);
        assert!(requested_networks(&rec("container:other", serde_json::json!({}))).is_empty());
        assert_eq!(requested_networks(&rec("host", serde_json::json!({})))[0].0, "host");
        assert_eq!(Mode::parse("container:abc"), Mode::Container("abc".into()));
        assert_eq!(Mode::parse(""), Mode::Network("bridge".into()));
    }

    #[test]
    fn dns_names_like_docker() {
        let r = rec("front", serde_json::json!({}));
        assert_eq!(dns_names(&r, &["web".into(), "w2".into()]), ["web", "w2", "bbbbbbbbbbbb"]);
        assert!(parse_mac("02:42:ac:11:00:02").is_ok());
        assert!(parse_mac("02:42:ac:11:00").is_err());
    }
}
