//! Devices: the device cgroup rules every Docker container starts with, `--device` lookups,
//! and the whole of `/dev` for `--privileged`.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::error::SpecError;
use super::parse::{DeviceCgroupRule, DeviceMapping};

/// Docker's default device cgroup rules: deny all, then allow the standard character devices
/// (`/dev/null` 1:3, `zero` 1:5, `full` 1:7 is not listed, `random` 1:8, `urandom` 1:9,
/// `tty` 5:0, `console` 5:1) and deny `/dev/net/tun` (10:229) explicitly.
pub fn default_device_rules() -> Vec<Value> {
    let rule = |allow: bool, major: i64, minor: i64| json!({"allow": allow, "type": "c", "major": major, "minor": minor, "access": "rwm"});
    vec![
        json!({"allow": false, "access": "rwm"}),
        rule(true, 1, 5),
        rule(true, 1, 3),
        rule(true, 1, 9),
        rule(true, 1, 8),
        rule(true, 5, 0),
        rule(true, 5, 1),
        rule(false, 10, 229),
    ]
}

/// A rule from `--device-cgroup-rule` as a spec entry (`*` is -1).
pub fn rule_entry(rule: &DeviceCgroupRule) -> Value {
    json!({
        "allow": true,
        "type": rule.kind.to_string(),
        "major": rule.major.unwrap_or(-1),
        "minor": rule.minor.unwrap_or(-1),
        "access": rule.access,
    })
}

/// A device node on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    /// Where it appears in the container.
    pub path: String,
    /// `b`, `c` or `p`.
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    pub file_mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl HostDevice {
    /// The `linux.devices` entry.
    pub fn entry(&self) -> Value {
        json!({
            "path": self.path,
            "type": self.kind.to_string(),
            "major": self.major,
            "minor": self.minor,
            "fileMode": self.file_mode,
            "uid": self.uid,
            "gid": self.gid,
        })
    }

    /// The cgroup rule that lets the container use it with `access`.
    pub fn rule(&self, access: &str) -> Value {
        json!({
            "allow": true,
            "type": self.kind.to_string(),
            "major": self.major,
            "minor": self.minor,
            "access": access,
        })
    }
}

/// Looks at one path without following a final symlink. `Ok(None)`: not a device node.
fn device_at(path: &Path) -> std::io::Result<Option<HostDevice>> {
    let meta = std::fs::symlink_metadata(path)?;
    let ft = meta.file_type();
    let kind = if ft.is_block_device() {
        'b'
    } else if ft.is_char_device() {
        'c'
    } else if ft.is_fifo() {
        'p'
    } else {
        return Ok(None);
    };
    let rdev = meta.rdev();
    Ok(Some(HostDevice {
        path: path.to_string_lossy().into_owned(),
        kind,
        major: rustix::fs::major(rdev).into(),
        minor: rustix::fs::minor(rdev).into(),
        file_mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    }))
}

/// The devices (and their rules) for one `--device`, as Docker's `DevicesFromPath`: a symlink is
/// followed, a device node maps to `path_in_container`, and a directory maps every device node
/// below it.
pub fn devices_from_path(mapping: &DeviceMapping) -> Result<Vec<HostDevice>, SpecError> {
    let host = Path::new(&mapping.path_on_host);
    let resolved: PathBuf = match std::fs::symlink_metadata(host) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(host).unwrap_or_else(|_| host.to_path_buf()),
        _ => host.to_path_buf(),
    };
    let gather = |source: std::io::Error| SpecError::GatherDevice { path: mapping.path_on_host.clone(), source };
    match device_at(&resolved) {
        Ok(Some(mut dev)) => {
            dev.path = mapping.path_in_container.clone();
            return Ok(vec![dev]);
        }
        Ok(None) => {}
        Err(e) => {
            let text = format!("lstat {}: {}", resolved.display(), go_error_text(&e));
            return Err(gather(std::io::Error::new(e.kind(), text)));
        }
    }
    let mut devs = Vec::new();
    if resolved.is_dir() {
        walk(&resolved, &mut |p| {
            if let Ok(Some(mut dev)) = device_at(p) {
                let rest = p.strip_prefix(&resolved).unwrap_or(p);
                dev.path = Path::new(&mapping.path_in_container).join(rest).to_string_lossy().into_owned();
                devs.push(dev);
            }
        });
    }
    if devs.is_empty() {
        return Err(gather(std::io::Error::other("not a device node")));
    }
    Ok(devs)
}

/// An OS error as Go prints it: `no such file or directory`, not `No such file or directory (os
/// error 2)`.
pub(crate) fn go_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error ") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => walk(&p, f),
            Ok(_) => f(&p),
            Err(_) => {}
        }
    }
}

/// Every device under `/dev` for `--privileged`, as containerd's `HostDevices`: skips `pts`,
/// `shm`, `fd`, `mqueue` and hidden runtime directories, `/dev/console` and FIFOs.
pub fn host_devices() -> Result<Vec<HostDevice>, SpecError> {
    let mut out = Vec::new();
    scan_dev(Path::new("/dev"), &mut out)
        .map_err(|source| SpecError::ProbeHost { what: "list /dev".into(), source })?;
    Ok(out)
}

fn scan_dev(dir: &Path, out: &mut Vec<HostDevice>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            match name.to_str() {
                Some("pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev") => {}
                _ => scan_dev(&path, out)?,
            }
            continue;
        }
        if name == "console" {
            continue;
        }
        match device_at(&path) {
            Ok(Some(dev)) if dev.kind != 'p' => out.push(dev),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_match_docker() {
        let rules = serde_json::to_value(default_device_rules()).unwrap();
        let expected = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
            {"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
        ]);
        assert_eq!(rules, expected);
    }

    #[test]
    fn device_lookup() {
        let m = DeviceMapping {
            path_on_host: "/dev/null".into(),
            path_in_container: "/dev/mynull".into(),
            cgroup_permissions: "rw".into(),
        };
        let devs = devices_from_path(&m).unwrap();
        assert_eq!(devs.len(), 1);
        assert_eq!((devs[0].path.as_str(), devs[0].kind, devs[0].major, devs[0].minor), ("/dev/mynull", 'c', 1, 3));
        assert_eq!(devs[0].rule("rw"), json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}));
        let m = DeviceMapping { path_on_host: "/etc/hostname".into(), ..m };
        assert_eq!(
            devices_from_path(&m).unwrap_err().to_string(),
            "error gathering device information while adding custom device \"/etc/hostname\": not a device node"
        );
        let m = DeviceMapping { path_on_host: "/dev/nope".into(), ..m };
        assert_eq!(
            devices_from_path(&m).unwrap_err().to_string(),
            "error gathering device information while adding custom device \"/dev/nope\": lstat /dev/nope: no such file or directory"
        );
    }

    #[test]
    fn privileged_sees_host_devices() {
        let devs = host_devices().unwrap();
        assert!(devs.iter().any(|d| d.path == "/dev/null" && d.major == 1 && d.minor == 3));
        assert!(devs.iter().all(|d| d.path != "/dev/console" && d.kind != 'p'));
        assert!(devs.iter().all(|d| !d.path.starts_with("/dev/pts/")));
    }
}
