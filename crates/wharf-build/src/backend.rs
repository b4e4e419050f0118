//! What the builder needs from the engine: the traits the daemon implements, and the values
//! that cross them. Each trait's doc comment is its spec.
//!
//! Shared vocabulary:
//! - An **image** is identified by its ID, the sha256 [`Digest`] of its config JSON.
//! - An image's layers are unpacked as **committed snapshots named by their chain IDs**
//!   (`wharf_types::image::chain_ids` over `rootfs.diff_ids`, written `sha256:<hex>`), in the
//!   [`Snapshotter`](wharf_snapshot::Snapshotter) the builder is given. The builder creates new
//!   layers the same way: a step's layer is committed as the snapshot named by its chain ID,
//!   and its uncompressed tar is stored in the content store under its diff ID (uncompressed,
//!   so the blob digest *is* the diff ID).
//! - Every step of a build makes an image (Docker's "intermediate images"); the last one of
//!   the target stage is the result. Intermediate images have a parent (the previous step's
//!   image), which the daemon records for `docker images -a` / `docker history`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use wharf_types::image::{ImageConfig, RuntimeConfig};
use wharf_types::{ContainerId, Digest, EngineError, Mount, Platform, Reference};

/// An image the builder can start from or copy from.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseImage {
    /// The image ID (sha256 of the config JSON).
    pub id: Digest,
    /// The parsed config: `config` gives the runtime defaults a stage starts with (ENV, CMD,
    /// ONBUILD triggers…), `rootfs.diff_ids` the layers (whose chain IDs name the snapshots),
    /// `history` what `--cache-from` compares.
    pub config: ImageConfig,
}

/// When [`ImageSource::resolve`] may go to a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Use a local image when there is one, pull otherwise (the default).
    Missing,
    /// Always pull (`--pull`), falling back to nothing: a failed pull fails the build.
    Always,
    /// Never pull: local images only (`--cache-from` images, `COPY --from=<stage>` results).
    Never,
}

/// Receives progress messages while an image is pulled, already shaped as Docker's JSON
/// messages (`{"status":"Pulling fs layer","progressDetail":{},"id":"…"}`); the builder passes
/// them through as [`crate::BuildEvent::Progress`].
pub type ProgressFn = Arc<dyn Fn(serde_json::Value) + Send + Sync>;

/// Resolves image references to local images, pulling when allowed.
///
/// Lifecycle: called once per `FROM <image>` (and per `COPY --from=<image>` /
/// `RUN --mount=from=<image>`, and per `--cache-from` image) at the start of the step that
/// needs it; the builder then reads the image's layers through the snapshotter, so when
/// `resolve` returns, every layer of the image must be unpacked as a committed snapshot named
/// by its chain ID. Images are looked up again by ID with [`ImageSource::get`] on cache hits.
///
/// Errors are returned as [`EngineError`]s and shown to the user as they are (Docker's
/// `pull access denied for x, repository does not exist or may require 'docker login'`,
/// `No such image: x` for [`PullPolicy::Never`]).
///
/// ```text
/// FROM busybox          → resolve("busybox", linux/amd64, Missing)  → BaseImage{id, config}
/// (cache hit → image X) → get(X)                                   → BaseImage{X, config}
/// ```
#[async_trait]
pub trait ImageSource: Send + Sync {
    /// The image `reference` names (a reference as written in the Dockerfile, normalised by the
    /// implementation; an image ID or `sha256:` prefix is accepted too), for `platform`.
    async fn resolve(
        &self,
        reference: &str,
        platform: &Platform,
        policy: PullPolicy,
        progress: ProgressFn,
    ) -> Result<BaseImage, EngineError>;

    /// A local image by ID; `Ok(None)` when it is gone (a stale cache entry).
    async fn get(&self, id: &Digest) -> Result<Option<BaseImage>, EngineError>;
}

/// One layer of a [`NewImage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLayer {
    /// sha256 of the uncompressed layer tar; also its blob digest in the content store.
    pub diff_id: Digest,
    /// Size of the tar in bytes.
    pub size: u64,
    /// The committed snapshot holding it (its chain ID).
    pub snapshot: String,
}

/// An image the builder made, ready to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewImage {
    /// sha256 of `config_json`: the image ID.
    pub id: Digest,
    /// The config exactly as it must be stored (its bytes are its identity).
    pub config_json: Vec<u8>,
    /// The same config, parsed.
    pub config: ImageConfig,
    /// The image this step started from (`None` after `FROM scratch`).
    pub parent: Option<Digest>,
    /// The layer this step added, if any: its uncompressed tar is in the content store under
    /// its diff ID and its snapshot is committed. All other layers of `config.rootfs` belong
    /// to the parent (or, for an image restored from `--cache-from`, to that source image).
    pub layer: Option<NewLayer>,
}

/// Records images the builder made, and tags them.
///
/// `commit` is called once per step that made a new image (never for cache hits), after the
/// layer blob and snapshot exist; it must be atomic (the image exists fully or not at all) and
/// idempotent (committing an image ID that exists is a success). The daemon owns garbage
/// collection: snapshots and blobs the builder created but never committed into an image (a
/// cancelled build) are unreferenced and may be collected.
///
/// `tag` points a reference at an image, moving it from any other image (`docker build -t`).
#[async_trait]
pub trait ImageCommitter: Send + Sync {
    async fn commit(&self, image: NewImage) -> Result<(), EngineError>;
    async fn tag(&self, image: &Digest, reference: &Reference) -> Result<(), EngineError>;
}

/// The network a RUN step gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// The build's `networkmode`: Docker's default `bridge` when empty or `default`, `host`,
    /// `none`, or a user-defined network's name or ID.
    Default(String),
    /// `RUN --network=none`: a loopback-only network namespace.
    None,
    /// `RUN --network=host`: the host's network namespace.
    Host,
}

/// What one extra mount of a RUN is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// Bind-mount a host path (a directory or a file), read-only when `read_only`.
    /// Used for `type=cache` (a directory the builder keeps), `type=bind` (a path in the
    /// context or a stage's mounted filesystem, or a private copy of it for `rw`),
    /// `type=secret` (a file) and heredoc scripts.
    Bind { source: PathBuf, read_only: bool },
    /// A fresh tmpfs, `size` bytes at most when given.
    Tmpfs { size: Option<u64> },
}

/// An extra mount of a RUN step, inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraMount {
    /// Absolute path inside the container; it exists in the rootfs when the runner is called.
    pub target: String,
    pub source: MountSource,
}

/// Container settings that come from the build options and are only passed through (the
/// daemon applies them as it would to `docker run`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostOptions {
    /// `extrahosts`: `host:ip` entries for `/etc/hosts`.
    pub extra_hosts: Vec<String>,
    /// `shmsize` in bytes (0 = default).
    pub shm_size: u64,
    pub memory: i64,
    pub memory_swap: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub cgroup_parent: String,
    /// `ulimits` as Docker's JSON (`[{"Name":"nofile","Soft":1024,"Hard":2048}]`), opaque here.
    pub ulimits: Option<serde_json::Value>,
    pub isolation: String,
    pub security_opt: Vec<String>,
}

/// One RUN step's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The intermediate container's ID, already shown to the user (` ---> Running in <id12>`).
    pub id: ContainerId,
    /// The step's root filesystem, **already mounted** read-write by the builder at this path
    /// for the duration of the call (use it as the OCI `root.path`; do not unmount it).
    pub rootfs: PathBuf,
    /// The mounts that make up `rootfs` (what the snapshotter returned) and the active
    /// snapshot's key, for runners that prefer to mount it themselves elsewhere.
    pub rootfs_mounts: Vec<Mount>,
    pub snapshot_key: String,
    /// argv: the shell prepended for shell form, as Docker does. Never empty.
    pub args: Vec<String>,
    /// `KEY=VALUE`: the image's ENV, then the build args in scope (not persisted).
    pub env: Vec<String>,
    /// `USER` (`name`, `uid`, `name:group`, `uid:gid`), resolved inside the container; empty
    /// for root.
    pub user: String,
    /// Absolute; exists in the rootfs.
    pub workdir: String,
    pub network: NetworkMode,
    /// `RUN --mount=…` mounts and heredoc script files, in order.
    pub mounts: Vec<ExtraMount>,
    /// `RUN --security=insecure` when the build allows it: run privileged.
    pub privileged: bool,
    pub host: HostOptions,
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Where a RUN step's output goes (the builder turns it into [`crate::BuildEvent::Output`]).
pub trait OutputSink: Send + Sync {
    /// One chunk as read (not necessarily whole lines).
    fn write(&self, stream: OutputStream, data: &[u8]);
}

/// Runs the process of a RUN step.
///
/// Contract:
/// - Run `spec.args` in a container whose root is `spec.rootfs` (already mounted), with the
///   environment, user and working directory given, the network mode and the extra mounts
///   (each target exists in the rootfs), `/proc`, `/dev` (with `/dev/shm` of
///   `host.shm_size`) and `/sys` as `docker run` would, and no stdin.
/// - Stream stdout and stderr to `output` as they come, then return the exit code when the
///   process exits (non-zero codes are not errors: the builder reports them).
/// - Leave no trace of the runtime's own mount points in the rootfs: the rootfs's changes
///   become the step's layer (Docker keeps them in a hidden "init" layer). The helper
///   [`crate::mountpoints::MountPoints`] creates missing targets and removes them again.
/// - When `cancel` fires, kill the process (and everything it started), clean up, and return
///   an error of kind [`Cancelled`](wharf_types::ErrorKind::Cancelled) promptly.
/// - Errors that keep the process from starting are returned as errors, in Docker's words
///   (`exec: "x": executable file not found in $PATH`).
///
/// Intermediate containers: a step's container normally disappears with the step. Docker keeps
/// it when the build says so — with `rm=false` every step's container stays, with the default
/// `rm=true` the container of a failed step stays, with `forcerm=true` none does — and the
/// builder then calls [`ContainerRunner::keep`] once the step is over: the container must then
/// exist as an ordinary container of the engine (`docker ps -a`, `inspect`, `diff`, `commit`,
/// `rm`), with the ID the build printed (` ---> Running in <id12>`).
#[async_trait]
pub trait ContainerRunner: Send + Sync {
    async fn run(
        &self,
        spec: RunSpec,
        output: Arc<dyn OutputSink>,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<i32, EngineError>;

    /// Records a step's container that the build leaves behind (see the trait's doc).
    async fn keep(&self, container: KeptContainer) -> Result<(), EngineError>;
}

/// A step's container the build leaves behind ([`ContainerRunner::keep`]).
#[derive(Debug, Clone, PartialEq)]
pub struct KeptContainer {
    /// The ID shown in ` ---> Running in <id12>`.
    pub id: ContainerId,
    /// The image the step started from (the container's image).
    pub image: Digest,
    /// The container's config: the step's `Cmd` (the RUN command with its shell, or a
    /// metadata step's `#(nop)` comment), an empty entrypoint, and the ENV, USER, WORKDIR…
    /// the step ran with.
    pub config: RuntimeConfig,
    /// How the RUN process exited; `None` for a container that was never started (the
    /// containers of metadata steps and WORKDIR).
    pub exit_code: Option<i32>,
    /// The step's changes to the image's filesystem, as an uncompressed layer tar (`.wh.`
    /// files for deletions) that becomes the container's writable layer; `None` when nothing
    /// changed. The file is the builder's: read it before returning.
    pub changes: Option<PathBuf>,
    /// The step's network (the build's `networkmode` unless `RUN --network` said otherwise),
    /// recorded as the container's network mode so that `docker start` puts it there again.
    pub network: NetworkMode,
}

/// One entry of the build cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRecord {
    /// The step's cache key (64 hex digits; see [`crate::cache`] for what goes into it).
    pub key: String,
    /// The image the step produced.
    pub image: Digest,
    /// Seconds since the Unix epoch when the entry was written / last used for a hit.
    pub created: u64,
    pub last_used: u64,
}

/// The persistent build cache: step cache key → the image that step produced.
///
/// The daemon persists it (SQLite) so that it survives restarts. The builder calls `put` only
/// after the image has been committed, so an entry never points at a half-made image; a
/// cancelled step writes nothing. `get` may return an image that has since been deleted: the
/// builder then treats it as a miss and `remove`s the entry. `touch` records a hit (for
/// `docker builder prune --filter until=`). All methods are quick and may be called from async
/// code directly.
pub trait CacheStore: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<Digest>, EngineError>;
    fn put(&self, key: &str, image: &Digest) -> Result<(), EngineError>;
    fn touch(&self, key: &str) -> Result<(), EngineError>;
    fn remove(&self, key: &str) -> Result<(), EngineError>;
    /// Every entry, for pruning and inspection.
    fn list(&self) -> Result<Vec<CacheRecord>, EngineError>;
}

/// Secrets for `RUN --mount=type=secret,id=<id>`: id → content. The legacy API has no way to
/// send them; the daemon takes them from wharf's `X-Wharf-Build-Secrets` header
/// (`wharf build --secret`).
pub type Secrets = BTreeMap<String, Vec<u8>>;
