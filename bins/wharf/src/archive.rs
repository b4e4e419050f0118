//! `docker cp`'s local side (`moby/go-archive` copy.go): path rules (trailing `/` and `/.`),
//! source tars rooted at the source's basename (`TarResource`), the rebase that renames the
//! root entry to the destination's name (`PrepareArchiveCopy`), and extraction into a local
//! destination (`CopyTo`, `Untar` with `NoOverwriteDirNonDir`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::opts::mounts::clean_path;

/// What is known about one side of a copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyInfo {
    pub path: String,
    pub exists: bool,
    pub is_dir: bool,
    /// The name the source's root entry must get in the archive.
    pub rebase_name: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ArchiveError {
    /// `cannot copy directory`
    CannotCopyDir,
    /// `no such directory`
    DirNotExists,
    /// `not a directory`
    NotDirectory,
    Other(String),
}

impl std::fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArchiveError::CannotCopyDir => f.write_str("cannot copy directory"),
            ArchiveError::DirNotExists => f.write_str("no such directory"),
            ArchiveError::NotDirectory => f.write_str("not a directory"),
            ArchiveError::Other(m) => f.write_str(m),
        }
    }
}

fn io_err(e: std::io::Error) -> ArchiveError {
    ArchiveError::Other(crate::opts::io_text(&e))
}

fn has_trailing_sep(p: &str) -> bool {
    p.ends_with('/')
}

fn specifies_current_dir(p: &str) -> bool {
    base(p) == "."
}

/// Go's `filepath.Base`.
pub fn base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_owned()
}

/// Go's `filepath.Dir`.
pub fn dir(p: &str) -> String {
    let i = p.rfind('/').map_or(0, |i| i + 1);
    clean_path(&p[..i])
}

/// `PreserveTrailingDotOrSeparator`.
pub fn preserve_trailing_dot_or_separator(cleaned: &str, original: &str) -> String {
    let mut c = cleaned.to_owned();
    if !specifies_current_dir(&c) && specifies_current_dir(original) {
        if !has_trailing_sep(&c) {
            c.push('/');
        }
        c.push('.');
    }
    if !has_trailing_sep(&c) && has_trailing_sep(original) {
        c.push('/');
    }
    c
}

/// `SplitPathDirEntry`: `("/a", "b")` for `/a/b`, `("/a/b", ".")` for `/a/b/.`.
pub fn split_path_dir_entry(path: &str) -> (String, String) {
    let mut cleaned = clean_path(path);
    if specifies_current_dir(path) {
        cleaned.push_str("/.");
    }
    (dir(&cleaned), base(&cleaned))
}

/// `GetRebaseName`.
pub fn rebase_name(path: &str, resolved: &str) -> (String, String) {
    let mut resolved = resolved.to_owned();
    if specifies_current_dir(path) && !specifies_current_dir(&resolved) {
        resolved.push_str("/.");
    }
    if has_trailing_sep(path) && !has_trailing_sep(&resolved) {
        resolved.push('/');
    }
    let rebase = if base(path) != base(&resolved) { base(path) } else { String::new() };
    (resolved, rebase)
}

/// `filepath.Abs` + `PreserveTrailingDotOrSeparator` (docker's `resolveLocalPath`).
pub fn resolve_local_path(p: &str) -> String {
    let abs = if p.starts_with('/') {
        clean_path(p)
    } else {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        clean_path(&format!("{}/{p}", cwd.display()))
    };
    preserve_trailing_dot_or_separator(&abs, p)
}

/// `CopyInfoSourcePath` (with `ResolveHostSourcePath`).
pub fn copy_info_source_path(path: &str, follow_link: bool) -> Result<CopyInfo, ArchiveError> {
    let (resolved, rebase) = if follow_link {
        let r = std::fs::canonicalize(path)
            .map_err(|e| ArchiveError::Other(format!("lstat {path}: {}", crate::opts::io_text(&e))))?;
        rebase_name(path, &r.to_string_lossy())
    } else {
        let (d, b) = match path.rfind('/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => ("", path),
        };
        let d = if d.is_empty() { "." } else { d };
        let rd = std::fs::canonicalize(d)
            .map_err(|e| ArchiveError::Other(format!("lstat {d}: {}", crate::opts::io_text(&e))))?;
        let rd = rd.to_string_lossy();
        let resolved = format!("{}/{b}", rd.trim_end_matches('/'));
        let rebase = if has_trailing_sep(path) && base(path) != base(&resolved) { base(path) } else { String::new() };
        (resolved, rebase)
    };
    let st = std::fs::symlink_metadata(&resolved)
        .map_err(|e| ArchiveError::Other(format!("lstat {}: {}", clean_path(&resolved), crate::opts::io_text(&e))))?;
    Ok(CopyInfo { path: resolved, exists: true, is_dir: st.is_dir(), rebase_name: rebase })
}

/// `CopyInfoDestinationPath`: follows symlinks; a missing path needs an existing parent dir.
pub fn copy_info_destination_path(path: &str) -> Result<CopyInfo, ArchiveError> {
    let mut path = path.to_owned();
    let original = path.clone();
    let mut st = std::fs::symlink_metadata(&path);
    let mut n = 0;
    while let Ok(m) = &st {
        if !m.file_type().is_symlink() {
            break;
        }
        if n > 10 {
            return Err(ArchiveError::Other(format!("too many symlinks in {original}")));
        }
        let target = std::fs::read_link(&path).map_err(io_err)?;
        let mut t = target.to_string_lossy().into_owned();
        if !t.starts_with('/') {
            let (parent, _) = split_path_dir_entry(&path);
            t = clean_path(&format!("{parent}/{t}"));
        }
        path = t;
        st = std::fs::symlink_metadata(&path);
        n += 1;
    }
    match st {
        Ok(m) => Ok(CopyInfo { path, exists: true, is_dir: m.is_dir(), rebase_name: String::new() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (parent, _) = split_path_dir_entry(&path);
            let pm = std::fs::metadata(&parent)
                .map_err(|e| ArchiveError::Other(format!("stat {parent}: {}", crate::opts::io_text(&e))))?;
            if !pm.is_dir() {
                return Err(ArchiveError::NotDirectory);
            }
            Ok(CopyInfo { path, ..Default::default() })
        }
        Err(e) => Err(io_err(e)),
    }
}

/// A rename applied to entry names (`RebaseArchiveEntries`: the first occurrence).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebase {
    pub old: String,
    pub new: String,
}

impl Rebase {
    pub fn apply(&self, name: &str) -> String {
        if self.old.is_empty() && self.new.is_empty() {
            return name.to_owned();
        }
        let old = if self.old == "/" { "" } else { self.old.as_str() };
        name.replacen(old, &self.new, 1)
    }
}

/// `PrepareArchiveCopy`: where to extract a source archive for a destination, and the rename
/// its entries need.
pub fn prepare_archive_copy(src: &CopyInfo, dst: &CopyInfo) -> Result<(String, Option<Rebase>), ArchiveError> {
    let (dst_dir, dst_base) = split_path_dir_entry(&dst.path);
    let (_, mut src_base) = split_path_dir_entry(&src.path);
    let rebase = |src_base: String| Rebase { old: src_base, new: dst_base.clone() };
    if dst.exists && dst.is_dir {
        return Ok((dst.path.clone(), None));
    }
    if dst.exists && src.is_dir {
        return Err(ArchiveError::CannotCopyDir);
    }
    if !src.rebase_name.is_empty() {
        src_base = src.rebase_name.clone();
    }
    if dst.exists || src.is_dir {
        return Ok((dst_dir, Some(rebase(src_base))));
    }
    if has_trailing_sep(&dst.path) || specifies_current_dir(&dst.path) {
        return Err(ArchiveError::DirNotExists);
    }
    Ok((dst_dir, Some(rebase(src_base))))
}

/// Writes a tar of `src` (`TarResource`): entries named `<basename>` / `<basename>/…` (or the
/// rebase name), symlinks not followed, hard links kept as links. `then` is the rename
/// `PrepareArchiveCopy` asks for, applied on the way out.
pub fn tar_resource<W: Write>(src: &CopyInfo, then: Option<&Rebase>, out: W) -> Result<W, ArchiveError> {
    let (src_dir, src_base) = split_path_dir_entry(&src.path);
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    let root = PathBuf::from(&src_dir).join(&src_base);
    let rebase = (!src.rebase_name.is_empty()).then(|| Rebase {
        old: src_base.clone(),
        new: if src.rebase_name == "/" { String::new() } else { src.rebase_name.clone() },
    });
    let mut stack = vec![(root, src_base.clone())];
    while let Some((path, rel)) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(_) => continue,
        };
        let name = rebase.as_ref().map_or(rel.clone(), |r| r.apply(&rel));
        let name = then.map_or(name.clone(), |r| r.apply(&name));
        add_entry(&mut b, &path, &name, &meta, &mut inodes)?;
        if meta.is_dir() {
            let mut children: Vec<_> = std::fs::read_dir(&path)
                .map_err(io_err)?
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            children.sort();
            for c in children.into_iter().rev() {
                let crel = if rel == "." { format!("./{c}") } else { format!("{rel}/{c}") };
                stack.push((path.join(&c), crel));
            }
        }
    }
    b.into_inner().map_err(io_err)
}

fn add_entry<W: Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    name: &str,
    meta: &std::fs::Metadata,
    inodes: &mut HashMap<(u64, u64), String>,
) -> Result<(), ArchiveError> {
    let ft = meta.file_type();
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    let name = if name.is_empty() { ".".to_owned() } else { name.to_owned() };
    if ft.is_dir() {
        h.set_size(0);
        let dname = format!("{}/", name.trim_end_matches('/'));
        return b.append_data(&mut h, dname, std::io::empty()).map_err(io_err);
    }
    if ft.is_symlink() {
        let target = std::fs::read_link(path).map_err(io_err)?;
        h.set_size(0);
        return b.append_link(&mut h, &name, target).map_err(io_err);
    }
    if ft.is_file() {
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = inodes.get(&key) {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                return b.append_link(&mut h, &name, first).map_err(io_err);
            }
            inodes.insert(key, name.clone());
        }
        let f = std::fs::File::open(path).map_err(io_err)?;
        return b.append_data(&mut h, &name, f).map_err(io_err);
    }
    use std::os::unix::fs::FileTypeExt;
    if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
        h.set_size(0);
        return b.append_data(&mut h, &name, std::io::empty()).map_err(io_err);
    }
    // sockets are skipped, as Go's archive does
    Ok(())
}

/// `Untar` with `NoLchown` and `NoOverwriteDirNonDir`, applying `rebase` to entry names.
pub fn untar<R: Read>(input: R, dest: &Path, rebase: Option<&Rebase>) -> Result<(), ArchiveError> {
    let mut ar = tar::Archive::new(input);
    let mut dirs: Vec<(PathBuf, tar::Header)> = Vec::new();
    let dest_canon = std::fs::canonicalize(dest).map_err(io_err)?;
    for entry in ar.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = rebase.map_or(raw_name.clone(), |r| r.apply(&raw_name));
        let rel = clean_path(&name);
        let rel = rel.trim_start_matches('/').to_owned();
        if rel == ".." || rel.starts_with("../") {
            return Err(ArchiveError::Other(format!("invalid path in archive: {raw_name}")));
        }
        let kind = entry.header().entry_type();
        let path = if rel.is_empty() || rel == "." { dest.to_path_buf() } else { dest.join(&rel) };
        // parents: create missing ones, refuse ones that lead outside the destination
        if let Some(parent) = path.parent() {
            if !parent.exists() {
                std::fs::create_dir_all(parent).map_err(io_err)?;
            }
            let pc = std::fs::canonicalize(parent).map_err(io_err)?;
            if !pc.starts_with(&dest_canon) {
                return Err(ArchiveError::Other(format!("invalid path in archive: {raw_name}")));
            }
        }
        if let Ok(fi) = std::fs::symlink_metadata(&path) {
            let d = dest.display();
            if fi.is_dir() && !kind.is_dir() {
                return Err(ArchiveError::Other(format!(
                    "cannot overwrite directory \"{}\" with non-directory \"{d}\"",
                    path.display()
                )));
            }
            if !fi.is_dir() && kind.is_dir() {
                return Err(ArchiveError::Other(format!(
                    "cannot overwrite non-directory \"{}\" with directory \"{d}\"",
                    path.display()
                )));
            }
            if fi.is_dir() && (rel.is_empty() || rel == ".") {
                continue;
            }
            if !(fi.is_dir() && kind.is_dir()) {
                std::fs::remove_file(&path).map_err(io_err)?;
            }
        }
        if kind.is_hard_link() {
            let link = entry.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned()).unwrap_or_default();
            let link = rebase.map_or(link.clone(), |r| r.apply(&link));
            let lrel = clean_path(&link).trim_start_matches('/').to_owned();
            if lrel == ".." || lrel.starts_with("../") {
                return Err(ArchiveError::Other(format!("invalid hardlink {link}")));
            }
            std::fs::hard_link(dest.join(&lrel), &path).map_err(io_err)?;
            continue;
        }
        entry.set_preserve_permissions(true);
        entry.set_preserve_mtime(true);
        entry.set_unpack_xattrs(false);
        if kind.is_dir() {
            std::fs::create_dir_all(&path).map_err(io_err)?;
            dirs.push((path, entry.header().clone()));
            continue;
        }
        entry.unpack(&path).map_err(io_err)?;
    }
    // directory modes and times last, deepest first
    for (path, h) in dirs.into_iter().rev() {
        if let Ok(mode) = h.mode() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode));
        }
        if let Ok(mtime) = h.mtime() {
            let t = rustix::fs::Timestamps {
                last_access: rustix::fs::Timespec { tv_sec: mtime as i64, tv_nsec: 0 },
                last_modification: rustix::fs::Timespec { tv_sec: mtime as i64, tv_nsec: 0 },
            };
            let _ = rustix::fs::utimensat(rustix::fs::CWD, &path, &t, rustix::fs::AtFlags::SYMLINK_NOFOLLOW);
        }
    }
    Ok(())
}

/// `CopyTo`: extracts a container's archive of `src` at the local `dst_path`.
pub fn copy_to<R: Read>(input: R, src: &CopyInfo, dst_path: &str) -> Result<(), ArchiveError> {
    let dst = copy_info_destination_path(dst_path)?;
    let (dst_dir, rebase) = prepare_archive_copy(src, &dst)?;
    untar(input, Path::new(&dst_dir), rebase.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rules() {
        assert_eq!(split_path_dir_entry("/a/b"), ("/a".into(), "b".into()));
        assert_eq!(split_path_dir_entry("/a/b/"), ("/a".into(), "b".into()));
        assert_eq!(split_path_dir_entry("/a/b/."), ("/a/b".into(), ".".into()));
        assert_eq!(split_path_dir_entry("/"), ("/".into(), "/".into()));
        assert_eq!(preserve_trailing_dot_or_separator("/x/y", "y/"), "/x/y/");
        assert_eq!(preserve_trailing_dot_or_separator("/x/y", "y/."), "/x/y/.");
        assert_eq!(rebase_name("/a/link", "/a/target"), ("/a/target".into(), "link".into()));
        assert_eq!(rebase_name("/a/link/", "/a/target"), ("/a/target/".into(), "link".into()));
        assert_eq!(base("/a/b/"), "b");
        assert_eq!(dir("/a/b"), "/a");
        assert_eq!(dir("b"), ".");
    }

    fn info(path: &str, exists: bool, is_dir: bool) -> CopyInfo {
        CopyInfo { path: path.into(), exists, is_dir, rebase_name: String::new() }
    }

    fn rb(old: &str, new: &str) -> Option<Rebase> {
        Some(Rebase { old: old.into(), new: new.into() })
    }

    #[test]
    fn prepare_copy_cases() {
        // compat §3.8: ./a.txt → c:/tmp/a.txt (missing): rename the entry, PUT into /tmp
        assert_eq!(
            prepare_archive_copy(&info("/h/a.txt", true, false), &info("/tmp/a.txt", false, false)),
            Ok(("/tmp".into(), rb("a.txt", "a.txt")))
        );
        // ./cpsrc → c:/tmp/dir (missing): a tar of dir/… into /tmp
        assert_eq!(
            prepare_archive_copy(&info("/h/cpsrc", true, true), &info("/tmp/dir", false, false)),
            Ok(("/tmp".into(), rb("cpsrc", "dir")))
        );
        // a.txt → c:/tmp/ (existing dir): no rename, PUT into /tmp/
        assert_eq!(
            prepare_archive_copy(&info("/h/a.txt", true, false), &info("/tmp/", true, true)),
            Ok(("/tmp/".into(), None))
        );
        // file over existing file: rename to the destination's name
        assert_eq!(
            prepare_archive_copy(&info("/h/a.txt", true, false), &info("/etc/b.txt", true, false)),
            Ok(("/etc".into(), rb("a.txt", "b.txt")))
        );
        assert_eq!(
            prepare_archive_copy(&info("/h/d", true, true), &info("/etc/passwd", true, false)),
            Err(ArchiveError::CannotCopyDir)
        );
        assert_eq!(
            prepare_archive_copy(&info("/h/a.txt", true, false), &info("/nope/", false, false)),
            Err(ArchiveError::DirNotExists)
        );
        // dir/. into a missing dir
        assert_eq!(
            prepare_archive_copy(&info("/h/d/.", true, true), &info("/tmp/new", false, false)),
            Ok(("/tmp".into(), rb(".", "new")))
        );
    }

    #[test]
    fn tar_and_untar_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("cpsrc");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a.txt"), "hello\n").unwrap();
        std::fs::write(src.join("sub/b.txt"), "b").unwrap();
        std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
        std::fs::hard_link(src.join("a.txt"), src.join("hard")).unwrap();
        let si = copy_info_source_path(&src.to_string_lossy(), false).unwrap();
        assert!(si.is_dir);
        let data = tar_resource(&si, None, Vec::new()).unwrap();
        let mut names: Vec<String> = tar::Archive::new(&data[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["cpsrc/", "cpsrc/a.txt", "cpsrc/hard", "cpsrc/link", "cpsrc/sub/", "cpsrc/sub/b.txt"]);
        // extract as a new directory name (docker cp c:/cpsrc ./out)
        let out = tmp.path().join("out");
        copy_to(&data[..], &si, &out.to_string_lossy()).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("a.txt")).unwrap(), "hello\n");
        assert_eq!(std::fs::read_to_string(out.join("sub/b.txt")).unwrap(), "b");
        assert_eq!(std::fs::read_link(out.join("link")).unwrap(), Path::new("a.txt"));
        assert_eq!(
            std::fs::metadata(out.join("hard")).unwrap().ino(),
            std::fs::metadata(out.join("a.txt")).unwrap().ino()
        );
        // again into the existing directory: lands inside it
        copy_to(&data[..], &si, &out.to_string_lossy()).unwrap();
        assert!(out.join("cpsrc/a.txt").exists());
        // a directory over a file is refused
        let f = tmp.path().join("file");
        std::fs::write(&f, "x").unwrap();
        assert_eq!(copy_to(&data[..], &si, &f.to_string_lossy()).unwrap_err(), ArchiveError::CannotCopyDir);
        // a missing parent
        let missing = tmp.path().join("no/such");
        assert!(copy_to(&data[..], &si, &missing.to_string_lossy()).is_err());
    }

    #[test]
    fn single_file_renamed() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("a.txt");
        std::fs::write(&f, "data").unwrap();
        let si = copy_info_source_path(&f.to_string_lossy(), false).unwrap();
        let data = tar_resource(&si, None, Vec::new()).unwrap();
        let dst = tmp.path().join("b.txt");
        copy_to(&data[..], &si, &dst.to_string_lossy()).unwrap();
        assert_eq!(std::fs::read_to_string(dst).unwrap(), "data");
    }

    #[test]
    fn hostile_archives_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // tar's set_path refuses "..", so write the name bytes directly
        h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let data = b.into_inner().unwrap();
        assert!(untar(&data[..], tmp.path(), None).is_err());
        assert!(!tmp.path().parent().unwrap().join("escape").exists());
    }
}
