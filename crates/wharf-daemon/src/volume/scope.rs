//! Paths inside a directory that a container controls (its root filesystem, a volume), resolved
//! without ever leaving that directory: `..` stops at the top and symlinks are followed as the
//! container would see them (absolute targets start again at the top). This is what keeps an
//! image symlink such as `/data -> /etc` (or `-> /host/path`) from sending the daemon to the
//! host's files when it copies image content into a volume or resolves a volume subpath.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution may follow (Linux's limit is 40; securejoin's 255).
const MAX_LINKS: usize = 255;

/// Resolves `path` (absolute or relative, as seen from inside `root`) to a host path under
/// `root`. Components that do not exist are kept as written.
pub fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: Vec<OsString> = components(path);
    pending.reverse();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let candidate = join(root, &resolved).join(&c);
        match std::fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links resolving {} in {}",
                        path.display(),
                        root.display()
                    )));
                }
                let target = std::fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                let mut more = components(&target);
                more.reverse();
                pending.extend(more);
            }
            Ok(_) => resolved.push(c),
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20) => resolved.push(c),
            Err(e) => return Err(e),
        }
    }
    Ok(join(root, &resolved))
}

fn components(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

fn join(root: &Path, parts: &[OsString]) -> PathBuf {
    let mut p = root.to_path_buf();
    for part in parts {
        p.push(part);
    }
    p
}

/// Go's `filepath.IsLocal`: relative, not empty, and never climbing above its start.
pub fn is_local(p: &str) -> bool {
    if p.is_empty() || p.starts_with('/') {
        return false;
    }
    let mut depth: i64 = 0;
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_and_dotdot_stay_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc/app")).unwrap();
        std::fs::create_dir_all(root.join("var")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../etc/app", root.join("var/rel")).unwrap();
        symlink("../../../../../..", root.join("up")).unwrap();
        symlink(tmp.path(), root.join("host")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        let r = |p: &str| resolve_in_root(&root, Path::new(p)).unwrap();
        assert_eq!(r("/abs/app"), root.join("etc/app"));
        assert_eq!(r("/var/rel/x"), root.join("etc/app/x"));
        assert_eq!(r("/../../../etc"), root.join("etc"));
        assert_eq!(r("/up/etc"), root.join("etc"));
        assert_eq!(r("/up"), root.clone());
        // An absolute host path in a symlink is a path inside the root.
        assert_eq!(r("/host/secret"), join(&root, &components(tmp.path())).join("secret"));
        assert_eq!(r("missing/a/b"), root.join("missing/a/b"));
        assert!(resolve_in_root(&root, Path::new("/loop")).is_err());
    }

    #[test]
    fn local_paths() {
        for ok in ["a", "a/b", "a/../b", "./a", "a/."] {
            assert!(is_local(ok), "{ok}");
        }
        for bad in ["", "/a", "..", "../a", "a/../../b"] {
            assert!(!is_local(bad), "{bad}");
        }
    }
}
