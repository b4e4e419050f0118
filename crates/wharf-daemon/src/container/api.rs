//! The `ContainerBackend` of the API: translation from API calls to the service and the
//! supervisors. No engine logic lives here beyond lookups and shaping.

use std::collections::HashMap;

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use wharf_api::backend::{
    AttachOptions, AttachSession, ContainerBackend, ListOptions, LogChunk, Logs, LogsOptions, WaitCondition,
    WaitOutcome,
};
use wharf_api::models::{
    ContainerCreateBody, ContainerCreateResponse, ContainerInspectResponse, ContainerPruneResponse, ContainerSummary,
    ContainerTopResponse,
};
use wharf_runtime::logs::{LogStream, ReadOptions, StreamKind};
use wharf_runtime::shim::protocol::LogDriver;
use wharf_types::{EngineError, Filters};

use super::model::{ContainerRecord, Status};
use super::supervisor::Op;
use super::{ContainerService, names, view};

fn signal(s: Option<String>) -> Result<Option<i32>, EngineError> {
    s.map(|s| wharf_types::signal::parse(&s).ok_or_else(|| EngineError::invalid(format!("Invalid signal: {s}"))))
        .transpose()
}

/// Reads a container's log file with the API's options.
pub fn read_container_logs(r: &ContainerRecord, opts: LogsOptions) -> LogStream {
    let driver = match r.host_config.log_config.as_ref().and_then(|l| l.typ.as_deref()) {
        Some("local") => LogDriver::Local,
        _ => LogDriver::JsonFile,
    };
    wharf_runtime::logs::read_logs(
        r.log_path.clone().into(),
        ReadOptions {
            driver,
            tail: opts.tail,
            since: opts.since,
            until: opts.until,
            follow: false,
            ..Default::default()
        },
    )
}

#[async_trait]
impl wharf_api::backend::ExecBackend for ContainerService {
    async fn create(&self, container: &str, config: wharf_api::models::ExecConfig) -> Result<String, EngineError> {
        self.exec_create(container, config).map(|id| id.to_string())
    }
    async fn start(
        &self,
        id: &str,
        detach: bool,
        tty: Option<bool>,
        console: Option<[u16; 2]>,
    ) -> Result<Option<AttachSession>, EngineError> {
        self.exec_start(id, detach, tty, console).await
    }
    async fn resize(&self, id: &str, height: u16, width: u16) -> Result<(), EngineError> {
        self.exec_resize(id, height, width).await
    }
    async fn inspect(&self, id: &str) -> Result<wharf_api::models::ExecInspectResponse, EngineError> {
        self.exec_inspect(id)
    }
}

#[async_trait]
impl ContainerBackend for ContainerService {
    async fn create(
        &self,
        name: Option<String>,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse, EngineError> {
        let (id, warnings) = ContainerService::create(self, name.as_deref(), body).await?;
        Ok(ContainerCreateResponse { id: id.to_string(), warnings })
    }

    async fn inspect(&self, id: &str, size: bool) -> Result<ContainerInspectResponse, EngineError> {
        let h = self.lookup(id)?;
        let r = h.record();
        let snapshotter = self.ctx.images.snapshotter();
        let key = r.rw_layer.clone();
        let (usage, upper) = tokio::task::spawn_blocking(move || {
            let usage = if size { snapshotter.usage(&key).ok().map(|u| u.size as i64) } else { None };
            let upper = match snapshotter.diff_source(&key) {
                Ok(wharf_snapshot::DiffSource::Overlay { upper, .. }) => Some(upper.display().to_string()),
                Ok(wharf_snapshot::DiffSource::Trees { upper, .. }) => Some(upper.display().to_string()),
                Err(_) => None,
            };
            (usage, upper)
        })
        .await
        .unwrap_or((None, None));
        let mut inspect = view::inspect(
            &r,
            &view::InspectExtras {
                container_dir: self.ctx.paths.container_dir(&r.id),
                size_rw: usage,
                size_root_fs: usage,
                graph_upper: upper,
            },
        );
        let execs = self.execs.of_container(&r.id);
        inspect.exec_ids = (!execs.is_empty()).then_some(execs);
        if let Some(ns) = inspect.network_settings.as_mut() {
            self.ctx.network.fill_inspect(&r, ns);
        }
        Ok(inspect)
    }

    async fn list(&self, opts: ListOptions) -> Result<Vec<ContainerSummary>, EngineError> {
        view::validate_filters(&opts.filters)?;
        let mut records: Vec<ContainerRecord> = self.handles().iter().map(|h| h.record()).collect();
        records.sort_by(|a, b| b.created.cmp(&a.created));
        let ancestors = if opts.filters.contains("ancestor") {
            let mut ids = Vec::new();
            for a in opts.filters.get("ancestor") {
                if let Ok(img) = self.ctx.images.resolve_image(a).await {
                    ids.push(img.id);
                }
            }
            Some(ids)
        } else {
            None
        };
        let created_of = |key: &str| -> Result<String, EngineError> { Ok(self.lookup(key)?.record().created) };
        let before = opts.filters.get("before").next().map(created_of).transpose()?;
        let since = opts.filters.get("since").next().map(created_of).transpose()?;
        let show_all = opts.all
            || opts.limit.is_some()
            || before.is_some()
            || since.is_some()
            || opts.filters.contains("status")
            || opts.filters.contains("exited");
        let mut out = Vec::new();
        for r in records {
            if !show_all && !matches!(r.state.status, Status::Running | Status::Paused | Status::Restarting) {
                continue;
            }
            if before.as_ref().is_some_and(|b| r.created >= *b) || since.as_ref().is_some_and(|s| r.created <= *s) {
                continue;
            }
            if !view::matches(&r, &opts.filters, ancestors.as_deref())
                || !opts.filters.any("network", |v| self.ctx.network.container_on_network(&r, v))
                || !opts.filters.any("publish", |v| crate::network::ports::publishes(&r, v))
            {
                continue;
            }
            let size = if opts.size {
                let snapshotter = self.ctx.images.snapshotter();
                let key = r.rw_layer.clone();
                tokio::task::spawn_blocking(move || {
                    snapshotter.usage(&key).ok().map(|u| (u.size as i64, u.size as i64))
                })
                .await
                .ok()
                .flatten()
            } else {
                None
            };
            let mut row = view::summary(&r, size);
            self.ctx.network.fill_summary(&r, &mut row);
            out.push(row);
            if opts.limit.is_some_and(|l| out.len() as i64 >= l) {
                break;
            }
        }
        Ok(out)
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        let h = self.lookup(id)?;
        self.ask(&h, Op::Start).await
    }

    async fn stop(&self, id: &str, timeout: Option<i64>, sig: Option<String>) -> Result<(), EngineError> {
        let h = self.lookup(id)?;
        let signal = signal(sig)?;
        self.ask(&h, |reply| Op::Stop { timeout, signal, reply }).await
    }

    async fn restart(&self, id: &str, timeout: Option<i64>, sig: Option<String>) -> Result<(), EngineError> {
        let h = self.lookup(id)?;
        let signal = signal(sig)?;
        self.ask(&h, |reply| Op::Restart { timeout, signal, reply }).await
    }

    async fn kill(&self, id: &str, sig: Option<String>) -> Result<(), EngineError> {
        let h = self.lookup(id)?;
        let signal = signal(sig)?.unwrap_or(9);
        self.ask(&h, |reply| Op::Kill { signal, reply }).await
    }

    async fn wait(&self, id: &str, condition: WaitCondition) -> Result<BoxFuture<'static, WaitOutcome>, EngineError> {
        let h = self.lookup(id)?;
        let mut rx = h.exits.subscribe();
        let now = rx.borrow().clone();
        let record_code = h.record().state.exit_code;
        Ok(Box::pin(async move {
            let outcome = |w: &super::ExitWatch| WaitOutcome { status_code: w.code, error: w.error.clone() };
            let done = match condition {
                WaitCondition::NotRunning if !now.running => {
                    return WaitOutcome { status_code: record_code, error: None };
                }
                WaitCondition::NotRunning | WaitCondition::NextExit => {
                    rx.wait_for(|w| w.exits > now.exits || w.removed).await.map(|w| outcome(&w))
                }
                WaitCondition::Removed => rx.wait_for(|w| w.removed).await.map(|w| outcome(&w)),
            };
            // The watch closes when the container is removed and forgotten.
            done.unwrap_or(WaitOutcome { status_code: now.code, error: None })
        }))
    }

    async fn remove(&self, id: &str, force: bool, volumes: bool, link: bool) -> Result<(), EngineError> {
        let h = self.lookup(id)?;
        if link {
            return Err(EngineError::invalid("Conflict, cannot remove the default link name of the container"));
        }
        self.ask(&h, |reply| Op::Remove { force, volumes, reply }).await
    }

    async fn rename(&self, id: &str, name: &str) -> Result<(), EngineError> {
        let h = self.lookup(id)?;
        if name.is_empty() {
            return Err(EngineError::invalid("Neither old nor new names may be empty"));
        }
        let new = names::validate(name).map_err(EngineError::invalid)?.to_owned();
        if h.name() == new {
            return Err(EngineError::invalid("Renaming a container with the same name as its current name"));
        }
        if let Ok(other) = self.lookup(&new)
            && other.name() == new
        {
            return Err(EngineError::conflict(format!(
                "Conflict. The container name \"/{new}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            )));
        }
        self.ask(&h, |reply| Op::Rename { name: new, reply }).await
    }

    async fn pause(&self, id: &str) -> Result<(), EngineError> {
        let h = self.lookup(id)?;
        self.ask(&h, Op::Pause).await
    }

    async fn unpause(&self, id: &str) -> Result<(), EngineError> {
        let h = self.lookup(id)?;
        self.ask(&h, Op::Unpause).await
    }

    async fn top(&self, id: &str, ps_args: Option<String>) -> Result<ContainerTopResponse, EngineError> {
        let h = self.lookup(id)?;
        let r = h.record();
        if !r.state.status.is_running() {
            return Err(EngineError::conflict(format!("Container {} is not running", r.id)));
        }
        let mut runtime = (self.ctx.runtimes)(&r.runtime).ok_or_else(|| EngineError::internal("runtime vanished"))?;
        runtime.root = self.ctx.paths.runtime_root(&r.runtime);
        let pids = runtime.ps(r.id.as_str()).await.map_err(|e| EngineError::internal(e.to_string()))?;
        let args = ps_args.unwrap_or_else(|| "-ef".into());
        let out = tokio::process::Command::new("ps")
            .args(args.split_whitespace())
            .output()
            .await
            .map_err(|e| EngineError::internal(format!("running ps: {e}")))?;
        if !out.status.success() {
            return Err(EngineError::internal(format!("ps: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        let top = super::view_top::parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)?;
        self.ctx.events.publish(wharf_types::Event::now(
            wharf_types::EventType::Container,
            "top",
            r.id.as_str(),
            r.event_attributes(),
        ));
        Ok(top)
    }

    async fn logs(&self, id: &str, opts: LogsOptions) -> Result<Logs, EngineError> {
        let h = self.lookup(id)?;
        let r = h.record();
        let driver = r.host_config.log_config.as_ref().and_then(|l| l.typ.clone()).unwrap_or_default();
        if driver == "none" || r.log_path.is_empty() {
            return Err(EngineError::not_implemented("configured logging driver does not support reading".to_string()));
        }
        let follow = opts.follow && r.state.status.is_running();
        let stop = tokio_util::sync::CancellationToken::new();
        if follow {
            // A follow ends when the container stops.
            let mut rx = h.exits.subscribe();
            let exits = rx.borrow().exits;
            let stop = stop.clone();
            tokio::spawn(async move {
                let _ = rx.wait_for(|w| w.exits > exits || w.removed).await;
                stop.cancel();
            });
        }
        let driver = if driver == "local" { LogDriver::Local } else { LogDriver::JsonFile };
        let stream = wharf_runtime::logs::read_logs(
            r.log_path.clone().into(),
            ReadOptions {
                driver,
                tail: opts.tail,
                since: opts.since,
                until: opts.until,
                follow,
                stop: Some(stop),
                poll_interval: None,
            },
        );
        let (stdout, stderr) = (opts.stdout, opts.stderr);
        let stream = stream
            .filter_map(move |item| {
                let keep = match item {
                    Ok(e) => {
                        let n = if e.stream == StreamKind::Stdout { 1 } else { 2 };
                        ((n == 1 && stdout) || (n == 2 && stderr)).then_some(Ok(LogChunk {
                            stream: n,
                            timestamp: e.timestamp,
                            bytes: e.bytes,
                        }))
                    }
                    Err(e) => Some(Err(EngineError::from_classified(&e))),
                };
                futures_util::future::ready(keep)
            })
            .boxed();
        Ok(Logs { tty: r.tty(), stream })
    }

    async fn attach(&self, id: &str, opts: AttachOptions) -> Result<AttachSession, EngineError> {
        let h = self.lookup(id)?;
        super::attach::attach(self, h, opts).await
    }

    async fn resize(&self, id: &str, height: u16, width: u16) -> Result<(), EngineError> {
        let h = self.lookup(id)?;
        let client = h.shim().ok_or_else(|| EngineError::conflict(format!("Container {} is not running", h.id)))?;
        client.resize(height, width).await.map_err(|e| EngineError::internal(e.to_string()))
    }

    async fn stats(
        &self,
        id: &str,
        stream: bool,
        one_shot: bool,
    ) -> Result<futures_util::stream::BoxStream<'static, serde_json::Value>, EngineError> {
        use super::stats;
        let h = self.lookup(id)?;
        let r = h.record();
        if !r.state.status.is_running() {
            return Ok(futures_util::stream::once(async move { stats::empty(&r) }).boxed());
        }
        let paths = stats::CgroupPaths::new(&self.ctx.cgroup_parent, &r);
        if one_shot {
            return Ok(futures_util::stream::once(async move { stats::sample(&paths, &r) }).boxed());
        }
        let mut exits = h.exits.subscribe();
        let exits_now = exits.borrow().exits;
        let first = stats::sample(&paths, &r);
        let s =
            futures_util::stream::unfold((first, paths, h, true), move |(prev, paths, h, first_round)| async move {
                if !first_round && !stream {
                    return None;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let r = h.record();
                if !r.state.status.is_running() {
                    return None;
                }
                let mut next = stats::sample(&paths, &r);
                stats::chain(&prev, &mut next);
                Some((next.clone(), (next, paths, h, false)))
            })
            .take_until(async move {
                let _ = exits.wait_for(|w| w.exits > exits_now || w.removed).await;
            });
        Ok(s.boxed())
    }

    async fn prune(&self, filters: Filters) -> Result<ContainerPruneResponse, EngineError> {
        filters.validate(&["label", "label!", "until"])?;
        let until = filters.get("until").next().map(parse_until).transpose()?;
        let mut deleted = Vec::new();
        let mut reclaimed: i64 = 0;
        for h in self.handles() {
            let r = h.record();
            if !matches!(r.state.status, Status::Created | Status::Exited | Status::Dead) {
                continue;
            }
            if !filters.match_labels(&r.labels()) {
                continue;
            }
            if let Some(u) = until
                && chrono::DateTime::parse_from_rfc3339(&r.created).map(|c| c.timestamp()).unwrap_or(0) >= u
            {
                continue;
            }
            let snapshotter = self.ctx.images.snapshotter();
            let key = r.rw_layer.clone();
            let size = tokio::task::spawn_blocking(move || snapshotter.usage(&key).map(|u| u.size as i64).unwrap_or(0))
                .await
                .unwrap_or(0);
            if self.ask(&h, |reply| Op::Remove { force: false, volumes: false, reply }).await.is_ok() {
                deleted.push(r.id.to_string());
                reclaimed += size;
            }
        }
        self.ctx.events.publish(wharf_types::Event::now(
            wharf_types::EventType::Container,
            "prune",
            "",
            HashMap::from([("reclaimed".to_owned(), reclaimed.to_string())]).into_iter().collect(),
        ));
        Ok(ContainerPruneResponse { containers_deleted: Some(deleted), space_reclaimed: Some(reclaimed) })
    }
}

/// `until` for prune: a Unix timestamp, an RFC 3339 date, or a Go duration back from now.
pub fn parse_until(v: &str) -> Result<i64, EngineError> {
    let bad = || EngineError::invalid(format!("failed to parse value as time or duration: \"{v}\""));
    if let Ok(secs) = v.split('.').next().unwrap_or("").parse::<i64>() {
        return Ok(secs);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp());
    }
    let nanos = wharf_types::units::parse_go_duration(v).map_err(|_| bad())?;
    Ok(chrono::Utc::now().timestamp() - nanos / 1_000_000_000)
}
