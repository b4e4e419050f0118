//! Container logs: formats, the shim's writer, the daemon's reader.
//!
//! - [`format`]: `json-file` (Docker's bytes) and `local` (documented binary records).
//! - [`writer`]: line splitting as Docker's copier does (16 KiB partial records) and rotation
//!   (`max-size`, `max-file`: `<path>.1`, `.2`, …).
//! - [`reader`]: read back with `tail`, `since`/`until` and `follow` across rotations.
//! - [`time`]: RFC3339Nano formatting/parsing without allocation.

pub mod format;
pub mod reader;
pub mod time;
pub mod writer;

pub use format::{LogEntry, StreamKind};
pub use reader::{LogError, LogStream, ReadOptions, read_logs};
