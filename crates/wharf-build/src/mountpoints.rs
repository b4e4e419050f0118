//! Mount points that must exist in a step's rootfs only while its process runs: created when
//! missing (inside the rootfs, symlinks resolved within it), and removed again afterwards when
//! still empty, deepest first, so they do not end up in the step's layer.
//!
//! ```no_run
//! # fn f(rootfs: &std::path::Path) -> std::io::Result<()> {
//! use wharf_build::mountpoints::MountPoints;
//! let mut mp = MountPoints::new(rootfs);
//! mp.ensure_dir("/proc")?;
//! mp.ensure_file("/etc/hosts")?;
//! // … run the process …
//! mp.cleanup();
//! # Ok(()) }
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil;

/// Mount points created in one rootfs.
#[derive(Debug)]
pub struct MountPoints {
    root: PathBuf,
    /// Created paths in creation order (parents before children).
    created: Vec<PathBuf>,
}

impl MountPoints {
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf(), created: Vec::new() }
    }

    /// The host path of `target` (absolute in the container), resolved inside the rootfs.
    pub fn host_path(&self, target: &str) -> io::Result<PathBuf> {
        fsutil::resolve_in_scope(&self.root, target)
    }

    fn ensure(&mut self, target: &str, dir: bool) -> io::Result<PathBuf> {
        let path = self.host_path(target)?;
        if fs::symlink_metadata(&path).is_ok() {
            return Ok(path);
        }
        let mut missing = Vec::new();
        let mut cur = path.parent().map(Path::to_path_buf);
        while let Some(c) = cur {
            if c == self.root || fs::symlink_metadata(&c).is_ok() {
                break;
            }
            missing.push(c.clone());
            cur = c.parent().map(Path::to_path_buf);
        }
        for d in missing.iter().rev() {
            fs::create_dir(d)?;
            self.created.push(d.clone());
        }
        if dir {
            fs::create_dir(&path)?;
        } else {
            fs::File::create(&path)?;
        }
        self.created.push(path.clone());
        Ok(path)
    }

    /// Makes sure the directory `target` exists; returns its host path.
    pub fn ensure_dir(&mut self, target: &str) -> io::Result<PathBuf> {
        self.ensure(target, true)
    }

    /// Makes sure the file `target` exists (empty when created); returns its host path.
    pub fn ensure_file(&mut self, target: &str) -> io::Result<PathBuf> {
        self.ensure(target, false)
    }

    /// Removes what was created, deepest first, when it is still empty.
    pub fn cleanup(&mut self) {
        for p in self.created.drain(..).rev() {
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {
                    let _ = fs::remove_dir(&p);
                }
                Ok(m) if m.len() == 0 => {
                    let _ = fs::remove_file(&p);
                }
                _ => {}
            }
        }
    }
}

impl Drop for MountPoints {
    fn drop(&mut self) {
        self.cleanup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_and_removes_only_what_it_made() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("etc")).unwrap();
        let mut mp = MountPoints::new(d.path());
        mp.ensure_dir("/a/b/c").unwrap();
        mp.ensure_file("/etc/hosts").unwrap();
        mp.ensure_dir("/etc").unwrap();
        assert!(d.path().join("a/b/c").is_dir());
        fs::write(d.path().join("a/keep"), "x").unwrap();
        mp.cleanup();
        assert!(!d.path().join("a/b").exists());
        assert!(d.path().join("a/keep").exists());
        assert!(!d.path().join("etc/hosts").exists());
        assert!(d.path().join("etc").exists());
    }
}
