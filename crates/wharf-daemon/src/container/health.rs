//! Healthchecks: while a container runs (its health set to `starting` by the start itself),
//! its probe (`HEALTHCHECK` / `--health-*`) runs every
//! interval through the shim like an exec. Docker's rules: status starts `starting`; a success
//! makes it `healthy` and resets the failing streak; `retries` consecutive failures make it
//! `unhealthy`, except that failures inside the start period do not count; a probe that
//! outlives its timeout fails. Each status change is persisted (through the supervisor) and
//! published as `health_status: <status>`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use wharf_api::models::HealthConfig;
use wharf_runtime::shim::ExecOptions;
use wharf_types::{Event, EventType, ExecId};

use super::model::{Health, HealthLog, Status};

use super::supervisor::Op;
use super::{ContainerService, Handle, now_rfc3339};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
const MAX_LOG_ENTRIES: usize = 5;
const MAX_OUTPUT: usize = 4096;

/// The probe command, or `None` when the container has no (or a disabled) healthcheck.
pub fn probe_args(hc: &HealthConfig, shell: &[String]) -> Option<Vec<String>> {
    let test = hc.test.as_ref()?;
    match test.first().map(String::as_str) {
        Some("CMD") if test.len() > 1 => Some(test[1..].to_vec()),
        Some("CMD-SHELL") if test.len() > 1 => {
            let mut args = if shell.is_empty() { vec!["/bin/sh".to_owned(), "-c".to_owned()] } else { shell.to_vec() };
            args.push(test[1..].join(" "));
            Some(args)
        }
        _ => None,
    }
}

fn dur(ns: Option<i64>, default: Duration) -> Duration {
    match ns {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

/// Runs the health monitor of a started container until it stops.
pub async fn monitor(svc: Weak<ContainerService>, h: Arc<Handle>) {
    let r = h.record();
    let Some(hc) = r.config.healthcheck.clone() else { return };
    let Some(args) = probe_args(&hc, &r.config.shell.clone().unwrap_or_default()) else { return };
    let interval = dur(hc.interval, DEFAULT_INTERVAL);
    let timeout = dur(hc.timeout, DEFAULT_TIMEOUT);
    let start_period = dur(hc.start_period, Duration::ZERO);
    let start_interval = dur(hc.start_interval, DEFAULT_START_INTERVAL);
    let retries = hc.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES);
    let started = tokio::time::Instant::now();
    let mut exits = h.exits.subscribe();
    let exits_now = exits.borrow().exits;
    loop {
        let in_start = started.elapsed() < start_period;
        let wait = if in_start && hc.start_interval.unwrap_or(0) > 0 { start_interval } else { interval };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = exits.wait_for(|w| w.exits > exits_now || w.removed) => return,
        }
        let Some(service) = svc.upgrade() else { return };
        if h.record().state.status != Status::Running {
            if h.record().state.status == Status::Paused {
                continue;
            }
            return;
        }
        let start = now_rfc3339();
        let (code, output) = service.probe(&h, &args, timeout).await;
        drop(service);
        let end = now_rfc3339();
        let mut health = h.record().state.health.unwrap_or_default();
        let previous = health.status.clone();
        health.log.push(HealthLog { start, end, exit_code: code, output });
        if health.log.len() > MAX_LOG_ENTRIES {
            let extra = health.log.len() - MAX_LOG_ENTRIES;
            health.log.drain(..extra);
        }
        if code == 0 {
            health.status = "healthy".into();
            health.failing_streak = 0;
        } else if started.elapsed() >= start_period {
            health.failing_streak += 1;
            if health.failing_streak >= retries {
                health.status = "unhealthy".into();
            }
        }
        let changed = (previous != health.status).then(|| health.status.clone());
        set_health(&svc, &h, health, changed).await;
    }
}

async fn set_health(svc: &Weak<ContainerService>, h: &Handle, health: Health, changed: Option<String>) {
    let Some(service) = svc.upgrade() else { return };
    let res = service
        .ask(h, |reply| Op::Update {
            change: Box::new(move |r| {
                r.state.health = Some(health);
                Ok(())
            }),
            reply,
        })
        .await;
    if res.is_ok()
        && let Some(status) = changed
    {
        let r = h.record();
        service.ctx.events.publish(Event::now(
            EventType::Container,
            format!("health_status: {status}"),
            r.id.as_str(),
            r.event_attributes(),
        ));
    }
}

impl ContainerService {
    /// Runs a probe in the container; returns its exit code (-1 on timeout or failure to run)
    /// and its output (at most 4 KiB).
    pub(crate) async fn probe(&self, h: &Handle, args: &[String], timeout: Duration) -> (i64, String) {
        let Some(client) = h.shim() else { return (-1, "container not running".into()) };
        let cfg = wharf_api::models::ExecConfig { cmd: Some(args.to_vec()), ..Default::default() };
        let process = match self.exec_process_for(h, &cfg, false, None).await {
            Ok(p) => p,
            Err(e) => return (-1, e.message),
        };
        let exec_id = ExecId::random().to_string();
        let run = async {
            let handle = client
                .exec(ExecOptions { exec_id, process, tty: false, stdin: false })
                .await
                .map_err(|e| e.to_string())?;
            let (mut output, _, exit) = handle.into_parts();
            let mut out = Vec::new();
            while let Some(Ok((_, data))) = output.next().await {
                if out.len() < MAX_OUTPUT {
                    out.extend_from_slice(&data[..data.len().min(MAX_OUTPUT - out.len())]);
                }
            }
            let code = exit.await.map(|s| i64::from(s.code)).map_err(|e| e.to_string())?;
            Ok::<_, String>((code, String::from_utf8_lossy(&out).into_owned()))
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => (-1, e),
            Err(_) => (-1, format!("Health check exceeded timeout ({timeout:?})")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_forms() {
        let hc =
            |t: &[&str]| HealthConfig { test: Some(t.iter().map(|s| s.to_string()).collect()), ..Default::default() };
        assert_eq!(probe_args(&hc(&["CMD", "true"]), &[]).unwrap(), vec!["true"]);
        assert_eq!(probe_args(&hc(&["CMD-SHELL", "exit 1"]), &[]).unwrap(), vec!["/bin/sh", "-c", "exit 1"]);
        assert!(probe_args(&hc(&["NONE"]), &[]).is_none());
        assert!(probe_args(&hc(&[]), &[]).is_none());
    }
}
