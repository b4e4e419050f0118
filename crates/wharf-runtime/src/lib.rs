//! The runtime side of Wharf: everything between a container's configuration and its running
//! processes, except the processes themselves (those belong to `wharf-shim` and the OCI runtime).
//!
//! Map:
//! - [`spec`]: OCI runtime-spec generation from a container's create options, exactly as Docker
//!   builds it (`config.json` of the bundle). Start at [`spec::generate`] and [`spec::SpecOptions`].
//! - [`shim`]: the shim protocol ([`shim::protocol`]: state-dir layout, requests, frames) and the
//!   async client the daemon uses to spawn, drive and reconnect to `wharf-shim`
//!   ([`shim::ShimClient`]), plus thin async wrappers that run the OCI runtime binary directly
//!   (`pause`, `resume`, `update`, `ps`, `state`: [`shim::runtime`]). Start reading at
//!   [`shim::spawn`].
//! - [`logs`]: container log formats (`json-file`, `local`), the synchronous writer used by the
//!   shim, and the async reader behind the daemon's `logs` endpoint (tail, since/until, follow).
//!
//! On disk: `spec` reads the container's rootfs (`/etc/passwd`, `/etc/group`) and host facts from
//! `/proc`, `/sys` and `/dev`; the shim client writes a container's state dir (tmpfs, under the
//! daemon's exec root; layout in [`shim::protocol`]); log files live under the data root.

pub mod logs;
pub mod shim;
pub mod spec;
