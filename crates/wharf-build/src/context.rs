//! The build context: the request body extracted into a private directory, the Dockerfile read
//! from it, and `.dockerignore` applied.
//!
//! The body ([`BuildContext::from_reader`]) is a tar, possibly gzip/bzip2/xz/zstd compressed
//! (found from magic bytes). A body that is not a tar is the Dockerfile itself (older clients,
//! `docker build - < Dockerfile`), with an empty context. Extraction cannot write outside the
//! directory (see [`crate::archive`]); symlinks in the context are kept as they are and
//! resolved inside the context whenever a path is used ([`BuildContext::resolve`]).
//!
//! The Dockerfile is `dockerfile` inside the context (`Dockerfile` by default, falling back to
//! `dockerfile`; the CLI sends `-f -` as `.dockerfile.<hex>`). Ignore patterns come from
//! `<Dockerfile>.dockerignore` or else `.dockerignore`; excluded paths are removed from the
//! directory, so `COPY` cannot see them; the Dockerfile and the ignore file are read first
//! and then removed too when the patterns exclude them (as Docker does).
//!
//! On disk: one temp directory under the directory given, removed on drop.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wharf_dockerfile::ignore::{IgnoreError, PatternMatcher, ignore_file_candidates};
use wharf_types::{Classify, ErrorKind};

use crate::archive::{self, ArchiveError};
use crate::fsutil;
use crate::hash;

/// Errors of this module, in Docker's words.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("read build context")]
    Read {
        #[source]
        source: io::Error,
    },
    #[error("extract build context")]
    Extract {
        #[source]
        source: ArchiveError,
    },
    #[error("Cannot locate specified Dockerfile: {0}")]
    DockerfileNotFound(String),
    #[error("forbidden path outside the build context: {0} ()")]
    OutsideContext(String),
    #[error("the Dockerfile ({0}) cannot be empty")]
    EmptyDockerfile(String),
    #[error("error reading .dockerignore")]
    Ignore {
        #[source]
        source: IgnoreError,
    },
    #[error("apply .dockerignore to {path}")]
    ApplyIgnore {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Classify for ContextError {
    fn kind(&self) -> ErrorKind {
        match self {
            ContextError::Read { .. } | ContextError::ApplyIgnore { .. } => ErrorKind::Internal,
            ContextError::Extract { source } => source.kind(),
            _ => ErrorKind::InvalidArgument,
        }
    }
}

/// An extracted build context.
#[derive(Debug)]
pub struct BuildContext {
    dir: tempfile::TempDir,
    dockerfile_name: String,
    dockerfile: String,
    /// False when the body was the Dockerfile itself: there are no files to copy.
    has_files: bool,
    hashes: Mutex<HashMap<String, String>>,
}

fn read_err(source: io::Error) -> ContextError {
    ContextError::Read { source }
}

impl BuildContext {
    /// Reads a request body into a new temp directory under `tmp`. `dockerfile` is the `-f`
    /// path inside the context (empty for the default).
    pub fn from_reader(body: impl Read, tmp: &Path, dockerfile: &str) -> Result<Self, ContextError> {
        fs::create_dir_all(tmp).map_err(read_err)?;
        // Spool the body so that its compression and type can be decided before extraction.
        let mut spool = tempfile::tempfile_in(tmp).map_err(read_err)?;
        let mut body = body;
        io::copy(&mut body, &mut spool).map_err(read_err)?;
        spool.flush().map_err(read_err)?;
        Self::from_spooled(spool, tmp, dockerfile)
    }

    /// Like [`BuildContext::from_reader`] for a body already in a file (read from its start).
    pub fn from_spooled(mut spool: File, tmp: &Path, dockerfile: &str) -> Result<Self, ContextError> {
        use std::io::Seek;
        spool.rewind().map_err(read_err)?;
        let mut plain = archive::decompressed(spool, Path::new("build context"), tmp)
            .map_err(|source| ContextError::Extract { source })?;
        let mut block = vec![0u8; 512];
        let n = archive::read_up_to(&mut plain, &mut block).map_err(read_err)?;
        block.truncate(n);
        let dir = tempfile::Builder::new().prefix("wharf-build-context-").tempdir_in(tmp).map_err(read_err)?;
        let dockerfile_name = if dockerfile.is_empty() { "Dockerfile".to_string() } else { dockerfile.to_string() };
        if n == 512 && archive::is_tar_header(&block) {
            archive::extract(archive::LenientEnd::new(io::Cursor::new(block).chain(plain)), dir.path())
                .map_err(|source| ContextError::Extract { source })?;
            Self::from_extracted(dir, &dockerfile_name)
        } else if n == 0 && dockerfile.is_empty() {
            Err(ContextError::DockerfileNotFound(dockerfile_name))
        } else {
            // Not a tar: the body is the Dockerfile.
            let mut text = block;
            plain.read_to_end(&mut text).map_err(read_err)?;
            let text = String::from_utf8_lossy(&text).into_owned();
            if text.is_empty() {
                return Err(ContextError::EmptyDockerfile(dockerfile_name));
            }
            Ok(Self { dir, dockerfile_name, dockerfile: text, has_files: false, hashes: Mutex::new(HashMap::new()) })
        }
    }

    /// A context from a directory's content (copied into a temp dir under `tmp`), for tests and
    /// callers that already have the files.
    pub fn from_dir(src: &Path, tmp: &Path, dockerfile: &str) -> Result<Self, ContextError> {
        fs::create_dir_all(tmp).map_err(read_err)?;
        let dir = tempfile::Builder::new().prefix("wharf-build-context-").tempdir_in(tmp).map_err(read_err)?;
        for e in fs::read_dir(src).map_err(read_err)? {
            let e = e.map_err(read_err)?;
            fsutil::copy_entry(&e.path(), &dir.path().join(e.file_name()), None, None, &|_| false).map_err(read_err)?;
        }
        let name = if dockerfile.is_empty() { "Dockerfile" } else { dockerfile };
        Self::from_extracted(dir, name)
    }

    fn from_extracted(dir: tempfile::TempDir, dockerfile_name: &str) -> Result<Self, ContextError> {
        let root = dir.path();
        let mut name = dockerfile_name.to_string();
        if !fsutil::lexically_inside(&name) {
            return Err(ContextError::OutsideContext(name));
        }
        let mut path = fsutil::resolve_in_scope(root, &name).map_err(read_err)?;
        if !path.is_file() && name == "Dockerfile" {
            let lower = fsutil::resolve_in_scope(root, "dockerfile").map_err(read_err)?;
            if lower.is_file() {
                name = "dockerfile".into();
                path = lower;
            }
        }
        let text = match fs::read(&path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound || path.is_dir() => {
                return Err(ContextError::DockerfileNotFound(name));
            }
            Err(e) => return Err(read_err(e)),
        };
        if text.is_empty() {
            return Err(ContextError::EmptyDockerfile(name));
        }
        let ctx =
            Self { dir, dockerfile_name: name, dockerfile: text, has_files: true, hashes: Mutex::new(HashMap::new()) };
        ctx.apply_ignore()?;
        Ok(ctx)
    }

    /// Reads the ignore file (`<Dockerfile>.dockerignore`, else `.dockerignore`) and removes
    /// every excluded path.
    fn apply_ignore(&self) -> Result<(), ContextError> {
        let root = self.dir.path();
        let mut text = None;
        for cand in ignore_file_candidates(&self.dockerfile_name) {
            let p = fsutil::resolve_in_scope(root, &cand).map_err(read_err)?;
            if let Ok(t) = fs::read_to_string(&p) {
                text = Some(t);
                break;
            }
        }
        let Some(text) = text else { return Ok(()) };
        let pm = PatternMatcher::from_ignore_file(&text).map_err(|source| ContextError::Ignore { source })?;
        if pm.patterns().is_empty() {
            return Ok(());
        }
        remove_excluded(root, root, &pm)
            .map_err(|source| ContextError::ApplyIgnore { path: root.to_path_buf(), source })
    }

    /// The directory holding the context's files.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The Dockerfile's text.
    pub fn dockerfile(&self) -> &str {
        &self.dockerfile
    }

    /// The Dockerfile's path in the context, as found (`Dockerfile` or `dockerfile`).
    pub fn dockerfile_name(&self) -> &str {
        &self.dockerfile_name
    }

    /// Whether the context has files (false when the body was only a Dockerfile).
    pub fn has_files(&self) -> bool {
        self.has_files
    }

    /// `rel` resolved inside the context (symlinks followed with the context as `/`); an error
    /// when `rel` climbs out with `..` (Docker's `forbidden path outside the build context`).
    pub fn resolve(&self, rel: &str) -> Result<PathBuf, ContextError> {
        if !fsutil::lexically_inside(rel) {
            return Err(ContextError::OutsideContext(rel.to_string()));
        }
        fsutil::resolve_in_scope(self.root(), rel).map_err(read_err)
    }

    /// The memoised legacy hash of a source path (already resolved, relative to the root)
    /// with no excludes.
    pub(crate) fn cached_hash(&self, rel: &str, compute: impl FnOnce() -> io::Result<String>) -> io::Result<String> {
        if let Some(h) = self.hashes.lock().expect("hash memo").get(rel) {
            return Ok(h.clone());
        }
        let h = compute()?;
        self.hashes.lock().expect("hash memo").insert(rel.to_string(), h.clone());
        Ok(h)
    }
}

fn remove_excluded(root: &Path, dir: &Path, pm: &PatternMatcher) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = fsutil::rel_string(root, &path);
        let is_dir = e.file_type()?.is_dir();
        if pm.matches_or_parent_matches(&rel) {
            if is_dir && !pm.can_skip_dir(&rel) {
                remove_excluded(root, &path, pm)?;
            } else if is_dir {
                fs::remove_dir_all(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
        } else if is_dir {
            remove_excluded(root, &path, pm)?;
        }
    }
    Ok(())
}

/// Writes `text` as the only file of a context tar (what the CLI does for
/// `docker build - < Dockerfile`). For tests and tools.
pub fn single_file_tar(name: &str, text: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, text).expect("writing to memory");
    b.into_inner().expect("writing to memory")
}

/// Convenience for callers holding a file: opens and reads it as a context body.
pub fn from_file(path: &Path, tmp: &Path, dockerfile: &str) -> Result<BuildContext, ContextError> {
    let f = File::open(path).map_err(read_err)?;
    BuildContext::from_reader(f, tmp, dockerfile)
}

/// The legacy hash of a context path (the one given, resolved first), memoised.
pub(crate) fn context_hash(ctx: &BuildContext, resolved: &Path) -> io::Result<String> {
    let rel = fsutil::rel_string(ctx.root(), resolved);
    ctx.cached_hash(&rel, || hash::source_hash(resolved, &rel, &|_| false))
}
