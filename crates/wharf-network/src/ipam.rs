//! IP address management, with Docker's default pools, validation messages and allocation order.
//!
//! Vocabulary (libnetwork's): a network has one *pool* per address family; the pool's `subnet` is
//! the network's prefix, an optional `ip_range` (`--ip-range`) narrows where container addresses
//! come from, and the `gateway` is reserved in it. Addresses are handed out lowest-free-first,
//! skipping the network address, the IPv4 broadcast address and the gateway, as Docker's default
//! IPAM does.
//!
//! Persistence: the daemon owns the database. Every change to a pool (created, address
//! allocated or released, pool removed) is written through the [`IpamStore`] it supplies
//! *before* the call returns, and at startup the daemon hands the saved [`PoolRecord`]s back to
//! [`Ipam::new`]. So an address is never handed out twice across restarts. A write that fails
//! undoes the in-memory change and fails the call.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use wharf_types::{Classify, ErrorKind, NetworkId};

/// Failures of address management. Messages are Docker's.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// `ValidateIPAM`'s errors, joined as Docker joins them.
    #[error("invalid network config:\n{}", .0.join("\n"))]
    InvalidConfig(Vec<String>),
    #[error("Pool overlaps with other one on this address space")]
    PoolOverlap { subnet: IpNet },
    #[error(
        "could not find an available, non-overlapping IPv{family} address pool among the defaults to assign to the network"
    )]
    NoAvailablePool { family: u8 },
    #[error("no available IPv{family} addresses on this network's address pools: {network}")]
    NoAvailableIps { family: u8, network: String },
    #[error("invalid address {ip}: It does not belong to any of this network's subnets")]
    AddressNotInSubnet { ip: IpAddr },
    #[error("Address already in use")]
    AddressInUse { ip: IpAddr },
    #[error("user specified IP address is supported only when connecting to networks with user configured subnets")]
    UserIpNotAllowed,
    #[error("network {network} has no IPv{family} pool")]
    NoPool { network: String, family: u8 },
    #[error("save IPAM state for network {network}")]
    Store {
        network: String,
        #[source]
        source: StoreError,
    },
}

impl Classify for IpamError {
    fn kind(&self) -> ErrorKind {
        match self {
            IpamError::InvalidConfig(_) | IpamError::AddressNotInSubnet { .. } | IpamError::UserIpNotAllowed => {
                ErrorKind::InvalidArgument
            }
            IpamError::PoolOverlap { .. } | IpamError::AddressInUse { .. } => ErrorKind::Forbidden,
            IpamError::NoAvailablePool { .. } | IpamError::NoAvailableIps { .. } => ErrorKind::Unavailable,
            IpamError::NoPool { .. } => ErrorKind::NotFound,
            IpamError::Store { .. } => ErrorKind::Internal,
        }
    }
}

/// An error from the daemon's store, passed through.
pub type StoreError = Box<dyn std::error::Error + Send + Sync>;

/// One entry of Docker's `default-address-pools`: `base` is cut into subnets of `/size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultPool {
    pub base: IpNet,
    pub size: u8,
}

/// Docker's built-in default pools: 172.17–172.31 as /16s, then 192.168.0.0/16 as /20s.
pub fn docker_default_pools() -> Vec<DefaultPool> {
    let mut pools: Vec<DefaultPool> = (17..=31)
        .map(|b| DefaultPool {
            base: IpNet::V4(Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).unwrap_or_default()),
            size: 16,
        })
        .collect();
    pools.push(DefaultPool {
        base: IpNet::V4(Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16).unwrap_or_default()),
        size: 20,
    });
    pools
}

/// The default pool for IPv6 networks created without a subnet: a ULA /48 cut into /64s.
pub fn default_v6_pools() -> Vec<DefaultPool> {
    vec![DefaultPool {
        base: IpNet::V6(Ipv6Net::new(Ipv6Addr::new(0xfd57, 0x6861, 0x7266, 0, 0, 0, 0, 0), 48).unwrap_or_default()),
        size: 64,
    }]
}

/// What the daemon persists for one pool; handed back to [`Ipam::new`] at startup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRecord {
    pub network: NetworkId,
    pub subnet: IpNet,
    /// Where container addresses come from (`--ip-range`); the whole subnet when absent.
    pub ip_range: Option<IpNet>,
    pub gateway: Option<IpAddr>,
    /// True when the user gave the subnet (only then may containers ask for a fixed `--ip`).
    pub user_subnet: bool,
    /// Addresses handed to endpoints (the gateway is not listed; it is always reserved).
    pub allocated: BTreeSet<IpAddr>,
}

impl PoolRecord {
    pub fn family(&self) -> u8 {
        if self.subnet.addr().is_ipv4() { 4 } else { 6 }
    }

    /// The gateway with the subnet's prefix length, as put on a bridge.
    pub fn gateway_cidr(&self) -> Option<IpNet> {
        self.gateway.and_then(|g| IpNet::new(g, self.subnet.prefix_len()).ok())
    }

    fn reserved(&self, ip: IpAddr) -> bool {
        if Some(ip) == self.gateway || ip == self.subnet.network() {
            return true;
        }
        matches!(self.subnet, IpNet::V4(n) if n.prefix_len() < 31 && IpAddr::V4(n.broadcast()) == ip)
    }

    /// The lowest free address in the range, skipping reserved ones.
    fn next_free(&self) -> Option<IpAddr> {
        let range = self.ip_range.unwrap_or(self.subnet);
        let (start, end) = (to_u128(range.network()), to_u128(range.broadcast()));
        let v4 = range.addr().is_ipv4();
        let mut cur = start;
        // Allocated addresses are sorted, so walk them alongside the candidate.
        let mut taken = self.allocated.range(from_u128(start, v4)..).map(|ip| to_u128(*ip)).peekable();
        while cur <= end {
            while taken.peek().is_some_and(|t| *t < cur) {
                taken.next();
            }
            let ip = from_u128(cur, v4);
            if taken.peek() != Some(&cur) && !self.reserved(ip) {
                return Some(ip);
            }
            cur = cur.checked_add(1)?;
        }
        None
    }
}

/// What `network create` asked for, per family (one `IPAM.Config` entry, or none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolRequest {
    pub subnet: Option<String>,
    pub ip_range: Option<String>,
    pub gateway: Option<String>,
    /// Which family to pick a default subnet for when `subnet` is absent.
    pub v6: bool,
}

/// Where the IPAM's changes go. Implemented by the daemon over its database.
pub trait IpamStore: Send + Sync {
    /// Insert or replace the record keyed by `(pool.network, pool.subnet)`.
    fn save_pool(&self, pool: &PoolRecord) -> Result<(), StoreError>;
    /// Remove the record; removing a missing record is not an error.
    fn remove_pool(&self, network: &NetworkId, subnet: &IpNet) -> Result<(), StoreError>;
}

/// An [`IpamStore`] that keeps nothing (tests, and daemons that re-derive state).
#[derive(Debug, Default)]
pub struct NoStore;

impl IpamStore for NoStore {
    fn save_pool(&self, _: &PoolRecord) -> Result<(), StoreError> {
        Ok(())
    }
    fn remove_pool(&self, _: &NetworkId, _: &IpNet) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The address manager of one daemon. Not internally locked: the owner wraps it in a mutex.
pub struct Ipam {
    pools: Vec<PoolRecord>,
    store: Arc<dyn IpamStore>,
    defaults_v4: Vec<DefaultPool>,
    defaults_v6: Vec<DefaultPool>,
}

impl Ipam {
    /// Builds the manager from the records the daemon saved. `defaults_v4` is the daemon's
    /// `default-address-pools` ([`docker_default_pools`] unless configured).
    pub fn new(store: Arc<dyn IpamStore>, defaults_v4: Vec<DefaultPool>, restored: Vec<PoolRecord>) -> Self {
        Self { pools: restored, store, defaults_v4, defaults_v6: default_v6_pools() }
    }

    /// Every pool, for inspection and reconcile.
    pub fn records(&self) -> &[PoolRecord] {
        &self.pools
    }

    /// The pools of one network.
    pub fn pools_of(&self, network: &NetworkId) -> Vec<PoolRecord> {
        self.pools.iter().filter(|p| &p.network == network).cloned().collect()
    }

    /// Validates a request (Docker's `ValidateIPAM` rules and messages), picks or checks the
    /// subnet, reserves the gateway, and saves the pool.
    ///
    /// `host_routes` are the destinations of the host's routes: default subnets overlapping
    /// them are skipped (a user-given subnet is not checked against them, as in Docker).
    pub fn request_pool(
        &mut self,
        network: &NetworkId,
        req: &PoolRequest,
        host_routes: &[IpNet],
    ) -> Result<PoolRecord, IpamError> {
        let record = match &req.subnet {
            Some(s) => {
                let subnet = validate(req, s)?;
                if let Some(other) = self.pools.iter().find(|p| overlaps(&p.subnet, &subnet)) {
                    tracing::debug!(subnet = %subnet, other = %other.subnet, "pool overlap");
                    return Err(IpamError::PoolOverlap { subnet });
                }
                let ip_range = req.ip_range.as_deref().map(|r| r.parse::<IpNet>()).transpose().ok().flatten();
                let gateway = match req.gateway.as_deref() {
                    Some(g) => g.parse().ok(),
                    None => default_gateway(&subnet, ip_range.as_ref()),
                };
                PoolRecord {
                    network: network.clone(),
                    subnet,
                    ip_range,
                    gateway,
                    user_subnet: true,
                    allocated: BTreeSet::new(),
                }
            }
            None => {
                if req.ip_range.is_some() || req.gateway.is_some() {
                    let what = if req.ip_range.is_some() { "ip-range" } else { "gateway" };
                    return Err(IpamError::InvalidConfig(vec![format!("invalid {what}: a subnet is required")]));
                }
                let subnet = self.pick_default(req.v6, host_routes)?;
                let gateway = default_gateway(&subnet, None);
                PoolRecord {
                    network: network.clone(),
                    subnet,
                    ip_range: None,
                    gateway,
                    user_subnet: false,
                    allocated: BTreeSet::new(),
                }
            }
        };
        self.store.save_pool(&record).map_err(|source| IpamError::Store { network: network.to_string(), source })?;
        self.pools.push(record.clone());
        Ok(record)
    }

    /// Re-registers a pool the daemon already knows (for example the predefined `bridge`
    /// network whose subnet comes from an existing bridge address) without validation.
    pub fn adopt_pool(&mut self, record: PoolRecord) -> Result<(), IpamError> {
        if self.pools.iter().any(|p| p.network == record.network && p.subnet == record.subnet) {
            return Ok(());
        }
        self.store
            .save_pool(&record)
            .map_err(|source| IpamError::Store { network: record.network.to_string(), source })?;
        self.pools.push(record);
        Ok(())
    }

    fn pick_default(&self, v6: bool, host_routes: &[IpNet]) -> Result<IpNet, IpamError> {
        let defaults = if v6 { &self.defaults_v6 } else { &self.defaults_v4 };
        for pool in defaults {
            let Ok(subnets) = pool.base.subnets(pool.size) else {
                continue;
            };
            for candidate in subnets.take(1 << 16) {
                let clash = host_routes.iter().any(|r| overlaps(r, &candidate))
                    || self.pools.iter().any(|p| overlaps(&p.subnet, &candidate));
                if !clash {
                    return Ok(candidate);
                }
            }
        }
        Err(IpamError::NoAvailablePool { family: if v6 { 6 } else { 4 } })
    }

    /// Releases every pool of a network (network delete).
    pub fn release_pools(&mut self, network: &NetworkId) -> Result<(), IpamError> {
        let mine: Vec<PoolRecord> = self.pools_of(network);
        for p in mine {
            self.store
                .remove_pool(&p.network, &p.subnet)
                .map_err(|source| IpamError::Store { network: network.to_string(), source })?;
            self.pools.retain(|q| !(q.network == p.network && q.subnet == p.subnet));
        }
        Ok(())
    }

    /// Allocates an address of the given family on `network`: `preferred` (`--ip`/`--ip6`) or the
    /// lowest free one. Returns the address with the subnet's prefix length.
    pub fn allocate(&mut self, network: &NetworkId, family: u8, preferred: Option<IpAddr>) -> Result<IpNet, IpamError> {
        let idx = match preferred {
            Some(ip) => self
                .pools
                .iter()
                .position(|p| &p.network == network && p.subnet.contains(&ip))
                .ok_or(IpamError::AddressNotInSubnet { ip })?,
            None => self
                .pools
                .iter()
                .position(|p| &p.network == network && p.family() == family)
                .ok_or_else(|| IpamError::NoPool { network: network.to_string(), family })?,
        };
        let pool = &self.pools[idx];
        let ip = match preferred {
            Some(ip) => {
                if !pool.user_subnet {
                    return Err(IpamError::UserIpNotAllowed);
                }
                if pool.allocated.contains(&ip) || pool.reserved(ip) {
                    return Err(IpamError::AddressInUse { ip });
                }
                ip
            }
            None => {
                pool.next_free().ok_or_else(|| IpamError::NoAvailableIps { family, network: network.to_string() })?
            }
        };
        let prefix = pool.subnet.prefix_len();
        self.pools[idx].allocated.insert(ip);
        if let Err(source) = self.store.save_pool(&self.pools[idx]) {
            self.pools[idx].allocated.remove(&ip);
            return Err(IpamError::Store { network: network.to_string(), source });
        }
        Ok(IpNet::new(ip, prefix).unwrap_or_else(|_| IpNet::from(ip)))
    }

    /// Returns an address to its pool. Releasing an address that is not allocated is a no-op.
    pub fn release(&mut self, network: &NetworkId, ip: IpAddr) -> Result<(), IpamError> {
        let Some(idx) = self.pools.iter().position(|p| &p.network == network && p.allocated.contains(&ip)) else {
            return Ok(());
        };
        self.pools[idx].allocated.remove(&ip);
        if let Err(source) = self.store.save_pool(&self.pools[idx]) {
            self.pools[idx].allocated.insert(ip);
            return Err(IpamError::Store { network: network.to_string(), source });
        }
        Ok(())
    }

    /// Reconcile: keep only the pools of `live_networks` and, in them, only the addresses in
    /// `live_addresses`. Returns what was dropped, for logging.
    pub fn retain(
        &mut self,
        live_networks: &[NetworkId],
        live_addresses: &BTreeSet<(NetworkId, IpAddr)>,
    ) -> Result<Vec<String>, IpamError> {
        let mut dropped = Vec::new();
        let orphans: Vec<NetworkId> =
            self.pools.iter().filter(|p| !live_networks.contains(&p.network)).map(|p| p.network.clone()).collect();
        for n in orphans {
            dropped.push(format!("pools of network {n}"));
            self.release_pools(&n)?;
        }
        for idx in 0..self.pools.len() {
            let net = self.pools[idx].network.clone();
            let stale: Vec<IpAddr> = self.pools[idx]
                .allocated
                .iter()
                .filter(|ip| !live_addresses.contains(&(net.clone(), **ip)))
                .copied()
                .collect();
            if stale.is_empty() {
                continue;
            }
            for ip in &stale {
                dropped.push(format!("address {ip} on network {net}"));
                self.pools[idx].allocated.remove(ip);
            }
            self.store
                .save_pool(&self.pools[idx])
                .map_err(|source| IpamError::Store { network: net.to_string(), source })?;
        }
        Ok(dropped)
    }
}

fn validate(req: &PoolRequest, subnet_s: &str) -> Result<IpNet, IpamError> {
    let mut errs = Vec::new();
    let subnet: IpNet = match subnet_s.parse() {
        Ok(s) => s,
        Err(_) => {
            return Err(IpamError::InvalidConfig(vec![format!(
                "invalid subnet {subnet_s}: invalid CIDR block notation"
            )]));
        }
    };
    let fam = if subnet.addr().is_ipv4() { "IPv4" } else { "IPv6" };
    if subnet != subnet.trunc() {
        errs.push(format!("invalid subnet {subnet}: it should be {}", subnet.trunc()));
    }
    if let Some(r) = &req.ip_range {
        match r.parse::<IpNet>() {
            Err(_) => errs.push(format!("invalid ip-range {r}: invalid CIDR block notation")),
            Ok(range) => {
                if range.addr().is_ipv4() != subnet.addr().is_ipv4() {
                    errs.push(format!("invalid ip-range {r}: parent subnet is an {fam} block"));
                } else {
                    if range.prefix_len() < subnet.prefix_len() {
                        errs.push(format!(
                            "invalid ip-range {r}: CIDR block is bigger than its parent subnet {subnet}"
                        ));
                    }
                    if range != range.trunc() {
                        errs.push(format!("invalid ip-range {range}: it should be {}", range.trunc()));
                    }
                    if !overlaps(&subnet.trunc(), &range.trunc()) {
                        errs.push(format!("invalid ip-range {r}: parent subnet {subnet} doesn't contain ip-range"));
                    }
                }
            }
        }
    }
    if let Some(g) = &req.gateway {
        match g.parse::<IpAddr>() {
            Err(_) => errs.push(format!("invalid gateway {g}: invalid address")),
            Ok(ip) if ip.is_ipv4() != subnet.addr().is_ipv4() => {
                errs.push(format!("invalid gateway {g}: parent subnet is an {fam} block"))
            }
            Ok(ip) if !subnet.contains(&ip) => {
                errs.push(format!("invalid gateway {g}: parent subnet {subnet} doesn't contain this address"))
            }
            Ok(_) => {}
        }
    }
    if errs.is_empty() { Ok(subnet.trunc()) } else { Err(IpamError::InvalidConfig(errs)) }
}

/// Docker's default gateway: the first usable address of the allocation range.
fn default_gateway(subnet: &IpNet, range: Option<&IpNet>) -> Option<IpAddr> {
    let r = range.unwrap_or(subnet);
    let v4 = subnet.addr().is_ipv4();
    let mut first = to_u128(r.network());
    if first == to_u128(subnet.network()) {
        first += 1;
    }
    let ip = from_u128(first, v4);
    subnet.contains(&ip).then_some(ip)
}

/// Whether two prefixes share any address (one contains the other).
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(n: u128, v4: bool) -> IpAddr {
    if v4 { IpAddr::V4(Ipv4Addr::from(n as u32)) } else { IpAddr::V6(Ipv6Addr::from(n)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn nid(n: u8) -> NetworkId {
        NetworkId::parse(&format!("{:0>64}", n)).unwrap()
    }

    fn ipam() -> Ipam {
        Ipam::new(Arc::new(NoStore), docker_default_pools(), vec![])
    }

    #[test]
    fn default_pools_skip_host_routes_and_each_other() {
        let mut ipam = ipam();
        let routes: Vec<IpNet> = vec!["172.17.0.0/16".parse().unwrap(), "172.19.5.0/24".parse().unwrap()];
        let a = ipam.request_pool(&nid(1), &PoolRequest::default(), &routes).unwrap();
        assert_eq!(a.subnet.to_string(), "172.18.0.0/16");
        assert_eq!(a.gateway, Some("172.18.0.1".parse().unwrap()));
        let b = ipam.request_pool(&nid(2), &PoolRequest::default(), &routes).unwrap();
        assert_eq!(b.subnet.to_string(), "172.20.0.0/16");
        for i in 3..=13 {
            ipam.request_pool(&nid(i), &PoolRequest::default(), &routes).unwrap();
        }
        let c = ipam.request_pool(&nid(14), &PoolRequest::default(), &routes).unwrap();
        assert_eq!(c.subnet.to_string(), "192.168.0.0/20");
        let d = ipam.request_pool(&nid(15), &PoolRequest::default(), &routes).unwrap();
        assert_eq!(d.subnet.to_string(), "192.168.16.0/20");
    }

    #[test]
    fn user_subnet_validation_messages() {
        let mut ipam = ipam();
        let req = |s: &str, r: Option<&str>, g: Option<&str>| PoolRequest {
            subnet: Some(s.into()),
            ip_range: r.map(Into::into),
            gateway: g.map(Into::into),
            v6: false,
        };
        let e = ipam.request_pool(&nid(1), &req("10.1.0.0/33", None, None), &[]).unwrap_err();
        assert_eq!(e.to_string(), "invalid network config:\ninvalid subnet 10.1.0.0/33: invalid CIDR block notation");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e = ipam.request_pool(&nid(1), &req("10.1.2.3/16", None, None), &[]).unwrap_err();
        assert_eq!(e.to_string(), "invalid network config:\ninvalid subnet 10.1.2.3/16: it should be 10.1.0.0/16");
        let e =
            ipam.request_pool(&nid(1), &req("10.1.0.0/16", Some("10.2.0.0/24"), Some("10.3.0.1")), &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid network config:\ninvalid ip-range 10.2.0.0/24: parent subnet 10.1.0.0/16 doesn't contain ip-range\ninvalid gateway 10.3.0.1: parent subnet 10.1.0.0/16 doesn't contain this address"
        );
        ipam.request_pool(&nid(1), &req("10.1.0.0/16", Some("10.1.5.0/24"), Some("10.1.0.254")), &[]).unwrap();
        let e = ipam.request_pool(&nid(2), &req("10.1.128.0/24", None, None), &[]).unwrap_err();
        assert_eq!(e.to_string(), "Pool overlaps with other one on this address space");
        assert_eq!(e.kind(), ErrorKind::Forbidden);
        // Allocation comes from the range; fixed IPs anywhere in the subnet.
        assert_eq!(ipam.allocate(&nid(1), 4, None).unwrap().to_string(), "10.1.5.0/16");
        assert_eq!(ipam.allocate(&nid(1), 4, Some("10.1.9.9".parse().unwrap())).unwrap().to_string(), "10.1.9.9/16");
        let e = ipam.allocate(&nid(1), 4, Some("10.1.9.9".parse().unwrap())).unwrap_err();
        assert_eq!(e.to_string(), "Address already in use");
        let e = ipam.allocate(&nid(1), 4, Some("10.9.9.9".parse().unwrap())).unwrap_err();
        assert_eq!(e.to_string(), "invalid address 10.9.9.9: It does not belong to any of this network's subnets");
        let e = ipam.allocate(&nid(1), 4, Some("10.1.0.254".parse().unwrap())).unwrap_err();
        assert_eq!(e.to_string(), "Address already in use");
    }

    #[test]
    fn sequential_allocation_skips_reserved_and_exhausts() {
        let mut ipam = ipam();
        let req = PoolRequest { subnet: Some("10.7.0.0/29".into()), ..Default::default() };
        ipam.request_pool(&nid(1), &req, &[]).unwrap();
        let got: Vec<String> = (0..5).map(|_| ipam.allocate(&nid(1), 4, None).unwrap().addr().to_string()).collect();
        assert_eq!(got, ["10.7.0.2", "10.7.0.3", "10.7.0.4", "10.7.0.5", "10.7.0.6"]);
        let e = ipam.allocate(&nid(1), 4, None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        ipam.release(&nid(1), "10.7.0.3".parse().unwrap()).unwrap();
        assert_eq!(ipam.allocate(&nid(1), 4, None).unwrap().addr().to_string(), "10.7.0.3");
        // Default-subnet networks refuse fixed addresses, as Docker does.
        ipam.request_pool(&nid(2), &PoolRequest::default(), &[]).unwrap();
        let e = ipam.allocate(&nid(2), 4, Some("172.17.0.9".parse().unwrap())).unwrap_err();
        assert!(matches!(e, IpamError::UserIpNotAllowed));
    }

    #[test]
    fn ipv6_pools() {
        let mut ipam = ipam();
        let req = PoolRequest { subnet: Some("fd00:1:2::/64".into()), v6: true, ..Default::default() };
        let p = ipam.request_pool(&nid(1), &req, &[]).unwrap();
        assert_eq!(p.gateway, Some("fd00:1:2::1".parse().unwrap()));
        assert_eq!(ipam.allocate(&nid(1), 6, None).unwrap().to_string(), "fd00:1:2::2/64");
        let d = ipam.request_pool(&nid(2), &PoolRequest { v6: true, ..Default::default() }, &[]).unwrap();
        assert_eq!(d.subnet.prefix_len(), 64);
        assert!(d.subnet.addr().is_ipv6());
    }

    #[derive(Default)]
    struct MemStore(Mutex<Vec<PoolRecord>>);
    impl IpamStore for MemStore {
        fn save_pool(&self, pool: &PoolRecord) -> Result<(), StoreError> {
            let mut v = self.0.lock().unwrap();
            v.retain(|p| !(p.network == pool.network && p.subnet == pool.subnet));
            v.push(pool.clone());
            Ok(())
        }
        fn remove_pool(&self, network: &NetworkId, subnet: &IpNet) -> Result<(), StoreError> {
            self.0.lock().unwrap().retain(|p| !(&p.network == network && &p.subnet == subnet));
            Ok(())
        }
    }

    #[test]
    fn persistence_across_restart_never_hands_an_address_twice() {
        let store = Arc::new(MemStore::default());
        let mut a = Ipam::new(store.clone(), docker_default_pools(), vec![]);
        a.request_pool(&nid(1), &PoolRequest::default(), &[]).unwrap();
        let first = a.allocate(&nid(1), 4, None).unwrap();
        let second = a.allocate(&nid(1), 4, None).unwrap();
        drop(a);
        // "Restart": records round-trip through JSON as the daemon would store them.
        let saved: Vec<PoolRecord> = store.0.lock().unwrap().clone();
        let json = serde_json::to_string(&saved).unwrap();
        let restored: Vec<PoolRecord> = serde_json::from_str(&json).unwrap();
        let mut b = Ipam::new(store.clone(), docker_default_pools(), restored);
        let third = b.allocate(&nid(1), 4, None).unwrap();
        assert!(third != first && third != second);
        // A new network after restart does not reuse the restored subnet.
        let p2 = b.request_pool(&nid(2), &PoolRequest::default(), &[]).unwrap();
        assert_ne!(p2.subnet, first.trunc());
        // Reconcile drops addresses of endpoints that are gone.
        let live: BTreeSet<(NetworkId, IpAddr)> = [(nid(1), second.addr())].into_iter().collect();
        let dropped = b.retain(&[nid(1)], &live).unwrap();
        assert_eq!(dropped.len(), 3, "{dropped:?}");
        assert_eq!(store.0.lock().unwrap().len(), 1);
        assert_eq!(b.allocate(&nid(1), 4, None).unwrap(), first);
    }
}
