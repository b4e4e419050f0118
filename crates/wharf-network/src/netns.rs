//! Named network namespaces, the way `ip netns add` makes them but without shelling out.
//!
//! A namespace is *named* by a bind mount of its nsfs inode onto an empty file at a path the
//! daemon chooses (`<exec-root>/netns/<container-id>`); the runtime then joins it by path. The
//! namespace lives as long as that mount does, whether or not any process is inside it.
//!
//! Namespace switches are per thread (`unshare`/`setns` act on the calling thread only), so every
//! switch happens on a short-lived dedicated OS thread: the daemon's tokio workers never change
//! namespace, and a thread that ends in a foreign namespace takes that state with it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::mount::{UnmountFlags, mount_bind, unmount};
use rustix::thread::{LinkNameSpaceType, UnshareFlags, move_into_link_name_space, unshare_unsafe};
use wharf_types::{Classify, ErrorKind};

use crate::netlink::Netlink;

/// Failures of namespace operations, each naming the namespace path.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("create network namespace {path}: already exists")]
    CreateExists { path: PathBuf },
    #[error("create network namespace {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("bring up loopback in network namespace {path}")]
    Loopback {
        path: PathBuf,
        #[source]
        source: Box<crate::netlink::NetlinkError>,
    },
    #[error("delete network namespace {path}")]
    Delete {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("enter network namespace {path}")]
    Enter {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("network namespace thread for {path} panicked")]
    ThreadPanicked { path: PathBuf },
}

impl Classify for NetnsError {
    fn kind(&self) -> ErrorKind {
        match self {
            NetnsError::CreateExists { .. } => ErrorKind::Conflict,
            NetnsError::Enter { source, .. } if source.kind() == io::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        }
    }
}

/// Creates a new network namespace bind-mounted at `path` and brings its `lo` up.
///
/// The parent directory is created if needed. Fails with [`NetnsError::CreateExists`] if `path`
/// is already a namespace mount. Blocking; see [`create`] for the async form.
pub fn create_blocking(path: &Path) -> Result<(), NetnsError> {
    let err = |source| NetnsError::Create { path: path.to_owned(), source };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(err)?;
    }
    if is_netns_mount(path) {
        return Err(NetnsError::CreateExists { path: path.to_owned() });
    }
    OpenOptions::new().write(true).create(true).truncate(false).open(path).map_err(err)?;
    let target = path.to_owned();
    let result = std::thread::scope(|s| {
        s.spawn(move || -> Result<(), NetnsError> {
            // SAFETY: CLONE_NEWNET only changes this thread's network namespace (no shared fs or
            // file-table state is unshared); the thread is dedicated and ends right after.
            unsafe { unshare_unsafe(UnshareFlags::NEWNET) }
                .map_err(|e| NetnsError::Create { path: target.clone(), source: e.into() })?;
            mount_bind("/proc/thread-self/ns/net", &target)
                .map_err(|e| NetnsError::Create { path: target.clone(), source: e.into() })?;
            Netlink::open()
                .and_then(|mut nl| {
                    let lo = nl.link_index("lo")?;
                    nl.set_up(lo)
                })
                .map_err(|e| NetnsError::Loopback { path: target.clone(), source: Box::new(e) })
        })
        .join()
    });
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            let _ = delete_blocking(path);
            Err(e)
        }
        Err(_) => {
            let _ = delete_blocking(path);
            Err(NetnsError::ThreadPanicked { path: path.to_owned() })
        }
    }
}

/// Unmounts and removes a namespace created by [`create_blocking`]. Missing is not an error, so
/// the call is idempotent. Processes still inside keep the namespace alive; its links go away
/// when the last one leaves.
pub fn delete_blocking(path: &Path) -> Result<(), NetnsError> {
    let err = |source| NetnsError::Delete { path: path.to_owned(), source };
    match unmount(path, UnmountFlags::DETACH) {
        Ok(()) => {}
        // EINVAL: not a mount point (a half-created namespace); ENOENT: already gone.
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOENT => {}
        Err(e) => return Err(err(e.into())),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// Runs `f` on a dedicated thread that has joined the network namespace at `path`, and returns
/// its result. Sockets created by `f` stay bound to that namespace after the thread ends, which is
/// how the DNS server and the netlink handle for a container work from the daemon's threads.
pub fn run_in<F, T>(path: &Path, f: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let ns = File::open(path).map_err(|source| NetnsError::Enter { path: path.to_owned(), source })?;
    std::thread::scope(|s| {
        s.spawn(|| {
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
                .map_err(|e| NetnsError::Enter { path: path.to_owned(), source: e.into() })?;
            Ok(f())
        })
        .join()
        .map_err(|_| NetnsError::ThreadPanicked { path: path.to_owned() })?
    })
}

/// Whether `path` is a bind mount of a network namespace (an nsfs inode).
pub fn is_netns_mount(path: &Path) -> bool {
    match rustix::fs::statfs(path) {
        // NSFS_MAGIC
        Ok(st) => st.f_type as u64 == 0x6e73_6673,
        Err(_) => false,
    }
}

/// Async wrapper over [`create_blocking`] for the daemon's runtime.
pub async fn create(path: PathBuf) -> Result<(), NetnsError> {
    let p = path.clone();
    tokio::task::spawn_blocking(move || create_blocking(&p)).await.map_err(|_| NetnsError::ThreadPanicked { path })?
}

/// Async wrapper over [`delete_blocking`].
pub async fn delete(path: PathBuf) -> Result<(), NetnsError> {
    let p = path.clone();
    tokio::task::spawn_blocking(move || delete_blocking(&p)).await.map_err(|_| NetnsError::ThreadPanicked { path })?
}

/// Lists namespace mounts under `dir` (the daemon's `<exec-root>/netns`), for reconcile.
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries.filter_map(|e| e.ok()).map(|e| e.path()).collect()
}
