//! What the container lifecycle asks of volumes, in lifecycle order:
//! - create: [`VolumeService::register_mounts`] (moby's `registerMountPoints`: volumes-from,
//!   binds, `--mount`; named volumes created or looked up and referenced), then, with the
//!   container's root mounted, [`VolumeService::add_anonymous`] (the image's `VOLUME`s and
//!   `-v /path`) and [`VolumeService::copy_up`] (image content into new, empty volumes);
//! - start: [`VolumeService::setup`] mounts the volumes and returns the host mounts for the
//!   runtime spec; stop: [`VolumeService::teardown`];
//! - removal: [`VolumeService::forget`] drops the references (and, for `rm -v`/`--rm`, removes
//!   anonymous volumes nobody else uses);
//! - daemon start: [`VolumeService::restore_refs`], and [`VolumeService::restore_active`] for
//!   containers that kept running.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use wharf_api::models::HostConfig;
use wharf_runtime::spec::{MountKind, UserMount};
use wharf_types::EngineError;

use super::mountpoint::{self, MountPoint, MountType};
use super::scope::resolve_in_root;
use super::{CreateOptions, LOCAL_DRIVER, VolumeError, VolumeService};

/// Looks up the mount points of another container (`--volumes-from`).
pub type LendMounts<'a> = dyn Fn(&str) -> Result<Vec<MountPoint>, EngineError> + 'a;

/// Where per-start bind mounts of volume subpaths live, under the container's run directory.
const SUBPATH_DIR: &str = "volume-subpaths";

fn duplicate(dest: &str) -> EngineError {
    EngineError::invalid(format!("Duplicate mount point: {dest}"))
}

impl VolumeService {
    /// Builds a new container's mount points from its `HostConfig`, creating named volumes
    /// that do not exist yet and referencing every volume for `container`. On error nothing
    /// stays referenced.
    pub fn register_mounts(
        &self,
        container: &str,
        hc: &HostConfig,
        lend: &LendMounts<'_>,
    ) -> Result<Vec<MountPoint>, EngineError> {
        let mut points: Vec<MountPoint> = Vec::new();
        let res = self.register_into(container, hc, lend, &mut points);
        if res.is_err() {
            self.forget(container, &points, false);
        }
        res.map(|()| points)
    }

    fn register_into(
        &self,
        container: &str,
        hc: &HostConfig,
        lend: &LendMounts<'_>,
        points: &mut Vec<MountPoint>,
    ) -> Result<(), EngineError> {
        let driver = hc.volume_driver.clone().unwrap_or_default();
        let tmpfs: HashMap<String, String> = hc.tmpfs.clone().unwrap_or_default();
        let mut bound: Vec<String> = Vec::new();
        // A later mount at the same destination replaces an earlier one.
        let place = |svc: &Self, points: &mut Vec<MountPoint>, mp: MountPoint| {
            if let Some(i) = points.iter().position(|p| p.destination == mp.destination) {
                let old = points.remove(i);
                if old.kind == MountType::Volume && !points.iter().any(|p| p.name == old.name) {
                    svc.release(&old.name, container);
                }
            }
            points.push(mp);
        };

        for spec in hc.volumes_from.iter().flatten() {
            let (id, mode) = mountpoint::parse_volumes_from(spec)?;
            let lent = lend(&id).map_err(|e| EngineError::invalid(e.message))?;
            for mp in mountpoint::inherit(&lent, &mode) {
                if mp.kind == MountType::Volume {
                    self.acquire(&mp.name, container)?;
                }
                place(self, points, mp);
            }
        }

        for raw in hc.binds.iter().flatten() {
            let mut mp = mountpoint::parse_bind(raw, &driver)?;
            self.check_daemon_root(&mut mp)?;
            if bound.contains(&mp.destination) || tmpfs.contains_key(&mp.destination) {
                return Err(duplicate(&mp.destination));
            }
            if mp.kind == MountType::Volume {
                self.create_for_mount(container, &mut mp, BTreeMap::new(), BTreeMap::new())?;
            }
            bound.push(mp.destination.clone());
            place(self, points, mp);
        }

        for m in hc.mounts.iter().flatten() {
            let mut mp = mountpoint::parse_mount(m)?;
            self.check_daemon_root(&mut mp)?;
            if bound.contains(&mp.destination) {
                return Err(duplicate(m.target.as_deref().unwrap_or("")));
            }
            if mp.kind == MountType::Volume {
                let vo = m.volume_options.clone().unwrap_or_default();
                let opts = vo.driver_config.and_then(|d| d.options).unwrap_or_default().into_iter().collect();
                let labels = vo.labels.unwrap_or_default().into_iter().collect();
                self.create_for_mount(container, &mut mp, opts, labels)?;
            }
            bound.push(mp.destination.clone());
            place(self, points, mp);
        }
        Ok(())
    }

    /// Creates (or finds) the volume a mount point names and references it.
    fn create_for_mount(
        &self,
        container: &str,
        mp: &mut MountPoint,
        driver_opts: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let (rec, _) = self.create(CreateOptions {
            name: &mp.name,
            driver: &mp.driver,
            driver_opts,
            labels,
            reference: Some(container),
        })?;
        mp.name = rec.name.to_string();
        mp.driver = rec.driver.clone();
        mp.source = self.mountpoint(rec.name.as_str()).display().to_string();
        if mp.driver == LOCAL_DRIVER && mp.mode.is_empty() {
            mp.mode = "z".into();
        }
        Ok(())
    }

    /// moby's `validateBindDaemonRoot`: a bind whose source contains the daemon root, or lies
    /// inside it, must let unmounts propagate into the container (`rslave`, the default then).
    fn check_daemon_root(&self, mp: &mut MountPoint) -> Result<(), EngineError> {
        if mp.kind != MountType::Bind {
            return Ok(());
        }
        let root = self.data_root().display().to_string();
        if !mp.source.starts_with(&root) && !root.starts_with(&mp.source) {
            return Ok(());
        }
        let given =
            mp.spec.bind_options.as_ref().and_then(|b| b.propagation).map(|p| p.to_string()).unwrap_or_default();
        match given.as_str() {
            "" => {
                mp.propagation = "rslave".into();
                Ok(())
            }
            "rslave" | "rshared" => Ok(()),
            other => Err(EngineError::invalid(format!(
                "invalid mount config: must use either propagation mode \"rslave\" or \"rshared\" when mount source is within the daemon root, daemon root: \"{root}\", bind mount source: \"{}\", propagation: \"{other}\"",
                mp.source
            ))),
        }
    }

    /// Adds an anonymous volume for each of `config_volumes` (the image's `VOLUME`s and
    /// `-v /path`) that no other mount covers. `rootfs` is the container's root, mounted.
    pub fn add_anonymous(
        &self,
        container: &str,
        points: &mut Vec<MountPoint>,
        config_volumes: &[String],
        volume_driver: &str,
        rootfs: &Path,
    ) -> Result<(), EngineError> {
        for v in config_volumes {
            let dest = mountpoint::parse_bind(v, "")
                .map(|m| m.destination)
                .map_err(|_| EngineError::invalid(format!("invalid volume specification: '{v}'")))?;
            if points.iter().any(|p| p.destination == dest) {
                continue;
            }
            let host = resolve_in_root(rootfs, Path::new(&dest)).map_err(|e| EngineError::internal(e.to_string()))?;
            if let Ok(m) = std::fs::metadata(&host)
                && !m.is_dir()
            {
                return Err(EngineError::invalid(format!(
                    "cannot mount volume over existing file, file exists {}",
                    host.display()
                )));
            }
            let mut mp = MountPoint {
                kind: MountType::Volume,
                destination: dest,
                rw: true,
                driver: volume_driver.to_owned(),
                copy_data: true,
                ..Default::default()
            };
            self.create_for_mount(container, &mut mp, BTreeMap::new(), BTreeMap::new())?;
            mp.mode.clear();
            points.push(mp);
        }
        Ok(())
    }

    /// Copies what the image has at each volume's destination into the volume when the volume
    /// is empty (not for `nocopy` or subpath mounts): contents, owners, modes, times, xattrs.
    /// `rootfs` is the container's root, mounted; paths are resolved inside it.
    pub fn copy_up(&self, points: &[MountPoint], rootfs: &Path) -> Result<(), EngineError> {
        for mp in points.iter().filter(|p| p.kind == MountType::Volume && p.copy_data && p.subpath().is_none()) {
            let src = resolve_in_root(rootfs, Path::new(&mp.destination))
                .map_err(|e| EngineError::internal(format!("resolve {} in the container: {e}", mp.destination)))?;
            if !std::fs::symlink_metadata(&src).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let dst = self.mount(&mp.name)?;
            let empty = std::fs::read_dir(&dst).map(|mut d| d.next().is_none()).unwrap_or(false);
            let res = if empty {
                wharf_snapshot::copy::copy_tree(&src, &dst).map_err(|e| {
                    EngineError::internal(format!(
                        "copying image data from {} into volume {}: {}",
                        mp.destination,
                        mp.name,
                        EngineError::from_classified(&e)
                    ))
                })
            } else {
                Ok(())
            };
            self.unmount(&mp.name);
            res?;
        }
        Ok(())
    }

    /// Drops `container`'s references; with `remove_anonymous` (`rm -v`, `--rm`), removes its
    /// anonymous volumes unless another container still uses them.
    pub fn forget(&self, container: &str, points: &[MountPoint], remove_anonymous: bool) {
        for mp in points.iter().filter(|p| p.kind == MountType::Volume && !p.name.is_empty()) {
            self.release(&mp.name, container);
            if remove_anonymous && mp.is_anonymous_volume() {
                match self.remove(&mp.name, false) {
                    Ok(()) | Err(VolumeError::InUse { .. } | VolumeError::NotFound { .. }) => {}
                    Err(e) => tracing::warn!(volume = %mp.name, error = %e, "removing an anonymous volume failed"),
                }
            }
        }
    }

    /// Start: mounts the container's volumes (publishing `mount` events), creates missing
    /// `-v` bind sources, and returns the host mounts for the runtime spec, their destinations
    /// resolved inside `rootfs` (the container's root, mounted) so that no symlink in the image
    /// can point a mount outside it. Undone by [`teardown`](Self::teardown), also when this
    /// fails halfway.
    pub fn setup(
        &self,
        container: &str,
        points: &[MountPoint],
        run_dir: &Path,
        rootfs: &Path,
    ) -> Result<Vec<UserMount>, EngineError> {
        let mut out = Vec::with_capacity(points.len());
        let res = self.setup_into(container, points, run_dir, rootfs, &mut out);
        if res.is_err() {
            self.teardown(container, run_dir);
        }
        res.map(|()| out)
    }

    fn setup_into(
        &self,
        container: &str,
        points: &[MountPoint],
        run_dir: &Path,
        rootfs: &Path,
        out: &mut Vec<UserMount>,
    ) -> Result<(), EngineError> {
        for (i, mp) in points.iter().enumerate() {
            let bo = mp.spec.bind_options.clone().unwrap_or_default();
            let base = UserMount {
                destination: destination_in(rootfs, &mp.destination)?,
                writable: mp.rw,
                propagation: (!mp.propagation.is_empty()).then(|| mp.propagation.clone()),
                non_recursive: bo.non_recursive.unwrap_or(false),
                readonly_non_recursive: bo.read_only_non_recursive.unwrap_or(false),
                readonly_force_recursive: bo.read_only_force_recursive.unwrap_or(false),
                ..Default::default()
            };
            match mp.kind {
                MountType::Bind => {
                    if !mp.skip_mountpoint_creation
                        && let Err(e) = std::fs::create_dir_all(&mp.source)
                        && e.raw_os_error() != Some(20)
                        && !Path::new(&mp.source).exists()
                    {
                        return Err(EngineError::internal(format!(
                            "error while creating mount source path '{}': {e}",
                            mp.source
                        )));
                    }
                    out.push(UserMount { kind: MountKind::Bind, source: PathBuf::from(&mp.source), ..base });
                }
                MountType::Volume => {
                    let path = self.mount(&mp.name)?;
                    self.lock().active.entry(container.to_owned()).or_default().push(mp.name.clone());
                    self.event(
                        "mount",
                        &mp.name,
                        &[
                            ("container", container.to_owned()),
                            ("destination", mp.destination.clone()),
                            ("driver", mp.driver.clone()),
                            ("propagation", mp.propagation.clone()),
                            ("read/write", mp.rw.to_string()),
                        ],
                    );
                    let source = match mp.subpath() {
                        Some(sub) => bind_subpath(&path, sub, &run_dir.join(SUBPATH_DIR).join(i.to_string()))?,
                        None => path,
                    };
                    out.push(UserMount { kind: MountKind::Volume, source, ..base });
                }
                MountType::Tmpfs => {
                    out.push(UserMount {
                        kind: MountKind::Tmpfs,
                        source: PathBuf::from("tmpfs"),
                        tmpfs_data: mp.tmpfs_data()?,
                        ..base
                    });
                }
            }
        }
        Ok(())
    }

    /// Stop: returns the container's volume mounts (publishing `unmount` events) and removes
    /// its subpath binds. Safe to call again.
    pub fn teardown(&self, container: &str, run_dir: &Path) {
        let dir = run_dir.join(SUBPATH_DIR);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let _ = super::local::unmount(&e.path());
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        let names = self.lock().active.remove(container).unwrap_or_default();
        for name in names {
            self.unmount(&name);
            self.event("unmount", &name, &[("container", container.to_owned()), ("driver", LOCAL_DRIVER.to_owned())]);
        }
    }

    /// Daemon start: the references of an existing container.
    pub fn restore_refs(&self, container: &str, points: &[MountPoint]) {
        for mp in points.iter().filter(|p| p.kind == MountType::Volume) {
            if let Err(e) = self.acquire(&mp.name, container) {
                tracing::warn!(container, volume = %mp.name, error = %e, "a container refers to a missing volume");
            }
        }
    }

    /// Daemon start: a container that kept running still has its volumes mounted.
    pub fn restore_active(&self, container: &str, points: &[MountPoint]) {
        for mp in points.iter().filter(|p| p.kind == MountType::Volume) {
            self.restore_mount(&mp.name);
            self.lock().active.entry(container.to_owned()).or_default().push(mp.name.clone());
        }
    }
}

/// An errno as Go prints it (`no such file or directory`), without Rust's `(os error N)`.
fn go_errno(e: rustix::io::Errno) -> String {
    let text = std::io::Error::from(e).to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
    let mut chars = text.chars();
    chars.next().map(|c| c.to_lowercase().collect::<String>() + chars.as_str()).unwrap_or_default()
}

/// A mount destination as the container's root resolves it (symlinks followed inside it).
fn destination_in(rootfs: &Path, dest: &str) -> Result<String, EngineError> {
    let host = resolve_in_root(rootfs, Path::new(dest))
        .map_err(|e| EngineError::invalid(format!("invalid mount destination {dest}: {e}")))?;
    let rel = host.strip_prefix(rootfs).unwrap_or(Path::new(""));
    Ok(format!("/{}", rel.display()))
}

/// Resolves `sub` inside the volume at `volume` without leaving it, and binds the result to
/// `target` through an `O_PATH` descriptor, so that a container swapping a path component for
/// a symlink after the check cannot redirect the mount (the runtime mounts `target`).
fn bind_subpath(volume: &Path, sub: &str, target: &Path) -> Result<PathBuf, EngineError> {
    use rustix::fs::{Mode, OFlags};
    let volume = std::fs::canonicalize(volume).map_err(|e| EngineError::internal(e.to_string()))?;
    let resolved = resolve_in_root(&volume, Path::new(sub)).map_err(|e| EngineError::invalid(e.to_string()))?;
    let fd = rustix::fs::open(&resolved, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| EngineError::invalid(format!("cannot access path {}: {}", resolved.display(), go_errno(e))))?;
    let proc_path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let real = std::fs::read_link(&proc_path).map_err(|e| EngineError::internal(e.to_string()))?;
    if !real.starts_with(&volume) {
        return Err(EngineError::invalid(format!("subpath {sub} is outside of the volume")));
    }
    let is_dir = rustix::fs::fstat(&fd).map(|s| s.st_mode & 0o170000 == 0o040000).unwrap_or(false);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| EngineError::internal(e.to_string()))?;
    }
    let made = if is_dir { std::fs::create_dir(target) } else { std::fs::write(target, b"") };
    made.map_err(|e| EngineError::internal(format!("create {}: {e}", target.display())))?;
    rustix::mount::mount_bind(&proc_path, target)
        .map_err(|e| EngineError::internal(format!("bind volume subpath {sub}: {}", std::io::Error::from(e))))?;
    Ok(target.to_path_buf())
}
