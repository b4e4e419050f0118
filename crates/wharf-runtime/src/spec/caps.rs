//! Capabilities: Docker's default set, name normalisation (`net_admin` → `CAP_NET_ADMIN`),
//! `--cap-add`/`--cap-drop` arithmetic, and the set the daemon itself holds.

use super::error::SpecError;

/// Every capability the kernel knows, in bit order (bit 0 is `CAP_CHOWN`). Linux 5.9 added the
/// last one, `CAP_CHECKPOINT_RESTORE` (40).
pub const KNOWN_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default capability set, in Docker's order. It goes into the bounding, effective and
/// permitted sets; inheritable and ambient stay empty.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const ALL: &str = "ALL";

/// Upper-cases names and adds the `CAP_` prefix; `ALL` passes through. A name the kernel does
/// not know is `unknown capability: "CAP_FOO"`; one the daemon does not hold (`held`) is
/// refused too, since it could never be granted.
pub fn normalize_capabilities(caps: &[String], held: &[String]) -> Result<Vec<String>, SpecError> {
    caps.iter()
        .map(|c| {
            let mut c = c.to_uppercase();
            if c == ALL {
                return Ok(c);
            }
            if !c.starts_with("CAP_") {
                c.insert_str(0, "CAP_");
            }
            if !KNOWN_CAPABILITIES.contains(&c.as_str()) {
                return Err(SpecError::UnknownCapability(c));
            }
            if !held.contains(&c) {
                return Err(SpecError::UnavailableCapability(c));
            }
            Ok(c)
        })
        .collect()
}

/// The container's capability set: all `held` ones when privileged; otherwise the defaults
/// minus `drops` plus `adds` (`ALL` in adds means every held one but the drops; `ALL` in drops
/// means exactly the adds), as Docker's `TweakCapabilities`.
pub fn tweak_capabilities(
    adds: &[String],
    drops: &[String],
    privileged: bool,
    held: &[String],
) -> Result<Vec<String>, SpecError> {
    if privileged {
        return Ok(held.to_vec());
    }
    let defaults = || DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    if adds.is_empty() && drops.is_empty() {
        return Ok(defaults());
    }
    let drops = normalize_capabilities(drops, held)?;
    let adds = normalize_capabilities(adds, held)?;
    let all = |v: &[String]| v.iter().any(|c| c == ALL);
    Ok(if all(&adds) {
        held.iter().filter(|c| !drops.contains(c)).cloned().collect()
    } else if all(&drops) {
        adds
    } else {
        let mut caps: Vec<String> = defaults();
        caps.retain(|c| !drops.contains(c));
        caps.extend(adds);
        caps
    })
}

/// The capability names whose bits are set in a `/proc/<pid>/status` mask; bits the table does
/// not name are ignored.
pub fn capabilities_from_mask(mask: u64) -> Vec<String> {
    KNOWN_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask >> bit & 1 == 1)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// Reads a hex mask line (`CapBnd:\t000001ff…`) from `/proc/<pid>/status` text.
pub fn status_mask(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == field).then(|| u64::from_str_radix(value.trim(), 16).ok()).flatten()
    })
}

/// The capabilities this process holds and can pass on: its bounding set intersected with its
/// effective set (Docker reads the effective set; for root both are the same).
pub fn held_capabilities(status: &str) -> Vec<String> {
    let bnd = status_mask(status, "CapBnd").unwrap_or(0);
    let eff = status_mask(status, "CapEff").unwrap_or(0);
    capabilities_from_mask(bnd & eff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_held() -> Vec<String> {
        KNOWN_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn default_set_is_dockers_fourteen() {
        let caps = tweak_capabilities(&[], &[], false, &all_held()).unwrap();
        assert_eq!(caps.len(), 14);
        assert_eq!(caps, DEFAULT_CAPABILITIES);
    }

    #[test]
    fn names_are_normalised() {
        let caps = normalize_capabilities(&s(&["net_admin", "CAP_sys_time", "all"]), &all_held()).unwrap();
        assert_eq!(caps, ["CAP_NET_ADMIN", "CAP_SYS_TIME", "ALL"]);
        assert_eq!(
            normalize_capabilities(&s(&["CAP_FOO"]), &all_held()).unwrap_err().to_string(),
            "unknown capability: \"CAP_FOO\""
        );
        assert_eq!(
            normalize_capabilities(&s(&["foo"]), &all_held()).unwrap_err().to_string(),
            "unknown capability: \"CAP_FOO\""
        );
        let held: Vec<String> = all_held().into_iter().filter(|c| c != "CAP_SYS_RESOURCE").collect();
        assert_eq!(
            normalize_capabilities(&s(&["sys_resource"]), &held).unwrap_err().to_string(),
            "capability not supported by your kernel or not available in the current environment: \"CAP_SYS_RESOURCE\""
        );
    }

    #[test]
    fn add_and_drop() {
        let held = all_held();
        let caps = tweak_capabilities(&s(&["NET_ADMIN"]), &s(&["chown", "mknod"]), false, &held).unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN".into()));
        assert!(!caps.contains(&"CAP_CHOWN".into()));
        assert_eq!(caps.len(), 13);
        let caps = tweak_capabilities(&s(&["kill"]), &s(&["ALL"]), false, &held).unwrap();
        assert_eq!(caps, ["CAP_KILL"]);
        let caps = tweak_capabilities(&s(&["ALL"]), &s(&["sys_admin"]), false, &held).unwrap();
        assert_eq!(caps.len(), KNOWN_CAPABILITIES.len() - 1);
        assert!(!caps.contains(&"CAP_SYS_ADMIN".into()));
    }

    #[test]
    fn masks_decode() {
        let status = "Name:\tx\nCapEff:\t000001fffeffffff\nCapBnd:\t000001ffffffffff\n";
        let held = held_capabilities(status);
        assert_eq!(held.len(), 40);
        assert!(!held.contains(&"CAP_SYS_RESOURCE".into()));
        assert_eq!(capabilities_from_mask(1), ["CAP_CHOWN"]);
        assert_eq!(status_mask(status, "CapBnd"), Some(0x1ff_ffff_ffff));
    }
}
