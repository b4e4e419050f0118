//! The error doctrine: every library error has a [`ErrorKind`]; the HTTP layer turns the kind into a
//! status code in one place and the message into `{"message": ...}`. Messages are the ones Docker
//! users know (`No such container: x`).

use std::fmt;

/// What class of failure an error is. Mirrors moby's errdefs classes, which the docker CLI
/// recovers from the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The object does not exist (404).
    NotFound,
    /// The request is malformed or names an impossible option (400).
    InvalidArgument,
    /// The request conflicts with the object's current state (409).
    Conflict,
    /// Credentials are missing or wrong (401).
    Unauthorized,
    /// The operation is not allowed on this object (403).
    Forbidden,
    /// A dependency is not available, e.g. swarm (503).
    Unavailable,
    /// Nothing to do; the object is already in the requested state (304).
    NotModified,
    /// The operation exists in Docker but not here (501).
    NotImplemented,
    /// The client went away or cancelled (499-ish; reported as 500 if it ever reaches a response).
    Cancelled,
    /// Anything else: a bug or an environment failure (500).
    Internal,
}

/// An error that knows its kind. Implemented by every `thiserror` enum in the libraries.
pub trait Classify {
    fn kind(&self) -> ErrorKind;
}

/// A classified error with a user-facing message: what backend traits return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    pub kind: ErrorKind,
    pub message: String,
}

impl EngineError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    pub fn not_modified() -> Self {
        Self::new(ErrorKind::NotModified, "")
    }
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotImplemented, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// Builds an engine error from any classified error, keeping its full cause chain in the
    /// message (`op: cause: cause`), as Go's wrapped errors read.
    pub fn from_classified<E: Classify + std::error::Error>(err: &E) -> Self {
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        Self { kind: err.kind(), message }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EngineError {}

impl Classify for EngineError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("open store at /x")]
    struct Outer(#[source] std::io::Error);
    impl Classify for Outer {
        fn kind(&self) -> ErrorKind {
            ErrorKind::Internal
        }
    }

    #[test]
    fn cause_chain_is_kept_in_the_message() {
        let e = Outer(std::io::Error::other("disk on fire"));
        let engine = EngineError::from_classified(&e);
        assert_eq!(engine.message, "open store at /x: disk on fire");
        assert_eq!(engine.kind, ErrorKind::Internal);
    }
}
