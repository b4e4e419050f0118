//! Snapshots during a build: a step's writable root (`Rw`: prepare on the parent's top
//! snapshot, mount, change, unmount, diff into a layer, commit under the chain ID) and
//! read-only views of other images (`View`, for `COPY --from` and `RUN --mount=from=`).
//!
//! Guards clean up on drop: a mount is unmounted, an active snapshot that was not committed is
//! removed (a failed or cancelled step leaves nothing behind).
//!
//! On disk: mount points under `<builder root>/mnt/<key>`; layer tars in the content store
//! (uncompressed, so blob digest = diff ID); snapshots in the snapshotter.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wharf_image::ContentStore;
use wharf_image::layer::{Compression, LayerWriter, diff};
use wharf_snapshot::{Snapshotter, mount_all, unmount};
use wharf_types::image::chain_ids;
use wharf_types::{Classify, Digest, ErrorKind, Mount};

use crate::backend::NewLayer;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("prepare snapshot {key}")]
    Prepare {
        key: String,
        #[source]
        source: wharf_snapshot::SnapshotError,
    },
    #[error("mount {key} at {target}")]
    Mount {
        key: String,
        target: PathBuf,
        #[source]
        source: wharf_snapshot::MountError,
    },
    #[error("create mount point {path}")]
    MountPoint {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unmount {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: wharf_snapshot::MountError,
    },
    #[error("diff snapshot {key}")]
    Diff {
        key: String,
        #[source]
        source: wharf_image::layer::DiffError,
    },
    #[error("store layer of {key}")]
    Store {
        key: String,
        #[source]
        source: wharf_image::ContentError,
    },
    #[error("store layer of {key}")]
    StoreIo {
        key: String,
        #[source]
        source: io::Error,
    },
    #[error("commit snapshot {key} as {name}")]
    Commit {
        key: String,
        name: String,
        #[source]
        source: wharf_snapshot::SnapshotError,
    },
    #[error("snapshot {0} of a base image layer is missing: was the image unpacked?")]
    MissingLayer(String),
}

impl Classify for LayerError {
    fn kind(&self) -> ErrorKind {
        match self {
            LayerError::MissingLayer(_) => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        }
    }
}

/// The snapshot name of the top layer of an image with these diff IDs (`None`: no layers).
pub fn top_snapshot(diff_ids: &[Digest]) -> Option<String> {
    chain_ids(diff_ids).last().map(ToString::to_string)
}

/// What the builder needs to make layers.
pub(crate) struct Layers {
    pub(crate) snapshotter: Arc<dyn Snapshotter>,
    pub(crate) content: ContentStore,
    pub(crate) mnt: PathBuf,
}

fn random_key(prefix: &str) -> String {
    format!("{prefix}-{}", &wharf_types::random_hex_id()[..24])
}

impl Layers {
    fn check_parent(&self, parent: Option<&str>) -> Result<(), LayerError> {
        if let Some(p) = parent
            && self.snapshotter.stat(p).is_err()
        {
            return Err(LayerError::MissingLayer(p.to_string()));
        }
        Ok(())
    }

    fn mount_at(&self, key: &str, mounts: &[Mount]) -> Result<PathBuf, LayerError> {
        let target = self.mnt.join(key);
        fs::create_dir_all(&target).map_err(|source| LayerError::MountPoint { path: target.clone(), source })?;
        mount_all(mounts, &target).map_err(|source| LayerError::Mount {
            key: key.to_string(),
            target: target.clone(),
            source,
        })?;
        Ok(target)
    }

    /// A new writable snapshot on `parent` (a committed snapshot name), mounted.
    pub(crate) fn prepare_rw(self: &Arc<Self>, parent: Option<&str>) -> Result<Rw, LayerError> {
        self.check_parent(parent)?;
        let key = random_key("build");
        let mounts = self
            .snapshotter
            .prepare(&key, parent)
            .map_err(|source| LayerError::Prepare { key: key.clone(), source })?;
        let mut rw = Rw { layers: self.clone(), key, mounts, root: None, done: false };
        rw.root = Some(self.mount_at(&rw.key, &rw.mounts)?);
        Ok(rw)
    }

    /// A read-only view of `parent` (or of an empty filesystem), mounted.
    pub(crate) fn view(self: &Arc<Self>, parent: Option<&str>) -> Result<View, LayerError> {
        self.check_parent(parent)?;
        let key = random_key("build-view");
        let mounts =
            self.snapshotter.view(&key, parent).map_err(|source| LayerError::Prepare { key: key.clone(), source })?;
        let mut v = View { layers: self.clone(), key, root: None };
        v.root = Some(self.mount_at(&v.key, &mounts)?);
        Ok(v)
    }
}

/// A step's writable root, mounted at [`Rw::root`].
pub(crate) struct Rw {
    layers: Arc<Layers>,
    pub(crate) key: String,
    pub(crate) mounts: Vec<Mount>,
    root: Option<PathBuf>,
    done: bool,
}

impl Rw {
    pub(crate) fn root(&self) -> &Path {
        self.root.as_deref().expect("mounted until finish")
    }

    fn unmount(&mut self) -> Result<(), LayerError> {
        if let Some(t) = self.root.take() {
            unmount(&t).map_err(|source| LayerError::Unmount { target: t.clone(), source })?;
            let _ = fs::remove_dir(&t);
        }
        Ok(())
    }

    /// Unmounts and writes the snapshot's changes to `path` as an uncompressed layer tar (for
    /// a container the build keeps); `false` when nothing changed. The snapshot stays, so
    /// [`Rw::finish`] may follow.
    pub(crate) fn changes_to(&mut self, path: &Path) -> Result<bool, LayerError> {
        self.unmount()?;
        let key = self.key.clone();
        let source = self
            .layers
            .snapshotter
            .diff_source(&key)
            .map_err(|source| LayerError::Prepare { key: key.clone(), source })?;
        let file = fs::File::create(path).map_err(|source| LayerError::StoreIo { key: key.clone(), source })?;
        let stats = diff(&source, io::BufWriter::new(file)).map_err(|source| LayerError::Diff { key, source })?;
        Ok(stats.entries > 0)
    }

    /// Unmounts, diffs the snapshot into a layer in the content store and commits the snapshot
    /// under the layer's chain ID (`parent_diff_ids` are the image's layers below it). `None`
    /// when nothing changed: the snapshot is dropped and the step makes no layer.
    pub(crate) fn finish(mut self, parent_diff_ids: &[Digest]) -> Result<Option<NewLayer>, LayerError> {
        self.unmount()?;
        let l = self.layers.clone();
        let key = self.key.clone();
        let source =
            l.snapshotter.diff_source(&key).map_err(|source| LayerError::Prepare { key: key.clone(), source })?;
        let writer = l.content.writer(None, None).map_err(|source| LayerError::Store { key: key.clone(), source })?;
        let mut lw = LayerWriter::new(writer, Compression::None, None)
            .map_err(|source| LayerError::StoreIo { key: key.clone(), source })?;
        let stats = diff(&source, &mut lw).map_err(|source| LayerError::Diff { key: key.clone(), source })?;
        if stats.entries == 0 {
            return Ok(None); // drop removes the snapshot; the writer drops its temp file
        }
        let done = lw.finish().map_err(|source| LayerError::StoreIo { key: key.clone(), source })?;
        let ingested = done.inner.commit().map_err(|source| LayerError::Store { key: key.clone(), source })?;
        let mut ids = parent_diff_ids.to_vec();
        ids.push(done.diff_id.clone());
        let name = top_snapshot(&ids).expect("at least one layer");
        match l.snapshotter.commit(&name, &key) {
            Ok(()) => {}
            Err(wharf_snapshot::SnapshotError::AlreadyExists(_)) => {
                // The same layer on the same parent exists already (a parallel stage, or a
                // rebuild after its cache entry was dropped): keep that one.
                let _ = l.snapshotter.remove(&key);
            }
            Err(source) => {
                return Err(LayerError::Commit { key, name, source });
            }
        }
        self.done = true;
        Ok(Some(NewLayer { diff_id: done.diff_id, size: ingested.size, snapshot: name }))
    }
}

impl Drop for Rw {
    fn drop(&mut self) {
        let _ = self.unmount();
        if !self.done {
            let _ = self.layers.snapshotter.remove(&self.key);
        }
    }
}

/// A read-only view, mounted at [`View::root`]; unmounted and removed on drop.
pub(crate) struct View {
    layers: Arc<Layers>,
    key: String,
    root: Option<PathBuf>,
}

impl View {
    pub(crate) fn root(&self) -> &Path {
        self.root.as_deref().expect("mounted while alive")
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if let Some(t) = self.root.take() {
            let _ = unmount(&t);
            let _ = fs::remove_dir(&t);
        }
        let _ = self.layers.snapshotter.remove(&self.key);
    }
}
