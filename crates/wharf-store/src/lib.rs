//! Wharf's state on disk: the metadata database and crash-safe file writes.
//!
//! Map:
//! - [`lock`]: the exclusive lock on a data root (`<data-root>/wharf.lock`), so two daemons never
//!   share one.
//! - [`atomic`]: write a file so that a crash leaves either the old or the new content
//!   (temp file, fsync, rename, fsync of the directory).
//! - [`db`]: the SQLite database `<data-root>/wharf.db` (WAL), its versioned schema and the
//!   migrations that bring an older database up to date. Every user-visible change is one
//!   transaction.
//!
//! Reads and writes: only the files named above, under the data root given by the caller.

pub mod atomic;
pub mod db;
pub mod lock;

pub use atomic::write_atomic;
pub use db::{Db, DbError};
pub use lock::{DataRootLock, LockError};
