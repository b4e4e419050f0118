//! `wharf-build`'s [`ImageSource`] over the image service: base images by name or ID, with
//! Docker's pull policy. Pulling is the registry integration's
//! ([`crate::image::pull::BuildPuller`], plugged in with
//! [`BuildService::set_puller`](super::BuildService::set_puller) at daemon start).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use wharf_build::{BaseImage, ImageSource, ProgressFn, PullPolicy};
use wharf_types::{Digest, EngineError, ErrorKind, ImageId, Platform, Reference};

use crate::image::ImageService;

/// Pulls an image into the image service (the registry integration implements it).
///
/// When `pull` returns `Ok`, `reference` resolves locally to an image for `platform` whose
/// layers are unpacked. Progress goes to `progress` as Docker's pull messages
/// (`{"status":"Pulling fs layer","progressDetail":{},"id":"…"}`); `auth` is the client's
/// `X-Registry-Config` (registry host → auth config).
#[async_trait]
pub trait Puller: Send + Sync {
    async fn pull(
        &self,
        reference: &Reference,
        platform: &Platform,
        auth: &BTreeMap<String, serde_json::Value>,
        progress: ProgressFn,
    ) -> Result<(), EngineError>;
}

/// Base images for builds (see the module doc).
pub struct DaemonImages {
    images: Arc<ImageService>,
    puller: RwLock<Option<Arc<dyn Puller>>>,
    /// Registry credentials of the builds running now (`X-Registry-Config`), merged: the
    /// builder's image lookups do not say which build they belong to.
    auth: RwLock<BTreeMap<String, serde_json::Value>>,
}

impl DaemonImages {
    pub fn new(images: Arc<ImageService>) -> Self {
        Self { images, puller: RwLock::new(None), auth: RwLock::new(BTreeMap::new()) }
    }

    pub fn set_puller(&self, puller: Arc<dyn Puller>) {
        *self.puller.write().unwrap_or_else(|p| p.into_inner()) = Some(puller);
    }

    /// Remembers a build's registry credentials for the pulls it causes.
    pub fn add_auth(&self, auth: &BTreeMap<String, serde_json::Value>) {
        if auth.is_empty() {
            return;
        }
        let mut a = self.auth.write().unwrap_or_else(|p| p.into_inner());
        a.extend(auth.iter().map(|(k, v)| (k.clone(), v.clone())));
    }

    fn puller(&self) -> Option<Arc<dyn Puller>> {
        self.puller.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn local(&self, name: &str) -> Result<Option<BaseImage>, EngineError> {
        let svc = self.images.clone();
        let name = name.to_owned();
        let found = tokio::task::spawn_blocking(move || svc.resolve(&name))
            .await
            .map_err(|e| EngineError::internal(format!("image lookup: {e}")))?;
        match found {
            Ok(r) => Ok(Some(BaseImage { id: r.id.digest().clone(), config: r.config })),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn pull(&self, reference: &Reference, platform: &Platform, progress: ProgressFn) -> Result<(), EngineError> {
        let Some(puller) = self.puller() else {
            return Err(EngineError::not_found(format!(
                "No such image: {}: this daemon cannot pull images yet; load or build it first",
                reference.familiar()
            )));
        };
        let auth = self.auth.read().unwrap_or_else(|p| p.into_inner()).clone();
        puller.pull(reference, platform, &auth, progress).await
    }
}

fn platform_of(img: &BaseImage) -> Platform {
    Platform {
        os: img.config.os.clone(),
        architecture: img.config.architecture.clone(),
        variant: img.config.variant.clone(),
    }
}

fn mismatch(reference: &str, want: &Platform, have: &Platform) -> EngineError {
    EngineError::not_found(format!(
        "image with reference {reference} was found but does not match the specified platform: wanted {want}, actual: {have}"
    ))
}

#[async_trait]
impl ImageSource for DaemonImages {
    async fn resolve(
        &self,
        reference: &str,
        platform: &Platform,
        policy: PullPolicy,
        progress: ProgressFn,
    ) -> Result<BaseImage, EngineError> {
        let by_id = reference.starts_with("sha256:") || wharf_types::id::is_full_hex_id(reference);
        let parsed = if by_id {
            None
        } else {
            Some(
                Reference::parse_normalized(reference)
                    .map_err(|e| EngineError::from_classified(&e))?
                    .with_default_tag(),
            )
        };
        let local = self.local(reference).await?;
        let matches = |img: &BaseImage| {
            // Images without a platform (scratch imports of old) run anywhere.
            img.config.architecture.is_empty() || platform_of(img).matches(platform)
        };
        let pull_needed = match (&local, policy) {
            (_, PullPolicy::Never) => false,
            (_, _) if by_id => false,
            (None, _) => true,
            (Some(img), PullPolicy::Missing) => !matches(img),
            (Some(_), PullPolicy::Always) => true,
        };
        if pull_needed && let Some(r) = &parsed {
            match self.pull(r, platform, progress.clone()).await {
                Ok(()) => {}
                // `--pull` without a registry client: the local image will do.
                Err(_) if local.is_some() && self.puller().is_none() => {}
                Err(e) => return Err(e),
            }
            let img = self
                .local(reference)
                .await?
                .ok_or_else(|| EngineError::not_found(format!("No such image: {}", r.familiar())))?;
            if !matches(&img) {
                return Err(mismatch(reference, platform, &platform_of(&img)));
            }
            return Ok(img);
        }
        match local {
            Some(img) if matches(&img) => Ok(img),
            Some(img) => Err(mismatch(reference, platform, &platform_of(&img))),
            None => Err(EngineError::not_found(format!(
                "No such image: {}",
                parsed.map(|r| r.familiar()).unwrap_or_else(|| reference.to_owned())
            ))),
        }
    }

    async fn get(&self, id: &Digest) -> Result<Option<BaseImage>, EngineError> {
        let svc = self.images.clone();
        let id = ImageId::new(id.clone());
        let found = tokio::task::spawn_blocking(move || {
            svc.resolve(&id.to_string()).ok().map(|r| BaseImage { id: r.id.digest().clone(), config: r.config })
        })
        .await
        .map_err(|e| EngineError::internal(format!("image lookup: {e}")))?;
        Ok(found)
    }
}
