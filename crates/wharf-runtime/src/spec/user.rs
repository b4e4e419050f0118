//! The container's user: `--user` (`name`, `uid`, `name:group`, `uid:gid`) and `--group-add`
//! resolved against the image's own `/etc/passwd` and `/etc/group`, with moby/sys/user's rules
//! and messages (`unable to find user x: no matching entries in passwd file`).
//!
//! The files are opened inside the rootfs as if it were `/`: symlinks (absolute or `..`) are
//! resolved within the rootfs and can never reach the host's files (`openat2` with
//! `RESOLVE_IN_ROOT`, or a component-by-component walk where that syscall is missing).
//! A FIFO, device or directory in their place counts as a missing file.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::error::SpecError;

const MAX_ID: i64 = (1 << 31) - 1;
/// Largest passwd/group file we read; anything bigger is not a real one.
const MAX_FILE: u64 = 64 << 20;

/// Where the process runs as: uid, gid, and supplementary groups (the primary gid first, as
/// Docker lists it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// Resolves `user` (empty means root) and `group_add` in the rootfs, as Docker's `getUser`.
pub fn resolve_user(rootfs: &Path, user: &str, group_add: &[String]) -> Result<ResolvedUser, SpecError> {
    let passwd = read_in_root(rootfs, "etc/passwd")?;
    let group = read_in_root(rootfs, "etc/group")?;
    let exec = exec_user(user, passwd.as_deref(), group.as_deref())?;
    let mut additional_gids = vec![exec.gid];
    additional_gids.extend(&exec.sgids);
    if !group_add.is_empty() {
        additional_gids.extend(additional_groups(group_add, group.as_deref())?);
    }
    Ok(ResolvedUser { uid: exec.uid, gid: exec.gid, additional_gids })
}

struct PasswdEntry {
    name: String,
    uid: i64,
    gid: i64,
}

struct GroupEntry {
    name: String,
    gid: i64,
    members: Vec<String>,
}

/// Go's `strconv.Atoi` with errors ignored, as moby/sys/user parses numeric fields.
fn atoi(s: &str) -> i64 {
    s.parse().unwrap_or(0)
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let field = |i: usize| f.get(i).copied().unwrap_or("");
            PasswdEntry { name: field(0).to_owned(), uid: atoi(field(2)), gid: atoi(field(3)) }
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let field = |i: usize| f.get(i).copied().unwrap_or("");
            GroupEntry {
                name: field(0).to_owned(),
                gid: atoi(field(2)),
                members: match field(3) {
                    "" => Vec::new(),
                    list => list.split(',').map(str::to_owned).collect(),
                },
            }
        })
        .collect()
}

struct ExecUser {
    uid: u32,
    gid: u32,
    sgids: Vec<u32>,
}

fn range_error() -> SpecError {
    SpecError::ResolveUser(format!("uids and gids must be in range 0-{MAX_ID}"))
}

fn in_range(id: i64) -> Result<u32, SpecError> {
    if (0..=MAX_ID).contains(&id) { Ok(id as u32) } else { Err(range_error()) }
}

/// moby/sys/user's `GetExecUser` with zero defaults.
fn exec_user(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<ExecUser, SpecError> {
    let mut parts = spec.split(':');
    let user_arg = parts.next().unwrap_or("");
    let group_arg = parts.next().unwrap_or("");
    let uid_arg = user_arg.parse::<i64>().ok();
    let gid_arg = group_arg.parse::<i64>().ok();

    let (mut uid, mut gid) = (0i64, 0i64);
    let mut matched_name: Option<String> = None;
    let users = passwd.map(parse_passwd).unwrap_or_default();
    let found = users.into_iter().find(|u| match (user_arg, uid_arg) {
        ("", _) => u.uid == 0,
        (_, Some(n)) => u.uid == n,
        (name, None) => u.name == name,
    });
    if let Some(u) = found {
        (uid, gid) = (u.uid, u.gid);
        matched_name = Some(u.name);
    } else if !user_arg.is_empty() {
        let Some(n) = uid_arg else {
            return Err(SpecError::ResolveUser(format!(
                "unable to find user {user_arg}: no matching entries in passwd file"
            )));
        };
        uid = in_range(n)?.into();
    }

    let mut sgids = Vec::new();
    if !group_arg.is_empty() || matched_name.is_some() {
        let groups = group.map(parse_group).unwrap_or_default();
        if !group_arg.is_empty() {
            let found = groups.iter().find(|g| match gid_arg {
                Some(n) => g.gid == n,
                None => g.name == group_arg,
            });
            gid = match (found, gid_arg) {
                (Some(g), _) => g.gid,
                (None, Some(n)) => in_range(n)?.into(),
                (None, None) => {
                    return Err(SpecError::ResolveUser(format!(
                        "unable to find group {group_arg}: no matching entries in group file"
                    )));
                }
            };
        } else if let Some(name) = &matched_name {
            sgids = groups.iter().filter(|g| g.members.iter().any(|m| m == name)).map(|g| g.gid as u32).collect();
        }
    }
    Ok(ExecUser { uid: uid as u32, gid: gid as u32, sgids })
}

/// moby/sys/user's `GetAdditionalGroups`: names or ids; unknown names fail, unknown ids pass.
/// Duplicates collapse; order follows the request (Go's is map order).
fn additional_groups(wanted: &[String], group: Option<&str>) -> Result<Vec<u32>, SpecError> {
    let groups = group.map(parse_group).unwrap_or_default();
    let mut out: Vec<u32> = Vec::new();
    for ag in wanted {
        let found = groups.iter().find(|g| g.name == *ag || g.gid.to_string() == *ag);
        let gid = match found {
            Some(g) => g.gid as u32,
            None => {
                let Ok(n) = ag.parse::<i64>() else {
                    return Err(SpecError::ResolveUser(format!(
                        "Unable to find group {ag}: no matching entries in group file"
                    )));
                };
                in_range(n)?
            }
        };
        if !out.contains(&gid) {
            out.push(gid);
        }
    }
    Ok(out)
}

/// Reads `rel` (e.g. `etc/passwd`) inside `rootfs`, resolving symlinks as if `rootfs` were `/`.
/// `Ok(None)` when it is missing or not a regular file.
pub fn read_in_root(rootfs: &Path, rel: &str) -> Result<Option<String>, SpecError> {
    let shown = Path::new("/").join(rel);
    let file = match open_in_root(rootfs, rel) {
        Ok(Some(fd)) => File::from(fd),
        Ok(None) => return Ok(None),
        Err(source) => {
            return Err(SpecError::ReadRootfsFile { path: shown, source });
        }
    };
    let meta = file.metadata().map_err(|source| SpecError::ReadRootfsFile { path: shown.clone(), source })?;
    if !meta.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE).read_to_end(&mut bytes).map_err(|source| SpecError::ReadRootfsFile { path: shown, source })?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

fn open_in_root(rootfs: &Path, rel: &str) -> std::io::Result<Option<OwnedFd>> {
    let root = rustix::fs::open(rootfs, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let missing = |e: rustix::io::Errno| {
        matches!(e, rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP)
    };
    match rustix::fs::openat2(&root, rel, flags, Mode::empty(), ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS) {
        Ok(fd) => return Ok(Some(fd)),
        Err(e) if missing(e) => return Ok(None),
        Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    // Kernels before 5.6: walk the path ourselves, then refuse a symlink as the last step.
    let Some(resolved) = resolve_in_root(rootfs, Path::new(rel))? else {
        return Ok(None);
    };
    match rustix::fs::openat(&root, &resolved, flags | OFlags::NOFOLLOW, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if missing(e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Creates the working directory inside the rootfs, as Docker does before start (`0755`, owned
/// by root), resolving symlinks within the rootfs. An existing non-directory fails with Docker's
/// `Cannot mkdir: <dir> is not a directory`.
pub fn ensure_working_dir(rootfs: &Path, working_dir: &str) -> Result<(), SpecError> {
    use std::os::unix::fs::DirBuilderExt;
    if working_dir.is_empty() {
        return Ok(());
    }
    let io = |source| SpecError::ReadRootfsFile { path: PathBuf::from(working_dir), source };
    let rel = working_dir.trim_start_matches('/');
    let resolved = resolve_in_root(rootfs, Path::new(rel))
        .map_err(io)?
        .ok_or_else(|| io(std::io::Error::other("too many levels of symbolic links")))?;
    let target = rootfs.join(&resolved);
    match std::fs::metadata(&target) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(SpecError::InvalidConfig(format!("Cannot mkdir: {working_dir} is not a directory")));
        }
        Err(_) => {}
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(&target).map_err(io)
}

/// Resolves `rel` inside `root` one component at a time: `..` stops at the root and a symlink's
/// target is read as relative to the root when absolute. Returns the resolved path relative to
/// `root`, or `None` past 255 symlinks.
pub fn resolve_in_root(root: &Path, rel: &Path) -> std::io::Result<Option<PathBuf>> {
    let mut pending: Vec<PathBuf> = rel.components().rev().map(|c| PathBuf::from(c.as_os_str())).collect();
    let mut current = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        match part.components().next() {
            None | Some(Component::CurDir | Component::RootDir | Component::Prefix(_)) => {}
            Some(Component::ParentDir) => {
                current.pop();
            }
            Some(Component::Normal(_)) => {
                let candidate = current.join(&part);
                match std::fs::symlink_metadata(root.join(&candidate)) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        links += 1;
                        if links > 255 {
                            return Ok(None);
                        }
                        let target = std::fs::read_link(root.join(&candidate))?;
                        if target.is_absolute() {
                            current = PathBuf::new();
                        }
                        pending.extend(target.components().rev().map(|c| PathBuf::from(c.as_os_str())));
                    }
                    _ => current = candidate,
                }
            }
        }
    }
    Ok(Some(current))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        alice:x:1000:1000:Alice:/home/alice:/bin/sh\n\
        bob:x:1001:1001::/home/bob:/bin/sh\n";
    const GROUP: &str = "root:x:0:\n\
        # a comment\n\
        daemon:x:1:\n\
        wheel:x:10:alice,root\n\
        audio:x:29:alice\n\
        alice:x:1000:\n\
        staff:x:50:\n";

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
        fs::write(dir.path().join("etc/group"), GROUP).unwrap();
        dir
    }

    fn user(root: &Path, spec: &str, add: &[&str]) -> Result<ResolvedUser, SpecError> {
        let add: Vec<String> = add.iter().map(|s| s.to_string()).collect();
        resolve_user(root, spec, &add)
    }

    fn ids(u: &ResolvedUser) -> (u32, u32, Vec<u32>) {
        (u.uid, u.gid, u.additional_gids.clone())
    }

    #[test]
    fn names_ids_and_groups() {
        let r = rootfs();
        let p = r.path();
        assert_eq!(ids(&user(p, "", &[]).unwrap()), (0, 0, vec![0, 10]));
        assert_eq!(ids(&user(p, "alice", &[]).unwrap()), (1000, 1000, vec![1000, 10, 29]));
        assert_eq!(ids(&user(p, "1000", &[]).unwrap()), (1000, 1000, vec![1000, 10, 29]));
        // An explicit group replaces the primary gid and drops the supplementary ones.
        assert_eq!(ids(&user(p, "alice:staff", &[]).unwrap()), (1000, 50, vec![50]));
        assert_eq!(ids(&user(p, "1000:50", &[]).unwrap()), (1000, 50, vec![50]));
        // Unknown numeric ids pass as they are.
        assert_eq!(ids(&user(p, "4242:4343", &[]).unwrap()), (4242, 4343, vec![4343]));
        assert_eq!(ids(&user(p, "4242", &[]).unwrap()), (4242, 0, vec![0]));
        assert_eq!(
            ids(&user(p, "bob", &["audio", "staff", "777", "audio"]).unwrap()),
            (1001, 1001, vec![1001, 29, 50, 777])
        );
    }

    #[test]
    fn missing_entries_use_dockers_messages() {
        let r = rootfs();
        let p = r.path();
        let msg = |spec: &str, add: &[&str]| user(p, spec, add).unwrap_err().to_string();
        assert_eq!(msg("x", &[]), "unable to find user x: no matching entries in passwd file");
        assert_eq!(msg("alice:nogroup", &[]), "unable to find group nogroup: no matching entries in group file");
        assert_eq!(msg("alice", &["nogroup"]), "Unable to find group nogroup: no matching entries in group file");
        assert_eq!(msg("-5", &[]), "uids and gids must be in range 0-2147483647");
        assert_eq!(msg("3000000000", &[]), "uids and gids must be in range 0-2147483647");
        let e = user(p, "x", &[]).unwrap_err();
        assert_eq!(wharf_types::Classify::kind(&e), wharf_types::ErrorKind::InvalidArgument);
    }

    #[test]
    fn no_passwd_file_means_numeric_only() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ids(&user(dir.path(), "", &[]).unwrap()), (0, 0, vec![0]));
        assert_eq!(ids(&user(dir.path(), "12:34", &[]).unwrap()), (12, 34, vec![34]));
        assert_eq!(
            user(dir.path(), "nobody", &[]).unwrap_err().to_string(),
            "unable to find user nobody: no matching entries in passwd file"
        );
    }

    #[test]
    fn symlinks_cannot_escape_the_rootfs() {
        // A host file the image must never read.
        let host = tempfile::tempdir().unwrap();
        let host_passwd = host.path().join("passwd");
        fs::write(&host_passwd, "evil:x:666:666::/:/bin/sh\n").unwrap();

        let r = tempfile::tempdir().unwrap();
        fs::create_dir(r.path().join("etc")).unwrap();
        // Absolute symlink: resolved inside the rootfs, where the target does not exist.
        symlink(&host_passwd, r.path().join("etc/passwd")).unwrap();
        assert_eq!(
            user(r.path(), "evil", &[]).unwrap_err().to_string(),
            "unable to find user evil: no matching entries in passwd file"
        );
        // Relative `..` chains stop at the rootfs too.
        fs::remove_file(r.path().join("etc/passwd")).unwrap();
        let up = "../".repeat(40) + host_passwd.strip_prefix("/").unwrap().to_str().unwrap();
        symlink(&up, r.path().join("etc/passwd")).unwrap();
        assert!(user(r.path(), "evil", &[]).is_err());
        // A symlinked /etc inside the rootfs is followed within it.
        fs::remove_file(r.path().join("etc/passwd")).unwrap();
        fs::remove_dir(r.path().join("etc")).unwrap();
        fs::create_dir_all(r.path().join("real/etc")).unwrap();
        fs::write(r.path().join("real/etc/passwd"), PASSWD).unwrap();
        symlink("/real/etc", r.path().join("etc")).unwrap();
        assert_eq!(user(r.path(), "alice", &[]).unwrap().uid, 1000);
    }

    #[test]
    fn fifo_in_place_of_passwd_is_ignored() {
        let r = tempfile::tempdir().unwrap();
        fs::create_dir(r.path().join("etc")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            r.path().join("etc/passwd"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert_eq!(user(r.path(), "", &[]).unwrap().uid, 0);
    }

    #[test]
    fn working_dir_is_created_inside_the_rootfs() {
        let r = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), r.path().join("escape")).unwrap();
        ensure_working_dir(r.path(), "/escape/app").unwrap();
        assert!(r.path().join(outside.path().strip_prefix("/").unwrap()).join("app").is_dir());
        assert!(!outside.path().join("app").exists());
        ensure_working_dir(r.path(), "/srv/app").unwrap();
        assert!(r.path().join("srv/app").is_dir());
        fs::write(r.path().join("file"), "").unwrap();
        assert_eq!(
            ensure_working_dir(r.path(), "/file").unwrap_err().to_string(),
            "Cannot mkdir: /file is not a directory"
        );
    }

    #[test]
    fn manual_resolution_matches_in_root_semantics() {
        let r = tempfile::tempdir().unwrap();
        fs::create_dir_all(r.path().join("a/b")).unwrap();
        symlink("/a/b", r.path().join("link")).unwrap();
        symlink("../../../..", r.path().join("a/up")).unwrap();
        let res = |p: &str| resolve_in_root(r.path(), Path::new(p)).unwrap().unwrap();
        assert_eq!(res("link/x"), PathBuf::from("a/b/x"));
        assert_eq!(res("a/up/etc/passwd"), PathBuf::from("etc/passwd"));
        assert_eq!(res("../../etc"), PathBuf::from("etc"));
        symlink("loop", r.path().join("loop")).unwrap();
        assert_eq!(resolve_in_root(r.path(), Path::new("loop")).unwrap(), None);
    }
}
