//! Filesystem helpers with Docker's semantics: paths resolved inside a root as if it were `/`
//! (moby's `FollowSymlinkInScope`), Go's `filepath.Match`, and a metadata-preserving tree copy.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Timespec, Timestamps};
pub(crate) use wharf_types::path::clean;

/// Whether `rel` (as written by the user, relative to a root) stays inside the root when joined
/// lexically (`a/../b` does, `../b` and `a/../../b` do not).
pub(crate) fn lexically_inside(rel: &str) -> bool {
    let joined = clean(&format!("/{rel}"));
    // Cleaning a rooted path clamps `..` at `/`; compare with an unrooted clean to see whether
    // a `..` climbed out.
    let unrooted = clean(rel);
    !(unrooted == ".." || unrooted.starts_with("../")) && joined.starts_with('/')
}

/// Resolves `rel` inside `root` as moby's `FollowSymlinkInScope` does: every symlink on the way
/// (the last component included) is followed with `root` as `/`, and `..` never leaves `root`.
/// Components that do not exist are accepted as they are. Returns the full host path.
pub(crate) fn resolve_in_scope(root: &Path, rel: &str) -> io::Result<PathBuf> {
    let mut rest = clean(&format!("/{rel}"));
    let mut resolved: Vec<Vec<u8>> = Vec::new();
    let mut links = 0;
    while !rest.is_empty() {
        let (head, tail) = match rest.find('/') {
            Some(i) => (rest[..i].to_string(), rest[i + 1..].to_string()),
            None => (rest.clone(), String::new()),
        };
        rest = tail;
        match head.as_str() {
            "" | "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let mut candidate = root.to_path_buf();
        for c in &resolved {
            candidate.push(OsStr::from_bytes(c));
        }
        candidate.push(&head);
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(io::Error::other(format!("evalSymlinksInScope: too many links in {rel}")));
                }
                let target = fs::read_link(&candidate)?;
                let target = target.as_os_str().as_bytes();
                if target.starts_with(b"/") {
                    resolved.clear();
                }
                let t = String::from_utf8_lossy(target).into_owned();
                rest = if rest.is_empty() { t } else { format!("{t}/{rest}") };
            }
            _ => resolved.push(head.into_bytes()),
        }
    }
    let mut out = root.to_path_buf();
    for c in &resolved {
        out.push(OsStr::from_bytes(c));
    }
    Ok(out)
}

/// Go's `filepath.Match` (`*`, `?`, `[...]`, `\` escapes; `*` and `?` never match `/`).
/// A malformed pattern matches nothing (the legacy builder ignores the error).
pub(crate) fn go_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_at(&p, &n).unwrap_or(false)
}

fn match_at(p: &[char], n: &[char]) -> Option<bool> {
    if p.is_empty() {
        return Some(n.is_empty());
    }
    match p[0] {
        '*' => {
            // Try every split that does not cross a '/'.
            let mut i = 0;
            loop {
                if match_at(&p[1..], &n[i..])? {
                    return Some(true);
                }
                if i >= n.len() || n[i] == '/' {
                    return Some(false);
                }
                i += 1;
            }
        }
        '?' => {
            if n.is_empty() || n[0] == '/' {
                return Some(false);
            }
            match_at(&p[1..], &n[1..])
        }
        '[' => {
            let (matched, used) = match_class(&p[1..], n.first().copied())?;
            if !matched || n.is_empty() {
                return Some(false);
            }
            match_at(&p[1 + used..], &n[1..])
        }
        '\\' => {
            let c = *p.get(1)?;
            if n.first() != Some(&c) {
                return Some(false);
            }
            match_at(&p[2..], &n[1..])
        }
        c => {
            if n.first() != Some(&c) {
                return Some(false);
            }
            match_at(&p[1..], &n[1..])
        }
    }
}

/// A character class after `[`: whether `c` matches and how many pattern chars (incl. `]`)
/// were used. `None` for a malformed class.
fn match_class(p: &[char], c: Option<char>) -> Option<(bool, usize)> {
    let mut i = 0;
    let negated = p.first() == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            ch
        };
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|c| *c != ']') {
            i += 1;
            hi = if p[i] == '\\' {
                i += 1;
                *p.get(i)?
            } else {
                p[i]
            };
            i += 1;
        }
        if let Some(c) = c
            && lo <= c
            && c <= hi
        {
            matched = true;
        }
    }
    Some((matched != negated && c.is_some_and(|c| c != '/'), i))
}

/// Whether a source path has wildcards (`*`, `?`, `[`), `\` escaping the next character.
pub(crate) fn contains_wildcards(name: &str) -> bool {
    let b = name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Owner to give copied entries: `None` keeps the source's.
pub(crate) type Owner = Option<(u32, u32)>;

fn set_times(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let ts = Timestamps {
        last_access: Timespec { tv_sec: meta.atime(), tv_nsec: meta.atime_nsec() as _ },
        last_modification: Timespec { tv_sec: meta.mtime(), tv_nsec: meta.mtime_nsec() as _ },
    };
    rustix::fs::utimensat(CWD, path, &ts, AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)
}

fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

/// Creates `dir` and its missing parents with mode 0755, giving new directories `owner`
/// (Docker's `MkdirAllAndChown` with `WithOnlyNew`). Paths must already be resolved.
pub(crate) fn mkdir_all(dir: &Path, owner: Owner) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut cur = dir.to_path_buf();
    loop {
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("mkdir {}: not a directory", cur.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(cur.clone());
                if !cur.pop() {
                    break;
                }
            }
            Err(e) => return Err(e),
        }
    }
    for d in missing.iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        fs::set_permissions(d, fs::Permissions::from_mode(0o755))?;
        if let Some((u, g)) = owner {
            lchown(d, u, g)?;
        }
    }
    Ok(())
}

/// Copies one entry (recursively for directories) from `src` to `dst`, as Docker's
/// `CopyWithTar` + `fixPermissions` do: content, mode, mtime, symlinks as symlinks, device
/// nodes and fifos; an existing non-directory at `dst` (or a directory replaced by a
/// non-directory) is removed first; existing directories are merged. `owner` replaces the
/// owner (`None` keeps the source's), `chmod` replaces the permission bits of files and
/// directories. `skip(rel)` drops entries below `src` by their path relative to `src`.
pub(crate) fn copy_entry(
    src: &Path,
    dst: &Path,
    owner: Owner,
    chmod: Option<u32>,
    skip: &dyn Fn(&str) -> bool,
) -> io::Result<()> {
    copy_rec(src, dst, "", owner, chmod, skip)
}

fn copy_rec(
    src: &Path,
    dst: &Path,
    rel: &str,
    owner: Owner,
    chmod: Option<u32>,
    skip: &dyn Fn(&str) -> bool,
) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    let ft = meta.file_type();
    if let Ok(existing) = fs::symlink_metadata(dst)
        && !(existing.is_dir() && ft.is_dir())
    {
        if existing.is_dir() {
            fs::remove_dir_all(dst)?;
        } else {
            fs::remove_file(dst)?;
        }
    }
    let (uid, gid) = owner.unwrap_or((meta.uid(), meta.gid()));
    let mode = match chmod {
        Some(m) if !ft.is_symlink() => m,
        _ => meta.mode() & 0o7777,
    };
    if ft.is_dir() {
        if fs::symlink_metadata(dst).is_err() {
            fs::create_dir(dst)?;
        }
        let mut names: Vec<_> = fs::read_dir(src)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            let child_rel = if rel.is_empty() {
                name.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", name.to_string_lossy())
            };
            if skip(&child_rel) {
                continue;
            }
            copy_rec(&src.join(&name), &dst.join(&name), &child_rel, owner, chmod, skip)?;
        }
        lchown(dst, uid, gid)?;
        fs::set_permissions(dst, fs::Permissions::from_mode(mode))?;
        set_times(dst, &meta)?;
    } else if ft.is_symlink() {
        let target = fs::read_link(src)?;
        std::os::unix::fs::symlink(&target, dst)?;
        lchown(dst, uid, gid)?;
        set_times(dst, &meta)?;
    } else if ft.is_file() {
        let mut from = fs::File::open(src)?;
        let mut to = fs::OpenOptions::new().write(true).create_new(true).open(dst)?;
        io::copy(&mut from, &mut to)?;
        drop(to);
        lchown(dst, uid, gid)?;
        fs::set_permissions(dst, fs::Permissions::from_mode(mode))?;
        set_times(dst, &meta)?;
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
        let kind = if ft.is_char_device() {
            rustix::fs::FileType::CharacterDevice
        } else if ft.is_block_device() {
            rustix::fs::FileType::BlockDevice
        } else {
            rustix::fs::FileType::Fifo
        };
        rustix::fs::mknodat(CWD, dst, kind, rustix::fs::Mode::from_raw_mode(mode), meta.rdev())?;
        lchown(dst, uid, gid)?;
        set_times(dst, &meta)?;
    }
    // Sockets are skipped, as in a tar.
    Ok(())
}

/// The path of `p` relative to `root` as a slash string (`.` for the root itself).
pub(crate) fn rel_string(root: &Path, p: &Path) -> String {
    match p.strip_prefix(root) {
        Ok(r) if r.as_os_str().is_empty() => ".".into(),
        Ok(r) => r
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => p.to_string_lossy().into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_match_like_filepath_match() {
        assert!(go_match("*.txt", "a.txt"));
        assert!(!go_match("*.txt", "d/a.txt"));
        assert!(go_match("d/*.txt", "d/a.txt"));
        assert!(go_match("f?le", "file"));
        assert!(!go_match("f?le", "f/le"));
        assert!(go_match("[a-c]x", "bx"));
        assert!(!go_match("[^a-c]x", "bx"));
        assert!(go_match("[^a-c]x", "dx"));
        assert!(go_match("a\\*", "a*"));
        assert!(!go_match("a\\*", "ab"));
        assert!(!go_match("[a-", "a"));
        assert!(go_match("*", "anything"));
        assert!(go_match("*", ""));
    }

    #[test]
    fn wildcards_detected() {
        assert!(contains_wildcards("*.txt"));
        assert!(contains_wildcards("a[bc]"));
        assert!(!contains_wildcards("a\\*"));
        assert!(!contains_wildcards("plain/file"));
    }

    #[test]
    fn lexical_escape() {
        assert!(lexically_inside("a/b"));
        assert!(lexically_inside("a/../b"));
        assert!(!lexically_inside("../b"));
        assert!(!lexically_inside("a/../../b"));
        assert!(lexically_inside("/abs/path"));
        assert!(lexically_inside("."));
    }

    #[test]
    fn scope_resolution_clamps_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("d/e")).unwrap();
        std::os::unix::fs::symlink("/etc", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../..", r.join("d/up")).unwrap();
        std::os::unix::fs::symlink("e", r.join("d/rel")).unwrap();
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        assert_eq!(resolve_in_scope(r, "abs/passwd").unwrap(), r.join("etc/passwd"));
        assert_eq!(resolve_in_scope(r, "d/up/x").unwrap(), r.join("x"));
        assert_eq!(resolve_in_scope(r, "d/rel/f").unwrap(), r.join("d/e/f"));
        assert_eq!(resolve_in_scope(r, "../../x").unwrap(), r.join("x"));
        assert!(resolve_in_scope(r, "loop").is_err());
        assert_eq!(resolve_in_scope(r, "/").unwrap(), r.to_path_buf());
    }
}
