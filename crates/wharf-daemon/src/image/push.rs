//! `docker push` (`POST /images/{name}/push?tag=`): for each tag, the image's layer blobs (as
//! stored: gzip, zstd or plain tar), then its config, then a manifest (Docker schema 2 when
//! every layer is gzip, OCI otherwise) are sent through the registry client; blobs the
//! repository has are skipped (`Layer already exists`). The pushed manifest's digest is
//! recorded as a repo digest of the image.
//!
//! Messages follow moby's: `The push refers to repository [h/x]`, per layer (id = 12 hex digits
//! of the diff ID) `Preparing` → `Pushing` → `Pushed` / `Layer already exists`, then
//! `<tag>: digest: sha256:… size: N` and an aux message `{"Tag","Digest","Size"}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use wharf_api::stream::{JsonMessage, ProgressSender};
use wharf_image::layer::Compression;
use wharf_registry::client::{Access, AuthConfig, Client, ClientError, PushBlobOptions, PushOutcome, Repository};
use wharf_types::oci::{Descriptor, ImageManifest, media_type};
use wharf_types::{Digest, EngineError, Event, EventType, ImageId, Reference};

use super::store::{self, now_nanos};
use super::{ImageError, ImageService};

/// How many blobs upload at once (moby's `max-concurrent-uploads` default is 5).
const CONCURRENT_UPLOADS: usize = 5;

/// A push as the API asked for it.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// The repository (its tag, if any, is what to push).
    pub reference: Reference,
    /// The tag query parameter; empty: the reference's tag, or every tag of the repository.
    pub tag: String,
    pub creds: AuthConfig,
}

/// One tag to push, read from the store.
struct PushImage {
    reference: Reference,
    id: ImageId,
    config: Bytes,
    /// `(diff_id, blob, size, compression)` bottom first.
    layers: Vec<(Digest, Digest, u64, Compression)>,
}

/// A client error worded as moby's push does.
fn push_error(r: &Reference, e: ClientError) -> EngineError {
    match &e {
        ClientError::Unauthorized { message, .. } | ClientError::Denied { message, .. } => {
            let kind = if matches!(e, ClientError::Unauthorized { .. }) {
                wharf_types::ErrorKind::Unauthorized
            } else {
                wharf_types::ErrorKind::Forbidden
            };
            EngineError::new(kind, message.clone())
        }
        _ => {
            let _ = r;
            EngineError::from_classified(&e)
        }
    }
}

fn msg(id: &str, status: &str) -> JsonMessage {
    JsonMessage {
        status: Some(status.to_owned()),
        id: Some(id.to_owned()),
        progress_detail: Some(Default::default()),
        ..Default::default()
    }
}

impl ImageService {
    /// The tags to push and what each one needs.
    fn push_plan(&self, req: &PushRequest) -> Result<Vec<PushImage>, ImageError> {
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
                let blobs = store::layer_blobs(&c, &l.diff_id)?;
                // Prefer a compressed blob, as registries and clients expect.
                let pick = blobs
                    .iter()
                    .find(|(_, comp)| *comp == Compression::Gzip)
                    .or_else(|| blobs.iter().find(|(_, comp)| *comp != Compression::None))
                    .or_else(|| blobs.first())
                    .cloned()
                    .ok_or_else(|| ImageError::Invalid(format!("layer {} has no blob to push", l.diff_id)))?;
                let size = std::fs::metadata(self.content.path(&pick.0))
                    .map_err(|source| ImageError::Io {
                        op: "stat layer blob",
                        path: self.content.path(&pick.0),
                        source,
                    })?
                    .len();
                layers.push((l.diff_id.clone(), pick.0, size, pick.1));
            }
            out.push(PushImage { reference: rr, id, config, layers });
        }
        Ok(out)
    }
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
    let repo = client.repository(r, &req.creds, Access::Push).await.map_err(|e| push_error(r, e))?;
    for image in &plan {
        push_one(&svc, &repo, image, &progress).await?;
    }
    Ok(())
}

async fn push_one(
    svc: &Arc<ImageService>,
    repo: &Repository,
    image: &PushImage,
    progress: &ProgressSender,
) -> Result<(), EngineError> {
    let r = &image.reference;
    let all_gzip = image.layers.iter().all(|l| l.3 == Compression::Gzip);
    for (diff_id, ..) in &image.layers {
        progress.send(msg(diff_id.short(), "Preparing"));
    }
    let mut uploads = Vec::new();
    for (diff_id, blob, size, comp) in image.layers.iter().cloned() {
        let id = diff_id.short().to_owned();
        let desc = Descriptor::new(layer_media_type(comp, all_gzip), blob.clone(), size);
        let path = svc.content.path(&blob);
        let progress = progress.clone();
        let (repo, r) = (repo.clone(), r.clone());
        uploads.push(async move {
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| EngineError::internal(format!("open {}: {e}", path.display())))?;
            let total = desc.size;
            let (pid, pp) = (id.clone(), progress.clone());
            let last = std::sync::atomic::AtomicU64::new(0);
            let step = (total / 100).max(512 * 1024);
            let opts = PushBlobOptions {
                progress: Some(Arc::new(move |n: u64| {
                    let l = last.load(std::sync::atomic::Ordering::Relaxed);
                    if n - l.min(n) >= step || n == total {
                        last.store(n, std::sync::atomic::Ordering::Relaxed);
                        pp.send(JsonMessage::progress(pid.clone(), "Pushing", n, total));
                    }
                })),
                ..Default::default()
            };
            let outcome = repo.push_blob(&desc, file, &opts).await.map_err(|e| push_error(&r, e))?;
            match outcome {
                PushOutcome::Exists => progress.send(msg(&id, "Layer already exists")),
                PushOutcome::Mounted { from } => progress.send(msg(&id, &format!("Mounted from {from}"))),
                PushOutcome::Pushed => progress.send(msg(&id, "Pushed")),
            }
            Ok::<Descriptor, EngineError>(desc)
        });
    }
    let results: Vec<Result<Descriptor, EngineError>> =
        futures_util::stream::iter(uploads).buffered(CONCURRENT_UPLOADS).collect().await;
    let mut layers = Vec::with_capacity(results.len());
    for res in results {
        layers.push(res?);
    }
    let config_mt = if all_gzip { media_type::DOCKER_CONFIG } else { media_type::OCI_CONFIG };
    let (config_desc, _) = repo.push_blob_bytes(config_mt, image.config.clone()).await.map_err(|e| push_error(r, e))?;
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
    let digest = repo.push_manifest(&tag, manifest_mt, body).await.map_err(|e| push_error(r, e))?;
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
