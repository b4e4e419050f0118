//! Networks: the daemon's side of `wharf-network` — persistence, the predefined networks,
//! startup reconcile, the API (`NetworkBackend`) and what containers need at start and exit.
//!
//! Map:
//! - [`NetworkService`] (this file): owns the [`Controller`], the network records, the running
//!   containers' sandboxes; lookups (`FindNetwork`'s order), events, the predefined networks
//!   and [`NetworkService::ready`] (the one-time startup reconcile).
//! - [`model`]: what is persisted; [`store`]: the three tables and the `IpamStore`.
//! - [`settings`]: daemon.json → controller configuration and the default bridge.
//! - [`sandbox`]: the container hooks — `attach` at start (endpoints, ports, DNS names,
//!   `/etc/hosts`, `/etc/resolv.conf`, the embedded DNS server), `release` at exit, and
//!   connect/disconnect of running containers.
//! - [`api`]: the `NetworkBackend` (create with Docker's validation, list filters, inspect,
//!   remove, connect, disconnect, prune).
//! - [`view`]: network inspect, and the container's `NetworkSettings` and `ps` fields.
//! - [`ports`]: a container's published ports.
//!
//! Ownership: a container's endpoints belong to this service while it runs (one async lock per
//! container serialises attach, release, connect and disconnect); the *configured* networks
//! live in the container record (`HostConfig.NetworkMode`, `NetworkingConfig`) and are changed
//! through the container's supervisor.
//!
//! Startup and shutdown: [`NetworkService::ready`] runs once, before the first container
//! starts or API call: it reconciles the kernel with the stored networks and the endpoints of
//! containers still running (live restore), removes what a killed daemon left half-made
//! (veths, rules, addresses, namespace mounts), restarts DNS servers and creates or updates the
//! predefined networks. [`NetworkService::shutdown`] removes the firewall table and stops the
//! proxies when no running container uses them.

pub mod api;
pub mod model;
pub mod ports;
pub mod sandbox;
pub mod settings;
pub mod store;
pub mod view;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use ipnet::IpNet;
use wharf_network::controller::IpamConfig;
use wharf_network::{Controller, NetworkCreate, NetworkState};
use wharf_store::Db;
use wharf_types::{ContainerId, EngineError, Event, EventType, NetworkId};

use crate::config::Config;
use crate::container::ContainerService;
use crate::container::model::{ContainerRecord, Status};
use crate::events::EventBus;
use model::{NetworkRecord, PREDEFINED};
use settings::Settings;
use store::Store;

/// Where a running container's networking lives.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// Docker's `SandboxID` (random, per start).
    pub id: String,
    /// The container's own namespace (`None` for `host` and `container:` modes).
    pub netns: Option<PathBuf>,
    /// Its `hostname`, `hosts`, `resolv.conf` directory.
    pub etc_dir: PathBuf,
    /// Whether the embedded DNS server runs for it.
    pub dns: bool,
}

impl Sandbox {
    fn new(netns: Option<PathBuf>, etc_dir: PathBuf, dns: bool) -> Self {
        Self { id: wharf_types::random_hex_id(), netns, etc_dir, dns }
    }
}

/// See the module documentation.
pub struct NetworkService {
    ctl: Controller,
    store: Store,
    events: Arc<EventBus>,
    settings: Settings,
    exec_root: PathBuf,
    nets: RwLock<BTreeMap<NetworkId, NetworkRecord>>,
    ready: tokio::sync::OnceCell<Result<(), EngineError>>,
    containers: OnceLock<Weak<ContainerService>>,
    sandboxes: Mutex<HashMap<ContainerId, Sandbox>>,
    locks: Mutex<HashMap<ContainerId, Arc<tokio::sync::Mutex<()>>>>,
    /// Serialises network create, remove and prune (name uniqueness).
    admin: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn classified<E: wharf_types::Classify + std::error::Error>(e: E) -> EngineError {
    EngineError::from_classified(&e)
}

impl NetworkService {
    /// Reads the settings, the stored networks and IPAM pools, and builds the controller.
    /// Touches nothing in the kernel: that happens in [`NetworkService::ready`].
    pub fn open(db: Arc<Db>, events: Arc<EventBus>, config: &Config) -> Result<Arc<Self>, EngineError> {
        let settings = Settings::from_config(&config.file)?;
        let store = Store::open(db)?;
        let pools = store.pools()?;
        let ctl = Controller::new(settings.controller.clone(), store.ipam_store(), pools).map_err(classified)?;
        let nets = store.networks()?.into_iter().map(|n| (n.id().clone(), n)).collect();
        Ok(Arc::new(Self {
            ctl,
            store,
            events,
            settings,
            exec_root: config.exec_root.clone(),
            nets: RwLock::new(nets),
            ready: tokio::sync::OnceCell::new(),
            containers: OnceLock::new(),
            sandboxes: Mutex::default(),
            locks: Mutex::default(),
            admin: tokio::sync::Mutex::new(()),
        }))
    }

    /// Lets the service find containers (names for messages, connect by name).
    pub fn set_containers(&self, svc: Weak<ContainerService>) {
        let _ = self.containers.set(svc);
    }

    fn containers(&self) -> Option<Arc<ContainerService>> {
        self.containers.get().and_then(Weak::upgrade)
    }

    pub fn controller(&self) -> &Controller {
        &self.ctl
    }

    /// Runs the startup reconcile once; every later call returns its outcome.
    pub async fn ready(&self) -> Result<(), EngineError> {
        self.ready.get_or_init(|| self.initialize()).await.clone()
    }

    // ---- lookups ---------------------------------------------------------------------------

    pub(crate) fn records(&self) -> Vec<NetworkRecord> {
        self.nets.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    pub(crate) fn record(&self, id: &NetworkId) -> Option<NetworkRecord> {
        self.nets.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    fn put(&self, n: NetworkRecord) -> Result<(), EngineError> {
        self.store.put_network(&n)?;
        self.nets.write().unwrap_or_else(|p| p.into_inner()).insert(n.id().clone(), n);
        Ok(())
    }

    fn forget(&self, id: &NetworkId) -> Result<(), EngineError> {
        self.store.delete_network(id)?;
        self.nets.write().unwrap_or_else(|p| p.into_inner()).remove(id);
        Ok(())
    }

    /// moby's `FindNetwork`: full ID, then exact name, then a unique ID prefix.
    pub fn find(&self, term: &str) -> Result<NetworkRecord, EngineError> {
        let nets = self.nets.read().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = nets.values().find(|n| n.id().as_str() == term) {
            return Ok(n.clone());
        }
        if let Some(n) = nets.values().find(|n| n.name() == term) {
            return Ok(n.clone());
        }
        let by_prefix: Vec<&NetworkRecord> =
            nets.values().filter(|n| !term.is_empty() && n.id().as_str().starts_with(term)).collect();
        match by_prefix.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(EngineError::not_found(format!("network {term} not found"))),
            many => Err(EngineError::invalid(format!(
                "network {term} is ambiguous ({} matches found based on ID prefix)",
                many.len()
            ))),
        }
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<NetworkRecord> {
        self.nets.read().unwrap_or_else(|p| p.into_inner()).values().find(|n| n.name() == name).cloned()
    }

    /// The endpoints of running containers on a network, or of one container.
    pub(crate) fn endpoints_on(&self, network: &NetworkId) -> Vec<wharf_network::EndpointState> {
        self.ctl.endpoints().into_iter().filter(|e| &e.network == network).collect()
    }

    pub(crate) fn endpoints_of(&self, container: &ContainerId) -> Vec<wharf_network::EndpointState> {
        self.ctl.endpoints().into_iter().filter(|e| &e.container == container).collect()
    }

    /// Network events carry the network's name and driver, and the container for connect and
    /// disconnect, as Docker's do.
    pub(crate) fn event(&self, n: &NetworkRecord, action: &str, container: Option<&ContainerId>) {
        let mut attrs: BTreeMap<String, String> =
            [("name".to_owned(), n.name().to_owned()), ("type".to_owned(), n.state.driver.clone())].into();
        if let Some(c) = container {
            attrs.insert("container".to_owned(), c.to_string());
        }
        self.events.publish(Event::now(EventType::Network, action, n.id().as_str(), attrs));
    }

    /// The address `host-gateway` stands for: the default bridge's gateway.
    pub(crate) fn host_gateway(&self) -> Option<IpAddr> {
        self.by_name("bridge").and_then(|n| n.state.gateway(false))
    }

    // ---- startup ---------------------------------------------------------------------------

    async fn initialize(&self) -> Result<(), EngineError> {
        let records = match self.containers() {
            Some(svc) => svc.load_all()?,
            None => Vec::new(),
        };
        let running: HashMap<ContainerId, ContainerRecord> = records
            .into_iter()
            .filter(|r| matches!(r.state.status, Status::Running | Status::Paused))
            .map(|r| (r.id.clone(), r))
            .collect();
        let mut live = Vec::new();
        for ep in self.store.endpoints()? {
            if running.contains_key(&ep.state.container) {
                live.push(ep);
            } else {
                self.store.delete_endpoint(&ep.state.network, &ep.state.container)?;
            }
        }
        let states: Vec<NetworkState> = self.records().into_iter().map(|n| n.state).collect();
        let report = self
            .ctl
            .reconcile(states, live.iter().map(|e| e.state.clone()).collect(), None, Vec::new())
            .await
            .map_err(classified)?;
        for r in &report.removed {
            tracing::info!(what = %r, "network reconcile removed");
        }
        for r in &report.restored {
            tracing::debug!(what = %r, "network reconcile restored");
        }
        // Links may have been re-adopted under their recorded names; keep the records in step.
        for st in self.ctl.networks() {
            if let Some(mut n) = self.record(&st.id)
                && n.state != st
            {
                n.state = st;
                self.put(n)?;
            }
        }
        let kept: std::collections::BTreeSet<(NetworkId, ContainerId)> =
            self.ctl.endpoints().into_iter().map(|e| (e.network, e.container)).collect();
        for ep in &live {
            if !kept.contains(&(ep.state.network.clone(), ep.state.container.clone())) {
                self.store.delete_endpoint(&ep.state.network, &ep.state.container)?;
            }
        }
        self.remove_stale_namespaces(&running).await;
        self.ensure_predefined().await?;
        if let Some(svc) = self.containers() {
            for r in running.values() {
                sandbox::restore(self, &svc, r).await;
            }
        }
        Ok(())
    }

    /// Namespace mounts of containers that are not running: a daemon killed while starting one
    /// leaves them behind.
    async fn remove_stale_namespaces(&self, running: &HashMap<ContainerId, ContainerRecord>) {
        let Ok(dirs) = std::fs::read_dir(self.exec_root.join("c")) else {
            return;
        };
        for d in dirs.flatten() {
            let name = d.file_name().to_string_lossy().into_owned();
            if running.keys().any(|id| id.as_str().starts_with(&name)) {
                continue;
            }
            let ns = d.path().join("netns");
            if wharf_network::netns::is_netns_mount(&ns) {
                match wharf_network::netns::delete(ns.clone()).await {
                    Ok(()) => tracing::info!(netns = %ns.display(), "removed a stale network namespace"),
                    Err(e) => tracing::warn!(netns = %ns.display(), error = %e, "removing a stale namespace failed"),
                }
            }
        }
    }

    /// Creates `bridge`, `host` and `none` when missing, and rebuilds `bridge` when the daemon
    /// settings it came from changed (unless containers still use it).
    async fn ensure_predefined(&self) -> Result<(), EngineError> {
        let want = self.settings.bridge.clone();
        let fingerprint = want.fingerprint();
        match self.by_name("bridge") {
            Some(n) if n.fingerprint.as_deref() == Some(fingerprint.as_str()) => {}
            Some(n) if !self.endpoints_on(n.id()).is_empty() => {
                tracing::warn!(
                    "the default bridge settings changed, but running containers use it: keeping it until they stop"
                );
            }
            Some(n) => {
                tracing::info!(bridge = %want.name, "default bridge settings changed: rebuilding the bridge network");
                self.ctl.delete_network(n.id()).await.map_err(classified)?;
                self.forget(n.id())?;
                self.create_default_bridge(&want, fingerprint).await?;
            }
            None => self.create_default_bridge(&want, fingerprint).await?,
        }
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if self.by_name(name).is_none() {
                let state = self
                    .ctl
                    .create_network(NetworkCreate { name: name.into(), driver: driver.into(), ..Default::default() })
                    .await
                    .map_err(classified)?;
                self.put(NetworkRecord {
                    state,
                    created: crate::container::now_rfc3339(),
                    labels: BTreeMap::new(),
                    attachable: false,
                    ingress: false,
                    enable_ipv4: true,
                    ipam_driver: "default".into(),
                    ipam_options: None,
                    ipam_config: Vec::new(),
                    predefined: true,
                    fingerprint: None,
                })?;
            }
        }
        Ok(())
    }

    async fn create_default_bridge(
        &self,
        want: &settings::DefaultBridge,
        fingerprint: String,
    ) -> Result<(), EngineError> {
        let link_name = want.name.clone();
        // Docker adopts the address of an existing bridge when `bip` is not given.
        let existing: Option<IpNet> = tokio::task::spawn_blocking(move || {
            let mut nl = wharf_network::netlink::Netlink::open().ok()?;
            let link = nl.link(&link_name).ok()??;
            nl.addresses(link.index).ok()?.into_iter().find(|a| a.addr().is_ipv4())
        })
        .await
        .ok()
        .flatten();
        let bip = want.bip.or(existing);
        let ipam = match (bip, want.fixed_cidr) {
            (Some(b), range) => vec![IpamConfig {
                subnet: Some(b.trunc().to_string()),
                ip_range: range.map(|r| r.to_string()),
                gateway: Some(b.addr().to_string()),
            }],
            (None, Some(range)) => vec![IpamConfig { subnet: Some(range.to_string()), ip_range: None, gateway: None }],
            (None, None) => Vec::new(),
        };
        let mut state = self
            .ctl
            .create_network(NetworkCreate {
                name: "bridge".into(),
                driver: "bridge".into(),
                ipam,
                options: want.options(),
                ..Default::default()
            })
            .await
            .map_err(classified)?;
        state.mtu = Some(want.mtu);
        self.put(NetworkRecord {
            state,
            created: crate::container::now_rfc3339(),
            labels: BTreeMap::new(),
            attachable: false,
            ingress: false,
            enable_ipv4: true,
            ipam_driver: "default".into(),
            ipam_options: None,
            ipam_config: Vec::new(),
            predefined: true,
            fingerprint: Some(fingerprint),
        })
    }

    /// Daemon shutdown: with no running container on our networks, the firewall table goes and
    /// the proxies and DNS servers stop; otherwise everything stays for live restore (the next
    /// daemon reconciles it).
    pub async fn shutdown(&self) {
        if self.ready.get().is_none() {
            return;
        }
        let in_use = !lock(&self.sandboxes).is_empty() || !self.ctl.endpoints().is_empty();
        if in_use {
            tracing::info!("containers still use the networks: leaving rules in place for live restore");
            return;
        }
        if let Err(e) = self.ctl.teardown_rules().await {
            tracing::warn!(error = %e, "removing the firewall rules failed");
        }
    }

    /// Whether a container name is one of the predefined networks' (for `docker network create`).
    pub fn is_predefined(name: &str) -> bool {
        PREDEFINED.contains(&name)
    }
}
