//! Tree copy for the native snapshotter: owner, mode (setuid/sticky too), times, xattrs, hard
//! links inside the tree, symlinks, devices, fifos and sockets. File data is cloned (FICLONE)
//! where the filesystem can, else copied extent by extent (holes stay holes) with
//! `copy_file_range`, else read and written.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, SeekFrom, Timestamps};
use rustix::io::Errno;
use wharf_types::{Classify, ErrorKind};

/// Errors of [`copy_tree`].
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Classify for CopyError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

fn err<'a, E: Into<io::Error>>(op: &'static str, path: &'a Path) -> impl FnOnce(E) -> CopyError + use<'a, E> {
    move |e| CopyError::Io { op, path: path.to_path_buf(), source: e.into() }
}

/// Copies the contents and attributes of directory `src` into the existing empty directory
/// `dst`. Hard links are kept when both names are inside `src`.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), CopyError> {
    let root_meta = fs::symlink_metadata(src).map_err(err("stat", src))?;
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    // Directories get their mode and times after their contents are written.
    let mut dirs: Vec<(PathBuf, Metadata)> = vec![(dst.to_path_buf(), root_meta.clone())];
    copy_attrs(src, dst, &root_meta, false)?;
    let mut stack = vec![(src.to_path_buf(), dst.to_path_buf())];
    while let Some((sdir, ddir)) = stack.pop() {
        for entry in fs::read_dir(&sdir).map_err(err("read dir", &sdir))? {
            let entry = entry.map_err(err("read dir", &sdir))?;
            let s = entry.path();
            let d = ddir.join(entry.file_name());
            let meta = fs::symlink_metadata(&s).map_err(err("stat", &s))?;
            let ft = meta.file_type();
            if ft.is_dir() {
                rustix::fs::mkdirat(CWD, &d, Mode::from_raw_mode(0o700)).map_err(err("mkdir", &d))?;
                copy_attrs(&s, &d, &meta, false)?;
                dirs.push((d.clone(), meta));
                stack.push((s, d));
                continue;
            }
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    fs::hard_link(first, &d).map_err(err("link", &d))?;
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), d.clone());
            }
            if ft.is_file() {
                copy_file(&s, &d, &meta)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&s).map_err(err("readlink", &s))?;
                std::os::unix::fs::symlink(&target, &d).map_err(err("symlink", &d))?;
            } else {
                let kind = if ft.is_char_device() {
                    FileType::CharacterDevice
                } else if ft.is_block_device() {
                    FileType::BlockDevice
                } else if ft.is_fifo() {
                    FileType::Fifo
                } else {
                    FileType::Socket
                };
                rustix::fs::mknodat(CWD, &d, kind, Mode::from_raw_mode(meta.mode() & 0o7777), meta.rdev())
                    .map_err(err("mknod", &d))?;
            }
            copy_attrs(&s, &d, &meta, true)?;
        }
    }
    for (d, meta) in dirs.iter().rev() {
        rustix::fs::chmodat(CWD, d, Mode::from_raw_mode(meta.mode() & 0o7777), AtFlags::empty())
            .map_err(err("chmod", d))?;
        set_times(d, meta)?;
    }
    Ok(())
}

fn copy_file(src: &Path, dst: &Path, meta: &Metadata) -> Result<(), CopyError> {
    let input = File::open(src).map_err(err("open", src))?;
    let output = OpenOptions::new().write(true).create_new(true).mode(0o600).open(dst).map_err(err("create", dst))?;
    if meta.len() == 0 || rustix::fs::ioctl_ficlone(&output, &input).is_ok() {
        return Ok(());
    }
    copy_data(&input, &output, meta.len()).map_err(err("copy data to", dst))
}

/// Copies the data extents of `input` (skipping holes) into the empty `output`.
fn copy_data(input: &File, output: &File, len: u64) -> io::Result<()> {
    let mut off = 0u64;
    while off < len {
        let start = match rustix::fs::seek(input, SeekFrom::Data(off)) {
            Ok(start) => start,
            Err(Errno::NXIO) => break,
            // No SEEK_DATA here: the whole rest is one extent.
            Err(Errno::INVAL | Errno::OPNOTSUPP) => off,
            Err(e) => return Err(e.into()),
        };
        let end = match rustix::fs::seek(input, SeekFrom::Hole(start)) {
            Ok(end) => end.min(len),
            Err(_) => len,
        };
        copy_range(input, output, start, end)?;
        off = end;
    }
    rustix::fs::ftruncate(output, len)?;
    Ok(())
}

fn copy_range(input: &File, output: &File, start: u64, end: u64) -> io::Result<()> {
    let (mut off_in, mut off_out) = (start, start);
    while off_in < end {
        let want = usize::try_from(end - off_in).unwrap_or(usize::MAX).min(1 << 30);
        match rustix::fs::copy_file_range(input, Some(&mut off_in), output, Some(&mut off_out), want) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                return copy_range_rw(input, output, off_in, end);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn copy_range_rw(input: &File, output: &File, mut off: u64, end: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 256 * 1024];
    while off < end {
        let want = usize::try_from(end - off).unwrap_or(usize::MAX).min(buf.len());
        let n = input.read_at(&mut buf[..want], off)?;
        if n == 0 {
            break;
        }
        output.write_all_at(&buf[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

/// Owner, xattrs and (for non-directories) mode and times of `src` onto `dst`. Owner comes
/// first because chown clears setuid/setgid bits.
fn copy_attrs(src: &Path, dst: &Path, meta: &Metadata, finish: bool) -> Result<(), CopyError> {
    let symlink = meta.file_type().is_symlink();
    rustix::fs::chownat(
        CWD,
        dst,
        Some(rustix::fs::Uid::from_raw(meta.uid())),
        Some(rustix::fs::Gid::from_raw(meta.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(err("chown", dst))?;
    copy_xattrs(src, dst)?;
    if finish {
        if !symlink {
            rustix::fs::chmodat(CWD, dst, Mode::from_raw_mode(meta.mode() & 0o7777), AtFlags::empty())
                .map_err(err("chmod", dst))?;
        }
        set_times(dst, meta)?;
    }
    Ok(())
}

fn set_times(dst: &Path, meta: &Metadata) -> Result<(), CopyError> {
    let ts = |sec: i64, nsec: i64| rustix::fs::Timespec { tv_sec: sec, tv_nsec: nsec as _ };
    let times = Timestamps {
        last_access: ts(meta.atime(), meta.atime_nsec()),
        last_modification: ts(meta.mtime(), meta.mtime_nsec()),
    };
    rustix::fs::utimensat(CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(err("set times on", dst))
}

/// The names of the extended attributes of `path` (not following a final symlink).
pub(crate) fn list_xattrs(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 1024];
    loop {
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => {
                return Ok(buf[..n].split(|b| *b == 0).filter(|s| !s.is_empty()).map(<[u8]>::to_vec).collect());
            }
            Err(Errno::RANGE) => buf.resize(buf.len() * 4, 0),
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The value of one extended attribute of `path` (not following a final symlink).
pub(crate) fn get_xattr(path: &Path, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let name = OsStr::from_bytes(name);
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) => buf.resize(buf.len() * 4, 0),
            Err(Errno::NODATA | Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

fn copy_xattrs(src: &Path, dst: &Path) -> Result<(), CopyError> {
    for name in list_xattrs(src).map_err(err("list xattrs of", src))? {
        let Some(value) = get_xattr(src, &name).map_err(err("get xattr of", src))? else {
            continue;
        };
        let os_name = OsStr::from_bytes(&name);
        match rustix::fs::lsetxattr(dst, os_name, &value, rustix::fs::XattrFlags::empty()) {
            Ok(()) | Err(Errno::NOTSUP) => {}
            Err(e) => return Err(err("set xattr on", dst)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn set_mtime(p: &Path, sec: i64) {
        let t = rustix::fs::Timespec { tv_sec: sec, tv_nsec: 5 };
        let times = Timestamps { last_access: t, last_modification: t };
        rustix::fs::utimensat(CWD, p, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
    }

    #[test]
    fn copies_everything_a_layer_can_hold() {
        let root = rustix::process::geteuid().is_root();
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        fs::create_dir_all(src.join("d/sub")).unwrap();
        fs::create_dir(&dst).unwrap();
        fs::write(src.join("d/file"), "hello").unwrap();
        fs::set_permissions(src.join("d/file"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(src.join("d/file"), src.join("d/sub/hard")).unwrap();
        std::os::unix::fs::symlink("../nowhere", src.join("d/link")).unwrap();
        rustix::fs::mknodat(CWD, src.join("fifo"), FileType::Fifo, Mode::from_raw_mode(0o640), 0).unwrap();
        let sparse = File::create(src.join("sparse")).unwrap();
        sparse.set_len(64 << 20).unwrap();
        std::os::unix::fs::FileExt::write_at(&sparse, b"end", (64 << 20) - 3).unwrap();
        let has_user_xattr =
            rustix::fs::lsetxattr(src.join("d/file"), "user.wharf", b"v", rustix::fs::XattrFlags::empty()).is_ok();
        if root {
            rustix::fs::mknodat(
                CWD,
                src.join("null"),
                FileType::CharacterDevice,
                Mode::from_raw_mode(0o666),
                rustix::fs::makedev(1, 3),
            )
            .unwrap();
            rustix::fs::chownat(
                CWD,
                src.join("d/file"),
                Some(rustix::fs::Uid::from_raw(1234)),
                Some(rustix::fs::Gid::from_raw(5678)),
                AtFlags::empty(),
            )
            .unwrap();
            // chown cleared setuid: set it again.
            fs::set_permissions(src.join("d/file"), fs::Permissions::from_mode(0o4755)).unwrap();
            rustix::fs::chownat(
                CWD,
                src.join("d/link"),
                Some(rustix::fs::Uid::from_raw(42)),
                None,
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .unwrap();
        }
        fs::set_permissions(src.join("d"), fs::Permissions::from_mode(0o1777)).unwrap();
        set_mtime(&src.join("d/link"), 1_000_000);
        set_mtime(&src.join("d/sub"), 2_000_000);
        set_mtime(&src.join("d"), 3_000_000);

        copy_tree(&src, &dst).unwrap();

        for rel in ["d", "d/file", "d/sub", "d/sub/hard", "d/link", "fifo", "sparse"] {
            let (a, b) = (fs::symlink_metadata(src.join(rel)).unwrap(), fs::symlink_metadata(dst.join(rel)).unwrap());
            assert_eq!(a.mode(), b.mode(), "{rel}");
            assert_eq!((a.uid(), a.gid()), (b.uid(), b.gid()), "{rel}");
            assert_eq!((a.mtime(), a.mtime_nsec()), (b.mtime(), b.mtime_nsec()), "{rel}");
            assert_eq!(a.len(), b.len(), "{rel}");
        }
        let (f, h) = (fs::metadata(dst.join("d/file")).unwrap(), fs::metadata(dst.join("d/sub/hard")).unwrap());
        assert_eq!(f.ino(), h.ino(), "hard link kept");
        assert_eq!(fs::read_link(dst.join("d/link")).unwrap(), Path::new("../nowhere"));
        assert_eq!(fs::read_to_string(dst.join("d/file")).unwrap(), "hello");
        let sparse = fs::metadata(dst.join("sparse")).unwrap();
        assert!(sparse.blocks() * 512 < 1 << 20, "holes stay holes: {} blocks", sparse.blocks());
        if has_user_xattr {
            assert_eq!(get_xattr(&dst.join("d/file"), b"user.wharf").unwrap().as_deref(), Some(&b"v"[..]));
        }
        if root {
            assert_eq!(fs::symlink_metadata(dst.join("null")).unwrap().rdev(), rustix::fs::makedev(1, 3));
        }
    }
}
