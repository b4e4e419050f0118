//! Errors of driving a shim or a runtime binary.

use std::path::PathBuf;

use wharf_types::{Classify, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("prepare shim state dir {path}")]
    PrepareStateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("launch shim {binary}")]
    Launch {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The shim exited or closed its ready pipe without a handshake.
    #[error("shim for {id} failed before it was ready: {detail}")]
    Handshake { id: String, detail: String },
    /// `<runtime> create` failed; `message` is the runtime's, verbatim.
    #[error("{message}")]
    Create { id: String, message: String },
    /// `<runtime> start` (or exec) failed; `message` is the runtime's, verbatim.
    #[error("{message}")]
    Start { id: String, message: String },
    #[error("connect to shim at {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talk to shim at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad answer from shim at {path}: {detail}")]
    Protocol { path: PathBuf, detail: String },
    /// The shim refused the request (container not running, no tty, …).
    #[error("{op}: {message}")]
    Rejected { op: &'static str, message: String },
    #[error("read exit status {path}")]
    ExitFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The shim is gone and left no exit status.
    #[error("shim for {path} is gone and recorded no exit status")]
    Gone { path: PathBuf },
    #[error("run {runtime} {verb}")]
    RuntimeSpawn {
        runtime: String,
        verb: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The runtime binary failed; `message` is its error text.
    #[error("{runtime} {verb} failed: {message}")]
    Runtime { runtime: String, verb: &'static str, message: String },
    #[error("parse {runtime} {verb} output")]
    RuntimeOutput {
        runtime: String,
        verb: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl Classify for ShimError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Create { message, .. } | Self::Start { message, .. } | Self::Runtime { message, .. }
                if is_not_found(message) =>
            {
                ErrorKind::NotFound
            }
            Self::Create { message, .. } | Self::Start { message, .. } if message.contains("permission denied") => {
                ErrorKind::Forbidden
            }
            Self::Rejected { .. } => ErrorKind::Conflict,
            Self::Gone { .. } => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        }
    }
}

fn is_not_found(m: &str) -> bool {
    m.contains("executable file not found") || m.contains("no such file or directory") || m.contains("does not exist")
}

impl ShimError {
    /// The exit code the docker CLI reports for a failed start: 127 (command not found),
    /// 126 (not executable), else 125 — the same substrings moby looks for.
    pub fn start_exit_code(&self) -> i32 {
        let m = self.to_string();
        if m.contains("executable file not found") || m.contains("no such file or directory") {
            127
        } else if m.contains("permission denied") {
            126
        } else {
            125
        }
    }
}
