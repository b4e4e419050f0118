//! The engine. [`Daemon`] owns the daemon's state and implements `wharf-api`'s backend traits.
//!
//! Map:
//! - [`Daemon::open`]: takes the data-root lock, opens the database, reads host facts.
//! - [`config`]: flags + `daemon.json` (Docker's keys), reload on SIGHUP.
//! - [`events`]: the event bus every subsystem publishes to; `/events` subscribes.
//! - [`system`]: `/info`, `/version`, `/events` (the `SystemBackend`).
//! - [`container`]: containers — one supervisor task per container, the shim and runtime,
//!   logs, attach, live restore (the `ContainerBackend`).
//! - [`network`]: networks — the predefined and user-defined networks, each container's
//!   endpoints, ports and DNS, startup reconcile (the `NetworkBackend`).
//! - [`info`]: host facts from the kernel and /etc.
//! - [`image`]: the image service (content store, snapshotter, image metadata, GC) and the
//!   `ImageBackend`; [`disk_usage`]: `/system/df` from every service's part.
//! - [`volume`]: volumes (the `local` driver), container mounts and copy-up (the
//!   `VolumeBackend`).
//! - [`build`]: image builds (`wharf-build` over the services above; the `BuildBackend`).
//!
//! On disk (see DESIGN.md §3): `<data-root>/wharf.lock`, `<data-root>/wharf.db`,
//! `<data-root>/content/`, `<data-root>/snapshots/{overlay,native}/`; the exec root holds the
//! socket and per-container runtime state.

pub mod build;
pub mod config;
pub mod container;
pub mod disk_usage;
pub mod events;
pub mod image;
pub mod info;
pub mod network;
pub mod system;
pub mod volume;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use wharf_api::Backends;
use wharf_store::{DataRootLock, Db};
use wharf_types::{Classify, ErrorKind, Event, EventType};

use crate::config::{Config, FileConfig};
use crate::events::EventBus;
use crate::info::HostFacts;

/// Facts about the build, filled in by the binary.
#[derive(Debug, Clone, Default)]
pub struct BuildInfo {
    pub git_commit: String,
    pub rustc: String,
    pub build_time: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Lock(#[from] wharf_store::LockError),
    #[error(transparent)]
    Db(#[from] wharf_store::DbError),
    #[error(transparent)]
    Engine(#[from] wharf_types::EngineError),
    #[error("open the image service")]
    Image(#[from] image::ImageError),
    #[error("open the volume service")]
    Volume(#[from] volume::VolumeError),
    #[error("create directory {path}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for DaemonError {
    fn kind(&self) -> ErrorKind {
        match self {
            DaemonError::Lock(e) => e.kind(),
            DaemonError::Db(e) => e.kind(),
            DaemonError::Engine(e) => e.kind,
            DaemonError::Image(e) => e.kind(),
            DaemonError::Volume(e) => e.kind(),
            DaemonError::Dir { .. } => ErrorKind::Internal,
        }
    }
}

/// Builds the image provider containers use from the image service.
pub type ImageProviderFactory = Box<dyn FnOnce(&Arc<image::ImageService>) -> Arc<dyn container::ImageProvider>>;

/// The running engine.
pub struct Daemon {
    config: RwLock<Config>,
    db: Arc<Db>,
    events: Arc<EventBus>,
    images: Arc<image::ImageService>,
    containers: Arc<container::ContainerService>,
    networks: Arc<network::NetworkService>,
    volumes: Arc<volume::VolumeService>,
    builds: Arc<build::BuildService>,
    engine_id: String,
    host: HostFacts,
    build: BuildInfo,
    /// The registry client pulls, pushes and logins use (connection pool, token cache).
    registry: RegistryClient,
    _lock: DataRootLock,
}

impl Daemon {
    /// Opens the engine's state under the configured roots. Fails if another daemon holds the
    /// data root. `images` builds the image service once the data root is locked.
    pub fn open(config: Config, build: BuildInfo) -> Result<Arc<Self>, DaemonError> {
        Self::open_with(config, build, None)
    }

    /// [`Daemon::open`], with the image provider containers use replaced (tests that bring
    /// their own root filesystems).
    pub fn open_with(
        config: Config,
        build: BuildInfo,
        provider: Option<ImageProviderFactory>,
    ) -> Result<Arc<Self>, DaemonError> {
        let lock = DataRootLock::acquire(&config.data_root)?;
        for dir in [&config.data_root, &config.exec_root] {
            std::fs::create_dir_all(dir).map_err(|source| DaemonError::Dir { path: dir.clone(), source })?;
        }
        let db = Arc::new(Db::open(&config.data_root.join("wharf.db"))?);
        let engine_id = match db.meta_get("engine-id")? {
            Some(id) => id,
            None => {
                let id = new_engine_id();
                db.meta_set("engine-id", &id)?;
                id
            }
        };
        let mut host = HostFacts::read();
        host.backing_fs = info::backing_filesystem(&config.data_root);
        let events = Arc::new(EventBus::new());
        // After the data-root lock: nothing under the root is opened before it is ours.
        let images = Arc::new(image::ImageService::open(
            &config.data_root,
            config.file.storage_driver.as_deref(),
            db.clone(),
            events.clone(),
        )?);
        let provider: Arc<dyn container::ImageProvider> = match provider {
            Some(make) => make(&images),
            None => images.clone(),
        };
        let volumes = volume::VolumeService::open(&config.data_root, db.clone(), events.clone())?;
        let networks = network::NetworkService::open(db.clone(), events.clone(), &config)?;
        let containers = container::ContainerService::new(|weak| {
            container_ctx(&config, &db, &events, provider, volumes.clone(), networks.clone(), weak)
        })?;
        networks.set_containers(Arc::downgrade(&containers));
        images.set_usage(containers.clone());
        // References come from the containers' mounts; a referenced volume is never removed.
        for r in containers.load_all()? {
            volumes.restore_refs(r.id.as_str(), &r.mount_points);
        }
        let builds = build::BuildService::open(&config.data_root, db.clone(), images.clone(), containers.clone())?;
        let registry = RegistryClient::new(&config);
        builds.set_puller(Arc::new(image::pull::BuildPuller { images: images.clone(), registry: registry.clone() }));
        Ok(Arc::new(Self {
            registry,
            config: RwLock::new(config),
            db,
            events,
            images,
            containers,
            networks,
            volumes,
            builds,
            engine_id,
            host,
            build,
            _lock: lock,
        }))
    }

    /// The registry client (pull, push, login) of the current configuration.
    pub fn registry(&self) -> wharf_registry::client::Client {
        self.registry.get()
    }

    /// The registry client and transfer settings, as reloads change them.
    pub fn registry_client(&self) -> &RegistryClient {
        &self.registry
    }

    /// Reconnects to containers that kept running while the daemon was down and restarts
    /// those whose restart policy asks for it. Call once the API is about to serve.
    pub async fn restore(&self) -> usize {
        // Networks first: reconcile needs the stored state before containers start again.
        if let Err(e) = self.networks.ready().await {
            tracing::error!(error = %e.message, "network setup failed; containers cannot be networked");
        }
        let left = self.containers.cleanup_oneshots().await;
        if left > 0 {
            tracing::info!(count = left, "removed build steps' processes a previous daemon left");
        }
        let alive = container::restore::restore(&self.containers).await;
        self.volumes.finish_restore();
        alive
    }

    /// Called once the API has stopped serving: releases what nothing uses any more.
    pub async fn shutdown(&self) {
        self.networks.shutdown().await;
    }

    pub fn networks(&self) -> &Arc<network::NetworkService> {
        &self.networks
    }

    pub fn containers(&self) -> &Arc<container::ContainerService> {
        &self.containers
    }

    /// The volumes; `/system/df` takes its volume part from [`volume::VolumeService::disk_usage`]
    /// (or the legacy list from [`volume::VolumeService::volumes_usage`]).
    pub fn volumes(&self) -> &Arc<volume::VolumeService> {
        &self.volumes
    }

    /// The backends the API serves.
    pub fn backends(self: &Arc<Self>) -> Backends {
        Backends {
            system: self.clone(),
            images: self.clone(),
            containers: self.containers.clone(),
            execs: self.containers.clone(),
            networks: self.networks.clone(),
            volumes: self.volumes.clone(),
            builds: self.builds.clone(),
        }
    }

    /// Image builds and their cache.
    pub fn builds(&self) -> &Arc<build::BuildService> {
        &self.builds
    }

    pub fn events(&self) -> &EventBus {
        &self.events
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The image service: what containers use to find images and their layers.
    pub fn images(&self) -> &Arc<image::ImageService> {
        &self.images
    }

    /// A snapshot of the current configuration.
    pub fn config(&self) -> Config {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Applies a re-read `daemon.json` (SIGHUP). Only settings that can change at run time are
    /// taken; the rest (roots, hosts) keep their start-up values. Publishes a daemon `reload`
    /// event whose attributes list the reloaded settings, as Docker does.
    pub fn reload(&self, file: FileConfig) {
        let attributes = {
            let mut cfg = self.config.write().unwrap_or_else(|p| p.into_inner());
            let keep = cfg.file.clone();
            cfg.file = FileConfig {
                hosts: keep.hosts,
                data_root: keep.data_root,
                exec_root: keep.exec_root,
                group: keep.group,
                pidfile: keep.pidfile,
                storage_driver: keep.storage_driver,
                bip: keep.bip,
                fixed_cidr: keep.fixed_cidr,
                bridge: keep.bridge,
                tls: keep.tls,
                tlsverify: keep.tlsverify,
                tlscacert: keep.tlscacert,
                tlscert: keep.tlscert,
                tlskey: keep.tlskey,
                ..file
            };
            // As Docker: `log-level` wins; otherwise `debug`, when set, toggles debug logging.
            if let Some(level) = &cfg.file.log_level {
                cfg.log_level = level.clone();
            } else if let Some(debug) = cfg.file.debug {
                cfg.log_level = if debug { "debug" } else { "info" }.to_owned();
            }
            self.registry.reconfigure(&cfg);
            reload_attributes(&cfg, &self.host.hostname)
        };
        self.events.publish(Event::now(EventType::Daemon, "reload", self.engine_id.clone(), attributes));
    }
}

fn container_ctx(
    config: &Config,
    db: &Arc<Db>,
    events: &Arc<EventBus>,
    images: Arc<dyn container::ImageProvider>,
    volumes: Arc<volume::VolumeService>,
    network: Arc<network::NetworkService>,
    weak: std::sync::Weak<container::ContainerService>,
) -> container::Ctx {
    let file_runtimes = config.file.runtimes.clone().unwrap_or_default();
    let runtimes = move |name: &str| -> Option<wharf_runtime::shim::protocol::RuntimeConfig> {
        let (path, args) = match name {
            system::DEFAULT_RUNTIME => (system::sibling_binary("wharf-runtime"), Vec::new()),
            other => match file_runtimes.get(other) {
                Some(rt) => (std::path::PathBuf::from(&rt.path), rt.runtime_args.clone()),
                None if other == "runc" => (system::find_in_path("runc")?, Vec::new()),
                None => return None,
            },
        };
        Some(wharf_runtime::shim::protocol::RuntimeConfig {
            name: name.to_owned(),
            path,
            root: std::path::PathBuf::new(),
            args,
        })
    };
    container::Ctx {
        db: db.clone(),
        events: events.clone(),
        images,
        volumes,
        paths: container::Paths {
            data_root: config.data_root.clone(),
            exec_root: config.exec_root.clone(),
            shim_binary: system::sibling_binary("wharf-shim"),
            // daemon.json `init-path` (Docker's key), else the wharf-init installed beside wharfd.
            init_binary: config
                .file
                .init_path
                .as_ref()
                .map(PathBuf::from)
                .unwrap_or_else(|| system::sibling_binary("wharf-init")),
        },
        runtimes: Arc::new(runtimes),
        default_runtime: config.file.default_runtime.clone().unwrap_or_else(|| system::DEFAULT_RUNTIME.to_owned()),
        log_driver: config.log_driver().to_owned(),
        log_opts: config.file.log_opts.clone().unwrap_or_default(),
        cgroup_parent: config.file.cgroup_parent.clone().unwrap_or_else(|| "/wharf".to_owned()),
        containers: weak,
        network,
    }
}

fn reload_attributes(cfg: &Config, hostname: &str) -> std::collections::BTreeMap<String, String> {
    let f = &cfg.file;
    let json = |v: &dyn erased::Json| v.to_json();
    [
        ("name", hostname.to_owned()),
        ("debug", (cfg.log_level == "debug").to_string()),
        ("labels", json(&cfg.labels())),
        ("insecure-registries", json(&cfg.insecure_registries())),
        ("registry-mirrors", json(&f.registry_mirrors.clone().unwrap_or_default())),
        ("max-concurrent-downloads", f.max_concurrent_downloads.unwrap_or(3).to_string()),
        ("max-concurrent-uploads", f.max_concurrent_uploads.unwrap_or(5).to_string()),
        ("max-download-attempts", f.max_download_attempts.unwrap_or(5).to_string()),
        ("default-runtime", f.default_runtime.clone().unwrap_or_else(|| system::DEFAULT_RUNTIME.to_owned())),
        ("runtimes", json(&f.runtimes.clone().unwrap_or_default())),
        ("live-restore", cfg.live_restore().to_string()),
        ("shutdown-timeout", f.shutdown_timeout.unwrap_or(15).to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

mod erased {
    /// Serialises attribute values the way Docker prints them in reload events (JSON).
    pub trait Json {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}

/// Docker's engine IDs look like UUIDs; ours are random too, stable for the data root's life.
fn new_engine_id() -> String {
    let h = wharf_types::random_hex_id();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The registry client for daemon.json's `insecure-registries` (added to 127.0.0.0/8 and ::1),
/// `registry-mirrors` and `max-download-attempts`, with the other transfer setting,
/// `max-concurrent-downloads`. A reload that changes them replaces the client (a new
/// connection pool and token cache); an operation takes the client when it starts and
/// finishes with it.
#[derive(Clone)]
pub struct RegistryClient(Arc<RwLock<(RegistrySettings, wharf_registry::client::Client)>>);

/// What the registry client is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RegistrySettings {
    insecure_registries: Vec<String>,
    mirrors: Vec<String>,
    max_attempts: u32,
    max_concurrent_downloads: usize,
}

impl RegistrySettings {
    fn of(config: &Config) -> Self {
        Self {
            insecure_registries: config.insecure_registries(),
            mirrors: config.file.registry_mirrors.clone().unwrap_or_default(),
            max_attempts: config.file.max_download_attempts.unwrap_or(5).max(1),
            max_concurrent_downloads: config
                .file
                .max_concurrent_downloads
                .map_or(image::pull::DEFAULT_CONCURRENT_DOWNLOADS, |n| n.max(1) as usize),
        }
    }

    fn client(&self) -> wharf_registry::client::Client {
        let mut rc = wharf_registry::client::RegistryConfig::default();
        rc.insecure_registries.extend(self.insecure_registries.iter().cloned());
        rc.mirrors = self.mirrors.clone();
        rc.retry.max_attempts = self.max_attempts;
        rc.user_agent = format!("wharf/{} (docker-compatible)", env!("CARGO_PKG_VERSION"));
        wharf_registry::client::Client::new(rc)
    }
}

impl RegistryClient {
    pub fn new(config: &Config) -> Self {
        let settings = RegistrySettings::of(config);
        let client = settings.client();
        Self(Arc::new(RwLock::new((settings, client))))
    }

    /// The current client (cheap: a handle on a shared pool).
    pub fn get(&self) -> wharf_registry::client::Client {
        self.0.read().unwrap_or_else(|p| p.into_inner()).1.clone()
    }

    /// How many layers a pull downloads at once.
    pub fn max_concurrent_downloads(&self) -> usize {
        self.0.read().unwrap_or_else(|p| p.into_inner()).0.max_concurrent_downloads
    }

    /// Rebuilds the client when `config` changes its settings (SIGHUP).
    fn reconfigure(&self, config: &Config) {
        let settings = RegistrySettings::of(config);
        let mut current = self.0.write().unwrap_or_else(|p| p.into_inner());
        if current.0 != settings {
            tracing::info!(?settings, "registry settings changed; using a new registry client");
            let client = settings.client();
            *current = (settings, client);
        }
    }
}
