//! The native snapshotter, for filesystems without overlay: every snapshot directory holds a
//! full tree. `prepare` copies the parent (see [`crate::copy`]); mounts are bind mounts.

use std::fs;
use std::path::{Path, PathBuf};

use wharf_types::Mount;

use crate::copy::copy_tree;
use crate::snapshotter::{DiffSource, Kind, SnapshotError, WhiteoutStyle};
use crate::store::{Driver, Recovery, Store, delegate_snapshotter};

/// Native (copying) snapshotter rooted at a directory (see [`crate::store`] for the layout).
///
/// Mounts it returns: an active snapshot is a read-write bind of its own full copy; a view is a
/// read-only bind of its parent's tree (committed trees never change, so a view copies nothing),
/// or of an empty dir when it has no parent.
pub struct NativeSnapshotter {
    store: Store<NativeDriver>,
}

impl NativeSnapshotter {
    /// Opens (creating if needed) the snapshotter at `root` and recovers from a crash (see
    /// [`NativeSnapshotter::recovery`]). Fails with `Locked` when another process has it open.
    pub fn open(root: &Path) -> Result<Self, SnapshotError> {
        Ok(Self { store: Store::open(root, NativeDriver)? })
    }

    /// What recovery at open found and cleaned up.
    pub fn recovery(&self) -> &Recovery {
        self.store.recovery()
    }
}

// A native snapshot is a full copy of its parent: it cannot change parents.
delegate_snapshotter!(NativeSnapshotter, WhiteoutStyle::Delete, false);

pub(crate) struct NativeDriver;

fn bind(source: &Path, ro: bool) -> Mount {
    Mount {
        kind: "bind".into(),
        source: source.to_string_lossy().into_owned(),
        options: vec!["rbind".into(), if ro { "ro" } else { "rw" }.into()],
    }
}

impl Driver for NativeDriver {
    fn populate(&self, key: &str, dir: &Path, kind: Kind, parent: Option<(&str, &Path)>) -> Result<(), SnapshotError> {
        let fs_dir = dir.join("fs");
        fs::create_dir(&fs_dir).map_err(|source| SnapshotError::Create {
            key: key.to_owned(),
            path: fs_dir.clone(),
            source,
        })?;
        match (kind, parent) {
            (Kind::Active, Some((parent, parent_fs))) => copy_tree(parent_fs, &fs_dir)
                .map_err(|source| SnapshotError::Copy { key: key.to_owned(), parent: parent.to_owned(), source }),
            _ => Ok(()),
        }
    }

    fn mounts(&self, dir: &Path, kind: Kind, chain: &[PathBuf]) -> Vec<Mount> {
        match (kind, chain.first()) {
            (Kind::View, Some(parent)) => vec![bind(parent, true)],
            (kind, _) => vec![bind(&dir.join("fs"), kind == Kind::View)],
        }
    }

    fn diff_source(&self, dir: &Path, kind: Kind, chain: &[PathBuf]) -> DiffSource {
        let lower = chain.first().cloned();
        let upper = match (kind, &lower) {
            (Kind::View, Some(parent)) => parent.clone(),
            _ => dir.join("fs"),
        };
        DiffSource::Trees { lower, upper }
    }
}
