//! Errors at the HTTP edge: `{"message": "..."}` with `Content-Type: application/json` exactly
//! (the Go client compares the header for equality), and the status from [`status_for`].

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use wharf_types::{EngineError, ErrorKind};

/// The one mapping from error kinds to HTTP statuses (moby's `httpstatus.FromError`).
pub fn status_for(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Cancelled | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError(pub EngineError);

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self(EngineError::new(kind, message))
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    /// The JSON 404 for unknown paths and methods.
    pub fn page_not_found() -> Self {
        Self::not_found("page not found")
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_for(self.0.kind);
        if status == StatusCode::NOT_MODIFIED {
            return status.into_response();
        }
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self.0.message, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %self.0.message, "request refused");
        }
        let body = serde_json::json!({ "message": self.0.message }).to_string();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_docker_status() {
        let cases = [
            (ErrorKind::NotFound, 404),
            (ErrorKind::InvalidArgument, 400),
            (ErrorKind::Conflict, 409),
            (ErrorKind::Unauthorized, 401),
            (ErrorKind::Forbidden, 403),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::NotModified, 304),
            (ErrorKind::NotImplemented, 501),
            (ErrorKind::Internal, 500),
            (ErrorKind::Cancelled, 500),
        ];
        for (kind, code) in cases {
            assert_eq!(status_for(kind).as_u16(), code, "{kind:?}");
        }
    }

    #[tokio::test]
    async fn body_and_content_type_are_exact() {
        let resp = ApiError::not_found("No such container: x").into_response();
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"message":"No such container: x"}"#);
    }

    #[tokio::test]
    async fn not_modified_has_no_body() {
        let resp = ApiError(EngineError::not_modified()).into_response();
        assert_eq!(resp.status(), 304);
        let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
        assert!(body.is_empty());
    }
}
