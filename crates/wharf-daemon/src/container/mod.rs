//! Containers: create, lookup, list and the per-container supervisors.
//!
//! Ownership (STYLE 10): each container has one supervisor task ([`supervisor`]) that alone
//! changes its state; API calls send it [`supervisor::Op`]s and read the last published record.
//! Map:
//! - [`model`]: the persisted record (one JSON document per container in `containers`).
//! - [`names`]: generated and user names.
//! - [`supervisor`]: the actor — start, stop, kill, restart, pause, exit handling, restart
//!   policies, removal.
//! - [`run`]: what starting a container does on the host (rootfs mount, netns, /etc files,
//!   OCI bundle, shim) and its undo.
//! - [`spec`]: the record → `SpecOptions` mapping (Docker's HostConfig semantics).
//! - [`mounts`]: a new container's volumes, binds and tmpfs mounts (with `crate::volume`).
//! - [`view`]: inspect and list shapes, `Status` strings, ps filters.
//! - [`restore`]: live restore at daemon start (reconnect to shims, collect missed exits).
//! - [`fsview`]: a container's root for file operations (its mount namespace while running,
//!   its layer in a private mount namespace otherwise), resolved with `RESOLVE_IN_ROOT`;
//!   [`archive`]: `docker cp` and export on it; [`changes`]: `docker diff`; [`commit`]: new
//!   images from the writable layer; [`update`]: resources and restart policy.
//! - [`oneshot`]: one process on a rootfs mounted elsewhere (build steps), not a container of
//!   this service; [`intermediate`]: the step containers a build keeps, which are.
//!
//! On disk: `<data-root>/containers/<id>/` (logs, hostname, hosts, resolv.conf);
//! `<exec-root>/c/<id32>/` (bundle `config.json`, `rootfs/` mount point, `netns`, shim state).

pub mod api;
pub mod archive;
pub mod attach;
pub mod changes;
pub mod commit;
pub mod exec;
pub mod fsview;
pub mod health;
pub mod intermediate;
pub mod model;
pub mod mounts;
pub mod names;
pub mod oneshot;
pub mod restore;
pub mod run;
pub mod spec;
pub mod stats;
pub mod supervisor;
pub mod update;
pub mod view;
pub mod view_top;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};
use wharf_api::models::{ContainerConfig, ContainerCreateBody, HostConfig};
use wharf_snapshot::Snapshotter;
use wharf_types::image::ImageConfig;
use wharf_types::{ContainerId, EngineError, Event, EventType};

use crate::events::EventBus;
use model::{ContainerRecord, State, Status};

/// An image as containers need it.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// `sha256:…`
    pub id: String,
    pub config: ImageConfig,
    /// The snapshot name of the top layer (`None` for an image without layers).
    pub top_layer: Option<String>,
}

/// What containers need from the image service.
#[async_trait]
pub trait ImageProvider: Send + Sync + 'static {
    /// Docker's image lookup; `No such image: x` (NotFound) when it does not exist.
    async fn resolve_image(&self, name: &str) -> Result<ResolvedImage, EngineError>;
    /// The snapshotter holding image layers and container rw layers.
    fn snapshotter(&self) -> Arc<dyn Snapshotter>;
    /// Makes an image (commit); providers that only resolve images refuse.
    fn create_image(&self, _new: crate::image::NewImage) -> Result<wharf_types::ImageId, EngineError> {
        Err(EngineError::not_implemented("this image provider cannot create images"))
    }
}

/// Paths and settings the container code needs from the daemon.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub shim_binary: PathBuf,
    pub init_binary: PathBuf,
}

impl Paths {
    pub fn container_dir(&self, id: &ContainerId) -> PathBuf {
        self.data_root.join("containers").join(id.as_str())
    }
    /// Short enough for unix socket paths under the run dir.
    pub fn run_dir(&self, id: &ContainerId) -> PathBuf {
        self.exec_root.join("c").join(&id.as_str()[..32])
    }
    pub fn runtime_root(&self, runtime: &str) -> PathBuf {
        self.exec_root.join("runtime").join(runtime)
    }
}

/// Exit bookkeeping waiters watch.
#[derive(Debug, Clone, Default)]
pub struct ExitWatch {
    /// Increments at every exit.
    pub exits: u64,
    pub code: i64,
    pub error: Option<String>,
    pub removed: bool,
    pub running: bool,
}

/// A live container: its last published record, its supervisor's mailbox, its exit watch.
pub struct Handle {
    pub id: ContainerId,
    record: RwLock<ContainerRecord>,
    pub(crate) ops: mpsc::Sender<supervisor::Op>,
    pub(crate) exits: watch::Sender<ExitWatch>,
    pub(crate) shim: std::sync::Mutex<Option<wharf_runtime::shim::ShimClient>>,
    /// Attach sessions waiting for the next start (`docker run` attaches before starting).
    pub(crate) pending_attach: std::sync::Mutex<Vec<attach::Pending>>,
}

impl Handle {
    /// A copy of the current record.
    pub fn record(&self) -> ContainerRecord {
        self.record.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn name(&self) -> String {
        self.record.read().unwrap_or_else(|p| p.into_inner()).name.clone()
    }

    pub(crate) fn set_record(&self, r: ContainerRecord) {
        *self.record.write().unwrap_or_else(|p| p.into_inner()) = r;
    }

    pub fn shim(&self) -> Option<wharf_runtime::shim::ShimClient> {
        self.shim.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Hands a freshly created shim to every waiting attach session and waits (briefly) until
    /// each has connected, so the process's first output reaches them.
    pub(crate) async fn connect_pending_attaches(&self, client: &wharf_runtime::shim::ShimClient) {
        let pending: Vec<attach::Pending> =
            std::mem::take(&mut *self.pending_attach.lock().unwrap_or_else(|p| p.into_inner()));
        let mut readies = Vec::new();
        for p in pending {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if p.send((client.clone(), tx)).is_ok() {
                readies.push(rx);
            }
        }
        for r in readies {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), r).await;
        }
    }
}

/// Finds a runtime by name (`wharf`, `runc`, daemon.json `runtimes`).
pub type RuntimeLookup = Arc<dyn Fn(&str) -> Option<wharf_runtime::shim::protocol::RuntimeConfig> + Send + Sync>;

/// Everything a supervisor needs, shared.
pub struct Ctx {
    pub db: Arc<wharf_store::Db>,
    pub events: Arc<EventBus>,
    pub images: Arc<dyn ImageProvider>,
    pub volumes: Arc<crate::volume::VolumeService>,
    pub paths: Paths,
    pub runtimes: RuntimeLookup,
    pub default_runtime: String,
    pub log_driver: String,
    pub log_opts: std::collections::BTreeMap<String, String>,
    pub cgroup_parent: String,
    pub containers: std::sync::Weak<ContainerService>,
    /// Networking of started containers (endpoints, ports, DNS, /etc files).
    pub network: Arc<crate::network::NetworkService>,
}

/// The set of containers.
pub struct ContainerService {
    pub(crate) ctx: Arc<Ctx>,
    map: RwLock<HashMap<ContainerId, Arc<Handle>>>,
    pub(crate) execs: exec::Execs,
}

const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS containers (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, doc TEXT NOT NULL) STRICT;";

impl ContainerService {
    pub fn new(ctx_fn: impl FnOnce(std::sync::Weak<ContainerService>) -> Ctx) -> Result<Arc<Self>, EngineError> {
        let svc = Arc::new_cyclic(|weak| ContainerService {
            ctx: Arc::new(ctx_fn(weak.clone())),
            map: RwLock::new(HashMap::new()),
            execs: exec::Execs::default(),
        });
        svc.ctx.db.conn().execute_batch(SCHEMA).map_err(internal)?;
        Ok(svc)
    }

    pub(crate) fn handles(&self) -> Vec<Arc<Handle>> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Docker's lookup: full ID, name (with or without `/`), then a unique ID prefix.
    pub fn lookup(&self, key: &str) -> Result<Arc<Handle>, EngineError> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = ContainerId::parse(key)
            && let Some(h) = map.get(&id)
        {
            return Ok(h.clone());
        }
        let name = key.strip_prefix('/').unwrap_or(key);
        if let Some(h) = map.values().find(|h| h.name() == name) {
            return Ok(h.clone());
        }
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found = map.values().filter(|h| h.id.as_str().starts_with(key));
            if let Some(h) = found.next() {
                if found.next().is_some() {
                    return Err(EngineError::invalid(format!("multiple IDs found with provided prefix: {key}")));
                }
                return Ok(h.clone());
            }
        }
        Err(EngineError::not_found(format!("No such container: {key}")))
    }

    fn name_owner(&self, name: &str) -> Option<ContainerId> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).values().find(|h| h.name() == name).map(|h| h.id.clone())
    }

    /// Creates a container from an API create body.
    pub async fn create(
        &self,
        name: Option<&str>,
        body: ContainerCreateBody,
    ) -> Result<(ContainerId, Vec<String>), EngineError> {
        self.create_as(ContainerId::random(), name, body, State::default()).await
    }

    /// [`ContainerService::create`] with the ID and the initial state given (a container a
    /// build keeps has the ID the build printed, and may have run already).
    pub(crate) async fn create_as(
        &self,
        id: ContainerId,
        name: Option<&str>,
        body: ContainerCreateBody,
        state: State,
    ) -> Result<(ContainerId, Vec<String>), EngineError> {
        let image_name =
            body.image.clone().filter(|s| !s.is_empty()).ok_or_else(|| EngineError::invalid("No command specified"))?;
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = names::validate(n).map_err(EngineError::invalid)?.to_owned();
                if let Some(owner) = self.name_owner(&n) {
                    return Err(EngineError::conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{owner}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                n
            }
            None => {
                let mut retry = 0;
                loop {
                    let n = names::generate(retry);
                    if self.name_owner(&n).is_none() {
                        break n;
                    }
                    retry += 1;
                }
            }
        };
        let mut host_config = body.host_config.clone().unwrap_or_default();
        let mut warnings = spec::validate_host_config(&mut host_config)?;
        let image = self.ctx.images.resolve_image(&image_name).await?;
        let mut config = spec::merge_create_config(&body, &image.config);
        let (path, args) = spec::entrypoint_and_args(&config)?;
        let runtime =
            host_config.runtime.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| self.ctx.default_runtime.clone());
        if (self.ctx.runtimes)(&runtime).is_none() {
            return Err(EngineError::invalid(format!("unknown or invalid runtime name: {runtime}")));
        }
        host_config.runtime = Some(runtime.clone());
        // An empty type means the daemon's driver; the daemon's options apply only then, and
        // options given with the request win over them.
        let mut log_config = host_config.log_config.clone().unwrap_or_default();
        if log_config.typ.as_deref().is_none_or(str::is_empty) {
            log_config.typ = Some(self.ctx.log_driver.clone());
            let mut opts: std::collections::HashMap<String, String> = self.ctx.log_opts.clone().into_iter().collect();
            opts.extend(log_config.config.take().unwrap_or_default());
            log_config.config = Some(opts);
        }
        host_config.log_config = Some(log_config);
        let log_driver = host_config.log_config.as_ref().and_then(|l| l.typ.clone()).unwrap_or_default();
        if !matches!(log_driver.as_str(), "json-file" | "local" | "none") {
            return Err(EngineError::invalid(format!(
                "failed to create task for container: logger: no log driver named '{log_driver}' is registered"
            )));
        }
        warnings.extend(crate::network::sandbox::prepare_create(
            &mut config,
            &host_config,
            body.networking_config.as_ref(),
            &id,
        )?);
        let dir = self.ctx.paths.container_dir(&id);
        let log_path = match log_driver.as_str() {
            "json-file" => dir.join(format!("{id}-json.log")).display().to_string(),
            "local" => dir.join("local-logs").join("container.log").display().to_string(),
            _ => String::new(),
        };
        if config.stop_signal.as_deref().is_some_and(|s| wharf_types::signal::parse(s).is_none()) {
            return Err(EngineError::invalid(format!(
                "Invalid signal: {}",
                config.stop_signal.clone().unwrap_or_default()
            )));
        }
        let rw_layer = format!("container-{id}");
        let snapshotter = self.ctx.images.snapshotter();
        {
            let (key, parent) = (rw_layer.clone(), image.top_layer.clone());
            tokio::task::spawn_blocking(move || snapshotter.prepare(&key, parent.as_deref()))
                .await
                .map_err(internal)?
                .map_err(|e| EngineError::from_classified(&e))?;
        }
        let mount_points = match self.create_mounts(&id, &host_config, &config, &rw_layer).await {
            Ok(m) => m,
            Err(e) => {
                self.discard_rw_layer(&rw_layer).await;
                return Err(e);
            }
        };
        if let Err(e) = tokio::fs::create_dir_all(&dir).await {
            self.ctx.volumes.forget(id.as_str(), &mount_points, true);
            self.discard_rw_layer(&rw_layer).await;
            return Err(internal(e));
        }
        let record = ContainerRecord {
            id: id.clone(),
            name,
            created: now_rfc3339(),
            image: image_name,
            image_id: image.id.clone(),
            config,
            host_config,
            networking_config: body.networking_config.clone(),
            path,
            args,
            has_been_started: state.status != Status::Created,
            state,
            restart_count: 0,
            manually_stopped: false,
            runtime,
            log_path,
            rw_layer: rw_layer.clone(),
            image_top_layer: image.top_layer,
            mount_points,
        };
        if let Err(e) = self.persist_new(&record) {
            self.ctx.volumes.forget(id.as_str(), &record.mount_points, true);
            self.discard_rw_layer(&rw_layer).await;
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(e);
        }
        let handle = self.install(record.clone(), None);
        self.ctx.events.publish(Event::now(EventType::Container, "create", id.as_str(), record.event_attributes()));
        drop(handle);
        if image.config.config.as_ref().and_then(|c| c.volumes.as_ref()).is_some_and(|v| !v.is_empty()) {
            warnings.retain(|_| true);
        }
        Ok((id, warnings))
    }

    async fn discard_rw_layer(&self, key: &str) {
        let snapshotter = self.ctx.images.snapshotter();
        let key = key.to_owned();
        let _ = tokio::task::spawn_blocking(move || snapshotter.remove(&key)).await;
    }

    fn persist_new(&self, r: &ContainerRecord) -> Result<(), EngineError> {
        let doc = serde_json::to_string(r).map_err(internal)?;
        self.ctx
            .db
            .conn()
            .execute("INSERT INTO containers (id, name, doc) VALUES (?1, ?2, ?3)", (r.id.as_str(), &r.name, &doc))
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => EngineError::conflict(format!(
                    "Conflict. The container name \"/{}\" is already in use. You have to remove (or rename) that container to be able to reuse that name.",
                    r.name
                )),
                other => internal(other),
            })?;
        Ok(())
    }

    /// Writes the record in one transaction.
    pub(crate) fn persist(&self, r: &ContainerRecord) -> Result<(), EngineError> {
        let doc = serde_json::to_string(r).map_err(internal)?;
        self.ctx
            .db
            .conn()
            .execute("UPDATE containers SET name = ?2, doc = ?3 WHERE id = ?1", (r.id.as_str(), &r.name, &doc))
            .map_err(internal)?;
        Ok(())
    }

    pub(crate) fn delete_row(&self, id: &ContainerId) -> Result<(), EngineError> {
        self.ctx.db.conn().execute("DELETE FROM containers WHERE id = ?1", [id.as_str()]).map_err(internal)?;
        Ok(())
    }

    pub(crate) fn forget(&self, id: &ContainerId) {
        self.execs.forget_container(id);
        self.map.write().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Adds a container to the live set and starts its supervisor.
    pub(crate) fn install(
        &self,
        record: ContainerRecord,
        shim: Option<wharf_runtime::shim::ShimClient>,
    ) -> Arc<Handle> {
        let (tx, rx) = mpsc::channel(32);
        let running = record.state.status.is_running();
        let (exits, _) = watch::channel(ExitWatch { code: record.state.exit_code, running, ..Default::default() });
        let handle = Arc::new(Handle {
            id: record.id.clone(),
            record: RwLock::new(record),
            ops: tx,
            exits,
            shim: std::sync::Mutex::new(shim),
            pending_attach: std::sync::Mutex::new(Vec::new()),
        });
        self.map.write().unwrap_or_else(|p| p.into_inner()).insert(handle.id.clone(), handle.clone());
        tokio::spawn(supervisor::run(self.ctx.clone(), handle.clone(), rx));
        handle
    }

    /// Loads every container from the database (daemon start).
    pub fn load_all(&self) -> Result<Vec<ContainerRecord>, EngineError> {
        let conn = self.ctx.db.conn();
        let mut stmt = conn.prepare("SELECT doc FROM containers").map_err(internal)?;
        let docs: Vec<String> = stmt.query_map([], |r| r.get(0)).map_err(internal)?.filter_map(Result::ok).collect();
        let mut out = Vec::new();
        for d in docs {
            match serde_json::from_str::<ContainerRecord>(&d) {
                Ok(r) => out.push(r),
                Err(e) => tracing::error!(error = %e, "skipping an unreadable container record"),
            }
        }
        Ok(out)
    }

    /// Containers using an image (for `rmi` conflicts and image counts).
    pub fn using_image(&self, image_id: &str) -> Vec<ContainerId> {
        self.handles().into_iter().filter(|h| h.record().image_id == image_id).map(|h| h.id.clone()).collect()
    }

    /// Counts for `/info`: (total, running, paused, stopped).
    pub fn counts(&self) -> (i64, i64, i64, i64) {
        let mut c = (0, 0, 0, 0);
        for h in self.handles() {
            c.0 += 1;
            match h.record().state.status {
                Status::Running | Status::Restarting => c.1 += 1,
                Status::Paused => c.2 += 1,
                _ => c.3 += 1,
            }
        }
        c
    }

    /// Sends an operation to a container's supervisor and waits for the answer.
    pub async fn ask<T>(
        &self,
        h: &Handle,
        make: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, EngineError>>) -> supervisor::Op,
    ) -> Result<T, EngineError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        h.ops.send(make(tx)).await.map_err(|_| EngineError::not_found(format!("No such container: {}", h.id)))?;
        rx.await.map_err(|_| EngineError::not_found(format!("No such container: {}", h.id)))?
    }
}

/// Merged config defaults used when `Config` is absent.
pub fn empty_config() -> ContainerConfig {
    ContainerConfig::default()
}

pub fn default_host_config() -> HostConfig {
    HostConfig::default()
}

pub(crate) fn internal(e: impl std::fmt::Display) -> EngineError {
    EngineError::internal(e.to_string())
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// The image service is what containers resolve their images with.
#[async_trait]
impl ImageProvider for crate::image::ImageService {
    async fn resolve_image(&self, name: &str) -> Result<ResolvedImage, EngineError> {
        let img = self.resolve(name)?;
        Ok(ResolvedImage { id: img.id.to_string(), config: img.config, top_layer: img.top_layer })
    }

    fn snapshotter(&self) -> Arc<dyn Snapshotter> {
        crate::image::ImageService::snapshotter(self)
    }

    fn create_image(&self, new: crate::image::NewImage) -> Result<wharf_types::ImageId, EngineError> {
        crate::image::ImageService::create_image(self, new)
    }
}

/// Containers tell the image service which images they use (`rmi` conflicts, counts).
impl crate::image::ImageUsage for ContainerService {
    fn image_users(&self) -> Vec<crate::image::ImageUser> {
        let mut records: Vec<ContainerRecord> = self.handles().iter().map(|h| h.record()).collect();
        records.sort_by(|a, b| a.created.cmp(&b.created));
        records
            .into_iter()
            .filter_map(|r| {
                Some(crate::image::ImageUser {
                    image: r.image_id.parse().ok()?,
                    running: r.state.status.is_running(),
                    container: r.id,
                })
            })
            .collect()
    }
}
