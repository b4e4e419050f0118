//! Seccomp: Docker's default profile (`seccomp_default.json`, moby/profiles' data, unchanged)
//! and custom profiles in the same format, filtered for this host into an OCI `linux.seccomp`.
//!
//! A Docker profile is an OCI seccomp section plus two extensions: `archMap` (the host's
//! architecture pulls in its sub-architectures) and per-rule `includes`/`excludes` filters on
//! capabilities (tested against the container's bounding set), architectures and a minimum
//! kernel version. Rules whose filters do not match are dropped here, as Docker does.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::SpecError;
use super::host::{HostInfo, KernelVersion};

/// Docker's default seccomp profile, as published in moby/profiles.
pub const DEFAULT_PROFILE_JSON: &str = include_str!("seccomp_default.json");

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    #[serde(default)]
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    listener_path: String,
    #[serde(default)]
    listener_metadata: String,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    name: String,
    #[serde(default)]
    names: Vec<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<Arg>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default, deserialize_with = "min_kernel")]
    min_kernel: Option<KernelVersion>,
}

fn min_kernel<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<KernelVersion>, D::Error> {
    use serde::de::Error;
    let Some(ver) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    if ver.is_empty() {
        return Ok(None);
    }
    let expected = || format!("invalid kernel version: {ver:?}, expected \"<kernel>.<major>\"");
    let parts: Vec<&str> = ver.splitn(3, '.').collect();
    let [major, minor] = parts.as_slice() else {
        return Err(D::Error::custom(expected()));
    };
    let parse = |s: &str| s.parse::<u8>().map_err(|e| D::Error::custom(format!("{}: {e}", expected())));
    let v = KernelVersion { major: parse(major)?.into(), minor: parse(minor)?.into() };
    if v.major == 0 && v.minor == 0 {
        return Err(D::Error::custom(format!("{}: version cannot be 0.0", expected())));
    }
    Ok(Some(v))
}

/// libseccomp architecture names → the OCI `SCMP_ARCH_*` the host's main ABI has.
fn native_to_scmp(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "x86" => "SCMP_ARCH_X86",
        "amd64" => "SCMP_ARCH_X86_64",
        "arm" => "SCMP_ARCH_ARM",
        "arm64" => "SCMP_ARCH_AARCH64",
        "mips64" => "SCMP_ARCH_MIPS64",
        "mips64n32" => "SCMP_ARCH_MIPS64N32",
        "mipsel64" => "SCMP_ARCH_MIPSEL64",
        "mips3l64n32" => "SCMP_ARCH_MIPSEL64N32",
        "mipsle" => "SCMP_ARCH_MIPSEL",
        "ppc" => "SCMP_ARCH_PPC",
        "ppc64" => "SCMP_ARCH_PPC64",
        "ppc64le" => "SCMP_ARCH_PPC64LE",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "s390" => "SCMP_ARCH_S390",
        "s390x" => "SCMP_ARCH_S390X",
        _ => return None,
    })
}

fn decode_error(e: impl std::fmt::Display) -> SpecError {
    SpecError::InvalidSeccompProfile(format!("Decoding seccomp profile failed: {e}"))
}

fn default_profile() -> &'static Profile {
    static PROFILE: OnceLock<Profile> = OnceLock::new();
    PROFILE.get_or_init(|| serde_json::from_str(DEFAULT_PROFILE_JSON).expect("the bundled seccomp profile parses"))
}

/// Docker's default profile for a container whose bounding set is `bounding`, on `host`.
pub fn default_seccomp(bounding: &[String], host: &HostInfo) -> Result<Option<Value>, SpecError> {
    setup(default_profile(), bounding, host)
}

/// A custom profile (the JSON a user passed with `--security-opt seccomp=…`), filtered the same
/// way. An empty profile (no default action, no rules) means no seccomp at all.
pub fn load_seccomp(body: &str, bounding: &[String], host: &HostInfo) -> Result<Option<Value>, SpecError> {
    let profile: Profile = serde_json::from_str(body).map_err(decode_error)?;
    setup(&profile, bounding, host)
}

fn setup(profile: &Profile, bounding: &[String], host: &HostInfo) -> Result<Option<Value>, SpecError> {
    if profile.default_action.is_empty() && profile.syscalls.is_empty() {
        return Ok(None);
    }
    if !profile.architectures.is_empty() && !profile.arch_map.is_empty() {
        return Err(SpecError::InvalidSeccompProfile(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'".into(),
        ));
    }
    let arch = host.seccomp_arch;
    let mut architectures = profile.architectures.clone();
    if let Some(native) = native_to_scmp(arch)
        && let Some(m) = profile.arch_map.iter().find(|m| m.architecture == native)
    {
        architectures.push(m.architecture.clone());
        architectures.extend(m.sub_architectures.iter().flatten().cloned());
    }
    let kernel_at_least = |min: &KernelVersion| -> Result<bool, SpecError> {
        let kv =
            host.kernel.ok_or_else(|| SpecError::InvalidSeccompProfile("failed to parse kernel version".into()))?;
        Ok(kv >= *min)
    };
    let holds = |c: &String| bounding.contains(c);

    let mut syscalls = Vec::new();
    for rule in &profile.syscalls {
        let names = if rule.name.is_empty() {
            rule.names.clone()
        } else if !rule.names.is_empty() {
            return Err(SpecError::InvalidSeccompProfile(
                "both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'".into(),
            ));
        } else {
            vec![rule.name.clone()]
        };
        if let Some(ex) = &rule.excludes {
            if ex.arches.iter().any(|a| a == arch) || ex.caps.iter().any(holds) {
                continue;
            }
            if let Some(min) = &ex.min_kernel
                && kernel_at_least(min)?
            {
                continue;
            }
        }
        if let Some(inc) = &rule.includes {
            if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == arch) {
                continue;
            }
            if !inc.caps.iter().all(holds) {
                continue;
            }
            if let Some(min) = &inc.min_kernel
                && !kernel_at_least(min)?
            {
                continue;
            }
        }
        let mut out = json!({"names": names, "action": rule.action});
        if let Some(errno) = rule.errno_ret {
            out["errnoRet"] = json!(errno);
        }
        if !rule.args.is_empty() {
            let args: Vec<Value> = rule
                .args
                .iter()
                .map(|a| {
                    let mut arg = json!({"index": a.index, "value": a.value, "op": a.op});
                    if a.value_two != 0 {
                        arg["valueTwo"] = json!(a.value_two);
                    }
                    arg
                })
                .collect();
            out["args"] = Value::Array(args);
        }
        syscalls.push(out);
    }

    let mut out = json!({"defaultAction": profile.default_action});
    if let Some(errno) = profile.default_errno_ret {
        out["defaultErrnoRet"] = json!(errno);
    }
    if !architectures.is_empty() {
        out["architectures"] = json!(architectures);
    }
    if !profile.flags.is_empty() {
        out["flags"] = json!(profile.flags);
    }
    if !profile.listener_path.is_empty() {
        out["listenerPath"] = json!(profile.listener_path);
    }
    if !profile.listener_metadata.is_empty() {
        out["listenerMetadata"] = json!(profile.listener_metadata);
    }
    if !syscalls.is_empty() {
        out["syscalls"] = Value::Array(syscalls);
    }
    // Actions, architectures, operators and flags are checked by the OCI types.
    serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(out.clone()).map_err(decode_error)?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::super::caps::DEFAULT_CAPABILITIES;
    use super::*;

    fn default_caps() -> Vec<String> {
        DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    }

    /// The action the filter takes for a syscall with no argument conditions, or `None` when
    /// only the default action applies.
    fn unconditional_action(seccomp: &Value, name: &str) -> Option<String> {
        seccomp["syscalls"]
            .as_array()?
            .iter()
            .find(|r| r.get("args").is_none() && r["names"].as_array().unwrap().iter().any(|n| n == name))
            .map(|r| r["action"].as_str().unwrap().to_owned())
    }

    #[test]
    fn default_profile_shape() {
        let host = HostInfo::fixture();
        let s = default_seccomp(&default_caps(), &host).unwrap().unwrap();
        assert_eq!(s["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(s["defaultErrnoRet"], 1);
        assert_eq!(s["architectures"], json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]));
        for allowed in ["read", "write", "openat", "execve", "arch_prctl", "chroot", "clock_gettime"] {
            assert_eq!(unconditional_action(&s, allowed).as_deref(), Some("SCMP_ACT_ALLOW"), "{allowed}");
        }
        // Only with capabilities the default set lacks.
        for denied in ["reboot", "mount", "umount2", "kexec_load", "init_module", "bpf", "syslog"] {
            assert_eq!(unconditional_action(&s, denied), None, "{denied}");
        }
        // Not on x86-64.
        assert_eq!(unconditional_action(&s, "s390_runtime_instr"), None);
        // Kernel >= 4.8: ptrace is allowed without CAP_SYS_PTRACE.
        assert_eq!(unconditional_action(&s, "ptrace").as_deref(), Some("SCMP_ACT_ALLOW"));
        // clone3 gets ENOSYS without CAP_SYS_ADMIN so that libcs fall back to clone.
        let clone3 = s["syscalls"].as_array().unwrap().iter().find(|r| r["names"] == json!(["clone3"])).unwrap();
        assert_eq!(clone3["action"], "SCMP_ACT_ERRNO");
        assert_eq!(clone3["errnoRet"], 38);
        // clone: only without namespace flags (CLONE_NEWNS|…|CLONE_NEWCGROUP = 0x7E020000).
        let clone = s["syscalls"].as_array().unwrap().iter().find(|r| r["names"] == json!(["clone"])).unwrap();
        assert_eq!(clone["args"], json!([{"index": 0, "value": 2114060288u64, "op": "SCMP_CMP_MASKED_EQ"}]));
        // socket: everything but AF_VSOCK (40).
        let socket = s["syscalls"].as_array().unwrap().iter().find(|r| r["names"] == json!(["socket"])).unwrap();
        assert_eq!(socket["args"], json!([{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]));
    }

    #[test]
    fn capability_conditional_rules() {
        let host = HostInfo::fixture();
        let mut caps = default_caps();
        caps.push("CAP_SYS_ADMIN".into());
        caps.push("CAP_SYS_BOOT".into());
        let s = default_seccomp(&caps, &host).unwrap().unwrap();
        assert_eq!(unconditional_action(&s, "mount").as_deref(), Some("SCMP_ACT_ALLOW"));
        assert_eq!(unconditional_action(&s, "reboot").as_deref(), Some("SCMP_ACT_ALLOW"));
        // With CAP_SYS_ADMIN the clone/clone3 restrictions are excluded.
        assert!(
            !s["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["names"] == json!(["clone3"]) && r["action"] == "SCMP_ACT_ERRNO")
        );
    }

    #[test]
    fn ptrace_depends_on_kernel_version() {
        let mut host = HostInfo::fixture();
        host.kernel = Some(KernelVersion { major: 4, minor: 4 });
        let s = default_seccomp(&default_caps(), &host).unwrap().unwrap();
        assert_eq!(unconditional_action(&s, "ptrace"), None);
        let mut caps = default_caps();
        caps.push("CAP_SYS_PTRACE".into());
        let s = default_seccomp(&caps, &host).unwrap().unwrap();
        assert_eq!(unconditional_action(&s, "ptrace").as_deref(), Some("SCMP_ACT_ALLOW"));
    }

    #[test]
    fn arm64_host_gets_its_arch_and_rules() {
        let mut host = HostInfo::fixture();
        host.seccomp_arch = "arm64";
        let s = default_seccomp(&default_caps(), &host).unwrap().unwrap();
        assert_eq!(s["architectures"], json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]));
        assert_eq!(unconditional_action(&s, "arch_prctl"), None);
        assert_eq!(unconditional_action(&s, "arm_fadvise64_64").as_deref(), Some("SCMP_ACT_ALLOW"));
    }

    #[test]
    fn custom_profiles() {
        let host = HostInfo::fixture();
        let body = r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[{"name":"chmod","action":"SCMP_ACT_ERRNO","errnoRet":1},
                        {"names":["mount"],"action":"SCMP_ACT_ERRNO","excludes":{"caps":["CAP_SYS_ADMIN"]}}]}"#;
        let s = load_seccomp(body, &default_caps(), &host).unwrap().unwrap();
        assert_eq!(
            s,
            json!({"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
                "syscalls":[{"names":["chmod"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
                            {"names":["mount"],"action":"SCMP_ACT_ERRNO"}]})
        );
        assert_eq!(load_seccomp("{}", &default_caps(), &host).unwrap(), None);
        let err = |body: &str| load_seccomp(body, &default_caps(), &host).unwrap_err().to_string();
        assert!(err("not json").starts_with("Decoding seccomp profile failed: "));
        assert!(err(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#).starts_with("Decoding seccomp profile failed: "));
        assert_eq!(
            err(
                r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#
            ),
            "both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'"
        );
        assert_eq!(
            err(
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ALLOW"}]}"#
            ),
            "both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'"
        );
        assert!(
            err(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["b"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4"}}]}"#)
                .starts_with("Decoding seccomp profile failed: invalid kernel version: \"4\", expected \"<kernel>.<major>\"")
        );
    }

    #[test]
    fn bundled_profile_converts_to_oci_types() {
        let host = HostInfo::fixture();
        let all: Vec<String> = super::super::caps::KNOWN_CAPABILITIES.iter().map(|c| c.to_string()).collect();
        for arch in ["amd64", "arm64", "s390x", "ppc64le", "riscv64", "x86", "arm"] {
            let host = HostInfo { seccomp_arch: arch, ..host.clone() };
            for caps in [default_caps(), all.clone()] {
                let s = default_seccomp(&caps, &host).unwrap().unwrap();
                let oci: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(s.clone()).unwrap();
                assert_eq!(serde_json::to_value(&oci).unwrap()["defaultAction"], s["defaultAction"]);
            }
        }
    }
}
