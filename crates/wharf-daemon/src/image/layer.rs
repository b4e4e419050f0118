//! From bytes to committed layers, and new images from a layer.
//!
//! Two ways in:
//! - [`ImageService::unpack_blobs`]: layers already in the content store (load, commit) are
//!   unpacked into `wharf-tmp-<random>` snapshots and committed under their chain IDs. On
//!   overlay every layer is unpacked in parallel with no parent and committed onto its parent
//!   afterwards (`commit_rebased`); the native snapshotter needs each parent's full tree first,
//!   so it goes one by one.
//! - [`ImageService::layer_from_stream`]: a tar stream (import) is stored as a blob and
//!   unpacked in the same pass ([`wharf_image::TeeReader`]).
//! - [`ImageService::unpack_detached`]: one layer from any reader into a fresh parentless
//!   snapshot, left uncommitted for the caller to commit in order with
//!   [`ImageService::commit_layer`] (pulls, which unpack while downloading).
//!
//! Either way a layer is verified against its diff ID before it is committed, and nothing is
//! recorded in the database here: callers commit the rows of a whole change at once.

use std::io::{self, Read, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use wharf_image::TeeReader;
use wharf_image::layer::{Compression, LayerWriter, UnpackOptions, unpack};
use wharf_snapshot::SnapshotError;
use wharf_types::image::{History, ImageConfig, RuntimeConfig};
use wharf_types::{Digest, EngineError, ImageId, Platform, Reference};

use super::gc::{Lease, TMP_PREFIX};
use super::store::{self, BlobRow, LayerRow, now_nanos};
use super::{ImageError, ImageService};

/// What long operations report while they run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Bytes of a layer processed (`Loading layer` 1.2MB/4.5MB), `id` its short diff ID.
    Bytes { id: String, action: &'static str, current: u64, total: u64 },
    /// A line of text for the user (`Loaded image: busybox:latest`).
    Line(String),
}

/// Where [`Progress`] goes.
pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Sync);

/// A reader that reports how much of `total` it has passed through, at most every 1%.
struct ProgressReader<'a, R> {
    inner: R,
    id: &'a str,
    done: u64,
    total: u64,
    last: u64,
    progress: Option<ProgressFn<'a>>,
    cancel: &'a AtomicBool,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if let Some(p) = self.progress
            && (n == 0 || self.done - self.last >= (self.total / 100).max(512 * 1024))
        {
            self.last = self.done;
            p(Progress::Bytes {
                id: self.id.to_owned(),
                action: "Loading layer",
                current: self.done,
                total: self.total,
            });
        }
        Ok(n)
    }
}

/// A layer to unpack from a blob in the content store.
#[derive(Debug, Clone)]
pub(crate) struct BlobLayer {
    pub chain: Digest,
    pub parent: Option<Digest>,
    pub diff_id: Digest,
    pub blob: Digest,
    pub blob_size: u64,
}

/// A layer made by [`ImageService::layer_from_stream`].
#[derive(Debug, Clone)]
pub(crate) struct StreamedLayer {
    pub row: LayerRow,
    pub blob: BlobRow,
    pub compression: Compression,
}

pub(crate) fn tmp_key() -> String {
    format!("{TMP_PREFIX}{}", &wharf_types::random_hex_id()[..24])
}

fn snap(op: &'static str) -> impl FnOnce(SnapshotError) -> ImageError {
    move |source| ImageError::Snapshot { op, source }
}

/// The chain ID of `diff_id` on top of `parent`.
pub(crate) fn chain_of(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => wharf_types::image::chain_ids(&[p.clone(), diff_id.clone()]).pop().expect("two chain ids"),
    }
}

impl ImageService {
    fn unpack_options(&self, diff_id: Option<&Digest>, blob: Option<&Digest>) -> UnpackOptions {
        UnpackOptions {
            whiteouts: self.snapshotter.whiteouts(),
            rootless: !rustix::process::geteuid().is_root(),
            sync: false,
            expected_digest: blob.cloned(),
            expected_diff_id: diff_id.cloned(),
            ..Default::default()
        }
    }

    /// Commits the unpacked snapshot `key` as layer `chain` (onto `rebase_parent` when
    /// unpacked without its parent). When `chain` exists already (made meanwhile by another
    /// operation: same content by definition), `key` is dropped instead.
    pub(crate) fn commit_layer(
        &self,
        lease: &Lease<'_>,
        key: &str,
        chain: &Digest,
        rebase_parent: Option<Option<&str>>,
    ) -> Result<(), ImageError> {
        let name = chain.to_string();
        lease.add(&name);
        let r = match rebase_parent {
            Some(parent) => self.snapshotter.commit_rebased(&name, key, parent),
            None => self.snapshotter.commit(&name, key),
        };
        match r {
            Ok(()) => Ok(()),
            Err(SnapshotError::AlreadyExists(_)) => {
                let _ = self.snapshotter.remove(key);
                Ok(())
            }
            Err(e) => {
                let _ = self.snapshotter.remove(key);
                Err(snap("commit layer snapshot")(e))
            }
        }
    }

    /// Unpacks `layers` (bottom first; each one's parent is the previous one or an existing
    /// layer) and commits their snapshots. Layers whose chain is already recorded are skipped.
    /// Returns the rows to record, in order.
    pub(crate) fn unpack_blobs(
        &self,
        lease: &Lease<'_>,
        layers: &[BlobLayer],
        progress: Option<ProgressFn<'_>>,
    ) -> Result<Vec<LayerRow>, ImageError> {
        let mut todo = Vec::new();
        for l in layers {
            lease.add(&l.chain.to_string());
            if store::layer_get(&self.db.conn(), &l.chain)?.is_none() {
                todo.push(l.clone());
            }
        }
        if todo.is_empty() {
            return Ok(Vec::new());
        }
        let cancel = AtomicBool::new(false);
        let unpack_one = |l: &BlobLayer, key: &str| -> Result<LayerRow, ImageError> {
            let file = self.content.open_blob(&l.blob).map_err(ImageError::Content)?;
            let id = l.diff_id.short().to_owned();
            let reader = ProgressReader {
                inner: io::BufReader::with_capacity(256 * 1024, file),
                id: &id,
                done: 0,
                total: l.blob_size,
                last: 0,
                progress,
                cancel: &cancel,
            };
            self.unpack_into(key, reader, l)
        };
        if !self.snapshotter.can_rebase() || todo.len() == 1 {
            let mut rows = Vec::new();
            for l in &todo {
                let key = tmp_key();
                lease.add(&key);
                let parent = l.parent.as_ref().map(ToString::to_string);
                self.snapshotter.prepare(&key, parent.as_deref()).map_err(snap("prepare a layer snapshot"))?;
                match unpack_one(l, &key) {
                    Ok(row) => {
                        self.commit_layer(lease, &key, &l.chain, None)?;
                        rows.push(row);
                    }
                    Err(e) => {
                        let _ = self.snapshotter.remove(&key);
                        return Err(e);
                    }
                }
            }
            return Ok(rows);
        }
        // Overlay: all layers at once, each into its own parentless snapshot.
        let keys: Vec<String> = todo.iter().map(|_| tmp_key()).collect();
        let cleanup = |keys: &[String]| {
            for k in keys {
                let _ = self.snapshotter.remove(k);
            }
        };
        for (i, k) in keys.iter().enumerate() {
            lease.add(k);
            if let Err(e) = self.snapshotter.prepare(k, None) {
                cleanup(&keys[..i]);
                return Err(snap("prepare a layer snapshot")(e));
            }
        }
        let rows: Vec<Mutex<Option<LayerRow>>> = todo.iter().map(|_| Mutex::new(None)).collect();
        // The first failure; the cancellations it causes in other workers are not reported.
        let first_err: Mutex<Option<ImageError>> = Mutex::new(None);
        let next = AtomicUsize::new(0);
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 4).min(todo.len());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= todo.len() || cancel.load(Ordering::Relaxed) {
                            break;
                        }
                        match unpack_one(&todo[i], &keys[i]) {
                            Ok(row) => *rows[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(row),
                            Err(e) => {
                                if !cancel.swap(true, Ordering::Relaxed) {
                                    *first_err.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                                }
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
            cleanup(&keys);
            return Err(e);
        }
        let rows: Vec<LayerRow> =
            rows.into_iter().filter_map(|r| r.into_inner().unwrap_or_else(|p| p.into_inner())).collect();
        for (i, (l, k)) in todo.iter().zip(&keys).enumerate() {
            let parent = l.parent.as_ref().map(ToString::to_string);
            if let Err(e) = self.commit_layer(lease, k, &l.chain, Some(parent.as_deref())) {
                cleanup(&keys[i + 1..]);
                return Err(e);
            }
        }
        Ok(rows)
    }

    /// Unpacks the layer blob read from `reader` into the active snapshot `key`, checking the
    /// blob digest and the diff ID, and returns the row its commit will record.
    fn unpack_into(&self, key: &str, reader: impl Read, l: &BlobLayer) -> Result<LayerRow, ImageError> {
        let dir = self.snapshotter.writable_dir(key).map_err(snap("find the layer's directory"))?;
        let opts = self.unpack_options(Some(&l.diff_id), Some(&l.blob));
        let result = unpack(reader, &dir, &opts).map_err(ImageError::Unpack)?;
        Ok(LayerRow {
            chain_id: l.chain.clone(),
            diff_id: l.diff_id.clone(),
            parent: l.parent.clone(),
            size: result.unpacked_size as i64,
            tar_size: result.tar_size as i64,
            snapshot: l.chain.to_string(),
        })
    }

    /// Unpacks one layer read from `reader` into a new parentless snapshot `key` (leased by the
    /// caller) and leaves it uncommitted: the caller commits it onto its parent with
    /// [`ImageService::commit_layer`] once the layers below are committed, or removes it with
    /// [`ImageService::discard_snapshot`]. On error the snapshot is already gone. Needs a
    /// snapshotter that [can rebase](wharf_snapshot::Snapshotter::can_rebase).
    pub(crate) fn unpack_detached(&self, key: &str, reader: impl Read, l: &BlobLayer) -> Result<LayerRow, ImageError> {
        self.snapshotter.prepare(key, None).map_err(snap("prepare a layer snapshot"))?;
        self.unpack_into(key, reader, l).inspect_err(|_| self.discard_snapshot(key))
    }

    /// Removes an uncommitted snapshot of an operation that failed (best effort: GC removes
    /// what is left once the operation's lease is dropped).
    pub(crate) fn discard_snapshot(&self, key: &str) {
        if let Err(e) = self.snapshotter.remove(key) {
            tracing::warn!(key, error = %e, "removing an unfinished layer snapshot failed; GC will retry");
        }
    }

    /// Stores the layer tar read from `reader` (compressed or not) as a blob and unpacks it on
    /// `parent` in the same pass.
    pub(crate) fn layer_from_stream(
        &self,
        lease: &Lease<'_>,
        reader: impl Read,
        parent: Option<&LayerRow>,
    ) -> Result<StreamedLayer, ImageError> {
        let mut writer = self.content.writer(None, None).map_err(ImageError::Content)?;
        let key = tmp_key();
        lease.add(&key);
        self.snapshotter
            .prepare(&key, parent.map(|p| p.snapshot.as_str()))
            .map_err(snap("prepare a layer snapshot"))?;
        let unpacked = (|| {
            let dir = self.snapshotter.writable_dir(&key).map_err(snap("find the layer's directory"))?;
            let opts = self.unpack_options(None, None);
            unpack(TeeReader::new(reader, &mut writer), &dir, &opts).map_err(ImageError::Unpack)
        })();
        let result = match unpacked {
            Ok(r) => r,
            Err(e) => {
                let _ = self.snapshotter.remove(&key);
                return Err(e);
            }
        };
        let blob = match lease.commit_blob(writer) {
            Ok(b) => b,
            Err(e) => {
                let _ = self.snapshotter.remove(&key);
                return Err(ImageError::Content(e));
            }
        };
        let chain = chain_of(parent.map(|p| &p.chain_id), &result.diff_id);
        lease.add(&chain.to_string());
        let existing = store::layer_get(&self.db.conn(), &chain)?;
        let row = match existing {
            Some(row) => {
                let _ = self.snapshotter.remove(&key);
                row
            }
            None => {
                self.commit_layer(lease, &key, &chain, None)?;
                LayerRow {
                    chain_id: chain.clone(),
                    diff_id: result.diff_id.clone(),
                    parent: parent.map(|p| p.chain_id.clone()),
                    size: result.unpacked_size as i64,
                    tar_size: result.tar_size as i64,
                    snapshot: chain.to_string(),
                }
            }
        };
        Ok(StreamedLayer {
            row,
            blob: BlobRow {
                digest: blob.digest,
                size: blob.size as i64,
                media_type: result.compression.oci_media_type().to_owned(),
            },
            compression: result.compression,
        })
    }

    /// The layer rows of an image, bottom first.
    pub(crate) fn layer_chain(
        &self,
        c: &rusqlite::Connection,
        top: Option<&Digest>,
    ) -> Result<Vec<LayerRow>, ImageError> {
        let mut out = Vec::new();
        let mut cur = top.cloned();
        while let Some(chain) = cur {
            let row = store::layer_get(c, &chain)?
                .ok_or_else(|| ImageError::Invalid(format!("layer {chain} of an image is missing")))?;
            cur = row.parent.clone();
            out.push(row);
        }
        out.reverse();
        Ok(out)
    }

    /// Makes the file system durable before metadata that references it commits.
    pub(crate) fn sync_storage(&self) {
        if let Ok(dir) = std::fs::File::open(&self.snapshot_root) {
            let _ = rustix::fs::syncfs(&dir);
        }
    }

    /// Creates an image: `base`'s layers (or none), plus an optional new layer, with `config`
    /// and one more history entry; tags it when asked. For import, commit and build.
    pub fn create_image(&self, new: NewImage) -> Result<ImageId, EngineError> {
        self.create_image_inner(new).map_err(EngineError::from)
    }

    pub(crate) fn create_image_inner(&self, new: NewImage) -> Result<ImageId, ImageError> {
        let lease = self.leases.lease();
        let (base_config, base_layers) = match &new.base {
            Some(id) => {
                let row =
                    store::image_get(&self.db.conn(), id)?.ok_or_else(|| ImageError::NoSuchImage(id.to_string()))?;
                if let Some(t) = &row.top_layer {
                    lease.add(&t.to_string());
                }
                let layers = self.layer_chain(&self.db.conn(), row.top_layer.as_ref())?;
                ((*self.config(id)?).clone(), layers)
            }
            None => {
                let p = new.platform.clone().unwrap_or_else(Platform::host);
                let config =
                    ImageConfig { architecture: p.architecture, os: p.os, variant: p.variant, ..Default::default() };
                (config, Vec::new())
            }
        };
        let parent_layer = base_layers.last();
        let layer = match new.layer {
            None => None,
            Some(LayerSource::Tar(reader)) => Some(self.layer_from_stream(&lease, reader, parent_layer)?),
            Some(LayerSource::Writer(produce)) => {
                let w = self.content.writer(None, None).map_err(ImageError::Content)?;
                let mut lw = LayerWriter::new(w, Compression::None, None).map_err(|source| ImageError::Io {
                    op: "write layer",
                    path: "<content store>".into(),
                    source,
                })?;
                produce(&mut lw).map_err(|source| ImageError::Io {
                    op: "write layer",
                    path: "<content store>".into(),
                    source,
                })?;
                let done = lw.finish().map_err(|source| ImageError::Io {
                    op: "write layer",
                    path: "<content store>".into(),
                    source,
                })?;
                let blob = lease.commit_blob(done.inner).map_err(ImageError::Content)?;
                let parent = parent_layer.map(|p| p.chain_id.clone());
                let chain = chain_of(parent.as_ref(), &done.diff_id);
                let job = BlobLayer {
                    chain: chain.clone(),
                    parent,
                    diff_id: done.diff_id.clone(),
                    blob: blob.digest.clone(),
                    blob_size: blob.size,
                };
                let mut rows = self.unpack_blobs(&lease, &[job], None)?;
                let row = match rows.pop() {
                    Some(r) => r,
                    None => store::layer_get(&self.db.conn(), &chain)?
                        .ok_or_else(|| ImageError::Invalid(format!("layer {chain} vanished")))?,
                };
                Some(StreamedLayer {
                    row,
                    blob: BlobRow {
                        digest: blob.digest,
                        size: blob.size as i64,
                        media_type: Compression::None.oci_media_type().to_owned(),
                    },
                    compression: Compression::None,
                })
            }
        };
        let created = new.created.clone().unwrap_or_else(|| super::query::rfc3339_nano(now_nanos()));
        let mut config = base_config;
        for k in ["container", "container_config", "docker_version", "comment", "parent", "id"] {
            config.extra.remove(k);
        }
        config.config = Some(new.config);
        config.created = Some(created.clone());
        config.author = new.author.clone();
        if let Some(c) = &new.comment {
            config.extra.insert("comment".to_owned(), serde_json::Value::String(c.clone()));
        }
        if let Some(l) = &layer {
            config.rootfs.diff_ids.push(l.row.diff_id.clone());
        }
        let mut history = new.history.clone();
        if history.created.is_none() {
            history.created = Some(created);
        }
        history.empty_layer = layer.is_none();
        config.history.push(history);
        let config_bytes =
            serde_json::to_vec(&config).map_err(|source| ImageError::Config { id: "new image".into(), source })?;
        let config_digest = wharf_image::sha256_digest(&config_bytes);
        let w =
            self.content.writer(Some(&config_digest), Some(config_bytes.len() as u64)).map_err(ImageError::Content)?;
        let stored = {
            let mut w = w;
            w.write_all(&config_bytes).map_err(|source| ImageError::Io {
                op: "write image config",
                path: "<content store>".into(),
                source,
            })?;
            lease.commit_blob(w).map_err(ImageError::Content)?
        };
        let id = ImageId::new(stored.digest.clone());
        let mut layers = base_layers.clone();
        if let Some(l) = &layer {
            layers.push(l.row.clone());
        }
        let row = self.image_row(&id, &config, &layers, new.parent.clone())?;
        self.sync_storage();
        let now = now_nanos();
        let moved = self.db.transaction(|tx| {
            store::blob_insert(
                tx,
                &BlobRow {
                    digest: stored.digest.clone(),
                    size: config_bytes.len() as i64,
                    media_type: wharf_image::oci::MEDIA_TYPE_OCI_CONFIG.to_owned(),
                },
                now,
            )?;
            if let Some(l) = &layer {
                store::blob_insert(tx, &l.blob, now)?;
                store::layer_insert(tx, &l.row, now)?;
                store::layer_blob_insert(tx, &l.row.diff_id, &l.blob.digest, l.compression)?;
            }
            store::image_insert(tx, &row)?;
            let mut moved = None;
            if let Some(tag) = &new.tag {
                moved = store::ref_put(tx, tag, &id, now)?;
                store::set_last_tag_time(tx, &id, now)?;
            }
            Ok::<_, ImageError>(moved)
        })?;
        drop(moved);
        if let Some(tag) = &new.tag {
            self.event("tag", &id, &tag.familiar());
        }
        drop(lease);
        Ok(id)
    }

    /// The row recorded for an image with this config and these layers.
    pub(crate) fn image_row(
        &self,
        id: &ImageId,
        config: &ImageConfig,
        layers: &[LayerRow],
        parent: Option<ImageId>,
    ) -> Result<store::ImageRow, ImageError> {
        let created = config.created.as_deref().and_then(super::query::parse_time);
        Ok(store::ImageRow {
            id: id.clone(),
            created,
            size: layers.iter().map(|l| l.size).sum(),
            parent,
            top_layer: layers.last().map(|l| l.chain_id.clone()),
            labels: config.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default(),
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            added: now_nanos(),
            last_tag_time: None,
        })
    }
}

/// Writes an uncompressed layer tar into the writer it is given.
pub type LayerProducer = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

/// Where a new image's layer comes from.
pub enum LayerSource {
    /// A layer tar, uncompressed or gzip/zstd-compressed, read to its end (import). It is
    /// stored as received.
    Tar(Box<dyn Read + Send>),
    /// Writes an uncompressed layer tar into the writer it is given (commit:
    /// `wharf_image::layer::diff` of a container's snapshot).
    Writer(LayerProducer),
}

/// What [`ImageService::create_image`] makes.
pub struct NewImage {
    /// The image this one builds on: its layers, config fields and history are kept.
    pub base: Option<ImageId>,
    /// The new layer; `None` for a config-only step (an `empty_layer` history entry).
    pub layer: Option<LayerSource>,
    /// The runtime config of the new image.
    pub config: RuntimeConfig,
    /// The history entry to add (`created` is filled in when empty).
    pub history: History,
    /// `created` of the image (RFC 3339); now when empty.
    pub created: Option<String>,
    pub author: Option<String>,
    /// The image's top-level `comment` (import's message).
    pub comment: Option<String>,
    /// Platform of an image without base; the host's when empty.
    pub platform: Option<Platform>,
    /// Recorded as the image's parent (commit and build record the base).
    pub parent: Option<ImageId>,
    pub tag: Option<Reference>,
}
