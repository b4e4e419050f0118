//! From a snapshot's changes to a layer: [`changes()`] lists what changed (`docker diff`),
//! [`diff()`] writes those changes as an OCI layer tar.
//!
//! Two sources (see [`DiffSource`]):
//! - an overlay upper dir: everything in it is added or modified (told apart by looking in the
//!   lower dirs); a char device 0:0 is a deletion (`.wh.<name>`); a directory with
//!   `trusted.overlay.opaque=y` hides everything below it (`<dir>/.wh..wh..opq`);
//! - two full trees (native snapshotter): entries only in the upper tree are added, only in the
//!   lower one deleted, in both but with different type, mode, owner, size, mtime, link target,
//!   device number or xattrs modified (directories are not compared by mtime or size, as in
//!   Docker). As in Docker, a directory with changes inside is reported modified too.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use tar::{EntryType, Header};
use wharf_snapshot::DiffSource;
use wharf_types::{Classify, ErrorKind};

use super::{WHITEOUT_OPAQUE, WHITEOUT_PREFIX};

/// Errors of [`changes()`] and [`diff()`].
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("read changes at {path}")]
    Walk {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write layer entry for {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Classify for DiffError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// Kinds of change, with Docker's numbering (`docker diff`: C, A, D).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

/// One changed path, absolute as seen in the container (`/etc/passwd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
}

/// What [`diff()`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffStats {
    /// Tar entries written (whiteouts included).
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

struct Item {
    rel: PathBuf,
    kind: ChangeKind,
    /// Overlay only: the directory hides all lower content.
    opaque: bool,
}

fn walk_err(path: &Path) -> impl FnOnce(io::Error) -> DiffError + use<'_> {
    move |source| DiffError::Walk { path: path.to_path_buf(), source }
}

fn sorted_names(dir: &Path) -> Result<Vec<OsString>, DiffError> {
    let mut names = Vec::new();
    for e in fs::read_dir(dir).map_err(walk_err(dir))? {
        names.push(e.map_err(walk_err(dir))?.file_name());
    }
    names.sort();
    Ok(names)
}

fn is_overlay_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn lstat(p: &Path) -> Result<Option<Metadata>, DiffError> {
    match fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
        Err(e) => Err(walk_err(p)(e)),
    }
}

/// Extended attributes as (name, value) pairs.
type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Extended attributes of `path` (not following symlinks), sorted, without overlay's own.
fn xattrs(path: &Path) -> Result<Xattrs, DiffError> {
    let mut buf = vec![0u8; 1024];
    let names = loop {
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => break buf[..n].to_vec(),
            Err(Errno::RANGE) => buf.resize(buf.len() * 4, 0),
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(walk_err(path)(e.into())),
        }
    };
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
            continue;
        }
        let mut val = vec![0u8; 256];
        loop {
            match rustix::fs::lgetxattr(path, std::ffi::OsStr::from_bytes(name), &mut val[..]) {
                Ok(n) => {
                    val.truncate(n);
                    out.push((name.to_vec(), val));
                    break;
                }
                Err(Errno::RANGE) => val.resize(val.len() * 4, 0),
                Err(Errno::NODATA) => break,
                Err(e) => return Err(walk_err(path)(e.into())),
            }
        }
    }
    out.sort();
    Ok(out)
}

fn is_opaque(path: &Path) -> bool {
    let mut v = [0u8; 4];
    matches!(rustix::fs::lgetxattr(path, "trusted.overlay.opaque", &mut v[..]), Ok(1) if v[0] == b'y')
}

fn collect(source: &DiffSource) -> Result<Vec<Item>, DiffError> {
    let mut out = Vec::new();
    match source {
        DiffSource::Overlay { upper, lowers } => walk_overlay(upper, lowers, Path::new(""), &mut out)?,
        DiffSource::Trees { lower, upper } => walk_trees(lower.as_deref(), upper, Path::new(""), &mut out)?,
    }
    Ok(out)
}

fn walk_overlay(upper: &Path, lowers: &[PathBuf], rel: &Path, out: &mut Vec<Item>) -> Result<(), DiffError> {
    let dir = upper.join(rel);
    for name in sorted_names(&dir)? {
        let child = rel.join(&name);
        let path = upper.join(&child);
        let Some(meta) = lstat(&path)? else { continue };
        if is_overlay_whiteout(&meta) {
            out.push(Item { rel: child, kind: ChangeKind::Deleted, opaque: false });
            continue;
        }
        let mut in_lower = false;
        for lower in lowers {
            if let Some(m) = lstat(&lower.join(&child))? {
                in_lower = !is_overlay_whiteout(&m);
                break;
            }
        }
        let kind = if in_lower { ChangeKind::Modified } else { ChangeKind::Added };
        let is_dir = meta.is_dir();
        out.push(Item { rel: child.clone(), kind, opaque: is_dir && is_opaque(&path) });
        if is_dir {
            walk_overlay(upper, lowers, &child, out)?;
        }
    }
    Ok(())
}

fn same_entry(a: &Metadata, b: &Metadata, pa: &Path, pb: &Path) -> Result<bool, DiffError> {
    if a.mode() != b.mode() || a.uid() != b.uid() || a.gid() != b.gid() || a.rdev() != b.rdev() {
        return Ok(false);
    }
    if !a.is_dir() && (a.size() != b.size() || a.mtime() != b.mtime() || a.mtime_nsec() != b.mtime_nsec()) {
        return Ok(false);
    }
    if a.file_type().is_symlink()
        && fs::read_link(pa).map_err(walk_err(pa))? != fs::read_link(pb).map_err(walk_err(pb))?
    {
        return Ok(false);
    }
    Ok(xattrs(pa)? == xattrs(pb)?)
}

fn walk_trees(lower: Option<&Path>, upper: &Path, rel: &Path, out: &mut Vec<Item>) -> Result<(), DiffError> {
    let udir = upper.join(rel);
    let mut names: BTreeSet<OsString> = sorted_names(&udir)?.into_iter().collect();
    let ldir = lower.map(|l| l.join(rel));
    let lower_names: BTreeSet<OsString> = match &ldir {
        Some(d) if lstat(d)?.is_some_and(|m| m.is_dir()) => sorted_names(d)?.into_iter().collect(),
        _ => BTreeSet::new(),
    };
    names.extend(lower_names.iter().cloned());
    for name in names {
        let child = rel.join(&name);
        let upath = upper.join(&child);
        let umeta = lstat(&upath)?;
        let lmeta = match lower {
            Some(l) if lower_names.contains(&name) => lstat(&l.join(&child))?,
            _ => None,
        };
        match (umeta, lmeta) {
            (None, None) => {}
            (None, Some(_)) => out.push(Item { rel: child, kind: ChangeKind::Deleted, opaque: false }),
            (Some(um), None) => {
                out.push(Item { rel: child.clone(), kind: ChangeKind::Added, opaque: false });
                if um.is_dir() {
                    walk_trees(None, upper, &child, out)?;
                }
            }
            (Some(um), Some(lm)) => {
                let lpath = lower.expect("lower meta implies a lower tree").join(&child);
                let same = same_entry(&um, &lm, &upath, &lpath)?;
                let mark = out.len();
                if !same {
                    out.push(Item { rel: child.clone(), kind: ChangeKind::Modified, opaque: false });
                }
                if um.is_dir() {
                    walk_trees(if lm.is_dir() { lower } else { None }, upper, &child, out)?;
                    if same && out.len() > mark {
                        // Changes inside make the directory count as modified (Docker does the
                        // same, and the layer then carries the directory's own metadata).
                        out.insert(mark, Item { rel: child.clone(), kind: ChangeKind::Modified, opaque: false });
                    }
                }
            }
        }
    }
    Ok(())
}

/// The changes of a snapshot, in path order, as `docker diff` lists them.
pub fn changes(source: &DiffSource) -> Result<Vec<Change>, DiffError> {
    Ok(collect(source)?.into_iter().map(|i| Change { path: format!("/{}", i.rel.display()), kind: i.kind }).collect())
}

/// Writes the changes of a snapshot as an uncompressed OCI layer tar to `out` (wrap `out` in a
/// [`super::LayerWriter`] to compress and digest it). Entries are in path order; file content,
/// owner, mode, mtime (seconds), symlink targets, device numbers, hard links within the layer
/// and xattrs (as PAX `SCHILY.xattr.*`) are kept; long names use GNU long-name records.
pub fn diff<W: Write>(source: &DiffSource, out: W) -> Result<DiffStats, DiffError> {
    let upper = match source {
        DiffSource::Overlay { upper, .. } | DiffSource::Trees { upper, .. } => upper.as_path(),
    };
    let items = collect(source)?;
    let mut builder = tar::Builder::new(out);
    let mut stats = DiffStats::default();
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for item in &items {
        let write_err = |source| DiffError::Write { path: item.rel.clone(), source };
        if item.kind == ChangeKind::Deleted {
            let name = item.rel.file_name().expect("a changed path has a name");
            let mut wh = OsString::from(WHITEOUT_PREFIX);
            wh.push(name);
            let path = item.rel.with_file_name(wh);
            append_empty(&mut builder, &path, 0o600).map_err(write_err)?;
            stats.entries += 1;
            continue;
        }
        let path = upper.join(&item.rel);
        let Some(meta) = lstat(&path)? else { continue };
        let ft = meta.file_type();
        if ft.is_socket() {
            continue; // tar cannot hold sockets; neither does Docker's layer format
        }
        let mut header = Header::new_gnu();
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(u64::from(meta.uid()));
        header.set_gid(u64::from(meta.gid()));
        header.set_mtime(meta.mtime().max(0) as u64);
        header.set_size(0);
        let xattrs = xattrs(&path)?;
        if !xattrs.is_empty() {
            let records: Vec<(String, &[u8])> = xattrs
                .iter()
                .filter_map(|(n, v)| Some((format!("SCHILY.xattr.{}", std::str::from_utf8(n).ok()?), v.as_slice())))
                .collect();
            builder.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v))).map_err(write_err)?;
        }
        if !ft.is_dir() && meta.nlink() > 1 {
            if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                header.set_entry_type(EntryType::Link);
                builder.append_link(&mut header, &item.rel, first).map_err(write_err)?;
                stats.entries += 1;
                continue;
            }
            links.insert((meta.dev(), meta.ino()), item.rel.clone());
        }
        if ft.is_dir() {
            header.set_entry_type(EntryType::Directory);
            let mut name = item.rel.clone().into_os_string().into_vec();
            name.push(b'/');
            builder
                .append_data(&mut header, Path::new(std::ffi::OsStr::from_bytes(&name)), io::empty())
                .map_err(write_err)?;
        } else if ft.is_symlink() {
            header.set_entry_type(EntryType::Symlink);
            let target = fs::read_link(&path).map_err(walk_err(&path))?;
            builder.append_link(&mut header, &item.rel, &target).map_err(write_err)?;
        } else if ft.is_file() {
            header.set_entry_type(EntryType::Regular);
            header.set_size(meta.size());
            let file = File::open(&path).map_err(walk_err(&path))?;
            let mut data = ExactReader { inner: file.take(meta.size()), left: meta.size() };
            builder.append_data(&mut header, &item.rel, &mut data).map_err(write_err)?;
            stats.bytes += meta.size();
        } else {
            header.set_entry_type(if ft.is_char_device() {
                EntryType::Char
            } else if ft.is_block_device() {
                EntryType::Block
            } else {
                EntryType::Fifo
            });
            let dev = meta.rdev();
            header.set_device_major(rustix::fs::major(dev)).map_err(write_err)?;
            header.set_device_minor(rustix::fs::minor(dev)).map_err(write_err)?;
            builder.append_data(&mut header, &item.rel, io::empty()).map_err(write_err)?;
        }
        stats.entries += 1;
        if item.opaque {
            append_empty(&mut builder, &item.rel.join(WHITEOUT_OPAQUE), 0o600).map_err(write_err)?;
            stats.entries += 1;
        }
    }
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|source| DiffError::Write { path: PathBuf::from("end of archive"), source })?;
    Ok(stats)
}

fn append_empty<W: Write>(builder: &mut tar::Builder<W>, path: &Path, mode: u32) -> io::Result<()> {
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_mode(mode);
    header.set_size(0);
    header.set_mtime(0);
    builder.append_data(&mut header, path, io::empty())
}

/// Fails instead of writing a short entry when a file shrank while being read.
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being added to the layer"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
