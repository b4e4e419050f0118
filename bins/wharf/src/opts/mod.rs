//! docker/cli's `opts` package: flag values the container commands share, parsed and validated
//! with docker's messages.
//!
//! Two kinds of failures, as in docker (both exit 125):
//! - [`OptError::Flag`]: what pflag reports while setting a flag
//!   (`invalid argument "x" for "--dns" flag: IP address is not correctly formatted: x`);
//! - [`OptError::Parse`]: what `parse()` reports afterwards (`docker: invalid containerPort: x`).
//!
//! Map: [`ports`] (`-p`, `--expose`), [`mounts`] (`--mount`, `-v`), [`network`] (`--network`),
//! [`container`] (the run/create flag set and its conversion into a create request).

pub mod container;
pub mod mounts;
pub mod network;
pub mod ports;

use std::fmt;
use std::net::IpAddr;
pub use wharf_types::gostr::quote as go_quote;

/// The name docker prints in hints and usage lines.
pub const PROG: &str = "wharf";

/// An option error, formatted by the command that owns the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptError {
    /// A flag value was rejected while parsing flags.
    Flag { flag: String, value: String, msg: String },
    /// The flags parsed but do not make a valid configuration.
    Parse(String),
}

impl OptError {
    pub fn flag(flag: &str, value: &str, msg: impl Into<String>) -> Self {
        OptError::Flag { flag: flag.to_owned(), value: value.to_owned(), msg: msg.into() }
    }

    /// The full text docker prints for this error in `command` (e.g. `run`), with `usage` the
    /// command's usage line.
    pub fn render(&self, command: &str, usage: &str) -> String {
        match self {
            OptError::Flag { flag, value, msg } => format!(
                "invalid argument \"{value}\" for \"{flag}\" flag: {msg}\n\nUsage:  {PROG} {usage}\n\nRun '{PROG} {command} --help' for more information"
            ),
            OptError::Parse(m) => with_help(m, command),
        }
    }
}

impl fmt::Display for OptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptError::Flag { flag, value, msg } => {
                write!(f, "invalid argument \"{value}\" for \"{flag}\" flag: {msg}")
            }
            OptError::Parse(m) => f.write_str(m),
        }
    }
}

/// docker's `withHelp`: `docker: <err>\n\nRun 'docker <cmd> --help' for more information`.
pub fn with_help(err: &str, command: &str) -> String {
    format!("{PROG}: {err}\n\nRun '{PROG} {command} --help' for more information")
}

pub type OptResult<T> = Result<T, OptError>;

fn parse_err(m: impl Into<String>) -> OptError {
    OptError::Parse(m.into())
}

// ---- Go number/bool/duration parsing with Go's messages --------------------------------------

/// `strconv.ParseInt(s, 0, bits)` (pflag's int flags).
pub fn go_parse_int(s: &str, bits: u32) -> Result<i64, String> {
    let syntax = || format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(s));
    let range = || format!("strconv.ParseInt: parsing {}: value out of range", go_quote(s));
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let mag = parse_uint_base0(body).map_err(|overflow| if overflow { range() } else { syntax() })?;
    let limit: u128 = 1u128 << (bits - 1);
    if (!neg && u128::from(mag) >= limit) || (neg && u128::from(mag) > limit) {
        return Err(range());
    }
    let v = i128::from(mag);
    Ok((if neg { -v } else { v }) as i64)
}

/// `strconv.ParseUint(s, 0, bits)`.
pub fn go_parse_uint(s: &str, bits: u32) -> Result<u64, String> {
    let v = parse_uint_base0(s).map_err(|overflow| {
        if overflow {
            format!("strconv.ParseUint: parsing {}: value out of range", go_quote(s))
        } else {
            format!("strconv.ParseUint: parsing {}: invalid syntax", go_quote(s))
        }
    })?;
    if bits < 64 && v >= (1u64 << bits) {
        return Err(format!("strconv.ParseUint: parsing {}: value out of range", go_quote(s)));
    }
    Ok(v)
}

/// `strconv.ParseUint(s, 10, bits)`.
pub fn go_parse_uint_dec(s: &str, bits: u32) -> Result<u64, String> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {}: invalid syntax", go_quote(s)));
    }
    match s.parse::<u64>() {
        Ok(v) if bits >= 64 || v < (1u64 << bits) => Ok(v),
        _ => Err(format!("strconv.ParseUint: parsing {}: value out of range", go_quote(s))),
    }
}

/// Base-0 unsigned parsing (`0x`, `0o`, `0b`, leading-`0` octal); `Err(true)` on overflow.
fn parse_uint_base0(s: &str) -> Result<u64, bool> {
    if s.is_empty() {
        return Err(false);
    }
    let lower = s.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(r) = lower.strip_prefix("0x") {
        (16, r.to_owned(), true)
    } else if let Some(r) = lower.strip_prefix("0o") {
        (8, r.to_owned(), true)
    } else if let Some(r) = lower.strip_prefix("0b") {
        (2, r.to_owned(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_owned(), true)
    } else {
        (10, lower.clone(), false)
    };
    let digits = if prefixed { digits.replace('_', "") } else { digits };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(false);
    }
    u64::from_str_radix(&digits, radix).map_err(|_| true)
}

/// `strconv.ParseBool`.
pub fn go_parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {}: invalid syntax", go_quote(s))),
    }
}

/// A Go duration flag in nanoseconds.
pub fn duration_flag(flag: &str, v: &str) -> OptResult<i64> {
    crate::timefmt::parse_go_duration(v).map_err(|e| OptError::flag(flag, v, e.to_string()))
}

pub fn int_flag(flag: &str, v: &str, bits: u32) -> OptResult<i64> {
    go_parse_int(v, bits).map_err(|e| OptError::flag(flag, v, e))
}

pub fn uint_flag(flag: &str, v: &str, bits: u32) -> OptResult<u64> {
    go_parse_uint(v, bits).map_err(|e| OptError::flag(flag, v, e))
}

/// `MemBytes.Set`: `RAMInBytes`.
pub fn mem_bytes_flag(flag: &str, v: &str) -> OptResult<i64> {
    crate::units::ram_in_bytes(v).map_err(|e| OptError::flag(flag, v, e))
}

/// `MemSwapBytes.Set`: `-1` or `RAMInBytes`.
pub fn mem_swap_flag(flag: &str, v: &str) -> OptResult<i64> {
    if v == "-1" {
        return Ok(-1);
    }
    mem_bytes_flag(flag, v)
}

/// `ParseCPUs`: a decimal number of CPUs into nano-CPUs (`1.5` → 1500000000).
pub fn parse_cpus(value: &str) -> Result<i64, String> {
    let fail = || format!("failed to parse {value} as a rational number");
    let s = value.trim();
    // big.Rat accepts decimals, fractions (`3/2`) and exponents; cover decimals and fractions.
    let (num, den): (i128, i128) = if let Some((a, b)) = s.split_once('/') {
        let a: i128 = a.parse().map_err(|_| fail())?;
        let b: i128 = b.parse().map_err(|_| fail())?;
        if b == 0 {
            return Err(fail());
        }
        (a, b)
    } else {
        let (neg, body) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (ip, fp) = body.split_once('.').unwrap_or((body, ""));
        if (ip.is_empty() && fp.is_empty())
            || !ip.chars().all(|c| c.is_ascii_digit())
            || !fp.chars().all(|c| c.is_ascii_digit())
            || ip.len() + fp.len() > 30
        {
            return Err(fail());
        }
        let digits = format!("{ip}{fp}");
        let n: i128 = digits.parse().map_err(|_| fail())?;
        let d = 10i128.pow(fp.len() as u32);
        (if neg { -n } else { n }, d)
    };
    let nano = num * 1_000_000_000;
    if nano % den != 0 {
        return Err("value is too precise".into());
    }
    Ok((nano / den) as i64)
}

// ---- validators (pflag-time) ------------------------------------------------------------------

/// `ValidateIPAddress`: the canonical form.
pub fn validate_ip(v: &str) -> Result<String, String> {
    v.trim()
        .parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| format!("IP address is not correctly formatted: {v}"))
}

/// Go's `net.ParseMAC` for 6-, 8- and 20-byte addresses with `:`, `-` or `.` separators.
pub fn validate_mac(v: &str) -> bool {
    let s = v.trim();
    let groups: Vec<&str> = if s.contains(':') {
        s.split(':').collect()
    } else if s.contains('-') {
        s.split('-').collect()
    } else if s.contains('.') {
        let g: Vec<&str> = s.split('.').collect();
        return g.iter().all(|x| x.len() == 4 && x.chars().all(|c| c.is_ascii_hexdigit()))
            && matches!(g.len(), 3 | 4 | 10);
    } else {
        return false;
    };
    groups.iter().all(|x| x.len() == 2 && x.chars().all(|c| c.is_ascii_hexdigit()))
        && matches!(groups.len(), 6 | 8 | 20)
}

/// `ValidateDNSSearch`.
pub fn validate_dns_search(v: &str) -> Result<String, String> {
    let v = v.trim_matches(' ');
    if v == "." {
        return Ok(v.to_owned());
    }
    let bad = || format!("{v} is not a valid domain");
    if !v.chars().any(|c| c.is_ascii_alphabetic()) {
        return Err(bad());
    }
    let core = v.trim_end_matches(char::is_whitespace);
    let core_nodot = core.strip_suffix('.').unwrap_or(core);
    let ok = !core_nodot.is_empty()
        && core_nodot.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok && core.len() < 255 { Ok(core.to_owned()) } else { Err(bad()) }
}

/// `ValidateLabel`.
pub fn validate_label(v: &str) -> Result<String, String> {
    let key = v.split_once('=').map_or(v, |(k, _)| k);
    let key = key.trim_start_matches([' ', '\t']);
    if key.is_empty() {
        return Err(format!("invalid label '{v}': empty name"));
    }
    if key.contains([' ', '\t']) {
        return Err(format!("label '{key}' contains whitespaces"));
    }
    Ok(v.to_owned())
}

/// `ValidateEnv`: `KEY` alone takes the value from our environment when set.
pub fn validate_env(v: &str) -> Result<String, String> {
    let (k, has_value) = match v.split_once('=') {
        Some((k, _)) => (k, true),
        None => (v, false),
    };
    if k.is_empty() {
        return Err(format!("invalid environment variable: {v}"));
    }
    if has_value {
        return Ok(v.to_owned());
    }
    match std::env::var(k) {
        Ok(val) => Ok(format!("{k}={val}")),
        Err(_) => Ok(v.to_owned()),
    }
}

/// `ValidateSysctl`.
pub fn validate_sysctl(v: &str) -> Result<String, String> {
    const EXACT: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let not_allowed = || format!("sysctl '{v}' is not allowed");
    let Some((k, _)) = v.split_once('=') else {
        return Err(not_allowed());
    };
    if k.is_empty() {
        return Err(not_allowed());
    }
    if EXACT.contains(&k) || k.starts_with("net.") || k.starts_with("fs.mqueue.") {
        Ok(v.to_owned())
    } else {
        Err(not_allowed())
    }
}

/// `ValidateExtraHost`: `host:ip`, `host=ip`, `host=[v6]`, `host:host-gateway` → `host:ip`.
pub fn validate_extra_host(v: &str) -> Result<String, String> {
    let (k, ip) = match v.split_once('=') {
        Some(x) => x,
        None => match v.split_once(':') {
            Some(x) => x,
            None => return Err(format!("bad format for add-host: {}", go_quote(v))),
        },
    };
    if k.is_empty() || k.contains(':') {
        return Err(format!("bad format for add-host: {}", go_quote(v)));
    }
    let mut ip = ip;
    if ip != "host-gateway" {
        if ip.len() > 2 && ip.starts_with('[') && ip.ends_with(']') {
            ip = &ip[1..ip.len() - 1];
        }
        if validate_ip(ip).is_err() {
            return Err(format!("invalid IP address in add-host: {}", go_quote(ip)));
        }
    }
    Ok(format!("{k}:{ip}"))
}

/// `ValidateLink` (`name` or `name:alias`).
pub fn validate_link(v: &str) -> Result<String, String> {
    if v.is_empty() {
        return Err("empty string specified for links".into());
    }
    if v.splitn(3, ':').count() > 2 {
        return Err(format!("bad format for links: {v}"));
    }
    Ok(v.to_owned())
}

/// `validateDeviceCgroupRule`: `^[acb] ([0-9]+|\*):([0-9]+|\*) [rwm]{1,3}$`.
pub fn validate_device_cgroup_rule(v: &str) -> Result<String, String> {
    let bad = || format!("invalid device cgroup format '{v}'");
    let parts: Vec<&str> = v.split(' ').collect();
    if parts.len() != 3 {
        return Err(bad());
    }
    let num = |s: &str| s == "*" || (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit()));
    let ok = matches!(parts[0], "a" | "b" | "c")
        && parts[1].split_once(':').is_some_and(|(a, b)| num(a) && num(b))
        && (1..=3).contains(&parts[2].len())
        && parts[2].chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    if ok { Ok(v.to_owned()) } else { Err(bad()) }
}

/// `validateAttach`.
pub fn validate_attach(v: &str) -> Result<String, String> {
    let s = v.to_lowercase();
    if matches!(s.as_str(), "stdin" | "stdout" | "stderr") {
        Ok(s)
    } else {
        Err("valid streams are STDIN, STDOUT and STDERR".into())
    }
}

/// Looks a variable up (in our environment, for env files).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

// ---- key/value files --------------------------------------------------------------------------

/// docker's `kvfile.Parse`: `KEY=value` lines, `#` comments, a UTF-8 BOM; `lookup` fills
/// `KEY` lines from the environment (env files) or drops them (label files, `lookup` = None).
pub fn parse_kv_file(path: &str, lookup: Option<Lookup<'_>>) -> Result<Vec<String>, String> {
    let data = std::fs::read(path).map_err(|e| format!("open {path}: {}", io_text(&e)))?;
    parse_kv_bytes(&data, lookup).map_err(|e| format!("invalid env file ({path}): {e}"))
}

pub fn parse_kv_bytes(data: &[u8], lookup: Option<Lookup<'_>>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, raw) in data.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(mut line) = std::str::from_utf8(raw) else {
            return Err(format!("invalid utf8 bytes at line {}: {:?}", i + 1, raw));
        };
        if i == 0 {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, has_value) = match line.split_once('=') {
            Some((k, _)) => (k, true),
            None => (line, false),
        };
        if key.is_empty() {
            return Err(format!("no variable name on line '{line}'"));
        }
        if key.contains([' ', '\t']) {
            return Err(format!("variable '{key}' contains whitespaces"));
        }
        if has_value {
            out.push(line.to_owned());
        } else if let Some(f) = lookup
            && let Some(v) = f(line)
        {
            out.push(format!("{key}={v}"));
        }
    }
    Ok(out)
}

/// `ReadKVEnvStrings`: env files (values looked up in our environment), then `-e` values.
pub fn read_kv_env_strings(files: &[String], overrides: &[String]) -> OptResult<Vec<String>> {
    let lookup = |k: &str| std::env::var(k).ok();
    let mut vars = Vec::new();
    for f in files {
        vars.extend(parse_kv_file(f, Some(&lookup)).map_err(parse_err)?);
    }
    vars.extend(overrides.iter().cloned());
    Ok(vars)
}

/// `ReadKVStrings`: label files, then `-l` values.
pub fn read_kv_strings(files: &[String], overrides: &[String]) -> OptResult<Vec<String>> {
    let mut vars = Vec::new();
    for f in files {
        vars.extend(parse_kv_file(f, None).map_err(parse_err)?);
    }
    vars.extend(overrides.iter().cloned());
    Ok(vars)
}

/// `ConvertKVStringsToMap`.
pub fn kv_to_map(values: &[String]) -> std::collections::HashMap<String, String> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((k, val)) => (k.to_owned(), val.to_owned()),
            None => (v.clone(), String::new()),
        })
        .collect()
}

/// Go's text for an I/O error (`no such file or directory`).
pub fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    // Rust: "No such file or directory (os error 2)" → Go: "no such file or directory"
    let s = s.split(" (os error").next().unwrap_or(&s).to_owned();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

// ---- restart policies, ulimits, throttles ----------------------------------------------------

/// `ParseRestartPolicy` plus the daemon's validation of the mode, done here because the API
/// types only carry the known modes.
pub fn parse_restart_policy(policy: &str) -> OptResult<bollard::models::RestartPolicy> {
    use bollard::models::RestartPolicyNameEnum as N;
    if policy.is_empty() {
        return Ok(bollard::models::RestartPolicy::default());
    }
    let (name, count) = match policy.split_once(':') {
        Some(("", _)) => {
            return Err(parse_err("invalid restart policy format: no policy provided before colon"));
        }
        Some((n, c)) => (n, c),
        None => (policy, ""),
    };
    let mut max = 0i64;
    if !count.is_empty() {
        max = count
            .parse::<i64>()
            .map_err(|_| parse_err("invalid restart policy format: maximum retry count must be an integer"))?;
    }
    let mode = match name {
        "no" => N::NO,
        "always" => N::ALWAYS,
        "unless-stopped" => N::UNLESS_STOPPED,
        "on-failure" => N::ON_FAILURE,
        other => {
            return Err(parse_err(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            )));
        }
    };
    if max != 0 && mode != N::ON_FAILURE {
        return Err(parse_err("invalid restart policy: maximum retry count can only be used with 'on-failure'"));
    }
    if max < 0 {
        return Err(parse_err("invalid restart policy: maximum retry count cannot be negative"));
    }
    Ok(bollard::models::RestartPolicy { name: Some(mode), maximum_retry_count: Some(max) })
}

const ULIMITS: &[&str] = &[
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

/// go-units `ParseUlimit`: `nofile=1024[:2048]`.
pub fn parse_ulimit(v: &str) -> Result<bollard::models::ResourcesUlimits, String> {
    let Some((name, limits)) = v.split_once('=') else {
        return Err(format!("invalid ulimit argument: {v}"));
    };
    if !ULIMITS.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let parts: Vec<&str> = limits.split(':').collect();
    let num =
        |s: &str| s.parse::<i64>().map_err(|_| format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(s)));
    let (soft, hard) = match parts.as_slice() {
        [s] => {
            let s = num(s)?;
            (s, s)
        }
        [s, h] => {
            let h = num(h)?;
            (num(s)?, h)
        }
        _ => {
            return Err(format!("too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"));
        }
    };
    if hard != -1 {
        if soft == -1 {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {hard}"
            ));
        }
        if soft > hard {
            return Err(format!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"));
        }
    }
    Ok(bollard::models::ResourcesUlimits { name: Some(name.to_owned()), soft: Some(soft), hard: Some(hard) })
}

/// `ValidateThrottleBpsDevice`.
pub fn parse_throttle_bps(v: &str) -> Result<bollard::models::ThrottleDevice, String> {
    let (k, rate) = throttle_split(v)?;
    let bad = || {
        format!(
            "invalid rate for device: {v}. The correct format is <device-path>:<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb"
        )
    };
    let r = crate::units::ram_in_bytes(rate).map_err(|_| bad())?;
    if r < 0 {
        return Err(bad());
    }
    Ok(bollard::models::ThrottleDevice { path: Some(k.to_owned()), rate: Some(r) })
}

/// `ValidateThrottleIOpsDevice`.
pub fn parse_throttle_iops(v: &str) -> Result<bollard::models::ThrottleDevice, String> {
    let (k, rate) = throttle_split(v)?;
    let r: u64 = rate.parse().map_err(|_| {
        format!("invalid rate for device: {v}. The correct format is <device-path>:<number>. Number must be a positive integer")
    })?;
    Ok(bollard::models::ThrottleDevice { path: Some(k.to_owned()), rate: Some(r as i64) })
}

fn throttle_split(v: &str) -> Result<(&str, &str), String> {
    match v.split_once(':') {
        Some((k, r)) if !k.is_empty() => {
            if !k.starts_with("/dev/") {
                return Err(format!("bad format for device path: {v}"));
            }
            Ok((k, r))
        }
        _ => Err(format!("bad format: {v}")),
    }
}

/// `ValidateWeightDevice`.
pub fn parse_weight_device(v: &str) -> Result<bollard::models::ResourcesBlkioWeightDevice, String> {
    let (k, w) = throttle_split(v)?;
    let w: u16 = w.parse().map_err(|_| format!("invalid weight for device: {v}"))?;
    if w > 0 && !(10..=1000).contains(&w) {
        return Err(format!("invalid weight for device: {v}"));
    }
    Ok(bollard::models::ResourcesBlkioWeightDevice { path: Some(k.to_owned()), weight: Some(usize::from(w)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_numbers() {
        assert_eq!(go_parse_int("42", 64), Ok(42));
        assert_eq!(go_parse_int("-0x10", 64), Ok(-16));
        assert_eq!(go_parse_int("010", 64), Ok(8));
        assert_eq!(go_parse_int("abc", 64), Err("strconv.ParseInt: parsing \"abc\": invalid syntax".into()));
        assert_eq!(
            go_parse_int("3000000000", 32),
            Err("strconv.ParseInt: parsing \"3000000000\": value out of range".into())
        );
        assert_eq!(go_parse_uint("1000", 16), Ok(1000));
        assert!(go_parse_uint("70000", 16).unwrap_err().ends_with("value out of range"));
        assert_eq!(go_parse_bool("True"), Ok(true));
        assert!(go_parse_bool("yes").is_err());
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("0.000000001"), Ok(1));
        assert_eq!(parse_cpus("3/2"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("0.0000000001"), Err("value is too precise".into()));
        assert_eq!(parse_cpus("abc"), Err("failed to parse abc as a rational number".into()));
    }

    #[test]
    fn validators() {
        assert_eq!(validate_ip("::0001"), Ok("::1".into()));
        assert!(validate_ip("x").is_err());
        assert!(validate_mac("92:d0:c6:0a:29:33"));
        assert!(!validate_mac("92:d0:c6:0a:29"));
        assert_eq!(validate_dns_search("example.com"), Ok("example.com".into()));
        assert!(validate_dns_search("-bad-.com").is_err());
        assert!(validate_dns_search("123").is_err());
        assert_eq!(validate_label("=x").unwrap_err(), "invalid label '=x': empty name");
        assert_eq!(validate_label("a b=c").unwrap_err(), "label 'a b' contains whitespaces");
        assert_eq!(validate_sysctl("net.ipv4.ip_forward=1"), Ok("net.ipv4.ip_forward=1".into()));
        assert_eq!(validate_sysctl("kernel.foo=1").unwrap_err(), "sysctl 'kernel.foo=1' is not allowed");
        assert_eq!(validate_extra_host("db=[::1]"), Ok("db:::1".into()));
        assert_eq!(validate_extra_host("h:host-gateway"), Ok("h:host-gateway".into()));
        assert_eq!(validate_extra_host("nohost").unwrap_err(), "bad format for add-host: \"nohost\"");
        assert_eq!(validate_extra_host("h:1.2.3").unwrap_err(), "invalid IP address in add-host: \"1.2.3\"");
        assert!(validate_device_cgroup_rule("c 1:3 mr").is_ok());
        assert!(validate_device_cgroup_rule("c *:* rwm").is_ok());
        assert!(validate_device_cgroup_rule("x 1:3 mr").is_err());
        assert_eq!(validate_attach("STDIN"), Ok("stdin".into()));
        assert!(validate_attach("stdall").is_err());
    }

    #[test]
    fn env_and_label_files() {
        let lookup = |k: &str| (k == "FROM_ENV").then(|| "v".to_owned());
        let data = "\u{feff}# comment\n  A=1\nB=two words\nFROM_ENV\nMISSING\n\nC=\r\n";
        assert_eq!(
            parse_kv_bytes(data.as_bytes(), Some(&lookup)).unwrap(),
            vec!["A=1", "B=two words", "FROM_ENV=v", "C="]
        );
        assert_eq!(parse_kv_bytes(data.as_bytes(), None).unwrap(), vec!["A=1", "B=two words", "C="]);
        assert_eq!(parse_kv_bytes(b"A B=1", None).unwrap_err(), "variable 'A B' contains whitespaces");
        assert_eq!(parse_kv_bytes(b"=1", None).unwrap_err(), "no variable name on line '=1'");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("env");
        std::fs::write(&f, "X=1\n").unwrap();
        let f = f.to_string_lossy().into_owned();
        assert_eq!(read_kv_env_strings(std::slice::from_ref(&f), &["Y=2".into()]).unwrap(), vec!["X=1", "Y=2"]);
        assert_eq!(
            read_kv_strings(&["/nonexistent/file".into()], &[]).unwrap_err(),
            OptError::Parse("open /nonexistent/file: no such file or directory".into())
        );
    }

    #[test]
    fn restart_policies() {
        use bollard::models::RestartPolicyNameEnum as N;
        let p = parse_restart_policy("on-failure:3").unwrap();
        assert_eq!((p.name, p.maximum_retry_count), (Some(N::ON_FAILURE), Some(3)));
        let p = parse_restart_policy("no").unwrap();
        assert_eq!((p.name, p.maximum_retry_count), (Some(N::NO), Some(0)));
        assert_eq!(
            parse_restart_policy(":3").unwrap_err(),
            OptError::Parse("invalid restart policy format: no policy provided before colon".into())
        );
        assert_eq!(
            parse_restart_policy("on-failure:x").unwrap_err(),
            OptError::Parse("invalid restart policy format: maximum retry count must be an integer".into())
        );
        assert!(parse_restart_policy("sometimes").is_err());
        assert!(parse_restart_policy("always:2").is_err());
    }

    #[test]
    fn ulimits() {
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.soft, u.hard), (Some(1024), Some(2048)));
        let u = parse_ulimit("nproc=-1").unwrap();
        assert_eq!((u.soft, u.hard), (Some(-1), Some(-1)));
        assert_eq!(parse_ulimit("bogus=1").unwrap_err(), "invalid ulimit type: bogus");
        assert_eq!(parse_ulimit("nofile").unwrap_err(), "invalid ulimit argument: nofile");
        assert_eq!(
            parse_ulimit("nofile=2:1").unwrap_err(),
            "ulimit soft limit must be less than or equal to hard limit: 2 > 1"
        );
        assert!(parse_ulimit("nofile=1:2:3").unwrap_err().starts_with("too many limit value"));
    }

    #[test]
    fn throttles() {
        let t = parse_throttle_bps("/dev/sda:1mb").unwrap();
        assert_eq!(t.rate, Some(1 << 20));
        assert_eq!(parse_throttle_bps("sda:1").unwrap_err(), "bad format for device path: sda:1");
        assert_eq!(parse_throttle_iops("/dev/sda:100").unwrap().rate, Some(100));
        assert_eq!(parse_weight_device("/dev/sda:500").unwrap().weight, Some(500));
        assert!(parse_weight_device("/dev/sda:5").is_err());
    }

    #[test]
    fn messages() {
        let e = OptError::flag("--dns", "x", "IP address is not correctly formatted: x");
        assert_eq!(
            e.render("run", "run [OPTIONS] IMAGE [COMMAND] [ARG...]"),
            "invalid argument \"x\" for \"--dns\" flag: IP address is not correctly formatted: x\n\nUsage:  wharf run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'wharf run --help' for more information"
        );
        assert_eq!(
            OptError::Parse("invalid containerPort: abc".into()).render("run", ""),
            "wharf: invalid containerPort: abc\n\nRun 'wharf run --help' for more information"
        );
    }
}
