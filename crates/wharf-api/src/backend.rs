//! The engine as the API sees it: one narrow trait per resource. `wharf-daemon` implements them;
//! route tests can implement them with fakes. Every method returns an [`EngineError`] whose kind
//! decides the status code.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use wharf_types::{EngineError, Event, Filters};

use crate::models::{
    ContainerCreateBody, ContainerCreateResponse, ContainerInspectResponse, ContainerPruneResponse, ContainerSummary,
    ContainerTopResponse, SystemInfo, SystemVersion, Volume, VolumeCreateRequest, VolumeListResponse,
    VolumePruneResponse,
};

/// A stream of events that ends when `until` passes (if given) or the daemon shuts down.
pub type EventStream = BoxStream<'static, Event>;

/// System-wide queries: `/info`, `/version`, `/events`.
#[async_trait]
pub trait SystemBackend: Send + Sync + 'static {
    /// `GET /info`.
    async fn info(&self) -> Result<SystemInfo, EngineError>;

    /// `GET /version`.
    async fn version(&self) -> Result<SystemVersion, EngineError>;

    /// `GET /events`: replays buffered events with `since <= time` (nanoseconds), then streams live
    /// ones, all matching `filters`, ending once an event's time passes `until` or, when
    /// `until` is in the past, right after the replay. Filters have been validated by the caller.
    fn events(&self, since: Option<i64>, until: Option<i64>, filters: Filters) -> Result<EventStream, EngineError>;
}

/// `GET /containers/json` options.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub all: bool,
    pub limit: Option<i64>,
    pub size: bool,
    pub filters: Filters,
}

/// `POST /containers/{id}/wait?condition=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

/// What `/wait` answers when its condition is met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOutcome {
    pub status_code: i64,
    pub error: Option<String>,
}

/// `GET /containers/{id}/logs` options; times are Unix nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub tail: Option<usize>,
}

/// One record of a container's output: stream 1 = stdout, 2 = stderr.
#[derive(Debug, Clone)]
pub struct LogChunk {
    pub stream: u8,
    pub timestamp: i64,
    pub bytes: bytes::Bytes,
}

/// A container's logs: whether it has a TTY (raw stream) and the records.
pub struct Logs {
    pub tty: bool,
    pub stream: BoxStream<'static, Result<LogChunk, EngineError>>,
}

/// `POST /containers/{id}/attach` options.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    pub stream: bool,
    pub logs: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub detach_keys: Option<String>,
}

/// An attached session. The API layer moves bytes; the backend decides what they mean.
pub struct AttachSession {
    pub tty: bool,
    /// stdin EOF closes the container's stdin (`docker run -i`) rather than ending the session.
    pub stdin_once: bool,
    /// Output records (stream 1 or 2); ends when the container's output ends.
    pub output: BoxStream<'static, (u8, bytes::Bytes)>,
    /// The container's stdin, when attached and open.
    pub stdin: Option<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
    /// The detach key sequence (bytes), for TTY sessions.
    pub detach_keys: Vec<u8>,
    /// Called when the client detaches with the key sequence (publishes `detach`).
    pub on_detach: Option<Box<dyn FnOnce() + Send>>,
}

/// Containers: create, inspect, list, lifecycle, logs, attach.
#[async_trait]
pub trait ContainerBackend: Send + Sync + 'static {
    async fn create(
        &self,
        name: Option<String>,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse, EngineError>;
    async fn inspect(&self, id: &str, size: bool) -> Result<ContainerInspectResponse, EngineError>;
    async fn list(&self, opts: ListOptions) -> Result<Vec<ContainerSummary>, EngineError>;
    /// 304 (NotModified) when already running.
    async fn start(&self, id: &str) -> Result<(), EngineError>;
    /// 304 (NotModified) when not running.
    async fn stop(&self, id: &str, timeout: Option<i64>, signal: Option<String>) -> Result<(), EngineError>;
    async fn restart(&self, id: &str, timeout: Option<i64>, signal: Option<String>) -> Result<(), EngineError>;
    async fn kill(&self, id: &str, signal: Option<String>) -> Result<(), EngineError>;
    /// Errors only if the container does not exist; the future resolves when the condition is met.
    async fn wait(
        &self,
        id: &str,
        condition: WaitCondition,
    ) -> Result<futures_util::future::BoxFuture<'static, WaitOutcome>, EngineError>;
    async fn remove(&self, id: &str, force: bool, volumes: bool, link: bool) -> Result<(), EngineError>;
    async fn rename(&self, id: &str, name: &str) -> Result<(), EngineError>;
    async fn pause(&self, id: &str) -> Result<(), EngineError>;
    async fn unpause(&self, id: &str) -> Result<(), EngineError>;
    async fn top(&self, id: &str, ps_args: Option<String>) -> Result<ContainerTopResponse, EngineError>;
    async fn logs(&self, id: &str, opts: LogsOptions) -> Result<Logs, EngineError>;
    async fn attach(&self, id: &str, opts: AttachOptions) -> Result<AttachSession, EngineError>;
    async fn resize(&self, id: &str, height: u16, width: u16) -> Result<(), EngineError>;
    async fn prune(&self, filters: Filters) -> Result<ContainerPruneResponse, EngineError>;
}

/// Volumes: `/volumes/*`.
///
/// Vocabulary: a volume is named storage a container mounts; the `local` driver keeps it in a
/// directory under the data root (optionally mounting a device, tmpfs or NFS share there while
/// it is in use). A volume is *referenced* by every container that has it in its mounts
/// (running or not) and *dangling* when none does; a referenced volume is never removed.
/// *Anonymous* volumes (generated name, label `com.docker.volume.anonymous`) are created for a
/// container's `VOLUME`s and `-v /path`; they are the only ones `prune` removes by default.
///
/// Example: `create({"Name":"data"})` → `data` (201), `remove("data", false)` while a container
/// references it → Conflict `remove data: volume is in use - [<id>]`.
#[async_trait]
pub trait VolumeBackend: Send + Sync + 'static {
    /// `POST /volumes/create`: creates the volume, or returns the existing one of that name.
    async fn create(&self, req: VolumeCreateRequest) -> Result<Volume, EngineError>;
    /// `GET /volumes?filters=` (`dangling`, `driver`, `label`, `name`).
    async fn list(&self, filters: Filters) -> Result<VolumeListResponse, EngineError>;
    /// `GET /volumes/{name}`: NotFound `get x: no such volume`.
    async fn inspect(&self, name: &str) -> Result<Volume, EngineError>;
    /// `DELETE /volumes/{name}?force`: `force` makes a missing volume a success and drops the
    /// record even when the driver fails to clean up; a referenced volume is always refused.
    async fn remove(&self, name: &str, force: bool) -> Result<(), EngineError>;
    /// `POST /volumes/prune?filters=` (`label`, `label!`, `all`): unreferenced anonymous volumes,
    /// or every unreferenced volume with `all=true`.
    async fn prune(&self, filters: Filters) -> Result<VolumePruneResponse, EngineError>;
}

/// Every backend the router needs.
#[derive(Clone)]
pub struct Backends {
    pub system: Arc<dyn SystemBackend>,
    pub containers: Arc<dyn ContainerBackend>,
    pub volumes: Arc<dyn VolumeBackend>,
}
