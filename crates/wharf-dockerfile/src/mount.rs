//! `RUN --mount=…` and `RUN --device=…` option parsing, with BuildKit's rules and messages.
//!
//! A mount spec is CSV (`type=cache,target=/root/.cache,sharing=locked`, fields may be quoted).
//! Keys are case-insensitive: `type` (bind — the default — cache, tmpfs, secret, ssh), `from`,
//! `source`/`src`, `target`/`dst`/`destination`, `readonly`/`ro`, `readwrite`/`rw`, `id`,
//! `sharing` (shared, private, locked; cache only), `required` (secret/ssh only), `size` (tmpfs
//! only, `64m`-style), `mode` (octal), `uid`, `gid` (secret, ssh and cache only), `env`
//! (secret). Bare `ro`, `rw`, `required` mean true. When neither ro nor rw is given, cache and
//! tmpfs mounts are writable and the others read-only.
//!
//! Option values may use build variables (`id=$CACHE_ID`), expanded when the step runs, except
//! `from`. At parse time fields whose value contains `$` are kept as written and not validated;
//! the builder re-parses [`RunMount::spec`] through [`RunMount::parse`] with an expander.

use crate::suggest;
use crate::util::go_quote;

/// What a `RUN --mount` attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Cache => "cache",
            MountKind::Tmpfs => "tmpfs",
            MountKind::Secret => "secret",
            MountKind::Ssh => "ssh",
        }
    }
}

/// How concurrent builds share one cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

impl Sharing {
    pub fn as_str(self) -> &'static str {
        match self {
            Sharing::Shared => "shared",
            Sharing::Private => "private",
            Sharing::Locked => "locked",
        }
    }
}

/// One `RUN --mount=` option, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    /// The option value as written, for re-parsing with variables expanded.
    pub spec: String,
    pub kind: MountKind,
    /// Stage name or image to take the source from (bind and cache).
    pub from: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub read_only: bool,
    /// Bytes (tmpfs `size=`).
    pub size_limit: Option<i64>,
    /// Cache id, or secret id.
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    /// Secret/ssh: fail when the secret or agent socket is not provided.
    pub required: bool,
    /// Secret: expose it as this environment variable.
    pub env: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Expands one option value (the builder passes its ENV/ARG scope here).
pub type Expander<'a> = &'a dyn Fn(&str) -> Result<String, String>;

impl RunMount {
    /// Parse a mount spec. With `expand`, every value but `from` is expanded first and the
    /// result is fully validated; without, values holding `$` are kept and not validated.
    pub fn parse(spec: &str, expand: Option<Expander<'_>>) -> Result<RunMount, String> {
        let fields = csv_fields(spec).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
        let mut m = RunMount {
            spec: spec.to_string(),
            kind: MountKind::Bind,
            from: None,
            source: None,
            target: None,
            read_only: false,
            size_limit: None,
            id: None,
            sharing: None,
            required: false,
            env: None,
            mode: None,
            uid: None,
            gid: None,
        };
        let mut ro_auto = true;
        let mut deferred = false;
        for field in &fields {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
                None => (field.to_ascii_lowercase(), None),
            };
            let Some(mut value) = value else {
                match key.as_str() {
                    "readonly" | "ro" => {
                        m.read_only = true;
                        ro_auto = false;
                    }
                    "readwrite" | "rw" => {
                        m.read_only = false;
                        ro_auto = false;
                    }
                    "required" if matches!(m.kind, MountKind::Secret | MountKind::Ssh) => m.required = true,
                    "required" => {
                        return Err(format!("unexpected key '{key}' for mount type '{}'", m.kind.as_str()));
                    }
                    _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
                }
                continue;
            };
            if key == "from" {
                if let Some(i) = value.find('$')
                    && i != value.len() - 1
                {
                    return Err(format!("'{key}' doesn't support variable expansion, define alias stage instead"));
                }
            } else if let Some(exp) = expand {
                value = exp(&value)?;
            } else if value.contains('$') {
                deferred = true;
                match key.as_str() {
                    "source" | "src" => m.source = Some(value),
                    "target" | "dst" | "destination" => m.target = Some(value),
                    "id" => m.id = Some(value),
                    "env" => m.env = Some(value),
                    _ => {}
                }
                continue;
            }
            let bad = |k: &str, v: &str| format!("invalid value for {k}: {v}");
            match key.as_str() {
                "type" => {
                    m.kind = match value.to_ascii_lowercase().as_str() {
                        "bind" => MountKind::Bind,
                        "cache" => MountKind::Cache,
                        "tmpfs" => MountKind::Tmpfs,
                        "secret" => MountKind::Secret,
                        "ssh" => MountKind::Ssh,
                        _ => {
                            return Err(suggest::wrap(
                                format!("unsupported mount type {}", go_quote(&value)),
                                &value,
                                &["bind", "cache", "tmpfs", "secret", "ssh"],
                                true,
                            ));
                        }
                    }
                }
                "from" => m.from = Some(value),
                "source" | "src" => m.source = Some(value),
                "target" | "dst" | "destination" => m.target = Some(value),
                "readonly" | "ro" => {
                    m.read_only = parse_go_bool(&value).ok_or_else(|| bad(&key, &value))?;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.read_only = !parse_go_bool(&value).ok_or_else(|| bad(&key, &value))?;
                    ro_auto = false;
                }
                "required" => {
                    if !matches!(m.kind, MountKind::Secret | MountKind::Ssh) {
                        return Err(format!("unexpected key '{key}' for mount type '{}'", m.kind.as_str()));
                    }
                    m.required = parse_go_bool(&value).ok_or_else(|| bad(&key, &value))?;
                }
                "size" => {
                    if m.kind != MountKind::Tmpfs {
                        return Err(format!("unexpected key '{key}' for mount type '{}'", m.kind.as_str()));
                    }
                    m.size_limit = Some(ram_in_bytes(&value).ok_or_else(|| bad(&key, &value))?);
                }
                "id" => m.id = Some(value),
                "sharing" => {
                    m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                        "shared" => Sharing::Shared,
                        "private" => Sharing::Private,
                        "locked" => Sharing::Locked,
                        _ => {
                            return Err(suggest::wrap(
                                format!("unsupported sharing value {}", go_quote(&value)),
                                &value,
                                &["shared", "private", "locked"],
                                true,
                            ));
                        }
                    })
                }
                "mode" => {
                    m.mode =
                        Some(u32::from_str_radix(&value, 8).map_err(|_| format!("invalid value {value} for mode"))?)
                }
                "uid" => m.uid = Some(value.parse().map_err(|_| format!("invalid value {value} for uid"))?),
                "gid" => m.gid = Some(value.parse().map_err(|_| format!("invalid value {value} for gid"))?),
                "env" => m.env = Some(value),
                _ => {
                    return Err(suggest::wrap(
                        format!("unexpected key '{key}' in '{field}'"),
                        &key,
                        &[
                            "type",
                            "from",
                            "source",
                            "target",
                            "readonly",
                            "id",
                            "sharing",
                            "required",
                            "size",
                            "mode",
                            "uid",
                            "gid",
                            "src",
                            "dst",
                            "destination",
                            "ro",
                            "rw",
                            "readwrite",
                            "env",
                        ],
                        true,
                    ));
                }
            }
        }
        let kind = m.kind.as_str();
        if !matches!(m.kind, MountKind::Secret | MountKind::Ssh | MountKind::Cache) {
            if m.mode.is_some() {
                return Err(format!("mode not allowed for {} type mounts", go_quote(kind)));
            }
            if m.uid.is_some() {
                return Err(format!("uid not allowed for {} type mounts", go_quote(kind)));
            }
            if m.gid.is_some() {
                return Err(format!("gid not allowed for {} type mounts", go_quote(kind)));
            }
        }
        if ro_auto {
            m.read_only = !matches!(m.kind, MountKind::Cache | MountKind::Tmpfs);
        }
        if deferred {
            return Ok(m);
        }
        if m.kind == MountKind::Secret {
            if m.from.is_some() {
                return Err("secret mount should not have a from".into());
            }
            if m.sharing.is_some() {
                return Err("secret mount should not define sharing".into());
            }
            if m.source.is_none() && m.target.is_none() && m.id.is_none() {
                return Err("invalid secret mount. one of source, target required".into());
            }
            if m.source.is_some() && m.id.is_some() {
                return Err("both source and id can't be set".into());
            }
        }
        if m.sharing.is_some() && m.kind != MountKind::Cache {
            return Err(format!("invalid cache sharing set for {kind} mount"));
        }
        Ok(m)
    }
}

/// One `RUN --device=` option (`name[,required]` or `name=…,required=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub required: bool,
}

impl Device {
    pub fn parse(spec: &str) -> Result<Device, String> {
        let fields = csv_fields(spec).map_err(|e| format!("failed to parse csv devices: {e}"))?;
        let mut d = Device { name: String::new(), required: false };
        for field in &fields {
            match field.split_once('=') {
                None => {
                    if field.eq_ignore_ascii_case("required") {
                        d.required = true;
                    } else if d.name.is_empty() {
                        d.name = field.clone();
                    } else {
                        return Err(format!("invalid field '{field}' must be a key=value pair"));
                    }
                }
                Some((k, v)) => match k.to_ascii_lowercase().as_str() {
                    "name" => {
                        if !d.name.is_empty() {
                            return Err(format!("device name already set to {}", d.name));
                        }
                        d.name = v.to_string();
                    }
                    "required" => {
                        d.required = parse_go_bool(v).ok_or_else(|| format!("invalid value for required: {v}"))?
                    }
                    key => {
                        if d.name.is_empty() {
                            d.name = field.clone();
                        } else {
                            return Err(suggest::wrap(
                                format!("unexpected key '{key}' in '{field}'"),
                                key,
                                &["name", "required"],
                                true,
                            ));
                        }
                    }
                },
            }
        }
        Ok(d)
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// docker/go-units `RAMInBytes`: `<number>[ ][kmgtp][i][b]`, binary multiples.
pub(crate) fn ram_in_bytes(s: &str) -> Option<i64> {
    let num_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, mut rest) = s.split_at(num_end);
    if num.is_empty() || !num.as_bytes()[0].is_ascii_digit() || num.ends_with('.') || num.contains("..") {
        return None;
    }
    let n: f64 = num.split('.').take(2).collect::<Vec<_>>().join(".").parse().ok()?;
    rest = rest.strip_prefix(' ').unwrap_or(rest);
    let mut chars = rest.chars().peekable();
    let mul: f64 = match chars.peek().map(|c| c.to_ascii_lowercase()) {
        Some('k') => 1024f64,
        Some('m') => 1024f64.powi(2),
        Some('g') => 1024f64.powi(3),
        Some('t') => 1024f64.powi(4),
        Some('p') => 1024f64.powi(5),
        _ => 1.0,
    };
    if mul > 1.0 {
        chars.next();
    }
    if matches!(chars.peek(), Some('i' | 'I')) {
        chars.next();
    }
    if matches!(chars.peek(), Some('b' | 'B')) {
        chars.next();
    }
    if chars.next().is_some() {
        return None;
    }
    Some((n * mul) as i64)
}

/// CSV fields of one record (`encoding/csv` rules: `"…"` quoting with `""` for a quote).
pub(crate) fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    loop {
        let mut field = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(format!(
                            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                            i + 1
                        ));
                    }
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        field.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        field.push(*c);
                        i += 1;
                    }
                }
            }
            match chars.get(i) {
                None | Some(',') => {}
                _ => {
                    return Err(format!(
                        "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                        i + 1
                    ));
                }
            }
        } else {
            while let Some(&c) = chars.get(i) {
                if c == ',' {
                    break;
                }
                if c == '"' {
                    return Err(format!("parse error on line 1, column {}: bare \" in non-quoted-field", i + 1));
                }
                field.push(c);
                i += 1;
            }
        }
        fields.push(field);
        if chars.get(i) == Some(&',') {
            i += 1;
            continue;
        }
        break;
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<RunMount, String> {
        RunMount::parse(s, None)
    }

    #[test]
    fn cache_mount() {
        let m = p("type=cache,target=/root/.cache/go-build,sharing=locked,id=gobuild").unwrap();
        assert_eq!(m.kind, MountKind::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache/go-build"));
        assert_eq!(m.sharing, Some(Sharing::Locked));
        assert_eq!(m.id.as_deref(), Some("gobuild"));
        assert!(!m.read_only);
    }

    #[test]
    fn bind_defaults_read_only() {
        let m = p("target=/src,from=builder,source=/out").unwrap();
        assert_eq!(m.kind, MountKind::Bind);
        assert!(m.read_only);
        let m = p("type=bind,target=/src,rw").unwrap();
        assert!(!m.read_only);
        let m = p("type=bind,target=/src,readwrite=true").unwrap();
        assert!(!m.read_only);
    }

    #[test]
    fn secret_and_ssh() {
        let m = p("type=secret,id=npmrc,target=/root/.npmrc,required,mode=0400,uid=1000").unwrap();
        assert!(m.required && m.read_only);
        assert_eq!(m.mode, Some(0o400));
        assert_eq!(m.uid, Some(1000));
        let m = p("type=ssh").unwrap();
        assert_eq!(m.kind, MountKind::Ssh);
        assert_eq!(p("type=secret").unwrap_err(), "invalid secret mount. one of source, target required");
        assert_eq!(p("type=secret,id=a,source=b").unwrap_err(), "both source and id can't be set");
        let m = p("type=secret,id=tok,env=TOKEN").unwrap();
        assert_eq!(m.env.as_deref(), Some("TOKEN"));
    }

    #[test]
    fn tmpfs_size() {
        let m = p("type=tmpfs,target=/tmp,size=64m").unwrap();
        assert_eq!(m.size_limit, Some(64 * 1024 * 1024));
        assert_eq!(p("type=bind,size=1m").unwrap_err(), "unexpected key 'size' for mount type 'bind'");
        assert_eq!(p("type=tmpfs,size=lots").unwrap_err(), "invalid value for size: lots");
    }

    #[test]
    fn errors() {
        assert_eq!(p("type=cahce").unwrap_err(), "unsupported mount type \"cahce\" (did you mean cache?)");
        assert_eq!(p("type=cache,sharing=nope").unwrap_err(), "unsupported sharing value \"nope\"");
        assert_eq!(p("type=bind,sharing=locked").unwrap_err(), "invalid cache sharing set for bind mount");
        assert_eq!(p("type=bind,mode=0755").unwrap_err(), "mode not allowed for \"bind\" type mounts");
        assert_eq!(
            p("type=cache,targte=/x").unwrap_err(),
            "unexpected key 'targte' in 'targte=/x' (did you mean target?)"
        );
        assert_eq!(p("type=cache,bogus").unwrap_err(), "invalid field 'bogus' must be a key=value pair");
        assert_eq!(p("type=bind,required").unwrap_err(), "unexpected key 'required' for mount type 'bind'");
        assert_eq!(
            p("from=$STAGE").unwrap_err(),
            "'from' doesn't support variable expansion, define alias stage instead"
        );
        assert_eq!(p("type=cache,mode=999").unwrap_err(), "invalid value 999 for mode");
    }

    #[test]
    fn variables_are_deferred_then_expanded() {
        let m = p("type=cache,id=$ID,target=/x,sharing=$S").unwrap();
        assert_eq!(m.id.as_deref(), Some("$ID"));
        assert_eq!(m.sharing, None);
        let exp = |s: &str| -> Result<String, String> { Ok(s.replace("$ID", "one").replace("$S", "private")) };
        let m = RunMount::parse(&m.spec, Some(&exp)).unwrap();
        assert_eq!(m.id.as_deref(), Some("one"));
        assert_eq!(m.sharing, Some(Sharing::Private));
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_fields("a,\"b,c\",d").unwrap(), vec!["a", "b,c", "d"]);
        assert_eq!(csv_fields("\"a\"\"b\"").unwrap(), vec!["a\"b"]);
        assert!(csv_fields("a\"b").is_err());
        let m = p("type=bind,\"target=/a,b\"").unwrap();
        assert_eq!(m.target.as_deref(), Some("/a,b"));
    }

    #[test]
    fn sizes() {
        assert_eq!(ram_in_bytes("1024"), Some(1024));
        assert_eq!(ram_in_bytes("1k"), Some(1024));
        assert_eq!(ram_in_bytes("1.5GiB"), Some(1_610_612_736));
        assert_eq!(ram_in_bytes("10 MB"), Some(10 * 1024 * 1024));
        assert_eq!(ram_in_bytes("x"), None);
        assert_eq!(ram_in_bytes("1x"), None);
    }

    #[test]
    fn devices() {
        assert_eq!(
            Device::parse("vendor.com/gpu=all,required").unwrap(),
            Device { name: "vendor.com/gpu=all".into(), required: true }
        );
        assert_eq!(Device::parse("name=/dev/fuse").unwrap().name, "/dev/fuse");
    }
}
