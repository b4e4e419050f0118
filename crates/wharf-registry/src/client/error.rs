//! The client's errors. Messages follow what Docker users see:
//! `Get "https://…/v2/": dial tcp 127.0.0.1:1: connect: connection refused`,
//! `manifest for x not found: manifest unknown: manifest unknown`,
//! `login attempt to http://127.0.0.1:5000/v2/ failed with status: 401 Unauthorized`.

use std::fmt;
use std::io;
use std::path::PathBuf;

use serde::Deserialize;
use wharf_types::{Classify, Digest, ErrorKind};

/// A failure to reach a host, worded as Go's net package words it.
#[derive(Debug, Clone)]
pub struct DialError {
    pub message: String,
    /// False for failures a retry cannot fix (certificate verification, bad configuration).
    pub retryable: bool,
}

impl DialError {
    pub(crate) fn transient(message: String) -> Self {
        Self { message, retryable: true }
    }

    pub(crate) fn permanent(message: String) -> Self {
        Self { message, retryable: false }
    }
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DialError {}

/// One entry of a distribution error body (`{"errors":[{"code","message","detail"}]}`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct RegistryErrorEntry {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// Renders `code: message` the way distribution's errcode does (`manifest unknown: …`).
pub(crate) fn render_errors(errors: &[RegistryErrorEntry], status: http::StatusCode) -> String {
    if errors.is_empty() {
        return match status.as_u16() {
            401 => "unauthorized: authentication required".to_owned(),
            403 => "denied: requested access to the resource is denied".to_owned(),
            429 => "toomanyrequests: too many requests".to_owned(),
            _ => match status.canonical_reason() {
                Some(r) => format!("{} {}", status.as_u16(), r),
                None => status.as_u16().to_string(),
            },
        };
    }
    errors
        .iter()
        .map(|e| {
            let code = e.code.to_lowercase().replace('_', " ");
            if e.message.is_empty() { code } else { format!("{code}: {}", e.message) }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The host could not be reached (DNS, TCP, TLS).
    #[error("{method} \"{url}\": {source}")]
    Connect {
        method: String,
        url: String,
        #[source]
        source: DialError,
    },
    /// The connection failed after it was made (reset, closed early, bad HTTP).
    #[error("{method} \"{url}\": {message}")]
    Transport { method: String, url: String, message: String },
    /// The registry answered 401 (credentials missing or wrong) to a request.
    #[error("{method} \"{url}\": {message}")]
    Unauthorized { method: String, url: String, message: String },
    /// `POST /auth`: the registry refused the credentials.
    #[error("login attempt to {url} failed with status: {status}")]
    LoginFailed { url: String, status: String },
    /// The registry answered 403.
    #[error("{method} \"{url}\": {message}")]
    Denied { method: String, url: String, message: String },
    #[error("manifest for {reference} not found: {message}")]
    ManifestNotFound { reference: String, message: String },
    #[error("blob {digest} not found: {message}")]
    BlobNotFound { digest: Digest, message: String },
    #[error("repository {name} not found: {message}")]
    RepositoryNotFound { name: String, message: String },
    /// Any other error status, with the registry's error entries.
    #[error("{method} \"{url}\": {message}")]
    Status { method: String, url: String, status: u16, message: String },
    #[error("{method} \"{url}\": {message}")]
    TooManyRequests { method: String, url: String, message: String },
    #[error("the token server at {realm} failed: {message}")]
    Token { realm: String, message: String },
    #[error("the registry sent an invalid response to {method} \"{url}\": {what}")]
    InvalidResponse { method: String, url: String, what: String },
    #[error("manifest for {reference} is larger than the {limit} byte limit")]
    ManifestTooLarge { reference: String, limit: usize },
    #[error("unsupported manifest media type {media_type:?} for {reference}")]
    UnsupportedMediaType { reference: String, media_type: String },
    #[error("invalid manifest for {reference}")]
    InvalidManifest {
        reference: String,
        #[source]
        source: wharf_types::oci::ManifestError,
    },
    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform { reference: String, platform: String },
    /// Fetched content does not hash to its digest.
    #[error("digest mismatch for {expected}: the registry sent content with digest {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    /// The content ended before (or ran past) its declared size, even after retries.
    #[error("unexpected EOF reading {digest}: got {got} of {expected} bytes")]
    SizeMismatch { digest: Digest, expected: u64, got: u64 },
    #[error("read the content to push for {digest}")]
    ReadSource {
        digest: Digest,
        #[source]
        source: io::Error,
    },
    /// Reading a stream whose digest is not known yet failed ([`super::Repository::upload_blob_stream`]).
    #[error("read the content to push")]
    ReadStream {
        #[source]
        source: io::Error,
    },
    #[error("load certificates from {path}")]
    Certs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("build the TLS configuration for {host}")]
    Tls {
        host: String,
        #[source]
        source: rustls::Error,
    },
    #[error("invalid reference {0}")]
    InvalidReference(String),
}

impl Classify for ClientError {
    fn kind(&self) -> ErrorKind {
        use ClientError::*;
        match self {
            Unauthorized { .. } | LoginFailed { .. } | Token { .. } => ErrorKind::Unauthorized,
            Denied { .. } => ErrorKind::Forbidden,
            ManifestNotFound { .. } | BlobNotFound { .. } | RepositoryNotFound { .. } | NoMatchingPlatform { .. } => {
                ErrorKind::NotFound
            }
            Status { status, .. } if *status == 404 => ErrorKind::NotFound,
            Status { status, .. } if *status == 400 => ErrorKind::InvalidArgument,
            TooManyRequests { .. } => ErrorKind::Unavailable,
            UnsupportedMediaType { .. } | InvalidManifest { .. } | InvalidReference(_) | Certs { .. } | Tls { .. } => {
                ErrorKind::InvalidArgument
            }
            ReadSource { .. } | ReadStream { .. } => ErrorKind::Internal,
            Connect { .. }
            | Transport { .. }
            | Status { .. }
            | InvalidResponse { .. }
            | ManifestTooLarge { .. }
            | DigestMismatch { .. }
            | SizeMismatch { .. } => ErrorKind::Internal,
        }
    }
}

impl ClientError {
    /// True for failures worth retrying: the network, a 5xx, a 429, a short body.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Connect { source, .. } => source.retryable,
            ClientError::Transport { .. } | ClientError::TooManyRequests { .. } | ClientError::SizeMismatch { .. } => {
                true
            }
            ClientError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}
