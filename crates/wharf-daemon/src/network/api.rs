//! The `NetworkBackend` of the API: Docker's validation and messages around the controller.

use std::collections::BTreeMap;

use async_trait::async_trait;
use wharf_api::backend::NetworkBackend;
use wharf_api::models::{
    EndpointSettings, NetworkConnectRequest, NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest,
    NetworkInspect, NetworkPruneResponse,
};
use wharf_network::NetworkCreate;
use wharf_network::controller::IpamConfig;
use wharf_network::driver::opts;
use wharf_types::{EngineError, Filters};

use super::model::{IpamEntry, NetworkRecord};
use super::sandbox::{Mode, check_settings};
use super::{NetworkService, classified, view};
use crate::container::supervisor::Op;

const LIST_FILTERS: &[&str] = &["driver", "id", "label", "name", "scope", "type", "dangling"];
const SWARM_ONLY: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
const HOST_CONFLICT: &str = "container cannot be disconnected from host network or connected to host network";

/// Bridge options that must parse as booleans (Docker refuses anything else).
const BOOL_OPTIONS: &[&str] = &[
    opts::ENABLE_ICC,
    opts::ENABLE_IP_MASQUERADE,
    "com.docker.network.enable_ipv6",
    "com.docker.network.bridge.inhibit_ipv4",
];

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// moby's `filters.Match`: equal, or the value found in the text (Docker treats it as a
/// regular expression; plain substrings behave the same).
fn loose_match(value: &str, text: &str) -> bool {
    value == text || text.contains(value)
}

impl NetworkService {
    fn validate_create(&self, req: &NetworkCreateRequest) -> Result<(String, BTreeMap<String, String>), EngineError> {
        if req.name.is_empty() {
            return Err(EngineError::invalid("network name must not be empty"));
        }
        if Self::is_predefined(&req.name) {
            return Err(EngineError::forbidden(format!(
                "operation is not permitted on predefined {} network ",
                req.name
            )));
        }
        let driver = req.driver.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| "bridge".into());
        match driver.as_str() {
            "bridge" | "macvlan" => {}
            "host" | "null" => {
                return Err(EngineError::forbidden(format!("only one instance of \"{driver}\" network is allowed")));
            }
            "overlay" => return Err(EngineError::forbidden(SWARM_ONLY)),
            other => {
                return Err(EngineError::not_found(format!(
                    "could not find plugin {other} in v1 plugin registry: plugin not found"
                )));
            }
        }
        match req.scope.as_deref().unwrap_or("") {
            "" | "local" => {}
            "swarm" | "global" => return Err(EngineError::forbidden(SWARM_ONLY)),
            s => return Err(EngineError::invalid(format!("invalid scope {s}: use local"))),
        }
        if req.ingress == Some(true) {
            return Err(EngineError::forbidden(SWARM_ONLY));
        }
        if req.config_only == Some(true) || req.config_from.as_ref().and_then(|c| c.network.as_ref()).is_some() {
            return Err(EngineError::not_implemented("config-only networks are not supported by wharf"));
        }
        if req.enable_ipv4 == Some(false) {
            return Err(EngineError::not_implemented("networks without IPv4 are not supported by wharf"));
        }
        let ipam_driver = req.ipam.as_ref().and_then(|i| i.driver.clone()).unwrap_or_default();
        if !ipam_driver.is_empty() && ipam_driver != "default" {
            return Err(EngineError::not_found(format!(
                "could not find plugin {ipam_driver} in v1 plugin registry: plugin not found"
            )));
        }
        let options: BTreeMap<String, String> = req.options.clone().unwrap_or_default().into_iter().collect();
        for key in BOOL_OPTIONS {
            if let Some(v) = options.get(*key)
                && parse_bool(v).is_none()
            {
                return Err(EngineError::invalid(format!("driver-opt \"{key}\" is not a valid bool")));
            }
        }
        if let Some(m) = options.get(opts::MTU)
            && m.parse::<u32>().is_err()
        {
            return Err(EngineError::invalid(format!("invalid MTU number: {m}")));
        }
        if let Some(b) = options.get(opts::BRIDGE_NAME) {
            if b.is_empty() || b.len() > 15 {
                return Err(EngineError::invalid(format!("invalid bridge name {b:?}: use 1 to 15 characters")));
            }
            if let Some(other) = self.records().into_iter().find(|n| {
                n.state.options.get(opts::BRIDGE_NAME) == Some(b) || n.state.link.as_deref() == Some(b.as_str())
            }) {
                return Err(EngineError::forbidden(format!(
                    "cannot create network {} ({b}): conflicts with network {} ({b}): networks have same bridge name",
                    req.name,
                    other.id()
                )));
            }
        }
        Ok((driver, options))
    }

    /// Docker's message when a network still has containers.
    fn active_endpoints_error(&self, n: &NetworkRecord) -> Option<EngineError> {
        let eps = self.endpoints_on(n.id());
        if eps.is_empty() {
            return None;
        }
        let svc = self.containers();
        let mut list: Vec<String> = eps
            .iter()
            .map(|e| {
                let name = svc
                    .as_ref()
                    .and_then(|c| c.lookup(e.container.as_str()).ok())
                    .map(|h| h.name())
                    .unwrap_or_else(|| e.container_name.clone());
                format!("name:\"{name}\" id:\"{}\"", e.container.short())
            })
            .collect();
        list.sort();
        Some(EngineError::forbidden(format!(
            "error while removing network: network {} has active endpoints ({})",
            n.name(),
            list.join(", ")
        )))
    }

    async fn delete(&self, n: &NetworkRecord) -> Result<(), EngineError> {
        if let Some(e) = self.active_endpoints_error(n) {
            return Err(e);
        }
        self.ctl.delete_network(n.id()).await.map_err(classified)?;
        self.forget(n.id())?;
        self.event(n, "destroy", None);
        Ok(())
    }

    /// Persists a change to a container's configured networks through its supervisor.
    async fn update_config(
        &self,
        h: &std::sync::Arc<crate::container::Handle>,
        change: impl FnOnce(&mut std::collections::HashMap<String, EndpointSettings>) + Send + 'static,
    ) -> Result<(), EngineError> {
        let svc = self.containers().ok_or_else(|| EngineError::internal("daemon shutting down"))?;
        svc.ask(h, |reply| Op::Update {
            change: Box::new(move |r| {
                let nc = r.networking_config.get_or_insert_with(Default::default);
                change(nc.endpoints_config.get_or_insert_with(Default::default));
                Ok(())
            }),
            reply,
        })
        .await
    }
}

fn configured(r: &crate::container::model::ContainerRecord, svc: &NetworkService, n: &NetworkRecord) -> bool {
    super::sandbox::requested_networks(r)
        .iter()
        .any(|(k, _)| k == n.name() || svc.find(k).ok().is_some_and(|m| m.id() == n.id()))
}

#[async_trait]
impl NetworkBackend for NetworkService {
    async fn list(&self, f: Filters) -> Result<Vec<NetworkInspect>, EngineError> {
        f.validate(LIST_FILTERS)?;
        for t in f.get("type") {
            if t != "custom" && t != "builtin" {
                return Err(EngineError::invalid(format!("invalid filter 'type={t}'")));
            }
        }
        let dangling = f.bool_value("dangling")?;
        self.ready().await?;
        let mut out: Vec<NetworkRecord> = self
            .records()
            .into_iter()
            .filter(|n| {
                f.exact_match("driver", &n.state.driver)
                    && f.any("id", |v| loose_match(v, n.id().as_str()))
                    && f.any("name", |v| loose_match(v, n.name()))
                    && f.match_labels(&n.labels)
                    && f.exact_match("scope", "local")
                    && f.any("type", |t| (t == "builtin") == n.predefined)
                    && dangling.is_none_or(|d| d == (n.user_defined() && self.endpoints_on(n.id()).is_empty()))
            })
            .collect();
        out.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(out.iter().map(|n| view::network(n, Default::default())).collect())
    }

    async fn inspect(&self, id: &str, _verbose: bool, scope: Option<String>) -> Result<NetworkInspect, EngineError> {
        self.ready().await?;
        let n = self.find(id)?;
        if scope.as_deref().is_some_and(|s| s != "local") {
            return Err(EngineError::not_found(format!("network {id} not found")));
        }
        Ok(view::network(&n, view::attachments(self, &n)))
    }

    async fn create(&self, req: NetworkCreateRequest) -> Result<NetworkCreateResponse, EngineError> {
        self.ready().await?;
        let (driver, options) = self.validate_create(&req)?;
        let _admin = self.admin.lock().await;
        if self.by_name(&req.name).is_some() {
            return Err(EngineError::conflict(format!("network with name {} already exists", req.name)));
        }
        let ipam_config: Vec<IpamEntry> = req
            .ipam
            .as_ref()
            .and_then(|i| i.config.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|c| IpamEntry {
                subnet: c.subnet.filter(|s| !s.is_empty()),
                ip_range: c.ip_range.filter(|s| !s.is_empty()),
                gateway: c.gateway.filter(|s| !s.is_empty()),
            })
            .collect();
        let enable_ipv6 = req.enable_ipv6.unwrap_or_else(|| {
            options.get("com.docker.network.enable_ipv6").and_then(|v| parse_bool(v)).unwrap_or(false)
        });
        let state = self
            .ctl
            .create_network(NetworkCreate {
                id: None,
                name: req.name.clone(),
                driver,
                ipam: ipam_config
                    .iter()
                    .map(|c| IpamConfig {
                        subnet: c.subnet.clone(),
                        ip_range: c.ip_range.clone(),
                        gateway: c.gateway.clone(),
                    })
                    .collect(),
                internal: req.internal.unwrap_or(false),
                enable_ipv6,
                options,
            })
            .await
            .map_err(classified)?;
        let rec = NetworkRecord {
            state,
            created: crate::container::now_rfc3339(),
            labels: req.labels.clone().unwrap_or_default().into_iter().collect(),
            attachable: req.attachable.unwrap_or(false),
            ingress: false,
            enable_ipv4: true,
            ipam_driver: "default".into(),
            ipam_options: req.ipam.as_ref().and_then(|i| i.options.clone()).map(|o| o.into_iter().collect()),
            ipam_config,
            predefined: false,
            fingerprint: None,
        };
        if let Err(e) = self.put(rec.clone()) {
            let _ = self.ctl.delete_network(rec.id()).await;
            return Err(e);
        }
        self.event(&rec, "create", None);
        Ok(NetworkCreateResponse { id: rec.id().to_string(), warning: String::new() })
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        self.ready().await?;
        let n = self.find(id)?;
        if n.predefined {
            return Err(EngineError::forbidden(format!("{} is a pre-defined network and cannot be removed", n.name())));
        }
        let _admin = self.admin.lock().await;
        self.delete(&n).await
    }

    async fn connect(&self, id: &str, req: NetworkConnectRequest) -> Result<(), EngineError> {
        self.ready().await?;
        let net = self.find(id)?;
        let svc = self.containers().ok_or_else(|| EngineError::internal("daemon shutting down"))?;
        let h = svc.lookup(&req.container)?;
        let r = h.record();
        let settings = req.endpoint_config.unwrap_or_default();
        match Mode::of(&r) {
            Mode::Host => return Err(EngineError::invalid(HOST_CONFLICT)),
            Mode::Container(_) => {
                return Err(EngineError::invalid(
                    "container sharing network namespace with another container or host cannot be connected to any other network",
                ));
            }
            Mode::None => {
                return Err(EngineError::invalid(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode",
                ));
            }
            Mode::Network(_) => {}
        }
        match net.state.driver.as_str() {
            "host" => return Err(EngineError::invalid(HOST_CONFLICT)),
            "null" => {
                return Err(EngineError::invalid(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode",
                ));
            }
            _ => {}
        }
        check_settings(&net, &settings)?;
        let exists = || {
            EngineError::forbidden(format!("endpoint with name {} already exists in network {}", r.name, net.name()))
        };
        {
            let guard = self.container_lock(&r.id);
            let _g = guard.lock().await;
            match self.sandbox(&r.id) {
                Some(sb) => {
                    if self.endpoints_of(&r.id).iter().any(|e| &e.network == net.id()) {
                        return Err(exists());
                    }
                    self.connect_endpoint(&r, &net, &settings, sb.netns.as_deref(), false, Vec::new()).await?;
                    if let Err(e) = self.refresh_running(&r).await {
                        tracing::warn!(container = %r.id, error = %e.message, "updating /etc/hosts after connect");
                    }
                }
                None if configured(&r, self, &net) => return Err(exists()),
                None => {}
            }
        }
        let name = net.name().to_owned();
        self.update_config(&h, move |eps| {
            eps.insert(name, settings);
        })
        .await
    }

    async fn disconnect(&self, id: &str, req: NetworkDisconnectRequest) -> Result<(), EngineError> {
        self.ready().await?;
        let net = self.find(id)?;
        let svc = self.containers().ok_or_else(|| EngineError::internal("daemon shutting down"))?;
        let force = req.force.unwrap_or(false);
        let h = match svc.lookup(&req.container) {
            Ok(h) => h,
            Err(e) if force => {
                // moby's ForceEndpointDelete: an endpoint whose container is gone.
                let stale = self
                    .endpoints_on(net.id())
                    .into_iter()
                    .find(|ep| ep.container_name == req.container || ep.container.as_str().starts_with(&req.container));
                return match stale {
                    Some(ep) => {
                        self.disconnect_endpoint(&ep).await;
                        Ok(())
                    }
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let r = h.record();
        if net.state.driver == "host" || Mode::of(&r) == Mode::Host {
            return Err(EngineError::invalid(HOST_CONFLICT));
        }
        let not_connected =
            || EngineError::forbidden(format!("container {} is not connected to network {}", r.id, net.name()));
        {
            let guard = self.container_lock(&r.id);
            let _g = guard.lock().await;
            if self.sandbox(&r.id).is_some() {
                let Some(ep) = self.endpoints_of(&r.id).into_iter().find(|e| &e.network == net.id()) else {
                    return Err(not_connected());
                };
                self.disconnect_endpoint(&ep).await;
                if let Err(e) = self.refresh_running(&r).await {
                    tracing::warn!(container = %r.id, error = %e.message, "updating /etc/hosts after disconnect");
                }
            } else if !configured(&r, self, &net) {
                return Err(not_connected());
            }
        }
        let (name, nid) = (net.name().to_owned(), net.id().to_string());
        let is_bridge = name == "bridge";
        self.update_config(&h, move |eps| {
            eps.retain(|k, _| k != &name && !nid.starts_with(k.as_str()) && !(is_bridge && k == "default"));
        })
        .await
    }

    async fn prune(&self, f: Filters) -> Result<NetworkPruneResponse, EngineError> {
        f.validate(&["until", "label", "label!"])?;
        let until = f.get("until").next().map(crate::container::api::parse_until).transpose()?;
        self.ready().await?;
        let _admin = self.admin.lock().await;
        let mut deleted = Vec::new();
        let mut candidates = self.records();
        candidates.sort_by(|a, b| a.name().cmp(b.name()));
        for n in candidates {
            if n.predefined || !f.match_labels(&n.labels) || !self.endpoints_on(n.id()).is_empty() {
                continue;
            }
            if let Some(u) = until
                && chrono::DateTime::parse_from_rfc3339(&n.created).map(|c| c.timestamp()).unwrap_or(0) >= u
            {
                continue;
            }
            match self.delete(&n).await {
                Ok(()) => deleted.push(n.name().to_owned()),
                Err(e) => tracing::warn!(network = %n.name(), error = %e.message, "prune could not remove a network"),
            }
        }
        Ok(NetworkPruneResponse { networks_deleted: Some(deleted) })
    }
}
