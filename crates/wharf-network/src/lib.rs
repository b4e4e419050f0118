//! Container networking the way Docker does it: network namespaces and links over netlink,
//! IPAM, NAT/forwarding/isolation rules, published ports with a userland proxy, the embedded DNS
//! server at `127.0.0.11`, and the `/etc/hosts` and `/etc/resolv.conf` a container gets.
//!
//! Map (start with [`controller`]: it is what the daemon calls, and its module doc gives the
//! lifecycle and what the daemon must persist):
//! - [`controller`]: [`Controller`] — create/delete networks, connect/disconnect container
//!   namespaces, publish ports, start/stop DNS, startup reconcile, full teardown.
//! - [`driver`]: the [`driver::NetworkDriver`] trait and its `bridge`, `macvlan`, `host`, `null`
//!   implementations; [`driver::NetworkState`] is the persisted form of a network.
//! - [`ipam`]: subnets (Docker's default pools, validation messages) and addresses; persistence
//!   through the daemon's [`ipam::IpamStore`].
//! - [`firewall`]: one nftables table per daemon (`nft -j`), replaced atomically from the
//!   desired state on every change; iptables fallback.
//! - [`ports`]: `-p` / `PortBindings` parsing, host-port allocation; [`proxy`]: the userland
//!   TCP/UDP forwarders.
//! - [`dns`]: the per-network name registry and the per-container DNS server.
//! - [`files`]: pure functions for `/etc/hosts` and `/etc/resolv.conf`.
//! - [`netns`]: named namespaces (bind mounts) and running code inside one; [`netlink`]: a small
//!   synchronous rtnetlink client; [`mac`]: Docker's MAC addresses.
//!
//! On disk: bind mounts of namespaces at the paths the daemon gives (`<exec-root>/netns/<id>`).
//! In the kernel: links named with the daemon's prefixes, one firewall table named by the daemon,
//! `net.ipv4.ip_forward=1` (and IPv6 forwarding for IPv6 networks). Nothing else is written;
//! the daemon persists what [`controller`] returns.

pub mod controller;
pub mod dns;
pub mod driver;
pub mod files;
pub mod firewall;
pub mod ipam;
pub mod mac;
pub mod netlink;
pub mod netns;
pub mod ports;
pub mod proxy;

pub use controller::{
    Controller, ControllerConfig, EndpointRequest, EndpointState, IpamConfig, NetworkCreate, NetworkError,
    ReconcileReport,
};
pub use driver::NetworkState;
pub use ipam::{IpamStore, PoolRecord};
pub use ports::{PortMapping, PortSpec, Proto};
