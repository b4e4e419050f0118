//! Pushing: blob existence checks (`Layer already exists`), cross-repository mounts, uploads
//! (streamed, monolithic, or chunked with `Content-Range`), manifests, and tag listing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};
use wharf_types::Digest;
use wharf_types::oci::Descriptor;

use super::error::ClientError;
use super::transport::{ReqBody, go_method, resolve_location};
use super::{Repository, Subject};

/// Called with the number of bytes sent so far.
pub type ProgressFn = Arc<dyn Fn(u64) + Send + Sync>;

/// How a blob's bytes are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UploadMode {
    /// `POST`, one streamed `PATCH`, then `PUT ?digest=` (what Docker does).
    #[default]
    Stream,
    /// `POST`, then `PUT ?digest=` with the whole blob (read into memory).
    Monolithic,
    /// `POST`, `PATCH`es of this many bytes with `Content-Range`, then `PUT ?digest=`.
    Chunked(usize),
}

#[derive(Clone, Default)]
pub struct PushBlobOptions {
    pub mode: UploadMode,
    /// Repositories (paths on the same registry) that may already hold the blob.
    pub mount_from: Vec<String>,
    pub progress: Option<ProgressFn>,
}

/// What pushing a blob came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The repository already had it (`Layer already exists`).
    Exists,
    /// Mounted from another repository without sending bytes.
    Mounted { from: String },
    /// Uploaded.
    Pushed,
}

/// The answer to a mount request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountResult {
    Mounted,
    /// The registry did not mount and opened an upload session instead.
    NotMounted {
        upload_url: String,
    },
}

/// One page of tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPage {
    pub tags: Vec<String>,
    /// The next page's URL (from `Link`), if any.
    pub next: Option<String>,
}

fn with_digest(url: &str, d: &Digest) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}digest={d}")
}

fn octet_stream(len: Option<u64>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Some(l) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(l));
    }
    h
}

impl Repository {
    fn location(
        &self,
        resp: &http::Response<hyper::body::Incoming>,
        base: &str,
        method: &Method,
    ) -> Result<String, ClientError> {
        resp.headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| resolve_location(base, l))
            .ok_or_else(|| ClientError::InvalidResponse {
                method: go_method(method),
                url: base.to_owned(),
                what: "no Location header".to_owned(),
            })
    }

    /// The blob's size when this repository has it (`HEAD /blobs/<digest>`).
    pub async fn blob_exists(&self, digest: &Digest) -> Result<Option<u64>, ClientError> {
        let url = self.url(&format!("blobs/{digest}"));
        let (resp, _) = self.send(Method::HEAD, &url, HeaderMap::new(), ReqBody::Empty, &[]).await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(
                resp.headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.status_error(&Method::HEAD, &url, resp, Subject::Blob(digest)).await),
        }
    }

    /// Asks the registry to mount `digest` from repository `from` (same registry).
    pub async fn mount_blob(&self, digest: &Digest, from: &str) -> Result<MountResult, ClientError> {
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from)
            .finish();
        let url = self.url(&format!("blobs/uploads/?{q}"));
        let scopes = [format!("repository:{from}:pull")];
        let (resp, final_url) = self.send(Method::POST, &url, octet_stream(Some(0)), ReqBody::Empty, &scopes).await?;
        match resp.status() {
            StatusCode::CREATED => Ok(MountResult::Mounted),
            StatusCode::ACCEPTED => {
                Ok(MountResult::NotMounted { upload_url: self.location(&resp, &final_url, &Method::POST)? })
            }
            _ => Err(self.status_error(&Method::POST, &url, resp, Subject::Repository).await),
        }
    }

    async fn start_upload(&self) -> Result<String, ClientError> {
        let url = self.url("blobs/uploads/");
        let (resp, final_url) = self.send(Method::POST, &url, octet_stream(Some(0)), ReqBody::Empty, &[]).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(&Method::POST, &url, resp, Subject::Repository).await);
        }
        self.location(&resp, &final_url, &Method::POST)
    }

    /// Pushes a blob read from `source`, which must produce exactly `desc.size` bytes hashing
    /// to `desc.digest`. Skips it when present, tries mounts first.
    pub async fn push_blob<R>(
        &self,
        desc: &Descriptor,
        mut source: R,
        opts: &PushBlobOptions,
    ) -> Result<PushOutcome, ClientError>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        if self.blob_exists(&desc.digest).await?.is_some() {
            return Ok(PushOutcome::Exists);
        }
        // Try each mount source; a refused mount opens an upload session, kept for the last
        // source and cancelled for the others.
        let mut upload = None;
        for (i, from) in opts.mount_from.iter().enumerate() {
            match self.mount_blob(&desc.digest, from).await? {
                MountResult::Mounted => {
                    return Ok(PushOutcome::Mounted { from: from.clone() });
                }
                MountResult::NotMounted { upload_url } if i + 1 == opts.mount_from.len() => {
                    upload = Some(upload_url);
                }
                MountResult::NotMounted { upload_url } => {
                    let _ = self.send(Method::DELETE, &upload_url, HeaderMap::new(), ReqBody::Empty, &[]).await;
                }
            }
        }
        let mut location = match upload {
            Some(u) => u,
            None => self.start_upload().await?,
        };
        let progress = opts.progress.clone();
        let report = |n: u64| {
            if let Some(p) = &progress {
                p(n)
            }
        };
        let read_err = |source| ClientError::ReadSource { digest: desc.digest.clone(), source };
        let mut final_body = ReqBody::Empty;
        let mut final_len = 0u64;
        let sent: u64;
        match opts.mode {
            UploadMode::Monolithic => {
                let mut buf = Vec::with_capacity(desc.size as usize);
                (&mut source).take(desc.size + 1).read_to_end(&mut buf).await.map_err(read_err)?;
                sent = buf.len() as u64;
                final_len = sent;
                final_body = ReqBody::Full(Bytes::from(buf));
            }
            UploadMode::Chunked(size) => {
                let size = size.max(1);
                let mut offset = 0u64;
                loop {
                    let mut buf = Vec::with_capacity(size);
                    (&mut source).take(size as u64).read_to_end(&mut buf).await.map_err(read_err)?;
                    if buf.is_empty() {
                        break;
                    }
                    let n = buf.len() as u64;
                    let mut h = octet_stream(Some(n));
                    h.insert(
                        header::CONTENT_RANGE,
                        HeaderValue::from_str(&format!("{}-{}", offset, offset + n - 1)).expect("ascii"),
                    );
                    let (resp, final_url) =
                        self.send(Method::PATCH, &location, h, ReqBody::Full(Bytes::from(buf)), &[]).await?;
                    if resp.status() != StatusCode::ACCEPTED {
                        return Err(self
                            .status_error(&Method::PATCH, &location, resp, Subject::Blob(&desc.digest))
                            .await);
                    }
                    location = self.location(&resp, &final_url, &Method::PATCH)?;
                    offset += n;
                    report(offset);
                }
                sent = offset;
            }
            UploadMode::Stream => {
                let (next, n, _) = self
                    .patch_stream(&location, source, progress.clone(), Subject::Blob(&desc.digest), read_err)
                    .await?;
                location = next;
                sent = n;
            }
        }
        if sent != desc.size {
            return Err(ClientError::SizeMismatch { digest: desc.digest.clone(), expected: desc.size, got: sent });
        }
        let url = with_digest(&location, &desc.digest);
        let (resp, _) = self.send(Method::PUT, &url, octet_stream(Some(final_len)), final_body, &[]).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.status_error(&Method::PUT, &url, resp, Subject::Blob(&desc.digest)).await);
        }
        if opts.mode == UploadMode::Monolithic {
            report(sent);
        }
        Ok(PushOutcome::Pushed)
    }

    /// One streamed `PATCH` of `source` to upload session `location`: the session's next
    /// location, the bytes sent and their sha256.
    async fn patch_stream<R>(
        &self,
        location: &str,
        source: R,
        progress: Option<ProgressFn>,
        subject: Subject<'_>,
        read_err: impl Fn(std::io::Error) -> ClientError,
    ) -> Result<(String, u64, Digest), ClientError>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let counter = Arc::new(AtomicU64::new(0));
        let hasher = Arc::new(Mutex::new(Sha256::new()));
        let failure: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
        let (c, h, f, p) = (counter.clone(), hasher.clone(), failure.clone(), progress);
        let stream = tokio_util::io::ReaderStream::with_capacity(source, 256 * 1024).map(move |r| match r {
            Ok(b) => {
                h.lock().expect("poisoned").update(&b);
                let total = c.fetch_add(b.len() as u64, Ordering::Relaxed) + b.len() as u64;
                if let Some(p) = &p {
                    p(total);
                }
                Ok(hyper::body::Frame::data(b))
            }
            Err(e) => {
                let msg = e.to_string();
                *f.lock().expect("poisoned") = Some(e);
                Err(std::io::Error::other(msg).into())
            }
        });
        let body = StreamBody::new(stream).boxed_unsync();
        let res = self.send(Method::PATCH, location, octet_stream(None), ReqBody::Stream(Some(body)), &[]).await;
        if let Some(e) = failure.lock().expect("poisoned").take() {
            return Err(read_err(e));
        }
        let (resp, final_url) = res?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(&Method::PATCH, location, resp, subject).await);
        }
        let next = self.location(&resp, &final_url, &Method::PATCH)?;
        let digest = Digest::sha256_bytes(&hasher.lock().expect("poisoned").clone().finalize().into());
        Ok((next, counter.load(Ordering::Relaxed), digest))
    }

    /// Uploads a blob whose digest is known only once it is sent — a layer compressed on the
    /// fly, as moby pushes one: `POST`, one streamed `PATCH`, then `PUT ?digest=` with the
    /// sha256 of the bytes sent. Without a digest up front there is no existence check or
    /// mount. Returns the digest and size.
    pub async fn upload_blob_stream<R>(
        &self,
        source: R,
        progress: Option<ProgressFn>,
    ) -> Result<(Digest, u64), ClientError>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let location = self.start_upload().await?;
        let read_err = |source| ClientError::ReadStream { source };
        let (location, size, digest) =
            self.patch_stream(&location, source, progress, Subject::Repository, read_err).await?;
        let url = with_digest(&location, &digest);
        let (resp, _) = self.send(Method::PUT, &url, octet_stream(Some(0)), ReqBody::Empty, &[]).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.status_error(&Method::PUT, &url, resp, Subject::Blob(&digest)).await);
        }
        Ok((digest, size))
    }

    /// Pushes a blob held in memory (a config); its digest and size are computed.
    pub async fn push_blob_bytes(
        &self,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<(Descriptor, PushOutcome), ClientError> {
        let digest = Digest::sha256_bytes(&Sha256::digest(&bytes).into());
        let desc = Descriptor::new(media_type, digest, bytes.len() as u64);
        let opts = PushBlobOptions { mode: UploadMode::Monolithic, ..Default::default() };
        let outcome = self.push_blob(&desc, std::io::Cursor::new(bytes), &opts).await?;
        Ok((desc, outcome))
    }

    /// `PUT /manifests/<tag or digest>`; returns the manifest's digest.
    pub async fn push_manifest(&self, reference: &str, media_type: &str, body: Bytes) -> Result<Digest, ClientError> {
        let digest = Digest::sha256_bytes(&Sha256::digest(&body).into());
        let url = self.url(&format!("manifests/{reference}"));
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| ClientError::UnsupportedMediaType {
                reference: self.display_ref(reference),
                media_type: media_type.to_owned(),
            })?,
        );
        let (resp, _) = self.send(Method::PUT, &url, h, ReqBody::Full(body), &[]).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.status_error(&Method::PUT, &url, resp, Subject::Manifest(reference)).await);
        }
        if let Some(d) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok())
            && d != digest
        {
            return Err(ClientError::DigestMismatch { expected: digest, actual: d });
        }
        Ok(digest)
    }

    /// Deletes a manifest by digest (or a tag, where the registry allows).
    pub async fn delete_manifest(&self, reference: &str) -> Result<(), ClientError> {
        let url = self.url(&format!("manifests/{reference}"));
        let (resp, _) = self.send(Method::DELETE, &url, HeaderMap::new(), ReqBody::Empty, &[]).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.status_error(&Method::DELETE, &url, resp, Subject::Manifest(reference)).await)
        }
    }

    /// One page of tags (`n`, `last`); follow [`TagPage::next`] with [`Repository::tags_page`].
    pub async fn tags(&self, n: Option<usize>, last: Option<&str>) -> Result<TagPage, ClientError> {
        // Built in a block: the serializer is not `Send` and must not live across the await.
        let q = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            if let Some(n) = n {
                q.append_pair("n", &n.to_string());
            }
            if let Some(l) = last {
                q.append_pair("last", l);
            }
            q.finish()
        };
        let mut url = self.url("tags/list");
        if !q.is_empty() {
            url.push('?');
            url.push_str(&q);
        }
        self.tags_page(&url).await
    }

    /// The tags page at `url` (a [`TagPage::next`]).
    pub async fn tags_page(&self, url: &str) -> Result<TagPage, ClientError> {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let (body, next): (Body, _) = self.get_json(url, Subject::Repository).await?;
        Ok(TagPage { tags: body.tags.unwrap_or_default(), next })
    }

    /// Every tag, following `Link` pages of `page_size`.
    pub async fn all_tags(&self, page_size: Option<usize>) -> Result<Vec<String>, ClientError> {
        let mut page = self.tags(page_size, None).await?;
        let mut out = std::mem::take(&mut page.tags);
        for _ in 0..100_000 {
            let Some(next) = page.next.take() else { break };
            page = self.tags_page(&next).await?;
            out.append(&mut page.tags);
        }
        Ok(out)
    }
}
