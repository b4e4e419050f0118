//! Distribution error responses: `{"errors":[{"code":"BLOB_UNKNOWN","message":…,"detail":…}]}`
//! with the status each code has in the distribution spec (and in distribution/distribution where
//! the spec leaves it open).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use wharf_types::{Classify, ErrorKind};

use super::storage::StorageError;

/// The error codes of the distribution spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    RangeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    Unknown,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::RangeInvalid => "RANGE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::Unknown => "UNKNOWN",
        }
    }

    fn default_message(self) -> &'static str {
        match self {
            Code::BlobUnknown => "blob unknown to registry",
            Code::BlobUploadInvalid => "blob upload invalid",
            Code::BlobUploadUnknown => "blob upload unknown to registry",
            Code::DigestInvalid => "provided digest did not match uploaded content",
            Code::ManifestBlobUnknown => "blob unknown to registry",
            Code::ManifestInvalid => "manifest invalid",
            Code::ManifestUnknown => "manifest unknown",
            Code::NameInvalid => "invalid repository name",
            Code::NameUnknown => "repository name not known to registry",
            Code::SizeInvalid => "provided length did not match content length",
            Code::RangeInvalid => "invalid content range",
            Code::Unauthorized => "authentication required",
            Code::Denied => "requested access to the resource is denied",
            Code::Unsupported => "The operation is unsupported.",
            Code::Unknown => "unknown error",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown | Code::BlobUploadUnknown | Code::ManifestUnknown | Code::NameUnknown => {
                StatusCode::NOT_FOUND
            }
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid => StatusCode::BAD_REQUEST,
            Code::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// One error response. Built by handlers, turned into the JSON body by `IntoResponse`.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub status: StatusCode,
    pub message: String,
    pub detail: Option<serde_json::Value>,
    /// `WWW-Authenticate` for 401s.
    pub challenge: Option<String>,
}

impl ApiError {
    pub fn new(code: Code) -> Self {
        Self { code, status: code.status(), message: code.default_message().to_owned(), detail: None, challenge: None }
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn detail(mut self, detail: impl serde::Serialize) -> Self {
        self.detail = serde_json::to_value(detail).ok();
        self
    }

    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn challenge(mut self, challenge: String) -> Self {
        self.challenge = Some(challenge);
        self
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        Self::new(Code::Unknown).message(err.to_string())
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e.kind() {
            ErrorKind::NotFound => Self::new(Code::BlobUnknown).message(e.to_string()),
            _ => {
                tracing::error!(error = %e, "storage");
                Self::internal(e)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut entry = serde_json::json!({"code": self.code.as_str(), "message": self.message});
        if let Some(d) = self.detail {
            entry["detail"] = d;
        }
        let body = serde_json::json!({ "errors": [entry] }).to_string();
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(c) = self.challenge
            && let Ok(v) = HeaderValue::from_str(&c)
        {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}
