//! `docker update` (`POST /containers/{id}/update`): resources and the restart policy, as moby's
//! `ContainerUpdate` and `Container.UpdateContainer` do it:
//! - the request is checked like a create's resources (Docker's messages and warnings);
//! - zero fields leave the current value (the CLI sends every field); `PidsLimit` is applied
//!   whenever given (0 or less: unlimited);
//! - Nano CPUs and CPU period/quota exclude each other across the old and new values; memory
//!   above an existing swap limit needs the swap updated too;
//! - the record is changed by the supervisor (persisted for the next start) and, when the
//!   container is running, the runtime's `update` applies the new cgroup limits at once; if it
//!   fails, the old values are put back.

use oci_spec::runtime::LinuxResources;
use wharf_api::models::{ContainerUpdateBody, ContainerUpdateResponse, HostConfig, RestartPolicyNameEnum};
use wharf_runtime::spec::resources::{Resources, check_resources, resources_entry};
use wharf_types::{EngineError, Event, EventType};

use super::ContainerService;
use super::model::Status;
use super::supervisor::Op;

fn conflict(id: &str, msg: &str) -> EngineError {
    EngineError::conflict(format!("Cannot update container {id}: {msg}"))
}

/// The update's resources as the runtime crate checks them.
fn body_resources(b: &ContainerUpdateBody) -> Resources {
    Resources {
        memory: b.memory.unwrap_or(0),
        memory_swap: b.memory_swap.unwrap_or(0),
        memory_reservation: b.memory_reservation.unwrap_or(0),
        memory_swappiness: None,
        oom_kill_disable: None,
        nano_cpus: b.nano_cpus.unwrap_or(0),
        cpu_shares: b.cpu_shares.unwrap_or(0),
        cpu_period: b.cpu_period.unwrap_or(0),
        cpu_quota: b.cpu_quota.unwrap_or(0),
        cpuset_cpus: b.cpuset_cpus.clone().unwrap_or_default(),
        cpuset_mems: b.cpuset_mems.clone().unwrap_or_default(),
        pids_limit: b.pids_limit,
        blkio_weight: b.blkio_weight.unwrap_or(0),
    }
}

/// A container's current resources.
pub fn host_resources(hc: &HostConfig) -> Resources {
    Resources {
        memory: hc.memory.unwrap_or(0),
        memory_swap: hc.memory_swap.unwrap_or(0),
        memory_reservation: hc.memory_reservation.unwrap_or(0),
        memory_swappiness: hc.memory_swappiness.filter(|v| *v >= 0),
        oom_kill_disable: hc.oom_kill_disable,
        nano_cpus: hc.nano_cpus.unwrap_or(0),
        cpu_shares: hc.cpu_shares.unwrap_or(0),
        cpu_period: hc.cpu_period.unwrap_or(0),
        cpu_quota: hc.cpu_quota.unwrap_or(0),
        cpuset_cpus: hc.cpuset_cpus.clone().unwrap_or_default(),
        cpuset_mems: hc.cpuset_mems.clone().unwrap_or_default(),
        pids_limit: hc.pids_limit.filter(|v| *v != 0),
        blkio_weight: hc.blkio_weight.unwrap_or(0),
    }
}

/// Checks `b` (Docker's `verifyContainerSettings` for an update); returns the warnings and
/// the swap value to record when the host cannot limit swap.
fn verify(b: &ContainerUpdateBody) -> Result<(Vec<String>, Option<i64>), EngineError> {
    let mut r = body_resources(b);
    // An update may set the swap alone (the memory limit is the container's).
    let swap_only = r.memory == 0 && r.memory_swap > 0;
    if swap_only {
        r.memory_swap = 0;
    }
    let requested_swap = r.memory_swap;
    let warnings = check_resources(&mut r, wharf_runtime::spec::HostInfo::current())
        .map_err(|e| EngineError::invalid(e.to_string()))?;
    let swap = (r.memory_swap == -1 && requested_swap != -1 && b.memory.unwrap_or(0) > 0).then_some(-1);
    if let Some(rp) = &b.restart_policy {
        let name = rp.name.unwrap_or(RestartPolicyNameEnum::EMPTY);
        let max = rp.maximum_retry_count.unwrap_or(0);
        if name == RestartPolicyNameEnum::ON_FAILURE && max < 0 {
            return Err(EngineError::invalid("invalid restart policy: maximum retry count cannot be negative"));
        }
        if name != RestartPolicyNameEnum::ON_FAILURE && name != RestartPolicyNameEnum::EMPTY && max != 0 {
            return Err(EngineError::invalid(format!(
                "invalid restart policy: maximum retry count can only be used with 'on-failure', got '{name}'"
            )));
        }
    }
    Ok((warnings, swap))
}

/// moby's `UpdateContainer`: applies the non-zero fields of `b` to `hc`.
pub fn apply(id: &str, hc: &mut HostConfig, b: &ContainerUpdateBody, swap: Option<i64>) -> Result<(), EngineError> {
    let cur = |v: Option<i64>| v.unwrap_or(0);
    let new = |v: Option<i64>| v.unwrap_or(0);
    if new(b.nano_cpus) > 0 && cur(hc.cpu_period) > 0 {
        return Err(conflict(
            id,
            "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set",
        ));
    }
    if new(b.nano_cpus) > 0 && cur(hc.cpu_quota) > 0 {
        return Err(conflict(id, "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set"));
    }
    if new(b.cpu_period) > 0 && cur(hc.nano_cpus) > 0 {
        return Err(conflict(id, "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"));
    }
    if new(b.cpu_quota) > 0 && cur(hc.nano_cpus) > 0 {
        return Err(conflict(id, "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"));
    }
    if let Some(w) = b.blkio_weight.filter(|w| *w != 0) {
        hc.blkio_weight = Some(w);
    }
    for (dst, src) in [
        (&mut hc.cpu_shares, b.cpu_shares),
        (&mut hc.nano_cpus, b.nano_cpus),
        (&mut hc.cpu_period, b.cpu_period),
        (&mut hc.cpu_quota, b.cpu_quota),
        (&mut hc.cpu_realtime_period, b.cpu_realtime_period),
        (&mut hc.cpu_realtime_runtime, b.cpu_realtime_runtime),
        (&mut hc.memory_reservation, b.memory_reservation),
    ] {
        if let Some(v) = src.filter(|v| *v != 0) {
            *dst = Some(v);
        }
    }
    if let Some(c) = b.cpuset_cpus.clone().filter(|s| !s.is_empty()) {
        hc.cpuset_cpus = Some(c);
    }
    if let Some(m) = b.cpuset_mems.clone().filter(|s| !s.is_empty()) {
        hc.cpuset_mems = Some(m);
    }
    if let Some(m) = b.memory.filter(|m| *m != 0) {
        let swap_now = cur(hc.memory_swap);
        if swap_now > 0 && m > swap_now && new(b.memory_swap) == 0 {
            return Err(conflict(
                id,
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time",
            ));
        }
        hc.memory = Some(m);
    }
    if let Some(s) = b.memory_swap.filter(|s| *s != 0) {
        hc.memory_swap = Some(s);
    }
    if let Some(s) = swap {
        hc.memory_swap = Some(s);
    }
    if let Some(p) = b.pids_limit {
        hc.pids_limit = Some(if p <= 0 { 0 } else { p });
    }
    if let Some(rp) = &b.restart_policy
        && rp.name.is_some_and(|n| n != RestartPolicyNameEnum::EMPTY)
    {
        if rp.name != Some(RestartPolicyNameEnum::NO) && hc.auto_remove == Some(true) {
            return Err(conflict(
                id,
                "Restart policy cannot be updated because AutoRemove is enabled for the container",
            ));
        }
        hc.restart_policy = Some(rp.clone());
    }
    Ok(())
}

/// The OCI `linux.resources` for a container's resources (what `runtime update` takes).
pub fn linux_resources(hc: &HostConfig) -> Result<LinuxResources, EngineError> {
    let entry = resources_entry(&host_resources(hc));
    serde_json::from_value(serde_json::Value::Object(entry)).map_err(|e| EngineError::internal(e.to_string()))
}

impl ContainerService {
    /// `POST /containers/{id}/update`.
    pub async fn update(&self, name: &str, b: ContainerUpdateBody) -> Result<ContainerUpdateResponse, EngineError> {
        let h = self.lookup(name)?;
        let (warnings, swap) = verify(&b)?;
        let r = h.record();
        if matches!(r.state.status, Status::Removing | Status::Dead) {
            return Err(EngineError::conflict(format!(
                "Cannot update container {}: container is marked for removal and cannot be \"update\"",
                r.id
            )));
        }
        let before = r.host_config.clone();
        let id = r.id.to_string();
        let body = b.clone();
        self.ask(&h, move |reply| Op::Update {
            change: Box::new(move |rec| apply(&id, &mut rec.host_config, &body, swap)),
            reply,
        })
        .await?;
        let r = h.record();
        if r.state.status.is_running() {
            let applied = async {
                let mut runtime = (self.ctx.runtimes)(&r.runtime)
                    .ok_or_else(|| EngineError::internal(format!("unknown runtime {}", r.runtime)))?;
                runtime.root = self.ctx.paths.runtime_root(&r.runtime);
                let res = linux_resources(&r.host_config)?;
                runtime
                    .update(r.id.as_str(), &res)
                    .await
                    .map_err(|e| EngineError::internal(format!("Cannot update container {}: {e}", r.id)))
            }
            .await;
            if let Err(e) = applied {
                // Put the old values back, as moby's `restoreConfig`.
                let _ = self
                    .ask(&h, move |reply| Op::Update {
                        change: Box::new(move |rec| {
                            rec.host_config = before;
                            Ok(())
                        }),
                        reply,
                    })
                    .await;
                return Err(e);
            }
        }
        self.ctx.events.publish(Event::now(EventType::Container, "update", r.id.as_str(), r.event_attributes()));
        Ok(ContainerUpdateResponse { warnings: (!warnings.is_empty()).then_some(warnings) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_api::models::RestartPolicy;

    #[test]
    fn zero_fields_leave_values_and_conflicts_use_dockers_words() {
        let mut hc = HostConfig {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            cpu_shares: Some(512),
            ..Default::default()
        };
        let b = ContainerUpdateBody {
            memory: Some(0),
            cpu_shares: Some(0),
            cpuset_cpus: Some(String::new()),
            pids_limit: Some(10),
            ..Default::default()
        };
        apply("c", &mut hc, &b, None).unwrap();
        assert_eq!((hc.memory, hc.cpu_shares, hc.pids_limit), (Some(64 << 20), Some(512), Some(10)));
        let b = ContainerUpdateBody { memory: Some(256 << 20), ..Default::default() };
        let e = apply("c", &mut hc, &b, None).unwrap_err();
        assert!(e.message.starts_with("Cannot update container c: Memory limit should be smaller"), "{}", e.message);
        let b = ContainerUpdateBody { memory: Some(256 << 20), memory_swap: Some(-1), ..Default::default() };
        apply("c", &mut hc, &b, None).unwrap();
        assert_eq!((hc.memory, hc.memory_swap), (Some(256 << 20), Some(-1)));
        hc.nano_cpus = Some(500_000_000);
        let b = ContainerUpdateBody { cpu_quota: Some(20_000), ..Default::default() };
        assert!(apply("c", &mut hc, &b, None).unwrap_err().message.contains("CPU Quota cannot be updated"));
        hc.auto_remove = Some(true);
        let b = ContainerUpdateBody {
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::ALWAYS),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        assert!(apply("c", &mut hc, &b, None).unwrap_err().message.contains("AutoRemove is enabled"));
    }

    #[test]
    fn checks_are_dockers() {
        let e = verify(&ContainerUpdateBody { memory: Some(1024), ..Default::default() }).unwrap_err();
        assert_eq!(e.message, "Minimum memory limit allowed is 6MB");
        let e = verify(&ContainerUpdateBody { blkio_weight: Some(5), ..Default::default() }).unwrap_err();
        assert_eq!(e.message, "Range of blkio weight is from 10 to 1000");
        assert!(verify(&ContainerUpdateBody { memory_swap: Some(256 << 20), ..Default::default() }).is_ok());
    }
}
