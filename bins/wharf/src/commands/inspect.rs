//! `inspect` (typeless: container, image, network, volume, then plugin; swarm types only when
//! the daemon is a swarm manager) and `container inspect`. Without `--format` the daemon's JSON
//! is printed as an array indented by four spaces, in the daemon's key order; `json` prints it
//! compact; templates see Go field names (`.ID` as well as `.Id`).

use http::Method;

use super::Ctx;
use crate::api::Api;
use crate::cli_container::{ContainerInspectArgs, InspectArgs};
use crate::client::CliError;
use crate::format::{Tmpl, raw_value};

const ALL_TYPES: &[&str] =
    &["config", "container", "image", "network", "node", "plugin", "secret", "service", "task", "volume"];

/// Go's `json.Indent(dst, src, prefix, indent)`.
pub fn indent_json(src: &[u8], indent: &str) -> String {
    let mut out = String::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut in_str = false;
    let mut esc = false;
    let mut need_indent = false; // just opened a container
    let text = String::from_utf8_lossy(src);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(indent);
        }
    };
    for c in text.trim_start().chars() {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if need_indent && c != ']' && c != '}' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                need_indent = true;
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            '}' | ']' => {
                if need_indent {
                    // empty container stays compact
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `json.Compact`.
pub fn compact_json(src: &[u8]) -> String {
    let mut out = String::with_capacity(src.len());
    let mut in_str = false;
    let mut esc = false;
    for c in String::from_utf8_lossy(src).chars() {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == '"' {
            in_str = true;
        }
        out.push(c);
    }
    out
}

/// Go names for fields whose JSON keys differ (`{{.ID}}`, `{{.HostConfig.CPUShares}}`).
const ALIASES: &[(&str, &str, &str)] = &[
    ("", "Id", "ID"),
    ("HostConfig", "CpuShares", "CPUShares"),
    ("HostConfig", "NanoCpus", "NanoCPUs"),
    ("HostConfig", "CpuPeriod", "CPUPeriod"),
    ("HostConfig", "CpuQuota", "CPUQuota"),
    ("HostConfig", "CpuRealtimePeriod", "CPURealtimePeriod"),
    ("HostConfig", "CpuRealtimeRuntime", "CPURealtimeRuntime"),
    ("HostConfig", "CpuCount", "CPUCount"),
    ("HostConfig", "CpuPercent", "CPUPercent"),
    ("HostConfig", "Dns", "DNS"),
    ("HostConfig", "DnsOptions", "DNSOptions"),
    ("HostConfig", "DnsSearch", "DNSSearch"),
];

/// A template context for an inspected object (its JSON text), with Go's field names added.
pub fn inspect_value(raw: &str) -> Option<gtmpl::Value> {
    let mut v = raw_value(raw)?;
    for (parent, from, to) in ALIASES {
        let target = if parent.is_empty() {
            Some(&mut v)
        } else if let gtmpl::Value::Object(m) = &mut v {
            m.get_mut(*parent)
        } else {
            None
        };
        if let Some(gtmpl::Value::Object(m)) = target
            && let Some(x) = m.get(*from).cloned()
        {
            m.entry((*to).to_owned()).or_insert(x);
        }
    }
    Some(v)
}

enum Output {
    Indented,
    Compact,
    Template(Tmpl),
}

/// Collects inspected objects and prints them as docker's inspectors do.
struct Inspector {
    out: Output,
    raws: Vec<Vec<u8>>,
    text: String,
}

impl Inspector {
    fn new(format: Option<&str>) -> Result<Self, CliError> {
        let out = match format {
            None | Some("") => Output::Indented,
            Some("json") => Output::Compact,
            Some(t) => Output::Template(Tmpl::parse(t).map_err(|e| crate::commands::run::fail(&format!("{e:#}"), 64))?),
        };
        Ok(Self { out, raws: Vec::new(), text: String::new() })
    }

    fn add(&mut self, raw: Vec<u8>) -> Result<(), String> {
        match &self.out {
            Output::Template(t) => {
                let text = String::from_utf8_lossy(&raw);
                let value = inspect_value(&text)
                    .ok_or_else(|| "unable to read inspect data: invalid character in JSON".to_owned())?;
                let s = t.render(&value).map_err(|e| format!("template parsing error: {e:#}"))?;
                self.text.push_str(&s);
                self.text.push('\n');
            }
            _ => self.raws.push(raw),
        }
        Ok(())
    }

    fn flush(&self) {
        match &self.out {
            Output::Template(_) => {
                if self.text.is_empty() {
                    println!();
                } else {
                    print!("{}", self.text);
                }
            }
            out => {
                if self.raws.is_empty() {
                    println!("[]");
                    return;
                }
                let mut joined = b"[".to_vec();
                for (i, r) in self.raws.iter().enumerate() {
                    if i > 0 {
                        joined.push(b',');
                    }
                    joined.extend_from_slice(r);
                }
                joined.push(b']');
                match out {
                    Output::Compact => println!("{}", compact_json(&joined)),
                    _ => println!("{}", indent_json(&joined, "    ")),
                }
            }
        }
    }
}

fn finish(ins: Inspector, errs: Vec<String>) -> Result<(), CliError> {
    ins.flush();
    if errs.is_empty() { Ok(()) } else { Err(CliError::Other(errs.join("\n"))) }
}

fn escape_path(s: &str) -> String {
    s.replace('%', "%25").replace('?', "%3F").replace('#', "%23").replace(' ', "%20")
}

pub async fn container_inspect(ctx: &Ctx, args: ContainerInspectArgs) -> Result<(), CliError> {
    let mut ins = Inspector::new(args.format.as_deref())?;
    let api = Api::connect(ctx).await?;
    let mut errs = Vec::new();
    for c in &args.containers {
        let path = format!("/containers/{}/json{}", escape_path(c), if args.size { "?size=1" } else { "" });
        match api.raw.bytes(Method::GET, &path).await {
            Ok((_, body)) => {
                if let Err(e) = ins.add(body.to_vec()) {
                    errs.push(e);
                }
            }
            Err(e) => errs.push(e.to_string()),
        }
    }
    finish(ins, errs)
}

/// `network inspect`: each network as the daemon returns it (`?verbose=true` with `-v`).
pub async fn network_inspect(
    ctx: &Ctx,
    format: Option<&str>,
    networks: &[String],
    verbose: bool,
) -> Result<(), CliError> {
    let mut ins = Inspector::new(format)?;
    let api = Api::connect(ctx).await?;
    let mut errs = Vec::new();
    for n in networks {
        let path = format!("/networks/{}{}", escape_path(n), if verbose { "?verbose=true" } else { "" });
        match api.raw.bytes(Method::GET, &path).await {
            Ok((_, body)) => {
                if let Err(e) = ins.add(body.to_vec()) {
                    errs.push(e);
                }
            }
            Err(e) => errs.push(e.to_string()),
        }
    }
    finish(ins, errs)
}

fn skippable(e: &CliError) -> bool {
    let s = e.to_string();
    matches!(e, CliError::Daemon { status: 404, .. })
        || s.contains("not supported")
        || s.contains("invalid reference format")
}

pub async fn inspect(ctx: &Ctx, args: InspectArgs) -> Result<(), CliError> {
    let typ = args.typ.clone();
    if let Some(t) = &typ {
        if t.is_empty() {
            return Err(CliError::Other(format!("type is empty: must be one of \"{}\"", ALL_TYPES.join("\", \""))));
        }
        if !ALL_TYPES.contains(&t.as_str()) {
            return Err(CliError::Other(format!(
                "unknown type: \"{t}\": must be one of \"{}\"",
                ALL_TYPES.join("\", \"")
            )));
        }
    }
    let mut ins = Inspector::new(args.format.as_deref())?;
    let api = Api::connect(ctx).await?;
    let mut swarm: Option<bool> = None;
    let mut errs = Vec::new();
    // (type, size supported, swarm object, path)
    type Kind = (&'static str, bool, bool, fn(&str, bool) -> String);
    let kinds: [Kind; 10] = [
        ("container", true, false, |r, s| format!("/containers/{r}/json{}", if s { "?size=1" } else { "" })),
        ("image", false, false, |r, _| format!("/images/{r}/json")),
        ("network", false, false, |r, _| format!("/networks/{r}")),
        ("volume", false, false, |r, _| format!("/volumes/{r}")),
        ("service", false, true, |r, _| format!("/services/{r}?insertDefaults=1")),
        ("task", false, true, |r, _| format!("/tasks/{r}")),
        ("node", false, true, |r, _| format!("/nodes/{r}")),
        ("plugin", false, false, |r, _| format!("/plugins/{r}/json")),
        ("secret", false, true, |r, _| format!("/secrets/{r}")),
        ("config", false, true, |r, _| format!("/configs/{r}")),
    ];
    'refs: for name in &args.names {
        let r = escape_path(name);
        for (kind, size_ok, is_swarm, path) in &kinds {
            if let Some(t) = &typ
                && t != kind
            {
                continue;
            }
            if typ.is_none() && *is_swarm {
                if swarm.is_none() {
                    swarm = Some(match api.docker.info().await {
                        Ok(i) => i.swarm.and_then(|s| s.control_available).unwrap_or(false),
                        Err(e) => {
                            eprintln!("{}", api.err(e));
                            false
                        }
                    });
                }
                if swarm == Some(false) {
                    continue;
                }
            }
            match api.raw.bytes(Method::GET, &path(&r, args.size)).await {
                Ok((_, body)) => {
                    if args.size && !size_ok {
                        eprintln!("WARNING: --size ignored for {kind}");
                    }
                    if let Err(e) = ins.add(body.to_vec()) {
                        errs.push(e);
                    }
                    continue 'refs;
                }
                Err(e) if typ.is_none() && skippable(&e) => continue,
                Err(e) => {
                    errs.push(e.to_string());
                    continue 'refs;
                }
            }
        }
        errs.push(format!("Error: No such object: {name}"));
    }
    finish(ins, errs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indent_like_go() {
        let raw =
            br#"[{"Id":"abc","Args":[],"State":{"Running":true,"Pid":12},"Name":"/x y","Empty":{},"Esc":"a\"{,}"}]"#;
        assert_eq!(
            indent_json(raw, "    "),
            "[\n    {\n        \"Id\": \"abc\",\n        \"Args\": [],\n        \"State\": {\n            \"Running\": true,\n            \"Pid\": 12\n        },\n        \"Name\": \"/x y\",\n        \"Empty\": {},\n        \"Esc\": \"a\\\"{,}\"\n    }\n]"
        );
        assert_eq!(compact_json(b"[ {\"a\" : \"b c\" } ]"), "[{\"a\":\"b c\"}]");
    }

    #[test]
    fn go_field_names() {
        let v =
            inspect_value(r#"{"Id":"abc","State":{"Running":true},"HostConfig":{"CpuShares":512,"Dns":["1.1.1.1"]}}"#)
                .unwrap();
        let t = Tmpl::parse(
            "{{.ID}} {{.Id}} {{.State.Running}} {{.HostConfig.CPUShares}} {{index .HostConfig.DNS 0}} {{json .State}}",
        )
        .unwrap();
        assert_eq!(t.render(&v).unwrap(), "abc abc true 512 1.1.1.1 {\"Running\":true}");
    }
}
