//! Mounts, in Docker's order: its seven defaults (`/proc`, `/dev`, `/dev/pts`, `/sys`,
//! `/sys/fs/cgroup`, `/dev/mqueue`, `/dev/shm`) and the init binary, minus any a user mount
//! replaces; then the container's own mounts sorted by depth (IPC `/dev/shm`, `--tmpfs`,
//! volumes and binds, and `/etc/resolv.conf`, `/etc/hostname`, `/etc/hosts`).
//! Read-only rootfs, `--privileged` and writable cgroups adjust options afterwards.

use std::path::{Component, Path, PathBuf};

use serde_json::{Value, json};

use super::error::SpecError;
use super::{IpcMode, MountKind, SpecOptions};

/// Where Docker binds its init (`tini`) inside the container.
pub const INIT_PATH: &str = "/sbin/docker-init";
/// `/dev/shm` size when none is given: 64 MiB.
pub const DEFAULT_SHM_SIZE: i64 = 64 * 1024 * 1024;

/// One entry of the spec's `mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecMount {
    pub destination: String,
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

impl SpecMount {
    fn new(destination: &str, kind: &str, source: &str, options: &[&str]) -> Self {
        SpecMount {
            destination: destination.into(),
            kind: kind.into(),
            source: source.into(),
            options: options.iter().map(|o| o.to_string()).collect(),
        }
    }

    /// The JSON entry (Go's `omitempty`: no `options` when there are none).
    pub fn entry(&self) -> Value {
        let mut v = json!({"destination": self.destination, "type": self.kind, "source": self.source});
        if !self.options.is_empty() {
            v["options"] = json!(self.options);
        }
        v
    }

    fn clear_readonly(&mut self) {
        self.options.retain(|o| o != "ro");
    }
}

/// Docker's default mounts, before `/dev/shm` gets its size.
pub fn default_mounts() -> Vec<SpecMount> {
    vec![
        SpecMount::new("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        SpecMount::new("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        SpecMount::new(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        SpecMount::new("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
        SpecMount::new("/sys/fs/cgroup", "cgroup", "cgroup", &["ro", "nosuid", "noexec", "nodev"]),
        SpecMount::new("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        SpecMount::new("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777"]),
    ]
}

/// A mount the container asked for, in the shape of Docker's `container.Mount`.
#[derive(Debug, Clone)]
struct ContainerMount {
    source: String,
    destination: String,
    writable: bool,
    /// tmpfs options (`size=64m,mode=1777`); only for tmpfs.
    data: String,
    tmpfs: bool,
    propagation: String,
    non_recursive: bool,
    readonly_non_recursive: bool,
    readonly_force_recursive: bool,
}

impl ContainerMount {
    fn bind(source: &str, destination: &str, writable: bool) -> Self {
        ContainerMount {
            source: source.into(),
            destination: destination.into(),
            writable,
            data: String::new(),
            tmpfs: false,
            propagation: "rprivate".into(),
            non_recursive: false,
            readonly_non_recursive: false,
            readonly_force_recursive: false,
        }
    }

    fn tmpfs(destination: &str, data: &str) -> Self {
        ContainerMount {
            source: "tmpfs".into(),
            data: data.into(),
            tmpfs: true,
            propagation: String::new(),
            ..ContainerMount::bind("", destination, true)
        }
    }
}

/// Go's `filepath.Clean` for absolute container paths.
pub(crate) fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => out.push(s.to_str().unwrap_or_default()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    format!("/{}", out.join("/"))
}

fn depth(destination: &str) -> usize {
    clean(destination).matches('/').count()
}

/// Checks a mount destination as Docker's parser does.
fn validate_destination(dest: &str) -> Result<(), SpecError> {
    if dest.starts_with('/') && clean(dest) == "/" {
        return Err(SpecError::InvalidMount("invalid specification: destination can't be '/'".into()));
    }
    if !dest.starts_with('/') {
        return Err(SpecError::InvalidMount(format!("invalid mount path: '{dest}' mount path must be absolute")));
    }
    Ok(())
}

const NETWORK_FILES: [&str; 3] = ["/etc/resolv.conf", "/etc/hostname", "/etc/hosts"];

/// The spec's mounts and, when a shared or slave bind needs it, `rootfsPropagation`.
pub(crate) fn assemble(
    opts: &SpecOptions,
    init: Option<&Path>,
    writable_cgroups: bool,
) -> Result<(Vec<SpecMount>, Option<String>), SpecError> {
    // 1. The container's own mounts, as Docker collects them before building the spec.
    let mut seen: Vec<String> = Vec::new();
    let user_dests = opts.tmpfs.keys().map(String::as_str).chain(opts.mounts.iter().map(|m| m.destination.as_str()));
    for dest in user_dests {
        validate_destination(dest)?;
        let c = clean(dest);
        if seen.contains(&c) {
            return Err(SpecError::InvalidMount(format!("Duplicate mount point: {c}")));
        }
        seen.push(c);
    }
    let has_mount_for = |p: &str| seen.iter().any(|d| d == p);

    let mut ms: Vec<ContainerMount> = Vec::new();
    let shm_path = match &opts.ipc {
        IpcMode::Host => Some(PathBuf::from("/dev/shm")),
        IpcMode::Shareable { shm_path } => Some(shm_path.clone()),
        IpcMode::Container { shm_path, .. } => shm_path.clone(),
        IpcMode::Private | IpcMode::None => None,
    };
    if let Some(shm) = shm_path.filter(|_| !has_mount_for("/dev/shm")) {
        ms.push(ContainerMount::bind(&shm.to_string_lossy(), "/dev/shm", true));
    }
    for (dest, data) in &opts.tmpfs {
        ms.push(ContainerMount::tmpfs(dest, data));
    }
    for m in opts.mounts.iter().filter(|m| m.kind == MountKind::Tmpfs) {
        ms.push(ContainerMount::tmpfs(&m.destination, &m.tmpfs_data));
    }

    let mut volumes: Vec<ContainerMount> = Vec::new();
    let mut etc: [(Option<String>, Option<bool>); 3] = [
        (opts.etc_files.resolv_conf.as_ref().map(|p| p.to_string_lossy().into_owned()), None),
        (opts.etc_files.hostname.as_ref().map(|p| p.to_string_lossy().into_owned()), None),
        (opts.etc_files.hosts.as_ref().map(|p| p.to_string_lossy().into_owned()), None),
    ];
    for m in opts.mounts.iter().filter(|m| m.kind != MountKind::Tmpfs) {
        if opts.tmpfs.contains_key(&m.destination) {
            continue;
        }
        if let Some(i) = NETWORK_FILES.iter().position(|f| *f == m.destination) {
            // Docker swaps the network file for the mount's source and keeps its rw flag.
            etc[i] = (Some(m.source.to_string_lossy().into_owned()), Some(m.writable));
            continue;
        }
        let propagation = match (&m.propagation, m.kind) {
            (Some(p), _) => p.clone(),
            (None, MountKind::Bind) => "rprivate".into(),
            (None, _) => String::new(),
        };
        volumes.push(ContainerMount {
            propagation,
            non_recursive: m.non_recursive,
            readonly_non_recursive: m.readonly_non_recursive,
            readonly_force_recursive: m.readonly_force_recursive,
            ..ContainerMount::bind(&m.source.to_string_lossy(), &m.destination, m.writable)
        });
    }
    volumes.sort_by_key(|m| depth(&m.destination));
    ms.extend(volumes);
    for (i, (source, rw)) in etc.into_iter().enumerate() {
        if let Some(source) = source {
            let writable = rw.unwrap_or(!opts.readonly_rootfs);
            ms.push(ContainerMount::bind(&source, NETWORK_FILES[i], writable));
        }
    }

    // 2. Docker's withMounts.
    ms.sort_by_key(|m| depth(&m.destination));
    let user_mounts: Vec<&str> = ms.iter().map(|m| m.destination.as_str()).collect();
    let is_user = |d: &str| user_mounts.contains(&d);
    let mount_dev = is_user("/dev");

    let mut defaults = default_mounts();
    if let Some(init) = init {
        defaults.push(SpecMount {
            destination: INIT_PATH.into(),
            kind: "bind".into(),
            source: init.to_string_lossy().into_owned(),
            options: vec!["bind".into(), "ro".into()],
        });
    }
    let shm_size = if opts.shm_size == 0 { DEFAULT_SHM_SIZE } else { opts.shm_size };
    let mut out: Vec<SpecMount> = Vec::new();
    for mut m in defaults {
        if is_user(&m.destination) || mount_dev && m.destination.starts_with("/dev/") {
            continue;
        }
        if m.destination == "/dev/shm" {
            if opts.ipc == IpcMode::None {
                continue;
            }
            m.options.push(format!("size={shm_size}"));
        }
        out.push(m);
    }

    let mut rootfs_propagation: Option<String> = None;
    for m in &ms {
        if m.tmpfs {
            let mut options: Vec<String> =
                ["noexec", "nosuid", "nodev", "rprivate"].iter().map(|s| s.to_string()).collect();
            if !m.data.is_empty() {
                options.extend(m.data.split(',').map(str::to_owned));
            }
            out.push(SpecMount {
                destination: m.destination.clone(),
                kind: "tmpfs".into(),
                source: m.source.clone(),
                options: merge_tmpfs_options(&options)?,
            });
            continue;
        }
        let propagation = match m.propagation.as_str() {
            p @ ("private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave") => Some(p),
            _ => None,
        };
        match propagation {
            Some("shared" | "rshared") => {
                ensure_propagation(&m.source, false)?;
                if !matches!(rootfs_propagation.as_deref(), Some("shared" | "rshared")) {
                    rootfs_propagation = Some("shared".into());
                }
            }
            Some("slave" | "rslave") => {
                ensure_propagation(&m.source, true)?;
                if !matches!(rootfs_propagation.as_deref(), Some("shared" | "rshared" | "slave" | "rslave")) {
                    rootfs_propagation = Some("rslave".into());
                }
            }
            _ => {}
        }
        let mut options = vec![if m.non_recursive { "bind" } else { "rbind" }.to_owned()];
        if !m.writable {
            let mut rro = true;
            if m.readonly_non_recursive {
                rro = false;
                if m.readonly_force_recursive {
                    return Err(SpecError::InvalidMount(
                        "mount options conflict: ReadOnlyNonRecursive && ReadOnlyForceRecursive".into(),
                    ));
                }
            }
            if !opts.rro_supported {
                rro = false;
                if m.readonly_force_recursive {
                    return Err(SpecError::InvalidMount(
                        "rro is not supported by the OCI runtime (kernel is older than 5.12, or the runtime does not list it in its features)".into(),
                    ));
                }
            }
            options.push(if rro { "rro" } else { "ro" }.to_owned());
        }
        if let Some(p) = propagation {
            options.push(p.to_owned());
        }
        out.push(SpecMount {
            destination: m.destination.clone(),
            kind: "bind".into(),
            source: m.source.clone(),
            options,
        });
    }

    if opts.readonly_rootfs {
        for m in &mut out {
            if matches!(m.destination.as_str(), "/proc" | "/dev/pts" | "/dev/shm" | "/dev/mqueue" | "/dev")
                || is_user(&m.destination)
            {
                continue;
            }
            if !m.options.iter().any(|o| o == "ro") {
                m.options.push("ro".into());
            }
        }
    }
    if opts.privileged {
        for m in out.iter_mut().filter(|m| m.destination == "/sys") {
            m.clear_readonly();
        }
    }
    if writable_cgroups {
        for m in out.iter_mut().filter(|m| m.kind == "cgroup") {
            m.clear_readonly();
        }
    }
    Ok((out, rootfs_propagation))
}

/// moby/sys/mount's `MergeTmpfsOptions`: later options win over earlier ones of the same
/// flag (or the same `key=`), one propagation mode survives, `defaults` is dropped.
pub fn merge_tmpfs_options(options: &[String]) -> Result<Vec<String>, SpecError> {
    let mut seen_flags: Vec<&str> = Vec::new();
    let mut seen_data: Vec<&str> = Vec::new();
    let mut out: Vec<String> = Vec::new();
    for option in options.iter().rev() {
        if option == "defaults" {
            continue;
        }
        if let Some(group) = flag_group(option) {
            if !seen_flags.contains(&group) {
                out.insert(0, option.clone());
                seen_flags.push(group);
            }
            continue;
        }
        let (key, _) = match option.split_once('=') {
            Some(kv) if TMPFS_DATA_KEYS.contains(&kv.0) => kv,
            _ => {
                let parts: Vec<String> = option.splitn(2, '=').map(|p| format!("{p:?}")).collect();
                return Err(SpecError::InvalidMount(format!("invalid tmpfs option [{}]", parts.join(" "))));
            }
        };
        if !seen_data.contains(&key) {
            out.insert(0, option.clone());
            seen_data.push(key);
        }
    }
    Ok(out)
}

const TMPFS_DATA_KEYS: &[&str] = &["", "size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"];

/// The mount flag an option sets or clears; options of the same group collide.
fn flag_group(option: &str) -> Option<&'static str> {
    Some(match option {
        "ro" | "rw" => "rdonly",
        "suid" | "nosuid" => "nosuid",
        "dev" | "nodev" => "nodev",
        "exec" | "noexec" => "noexec",
        "sync" | "async" => "sync",
        "dirsync" => "dirsync",
        "remount" => "remount",
        "mand" | "nomand" => "mand",
        "atime" | "noatime" => "noatime",
        "diratime" | "nodiratime" => "nodiratime",
        "bind" => "bind",
        "rbind" => "rbind",
        "unbindable" | "runbindable" | "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
            "propagation"
        }
        "relatime" | "norelatime" => "relatime",
        "strictatime" | "nostrictatime" => "strictatime",
        _ => return None,
    })
}

/// The source of a shared (or, with `slave_ok`, slave) bind must sit on a mount with that
/// propagation, as Docker's `ensureShared`/`ensureSharedOrSlave` check.
fn ensure_propagation(source: &str, slave_ok: bool) -> Result<(), SpecError> {
    let probe = |what: &str, source_err: std::io::Error| SpecError::ProbeHost { what: what.into(), source: source_err };
    let path = std::fs::canonicalize(source).map_err(|e| probe(&format!("resolve bind source {source}"), e))?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| probe("read /proc/self/mountinfo", e))?;
    check_propagation(&info, source, &path, slave_ok)
}

/// [`ensure_propagation`] on a given mountinfo text; `path` is `source` with symlinks resolved.
fn check_propagation(info: &str, source: &str, path: &Path, slave_ok: bool) -> Result<(), SpecError> {
    let (mountpoint, optional) = source_mount(info, path)
        .ok_or_else(|| SpecError::MountPropagation(format!("Can't find mount point of {source}")))?;
    let shared = optional.split(' ').any(|o| o.starts_with("shared:"));
    let slave = optional.split(' ').any(|o| o.starts_with("master:"));
    if shared || slave_ok && slave {
        return Ok(());
    }
    let kind = if slave_ok { "shared or slave" } else { "shared" };
    Err(SpecError::MountPropagation(format!("path {source} is mounted on {mountpoint} but it is not a {kind} mount")))
}

/// The mount `path` lives on (the longest mount point that is `path` or a parent of it; the
/// first one listed on a tie) and its optional mountinfo fields.
fn source_mount(mountinfo: &str, path: &Path) -> Option<(String, String)> {
    let mut best: Option<(String, String)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 7 {
            continue;
        }
        let mountpoint = unescape_mountinfo(fields[4]);
        if !path.starts_with(&mountpoint) {
            continue;
        }
        let sep = fields.iter().position(|f| *f == "-").unwrap_or(fields.len());
        let optional = fields[6..sep.max(6)].join(" ");
        if best.as_ref().is_none_or(|(m, _)| mountpoint.len() > m.len()) {
            best = Some((mountpoint, optional));
        }
    }
    best
}

fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let digit = |k: usize| u32::from(bytes[i + k] - b'0');
            out.push((digit(1) * 64 + digit(2) * 8 + digit(3)) as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:25 / /srv rw,relatime - tmpfs tmpfs rw
31 30 0:26 / /srv/slave\\040dir rw,relatime master:7 - tmpfs tmpfs rw
32 22 0:27 / /mnt rw,relatime shared:9 master:3 - tmpfs tmpfs rw
";

    #[test]
    fn propagation_checks_read_the_source_mount() {
        let check = |p: &str, slave_ok| check_propagation(INFO, p, Path::new(p), slave_ok);
        assert!(check("/var/lib/x", false).is_ok());
        assert!(check("/mnt/data", false).is_ok());
        assert!(check("/srv/slave dir/x", true).is_ok());
        assert_eq!(
            check("/srv/slave dir/x", false).unwrap_err().to_string(),
            "path /srv/slave dir/x is mounted on /srv/slave dir but it is not a shared mount"
        );
        assert_eq!(
            check("/srv/data", true).unwrap_err().to_string(),
            "path /srv/data is mounted on /srv but it is not a shared or slave mount"
        );
        assert_eq!(
            source_mount(INFO, Path::new("/srvx")).unwrap().0,
            "/",
            "a mount point matches whole path components only"
        );
    }
}
