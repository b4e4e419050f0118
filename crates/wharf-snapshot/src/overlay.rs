//! The overlayfs snapshotter: each snapshot directory holds only its own layer (`fs`, the upper
//! dir while active) and an overlay mount stacks the parent chain under it.

use std::fs;
use std::path::{Path, PathBuf};

use wharf_types::Mount;

use crate::snapshotter::{DiffSource, Kind, SnapshotError, WhiteoutStyle};
use crate::store::{Driver, Recovery, Store, delegate_snapshotter};

/// Overlayfs snapshotter rooted at a directory (see [`crate::store`] for the layout).
///
/// Mounts it returns:
/// - active without parent: a read-write bind mount of its `fs`;
/// - active with parents: `overlay` with `lowerdir=<parent fs>:<grandparent fs>:…`,
///   `upperdir=<fs>`, `workdir=<work>` (plus `index=off` where the kernel has the parameter, as
///   Docker does, so that lower dirs can be shared by many uppers);
/// - view of nothing: a read-only bind of its empty `fs`; view of one layer: a read-only bind of
///   that layer; view of several: a lowerdir-only `overlay` with `ro`.
pub struct OverlaySnapshotter {
    store: Store<OverlayDriver>,
}

impl OverlaySnapshotter {
    /// Opens (creating if needed) the snapshotter at `root` and recovers from a crash (see
    /// [`OverlaySnapshotter::recovery`]). Fails with `Locked` when another process has it open.
    /// The root must be on a filesystem that can be an overlay upper (ext4, xfs, btrfs, tmpfs),
    /// and its path must not contain `:` `,` or `\`, which the overlay option syntax reserves.
    pub fn open(root: &Path) -> Result<Self, SnapshotError> {
        if root.to_string_lossy().contains([':', ',', '\\']) {
            return Err(SnapshotError::InvalidRoot {
                path: root.to_path_buf(),
                reason: "overlay root paths cannot contain ':' ',' or '\\'",
            });
        }
        let index_param = Path::new("/sys/module/overlay/parameters/index").exists();
        Ok(Self { store: Store::open(root, OverlayDriver { index_param })? })
    }

    /// What recovery at open found and cleaned up.
    pub fn recovery(&self) -> &Recovery {
        self.store.recovery()
    }
}

// An overlay layer's directory holds only its own changes, so it can be put on any parent.
delegate_snapshotter!(OverlaySnapshotter, WhiteoutStyle::Overlay, true);

/// True when the running kernel knows the overlay filesystem.
pub fn overlay_supported() -> bool {
    fs::read_to_string("/proc/filesystems")
        .is_ok_and(|s| s.lines().any(|l| l.split_whitespace().last() == Some("overlay")))
}

pub(crate) struct OverlayDriver {
    index_param: bool,
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn bind(source: &Path, ro: bool) -> Mount {
    Mount {
        kind: "bind".into(),
        source: path_str(source),
        options: vec!["rbind".into(), if ro { "ro" } else { "rw" }.into()],
    }
}

impl Driver for OverlayDriver {
    fn populate(&self, key: &str, dir: &Path, kind: Kind, _parent: Option<(&str, &Path)>) -> Result<(), SnapshotError> {
        let mk = |p: PathBuf| {
            fs::create_dir(&p).map_err(|source| SnapshotError::Create { key: key.to_owned(), path: p, source })
        };
        mk(dir.join("fs"))?;
        if kind == Kind::Active {
            mk(dir.join("work"))?;
        }
        Ok(())
    }

    fn mounts(&self, dir: &Path, kind: Kind, chain: &[PathBuf]) -> Vec<Mount> {
        let fs_dir = dir.join("fs");
        match (kind, chain) {
            (Kind::View, []) => vec![bind(&fs_dir, true)],
            (Kind::View, [only]) => vec![bind(only, true)],
            (_, []) => vec![bind(&fs_dir, false)],
            (kind, lowers) => {
                let mut options = Vec::new();
                if self.index_param {
                    options.push("index=off".to_owned());
                }
                let lower: Vec<String> = lowers.iter().map(|p| path_str(p)).collect();
                options.push(format!("lowerdir={}", lower.join(":")));
                if kind == Kind::View {
                    options.push("ro".into());
                } else {
                    options.push(format!("upperdir={}", path_str(&fs_dir)));
                    options.push(format!("workdir={}", path_str(&dir.join("work"))));
                }
                vec![Mount { kind: "overlay".into(), source: "overlay".into(), options }]
            }
        }
    }

    fn diff_source(&self, dir: &Path, _kind: Kind, chain: &[PathBuf]) -> DiffSource {
        DiffSource::Overlay { upper: dir.join("fs"), lowers: chain.to_vec() }
    }
}
