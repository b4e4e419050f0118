//! `wharf-api`'s `BuildBackend` over the [`BuildService`]: the request becomes
//! [`BuildOptions`], the builder's events become the legacy stream's messages; `builder
//! prune` and the build-cache part of `/system/df`.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use wharf_api::backend::{BuildBackend, BuildFailure, BuildPruneOptions, BuildRequest, ByteStream};
use wharf_api::models::{BuildCacheDiskUsage, BuildPruneResponse};
use wharf_api::stream::{JsonMessage, ProgressSender};
use wharf_build::{BuildError, BuildEvent, BuildOptions, HostOptions, LegacyMessage};
use wharf_types::{Classify, EngineError, ImageId, Platform, Reference};

use super::BuildService;
use super::cache::CacheEntry;
use crate::image::query::rfc3339_nano;

/// The request as builder options; malformed values are 400s with moby's words.
pub fn options(req: &BuildRequest) -> Result<BuildOptions, EngineError> {
    let mut tags = Vec::new();
    for t in &req.tags {
        let r = Reference::parse_normalized(t).map_err(|e| EngineError::from_classified(&e))?;
        if r.digest().is_some() {
            return Err(EngineError::invalid("build tag cannot contain a digest"));
        }
        tags.push(r.with_default_tag());
    }
    let platform = match req.platform.as_str() {
        "" => None,
        p => Some(Platform::parse(p).map_err(|e| EngineError::invalid(format!("failed to parse platform {p}: {e}")))?),
    };
    Ok(BuildOptions {
        dockerfile: req.dockerfile.clone(),
        tags,
        build_args: req.build_args.clone(),
        labels: req.labels.clone(),
        target: Some(req.target.clone()).filter(|t| !t.is_empty()),
        platform,
        no_cache: req.no_cache,
        pull: req.pull,
        cache_from: req.cache_from.clone(),
        network_mode: req.network_mode.clone(),
        remove: req.remove,
        force_remove: req.force_remove,
        host: HostOptions {
            extra_hosts: req.extra_hosts.clone(),
            shm_size: req.shm_size.max(0) as u64,
            memory: req.memory,
            memory_swap: req.memory_swap,
            cpu_shares: req.cpu_shares,
            cpu_period: req.cpu_period,
            cpu_quota: req.cpu_quota,
            cpuset_cpus: req.cpuset_cpus.clone(),
            cpuset_mems: req.cpuset_mems.clone(),
            cgroup_parent: req.cgroup_parent.clone(),
            ulimits: req.ulimits.clone(),
            isolation: String::new(),
            security_opt: req.security_opt.clone(),
        },
        secrets: req.secrets.clone(),
        ..BuildOptions::default()
    })
}

/// A builder stream object as the API's message type.
fn message(m: LegacyMessage) -> JsonMessage {
    if let Some(raw) = m.raw {
        return serde_json::from_value(serde_json::Value::Object(raw)).unwrap_or_default();
    }
    JsonMessage {
        stream: m.stream,
        aux: m.aux,
        error_detail: m
            .error_detail
            .map(|e| wharf_api::stream::ErrorDetail { code: e.code.map(i64::from), message: e.message }),
        error: m.error,
        ..Default::default()
    }
}

fn failure(e: &BuildError) -> BuildFailure {
    BuildFailure { error: EngineError::new(e.kind(), e.to_string()), code: e.code() }
}

fn send(progress: &ProgressSender, ev: &BuildEvent) {
    for m in wharf_build::render(ev) {
        progress.send(message(m));
    }
}

#[async_trait]
impl BuildBackend for BuildService {
    async fn build(
        &self,
        context: ByteStream,
        req: BuildRequest,
        progress: ProgressSender,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<String, BuildFailure> {
        let opts = options(&req)?;
        self.source.add_auth(&req.registry_auth);
        let images = self.images.clone();
        let hold = tokio::task::spawn_blocking(move || images.hold_gc())
            .await
            .map_err(|e| EngineError::internal(format!("build: {e}")))?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // A `remote` context is fetched by the builder; the body (if any) is ignored then.
        let mut fut: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>> = if req.remote.is_empty() {
            Box::pin(self.builder.build(tokio_util::io::StreamReader::new(context), opts, tx, cancel))
        } else {
            Box::pin(self.builder.build_remote(&req.remote, opts, tx, cancel))
        };
        let result = loop {
            tokio::select! {
                biased;
                ev = rx.recv() => match ev {
                    Some(ev) => send(&progress, &ev),
                    None => break (&mut fut).await,
                },
                r = &mut fut => break r,
            }
        };
        while let Ok(ev) = rx.try_recv() {
            send(&progress, &ev);
        }
        drop(hold);
        match result {
            Ok(r) => Ok(r.image.to_string()),
            Err(e) => {
                tracing::debug!(error = %e, "build failed");
                Err(failure(&e))
            }
        }
    }

    async fn prune(&self, opts: BuildPruneOptions) -> Result<BuildPruneResponse, EngineError> {
        let this = self.clone_handles();
        tokio::task::spawn_blocking(move || this.prune(&opts))
            .await
            .map_err(|e| EngineError::internal(format!("build cache prune: {e}")))?
    }
}

/// What prune and disk usage need, movable to the blocking pool.
struct Handles {
    builder: wharf_build::Builder,
    /// The builder's directory.
    root: std::path::PathBuf,
    images: std::sync::Arc<crate::image::ImageService>,
    cache: std::sync::Arc<super::cache::SqliteCache>,
}

/// One cache entry as `/system/df` shows it.
struct Item {
    entry: CacheEntry,
    description: String,
    size: i64,
    shared: bool,
}

fn seconds_ago(value: &str, now: i64) -> Result<i64, EngineError> {
    // Go durations (`24h`, `1h30m`) or a timestamp, as `docker builder prune --filter until=`.
    let nanos = crate::image::query::parse_filter_time(value, now * 1_000_000_000)
        .map_err(|e| EngineError::invalid(e.to_string()))?;
    Ok(nanos / 1_000_000_000)
}

impl Handles {
    fn items(&self) -> Result<Vec<Item>, EngineError> {
        let kept = self.images.kept_images().map_err(EngineError::from)?;
        let mut out = Vec::new();
        for entry in self.cache.entries()? {
            let id = ImageId::new(entry.record.image.clone());
            let description = self
                .images
                .resolve(&id.to_string())
                .ok()
                .and_then(|r| r.config.history.last().and_then(|h| h.created_by.clone()))
                .unwrap_or_default();
            let size = self.images.own_layer_size(&id).map_err(EngineError::from)?;
            out.push(Item { shared: kept.contains(&id), entry, description, size });
        }
        Ok(out)
    }

    fn disk_usage(&self) -> Result<BuildCacheDiskUsage, EngineError> {
        let items = self.items()?;
        let total_size: i64 = items.iter().map(|i| i.size).sum();
        let reclaimable: i64 = items.iter().filter(|i| !i.shared).map(|i| i.size).sum();
        let json = |t: u64| rfc3339_nano(t as i64 * 1_000_000_000);
        Ok(BuildCacheDiskUsage {
            active_count: Some(0),
            total_count: Some(items.len() as i64),
            reclaimable: Some(reclaimable),
            total_size: Some(total_size),
            items: Some(
                items
                    .iter()
                    .map(|i| {
                        serde_json::json!({
                            "ID": i.entry.record.key,
                            "Parents": null,
                            "Type": "regular",
                            "Description": i.description,
                            "InUse": false,
                            "Shared": i.shared,
                            "Size": i.size,
                            "CreatedAt": json(i.entry.record.created),
                            "LastUsedAt": json(i.entry.record.last_used),
                            "UsageCount": i.entry.usage_count,
                        })
                    })
                    .collect(),
            ),
        })
    }

    /// Drops entries (all with `all`, else those whose image nothing keeps), then deletes the
    /// images only they kept, with their untagged parents.
    fn prune(&self, opts: &BuildPruneOptions) -> Result<BuildPruneResponse, EngineError> {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        opts.filters.validate(&["until", "unused-for", "unused_for"])?;
        let last = |k: &str| opts.filters.get(k).last().map(str::to_owned);
        let created_before = last("until").map(|v| seconds_ago(&v, now)).transpose()?;
        let unused_since =
            last("unused-for").or_else(|| last("unused_for")).map(|v| seconds_ago(&v, now)).transpose()?;
        let mut candidates: Vec<Item> = self
            .items()?
            .into_iter()
            .filter(|i| opts.all || !i.shared)
            .filter(|i| created_before.is_none_or(|t| (i.entry.record.created as i64) < t))
            .filter(|i| unused_since.is_none_or(|t| (i.entry.record.last_used as i64) < t))
            .collect();
        if opts.keep_storage > 0 {
            // Least recently used go first until what is left fits.
            candidates.sort_by_key(|i| i.entry.record.last_used);
            let mut total: i64 = self.items()?.iter().map(|i| i.size).sum();
            candidates.retain(|i| {
                if total <= opts.keep_storage {
                    return false;
                }
                total -= i.size;
                true
            });
        }
        let mut deleted = Vec::new();
        let mut images: Vec<ImageId> = Vec::new();
        for i in &candidates {
            wharf_build::CacheStore::remove(&*self.cache, &i.entry.record.key)?;
            deleted.push(i.entry.record.key.clone());
            images.push(ImageId::new(i.entry.record.image.clone()));
        }
        let mut reclaimed = self.delete_unkept(&images)?;
        if opts.all && created_before.is_none() && unused_since.is_none() && opts.keep_storage == 0 {
            let mounts = dir_size(&self.root.join("cache-mounts"));
            if self.builder.prune(true, None).map_err(|e| EngineError::internal(e.to_string()))?.cache_mounts > 0 {
                reclaimed += mounts;
            }
        }
        Ok(BuildPruneResponse { caches_deleted: Some(deleted), space_reclaimed: Some(reclaimed) })
    }

    /// Deletes the images of dropped entries that no remaining entry, tag, container or child
    /// needs; returns the bytes of their own layers.
    fn delete_unkept(&self, images: &[ImageId]) -> Result<i64, EngineError> {
        let still: HashSet<ImageId> = self.cache.entries()?.into_iter().map(|e| ImageId::new(e.record.image)).collect();
        let mut kept = self.images.kept_images().map_err(EngineError::from)?;
        kept.extend(still);
        let mut sizes: BTreeMap<String, i64> = BTreeMap::new();
        let mut reclaimed = 0;
        for id in images {
            if kept.contains(id) {
                continue;
            }
            for (i, size) in self.images.prunable_chain(id, &kept).map_err(EngineError::from)? {
                sizes.insert(i.to_string(), size);
            }
            // Children or a container make this a conflict: the image stays, which is right.
            let Ok(records) = self.images.delete(&id.to_string(), false, true) else { continue };
            for r in records {
                if let crate::image::delete::DeleteRecord::Deleted(d) = r {
                    reclaimed += sizes.remove(&d).unwrap_or(0);
                }
            }
        }
        Ok(reclaimed)
    }
}

impl BuildService {
    fn clone_handles(&self) -> Handles {
        Handles {
            builder: self.builder.clone(),
            root: self.root.clone(),
            images: self.images.clone(),
            cache: self.cache.clone(),
        }
    }

    /// The build-cache part of `/system/df`: one item per cache entry, its size the entry's
    /// own layer, shared when a tagged image (or a container's) contains it.
    pub async fn disk_usage(&self) -> Result<BuildCacheDiskUsage, EngineError> {
        let this = self.clone_handles();
        tokio::task::spawn_blocking(move || this.disk_usage())
            .await
            .map_err(|e| EngineError::internal(format!("build cache usage: {e}")))?
    }
}

/// Bytes of the files under `dir` (symlinks not followed).
fn dir_size(dir: &std::path::Path) -> i64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len() as i64,
                Err(_) => {}
            }
        }
    }
    total
}
