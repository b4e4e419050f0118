//! Plain data shared by every Wharf crate. No I/O happens here.
//!
//! Map:
//! - [`error`]: the error *kinds* every library error is classified into, and [`EngineError`],
//!   the classified error that crosses the backend traits. `wharf-api` maps a kind to an HTTP
//!   status in exactly one function.
//! - [`id`]: typed identifiers (`ContainerId`, `ExecId`, …) and random ID generation.
//! - [`digest`]: content digests (`sha256:<hex>`), parsed once at the edge.
//! - [`reference`]: image references with Docker's normalisation (`busybox` →
//!   `docker.io/library/busybox:latest`).
//! - [`mount`]: the `Mount` value where snapshots and the runtime meet.
//! - [`filters`]: Docker's filter arguments (`{"label":{"a=b":true}}` or `{"label":["a=b"]}`).
//! - [`event`]: the engine's event record published on the daemon's bus.
//! - [`image`]: the image config document (the image ID is its digest) and chain IDs.
//! - [`signal`]: signal names and numbers as Docker accepts them.
//! - [`units`]: go-units formatting (`Up 5 seconds`).
//! - [`platform`]: platforms written `os/arch[/variant]`.
//! - [`oci`]: OCI/Docker manifests, indexes, descriptors and media types (serde data).

pub mod digest;
pub mod error;
pub mod event;
pub mod filters;
pub mod gostr;
pub mod id;
pub mod image;
pub mod mount;
pub mod oci;
pub mod path;
pub mod platform;
pub mod reference;
pub mod signal;
pub mod units;

pub use digest::Digest;
pub use error::{Classify, EngineError, ErrorKind};
pub use event::{Event, EventActor, EventType};
pub use filters::Filters;
pub use id::{ContainerId, ExecId, NetworkId, random_hex_id};
pub use image::ImageId;
pub use mount::Mount;
pub use platform::Platform;
pub use reference::Reference;

/// Labels on objects: ordered so that output and hashes are stable.
pub type Labels = std::collections::BTreeMap<String, String>;
