//! The machinery both snapshotters share: the on-disk layout, the crash-safe metadata file, the
//! lifecycle rules of [`Snapshotter`](crate::Snapshotter), and recovery at open. The drivers
//! ([`crate::overlay`], [`crate::native`]) only decide how a snapshot directory is filled and how
//! it is mounted.
//!
//! Layout under the root:
//!
//! ```text
//! <root>/lock                   flock'ed while open: one process per root
//! <root>/metadata.json          {"version":1,"next_id":N,"snapshots":{key: {id,kind,parent,created}}}
//! <root>/snapshots/<id>/fs      the snapshot's files (overlay: its upper dir; native: the full tree)
//! <root>/snapshots/<id>/work    overlay work dir (active overlay snapshots only)
//! <root>/snapshots/new-<id>/    a snapshot being built; renamed to <id> after the metadata commit
//! <root>/snapshots/del-<id>/    a snapshot being removed; renamed from <id> before the metadata commit
//! ```
//!
//! Crash recovery (at open): `new-<id>` is rolled forward when the metadata knows `<id>` and
//! deleted otherwise; `del-<id>` is rolled back when the metadata still knows `<id>` and deleted
//! otherwise; `<id>` directories the metadata does not know and stale metadata temp files are
//! deleted.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use wharf_types::Mount;

use crate::fsutil::{self, TMP_MARK};
use crate::snapshotter::{DiffSource, Info, Kind, SnapshotError, Usage};

const METADATA_VERSION: u32 = 1;
const METADATA_FILE: &str = "metadata.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct MetaFile {
    version: u32,
    next_id: u64,
    snapshots: BTreeMap<String, Record>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: u64,
    kind: Kind,
    parent: Option<String>,
    created: u64,
}

/// What recovery at open found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Half-made, half-removed or orphaned directories and temp files that were deleted.
    pub removed: Vec<PathBuf>,
    /// Directories renamed back into place (a create that had committed its metadata, or a
    /// remove that had not).
    pub restored: Vec<PathBuf>,
    /// Snapshots the metadata knows but whose directory is gone (never expected; reported so
    /// that the caller can remove them).
    pub missing: Vec<String>,
}

struct State {
    meta: MetaFile,
    /// Keys being created (not yet in the metadata) → their parent, so that a concurrent
    /// create of the same key or remove of the parent is refused.
    pending: HashMap<String, Option<String>>,
}

/// The parts a driver supplies.
pub(crate) trait Driver: Send + Sync {
    /// Fills a new snapshot directory `dir` (which exists and is empty). `parent_fs` is the
    /// parent's `fs` dir.
    fn populate(&self, key: &str, dir: &Path, kind: Kind, parent: Option<(&str, &Path)>) -> Result<(), SnapshotError>;
    /// The mounts of an active snapshot or view. `chain` holds the `fs` dirs of the parent
    /// chain, nearest first.
    fn mounts(&self, dir: &Path, kind: Kind, chain: &[PathBuf]) -> Vec<Mount>;
    /// Where the changes of the snapshot in `dir` are read.
    fn diff_source(&self, dir: &Path, kind: Kind, chain: &[PathBuf]) -> DiffSource;
}

/// The shared core of both snapshotters.
pub(crate) struct Store<D> {
    snapshots: PathBuf,
    meta_path: PathBuf,
    state: Mutex<State>,
    recovery: Recovery,
    pub(crate) driver: D,
    _lock: File,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl<D: Driver> Store<D> {
    pub(crate) fn open(root: &Path, driver: D) -> Result<Self, SnapshotError> {
        // Mount options carry these paths: they must not depend on the working directory.
        let absolute =
            std::path::absolute(root).map_err(|source| SnapshotError::Open { path: root.to_path_buf(), source })?;
        let root = absolute.as_path();
        let open_err = |source| SnapshotError::Open { path: root.to_path_buf(), source };
        let snapshots = root.join("snapshots");
        fs::create_dir_all(&snapshots).map_err(open_err)?;
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).open(root.join("lock")).map_err(open_err)?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(SnapshotError::Locked { path: root.to_path_buf() });
            }
            Err(e) => return Err(open_err(e.into())),
        }
        let meta_path = root.join(METADATA_FILE);
        let mut fresh = false;
        let meta = match fs::read(&meta_path) {
            Ok(bytes) => serde_json::from_slice::<MetaFile>(&bytes).map_err(|e| SnapshotError::ReadMetadata {
                path: meta_path.clone(),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fresh = true;
                MetaFile { version: METADATA_VERSION, ..Default::default() }
            }
            Err(source) => {
                return Err(SnapshotError::ReadMetadata { path: meta_path, source });
            }
        };
        if meta.version > METADATA_VERSION {
            return Err(SnapshotError::Version { path: meta_path, version: meta.version, supported: METADATA_VERSION });
        }
        let mut store = Store {
            snapshots,
            meta_path,
            state: Mutex::new(State { meta, pending: HashMap::new() }),
            recovery: Recovery::default(),
            driver,
            _lock: lock,
        };
        if fresh {
            // Without metadata every snapshot directory would look orphaned and be deleted.
            // Committed directories can only exist after a metadata commit, so their presence
            // means the metadata file was lost: refuse rather than wipe.
            let committed = fs::read_dir(&store.snapshots)
                .map_err(open_err)?
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().parse::<u64>().is_ok())
                .count();
            if committed > 0 {
                return Err(SnapshotError::ReadMetadata {
                    path: store.meta_path.clone(),
                    source: io::Error::new(
                        io::ErrorKind::NotFound,
                        format!(
                            "metadata file missing but {committed} snapshot directories exist; restore it or delete the root"
                        ),
                    ),
                });
            }
        }
        store.recovery = store.recover(root).map_err(open_err)?;
        Ok(store)
    }

    pub(crate) fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    fn recover(&self, root: &Path) -> io::Result<Recovery> {
        let mut rec = Recovery::default();
        let state = self.lock();
        let ids: HashMap<u64, &str> = state.meta.snapshots.iter().map(|(k, r)| (r.id, k.as_str())).collect();
        for entry in fs::read_dir(root)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(&format!("{METADATA_FILE}{TMP_MARK}")) {
                fs::remove_file(entry.path())?;
                rec.removed.push(entry.path());
            }
        }
        for entry in fs::read_dir(&self.snapshots)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let (prefix, id) = match name.split_once('-') {
                Some((p, rest)) => (p, rest.parse::<u64>().ok()),
                None => ("", name.parse::<u64>().ok()),
            };
            let known = id.is_some_and(|id| ids.contains_key(&id));
            match (prefix, id) {
                ("new" | "del", Some(id)) if known => {
                    let final_path = self.dir(id);
                    if final_path.exists() {
                        fsutil::remove_dir_all_if_exists(&path)?;
                        rec.removed.push(path);
                    } else {
                        fs::rename(&path, &final_path)?;
                        rec.restored.push(final_path);
                    }
                }
                ("", Some(_)) if known => {}
                _ => {
                    if entry.file_type()?.is_dir() {
                        fsutil::remove_dir_all_if_exists(&path)?;
                    } else {
                        fs::remove_file(&path)?;
                    }
                    rec.removed.push(path);
                }
            }
        }
        fsutil::sync_dir(&self.snapshots)?;
        for (key, r) in &state.meta.snapshots {
            if !self.dir(r.id).exists() {
                rec.missing.push(key.clone());
            }
        }
        Ok(rec)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the in-memory state as it was before the
        // failed change (changes are applied to memory only after they are persisted).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn dir(&self, id: u64) -> PathBuf {
        self.snapshots.join(id.to_string())
    }

    fn persist(&self, meta: &MetaFile) -> Result<(), SnapshotError> {
        let bytes = serde_json::to_vec_pretty(meta)
            .map_err(|e| SnapshotError::WriteMetadata { path: self.meta_path.clone(), source: io::Error::other(e) })?;
        fsutil::write_atomic(&self.meta_path, &bytes)
            .map_err(|source| SnapshotError::WriteMetadata { path: self.meta_path.clone(), source })
    }

    fn get<'a>(state: &'a State, key: &str) -> Result<&'a Record, SnapshotError> {
        state.meta.snapshots.get(key).ok_or_else(|| SnapshotError::NotFound(key.to_owned()))
    }

    /// The `fs` dirs of `parent` and its ancestors, nearest first.
    fn chain<'a>(&self, state: &'a State, mut parent: Option<&'a str>) -> Result<Vec<PathBuf>, SnapshotError> {
        let mut chain = Vec::new();
        while let Some(p) = parent {
            let r = Self::get(state, p)?;
            chain.push(self.dir(r.id).join("fs"));
            parent = r.parent.as_deref();
            if chain.len() > state.meta.snapshots.len() {
                return Err(SnapshotError::ReadMetadata {
                    path: self.meta_path.clone(),
                    source: io::Error::new(io::ErrorKind::InvalidData, format!("parent cycle at {p}")),
                });
            }
        }
        Ok(chain)
    }

    fn validate_key(key: &str) -> Result<(), SnapshotError> {
        let reason = if key.is_empty() {
            "empty"
        } else if key.len() > 4096 {
            "longer than 4096 bytes"
        } else if key.contains('\0') {
            "contains a NUL byte"
        } else {
            return Ok(());
        };
        Err(SnapshotError::InvalidKey { key: key.to_owned(), reason })
    }

    pub(crate) fn create(&self, key: &str, parent: Option<&str>, kind: Kind) -> Result<Vec<Mount>, SnapshotError> {
        Self::validate_key(key)?;
        let (id, parent_dir) = {
            let mut state = self.lock();
            if state.meta.snapshots.contains_key(key) || state.pending.contains_key(key) {
                return Err(SnapshotError::AlreadyExists(key.to_owned()));
            }
            let parent_dir = match parent {
                Some(p) => {
                    let r = Self::get(&state, p)?;
                    if r.kind != Kind::Committed {
                        return Err(SnapshotError::WrongKind {
                            key: p.to_owned(),
                            actual: r.kind.as_str(),
                            wanted: "a committed parent",
                        });
                    }
                    Some(self.dir(r.id).join("fs"))
                }
                None => None,
            };
            let id = state.meta.next_id.max(1);
            state.meta.next_id = id + 1;
            state.pending.insert(key.to_owned(), parent.map(str::to_owned));
            (id, parent_dir)
        };
        let new_dir = self.snapshots.join(format!("new-{id}"));
        let built = fs::create_dir(&new_dir)
            .map_err(|source| SnapshotError::Create { key: key.to_owned(), path: new_dir.clone(), source })
            .and_then(|()| self.driver.populate(key, &new_dir, kind, parent.zip(parent_dir.as_deref())))
            .and_then(|()| {
                fsutil::sync_dir(&new_dir).map_err(|source| SnapshotError::Create {
                    key: key.to_owned(),
                    path: new_dir.clone(),
                    source,
                })
            });
        let mut state = self.lock();
        state.pending.remove(key);
        if let Err(e) = built {
            let _ = fsutil::remove_dir_all_if_exists(&new_dir);
            return Err(e);
        }
        let mut meta = state.meta.clone();
        meta.snapshots.insert(key.to_owned(), Record { id, kind, parent: parent.map(str::to_owned), created: now() });
        if let Err(e) = self.persist(&meta) {
            let _ = fsutil::remove_dir_all_if_exists(&new_dir);
            return Err(e);
        }
        state.meta = meta;
        // The metadata is committed: from here on recovery rolls `new-<id>` forward, so a failed
        // rename is reported but the snapshot exists.
        let final_dir = self.dir(id);
        fs::rename(&new_dir, &final_dir)
            .and_then(|()| fsutil::sync_dir(&self.snapshots))
            .map_err(|source| SnapshotError::Create { key: key.to_owned(), path: final_dir.clone(), source })?;
        let chain = self.chain(&state, parent)?;
        Ok(self.driver.mounts(&final_dir, kind, &chain))
    }

    pub(crate) fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        let state = self.lock();
        let r = Self::get(&state, key)?;
        if r.kind == Kind::Committed {
            return Err(SnapshotError::WrongKind {
                key: key.to_owned(),
                actual: "committed",
                wanted: "an active snapshot or a view",
            });
        }
        let chain = self.chain(&state, r.parent.as_deref())?;
        Ok(self.driver.mounts(&self.dir(r.id), r.kind, &chain))
    }

    /// Commits `key` as `name`; with `rebase`, onto that parent instead of the prepared one.
    pub(crate) fn commit(&self, name: &str, key: &str, rebase: Option<Option<&str>>) -> Result<(), SnapshotError> {
        Self::validate_key(name)?;
        let mut state = self.lock();
        let mut r = Self::get(&state, key)?.clone();
        if let Some(parent) = rebase {
            if let Some(p) = parent {
                let pr = Self::get(&state, p)?;
                if pr.kind != Kind::Committed {
                    return Err(SnapshotError::WrongKind {
                        key: p.to_owned(),
                        actual: pr.kind.as_str(),
                        wanted: "a committed parent",
                    });
                }
            }
            r.parent = parent.map(str::to_owned);
        }
        if r.kind != Kind::Active {
            return Err(SnapshotError::WrongKind {
                key: key.to_owned(),
                actual: r.kind.as_str(),
                wanted: "an active snapshot",
            });
        }
        if state.meta.snapshots.contains_key(name) || state.pending.contains_key(name) {
            return Err(SnapshotError::AlreadyExists(name.to_owned()));
        }
        let mut meta = state.meta.clone();
        meta.snapshots.remove(key);
        meta.snapshots.insert(name.to_owned(), Record { kind: Kind::Committed, created: now(), ..r.clone() });
        self.persist(&meta)?;
        state.meta = meta;
        drop(state);
        // The overlay work dir is scratch space of a mounted upper; a committed snapshot is
        // never an upper again.
        let _ = fsutil::remove_dir_all_if_exists(&self.dir(r.id).join("work"));
        Ok(())
    }

    pub(crate) fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        let mut state = self.lock();
        let r = Self::get(&state, key)?.clone();
        let mut children: Vec<&str> = state
            .meta
            .snapshots
            .iter()
            .filter(|(_, c)| c.parent.as_deref() == Some(key))
            .map(|(k, _)| k.as_str())
            .collect();
        children.extend(state.pending.iter().filter(|(_, p)| p.as_deref() == Some(key)).map(|(k, _)| k.as_str()));
        if !children.is_empty() {
            children.sort_unstable();
            return Err(SnapshotError::HasChildren { key: key.to_owned(), children: children.join(", ") });
        }
        let dir = self.dir(r.id);
        let doomed = self.snapshots.join(format!("del-{}", r.id));
        let moved = match fs::rename(&dir, &doomed) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(source) => {
                return Err(SnapshotError::Remove { key: key.to_owned(), path: dir, source });
            }
        };
        let mut meta = state.meta.clone();
        meta.snapshots.remove(key);
        if let Err(e) = self.persist(&meta) {
            if moved {
                let _ = fs::rename(&doomed, &dir);
            }
            return Err(e);
        }
        state.meta = meta;
        drop(state);
        // Metadata is committed; a failure here leaves `del-<id>`, which the next open deletes.
        fsutil::remove_dir_all_if_exists(&doomed).map_err(|source| SnapshotError::Remove {
            key: key.to_owned(),
            path: doomed,
            source,
        })
    }

    fn info(key: &str, r: &Record) -> Info {
        Info { name: key.to_owned(), kind: r.kind, parent: r.parent.clone(), created: r.created }
    }

    pub(crate) fn stat(&self, key: &str) -> Result<Info, SnapshotError> {
        let state = self.lock();
        Ok(Self::info(key, Self::get(&state, key)?))
    }

    pub(crate) fn list(&self) -> Vec<Info> {
        let state = self.lock();
        state.meta.snapshots.iter().map(|(k, r)| Self::info(k, r)).collect()
    }

    pub(crate) fn usage(&self, key: &str) -> Result<Usage, SnapshotError> {
        let path = {
            let state = self.lock();
            self.dir(Self::get(&state, key)?.id).join("fs")
        };
        let (size, inodes) = fsutil::disk_usage(&path).map_err(|source| SnapshotError::Usage {
            key: key.to_owned(),
            path: path.clone(),
            source,
        })?;
        Ok(Usage { size, inodes })
    }

    pub(crate) fn writable_dir(&self, key: &str) -> Result<PathBuf, SnapshotError> {
        let state = self.lock();
        let r = Self::get(&state, key)?;
        if r.kind != Kind::Active {
            return Err(SnapshotError::WrongKind {
                key: key.to_owned(),
                actual: r.kind.as_str(),
                wanted: "an active snapshot",
            });
        }
        Ok(self.dir(r.id).join("fs"))
    }

    pub(crate) fn diff_source(&self, key: &str) -> Result<DiffSource, SnapshotError> {
        let state = self.lock();
        let r = Self::get(&state, key)?;
        let chain = self.chain(&state, r.parent.as_deref())?;
        Ok(self.driver.diff_source(&self.dir(r.id), r.kind, &chain))
    }
}

/// Implements [`Snapshotter`](crate::Snapshotter) for a newtype holding `store: Store<Driver>`.
macro_rules! delegate_snapshotter {
    ($ty:ty, $whiteouts:expr, $rebase:expr) => {
        impl $crate::Snapshotter for $ty {
            fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
                self.store.create(key, parent, $crate::Kind::Active)
            }
            fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
                self.store.create(key, parent, $crate::Kind::View)
            }
            fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError> {
                self.store.mounts(key)
            }
            fn commit(&self, name: &str, key: &str) -> Result<(), SnapshotError> {
                self.store.commit(name, key, None)
            }
            fn commit_rebased(&self, name: &str, key: &str, parent: Option<&str>) -> Result<(), SnapshotError> {
                if !$rebase {
                    return Err(SnapshotError::Unsupported { op: "commit onto another parent (rebase)" });
                }
                self.store.commit(name, key, Some(parent))
            }
            fn can_rebase(&self) -> bool {
                $rebase
            }
            fn remove(&self, key: &str) -> Result<(), SnapshotError> {
                self.store.remove(key)
            }
            fn stat(&self, key: &str) -> Result<$crate::Info, SnapshotError> {
                self.store.stat(key)
            }
            fn usage(&self, key: &str) -> Result<$crate::Usage, SnapshotError> {
                self.store.usage(key)
            }
            fn list(&self) -> Result<Vec<$crate::Info>, SnapshotError> {
                Ok(self.store.list())
            }
            fn writable_dir(&self, key: &str) -> Result<std::path::PathBuf, SnapshotError> {
                self.store.writable_dir(key)
            }
            fn diff_source(&self, key: &str) -> Result<$crate::DiffSource, SnapshotError> {
                self.store.diff_source(key)
            }
            fn whiteouts(&self) -> $crate::WhiteoutStyle {
                $whiteouts
            }
        }
    };
}
pub(crate) use delegate_snapshotter;
