//! `docker pull` (`POST /images/create?fromImage=`): resolve the manifest through the
//! registry client (index → the platform's manifest), fetch the config, then download the
//! missing layers and unpack them in the same pass ([`stream`]), and record the image, its
//! layers, blobs, tag and repo digest in one transaction. A failure or a crash before that
//! commit leaves only unreferenced files, which GC removes.
//!
//! A name without tag or digest (`fromImage=x` and no `tag`: what `docker pull -a` sends) pulls
//! every tag the registry lists (`/v2/<name>/tags/list`, all pages), one after the other, as
//! moby does.
//!
//! Messages follow moby's: `Pulling from library/x`, per layer (id = 12 hex digits of the
//! compressed digest) `Already exists` or `Pulling fs layer` → `Waiting` → `Downloading` →
//! `Verifying Checksum` → `Download complete` → `Extracting` → `Pull complete`, then
//! `Digest: sha256:…` and, once per request, `Status: Downloaded newer image for …` /
//! `Status: Image is up to date for …`.
//!
//! The native snapshotter cannot unpack a layer without its parent's full tree, so there the
//! layers are downloaded first (concurrently, into the content store) and unpacked in order
//! afterwards.

mod stream;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::runtime::Handle;
use wharf_api::stream::{JsonMessage, ProgressSender};
use wharf_image::layer::{Compression, detect_compression};
use wharf_registry::client::{AuthConfig, BlobEvent, Client, ClientError, Repository, ResolvedImage};
use wharf_types::image::{ImageConfig, chain_ids};
use wharf_types::oci::Descriptor;
use wharf_types::{Digest, EngineError, ErrorKind, Event, EventType, ImageId, Platform, Reference};

use self::stream::{LayerJob, LayerPuller, Source};
use super::layer::{BlobLayer, Progress};
use super::store::{self, BlobRow, LayerRow, now_nanos};
use super::{ImageError, ImageService};

/// How many blobs download at once unless daemon.json's `max-concurrent-downloads` says
/// otherwise (moby's default).
pub const DEFAULT_CONCURRENT_DOWNLOADS: usize = 3;
/// Largest image config accepted.
const MAX_CONFIG: u64 = 16 << 20;

/// A pull as the API asked for it.
#[derive(Debug, Clone)]
pub struct PullRequest {
    /// What to pull: a tag or a digest, or a bare name for every tag (see [`pull_reference`]).
    pub reference: Reference,
    pub creds: AuthConfig,
    /// The platform asked for (`--platform`); the host's when `None`.
    pub platform: Option<Platform>,
    /// Layers downloaded at once (daemon.json `max-concurrent-downloads`).
    pub max_concurrent_downloads: usize,
}

/// The parts of `fromImage` and `tag` as one reference: `tag` may be a tag or a digest (the CLI
/// sends `tag=sha256:…` for `name@digest`). With neither (`docker pull -a`) the reference is
/// the bare name, which [`pull`] takes as "every tag". A trailing `:` on the name is dropped,
/// as moby does (old clients sent `name:` for `pull -a`).
pub fn pull_reference(from_image: &str, tag: &str) -> Result<Reference, EngineError> {
    let invalid = |e: wharf_types::reference::ReferenceError| {
        EngineError::invalid(format!("invalid reference format: {e}: {from_image}"))
    };
    let r = Reference::parse_normalized(from_image.strip_suffix(':').unwrap_or(from_image)).map_err(invalid)?;
    Ok(match tag {
        "" => r,
        t => match t.parse::<Digest>() {
            Ok(d) => r.with_digest(d),
            Err(_) => r.with_tag(t).map_err(invalid)?,
        },
    })
}

/// A client error worded as moby's pull does (`translatePullError`).
pub(crate) fn pull_error(r: &Reference, e: ClientError) -> EngineError {
    match &e {
        // moby answers 404 here (never 401, which would make the docker CLI prompt for
        // credentials and retry).
        ClientError::Unauthorized { message, .. } | ClientError::Denied { message, .. } => {
            EngineError::not_found(format!(
                "pull access denied for {}, repository does not exist or may require 'docker login': {message}",
                r.familiar_name()
            ))
        }
        ClientError::ManifestNotFound { message, .. } if message.starts_with("name unknown") => {
            EngineError::not_found(format!("repository {} not found: {message}", r.familiar_name()))
        }
        ClientError::NoMatchingPlatform { platform, .. } => {
            EngineError::not_found(format!("no matching manifest for {platform} in the manifest list entries"))
        }
        _ => EngineError::from_classified(&e),
    }
}

/// Docker's notice for a layer download that broke off: `Retrying in 2 seconds` (whole
/// seconds, at least one).
fn retrying(delay: std::time::Duration) -> String {
    let secs = delay.as_millis().div_ceil(1000).max(1);
    format!("Retrying in {secs} second{}", if secs == 1 { "" } else { "s" })
}

fn short(d: &Digest) -> String {
    d.hex()[..12].to_owned()
}

/// Pulls an image, or every tag of a repository when the reference is a bare name (see the
/// module doc). Errors before the first message become HTTP errors.
pub async fn pull(
    svc: Arc<ImageService>,
    client: Client,
    req: PullRequest,
    progress: ProgressSender,
) -> Result<(), EngineError> {
    let reference = &req.reference;
    let updated = if reference.tag().is_none() && reference.digest().is_none() {
        pull_all_tags(&svc, &client, &req, &progress).await?
    } else {
        pull_one(&svc, &client, &req, &progress).await?
    };
    let familiar = reference.familiar();
    let status = if updated { "Downloaded newer image for" } else { "Image is up to date for" };
    progress.send(JsonMessage::status(format!("Status: {status} {familiar}")));
    Ok(())
}

/// `pull -a`: every tag the registry lists, in its order; the first failure ends the pull.
/// Returns whether anything was downloaded or tagged anew.
async fn pull_all_tags(
    svc: &Arc<ImageService>,
    client: &Client,
    req: &PullRequest,
    progress: &ProgressSender,
) -> Result<bool, EngineError> {
    let reference = &req.reference;
    let repo = client
        .repository(reference, &req.creds, wharf_registry::client::Access::Pull)
        .await
        .map_err(|e| pull_error(reference, e))?;
    let tags = repo.all_tags(None).await.map_err(|e| pull_error(reference, e))?;
    let mut updated = false;
    for tag in tags {
        let tagged = reference
            .with_tag(&tag)
            .map_err(|e| EngineError::invalid(format!("invalid tag {tag:?} listed by the registry: {e}")))?;
        let one = PullRequest { reference: tagged, ..req.clone() };
        updated |= pull_one(svc, client, &one, progress).await?;
    }
    Ok(updated)
}

/// Pulls one tag or digest; returns whether anything was downloaded or tagged anew.
async fn pull_one(
    svc: &Arc<ImageService>,
    client: &Client,
    req: &PullRequest,
    progress: &ProgressSender,
) -> Result<bool, EngineError> {
    let reference = req.reference.clone();
    let platform = req.platform.clone().unwrap_or_else(Platform::host);
    let (repo, resolved) =
        client.pull_image(&reference, &req.creds, &platform).await.map_err(|e| pull_error(&reference, e))?;
    let tag_or_digest = match (reference.tag(), reference.digest()) {
        (Some(t), _) => t.to_owned(),
        (None, Some(d)) => d.to_string(),
        (None, None) => "latest".to_owned(),
    };
    progress.send(JsonMessage {
        status: Some(format!("Pulling from {}", reference.path())),
        id: Some(tag_or_digest),
        ..Default::default()
    });
    let config_desc = resolved.config_descriptor().clone();
    let config_bytes = match svc.content.exists(&config_desc.digest) {
        true => {
            let path = svc.content.path(&config_desc.digest);
            std::fs::read(&path).map_err(|e| EngineError::internal(format!("read {}: {e}", path.display())))?
        }
        false => repo.fetch_blob_bytes(&config_desc, MAX_CONFIG).await.map_err(|e| pull_error(&reference, e))?.to_vec(),
    };
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| EngineError::invalid(format!("invalid image config {}: {e}", config_desc.digest)))?;
    if !config.os.is_empty() && config.os != "linux" {
        return Err(EngineError::invalid(format!(
            "image operating system \"{}\" cannot be used on this platform",
            config.os
        )));
    }
    if let Some(want) = &req.platform
        && resolved.index.is_none()
        && !config.architecture.is_empty()
        && config.architecture != want.architecture
    {
        return Err(EngineError::not_found(format!(
            "image with reference {} was found but does not match the specified platform: wanted {want}, actual: {}/{}",
            reference.familiar(),
            config.os,
            config.architecture
        )));
    }
    if config.rootfs.diff_ids.len() != resolved.layers().len() {
        return Err(EngineError::invalid(format!(
            "invalid manifest for {}: {} layers but the config has {} diff IDs",
            reference.familiar(),
            resolved.layers().len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let concurrency = req.max_concurrent_downloads.max(1);
    let plan = PullPlan { reference, resolved, config_desc, config_bytes, config, concurrency };
    let handle = Handle::current();
    let (svc2, p2) = (svc.clone(), progress.clone());
    let result = tokio::task::spawn_blocking(move || svc2.pull_apply(&plan, &repo, &handle, &p2))
        .await
        .map_err(|e| EngineError::internal(format!("pull failed: {e}")))?;
    if result.is_err() {
        let svc = svc.clone();
        let _ = tokio::task::spawn_blocking(move || svc.gc()).await;
    }
    result
}

/// What was resolved before anything is stored.
struct PullPlan {
    reference: Reference,
    resolved: ResolvedImage,
    config_desc: Descriptor,
    config_bytes: Vec<u8>,
    config: ImageConfig,
    /// Layers downloaded at once.
    concurrency: usize,
}

impl ImageService {
    /// The blocking part of a pull: download and unpack (driven on `handle`), commit. Returns
    /// whether anything was downloaded or tagged anew.
    fn pull_apply(
        self: &Arc<Self>,
        plan: &PullPlan,
        repo: &Repository,
        handle: &Handle,
        progress: &ProgressSender,
    ) -> Result<bool, EngineError> {
        let reference = &plan.reference;
        let familiar = reference.familiar();
        let lease = self.leases.lease();
        let id = ImageId::new(plan.config_desc.digest.clone());
        lease.add(&id.digest().to_string());
        let layers = plan.resolved.layers();
        let diff_ids = &plan.config.rootfs.diff_ids;
        let chains = chain_ids(diff_ids);
        let tag_ref = reference.tag().is_some().then(|| reference.clone());
        let digest_ref = reference.with_digest(plan.resolved.digest.clone());
        let (exists, tagged_here) = {
            let c = self.db.conn();
            let exists = store::image_get(&c, &id).map_err(ImageError::Db)?.is_some();
            let tagged = match &tag_ref {
                Some(t) => store::ref_get(&c, t).map_err(ImageError::Db)?.as_ref() == Some(&id),
                None => store::ref_get(&c, &digest_ref).map_err(ImageError::Db)?.as_ref() == Some(&id),
            };
            (exists, tagged)
        };
        if !self.content.exists(id.digest()) {
            self.store_bytes(&lease, &plan.config_bytes, Some(id.digest()))?;
        }
        // Layers already recorded are skipped (a present chain implies its parents).
        let mut missing: Vec<usize> = Vec::new();
        {
            let c = self.db.conn();
            for (i, chain) in chains.iter().enumerate() {
                lease.add(&chain.to_string());
                if store::layer_get(&c, chain).map_err(ImageError::Db)?.is_none() {
                    missing.push(i);
                }
            }
        }
        if !exists {
            for (i, l) in layers.iter().enumerate() {
                if !missing.contains(&i) {
                    progress.send(JsonMessage::layer(short(&l.digest), "Already exists"));
                }
            }
        }
        let mut seen = HashSet::new();
        let mut jobs = Vec::new();
        let mut sources = Vec::new();
        for &i in &missing {
            let l = &layers[i];
            lease.add(&l.digest.to_string());
            let first = seen.insert(l.digest.clone());
            if first {
                progress.send(JsonMessage::layer(short(&l.digest), "Pulling fs layer"));
            }
            sources.push(if first && !self.content.exists(&l.digest) { Source::Registry } else { Source::Store });
            jobs.push(LayerJob {
                layer: BlobLayer {
                    chain: chains[i].clone(),
                    parent: (i > 0).then(|| chains[i - 1].clone()),
                    diff_id: diff_ids[i].clone(),
                    blob: l.digest.clone(),
                    blob_size: l.size,
                },
                desc: l.clone(),
                id: short(&l.digest),
            });
        }
        let downloads = jobs.iter().zip(&sources).filter(|(_, s)| **s == Source::Registry).map(|(j, _)| j);
        for j in downloads.skip(plan.concurrency) {
            progress.send(JsonMessage::layer(&j.id, "Waiting"));
        }
        let new_rows = if self.snapshotter.can_rebase() {
            let puller =
                LayerPuller { svc: self, repo, reference, progress, lease: &lease, concurrency: plan.concurrency };
            handle.block_on(puller.run(&jobs, &sources))?
        } else {
            self.pull_layers_in_two_passes(
                &jobs,
                &sources,
                repo,
                plan.concurrency,
                reference,
                handle,
                progress,
                &lease,
            )?
        };
        let mut rows: HashMap<Digest, LayerRow> = new_rows.into_iter().map(|r| (r.chain_id.clone(), r)).collect();
        {
            let c = self.db.conn();
            for chain in &chains {
                if !rows.contains_key(chain) {
                    let row = store::layer_get(&c, chain)
                        .map_err(ImageError::Db)?
                        .ok_or_else(|| ImageError::Invalid(format!("layer {chain} vanished during pull")))?;
                    rows.insert(chain.clone(), row);
                }
            }
        }
        let compression_of = |l: &Descriptor| -> Result<Compression, ImageError> {
            let by_type = Compression::from_media_type(&l.media_type);
            if by_type != Compression::None {
                return Ok(by_type);
            }
            let mut f = self.content.open_blob(&l.digest).map_err(ImageError::Content)?;
            let mut head = [0u8; 8];
            let n = f.read(&mut head).unwrap_or(0);
            Ok(detect_compression(&head[..n]))
        };
        let mut compressions = Vec::with_capacity(layers.len());
        for l in layers {
            compressions.push(compression_of(l)?);
        }
        self.sync_storage();
        let layer_rows: Vec<LayerRow> = chains.iter().map(|c| rows[c].clone()).collect();
        let image_row = self.image_row(&id, &plan.config, &layer_rows, None)?;
        let now = now_nanos();
        self.db.transaction(|tx| {
            store::blob_insert(
                tx,
                &BlobRow {
                    digest: id.digest().clone(),
                    size: plan.config_bytes.len() as i64,
                    media_type: plan.config_desc.media_type.clone(),
                },
                now,
            )?;
            for (i, l) in layers.iter().enumerate() {
                store::blob_insert(
                    tx,
                    &BlobRow {
                        digest: l.digest.clone(),
                        size: l.size as i64,
                        media_type: compressions[i].oci_media_type().to_owned(),
                    },
                    now,
                )?;
                store::layer_insert(tx, &rows[&chains[i]], now)?;
                store::layer_blob_insert(tx, &diff_ids[i], &l.digest, compressions[i])?;
                // Pushing this layer to another repository of the same registry can mount it
                // from here instead of uploading it (see `super::push`).
                store::blob_source_add(tx, &l.digest, reference.domain(), repo.name())?;
            }
            store::image_insert(tx, &image_row)?;
            if let Some(t) = &tag_ref {
                store::ref_put(tx, t, &id, now)?;
            }
            store::ref_put(tx, &digest_ref, &id, now)?;
            Ok::<_, ImageError>(())
        })?;
        drop(lease);
        progress.send(JsonMessage::status(format!("Digest: {}", plan.resolved.digest)));
        let mut attributes: BTreeMap<String, String> =
            plan.config.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        attributes.insert("name".to_owned(), familiar.clone());
        self.events.publish(Event::now(EventType::Image, "pull", familiar, attributes));
        Ok(!(exists && tagged_here))
    }

    /// The native snapshotter's way (see the module doc): download the missing blobs
    /// concurrently into the content store, then unpack the layers bottom first.
    #[allow(clippy::too_many_arguments)]
    fn pull_layers_in_two_passes(
        &self,
        jobs: &[LayerJob],
        sources: &[Source],
        repo: &Repository,
        concurrency: usize,
        reference: &Reference,
        handle: &Handle,
        progress: &ProgressSender,
        lease: &super::gc::Lease<'_>,
    ) -> Result<Vec<LayerRow>, EngineError> {
        let downloads: Vec<&LayerJob> =
            jobs.iter().zip(sources).filter(|(_, s)| **s == Source::Registry).map(|(j, _)| j).collect();
        let results: Vec<Result<(), EngineError>> = handle.block_on(
            futures_util::stream::iter(downloads.iter().map(|j| self.download(repo, j, progress, reference)))
                .buffer_unordered(concurrency)
                .collect(),
        );
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        let mut announced = HashSet::new();
        for (j, s) in jobs.iter().zip(sources) {
            if *s == Source::Store && announced.insert(&j.layer.blob) {
                progress.send(JsonMessage::layer(&j.id, "Download complete"));
            }
        }
        let unpacks: Vec<BlobLayer> = jobs.iter().map(|j| j.layer.clone()).collect();
        let ids: HashMap<String, String> =
            jobs.iter().map(|j| (j.layer.diff_id.short().to_owned(), j.id.clone())).collect();
        let report = |p: Progress| {
            if let Progress::Bytes { id, current, total, .. } = p {
                let id = ids.get(&id).cloned().unwrap_or(id);
                progress.send(JsonMessage::progress(id, "Extracting", current, total));
            }
        };
        let rows = self.unpack_blobs(lease, &unpacks, Some(&report)).map_err(|e| match e {
            ImageError::Unpack(u) => EngineError::invalid(format!("failed to register layer: {u}")),
            other => EngineError::from(other),
        })?;
        for j in jobs {
            progress.send(JsonMessage::layer(&j.id, "Pull complete"));
        }
        Ok(rows)
    }

    /// Downloads one blob into the content store, reporting progress. Its digest is leased by
    /// the pull.
    async fn download(
        &self,
        repo: &Repository,
        d: &LayerJob,
        progress: &ProgressSender,
        reference: &Reference,
    ) -> Result<(), EngineError> {
        let total = d.desc.size;
        let mut stream = repo.fetch_blob(&d.desc).await.map_err(|e| pull_error(reference, e))?;
        // The stream verifies the digest (it ends cleanly only then): not hashed twice.
        let mut w = self.content.writer_verified(&d.desc.digest, total).map_err(ImageError::Content)?;
        let mut done = 0u64;
        let mut last = 0u64;
        let step = (total / 100).max(512 * 1024);
        while let Some(event) = stream.next_event().await {
            let chunk = match event.map_err(|e| pull_error(reference, e))? {
                BlobEvent::Chunk(chunk) => chunk,
                BlobEvent::Retrying { delay, .. } => {
                    progress.send(JsonMessage::layer(&d.id, retrying(delay)));
                    continue;
                }
            };
            w.write_all(&chunk)
                .map_err(|e| EngineError::new(ErrorKind::Internal, format!("write blob {}: {e}", d.desc.digest)))?;
            done += chunk.len() as u64;
            if done - last >= step || done == total {
                last = done;
                progress.send(JsonMessage::progress(d.id.clone(), "Downloading", done, total));
            }
        }
        progress.send(JsonMessage::layer(&d.id, "Verifying Checksum"));
        w.commit().map_err(ImageError::Content)?;
        progress.send(JsonMessage::layer(&d.id, "Download complete"));
        Ok(())
    }
}

/// Pulls for builds (`FROM` of an image not present, `--pull`): [`pull`] with the build's
/// `X-Registry-Config` credentials for the reference's registry, its messages passed on as
/// JSON values.
pub struct BuildPuller {
    pub images: Arc<ImageService>,
    /// The daemon's registry client, current as of each pull (a reload may replace it).
    pub registry: crate::RegistryClient,
}

#[async_trait::async_trait]
impl crate::build::source::Puller for BuildPuller {
    async fn pull(
        &self,
        reference: &Reference,
        platform: &Platform,
        auth: &BTreeMap<String, serde_json::Value>,
        progress: wharf_build::ProgressFn,
    ) -> Result<(), EngineError> {
        let domain = reference.domain();
        // The CLI keys Docker Hub's entry by its v1 index URL, others by host[:port].
        let keys: &[&str] = if domain == "docker.io" {
            &["https://index.docker.io/v1/", "docker.io", "index.docker.io"]
        } else {
            &[domain]
        };
        let creds = keys
            .iter()
            .find_map(|k| {
                auth.get(*k).or_else(|| auth.get(&format!("https://{k}"))).or_else(|| auth.get(&format!("http://{k}")))
            })
            .and_then(|v| serde_json::from_value::<AuthConfig>(v.clone()).ok())
            .unwrap_or_default();
        let (tx, mut rx) = wharf_api::stream::ProgressSender::buffer();
        let forward = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if let Ok(v) = serde_json::to_value(&m) {
                    progress(v);
                }
            }
        });
        // A `FROM` without tag means `latest`, never every tag.
        let reference = reference.clone().with_default_tag();
        let req = PullRequest {
            reference,
            creds,
            platform: Some(platform.clone()),
            max_concurrent_downloads: self.registry.max_concurrent_downloads(),
        };
        let result = pull(self.images.clone(), self.registry.get(), req, tx).await;
        let _ = forward.await;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_from_from_image_and_tag() {
        let r = pull_reference("docker.io/library/busybox", "latest").unwrap();
        assert_eq!(r.familiar(), "busybox:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = pull_reference("127.0.0.1:5000/x/y", &d).unwrap();
        assert_eq!(r.digest().map(ToString::to_string), Some(d));
        // No tag: every tag (`pull -a`); a trailing `:` (old clients) is the same request.
        for from in ["busybox", "busybox:"] {
            let r = pull_reference(from, "").unwrap();
            assert_eq!((r.tag(), r.digest()), (None, None), "{from}");
            assert_eq!(r.familiar(), "busybox");
        }
        // A tag in fromImage itself is kept.
        assert_eq!(pull_reference("busybox:1.36", "").unwrap().tag(), Some("1.36"));
        let e = pull_reference("busybox", "bad tag").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
    }

    #[test]
    fn retry_notices_in_whole_seconds() {
        use std::time::Duration;
        assert_eq!(retrying(Duration::from_millis(200)), "Retrying in 1 second");
        assert_eq!(retrying(Duration::from_millis(1600)), "Retrying in 2 seconds");
        assert_eq!(retrying(Duration::from_secs(5)), "Retrying in 5 seconds");
    }
}
