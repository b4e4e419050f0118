//! Remote build contexts: the `remote` parameter of `POST /build` (docker-py's `remote=`,
//! `wharf build <url>`), fetched by the daemon as the legacy builder does.
//!
//! - A **git URL** ([`crate::fetch::is_git_url`]: `git://…`, `git@host:…`, `github.com/…`,
//!   `http(s)://…​.git`) is fetched with the `git` binary into a fresh repository: `init`, `remote
//!   add origin`, `fetch` (shallow unless the server is a "dumb" HTTP one, which cannot do
//!   shallow fetches), `checkout`, submodules. The fragment picks what to build:
//!   `#<ref>:<subdir>` — a branch, tag or commit (the remote's `HEAD` when empty) and a directory
//!   inside the checkout (refused when it is not a directory or resolves outside the checkout).
//!   Git runs with `protocol.file.allow=never` and `GIT_PROTOCOL_FROM_USER=0` so a repository
//!   cannot pull host files in as submodules or use `ext::` commands, and with
//!   `GIT_TERMINAL_PROMPT=0` so a private repository fails instead of waiting for a password.
//! - Any other **http(s) URL** is downloaded; the body is a (maybe compressed) tar of the
//!   context, or else the Dockerfile itself, exactly as a request body would be
//!   ([`BuildContext::from_spooled`]).
//!
//! Both land in a temp directory under the builder's `tmp/`, removed when done. Cancellation is
//! checked between download chunks and kills a running git.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wharf_types::{Classify, ErrorKind};

use crate::context::{BuildContext, ContextError};
use crate::fetch::{FetchError, is_git_url, is_url};
use crate::fsutil;

/// Errors of this module, in moby's words where it has them.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("unable to prepare context: unsupported remote context {0:?}: expected a git repository or an http(s) URL")]
    Unsupported(String),
    #[error("invalid refspec: {0}")]
    BadRef(String),
    #[error("unable to prepare context: unable to download remote context {url}: {message}")]
    Download { url: String, message: String },
    #[error("unable to prepare context: failed to GET {url} with status {status}")]
    Status { url: String, status: String },
    #[error("unable to prepare context: unable to 'git clone' to temporary context directory: {0}")]
    Git(String),
    #[error("unable to prepare context: error setting git context, {0:?} not within git root")]
    SubdirOutside(String),
    #[error("unable to prepare context: error setting git context, not a directory: {0}")]
    SubdirNotDir(String),
    #[error("unable to prepare context: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error("Build cancelled")]
    Cancelled,
}

impl Classify for RemoteError {
    fn kind(&self) -> ErrorKind {
        match self {
            RemoteError::Unsupported(_)
            | RemoteError::BadRef(_)
            | RemoteError::Download { .. }
            | RemoteError::Status { .. }
            | RemoteError::Git(_)
            | RemoteError::SubdirOutside(_)
            | RemoteError::SubdirNotDir(_) => ErrorKind::InvalidArgument,
            RemoteError::Io(_) => ErrorKind::Internal,
            RemoteError::Context(e) => e.kind(),
            RemoteError::Cancelled => ErrorKind::Cancelled,
        }
    }
}

/// A git remote split into what git fetches and what the build uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRemote {
    /// The repository URL, without the fragment (`github.com/…` gains `https://`).
    pub url: String,
    /// The ref to check out; empty for the remote's `HEAD`.
    pub reference: String,
    /// The context directory inside the checkout; empty for its root.
    pub subdir: String,
}

impl GitRemote {
    /// Parses `url[#ref[:subdir]]`.
    pub fn parse(remote: &str) -> Result<Self, RemoteError> {
        let (url, fragment) = remote.split_once('#').unwrap_or((remote, ""));
        let url =
            if url.starts_with("git@") || url.contains("://") { url.to_string() } else { format!("https://{url}") };
        let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
        if reference.starts_with('-') {
            return Err(RemoteError::BadRef(reference.to_string()));
        }
        Ok(GitRemote { url, reference: reference.to_string(), subdir: subdir.to_string() })
    }
}

/// Fetches `remote` and makes it a build context (temp files under `tmp`). Blocking.
pub fn context(
    remote: &str,
    tmp: &Path,
    dockerfile: &str,
    cancel: &CancellationToken,
) -> Result<BuildContext, RemoteError> {
    fs::create_dir_all(tmp)?;
    if is_git_url(remote) {
        let repo = GitRemote::parse(remote)?;
        let checkout = tempfile::Builder::new().prefix("wharf-build-git-").tempdir_in(tmp)?;
        let dir = clone(&repo, checkout.path(), cancel)?;
        Ok(BuildContext::from_dir(&dir, tmp, dockerfile)?)
    } else if is_url(remote) {
        // The same download as `ADD <url>` (no checksum); the file is the request body.
        let dir = tempfile::Builder::new().prefix("wharf-build-remote-").tempdir_in(tmp)?;
        let dl = crate::fetch::download(remote, dir.path(), None, cancel, &|_, _| {}).map_err(|e| match e {
            FetchError::Cancelled => RemoteError::Cancelled,
            FetchError::Status { url, status, .. } => RemoteError::Status { url, status },
            e => RemoteError::Download { url: remote.to_string(), message: e.to_string() },
        })?;
        Ok(BuildContext::from_spooled(fs::File::open(&dl.path)?, tmp, dockerfile)?)
    } else {
        Err(RemoteError::Unsupported(remote.to_string()))
    }
}

/// Fetches `repo` into `root` and returns the context directory (the checkout or its subdir).
fn clone(repo: &GitRemote, root: &Path, cancel: &CancellationToken) -> Result<PathBuf, RemoteError> {
    git(root, &["init", "-q"], cancel)?;
    git(root, &["remote", "add", "origin", &repo.url], cancel)?;
    let reference = if repo.reference.is_empty() { "HEAD" } else { &repo.reference };
    // Shallow first; "dumb" HTTP servers (plain files) and some refs (a commit the server does
    // not advertise) cannot be fetched shallowly, so fall back to a full fetch.
    if git(root, &["fetch", "-q", "--depth", "1", "origin", "--", reference], cancel).is_err() {
        git(root, &["fetch", "-q", "origin", "--", reference], cancel)?;
    }
    git(root, &["checkout", "-q", "FETCH_HEAD"], cancel)?;
    if root.join(".gitmodules").exists() {
        git(root, &["submodule", "update", "-q", "--init", "--recursive", "--depth=1"], cancel)?;
    }
    if repo.subdir.is_empty() {
        return Ok(root.to_path_buf());
    }
    if !fsutil::lexically_inside(&repo.subdir) {
        return Err(RemoteError::SubdirOutside(repo.subdir.clone()));
    }
    let dir = fsutil::resolve_in_scope(root, &repo.subdir)?;
    if !dir.is_dir() {
        return Err(RemoteError::SubdirNotDir(repo.subdir.clone()));
    }
    Ok(dir)
}

/// Runs one git command in `dir`, killed on cancellation; a failure carries git's output.
fn git(dir: &Path, args: &[&str], cancel: &CancellationToken) -> Result<(), RemoteError> {
    let mut child = Command::new("git")
        .args(["-c", "protocol.file.allow=never", "-c", "protocol.ext.allow=never"])
        .args(args)
        .current_dir(dir)
        .env("GIT_PROTOCOL_FROM_USER", "0")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", "/nonexistent")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RemoteError::Git(format!("run git: {e}")))?;
    // Output is small; read it on threads so a chatty git cannot block on a full pipe.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if cancel.is_cancelled() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RemoteError::Cancelled);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = out_t.join().unwrap_or_default();
    text.extend(err_t.join().unwrap_or_default());
    if status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&text).trim().to_string();
    Err(RemoteError::Git(format!("git {}: {status}: {text}", args.first().copied().unwrap_or(""))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_fragments() {
        let r = GitRemote::parse("https://example.com/app.git#v1.2:docker/web").unwrap();
        assert_eq!(r.url, "https://example.com/app.git");
        assert_eq!(r.reference, "v1.2");
        assert_eq!(r.subdir, "docker/web");
        let r = GitRemote::parse("github.com/moby/moby").unwrap();
        assert_eq!((r.url.as_str(), r.reference.as_str(), r.subdir.as_str()), ("https://github.com/moby/moby", "", ""));
        let r = GitRemote::parse("git@github.com:a/b.git#:sub").unwrap();
        assert_eq!((r.url.as_str(), r.reference.as_str(), r.subdir.as_str()), ("git@github.com:a/b.git", "", "sub"));
        assert!(matches!(GitRemote::parse("git://h/r#--upload-pack=x"), Err(RemoteError::BadRef(_))));
    }

    #[test]
    fn other_schemes_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let e = context("ftp://x/y", tmp.path(), "", &CancellationToken::new()).unwrap_err();
        assert!(e.to_string().contains("unsupported remote context"), "{e}");
    }

    /// A repository on the host's filesystem is not fetched: a remote context must not read
    /// host files (the same rule stops `file://` submodules).
    #[test]
    fn file_transport_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(&src).unwrap();
        Command::new("git").args(["init", "-q"]).current_dir(&src).status().unwrap();
        Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "x"])
            .current_dir(&src)
            .status()
            .unwrap();
        let repo =
            GitRemote { url: format!("file://{}", src.display()), reference: String::new(), subdir: String::new() };
        let root = tmp.path().join("clone");
        fs::create_dir_all(&root).unwrap();
        let e = clone(&repo, &root, &CancellationToken::new());
        assert!(matches!(e, Err(RemoteError::Git(ref m)) if m.contains("transport 'file' not allowed")), "{e:?}");
    }
}
