//! The engine as the API sees it: one narrow trait per resource. `wharf-daemon` implements them;
//! route tests can implement them with fakes. Every method returns an [`EngineError`] whose kind
//! decides the status code.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use wharf_types::{EngineError, Event, Filters};

use crate::models::{
    ImageDeleteResponseItem, ImageHistoryResponseItem, ImageInspect, ImagePruneResponse,
    ImageSummary, SystemDataUsageResponse, SystemInfo, SystemVersion,
};
use crate::stream::ProgressSender;

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
    fn events(
        &self,
        since: Option<i64>,
        until: Option<i64>,
        filters: Filters,
    ) -> Result<EventStream, EngineError>;

    /// `GET /system/df`: usage of the object types asked for, each with its `Items` (the
    /// route drops them when the client's version or `verbose` does not want them). Services
    /// not running yet leave their part empty.
    async fn disk_usage(
        &self,
        _opts: DiskUsageOptions,
    ) -> Result<SystemDataUsageResponse, EngineError> {
        Err(EngineError::not_implemented("disk usage is not available"))
    }
}

/// Which parts of `/system/df` to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsageOptions {
    pub containers: bool,
    pub images: bool,
    pub volumes: bool,
    pub build_cache: bool,
}

/// A request or response body streamed in chunks.
pub type ByteStream = BoxStream<'static, Result<bytes::Bytes, std::io::Error>>;

/// `GET /images/json` parameters.
#[derive(Debug, Clone, Default)]
pub struct ImageListOptions {
    pub all: bool,
    pub filters: Filters,
    pub shared_size: bool,
}

/// `POST /images/create?fromSrc=-` parameters (the body is the tarball).
#[derive(Debug, Clone, Default)]
pub struct ImageImportOptions {
    pub repo: String,
    pub tag: String,
    pub message: String,
    pub changes: Vec<String>,
    /// `os/arch[/variant]` as given.
    pub platform: Option<String>,
}

/// `POST /images/create?fromImage=` parameters.
#[derive(Debug, Clone, Default)]
pub struct ImagePullOptions {
    pub from_image: String,
    pub tag: String,
    pub platform: Option<String>,
    /// The `X-Registry-Auth` header as sent.
    pub registry_auth: Option<String>,
}

/// Everything `GET /images/{name}/json` needs; the route shapes it for the client's version.
#[derive(Debug, Clone, Default)]
pub struct ImageInspectData {
    /// The current (1.53) shape.
    pub inspect: ImageInspect,
    /// Fields older versions carry: the local parent image, the config's `docker_version`,
    /// `container` and `container_config` (removed at 1.45), and the config's full runtime
    /// config as stored (older versions show fields the OCI config does not have).
    pub parent: String,
    pub docker_version: String,
    pub container: String,
    pub container_config: Option<serde_json::Value>,
}

/// Images: `/images/*`. Long operations report through a [`ProgressSender`]; see
/// [`crate::stream::message_stream`] for how errors before and after the first message differ.
#[async_trait]
pub trait ImageBackend: Send + Sync + 'static {
    /// `GET /images/json`; `Containers` holds real counts (the route hides them for old
    /// clients).
    async fn list(&self, opts: ImageListOptions) -> Result<Vec<ImageSummary>, EngineError>;

    /// `GET /images/{name}/json`.
    async fn inspect(&self, name: &str) -> Result<ImageInspectData, EngineError>;

    /// `GET /images/{name}/history`, newest first.
    async fn history(&self, name: &str) -> Result<Vec<ImageHistoryResponseItem>, EngineError>;

    /// `POST /images/{name}/tag?repo=&tag=`.
    async fn tag(&self, name: &str, repo: &str, tag: &str) -> Result<(), EngineError>;

    /// `DELETE /images/{name}?force&noprune`.
    async fn delete(
        &self,
        name: &str,
        force: bool,
        noprune: bool,
    ) -> Result<Vec<ImageDeleteResponseItem>, EngineError>;

    /// `POST /images/prune`.
    async fn prune(&self, filters: Filters) -> Result<ImagePruneResponse, EngineError>;

    /// `POST /images/create?fromSrc=-`: imports `body`; the last message is the new ID.
    async fn import(
        &self,
        body: ByteStream,
        opts: ImageImportOptions,
        progress: ProgressSender,
    ) -> Result<(), EngineError>;

    /// `POST /images/create?fromImage=`: a pull (the registry client's; not implemented here).
    async fn pull(
        &self,
        opts: ImagePullOptions,
        _progress: ProgressSender,
    ) -> Result<(), EngineError> {
        Err(EngineError::not_implemented(format!(
            "pulling images is not implemented yet: cannot pull {}",
            opts.from_image
        )))
    }

    /// `POST /images/load?quiet`.
    async fn load(
        &self,
        body: ByteStream,
        quiet: bool,
        progress: ProgressSender,
    ) -> Result<(), EngineError>;

    /// `GET /images/get?names=` and `GET /images/{name}/get`: names are checked before the
    /// returned stream starts.
    async fn save(&self, names: Vec<String>) -> Result<ByteStream, EngineError>;
}

/// Every backend the router needs.
#[derive(Clone)]
pub struct Backends {
    pub system: Arc<dyn SystemBackend>,
    pub images: Arc<dyn ImageBackend>,
}
