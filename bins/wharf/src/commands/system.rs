//! `version`, `info`, `events`.

use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt;
use serde_json::{Value as Json, json};

use super::{Ctx, parse_filters};
use crate::cli::{EventsArgs, InfoArgs, PluginLsArgs, VersionArgs};
use crate::client::{CliError, CliResult};
use crate::format::{self, Format, Tmpl, to_value};
use crate::timefmt;

fn client_version_json() -> Json {
    json!({
        "Platform": {"Name": ""},
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": bollard::API_DEFAULT_VERSION.to_string(),
        "DefaultAPIVersion": bollard::API_DEFAULT_VERSION.to_string(),
        "GitCommit": option_env!("WHARF_GIT_COMMIT").unwrap_or(""),
        "GoVersion": option_env!("WHARF_RUSTC").unwrap_or(""),
        "Os": "linux",
        "Arch": wharf_arch(),
        "BuildTime": option_env!("WHARF_BUILD_TIME").unwrap_or(""),
        "Context": "default",
    })
}

fn wharf_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

const VERSION_RENAMES: &[(&str, &str)] = &[("Client.ApiVersion", "APIVersion"), ("Server.ApiVersion", "APIVersion")];

const VERSION_TEMPLATE: &str = r#"Client: Wharf CLI
 Version:           {{.Client.Version}}
 API version:       {{.Client.APIVersion}}
 Go version:        {{.Client.GoVersion}}
 Git commit:        {{.Client.GitCommit}}
 Built:             {{.Client.BuildTime}}
 OS/Arch:           {{.Client.Os}}/{{.Client.Arch}}
 Context:           {{.Client.Context}}
{{- if .Server}}

Server:{{if ne .Server.Platform.Name ""}} {{.Server.Platform.Name}}{{end}}
{{- range $c := .Server.Components}}
 {{$c.Name}}:
  Version:          {{$c.Version}}
{{- if eq $c.Name "Engine"}}
  API version:      {{index $c.Details "ApiVersion"}} (minimum version {{index $c.Details "MinAPIVersion"}})
  Go version:       {{index $c.Details "GoVersion"}}
  Git commit:       {{index $c.Details "GitCommit"}}
  Built:            {{index $c.Details "BuildTime"}}
  OS/Arch:          {{index $c.Details "Os"}}/{{index $c.Details "Arch"}}
  Experimental:     {{index $c.Details "Experimental"}}
{{- end}}
{{- end}}
{{- end}}
"#;

pub async fn version(ctx: &Ctx, args: VersionArgs) -> Result<(), CliError> {
    let server = ctx.docker.version().await.cli(&ctx.host);
    let mut doc = json!({ "Client": client_version_json() });
    if let Ok(v) = &server {
        doc["Server"] = serde_json::to_value(v).unwrap_or(Json::Null);
    }
    let value = to_value(&doc, VERSION_RENAMES);
    match args.format.as_deref() {
        Some("json") => println!("{}", format::go_json(&doc)),
        Some(t) => println!("{}", Tmpl::parse(t)?.render(&value)?),
        None => print!("{}", Tmpl::parse(VERSION_TEMPLATE)?.render(&value)?),
    }
    server.map(|_| ())
}

const INFO_RENAMES: &[(&str, &str)] = &[("HttpProxy", "HTTPProxy"), ("HttpsProxy", "HTTPSProxy")];

pub async fn info(ctx: &Ctx, args: InfoArgs) -> Result<(), CliError> {
    let info = ctx.docker.info().await.cli(&ctx.host);
    if let Some(f) = args.format.as_deref() {
        let mut doc =
            info.as_ref().map(|i| serde_json::to_value(i).unwrap_or(Json::Null)).unwrap_or_else(|_| json!({}));
        doc["ClientInfo"] = json!({"Debug": false, "Context": "default", "Plugins": [], "Warnings": null});
        if f == "json" {
            println!("{}", format::go_json(&doc));
        } else {
            println!("{}", Tmpl::parse(f)?.render(&to_value(&doc, INFO_RENAMES))?);
        }
        return info.map(|_| ());
    }
    println!("Client:\n Version:    {}\n Context:    default\n Debug Mode: false\n", env!("CARGO_PKG_VERSION"));
    println!("Server:");
    let info = info?;
    let doc = serde_json::to_value(&info).unwrap_or(Json::Null);
    print!("{}", render_server_info(&doc));
    Ok(())
}

/// `docker info`'s server section.
fn render_server_info(i: &Json) -> String {
    let s = |k: &str| i.get(k).and_then(Json::as_str).unwrap_or("").to_owned();
    let n = |k: &str| i.get(k).and_then(Json::as_i64).unwrap_or(0);
    let b = |k: &str| i.get(k).and_then(Json::as_bool).unwrap_or(false);
    let list = |v: Option<&Json>| -> Vec<String> {
        v.and_then(Json::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let mut o = String::new();
    let mut line = |t: String| {
        o.push_str(&t);
        o.push('\n');
    };
    line(format!(" Containers: {}", n("Containers")));
    line(format!("  Running: {}", n("ContainersRunning")));
    line(format!("  Paused: {}", n("ContainersPaused")));
    line(format!("  Stopped: {}", n("ContainersStopped")));
    line(format!(" Images: {}", n("Images")));
    line(format!(" Server Version: {}", s("ServerVersion")));
    line(format!(" Storage Driver: {}", s("Driver")));
    if let Some(rows) = i.get("DriverStatus").and_then(Json::as_array) {
        for r in rows {
            if let Some([k, v]) = r.as_array().map(Vec::as_slice) {
                line(format!("  {}: {}", k.as_str().unwrap_or(""), v.as_str().unwrap_or("")));
            }
        }
    }
    line(format!(" Logging Driver: {}", s("LoggingDriver")));
    line(format!(" Cgroup Driver: {}", s("CgroupDriver")));
    line(format!(" Cgroup Version: {}", s("CgroupVersion")));
    line(" Plugins:".to_owned());
    let plugins = i.get("Plugins");
    for (k, title) in [("Volume", "Volume"), ("Network", "Network"), ("Log", "Log")] {
        line(format!("  {title}: {}", list(plugins.and_then(|p| p.get(k))).join(" ")));
    }
    let swarm = i.get("Swarm").and_then(|s| s.get("LocalNodeState")).and_then(Json::as_str).unwrap_or("inactive");
    line(format!(" Swarm: {swarm}"));
    let mut runtimes: Vec<String> =
        i.get("Runtimes").and_then(Json::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default();
    runtimes.sort();
    line(format!(" Runtimes: {}", runtimes.join(" ")));
    line(format!(" Default Runtime: {}", s("DefaultRuntime")));
    line(format!(" Init Binary: {}", s("InitBinary")));
    line(" Security Options:".to_owned());
    for opt in list(i.get("SecurityOptions")) {
        for (j, kv) in opt.split(',').enumerate() {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            if j == 0 {
                line(format!("  {v}"));
            } else {
                line(format!("   {}: {v}", capitalise(k)));
            }
        }
    }
    line(format!(" Kernel Version: {}", s("KernelVersion")));
    line(format!(" Operating System: {}", s("OperatingSystem")));
    line(format!(" OSType: {}", s("OSType")));
    line(format!(" Architecture: {}", s("Architecture")));
    line(format!(" CPUs: {}", n("NCPU")));
    line(format!(" Total Memory: {}", bytes_binary(n("MemTotal"))));
    line(format!(" Name: {}", s("Name")));
    line(format!(" ID: {}", s("ID")));
    line(format!(" Docker Root Dir: {}", s("DockerRootDir")));
    line(format!(" Debug Mode: {}", b("Debug")));
    let labels = list(i.get("Labels"));
    if !labels.is_empty() {
        line(" Labels:".to_owned());
        for l in labels {
            line(format!("  {l}"));
        }
    }
    line(format!(" Experimental: {}", b("ExperimentalBuild")));
    let reg = i.get("RegistryConfig");
    line(" Insecure Registries:".to_owned());
    for r in list(reg.and_then(|r| r.get("InsecureRegistryCIDRs"))) {
        line(format!("  {r}"));
    }
    let mirrors = list(reg.and_then(|r| r.get("Mirrors")));
    if !mirrors.is_empty() {
        line(" Registry Mirrors:".to_owned());
        for m in mirrors {
            line(format!("  {m}"));
        }
    }
    line(format!(" Live Restore Enabled: {}", b("LiveRestoreEnabled")));
    let warnings = list(i.get("Warnings"));
    if !warnings.is_empty() {
        line(String::new());
        for w in warnings {
            line(w);
        }
    }
    o
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

/// go-units `BytesSize`: binary units with two decimals (`23.54GiB`).
pub fn bytes_binary(n: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    let s = format!("{v:.4}");
    let s = format!("{:.2}", s.parse::<f64>().unwrap_or(v));
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{}", units[i])
}

const EVENT_RENAMES: &[(&str, &str)] = &[
    ("scope", "Scope"),
    ("time", "Time"),
    ("timeNano", "TimeNano"),
    ("status", "Status"),
    ("id", "ID"),
    ("from", "From"),
];

pub async fn events(ctx: &Ctx, args: EventsArgs) -> Result<(), CliError> {
    let now = chrono::Utc::now();
    let since = args.since.as_deref().map(|s| timefmt::api_timestamp(s, now)).transpose()?;
    let until = args.until.as_deref().map(|s| timefmt::api_timestamp(s, now)).transpose()?;
    let filters = parse_filters(&args.filter)?;
    let opts = EventsOptions { since, until, filters: (!filters.is_empty()).then_some(filters) };
    let tmpl = match args.format.as_deref() {
        None | Some("") => None,
        Some("json") => Some(Tmpl::parse("{{json .}}")?),
        Some(t) => Some(Tmpl::parse(t)?),
    };
    let mut stream = ctx.docker.events(Some(opts));
    while let Some(item) = stream.next().await {
        let ev = item.cli(&ctx.host)?;
        let doc = serde_json::to_value(&ev).unwrap_or(Json::Null);
        match &tmpl {
            Some(t) => println!("{}", t.render(&to_value(&doc, EVENT_RENAMES))?),
            None => println!("{}", default_event_line(&doc)),
        }
    }
    Ok(())
}

/// `<time> <type> <action> <id> (k=v, …)` as `docker events` prints.
fn default_event_line(e: &Json) -> String {
    let nanos = e
        .get("timeNano")
        .and_then(Json::as_i64)
        .unwrap_or_else(|| e.get("time").and_then(Json::as_i64).unwrap_or(0) * 1_000_000_000);
    let mut s = format!(
        "{} {} {} {}",
        timefmt::rfc3339_nano_fixed(nanos),
        e.get("Type").and_then(Json::as_str).unwrap_or(""),
        e.get("Action").and_then(Json::as_str).unwrap_or(""),
        e.pointer("/Actor/ID").and_then(Json::as_str).unwrap_or("")
    );
    if let Some(attrs) = e.pointer("/Actor/Attributes").and_then(Json::as_object)
        && !attrs.is_empty()
    {
        let mut kv: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
        kv.sort();
        s.push_str(&format!(" ({})", kv.join(", ")));
    }
    s
}

/// `plugin ls`: Wharf has no plugin system; the daemon's list is printed as docker would.
pub async fn plugin_ls(ctx: &Ctx, args: PluginLsArgs) -> Result<(), CliError> {
    let plugins =
        ctx.docker.list_plugins(None::<bollard::query_parameters::ListPluginsOptions>).await.cli(&ctx.host)?;
    let rows: Vec<_> = plugins
        .iter()
        .map(|p| {
            let id = p.id.clone().unwrap_or_default();
            let id = if args.no_trunc { id } else { id.chars().take(12).collect() };
            let doc = json!({
                "ID": id,
                "Name": p.name,
                "Description": p.config.description,
                "Enabled": p.enabled,
            });
            to_value(&doc, &[])
        })
        .collect();
    let format = if args.quiet {
        Format::Raw("{{.ID}}")
    } else {
        Format::new(args.format.as_deref(), "table {{.ID}}\t{{.Name}}\t{{.Description}}\t{{.Enabled}}")
    };
    format::print_rows(format, &rows, &[("Name", "NAME"), ("Description", "DESCRIPTION"), ("Enabled", "ENABLED")])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_like_go_units() {
        assert_eq!(bytes_binary(25_276_063_744), "23.54GiB");
        assert_eq!(bytes_binary(1024), "1KiB");
        assert_eq!(bytes_binary(500), "500B");
    }

    #[test]
    fn event_line() {
        let e = json!({"Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"name":"x","image":"busybox"}},"time":0,"timeNano":0});
        let line = default_event_line(&e);
        assert!(line.ends_with(" container start abc (image=busybox, name=x)"), "{line}");
    }
}
