//! One task per container, the only code that changes its state (STYLE 10).
//!
//! The loop waits for three things: an [`Op`] from the API, the exit of the running process
//! (through its shim), and the timer of a restart policy. Restart semantics follow moby's
//! restart manager: back-off from 100 ms doubling to 1 min, reset after 10 s of running;
//! `always` restarts unless cancelled by a stop/kill, `unless-stopped` also not after a manual
//! stop, `on-failure[:N]` on a non-zero exit while fewer than N restarts were made.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use wharf_api::models::RestartPolicyNameEnum;
use wharf_runtime::shim::ShimClient;
use wharf_runtime::shim::protocol::ExitStatus;
use wharf_types::{Classify, EngineError, Event, EventType};

use super::model::{ContainerRecord, Status, ZERO_TIME};
use super::{Ctx, Handle, internal, now_rfc3339, run};

pub type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

/// A change to a container's record, applied (and persisted) by its supervisor.
pub type Change = Box<dyn FnOnce(&mut ContainerRecord) -> Result<(), EngineError> + Send>;

/// Requests to a container's supervisor.
pub enum Op {
    Start(Reply<()>),
    /// `timeout`: seconds (`-1`: wait forever); `signal`: overrides the stop signal.
    Stop {
        timeout: Option<i64>,
        signal: Option<i32>,
        reply: Reply<()>,
    },
    Kill {
        signal: i32,
        reply: Reply<()>,
    },
    Restart {
        timeout: Option<i64>,
        signal: Option<i32>,
        reply: Reply<()>,
    },
    Pause(Reply<()>),
    Unpause(Reply<()>),
    Rename {
        name: String,
        reply: Reply<()>,
    },
    /// `volumes`: also remove the container's anonymous volumes (`rm -v`, `--rm`).
    Remove {
        force: bool,
        volumes: bool,
        reply: Reply<()>,
    },
    /// Applies a change to the record (update, health) and persists it.
    Update {
        change: Change,
        reply: Reply<()>,
    },
}

const DEFAULT_STOP_TIMEOUT: i64 = 10;
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

struct Supervisor {
    ctx: Arc<Ctx>,
    h: Arc<Handle>,
    exit: Option<BoxFuture<'static, Result<ExitStatus, wharf_runtime::shim::ShimError>>>,
    restart_at: Option<Instant>,
    backoff: Duration,
    /// moby's `ExitOnNext`: the next exit must not trigger the restart policy.
    restart_cancelled: bool,
    started: Option<Instant>,
}

enum Flow {
    Continue,
    Removed,
}

/// The supervisor loop.
pub async fn run(ctx: Arc<Ctx>, h: Arc<Handle>, mut rx: mpsc::Receiver<Op>) {
    let mut sv = Supervisor {
        ctx,
        h,
        exit: None,
        restart_at: None,
        backoff: Duration::ZERO,
        restart_cancelled: false,
        started: None,
    };
    if let Some(client) = sv.h.shim() {
        // Reconnected after a daemon restart: watch its exit and resume its healthcheck.
        sv.watch_exit(client);
        sv.started = Some(Instant::now());
        tokio::spawn(super::health::monitor(sv.ctx.containers.clone(), sv.h.clone()));
    }
    loop {
        let restart_sleep = async {
            match sv.restart_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let exit = async {
            match sv.exit.as_mut() {
                Some(f) => f.await,
                None => std::future::pending().await,
            }
        };
        let flow = tokio::select! {
            op = rx.recv() => match op {
                Some(op) => sv.handle(op).await,
                None => break,
            },
            status = exit => {
                sv.exit = None;
                sv.on_exit(status).await
            }
            _ = restart_sleep => {
                sv.restart_at = None;
                sv.policy_restart().await;
                Flow::Continue
            }
        };
        // Removal can also follow a failed start of a `--rm` container.
        if matches!(flow, Flow::Removed) || sv.h.exits.borrow().removed {
            break;
        }
    }
}

impl Supervisor {
    fn record(&self) -> ContainerRecord {
        self.h.record()
    }

    /// Persists a changed record, then publishes it to readers.
    fn commit(&self, r: ContainerRecord) -> Result<(), EngineError> {
        if let Some(svc) = self.ctx.containers.upgrade() {
            svc.persist(&r)?;
        }
        self.h.set_record(r);
        Ok(())
    }

    fn event(&self, action: &str, extra: &[(&str, String)]) {
        let r = self.record();
        let mut attrs = r.event_attributes();
        for (k, v) in extra {
            attrs.insert((*k).to_owned(), v.clone());
        }
        self.ctx.events.publish(Event::now(EventType::Container, action, r.id.as_str(), attrs));
    }

    fn watch_exit(&mut self, client: ShimClient) {
        self.exit = Some(Box::pin(async move { client.wait().await }));
    }

    fn not_running(&self) -> EngineError {
        EngineError::conflict(format!("Container {} is not running", self.h.id))
    }

    async fn handle(&mut self, op: Op) -> Flow {
        match op {
            Op::Start(reply) => {
                let _ = reply.send(self.start(true).await);
            }
            Op::Stop { timeout, signal, reply } => {
                let r = self.stop(timeout, signal).await;
                let _ = reply.send(r);
            }
            Op::Kill { signal, reply } => {
                let _ = reply.send(self.kill(signal).await);
            }
            Op::Restart { timeout, signal, reply } => {
                let r = match self.stop(timeout, signal).await {
                    Ok(()) | Err(EngineError { kind: wharf_types::ErrorKind::NotModified, .. }) => {
                        self.start(true).await
                    }
                    Err(e) => Err(e),
                };
                if r.is_ok() {
                    self.event("restart", &[]);
                }
                let _ = reply.send(r);
            }
            Op::Pause(reply) => {
                let _ = reply.send(self.pause(true).await);
            }
            Op::Unpause(reply) => {
                let _ = reply.send(self.pause(false).await);
            }
            Op::Rename { name, reply } => {
                let mut r = self.record();
                let old = std::mem::replace(&mut r.name, name);
                let res = self.commit(r);
                if res.is_ok() {
                    self.event("rename", &[("oldName", format!("/{old}"))]);
                }
                let _ = reply.send(res);
            }
            Op::Update { change, reply } => {
                let mut r = self.record();
                let res = change(&mut r).and_then(|()| self.commit(r));
                let _ = reply.send(res);
            }
            Op::Remove { force, volumes, reply } => {
                let res = self.remove(force, volumes).await;
                let removed = res.is_ok();
                let _ = reply.send(res);
                if removed {
                    return Flow::Removed;
                }
            }
        }
        Flow::Continue
    }

    /// Starts the process. `explicit`: asked for by a user (resets the restart manager).
    async fn start(&mut self, explicit: bool) -> Result<(), EngineError> {
        let mut r = self.record();
        match r.state.status {
            Status::Running | Status::Paused => return Err(EngineError::not_modified()),
            Status::Removing | Status::Dead => {
                return Err(EngineError::conflict(format!(
                    "Container {} is marked for removal and cannot be started.",
                    r.id
                )));
            }
            _ => {}
        }
        if explicit {
            self.restart_at = None;
            self.restart_cancelled = false;
            self.backoff = Duration::ZERO;
            r.manually_stopped = false;
        }
        let svc = self.ctx.containers.upgrade();
        let peer = move |key: &str, ns: &str| -> Result<std::path::PathBuf, EngineError> {
            let svc = svc.clone().ok_or_else(|| EngineError::internal("daemon shutting down"))?;
            let other = svc.lookup(key)?;
            let or = other.record();
            if !or.state.status.is_running() {
                return Err(EngineError::conflict(format!(
                    "cannot join network namespace of a non running container: container {} is {}",
                    or.id,
                    or.state.status.as_str()
                )));
            }
            if ns == "net" && run::own_netns(&or) {
                return Ok(run::layout(&svc.ctx, &or).netns);
            }
            Ok(std::path::PathBuf::from(format!("/proc/{}/ns/{ns}", or.state.pid)))
        };
        let started = match run::create(&self.ctx, &r, &peer).await {
            Ok(client) => {
                self.h.connect_pending_attaches(&client).await;
                run::begin(&self.ctx, &r, &client).await.map(|()| client)
            }
            Err(e) => Err(e),
        };
        match started {
            Ok(client) => {
                r.state.status = Status::Running;
                r.state.pid = i64::from(client.pid());
                r.state.started_at = now_rfc3339();
                r.state.finished_at = ZERO_TIME.to_owned();
                r.state.error.clear();
                r.state.exit_code = 0;
                r.state.oom_killed = false;
                r.has_been_started = true;
                if r.config.healthcheck.as_ref().and_then(|hc| super::health::probe_args(hc, &[])).is_some() {
                    r.state.health = Some(super::model::Health { status: "starting".into(), ..Default::default() });
                }
                *self.h.shim.lock().unwrap_or_else(|p| p.into_inner()) = Some(client.clone());
                self.watch_exit(client);
                self.started = Some(Instant::now());
                self.commit(r)?;
                self.h.exits.send_modify(|w| w.running = true);
                self.event("start", &[]);
                tokio::spawn(super::health::monitor(self.ctx.containers.clone(), self.h.clone()));
                Ok(())
            }
            Err(e) => {
                // Attach sessions waiting for this start end now (their clients see EOF).
                self.h.pending_attach.lock().unwrap_or_else(|p| p.into_inner()).clear();
                // As Docker: the container exits with 127/126/128 and keeps the error.
                r.state.status = if r.has_been_started { Status::Exited } else { Status::Created };
                r.state.error = e.message.clone();
                r.state.exit_code = start_exit_code(&e.message);
                let auto_remove = r.host_config.auto_remove == Some(true);
                let _ = self.commit(r);
                // `run --rm` waits for the removal after a failed start (moby removes it too).
                if auto_remove && let Err(re) = Box::pin(self.remove(true, true)).await {
                    tracing::warn!(container = %self.h.id, error = %re.message, "removing a container that failed to start");
                }
                Err(e)
            }
        }
    }

    async fn stop(&mut self, timeout: Option<i64>, signal: Option<i32>) -> Result<(), EngineError> {
        let mut r = self.record();
        if r.state.status == Status::Restarting {
            self.restart_at = None;
            r.state.status = Status::Exited;
            r.manually_stopped = true;
            self.commit(r)?;
            self.event("stop", &[]);
            return Ok(());
        }
        if !r.state.status.is_running() {
            return Err(EngineError::not_modified());
        }
        let stop_signal =
            signal.or_else(|| r.config.stop_signal.as_deref().and_then(wharf_types::signal::parse)).unwrap_or(15);
        let timeout = timeout.or(r.config.stop_timeout).unwrap_or(DEFAULT_STOP_TIMEOUT);
        self.restart_cancelled = true;
        r.manually_stopped = true;
        self.commit(r)?;
        self.signal(stop_signal).await?;
        let exited = if timeout < 0 {
            self.wait_own_exit(None).await
        } else {
            self.wait_own_exit(Some(Duration::from_secs(timeout as u64))).await
        };
        if !exited {
            self.signal(9).await?;
            self.wait_own_exit(None).await;
        }
        self.event("stop", &[]);
        Ok(())
    }

    /// Sends a signal to the init process (unpausing first, as a frozen process cannot act on it).
    async fn signal(&mut self, sig: i32) -> Result<(), EngineError> {
        if self.record().state.status == Status::Paused && (sig == 9 || sig == 15) {
            self.pause(false).await?;
        }
        let client = self.h.shim().ok_or_else(|| self.not_running())?;
        self.event("kill", &[("signal", sig.to_string())]);
        if let Err(e) = client.kill(sig).await {
            // The process may have exited on its own a moment ago (moby ignores "not found"
            // here too): that is only an error if it is still running.
            if !self.wait_own_exit(Some(Duration::from_secs(2))).await {
                return Err(EngineError::internal(format!("Cannot kill container {}: {e}", self.h.id)));
            }
        }
        Ok(())
    }

    /// Waits for the running process to exit (processing the exit), up to `limit`.
    async fn wait_own_exit(&mut self, limit: Option<Duration>) -> bool {
        let Some(fut) = self.exit.as_mut() else {
            return true;
        };
        let status = match limit {
            Some(d) => match tokio::time::timeout(d, fut).await {
                Ok(s) => s,
                Err(_) => return false,
            },
            None => fut.await,
        };
        self.exit = None;
        // Boxed: an exit may auto-remove, and removal may wait for an exit.
        let _ = Box::pin(self.on_exit(status)).await;
        true
    }

    async fn kill(&mut self, sig: i32) -> Result<(), EngineError> {
        let r = self.record();
        if !r.state.status.is_running() && r.state.status != Status::Restarting {
            return Err(EngineError::conflict(format!(
                "Cannot kill container: {}: Container {} is not running",
                r.name, r.id
            )));
        }
        let stop_signal = r.config.stop_signal.as_deref().and_then(wharf_types::signal::parse);
        if sig == 9 || stop_signal.is_none_or(|s| s == sig) {
            self.restart_cancelled = true;
        }
        let mut r2 = r.clone();
        r2.manually_stopped = true;
        self.commit(r2)?;
        if r.state.status == Status::Restarting {
            self.restart_at = None;
            let mut r3 = self.record();
            r3.state.status = Status::Exited;
            self.commit(r3)?;
            return Ok(());
        }
        self.signal(sig).await
    }

    async fn pause(&mut self, pause: bool) -> Result<(), EngineError> {
        let mut r = self.record();
        match (pause, r.state.status) {
            (true, Status::Paused) => {
                return Err(EngineError::conflict(format!("Container {} is already paused", r.id)));
            }
            (false, Status::Running) => {
                return Err(EngineError::conflict(format!("Container {} is not paused", r.id)));
            }
            (_, s) if !s.is_running() => return Err(self.not_running()),
            _ => {}
        }
        let mut runtime = (self.ctx.runtimes)(&r.runtime).ok_or_else(|| EngineError::internal("runtime vanished"))?;
        runtime.root = self.ctx.paths.runtime_root(&r.runtime);
        let res = if pause { runtime.pause(r.id.as_str()).await } else { runtime.resume(r.id.as_str()).await };
        res.map_err(|e| EngineError::internal(e.to_string()))?;
        r.state.status = if pause { Status::Paused } else { Status::Running };
        self.commit(r)?;
        self.event(if pause { "pause" } else { "unpause" }, &[]);
        Ok(())
    }

    /// Records an exit and applies the restart policy or auto-removal.
    async fn on_exit(&mut self, status: Result<ExitStatus, wharf_runtime::shim::ShimError>) -> Flow {
        let mut r = self.record();
        let (code, oom, finished, error) = match status {
            Ok(s) => (i64::from(s.code), s.oom_killed, s.exited_at, String::new()),
            Err(e) => (255, false, now_rfc3339(), e.to_string()),
        };
        // The network and mounts are torn down after `die` (below), as Docker orders the events.
        let shim = self.h.shim.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(client) = shim {
            // The shim answers once the runtime has deleted its state, so a restart can reuse the id.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), client.shutdown()).await;
        }
        let cgroups = super::stats::CgroupPaths::new(&self.ctx.cgroup_parent, &r);
        let _ = tokio::task::spawn_blocking(move || cgroups.remove_leftovers()).await;
        r.state.status = Status::Exited;
        r.state.pid = 0;
        r.state.exit_code = code;
        r.state.oom_killed = oom;
        r.state.finished_at = finished;
        r.state.error = error;
        if let Some(h) = r.state.health.as_mut() {
            h.status = "unhealthy".into();
        }
        let ran_for = self.started.take().map(|s| s.elapsed()).unwrap_or_default();
        let restart = !self.restart_cancelled && should_restart(&r, code, ran_for);
        if restart {
            r.state.status = Status::Restarting;
        }
        if let Err(e) = self.commit(r.clone()) {
            tracing::error!(container = %r.id, error = %e, "recording an exit failed");
        }
        if oom {
            self.event("oom", &[]);
        }
        self.event("die", &[("exitCode", code.to_string())]);
        // After `die`, as Docker orders it: `network disconnect` comes from the teardown.
        run::teardown(&self.ctx, &r).await;
        self.h.exits.send_modify(|w| {
            w.exits += 1;
            w.code = code;
            w.running = false;
        });
        self.restart_cancelled = false;
        if restart {
            if ran_for >= Duration::from_secs(10) {
                self.backoff = Duration::ZERO;
            }
            self.backoff = if self.backoff.is_zero() { BACKOFF_START } else { (self.backoff * 2).min(BACKOFF_MAX) };
            self.restart_at = Some(Instant::now() + self.backoff);
            return Flow::Continue;
        }
        if r.host_config.auto_remove == Some(true) {
            if let Err(e) = self.remove(true, true).await {
                tracing::error!(container = %r.id, error = %e, "auto-removal failed");
                return Flow::Continue;
            }
            return Flow::Removed;
        }
        Flow::Continue
    }

    async fn policy_restart(&mut self) {
        let mut r = self.record();
        r.restart_count += 1;
        r.state.status = Status::Exited;
        if self.commit(r.clone()).is_err() {
            return;
        }
        if let Err(e) = self.start(false).await {
            tracing::warn!(container = %r.id, error = %e.message, "restart by policy failed");
            let code = start_exit_code(&e.message);
            if should_restart(&self.record(), code, Duration::ZERO) {
                self.backoff = (self.backoff * 2).clamp(BACKOFF_START, BACKOFF_MAX);
                self.restart_at = Some(Instant::now() + self.backoff);
            }
        }
    }

    async fn remove(&mut self, force: bool, volumes: bool) -> Result<(), EngineError> {
        let r = self.record();
        if r.state.status.is_running() {
            if !force {
                let what = if r.state.status == Status::Paused { "paused" } else { "running" };
                return Err(EngineError::conflict(format!(
                    "You cannot remove a {what} container {}. Stop the container before attempting removal or force remove",
                    r.id
                )));
            }
            self.restart_cancelled = true;
            self.signal(9).await?;
            self.wait_own_exit(None).await;
        }
        self.restart_at = None;
        let mut r = self.record();
        r.state.status = Status::Removing;
        self.h.set_record(r.clone());
        run::teardown(&self.ctx, &r).await;
        run::remove_run_dir(&self.ctx, &r).await;
        let snapshotter = self.ctx.images.snapshotter();
        let key = r.rw_layer.clone();
        let removed = tokio::task::spawn_blocking(move || snapshotter.remove(&key)).await.map_err(internal)?;
        if let Err(e) = removed
            && e.kind() != wharf_types::ErrorKind::NotFound
        {
            let mut back = r.clone();
            back.state.status = Status::Dead;
            let _ = self.commit(back);
            return Err(EngineError::from_classified(&e));
        }
        let _ = tokio::fs::remove_dir_all(self.ctx.paths.container_dir(&r.id)).await;
        if let Some(svc) = self.ctx.containers.upgrade() {
            svc.delete_row(&r.id)?;
            svc.forget(&r.id);
        }
        let (vols, id, points) = (self.ctx.volumes.clone(), r.id.to_string(), r.mount_points.clone());
        let _ = tokio::task::spawn_blocking(move || vols.forget(&id, &points, volumes)).await;
        self.event("destroy", &[]);
        self.h.exits.send_modify(|w| w.removed = true);
        Ok(())
    }
}

/// moby's restart manager decision (without the cancellation, tracked by the supervisor).
pub fn should_restart(r: &ContainerRecord, exit_code: i64, _ran_for: Duration) -> bool {
    let policy = r.host_config.restart_policy.clone().unwrap_or_default();
    match policy.name.unwrap_or(RestartPolicyNameEnum::EMPTY) {
        RestartPolicyNameEnum::ALWAYS => true,
        RestartPolicyNameEnum::UNLESS_STOPPED => !r.manually_stopped,
        RestartPolicyNameEnum::ON_FAILURE => {
            let max = policy.maximum_retry_count.unwrap_or(0);
            exit_code != 0 && (max == 0 || r.restart_count < max)
        }
        _ => false,
    }
}

/// The exit code Docker records for a failed start (what the CLI would print).
fn start_exit_code(message: &str) -> i64 {
    if message.contains("executable file not found") || message.contains("no such file or directory") {
        127
    } else if message.contains("permission denied") {
        126
    } else {
        128
    }
}
