//! The image builder: runs a parsed Dockerfile into images, with Docker's legacy-builder
//! semantics, output and cache behaviour, independent of the daemon.
//!
//! Map (start at [`Builder::build`], then [`backend`]):
//! - [`backend`]: the traits the daemon implements — [`ImageSource`] (resolve/pull base
//!   images), [`ContainerRunner`] (run a RUN step's process), [`ImageCommitter`] (record images,
//!   tag), [`CacheStore`] (persistent step cache) — and the values that cross them. Their doc
//!   comments are the spec.
//! - [`mod@build`]: [`Builder`], [`BuildOptions`], [`BuildResult`], [`BuildError`]; the stage
//!   DAG, parallel stages with ordered output, unused build-arg warnings, tagging.
//! - `stage` (private): one stage, every instruction's semantics, cache probing, image commits.
//! - [`context`]: the build context (tar body → temp dir, Dockerfile, `.dockerignore`);
//!   [`remote`]: contexts fetched from git repositories and URLs.
//! - `copy` (private): COPY/ADD source resolution, destination rules, ownership;
//!   [`fetch`]: ADD of URLs; [`archive`]: compression detection and safe extraction.
//! - [`cache`]: cache keys, `--cache-from`, and two [`CacheStore`]s (memory, JSON file).
//! - [`event`]: [`BuildEvent`] and the renderer to Docker's `/build` JSON stream.
//! - [`layer`] (snapshots for steps), [`mountpoints`] (RUN mount targets), `fsutil`, `hash`.
//!
//! On disk, under the builder root given in [`BuilderDeps`]: `tmp/` (contexts, downloads,
//! heredoc files; cleared at start), `mnt/<key>` (mounted step roots and views, only while a
//! step runs), `cache-mounts/<id>` (`RUN --mount=type=cache` directories, kept until
//! [`Builder::prune`]). Layers go to the given content store and snapshotter.
//!
//! Needs root (mounts) for every step that touches the filesystem.
//!
//! Beyond the legacy builder (which refuses them) and accepted here: `RUN --mount`
//! (bind, cache, tmpfs, secret), `RUN --network`, `--security=insecure` when allowed, heredocs,
//! `COPY --chmod/--exclude/--parents`, `ADD --checksum`, parallel stages, `--target` pruning.
//! Not supported: `RUN --mount=type=ssh`, `--device`, ADD of git URLs; `COPY --link` copies as
//! a plain COPY; cache mounts ignore `from=` and treat `sharing=private` like `locked`;
//! COPY does not carry xattrs or hard links (hard-linked files are copied separately).

pub mod archive;
pub mod backend;
pub mod build;
pub mod cache;
pub mod context;
mod copy;
pub mod event;
pub mod fetch;
mod fsutil;
mod hash;
pub mod layer;
pub mod mountpoints;
pub mod remote;
mod stage;

pub use backend::{
    BaseImage, CacheRecord, CacheStore, ContainerRunner, ExtraMount, HostOptions, ImageCommitter, ImageSource,
    KeptContainer, MountSource, NetworkMode, NewImage, NewLayer, OutputSink, OutputStream, ProgressFn, PullPolicy,
    RunSpec, Secrets,
};
pub use build::{BuildError, BuildOptions, BuildResult, Builder, BuilderDeps, EventSink, PruneReport};
pub use cache::{FileCacheStore, MemoryCacheStore};
pub use context::{BuildContext, ContextError};
pub use event::{BuildEvent, LegacyMessage, render, render_error};
