//! Network drivers: what a network *is* on the host and how a container's namespace joins it.
//!
//! Lifecycle, as libnetwork's driver API: `create` once per network (after IPAM picked its
//! subnets), `join` once per (container, network) after the addresses are allocated, `leave`
//! when the container disconnects or stops, `delete` when the network is removed. Every method
//! is idempotent-on-retry where the kernel lets it be (deleting what is gone succeeds) and
//! blocking (netlink); the [`crate::controller::Controller`] calls them from `spawn_blocking`.
//!
//! Drivers: `bridge` (a Linux bridge holding the gateway addresses, a veth per endpoint),
//! `macvlan` (a macvlan link per endpoint on a parent device, bridge mode), `host` and `null`
//! (nothing to build: the container uses the host's namespace, or keeps only `lo`).

use std::collections::BTreeMap;
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use wharf_types::{Classify, ContainerId, ErrorKind, NetworkId};

use crate::mac;
use crate::netlink::{Netlink, NetlinkError};

/// Docker's option keys that drivers read.
pub mod opts {
    pub const BRIDGE_NAME: &str = "com.docker.network.bridge.name";
    pub const MTU: &str = "com.docker.network.driver.mtu";
    pub const ENABLE_ICC: &str = "com.docker.network.bridge.enable_icc";
    pub const ENABLE_IP_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
    pub const DEFAULT_BRIDGE: &str = "com.docker.network.bridge.default_bridge";
    pub const MACVLAN_PARENT: &str = "parent";
    pub const MACVLAN_MODE: &str = "macvlan_mode";
}

/// Failures inside a driver, naming the object and the step.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("create bridge {bridge}")]
    CreateBridge {
        bridge: String,
        #[source]
        source: NetlinkError,
    },
    #[error("delete link {link}")]
    DeleteLink {
        link: String,
        #[source]
        source: NetlinkError,
    },
    #[error("failed to set up container networking: attach {container} to {network}")]
    Join {
        container: String,
        network: String,
        #[source]
        source: NetlinkError,
    },
    #[error("open network namespace {path}")]
    OpenNetns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid subinterface vlan name {parent}, example formatting is eth0.10")]
    NoParent { parent: String },
    #[error("macvlan mode {0} is not supported, only bridge")]
    MacvlanMode(String),
    #[error("invalid option {key}={value}")]
    BadOption { key: String, value: String },
}

impl Classify for DriverError {
    fn kind(&self) -> ErrorKind {
        match self {
            DriverError::NoParent { .. } | DriverError::MacvlanMode(_) | DriverError::BadOption { .. } => {
                ErrorKind::InvalidArgument
            }
            DriverError::CreateBridge { source, .. } => source.kind(),
            _ => ErrorKind::Internal,
        }
    }
}

/// One subnet of a network, as decided by IPAM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetState {
    pub subnet: IpNet,
    pub gateway: Option<IpAddr>,
    pub ip_range: Option<IpNet>,
}

/// A network as created: the daemon persists this and hands it back to `reconcile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    pub id: NetworkId,
    pub name: String,
    /// `bridge`, `macvlan`, `host` or `null`.
    pub driver: String,
    pub internal: bool,
    pub enable_ipv6: bool,
    pub options: BTreeMap<String, String>,
    pub subnets: Vec<SubnetState>,
    /// The kernel link this network owns: the bridge, or a dummy macvlan parent we created.
    pub link: Option<String>,
    pub mtu: Option<u32>,
}

impl NetworkState {
    pub fn opt_bool(&self, key: &str, default: bool) -> bool {
        self.options.get(key).map(|v| v == "true" || v == "1").unwrap_or(default)
    }
    pub fn gateway(&self, v6: bool) -> Option<IpAddr> {
        self.subnets.iter().filter(|s| s.subnet.addr().is_ipv6() == v6).find_map(|s| s.gateway)
    }
}

/// What a join needs: the container's namespace, the interface name inside it, its addresses.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    pub container: ContainerId,
    pub netns: PathBuf,
    /// Interface name inside the namespace; `None` = the next free `ethN`.
    pub ifname: Option<String>,
    pub mac: Option<[u8; 6]>,
    pub addresses: Vec<IpNet>,
    /// Install the default route(s) via this network's gateway(s).
    pub default_route: bool,
}

/// What a join produced on the host side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinInfo {
    /// The interface inside the container's namespace (`eth0`).
    pub ifname: String,
    /// The host end of a veth, for bridge endpoints.
    pub host_ifname: Option<String>,
    pub mac: Option<String>,
}

/// A network driver. See the module doc for the lifecycle.
pub trait NetworkDriver: Send + Sync {
    /// The driver's name in the API (`bridge`, `macvlan`, `host`, `null`).
    fn name(&self) -> &'static str;
    /// Builds the network's host-side objects; returns the link it owns, if any.
    fn create(&self, net: &NetworkState) -> Result<Option<String>, DriverError>;
    /// Removes them. Missing objects are not an error.
    fn delete(&self, net: &NetworkState) -> Result<(), DriverError>;
    /// Connects a container namespace.
    fn join(&self, net: &NetworkState, spec: &JoinSpec) -> Result<JoinInfo, DriverError>;
    /// Disconnects it. The namespace may already be gone.
    fn leave(&self, net: &NetworkState, netns: &Path, ifname: &str, info: &JoinInfo) -> Result<(), DriverError>;
}

fn mtu_of(net: &NetworkState) -> Result<Option<u32>, DriverError> {
    match net.options.get(opts::MTU) {
        Some(v) => v
            .parse::<u32>()
            .map(|m| if m == 0 { None } else { Some(m) })
            .map_err(|_| DriverError::BadOption { key: opts::MTU.into(), value: v.clone() }),
        None => Ok(net.mtu),
    }
}

/// The endpoint's MAC: given, Docker's `02:42:<ipv4>`, or random for IPv6-only endpoints.
fn endpoint_mac(spec: &JoinSpec) -> [u8; 6] {
    spec.mac.unwrap_or_else(|| {
        spec.addresses
            .iter()
            .find_map(|a| match a.addr() {
                IpAddr::V4(v4) => Some(mac::from_ipv4(v4)),
                IpAddr::V6(_) => None,
            })
            .unwrap_or_else(mac::random)
    })
}

/// The interface name to use inside the namespace: the requested one or the next free `ethN`.
fn choose_ifname(inner: &mut Netlink, spec: &JoinSpec) -> Result<String, NetlinkError> {
    if let Some(i) = &spec.ifname {
        return Ok(i.clone());
    }
    let names: std::collections::BTreeSet<String> = inner.links()?.into_iter().map(|l| l.name).collect();
    Ok((0..).map(|i| format!("eth{i}")).find(|n| !names.contains(n)).unwrap_or_else(|| "eth0".into()))
}

/// Configures the container side of a link already in the namespace under `ifname` (its MAC
/// was set at creation): addresses, up, default routes.
fn configure_inside(
    inner: &mut Netlink,
    net: &NetworkState,
    spec: &JoinSpec,
    ifname: &str,
    with_gateway: bool,
) -> Result<(), NetlinkError> {
    let idx = inner.link_index(ifname)?;
    for a in &spec.addresses {
        inner.add_address(idx, *a)?;
    }
    inner.set_up(idx)?;
    if spec.default_route && with_gateway {
        for v6 in [false, true] {
            if let Some(gw) = net.gateway(v6)
                && spec.addresses.iter().any(|a| a.addr().is_ipv6() == v6)
            {
                inner.add_route(None, Some(gw), Some(idx))?;
            }
        }
    }
    Ok(())
}

/// Linux bridge networks. Host veth names are `<veth_prefix><7 hex>` so that parallel daemons
/// (and reconcile) can tell their own apart.
pub struct BridgeDriver {
    /// Prefix of bridges named after the network ID (Docker's `br-`).
    pub bridge_prefix: String,
    pub veth_prefix: String,
}

impl BridgeDriver {
    /// The bridge of a network: its recorded link, the `bridge.name` option, or
    /// `<bridge_prefix><network id>` cut to the 15 characters a link name may have.
    pub fn bridge_name(&self, net: &NetworkState) -> String {
        net.link.clone().or_else(|| net.options.get(opts::BRIDGE_NAME).cloned()).unwrap_or_else(|| {
            let room = 15usize.saturating_sub(self.bridge_prefix.len()).min(12);
            format!("{}{}", self.bridge_prefix, &net.id.as_str()[..room])
        })
    }

    fn veth_name(&self) -> String {
        let hex = wharf_types::random_hex_id();
        let room = 15usize.saturating_sub(self.veth_prefix.len()).min(7);
        format!("{}{}", self.veth_prefix, &hex[..room])
    }
}

impl NetworkDriver for BridgeDriver {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn create(&self, net: &NetworkState) -> Result<Option<String>, DriverError> {
        let name = self.bridge_name(net);
        let err = |source| DriverError::CreateBridge { bridge: name.clone(), source };
        let mtu = mtu_of(net)?;
        let mut nl = Netlink::open().map_err(err)?;
        // An existing bridge (daemon restart, or a bridge the admin made) is adopted.
        let idx = match nl.link(&name).map_err(err)? {
            Some(l) => l.index,
            None => nl.add_bridge(&name, mtu).map_err(err)?,
        };
        let have = nl.addresses(idx).map_err(err)?;
        for s in &net.subnets {
            if let Some(gw) = s.gateway
                && let Ok(cidr) = IpNet::new(gw, s.subnet.prefix_len())
                && !have.contains(&cidr)
            {
                nl.add_address(idx, cidr).map_err(err)?;
            }
        }
        nl.set_up(idx).map_err(err)?;
        Ok(Some(name))
    }

    fn delete(&self, net: &NetworkState) -> Result<(), DriverError> {
        let name = self.bridge_name(net);
        let err = |source| DriverError::DeleteLink { link: name.clone(), source };
        Netlink::open().and_then(|mut nl| nl.del_link_by_name(&name)).map_err(err)
    }

    fn join(&self, net: &NetworkState, spec: &JoinSpec) -> Result<JoinInfo, DriverError> {
        let err =
            |source| DriverError::Join { container: spec.container.to_string(), network: net.name.clone(), source };
        let ns =
            File::open(&spec.netns).map_err(|source| DriverError::OpenNetns { path: spec.netns.clone(), source })?;
        let mtu = mtu_of(net)?;
        let bridge = self.bridge_name(net);
        let mut inner = Netlink::open_in(&spec.netns).map_err(err)?;
        let ifname = choose_ifname(&mut inner, spec).map_err(err)?;
        let mac = endpoint_mac(spec);
        let mut nl = Netlink::open().map_err(err)?;
        let br = nl.link_index(&bridge).map_err(err)?;
        let host = self.veth_name();
        // One request: host end on the bridge and up; the peer born inside the container's
        // namespace under its final name and MAC.
        nl.add_endpoint_veth(&crate::netlink::VethOptions {
            name: &host,
            peer: &ifname,
            mtu,
            master: Some(br),
            up: true,
            peer_mac: Some(mac),
            peer_netns: Some(ns.as_raw_fd()),
        })
        .map_err(err)?;
        match configure_inside(&mut inner, net, spec, &ifname, !net.internal) {
            Ok(()) => Ok(JoinInfo { ifname, host_ifname: Some(host), mac: Some(mac::format(&mac)) }),
            Err(e) => {
                let _ = nl.del_link_by_name(&host);
                Err(err(e))
            }
        }
    }

    fn leave(&self, _net: &NetworkState, _netns: &Path, _ifname: &str, info: &JoinInfo) -> Result<(), DriverError> {
        let Some(host) = &info.host_ifname else {
            return Ok(());
        };
        let err = |source| DriverError::DeleteLink { link: host.clone(), source };
        Netlink::open().and_then(|mut nl| nl.del_link_by_name(host)).map_err(err)
    }
}

/// Macvlan networks in bridge mode. Without a `parent` option a dummy link is created as the
/// parent (Docker does the same), named `<dummy_prefix><id8>` (an empty bridge where the kernel
/// has no dummy driver).
pub struct MacvlanDriver {
    pub dummy_prefix: String,
}

impl MacvlanDriver {
    fn parent(&self, net: &NetworkState) -> String {
        net.options
            .get(opts::MACVLAN_PARENT)
            .cloned()
            .or_else(|| net.link.clone())
            .unwrap_or_else(|| format!("{}{}", self.dummy_prefix, &net.id.as_str()[..8]))
    }
}

impl NetworkDriver for MacvlanDriver {
    fn name(&self) -> &'static str {
        "macvlan"
    }

    fn create(&self, net: &NetworkState) -> Result<Option<String>, DriverError> {
        if let Some(mode) = net.options.get(opts::MACVLAN_MODE)
            && mode != "bridge"
        {
            return Err(DriverError::MacvlanMode(mode.clone()));
        }
        let parent = self.parent(net);
        let mut nl = Netlink::open().map_err(|source| DriverError::CreateBridge { bridge: parent.clone(), source })?;
        let exists = nl.link(&parent).map_err(|source| DriverError::CreateBridge { bridge: parent.clone(), source })?;
        match (exists, net.options.contains_key(opts::MACVLAN_PARENT)) {
            (Some(_), _) => Ok(if net.options.contains_key(opts::MACVLAN_PARENT) { None } else { Some(parent) }),
            (None, true) => Err(DriverError::NoParent { parent }),
            (None, false) => {
                let err = |source| DriverError::CreateBridge { bridge: parent.clone(), source };
                // Kernels built without the dummy driver get an empty bridge instead: it is
                // just as inert and just as valid a macvlan lower device.
                let idx = match nl.add_dummy(&parent) {
                    Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => nl.add_bridge(&parent, None),
                    r => r,
                }
                .map_err(err)?;
                nl.set_up(idx).map_err(err)?;
                Ok(Some(parent))
            }
        }
    }

    fn delete(&self, net: &NetworkState) -> Result<(), DriverError> {
        // Only a parent we created is ours to delete.
        match &net.link {
            Some(l) if !net.options.contains_key(opts::MACVLAN_PARENT) => {
                let err = |source| DriverError::DeleteLink { link: l.clone(), source };
                Netlink::open().and_then(|mut nl| nl.del_link_by_name(l)).map_err(err)
            }
            _ => Ok(()),
        }
    }

    fn join(&self, net: &NetworkState, spec: &JoinSpec) -> Result<JoinInfo, DriverError> {
        let err =
            |source| DriverError::Join { container: spec.container.to_string(), network: net.name.clone(), source };
        let ns =
            File::open(&spec.netns).map_err(|source| DriverError::OpenNetns { path: spec.netns.clone(), source })?;
        let mut inner = Netlink::open_in(&spec.netns).map_err(err)?;
        let ifname = choose_ifname(&mut inner, spec).map_err(err)?;
        let mac = endpoint_mac(spec);
        let mut nl = Netlink::open().map_err(err)?;
        let parent = nl.link_index(&self.parent(net)).map_err(err)?;
        nl.add_macvlan(&ifname, parent, mtu_of(net)?, Some(ns.as_raw_fd()), Some(mac)).map_err(err)?;
        if let Err(e) = configure_inside(&mut inner, net, spec, &ifname, !net.internal) {
            let _ = inner.del_link_by_name(&ifname);
            return Err(err(e));
        }
        Ok(JoinInfo { ifname, host_ifname: None, mac: Some(mac::format(&mac)) })
    }

    fn leave(&self, _net: &NetworkState, netns: &Path, ifname: &str, _info: &JoinInfo) -> Result<(), DriverError> {
        if !netns.exists() {
            return Ok(());
        }
        let err = |source| DriverError::DeleteLink { link: ifname.to_owned(), source };
        Netlink::open_in(netns).and_then(|mut nl| nl.del_link_by_name(ifname)).map_err(err)
    }
}

/// `--network host`: the container shares the host's namespace; nothing to build.
pub struct HostDriver;

impl NetworkDriver for HostDriver {
    fn name(&self) -> &'static str {
        "host"
    }
    fn create(&self, _: &NetworkState) -> Result<Option<String>, DriverError> {
        Ok(None)
    }
    fn delete(&self, _: &NetworkState) -> Result<(), DriverError> {
        Ok(())
    }
    fn join(&self, _: &NetworkState, _: &JoinSpec) -> Result<JoinInfo, DriverError> {
        Ok(JoinInfo::default())
    }
    fn leave(&self, _: &NetworkState, _: &Path, _: &str, _: &JoinInfo) -> Result<(), DriverError> {
        Ok(())
    }
}

/// `--network none`: the container keeps its own namespace with only `lo`.
pub struct NullDriver;

impl NetworkDriver for NullDriver {
    fn name(&self) -> &'static str {
        "null"
    }
    fn create(&self, _: &NetworkState) -> Result<Option<String>, DriverError> {
        Ok(None)
    }
    fn delete(&self, _: &NetworkState) -> Result<(), DriverError> {
        Ok(())
    }
    fn join(&self, _: &NetworkState, _: &JoinSpec) -> Result<JoinInfo, DriverError> {
        Ok(JoinInfo::default())
    }
    fn leave(&self, _: &NetworkState, _: &Path, _: &str, _: &JoinInfo) -> Result<(), DriverError> {
        Ok(())
    }
}
