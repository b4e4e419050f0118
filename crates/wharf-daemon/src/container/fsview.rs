//! A container's file system as the daemon reads and writes it (`docker cp`, export).
//!
//! Where the root is:
//! - a running (or paused) container: `/proc/<pid>/root`, the root of its own mount namespace,
//!   so its volumes, binds and tmpfs mounts are seen exactly as the container sees them;
//! - a container that is not running: its writable layer, mounted in a private mount namespace
//!   of a thread made for the one operation. When the thread ends the kernel drops the
//!   namespace and the mount with it, so nothing stays mounted on the host, even if the daemon
//!   dies halfway through a copy (moby's `openContainerFS` does the same).
//!
//! Every lookup is made by the kernel inside that root: `openat2` with `RESOLVE_IN_ROOT`
//! (`..` stops at the top; symlinks, absolute or relative, are followed as the container would
//! follow them) and `RESOLVE_NO_MAGICLINKS` (no `/proc/<pid>/fd/*` jumps). Callers then work
//! on file descriptors and single names (`*at` calls that never follow a final symlink), so a
//! link swapped in by the container during a walk cannot send the daemon to the host's files.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use wharf_snapshot::Snapshotter;
use wharf_types::EngineError;

/// Symlinks one logical resolution may follow (moby's `FollowSymlinkInScope` allows 255).
const MAX_LINKS: usize = 255;

/// An open root directory that paths are resolved in.
pub struct RootDir {
    fd: OwnedFd,
}

impl RootDir {
    /// Opens `path` (a directory on the host, or `/proc/<pid>/root`).
    pub fn open(path: &std::path::Path) -> io::Result<Self> {
        let fd = rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Self { fd })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens `rel` (relative to the root; empty or `.` for the root itself), following every
    /// symlink inside the root, with `flags` (plus `O_CLOEXEC`).
    pub fn resolve(&self, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        let rel = rel.trim_start_matches('/');
        let path = if rel.is_empty() { "." } else { rel };
        for _ in 0..64 {
            match rustix::fs::openat2(
                &self.fd,
                path,
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                // A concurrent rename somewhere in the tree: the kernel asks for a retry.
                Err(Errno::AGAIN) => continue,
                other => return other.map_err(Into::into),
            }
        }
        Err(Errno::AGAIN.into())
    }

    /// The directory holding `rel`'s last element (resolved inside the root) and that
    /// element's name; `rel` must name something below the root.
    pub fn parent(&self, rel: &str) -> io::Result<(OwnedFd, String)> {
        let rel = rel.trim_matches('/');
        let (dir, name) = match rel.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", rel),
        };
        let fd = self.resolve(dir, OFlags::PATH | OFlags::DIRECTORY)?;
        Ok((fd, name.to_owned()))
    }

    /// `path` with every symlink followed inside the root, as a path seen from inside
    /// (moby's `FollowSymlinkInScope`); missing elements are kept as written. For reporting
    /// (link targets, messages) only: operations go through [`RootDir::resolve`].
    pub fn resolve_logical(&self, path: &str) -> io::Result<String> {
        let mut resolved: Vec<String> = Vec::new();
        let mut pending: VecDeque<String> = path.split('/').map(str::to_owned).collect();
        let mut links = 0;
        while let Some(c) = pending.pop_front() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            let dir = match self.resolve(&resolved.join("/"), OFlags::PATH | OFlags::DIRECTORY) {
                Ok(d) => d,
                Err(_) => {
                    resolved.push(c);
                    resolved.extend(pending.drain(..).filter(|p| !p.is_empty() && p != "."));
                    break;
                }
            };
            match rustix::fs::statat(&dir, c.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Errno::LOOP.into());
                    }
                    let target = rustix::fs::readlinkat(&dir, c.as_str(), Vec::new())?;
                    let target = String::from_utf8_lossy(target.as_bytes()).into_owned();
                    if target.starts_with('/') {
                        resolved.clear();
                    }
                    for part in target.split('/').rev() {
                        pending.push_front(part.to_owned());
                    }
                }
                _ => resolved.push(c),
            }
        }
        Ok(format!("/{}", resolved.join("/")))
    }
}

/// `name` as a path argument.
pub fn os(name: &str) -> &OsStr {
    OsStr::new(name)
}

/// Bytes as a path argument.
pub fn os_bytes(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

/// Where a container's root is found for one operation.
pub enum Source {
    /// The root of a running container's mount namespace.
    Running { pid: i64 },
    /// A directory on the host (a running container's rootfs mount, for export).
    Host(PathBuf),
    /// The writable layer `key`, mounted at `target` in a private mount namespace.
    Layer { snapshotter: Arc<dyn Snapshotter>, key: String, target: PathBuf },
}

/// Runs `f` with the container's root open, on a thread of its own (a private mount namespace
/// for a layer), and returns what it returns. `f` gets the error when the root cannot be
/// opened, so that it can report it the way its caller expects.
pub async fn with_root<R, F>(source: Source, f: F) -> Result<R, EngineError>
where
    R: Send + 'static,
    F: FnOnce(io::Result<RootDir>) -> R + Send + 'static,
{
    match source {
        Source::Running { pid } => {
            tokio::task::spawn_blocking(move || f(RootDir::open(std::path::Path::new(&format!("/proc/{pid}/root")))))
                .await
                .map_err(|e| EngineError::internal(e.to_string()))
        }
        Source::Host(path) => tokio::task::spawn_blocking(move || f(RootDir::open(&path)))
            .await
            .map_err(|e| EngineError::internal(e.to_string())),
        Source::Layer { snapshotter, key, target } => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("wharf-fsview".into())
                .spawn(move || {
                    let root = mount_private(&*snapshotter, &key, &target);
                    let mounted = root.is_ok();
                    let out = f(root);
                    if mounted {
                        let _ = rustix::mount::unmount(&target, rustix::mount::UnmountFlags::DETACH);
                    }
                    let _ = std::fs::remove_dir(&target);
                    let _ = tx.send(out);
                    // The thread ends here; its mount namespace goes with it.
                })
                .map_err(|e| EngineError::internal(format!("starting a file system thread: {e}")))?;
            rx.await.map_err(|_| EngineError::internal("the file system thread ended early"))
        }
    }
}

/// Moves this thread into a private mount namespace and mounts layer `key` at `target`.
/// Never call it on a thread that is shared (a tokio worker): the namespace stays with it.
fn mount_private(snapshotter: &dyn Snapshotter, key: &str, target: &std::path::Path) -> io::Result<RootDir> {
    // SAFETY: CLONE_NEWNS (which implies CLONE_FS) only gives this thread its own mount
    // namespace, root and working directory; the file descriptor table stays shared, so no
    // other thread can be handed a descriptor it cannot use. The thread is ours alone and ends
    // with the operation.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }?;
    // Mounts made here must not propagate back to the host's namespace.
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::DOWNSTREAM | rustix::mount::MountPropagationFlags::REC,
    )?;
    std::fs::create_dir_all(target)?;
    let mounts = snapshotter.mounts(key).map_err(io::Error::other)?;
    wharf_snapshot::mount_all(&mounts, target).map_err(io::Error::other)?;
    RootDir::open(target)
}
