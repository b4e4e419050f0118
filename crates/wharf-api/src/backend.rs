//! The engine as the API sees it: one narrow trait per resource. `wharf-daemon` implements them;
//! route tests can implement them with fakes. Every method returns an [`EngineError`] whose kind
//! decides the status code.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use wharf_types::{EngineError, Event, Filters};

use crate::models::{
    ContainerCreateBody, ContainerCreateResponse, ContainerInspectResponse, ContainerPruneResponse, ContainerSummary,
    ContainerTopResponse, NetworkConnectRequest, NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest,
    NetworkInspect, NetworkPruneResponse, SystemInfo, SystemVersion,
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

/// Networks: `/networks/...`. A network is named by its full ID, its name, or a unique ID
/// prefix (Docker's lookup order); a miss is `network x not found` (NotFound).
///
/// Lifecycle: `create` (Docker's validation: duplicate name → Conflict, overlapping subnet →
/// Forbidden, malformed IPAM → InvalidArgument) → `connect`/`disconnect` containers →
/// `remove` (Forbidden for the predefined `bridge`, `host`, `none` and while endpoints are
/// active). `prune` removes every user-defined network without endpoints.
#[async_trait]
pub trait NetworkBackend: Send + Sync + 'static {
    /// `GET /networks?filters`: filters `driver`, `id`, `label`, `name`, `scope`, `type`,
    /// `dangling` (validated here, unknown keys are InvalidArgument).
    async fn list(&self, filters: Filters) -> Result<Vec<NetworkInspect>, EngineError>;
    /// `GET /networks/{id}?verbose&scope`: with `Containers` filled in.
    async fn inspect(&self, id: &str, verbose: bool, scope: Option<String>) -> Result<NetworkInspect, EngineError>;
    /// `POST /networks/create`.
    async fn create(&self, req: NetworkCreateRequest) -> Result<NetworkCreateResponse, EngineError>;
    /// `DELETE /networks/{id}`.
    async fn remove(&self, id: &str) -> Result<(), EngineError>;
    /// `POST /networks/{id}/connect`: a running container is attached at once; a stopped one
    /// is attached at its next start.
    async fn connect(&self, id: &str, req: NetworkConnectRequest) -> Result<(), EngineError>;
    /// `POST /networks/{id}/disconnect`.
    async fn disconnect(&self, id: &str, req: NetworkDisconnectRequest) -> Result<(), EngineError>;
    /// `POST /networks/prune?filters` (`until`, `label`, `label!`).
    async fn prune(&self, filters: Filters) -> Result<NetworkPruneResponse, EngineError>;
}

/// Every backend the router needs.
#[derive(Clone)]
pub struct Backends {
    pub system: Arc<dyn SystemBackend>,
    pub containers: Arc<dyn ContainerBackend>,
    pub networks: Arc<dyn NetworkBackend>,
}
