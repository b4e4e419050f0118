//! The daemon's network settings: Docker's `daemon.json` keys (`bridge`, `bip`, `fixed-cidr`,
//! `default-address-pools`, `mtu`, `iptables`, `ip-forward`, `ip-masq`, `icc`, `userland-proxy`,
//! `dns*`, `firewall-backend`) plus Wharf's `firewall-table` and `link-prefix`, turned into the
//! controller's configuration and the spec of the default `bridge` network.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;
use wharf_network::controller::ControllerConfig;
use wharf_network::driver::opts;
use wharf_network::firewall::Backend;
use wharf_network::ipam::{DefaultPool, docker_default_pools};
use wharf_types::EngineError;

use crate::config::FileConfig;

/// The default bridge's Linux bridge when `bridge` is not set.
pub const DEFAULT_BRIDGE: &str = "wharf0";
pub const DEFAULT_LINK_PREFIX: &str = "wh";
pub const DEFAULT_FIREWALL_TABLE: &str = "wharf";
const DEFAULT_MTU: u32 = 1500;

/// What the default `bridge` network is built from. Serialised as its fingerprint: when it
/// changes across restarts, the network is rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefaultBridge {
    pub name: String,
    /// `bip`: the bridge's address with the subnet's prefix (`10.5.0.1/24`).
    pub bip: Option<IpNet>,
    /// `fixed-cidr`: where container addresses come from.
    pub fixed_cidr: Option<IpNet>,
    pub mtu: u32,
    pub icc: bool,
    pub ip_masq: bool,
}

impl DefaultBridge {
    /// The driver options the network carries (what `docker network inspect bridge` shows).
    pub fn options(&self) -> BTreeMap<String, String> {
        [
            (opts::BRIDGE_NAME, self.name.clone()),
            (opts::DEFAULT_BRIDGE, "true".into()),
            (opts::ENABLE_ICC, self.icc.to_string()),
            (opts::ENABLE_IP_MASQUERADE, self.ip_masq.to_string()),
            ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0".into()),
            (opts::MTU, self.mtu.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    pub fn fingerprint(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Everything the network service reads from the daemon's configuration, once, at start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub controller: ControllerConfig,
    pub bridge: DefaultBridge,
    /// `userland-proxy` (only `true` is implemented; see the module of the service).
    pub userland_proxy: bool,
    /// Daemon-wide `dns`, `dns-search`, `dns-opts` (used when a container sets none).
    pub dns: Vec<IpAddr>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
}

fn invalid(what: &str, value: &str, why: impl std::fmt::Display) -> EngineError {
    EngineError::invalid(format!("invalid {what} {value:?} in the daemon configuration: {why}"))
}

impl Settings {
    pub fn from_config(f: &FileConfig) -> Result<Self, EngineError> {
        let prefix = f.link_prefix.clone().unwrap_or_else(|| DEFAULT_LINK_PREFIX.to_owned());
        if prefix.is_empty() || prefix.len() > 8 || !prefix.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid("link-prefix", &prefix, "use 1 to 8 letters or digits"));
        }
        let backend = match (f.iptables, f.firewall_backend.as_deref()) {
            (Some(false), _) => Some(Backend::Disabled),
            (_, None) => None,
            (_, Some("nftables")) => Some(Backend::Nft),
            (_, Some("iptables")) => Some(Backend::Iptables),
            (_, Some(other)) => return Err(invalid("firewall-backend", other, "use nftables or iptables")),
        };
        let default_pools = match &f.default_address_pools {
            None => docker_default_pools(),
            Some(pools) => pools
                .iter()
                .map(|p| {
                    let base: IpNet = p.base.parse().map_err(|e| invalid("default-address-pools base", &p.base, e))?;
                    if p.size < base.prefix_len() || p.size > base.max_prefix_len() {
                        return Err(invalid("default-address-pools size", &p.size.to_string(), "out of range"));
                    }
                    Ok(DefaultPool { base: base.trunc(), size: p.size })
                })
                .collect::<Result<_, _>>()?,
        };
        let controller = ControllerConfig {
            firewall_table: f.firewall_table.clone().unwrap_or_else(|| DEFAULT_FIREWALL_TABLE.to_owned()),
            firewall_backend: backend,
            bridge_prefix: format!("{prefix}-"),
            veth_prefix: format!("{prefix}v"),
            dummy_prefix: format!("{prefix}d"),
            default_pools,
            ip_forward: f.ip_forward.unwrap_or(true),
            ..Default::default()
        };
        let bip = f.bip.as_deref().map(|b| b.parse::<IpNet>().map_err(|e| invalid("bip", b, e))).transpose()?;
        if let Some(b) = bip
            && (b.addr() == b.network() || !b.addr().is_ipv4())
        {
            return Err(invalid("bip", &b.to_string(), "give the bridge's IPv4 address with a prefix, as 10.5.0.1/24"));
        }
        let fixed_cidr =
            f.fixed_cidr.as_deref().map(|c| c.parse::<IpNet>().map_err(|e| invalid("fixed-cidr", c, e))).transpose()?;
        let bridge = DefaultBridge {
            name: f.bridge.clone().unwrap_or_else(|| DEFAULT_BRIDGE.to_owned()),
            bip,
            fixed_cidr: fixed_cidr.map(|c| c.trunc()),
            mtu: f.mtu.filter(|m| *m > 0).unwrap_or(DEFAULT_MTU),
            icc: f.icc.unwrap_or(true),
            ip_masq: f.ip_masq.unwrap_or(true),
        };
        if bridge.name.is_empty() || bridge.name.len() > 15 {
            return Err(invalid("bridge", &bridge.name, "a link name has 1 to 15 characters"));
        }
        let parse_ips = |v: &Option<Vec<String>>| -> Result<Vec<IpAddr>, EngineError> {
            v.iter().flatten().map(|s| s.parse().map_err(|e| invalid("dns", s, e))).collect()
        };
        Ok(Self {
            controller,
            bridge,
            userland_proxy: f.userland_proxy.unwrap_or(true),
            dns: parse_ips(&f.dns)?,
            dns_search: f.dns_search.clone().unwrap_or_default(),
            dns_options: f.dns_opts.clone().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_docker_keys() {
        let s = Settings::from_config(&FileConfig::default()).unwrap();
        assert_eq!(s.bridge.name, "wharf0");
        assert_eq!(s.controller.firewall_table, "wharf");
        assert_eq!(s.controller.veth_prefix, "whv");
        assert!(s.bridge.icc && s.bridge.ip_masq);
        let f = FileConfig::parse(
            r#"{"bridge":"br9","bip":"10.77.0.1/24","fixed-cidr":"10.77.0.128/25","mtu":1400,"icc":false,
                "ip-masq":false,"iptables":false,"default-address-pools":[{"base":"10.78.0.0/16","size":24}],
                "firewall-table":"t1","link-prefix":"ws3"}"#,
        )
        .unwrap();
        let s = Settings::from_config(&f).unwrap();
        assert_eq!(s.bridge.bip.unwrap().to_string(), "10.77.0.1/24");
        assert_eq!(s.bridge.options()["com.docker.network.bridge.enable_icc"], "false");
        assert_eq!(s.bridge.options()["com.docker.network.driver.mtu"], "1400");
        assert_eq!(s.controller.firewall_backend, Some(Backend::Disabled));
        assert_eq!(s.controller.default_pools[0].size, 24);
        assert_eq!(s.controller.bridge_prefix, "ws3-");
        for bad in [r#"{"bip":"10.77.0.0/24"}"#, r#"{"bip":"nope"}"#, r#"{"link-prefix":"a-b"}"#] {
            assert!(Settings::from_config(&FileConfig::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }
}
