//! The `local` driver's kernel side: a volume is `<root>/<name>/_data`; with `--opt
//! type=…,device=…,o=…` that directory is also a mount point where the device (a tmpfs, a bind
//! of a host path, an NFS share, …) is mounted while a container uses the volume — the options
//! mean what `mount -t <type> -o <o> <device> <_data>` means, as with Docker's local driver.

use std::collections::BTreeMap;
use std::path::Path;

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use serde::{Deserialize, Serialize};

/// The local driver's options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalOptions {
    /// Filesystem type (`tmpfs`, `nfs`, `none` for binds, …).
    pub fs_type: String,
    pub device: String,
    /// Mount options; flags (`ro`, `bind`, `noexec`…) and filesystem data (`size=10m`, `addr=`…).
    pub options: String,
}

impl LocalOptions {
    /// Validates driver options as Docker's local driver does; `None` when the volume is a
    /// plain directory.
    pub fn from_driver_opts(opts: &BTreeMap<String, String>) -> Result<Option<Self>, String> {
        if opts.is_empty() {
            return Ok(None);
        }
        for key in opts.keys() {
            if !["type", "o", "device", "size"].contains(&key.as_str()) {
                return Err(format!("invalid option: {}", super::name::go_quote(key)));
            }
        }
        if let Some(size) = opts.get("size") {
            let bytes = wharf_runtime::spec::parse::parse_ram_bytes(size).map_err(|e| e.to_string())?;
            if bytes > 0 {
                return Err("quota size requested but no quota support".into());
            }
        }
        for (opt, required) in [("device", &["type"][..]), ("type", &["device"][..]), ("o", &["device", "type"][..])] {
            if opts.contains_key(opt) {
                for r in required {
                    if !opts.contains_key(*r) {
                        return Err(format!("missing required option: {}", super::name::go_quote(r)));
                    }
                }
            }
        }
        let get = |k: &str| opts.get(k).cloned().unwrap_or_default();
        if get("device").is_empty() && get("type").is_empty() {
            return Ok(None);
        }
        Ok(Some(Self { fs_type: get("type"), device: get("device"), options: get("o") }))
    }

    /// Mounts the device at `target`.
    pub fn mount(&self, target: &Path) -> std::io::Result<()> {
        if self.device.is_empty() {
            return Err(std::io::Error::other("missing device in volume options"));
        }
        let (flags, mut data) = parse_mount_options(&self.options);
        if self.fs_type == "nfs" {
            data = resolve_nfs_addr(&data)?;
        }
        let propagation = flags & PROPAGATION_MASK;
        let plain = flags & !PROPAGATION_MASK;
        let data_c = std::ffi::CString::new(data.clone()).map_err(std::io::Error::other)?;
        let data_arg = (!data.is_empty()).then_some(data_c.as_c_str());
        rustix::mount::mount(
            self.device.as_str(),
            target,
            self.fs_type.as_str(),
            MountFlags::from_bits_retain(plain),
            data_arg,
        )
        .map_err(|e| {
            std::io::Error::other(format!(
                "mount {}:{}, flags: {:#x}, data: {}: {}",
                self.device,
                target.display(),
                plain,
                redact_password(&data),
                std::io::Error::from(e)
            ))
        })?;
        let undo = |e: rustix::io::Errno| {
            let _ = rustix::mount::unmount(target, UnmountFlags::DETACH);
            std::io::Error::from(e)
        };
        if propagation != 0 {
            rustix::mount::mount_change(target, MountPropagationFlags::from_bits_retain(propagation)).map_err(undo)?;
        }
        // A read-only bind needs a remount to become read-only.
        let bind_ro = MountFlags::BIND.bits() | MountFlags::RDONLY.bits();
        if plain & bind_ro == bind_ro {
            rustix::mount::mount_remount(target, MountFlags::from_bits_retain(plain), "").map_err(undo)?;
        }
        Ok(())
    }
}

/// Unmounts what is mounted at `target` (lazily, so a busy mount never blocks the daemon).
pub fn unmount(target: &Path) -> std::io::Result<()> {
    match rustix::mount::unmount(target, UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// True when `path` is a mount point (its mount ID differs from its parent's).
pub fn is_mount_point(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = path.to_string_lossy();
    info.lines().filter_map(|l| l.split(' ').nth(4)).any(|p| unescape_octal(p) == want)
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push(((b[i + 1] - b'0') << 6) | ((b[i + 2] - b'0') << 3) | (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

const PROPAGATION_MASK: u32 = MountPropagationFlags::SHARED.bits()
    | MountPropagationFlags::PRIVATE.bits()
    | MountPropagationFlags::DOWNSTREAM.bits()
    | MountPropagationFlags::UNBINDABLE.bits();

/// moby/sys/mount's `parseOptions`: known flags set or clear mount flags, everything else is
/// filesystem data, passed on in order.
pub fn parse_mount_options(options: &str) -> (u32, String) {
    let f = |m: MountFlags| m.bits();
    let p = |m: MountPropagationFlags| m.bits();
    let rec = MountFlags::REC.bits();
    let mut flags: u32 = 0;
    let mut data: Vec<&str> = Vec::new();
    for o in options.split(',').filter(|o| !o.is_empty()) {
        // (clear, flag)
        let known: Option<(bool, u32)> = match o {
            "defaults" => Some((false, 0)),
            "ro" => Some((false, f(MountFlags::RDONLY))),
            "rw" => Some((true, f(MountFlags::RDONLY))),
            "suid" => Some((true, f(MountFlags::NOSUID))),
            "nosuid" => Some((false, f(MountFlags::NOSUID))),
            "dev" => Some((true, f(MountFlags::NODEV))),
            "nodev" => Some((false, f(MountFlags::NODEV))),
            "exec" => Some((true, f(MountFlags::NOEXEC))),
            "noexec" => Some((false, f(MountFlags::NOEXEC))),
            "sync" => Some((false, f(MountFlags::SYNCHRONOUS))),
            "async" => Some((true, f(MountFlags::SYNCHRONOUS))),
            "dirsync" => Some((false, f(MountFlags::DIRSYNC))),
            "mand" => Some((false, f(MountFlags::PERMIT_MANDATORY_FILE_LOCKING))),
            "nomand" => Some((true, f(MountFlags::PERMIT_MANDATORY_FILE_LOCKING))),
            "atime" => Some((true, f(MountFlags::NOATIME))),
            "noatime" => Some((false, f(MountFlags::NOATIME))),
            "diratime" => Some((true, f(MountFlags::NODIRATIME))),
            "nodiratime" => Some((false, f(MountFlags::NODIRATIME))),
            "bind" => Some((false, f(MountFlags::BIND))),
            "rbind" => Some((false, f(MountFlags::BIND) | rec)),
            "unbindable" => Some((false, p(MountPropagationFlags::UNBINDABLE))),
            "runbindable" => Some((false, p(MountPropagationFlags::UNBINDABLE) | rec)),
            "private" => Some((false, p(MountPropagationFlags::PRIVATE))),
            "rprivate" => Some((false, p(MountPropagationFlags::PRIVATE) | rec)),
            "shared" => Some((false, p(MountPropagationFlags::SHARED))),
            "rshared" => Some((false, p(MountPropagationFlags::SHARED) | rec)),
            "slave" => Some((false, p(MountPropagationFlags::DOWNSTREAM))),
            "rslave" => Some((false, p(MountPropagationFlags::DOWNSTREAM) | rec)),
            "relatime" => Some((false, f(MountFlags::RELATIME))),
            "norelatime" => Some((true, f(MountFlags::RELATIME))),
            "strictatime" => Some((false, f(MountFlags::STRICTATIME))),
            "nostrictatime" => Some((true, f(MountFlags::STRICTATIME))),
            _ => None,
        };
        match known {
            Some((true, flag)) => flags &= !flag,
            Some((false, flag)) => flags |= flag,
            None => data.push(o),
        }
    }
    (flags, data.join(","))
}

/// The kernel's NFS client wants `addr=` as an IP address; Docker resolves a host name first.
fn resolve_nfs_addr(data: &str) -> std::io::Result<String> {
    let mut out = Vec::new();
    for kv in data.split(',') {
        match kv.strip_prefix("addr=") {
            Some(host) if !host.is_empty() && host.parse::<std::net::IpAddr>().is_err() => {
                use std::net::ToSocketAddrs;
                let ip = (host, 0)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| std::io::Error::other(format!("no address for NFS server {host}")))?
                    .ip();
                out.push(format!("addr={ip}"));
            }
            _ => out.push(kv.to_owned()),
        }
    }
    Ok(out.join(","))
}

fn redact_password(data: &str) -> String {
    data.split(',')
        .map(|kv| if kv.starts_with("password=") { "password=********" } else { kv })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn driver_options_like_dockers_local_driver() {
        assert_eq!(LocalOptions::from_driver_opts(&opts(&[])).unwrap(), None);
        assert_eq!(LocalOptions::from_driver_opts(&opts(&[("foo", "1")])).unwrap_err(), "invalid option: \"foo\"");
        assert_eq!(
            LocalOptions::from_driver_opts(&opts(&[("type", "tmpfs")])).unwrap_err(),
            "missing required option: \"device\""
        );
        assert_eq!(
            LocalOptions::from_driver_opts(&opts(&[("device", "tmpfs"), ("o", "size=1m")])).unwrap_err(),
            "missing required option: \"type\""
        );
        assert_eq!(
            LocalOptions::from_driver_opts(&opts(&[("size", "10m")])).unwrap_err(),
            "quota size requested but no quota support"
        );
        let o = LocalOptions::from_driver_opts(&opts(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]))
            .unwrap()
            .unwrap();
        assert_eq!((o.fs_type.as_str(), o.device.as_str(), o.options.as_str()), ("tmpfs", "tmpfs", "size=1m"));
    }

    #[test]
    fn mount_options_split_into_flags_and_data() {
        let (flags, data) = parse_mount_options("bind,ro,size=10m,uid=1000,noexec");
        assert_eq!(
            flags,
            MountFlags::BIND.bits() | MountFlags::RDONLY.bits() | MountFlags::NOEXEC.bits(),
            "{flags:#x}"
        );
        assert_eq!(data, "size=10m,uid=1000");
        let (flags, data) = parse_mount_options("ro,rw,addr=10.0.0.1,rshared");
        assert_eq!(flags, MountPropagationFlags::SHARED.bits() | MountFlags::REC.bits());
        assert_eq!(data, "addr=10.0.0.1");
        assert_eq!(redact_password("user=a,password=secret"), "user=a,password=********");
        let local = resolve_nfs_addr("addr=localhost,rw").unwrap();
        assert!(["addr=127.0.0.1,rw", "addr=::1,rw"].contains(&local.as_str()), "{local}");
        assert_eq!(resolve_nfs_addr("addr=10.1.2.3,nfsvers=4").unwrap(), "addr=10.1.2.3,nfsvers=4");
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_octal("/a\\040b"), "/a b");
        assert_eq!(unescape_octal("/plain"), "/plain");
    }
}
