//! Resolving and fetching manifests: HEAD for the digest, GET with every manifest media type in
//! `Accept`, a size limit, digest verification, and platform selection from an index.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};
use wharf_types::digest::Algorithm;
use wharf_types::oci::{Descriptor, ImageManifest, Manifest, ManifestError, media_type};
use wharf_types::{Digest, Platform};

use super::blob::Hasher;

use super::error::ClientError;
use super::transport::{ReqBody, read_body};
use super::{Repository, Subject};

/// A manifest as the registry sent it: the bytes (whose digest is the descriptor's), parsed.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub descriptor: Descriptor,
    pub bytes: Bytes,
    pub manifest: Manifest,
}

/// An image picked for a platform: the index it came from (if any) and its manifest.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The digest the user's reference resolved to (the index's when there is one): what
    /// `docker pull` prints as `Digest:`.
    pub digest: Digest,
    pub index: Option<FetchedManifest>,
    pub manifest: FetchedManifest,
}

impl ResolvedImage {
    pub fn image(&self) -> &ImageManifest {
        match &self.manifest.manifest {
            Manifest::Image(m) => m,
            Manifest::Index(_) => unreachable!("ResolvedImage holds an image manifest"),
        }
    }

    pub fn config_descriptor(&self) -> &Descriptor {
        &self.image().config
    }

    pub fn layers(&self) -> &[Descriptor] {
        &self.image().layers
    }
}

fn accept_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::ACCEPT,
        HeaderValue::from_str(&media_type::ACCEPTED_MANIFESTS.join(", ")).expect("static media types"),
    );
    h
}

fn header_str<'a>(h: &'a HeaderMap, k: &str) -> Option<&'a str> {
    h.get(k).and_then(|v| v.to_str().ok())
}

impl Repository {
    /// Resolves a tag or digest to a descriptor with `HEAD` (falling back to `GET` when the
    /// registry sends no `Docker-Content-Digest`).
    pub async fn resolve(&self, reference: &str) -> Result<Descriptor, ClientError> {
        let url = self.url(&format!("manifests/{reference}"));
        let (resp, _) = self.send(Method::HEAD, &url, accept_headers(), ReqBody::Empty, &[]).await?;
        if !resp.status().is_success() {
            return Err(self.status_error(&Method::HEAD, &url, resp, Subject::Manifest(reference)).await);
        }
        let h = resp.headers();
        let digest = header_str(h, "docker-content-digest").and_then(|d| d.parse::<Digest>().ok());
        let mt = header_str(h, "content-type").map(|m| m.split(';').next().unwrap_or(m).trim());
        let size = header_str(h, "content-length").and_then(|l| l.parse::<u64>().ok());
        match (digest, mt, size) {
            (Some(d), Some(mt), Some(size)) if media_type::is_manifest(mt) => Ok(Descriptor::new(mt, d, size)),
            _ => Ok(self.fetch_manifest(reference).await?.descriptor),
        }
    }

    /// Fetches and verifies a manifest by tag or digest.
    pub async fn fetch_manifest(&self, reference: &str) -> Result<FetchedManifest, ClientError> {
        let limit = self.inner.client.inner.config.max_manifest_size;
        let url = self.url(&format!("manifests/{reference}"));
        let (resp, final_url) = self.send(Method::GET, &url, accept_headers(), ReqBody::Empty, &[]).await?;
        if !resp.status().is_success() {
            return Err(self.status_error(&Method::GET, &url, resp, Subject::Manifest(reference)).await);
        }
        let too_large = || ClientError::ManifestTooLarge { reference: self.display_ref(reference), limit };
        let h = resp.headers();
        if header_str(h, "content-length").and_then(|l| l.parse::<u64>().ok()).is_some_and(|l| l > limit as u64) {
            return Err(too_large());
        }
        let content_type = header_str(h, "content-type").map(str::to_owned);
        let header_digest = header_str(h, "docker-content-digest").and_then(|d| d.parse::<Digest>().ok());
        let bytes = read_body(resp, limit, &Method::GET, &final_url).await?.map_err(|_| too_large())?;
        let expected = reference.parse::<Digest>().ok().or(header_digest);
        let alg = expected.as_ref().map_or(Algorithm::Sha256, Digest::algorithm);
        let actual = Hasher::digest_of(alg, &bytes);
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(ClientError::DigestMismatch { expected, actual });
        }
        let (mt, manifest) = Manifest::parse(content_type.as_deref(), &bytes).map_err(|e| match e {
            ManifestError::UnknownMediaType(m) | ManifestError::Schema1(m) => {
                ClientError::UnsupportedMediaType { reference: self.display_ref(reference), media_type: m }
            }
            source => ClientError::InvalidManifest { reference: self.display_ref(reference), source },
        })?;
        Ok(FetchedManifest { descriptor: Descriptor::new(mt, actual, bytes.len() as u64), bytes, manifest })
    }

    /// Fetches the image for `platform`: the manifest itself, or the matching entry of an index.
    pub async fn fetch_image(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, ClientError> {
        let top = self.fetch_manifest(reference).await?;
        match &top.manifest {
            Manifest::Image(_) => {
                Ok(ResolvedImage { digest: top.descriptor.digest.clone(), index: None, manifest: top })
            }
            Manifest::Index(index) => {
                let entry = index.select(platform).ok_or_else(|| ClientError::NoMatchingPlatform {
                    reference: self.display_ref(reference),
                    platform: platform.to_string(),
                })?;
                let child = self.fetch_manifest(&entry.digest.to_string()).await?;
                if !matches!(child.manifest, Manifest::Image(_)) {
                    return Err(ClientError::UnsupportedMediaType {
                        reference: self.display_ref(&entry.digest.to_string()),
                        media_type: format!("{} (nested index)", child.descriptor.media_type),
                    });
                }
                Ok(ResolvedImage { digest: top.descriptor.digest.clone(), index: Some(top), manifest: child })
            }
        }
    }
}
