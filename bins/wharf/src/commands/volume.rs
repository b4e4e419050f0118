//! `volume create|inspect|ls|prune|rm`, with docker's flags, tables and messages.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use bollard::models::{Volume, VolumeCreateRequest};
use bollard::query_parameters::{ListVolumesOptions, PruneVolumesOptions, RemoveVolumeOptions};
use serde_json::{Value as Json, json};

use super::{Ctx, parse_filters};
use crate::cli::{VolumeCreateArgs, VolumeInspectArgs, VolumeLsArgs, VolumePruneArgs, VolumeRmArgs};
use crate::client::{CliError, CliResult};
use crate::format::{self, Format, Tmpl, to_value};

/// docker's `key=value` list flags (`--label`, `--opt`): a bare key has an empty value.
pub(crate) fn key_values(items: &[String]) -> HashMap<String, String> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.clone(), String::new()),
        })
        .collect()
}

pub async fn create(ctx: &Ctx, args: VolumeCreateArgs) -> Result<(), CliError> {
    let name = match (args.name, args.volume) {
        (Some(n), Some(v)) if n != v => {
            return Err(CliError::Other(
                "conflicting options: cannot specify a volume-name through both --name and as a positional arg".into(),
            ));
        }
        (n, v) => n.or(v).unwrap_or_default(),
    };
    let req = VolumeCreateRequest {
        name: Some(name),
        driver: Some(args.driver),
        driver_opts: Some(key_values(&args.opt)),
        labels: Some(key_values(&args.label)),
        cluster_volume_spec: None,
    };
    let vol = ctx.docker.create_volume(req).await.cli(&ctx.host)?;
    println!("{}", vol.name);
    Ok(())
}

/// A volume as docker's CLI prints it: the daemon's fields in its (alphabetical) key order,
/// `Options` null when there are none.
fn volume_json(v: &Volume) -> Json {
    let mut doc = serde_json::to_value(v).unwrap_or(Json::Null);
    if let Some(obj) = doc.as_object_mut()
        && obj.get("Options").and_then(Json::as_object).is_some_and(|m| m.is_empty())
    {
        obj.insert("Options".into(), Json::Null);
    }
    doc
}

/// Go's `json.MarshalIndent(v, "", "    ")`, with Go's HTML escaping.
fn indented(v: &Json) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&buf).replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

pub async fn inspect(ctx: &Ctx, args: VolumeInspectArgs) -> Result<(), CliError> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &args.volumes {
        match ctx.docker.inspect_volume(name).await.cli(&ctx.host) {
            Ok(v) => found.push(volume_json(&v)),
            Err(e) => errors.push(e.to_string()),
        }
    }
    match args.format.as_deref() {
        None | Some("") => println!("{}", indented(&Json::Array(found))),
        Some("json") => println!("{}", format::go_json(&Json::Array(found))),
        Some(t) => {
            let tmpl = Tmpl::parse(t)?;
            for v in &found {
                println!("{}", tmpl.render(&to_value(v, &[]))?);
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(CliError::Other(errors.join("\n"))) }
}

/// go-units `HumanSize`: decimal units, four significant digits (`1.234kB`, `0B`).
pub fn human_size(n: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    // `%.4g` for values below 1000: four significant digits, trailing zeros dropped.
    let digits = if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s };
    format!("{s}{}", units[i])
}

/// The fields docker's volume formatter offers (`{{json .}}` prints them all).
fn row(v: &Volume) -> Json {
    let mut labels: Vec<String> = v.labels.iter().map(|(k, val)| format!("{k}={val}")).collect();
    labels.sort();
    let (links, size) = match &v.usage_data {
        Some(u) => (u.ref_count.to_string(), human_size(u.size)),
        None => ("N/A".to_owned(), "N/A".to_owned()),
    };
    json!({
        "Availability": "N/A",
        "Driver": v.driver,
        "Group": "N/A",
        "Labels": labels.join(","),
        "Links": links,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Scope": v.scope.map(|s| s.to_string()).unwrap_or_default(),
        "Size": size,
        "Status": "N/A",
    })
}

const LS_HEADERS: &[(&str, &str)] = &[
    ("Name", "VOLUME NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Labels", "LABELS"),
    ("Links", "LINKS"),
    ("Size", "SIZE"),
    ("Group", "GROUP"),
    ("Availability", "AVAILABILITY"),
    ("Status", "STATUS"),
];

pub async fn ls(ctx: &Ctx, args: VolumeLsArgs) -> Result<(), CliError> {
    let filters = parse_filters(&args.filter)?;
    let opts = ListVolumesOptions { filters: (!filters.is_empty()).then_some(filters) };
    let resp = ctx.docker.list_volumes(Some(opts)).await.cli(&ctx.host)?;
    let mut volumes = resp.volumes.unwrap_or_default();
    volumes.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    for w in resp.warnings.iter().flatten() {
        eprintln!("{w}");
    }
    let rows: Vec<_> = volumes.iter().map(|v| to_value(&row(v), &[])).collect();
    let format = if args.quiet && args.format.as_deref().is_none_or(|f| f.is_empty() || f == "table") {
        Format::Raw("{{.Name}}")
    } else {
        Format::new(args.format.as_deref(), "table {{.Driver}}\t{{.Name}}")
    };
    format::print_rows(format, &rows, LS_HEADERS)?;
    Ok(())
}

/// The docker CLI's natural sort (`sortorder.NaturalLess`): digit runs compare as numbers.
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    while !x.is_empty() && !y.is_empty() {
        if x[0].is_ascii_digit() && y[0].is_ascii_digit() {
            let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
            let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
            let (dx, dy) = (&x[..nx], &y[..ny]);
            let tx = dx.iter().skip_while(|c| **c == b'0').count();
            let ty = dy.iter().skip_while(|c| **c == b'0').count();
            let ord = tx.cmp(&ty).then_with(|| dx[nx - tx..].cmp(&dy[ny - ty..])).then_with(|| nx.cmp(&ny));
            if ord.is_ne() {
                return ord;
            }
            x = &x[nx..];
            y = &y[ny..];
        } else {
            if x[0] != y[0] {
                return x[0].cmp(&y[0]);
            }
            x = &x[1..];
            y = &y[1..];
        }
    }
    x.len().cmp(&y.len())
}

const PRUNE_WARNING: &str = "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue?";
const PRUNE_ALL_WARNING: &str = "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue?";

/// docker's `prompt.Confirm`: `<message> [y/N] `, yes only for `y`/`Y`.
fn confirm(message: &str) -> bool {
    print!("{message} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y")
}

pub async fn prune(ctx: &Ctx, args: VolumePruneArgs) -> Result<(), CliError> {
    let mut filters = parse_filters(&args.filter)?;
    if args.all {
        filters.entry("all".into()).or_default().push("true".into());
    }
    if !args.force && !confirm(if args.all { PRUNE_ALL_WARNING } else { PRUNE_WARNING }) {
        return Ok(());
    }
    let opts = PruneVolumesOptions { filters: (!filters.is_empty()).then_some(filters) };
    let report = ctx.docker.prune_volumes(Some(opts)).await.cli(&ctx.host)?;
    let deleted = report.volumes_deleted.unwrap_or_default();
    let mut reclaimed = 0;
    if !deleted.is_empty() {
        println!("Deleted Volumes:");
        for name in &deleted {
            println!("{name}");
        }
        println!();
        reclaimed = report.space_reclaimed.unwrap_or(0);
    }
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(())
}

pub async fn rm(ctx: &Ctx, args: VolumeRmArgs) -> Result<(), CliError> {
    let mut errors = Vec::new();
    for name in &args.volumes {
        match ctx.docker.remove_volume(name, Some(RemoveVolumeOptions { force: args.force })).await.cli(&ctx.host) {
            Ok(()) => println!("{name}"),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(CliError::Other(errors.join("\n"))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1234), "1.234kB");
        assert_eq!(human_size(12_345_678), "12.35MB");
        assert_eq!(human_size(123_456_789), "123.5MB");
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["vol10", "vol2", "a", "vol1", "B"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["B", "a", "vol1", "vol2", "vol10"]);
    }

    #[test]
    fn rows_and_inspect_shapes() {
        let v: Volume = serde_json::from_value(json!({
            "Name": "data", "Driver": "local", "Mountpoint": "/m", "Labels": {"b": "2", "a": "1"},
            "Scope": "local", "Options": null, "CreatedAt": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        let r = row(&v);
        assert_eq!(r["Labels"], "a=1,b=2");
        assert_eq!(r["Links"], "N/A");
        let doc = volume_json(&v);
        assert_eq!(doc["Options"], Json::Null);
        let text = indented(&Json::Array(vec![doc]));
        assert!(
            text.starts_with("[\n    {\n        \"CreatedAt\": \"2026-01-01T00:00:00Z\",\n        \"Driver\""),
            "{text}"
        );
        assert_eq!(key_values(&["a=b".into(), "c".into()])["c"], "");
    }
}
