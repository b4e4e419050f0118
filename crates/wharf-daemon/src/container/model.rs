//! What Wharf knows about a container, persisted as one JSON document per container in the
//! database (`containers.doc`), rewritten in one transaction on every change.

use serde::{Deserialize, Serialize};
use wharf_api::models::{ContainerConfig, HostConfig, NetworkingConfig};
use wharf_types::ContainerId;

/// Go's zero time, which Docker prints for times that never happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A container's lifecycle state, as `State.Status` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// A process of the container exists (running or frozen).
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// Health as inspect shows it (`State.Health`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `starting`, `healthy`, `unhealthy`.
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<HealthLog>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthLog {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    pub oom_killed: bool,
    #[serde(default)]
    pub health: Option<Health>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.to_owned(),
            finished_at: ZERO_TIME.to_owned(),
            oom_killed: false,
            health: None,
        }
    }
}

/// The persisted container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: ContainerId,
    /// Without the leading `/`.
    pub name: String,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    /// The image as the user named it (`Config.Image`).
    pub image: String,
    /// `sha256:…` of the image config.
    pub image_id: String,
    /// The create request's config merged with the image's defaults (what inspect shows).
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    #[serde(default)]
    pub networking_config: Option<NetworkingConfig>,
    /// The process started: entrypoint + cmd split into path and args.
    pub path: String,
    pub args: Vec<String>,
    pub state: State,
    pub restart_count: i64,
    /// Stopped by the user (stop/kill): restart policies `always`/`unless-stopped` leave it.
    pub manually_stopped: bool,
    pub has_been_started: bool,
    /// Runtime name (`wharf`, `runc`, …).
    pub runtime: String,
    /// The log file (json-file/local), empty with the `none` driver.
    pub log_path: String,
    /// Snapshot key of the rw layer.
    pub rw_layer: String,
    /// Snapshot name of the image's top layer (the rw layer's parent), if any.
    #[serde(default)]
    pub image_top_layer: Option<String>,
    /// Volumes, binds and tmpfs mounts, resolved at create (see `crate::volume::container`).
    #[serde(default)]
    pub mount_points: Vec<crate::volume::mountpoint::MountPoint>,
}

impl ContainerRecord {
    pub fn tty(&self) -> bool {
        self.config.tty.unwrap_or(false)
    }

    pub fn labels(&self) -> std::collections::BTreeMap<String, String> {
        self.config.labels.clone().unwrap_or_default().into_iter().collect()
    }

    /// Attributes of this container's events: `image`, `name`, and its labels.
    pub fn event_attributes(&self) -> std::collections::BTreeMap<String, String> {
        let mut a = self.labels();
        a.insert("image".to_owned(), self.image.clone());
        a.insert("name".to_owned(), self.name.clone());
        a
    }
}
