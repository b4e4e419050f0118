//! `wharf-build`'s [`ContainerRunner`]: a RUN step's process runs as a one-shot container
//! ([`ContainerService::run_oneshot`]) on the step's mounted root, through the shim and the
//! OCI runtime, with `docker run`'s defaults. Its network is the build's `networkmode` (the
//! default bridge, `host`, `none`, a user-defined network or another container's) or the
//! step's `RUN --network`, joined through the network service as a `docker run` container's,
//! with the build's `extrahosts` in `/etc/hosts`; the endpoint goes when the step ends.
//!
//! The mount points the runtime needs (`/proc`, `/dev`, `/sys`, `/etc/hosts`,
//! `/etc/hostname`, `/etc/resolv.conf`) are created in the rootfs when missing and removed
//! again after the run, so they are not part of the step's layer (Docker hides them in its
//! "init" layer).
//!
//! A step's container that the build keeps (`--rm=false`, a failed step without
//! `--force-rm`) becomes a container of the container service afterwards
//! ([`ContainerService::keep_intermediate`]).

use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use wharf_build::mountpoints::MountPoints;
use wharf_build::{ContainerRunner, KeptContainer, MountSource, NetworkMode, OutputSink, OutputStream, RunSpec};
use wharf_runtime::logs::StreamKind;
use wharf_runtime::spec::{MountKind, Resources, Ulimit, UserMount};
use wharf_types::EngineError;

use crate::container::ContainerService;
use crate::container::intermediate::Intermediate;
use crate::container::oneshot::{OneShot, OneShotNetwork};

/// Paths the runtime mounts over, as files or directories.
const RUNTIME_DIRS: [&str; 3] = ["/proc", "/dev", "/sys"];
const RUNTIME_FILES: [&str; 3] = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

pub struct DaemonRunner {
    containers: Arc<ContainerService>,
}

impl DaemonRunner {
    pub fn new(containers: Arc<ContainerService>) -> Self {
        Self { containers }
    }
}

/// The network of a RUN step: the build's `networkmode` (Docker's default bridge when empty or
/// `default`; `host`, `none`, a network's name or ID, or `container:<x>`) or the step's
/// `--network`.
fn network(mode: &NetworkMode) -> Result<OneShotNetwork, EngineError> {
    Ok(match mode {
        NetworkMode::None => OneShotNetwork::None,
        NetworkMode::Host => OneShotNetwork::Host,
        NetworkMode::Default(m) => match m.as_str() {
            "" | "default" | "bridge" => OneShotNetwork::Network("bridge".to_owned()),
            "host" => OneShotNetwork::Host,
            "none" => OneShotNetwork::None,
            other => match other.strip_prefix("container:") {
                Some(peer) => OneShotNetwork::Container(peer.to_owned()),
                None => OneShotNetwork::Network(other.to_owned()),
            },
        },
    })
}

/// Docker's `ulimits` JSON (`[{"Name":"nofile","Soft":1024,"Hard":2048}]`).
fn ulimits(v: &Option<serde_json::Value>) -> Result<Vec<Ulimit>, EngineError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let list = v.as_array().ok_or_else(|| EngineError::invalid("ulimits: expected a JSON array"))?;
    list.iter()
        .map(|u| {
            let name = u.get("Name").and_then(|n| n.as_str()).unwrap_or_default().to_owned();
            if name.is_empty() {
                return Err(EngineError::invalid("invalid ulimit: missing name"));
            }
            let n = |k: &str| u.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
            Ok(Ulimit { name, soft: n("Soft"), hard: n("Hard") })
        })
        .collect()
}

fn mounts(spec: &RunSpec) -> Vec<UserMount> {
    spec.mounts
        .iter()
        .map(|m| match &m.source {
            MountSource::Bind { source, read_only } => UserMount {
                kind: MountKind::Bind,
                source: source.clone(),
                destination: m.target.clone(),
                writable: !read_only,
                ..Default::default()
            },
            MountSource::Tmpfs { size } => UserMount {
                kind: MountKind::Tmpfs,
                destination: m.target.clone(),
                writable: true,
                tmpfs_data: wharf_runtime::spec::tmpfs_data(false, None, size.map(|s| s as i64)),
                ..Default::default()
            },
        })
        .collect()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| EngineError::internal(format!("build step: {e}")))
}

#[async_trait]
impl ContainerRunner for DaemonRunner {
    async fn run(
        &self,
        spec: RunSpec,
        output: Arc<dyn OutputSink>,
        cancel: CancellationToken,
    ) -> Result<i32, EngineError> {
        let h = &spec.host;
        let resources = Resources {
            memory: h.memory,
            memory_swap: h.memory_swap,
            cpu_shares: h.cpu_shares,
            cpu_period: h.cpu_period,
            cpu_quota: h.cpu_quota,
            cpuset_cpus: h.cpuset_cpus.clone(),
            cpuset_mems: h.cpuset_mems.clone(),
            ..Default::default()
        };
        let shot = OneShot {
            id: spec.id.clone(),
            rootfs: spec.rootfs.clone(),
            args: spec.args.clone(),
            env: spec.env.clone(),
            user: spec.user.clone(),
            workdir: spec.workdir.clone(),
            network: network(&spec.network)?,
            mounts: mounts(&spec),
            extra_hosts: h.extra_hosts.clone(),
            shm_size: h.shm_size as i64,
            resources,
            ulimits: ulimits(&h.ulimits)?,
            privileged: spec.privileged,
            security_opt: h.security_opt.clone(),
            cgroup_parent: h.cgroup_parent.clone(),
            image: String::new(),
        };
        let rootfs = spec.rootfs.clone();
        let mp = blocking(move || -> std::io::Result<MountPoints> {
            let mut mp = MountPoints::new(&rootfs);
            for d in RUNTIME_DIRS {
                mp.ensure_dir(d)?;
            }
            for f in RUNTIME_FILES {
                mp.ensure_file(f)?;
            }
            Ok(mp)
        })
        .await?
        .map_err(|e| EngineError::internal(format!("create the step's mount points: {e}")))?;
        let sink = output.clone();
        let out = Box::new(move |kind: StreamKind, data: &[u8]| {
            let stream = match kind {
                StreamKind::Stdout => OutputStream::Stdout,
                StreamKind::Stderr => OutputStream::Stderr,
            };
            sink.write(stream, data);
        });
        let r = self.containers.run_oneshot(shot, out, cancel).await;
        blocking(move || {
            let mut mp = mp;
            mp.cleanup();
        })
        .await?;
        r
    }

    async fn keep(&self, c: KeptContainer) -> Result<(), EngineError> {
        let kept = Intermediate {
            id: c.id,
            image: c.image.to_string(),
            config: c.config,
            exit_code: c.exit_code,
            changes: c.changes,
            // As requested, as moby records it (`default` for the CLI's default).
            network_mode: Some(match c.network {
                NetworkMode::Default(m) if m.is_empty() => "default".to_owned(),
                NetworkMode::Default(m) => m,
                NetworkMode::None => "none".to_owned(),
                NetworkMode::Host => "host".to_owned(),
            }),
        };
        self.containers.keep_intermediate(kept).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes() {
        let bridge = OneShotNetwork::Network("bridge".into());
        assert_eq!(network(&NetworkMode::Default(String::new())).unwrap(), bridge);
        assert_eq!(network(&NetworkMode::Default("default".into())).unwrap(), bridge);
        assert_eq!(network(&NetworkMode::Default("host".into())).unwrap(), OneShotNetwork::Host);
        assert_eq!(network(&NetworkMode::None).unwrap(), OneShotNetwork::None);
        assert_eq!(network(&NetworkMode::Default("mynet".into())).unwrap(), OneShotNetwork::Network("mynet".into()));
        assert_eq!(
            network(&NetworkMode::Default("container:web".into())).unwrap(),
            OneShotNetwork::Container("web".into())
        );
    }

    #[test]
    fn ulimit_json() {
        let v = serde_json::json!([{"Name":"nofile","Soft":1024,"Hard":2048}]);
        assert_eq!(ulimits(&Some(v)).unwrap(), vec![Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 }]);
        assert!(ulimits(&Some(serde_json::json!([{"Soft":1}]))).is_err());
        assert!(ulimits(&None).unwrap().is_empty());
    }
}
