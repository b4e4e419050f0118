//! `docker diff` (`GET /containers/{id}/changes`): what changed in a container's writable layer,
//! as Docker reports it.
//!
//! Overlay (moby's `archive.OverlayChanges`): the upper directory is walked in path order; a
//! whiteout is a deletion (`D`, kind 2), so is an opaque directory that hides one below; an
//! entry found below is a modification (`C`, kind 0) — except a directory whose size, mode and
//! mtime did not change, which is left out — and anything else an addition (`A`, kind 1). The
//! parent of an addition or deletion is reported modified once, right before it, if it was
//! not already. Native (two full trees): `wharf_image::layer::changes`, which is moby's
//! `ChangesDirs` (a directory with changes inside is modified).
//!
//! Docker keeps the files a runtime creates for its mounts (`/etc/hosts`, `/proc`, …) in an
//! "init" layer below the writable one, so they never show up in a diff or a commit. Wharf has
//! no such layer: [`INIT_PATHS`] are left out here and in commits instead, and their parent
//! directories count as unchanged unless something else changed in them.

use std::collections::HashSet;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use wharf_api::models::{ChangeType, FilesystemChange};
use wharf_image::layer::{Change, ChangeKind};
use wharf_snapshot::DiffSource;
use wharf_types::EngineError;

use super::ContainerService;

/// What Docker's init layer holds: mount points the runtime needs in every container.
pub const INIT_PATHS: &[&str] = &[
    "/.dockerenv",
    "/dev",
    "/dev/console",
    "/dev/pts",
    "/dev/shm",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/mtab",
    "/etc/resolv.conf",
    "/proc",
    "/sys",
];

/// True for a path of [`INIT_PATHS`] (absolute, `/etc/hosts`).
pub fn is_init_path(path: &str) -> bool {
    INIT_PATHS.contains(&path)
}

/// Parents of init paths (`/etc`, `/dev`): unchanged unless something else changed in them.
fn is_init_parent(path: &str) -> bool {
    INIT_PATHS.iter().any(|p| p.rsplit_once('/').is_some_and(|(d, _)| d == path))
}

fn lstat(p: &Path) -> io::Result<Option<Metadata>> {
    match std::fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    let mut v = [0u8; 4];
    matches!(rustix::fs::lgetxattr(path, "trusted.overlay.opaque", &mut v[..]), Ok(1) if v[0] == b'y')
}

/// The entry at `rel` in the nearest lower layer that has one (a whiteout there hides it).
fn in_lowers(lowers: &[PathBuf], rel: &Path) -> io::Result<Option<Metadata>> {
    for l in lowers {
        if let Some(m) = lstat(&l.join(rel))? {
            return Ok((!is_whiteout(&m)).then_some(m));
        }
    }
    Ok(None)
}

/// Go's `sameFsTime`: equal seconds, and equal nanoseconds unless either has none.
fn same_time(a: &Metadata, b: &Metadata) -> bool {
    a.mtime() == b.mtime() && (a.mtime_nsec() == b.mtime_nsec() || a.mtime_nsec() == 0 || b.mtime_nsec() == 0)
}

struct Walk<'a> {
    lowers: &'a [PathBuf],
    changed_dirs: HashSet<String>,
    out: Vec<Change>,
}

impl Walk<'_> {
    fn visit(&mut self, upper: &Path, rel: &Path) -> io::Result<()> {
        let dir = upper.join(rel);
        let mut names: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<Vec<_>, _>>()?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let child = rel.join(e.file_name());
            let path = format!("/{}", child.display());
            let Some(meta) = lstat(&upper.join(&child))? else { continue };
            let lower = in_lowers(self.lowers, &child)?;
            let kind = if is_whiteout(&meta) || (meta.is_dir() && is_opaque(&upper.join(&child)) && lower.is_some()) {
                Some(ChangeKind::Deleted)
            } else if is_init_path(&path) {
                None
            } else {
                match &lower {
                    None if meta.is_dir() && is_init_parent(&path) => None,
                    None => Some(ChangeKind::Added),
                    Some(l) if l.is_dir() && meta.is_dir() => {
                        let same = l.size() == meta.size() && l.mode() == meta.mode() && same_time(l, &meta);
                        (!same && !is_init_parent(&path)).then_some(ChangeKind::Modified)
                    }
                    Some(_) => Some(ChangeKind::Modified),
                }
            };
            if let Some(kind) = kind {
                if meta.is_dir() {
                    self.changed_dirs.insert(path.clone());
                }
                if kind != ChangeKind::Modified {
                    let parent = match path.rsplit_once('/') {
                        Some(("", _)) | None => "/".to_owned(),
                        Some((d, _)) => d.to_owned(),
                    };
                    if parent != "/" && self.changed_dirs.insert(parent.clone()) {
                        self.out.push(Change { path: parent, kind: ChangeKind::Modified });
                    }
                }
                self.out.push(Change { path: path.clone(), kind });
            }
            if meta.is_dir() && !is_whiteout(&meta) {
                self.visit(upper, &child)?;
            }
        }
        Ok(())
    }
}

/// The changes of a writable layer, in Docker's order and with Docker's rules (module doc).
pub fn docker_changes(source: &DiffSource) -> io::Result<Vec<Change>> {
    match source {
        DiffSource::Overlay { upper, lowers } => {
            let mut w = Walk { lowers, changed_dirs: HashSet::new(), out: Vec::new() };
            w.visit(upper, Path::new(""))?;
            Ok(w.out)
        }
        DiffSource::Trees { .. } => {
            let all = wharf_image::layer::changes(source).map_err(io::Error::other)?;
            Ok(all.into_iter().filter(|c| !is_init_path(&c.path)).collect())
        }
    }
}

/// A change in the API's form.
pub fn to_api(c: &Change) -> FilesystemChange {
    let kind = match c.kind {
        ChangeKind::Modified => ChangeType::_0,
        ChangeKind::Added => ChangeType::_1,
        ChangeKind::Deleted => ChangeType::_2,
    };
    FilesystemChange { path: c.path.clone(), kind }
}

impl ContainerService {
    /// `GET /containers/{id}/changes`.
    pub async fn changes(&self, name: &str) -> Result<Vec<FilesystemChange>, EngineError> {
        let h = self.lookup(name)?;
        let r = h.record();
        let snapshotter = self.ctx.images.snapshotter();
        let key = r.rw_layer.clone();
        let changes = tokio::task::spawn_blocking(move || -> Result<Vec<Change>, EngineError> {
            let source = snapshotter.diff_source(&key).map_err(|e| EngineError::from_classified(&e))?;
            docker_changes(&source).map_err(|e| EngineError::internal(format!("reading changes: {e}")))
        })
        .await
        .map_err(|e| EngineError::internal(e.to_string()))??;
        Ok(changes.iter().map(to_api).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| {
                let k = match c.kind {
                    ChangeKind::Modified => "C",
                    ChangeKind::Added => "A",
                    ChangeKind::Deleted => "D",
                };
                format!("{k} {}", c.path)
            })
            .collect()
    }

    #[test]
    fn overlay_changes_as_docker_reports_them() {
        let dir = tempfile::tempdir().unwrap();
        let (lower, upper) = (dir.path().join("lower"), dir.path().join("upper"));
        for d in ["etc", "tmp", "usr/bin"] {
            std::fs::create_dir_all(lower.join(d)).unwrap();
            std::fs::create_dir_all(upper.join(d)).unwrap();
        }
        std::fs::write(lower.join("etc/passwd"), "a").unwrap();
        std::fs::write(lower.join("etc/group"), "a").unwrap();
        // Same metadata in both layers: a directory copied up for a child's sake.
        for d in ["etc", "tmp", "usr", "usr/bin"] {
            let t = std::fs::metadata(lower.join(d)).unwrap().modified().unwrap();
            std::fs::File::open(upper.join(d)).unwrap().set_modified(t).unwrap();
            let l = std::fs::File::open(lower.join(d)).unwrap();
            l.set_modified(t).unwrap();
        }
        std::fs::write(upper.join("etc/passwd"), "b").unwrap();
        std::fs::write(upper.join("tmp/new"), "x").unwrap();
        std::fs::write(upper.join("etc/hosts"), "").unwrap();
        std::fs::create_dir_all(upper.join("proc")).unwrap();
        let t = std::fs::metadata(lower.join("etc")).unwrap().modified().unwrap();
        std::fs::File::open(upper.join("etc")).unwrap().set_modified(t).unwrap();
        let t = std::fs::metadata(lower.join("tmp")).unwrap().modified().unwrap();
        std::fs::File::open(upper.join("tmp")).unwrap().set_modified(t).unwrap();
        let got = docker_changes(&DiffSource::Overlay { upper, lowers: vec![lower] }).unwrap();
        assert_eq!(kinds(&got), vec!["C /etc/passwd", "C /tmp", "A /tmp/new"]);
    }
}
