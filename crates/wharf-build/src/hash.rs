//! Content hashes of COPY/ADD sources, as the legacy builder's tarsum: per entry, a sha256 over
//! the tar header fields that matter (name, mode, uid, gid, size, type, link target, device
//! numbers, xattrs) and the content — never the mtime. A file source hashes as
//! `file:<hex>`, a directory as `dir:<sha256 of its entries' hashes, sorted, joined by ",">`,
//! several sources as `multi:<…>` ([`combine`]). These strings go into the step's history
//! (`COPY file:<hex> in /dst `) and its cache key.

use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// The tarsum of one entry at `full`, named `name` (its path relative to its root). Symlinks
/// are hashed as links (their target text), not followed.
pub(crate) fn entry_hash(full: &Path, name: &str) -> io::Result<String> {
    let meta = fs::symlink_metadata(full)?;
    let ft = meta.file_type();
    let (typeflag, linkname, size) = if ft.is_symlink() {
        ('2', fs::read_link(full)?.as_os_str().as_bytes().to_vec(), 0)
    } else if ft.is_dir() {
        ('5', Vec::new(), 0)
    } else if ft.is_file() {
        ('0', Vec::new(), meta.size())
    } else if ft.is_char_device() {
        ('3', Vec::new(), 0)
    } else if ft.is_block_device() {
        ('4', Vec::new(), 0)
    } else {
        ('6', Vec::new(), 0)
    };
    let mut h = Sha256::new();
    let dev = meta.rdev();
    let mut field = |k: &str, v: &[u8]| {
        h.update(k.as_bytes());
        h.update(v);
    };
    let name = if ft.is_dir() { format!("{}/", name.trim_end_matches('/')) } else { name.to_string() };
    field("name", name.as_bytes());
    field("mode", (meta.mode() & 0o7777).to_string().as_bytes());
    field("uid", meta.uid().to_string().as_bytes());
    field("gid", meta.gid().to_string().as_bytes());
    field("size", size.to_string().as_bytes());
    field("typeflag", &[typeflag as u8]);
    field("linkname", &linkname);
    field("devmajor", rustix::fs::major(dev).to_string().as_bytes());
    field("devminor", rustix::fs::minor(dev).to_string().as_bytes());
    let mut cap = [0u8; 256];
    if let Ok(n) = rustix::fs::lgetxattr(full, "security.capability", &mut cap[..]) {
        h.update(b"security.capability");
        h.update(&cap[..n]);
    }
    if ft.is_file() {
        let mut f = fs::File::open(full)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// The legacy hash of a source: `file:<tarsum>` for a non-directory, `dir:<…>` for a directory
/// (every entry below it, recursively, not following symlinks). `name` is the source's path
/// relative to its root; `skip` drops entries by their path relative to the directory.
pub(crate) fn source_hash(full: &Path, name: &str, skip: &dyn Fn(&str) -> bool) -> io::Result<String> {
    let meta = fs::metadata(full)?;
    if !meta.is_dir() {
        return Ok(format!("file:{}", entry_hash(full, name)?));
    }
    let mut sums = Vec::new();
    walk(full, name, "", skip, &mut sums)?;
    sums.sort();
    Ok(format!("dir:{}", sha_join(&sums)))
}

fn walk(dir: &Path, name: &str, rel: &str, skip: &dyn Fn(&str) -> bool, out: &mut Vec<String>) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let fname = e.file_name().to_string_lossy().into_owned();
        let child_rel = if rel.is_empty() { fname.clone() } else { format!("{rel}/{fname}") };
        if skip(&child_rel) {
            continue;
        }
        let full = e.path();
        let entry_name = if name.is_empty() || name == "." { child_rel.clone() } else { format!("{name}/{child_rel}") };
        out.push(entry_hash(&full, &entry_name)?);
        if e.file_type()?.is_dir() {
            walk(&full, name, &child_rel, skip, out)?;
        }
    }
    Ok(())
}

fn sha_join(parts: &[String]) -> String {
    hex::encode(Sha256::digest(parts.join(",").as_bytes()))
}

/// One hash for several sources (`multi:<…>`), or the only one as it is.
pub(crate) fn combine(hashes: &[String]) -> String {
    match hashes {
        [one] => one.clone(),
        many => format!("multi:{}", sha_join(many)),
    }
}

/// sha256 hex of bytes.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn hashes_ignore_mtime_but_not_mode_or_content() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, "hello").unwrap();
        let a = source_hash(&f, "f", &|_| false).unwrap();
        assert!(a.starts_with("file:"));
        filetime_touch(&f);
        assert_eq!(source_hash(&f, "f", &|_| false).unwrap(), a);
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(source_hash(&f, "f", &|_| false).unwrap(), a);
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        let b = source_hash(&f, "f", &|_| false).unwrap();
        fs::write(&f, "hellp").unwrap();
        assert_ne!(source_hash(&f, "f", &|_| false).unwrap(), b);
        assert_ne!(source_hash(&f, "g", &|_| false).unwrap(), source_hash(&f, "f", &|_| false).unwrap());
    }

    #[test]
    fn directory_hash_covers_entries() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("dir")).unwrap();
        fs::write(d.path().join("dir/a"), "1").unwrap();
        let h1 = source_hash(&d.path().join("dir"), "dir", &|_| false).unwrap();
        assert!(h1.starts_with("dir:"));
        fs::write(d.path().join("dir/b"), "2").unwrap();
        let h2 = source_hash(&d.path().join("dir"), "dir", &|_| false).unwrap();
        assert_ne!(h1, h2);
        let h3 = source_hash(&d.path().join("dir"), "dir", &|r| r == "b").unwrap();
        assert_eq!(h1, h3);
        assert!(combine(&[h1.clone(), h2]).starts_with("multi:"));
        assert_eq!(combine(std::slice::from_ref(&h1)), h1);
    }

    fn filetime_touch(p: &Path) {
        let ts = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec { tv_sec: 1, tv_nsec: 0 },
            last_modification: rustix::fs::Timespec { tv_sec: 1, tv_nsec: 0 },
        };
        rustix::fs::utimensat(rustix::fs::CWD, p, &ts, rustix::fs::AtFlags::empty()).unwrap();
    }
}
