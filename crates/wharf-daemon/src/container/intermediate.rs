//! The containers of build steps that a build keeps: with `docker build --rm=false` every
//! step's container, with the default `--rm` the container of a failed step, with
//! `--force-rm` none (moby's `dispatch`).
//!
//! A step's process runs as a one-shot ([`super::oneshot`]) on the builder's own snapshot;
//! only when the step is over does the builder ask for its container to be kept. It then
//! becomes an ordinary container of this service, created on the step's image with the ID
//! the build printed (` ---> Running in <id12>`), the step's command and environment, the
//! step's changes unpacked into its writable layer, and the state the step left it in:
//! `Exited (code)` for a RUN, `Created` for the metadata steps, whose containers Docker never
//! starts. `docker ps -a`, `inspect`, `diff`, `cp`, `commit`, `start` and `rm` work on it.
//!
//! Not kept: the one-shot's own events (`create`, `start`, `die`, `destroy`) were already
//! published; the kept container publishes its `create` again.

use std::path::PathBuf;

use wharf_api::models::{ContainerCreateBody, HostConfig};
use wharf_image::layer::{UnpackOptions, unpack};
use wharf_types::image::RuntimeConfig;
use wharf_types::{ContainerId, EngineError};

use super::model::{State, Status};
use super::{ContainerService, internal, now_rfc3339};

/// A step's container to keep.
#[derive(Debug, Clone)]
pub struct Intermediate {
    /// The ID the build printed.
    pub id: ContainerId,
    /// The image the step started from (`sha256:…`).
    pub image: String,
    /// The step's `Cmd`, entrypoint, ENV, USER and WORKDIR.
    pub config: RuntimeConfig,
    /// How the step's process exited; `None`: never started.
    pub exit_code: Option<i32>,
    /// The step's changes as an uncompressed layer tar, to unpack into the writable layer.
    pub changes: Option<PathBuf>,
    /// The step's network mode (`bridge`, `none`, `host`, a network, `container:<id>`).
    pub network_mode: Option<String>,
}

impl ContainerService {
    /// Creates the container of a finished build step (see the module doc).
    pub async fn keep_intermediate(&self, k: Intermediate) -> Result<ContainerId, EngineError> {
        let c = &k.config;
        let body = ContainerCreateBody {
            image: Some(k.image.clone()),
            cmd: c.cmd.clone(),
            entrypoint: c.entrypoint.clone(),
            env: c.env.clone(),
            user: c.user.clone(),
            working_dir: c.working_dir.clone(),
            host_config: Some(HostConfig { network_mode: k.network_mode.clone(), ..Default::default() }),
            ..Default::default()
        };
        let state = match k.exit_code {
            Some(code) => {
                let now = now_rfc3339();
                State {
                    status: Status::Exited,
                    exit_code: i64::from(code),
                    started_at: now.clone(),
                    finished_at: now,
                    ..State::default()
                }
            }
            None => State::default(),
        };
        let (id, _) = self.create_as(k.id, None, body, state).await?;
        if let Some(tar) = k.changes {
            let key = self.lookup(id.as_str())?.record().rw_layer;
            let snapshotter = self.ctx.images.snapshotter();
            tokio::task::spawn_blocking(move || -> Result<(), EngineError> {
                let dir = snapshotter.writable_dir(&key).map_err(|e| EngineError::from_classified(&e))?;
                let file = std::fs::File::open(&tar)
                    .map_err(|e| internal(format!("open the step's changes {}: {e}", tar.display())))?;
                let opts = UnpackOptions { whiteouts: snapshotter.whiteouts(), ..UnpackOptions::default() };
                unpack(file, &dir, &opts).map_err(|e| internal(format!("unpack the step's changes: {e}")))?;
                Ok(())
            })
            .await
            .map_err(internal)??;
        }
        Ok(id)
    }
}
