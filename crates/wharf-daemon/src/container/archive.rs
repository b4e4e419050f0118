//! `docker cp` (compat §3.8) and `docker export`: stat a path, tar a path, extract a tar into a
//! directory, tar the whole root, on running and stopped containers alike.
//!
//! Semantics are moby's (`daemon/archive_linux.go`, go-archive's Tarballer and Unpack):
//! - paths are cleaned lexically (`/tmp/../etc` is `/etc`); a trailing `/` or `/.` is kept and
//!   makes the last element be followed; otherwise the last element is `lstat`ed;
//! - `GET` tars a directory as `base/`, `base/…` (`dir/.` gives `./`, `./…`), anything else
//!   as one entry named `base`; hard links inside the tree become link entries, sockets are
//!   skipped, times are whole seconds, `security.capability` goes along as a PAX record;
//! - `PUT` extracts into an existing directory: missing parents are made (0755), what exists
//!   is replaced unless both are directories (then merged), `noOverwriteDirNonDir` refuses
//!   a type change, links must stay inside the destination, owners come from the tar (or the
//!   container's user with `copyUIDGID`), directory times are set last.
//!
//! Safety: see [`super::fsview`]; every path goes through the container's root, and files are
//! created and changed through descriptors or `*at` calls that never follow a final symlink.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use futures_util::StreamExt;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use tar::{EntryType, Header};
use wharf_api::backend::{ByteStream, ExtractOptions, PathArchive, PathStat};
use wharf_types::{EngineError, Event, EventType};

use super::fsview::{RootDir, Source, os, with_root};
use super::model::{ContainerRecord, Status};
use super::{ContainerService, run};
pub use wharf_types::path::clean;

/// Go's `os.FileMode` bits (compat §3.8).
pub mod go_mode {
    pub const DIR: u32 = 1 << 31;
    pub const SYMLINK: u32 = 1 << 27;
    pub const DEVICE: u32 = 1 << 26;
    pub const NAMED_PIPE: u32 = 1 << 25;
    pub const SOCKET: u32 = 1 << 24;
    pub const SETUID: u32 = 1 << 23;
    pub const SETGID: u32 = 1 << 22;
    pub const CHAR_DEVICE: u32 = 1 << 21;
    pub const STICKY: u32 = 1 << 20;
}

/// A Unix `st_mode` as Go's `os.FileMode`.
pub fn go_file_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    match FileType::from_raw_mode(st_mode) {
        FileType::Directory => m |= go_mode::DIR,
        FileType::Symlink => m |= go_mode::SYMLINK,
        FileType::Fifo => m |= go_mode::NAMED_PIPE,
        FileType::Socket => m |= go_mode::SOCKET,
        FileType::CharacterDevice => m |= go_mode::DEVICE | go_mode::CHAR_DEVICE,
        FileType::BlockDevice => m |= go_mode::DEVICE,
        _ => {}
    }
    if st_mode & 0o4000 != 0 {
        m |= go_mode::SETUID;
    }
    if st_mode & 0o2000 != 0 {
        m |= go_mode::SETGID;
    }
    if st_mode & 0o1000 != 0 {
        m |= go_mode::STICKY;
    }
    m
}

/// Go's `time.Time` in JSON: RFC 3339 with nanoseconds, trailing zeros trimmed.
pub fn go_time(secs: i64, nanos: i64) -> String {
    let t = chrono::DateTime::from_timestamp(secs, nanos.clamp(0, 999_999_999) as u32).unwrap_or_default();
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos <= 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

/// moby's `filepath.Join("/", p)` with the trailing `/` or `/.` of `p` preserved.
pub fn container_path(p: &str) -> String {
    let mut abs = clean(&format!("/{p}"));
    if (p.ends_with("/.") || p == ".") && !abs.ends_with("/.") {
        if !abs.ends_with('/') {
            abs.push('/');
        }
        abs.push('.');
    } else if p.ends_with('/') && !abs.ends_with('/') {
        abs.push('/');
    }
    abs
}

/// Go's `filepath.Base`.
pub fn base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_owned()
}

fn errno(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw_os_error)
}

fn is_not_found(e: &io::Error) -> bool {
    errno(e) == Some(Errno::NOENT)
}

/// Stats `abs` (from [`container_path`]) inside `root`: `lstat`, unless the path ends in `/`
/// or `/.`.
pub fn stat_path(root: &RootDir, abs: &str) -> io::Result<(PathStat, rustix::fs::Stat)> {
    let rel = abs.trim_start_matches('/');
    let follow = abs.ends_with('/') || abs.ends_with("/.") || rel.is_empty();
    let st = if follow {
        rustix::fs::fstat(root.resolve(rel, OFlags::PATH)?)?
    } else {
        let (dir, name) = root.parent(rel)?;
        rustix::fs::statat(&dir, os(&name), AtFlags::SYMLINK_NOFOLLOW)?
    };
    let link_target = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        root.resolve_logical(abs)?
    } else {
        String::new()
    };
    let stat = PathStat {
        name: base(abs),
        size: st.st_size,
        mode: go_file_mode(st.st_mode),
        mtime: go_time(st.st_mtime, st.st_mtime_nsec as i64),
        link_target,
    };
    Ok((stat, st))
}

/// Writes tar entries for a tree, as go-archive's tar appender does.
struct TarWriter<W: Write> {
    tar: tar::Builder<W>,
    /// (dev, ino) of files with several links → the first name written.
    links: HashMap<(u64, u64), String>,
}

impl<W: Write> TarWriter<W> {
    fn new(out: W) -> Self {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Complete);
        Self { tar, links: HashMap::new() }
    }

    fn header(st: &rustix::fs::Stat, kind: EntryType) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(u64::from(st.st_uid));
        h.set_gid(u64::from(st.st_gid));
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        h
    }

    /// Appends an entry named exactly `name` (tar's own path handling would drop a leading
    /// `./` or `/`, which clients rebase on): GNU long-name records past 100 bytes.
    fn append(&mut self, h: &mut Header, name: &[u8], link: Option<&[u8]>, data: impl Read) -> io::Result<()> {
        fn long(tar: &mut tar::Builder<impl Write>, kind: EntryType, value: &[u8]) -> io::Result<()> {
            let mut lh = Header::new_gnu();
            lh.as_gnu_mut().expect("gnu header").name[..13].copy_from_slice(b"././@LongLink");
            lh.set_mode(0o644);
            lh.set_entry_type(kind);
            lh.set_size(value.len() as u64 + 1);
            lh.set_cksum();
            tar.append(&lh, value.chain(&b"\0"[..]))
        }
        if name.len() > 100 {
            long(&mut self.tar, EntryType::GNULongName, name)?;
        }
        if let Some(l) = link.filter(|l| l.len() > 100) {
            long(&mut self.tar, EntryType::GNULongLink, l)?;
        }
        let gnu = h.as_gnu_mut().expect("gnu header");
        gnu.name = [0; 100];
        let n = name.len().min(100);
        gnu.name[..n].copy_from_slice(&name[..n]);
        if let Some(l) = link {
            gnu.linkname = [0; 100];
            let n = l.len().min(100);
            gnu.linkname[..n].copy_from_slice(&l[..n]);
        }
        h.set_cksum();
        self.tar.append(h, data)
    }

    fn pax(&mut self, records: &[(String, Vec<u8>)]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut data = Vec::new();
        for (k, v) in records {
            let body_len = 1 + k.len() + 1 + v.len() + 1;
            let mut len = body_len + 1;
            while len != body_len + len.to_string().len() {
                len = body_len + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::XHeader);
        h.set_path("PaxHeader")?;
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        self.tar.append(&h, &data[..])
    }

    /// Adds `name` (in `dir`) as `archive_name`; directories are not descended into here.
    fn add(&mut self, dir: &OwnedFd, name: &str, archive_name: &str) -> io::Result<Option<rustix::fs::Stat>> {
        let st = rustix::fs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let mut h = Self::header(&st, EntryType::Directory);
                let n = format!("{}/", archive_name.trim_end_matches('/'));
                self.append(&mut h, n.as_bytes(), None, io::empty())?;
            }
            FileType::RegularFile => {
                let fd = match rustix::fs::openat(
                    dir,
                    os(name),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    // Replaced meanwhile (by a symlink, say): not what was listed; skip it.
                    Err(Errno::LOOP) | Err(Errno::NOENT) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let st = rustix::fs::fstat(&fd)?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    return Ok(None);
                }
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key).cloned() {
                        let mut h = Self::header(&st, EntryType::Link);
                        self.append(&mut h, archive_name.as_bytes(), Some(first.as_bytes()), io::empty())?;
                        return Ok(Some(st));
                    }
                    self.links.insert(key, archive_name.to_owned());
                }
                let mut caps = vec![0u8; 256];
                if let Ok(n) = rustix::fs::fgetxattr(&fd, "security.capability", &mut caps[..]) {
                    caps.truncate(n);
                    self.pax(&[("SCHILY.xattr.security.capability".to_owned(), caps)])?;
                }
                let mut h = Self::header(&st, EntryType::Regular);
                let size = st.st_size.max(0) as u64;
                h.set_size(size);
                // Exactly `size` bytes even if the file changes meanwhile.
                let file = std::fs::File::from(fd);
                let data = file.take(size).chain(io::repeat(0)).take(size);
                self.append(&mut h, archive_name.as_bytes(), None, data)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, os(name), Vec::new())?;
                let mut h = Self::header(&st, EntryType::Symlink);
                self.append(&mut h, archive_name.as_bytes(), Some(target.as_bytes()), io::empty())?;
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let kind = match FileType::from_raw_mode(st.st_mode) {
                    FileType::CharacterDevice => EntryType::Char,
                    FileType::BlockDevice => EntryType::Block,
                    _ => EntryType::Fifo,
                };
                let mut h = Self::header(&st, kind);
                if kind != EntryType::Fifo {
                    h.set_device_major(rustix::fs::major(st.st_rdev))?;
                    h.set_device_minor(rustix::fs::minor(st.st_rdev))?;
                }
                self.append(&mut h, archive_name.as_bytes(), None, io::empty())?;
            }
            // Sockets cannot be archived (go-archive skips them too).
            _ => return Ok(None),
        }
        Ok(Some(st))
    }

    /// Adds everything below the open directory `dir`, named `prefix/name` (`name` alone
    /// without a prefix).
    fn add_tree(&mut self, dir: &OwnedFd, prefix: Option<&str>) -> io::Result<()> {
        let mut names: Vec<Vec<u8>> = Vec::new();
        for entry in rustix::fs::Dir::read_from(dir)? {
            let entry = entry?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(n.to_vec());
            }
        }
        names.sort();
        for n in names {
            let name = String::from_utf8_lossy(&n).into_owned();
            let archive_name = match prefix {
                Some(p) => format!("{p}/{name}"),
                None => name.clone(),
            };
            let st = match self.add(dir, &name, &archive_name) {
                Ok(Some(st)) => st,
                // Gone meanwhile, or not archivable: a live container keeps changing.
                Ok(None) => continue,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e),
            };
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                let child = match rustix::fs::openat(
                    dir,
                    os(&name),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    // Swapped for a symlink or removed after it was listed: never followed.
                    Err(Errno::LOOP | Errno::NOTDIR | Errno::NOENT) => continue,
                    Err(e) => return Err(e.into()),
                };
                self.add_tree(&child, Some(&archive_name))?;
            }
        }
        Ok(())
    }

    fn finish(self) -> io::Result<()> {
        self.tar.into_inner().map(drop)
    }
}

/// Writes the tar `GET …/archive` answers for `abs`, whose stat is `st`.
pub fn write_path_tar(root: &RootDir, abs: &str, st: &rustix::fs::Stat, out: impl Write) -> io::Result<()> {
    let mut w = TarWriter::new(out);
    let rel = abs.trim_start_matches('/');
    let rebase = base(abs);
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let dir = root.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
        // The root is rebased to an empty name, as moby does: `/`, `/bin`…
        let prefix = if rebase == "/" { String::new() } else { rebase };
        let mut h = TarWriter::<Vec<u8>>::header(st, EntryType::Directory);
        w.append(&mut h, format!("{prefix}/").as_bytes(), None, io::empty())?;
        w.add_tree(&dir, Some(&prefix))?;
    } else {
        let (dir, name) = root.parent(rel)?;
        w.add(&dir, &name, &rebase)?;
    }
    w.finish()
}

/// Writes a whole root (export): entries relative, the root itself left out.
pub fn write_root_tar(root: &RootDir, out: impl Write) -> io::Result<()> {
    let mut w = TarWriter::new(out);
    let dir = root.resolve("", OFlags::RDONLY | OFlags::DIRECTORY)?;
    w.add_tree(&dir, None)?;
    w.finish()
}

/// A `Write` that sends chunks to an async receiver (the response body).
pub struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<bytes::Bytes, io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    const CHUNK: usize = 64 * 1024;

    pub fn new(tx: tokio::sync::mpsc::Sender<Result<bytes::Bytes, io::Error>>) -> Self {
        Self { tx, buf: Vec::with_capacity(Self::CHUNK) }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(Self::CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }

    /// Ends the stream with an error the client sees as a broken transfer.
    pub fn fail(self, e: io::Error) {
        let _ = self.tx.blocking_send(Err(e));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// A blocking `Read` over an async byte stream (a request body).
pub struct StreamReader {
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, io::Error>>,
    cur: bytes::Bytes,
}

impl StreamReader {
    /// Pumps `body` from a task into the returned reader.
    pub fn spawn(mut body: ByteStream) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            while let Some(chunk) = body.next().await {
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
        });
        Self { rx, cur: bytes::Bytes::new() }
    }
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// How an extraction goes (from the request and the container).
pub struct Extract {
    /// The destination as asked (for messages).
    pub path: String,
    pub no_overwrite_dir_non_dir: bool,
    /// Owner for every entry (`copyUIDGID` with a container user); the tar's otherwise.
    pub owner: Option<(u32, u32)>,
    /// The container's root file system is read-only (`--read-only`).
    pub readonly_rootfs: bool,
}

/// Why an extraction failed.
#[derive(Debug)]
pub enum ExtractError {
    NotFound,
    Invalid(String),
    Other(String),
}

impl From<io::Error> for ExtractError {
    fn from(e: io::Error) -> Self {
        ExtractError::Other(e.to_string())
    }
}

impl From<Errno> for ExtractError {
    fn from(e: Errno) -> Self {
        ExtractError::Other(io::Error::from(e).to_string())
    }
}

fn join(a: &str, b: &str) -> String {
    if b.is_empty() || b == "." {
        return a.to_owned();
    }
    clean(&format!("{a}/{b}"))
}

/// Removes `name` in `dir` and everything below it, never following a symlink.
fn remove_all(dir: &OwnedFd, name: &str) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, os(name), AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let sub = rustix::fs::openat(
        dir,
        os(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for e in rustix::fs::Dir::read_from(&sub)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(String::from_utf8_lossy(n).into_owned());
        }
    }
    for n in names {
        remove_all(&sub, &n)?;
    }
    rustix::fs::unlinkat(dir, os(name), AtFlags::REMOVEDIR)?;
    Ok(())
}

/// `mkdir -p` of `rel` inside the root (0755, root-owned, as go-archive's implied directories).
fn make_dirs(root: &RootDir, rel: &str) -> io::Result<OwnedFd> {
    let mut done = String::new();
    for part in rel.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let parent = root.resolve(&done, OFlags::PATH | OFlags::DIRECTORY)?;
        match rustix::fs::mkdirat(&parent, os(part), Mode::from_raw_mode(0o755)) {
            Ok(()) => {
                let _ = rustix::fs::chownat(
                    &parent,
                    os(part),
                    Some(rustix::fs::Uid::ROOT),
                    Some(rustix::fs::Gid::ROOT),
                    AtFlags::SYMLINK_NOFOLLOW,
                );
            }
            Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        done = if done.is_empty() { part.to_owned() } else { format!("{done}/{part}") };
    }
    root.resolve(&done, OFlags::PATH | OFlags::DIRECTORY)
}

fn timestamps(mtime: u64) -> Timestamps {
    let t = Timespec { tv_sec: mtime as i64, tv_nsec: 0 };
    Timestamps { last_access: t, last_modification: t }
}

/// Extracts a tar read from `input` into the directory `x.path` of `root`.
pub fn extract(root: &RootDir, x: &Extract, input: impl Read) -> Result<(), ExtractError> {
    let abs = container_path(&x.path);
    let dest_fd = match root.resolve(abs.trim_start_matches('/'), OFlags::PATH) {
        Ok(fd) => fd,
        Err(e) if is_not_found(&e) => return Err(ExtractError::NotFound),
        Err(e) => return Err(e.into()),
    };
    let st = rustix::fs::fstat(&dest_fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(ExtractError::Invalid("extraction point is not a directory".into()));
    }
    // Writable? On the root's own mount, `--read-only` decides; on any other (a volume, a
    // bind, a tmpfs) the mount's own flag does.
    let mnt = |fd: std::os::fd::BorrowedFd<'_>| {
        rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, rustix::fs::StatxFlags::MNT_ID).map(|s| s.stx_mnt_id)
    };
    let on_root = mnt(dest_fd.as_fd())? == mnt(root.fd())?;
    if on_root && x.readonly_rootfs {
        return Err(ExtractError::Invalid("container rootfs is marked read-only".into()));
    }
    if !on_root
        && rustix::fs::fstatvfs(&dest_fd)
            .map(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
            .unwrap_or(false)
    {
        return Err(ExtractError::Invalid("mounted volume is marked read-only".into()));
    }
    // The destination as the container sees it, symlinks followed: entries are resolved
    // under it, messages name it.
    let dest = root.resolve_logical(&abs)?;
    let dest_rel = dest.trim_start_matches('/').to_owned();
    let mut archive = tar::Archive::new(input);
    let mut dirs: Vec<(String, u64)> = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            continue;
        }
        let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = clean(&raw_name);
        let path = join(&dest, &name);
        // `Join(dest, name)` must stay below dest (`../x` does not).
        if name == ".." || name.starts_with("../") {
            return Err(ExtractError::Other(format!("{raw_name:?} is outside of {dest:?}")));
        }
        let rel = path.trim_start_matches('/').to_owned();
        let (parent_rel, leaf) = match rel.rsplit_once('/') {
            Some((p, l)) => (p.to_owned(), l.to_owned()),
            None => (String::new(), rel.clone()),
        };
        if rel == dest_rel || path == "/" {
            // The destination itself (`.`): merged, as an existing directory.
            if kind == EntryType::Directory {
                continue;
            }
            return Err(ExtractError::Other(format!("cannot extract {raw_name:?} onto the destination directory")));
        }
        let parent = match root.resolve(&parent_rel, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if is_not_found(&e) => make_dirs(root, &parent_rel)?,
            Err(e) => return Err(e.into()),
        };
        let is_dir_entry = kind == EntryType::Directory;
        if let Ok(existing) = rustix::fs::statat(&parent, os(&leaf), AtFlags::SYMLINK_NOFOLLOW) {
            let existing_dir = FileType::from_raw_mode(existing.st_mode) == FileType::Directory;
            if x.no_overwrite_dir_non_dir && existing_dir && !is_dir_entry {
                return Err(ExtractError::Other(format!(
                    "cannot overwrite directory {path:?} with non-directory {dest:?}"
                )));
            }
            if x.no_overwrite_dir_non_dir && !existing_dir && is_dir_entry {
                return Err(ExtractError::Other(format!(
                    "cannot overwrite non-directory {path:?} with directory {dest:?}"
                )));
            }
            if !(existing_dir && is_dir_entry) {
                remove_all(&parent, &leaf)?;
            }
        }
        let h = entry.header().clone();
        let mode = Mode::from_raw_mode(h.mode().unwrap_or(0o644) & 0o7777);
        let (uid, gid) = match x.owner {
            Some(o) => o,
            None => (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32),
        };
        let mtime = h.mtime().unwrap_or(0);
        let mut xattrs: Vec<(String, Vec<u8>)> = Vec::new();
        if let Ok(Some(exts)) = entry.pax_extensions() {
            for ext in exts.flatten() {
                if let Some(k) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    xattrs.push((k.to_owned(), ext.value_bytes().to_vec()));
                }
            }
        }
        let chown = |fd: &OwnedFd| {
            rustix::fs::chownat(
                fd,
                os(&leaf),
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
        };
        match kind {
            EntryType::Directory => {
                if rustix::fs::statat(&parent, os(&leaf), AtFlags::SYMLINK_NOFOLLOW).is_err() {
                    rustix::fs::mkdirat(&parent, os(&leaf), Mode::from_raw_mode(0o700))?;
                }
                chown(&parent)?;
                let fd = rustix::fs::openat(
                    &parent,
                    os(&leaf),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                set_xattrs(&fd, &xattrs)?;
                rustix::fs::fchmod(&fd, mode)?;
                dirs.push((rel.clone(), mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let fd = rustix::fs::openat(
                    &parent,
                    os(&leaf),
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                let mut f = std::fs::File::from(fd);
                io::copy(&mut entry, &mut f)?;
                let fd = OwnedFd::from(f);
                rustix::fs::fchown(&fd, Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)))?;
                set_xattrs(&fd, &xattrs)?;
                rustix::fs::fchmod(&fd, mode)?;
                rustix::fs::futimens(&fd, &timestamps(mtime))?;
            }
            EntryType::Link => {
                let target_name = clean(&String::from_utf8_lossy(&entry.link_name_bytes().unwrap_or_default()));
                let target = join(&dest, &target_name);
                if target_name == ".." || target_name.starts_with("../") || !target.starts_with(dest.as_str()) {
                    return Err(ExtractError::Other(format!(
                        "invalid hardlink {target:?} -> {:?}",
                        String::from_utf8_lossy(&entry.link_name_bytes().unwrap_or_default())
                    )));
                }
                let (tdir, tname) = root.parent(target.trim_start_matches('/'))?;
                rustix::fs::linkat(&tdir, os(&tname), &parent, os(&leaf), AtFlags::empty())?;
            }
            EntryType::Symlink => {
                let link = String::from_utf8_lossy(&entry.link_name_bytes().unwrap_or_default()).into_owned();
                // As go-archive: the target joined to the link's directory must stay under
                // the destination (an absolute target is joined too, so it passes).
                let resolved = clean(&format!("{}/{link}", parent_dir(&path)));
                if !resolved.starts_with(dest.as_str()) {
                    return Err(ExtractError::Other(format!("invalid symlink {path:?} -> {link:?}")));
                }
                rustix::fs::symlinkat(os(&link), &parent, os(&leaf))?;
                chown(&parent)?;
                let _ = rustix::fs::utimensat(&parent, os(&leaf), &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW);
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let ft = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                );
                rustix::fs::mknodat(&parent, os(&leaf), ft, mode, dev)?;
                chown(&parent)?;
                let _ = rustix::fs::chmodat(&parent, os(&leaf), mode, AtFlags::SYMLINK_NOFOLLOW);
                rustix::fs::utimensat(&parent, os(&leaf), &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW)?;
            }
            EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink => {}
            other => {
                return Err(ExtractError::Other(format!("unhandled tar header type {}", other.as_byte())));
            }
        }
    }
    for (rel, mtime) in dirs {
        if let Ok((dir, name)) = root.parent(&rel) {
            let _ = rustix::fs::utimensat(&dir, os(&name), &timestamps(mtime), AtFlags::SYMLINK_NOFOLLOW);
        }
    }
    Ok(())
}

fn parent_dir(p: &str) -> String {
    match p.rsplit_once('/') {
        Some(("", _)) => "/".into(),
        Some((d, _)) => d.to_owned(),
        None => ".".into(),
    }
}

fn set_xattrs(fd: &OwnedFd, xattrs: &[(String, Vec<u8>)]) -> io::Result<()> {
    for (k, v) in xattrs {
        match rustix::fs::fsetxattr(fd, k.as_str(), v, rustix::fs::XattrFlags::empty()) {
            // As go-archive: attributes the file system or our privileges refuse are skipped.
            Ok(()) | Err(Errno::NOTSUP) | Err(Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `uid[:gid]` of a `Config.User` (`name`, `uid`, `name:group`, `uid:gid`) from the
/// container's `/etc/passwd` and `/etc/group`.
pub fn lookup_user(root: &RootDir, user: &str) -> Result<(u32, u32), String> {
    let read = |path: &str| -> String {
        root.resolve(path, OFlags::RDONLY)
            .ok()
            .and_then(|fd| {
                let mut s = String::new();
                std::fs::File::from(fd).read_to_string(&mut s).ok().map(|_| s)
            })
            .unwrap_or_default()
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read("etc/passwd");
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && (f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u)));
    let uid = match (u.parse::<u32>(), &entry) {
        (Ok(n), _) => n,
        (Err(_), Some(f)) => f[2].parse().map_err(|_| format!("invalid uid in passwd for {u}"))?,
        (Err(_), None) => return Err(format!("unable to find user {u}: no matching entries in passwd file")),
    };
    let gid = match g {
        None => entry.and_then(|f| f[3].parse().ok()).unwrap_or(0),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => read("etc/group")
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("unable to find group {g}: no matching entries in group file"))?,
        },
    };
    Ok((uid, gid))
}

fn not_found(path: &str, container: &str) -> EngineError {
    EngineError::not_found(format!("Could not find the file {path} in container {container}"))
}

fn io_engine(e: io::Error) -> EngineError {
    EngineError::internal(e.to_string())
}

impl ContainerService {
    /// Where a container's files are for an archive operation (see [`super::fsview`]).
    /// `export`: the root file system alone, without volumes.
    fn fs_source(&self, r: &ContainerRecord, export: bool) -> Result<Source, EngineError> {
        match r.state.status {
            Status::Removing => {
                return Err(EngineError::conflict(format!("container {} is being removed", r.id)));
            }
            Status::Running | Status::Paused if r.state.pid > 0 => {
                if export {
                    return Ok(Source::Host(run::layout(&self.ctx, r).rootfs));
                }
                return Ok(Source::Running { pid: r.state.pid });
            }
            _ => {}
        }
        let target = self.ctx.paths.exec_root.join("fsview").join(format!(
            "{}-{}",
            &r.id.as_str()[..12],
            &wharf_types::random_hex_id()[..8]
        ));
        Ok(Source::Layer { snapshotter: self.ctx.images.snapshotter(), key: r.rw_layer.clone(), target })
    }

    fn fs_event(&self, r: &ContainerRecord, action: &str) {
        self.ctx.events.publish(Event::now(EventType::Container, action, r.id.as_str(), r.event_attributes()));
    }

    /// `HEAD /containers/{id}/archive`.
    pub async fn archive_stat(&self, name: &str, path: &str) -> Result<PathStat, EngineError> {
        let h = self.lookup(name)?;
        let r = h.record();
        let abs = container_path(path);
        let (p, n) = (path.to_owned(), name.to_owned());
        with_root(self.fs_source(&r, false)?, move |root| {
            let root = root.map_err(io_engine)?;
            match stat_path(&root, &abs) {
                Ok((s, _)) => Ok(s),
                Err(e) if is_not_found(&e) => Err(not_found(&p, &n)),
                Err(e) => Err(io_engine(e)),
            }
        })
        .await?
    }

    /// `GET /containers/{id}/archive`: the stat first (errors are ordinary responses), then
    /// the tar, written on the root's thread as the client reads it.
    pub async fn archive_get(&self, name: &str, path: &str) -> Result<PathArchive, EngineError> {
        let h = self.lookup(name)?;
        let r = h.record();
        let abs = container_path(path);
        let (p, n) = (path.to_owned(), name.to_owned());
        let (stat_tx, stat_rx) = tokio::sync::oneshot::channel::<Result<PathStat, EngineError>>();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let source = self.fs_source(&r, false)?;
        tokio::spawn(with_root(source, move |root| {
            let root = match root {
                Ok(root) => root,
                Err(e) => {
                    let _ = stat_tx.send(Err(io_engine(e)));
                    return;
                }
            };
            let st = match stat_path(&root, &abs) {
                Ok((s, st)) => {
                    let _ = stat_tx.send(Ok(s));
                    st
                }
                Err(e) if is_not_found(&e) => {
                    let _ = stat_tx.send(Err(not_found(&p, &n)));
                    return;
                }
                Err(e) => {
                    let _ = stat_tx.send(Err(io_engine(e)));
                    return;
                }
            };
            let mut out = ChannelWriter::new(tx);
            match write_path_tar(&root, &abs, &st, &mut out) {
                Ok(()) => {
                    let _ = out.flush();
                }
                Err(e) => {
                    tracing::warn!(path = %abs, error = %e, "archiving a container path failed");
                    out.fail(e);
                }
            }
        }));
        let stat = stat_rx.await.map_err(|_| EngineError::internal("archiving ended early"))??;
        self.fs_event(&r, "archive-path");
        Ok(PathArchive { stat, tar: tokio_stream::wrappers::ReceiverStream::new(rx).boxed() })
    }

    /// `PUT /containers/{id}/archive`.
    pub async fn archive_put(&self, name: &str, opts: ExtractOptions, body: ByteStream) -> Result<(), EngineError> {
        let h = self.lookup(name)?;
        let r = h.record();
        let (p, n) = (opts.path.clone(), name.to_owned());
        let user = r.config.user.clone().unwrap_or_default();
        let readonly_rootfs = r.host_config.readonly_rootfs.unwrap_or(false);
        let reader = StreamReader::spawn(body);
        with_root(self.fs_source(&r, false)?, move |root| {
            let root = root.map_err(io_engine)?;
            let owner = if opts.copy_uid_gid && !user.is_empty() {
                Some(lookup_user(&root, &user).map_err(EngineError::invalid)?)
            } else {
                None
            };
            let x = Extract {
                path: opts.path,
                no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
                owner,
                readonly_rootfs,
            };
            extract(&root, &x, reader).map_err(|e| match e {
                ExtractError::NotFound => not_found(&p, &n),
                ExtractError::Invalid(m) => EngineError::invalid(m),
                ExtractError::Other(m) => EngineError::internal(m),
            })
        })
        .await??;
        self.fs_event(&r, "extract-to-dir");
        Ok(())
    }

    /// `GET /containers/{id}/export`.
    pub async fn export(&self, name: &str) -> Result<ByteStream, EngineError> {
        let h = self.lookup(name)?;
        let r = h.record();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), EngineError>>();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let source = self.fs_source(&r, true)?;
        tokio::spawn(with_root(source, move |root| {
            let root = match root {
                Ok(root) => {
                    let _ = ready_tx.send(Ok(()));
                    root
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(io_engine(e)));
                    return;
                }
            };
            let mut out = ChannelWriter::new(tx);
            match write_root_tar(&root, &mut out) {
                Ok(()) => {
                    let _ = out.flush();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "exporting a container failed");
                    out.fail(e);
                }
            }
        }));
        ready_rx.await.map_err(|_| EngineError::internal("export ended early"))??;
        self.fs_event(&r, "export");
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_modes_and_times() {
        assert_eq!(go_file_mode(0o040755), 2147484141);
        assert_eq!(go_file_mode(0o100644), 420);
        assert_eq!(go_file_mode(0o120777), (1 << 27) | 0o777);
        assert_eq!(go_file_mode(0o104755), (1 << 23) | 0o755);
        assert_eq!(go_file_mode(0o020666), (1 << 26) | (1 << 21) | 0o666);
        assert_eq!(go_time(1_795_400_571, 0), "2026-11-23T02:22:51Z");
        assert_eq!(go_time(1_795_400_571, 120_000_000), "2026-11-23T02:22:51.12Z");
    }

    #[test]
    fn paths_as_moby_sees_them() {
        assert_eq!(container_path("tmp/../etc"), "/etc");
        assert_eq!(container_path("/tmp/dir/."), "/tmp/dir/.");
        assert_eq!(container_path("/tmp/dir/"), "/tmp/dir/");
        assert_eq!(container_path("/"), "/");
        assert_eq!(container_path("."), "/.");
        assert_eq!(base("/tmp/dir/."), ".");
        assert_eq!(base("/tmp/dir/"), "dir");
        assert_eq!(base("/"), "/");
        assert_eq!(clean("./a/../b"), "b");
        assert_eq!(clean("../x"), "../x");
    }

    /// A tree with hostile symlinks, resolved and archived inside its root only.
    #[test]
    fn symlinks_never_leave_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root_path = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root_path.join("etc")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "host secret").unwrap();
        std::fs::write(root_path.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink(&outside, root_path.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../../../outside", root_path.join("up")).unwrap();
        std::os::unix::fs::symlink("/etc", root_path.join("etclink")).unwrap();
        let root = RootDir::open(&root_path).unwrap();
        // The absolute link points at a host path, which does not exist inside the root.
        let e = stat_path(&root, "/abs/secret").unwrap_err();
        assert!(is_not_found(&e), "{e}");
        let e = stat_path(&root, "/up/secret").unwrap_err();
        assert!(is_not_found(&e), "{e}");
        let (s, _) = stat_path(&root, "/etclink").unwrap();
        assert_eq!(s.link_target, "/etc");
        assert_eq!(s.mode & go_mode::SYMLINK, go_mode::SYMLINK);
        let (s, st) = stat_path(&root, "/etclink/").unwrap();
        assert_eq!(s.mode & go_mode::DIR, go_mode::DIR, "a trailing slash follows the link");
        let mut tar = Vec::new();
        write_path_tar(&root, "/etclink/", &st, &mut tar).unwrap();
        let names: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["etclink/", "etclink/passwd"]);
        // `dir/.` is the directory's content, named `./…` for the client to rebase.
        let (_, st) = stat_path(&root, "/etc/.").unwrap();
        let mut tar = Vec::new();
        write_path_tar(&root, "/etc/.", &st, &mut tar).unwrap();
        let names: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
            .collect();
        assert_eq!(names, vec!["./", "./passwd"]);
        // Extracting through the hostile links writes inside the root.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_entry_type(EntryType::Regular);
        b.append_data(&mut h, "abs/planted", &b"bad"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let x = Extract { path: "/".into(), no_overwrite_dir_non_dir: true, owner: None, readonly_rootfs: false };
        // Inside the root the link's target does not exist, so this fails, as in Docker; what
        // matters is that nothing is written on the host.
        assert!(extract(&root, &x, &data[..]).is_err());
        assert!(!outside.join("planted").exists(), "nothing written outside the root");
        // A relative link climbing out stops at the root: `up` is `/outside` inside it.
        std::fs::create_dir_all(root_path.join("outside")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_entry_type(EntryType::Regular);
        b.append_data(&mut h, "up/planted", &b"bad"[..]).unwrap();
        let data = b.into_inner().unwrap();
        extract(&root, &x, &data[..]).unwrap();
        assert!(!outside.join("planted").exists(), "nothing written outside the root");
        assert_eq!(std::fs::read(root_path.join("outside/planted")).unwrap(), b"bad");
        // `..` entries are refused.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(EntryType::Regular);
        h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        b.append(&h, &b""[..]).unwrap();
        let data = b.into_inner().unwrap();
        let x = Extract { path: "/etc".into(), no_overwrite_dir_non_dir: true, owner: None, readonly_rootfs: false };
        assert!(matches!(extract(&root, &x, &data[..]), Err(ExtractError::Other(m)) if m.contains("is outside of")));
    }

    #[test]
    fn no_overwrite_dir_non_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("d/sub")).unwrap();
        let root = RootDir::open(dir.path()).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(EntryType::Regular);
        b.append_data(&mut h, "sub", &b"x"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let x = Extract { path: "/d".into(), no_overwrite_dir_non_dir: true, owner: None, readonly_rootfs: false };
        match extract(&root, &x, &data[..]) {
            Err(ExtractError::Other(m)) => {
                assert_eq!(m, r#"cannot overwrite directory "/d/sub" with non-directory "/d""#)
            }
            other => panic!("{other:?}"),
        }
        let x = Extract { path: "/d".into(), no_overwrite_dir_non_dir: false, owner: None, readonly_rootfs: false };
        extract(&root, &x, &data[..]).unwrap();
        assert_eq!(std::fs::read(dir.path().join("d/sub")).unwrap(), b"x");
        let x = Extract { path: "/nope".into(), no_overwrite_dir_non_dir: false, owner: None, readonly_rootfs: false };
        assert!(matches!(extract(&root, &x, &data[..]), Err(ExtractError::NotFound)));
        let x = Extract { path: "/d/sub".into(), no_overwrite_dir_non_dir: false, owner: None, readonly_rootfs: false };
        assert!(matches!(extract(&root, &x, &data[..]), Err(ExtractError::Invalid(_))));
        let x = Extract { path: "/d".into(), no_overwrite_dir_non_dir: false, owner: None, readonly_rootfs: true };
        assert!(
            matches!(extract(&root, &x, &data[..]), Err(ExtractError::Invalid(m)) if m == "container rootfs is marked read-only")
        );
    }
}
