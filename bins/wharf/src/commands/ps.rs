//! `ps` / `container ls`: docker's container formatter — the default table
//! (`CONTAINER ID   IMAGE   COMMAND   CREATED   STATUS   PORTS   NAMES`), its truncation rules
//! (IDs to 12, the command quoted and cut to 20 with `…`, familiar image names), port ranges
//! collapsed (`0.0.0.0:8080-8081->80-81/tcp`), `--format` templates and `json`.

use std::collections::BTreeMap;

use bollard::query_parameters::ListContainersOptions;
use chrono::{Local, TimeZone};
use serde_json::{Value as Json, json};

use super::{Ctx, parse_filters};
use crate::api::Api;
use crate::cli_container::PsArgs;
use crate::client::CliError;
use crate::format::{self, Format, to_value};
use crate::{dockerconfig, opts, timefmt, units};
pub use wharf_types::gostr::quote as go_strconv_quote;

pub const DEFAULT_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

const RAW_FORMAT: &str = "container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\ncreated_at: {{.CreatedAt}}\nstate: {{- pad .State 1 0}}\nstatus: {{- pad .Status 1 0}}\nnames: {{.Names}}\nlabels: {{- pad .Labels 1 0}}\nports: {{- pad .Ports 1 0}}\n";

pub const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Names", "NAMES"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Networks", "NETWORKS"),
    ("Platform", "PLATFORM"),
    ("LabelMap", "LABEL"),
];

/// docker's `formatter.Ellipsis`: cut to `max` display columns, the last one being `…`.
pub fn ellipsis(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    let chars: Vec<char> = s.chars().collect();
    if max == 1 {
        return chars.first().map(|c| c.to_string()).unwrap_or_default();
    }
    let width = |c: char| if is_wide(c) { 2 } else { 1 };
    let total: usize = chars.iter().map(|c| width(*c)).sum();
    if total <= max {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in chars {
        if w + width(c) > max - 1 {
            break;
        }
        w += width(c);
        out.push(c);
    }
    out.push('…');
    out
}

/// East Asian wide and fullwidth characters take two columns.
fn is_wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6 | 0x1F300..=0x1F64F | 0x1F900..=0x1F9FF | 0x20000..=0x2FFFD | 0x30000..=0x3FFFD)
}

/// `stringid.TruncateID`: without `sha256:`, 12 characters.
pub fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map_or(id, |(_, r)| r);
    id.chars().take(12).collect()
}

/// One port as the list API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub ip: String,
    pub private: u16,
    pub public: u16,
    pub typ: String,
}

fn join_host_port(ip: &str, port: &str) -> String {
    if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }
}

/// `DisplayablePorts`: consecutive ports with the same IP/type grouped into ranges.
pub fn displayable_ports(ports: &[Port]) -> String {
    let mut ports = ports.to_vec();
    ports.sort_by(|a, b| (a.private, &a.ip, a.public, &a.typ).cmp(&(b.private, &b.ip, b.public, &b.typ)));
    let mut groups: BTreeMap<String, (u16, u16)> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut result = Vec::new();
    let mut host_mappings = Vec::new();
    for p in &ports {
        let current = p.private;
        let mut key = p.typ.clone();
        if !p.ip.is_empty() {
            if p.public != current {
                host_mappings.push(format!(
                    "{}->{}/{}",
                    join_host_port(&p.ip, &p.public.to_string()),
                    p.private,
                    p.typ
                ));
                continue;
            }
            key = format!("{}/{}", p.ip, p.typ);
        }
        match groups.get_mut(&key) {
            None => {
                groups.insert(key.clone(), (current, current));
                order.push(key);
            }
            Some(g) if current == g.1.wrapping_add(1) => g.1 = current,
            Some(g) => {
                result.push(form_group(&key, g.0, g.1));
                *g = (current, current);
            }
        }
    }
    for k in &order {
        let g = groups[k];
        result.push(form_group(k, g.0, g.1));
    }
    result.extend(host_mappings);
    result.join(", ")
}

fn form_group(key: &str, start: u16, last: u16) -> String {
    let (ip, typ) = match key.rsplit_once('/') {
        Some((ip, t)) => (ip, t),
        None => ("", key),
    };
    let mut group = start.to_string();
    if start != last {
        group = format!("{group}-{last}");
    }
    if !ip.is_empty() {
        group = format!("{}->{group}", join_host_port(ip, &group));
    }
    format!("{group}/{typ}")
}

fn ports_of(c: &Json) -> Vec<Port> {
    c.get("Ports")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .map(|p| Port {
                    ip: p.get("IP").and_then(Json::as_str).unwrap_or("").to_owned(),
                    private: p.get("PrivatePort").and_then(Json::as_u64).unwrap_or(0) as u16,
                    public: p.get("PublicPort").and_then(Json::as_u64).unwrap_or(0) as u16,
                    typ: p.get("Type").and_then(Json::as_str).unwrap_or("").to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Go's `time.Time.String()` in local time: `2026-11-23 02:22:03 +0000 UTC`.
pub fn go_time_string(secs: i64) -> String {
    let Some(t) = Local.timestamp_opt(secs, 0).single() else {
        return String::new();
    };
    let off = t.format("%z").to_string();
    let zone = if off == "+0000" { "UTC".to_owned() } else { off.clone() };
    format!("{} {off} {zone}", t.format("%Y-%m-%d %H:%M:%S"))
}

/// The image column: familiar `name:tag` when truncating, the short ID for ID-only images.
fn image_column(image: &str, image_id: &str, trunc: bool) -> String {
    if image.is_empty() {
        return "<no image>".into();
    }
    if trunc {
        if truncate_id(image_id) == truncate_id(image) {
            return truncate_id(image);
        }
        if let Ok(r) = wharf_types::Reference::parse_normalized(image) {
            return match r.tag() {
                Some(t) => format!("{}:{t}", r.familiar_name()),
                None => r.familiar_name(),
            };
        }
    }
    image.to_owned()
}

/// The template context of one container (docker's `ContainerContext`), as JSON with the
/// keys docker's `--format json` prints.
pub fn container_context(c: &Json, trunc: bool, now: i64) -> Json {
    let s = |k: &str| c.get(k).and_then(Json::as_str).unwrap_or("").to_owned();
    let id = s("Id");
    let names: Vec<String> = c
        .get("Names")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_str).map(|n| n.get(1..).unwrap_or("").to_owned()).collect())
        .unwrap_or_default();
    let mut shown = names.clone();
    if trunc && let Some(n) = names.iter().find(|n| !n.contains('/')) {
        shown = vec![n.clone()];
    }
    let command = s("Command");
    let command = go_strconv_quote(&if trunc { ellipsis(&command, 20) } else { command });
    let created = c.get("Created").and_then(Json::as_i64).unwrap_or(0);
    let size_rw = c.get("SizeRw").and_then(Json::as_i64).unwrap_or(0);
    let size_root = c.get("SizeRootFs").and_then(Json::as_i64).unwrap_or(0);
    let mut size = units::human_size_precision(size_rw as f64, 3);
    if size_root > 0 {
        size = format!("{size} (virtual {})", units::human_size_precision(size_root as f64, 3));
    }
    let label_map = c.get("Labels").cloned().unwrap_or(Json::Null);
    let mut labels: Vec<String> = label_map
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    labels.sort();
    let mounts = c.get("Mounts").and_then(Json::as_array);
    let mount_names: Vec<String> = mounts
        .map(|a| {
            a.iter()
                .map(|m| {
                    let name = m.get("Name").and_then(Json::as_str).unwrap_or("");
                    let name =
                        if name.is_empty() { m.get("Source").and_then(Json::as_str).unwrap_or("") } else { name };
                    if trunc { ellipsis(name, 15) } else { name.to_owned() }
                })
                .collect()
        })
        .unwrap_or_default();
    let local_volumes =
        mounts.map_or(0, |a| a.iter().filter(|m| m.get("Driver").and_then(Json::as_str) == Some("local")).count());
    let mut networks: Vec<String> = c
        .pointer("/NetworkSettings/Networks")
        .and_then(Json::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    networks.sort();
    let platform = c
        .pointer("/ImageManifestDescriptor/platform")
        .filter(|p| p.is_object())
        .map(|p| {
            let g = |k: &str| p.get(k).and_then(Json::as_str).unwrap_or("");
            let mut s = format!("{}/{}", g("os"), g("architecture"));
            if !g("variant").is_empty() {
                s = format!("{s}/{}", g("variant"));
            }
            Json::String(s)
        })
        .unwrap_or(Json::Null);
    json!({
        "Command": command,
        "CreatedAt": go_time_string(created),
        "ID": if trunc { truncate_id(&id) } else { id },
        "Image": image_column(&s("Image"), &s("ImageID"), trunc),
        "Labels": labels.join(","),
        "LocalVolumes": local_volumes.to_string(),
        "Mounts": mount_names.join(","),
        "Names": shown.join(","),
        "Networks": networks.join(","),
        "Platform": platform,
        "Ports": displayable_ports(&ports_of(c)),
        "RunningFor": format!("{} ago", timefmt::human_duration(now - created)),
        "Size": size,
        "State": s("State"),
        "Status": s("Status"),
    })
}

/// Template context value: the JSON keys plus `LabelMap` for `.Label "key"`.
fn context_value(ctx: &Json, labels: &Json) -> gtmpl::Value {
    let mut v = to_value(ctx, &[]);
    if let gtmpl::Value::Object(m) = &mut v {
        m.insert("LabelMap".into(), to_value(labels, &[]));
    }
    v
}

/// The keys a template asks for with `.Label "key"`: a missing label reads as "" (Go's map
/// index), so they are put in every row's `LabelMap`.
pub(crate) fn label_keys(t: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find(".Label ") {
        rest = rest[i + ".Label ".len()..].trim_start();
        if let Some(body) = rest.strip_prefix('"')
            && let Some(end) = body.find('"')
        {
            keys.push(body[..end].to_owned());
        }
    }
    keys
}

/// docker's `.Label "key"` method becomes an `index` on the labels map.
pub fn rewrite_label_calls(t: &str) -> String {
    rewrite_labels(t, false)
}

/// For the table header: `.Label "com.x.foo_bar"` is the title `foo bar` (docker's
/// `HeaderContext.Label`).
pub(crate) fn label_headers(t: &str) -> String {
    rewrite_labels(t, true)
}

fn rewrite_labels(t: &str, header: bool) -> String {
    let mut out = String::new();
    let mut rest = t;
    while let Some(i) = rest.find(".Label ") {
        let before = &rest[..i];
        let prev_ok = before.chars().last().is_none_or(|c| !(c.is_alphanumeric() || c == '.' || c == '_'));
        out.push_str(before);
        rest = &rest[i + ".Label ".len()..];
        if !prev_ok {
            out.push_str(".Label ");
            continue;
        }
        if !header {
            out.push_str("index .LabelMap ");
            continue;
        }
        // the quoted key that follows
        let trimmed = rest.trim_start();
        let skipped = rest.len() - trimmed.len();
        if let Some(body) = trimmed.strip_prefix('"')
            && let Some(end) = body.find('"')
        {
            let key = &body[..end];
            let last = key.rsplit('.').next().unwrap_or(key);
            let title = last.replace(['-', '_'], " ");
            out.push_str(&format!("{:?}", title));
            rest = &rest[skipped + 1 + end + 1..];
        } else {
            out.push_str("index .LabelMap ");
        }
    }
    out.push_str(rest);
    out
}

/// Renders containers as `ps` does (`format`: the user's or config.json's `psFormat`).
pub fn render(
    containers: &[Json],
    format: &str,
    quiet: bool,
    size: bool,
    trunc: bool,
    now: i64,
) -> Result<String, CliError> {
    let fmt_text: String = match format {
        "" | "table" if quiet => "{{.ID}}".into(),
        "" | "table" => {
            if size {
                format!("{DEFAULT_TABLE}\t{{{{.Size}}}}")
            } else {
                DEFAULT_TABLE.into()
            }
        }
        "raw" if quiet => "container_id: {{.ID}}".into(),
        "raw" => {
            if size {
                format!("{RAW_FORMAT}size: {{{{.Size}}}}\\n")
            } else {
                RAW_FORMAT.into()
            }
        }
        _ if quiet => "{{.ID}}".into(),
        other => rewrite_label_calls(other),
    };
    let rows: Vec<gtmpl::Value> = containers
        .iter()
        .map(|c| context_value(&container_context(c, trunc, now), c.get("Labels").unwrap_or(&Json::Null)))
        .collect();
    let user_table = format.trim_start().strip_prefix("table");
    if let Some(user_body) = user_table
        && !quiet
        && format.contains(".Label ")
    {
        // the header line needs docker's titles for `.Label "key"`
        let body = rewrite_label_calls(user_body.trim_start());
        let header = label_headers(user_body.trim_start());
        return format::render_table_with(&body, &header, &rows, HEADERS).map_err(CliError::from);
    }
    let f = if fmt_text.trim_start().starts_with("table") {
        Format::new(Some(&fmt_text), DEFAULT_TABLE)
    } else if fmt_text == "json" {
        Format::Json
    } else {
        Format::Raw(&fmt_text)
    };
    let out = match f {
        Format::Json => {
            // docker marshals the context's methods: keys sorted, LabelMap not included
            let mut s = String::new();
            for c in containers {
                s.push_str(&format::go_json_escaped(&container_context(c, trunc, now)));
                s.push('\n');
            }
            s
        }
        f => format::render_rows(f, &rows, HEADERS).map_err(CliError::from)?,
    };
    Ok(out)
}

/// Whether a template reads `.Size` (then `ps` asks the daemon for sizes).
fn uses_size(format: &str) -> bool {
    format.contains(".Size")
}

pub async fn ps(ctx: &Ctx, args: PsArgs) -> Result<(), CliError> {
    let cfg = dockerconfig::load();
    let mut format = args.format.clone().unwrap_or_default();
    if format.is_empty() {
        format = cfg.ps_format.clone();
    } else if args.quiet {
        eprintln!("WARNING: Ignoring custom format, because both --format and --quiet are set.");
    }
    let mut size = match &args.size {
        None => false,
        Some(v) => opts::go_parse_bool(v)
            .map_err(|e| CliError::Usage(format!("invalid argument \"{v}\" for \"-s, --size\" flag: {e}")))?,
    };
    let mut last = match &args.last {
        None => -1,
        Some(v) => opts::go_parse_int(v, 64)
            .map_err(|e| CliError::Usage(format!("invalid argument \"{v}\" for \"-n, --last\" flag: {e}")))?,
    };
    if args.latest && last == -1 {
        last = 1;
    }
    let filters = parse_filters(&args.filter)?;
    if !format.is_empty() && !args.quiet && !size && args.size.is_none() && uses_size(&format) {
        size = true;
    }
    if !format.is_empty() && !matches!(format.as_str(), "table" | "json" | "raw") {
        crate::format::Tmpl::parse(&rewrite_label_calls(format.strip_prefix("table").unwrap_or(&format)))
            .map_err(|e| CliError::Other(format!("failed to parse template: {e}")))?;
    }
    let api = Api::connect(ctx).await?;
    let list = api
        .docker
        .list_containers(Some(ListContainersOptions {
            all: args.all,
            limit: (last > 0).then_some(last as i32),
            size,
            filters: (!filters.is_empty()).then_some(filters),
        }))
        .await
        .map_err(|e| api.err(e))?;
    let containers: Vec<Json> = list.iter().map(|c| serde_json::to_value(c).unwrap_or(Json::Null)).collect();
    let out = render(&containers, &format, args.quiet, size, !args.no_trunc, chrono::Utc::now().timestamp())?;
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ip: &str, private: u16, public: u16, typ: &str) -> Port {
        Port { ip: ip.into(), private, public, typ: typ.into() }
    }

    #[test]
    fn ports_like_docker() {
        assert_eq!(
            displayable_ports(&[p("0.0.0.0", 80, 8080, "tcp"), p("::", 80, 8080, "tcp"),]),
            "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
        );
        assert_eq!(
            displayable_ports(&[p("", 80, 0, "tcp"), p("", 81, 0, "tcp"), p("", 83, 0, "tcp")]),
            "80-81/tcp, 83/tcp"
        );
        assert_eq!(
            displayable_ports(
                &[p("0.0.0.0", 9000, 9000, "tcp"), p("0.0.0.0", 9001, 9001, "tcp"), p("", 53, 0, "udp"),]
            ),
            "53/udp, 0.0.0.0:9000-9001->9000-9001/tcp"
        );
        assert_eq!(displayable_ports(&[]), "");
    }

    #[test]
    fn truncation() {
        assert_eq!(ellipsis("sh -c 'while true; do sleep 1; done'", 20), "sh -c 'while true; …");
        assert_eq!(ellipsis("short", 20), "short");
        assert_eq!(ellipsis("日本語のコマンド", 7), "日本語…");
        assert_eq!(go_strconv_quote("a\"b\tc"), "\"a\\\"b\\tc\"");
        assert_eq!(truncate_id("sha256:0123456789abcdef"), "0123456789ab");
    }

    fn sample() -> Json {
        json!({
            "Id": "4f66ad9a0b2e8f27c6b9c7f8c6d0f4b2a1c3e5d7f9a8b6c4d2e0f1a3b5c7d9e1",
            "Names": ["/web", "/other/alias"],
            "Image": "docker.io/library/nginx:latest",
            "ImageID": "sha256:aaaaaaaaaaaabbbb",
            "Command": "/docker-entrypoint.sh nginx -g 'daemon off;'",
            "Created": 1_000_000,
            "Ports": [{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},{"IP":"::","PrivatePort":80,"PublicPort":8080,"Type":"tcp"}],
            "Labels": {"b":"2","a":"1"},
            "State": "running",
            "Status": "Up 5 minutes",
            "SizeRw": 2048,
            "SizeRootFs": 187_000_000,
            "Mounts": [{"Name":"averyveryverylongvolumename","Driver":"local"},{"Source":"/host/path","Driver":""}],
            "NetworkSettings": {"Networks": {"bridge": {}}},
        })
    }

    #[test]
    fn default_table() {
        let out = render(&[sample()], "", false, false, true, 1_000_300).unwrap();
        let want = "CONTAINER ID   IMAGE          COMMAND                  CREATED         STATUS         PORTS                                     NAMES\n\
                    4f66ad9a0b2e   nginx:latest   \"/docker-entrypoint.…\"   5 minutes ago   Up 5 minutes   0.0.0.0:8080->80/tcp, [::]:8080->80/tcp   web\n";
        assert_eq!(out, want);
        let quiet = render(&[sample()], "", true, false, true, 0).unwrap();
        assert_eq!(quiet, "4f66ad9a0b2e\n");
        let no_trunc = render(&[sample()], "{{.ID}} {{.Names}} {{.Image}}", false, false, false, 0).unwrap();
        assert_eq!(
            no_trunc,
            "4f66ad9a0b2e8f27c6b9c7f8c6d0f4b2a1c3e5d7f9a8b6c4d2e0f1a3b5c7d9e1 web,other/alias docker.io/library/nginx:latest\n"
        );
    }

    #[test]
    fn size_and_templates() {
        let out = render(&[sample()], "table {{.Names}}\t{{.Size}}", false, true, true, 0).unwrap();
        assert_eq!(out, "NAMES     SIZE\nweb       2.05kB (virtual 187MB)\n");
        let out = render(
            &[sample()],
            "{{.Labels}}|{{.Label \"b\"}}|{{.Mounts}}|{{.LocalVolumes}}|{{.Networks}}",
            false,
            false,
            true,
            0,
        )
        .unwrap();
        assert_eq!(out, "a=1,b=2|2|averyveryveryl…,/host/path|1|bridge\n");
    }

    #[test]
    fn json_format_keys() {
        let out = render(&[sample()], "json", false, false, true, 1_000_300).unwrap();
        let v: Json = serde_json::from_str(out.trim()).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            vec![
                "Command",
                "CreatedAt",
                "ID",
                "Image",
                "Labels",
                "LocalVolumes",
                "Mounts",
                "Names",
                "Networks",
                "Platform",
                "Ports",
                "RunningFor",
                "Size",
                "State",
                "Status"
            ]
        );
        assert_eq!(v["Command"], "\"/docker-entrypoint.…\"");
    }

    #[test]
    fn image_column_rules() {
        assert_eq!(image_column("busybox", "sha256:1234", true), "busybox");
        assert_eq!(image_column("sha256:aaaaaaaaaaaa1111", "sha256:aaaaaaaaaaaa1111", true), "aaaaaaaaaaaa");
        assert_eq!(image_column("localhost:5000/x/y:v1", "sha256:1", true), "localhost:5000/x/y:v1");
        assert_eq!(image_column("", "", true), "<no image>");
    }
}
