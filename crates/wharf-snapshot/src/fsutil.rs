//! Small filesystem helpers: atomic file replacement, directory fsync, disk usage.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A short random suffix for temporary names, so that concurrent writers never collide.
pub(crate) fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    // A failing getrandom leaves zeros; uniqueness then still comes from the pid.
    let _ = getrandom::fill(&mut bytes);
    format!("{}-{}", std::process::id(), hex::encode(bytes))
}

/// Replaces `path` with `data` atomically: write a temp file beside it, fsync, rename, fsync the
/// directory. Readers see the old or the new content, never a mix.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent"))?;
    let name = path.file_name().ok_or_else(|| io::Error::other("path has no file name"))?;
    let tmp = dir.join(format!("{}{}{}", name.to_string_lossy(), TMP_MARK, random_suffix()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The infix of temp files made by [`write_atomic`]: `<name>.tmp-<suffix>`.
pub(crate) const TMP_MARK: &str = ".tmp-";

/// Makes a directory's entries (creations, renames) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Bytes allocated (blocks × 512) and inodes under `root`, hard links counted once. Does not
/// cross into other filesystems (a snapshot's dir may be a mount point's parent).
pub(crate) fn disk_usage(root: &Path) -> io::Result<(u64, u64)> {
    let mut seen = HashSet::new();
    let mut size = 0u64;
    let mut inodes = 0u64;
    let top = fs::symlink_metadata(root)?;
    let dev = top.dev();
    let mut stack = vec![(root.to_path_buf(), top)];
    while let Some((path, meta)) = stack.pop() {
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        size += meta.blocks() * 512;
        inodes += 1;
        if meta.is_dir() && meta.dev() == dev {
            for entry in fs::read_dir(&path)? {
                let entry = entry?;
                let m = entry.metadata()?;
                stack.push((entry.path(), m));
            }
        }
    }
    Ok((size, inodes))
}

/// `remove_dir_all` that treats a missing directory as removed.
pub(crate) fn remove_dir_all_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
