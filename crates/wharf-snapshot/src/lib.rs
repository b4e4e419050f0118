//! Snapshots: the directories that hold unpacked image layers and containers' writable layers,
//! and the mounts that present them.
//!
//! Map:
//! - [`snapshotter`]: the [`Snapshotter`] trait — read its doc first, it is the spec
//!   (containerd's vocabulary: active `key`s, committed `name`s, views, parent chains) — and the
//!   values and error it uses.
//! - [`store`]: what both implementations share: the on-disk layout, the crash-safe metadata
//!   file (temp + fsync + rename), the lifecycle rules, and recovery at open.
//! - [`overlay`]: [`OverlaySnapshotter`], one layer per directory, stacked by overlayfs.
//! - [`native`]: [`NativeSnapshotter`], a full copy per snapshot ([`copy`] does the copying),
//!   for filesystems where overlay is not available.
//! - [`mount`]: [`mount_all`] / [`unmount`], which perform the returned [`Mount`]s (overlay via
//!   the new mount API with `lowerdir+`, or `mount(2)` with short relative paths).
//!
//! On disk (everything under the root given to `open`): `lock`, `metadata.json`,
//! `snapshots/<id>/{fs,work}`; see [`store`]. Nothing outside the root is written, except by
//! [`mount_all`] at the target it is given.
//!
//! Callers are expected to run these blocking calls on a blocking thread (`spawn_blocking`).

pub mod copy;
mod fsutil;
pub mod mount;
pub mod native;
pub mod overlay;
pub mod snapshotter;
pub mod store;

pub use mount::{MountError, mount_all, mount_all_legacy, overlay_lowerdir_plus, unmount};
pub use native::NativeSnapshotter;
pub use overlay::{OverlaySnapshotter, overlay_supported};
pub use snapshotter::{DiffSource, Info, Kind, SnapshotError, Snapshotter, Usage, WhiteoutStyle};
pub use store::Recovery;
pub use wharf_types::Mount;
