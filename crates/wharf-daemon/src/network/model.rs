//! What the daemon persists about networks and endpoints (one JSON document per row, written in
//! one statement per change; see [`super::store`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wharf_network::{EndpointState, NetworkState};

/// The predefined networks: they always exist and cannot be created or removed by users.
pub const PREDEFINED: &[&str] = &["bridge", "host", "none"];

/// One `IPAM.Config` entry as the user gave it (what inspect shows for user-given subnets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamEntry {
    pub subnet: Option<String>,
    pub ip_range: Option<String>,
    pub gateway: Option<String>,
}

/// A network: the controller's [`NetworkState`] plus the API's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub state: NetworkState,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    pub labels: BTreeMap<String, String>,
    pub attachable: bool,
    pub ingress: bool,
    pub enable_ipv4: bool,
    /// `IPAM.Driver` (always `default`).
    pub ipam_driver: String,
    /// `IPAM.Options` (`null` when none were given, as Docker shows for `bridge`).
    pub ipam_options: Option<BTreeMap<String, String>>,
    /// `IPAM.Config` as requested; empty when IPAM chose the subnets.
    pub ipam_config: Vec<IpamEntry>,
    /// One of [`PREDEFINED`].
    pub predefined: bool,
    /// For the default bridge: the daemon settings it was built from, to notice a change of
    /// `bip`, `bridge`, `mtu`… across restarts.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

impl NetworkRecord {
    pub fn id(&self) -> &wharf_types::NetworkId {
        &self.state.id
    }
    pub fn name(&self) -> &str {
        &self.state.name
    }
    /// Docker's `IsUserDefined`: everything but `bridge`, `host`, `none`. Only user-defined
    /// networks have the embedded DNS and network-scoped aliases.
    pub fn user_defined(&self) -> bool {
        !self.predefined
    }
}

/// A container's endpoint on one network, as stored while the container runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub state: EndpointState,
    /// `--network-alias` values (what inspect shows as `Aliases`).
    pub aliases: Vec<String>,
}
