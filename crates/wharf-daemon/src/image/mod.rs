//! The image service: images, their tags, layers and blobs, on top of the content store
//! (`wharf-image`), a snapshotter (`wharf-snapshot`) and the metadata database (`wharf-store`).
//!
//! Map (start at [`ImageService`]):
//! - this file: [`ImageService::open`], the lookup rules ([`ImageService::resolve`]), and the
//!   narrow API the rest of the daemon uses (see "For other services" below);
//! - [`store`]: the image tables as typed rows and queries;
//! - [`gc`]: leases for work in progress and the GC pass that makes crashes harmless;
//! - [`layer`]: blobs → committed layer snapshots (sequential, or in parallel on overlay), a
//!   tar stream → blob + snapshot in one pass, and new images from a layer;
//! - [`changes`]: `--change` Dockerfile instructions applied to an image config;
//! - [`import`], [`load`], [`save`]: `POST /images/create?fromSrc`, `/images/load`,
//!   `/images/get`;
//! - [`pull`], [`push`]: `POST /images/create?fromImage` and `/images/{name}/push`, through
//!   `wharf-registry`'s client (the daemon's [`wharf_registry::client::Client`] is built from
//!   daemon.json's `insecure-registries`, `registry-mirrors` and `max-download-attempts`, and
//!   rebuilt when a reload changes them); a pull unpacks each layer while it downloads;
//! - [`delete`]: tag, untag, `rmi` with moby's conflict rules, prune;
//! - [`register`]: images whose layers already exist on disk (build steps);
//! - [`query`]: list, inspect, history, disk usage, with Docker's filters;
//! - [`backend`]: `wharf-api`'s `ImageBackend`, translating to wire types.
//!
//! On disk, under the data root: `content/` (the content store), `snapshots/overlay/` or
//! `snapshots/native/` (the snapshotter's root), and the image tables of `wharf.db`.
//!
//! # For other services
//!
//! Containers (and later commit/build) use only:
//! - [`ImageService::resolve`] — Docker's lookup rules, `No such image: x` when missing;
//! - [`ImageService::snapshotter`] — to `prepare("container-<id>", top_layer)`;
//! - [`ImageService::set_usage`] — who uses which image (rmi conflicts, `Containers` counts);
//! - [`ImageService::create_image`] — a new image from an optional new layer + config + history;
//! - [`ImageService::hold`] / [`ImageService::release`] — keep blobs or snapshots alive across
//!   transactions (pulls, builds);
//! - [`ImageService::register_image`] and [`ImageService::hold_gc`] — build steps' images, and
//!   keeping GC away from a build's unrecorded layers.
//!
//! All methods block (SQLite, file systems): async callers use `spawn_blocking`.

pub mod backend;
pub mod changes;
pub mod delete;
pub mod gc;
pub mod import;
pub mod layer;
pub mod load;
pub mod pull;
pub mod push;
pub mod query;
pub mod register;
pub mod save;
pub(crate) mod store;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use wharf_image::archive::ArchiveError;
use wharf_image::{ContentError, ContentStore};
use wharf_snapshot::{NativeSnapshotter, OverlaySnapshotter, SnapshotError, Snapshotter};
use wharf_store::Db;
use wharf_types::image::ImageConfig;
use wharf_types::reference::ReferenceError;
use wharf_types::{Classify, ContainerId, EngineError, ErrorKind, Event, EventType, ImageId, Reference};

use crate::events::EventBus;
use gc::Leases;

pub use gc::{GcHold, GcRefKind, GcReport};
pub use layer::{LayerSource, NewImage};

/// Errors of the image service. Messages users see are Docker's.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// Something else is missing, with Docker's message.
    #[error("{0}")]
    NotFound(String),
    #[error("multiple IDs found with provided prefix: {0}")]
    AmbiguousId(String),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A conflict with Docker's exact message.
    #[error("{0}")]
    Conflict(String),
    /// A malformed request or input, with Docker's message.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("image metadata")]
    Db(#[from] rusqlite::Error),
    #[error("open image metadata")]
    Store(#[from] wharf_store::DbError),
    #[error("{op}")]
    Snapshot {
        op: &'static str,
        #[source]
        source: SnapshotError,
    },
    #[error("content store")]
    Content(#[source] ContentError),
    #[error("failed to register layer")]
    Unpack(#[source] wharf_image::layer::UnpackError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("invalid image config {id}")]
    Config {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the operation was cancelled")]
    Cancelled,
}

impl Classify for ImageError {
    fn kind(&self) -> ErrorKind {
        match self {
            ImageError::NoSuchImage(_) | ImageError::NotFound(_) => ErrorKind::NotFound,
            ImageError::AmbiguousId(_) | ImageError::Invalid(_) | ImageError::Config { .. } => {
                ErrorKind::InvalidArgument
            }
            ImageError::Reference(e) => e.kind(),
            ImageError::Conflict(_) => ErrorKind::Conflict,
            ImageError::NotImplemented(_) => ErrorKind::NotImplemented,
            ImageError::Snapshot { source, .. } => match source.kind() {
                ErrorKind::NotFound => ErrorKind::Internal,
                k => k,
            },
            ImageError::Content(e) => e.kind(),
            ImageError::Unpack(e) => e.kind(),
            ImageError::Archive(e) => e.kind(),
            ImageError::Cancelled => ErrorKind::Cancelled,
            ImageError::Db(_) | ImageError::Store(_) | ImageError::Io { .. } => ErrorKind::Internal,
        }
    }
}

impl From<ImageError> for EngineError {
    fn from(e: ImageError) -> Self {
        EngineError::from_classified(&e)
    }
}

/// Which snapshotter holds the layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageDriver {
    Overlay,
    Native,
}

impl StorageDriver {
    /// The name Docker clients know (`/info` `Driver`, inspect `GraphDriver.Name`).
    pub fn docker_name(self) -> &'static str {
        match self {
            StorageDriver::Overlay => "overlay2",
            StorageDriver::Native => "vfs",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            StorageDriver::Overlay => "overlay",
            StorageDriver::Native => "native",
        }
    }
}

/// An image found by [`ImageService::resolve`].
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    pub id: ImageId,
    /// The reference it was found by (normalised, `latest` added), when found by name.
    pub reference: Option<Reference>,
    pub config: ImageConfig,
    /// The snapshot name of its top layer, the parent of a container's writable layer; `None`
    /// for an image without layers.
    pub top_layer: Option<String>,
}

/// One container's use of an image (see [`ImageUsage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUser {
    pub container: ContainerId,
    pub image: ImageId,
    pub running: bool,
}

/// Who uses images. The container service registers one with [`ImageService::set_usage`] so
/// that `rmi` refuses to remove what a container uses (moby's conflict rules) and image lists
/// count containers.
pub trait ImageUsage: Send + Sync {
    /// Every container, with the image it was created from, in creation order.
    fn image_users(&self) -> Vec<ImageUser>;
}

/// The image service (see the module doc).
pub struct ImageService {
    db: Arc<Db>,
    events: Arc<EventBus>,
    content: ContentStore,
    snapshotter: Arc<dyn Snapshotter>,
    driver: StorageDriver,
    snapshot_root: PathBuf,
    leases: Leases,
    usage: RwLock<Option<Arc<dyn ImageUsage>>>,
    configs: Mutex<HashMap<ImageId, Arc<ImageConfig>>>,
    prune_running: std::sync::atomic::AtomicBool,
    /// Taken while a push gzips a layer, striped by diff ID (see [`push`]).
    compressing: push::CompressLocks,
}

impl ImageService {
    /// Opens the content store and the snapshotter under `data_root` (overlay when the kernel
    /// and file system can, else native; `storage_driver` from daemon.json overrides), then
    /// runs a GC pass to remove what a crash left behind.
    pub fn open(
        data_root: &Path,
        storage_driver: Option<&str>,
        db: Arc<Db>,
        events: Arc<EventBus>,
    ) -> Result<Self, ImageError> {
        let driver = choose_driver(data_root, storage_driver)?;
        let snapshot_root = data_root.join("snapshots").join(driver.dir());
        let snapshotter: Arc<dyn Snapshotter> = match driver {
            StorageDriver::Overlay => Arc::new(
                OverlaySnapshotter::open(&snapshot_root)
                    .map_err(|source| ImageError::Snapshot { op: "open the overlay snapshotter", source })?,
            ),
            StorageDriver::Native => Arc::new(
                NativeSnapshotter::open(&snapshot_root)
                    .map_err(|source| ImageError::Snapshot { op: "open the native snapshotter", source })?,
            ),
        };
        let content = ContentStore::open(&data_root.join("content")).map_err(ImageError::Content)?;
        let service = Self {
            db,
            events,
            content,
            snapshotter,
            driver,
            snapshot_root,
            leases: Leases::default(),
            usage: RwLock::new(None),
            configs: Mutex::new(HashMap::new()),
            prune_running: std::sync::atomic::AtomicBool::new(false),
            compressing: Default::default(),
        };
        service.gc()?;
        Ok(service)
    }

    /// The snapshotter holding image layers; containers prepare their writable layer on an
    /// image's [`ResolvedImage::top_layer`] with key `container-<id>`.
    pub fn snapshotter(&self) -> Arc<dyn Snapshotter> {
        self.snapshotter.clone()
    }

    pub fn driver(&self) -> StorageDriver {
        self.driver
    }

    /// Registers who uses images (the container service).
    pub fn set_usage(&self, usage: Arc<dyn ImageUsage>) {
        *self.usage.write().unwrap_or_else(|p| p.into_inner()) = Some(usage);
    }

    pub(crate) fn users(&self) -> Vec<ImageUser> {
        self.usage.read().unwrap_or_else(|p| p.into_inner()).as_ref().map(|u| u.image_users()).unwrap_or_default()
    }

    /// Number of images (`/info` `Images`).
    pub fn count(&self) -> Result<i64, ImageError> {
        Ok(store::image_count(&self.db.conn())?)
    }

    /// `/info` `DriverStatus`.
    pub fn driver_status(&self, backing_fs: &str) -> Vec<Vec<String>> {
        let row = |k: &str, v: &str| vec![k.to_owned(), v.to_owned()];
        match self.driver {
            StorageDriver::Overlay => vec![
                row("Backing Filesystem", backing_fs),
                row("Supports d_type", "true"),
                row("Using metacopy", "false"),
                row("Native Overlay Diff", "true"),
                row("userxattr", "false"),
            ],
            StorageDriver::Native => Vec::new(),
        }
    }

    /// Finds an image as Docker does: a full or short ID (with or without `sha256:`), a name
    /// (`latest` implied), `name:tag` or `name@digest`. Missing: 404 `No such image: x:latest`.
    pub fn resolve(&self, name_or_id: &str) -> Result<ResolvedImage, EngineError> {
        self.resolve_inner(name_or_id).map_err(EngineError::from)
    }

    pub(crate) fn resolve_inner(&self, name_or_id: &str) -> Result<ResolvedImage, ImageError> {
        let (row, reference) = self.lookup(name_or_id)?;
        let config = self.config(&row.id)?;
        Ok(ResolvedImage {
            id: row.id,
            reference,
            config: (*config).clone(),
            top_layer: row.top_layer.map(|d| d.to_string()),
        })
    }

    /// The image row for `name_or_id`, and the reference it was found by.
    pub(crate) fn lookup(&self, name_or_id: &str) -> Result<(store::ImageRow, Option<Reference>), ImageError> {
        let c = self.db.conn();
        let by_id = |id: ImageId| -> Result<Option<store::ImageRow>, ImageError> { Ok(store::image_get(&c, &id)?) };
        let is_hex = |s: &str| {
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let by_prefix = |hex: &str| -> Result<Option<store::ImageRow>, ImageError> {
            let ids = store::image_ids_with_prefix(&c, hex)?;
            match ids.len() {
                0 => Ok(None),
                1 => by_id(ids[0].clone()),
                _ => Err(ImageError::AmbiguousId(hex.to_owned())),
            }
        };
        if let Some(hex) = name_or_id.strip_prefix("sha256:") {
            if is_hex(hex)
                && let Some(row) = by_prefix(hex)?
            {
                return Ok((row, None));
            }
            return Err(ImageError::NoSuchImage(name_or_id.to_owned()));
        }
        if wharf_types::id::is_full_hex_id(name_or_id) {
            return match by_prefix(name_or_id)? {
                Some(row) => Ok((row, None)),
                None => Err(ImageError::NoSuchImage(format!("sha256:{name_or_id}"))),
            };
        }
        let reference = Reference::parse_normalized(name_or_id)?.with_default_tag();
        if let Some(id) = store::ref_get(&c, &reference)?
            && let Some(row) = by_id(id)?
        {
            return Ok((row, Some(reference)));
        }
        if is_hex(name_or_id)
            && let Some(row) = by_prefix(name_or_id)?
        {
            return Ok((row, None));
        }
        Err(ImageError::NoSuchImage(reference.familiar()))
    }

    /// An image's config, parsed (cached: configs never change).
    pub(crate) fn config(&self, id: &ImageId) -> Result<Arc<ImageConfig>, ImageError> {
        if let Some(c) = self.configs.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(c.clone());
        }
        let bytes = self.config_bytes(id)?;
        let config: ImageConfig =
            serde_json::from_slice(&bytes).map_err(|source| ImageError::Config { id: id.to_string(), source })?;
        let config = Arc::new(config);
        self.configs.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), config.clone());
        Ok(config)
    }

    /// An image's config as stored.
    pub(crate) fn config_bytes(&self, id: &ImageId) -> Result<Vec<u8>, ImageError> {
        let path = self.content.path(id.digest());
        std::fs::read(&path).map_err(|source| ImageError::Io { op: "read image config", path, source })
    }

    /// Publishes an image event as moby's `LogImageEvent` does: the image's labels plus `name`.
    pub(crate) fn event(&self, action: &str, id: &ImageId, name: &str) {
        let mut attributes: BTreeMap<String, String> =
            self.config(id).ok().and_then(|c| c.config.as_ref().and_then(|r| r.labels.clone())).unwrap_or_default();
        if !name.is_empty() {
            attributes.insert("name".to_owned(), name.to_owned());
        }
        self.events.publish(Event::now(EventType::Image, action, id.to_string(), attributes));
    }
}

fn choose_driver(data_root: &Path, configured: Option<&str>) -> Result<StorageDriver, ImageError> {
    match configured {
        None | Some("") => Ok(if overlay_usable(data_root) {
            StorageDriver::Overlay
        } else {
            tracing::warn!(
                "overlayfs is not usable on {}; using the native (copying) snapshotter",
                data_root.display()
            );
            StorageDriver::Native
        }),
        Some("overlay2" | "overlay" | "overlayfs") => {
            if overlay_usable(data_root) {
                Ok(StorageDriver::Overlay)
            } else {
                Err(ImageError::Invalid(format!(
                    "storage-driver {configured:?}: overlayfs is not usable on {}",
                    data_root.display()
                )))
            }
        }
        Some("vfs" | "native") => Ok(StorageDriver::Native),
        Some(other) => Err(ImageError::Invalid(format!("unsupported storage driver {other:?}: use overlay2 or vfs"))),
    }
}

/// Whether an overlay mount with an upper dir on `data_root` works: the kernel has overlayfs,
/// we may mount, and the file system can be an upper (not overlay itself, for example).
fn overlay_usable(data_root: &Path) -> bool {
    if !wharf_snapshot::overlay_supported() || !rustix::process::geteuid().is_root() {
        return false;
    }
    let probe = data_root.join("snapshots").join(".overlay-probe");
    let _ = std::fs::remove_dir_all(&probe);
    let dirs = ["lower", "upper", "work", "merged"].map(|d| probe.join(d));
    let ok = dirs.iter().all(|d| std::fs::create_dir_all(d).is_ok()) && {
        let mount = wharf_types::Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                format!("lowerdir={}", dirs[0].display()),
                format!("upperdir={}", dirs[1].display()),
                format!("workdir={}", dirs[2].display()),
            ],
        };
        match wharf_snapshot::mount_all(&[mount], &dirs[3]) {
            Ok(()) => {
                let _ = wharf_snapshot::unmount(&dirs[3]);
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "overlay probe mount failed");
                false
            }
        }
    };
    let _ = std::fs::remove_dir_all(&probe);
    ok
}
