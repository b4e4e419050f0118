//! Image builds: `wharf-build`'s [`Builder`] over the daemon's services, and `wharf-api`'s
//! `BuildBackend` (`POST /build`, `POST /build/prune`) and the build-cache part of
//! `/system/df`.
//!
//! Map (start at [`BuildService`]):
//! - [`source`]: base images from the image service; pulls through a [`source::Puller`] the
//!   registry integration plugs in.
//! - [`commit`]: each step's image recorded in the image store (one transaction), `-t` tags.
//! - [`runner`]: RUN steps as one-shot containers (`crate::container::oneshot`); the step
//!   containers a build keeps (`rm=false`, failed steps) as real ones
//!   (`crate::container::intermediate`).
//! - [`cache`]: the step cache in SQLite (`build_cache`), so it survives restarts.
//! - [`api`]: the request → [`wharf_build::BuildOptions`] translation, the event stream,
//!   prune and disk usage.
//!
//! GC: a build holds a [`GcHold`](crate::image::GcHold) while it runs, because the builder
//! writes a step's layer blob and commits its snapshot before the image that references them
//! is recorded; layers of an interrupted step are collected after the build.
//!
//! On disk: `<data-root>/builder/` (the builder's temp contexts, step mount points and
//! `RUN --mount=type=cache` directories), the `build_cache` table of `wharf.db`; layers go
//! to the image service's content store and snapshotter. Leftovers of a crash (active `build-`
//! snapshots, one-shot processes) are removed at start.

pub mod api;
pub mod cache;
pub mod commit;
pub mod runner;
pub mod source;

use std::path::Path;
use std::sync::Arc;

use wharf_build::{Builder, BuilderDeps};
use wharf_snapshot::Kind;
use wharf_store::Db;
use wharf_types::EngineError;

use crate::container::ContainerService;
use crate::image::ImageService;

/// The build service (see the module doc).
pub struct BuildService {
    builder: Builder,
    /// The builder's directory.
    root: std::path::PathBuf,
    images: Arc<ImageService>,
    source: Arc<source::DaemonImages>,
    cache: Arc<cache::SqliteCache>,
}

/// Prefix of the builder's step snapshots (`wharf-build`'s `layer` module).
const STEP_SNAPSHOT_PREFIX: &str = "build-";

impl BuildService {
    /// Opens the builder under `<data_root>/builder` and removes what a crashed daemon left.
    pub fn open(
        data_root: &Path,
        db: Arc<Db>,
        images: Arc<ImageService>,
        containers: Arc<ContainerService>,
    ) -> Result<Arc<Self>, EngineError> {
        let snapshotter = images.snapshotter();
        let source = Arc::new(source::DaemonImages::new(images.clone()));
        let cache = Arc::new(cache::SqliteCache::open(db)?);
        let builder = Builder::new(BuilderDeps {
            root: data_root.join("builder"),
            snapshotter: snapshotter.clone(),
            content: images.content(),
            images: source.clone(),
            committer: Arc::new(commit::DaemonCommitter::new(images.clone())),
            runner: Arc::new(runner::DaemonRunner::new(containers)),
            cache: cache.clone(),
        })
        .map_err(|e| EngineError::internal(e.to_string()))?;
        // Builder::new unmounted the step roots; their snapshots go too (views first).
        if let Ok(list) = snapshotter.list() {
            let mut left: Vec<_> = list
                .into_iter()
                .filter(|s| s.name.starts_with(STEP_SNAPSHOT_PREFIX) && s.kind != Kind::Committed)
                .map(|s| s.name)
                .collect();
            left.sort_by_key(|n| !n.starts_with("build-view-"));
            for name in left {
                if let Err(e) = snapshotter.remove(&name) {
                    tracing::warn!(snapshot = %name, error = %e, "removing a step snapshot of an earlier run failed");
                }
            }
        }
        let svc = Self { builder, root: data_root.join("builder"), images, source, cache };
        Ok(Arc::new(svc))
    }

    /// Plugs in image pulls for `FROM` of missing images and `--pull`.
    pub fn set_puller(&self, puller: Arc<dyn source::Puller>) {
        self.source.set_puller(puller);
    }
}
