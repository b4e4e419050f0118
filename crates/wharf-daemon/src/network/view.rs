//! How networks look from outside: `GET /networks` and `/networks/{id}`, and the networking
//! parts of a container's inspect (`NetworkSettings`) and `ps` row (`Ports`,
//! `NetworkSettings.Networks`).

use std::collections::HashMap;

use wharf_api::models::{
    ConfigReference, ContainerSummary, ContainerSummaryNetworkSettings, EndpointIpamConfig, EndpointResource,
    EndpointSettings, Ipam, IpamConfig, NetworkInspect, NetworkSettings,
};
use wharf_network::EndpointState;

use super::NetworkService;
use super::model::NetworkRecord;
use super::sandbox::{dns_names, requested_networks};
use crate::container::model::ContainerRecord;

/// A network as the API shows it; `containers` fills `Containers` (inspect) or leaves it empty
/// (list), as moby does.
pub fn network(n: &NetworkRecord, containers: HashMap<String, EndpointResource>) -> NetworkInspect {
    let st = &n.state;
    let config: Vec<IpamConfig> = st
        .subnets
        .iter()
        .map(|s| IpamConfig {
            subnet: Some(s.subnet.to_string()),
            ip_range: s.ip_range.map(|r| r.to_string()),
            gateway: s.gateway.map(|g| g.to_string()),
            auxiliary_addresses: None,
        })
        .collect();
    NetworkInspect {
        name: Some(st.name.clone()),
        id: Some(st.id.to_string()),
        created: Some(n.created.clone()),
        scope: Some("local".into()),
        driver: Some(st.driver.clone()),
        enable_ipv4: Some(n.enable_ipv4),
        enable_ipv6: Some(st.enable_ipv6),
        ipam: Some(Ipam {
            driver: Some(n.ipam_driver.clone()),
            options: n.ipam_options.clone().map(|o| o.into_iter().collect()),
            config: Some(config),
        }),
        internal: Some(st.internal),
        attachable: Some(n.attachable),
        ingress: Some(n.ingress),
        config_from: Some(ConfigReference { network: Some(String::new()) }),
        config_only: Some(false),
        options: Some(st.options.clone().into_iter().collect()),
        labels: Some(n.labels.clone().into_iter().collect()),
        peers: None,
        containers: Some(containers),
        services: None,
        status: None,
    }
}

/// `Containers` of a network inspect: one entry per running container, keyed by its ID.
pub fn attachments(svc: &NetworkService, n: &NetworkRecord) -> HashMap<String, EndpointResource> {
    let names = svc.containers();
    svc.endpoints_on(n.id())
        .into_iter()
        .map(|e| {
            let name = names
                .as_ref()
                .and_then(|c| c.lookup(e.container.as_str()).ok())
                .map(|h| h.name())
                .unwrap_or_else(|| e.container_name.clone());
            let res = EndpointResource {
                name: Some(name),
                endpoint_id: Some(e.endpoint_id.clone()),
                mac_address: Some(e.join.mac.clone().unwrap_or_default()),
                ipv4_address: Some(e.ipv4.map(|a| a.to_string()).unwrap_or_default()),
                ipv6_address: Some(e.ipv6.map(|a| a.to_string()).unwrap_or_default()),
            };
            (e.container.to_string(), res)
        })
        .collect()
}

fn endpoint_settings(
    r: &ContainerRecord,
    net: Option<&NetworkRecord>,
    asked: &EndpointSettings,
    ep: Option<&EndpointState>,
    aliases: Option<Vec<String>>,
) -> EndpointSettings {
    let user_defined = net.is_some_and(NetworkRecord::user_defined);
    let aliases = aliases.or_else(|| asked.aliases.clone()).filter(|a| !a.is_empty());
    let ipam = asked.ipam_config.clone().filter(|c| *c != EndpointIpamConfig::default());
    EndpointSettings {
        ipam_config: ipam,
        links: None,
        mac_address: Some(ep.and_then(|e| e.join.mac.clone()).unwrap_or_default()),
        aliases: aliases.clone(),
        driver_opts: asked.driver_opts.clone(),
        gw_priority: Some(asked.gw_priority.unwrap_or(0)),
        network_id: Some(net.map(|n| n.id().to_string()).unwrap_or_default()),
        endpoint_id: Some(ep.map(|e| e.endpoint_id.clone()).unwrap_or_default()),
        gateway: Some(ep.and_then(|e| e.ipv4.and(e.gateway4)).map(|g| g.to_string()).unwrap_or_default()),
        ip_address: Some(ep.and_then(|e| e.ipv4).map(|a| a.addr().to_string()).unwrap_or_default()),
        ip_prefix_len: Some(ep.and_then(|e| e.ipv4).map(|a| i64::from(a.prefix_len())).unwrap_or(0)),
        ipv6_gateway: Some(ep.and_then(|e| e.ipv6.and(e.gateway6)).map(|g| g.to_string()).unwrap_or_default()),
        global_ipv6_address: Some(ep.and_then(|e| e.ipv6).map(|a| a.addr().to_string()).unwrap_or_default()),
        global_ipv6_prefix_len: Some(ep.and_then(|e| e.ipv6).map(|a| i64::from(a.prefix_len())).unwrap_or(0)),
        dns_names: user_defined.then(|| dns_names(r, &aliases.unwrap_or_default())),
    }
}

impl NetworkService {
    /// A container's `NetworkSettings.Networks`, keyed by network name: the networks it is
    /// connected to while running (with addresses), else the ones it is configured for.
    pub fn container_networks(&self, r: &ContainerRecord) -> HashMap<String, EndpointSettings> {
        let mut out = HashMap::new();
        let asked = requested_networks(r);
        let live = self.endpoints_of(&r.id);
        let stored = self.store.endpoints().unwrap_or_default();
        for ep in &live {
            let net = self.record(&ep.network);
            let name = net.as_ref().map(|n| n.name().to_owned()).unwrap_or_else(|| ep.network.to_string());
            let settings = asked
                .iter()
                .find(|(k, _)| net.as_ref().is_some_and(|n| n.name() == k || n.id().as_str().starts_with(k.as_str())))
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            let aliases = stored
                .iter()
                .find(|s| s.state.network == ep.network && s.state.container == ep.container)
                .map(|s| s.aliases.clone());
            out.insert(name, endpoint_settings(r, net.as_ref(), &settings, Some(ep), aliases));
        }
        if !live.is_empty() || self.sandbox(&r.id).is_some() {
            return out;
        }
        for (key, settings) in asked {
            let net = self.find(&key).ok();
            let name = net.as_ref().map(|n| n.name().to_owned()).unwrap_or(key);
            out.entry(name).or_insert_with(|| endpoint_settings(r, net.as_ref(), &settings, None, None));
        }
        out
    }

    /// Fills a container inspect's `NetworkSettings`.
    pub fn fill_inspect(&self, r: &ContainerRecord, ns: &mut NetworkSettings) {
        let sandbox = self.sandbox(&r.id);
        let granted: Vec<wharf_network::PortMapping> =
            self.endpoints_of(&r.id).into_iter().flat_map(|e| e.ports).collect();
        ns.networks = Some(self.container_networks(r));
        let running = sandbox.is_some();
        ns.ports = Some(if running { super::ports::port_map(r, &granted) } else { HashMap::new() });
        ns.sandbox_key =
            Some(sandbox.as_ref().and_then(|s| s.netns.clone()).map(|p| p.display().to_string()).unwrap_or_default());
        ns.sandbox_id = Some(sandbox.map(|s| s.id).unwrap_or_default());
    }

    /// Fills a `ps` row's `Ports` and `NetworkSettings`.
    pub fn fill_summary(&self, r: &ContainerRecord, s: &mut ContainerSummary) {
        let granted: Vec<wharf_network::PortMapping> =
            self.endpoints_of(&r.id).into_iter().flat_map(|e| e.ports).collect();
        s.ports = Some(super::ports::summary(r, &granted, self.sandbox(&r.id).is_some()));
        s.network_settings = Some(ContainerSummaryNetworkSettings { networks: Some(self.container_networks(r)) });
    }

    /// `ps --filter network=…`: a network the container is on (running) or configured for, by
    /// name or ID (prefix).
    pub fn container_on_network(&self, r: &ContainerRecord, term: &str) -> bool {
        let matches = |n: &NetworkRecord| n.name() == term || n.id().as_str().starts_with(term);
        self.endpoints_of(&r.id).iter().filter_map(|e| self.record(&e.network)).any(|n| matches(&n))
            || requested_networks(r).iter().any(|(k, _)| k == term || self.find(k).ok().is_some_and(|n| matches(&n)))
    }
}
