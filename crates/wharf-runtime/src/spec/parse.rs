//! Pure parsers for the `docker run` flags that end up in a spec, shared by the CLI and the
//! daemon: `--ulimit`, `--device`, `--device-cgroup-rule`, `--security-opt`, `--sysctl`,
//! capability names, sizes (`512m`), CPU counts (`1.5`) and cpuset lists (`0-3,7`).
//!
//! Each returns Docker's own error text. No I/O.

use std::collections::BTreeSet;

use super::error::SpecError;

/// One `--ulimit name=soft[:hard]`, as Docker's `Ulimit` (`-1` is unlimited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// The names `--ulimit` accepts (Docker disables `as`).
pub const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Parses `nofile=1024:2048` (or `nofile=1024`, hard defaulting to soft) like go-units.
pub fn parse_ulimit(val: &str) -> Result<Ulimit, SpecError> {
    let bad = |m: String| SpecError::InvalidUlimit(m);
    let Some((name, limits)) = val.split_once('=') else {
        return Err(bad(format!("invalid ulimit argument: {val}")));
    };
    if !ULIMIT_NAMES.contains(&name) {
        return Err(bad(format!("invalid ulimit type: {name}")));
    }
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [soft] => {
            let soft = go_parse_int(soft).map_err(bad)?;
            (soft, soft)
        }
        [soft, hard] => {
            let hard = go_parse_int(hard).map_err(bad)?;
            (go_parse_int(soft).map_err(bad)?, hard)
        }
        _ => {
            return Err(bad(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            )));
        }
    };
    if hard != -1 {
        if soft == -1 {
            return Err(bad(format!(
                "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {hard}"
            )));
        }
        if soft > hard {
            return Err(bad(format!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")));
        }
    }
    Ok(Ulimit { name: name.to_owned(), soft, hard })
}

/// Go's `strconv.ParseInt(s, 10, 64)`, with its error text.
fn go_parse_int(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseInt: parsing {s:?}: invalid syntax"));
    }
    s.parse::<i64>().map_err(|_| format!("strconv.ParseInt: parsing {s:?}: value out of range"))
}

/// One `--device host[:container][:perms]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    /// Some combination of `r`, `w`, `m`.
    pub cgroup_permissions: String,
}

/// True for a non-empty combination of `r`, `w`, `m`, each at most once.
pub fn valid_device_mode(mode: &str) -> bool {
    let mut seen = [false; 3];
    !mode.is_empty()
        && mode.chars().all(|c| {
            let i = match c {
                'r' => 0,
                'w' => 1,
                'm' => 2,
                _ => return false,
            };
            !std::mem::replace(&mut seen[i], true)
        })
}

/// Parses `--device` as the docker CLI does for a Linux daemon: validates the form
/// (`bad format for path: …`, `bad mode specified: …`, `… is not an absolute path`), then
/// splits it; the container path defaults to the host path and permissions to `rwm`.
pub fn parse_device(device: &str) -> Result<DeviceMapping, SpecError> {
    validate_device(device)?;
    let parts: Vec<&str> = device.splitn(4, ':').collect();
    let (src, mut dst, mut perms) = (parts[0], "", "rwm");
    match parts.len() {
        1 => {}
        2 | 3 => {
            if parts.len() == 3 {
                perms = parts[2];
            }
            if valid_device_mode(parts[1]) {
                perms = parts[1];
            } else {
                dst = parts[1];
            }
        }
        _ => {
            return Err(SpecError::InvalidDevice(format!("invalid device specification: {device}")));
        }
    }
    if dst.is_empty() {
        dst = src;
    }
    Ok(DeviceMapping {
        path_on_host: src.to_owned(),
        path_in_container: dst.to_owned(),
        cgroup_permissions: perms.to_owned(),
    })
}

fn validate_device(val: &str) -> Result<(), SpecError> {
    let bad = |m: String| Err(SpecError::InvalidDevice(m));
    if val.matches(':').count() > 2 {
        return bad(format!("bad format for path: {val}"));
    }
    let split: Vec<&str> = val.splitn(3, ':').collect();
    if split[0].is_empty() {
        return bad(format!("bad format for path: {val}"));
    }
    let container_path = match split.len() {
        1 => split[0],
        2 if valid_device_mode(split[1]) => split[0],
        2 => split[1],
        _ => {
            if !valid_device_mode(split[2]) {
                return bad(format!("bad mode specified: {}", split[2]));
            }
            split[1]
        }
    };
    if !container_path.starts_with('/') {
        return bad(format!("{container_path} is not an absolute path"));
    }
    Ok(())
}

/// One parsed `--device-cgroup-rule` (`c 1:3 rwm`); `None` major/minor is `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCgroupRule {
    /// `a`, `b` or `c`.
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

/// Parses a device cgroup rule `type major:minor access` with the daemon's message
/// (`invalid device cgroup rule format: '…'`).
pub fn parse_device_cgroup_rule(rule: &str) -> Result<DeviceCgroupRule, SpecError> {
    let bad = || SpecError::InvalidDevice(format!("invalid device cgroup rule format: '{rule}'"));
    let mut fields = rule.split(' ');
    let (Some(kind), Some(numbers), Some(access), None) = (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad());
    };
    let kind = match kind {
        "a" | "b" | "c" => kind.chars().next().unwrap_or('a'),
        _ => return Err(bad()),
    };
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    let number = |s: &str| -> Result<Option<i64>, SpecError> {
        match s {
            "*" => Ok(None),
            _ if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().map(Some).map_err(|_| bad()),
            _ => Err(bad()),
        }
    };
    let in_set = access.len() <= 3 && access.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    if access.is_empty() || !in_set {
        return Err(bad());
    }
    Ok(DeviceCgroupRule { kind, major: number(major)?, minor: number(minor)?, access: access.to_owned() })
}

/// The CLI's check of `--device-cgroup-rule` (`invalid device cgroup format '…'`).
pub fn validate_device_cgroup_rule_flag(rule: &str) -> Result<(), SpecError> {
    parse_device_cgroup_rule(rule)
        .map(|_| ())
        .map_err(|_| SpecError::InvalidDevice(format!("invalid device cgroup format '{rule}'")))
}

/// The seccomp profile a container asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SeccompChoice {
    /// Nothing given: the daemon's default (Docker's built-in profile).
    #[default]
    Default,
    /// `seccomp=builtin`.
    Builtin,
    /// `seccomp=unconfined`.
    Unconfined,
    /// `seccomp=<profile JSON>` (the CLI sends the file's content).
    Custom(String),
}

/// `--security-opt` values after the daemon's parsing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityOpts {
    pub no_new_privileges: Option<bool>,
    pub writable_cgroups: Option<bool>,
    pub apparmor_profile: Option<String>,
    pub seccomp: SeccompChoice,
    /// `label=…` values (SELinux); `disable` appears as itself.
    pub labels: Vec<String>,
}

/// Parses `--security-opt` as the daemon does (`invalid --security-opt 1: "…"` when there is no
/// separator, `invalid --security-opt 2: "…"` for an unknown key or a bad boolean). `key:value`
/// is still accepted, as in Docker.
pub fn parse_security_opts(opts: &[String]) -> Result<SecurityOpts, SpecError> {
    let mut out = SecurityOpts::default();
    for opt in opts {
        match opt.as_str() {
            "no-new-privileges" => {
                out.no_new_privileges = Some(true);
                continue;
            }
            "writable-cgroups" => {
                out.writable_cgroups = Some(true);
                continue;
            }
            "disable" => {
                out.labels.push("disable".to_owned());
                continue;
            }
            _ => {}
        }
        let split = if opt.contains('=') { opt.split_once('=') } else { opt.split_once(':') };
        let Some((key, value)) = split else {
            return Err(SpecError::InvalidSecurityOpt(format!("invalid --security-opt 1: {opt:?}")));
        };
        let invalid2 = || SpecError::InvalidSecurityOpt(format!("invalid --security-opt 2: {opt:?}"));
        match key {
            "label" => out.labels.push(value.to_owned()),
            "apparmor" => out.apparmor_profile = Some(value.to_owned()),
            "seccomp" => {
                out.seccomp = match value {
                    "builtin" => SeccompChoice::Builtin,
                    "unconfined" => SeccompChoice::Unconfined,
                    "" => SeccompChoice::Default,
                    json => SeccompChoice::Custom(json.to_owned()),
                }
            }
            "no-new-privileges" => out.no_new_privileges = Some(go_parse_bool(value).ok_or_else(invalid2)?),
            "writable-cgroups" => out.writable_cgroups = Some(go_parse_bool(value).ok_or_else(invalid2)?),
            _ => return Err(invalid2()),
        }
    }
    Ok(out)
}

/// The CLI's first check of one `--security-opt` (`Invalid --security-opt: "…"`): a value is
/// required except for `no-new-privileges`.
pub fn validate_security_opt_flag(opt: &str) -> Result<(), SpecError> {
    let (mut key, mut value) = match opt.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (opt, None),
    };
    if value.is_none()
        && key != "no-new-privileges"
        && let Some((k, v)) = opt.split_once(':')
    {
        (key, value) = (k, Some(v));
    }
    if value.is_none_or(str::is_empty) && key != "no-new-privileges" {
        return Err(SpecError::InvalidSecurityOpt(format!("Invalid --security-opt: {opt:?}")));
    }
    Ok(())
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The CLI's `--sysctl KEY=VALUE` check: only namespaced sysctls (`kernel.msg*`, `kernel.sem`,
/// `kernel.shm*`, `fs.mqueue.*`, `net.*`) pass. Returns `(key, value)`.
pub fn parse_sysctl_flag(val: &str) -> Result<(String, String), SpecError> {
    let bad = || SpecError::InvalidSysctl(format!("sysctl '{val}' is not allowed"));
    let (key, value) = val.split_once('=').ok_or_else(bad)?;
    if key.is_empty() {
        return Err(bad());
    }
    if IPC_SYSCTLS.contains(&key) || key.starts_with("net.") || key.starts_with("fs.mqueue.") {
        Ok((key.to_owned(), value.to_owned()))
    } else {
        Err(bad())
    }
}

/// Sysctls that belong to the IPC namespace (besides the `fs.mqueue.` prefix).
pub(crate) const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Parses a human-readable size in binary units (`512m`, `1g`, `1.5GiB`, `100`) like go-units'
/// `RAMInBytes`; a `b` suffix is optional and case is ignored.
pub fn parse_ram_bytes(size: &str) -> Result<i64, SpecError> {
    let bad = |m: String| SpecError::InvalidSize(m);
    let Some(sep) = size.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(bad(format!("invalid size: '{size}'")));
    };
    let (num, sfx) =
        if size.as_bytes()[sep] == b' ' { (&size[..sep], &size[sep + 1..]) } else { (&size[..=sep], &size[sep + 1..]) };
    let value = go_parse_float(num).map_err(bad)?;
    if value < 0.0 {
        return Err(bad(format!("invalid size: '{size}'")));
    }
    if sfx.is_empty() {
        return Ok(value as i64);
    }
    let bad_suffix = || bad(format!("invalid suffix: '{}'", sfx.to_lowercase()));
    if sfx.len() > 3 {
        return Err(bad(format!("invalid suffix: '{sfx}'")));
    }
    let lower = sfx.to_lowercase();
    let bytes = lower.as_bytes();
    if bytes[0] == b'b' {
        return if bytes.len() > 1 { Err(bad_suffix()) } else { Ok(value as i64) };
    }
    let mul: i64 = match bytes[0] {
        b'k' => 1 << 10,
        b'm' => 1 << 20,
        b'g' => 1 << 30,
        b't' => 1 << 40,
        b'p' => 1 << 50,
        _ => return Err(bad_suffix()),
    };
    match bytes.len() {
        2 if bytes[1] != b'b' => return Err(bad_suffix()),
        3 if &bytes[1..] != b"ib" => return Err(bad_suffix()),
        _ => {}
    }
    Ok((value * mul as f64) as i64)
}

/// Parses `--memory-swap`: like [`parse_ram_bytes`], and `-1` means unlimited.
pub fn parse_memory_swap(size: &str) -> Result<i64, SpecError> {
    if size == "-1" {
        return Ok(-1);
    }
    parse_ram_bytes(size)
}

/// Go's `strconv.ParseFloat(s, 64)` for the decimal forms sizes use, with its error text.
fn go_parse_float(s: &str) -> Result<f64, String> {
    let syntax = || format!("strconv.ParseFloat: parsing {s:?}: invalid syntax");
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let ok_chars = body.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if body.is_empty() || !ok_chars || !body.bytes().any(|b| b.is_ascii_digit()) {
        return Err(syntax());
    }
    s.parse::<f64>().map_err(|_| syntax())
}

/// Parses `--cpus 1.5` into nano-CPUs (1.5e9) with `big.Rat` semantics: decimals, exponents and
/// `a/b` fractions; errors `failed to parse … as a rational number` and `value is too precise`.
pub fn parse_cpus(value: &str) -> Result<i64, SpecError> {
    let unparsable = || SpecError::InvalidCpus(format!("failed to parse {value} as a rational number"));
    let (num, den) = parse_rational(value).ok_or_else(unparsable)?;
    let scaled = num.checked_mul(1_000_000_000).ok_or_else(unparsable)?;
    if scaled % den != 0 {
        return Err(SpecError::InvalidCpus("value is too precise".to_owned()));
    }
    i64::try_from(scaled / den).map_err(|_| unparsable())
}

/// `a/b` or a decimal with optional exponent, as an exact fraction (denominator > 0).
fn parse_rational(s: &str) -> Option<(i128, i128)> {
    if let Some((a, b)) = s.split_once('/') {
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
        let unsigned_a = a.strip_prefix(['+', '-']).unwrap_or(a);
        if !digits(unsigned_a) || !digits(b) || unsigned_a.len() > 30 || b.len() > 30 {
            return None;
        }
        let (a, b): (i128, i128) = (a.parse().ok()?, b.parse().ok()?);
        return (b != 0).then_some((a, b));
    }
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().ok()?),
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{int}{frac}");
    let mut num: i128 = digits.trim_start_matches('0').parse().unwrap_or(0);
    if digits.trim_start_matches('0').len() > 30 {
        return None;
    }
    let mut den: i128 = 1;
    let scale = exp - frac.len() as i32;
    if scale >= 0 {
        num = num.checked_mul(10i128.checked_pow(scale as u32)?)?;
    } else {
        den = 10i128.checked_pow((-scale) as u32)?;
    }
    Some((if neg { -num } else { num }, den))
}

/// Parses a cpuset list (`0-2,7`) into its members, as Docker's `parseUintList`; values above
/// `maximum` (when non-zero) are refused to keep the set small.
pub fn parse_cpuset(val: &str, maximum: u32) -> Result<BTreeSet<u32>, String> {
    let mut out = BTreeSet::new();
    if val.is_empty() {
        return Ok(out);
    }
    let invalid = || format!("invalid format: {val}");
    let out_of_range = || format!("value of out range, maximum is {maximum}");
    let atoi = |s: &str| -> Result<u32, String> {
        let digits = s.strip_prefix('+').unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        digits.parse::<u32>().map_err(|_| out_of_range())
    };
    for part in val.split(',') {
        match part.split_once('-') {
            None => {
                let v = atoi(part)?;
                if maximum != 0 && v > maximum {
                    return Err(out_of_range());
                }
                out.insert(v);
            }
            Some((lo, hi)) => {
                let (lo, hi) = (atoi(lo)?, atoi(hi)?);
                if hi < lo {
                    return Err(invalid());
                }
                if maximum != 0 && hi > maximum {
                    return Err(out_of_range());
                }
                out.extend(lo..=hi);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg<T: std::fmt::Debug>(r: Result<T, SpecError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn ulimits_parse_like_go_units() {
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 1024, 2048));
        let u = parse_ulimit("nproc=512").unwrap();
        assert_eq!((u.soft, u.hard), (512, 512));
        let u = parse_ulimit("core=-1").unwrap();
        assert_eq!((u.soft, u.hard), (-1, -1));
        assert_eq!(msg(parse_ulimit("nofile")), "invalid ulimit argument: nofile");
        assert_eq!(msg(parse_ulimit("as=1")), "invalid ulimit type: as");
        assert_eq!(msg(parse_ulimit("foo=1")), "invalid ulimit type: foo");
        assert_eq!(
            msg(parse_ulimit("nofile=1:2:3")),
            "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`"
        );
        assert_eq!(msg(parse_ulimit("nofile=abc")), "strconv.ParseInt: parsing \"abc\": invalid syntax");
        assert_eq!(
            msg(parse_ulimit("nofile=2048:1024")),
            "ulimit soft limit must be less than or equal to hard limit: 2048 > 1024"
        );
        assert_eq!(
            msg(parse_ulimit("nofile=-1:1024")),
            "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: 1024"
        );
    }

    #[test]
    fn devices_parse_like_the_cli() {
        let d = parse_device("/dev/fuse").unwrap();
        assert_eq!(
            d,
            DeviceMapping {
                path_on_host: "/dev/fuse".into(),
                path_in_container: "/dev/fuse".into(),
                cgroup_permissions: "rwm".into()
            }
        );
        let d = parse_device("/dev/sda:/dev/xvda:r").unwrap();
        assert_eq!((d.path_in_container.as_str(), d.cgroup_permissions.as_str()), ("/dev/xvda", "r"));
        let d = parse_device("/dev/null:rw").unwrap();
        assert_eq!((d.path_in_container.as_str(), d.cgroup_permissions.as_str()), ("/dev/null", "rw"));
        assert_eq!(msg(parse_device("")), "bad format for path: ");
        assert_eq!(msg(parse_device(":/x")), "bad format for path: :/x");
        assert_eq!(msg(parse_device("/a:/b:/c:r")), "bad format for path: /a:/b:/c:r");
        assert_eq!(msg(parse_device("/a:/b:rx")), "bad mode specified: rx");
        assert_eq!(msg(parse_device("/a:rr")), "rr is not an absolute path");
        assert_eq!(msg(parse_device("dev/x")), "dev/x is not an absolute path");
    }

    #[test]
    fn device_cgroup_rules() {
        let r = parse_device_cgroup_rule("c 1:3 rwm").unwrap();
        assert_eq!((r.kind, r.major, r.minor), ('c', Some(1), Some(3)));
        let r = parse_device_cgroup_rule("b *:* r").unwrap();
        assert_eq!((r.major, r.minor, r.access.as_str()), (None, None, "r"));
        for bad in ["c 1:3", "x 1:3 r", "c 1:3 rwmr", "c a:3 r", "c 1:3  r", ""] {
            assert_eq!(msg(parse_device_cgroup_rule(bad)), format!("invalid device cgroup rule format: '{bad}'"));
        }
        assert_eq!(msg(validate_device_cgroup_rule_flag("c 1 r")), "invalid device cgroup format 'c 1 r'");
    }

    #[test]
    fn security_opts() {
        let o = parse_security_opts(&[
            "no-new-privileges".into(),
            "apparmor=unconfined".into(),
            "seccomp=unconfined".into(),
            "label=disable".into(),
        ])
        .unwrap();
        assert_eq!(o.no_new_privileges, Some(true));
        assert_eq!(o.apparmor_profile.as_deref(), Some("unconfined"));
        assert_eq!(o.seccomp, SeccompChoice::Unconfined);
        assert_eq!(o.labels, ["disable"]);
        let o = parse_security_opts(&["no-new-privileges=false".into(), "seccomp:{}".into()]).unwrap();
        assert_eq!(o.no_new_privileges, Some(false));
        assert_eq!(o.seccomp, SeccompChoice::Custom("{}".into()));
        assert_eq!(msg(parse_security_opts(&["foo".into()])), "invalid --security-opt 1: \"foo\"");
        assert_eq!(msg(parse_security_opts(&["foo=bar".into()])), "invalid --security-opt 2: \"foo=bar\"");
        assert_eq!(
            msg(parse_security_opts(&["no-new-privileges=maybe".into()])),
            "invalid --security-opt 2: \"no-new-privileges=maybe\""
        );
        assert!(validate_security_opt_flag("no-new-privileges").is_ok());
        assert!(validate_security_opt_flag("seccomp=unconfined").is_ok());
        assert_eq!(msg(validate_security_opt_flag("apparmor")), "Invalid --security-opt: \"apparmor\"");
        assert_eq!(msg(validate_security_opt_flag("apparmor=")), "Invalid --security-opt: \"apparmor=\"");
    }

    #[test]
    fn sysctl_flag() {
        assert_eq!(
            parse_sysctl_flag("net.ipv4.ip_forward=1").unwrap(),
            ("net.ipv4.ip_forward".to_owned(), "1".to_owned())
        );
        assert!(parse_sysctl_flag("kernel.shmmax=1").is_ok());
        assert!(parse_sysctl_flag("fs.mqueue.msg_max=10").is_ok());
        assert_eq!(msg(parse_sysctl_flag("kernel.panic=1")), "sysctl 'kernel.panic=1' is not allowed");
        assert_eq!(msg(parse_sysctl_flag("net.x")), "sysctl 'net.x' is not allowed");
        assert_eq!(msg(parse_sysctl_flag("=1")), "sysctl '=1' is not allowed");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(parse_ram_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_ram_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_ram_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_ram_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_ram_bytes("1gb").unwrap(), 1 << 30);
        assert_eq!(parse_ram_bytes("1.5k").unwrap(), 1536);
        assert_eq!(parse_ram_bytes("100").unwrap(), 100);
        assert_eq!(parse_ram_bytes("100b").unwrap(), 100);
        assert_eq!(parse_ram_bytes("32 MiB").unwrap(), 32 << 20);
        assert_eq!(parse_memory_swap("-1").unwrap(), -1);
        assert_eq!(msg(parse_ram_bytes("abc")), "invalid size: 'abc'");
        assert_eq!(msg(parse_ram_bytes("-1")), "invalid size: '-1'");
        assert_eq!(msg(parse_ram_bytes("1x")), "invalid suffix: 'x'");
        assert_eq!(msg(parse_ram_bytes("1mx")), "invalid suffix: 'mx'");
        assert_eq!(msg(parse_ram_bytes("1kibb")), "invalid suffix: 'kibb'");
        assert_eq!(msg(parse_ram_bytes("1..2m")), "strconv.ParseFloat: parsing \"1..2\": invalid syntax");
    }

    #[test]
    fn cpus_are_exact_rationals() {
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        assert_eq!(parse_cpus("2").unwrap(), 2_000_000_000);
        assert_eq!(parse_cpus("0.001").unwrap(), 1_000_000);
        assert_eq!(parse_cpus("3/2").unwrap(), 1_500_000_000);
        assert_eq!(parse_cpus("1e-3").unwrap(), 1_000_000);
        assert_eq!(parse_cpus(".5").unwrap(), 500_000_000);
        assert_eq!(parse_cpus("-1").unwrap(), -1_000_000_000);
        assert_eq!(msg(parse_cpus("0.0000000001")), "value is too precise");
        assert_eq!(msg(parse_cpus("one")), "failed to parse one as a rational number");
        assert_eq!(msg(parse_cpus("")), "failed to parse  as a rational number");
        assert_eq!(msg(parse_cpus("1/0")), "failed to parse 1/0 as a rational number");
    }

    #[test]
    fn cpuset_lists() {
        let s = parse_cpuset("0-2,7", 0).unwrap();
        assert_eq!(s.into_iter().collect::<Vec<_>>(), [0, 1, 2, 7]);
        assert_eq!(parse_cpuset("1-x", 0).unwrap_err(), "invalid format: 1-x");
        assert_eq!(parse_cpuset("3-1", 0).unwrap_err(), "invalid format: 3-1");
        assert_eq!(parse_cpuset("0-9999", 8192).unwrap_err(), "value of out range, maximum is 8192");
        assert!(parse_cpuset("", 0).unwrap().is_empty());
    }
}
