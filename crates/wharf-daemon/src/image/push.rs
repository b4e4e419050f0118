//! `docker push` (`POST /images/{name}/push?tag=`): for each tag, the image's layer blobs, then
//! its config, then a manifest are sent through the registry client; the pushed manifest's
//! digest is recorded as a repo digest of the image.
//!
//! What goes up for a layer, as Docker does it: gzip. A layer stored as received compressed
//! (gzip, or zstd, which is sent as it is) is sent as stored. A layer whose only blob is an
//! uncompressed tar (`import`/`load` of plain tars, `commit`, build steps) is gzipped **once**,
//! the first time it is pushed: in one streaming pass from its blob through the compressor,
//! the compressed bytes go both into a new content-store blob and into the upload while both
//! digests are computed (moby compresses while uploading too, and its `Pushing` progress
//! counts uncompressed bytes, as ours does). The new blob is recorded as another blob of the
//! layer (`layer_blobs`) and lives exactly as long as the layer (GC keeps every blob of a live
//! diff ID, see [`super::gc`]), so later pushes — to this or any other registry — send the
//! same bytes with the same digest and never compress again: the registry answers a `HEAD`
//! for it, and the layer shows `Layer already exists`. With every layer gzip the manifest is
//! Docker's schema 2 (`application/vnd.docker.image.rootfs.diff.tar.gzip` layers, as Docker
//! pushes); a zstd layer makes it an OCI manifest.
//!
//! Where blobs are: after a layer is found, mounted or uploaded, the repository is recorded
//! against its blob (`blob_sources`, Docker's "v2 metadata"). Pushing to another repository of
//! the same registry first asks it to mount the blob from one of those (`Mounted from x/y`).
//!
//! Messages follow moby's: `The push refers to repository [h/x]`, per layer (id = 12 hex digits
//! of the diff ID) `Preparing`, `Waiting` (beyond the concurrent uploads), `Pushing` with
//! progress, then `Pushed` / `Layer already exists` / `Mounted from x/y`; then
//! `<tag>: digest: sha256:… size: N` and an aux message `{"Tag","Digest","Size"}`.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use wharf_api::stream::{JsonMessage, ProgressSender};
use wharf_image::ContentWriter;
use wharf_image::layer::{Compression, LayerWriter};
use wharf_registry::client::{Access, AuthConfig, Client, ClientError, PushBlobOptions, PushOutcome, Repository};
use wharf_types::oci::{Descriptor, ImageManifest, media_type};
use wharf_types::{Digest, EngineError, Event, EventType, ImageId, Reference};

use super::store::{self, BlobRow, now_nanos};
use super::{ImageError, ImageService};

/// How many blobs upload at once (moby's `max-concurrent-uploads` default is 5).
const CONCURRENT_UPLOADS: usize = 5;

/// How many other repositories a blob is offered to mount from (moby's `maxMountAttempts`).
const MOUNT_ATTEMPTS: usize = 3;

/// Locks that make concurrent pushes of one layer (compose pushing services with a shared
/// base, say) compress it once: the first compresses, the others wait and find its blob.
/// Striped by diff ID, so different layers still compress in parallel.
#[derive(Default)]
pub(crate) struct CompressLocks([std::sync::Mutex<()>; 16]);

impl CompressLocks {
    fn lock(&self, diff_id: &Digest) -> std::sync::MutexGuard<'_, ()> {
        let stripe = usize::from(diff_id.hex().bytes().next().unwrap_or(0)) % self.0.len();
        self.0[stripe].lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A push as the API asked for it.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// The repository (its tag, if any, is what to push).
    pub reference: Reference,
    /// The tag query parameter; empty: the reference's tag, or every tag of the repository.
    pub tag: String,
    pub creds: AuthConfig,
}

/// The blob a layer goes up as.
#[derive(Debug, Clone)]
pub(super) enum LayerBlob {
    /// Sent as stored: gzip, or zstd as it was received.
    Stored { digest: Digest, size: u64, compression: Compression },
    /// Only the uncompressed tar `tar` (`tar_size` bytes) exists: gzip it while it uploads
    /// (see the module doc).
    Compress { tar: Digest, tar_size: u64 },
}

impl LayerBlob {
    fn compression(&self) -> Compression {
        match self {
            LayerBlob::Stored { compression, .. } => *compression,
            LayerBlob::Compress { .. } => Compression::Gzip,
        }
    }
}

/// One tag to push, read from the store.
pub(super) struct PushImage {
    pub(super) reference: Reference,
    pub(super) id: ImageId,
    config: Bytes,
    /// `(diff_id, blob)` bottom first.
    pub(super) layers: Vec<(Digest, LayerBlob)>,
}

/// A client error worded as moby's push does.
fn push_error(e: ClientError) -> EngineError {
    match &e {
        ClientError::Unauthorized { message, .. } => {
            EngineError::new(wharf_types::ErrorKind::Unauthorized, message.clone())
        }
        ClientError::Denied { message, .. } => EngineError::new(wharf_types::ErrorKind::Forbidden, message.clone()),
        _ => EngineError::from_classified(&e),
    }
}

impl ImageService {
    /// The tags to push and what each one needs.
    pub(super) fn push_plan(&self, req: &PushRequest) -> Result<Vec<PushImage>, ImageError> {
        let r = &req.reference;
        let mut refs: Vec<Reference> = Vec::new();
        if !req.tag.is_empty() {
            refs.push(r.with_tag(&req.tag)?);
        } else if r.tag().is_some() {
            refs.push(r.clone());
        } else {
            let c = self.db.conn();
            for (rr, _) in store::refs_all(&c)? {
                if rr.name() == r.name() && rr.tag().is_some() && rr.digest().is_none() {
                    refs.push(rr);
                }
            }
            if refs.is_empty() {
                return Err(ImageError::NotFound(format!(
                    "An image does not exist locally with the tag: {}",
                    r.familiar_name()
                )));
            }
        }
        let mut out = Vec::new();
        for rr in refs {
            let c = self.db.conn();
            let id = store::ref_get(&c, &rr)?.ok_or_else(|| {
                ImageError::NotFound(format!("An image does not exist locally with the tag: {}", rr.familiar_name()))
            })?;
            let row = store::image_get(&c, &id)?.ok_or_else(|| ImageError::NoSuchImage(rr.familiar()))?;
            let config = Bytes::from(self.config_bytes(&id)?);
            let mut layers = Vec::new();
            for l in self.layer_chain(&c, row.top_layer.as_ref())? {
                let blob = self
                    .layer_blob_to_push(&store::layer_blobs(&c, &l.diff_id)?, l.tar_size as u64)?
                    .ok_or_else(|| ImageError::Invalid(format!("layer {} has no blob to push", l.diff_id)))?;
                layers.push((l.diff_id.clone(), blob));
            }
            out.push(PushImage { reference: rr, id, config, layers });
        }
        Ok(out)
    }

    /// Of a layer's blobs, the one to push: gzip, else zstd, else the tar to gzip.
    fn layer_blob_to_push(
        &self,
        blobs: &[(Digest, Compression)],
        tar_size: u64,
    ) -> Result<Option<LayerBlob>, ImageError> {
        for want in [Compression::Gzip, Compression::Zstd] {
            if let Some((digest, compression)) = blobs.iter().find(|(_, c)| *c == want) {
                let path = self.content.path(digest);
                let size = std::fs::metadata(&path)
                    .map_err(|source| ImageError::Io { op: "stat layer blob", path, source })?
                    .len();
                return Ok(Some(LayerBlob::Stored { digest: digest.clone(), size, compression: *compression }));
            }
        }
        Ok(blobs.first().map(|(tar, _)| LayerBlob::Compress { tar: tar.clone(), tar_size }))
    }

    /// Gzips layer `diff_id` from its uncompressed blob `tar` in one streaming pass, stores the
    /// result and records it as another blob of the layer (see the module doc); with `upload`,
    /// the compressed bytes also go to an upload as they are written. Returns the blob's digest
    /// and size; from then on it lives as long as the layer.
    pub(super) fn gzip_layer(
        &self,
        diff_id: &Digest,
        tar: &Digest,
        upload: Option<UploadTap>,
    ) -> Result<(Digest, u64), ImageError> {
        let _one_at_a_time = self.compressing.lock(diff_id);
        let lease = self.leases.lease();
        lease.add(&tar.to_string());
        // A concurrent push of the same layer may have been first.
        let done = store::layer_blobs(&self.db.conn(), diff_id)?;
        if let Some(LayerBlob::Stored { digest, size, compression: Compression::Gzip }) =
            self.layer_blob_to_push(&done, 0)?
        {
            if let Some(u) = upload {
                let _ = u.started.send(false);
            }
            return Ok((digest, size));
        }
        let (bytes, report) = match upload {
            Some(u) => {
                let _ = u.started.send(true);
                (Some(u.bytes), Some(u.progress))
            }
            None => (None, None),
        };
        // Kept to end the upload with an error (rather than a short blob) when this fails.
        let abort = bytes.clone();
        let result = (|| {
            let io_err =
                |source: io::Error| ImageError::Io { op: "compress layer", path: self.content.path(tar), source };
            let file = self.content.open_blob(tar).map_err(ImageError::Content)?;
            let store = self.content.writer(None, None).map_err(ImageError::Content)?;
            let mut gz = LayerWriter::new(Tee { store, upload: bytes }, Compression::Gzip, None).map_err(io_err)?;
            let mut reader = CountingReader { inner: BufReader::with_capacity(256 * 1024, file), read: 0, report };
            io::copy(&mut reader, &mut gz).map_err(io_err)?;
            let written = gz.finish().map_err(io_err)?;
            if written.diff_id != *diff_id {
                return Err(ImageError::Invalid(format!(
                    "layer {diff_id}: its blob {tar} holds a layer with diff ID {}",
                    written.diff_id
                )));
            }
            let blob = lease.commit_blob(written.inner.store).map_err(ImageError::Content)?;
            let row = BlobRow {
                digest: blob.digest.clone(),
                size: blob.size as i64,
                media_type: Compression::Gzip.oci_media_type().to_owned(),
            };
            let now = now_nanos();
            self.db.transaction(|tx| {
                store::blob_insert(tx, &row, now)?;
                store::layer_blob_insert(tx, diff_id, &row.digest, Compression::Gzip)?;
                Ok::<_, ImageError>(())
            })?;
            tracing::info!(%diff_id, blob = %blob.digest, size = blob.size, "compressed a layer for push");
            Ok((blob.digest, blob.size))
        })();
        if let (Err(e), Some(abort)) = (&result, &abort) {
            let _ = abort.blocking_send(Err(io::Error::other(format!("compress layer {diff_id}: {e}"))));
        }
        // Dropping the last sender ends the upload's body: it then commits with the digest.
        drop(abort);
        result
    }
}

/// Where [`ImageService::gzip_layer`] also sends what it compresses: an upload in progress.
pub(super) struct UploadTap {
    /// Told `true` before the first byte, or `false` when the gzip blob exists already (then
    /// nothing is sent: push it as stored).
    pub(super) started: tokio::sync::oneshot::Sender<bool>,
    /// The compressed bytes; an `Err` aborts the upload.
    pub(super) bytes: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    /// Called with the uncompressed bytes read so far (Docker's `Pushing` counts those).
    pub(super) progress: Box<dyn Fn(u64) + Send>,
}

/// Writes to the content store and, when uploading, to the upload.
struct Tee {
    store: ContentWriter,
    upload: Option<tokio::sync::mpsc::Sender<io::Result<Bytes>>>,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.store.write(buf)?;
        if let Some(u) = &self.upload {
            u.blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                .map_err(|_| io::Error::other("the upload stopped"))?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.store.flush()
    }
}

/// A reader that reports how many bytes have been read.
struct CountingReader<R> {
    inner: R,
    read: u64,
    report: Option<Box<dyn Fn(u64) + Send>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if let Some(r) = &self.report {
            r(self.read);
        }
        Ok(n)
    }
}

/// `Pushing` progress for layer `id` out of `total` bytes, at most every 1% (or 512 KiB).
fn pushing_progress(id: &str, total: u64, progress: &ProgressSender) -> impl Fn(u64) + Send + Sync + 'static {
    let (id, progress) = (id.to_owned(), progress.clone());
    let last = AtomicU64::new(0);
    let step = (total / 100).max(512 * 1024);
    move |n: u64| {
        let l = last.load(Ordering::Relaxed);
        if n - l.min(n) >= step || n == total {
            last.store(n, Ordering::Relaxed);
            progress.send(JsonMessage::progress(id.clone(), "Pushing", n, total));
        }
    }
}

/// How the first push of a plain layer went.
enum Compressed {
    /// Gzipped while uploading.
    Uploaded { digest: Digest, size: u64 },
    /// Another push had made the gzip blob meanwhile: push that one.
    Cached { digest: Digest, size: u64 },
}

/// Gzips a plain layer while uploading it, as moby does: the digest is known only at the end,
/// so there is no existence check or mount — the blob is kept, and later pushes have both.
async fn upload_compressing(
    svc: &Arc<ImageService>,
    repo: &Repository,
    diff_id: &Digest,
    tar: &Digest,
    tar_size: u64,
    progress: &ProgressSender,
) -> Result<Compressed, EngineError> {
    let (started, started_rx) = tokio::sync::oneshot::channel();
    let (bytes, mut bytes_rx) = tokio::sync::mpsc::channel(16);
    let tap = UploadTap { started, bytes, progress: Box::new(pushing_progress(diff_id.short(), tar_size, progress)) };
    let compress = {
        let (svc, diff_id, tar) = (svc.clone(), diff_id.clone(), tar.clone());
        tokio::task::spawn_blocking(move || svc.gzip_layer(&diff_id, &tar, Some(tap)))
    };
    let joined = |r: Result<Result<(Digest, u64), ImageError>, tokio::task::JoinError>| match r {
        Ok(r) => r.map_err(EngineError::from),
        Err(e) => Err(EngineError::internal(format!("compress layer {diff_id}: {e}"))),
    };
    if started_rx.await != Ok(true) {
        let (digest, size) = joined(compress.await)?;
        return Ok(Compressed::Cached { digest, size });
    }
    let body = tokio_util::io::StreamReader::new(futures_util::stream::poll_fn(move |cx| bytes_rx.poll_recv(cx)));
    let (uploaded, compressed) = tokio::join!(repo.upload_blob_stream(body, None), compress);
    let compressed = joined(compressed);
    // When both fail, the upload's error is the cause (the compressor saw it stop).
    let (digest, size) = uploaded.map_err(push_error)?;
    let (stored, stored_size) = compressed?;
    if (&stored, stored_size) != (&digest, size) {
        return Err(EngineError::internal(format!(
            "layer {diff_id}: uploaded {digest} ({size} bytes) but stored {stored} ({stored_size} bytes)"
        )));
    }
    Ok(Compressed::Uploaded { digest, size })
}

/// Pushes (see the module doc).
pub async fn push(
    svc: Arc<ImageService>,
    client: Client,
    req: PushRequest,
    progress: ProgressSender,
) -> Result<(), EngineError> {
    let plan = {
        let (svc, req) = (svc.clone(), req.clone());
        super::backend::blocking(move || svc.push_plan(&req)).await?
    };
    let r = &req.reference;
    progress.send(JsonMessage::status(format!("The push refers to repository [{}]", r.name())));
    let repo = client.repository(r, &req.creds, Access::Push).await.map_err(push_error)?;
    for image in &plan {
        push_one(&svc, &repo, image, &progress).await?;
    }
    Ok(())
}

/// Sends one layer: its blob (gzipped first when needed), mounted or uploaded unless the
/// repository has it. Returns its manifest descriptor.
async fn push_layer(
    svc: &Arc<ImageService>,
    repo: &Repository,
    registry: &str,
    diff_id: &Digest,
    blob: LayerBlob,
    docker_types: bool,
    progress: &ProgressSender,
) -> Result<Descriptor, EngineError> {
    let id = diff_id.short().to_owned();
    let record_source = |digest: Digest| {
        let (svc, registry, name) = (svc.clone(), registry.to_owned(), repo.name().to_owned());
        super::backend::blocking(move || Ok(store::blob_source_add(&svc.db.conn(), &digest, &registry, &name)?))
    };
    let (digest, size, compression) = match blob {
        LayerBlob::Stored { digest, size, compression } => (digest, size, compression),
        LayerBlob::Compress { tar, tar_size } => {
            match upload_compressing(svc, repo, diff_id, &tar, tar_size, progress).await? {
                Compressed::Uploaded { digest, size } => {
                    progress.send(JsonMessage::layer(&id, "Pushed"));
                    record_source(digest.clone()).await?;
                    return Ok(Descriptor::new(layer_media_type(Compression::Gzip, docker_types), digest, size));
                }
                Compressed::Cached { digest, size } => (digest, size, Compression::Gzip),
            }
        }
    };
    let desc = Descriptor::new(layer_media_type(compression, docker_types), digest.clone(), size);
    let mount_from: Vec<String> = {
        let (svc, digest, registry, own) = (svc.clone(), digest.clone(), registry.to_owned(), repo.name().to_owned());
        super::backend::blocking(move || {
            let mut from = store::blob_sources(&svc.db.conn(), &digest, &registry)?;
            from.retain(|r| *r != own);
            from.truncate(MOUNT_ATTEMPTS);
            Ok(from)
        })
        .await?
    };
    let path = svc.content.path(&digest);
    let open = || async {
        tokio::fs::File::open(&path).await.map_err(|e| EngineError::internal(format!("open {}: {e}", path.display())))
    };
    let opts = PushBlobOptions {
        mount_from,
        progress: Some(Arc::new(pushing_progress(&id, size, progress))),
        ..Default::default()
    };
    let outcome = match repo.push_blob(&desc, open().await?, &opts).await {
        // A mount is an optimisation (the source may be gone, or not readable with these
        // credentials): like moby, fall back to an upload.
        Err(e) if !opts.mount_from.is_empty() => {
            tracing::debug!(%digest, error = %e, "push with mounts failed; uploading");
            let opts = PushBlobOptions { mount_from: Vec::new(), ..opts };
            repo.push_blob(&desc, open().await?, &opts).await
        }
        r => r,
    }
    .map_err(push_error)?;
    match outcome {
        PushOutcome::Exists => progress.send(JsonMessage::layer(&id, "Layer already exists")),
        PushOutcome::Mounted { from } => progress.send(JsonMessage::layer(&id, format!("Mounted from {from}"))),
        PushOutcome::Pushed => progress.send(JsonMessage::layer(&id, "Pushed")),
    }
    record_source(digest).await?;
    Ok(desc)
}

async fn push_one(
    svc: &Arc<ImageService>,
    repo: &Repository,
    image: &PushImage,
    progress: &ProgressSender,
) -> Result<(), EngineError> {
    let r = &image.reference;
    let all_gzip = image.layers.iter().all(|(_, b)| b.compression() == Compression::Gzip);
    for (diff_id, _) in &image.layers {
        progress.send(JsonMessage::layer(diff_id.short(), "Preparing"));
    }
    for (diff_id, _) in image.layers.iter().skip(CONCURRENT_UPLOADS) {
        progress.send(JsonMessage::layer(diff_id.short(), "Waiting"));
    }
    let registry = r.domain();
    let mut uploads = Vec::with_capacity(image.layers.len());
    for (diff_id, blob) in &image.layers {
        uploads.push(push_layer(svc, repo, registry, diff_id, blob.clone(), all_gzip, progress));
    }
    let results: Vec<Result<Descriptor, EngineError>> =
        futures_util::stream::iter(uploads).buffered(CONCURRENT_UPLOADS).collect().await;
    let layers = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let config_mt = if all_gzip { media_type::DOCKER_CONFIG } else { media_type::OCI_CONFIG };
    let (config_desc, _) = repo.push_blob_bytes(config_mt, image.config.clone()).await.map_err(push_error)?;
    let manifest_mt = if all_gzip { media_type::DOCKER_MANIFEST } else { media_type::OCI_MANIFEST };
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(manifest_mt.to_owned()),
        artifact_type: None,
        config: config_desc,
        layers,
        subject: None,
        annotations: BTreeMap::new(),
        extra: Default::default(),
    };
    let body = Bytes::from(
        serde_json::to_vec_pretty(&manifest).map_err(|e| EngineError::internal(format!("encode manifest: {e}")))?,
    );
    let size = body.len();
    let tag = r.tag().unwrap_or("latest").to_owned();
    let digest = repo.push_manifest(&tag, manifest_mt, body).await.map_err(push_error)?;
    progress.send(JsonMessage::status(format!("{tag}: digest: {digest} size: {size}")));
    progress.send(JsonMessage {
        progress_detail: Some(Default::default()),
        aux: Some(serde_json::json!({"Tag": tag, "Digest": digest.to_string(), "Size": size})),
        ..Default::default()
    });
    let (svc2, id, digest_ref) = (svc.clone(), image.id.clone(), r.with_digest(digest.clone()));
    super::backend::blocking(move || {
        let now = now_nanos();
        svc2.db.transaction(|tx| {
            if store::image_get(tx, &id)?.is_some() {
                store::ref_put(tx, &digest_ref, &id, now)?;
            }
            Ok::<_, ImageError>(())
        })
    })
    .await?;
    let mut attributes = BTreeMap::new();
    attributes.insert("name".to_owned(), r.familiar());
    svc.events.publish(Event::now(EventType::Image, "push", r.familiar(), attributes));
    Ok(())
}

fn layer_media_type(c: Compression, docker: bool) -> &'static str {
    match (c, docker) {
        (Compression::Gzip, true) => media_type::DOCKER_LAYER_GZIP,
        (c, _) => c.oci_media_type(),
    }
}
