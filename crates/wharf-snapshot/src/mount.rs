//! Performing [`Mount`]s: [`mount_all`] and [`unmount`].
//!
//! Overlay mounts use the new mount API (`fsopen("overlay")`, one `fsconfig` `lowerdir+` per
//! layer, `fsmount`, `move_mount`) when the kernel has `lowerdir+` (Linux 6.8+; detected once):
//! no option-string length limit and no escaping. Otherwise `mount(2)` with a
//! `lowerdir=a:b:…` option string, which the kernel caps at one page; when the string is longer,
//! the paths are made relative to their common ancestor and the mount is done from a thread that
//! has `chdir`ed there after `unshare(CLONE_FS)` — Docker's trick, without changing the
//! process's working directory under the other threads.

use std::ffi::CString;
use std::io;
use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MountPropagationFlags, MoveMountFlags, UnmountFlags,
};
use wharf_types::{Classify, ErrorKind, Mount};

/// Errors of [`mount_all`] and [`unmount`].
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount {kind} {source_path} on {target}{detail}")]
    Mount {
        kind: String,
        source_path: String,
        target: PathBuf,
        /// What the kernel logged about the failure (new mount API only), e.g. `: overlay: …`.
        detail: String,
        #[source]
        source: io::Error,
    },
    #[error("mount {kind} on {target}: {reason}")]
    InvalidMount { kind: String, target: PathBuf, reason: String },
    #[error("unmount {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Classify for MountError {
    fn kind(&self) -> ErrorKind {
        match self {
            MountError::InvalidMount { .. } => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        }
    }
}

/// Mounts `mounts` on `target` in order, each on top of the previous one (containerd's
/// semantics; snapshots return one mount). On failure the ones already mounted are unmounted.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), MountError> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, target) {
            for _ in 0..i {
                let _ = rustix::mount::unmount(target, UnmountFlags::DETACH);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Unmounts everything mounted on `target` (all stacked mounts). Not an error when nothing is
/// mounted there or the path does not exist. A busy mount is retried for about a second and
/// then detached lazily.
pub fn unmount(target: &Path) -> Result<(), MountError> {
    let mut busy = 0;
    loop {
        match rustix::mount::unmount(target, UnmountFlags::NOFOLLOW) {
            Ok(()) => busy = 0,
            Err(Errno::INVAL | Errno::NOENT) => return Ok(()),
            Err(Errno::BUSY) if busy < 20 => {
                busy += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(Errno::BUSY) => {
                rustix::mount::unmount(target, UnmountFlags::NOFOLLOW | UnmountFlags::DETACH)
                    .map_err(|e| MountError::Unmount { target: target.to_path_buf(), source: e.into() })?;
            }
            Err(e) => {
                return Err(MountError::Unmount { target: target.to_path_buf(), source: e.into() });
            }
        }
    }
}

/// True when the kernel accepts overlay's `lowerdir+` through the new mount API. Probed once
/// (needs the privilege to call `fsopen`; without it the answer is false).
pub fn overlay_lowerdir_plus() -> bool {
    static PROBE: OnceLock<bool> = OnceLock::new();
    *PROBE.get_or_init(|| {
        let Ok(fd) = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) else {
            return false;
        };
        rustix::mount::fsconfig_set_string(&fd, "lowerdir+", "/").is_ok()
    })
}

/// Mount options split into kernel flags, propagation, and filesystem data.
struct Options {
    flags: MountFlags,
    attrs: MountAttrFlags,
    propagation: Option<MountPropagationFlags>,
    bind: bool,
    recursive: bool,
    /// `key=value` or `flag` options for the filesystem itself, in order.
    data: Vec<String>,
}

fn parse_options(options: &[String]) -> Options {
    let mut o = Options {
        flags: MountFlags::empty(),
        attrs: MountAttrFlags::empty(),
        propagation: None,
        bind: false,
        recursive: false,
        data: Vec::new(),
    };
    for opt in options {
        let (set, clear, attr): (MountFlags, MountFlags, MountAttrFlags) = match opt.as_str() {
            "ro" => (MountFlags::RDONLY, MountFlags::empty(), MountAttrFlags::MOUNT_ATTR_RDONLY),
            "rw" => (MountFlags::empty(), MountFlags::RDONLY, MountAttrFlags::empty()),
            "nosuid" => (MountFlags::NOSUID, MountFlags::empty(), MountAttrFlags::MOUNT_ATTR_NOSUID),
            "suid" => (MountFlags::empty(), MountFlags::NOSUID, MountAttrFlags::empty()),
            "nodev" => (MountFlags::NODEV, MountFlags::empty(), MountAttrFlags::MOUNT_ATTR_NODEV),
            "dev" => (MountFlags::empty(), MountFlags::NODEV, MountAttrFlags::empty()),
            "noexec" => (MountFlags::NOEXEC, MountFlags::empty(), MountAttrFlags::MOUNT_ATTR_NOEXEC),
            "exec" => (MountFlags::empty(), MountFlags::NOEXEC, MountAttrFlags::empty()),
            "sync" => (MountFlags::SYNCHRONOUS, MountFlags::empty(), MountAttrFlags::empty()),
            "async" => (MountFlags::empty(), MountFlags::SYNCHRONOUS, MountAttrFlags::empty()),
            "dirsync" => (MountFlags::DIRSYNC, MountFlags::empty(), MountAttrFlags::empty()),
            "noatime" => (MountFlags::NOATIME, MountFlags::empty(), MountAttrFlags::MOUNT_ATTR_NOATIME),
            "nodiratime" => (MountFlags::NODIRATIME, MountFlags::empty(), MountAttrFlags::MOUNT_ATTR_NODIRATIME),
            "relatime" => (MountFlags::RELATIME, MountFlags::empty(), MountAttrFlags::MOUNT_ATTR_RELATIME),
            "strictatime" => (MountFlags::STRICTATIME, MountFlags::empty(), MountAttrFlags::MOUNT_ATTR_STRICTATIME),
            "atime" | "diratime" | "norelatime" | "defaults" => {
                (MountFlags::empty(), MountFlags::empty(), MountAttrFlags::empty())
            }
            "bind" => {
                o.bind = true;
                continue;
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                continue;
            }
            "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" | "unbindable" | "runbindable" => {
                let base = match opt.trim_start_matches('r') {
                    "private" => MountPropagationFlags::PRIVATE,
                    "slave" => MountPropagationFlags::DOWNSTREAM,
                    "shared" => MountPropagationFlags::SHARED,
                    _ => MountPropagationFlags::UNBINDABLE,
                };
                let rec =
                    if opt.starts_with('r') { MountPropagationFlags::REC } else { MountPropagationFlags::empty() };
                o.propagation = Some(base | rec);
                continue;
            }
            other => {
                o.data.push(other.to_owned());
                continue;
            }
        };
        o.flags = (o.flags | set) - clear;
        o.attrs |= attr;
        if opt == "rw" {
            o.attrs -= MountAttrFlags::MOUNT_ATTR_RDONLY;
        }
    }
    o
}

fn mount_err<'a>(m: &'a Mount, target: &'a Path, detail: String) -> impl FnOnce(Errno) -> MountError + 'a {
    move |e| MountError::Mount {
        kind: m.kind.clone(),
        source_path: m.source.clone(),
        target: target.to_path_buf(),
        detail,
        source: e.into(),
    }
}

fn mount_one(m: &Mount, target: &Path) -> Result<(), MountError> {
    let o = parse_options(&m.options);
    if m.kind == "bind" || o.bind {
        return mount_bind(m, &o, target);
    }
    if m.kind == "overlay" {
        return mount_overlay(m, &o, target);
    }
    let data = cstring(&o.data.join(","), m, target)?;
    rustix::mount::mount(m.source.as_str(), target, m.kind.as_str(), o.flags, Some(data.as_c_str()))
        .map_err(mount_err(m, target, String::new()))?;
    if let Some(p) = o.propagation {
        rustix::mount::mount_change(target, p).map_err(mount_err(m, target, " (propagation)".into()))?;
    }
    Ok(())
}

fn cstring(s: &str, m: &Mount, target: &Path) -> Result<CString, MountError> {
    CString::new(s).map_err(|_| MountError::InvalidMount {
        kind: m.kind.clone(),
        target: target.to_path_buf(),
        reason: "options contain a NUL byte".into(),
    })
}

fn mount_bind(m: &Mount, o: &Options, target: &Path) -> Result<(), MountError> {
    let source = Path::new(&m.source);
    if o.recursive {
        rustix::mount::mount_bind_recursive(source, target)
    } else {
        rustix::mount::mount_bind(source, target)
    }
    .map_err(mount_err(m, target, String::new()))?;
    // Flags of a bind mount only take effect through a remount of the new mount.
    if !o.flags.is_empty()
        && let Err(e) = rustix::mount::mount_remount(target, MountFlags::BIND | o.flags, "")
    {
        let _ = rustix::mount::unmount(target, UnmountFlags::DETACH);
        return Err(mount_err(m, target, " (remount with flags)".into())(e));
    }
    if let Some(p) = o.propagation {
        rustix::mount::mount_change(target, p).map_err(mount_err(m, target, " (propagation)".into()))?;
    }
    Ok(())
}

/// Overlay options understood structurally; everything else passes through.
struct Overlay<'a> {
    lowers: Vec<String>,
    upper: Option<&'a str>,
    work: Option<&'a str>,
    rest: Vec<&'a str>,
}

/// Splits a `lowerdir` value at unescaped `:` and removes the `\` escapes.
fn split_lowerdir(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next()
                    && let Some(s) = out.last_mut()
                {
                    s.push(n)
                }
            }
            ':' => out.push(String::new()),
            c => {
                if let Some(s) = out.last_mut() {
                    s.push(c)
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

fn parse_overlay<'a>(data: &'a [String], m: &Mount, target: &Path) -> Result<Overlay<'a>, MountError> {
    let mut ov = Overlay { lowers: Vec::new(), upper: None, work: None, rest: Vec::new() };
    for opt in data {
        match opt.split_once('=') {
            Some(("lowerdir", v)) => ov.lowers.extend(split_lowerdir(v)),
            Some(("upperdir", v)) => ov.upper = Some(v),
            Some(("workdir", v)) => ov.work = Some(v),
            _ => ov.rest.push(opt),
        }
    }
    if ov.lowers.is_empty() {
        return Err(MountError::InvalidMount {
            kind: m.kind.clone(),
            target: target.to_path_buf(),
            reason: "an overlay mount needs a lowerdir".into(),
        });
    }
    Ok(ov)
}

/// [`mount_all`] that never uses the new mount API for overlay: always `mount(2)`, with relative
/// paths when the option string is over a page. For tests of that path and for comparisons.
pub fn mount_all_legacy(mounts: &[Mount], target: &Path) -> Result<(), MountError> {
    for (i, m) in mounts.iter().enumerate() {
        let result = if m.kind == "overlay" {
            let o = parse_options(&m.options);
            parse_overlay(&o.data, m, target).and_then(|ov| mount_overlay_legacy(m, &ov, o.flags, target))
        } else {
            mount_one(m, target)
        };
        if let Err(e) = result {
            for _ in 0..i {
                let _ = rustix::mount::unmount(target, UnmountFlags::DETACH);
            }
            return Err(e);
        }
    }
    Ok(())
}

fn mount_overlay(m: &Mount, o: &Options, target: &Path) -> Result<(), MountError> {
    let ov = parse_overlay(&o.data, m, target)?;
    if overlay_lowerdir_plus() {
        mount_overlay_fsconfig(m, &ov, o.attrs, target)
    } else {
        mount_overlay_legacy(m, &ov, o.flags, target)
    }
}

/// Reads what the kernel logged into a filesystem context (the new API's error messages).
fn fs_context_log(fd: impl AsFd) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = rustix::io::read(&fd, &mut buf) {
        if n == 0 {
            break;
        }
        out.push_str(": ");
        out.push_str(String::from_utf8_lossy(&buf[..n]).trim_end());
    }
    out
}

fn mount_overlay_fsconfig(m: &Mount, ov: &Overlay<'_>, attrs: MountAttrFlags, target: &Path) -> Result<(), MountError> {
    let fs =
        rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(mount_err(m, target, String::new()))?;
    let configured = (|| {
        for l in &ov.lowers {
            rustix::mount::fsconfig_set_string(&fs, "lowerdir+", l.as_str())?;
        }
        if let Some(u) = ov.upper {
            rustix::mount::fsconfig_set_string(&fs, "upperdir", u)?;
        }
        if let Some(w) = ov.work {
            rustix::mount::fsconfig_set_string(&fs, "workdir", w)?;
        }
        for opt in &ov.rest {
            match opt.split_once('=') {
                Some((k, v)) => rustix::mount::fsconfig_set_string(&fs, k, v)?,
                None => rustix::mount::fsconfig_set_flag(&fs, *opt)?,
            }
        }
        rustix::mount::fsconfig_create(&fs)?;
        let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
        rustix::mount::move_mount(&mnt, "", rustix::fs::CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
    })();
    configured.map_err(|e| mount_err(m, target, fs_context_log(&fs))(e))
}

/// The longest common ancestor directory of absolute paths.
fn common_dir<'a>(paths: impl Iterator<Item = &'a str>) -> PathBuf {
    let mut common: Option<Vec<Component<'a>>> = None;
    for p in paths {
        let parent = Path::new(p).parent().unwrap_or(Path::new("/"));
        let comps: Vec<Component<'a>> = parent.components().collect();
        common = Some(match common {
            None => comps,
            Some(c) => c.iter().zip(&comps).take_while(|(a, b)| a == b).map(|(a, _)| *a).collect(),
        });
    }
    common.unwrap_or_default().iter().collect()
}

fn overlay_data(ov: &Overlay<'_>, rel: impl Fn(&str) -> String) -> String {
    let esc = |s: String| s.replace('\\', "\\\\").replace(':', "\\:").replace(',', "\\,");
    let mut parts = ov.rest.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let lowers: Vec<String> = ov.lowers.iter().map(|l| esc(rel(l))).collect();
    parts.push(format!("lowerdir={}", lowers.join(":")));
    if let Some(u) = ov.upper {
        parts.push(format!("upperdir={}", esc(rel(u))));
    }
    if let Some(w) = ov.work {
        parts.push(format!("workdir={}", esc(rel(w))));
    }
    parts.join(",")
}

fn page_size() -> usize {
    rustix::param::page_size()
}

/// `mount(2)` for overlay, with relative paths from a private working directory when the
/// absolute option string does not fit in a page.
fn mount_overlay_legacy(m: &Mount, ov: &Overlay<'_>, flags: MountFlags, target: &Path) -> Result<(), MountError> {
    let absolute = overlay_data(ov, str::to_owned);
    if absolute.len() < page_size() {
        let data = cstring(&absolute, m, target)?;
        return rustix::mount::mount("overlay", target, "overlay", flags, Some(data.as_c_str())).map_err(mount_err(
            m,
            target,
            String::new(),
        ));
    }
    let all = ov.lowers.iter().map(String::as_str).chain(ov.upper).chain(ov.work);
    let common = common_dir(all);
    let relative = overlay_data(ov, |p| {
        Path::new(p).strip_prefix(&common).map(|r| r.to_string_lossy().into_owned()).unwrap_or_else(|_| p.to_owned())
    });
    if relative.len() >= page_size() {
        return Err(MountError::InvalidMount {
            kind: m.kind.clone(),
            target: target.to_path_buf(),
            reason: format!(
                "{} lower layers make a {}-byte option string, over the kernel's page limit even with relative paths",
                ov.lowers.len(),
                relative.len()
            ),
        });
    }
    let data = cstring(&relative, m, target)?;
    let target_abs = std::path::absolute(target)
        .map_err(|e| mount_err(m, target, String::new())(Errno::from_io_error(&e).unwrap_or(Errno::INVAL)))?;
    let result = std::thread::scope(|s| {
        s.spawn(|| -> Result<(), (Errno, &'static str)> {
            // SAFETY: CLONE_FS only gives this new thread its own cwd/root/umask; no file
            // descriptor table is unshared, so no other thread is affected. The thread ends
            // right after the mount.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }
                .map_err(|e| (e, " (unshare)"))?;
            rustix::process::chdir(&common).map_err(|e| (e, " (chdir)"))?;
            rustix::mount::mount("overlay", &target_abs, "overlay", flags, Some(data.as_c_str())).map_err(|e| (e, ""))
        })
        .join()
        .unwrap_or(Err((Errno::INTR, " (mount thread panicked)")))
    });
    result.map_err(|(e, what)| mount_err(m, target, what.to_owned())(e))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let o =
            parse_options(&["ro".into(), "nosuid".into(), "lowerdir=/a:/b".into(), "rbind".into(), "rprivate".into()]);
        assert!(o.flags.contains(MountFlags::RDONLY | MountFlags::NOSUID));
        assert!(o.attrs.contains(MountAttrFlags::MOUNT_ATTR_RDONLY));
        assert!(o.bind && o.recursive);
        assert_eq!(o.propagation, Some(MountPropagationFlags::PRIVATE | MountPropagationFlags::REC));
        assert_eq!(o.data, vec!["lowerdir=/a:/b".to_owned()]);
    }

    #[test]
    fn lowerdir_escapes() {
        assert_eq!(split_lowerdir(r"/a:/b\:c:/d"), vec!["/a", "/b:c", "/d"]);
    }

    #[test]
    fn common_dir_of_snapshot_paths() {
        let c = common_dir(["/r/snapshots/1/fs", "/r/snapshots/22/fs", "/r/snapshots/3/work"].into_iter());
        assert_eq!(c, Path::new("/r/snapshots"));
    }
}
