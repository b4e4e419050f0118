//! The one-call container commands: `stop`, `restart`, `kill`, `wait`, `rm`, `rename`, `pause`,
//! `unpause`, `top`, `port`, `prune`, `commit`, `export`, `diff`, `update`. Commands taking
//! several containers run them concurrently and report in argument order, printing each
//! container that succeeded and joining the errors (exit 1), as docker does.

use std::future::Future;
use std::io::Write;

use bollard::models::ContainerUpdateBody;
use bollard::query_parameters::{
    PruneContainersOptions, RemoveContainerOptions, RestartContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use futures_util::future::join_all;
use http::Method;
use serde_json::Value as Json;

use super::run::encode_query;
use super::{Ctx, parse_filters};
use crate::api::{self, Api};
use crate::cli_container::{
    CommitArgs, ContainersArgs, DiffArgs, ExportArgs, KillArgs, PortArgs, PruneArgs, RenameArgs, RmArgs, StopArgs,
    TopArgs, UpdateArgs,
};
use crate::client::CliError;
use crate::format::tabwrite;
use crate::{opts, term, units};

/// Runs `op` for every container concurrently; prints each success (the name as given) in
/// order; returns the joined errors.
async fn for_each<F, Fut>(names: &[String], op: F) -> Result<(), CliError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), CliError>>,
{
    let results = join_all(names.iter().map(|n| op(n.clone()))).await;
    let mut errs = Vec::new();
    for (name, r) in names.iter().zip(results) {
        match r {
            Ok(()) => println!("{name}"),
            Err(e) => errs.push(e.to_string()),
        }
    }
    joined(errs)
}

fn joined(errs: Vec<String>) -> Result<(), CliError> {
    if errs.is_empty() { Ok(()) } else { Err(CliError::Other(errs.join("\n"))) }
}

fn timeout_of(args: &StopArgs) -> Result<Option<i32>, CliError> {
    if args.time.is_some() {
        // cobra's deprecation notice, on stdout
        println!("Flag --time has been deprecated, use --timeout instead");
    }
    if args.time.is_some() && args.timeout.is_some() {
        return Err(CliError::Other("conflicting options: cannot specify both --timeout and --time".into()));
    }
    let (flag, v) = match (&args.timeout, &args.time) {
        (Some(v), _) => ("-t, --timeout", v),
        (None, Some(v)) => ("--time", v),
        (None, None) => return Ok(None),
    };
    opts::go_parse_int(v, 64)
        .map(|n| Some(n as i32))
        .map_err(|e| CliError::Usage(format!("invalid argument \"{v}\" for \"{flag}\" flag: {e}")))
}

pub async fn stop(ctx: &Ctx, args: StopArgs) -> Result<(), CliError> {
    let t = timeout_of(&args)?;
    let api = Api::connect(ctx).await?;
    let signal = args.signal.clone().filter(|s| !s.is_empty());
    for_each(&args.containers, |c| {
        let (api, signal) = (&api, signal.clone());
        async move {
            api.docker
                .stop_container(&c, Some(StopContainerOptions { signal, t }))
                .await
                .map_err(|e| api.err(e))
        }
    })
    .await
}

pub async fn restart(ctx: &Ctx, args: StopArgs) -> Result<(), CliError> {
    let t = timeout_of(&args)?;
    let api = Api::connect(ctx).await?;
    let signal = args.signal.clone().filter(|s| !s.is_empty());
    let mut errs = Vec::new();
    for c in &args.containers {
        match api.docker.restart_container(c, Some(RestartContainerOptions { signal: signal.clone(), t })).await {
            Ok(()) => println!("{c}"),
            Err(e) => errs.push(api.err(e).to_string()),
        }
    }
    joined(errs)
}

pub async fn kill(ctx: &Ctx, args: KillArgs) -> Result<(), CliError> {
    let api = Api::connect(ctx).await?;
    // raw: without -s docker sends no signal (the daemon's default, SIGKILL); bollard always
    // names one
    let query = match args.signal.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => format!("?{}", encode_query(&[("signal", s.to_owned())])),
        None => String::new(),
    };
    for_each(&args.containers, |c| {
        let (api, query) = (&api, query.clone());
        async move {
            api.raw.send(Method::POST, &format!("/containers/{c}/kill{query}"), &[], api::empty()).await.map(|_| ())
        }
    })
    .await
}

pub async fn pause(ctx: &Ctx, args: ContainersArgs, unpause: bool) -> Result<(), CliError> {
    let api = Api::connect(ctx).await?;
    for_each(&args.containers, |c| {
        let api = &api;
        async move {
            let r = if unpause { api.docker.unpause_container(&c).await } else { api.docker.pause_container(&c).await };
            r.map_err(|e| api.err(e))
        }
    })
    .await
}

pub async fn wait(ctx: &Ctx, args: ContainersArgs) -> Result<(), CliError> {
    let api = Api::connect(ctx).await?;
    let mut errs = Vec::new();
    for c in &args.containers {
        let r = match api.raw.wait(c, None).await {
            Ok(h) => h.result().await.map_err(CliError::Other),
            Err(e) => Err(e),
        };
        match r {
            Ok(r) => println!("{}", r.status_code),
            Err(e) => errs.push(e.to_string()),
        }
    }
    joined(errs)
}

pub async fn rm(ctx: &Ctx, args: RmArgs) -> Result<(), CliError> {
    let api = Api::connect(ctx).await?;
    let results = join_all(args.containers.iter().map(|name| {
        let api = &api;
        async move {
            let id = name.trim_matches('/');
            if id.is_empty() {
                return Err(CliError::Other("container name cannot be empty".into()));
            }
            api.docker
                .remove_container(
                    id,
                    Some(RemoveContainerOptions { v: args.volumes, force: args.force, link: args.link }),
                )
                .await
                .map_err(|e| api.err(e))
        }
    }))
    .await;
    let mut errs = Vec::new();
    for (name, r) in args.containers.iter().zip(results) {
        match r {
            Ok(()) => println!("{name}"),
            Err(e @ CliError::Daemon { status: 404, .. }) if args.force => {
                let _ = std::io::stdout().flush();
                eprintln!("{e}");
            }
            Err(e) => errs.push(e.to_string()),
        }
    }
    joined(errs)
}

pub async fn rename(ctx: &Ctx, args: RenameArgs) -> Result<(), CliError> {
    let (old, new) = (args.container.trim(), args.new_name.trim());
    if old.is_empty() || new.is_empty() {
        return Err(CliError::Other("Error: Neither old nor new names may be empty".into()));
    }
    let api = Api::connect(ctx).await?;
    if let Err(e) =
        api.docker.rename_container(old, bollard::query_parameters::RenameContainerOptions { name: new.into() }).await
    {
        eprintln!("{}", api.err(e));
        return Err(CliError::Other(format!("Error: failed to rename container named {old}")));
    }
    Ok(())
}

pub async fn top(ctx: &Ctx, args: TopArgs) -> Result<(), CliError> {
    let api = Api::connect(ctx).await?;
    // raw: docker sends `ps_args` only when given (the daemon defaults to -ef)
    let query = if args.ps_args.is_empty() {
        String::new()
    } else {
        format!("?{}", encode_query(&[("ps_args", args.ps_args.join(" "))]))
    };
    let (_, body) = api.raw.bytes(Method::GET, &format!("/containers/{}/top{query}", args.container)).await?;
    let top: Json = serde_json::from_slice(&body).map_err(|e| CliError::Other(e.to_string()))?;
    let row = |v: &Json| -> String {
        v.as_array()
            .map(|a| a.iter().map(|x| x.as_str().unwrap_or("").to_owned()).collect::<Vec<_>>().join("\t"))
            .unwrap_or_default()
    };
    let mut lines = vec![row(top.get("Titles").unwrap_or(&Json::Null))];
    for p in top.get("Processes").and_then(Json::as_array).cloned().unwrap_or_default() {
        lines.push(row(&p));
    }
    println!("{}", tabwrite(&lines.join("\n"), 20, 3));
    Ok(())
}

/// `sortorder.NaturalLess`: digit runs compare as numbers.
pub fn natural_less(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (ca, cb) = (a[i], b[j]);
        if ca.is_ascii_digit() && cb.is_ascii_digit() {
            let si = i;
            while i < a.len() && a[i] == b'0' {
                i += 1;
            }
            let sj = j;
            while j < b.len() && b[j] == b'0' {
                j += 1;
            }
            let (ni, nj) = (i, j);
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let (da, db) = (&a[ni..i], &b[nj..j]);
            let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
            if ord != Ordering::Equal {
                return ord;
            }
            let zeros = (ni - si).cmp(&(nj - sj));
            if zeros != Ordering::Equal {
                return zeros;
            }
            continue;
        }
        if ca != cb {
            return ca.cmp(&cb);
        }
        i += 1;
        j += 1;
    }
    (a.len() - i).cmp(&(b.len() - j))
}

fn join_host_port(ip: &str, port: &str) -> String {
    if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }
}

/// `docker port`'s lines for an inspect document's `NetworkSettings.Ports`.
pub fn port_lines(ports: &Json, container: &str, want: Option<&str>) -> Result<Vec<String>, CliError> {
    let mut out = Vec::new();
    let frontends = |v: &Json| -> Vec<(String, String)> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|b| {
                        (
                            b.get("HostIp").and_then(Json::as_str).unwrap_or("").to_owned(),
                            b.get("HostPort").and_then(Json::as_str).unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    if let Some(want) = want {
        let (port, proto) = want.split_once('/').unwrap_or((want, ""));
        let proto = if proto.is_empty() { "tcp" } else { proto };
        if let Err(e) = port.parse::<u16>() {
            let reason = if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
                "value out of range"
            } else {
                "invalid syntax"
            };
            return Err(CliError::Other(format!(
                "Error: invalid port ({port}): strconv.ParseUint: parsing {}: {reason}",
                opts::go_quote(port)
            )));
        }
        let f = ports.get(format!("{port}/{proto}")).map(frontends).unwrap_or_default();
        if f.is_empty() {
            return Err(CliError::Other(format!("Error: No public port '{want}' published for {container}")));
        }
        for (ip, p) in f {
            out.push(join_host_port(&ip, &p));
        }
    } else if let Some(m) = ports.as_object() {
        for (from, v) in m {
            for (ip, p) in frontends(v) {
                out.push(format!("{from} -> {}", join_host_port(&ip, &p)));
            }
        }
    }
    out.sort_by(|a, b| natural_less(a, b));
    Ok(out)
}

pub async fn port(ctx: &Ctx, args: PortArgs) -> Result<(), CliError> {
    let api = Api::connect(ctx).await?;
    let (_, body) = api.raw.bytes(Method::GET, &format!("/containers/{}/json", args.container)).await?;
    let c: Json = serde_json::from_slice(&body).map_err(|e| CliError::Other(e.to_string()))?;
    let ports = c.pointer("/NetworkSettings/Ports").cloned().unwrap_or(Json::Null);
    let lines = port_lines(&ports, &args.container, args.port.as_deref())?;
    if !lines.is_empty() {
        println!("{}", lines.join("\n"));
    }
    Ok(())
}

/// docker's `prompt.Confirm`: `y`/`Y` (after trimming) confirms; anything else declines.
pub fn confirm(message: &str) -> bool {
    print!("{message} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).unwrap_or(0) == 0 {
        return false;
    }
    line.trim().eq_ignore_ascii_case("y")
}

pub async fn prune(ctx: &Ctx, args: PruneArgs) -> Result<(), CliError> {
    let mut filters = parse_filters(&args.filter)?;
    let cfg = crate::dockerconfig::load();
    for f in &cfg.prune_filters {
        if let Some((k, v)) = f.split_once('=') {
            let conflict = match k {
                "label" => filters.get("label!").is_some_and(|l| l.iter().any(|x| x == v)),
                "label!" => filters.get("label").is_some_and(|l| l.iter().any(|x| x == v)),
                _ => false,
            };
            if !conflict {
                filters.entry(k.to_owned()).or_default().push(v.to_owned());
            }
        }
    }
    if !args.force && !confirm("WARNING! This will remove all stopped containers.\nAre you sure you want to continue?")
    {
        // docker treats the refusal as a cancellation: nothing more is printed, exit 0
        return Ok(());
    }
    let api = Api::connect(ctx).await?;
    let report = api
        .docker
        .prune_containers(Some(PruneContainersOptions { filters: (!filters.is_empty()).then_some(filters) }))
        .await
        .map_err(|e| api.err(e))?;
    let deleted = report.containers_deleted.unwrap_or_default();
    let mut reclaimed = 0;
    if !deleted.is_empty() {
        let mut out = String::from("Deleted Containers:\n");
        for id in &deleted {
            out.push_str(id);
            out.push('\n');
        }
        println!("{out}");
        reclaimed = report.space_reclaimed.unwrap_or(0);
    }
    println!("Total reclaimed space: {}", units::human_size(reclaimed as f64));
    Ok(())
}

pub async fn commit(ctx: &Ctx, args: CommitArgs) -> Result<(), CliError> {
    let pause = match &args.pause {
        None => true,
        Some(v) => opts::go_parse_bool(v)
            .map_err(|e| CliError::Usage(format!("invalid argument \"{v}\" for \"-p, --pause\" flag: {e}")))?,
    };
    let mut q: Vec<(&str, String)> = vec![("container", args.container.clone())];
    if let Some(r) = args.reference.as_deref().filter(|r| !r.is_empty()) {
        let r = wharf_types::Reference::parse_normalized(r).map_err(|e| CliError::Other(e.to_string()))?;
        if r.digest().is_some() {
            return Err(CliError::Other("refusing to create a tag with a digest reference".into()));
        }
        q.push(("repo", r.name()));
        if let Some(t) = r.tag() {
            q.push(("tag", t.to_owned()));
        }
    }
    if let Some(m) = args.message.as_deref().filter(|m| !m.is_empty()) {
        q.push(("comment", m.to_owned()));
    }
    if let Some(a) = args.author.as_deref().filter(|a| !a.is_empty()) {
        q.push(("author", a.to_owned()));
    }
    for c in &args.change {
        q.push(("changes", c.clone()));
    }
    if !pause {
        q.push(("pause", "0".into()));
    }
    let api = Api::connect(ctx).await?;
    let (_, body) = {
        let resp = api.raw.send(Method::POST, &format!("/commit?{}", encode_query(&q)), &[], api::empty()).await?;
        use http_body_util::BodyExt;
        let h = resp.headers().clone();
        let b = resp.into_body().collect().await.map_err(|e| CliError::Other(e.to_string()))?.to_bytes();
        (h, b)
    };
    let v: Json = serde_json::from_slice(&body).map_err(|e| CliError::Other(e.to_string()))?;
    println!("{}", v.get("Id").and_then(Json::as_str).unwrap_or(""));
    Ok(())
}

/// `atomicwriter`'s checks on an output file, before anything is written.
fn validate_destination(path: &str) -> Result<(), String> {
    let p = std::path::Path::new(path);
    if let Some(dir) = p.parent().map(|d| d.to_string_lossy().into_owned())
        && !dir.is_empty()
        && dir != "."
        && dir != ".."
    {
        match std::fs::metadata(&dir) {
            Err(e) => {
                return Err(format!("invalid output path: stat {dir}: {}", opts::io_text(&e)));
            }
            Ok(m) if !m.is_dir() => {
                return Err(format!("invalid output path: stat {dir}: not a directory"));
            }
            Ok(_) => {}
        }
    }
    match std::fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("failed to stat output path: {}", opts::io_text(&e))),
        Ok(m) if m.file_type().is_file() => Ok(()),
        Ok(m) if m.is_dir() => Err("cannot write to a directory".into()),
        Ok(m) if m.file_type().is_symlink() => Err("cannot write to a symbolic link directly".into()),
        Ok(_) => Err("cannot write to a special file".into()),
    }
}

pub async fn export(ctx: &Ctx, args: ExportArgs) -> Result<(), CliError> {
    let to_file = args.output.as_deref().filter(|o| !o.is_empty());
    if to_file.is_none() && term::stdout_is_tty() {
        return Err(CliError::Other("cowardly refusing to save to a terminal. Use the -o flag or redirect".into()));
    }
    if let Some(path) = to_file {
        validate_destination(path).map_err(|e| CliError::Other(format!("failed to export container: {e}")))?;
    }
    let api = Api::connect(ctx).await?;
    let mut body = api.docker.export_container(&args.container);
    match to_file {
        None => {
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| api.err(e))?;
                out.write_all(&chunk).map_err(|e| CliError::Other(e.to_string()))?;
            }
            let _ = out.flush();
        }
        Some(path) => {
            let p = std::path::Path::new(path);
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let tmp = dir.join(format!(
                ".{}.tmp{}",
                p.file_name().and_then(|n| n.to_str()).unwrap_or("export"),
                std::process::id()
            ));
            let fail =
                |e: std::io::Error| CliError::Other(format!("failed to export container: {}", opts::io_text(&e)));
            let mut f = {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(fail)?
            };
            let res: Result<(), CliError> = async {
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|e| api.err(e))?;
                    f.write_all(&chunk).map_err(fail)?;
                }
                f.sync_all().map_err(fail)?;
                std::fs::rename(&tmp, p).map_err(fail)
            }
            .await;
            if res.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            res?;
        }
    }
    Ok(())
}

pub async fn diff(ctx: &Ctx, args: DiffArgs) -> Result<(), CliError> {
    if args.container.is_empty() {
        return Err(CliError::Other("Container name cannot be empty".into()));
    }
    let api = Api::connect(ctx).await?;
    let changes = api.docker.container_changes(&args.container).await.map_err(|e| api.err(e))?.unwrap_or_default();
    let mut out = String::new();
    for c in changes {
        let v = serde_json::to_value(&c).unwrap_or(Json::Null);
        let kind = match v.get("Kind").and_then(Json::as_u64) {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "",
        };
        out.push_str(&format!("{kind} {}\n", c.path));
    }
    print!("{out}");
    Ok(())
}

pub async fn update(ctx: &Ctx, args: UpdateArgs) -> Result<(), CliError> {
    let given = [
        &args.blkio_weight,
        &args.cpu_period,
        &args.cpu_quota,
        &args.cpu_rt_period,
        &args.cpu_rt_runtime,
        &args.cpu_shares,
        &args.cpus,
        &args.cpuset_cpus,
        &args.cpuset_mems,
        &args.kernel_memory,
        &args.memory,
        &args.memory_reservation,
        &args.memory_swap,
        &args.pids_limit,
        &args.restart,
    ]
    .iter()
    .filter(|v| v.is_some())
    .count();
    if given == 0 {
        return Err(CliError::Other("you must provide one or more flags when using this command".into()));
    }
    let flag_err = |e: opts::OptError| CliError::Usage(e.to_string());
    let num = |flag: &str, v: &Option<String>| -> Result<i64, CliError> {
        v.as_deref().map_or(Ok(0), |s| opts::int_flag(flag, s, 64)).map_err(flag_err)
    };
    let mem = |flag: &str, v: &Option<String>| -> Result<i64, CliError> {
        v.as_deref().map_or(Ok(0), |s| opts::mem_bytes_flag(flag, s)).map_err(flag_err)
    };
    let blkio =
        args.blkio_weight.as_deref().map_or(Ok(0), |s| opts::uint_flag("--blkio-weight", s, 16)).map_err(flag_err)?
            as u16;
    let nano = match &args.cpus {
        None => 0,
        Some(s) => opts::parse_cpus(s).map_err(|e| flag_err(opts::OptError::flag("--cpus", s, e)))?,
    };
    let swap =
        args.memory_swap.as_deref().map_or(Ok(0), |s| opts::mem_swap_flag("--memory-swap", s)).map_err(flag_err)?;
    let pids = num("--pids-limit", &args.pids_limit)?;
    let mut restart = None;
    if let Some(r) = args.restart.as_deref().filter(|r| !r.is_empty()) {
        restart = Some(opts::parse_restart_policy(r).map_err(|e| CliError::Other(e.to_string()))?);
    }
    let _kernel = mem("--kernel-memory", &args.kernel_memory)?;
    let body = ContainerUpdateBody {
        blkio_weight: Some(blkio),
        cpuset_cpus: Some(args.cpuset_cpus.clone().unwrap_or_default()),
        cpuset_mems: Some(args.cpuset_mems.clone().unwrap_or_default()),
        cpu_shares: Some(num("-c, --cpu-shares", &args.cpu_shares)?),
        memory: Some(mem("-m, --memory", &args.memory)?),
        memory_reservation: Some(mem("--memory-reservation", &args.memory_reservation)?),
        memory_swap: Some(swap),
        cpu_period: Some(num("--cpu-period", &args.cpu_period)?),
        cpu_quota: Some(num("--cpu-quota", &args.cpu_quota)?),
        cpu_realtime_period: Some(num("--cpu-rt-period", &args.cpu_rt_period)?),
        cpu_realtime_runtime: Some(num("--cpu-rt-runtime", &args.cpu_rt_runtime)?),
        nano_cpus: Some(nano),
        pids_limit: (pids != 0).then_some(pids),
        restart_policy: Some(restart.unwrap_or(bollard::models::RestartPolicy {
            name: Some(bollard::models::RestartPolicyNameEnum::EMPTY),
            maximum_retry_count: Some(0),
        })),
        ..Default::default()
    };
    let api = Api::connect(ctx).await?;
    let mut warns = Vec::new();
    let mut errs = Vec::new();
    let payload = serde_json::to_vec(&body).map_err(|e| CliError::Other(e.to_string()))?;
    for c in &args.containers {
        // raw: bollard drops the response's warnings, which docker prints
        let r = api
            .raw
            .send(
                Method::POST,
                &format!("/containers/{c}/update"),
                &[("Content-Type", "application/json")],
                api::full(payload.clone()),
            )
            .await;
        match r {
            Ok(resp) => {
                println!("{c}");
                use http_body_util::BodyExt;
                if let Ok(b) = resp.into_body().collect().await
                    && let Ok(v) = serde_json::from_slice::<Json>(&b.to_bytes())
                    && let Some(w) = v.get("Warnings").and_then(Json::as_array)
                {
                    warns.extend(w.iter().filter_map(Json::as_str).map(str::to_owned));
                }
            }
            Err(e) => errs.push(e.to_string()),
        }
    }
    if !warns.is_empty() {
        println!("{}", warns.join("\n"));
    }
    joined(errs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn natural_order() {
        let mut v = vec!["80/tcp -> 0.0.0.0:10", "443/tcp -> 0.0.0.0:9", "8080/tcp -> 0.0.0.0:1"];
        v.sort_by(|a, b| natural_less(a, b));
        assert_eq!(v, vec!["80/tcp -> 0.0.0.0:10", "443/tcp -> 0.0.0.0:9", "8080/tcp -> 0.0.0.0:1"]);
        assert_eq!(natural_less("a2", "a10"), std::cmp::Ordering::Less);
    }

    #[test]
    fn port_output() {
        let ports = json!({
            "80/tcp": [{"HostIp":"0.0.0.0","HostPort":"8080"},{"HostIp":"::","HostPort":"8080"}],
            "443/udp": [{"HostIp":"127.0.0.1","HostPort":"4443"}],
            "9000/tcp": null,
        });
        assert_eq!(
            port_lines(&ports, "web", None).unwrap(),
            vec!["80/tcp -> 0.0.0.0:8080", "80/tcp -> [::]:8080", "443/udp -> 127.0.0.1:4443"]
        );
        assert_eq!(port_lines(&ports, "web", Some("80")).unwrap(), vec!["0.0.0.0:8080", "[::]:8080"]);
        assert_eq!(
            port_lines(&ports, "web", Some("443")).unwrap_err().to_string(),
            "Error: No public port '443' published for web"
        );
        assert_eq!(
            port_lines(&ports, "web", Some("x/tcp")).unwrap_err().to_string(),
            "Error: invalid port (x): strconv.ParseUint: parsing \"x\": invalid syntax"
        );
    }
}
