//! The runtime side of Wharf: what a container's process is made of and how it is started.
//!
//! Map:
//! - [`spec`]: OCI runtime-spec generation from a container's create options, exactly as Docker
//!   builds it (`config.json` of the bundle). Start at [`spec::generate`] and [`spec::SpecOptions`].
//!
//! On disk: `spec` reads the container's rootfs (`/etc/passwd`, `/etc/group`) and host facts from
//! `/proc`, `/sys` and `/dev`; it writes nothing.

pub mod spec;
