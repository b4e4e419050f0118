//! The [`Snapshotter`] trait (the spec), the values it returns, and its error.

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use wharf_types::{Classify, ErrorKind, Mount};

/// Manages filesystem snapshots: the unpacked layers of images and the writable layers of
/// containers. A snapshotter hands out [`Mount`]s; it never mounts anything itself (see
/// [`crate::mount_all`] for that), so callers decide where and when a snapshot is mounted.
///
/// # Vocabulary (containerd's)
///
/// - An **active** snapshot is writable and is addressed by its **key**. It is created by
///   [`prepare`](Snapshotter::prepare) and ends either in [`commit`](Snapshotter::commit) or in
///   [`remove`](Snapshotter::remove).
/// - A **view** is a read-only snapshot of a committed one, also addressed by a key, created by
///   [`view`](Snapshotter::view). It cannot be committed; it is only removed.
/// - A **committed** snapshot is immutable and is addressed by its **name**. Only committed
///   snapshots can be parents. Its content is its parent's content plus the changes made in the
///   active snapshot it was committed from.
/// - Keys and names share one namespace: no key may equal another key or a name.
/// - The **parent chain** of a snapshot is its parent, the parent's parent, and so on. A snapshot
///   with children cannot be removed: remove the children first.
///
/// # Lifecycle
///
/// ```text
///  prepare(key, parent) ──> active ──commit(name, key)──> committed ──remove(name)
///                             │                             │
///                             └── remove(key)               └── view(key2, name) ──> view ──remove(key2)
/// ```
///
/// # Worked example: unpacking an image of two layers and running a container on it
///
/// ```no_run
/// # use wharf_snapshot::{Snapshotter, OverlaySnapshotter};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sn = OverlaySnapshotter::open("/var/lib/wharf/snapshots".as_ref())?;
/// // Layer 1: an empty writable snapshot; unpack the layer into its writable dir; commit it
/// // under the layer's chain id.
/// sn.prepare("extract-1", None)?;
/// let dir = sn.writable_dir("extract-1")?; // unpack layer 1 into `dir`
/// sn.commit("sha256:chain1", "extract-1")?;
/// // Layer 2 on top of layer 1.
/// sn.prepare("extract-2", Some("sha256:chain1"))?;
/// sn.commit("sha256:chain2", "extract-2")?;
/// // A container's rw layer on top of the image; mount it as the container's rootfs.
/// let mounts = sn.prepare("container-abc", Some("sha256:chain2"))?;
/// wharf_snapshot::mount_all(&mounts, "/run/wharf/abc/rootfs".as_ref())?;
/// # Ok(()) }
/// ```
///
/// # Guarantees
///
/// - Every change of the snapshot set is persisted atomically before the call returns; after a
///   crash, reopening the root rolls half-made or half-removed snapshot directories forward or
///   back (see each implementation's `open`).
/// - The API is synchronous and may block on disk I/O (a native `prepare` copies a whole tree):
///   async callers use `spawn_blocking`. All methods take `&self` and are safe to call from
///   several threads at once.
pub trait Snapshotter: Send + Sync {
    /// Creates an active (writable) snapshot `key` on top of the committed snapshot `parent`
    /// (or empty when `None`) and returns the mounts that present it read-write.
    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError>;

    /// Creates a read-only view `key` of the committed snapshot `parent` (or of an empty
    /// directory when `None`) and returns the mounts that present it read-only.
    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError>;

    /// The mounts of an existing active snapshot or view (the same value `prepare`/`view`
    /// returned). Committed snapshots have no mounts: make a view of them.
    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError>;

    /// Turns the active snapshot `key` into the committed snapshot `name`. The key is gone
    /// afterwards. The snapshot must not be mounted any more.
    fn commit(&self, name: &str, key: &str) -> Result<(), SnapshotError>;

    /// Like [`commit`](Snapshotter::commit), but the committed snapshot gets `parent` as its
    /// parent instead of the one `key` was prepared on ("rebase", as containerd calls it). Only
    /// where [`can_rebase`](Snapshotter::can_rebase) is true (overlay: a layer's directory holds
    /// only its own changes); others fail with `Unsupported`.
    ///
    /// This is what makes parallel unpacking possible: prepare every layer with no parent,
    /// unpack them concurrently, then commit them in order, each onto the previous one.
    fn commit_rebased(&self, name: &str, key: &str, parent: Option<&str>) -> Result<(), SnapshotError>;

    /// Whether [`commit_rebased`](Snapshotter::commit_rebased) is supported.
    fn can_rebase(&self) -> bool;

    /// Removes a snapshot of any kind, by key or name. Refused with a conflict while other
    /// snapshots have it as parent.
    fn remove(&self, key_or_name: &str) -> Result<(), SnapshotError>;

    /// Kind and parent of a snapshot.
    fn stat(&self, key_or_name: &str) -> Result<Info, SnapshotError>;

    /// Disk usage of a snapshot's own directory: for an overlay snapshot the layer's own
    /// changes, for a native one the whole tree.
    fn usage(&self, key_or_name: &str) -> Result<Usage, SnapshotError>;

    /// All snapshots, ordered by key or name.
    fn list(&self) -> Result<Vec<Info>, SnapshotError>;

    /// The directory that backs the writable part of an active snapshot, for writing into it
    /// without mounting (unpacking a layer). Whatever is written there must follow
    /// [`Snapshotter::whiteouts`].
    fn writable_dir(&self, key: &str) -> Result<PathBuf, SnapshotError>;

    /// Where the changes of a snapshot (usually committed) can be read, for making a layer
    /// from it or for `docker diff`.
    fn diff_source(&self, key_or_name: &str) -> Result<DiffSource, SnapshotError>;

    /// How deletions must be written into [`Snapshotter::writable_dir`].
    fn whiteouts(&self) -> WhiteoutStyle;
}

/// The three kinds of snapshots; see [`Snapshotter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Active,
    View,
    Committed,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Active => "active",
            Kind::View => "view",
            Kind::Committed => "committed",
        }
    }
}

/// What [`Snapshotter::stat`] and [`Snapshotter::list`] report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The key (active, view) or the name (committed).
    pub name: String,
    pub kind: Kind,
    pub parent: Option<String>,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
}

/// Disk usage: bytes allocated on disk (blocks × 512) and inodes, hard links counted once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub size: u64,
    pub inodes: u64,
}

/// Where a snapshot's changes live, in the form the layer differ needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffSource {
    /// An overlay upper directory: the changes themselves, deletions written as overlay
    /// whiteouts (character device 0:0, `trusted.overlay.opaque=y`). `lowers` are the parents'
    /// directories, nearest first, for telling additions from modifications.
    Overlay { upper: PathBuf, lowers: Vec<PathBuf> },
    /// Two complete trees to compare: the parent's (`None` for a base snapshot) and this one's.
    Trees { lower: Option<PathBuf>, upper: PathBuf },
}

/// How a layer's deletions are represented in a snapshot's writable directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutStyle {
    /// Overlayfs form: a character device 0:0 in place of a deleted entry, and the xattr
    /// `trusted.overlay.opaque=y` on a directory that hides its lower contents.
    Overlay,
    /// The writable directory holds the parent's full content: deleted entries are removed.
    Delete,
}

/// Errors of the snapshotters.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("this snapshotter does not support {op}")]
    Unsupported { op: &'static str },
    #[error("snapshot {0} does not exist")]
    NotFound(String),
    #[error("snapshot {0} already exists")]
    AlreadyExists(String),
    #[error("invalid snapshot key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("invalid snapshot root {path}: {reason}")]
    InvalidRoot { path: PathBuf, reason: &'static str },
    #[error("snapshot {key} is {actual}, the operation needs {wanted}")]
    WrongKind { key: String, actual: &'static str, wanted: &'static str },
    #[error("cannot remove snapshot {key}: it has children ({children})")]
    HasChildren { key: String, children: String },
    #[error("open snapshot root {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("snapshot root {path} is in use by another process")]
    Locked { path: PathBuf },
    #[error("snapshot root {path} has metadata version {version}, this build reads up to {supported}")]
    Version { path: PathBuf, version: u32, supported: u32 },
    #[error("read snapshot metadata {path}")]
    ReadMetadata {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write snapshot metadata {path}")]
    WriteMetadata {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("create snapshot {key} in {path}")]
    Create {
        key: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("copy parent {parent} into snapshot {key}")]
    Copy {
        key: String,
        parent: String,
        #[source]
        source: crate::copy::CopyError,
    },
    #[error("remove snapshot {key} at {path}")]
    Remove {
        key: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("measure usage of snapshot {key} at {path}")]
    Usage {
        key: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Classify for SnapshotError {
    fn kind(&self) -> ErrorKind {
        match self {
            SnapshotError::NotFound(_) => ErrorKind::NotFound,
            SnapshotError::AlreadyExists(_) | SnapshotError::HasChildren { .. } => ErrorKind::Conflict,
            SnapshotError::WrongKind { .. } | SnapshotError::InvalidKey { .. } | SnapshotError::InvalidRoot { .. } => {
                ErrorKind::InvalidArgument
            }
            SnapshotError::Locked { .. } => ErrorKind::Conflict,
            SnapshotError::Unsupported { .. } => ErrorKind::NotImplemented,
            _ => ErrorKind::Internal,
        }
    }
}
