//! Live restore: at daemon start every container is loaded; those that were running are
//! reconnected to their shims (which kept them alive), and exits that happened while the daemon
//! was down are collected — the supervisor then applies restart policies as for any exit.
//! Containers whose policy asks for it (`always`; `unless-stopped` unless stopped by the user;
//! `on-failure` after a failure) are started, as Docker does after a host reboot.

use std::sync::Arc;

use wharf_api::models::RestartPolicyNameEnum;
use wharf_runtime::shim::ShimClient;

use super::model::{Status, ZERO_TIME};
use super::supervisor::{Op, should_restart};
use super::{ContainerService, now_rfc3339, run};

/// Reconnects and restarts containers; returns how many were reconnected alive.
pub async fn restore(svc: &Arc<ContainerService>) -> usize {
    let records = match svc.load_all() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot load containers");
            return 0;
        }
    };
    let mut alive = 0;
    let mut to_start = Vec::new();
    for mut r in records {
        let was_running = matches!(r.state.status, Status::Running | Status::Paused | Status::Restarting);
        if r.state.status == Status::Removing {
            r.state.status = Status::Dead;
        }
        if was_running {
            let l = run::layout(&svc.ctx, &r);
            match ShimClient::connect(&l.shim_state).await {
                Ok(client) => {
                    tracing::info!(container = %r.id, "reconnected to a running container");
                    alive += 1;
                    svc.ctx.volumes.restore_active(r.id.as_str(), &r.mount_points);
                    svc.install(r, Some(client));
                    continue;
                }
                Err(e) => {
                    tracing::info!(container = %r.id, error = %e, "container's shim is gone; recording its exit");
                    let exit = ShimClient::exit_status_in(&l.shim_state).await.ok().flatten();
                    run::teardown(&svc.ctx, &r).await;
                    r.state.status = Status::Exited;
                    r.state.pid = 0;
                    match exit {
                        Some(s) => {
                            r.state.exit_code = i64::from(s.code);
                            r.state.finished_at = s.exited_at;
                            r.state.oom_killed = s.oom_killed;
                        }
                        None => {
                            r.state.exit_code = 255;
                            r.state.finished_at = now_rfc3339();
                        }
                    }
                    if r.state.started_at == ZERO_TIME {
                        r.state.started_at = r.state.finished_at.clone();
                    }
                    if let Err(e) = svc.persist(&r) {
                        tracing::error!(container = %r.id, error = %e, "recording a missed exit failed");
                    }
                }
            }
        }
        let policy = r.host_config.restart_policy.as_ref().and_then(|p| p.name).unwrap_or(RestartPolicyNameEnum::EMPTY);
        let restart = r.state.status == Status::Exited
            && r.has_been_started
            && match policy {
                // `always` ignores a manual stop across daemon restarts, as Docker does.
                RestartPolicyNameEnum::ALWAYS => true,
                _ => should_restart(&r, r.state.exit_code, std::time::Duration::ZERO),
            };
        let id = r.id.clone();
        svc.install(r, None);
        if restart {
            to_start.push(id);
        }
    }
    for id in to_start {
        if let Ok(h) = svc.lookup(id.as_str()) {
            let res = svc.ask(&h, Op::Start).await;
            if let Err(e) = res {
                tracing::warn!(container = %id, error = %e.message, "restart at daemon start failed");
            }
        }
    }
    alive
}
