//! The data-root lock. A daemon holds an exclusive `flock` on `<data-root>/wharf.lock` for its
//! whole life; the file also records the holder's pid so the error can name it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};
use wharf_types::{Classify, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("data root {path} is in use by another wharfd{}; stop it or pass a different --data-root", .holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held { path: PathBuf, holder: Option<u32> },
    #[error("cannot lock data root {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for LockError {
    fn kind(&self) -> ErrorKind {
        match self {
            LockError::Held { .. } => ErrorKind::Conflict,
            LockError::Io { .. } => ErrorKind::Internal,
        }
    }
}

/// Held for as long as the value lives; dropping it releases the lock.
#[derive(Debug)]
pub struct DataRootLock {
    _file: File,
}

impl DataRootLock {
    /// Takes the lock on `data_root` (created if missing) without waiting.
    pub fn acquire(data_root: &Path) -> Result<Self, LockError> {
        let io = |source| LockError::Io { path: data_root.to_owned(), source };
        std::fs::create_dir_all(data_root).map_err(io)?;
        let lock_path = data_root.join("wharf.lock");
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lock_path).map_err(io)?;
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            if e == rustix::io::Errno::WOULDBLOCK {
                let mut s = String::new();
                let _ = file.read_to_string(&mut s);
                return Err(LockError::Held { path: data_root.to_owned(), holder: s.trim().parse().ok() });
            }
            return Err(io(e.into()));
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_with_the_holder_named() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataRootLock::acquire(dir.path()).unwrap();
        let err = DataRootLock::acquire(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("is in use by another wharfd"), "{msg}");
        assert!(msg.contains(&format!("pid {}", std::process::id())), "{msg}");
        assert_eq!(err.kind(), ErrorKind::Conflict);
        drop(first);
        DataRootLock::acquire(dir.path()).expect("lock is free again after drop");
    }
}
