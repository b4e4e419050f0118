//! COPY and ADD with the legacy builder's semantics.
//!
//! Sources ([`collect`]): paths in the context (or in another stage's/image's filesystem for
//! `--from`), resolved inside their root (a `..` that climbs out is an error; symlinks are
//! followed with the root as `/`); wildcards (`*`, `?`, `[…]`, Go's `filepath.Match`) are
//! matched against every path of the root, so `*.txt` matches top-level files only;
//! `--exclude` patterns drop matches and entries inside copied directories. Each source gets
//! its content hash ([`crate::hash`]).
//!
//! Destination rules ([`perform`]): a relative destination is relative to WORKDIR; a directory
//! source copies its *contents* into the destination (created as needed); a file source goes
//! *into* the destination when the destination ends with `/` or is an existing directory, and
//! *is* the destination otherwise; more than one source needs a destination ending in `/`.
//! Missing parent directories are created (mode 0755). `ADD` extracts local tar archives
//! (plain, gzip, bzip2, xz, zstd) into the destination instead of copying them; downloads are
//! never extracted.
//!
//! Ownership: context files are copied as root (0:0); `--from` keeps the source's owners;
//! `--chown=user[:group]` sets both, names looked up in the destination's `/etc/passwd` and
//! `/etc/group` (a user without a group uses the same name as group, as the legacy builder
//! does). `--chmod` (octal) sets the mode of copied files and directories.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use wharf_dockerfile::ignore::PatternMatcher;
use wharf_types::{Classify, ErrorKind};

use crate::archive::{self, ArchiveError};
use crate::context::BuildContext;
use crate::fetch::FetchError;
use crate::fsutil::{self, Owner};
use crate::hash;

/// Errors of COPY/ADD, in Docker's words.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("file not found in build context or excluded by .dockerignore: stat {0}: file does not exist")]
    NotInContext(String),
    #[error("stat {0}: file does not exist")]
    NotFound(String),
    #[error("forbidden path outside the build context: {0} ()")]
    OutsideContext(String),
    #[error("no source files were specified")]
    NoSources,
    #[error("When using {0} with more than one source file, the destination must be a directory and end with a /")]
    MultipleSources(&'static str),
    #[error("cannot determine filename for source {0}")]
    Unnamed(String),
    #[error("source can't be a URL for COPY")]
    UrlForCopy,
    #[error("source can't be a git repository: {0}")]
    Git(String),
    #[error("checksum can't be specified for non-HTTP(S) sources")]
    ChecksumLocal,
    #[error("unable to convert uid/gid chown string to host mapping: {0}")]
    Chown(String),
    #[error("invalid chmod parameter: {0}")]
    Chmod(String),
    #[error("invalid exclude pattern: {0}")]
    Exclude(String),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to copy files: {source}")]
    Copy {
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

impl Classify for CopyError {
    fn kind(&self) -> ErrorKind {
        match self {
            CopyError::Io { .. } | CopyError::Copy { .. } => ErrorKind::Internal,
            CopyError::Archive(e) => e.kind(),
            CopyError::Fetch(e) => e.kind(),
            CopyError::NotInContext(_) | CopyError::NotFound(_) => ErrorKind::NotFound,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

/// One resolved source of a COPY/ADD.
#[derive(Debug, Clone)]
pub(crate) struct CopySource {
    /// The path as the user named it (cleaned, relative to its root).
    pub rel: String,
    /// Its host path, symlinks followed inside the root.
    pub full: PathBuf,
    pub is_dir: bool,
    /// `file:<…>` / `dir:<…>`.
    pub hash: String,
    /// Downloads are never extracted.
    pub no_decompress: bool,
    /// `--parents`: the path to recreate under the destination.
    pub parents_rel: Option<String>,
}

/// Where sources are read from.
pub(crate) enum SourceRoot<'a> {
    Context(&'a BuildContext),
    /// A stage's or image's filesystem (mounted view), or a download/heredoc directory.
    Dir(&'a Path),
}

impl SourceRoot<'_> {
    fn path(&self) -> &Path {
        match self {
            SourceRoot::Context(c) => c.root(),
            SourceRoot::Dir(p) => p,
        }
    }
}

/// Compiles `--exclude` patterns (`None` when there are none).
pub(crate) fn excludes(patterns: &[String]) -> Result<Option<PatternMatcher>, CopyError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    PatternMatcher::new(patterns).map(Some).map_err(|e| CopyError::Exclude(e.to_string()))
}

fn strip_source(s: &str) -> String {
    let s = s.strip_prefix('/').unwrap_or(s);
    let s = s.strip_prefix("./").unwrap_or(s);
    s.to_string()
}

/// The part of `rel` to recreate under the destination for `--parents`: everything after a
/// `/./` pivot in `orig`, else all of it.
fn parents_rel(orig: &str, rel: &str) -> String {
    let o = strip_source(orig);
    if let Some(i) = o.find("/./") {
        let prefix = fsutil::clean(&o[..i]);
        if let Some(rest) = rel.strip_prefix(&format!("{prefix}/")) {
            return rest.to_string();
        }
    }
    fsutil::clean(rel)
}

/// Resolves and hashes the sources of a COPY/ADD (URLs excluded: see [`crate::fetch`]).
pub(crate) fn collect(
    root: &SourceRoot<'_>,
    sources: &[String],
    exclude: Option<&PatternMatcher>,
    parents: bool,
) -> Result<Vec<CopySource>, CopyError> {
    let mut out = Vec::new();
    for orig in sources {
        let path = strip_source(orig);
        let path_for_match = if parents { path.replace("/./", "/") } else { path.clone() };
        if fsutil::contains_wildcards(&path_for_match) {
            let mut matches = Vec::new();
            walk_all(root.path(), root.path(), &mut |rel| {
                if fsutil::go_match(&path_for_match, rel) {
                    matches.push(rel.to_string());
                }
            })
            .map_err(|source| CopyError::Io { op: "walk", path: root.path().to_path_buf(), source })?;
            for m in matches {
                if exclude.is_some_and(|pm| pm.matches_or_parent_matches(&m)) {
                    continue;
                }
                let mut s = one(root, &m, exclude)?;
                if parents {
                    s.parents_rel = Some(parents_rel(orig, &m));
                }
                out.push(s);
            }
        } else {
            let mut s = one(root, &path_for_match, exclude)?;
            if parents {
                s.parents_rel = Some(parents_rel(orig, &fsutil::clean(&path_for_match)));
            }
            out.push(s);
        }
    }
    if out.is_empty() {
        return Err(CopyError::NoSources);
    }
    Ok(out)
}

fn walk_all(root: &Path, dir: &Path, f: &mut dyn FnMut(&str)) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    names.sort();
    for n in names {
        let p = dir.join(&n);
        f(&fsutil::rel_string(root, &p));
        if fs::symlink_metadata(&p)?.is_dir() {
            walk_all(root, &p, f)?;
        }
    }
    Ok(())
}

/// Like [`collect`] for plain paths, without hashing (the caller knows the hashes).
pub(crate) fn collect_unhashed(root: &Path, sources: &[String], parents: bool) -> Result<Vec<CopySource>, CopyError> {
    sources
        .iter()
        .map(|orig| {
            let path = strip_source(orig);
            let path = if parents { path.replace("/./", "/") } else { path };
            let mut s = one_inner(&SourceRoot::Dir(root), &path, None, false)?;
            if parents {
                s.parents_rel = Some(parents_rel(orig, &fsutil::clean(&path)));
            }
            Ok(s)
        })
        .collect()
}

fn one(root: &SourceRoot<'_>, path: &str, exclude: Option<&PatternMatcher>) -> Result<CopySource, CopyError> {
    one_inner(root, path, exclude, true)
}

fn one_inner(
    root: &SourceRoot<'_>,
    path: &str,
    exclude: Option<&PatternMatcher>,
    with_hash: bool,
) -> Result<CopySource, CopyError> {
    let is_context = matches!(root, SourceRoot::Context(_));
    if !fsutil::lexically_inside(path) {
        return Err(CopyError::OutsideContext(path.to_string()));
    }
    let cleaned = fsutil::clean(path);
    let full = fsutil::resolve_in_scope(root.path(), &cleaned).map_err(|source| CopyError::Io {
        op: "resolve",
        path: PathBuf::from(path),
        source,
    })?;
    let not_found = || {
        if is_context { CopyError::NotInContext(cleaned.clone()) } else { CopyError::NotFound(cleaned.clone()) }
    };
    let meta = match fs::metadata(&full) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Err(not_found()),
        Err(source) => {
            return Err(CopyError::Io { op: "stat", path: PathBuf::from(path), source });
        }
    };
    let resolved_rel = fsutil::rel_string(root.path(), &full);
    let skip = skip_fn(exclude, &resolved_rel);
    let hash_err = |source| CopyError::Io { op: "hash", path: PathBuf::from(path), source };
    let hash = match (root, exclude) {
        _ if !with_hash => String::new(),
        (SourceRoot::Context(ctx), None) => crate::context::context_hash(ctx, &full).map_err(hash_err)?,
        _ => hash::source_hash(&full, &resolved_rel, &skip).map_err(hash_err)?,
    };
    Ok(CopySource { rel: cleaned, full, is_dir: meta.is_dir(), hash, no_decompress: false, parents_rel: None })
}

/// The skip test for entries below a copied directory: `--exclude` patterns match the path
/// relative to the directory and relative to the source root.
fn skip_fn<'a>(exclude: Option<&'a PatternMatcher>, base: &'a str) -> impl Fn(&str) -> bool + 'a {
    move |rel: &str| {
        let Some(pm) = exclude else { return false };
        pm.matches_or_parent_matches(rel) || (base != "." && pm.matches_or_parent_matches(&format!("{base}/{rel}")))
    }
}

/// A source that is a downloaded file (`ADD <url>`), in its own directory.
pub(crate) fn downloaded(path: &Path, name: &str) -> Result<CopySource, CopyError> {
    let h = hash::source_hash(path, name, &|_| false).map_err(|source| CopyError::Io {
        op: "hash",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(CopySource {
        rel: name.to_string(),
        full: path.to_path_buf(),
        is_dir: false,
        hash: h,
        no_decompress: true,
        parents_rel: None,
    })
}

/// How to copy.
pub(crate) struct CopyPlan<'a> {
    /// The destination as written (expanded).
    pub dest: &'a str,
    pub workdir: &'a str,
    /// `--chown` as written, resolved against the destination's user database.
    pub chown: Option<&'a str>,
    /// Owner when there is no `--chown`: `Some((0, 0))` for context files, `None` to keep.
    pub default_owner: Owner,
    pub chmod: Option<u32>,
    /// ADD: extract local archives.
    pub decompress: bool,
    pub exclude: Option<&'a PatternMatcher>,
    /// Scratch space for decompression.
    pub tmp: &'a Path,
}

/// Docker's `normalizeDest`: a relative destination is joined to WORKDIR, keeping a trailing
/// slash.
pub(crate) fn normalize_dest(workdir: &str, dest: &str) -> String {
    if dest.starts_with('/') {
        return dest.to_string();
    }
    let mut d = fsutil::clean(&format!("/{workdir}/{dest}"));
    if dest.ends_with('/') && !d.ends_with('/') {
        d.push('/');
    }
    d
}

/// Parses `--chmod`: octal permission bits.
pub(crate) fn parse_chmod(s: &str) -> Result<u32, CopyError> {
    match u32::from_str_radix(s, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(CopyError::Chmod(s.to_string())),
    }
}

/// Checks the source count against the destination (the legacy rule).
pub(crate) fn check_dest(cmd: &'static str, sources: usize, dest: &str) -> Result<(), CopyError> {
    if sources > 1 && !dest.ends_with('/') {
        return Err(CopyError::MultipleSources(cmd));
    }
    Ok(())
}

/// Copies `sources` into the filesystem mounted at `dest_root`.
pub(crate) fn perform(dest_root: &Path, sources: &[CopySource], plan: &CopyPlan<'_>) -> Result<(), CopyError> {
    let owner = match plan.chown {
        Some(spec) => Some(parse_chown(spec, dest_root)?),
        None => plan.default_owner,
    };
    let dest = normalize_dest(plan.workdir, plan.dest);
    let cerr = |source| CopyError::Copy { source };
    for s in sources {
        let (dest_str, exact) = match &s.parents_rel {
            Some(p) => (format!("{}/{p}", dest.trim_end_matches('/')), true),
            None => (dest.clone(), false),
        };
        let dest_full = fsutil::resolve_in_scope(dest_root, &dest_str).map_err(cerr)?;
        let skip = skip_fn(plan.exclude, &s.rel);
        if s.is_dir {
            let existed = dest_full.is_dir();
            fsutil::mkdir_all(&dest_full, owner).map_err(cerr)?;
            if !existed && let Some((u, g)) = owner {
                std::os::unix::fs::lchown(&dest_full, Some(u), Some(g)).map_err(cerr)?;
            }
            let mut names: Vec<_> = fs::read_dir(&s.full)
                .map_err(cerr)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(cerr)?;
            names.sort();
            for n in names {
                let name = n.to_string_lossy().into_owned();
                if skip(&name) {
                    continue;
                }
                let child_skip = |rel: &str| skip(&format!("{name}/{rel}"));
                fsutil::copy_entry(&s.full.join(&n), &dest_full.join(&n), owner, plan.chmod, &child_skip)
                    .map_err(cerr)?;
            }
            continue;
        }
        if plan.decompress && !s.no_decompress && archive::is_archive(&s.full, plan.tmp) {
            fsutil::mkdir_all(&dest_full, owner).map_err(cerr)?;
            archive::extract_file(&s.full, &dest_full, plan.tmp)?;
            continue;
        }
        let into_dir = !exact && (dest_full.is_dir() || dest_str.ends_with('/'));
        let target = if into_dir {
            let base = s.rel.rsplit('/').next().unwrap_or(&s.rel);
            dest_full.join(base)
        } else {
            dest_full
        };
        if let Some(parent) = target.parent() {
            fsutil::mkdir_all(parent, owner).map_err(cerr)?;
        }
        fsutil::copy_entry(&s.full, &target, owner, plan.chmod, &|_| false).map_err(cerr)?;
    }
    Ok(())
}

/// `--chown=user[:group]` → uid, gid, names looked up in the rootfs at `root`.
pub(crate) fn parse_chown(spec: &str, root: &Path) -> Result<(u32, u32), CopyError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (user, group) = match parts.as_slice() {
        [u] => (*u, *u),
        [u, g] => (*u, *g),
        _ => {
            return Err(CopyError::Chown(format!("invalid chown string format: {spec}")));
        }
    };
    let uid =
        lookup(root, "passwd", user).map_err(|e| CopyError::Chown(format!("can't find uid for user {user}: {e}")))?;
    let gid =
        lookup(root, "group", group).map_err(|e| CopyError::Chown(format!("can't find gid for group {group}: {e}")))?;
    Ok((uid, gid))
}

/// A numeric id, or the id of `name` in `/etc/<db>` (passwd or group) of the rootfs.
fn lookup(root: &Path, db: &str, name: &str) -> Result<u32, String> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    let path = fsutil::resolve_in_scope(root, &format!("etc/{db}")).map_err(|e| e.to_string())?;
    let text = fs::read_to_string(&path).map_err(|_| format!("open /etc/{db}: no such file or directory"))?;
    let kind = if db == "passwd" { "user" } else { "group" };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == name)
        .and_then(|f| f[2].parse().ok())
        .ok_or_else(|| format!("no such {kind}: {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dest_normalisation() {
        assert_eq!(normalize_dest("/app", "x"), "/app/x");
        assert_eq!(normalize_dest("/app", "x/"), "/app/x/");
        assert_eq!(normalize_dest("/app", "."), "/app");
        assert_eq!(normalize_dest("/app", "./"), "/app/");
        assert_eq!(normalize_dest("", "x"), "/x");
        assert_eq!(normalize_dest("/app", "/abs/"), "/abs/");
    }

    #[test]
    fn parents_pivot() {
        assert_eq!(parents_rel("a/b/c.txt", "a/b/c.txt"), "a/b/c.txt");
        assert_eq!(parents_rel("./a/./b/c.txt", "a/b/c.txt"), "b/c.txt");
    }

    #[test]
    fn chown_lookups() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("etc")).unwrap();
        fs::write(d.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
            .unwrap();
        fs::write(d.path().join("etc/group"), "root:x:0:\napp:x:1001:\n").unwrap();
        assert_eq!(parse_chown("app", d.path()).unwrap(), (1000, 1001));
        assert_eq!(parse_chown("app:0", d.path()).unwrap(), (1000, 0));
        assert_eq!(parse_chown("5:6", d.path()).unwrap(), (5, 6));
        assert_eq!(
            parse_chown("nobody", d.path()).unwrap_err().to_string(),
            "unable to convert uid/gid chown string to host mapping: can't find uid for user nobody: no such user: nobody"
        );
        assert_eq!(
            parse_chown("a:b:c", d.path()).unwrap_err().to_string(),
            "unable to convert uid/gid chown string to host mapping: invalid chown string format: a:b:c"
        );
    }
}
