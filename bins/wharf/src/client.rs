//! Connecting to a daemon and turning its errors into docker's messages and exit codes.

use std::fmt;

use bollard::{API_DEFAULT_VERSION, Docker};

/// The socket the CLI talks to when neither `-H`, `WHARF_HOST` nor `DOCKER_HOST` says otherwise.
pub const DEFAULT_HOST: &str = "unix:///run/wharf/wharf.sock";

/// Long enough for streams (`events`, `logs -f`, `attach`) that legitimately stay open.
const REQUEST_TIMEOUT_SECS: u64 = 60 * 60 * 24 * 365;

/// Picks the daemon address: `-H`, then `WHARF_HOST`, then `DOCKER_HOST`, then the default.
pub fn resolve_host(flag: &[String]) -> String {
    if let Some(h) = flag.last() {
        return h.clone();
    }
    for var in ["WHARF_HOST", "DOCKER_HOST"] {
        if let Ok(h) = std::env::var(var)
            && !h.is_empty()
        {
            return h;
        }
    }
    DEFAULT_HOST.to_owned()
}

pub fn connect(host: &str) -> Result<Docker, CliError> {
    let bad = || CliError::Usage(format!("invalid -H address {host:?}: use unix:///path or tcp://host:port"));
    if let Some(path) = host.strip_prefix("unix://") {
        if !std::path::Path::new(path).exists() {
            return Err(CliError::Connect {
                host: host.to_owned(),
                detail: format!("{path}: no such file or directory"),
            });
        }
        return Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION).map_err(|_| bad());
    }
    if host.starts_with("tcp://") || host.starts_with("http://") {
        let addr = host.replacen("tcp://", "http://", 1);
        return Docker::connect_with_http(&addr, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION).map_err(|_| bad());
    }
    if host.starts_with('/') {
        return Docker::connect_with_unix(host, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION).map_err(|_| bad());
    }
    Err(bad())
}

/// Every way a command can fail, with the exit code docker uses for it.
#[derive(Debug)]
pub enum CliError {
    /// The daemon answered with an error: `Error response from daemon: …`.
    Daemon { status: u16, message: String },
    /// The daemon could not be reached.
    Connect { host: String, detail: String },
    /// Bad flags or arguments (exit 125, like docker's flag errors).
    Usage(String),
    /// Exit silently with this code (a container's exit status, a failed step's code).
    Status(i32),
    /// Anything else (exit 1).
    Other(String),
}

impl CliError {
    /// Classifies a bollard error for a daemon at `host`.
    pub fn from_bollard(e: bollard::errors::Error, host: &str) -> Self {
        use bollard::errors::Error as B;
        match e {
            B::DockerResponseServerError { status_code, message } => CliError::Daemon { status: status_code, message },
            other => {
                let detail = error_chain(&other);
                let io_kind = io_kind(&other);
                if matches!(
                    io_kind,
                    Some(
                        std::io::ErrorKind::NotFound
                            | std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::PermissionDenied
                    )
                ) || detail.contains("onnection refused")
                    || detail.contains("No such file")
                    || detail.contains("client error (Connect)")
                {
                    CliError::Connect { host: host.to_owned(), detail }
                } else {
                    CliError::Other(detail)
                }
            }
        }
    }

    /// The process exit code docker uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Status(c) => *c,
            CliError::Usage(_) => 125,
            _ => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // docker's client trims the daemon's message (moby's own end with a space).
            CliError::Daemon { message, .. } => write!(f, "Error response from daemon: {}", message.trim()),
            CliError::Connect { host, detail } if detail.contains("ermission denied") => write!(
                f,
                "permission denied while trying to connect to the Wharf daemon socket at {host}: run as root or add yourself to the 'wharf' group"
            ),
            CliError::Connect { host, .. } => write!(
                f,
                "Cannot connect to the Wharf daemon at {host}. Is the wharf daemon running? Start it with `sudo wharfd` (or point -H / DOCKER_HOST at a running daemon)."
            ),
            CliError::Usage(m) | CliError::Other(m) => f.write_str(m),
            CliError::Status(c) => write!(f, "exit status {c}"),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Other(format!("{e:#}"))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = c.source();
    }
    None
}

/// Extension to map bollard results at call sites: `docker.info().await.cli(host)?`.
pub trait CliResult<T> {
    fn cli(self, host: &str) -> Result<T, CliError>;
}

impl<T> CliResult<T> for Result<T, bollard::errors::Error> {
    fn cli(self, host: &str) -> Result<T, CliError> {
        self.map_err(|e| CliError::from_bollard(e, host))
    }
}
