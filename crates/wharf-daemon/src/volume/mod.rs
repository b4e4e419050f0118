//! Volumes: the `local` driver, references from containers, and the mounts containers make.
//!
//! Map:
//! - [`VolumeService`] (this file): the set of volumes, persisted in the `volumes` table (one
//!   JSON document per volume); who references each volume (containers that have it in their
//!   mounts, running or not) and who has it mounted right now (running containers). A
//!   referenced volume is never removed. Publishes `create`, `mount`, `unmount`, `destroy` and
//!   `prune` volume events with Docker's attributes.
//! - [`name`]: volume names. [`local`]: the driver's options and kernel mounts.
//! - [`mountpoint`]: a container's mounts as Docker records them and the parsers for `Binds`,
//!   `Mounts` and `VolumesFrom`.
//! - [`container`]: what the container lifecycle calls — at create (register mounts, anonymous
//!   volumes, copy-up), at start (mount, host mount list), at stop and at removal.
//! - [`scope`]: resolving container paths without leaving the container's root.
//! - [`api`]: the `VolumeBackend` (filters, Docker's shapes) and `/system/df`'s volume part.
//!
//! On disk: `<data-root>/volumes/<name>/_data` (the content; the mount point for volumes with
//! driver options). Removal renames the directory to `.trash-<name>-<rand>` before deleting
//! it, so an interrupted removal leaves nothing that looks like a volume.

pub mod api;
pub mod container;
pub mod local;
pub mod mountpoint;
pub mod name;
pub mod scope;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use wharf_store::Db;
use wharf_types::{Classify, ErrorKind, Event, EventType};

use crate::events::EventBus;
use local::LocalOptions;
use name::{NameError, VolumeName};

/// The label that marks anonymous volumes (what `prune` removes by default).
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
/// The only driver there is.
pub const LOCAL_DRIVER: &str = "local";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS volumes (name TEXT PRIMARY KEY, doc TEXT NOT NULL) STRICT;";

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("get {name}: no such volume")]
    NotFound { name: String },
    #[error("remove {name}: volume is in use - [{}]", .users.join(" "))]
    InUse { name: String, users: Vec<String> },
    #[error("create {name}: {source}")]
    InvalidName {
        name: String,
        #[source]
        source: NameError,
    },
    #[error("create {name}: {reason}")]
    InvalidOptions { name: String, reason: String },
    #[error("create {name}: volume name must be unique")]
    DriverConflict { name: String },
    #[error("create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found")]
    UnknownDriver { name: String, driver: String },
    #[error("create {name}: create directory {path}")]
    CreateDir {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("error while mounting volume '{path}': failed to mount local volume")]
    Mount {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("remove {name}: volume has active mounts")]
    ActiveMounts { name: String },
    #[error("remove {name}: {path}")]
    Remove {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("volume metadata")]
    Db(#[from] rusqlite::Error),
    #[error("volume metadata")]
    Encode(#[from] serde_json::Error),
}

impl Classify for VolumeError {
    fn kind(&self) -> ErrorKind {
        match self {
            VolumeError::NotFound { .. } | VolumeError::UnknownDriver { .. } => ErrorKind::NotFound,
            VolumeError::InUse { .. } | VolumeError::DriverConflict { .. } | VolumeError::ActiveMounts { .. } => {
                ErrorKind::Conflict
            }
            VolumeError::InvalidName { .. } | VolumeError::InvalidOptions { .. } => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        }
    }
}

impl From<VolumeError> for wharf_types::EngineError {
    fn from(e: VolumeError) -> Self {
        wharf_types::EngineError::from_classified(&e)
    }
}

/// What is persisted about a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: VolumeName,
    pub driver: String,
    /// RFC 3339, seconds (`CreatedAt`).
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    /// Driver options as given (`Options`).
    pub options: BTreeMap<String, String>,
}

impl VolumeRecord {
    pub fn is_anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

/// A volume and its live state.
struct Entry {
    rec: VolumeRecord,
    local: Option<LocalOptions>,
    /// The device of a volume with options is mounted on `_data`.
    mounted: bool,
    /// Mounts handed out ([`VolumeService::mount`]) and not yet returned.
    active: usize,
}

#[derive(Default)]
struct State {
    volumes: BTreeMap<String, Entry>,
    /// Volume name → IDs of the containers referencing it.
    refs: HashMap<String, BTreeSet<String>>,
    /// Container ID → the volumes [`VolumeService::setup`] mounted for its current run.
    active: HashMap<String, Vec<String>>,
}

/// A volume as listings show it: the record and how many containers reference it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub rec: VolumeRecord,
    pub mountpoint: PathBuf,
    pub ref_count: usize,
}

/// Options of [`VolumeService::create`].
#[derive(Debug, Clone, Default)]
pub struct CreateOptions<'a> {
    /// Empty: an anonymous volume with a generated name.
    pub name: &'a str,
    /// Empty: `local`.
    pub driver: &'a str,
    pub driver_opts: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// A container that references the volume from now on.
    pub reference: Option<&'a str>,
}

/// The set of volumes.
pub struct VolumeService {
    me: std::sync::Weak<VolumeService>,
    root: PathBuf,
    data_root: PathBuf,
    db: Arc<Db>,
    events: Arc<EventBus>,
    state: Mutex<State>,
}

impl VolumeService {
    /// Loads the volumes under `<data_root>/volumes`, recreating directories that are missing and
    /// removing leftovers of interrupted removals.
    pub fn open(data_root: &Path, db: Arc<Db>, events: Arc<EventBus>) -> Result<Arc<Self>, VolumeError> {
        db.conn().execute_batch(SCHEMA)?;
        let root = data_root.join("volumes");
        let mkdir_err = |source| VolumeError::CreateDir { name: String::new(), path: root.clone(), source };
        std::fs::create_dir_all(&root).map_err(mkdir_err)?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o701));
        if let Ok(entries) = std::fs::read_dir(&root) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(".trash-") || n.starts_with(".tmp-") {
                    let _ = local::unmount(&e.path().join("_data"));
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let docs: Vec<String> = {
            let conn = db.conn();
            let mut stmt = conn.prepare("SELECT doc FROM volumes")?;
            stmt.query_map([], |r| r.get(0))?.filter_map(Result::ok).collect()
        };
        let mut state = State::default();
        for doc in docs {
            let rec: VolumeRecord = match serde_json::from_str(&doc) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "skipping an unreadable volume record");
                    continue;
                }
            };
            let data = root.join(rec.name.as_str()).join("_data");
            if !data.is_dir() {
                tracing::warn!(volume = %rec.name, "volume directory was missing; recreated");
                let _ = std::fs::create_dir_all(&data);
            }
            let local = LocalOptions::from_driver_opts(&rec.options).ok().flatten();
            let mounted = local.is_some() && local::is_mount_point(&data);
            state.volumes.insert(rec.name.to_string(), Entry { rec, local, mounted, active: 0 });
        }
        Ok(Arc::new_cyclic(|me| Self {
            me: me.clone(),
            root,
            data_root: data_root.to_path_buf(),
            db,
            events,
            state: Mutex::new(state),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `<data-root>/volumes/<name>/_data`.
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    /// The daemon's data root (bind sources covering it need slave propagation).
    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    fn event(&self, action: &str, name: &str, attrs: &[(&str, String)]) {
        let attributes = attrs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        self.events.publish(Event::now(EventType::Volume, action, name, attributes));
    }

    /// Creates a volume, or returns the existing one of that name (adding the reference).
    /// Returns the record and whether it was created now.
    pub fn create(&self, opts: CreateOptions<'_>) -> Result<(VolumeRecord, bool), VolumeError> {
        let driver = if opts.driver.is_empty() { LOCAL_DRIVER } else { opts.driver };
        let mut labels = opts.labels;
        let name = if opts.name.is_empty() {
            labels.insert(ANONYMOUS_LABEL.to_owned(), String::new());
            VolumeName::generate()
        } else {
            VolumeName::parse(opts.name)
                .map_err(|source| VolumeError::InvalidName { name: opts.name.to_owned(), source })?
        };
        let mut st = self.lock();
        if let Some(e) = st.volumes.get(name.as_str()) {
            if e.rec.driver != driver {
                return Err(VolumeError::DriverConflict { name: name.to_string() });
            }
            let rec = e.rec.clone();
            if let Some(r) = opts.reference {
                st.refs.entry(name.to_string()).or_default().insert(r.to_owned());
            }
            return Ok((rec, false));
        }
        if driver != LOCAL_DRIVER {
            return Err(VolumeError::UnknownDriver { name: name.to_string(), driver: driver.to_owned() });
        }
        let local = LocalOptions::from_driver_opts(&opts.driver_opts)
            .map_err(|reason| VolumeError::InvalidOptions { name: name.to_string(), reason })?;
        let rec = VolumeRecord {
            name: name.clone(),
            driver: driver.to_owned(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            labels,
            options: opts.driver_opts,
        };
        // Built aside, renamed in after the metadata commit.
        let tmp = self.root.join(format!(".tmp-{}", wharf_types::random_hex_id()));
        let dir_err = |source| VolumeError::CreateDir { name: name.to_string(), path: tmp.clone(), source };
        std::fs::create_dir_all(tmp.join("_data")).map_err(dir_err)?;
        let doc = serde_json::to_string(&rec)?;
        if let Err(e) = self.db.conn().execute("INSERT INTO volumes (name, doc) VALUES (?1, ?2)", (name.as_str(), &doc))
        {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e.into());
        }
        let dir = self.root.join(name.as_str());
        if let Err(source) = std::fs::rename(&tmp, &dir) {
            let _ = std::fs::remove_dir_all(&tmp);
            let _ = self.db.conn().execute("DELETE FROM volumes WHERE name = ?1", [name.as_str()]);
            return Err(VolumeError::CreateDir { name: name.to_string(), path: dir, source });
        }
        st.volumes.insert(name.to_string(), Entry { rec: rec.clone(), local, mounted: false, active: 0 });
        if let Some(r) = opts.reference {
            st.refs.entry(name.to_string()).or_default().insert(r.to_owned());
        }
        drop(st);
        self.event("create", name.as_str(), &[("driver", rec.driver.clone())]);
        Ok((rec, true))
    }

    pub fn get(&self, name: &str) -> Result<VolumeRecord, VolumeError> {
        self.lock()
            .volumes
            .get(name)
            .map(|e| e.rec.clone())
            .ok_or_else(|| VolumeError::NotFound { name: name.to_owned() })
    }

    /// Every volume, by name.
    pub fn list(&self) -> Vec<Listed> {
        let st = self.lock();
        st.volumes
            .values()
            .map(|e| Listed {
                rec: e.rec.clone(),
                mountpoint: self.mountpoint(e.rec.name.as_str()),
                ref_count: st.refs.get(e.rec.name.as_str()).map_or(0, BTreeSet::len),
            })
            .collect()
    }

    /// Containers referencing `name`.
    pub fn users(&self, name: &str) -> Vec<String> {
        self.lock().refs.get(name).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// Adds a container's reference (it has the volume in its mounts).
    pub fn acquire(&self, name: &str, container: &str) -> Result<(), VolumeError> {
        let mut st = self.lock();
        if !st.volumes.contains_key(name) {
            return Err(VolumeError::NotFound { name: name.to_owned() });
        }
        st.refs.entry(name.to_owned()).or_default().insert(container.to_owned());
        Ok(())
    }

    /// Drops a container's reference.
    pub fn release(&self, name: &str, container: &str) {
        let mut st = self.lock();
        if let Some(set) = st.refs.get_mut(name) {
            set.remove(container);
            if set.is_empty() {
                st.refs.remove(name);
            }
        }
    }

    /// Removes a volume. `force`: a missing volume is not an error, and the record goes even
    /// if its directory cannot be deleted. A referenced volume is never removed.
    pub fn remove(&self, name: &str, force: bool) -> Result<(), VolumeError> {
        let mut st = self.lock();
        let Some(entry) = st.volumes.get(name) else {
            return if force { Ok(()) } else { Err(VolumeError::NotFound { name: name.to_owned() }) };
        };
        if let Some(users) = st.refs.get(name).filter(|s| !s.is_empty()) {
            return Err(VolumeError::InUse { name: name.to_owned(), users: users.iter().cloned().collect() });
        }
        if entry.active > 0 {
            return Err(VolumeError::ActiveMounts { name: name.to_owned() });
        }
        let driver = entry.rec.driver.clone();
        let dir = self.root.join(name);
        if entry.mounted
            && let Err(source) = local::unmount(&dir.join("_data"))
            && !force
        {
            return Err(VolumeError::Remove { name: name.to_owned(), path: dir, source });
        }
        let trash = self.root.join(format!(".trash-{name}-{}", &wharf_types::random_hex_id()[..8]));
        if let Err(source) = std::fs::rename(&dir, &trash)
            && source.kind() != std::io::ErrorKind::NotFound
            && !force
        {
            return Err(VolumeError::Remove { name: name.to_owned(), path: dir, source });
        }
        self.db.conn().execute("DELETE FROM volumes WHERE name = ?1", [name])?;
        st.volumes.remove(name);
        st.refs.remove(name);
        drop(st);
        if let Err(e) = std::fs::remove_dir_all(&trash)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(volume = name, error = %e, "deleting a removed volume's directory failed");
        }
        self.event("destroy", name, &[("driver", driver)]);
        Ok(())
    }

    /// Hands out the volume's host path for a mount, mounting its device first if it has one
    /// and nobody else has it mounted.
    pub fn mount(&self, name: &str) -> Result<PathBuf, VolumeError> {
        let path = self.mountpoint(name);
        let mut st = self.lock();
        let e = st.volumes.get_mut(name).ok_or_else(|| VolumeError::NotFound { name: name.to_owned() })?;
        if let Some(local) = &e.local
            && !e.mounted
        {
            local.mount(&path).map_err(|source| VolumeError::Mount { path: path.clone(), source })?;
            e.mounted = true;
        }
        e.active += 1;
        Ok(path)
    }

    /// Returns a mount handed out by [`mount`](Self::mount); the last one unmounts the device.
    pub fn unmount(&self, name: &str) {
        let path = self.mountpoint(name);
        let mut st = self.lock();
        let Some(e) = st.volumes.get_mut(name) else { return };
        e.active = e.active.saturating_sub(1);
        if e.active == 0 && e.mounted {
            match local::unmount(&path) {
                Ok(()) => e.mounted = false,
                Err(err) => tracing::warn!(volume = name, error = %err, "unmounting a volume failed"),
            }
        }
    }

    /// Records a mount that survived a daemon restart (a container that kept running).
    pub fn restore_mount(&self, name: &str) {
        if let Some(e) = self.lock().volumes.get_mut(name) {
            e.active += 1;
        }
    }

    /// After restore: devices still mounted for containers that are gone are unmounted.
    pub fn finish_restore(&self) {
        let mut st = self.lock();
        for (name, e) in st.volumes.iter_mut() {
            if e.mounted && e.active == 0 {
                let path = self.root.join(name).join("_data");
                if local::unmount(&path).is_ok() {
                    e.mounted = false;
                }
            }
        }
    }

    /// Bytes used under the volume's directory (hard links counted once).
    pub fn size(&self, name: &str) -> i64 {
        dir_size(&self.mountpoint(name))
    }
}

/// moby's `directory.Size`: the sizes of everything under `dir` except directories, each inode
/// once, without following symlinks or crossing into other filesystems.
pub fn dir_size(dir: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(dir) else { return 0 };
    let mut seen: std::collections::HashSet<(u64, u64)> = std::collections::HashSet::new();
    let mut total: i64 = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else { continue };
            if m.is_dir() {
                if m.dev() == top.dev() {
                    stack.push(e.path());
                }
                continue;
            }
            if m.nlink() > 1 && !seen.insert((m.dev(), m.ino())) {
                continue;
            }
            total += m.len() as i64;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> (tempfile::TempDir, Arc<VolumeService>, Arc<EventBus>) {
        let tmp = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(&tmp.path().join("wharf.db")).unwrap());
        let events = Arc::new(EventBus::new());
        let svc = VolumeService::open(tmp.path(), db, events.clone()).unwrap();
        (tmp, svc, events)
    }

    fn named(name: &str) -> CreateOptions<'_> {
        CreateOptions { name, ..Default::default() }
    }

    #[test]
    fn create_get_remove_and_survive_reopen() {
        let (tmp, svc, _) = service();
        let (rec, created) = svc
            .create(CreateOptions {
                name: "data",
                labels: [("a".to_owned(), "b".to_owned())].into(),
                ..Default::default()
            })
            .unwrap();
        assert!(created);
        assert_eq!(rec.driver, "local");
        assert!(svc.mountpoint("data").is_dir());
        let (_, again) = svc.create(named("data")).unwrap();
        assert!(!again, "same name: the existing volume");
        assert_eq!(
            svc.create(CreateOptions { name: "data", driver: "other", ..Default::default() }).unwrap_err().to_string(),
            "create data: volume name must be unique"
        );
        assert_eq!(
            svc.create(CreateOptions { name: "x2", driver: "nfsplugin", ..Default::default() })
                .unwrap_err()
                .to_string(),
            "create x2: error looking up volume plugin nfsplugin: plugin \"nfsplugin\" not found"
        );
        let e = svc.create(named("a/b")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().starts_with("create a/b: \"a/b\" includes invalid characters"), "{e}");
        let (anon, _) = svc.create(named("")).unwrap();
        assert!(anon.is_anonymous());
        assert_eq!(anon.name.as_str().len(), 64);
        std::fs::write(svc.mountpoint("data").join("f"), "12345").unwrap();
        assert_eq!(svc.size("data"), 5);
        drop(svc);

        let db = Arc::new(Db::open(&tmp.path().join("wharf.db")).unwrap());
        let svc = VolumeService::open(tmp.path(), db, Arc::new(EventBus::new())).unwrap();
        assert_eq!(svc.list().len(), 2, "volumes survive a restart");
        assert_eq!(svc.get("data").unwrap().labels["a"], "b");
        assert_eq!(svc.get("nope").unwrap_err().to_string(), "get nope: no such volume");
        svc.remove("data", false).unwrap();
        assert!(!tmp.path().join("volumes/data").exists());
        assert_eq!(svc.remove("data", false).unwrap_err().kind(), ErrorKind::NotFound);
        svc.remove("data", true).unwrap();
    }

    #[test]
    fn references_block_removal() {
        let (_tmp, svc, _) = service();
        svc.create(CreateOptions { name: "shared", reference: Some("c1"), ..Default::default() }).unwrap();
        svc.acquire("shared", "c2").unwrap();
        let e = svc.remove("shared", true).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(e.to_string(), "remove shared: volume is in use - [c1 c2]");
        svc.release("shared", "c1");
        svc.release("shared", "c2");
        assert_eq!(svc.list()[0].ref_count, 0);
        svc.remove("shared", false).unwrap();
    }

    #[test]
    fn options_are_validated_at_create() {
        let (_tmp, svc, _) = service();
        let e = svc
            .create(CreateOptions {
                name: "tv",
                driver_opts: [("type".to_owned(), "tmpfs".to_owned())].into(),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("missing required option: \"device\""), "{e}");
    }
}
