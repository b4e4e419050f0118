//! The daemon's entry point: one [`Controller`] per daemon owns the drivers, IPAM, firewall,
//! port allocator, userland proxies and DNS servers, and keeps them consistent.
//!
//! Lifecycle as the daemon drives it:
//! 1. startup: [`Controller::new`] with the saved IPAM records, then [`Controller::reconcile`]
//!    with the saved [`NetworkState`]s and the [`EndpointState`]s of containers still running;
//!    it rebuilds what is missing (bridges, rules, proxies, DNS names) and removes what is ours but
//!    no longer wanted (bridges, veths, netns mounts, rules, addresses).
//! 2. `network create` → [`Controller::create_network`] → store the returned [`NetworkState`].
//! 3. container start → [`crate::netns::create`] at `<exec-root>/netns/<id>`, then
//!    [`Controller::connect`] per network → store each [`EndpointState`] (addresses, MAC, ports
//!    for `NetworkSettings`); then [`Controller::start_dns`] for user-defined networks.
//! 4. container stop → [`Controller::disconnect`] per network, [`Controller::stop_dns`],
//!    [`crate::netns::delete`].
//! 5. `network rm` → [`Controller::delete_network`]. Uninstall/test cleanup → [`Controller::teardown`].
//!
//! What is persisted and by whom: IPAM pool records through the daemon's [`IpamStore`] (written
//! before each call returns); [`NetworkState`] and [`EndpointState`] are returned to the daemon,
//! which stores them with the network and the container. Nothing else needs saving: rules,
//! proxies and DNS registrations are rebuilt from those at `reconcile`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use wharf_types::{Classify, ContainerId, ErrorKind, NetworkId};

use crate::dns::{DnsError, DnsMode, DnsRegistry, DnsServer, Upstream};
use crate::driver::{
    BridgeDriver, DriverError, HostDriver, JoinInfo, JoinSpec, MacvlanDriver, NetworkDriver, NetworkState, NullDriver,
    SubnetState, opts,
};
use crate::firewall::{Backend, BridgeRules, Desired, Firewall, FirewallError};
use crate::ipam::{DefaultPool, Ipam, IpamError, IpamStore, PoolRecord, PoolRequest, docker_default_pools};
use crate::netlink::{Netlink, NetlinkError};
use crate::ports::{PortAllocator, PortError, PortMapping, PortSpec, Proto};
use crate::proxy::Proxy;

/// Failures of controller operations. Kinds follow Docker's errdefs classes.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network {0} not found")]
    NotFound(String),
    #[error("could not find plugin {0} in v1 plugin registry: plugin not found")]
    UnknownDriver(String),
    #[error("network {name} has active endpoints ({})", .endpoints.join(", "))]
    ActiveEndpoints { name: String, endpoints: Vec<String> },
    #[error("endpoint with name {container} already exists in network {network}")]
    AlreadyConnected { container: String, network: String },
    #[error("container {container} is not connected to network {network}")]
    NotConnected { container: String, network: String },
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("driver failed programming external connectivity on endpoint {endpoint}: {source}")]
    Ports {
        endpoint: String,
        #[source]
        source: PortError,
    },
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error("list host links and routes")]
    Host(#[source] NetlinkError),
    #[error("network task failed: {0}")]
    Task(String),
}

impl Classify for NetworkError {
    fn kind(&self) -> ErrorKind {
        match self {
            NetworkError::NotFound(_) | NetworkError::UnknownDriver(_) => ErrorKind::NotFound,
            NetworkError::ActiveEndpoints { .. }
            | NetworkError::AlreadyConnected { .. }
            | NetworkError::NotConnected { .. } => ErrorKind::Forbidden,
            NetworkError::Ipam(e) => e.kind(),
            NetworkError::Ports { source, .. } => source.kind(),
            NetworkError::Driver(e) => e.kind(),
            NetworkError::Firewall(e) => e.kind(),
            NetworkError::Dns(e) => e.kind(),
            NetworkError::Host(_) | NetworkError::Task(_) => ErrorKind::Internal,
        }
    }
}

/// Per-daemon settings. Every name prefix is configurable so several daemons (tests) can share
/// one host without touching each other's objects.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// nftables table (or iptables chain prefix) of this daemon.
    pub firewall_table: String,
    /// `None` = `nft` if installed, else iptables.
    pub firewall_backend: Option<Backend>,
    /// Bridges named after network IDs get this prefix (`br-`).
    pub bridge_prefix: String,
    /// Host ends of veths (`veth`).
    pub veth_prefix: String,
    /// Dummy parents of macvlan networks without `parent` (`dm-`).
    pub dummy_prefix: String,
    /// `default-address-pools`.
    pub default_pools: Vec<DefaultPool>,
    /// Random host ports come from here (default: the kernel's ephemeral range).
    pub port_range: Option<(u16, u16)>,
    /// How containers reach the embedded DNS server. [`DnsMode::Dnat`] needs `nft`; with the
    /// iptables backend the controller uses [`DnsMode::Direct`].
    pub dns_mode: DnsMode,
    /// Turn on IP forwarding when bridge networks exist (Docker's `ip-forward`).
    pub ip_forward: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            firewall_table: "wharf".into(),
            firewall_backend: None,
            bridge_prefix: "br-".into(),
            veth_prefix: "veth".into(),
            dummy_prefix: "dm-".into(),
            default_pools: docker_default_pools(),
            port_range: None,
            dns_mode: DnsMode::default(),
            ip_forward: true,
        }
    }
}

/// One `IPAM.Config` entry of `network create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    pub subnet: Option<String>,
    pub ip_range: Option<String>,
    pub gateway: Option<String>,
}

/// `POST /networks/create`, after the daemon checked the name and chose the ID.
#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    pub id: Option<NetworkId>,
    pub name: String,
    /// `bridge` (default), `macvlan`, `host`, `null`/`none`.
    pub driver: String,
    pub ipam: Vec<IpamConfig>,
    pub internal: bool,
    pub enable_ipv6: bool,
    pub options: BTreeMap<String, String>,
}

/// Connecting a container to a network.
#[derive(Debug, Clone, Default)]
pub struct EndpointRequest {
    pub container: Option<ContainerId>,
    /// For messages (`endpoint with name web already exists…`).
    pub container_name: String,
    pub netns: PathBuf,
    /// Interface name inside; default the next free `ethN`.
    pub ifname: Option<String>,
    /// `--ip` / `--ip6`.
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// `--mac-address`; default derived from the IPv4 address.
    pub mac: Option<[u8; 6]>,
    /// Names the embedded DNS resolves to this endpoint (name, aliases, short ID). Empty on the
    /// default bridge, where Docker has no DNS.
    pub dns_names: Vec<String>,
    /// Ports to publish (bridge networks only; ignored on internal ones).
    pub ports: Vec<PortSpec>,
    /// Route the container's default traffic through this network.
    pub default_route: bool,
}

/// A connected endpoint: the daemon stores it (it is `NetworkSettings.Networks[n]` and `Ports`)
/// and hands it back to `reconcile` and `disconnect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointState {
    /// Docker's `EndpointID` (64 hex characters).
    pub endpoint_id: String,
    pub network: NetworkId,
    pub container: ContainerId,
    pub container_name: String,
    pub netns: PathBuf,
    pub ifname: String,
    pub join: JoinInfo,
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
    pub gateway4: Option<IpAddr>,
    pub gateway6: Option<IpAddr>,
    pub ports: Vec<PortMapping>,
    pub dns_names: Vec<String>,
}

/// What reconcile removed (for the daemon's log).
#[derive(Debug, Default, Clone)]
pub struct ReconcileReport {
    pub removed: Vec<String>,
    pub restored: Vec<String>,
}

type EpKey = (NetworkId, ContainerId);

/// See the module documentation.
pub struct Controller {
    cfg: ControllerConfig,
    bridge: Arc<BridgeDriver>,
    macvlan: Arc<MacvlanDriver>,
    networks: RwLock<HashMap<NetworkId, NetworkState>>,
    endpoints: RwLock<HashMap<EpKey, EndpointState>>,
    ipam: Mutex<Ipam>,
    firewall: Arc<Mutex<Firewall>>,
    ports: Mutex<PortAllocator>,
    proxies: Mutex<HashMap<EpKey, Vec<Proxy>>>,
    dns: Arc<DnsRegistry>,
    dns_servers: Mutex<HashMap<ContainerId, DnsServer>>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, NetworkError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| NetworkError::Task(e.to_string()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Controller {
    /// Builds the controller. `pools` are the IPAM records the daemon saved through `store`.
    pub fn new(cfg: ControllerConfig, store: Arc<dyn IpamStore>, pools: Vec<PoolRecord>) -> Result<Self, NetworkError> {
        let backend = match cfg.firewall_backend {
            Some(b) => b,
            None => Backend::detect()?,
        };
        let mut firewall = Firewall::new(&cfg.firewall_table, backend)?;
        firewall.set_forwarding(cfg.ip_forward);
        let ports = match cfg.port_range {
            Some(r) => PortAllocator::new(r),
            None => PortAllocator::default(),
        };
        Ok(Self {
            bridge: Arc::new(BridgeDriver {
                bridge_prefix: cfg.bridge_prefix.clone(),
                veth_prefix: cfg.veth_prefix.clone(),
            }),
            macvlan: Arc::new(MacvlanDriver { dummy_prefix: cfg.dummy_prefix.clone() }),
            ipam: Mutex::new(Ipam::new(store, cfg.default_pools.clone(), pools)),
            firewall: Arc::new(Mutex::new(firewall)),
            ports: Mutex::new(ports),
            networks: RwLock::default(),
            endpoints: RwLock::default(),
            proxies: Mutex::default(),
            dns: DnsRegistry::new(),
            dns_servers: Mutex::default(),
            cfg,
        })
    }

    /// The DNS registry (the daemon may inspect it; servers read it).
    pub fn dns_registry(&self) -> Arc<DnsRegistry> {
        self.dns.clone()
    }

    fn driver(&self, name: &str) -> Result<Arc<dyn NetworkDriver>, NetworkError> {
        Ok(match name {
            "" | "bridge" => self.bridge.clone(),
            "macvlan" => self.macvlan.clone(),
            "host" => Arc::new(HostDriver),
            "null" | "none" => Arc::new(NullDriver),
            other => return Err(NetworkError::UnknownDriver(other.to_owned())),
        })
    }

    fn network(&self, id: &NetworkId) -> Result<NetworkState, NetworkError> {
        self.networks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| NetworkError::NotFound(id.to_string()))
    }

    /// Every network the controller knows.
    pub fn networks(&self) -> Vec<NetworkState> {
        self.networks.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Every endpoint the controller knows.
    pub fn endpoints(&self) -> Vec<EndpointState> {
        self.endpoints.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    fn bridge_rules(net: &NetworkState) -> Option<BridgeRules> {
        (net.driver == "bridge").then(|| BridgeRules {
            bridge: net.link.clone().unwrap_or_default(),
            subnets: net.subnets.iter().map(|s| s.subnet).collect(),
            internal: net.internal,
            masquerade: net.opt_bool(opts::ENABLE_IP_MASQUERADE, true),
            icc: net.opt_bool(opts::ENABLE_ICC, true),
        })
    }

    /// Creates a network: subnets from IPAM (Docker's defaults skip host routes and other
    /// networks), the driver's objects, and the firewall rules.
    pub async fn create_network(&self, req: NetworkCreate) -> Result<NetworkState, NetworkError> {
        let driver_name = match req.driver.as_str() {
            "" => "bridge",
            "none" => "null",
            d => d,
        };
        let driver = self.driver(driver_name)?;
        let id = req.id.clone().unwrap_or_else(NetworkId::random);
        let mut net = NetworkState {
            id: id.clone(),
            name: req.name.clone(),
            driver: driver_name.to_owned(),
            internal: req.internal,
            enable_ipv6: req.enable_ipv6,
            options: req.options.clone(),
            subnets: Vec::new(),
            link: None,
            mtu: None,
        };
        if matches!(driver_name, "bridge" | "macvlan") {
            let routes = blocking(|| Netlink::open().and_then(|mut nl| nl.route_destinations()))
                .await?
                .map_err(NetworkError::Host)?;
            let pools = {
                let mut ipam = lock(&self.ipam);
                let mut reqs: Vec<PoolRequest> = req
                    .ipam
                    .iter()
                    .map(|c| PoolRequest {
                        subnet: c.subnet.clone(),
                        ip_range: c.ip_range.clone(),
                        gateway: c.gateway.clone(),
                        v6: c.subnet.as_deref().is_some_and(|s| s.contains(':')),
                    })
                    .filter(|r| req.enable_ipv6 || !r.v6)
                    .collect();
                if !reqs.iter().any(|r| !r.v6) {
                    reqs.insert(0, PoolRequest::default());
                }
                if req.enable_ipv6 && !reqs.iter().any(|r| r.v6) {
                    reqs.push(PoolRequest { v6: true, ..Default::default() });
                }
                let mut got = Vec::new();
                for r in &reqs {
                    match ipam.request_pool(&id, r, &routes) {
                        Ok(p) => got.push(p),
                        Err(e) => {
                            let _ = ipam.release_pools(&id);
                            return Err(e.into());
                        }
                    }
                }
                got
            };
            net.subnets = pools
                .iter()
                .map(|p| SubnetState { subnet: p.subnet, gateway: p.gateway, ip_range: p.ip_range })
                .collect();
        }
        let created = {
            let (d, n) = (driver.clone(), net.clone());
            blocking(move || d.create(&n)).await?
        };
        match created {
            Ok(link) => net.link = link,
            Err(e) => {
                let _ = lock(&self.ipam).release_pools(&id);
                return Err(e.into());
            }
        }
        if let Some(rules) = Self::bridge_rules(&net) {
            let fw = self.firewall.clone();
            if let Err(e) = blocking(move || lock(&fw).add_network(rules)).await? {
                let (d, n) = (driver.clone(), net.clone());
                let _ = blocking(move || d.delete(&n)).await;
                let _ = lock(&self.ipam).release_pools(&id);
                return Err(e.into());
            }
        }
        self.networks.write().unwrap_or_else(|p| p.into_inner()).insert(id, net.clone());
        Ok(net)
    }

    /// Deletes a network. Fails with Docker's `has active endpoints` while containers are attached.
    pub async fn delete_network(&self, id: &NetworkId) -> Result<(), NetworkError> {
        let net = self.network(id)?;
        let attached: Vec<String> = self
            .endpoints
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|e| &e.network == id)
            .map(|e| e.container_name.clone())
            .collect();
        if !attached.is_empty() {
            let mut attached = attached;
            attached.sort();
            return Err(NetworkError::ActiveEndpoints { name: net.name.clone(), endpoints: attached });
        }
        if let Some(rules) = Self::bridge_rules(&net) {
            let fw = self.firewall.clone();
            blocking(move || lock(&fw).remove_network(&rules.bridge)).await??;
        }
        let driver = self.driver(&net.driver)?;
        let n = net.clone();
        blocking(move || driver.delete(&n)).await??;
        lock(&self.ipam).release_pools(id)?;
        self.networks.write().unwrap_or_else(|p| p.into_inner()).remove(id);
        Ok(())
    }

    /// Connects a container's namespace to a network: addresses, the driver's link, published
    /// ports (firewall + userland proxy) and DNS names. Undone completely on failure.
    pub async fn connect(&self, network: &NetworkId, req: EndpointRequest) -> Result<EndpointState, NetworkError> {
        let net = self.network(network)?;
        let container = req.container.clone().unwrap_or_else(ContainerId::random);
        let key = (network.clone(), container.clone());
        if self.endpoints.read().unwrap_or_else(|p| p.into_inner()).contains_key(&key) {
            return Err(NetworkError::AlreadyConnected {
                container: req.container_name.clone(),
                network: net.name.clone(),
            });
        }
        let mut ep = EndpointState {
            endpoint_id: wharf_types::random_hex_id(),
            network: network.clone(),
            container: container.clone(),
            container_name: req.container_name.clone(),
            netns: req.netns.clone(),
            ifname: String::new(),
            join: JoinInfo::default(),
            ipv4: None,
            ipv6: None,
            gateway4: net.gateway(false),
            gateway6: net.gateway(true),
            ports: Vec::new(),
            dns_names: req.dns_names.clone(),
        };
        if net.driver == "host" || net.driver == "null" {
            self.endpoints.write().unwrap_or_else(|p| p.into_inner()).insert(key, ep.clone());
            return Ok(ep);
        }
        // Addresses.
        {
            let mut ipam = lock(&self.ipam);
            let has = |v6: bool| net.subnets.iter().any(|s| s.subnet.addr().is_ipv6() == v6);
            if has(false) {
                ep.ipv4 = Some(ipam.allocate(network, 4, req.ipv4.map(IpAddr::V4))?);
            }
            if has(true) {
                match ipam.allocate(network, 6, req.ipv6.map(IpAddr::V6)) {
                    Ok(a) => ep.ipv6 = Some(a),
                    Err(e) => {
                        if let Some(a) = ep.ipv4 {
                            let _ = ipam.release(network, a.addr());
                        }
                        return Err(e.into());
                    }
                }
            }
        }
        let release_addrs = |ep: &EndpointState| {
            let mut ipam = lock(&self.ipam);
            for a in [ep.ipv4, ep.ipv6].into_iter().flatten() {
                let _ = ipam.release(network, a.addr());
            }
        };
        // Link.
        let driver = self.driver(&net.driver)?;
        let (n, netns, ifname, mac, addrs, default_route, cid) = (
            net.clone(),
            req.netns.clone(),
            req.ifname.clone(),
            req.mac,
            [ep.ipv4, ep.ipv6].into_iter().flatten().collect::<Vec<_>>(),
            req.default_route,
            container.clone(),
        );
        let joined = blocking(move || {
            let spec = JoinSpec { container: cid, netns, ifname, mac, addresses: addrs, default_route };
            driver.join(&n, &spec)
        })
        .await
        .and_then(|r| r.map_err(NetworkError::from));
        match joined {
            Ok(info) => {
                ep.ifname = info.ifname.clone();
                ep.join = info;
            }
            Err(e) => {
                release_addrs(&ep);
                return Err(e);
            }
        }
        // Ports.
        if net.driver == "bridge" && !net.internal && !req.ports.is_empty() {
            match self.publish(&net, &ep, &req.ports).await {
                Ok(mappings) => ep.ports = mappings,
                Err(e) => {
                    self.unlink(&net, &ep).await;
                    release_addrs(&ep);
                    return Err(e);
                }
            }
        }
        if !ep.dns_names.is_empty() {
            let ips: Vec<IpAddr> = [ep.ipv4, ep.ipv6].into_iter().flatten().map(|a| a.addr()).collect();
            self.dns.add_endpoint(network, &net.name, &container, &ep.dns_names, &ips);
        }
        self.endpoints.write().unwrap_or_else(|p| p.into_inner()).insert(key, ep.clone());
        Ok(ep)
    }

    async fn unlink(&self, net: &NetworkState, ep: &EndpointState) {
        if let Ok(driver) = self.driver(&net.driver) {
            let (n, netns, ifname, info) = (net.clone(), ep.netns.clone(), ep.ifname.clone(), ep.join.clone());
            let _ = blocking(move || driver.leave(&n, &netns, &ifname, &info)).await;
        }
    }

    /// Allocates host ports, starts proxies and installs DNAT for one endpoint.
    async fn publish(
        &self,
        net: &NetworkState,
        ep: &EndpointState,
        specs: &[PortSpec],
    ) -> Result<Vec<PortMapping>, NetworkError> {
        let endpoint = format!("{} ({})", ep.container_name, ep.container.short());
        let fail = |source| NetworkError::Ports { endpoint: endpoint.clone(), source };
        let ipv6_host = host_has_ipv6();
        let mut mappings = Vec::new();
        let mut proxies = Vec::new();
        let result: Result<(), PortError> = (|| {
            for spec in specs {
                if spec.proto == Proto::Sctp {
                    return Err(PortError::UnsupportedProto(Proto::Sctp));
                }
                let mut want = spec.host_ports;
                for host_ip in crate::ports::host_addresses(spec, ipv6_host) {
                    let container_ip = match (host_ip.is_ipv4(), ep.ipv4, ep.ipv6) {
                        (true, Some(a), _) | (true, None, Some(a)) => a.addr(),
                        (false, _, Some(a)) | (false, Some(a), None) => a.addr(),
                        _ => continue,
                    };
                    let (m, p) = self.bind_one(spec.proto, host_ip, want, container_ip, spec.container_port)?;
                    // `0.0.0.0` and `::` share one port number, as in Docker.
                    if spec.host_ip.is_none() {
                        want = (m.host_port, m.host_port);
                    }
                    mappings.push(m);
                    proxies.push(p);
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            self.release_ports(&mappings);
            for p in proxies {
                p.stop().await;
            }
            return Err(fail(e));
        }
        let (fw, bridge, ms) = (self.firewall.clone(), net.link.clone().unwrap_or_default(), mappings.clone());
        if let Err(e) = blocking(move || lock(&fw).add_ports(&bridge, &ms)).await? {
            self.release_ports(&mappings);
            for p in proxies {
                p.stop().await;
            }
            return Err(e.into());
        }
        lock(&self.proxies).entry((ep.network.clone(), ep.container.clone())).or_default().extend(proxies);
        Ok(mappings)
    }

    /// Publishes more ports of an already connected endpoint (bridge networks). Returns the
    /// granted mappings; the endpoint's stored `ports` grow by them (see [`Controller::endpoints`]).
    pub async fn publish_ports(
        &self,
        network: &NetworkId,
        container: &ContainerId,
        specs: &[PortSpec],
    ) -> Result<Vec<PortMapping>, NetworkError> {
        let net = self.network(network)?;
        let key = (network.clone(), container.clone());
        let ep = self.endpoints.read().unwrap_or_else(|p| p.into_inner()).get(&key).cloned().ok_or_else(|| {
            NetworkError::NotConnected { container: container.to_string(), network: net.name.clone() }
        })?;
        if net.driver != "bridge" || net.internal || specs.is_empty() {
            return Ok(Vec::new());
        }
        let granted = self.publish(&net, &ep, specs).await?;
        if let Some(e) = self.endpoints.write().unwrap_or_else(|p| p.into_inner()).get_mut(&key) {
            e.ports.extend(granted.iter().cloned());
        }
        Ok(granted)
    }

    /// Withdraws every published port of an endpoint: proxies stopped, DNAT removed, host
    /// ports released. The endpoint stays connected.
    pub async fn unpublish_ports(&self, network: &NetworkId, container: &ContainerId) -> Result<(), NetworkError> {
        let net = self.network(network)?;
        let key = (network.clone(), container.clone());
        let ports = match self.endpoints.write().unwrap_or_else(|p| p.into_inner()).get_mut(&key) {
            Some(e) => std::mem::take(&mut e.ports),
            None => return Ok(()),
        };
        let proxies = lock(&self.proxies).remove(&key).unwrap_or_default();
        for p in proxies {
            p.stop().await;
        }
        if !ports.is_empty() {
            let (fw, bridge, ms) = (self.firewall.clone(), net.link.clone().unwrap_or_default(), ports.clone());
            blocking(move || lock(&fw).remove_ports(&bridge, &ms)).await??;
            self.release_ports(&ports);
        }
        Ok(())
    }

    fn release_ports(&self, mappings: &[PortMapping]) {
        let mut ports = lock(&self.ports);
        for m in mappings {
            ports.release(m.proto, m.host_ip, m.host_port);
        }
    }

    /// Reserves one host port and binds its proxy; a random port the kernel reports busy is
    /// skipped for the next one, as Docker retries.
    fn bind_one(
        &self,
        proto: Proto,
        host_ip: IpAddr,
        want: (u16, u16),
        container_ip: IpAddr,
        container_port: u16,
    ) -> Result<(PortMapping, Proxy), PortError> {
        let attempts = if want.0 == want.1 && want.0 != 0 { 1 } else { 64 };
        let mut busy = Vec::new();
        let mut last_err = None;
        for _ in 0..attempts {
            let port = lock(&self.ports).allocate(proto, host_ip, want)?;
            let m = PortMapping { proto, host_ip, host_port: port, container_ip, container_port };
            match Proxy::start(&m) {
                Ok(p) => {
                    let mut ports = lock(&self.ports);
                    for b in busy {
                        ports.release(proto, host_ip, b);
                    }
                    return Ok((m, p));
                }
                Err(e @ PortError::AddressInUse { .. }) => {
                    // Keep it held while we look further so the allocator moves on.
                    busy.push(port);
                    last_err = Some(e);
                }
                Err(e) => {
                    lock(&self.ports).release(proto, host_ip, port);
                    busy.iter().for_each(|b| lock(&self.ports).release(proto, host_ip, *b));
                    return Err(e);
                }
            }
        }
        let mut ports = lock(&self.ports);
        for b in busy {
            ports.release(proto, host_ip, b);
        }
        Err(last_err.unwrap_or(PortError::Exhausted))
    }

    /// Disconnects a container from a network, undoing everything `connect` did.
    pub async fn disconnect(&self, network: &NetworkId, container: &ContainerId) -> Result<(), NetworkError> {
        let key = (network.clone(), container.clone());
        let Some(ep) = self.endpoints.write().unwrap_or_else(|p| p.into_inner()).remove(&key) else {
            let name = self.network(network).map(|n| n.name).unwrap_or_else(|_| network.to_string());
            return Err(NetworkError::NotConnected { container: container.to_string(), network: name });
        };
        self.dns.remove_endpoint(network, container);
        let proxies = lock(&self.proxies).remove(&key).unwrap_or_default();
        for p in proxies {
            p.stop().await;
        }
        let net = self.network(network)?;
        if !ep.ports.is_empty() {
            let (fw, bridge, ms) = (self.firewall.clone(), net.link.clone().unwrap_or_default(), ep.ports.clone());
            blocking(move || lock(&fw).remove_ports(&bridge, &ms)).await??;
            self.release_ports(&ep.ports);
        }
        let driver = self.driver(&net.driver)?;
        let (n, netns, ifname, info) = (net.clone(), ep.netns.clone(), ep.ifname.clone(), ep.join.clone());
        blocking(move || driver.leave(&n, &netns, &ifname, &info)).await??;
        let mut ipam = lock(&self.ipam);
        for a in [ep.ipv4, ep.ipv6].into_iter().flatten() {
            ipam.release(network, a.addr())?;
        }
        Ok(())
    }

    /// Starts the embedded DNS server inside a container's namespace at `127.0.0.11:53`.
    /// `upstreams` come from [`crate::files::resolv_conf`]'s `ext_servers` (empty when every
    /// network of the container is internal). Replaces a server already running. With
    /// [`DnsMode::Dnat`] (the default) the server listens on a random port and port 53 is
    /// redirected to it inside the namespace, as Docker does.
    pub async fn start_dns(
        &self,
        container: &ContainerId,
        netns: &Path,
        upstreams: Vec<Upstream>,
    ) -> Result<(), NetworkError> {
        let backend = lock(&self.firewall).backend();
        if self.cfg.dns_mode == DnsMode::Direct || backend != Backend::Nft {
            let listen = std::net::SocketAddr::from((crate::dns::DNS_ADDR, 53));
            return self.start_dns_on(container, netns, listen, upstreams).await.map(|_| ());
        }
        let listen = std::net::SocketAddr::from((crate::dns::DNS_ADDR, 0));
        let addr = self.start_dns_on(container, netns, listen, upstreams).await?;
        let (p, port) = (netns.to_path_buf(), addr.port());
        if let Err(source) = blocking(move || crate::dns::install_dnat(&p, port)).await? {
            self.stop_dns(container).await;
            return Err(DnsError::Dnat { container: container.to_string(), source }.into());
        }
        Ok(())
    }

    /// [`Controller::start_dns`] on another address (tests, or a daemon that DNATs to it).
    pub async fn start_dns_on(
        &self,
        container: &ContainerId,
        netns: &Path,
        listen: std::net::SocketAddr,
        upstreams: Vec<Upstream>,
    ) -> Result<std::net::SocketAddr, NetworkError> {
        self.stop_dns(container).await;
        let server = DnsServer::start(self.dns.clone(), container.clone(), Some(netns), listen, upstreams)?;
        let addr = server.udp_addr();
        lock(&self.dns_servers).insert(container.clone(), server);
        Ok(addr)
    }

    pub async fn stop_dns(&self, container: &ContainerId) {
        let s = lock(&self.dns_servers).remove(container);
        if let Some(s) = s {
            s.stop().await;
        }
    }

    /// Startup reconcile. `networks`/`endpoints` are what the daemon stored (endpoints only of
    /// containers that are still running). Rebuilds missing bridges, rules, proxies and DNS
    /// names; removes our bridges, veths, dummies and rules that nothing refers to, IPAM
    /// addresses of vanished endpoints, and, when `netns_dir` is given, namespace mounts there
    /// that no endpoint uses and that are not in `keep_netns`. Safe to run repeatedly.
    pub async fn reconcile(
        &self,
        networks: Vec<NetworkState>,
        endpoints: Vec<EndpointState>,
        netns_dir: Option<PathBuf>,
        keep_netns: Vec<PathBuf>,
    ) -> Result<ReconcileReport, NetworkError> {
        let mut report = ReconcileReport::default();
        // Networks: recreate host objects (idempotent: existing bridges are adopted).
        for net in &networks {
            let driver = self.driver(&net.driver)?;
            let n = net.clone();
            let link = blocking(move || driver.create(&n)).await??;
            let mut net = net.clone();
            if link.is_some() {
                net.link = link;
            }
            self.networks.write().unwrap_or_else(|p| p.into_inner()).insert(net.id.clone(), net);
        }
        // Only endpoints whose namespace survived are live.
        let endpoints: Vec<EndpointState> = endpoints
            .into_iter()
            .filter(|e| {
                let ok = crate::netns::is_netns_mount(&e.netns) || e.netns.as_os_str().is_empty();
                if !ok {
                    report.removed.push(format!("endpoint {} on {} (namespace gone)", e.container, e.network));
                }
                ok
            })
            .collect();
        // Kernel objects that are ours by name but not wanted.
        let wanted_links: BTreeSet<String> = self
            .networks()
            .iter()
            .filter_map(|n| n.link.clone())
            .chain(endpoints.iter().filter_map(|e| e.join.host_ifname.clone()))
            .collect();
        let prefixes = [self.cfg.bridge_prefix.clone(), self.cfg.veth_prefix.clone(), self.cfg.dummy_prefix.clone()];
        let removed = blocking(move || -> Result<Vec<String>, NetlinkError> {
            let mut nl = Netlink::open()?;
            let mut removed = Vec::new();
            for l in nl.links()? {
                let kind_ok = matches!(l.kind.as_deref(), Some("bridge" | "veth" | "dummy"));
                let ours = prefixes.iter().any(|p| !p.is_empty() && l.name.starts_with(p.as_str()));
                if kind_ok && ours && !wanted_links.contains(&l.name) {
                    nl.del_link_by_name(&l.name)?;
                    removed.push(format!("link {}", l.name));
                }
            }
            Ok(removed)
        })
        .await?
        .map_err(NetworkError::Host)?;
        report.removed.extend(removed);
        // IPAM: pools of known networks, addresses of live endpoints.
        let live_nets: Vec<NetworkId> = self.networks().iter().map(|n| n.id.clone()).collect();
        let live_addrs: BTreeSet<(NetworkId, IpAddr)> = endpoints
            .iter()
            .flat_map(|e| [e.ipv4, e.ipv6].into_iter().flatten().map(|a| (e.network.clone(), a.addr())))
            .collect();
        report.removed.extend(lock(&self.ipam).retain(&live_nets, &live_addrs)?);
        // Endpoints: ports, proxies, DNS names.
        let mut desired = Desired::default();
        for net in self.networks() {
            if let Some(r) = Self::bridge_rules(&net) {
                desired.networks.insert(r.bridge.clone(), r);
            }
        }
        for ep in endpoints {
            let key = (ep.network.clone(), ep.container.clone());
            let Ok(net) = self.network(&ep.network) else {
                report.removed.push(format!("endpoint {} on unknown network {}", ep.container, ep.network));
                continue;
            };
            let mut proxies = Vec::new();
            for m in &ep.ports {
                lock(&self.ports).hold(m.proto, m.host_ip, m.host_port);
                match Proxy::start(m) {
                    Ok(p) => proxies.push(p),
                    Err(e) => report.removed.push(format!("proxy {}: {e}", m.host_display())),
                }
                if let Some(b) = &net.link {
                    desired.ports.insert((b.clone(), m.clone()));
                }
            }
            let old = lock(&self.proxies).insert(key.clone(), proxies);
            for p in old.into_iter().flatten() {
                p.stop().await;
            }
            if !ep.dns_names.is_empty() {
                let ips: Vec<IpAddr> = [ep.ipv4, ep.ipv6].into_iter().flatten().map(|a| a.addr()).collect();
                self.dns.add_endpoint(&ep.network, &net.name, &ep.container, &ep.dns_names, &ips);
            }
            report.restored.push(format!("endpoint {} on {}", ep.container, net.name));
            self.endpoints.write().unwrap_or_else(|p| p.into_inner()).insert(key, ep);
        }
        let fw = self.firewall.clone();
        blocking(move || lock(&fw).reconcile(desired)).await??;
        // Namespace mounts nobody uses.
        if let Some(dir) = netns_dir {
            let used: BTreeSet<PathBuf> = self.endpoints().into_iter().map(|e| e.netns).chain(keep_netns).collect();
            for p in crate::netns::list(&dir) {
                if !used.contains(&p) {
                    crate::netns::delete(p.clone()).await.map_err(|e| NetworkError::Task(e.to_string()))?;
                    report.removed.push(format!("netns {}", p.display()));
                }
            }
        }
        Ok(report)
    }

    /// What a daemon shutting down with no container left on its networks undoes: proxies, DNS
    /// servers and the firewall table. Bridges stay (as Docker leaves `docker0`), and so do
    /// IPAM records and the daemon's stored state; the next `reconcile` rebuilds the rules.
    pub async fn teardown_rules(&self) -> Result<(), NetworkError> {
        let proxies: Vec<Proxy> = lock(&self.proxies).drain().flat_map(|(_, v)| v).collect();
        for p in proxies {
            p.stop().await;
        }
        let servers: Vec<DnsServer> = lock(&self.dns_servers).drain().map(|(_, s)| s).collect();
        for s in servers {
            s.stop().await;
        }
        let fw = self.firewall.clone();
        blocking(move || lock(&fw).teardown()).await??;
        Ok(())
    }

    /// The firewall backend in use.
    pub fn firewall_backend(&self) -> Backend {
        lock(&self.firewall).backend()
    }

    /// Removes everything this controller put on the host: proxies, DNS servers, every link of
    /// its networks and every link carrying its prefixes, and its firewall table. IPAM records
    /// and the daemon's stored state are left alone.
    pub async fn teardown(&self) -> Result<(), NetworkError> {
        let proxies: Vec<Proxy> = lock(&self.proxies).drain().flat_map(|(_, v)| v).collect();
        for p in proxies {
            p.stop().await;
        }
        let servers: Vec<DnsServer> = lock(&self.dns_servers).drain().map(|(_, s)| s).collect();
        for s in servers {
            s.stop().await;
        }
        let eps: Vec<EndpointState> =
            self.endpoints.write().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, e)| e).collect();
        for ep in eps {
            self.dns.remove_container(&ep.container);
            if let Ok(net) = self.network(&ep.network) {
                self.unlink(&net, &ep).await;
            }
        }
        for net in self.networks() {
            if let Ok(driver) = self.driver(&net.driver) {
                let _ = blocking(move || driver.delete(&net)).await;
            }
        }
        let prefixes = [self.cfg.bridge_prefix.clone(), self.cfg.veth_prefix.clone(), self.cfg.dummy_prefix.clone()];
        // The default prefixes are shared with Docker (`br-`, `veth`): only delete by prefix
        // when they are not the defaults.
        let defaults = ControllerConfig::default();
        let custom: Vec<String> = prefixes
            .into_iter()
            .filter(|p| ![&defaults.bridge_prefix, &defaults.veth_prefix, &defaults.dummy_prefix].contains(&p))
            .collect();
        if !custom.is_empty() {
            let _ = blocking(move || -> Result<(), NetlinkError> {
                let mut nl = Netlink::open()?;
                for l in nl.links()? {
                    if custom.iter().any(|p| l.name.starts_with(p.as_str())) {
                        nl.del_link_by_name(&l.name)?;
                    }
                }
                Ok(())
            })
            .await;
        }
        let fw = self.firewall.clone();
        blocking(move || lock(&fw).teardown()).await??;
        Ok(())
    }
}

fn host_has_ipv6() -> bool {
    std::fs::read_to_string("/proc/net/if_inet6").map(|s| !s.trim().is_empty()).unwrap_or(false)
}

/// The daemon spawns these futures on a multi-threaded runtime: they must be `Send`, and the
/// controller shareable. Checked at compile time.
#[allow(dead_code)]
fn assert_send_sync(c: &'static Controller) {
    fn send<T: Send>(_: T) {}
    fn sync<T: Send + Sync>() {}
    sync::<Controller>();
    let id = NetworkId::random();
    let cid = ContainerId::random();
    send(c.create_network(NetworkCreate::default()));
    send(c.delete_network(&id));
    send(c.connect(&id, EndpointRequest::default()));
    send(c.disconnect(&id, &cid));
    send(c.publish_ports(&id, &cid, &[]));
    send(c.unpublish_ports(&id, &cid));
    send(c.start_dns(&cid, Path::new("/"), Vec::new()));
    send(c.stop_dns(&cid));
    send(c.reconcile(Vec::new(), Vec::new(), None, Vec::new()));
    send(c.teardown());
    send(c.teardown_rules());
}
