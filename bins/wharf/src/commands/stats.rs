//! `stats`: one collector per container reading `GET /containers/{id}/stats` (`stream=1`, or
//! `stream=0` with `--no-stream`), docker's formulas (compat §3.10) for CPU %, memory without
//! the inactive page cache, network and block I/O, and the table redrawn every 500 ms in place.
//! Without container arguments it follows `/events` (type container) to add started containers
//! and drop dead ones, as docker does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt;
use http::Method;
use serde_json::{Value as Json, json};

use super::{Ctx, parse_filters};
use crate::api::{self, Api};
use crate::cli_container::StatsArgs;
use crate::client::CliError;
use crate::format::{self, Format, to_value};
use crate::{dockerconfig, units};

pub const DEFAULT_TABLE: &str =
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";
const WIN_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.NetIO}}\t{{.BlockIO}}";

/// One container's figures (docker's `StatsEntry`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    /// The name or short ID the user (or the event) gave.
    pub container: String,
    pub name: String,
    pub id: String,
    pub cpu_percentage: f64,
    pub memory: f64,
    pub memory_limit: f64,
    pub memory_percentage: f64,
    pub network_rx: f64,
    pub network_tx: f64,
    pub block_read: f64,
    pub block_write: f64,
    pub pids_current: u64,
    pub is_invalid: bool,
}

fn u(v: &Json, p: &str) -> u64 {
    v.pointer(p).and_then(Json::as_u64).unwrap_or(0)
}

/// docker's Linux math over one stats sample.
pub fn compute(v: &Json, os: &str) -> Entry {
    let mut e = Entry {
        name: v.get("name").and_then(Json::as_str).unwrap_or("").to_owned(),
        id: v.get("id").and_then(Json::as_str).unwrap_or("").to_owned(),
        ..Default::default()
    };
    if os != "windows" {
        let prev_cpu = u(v, "/precpu_stats/cpu_usage/total_usage") as f64;
        let prev_sys = u(v, "/precpu_stats/system_cpu_usage") as f64;
        let cpu_delta = u(v, "/cpu_stats/cpu_usage/total_usage") as f64 - prev_cpu;
        let sys_delta = u(v, "/cpu_stats/system_cpu_usage") as f64 - prev_sys;
        let mut online = u(v, "/cpu_stats/online_cpus") as f64;
        if online == 0.0 {
            online = v.pointer("/cpu_stats/cpu_usage/percpu_usage").and_then(Json::as_array).map_or(0, Vec::len) as f64;
        }
        if sys_delta > 0.0 && cpu_delta > 0.0 {
            e.cpu_percentage = cpu_delta / sys_delta * online * 100.0;
        }
        if let Some(a) = v.pointer("/blkio_stats/io_service_bytes_recursive").and_then(Json::as_array) {
            for b in a {
                let op = b.get("op").and_then(Json::as_str).unwrap_or("");
                let val = b.get("value").and_then(Json::as_u64).unwrap_or(0) as f64;
                match op.as_bytes().first() {
                    Some(b'r' | b'R') => e.block_read += val,
                    Some(b'w' | b'W') => e.block_write += val,
                    _ => {}
                }
            }
        }
        let usage = u(v, "/memory_stats/usage");
        let stats = v.pointer("/memory_stats/stats");
        let stat = |k: &str| stats.and_then(|s| s.get(k)).and_then(Json::as_u64);
        e.memory = match (stat("total_inactive_file"), stat("inactive_file")) {
            (Some(t), _) if t < usage => (usage - t) as f64,
            (_, i) if i.unwrap_or(0) < usage => (usage - i.unwrap_or(0)) as f64,
            _ => usage as f64,
        };
        e.memory_limit = u(v, "/memory_stats/limit") as f64;
        e.memory_percentage = if e.memory_limit != 0.0 { e.memory / e.memory_limit * 100.0 } else { 0.0 };
        e.pids_current = u(v, "/pids_stats/current");
    } else {
        let read = chrono::DateTime::parse_from_rfc3339(v.get("read").and_then(Json::as_str).unwrap_or(""));
        let preread = chrono::DateTime::parse_from_rfc3339(v.get("preread").and_then(Json::as_str).unwrap_or(""));
        if let (Ok(r), Ok(p)) = (read, preread) {
            let ns = (r - p).num_nanoseconds().unwrap_or(0).max(0) as u64;
            let possible = ns / 100 * u(v, "/num_procs");
            let used =
                u(v, "/cpu_stats/cpu_usage/total_usage").saturating_sub(u(v, "/precpu_stats/cpu_usage/total_usage"));
            if possible > 0 {
                e.cpu_percentage = used as f64 / possible as f64 * 100.0;
            }
        }
        e.block_read = u(v, "/storage_stats/read_size_bytes") as f64;
        e.block_write = u(v, "/storage_stats/write_size_bytes") as f64;
        e.memory = u(v, "/memory_stats/privateworkingset") as f64;
    }
    if let Some(n) = v.get("networks").and_then(Json::as_object) {
        for net in n.values() {
            e.network_rx += net.get("rx_bytes").and_then(Json::as_u64).unwrap_or(0) as f64;
            e.network_tx += net.get("tx_bytes").and_then(Json::as_u64).unwrap_or(0) as f64;
        }
    }
    e
}

fn pct(v: f64) -> String {
    format!("{v:.2}%")
}

/// The template context (docker's `statsContext`).
pub fn context(e: &Entry, os: &str, trunc: bool) -> Json {
    let win = os == "windows";
    let inv = e.is_invalid;
    json!({
        "BlockIO": if inv { "--".to_owned() } else {
            format!("{} / {}", units::human_size_precision(e.block_read, 3), units::human_size_precision(e.block_write, 3))
        },
        "CPUPerc": if inv { "--".to_owned() } else { pct(e.cpu_percentage) },
        "Container": e.container,
        "ID": if trunc { super::ps::truncate_id(&e.id) } else { e.id.clone() },
        "MemPerc": if inv || win { "--".to_owned() } else { pct(e.memory_percentage) },
        "MemUsage": if inv { "-- / --".to_owned() } else if win { units::bytes_size(e.memory) } else {
            format!("{} / {}", units::bytes_size(e.memory), units::bytes_size(e.memory_limit))
        },
        "Name": if e.name.len() > 1 { e.name[1..].to_owned() } else { "--".to_owned() },
        "NetIO": if inv { "--".to_owned() } else {
            format!("{} / {}", units::human_size_precision(e.network_rx, 3), units::human_size_precision(e.network_tx, 3))
        },
        "PIDs": if inv || win { "--".to_owned() } else { e.pids_current.to_string() },
    })
}

const HEADERS: &[(&str, &str)] = &[
    ("Container", "CONTAINER"),
    ("Name", "NAME"),
    ("ID", "CONTAINER ID"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

/// Renders the entries in `format` (`table`, `json`, a template).
pub fn render(entries: &[Entry], format: &str, os: &str, trunc: bool) -> Result<String, CliError> {
    let headers: Vec<(&str, &str)> = HEADERS
        .iter()
        .map(|(k, v)| if *k == "MemUsage" && os == "windows" { (*k, "PRIV WORKING SET") } else { (*k, *v) })
        .collect();
    let default = if os == "windows" { WIN_TABLE } else { DEFAULT_TABLE };
    let f = match format {
        "" | "table" => Format::new(None, default),
        "json" => {
            // the stats context marshals itself with json.Marshal (HTML escaped)
            let mut s = String::new();
            for e in entries {
                s.push_str(&format::go_json_escaped(&context(e, os, trunc)));
                s.push('\n');
            }
            return Ok(s);
        }
        t => Format::new(Some(t), default),
    };
    let rows: Vec<gtmpl::Value> = entries.iter().map(|e| to_value(&context(e, os, trunc), &[])).collect();
    format::render_rows(f, &rows, &headers).map_err(CliError::from)
}

/// One frame as docker writes it: for streaming, the cursor goes home, every line is
/// followed by erase-to-end-of-line and the rest of the screen is cleared.
pub fn frame(table: &str, streaming: bool) -> String {
    if !streaming {
        return table.to_owned();
    }
    let mut buf = format!("\x1b[H{table}");
    let copy = buf.clone();
    for line in copy.split('\n') {
        buf.push_str(line);
        buf.push_str(" \x1b[K\n");
    }
    buf.push_str("\x1b[J");
    buf
}

/// A collector's slot.
#[derive(Debug, Default)]
struct Slot {
    entry: Entry,
    error: Option<String>,
    first: bool,
}

type Slots = Arc<Mutex<Vec<(String, Slot)>>>;

fn add(slots: &Slots, name: &str) -> bool {
    let Ok(mut s) = slots.lock() else {
        return false;
    };
    if s.iter().any(|(n, _)| n == name) {
        return false;
    }
    s.push((
        name.to_owned(),
        Slot { entry: Entry { container: name.to_owned(), ..Default::default() }, ..Default::default() },
    ));
    true
}

fn remove(slots: &Slots, name: &str) {
    if let Ok(mut s) = slots.lock() {
        s.retain(|(n, _)| n != name);
    }
}

fn update(slots: &Slots, name: &str, f: impl FnOnce(&mut Slot)) {
    if let Ok(mut s) = slots.lock()
        && let Some((_, slot)) = s.iter_mut().find(|(n, _)| n == name)
    {
        f(slot);
    }
}

/// Reads one container's stats stream into its slot (`collect`).
fn spawn_collector(raw: api::Raw, os: String, slots: Slots, name: String, stream: bool) {
    tokio::spawn(async move {
        let path = format!("/containers/{name}/stats?stream={}", if stream { "1" } else { "0" });
        let first = tokio::time::sleep(Duration::from_secs(2));
        tokio::pin!(first);
        let resp = tokio::select! {
            r = raw.send(Method::GET, &path, &[], api::empty()) => r,
            _ = &mut first => {
                update(&slots, &name, |s| {
                    s.entry = Entry { container: name.clone(), is_invalid: true, ..Default::default() };
                    s.error = Some("timeout waiting for stats".into());
                    s.first = true;
                });
                return;
            }
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                update(&slots, &name, |s| {
                    s.error = Some(e.to_string());
                    s.entry.is_invalid = true;
                    s.first = true;
                });
                return;
            }
        };
        let mut body = api::body_stream(resp);
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let next = tokio::select! {
                c = body.next() => c,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {
                    update(&slots, &name, |s| {
                        s.entry = Entry { container: name.clone(), is_invalid: true, ..Default::default() };
                        s.error = Some("timeout waiting for stats".into());
                        s.first = true;
                    });
                    continue;
                }
            };
            let Some(Ok(chunk)) = next else {
                break;
            };
            buf.extend_from_slice(&chunk);
            loop {
                let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<Json>();
                match it.next() {
                    Some(Ok(v)) => {
                        let used = it.byte_offset();
                        buf.drain(..used);
                        let mut e = compute(&v, &os);
                        e.container = name.clone();
                        update(&slots, &name, |s| {
                            s.entry = e;
                            s.error = None;
                            s.first = true;
                        });
                        if !stream {
                            return;
                        }
                    }
                    _ => break,
                }
            }
        }
        // the stream ended (the container stopped): docker keeps the row, shown as `--`
        update(&slots, &name, |s| {
            s.first = true;
            s.entry.is_invalid = true;
            if s.error.is_none() && s.entry.id.is_empty() {
                s.error = Some("EOF".into());
            }
        });
    });
}

async fn wait_first(slots: &Slots) {
    loop {
        let done = slots.lock().map(|s| s.iter().all(|(_, slot)| slot.first)).unwrap_or(true);
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn stats(ctx: &Ctx, args: StatsArgs) -> Result<(), CliError> {
    let cfg = dockerconfig::load();
    let api = Api::connect(ctx).await?;
    let slots: Slots = Arc::new(Mutex::new(Vec::new()));
    let stream = !args.no_stream;
    let show_all = args.containers.is_empty();
    let (err_tx, mut err_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    if show_all {
        let mut filters: HashMap<String, Vec<String>> = parse_filters(&[])?;
        filters.insert("type".into(), vec!["container".into()]);
        let mut events = api.docker.events(Some(EventsOptions { since: None, until: None, filters: Some(filters) }));
        let (raw, os, s2, all) = (api.raw.clone(), api.os_type.clone(), slots.clone(), args.all);
        tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => {
                        let _ = err_tx.send(e.to_string());
                        return;
                    }
                };
                let id: String =
                    ev.actor.as_ref().and_then(|a| a.id.clone()).unwrap_or_default().chars().take(12).collect();
                let action = ev.action.clone().unwrap_or_default();
                match action.as_str() {
                    "create" | "start" if (all || action == "start") && add(&s2, &id) => {
                        spawn_collector(raw.clone(), os.clone(), s2.clone(), id, stream);
                    }
                    "die" if !all => remove(&s2, &id),
                    _ => {}
                }
            }
        });
        let list = api
            .docker
            .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                all: args.all,
                ..Default::default()
            }))
            .await
            .map_err(|e| api.err(e))?;
        for c in list {
            let id: String = c.id.unwrap_or_default().chars().take(12).collect();
            if add(&slots, &id) {
                spawn_collector(api.raw.clone(), api.os_type.clone(), slots.clone(), id, stream);
            }
        }
        wait_first(&slots).await;
    } else {
        for c in &args.containers {
            if add(&slots, c) {
                spawn_collector(api.raw.clone(), api.os_type.clone(), slots.clone(), c.clone(), stream);
            }
        }
        wait_first(&slots).await;
        let errs: Vec<String> =
            slots.lock().map(|s| s.iter().filter_map(|(_, x)| x.error.clone()).collect()).unwrap_or_default();
        if !errs.is_empty() {
            return Err(CliError::Other(errs.join("\n")));
        }
    }
    let format = match args.format.as_deref() {
        Some(f) if !f.is_empty() => f.to_owned(),
        _ if !cfg.stats_format.is_empty() => cfg.stats_format.clone(),
        _ => "table".into(),
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let entries: Vec<Entry> =
            slots.lock().map(|s| s.iter().map(|(_, x)| x.entry.clone()).collect()).unwrap_or_default();
        let table = render(&entries, &format, &api.os_type, !args.no_trunc)?;
        {
            use std::io::Write;
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(frame(&table, stream).as_bytes());
            let _ = o.flush();
        }
        if entries.is_empty() && !show_all {
            break;
        }
        if !stream {
            break;
        }
        if let Ok(e) = err_rx.try_recv() {
            return Err(CliError::Other(e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Json {
        // compat §3.10's observed body, with a precpu sample filled in
        json!({
            "read":"2026-11-23T02:22:29.005861126Z","preread":"2026-11-23T02:22:28.004861126Z",
            "pids_stats":{"current":3},
            "blkio_stats":{"io_service_bytes_recursive":[
                {"major":8,"minor":0,"op":"Read","value":4096},
                {"major":8,"minor":0,"op":"write","value":8192},
                {"major":8,"minor":0,"op":"Total","value":12288}]},
            "num_procs":0,"storage_stats":{},
            "cpu_stats":{"cpu_usage":{"total_usage":89_490_550u64,"percpu_usage":[1,2],"usage_in_kernelmode":50_000_000,"usage_in_usermode":30_000_000},"system_cpu_usage":699_770_000_000u64,"online_cpus":2},
            "precpu_stats":{"cpu_usage":{"total_usage":79_490_550u64},"system_cpu_usage":697_770_000_000u64,"online_cpus":2},
            "memory_stats":{"usage":868_352,"max_usage":4_091_904,"stats":{"total_inactive_file":4096},"limit":25_276_063_744u64},
            "name":"/spy_web","id":"4f66ad9a0b2e8f27c6b9c7f8c6d0f4b2a1c3e5d7f9a8b6c4d2e0f1a3b5c7d9e1",
            "networks":{"eth0":{"rx_bytes":876,"tx_bytes":0},"eth1":{"rx_bytes":124,"tx_bytes":2000}}
        })
    }

    #[test]
    fn docker_formulas() {
        let e = compute(&sample(), "linux");
        // (10_000_000 / 2_000_000_000) * 2 * 100 = 1.0
        assert!((e.cpu_percentage - 1.0).abs() < 1e-9);
        assert_eq!(e.memory, (868_352 - 4096) as f64);
        assert_eq!(e.memory_limit, 25_276_063_744.0);
        assert_eq!((e.block_read, e.block_write), (4096.0, 8192.0));
        assert_eq!((e.network_rx, e.network_tx), (1000.0, 2000.0));
        assert_eq!(e.pids_current, 3);
        // cgroup v2: inactive_file
        let mut v = sample();
        v["memory_stats"]["stats"] = json!({"inactive_file": 68_352});
        assert_eq!(compute(&v, "linux").memory, 800_000.0);
        // no online_cpus: the per-CPU list length
        let mut v = sample();
        v["cpu_stats"]["online_cpus"] = json!(0);
        assert!((compute(&v, "linux").cpu_percentage - 1.0).abs() < 1e-9);
        // no precpu sample: 0%
        let mut v = sample();
        v["precpu_stats"] = json!({});
        let e = compute(&v, "linux");
        assert!(e.cpu_percentage > 0.0);
        v["cpu_stats"]["system_cpu_usage"] = json!(0);
        assert_eq!(compute(&v, "linux").cpu_percentage, 0.0);
    }

    #[test]
    fn table_like_docker() {
        let mut e = compute(&sample(), "linux");
        e.container = "spy_web".into();
        let out = render(&[e.clone()], "table", "linux", true).unwrap();
        assert_eq!(
            out,
            "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O     BLOCK I/O        PIDS\n\
             4f66ad9a0b2e   spy_web   1.00%     844KiB / 23.54GiB   0.00%     1kB / 2kB   4.1kB / 8.19kB   3\n"
        );
        let invalid = Entry { container: "x".into(), is_invalid: true, ..Default::default() };
        let out = render(&[invalid], "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}", "linux", true).unwrap();
        assert_eq!(out, "-- -- -- / -- --\n");
        let json = render(&[e], "json", "linux", true).unwrap();
        let v: Json = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(v["CPUPerc"], "1.00%");
        assert_eq!(v["Container"], "spy_web");
    }

    #[test]
    fn streaming_frames() {
        assert_eq!(frame("A\nB\n", false), "A\nB\n");
        assert_eq!(frame("A\n", true), "\x1b[HA\n\x1b[HA \x1b[K\n \x1b[K\n\x1b[J");
    }
}
