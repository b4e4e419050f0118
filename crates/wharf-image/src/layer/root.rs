//! Path resolution confined to a directory: every lookup made while unpacking a layer goes
//! through [`Root`], which resolves paths as if the destination directory were `/`. Symlinks
//! in the layer (`a -> /etc`, `b -> ../../..`) therefore point inside the destination, never
//! out of it.
//!
//! With `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` (Linux 5.6+) the kernel does this;
//! on older kernels the same walk is done here, one component at a time with `O_NOFOLLOW`,
//! expanding symlinks by hand and clamping `..` at the root.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Symlinks followed in one lookup before giving up with ELOOP (the kernel's limit).
const MAX_SYMLINKS: usize = 40;

/// True when the kernel has `openat2` with `RESOLVE_IN_ROOT`. Probed once.
pub(crate) fn openat2_available() -> bool {
    static PROBE: OnceLock<bool> = OnceLock::new();
    *PROBE.get_or_init(|| {
        !matches!(
            rustix::fs::openat2(CWD, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), ResolveFlags::IN_ROOT),
            Err(Errno::NOSYS)
        )
    })
}

pub(crate) fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

/// A directory that paths are resolved in, with a one-entry cache of the last parent directory
/// (layers list files directory by directory).
pub(crate) struct Root {
    fd: OwnedFd,
    in_kernel: bool,
    cache: Option<(Vec<u8>, OwnedFd)>,
}

impl Root {
    /// Opens `dest` (which must be a directory; a final symlink is not followed).
    pub(crate) fn open(dest: &Path, force_userspace: bool) -> io::Result<Self> {
        let fd = rustix::fs::open(
            dest,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self { fd, in_kernel: !force_userspace && openat2_available(), cache: None })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Forgets cached directory fds: call after anything was removed or replaced.
    pub(crate) fn invalidate(&mut self) {
        self.cache = None;
    }

    /// Resolves `rel` (a normalised relative path, `a/b`; empty for the root) inside the root,
    /// following symlinks, and opens it with `flags` (plus `O_CLOEXEC`).
    pub(crate) fn resolve(&self, rel: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
        let path = if rel.is_empty() { &b"."[..] } else { rel };
        let flags = flags | OFlags::CLOEXEC;
        if self.in_kernel {
            for _ in 0..64 {
                match rustix::fs::openat2(
                    &self.fd,
                    os(path),
                    flags,
                    Mode::empty(),
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                ) {
                    // EAGAIN: a concurrent rename somewhere in the tree; the lookup is retried.
                    Err(Errno::AGAIN) => continue,
                    other => return other.map_err(Into::into),
                }
            }
            return Err(Errno::AGAIN.into());
        }
        let dir = self.walk(path)?;
        if flags.contains(OFlags::PATH) {
            return Ok(dir);
        }
        Ok(rustix::fs::openat(&dir, ".", (flags - OFlags::NOFOLLOW) | OFlags::DIRECTORY, Mode::empty())?)
    }

    /// The userspace version of `RESOLVE_IN_ROOT` for directories.
    fn walk(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        let dup = |fd: BorrowedFd<'_>| {
            rustix::fs::openat(fd, ".", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        };
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut todo: VecDeque<Vec<u8>> = rel.split(|b| *b == b'/').map(<[u8]>::to_vec).collect();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            match &c[..] {
                b"" | b"." => continue,
                b".." => {
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            let cur = stack.last().map_or(self.fd.as_fd(), |f| f.as_fd());
            let fd = rustix::fs::openat(cur, os(&c), OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
            let st = rustix::fs::fstat(&fd)?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => stack.push(fd),
                FileType::Symlink => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(Errno::LOOP.into());
                    }
                    let target = rustix::fs::readlinkat(cur, os(&c), Vec::new())?.into_bytes();
                    if target.first() == Some(&b'/') {
                        stack.clear();
                    }
                    for part in target.split(|b| *b == b'/').rev() {
                        todo.push_front(part.to_vec());
                    }
                }
                _ => return Err(Errno::NOTDIR.into()),
            }
        }
        match stack.pop() {
            Some(fd) => Ok(fd),
            None => Ok(dup(self.fd.as_fd())?),
        }
    }

    /// An `O_PATH` fd of directory `rel`, cached. With `create`, missing directories are made
    /// (mode 0755, like `mkdir -p`), each resolved inside the root.
    pub(crate) fn dir(&mut self, rel: &[u8], create: bool) -> io::Result<BorrowedFd<'_>> {
        if self.cache.as_ref().is_none_or(|(k, _)| k != rel) {
            let fd = match self.resolve(rel, OFlags::PATH | OFlags::DIRECTORY) {
                Err(e) if create && e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => self.create_dirs(rel)?,
                other => other?,
            };
            self.cache = Some((rel.to_vec(), fd));
        }
        Ok(self.cache.as_ref().map(|(_, fd)| fd.as_fd()).expect("cache just filled"))
    }

    fn create_dirs(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        let mut end = 0;
        while end < rel.len() {
            let next = rel[end..].iter().position(|b| *b == b'/').map_or(rel.len(), |i| end + i);
            let prefix = &rel[..next];
            match self.resolve(prefix, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                    let (parent, name) = split_parent(prefix);
                    let pfd = self.resolve(parent, OFlags::PATH | OFlags::DIRECTORY)?;
                    match rustix::fs::mkdirat(&pfd, os(name), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e),
            }
            end = next + 1;
        }
        self.resolve(rel, OFlags::PATH | OFlags::DIRECTORY)
    }
}

/// `a/b/c` → (`a/b`, `c`); `c` → (``, `c`).
pub(crate) fn split_parent(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|b| *b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[][..], rel),
    }
}

/// Removes `name` in `dir`, recursively if it is a directory; a missing name is not an error.
/// Never follows symlinks.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, os(name), AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) => {}
        Err(e) => return Err(e.into()),
    }
    let sub = rustix::fs::openat(
        dir,
        os(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for child in list_dir(sub.as_fd())? {
        remove_all_at(sub.as_fd(), &child)?;
    }
    match rustix::fs::unlinkat(dir, os(name), AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The names in a directory (without `.` and `..`), from a readable directory fd.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    Ok(names)
}
