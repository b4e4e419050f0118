//! The engine as the API sees it: one narrow trait per resource. `wharf-daemon` implements them;
//! route tests can implement them with fakes. Every method returns an [`EngineError`] whose kind
//! decides the status code.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use wharf_types::{EngineError, Event, Filters};

use crate::models::{
    BuildPruneResponse, ContainerConfig, ContainerCreateBody, ContainerCreateResponse, ContainerInspectResponse,
    ContainerPruneResponse, ContainerSummary, ContainerTopResponse, ContainerUpdateBody, ContainerUpdateResponse,
    FilesystemChange, ImageDeleteResponseItem, ImageHistoryResponseItem, ImageInspect, ImagePruneResponse,
    ImageSummary, NetworkConnectRequest, NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest,
    NetworkInspect, NetworkPruneResponse, SystemDataUsageResponse, SystemInfo, SystemVersion, Volume,
    VolumeCreateRequest, VolumeListResponse, VolumePruneResponse,
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
    fn events(&self, since: Option<i64>, until: Option<i64>, filters: Filters) -> Result<EventStream, EngineError>;

    /// `GET /system/df`: usage of the object types asked for, each with its `Items` (the
    /// route drops them when the client's version or `verbose` does not want them). Services
    /// not running yet leave their part empty.
    async fn disk_usage(&self, _opts: DiskUsageOptions) -> Result<SystemDataUsageResponse, EngineError> {
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

/// `POST /images/{name}/push?tag=` parameters.
#[derive(Debug, Clone, Default)]
pub struct ImagePushOptions {
    /// The name as given in the path (`127.0.0.1:5000/spy/bb`, maybe with a tag).
    pub name: String,
    /// The tag to push; empty pushes every tag of the repository (`docker push -a`).
    pub tag: String,
    pub platform: Option<String>,
    /// The `X-Registry-Auth` header as sent.
    pub registry_auth: Option<String>,
}

/// The body of `POST /auth` (Docker's `AuthConfig`, plain JSON).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct AuthRequest {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub auth: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub serveraddress: String,
    #[serde(default)]
    pub identitytoken: String,
    #[serde(default)]
    pub registrytoken: String,
}

/// The answer to a successful `POST /auth`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthResponse {
    /// `Login Succeeded`.
    pub status: String,
    /// A refresh token the CLI stores in place of the password (empty when none).
    pub identity_token: String,
}

/// `GET /images/search` parameters.
#[derive(Debug, Clone, Default)]
pub struct ImageSearchOptions {
    pub term: String,
    pub limit: Option<usize>,
    pub filters: Filters,
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
    async fn delete(&self, name: &str, force: bool, noprune: bool)
    -> Result<Vec<ImageDeleteResponseItem>, EngineError>;

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
    async fn pull(&self, opts: ImagePullOptions, _progress: ProgressSender) -> Result<(), EngineError> {
        Err(EngineError::not_implemented(format!(
            "pulling images is not implemented yet: cannot pull {}",
            opts.from_image
        )))
    }

    /// `POST /images/{name}/push?tag=`.
    async fn push(&self, opts: ImagePushOptions, _progress: ProgressSender) -> Result<(), EngineError> {
        Err(EngineError::not_implemented(format!("pushing images is not implemented: cannot push {}", opts.name)))
    }

    /// `POST /auth`: checks credentials against a registry.
    async fn auth(&self, _req: AuthRequest) -> Result<AuthResponse, EngineError> {
        Err(EngineError::not_implemented("registry login is not implemented"))
    }

    /// `GET /distribution/{name}/json`: the descriptor a name resolves to on its registry, and
    /// the platforms it offers (`{"Descriptor":{…},"Platforms":[…]}`).
    async fn distribution(&self, name: &str, _registry_auth: Option<String>) -> Result<serde_json::Value, EngineError> {
        Err(EngineError::not_implemented(format!("distribution inspect is not implemented: {name}")))
    }

    /// `GET /images/search?term=&limit=&filters=`.
    async fn search(&self, _opts: ImageSearchOptions) -> Result<Vec<serde_json::Value>, EngineError> {
        Ok(Vec::new())
    }

    /// `POST /images/load?quiet`.
    async fn load(&self, body: ByteStream, quiet: bool, progress: ProgressSender) -> Result<(), EngineError>;

    /// `GET /images/get?names=` and `GET /images/{name}/get`: names are checked before the
    /// returned stream starts.
    async fn save(&self, names: Vec<String>) -> Result<ByteStream, EngineError>;
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

/// A path in a container as `X-Docker-Container-Path-Stat` describes it (compat §3.8).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PathStat {
    /// The last element of the requested path (not of a symlink's target).
    pub name: String,
    pub size: i64,
    /// A Go `os.FileMode`: permission bits plus `ModeDir` (1<<31), `ModeSymlink` (1<<27), …
    pub mode: u32,
    /// RFC 3339 with nanoseconds, trailing zeros trimmed (Go's `time.Time` in JSON).
    pub mtime: String,
    /// For a symlink: its target with every link followed, inside the container; else empty.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// `GET /containers/{id}/archive`: the stat of the path and a tar rooted at its basename.
pub struct PathArchive {
    pub stat: PathStat,
    pub tar: ByteStream,
}

/// `PUT /containers/{id}/archive` parameters; the body is a tar extracted into `path`.
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    /// An existing directory in the container (symlinks followed inside its root).
    pub path: String,
    /// Refuse to replace a directory with a non-directory and vice versa.
    pub no_overwrite_dir_non_dir: bool,
    /// Own the files by the container's user (its `Config.User`) instead of the tar's owners.
    pub copy_uid_gid: bool,
}

/// `POST /commit` parameters; `config` is the request body (overrides of the container's
/// config), `changes` Dockerfile instructions applied on top (as for `import`).
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub container: String,
    pub repo: String,
    pub tag: String,
    pub comment: String,
    pub author: String,
    /// Freeze the container while its layer is read (the default).
    pub pause: bool,
    pub changes: Vec<String>,
    pub config: Option<ContainerConfig>,
}

/// Containers: create, inspect, list, lifecycle, logs, attach, and their file systems
/// (archive, export, changes, commit) and resources (update).
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
    /// Samples as JSON documents (compat §3.10): one (with `precpu` filled unless `one_shot`),
    /// or one per second while `stream`.
    async fn stats(
        &self,
        id: &str,
        stream: bool,
        one_shot: bool,
    ) -> Result<BoxStream<'static, serde_json::Value>, EngineError>;

    /// `HEAD /containers/{id}/archive?path=`: NotFound `Could not find the file P in container C`.
    async fn archive_stat(&self, id: &str, _path: &str) -> Result<PathStat, EngineError> {
        Err(EngineError::not_implemented(format!("copying files is not supported for {id}")))
    }

    /// `GET /containers/{id}/archive?path=`: errors come before the stream starts.
    async fn archive_get(&self, id: &str, _path: &str) -> Result<PathArchive, EngineError> {
        Err(EngineError::not_implemented(format!("copying files is not supported for {id}")))
    }

    /// `PUT /containers/{id}/archive?path=`: extracts `tar` into the directory.
    async fn archive_put(&self, id: &str, _opts: ExtractOptions, _tar: ByteStream) -> Result<(), EngineError> {
        Err(EngineError::not_implemented(format!("copying files is not supported for {id}")))
    }

    /// `GET /containers/{id}/export`: the container's root file system (without its volumes)
    /// as a tar.
    async fn export(&self, id: &str) -> Result<ByteStream, EngineError> {
        Err(EngineError::not_implemented(format!("export is not supported for {id}")))
    }

    /// `GET /containers/{id}/changes`: what changed in the container's writable layer.
    async fn changes(&self, id: &str) -> Result<Vec<FilesystemChange>, EngineError> {
        Err(EngineError::not_implemented(format!("changes are not supported for {id}")))
    }

    /// `POST /containers/{id}/update`: resources and restart policy; fields left out (or zero)
    /// stay as they are.
    async fn update(&self, id: &str, _body: ContainerUpdateBody) -> Result<ContainerUpdateResponse, EngineError> {
        Err(EngineError::not_implemented(format!("update is not supported for {id}")))
    }

    /// `POST /commit`: a new image from the container's writable layer; returns its ID.
    async fn commit(&self, opts: CommitOptions) -> Result<String, EngineError> {
        Err(EngineError::not_implemented(format!("commit is not supported for {}", opts.container)))
    }
}

/// Exec instances: create (on a container), start (hijacked unless detached), resize, inspect.
#[async_trait]
pub trait ExecBackend: Send + Sync + 'static {
    /// 409 if the container is not running; returns the exec ID.
    async fn create(&self, container: &str, config: crate::models::ExecConfig) -> Result<String, EngineError>;
    /// `None` when detached.
    async fn start(
        &self,
        id: &str,
        detach: bool,
        tty: Option<bool>,
        console: Option<[u16; 2]>,
    ) -> Result<Option<AttachSession>, EngineError>;
    async fn resize(&self, id: &str, height: u16, width: u16) -> Result<(), EngineError>;
    async fn inspect(&self, id: &str) -> Result<crate::models::ExecInspectResponse, EngineError>;
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

/// `POST /build` parameters (compat §5), parsed and checked by the route. Empty strings and
/// zeros mean "not given", as in Docker's `ImageBuildOptions`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildRequest {
    /// `t`, repeatable, as given.
    pub tags: Vec<String>,
    /// `dockerfile`: the Dockerfile's path in the context.
    pub dockerfile: String,
    /// `buildargs`; a `None` value (JSON null) is a build arg the client could not resolve.
    pub build_args: std::collections::BTreeMap<String, Option<String>>,
    /// `labels`.
    pub labels: std::collections::BTreeMap<String, String>,
    pub no_cache: bool,
    /// `rm` (default true) and `forcerm`.
    pub remove: bool,
    pub force_remove: bool,
    /// `pull`: always pull base images.
    pub pull: bool,
    pub target: String,
    /// `os/arch[/variant]` as given.
    pub platform: String,
    /// `cachefrom`: image references.
    pub cache_from: Vec<String>,
    pub network_mode: String,
    /// `extrahosts`, repeatable: `host:ip`.
    pub extra_hosts: Vec<String>,
    pub shm_size: i64,
    pub memory: i64,
    pub memory_swap: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub cgroup_parent: String,
    /// `ulimits` as sent (`[{"Name":"nofile","Soft":1024,"Hard":2048}]`).
    pub ulimits: Option<serde_json::Value>,
    pub security_opt: Vec<String>,
    /// `X-Registry-Config`, decoded: registry host → auth config (for pulls of base images).
    pub registry_auth: std::collections::BTreeMap<String, serde_json::Value>,
    /// `X-Wharf-Build-Secrets`, decoded: secret ID → content, for `RUN --mount=type=secret`
    /// (a wharf extension: the legacy API has no way to send secrets; `wharf build --secret`
    /// sends this header). Never logged.
    pub secrets: std::collections::BTreeMap<String, Vec<u8>>,
    /// `remote`: a git repository or http(s) URL to fetch the context from (the body is then
    /// ignored); empty for a context in the body.
    pub remote: String,
}

/// `POST /build/prune` parameters.
#[derive(Debug, Clone, Default)]
pub struct BuildPruneOptions {
    /// Everything, not only entries no image build needs (`-a`).
    pub all: bool,
    /// `until`, `unused-for`, `id`, `description`… as given.
    pub filters: Filters,
    /// `keep-storage` / `reserved-space`: bytes of cache to keep (least recently used go first).
    pub keep_storage: i64,
}

/// Image builds: the legacy builder's `POST /build` and its cache.
///
/// Vocabulary: a *build* runs a Dockerfile from a *context* (the request body: a tar, maybe
/// compressed, or a bare Dockerfile); every instruction is a *step* whose result is an image;
/// the *build cache* maps a step (its parent image, instruction and inputs) to the image it
/// made, so a rebuild reuses it (` ---> Using cache`).
///
/// Example: `build(tar, {tags: ["app"]}, progress, cancel)` sends `{"stream":"Step 1/2 : FROM
/// busybox"}`… `{"aux":{"ID":"sha256:…"}}` `{"stream":"Successfully tagged app:latest\n"}` and
/// returns `sha256:…`.
#[async_trait]
pub trait BuildBackend: Send + Sync + 'static {
    /// Builds `context`, reporting Docker's legacy stream messages through `progress`
    /// (`stream`, `aux`, pull progress) and returning the image ID. A failed step's error
    /// carries Docker's message and, for a failed RUN, its exit code ([`BuildFailure`]). When
    /// `cancel` fires (the client went away) the build stops: its processes are killed and no
    /// cache entry is written for unfinished steps.
    async fn build(
        &self,
        context: ByteStream,
        req: BuildRequest,
        progress: ProgressSender,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<String, BuildFailure>;

    /// `POST /build/prune`.
    async fn prune(&self, opts: BuildPruneOptions) -> Result<BuildPruneResponse, EngineError>;
}

/// Why a build failed: the error, and the exit code of the step that failed (a RUN's), which
/// the stream's `errorDetail.code` carries and the CLI exits with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildFailure {
    pub error: EngineError,
    pub code: Option<i32>,
}

impl From<EngineError> for BuildFailure {
    fn from(error: EngineError) -> Self {
        Self { error, code: None }
    }
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
    pub images: Arc<dyn ImageBackend>,
    pub containers: Arc<dyn ContainerBackend>,
    pub execs: Arc<dyn ExecBackend>,
    pub volumes: Arc<dyn VolumeBackend>,
    pub builds: Arc<dyn BuildBackend>,
    pub networks: Arc<dyn NetworkBackend>,
}
