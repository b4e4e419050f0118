//! Blob downloads: a stream of chunks that ends cleanly only after the content hashed to its
//! digest. A dropped connection or a short body is resumed with `Range: bytes=<offset>-` (a
//! server that ignores the range has the bytes already seen skipped); after the retry policy's
//! attempts without progress the stream ends with the error instead.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use sha2::{Digest as _, Sha256, Sha512};
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use wharf_types::Digest;
use wharf_types::digest::Algorithm;
use wharf_types::oci::Descriptor;

use super::error::ClientError;
use super::transport::{ReqBody, go_method};
use super::{Repository, Subject};

/// What a blob download reports: a chunk, or that it broke off and resumes after a delay.
#[derive(Debug)]
pub enum BlobEvent {
    Chunk(Bytes),
    /// The body broke off; the download continues (from where it stopped) after `delay`.
    Retrying {
        delay: std::time::Duration,
        error: ClientError,
    },
}

/// A verified blob download. Yields chunks; a digest or size mismatch arrives as the last item.
/// Dropping it stops the download.
pub struct BlobStream {
    rx: mpsc::Receiver<Result<BlobEvent, ClientError>>,
    task: tokio::task::JoinHandle<()>,
    descriptor: Descriptor,
}

impl BlobStream {
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// The next chunk or retry notice (the [`Stream`] impl yields the chunks only).
    pub async fn next_event(&mut self) -> Option<Result<BlobEvent, ClientError>> {
        self.rx.recv().await
    }

    /// The stream as an `AsyncRead`; errors come as `io::Error`s wrapping the [`ClientError`]
    /// (`err.get_ref()` downcasts to it).
    pub fn into_async_read(self) -> impl AsyncRead + Send + Unpin {
        tokio_util::io::StreamReader::new(self.map(|r| r.map_err(io::Error::other)))
    }
}

impl Drop for BlobStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for BlobStream {
    type Item = Result<Bytes, ClientError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            return match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(BlobEvent::Retrying { .. }))) => continue,
                Poll::Ready(Some(Ok(BlobEvent::Chunk(b)))) => Poll::Ready(Some(Ok(b))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

impl Repository {
    /// Starts downloading a blob; see [`BlobStream`].
    pub async fn fetch_blob(&self, desc: &Descriptor) -> Result<BlobStream, ClientError> {
        // A few frames ahead of the consumer: the consumer bounds what it buffers itself.
        let (tx, rx) = mpsc::channel(4);
        let repo = self.clone();
        let d = desc.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = download(&repo, &d, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(BlobStream { rx, task, descriptor: desc.clone() })
    }

    /// Downloads a small blob (a config) into memory, verified; at most `limit` bytes.
    pub async fn fetch_blob_bytes(&self, desc: &Descriptor, limit: u64) -> Result<Bytes, ClientError> {
        if desc.size > limit {
            return Err(ClientError::SizeMismatch { digest: desc.digest.clone(), expected: limit, got: desc.size });
        }
        let mut s = self.fetch_blob(desc).await?;
        let mut out = bytes::BytesMut::with_capacity(desc.size as usize);
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out.freeze())
    }
}

/// A running hash in the descriptor's algorithm.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub(crate) fn new(alg: Algorithm) -> Self {
        match alg {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub(crate) fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }

    pub(crate) fn digest(&self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::sha256_bytes(&h.clone().finalize().into()),
            Hasher::Sha512(h) => {
                format!("sha512:{}", hex::encode(h.clone().finalize())).parse().expect("128 hex digits")
            }
        }
    }

    /// The digest of `b` in `alg`.
    pub(crate) fn digest_of(alg: Algorithm, b: &[u8]) -> Digest {
        let mut h = Self::new(alg);
        h.update(b);
        h.digest()
    }
}

/// Outcome of one GET attempt.
enum Attempt {
    Done,
    /// The body broke off or ended short; `progress` tells whether bytes arrived.
    Interrupted {
        progress: bool,
        error: ClientError,
    },
    /// The consumer went away.
    Abandoned,
}

async fn download(
    repo: &Repository,
    desc: &Descriptor,
    tx: &mpsc::Sender<Result<BlobEvent, ClientError>>,
) -> Result<(), ClientError> {
    let url = repo.url(&format!("blobs/{}", desc.digest));
    let policy = repo.policy().clone();
    let mut offset = 0u64;
    let mut hasher = Hasher::new(desc.digest.algorithm());
    let mut failures = 0u32;
    loop {
        match attempt(repo, desc, &url, &mut offset, &mut hasher, tx).await? {
            Attempt::Done | Attempt::Abandoned => return Ok(()),
            Attempt::Interrupted { progress, error } => {
                failures = if progress { 1 } else { failures + 1 };
                if failures >= policy.max_attempts {
                    return Err(error);
                }
                let d = policy.delay(failures);
                tracing::debug!(digest = %desc.digest, offset, error = %error, delay = ?d, "resuming blob");
                if tx.send(Ok(BlobEvent::Retrying { delay: d, error })).await.is_err() {
                    return Ok(());
                }
                tokio::time::sleep(d).await;
            }
        }
    }
}

async fn attempt(
    repo: &Repository,
    desc: &Descriptor,
    url: &str,
    offset: &mut u64,
    hasher: &mut Hasher,
    tx: &mpsc::Sender<Result<BlobEvent, ClientError>>,
) -> Result<Attempt, ClientError> {
    let mut headers = HeaderMap::new();
    if *offset > 0 {
        headers.insert(header::RANGE, HeaderValue::from_str(&format!("bytes={offset}-")).expect("ascii"));
    }
    let (resp, final_url) = repo.send(Method::GET, url, headers, ReqBody::Empty, &[]).await?;
    let mut skip = match resp.status() {
        StatusCode::OK => *offset,
        StatusCode::PARTIAL_CONTENT => {
            let start = resp
                .headers()
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok());
            if start != Some(*offset) {
                return Err(ClientError::InvalidResponse {
                    method: "Get".to_owned(),
                    url: final_url,
                    what: format!("asked for bytes from {offset}, got range {start:?}"),
                });
            }
            0
        }
        StatusCode::RANGE_NOT_SATISFIABLE if *offset == desc.size => 0,
        s if s.is_success() => *offset,
        _ => {
            return Err(repo.status_error(&Method::GET, url, resp, Subject::Blob(&desc.digest)).await);
        }
    };
    let mut body = resp.into_body();
    let start = *offset;
    let read_timeout = repo.inner.client.inner.config.read_timeout;
    let broke = loop {
        let Ok(next) = tokio::time::timeout(read_timeout, body.frame()).await else {
            break Some(ClientError::Transport {
                method: go_method(&Method::GET),
                url: final_url.clone(),
                message: "reading the blob body: i/o timeout".to_owned(),
            });
        };
        match next {
            None => break None,
            Some(Err(e)) => {
                break Some(ClientError::Transport {
                    method: go_method(&Method::GET),
                    url: final_url.clone(),
                    message: format!("reading the blob body: {e}"),
                });
            }
            Some(Ok(frame)) => {
                let Ok(mut data) = frame.into_data() else {
                    continue;
                };
                if skip > 0 {
                    let n = skip.min(data.len() as u64) as usize;
                    skip -= n as u64;
                    data = data.slice(n..);
                }
                if data.is_empty() {
                    continue;
                }
                if *offset + data.len() as u64 > desc.size {
                    return Err(ClientError::SizeMismatch {
                        digest: desc.digest.clone(),
                        expected: desc.size,
                        got: *offset + data.len() as u64,
                    });
                }
                hasher.update(&data);
                *offset += data.len() as u64;
                if tx.send(Ok(BlobEvent::Chunk(data))).await.is_err() {
                    return Ok(Attempt::Abandoned);
                }
            }
        }
    };
    if *offset == desc.size {
        let actual = hasher.digest();
        if actual != desc.digest {
            return Err(ClientError::DigestMismatch { expected: desc.digest.clone(), actual });
        }
        return Ok(Attempt::Done);
    }
    Ok(Attempt::Interrupted {
        progress: *offset > start,
        error: broke.unwrap_or(ClientError::SizeMismatch {
            digest: desc.digest.clone(),
            expected: desc.size,
            got: *offset,
        }),
    })
}
