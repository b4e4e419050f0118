//! Driving a container through its `wharf-shim`.
//!
//! - [`protocol`]: the wire protocol and state-dir layout (the spec both sides follow).
//! - [`client`]: [`spawn`] a shim for a new container or [`ShimClient::connect`] to a live one;
//!   `start`, `state`, `kill`, `wait`, `attach`, `resize`, `exec`, `shutdown`.
//! - [`runtime`]: [`RuntimeConfig`] and async wrappers running the OCI runtime binary directly.
//! - [`error`]: the module error, `ShimError`.

pub mod client;
pub mod error;
pub mod protocol;
pub mod runtime;

pub use client::{AttachOptions, AttachStream, ExecHandle, ExecOptions, OutputStream, ShimClient, StdinWriter, spawn};
pub use error::ShimError;
pub use protocol::{ExitStatus, LogConfig, LogDriver, RuntimeConfig, ShimConfig, ShimState, Status};
