//! [`SpecError`]: everything that can stop a spec from being generated.
//!
//! Most variants carry the exact text Docker (or runc, for the checks Docker leaves to it) prints,
//! because that is what users search for; the variant says which option was at fault.

use std::path::PathBuf;

use wharf_types::{Classify, ErrorKind};

/// Why a spec could not be generated or an option could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// `--cap-add`/`--cap-drop` names a capability the kernel does not know.
    #[error("unknown capability: {0:?}")]
    UnknownCapability(String),
    /// The capability exists but the daemon itself does not hold it, so it cannot be granted.
    #[error("capability not supported by your kernel or not available in the current environment: {0:?}")]
    UnavailableCapability(String),
    /// `--cap-add` or `--cap-drop` failed to validate (`invalid CapAdd: unknown capability: …`).
    #[error("invalid {field}: {source}")]
    ValidateCapabilities {
        field: &'static str,
        #[source]
        source: Box<SpecError>,
    },
    /// A `--sysctl` is malformed or not allowed for the container's namespaces.
    #[error("{0}")]
    InvalidSysctl(String),
    /// A `--ulimit` is malformed.
    #[error("{0}")]
    InvalidUlimit(String),
    /// A `--device` or `--device-cgroup-rule` is malformed.
    #[error("{0}")]
    InvalidDevice(String),
    /// A `--device` path on the host is not a device (or directory of devices).
    #[error("error gathering device information while adding custom device {path:?}: {source}")]
    GatherDevice {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A `--security-opt` is malformed or unknown.
    #[error("{0}")]
    InvalidSecurityOpt(String),
    /// A seccomp profile given with `--security-opt seccomp=…` cannot be used.
    #[error("{0}")]
    InvalidSeccompProfile(String),
    /// A memory, CPU, pids or blkio setting is out of range or conflicts with another.
    #[error("{0}")]
    InvalidResources(String),
    /// A size such as `512m` does not parse.
    #[error("{0}")]
    InvalidSize(String),
    /// A CPU count such as `1.5` does not parse.
    #[error("{0}")]
    InvalidCpus(String),
    /// A mount is duplicated, has bad options, or targets `/`.
    #[error("{0}")]
    InvalidMount(String),
    /// A bind mount asks for shared/slave propagation its source mount cannot give.
    #[error("{0}")]
    MountPropagation(String),
    /// A namespace mode, cgroup parent or score is invalid.
    #[error("{0}")]
    InvalidHostConfig(String),
    /// The container config is unusable (no command, relative working directory, bad env).
    #[error("{0}")]
    InvalidConfig(String),
    /// The user or a group cannot be resolved in the container's `/etc/passwd` / `/etc/group`.
    #[error("{0}")]
    ResolveUser(String),
    /// A file in the rootfs (`/etc/passwd`, `/etc/group`) could not be read.
    #[error("read {path} in the container's rootfs")]
    ReadRootfsFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The host could not be inspected (`/dev`, `/proc/self/mountinfo`, …).
    #[error("inspect host: {what}")]
    ProbeHost {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The assembled document did not convert into an OCI spec (a bug).
    #[error("assemble OCI runtime spec")]
    AssembleSpec(#[source] serde_json::Error),
}

impl Classify for SpecError {
    fn kind(&self) -> ErrorKind {
        match self {
            SpecError::ReadRootfsFile { .. } | SpecError::ProbeHost { .. } | SpecError::AssembleSpec(_) => {
                ErrorKind::Internal
            }
            _ => ErrorKind::InvalidArgument,
        }
    }
}
