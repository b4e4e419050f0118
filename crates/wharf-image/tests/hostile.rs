//! The hostile-tar corpus: layers crafted to write outside the destination. For every case,
//! under both path resolvers (kernel `openat2(RESOLVE_IN_ROOT)` and the userspace walk), the
//! test asserts that nothing outside the destination changed, and that the case ends as the
//! unpack module documents it:
//!
//! | attack                                              | outcome                                   |
//! |-----------------------------------------------------|-------------------------------------------|
//! | `..` climbing above the root (name, PAX, GNU long)  | rejected: `PathEscapes`                   |
//! | absolute name `/x`                                  | neutralised: written at `<dest>/x`        |
//! | symlink `a -> /` or `a -> ../../..`, then `a/x`     | neutralised: `<dest>/x`                   |
//! | symlink to a host path, then write through it       | neutralised: resolved inside `<dest>`     |
//! | file entry over a symlink to a host file            | neutralised: the symlink is replaced      |
//! | hard link `../x`                                    | rejected: `PathEscapes`                   |
//! | hard link to an absolute or symlinked host path     | resolved inside `<dest>` (fails: absent)  |
//! | hard link to a symlink pointing out                 | links the symlink itself                  |
//! | hard link to a directory                            | rejected: `InvalidEntry`                  |
//! | symlink loop                                        | fails (ELOOP), nothing written            |
//! | whiteout `../.wh.x`                                 | rejected: `PathEscapes`                   |
//! | whiteout / opaque dir through a symlinked parent    | resolved inside `<dest>`: host untouched  |
//! | device node in rootless mode                        | neutralised: skipped and reported         |

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use tar::EntryType;
use wharf_image::layer::{UnpackError, UnpackOptions, UnpackResult, unpack};
use wharf_snapshot::WhiteoutStyle;

enum Expect {
    Ok(fn(&Path, &Path, &UnpackResult)),
    Escapes,
    Invalid,
    /// Fails while extracting (the path does not exist inside the root, a loop, …).
    Fails,
    /// Either outcome is fine; only containment is checked.
    Contained,
}

struct Case {
    name: &'static str,
    tar: Vec<u8>,
    style: WhiteoutStyle,
    rootless: bool,
    needs_root: bool,
    expect: Expect,
}

fn corpus(outside: &Path) -> Vec<Case> {
    let out = outside.display().to_string();
    let secret = format!("{out}/secret");
    let ov = WhiteoutStyle::Overlay;
    let del = WhiteoutStyle::Delete;
    let case = |name, tar, expect| Case { name, tar, style: ov, rootless: false, needs_root: false, expect };
    let mut v = vec![
        case("dotdot file", Tar::new().file("../escape", b"x").finish(), Expect::Escapes),
        case("dotdot in the middle", Tar::new().file("a/../../escape", b"x").finish(), Expect::Escapes),
        case("dotdot to outside", Tar::new().file("../outside/secret", b"pwned").finish(), Expect::Escapes),
        case(
            "dotdot in a GNU long name",
            Tar::new()
                .gnu_long_file(format!("{}/../../outside/secret", "long".repeat(40)).as_bytes(), b"pwned")
                .finish(),
            Expect::Escapes,
        ),
        case(
            "dotdot in a PAX path",
            Tar::new().pax(&[("path", b"../../outside/secret")]).file("innocent", b"pwned").finish(),
            Expect::Escapes,
        ),
        case(
            "absolute name",
            Tar::new().file(&secret.to_string(), b"pwned").finish(),
            Expect::Ok(|dest, outside, _| {
                let inside = dest.join(outside.strip_prefix("/").unwrap()).join("secret");
                assert_eq!(fs::read(inside).unwrap(), b"pwned");
            }),
        ),
        case(
            "symlink to / then write through",
            Tar::new().symlink("root", "/").file("root/escape", b"x").finish(),
            Expect::Ok(|dest, _, _| assert_eq!(fs::read(dest.join("escape")).unwrap(), b"x")),
        ),
        case(
            "relative symlink climbing out then write through",
            Tar::new().symlink("up", "../../../../..").file("up/escape", b"x").finish(),
            Expect::Ok(|dest, _, _| assert_eq!(fs::read(dest.join("escape")).unwrap(), b"x")),
        ),
        case(
            "relative symlink climbing out then mkdir -p through it",
            Tar::new().symlink("up", "../..").file("up/newdir/deeper/f", b"x").finish(),
            Expect::Ok(|dest, _, _| assert_eq!(fs::read(dest.join("newdir/deeper/f")).unwrap(), b"x")),
        ),
        case(
            "symlink chain out then write",
            Tar::new().symlink("x", "y/../../../..").dir("y/", 0o755, 1).file("x/esc", b"x").finish(),
            Expect::Ok(|dest, _, _| assert_eq!(fs::read(dest.join("esc")).unwrap(), b"x")),
        ),
        case(
            "symlink to a host dir then write through",
            Tar::new().symlink("a", &out).file("a/secret", b"pwned").finish(),
            Expect::Fails,
        ),
        case(
            "symlink to /etc then write passwd",
            Tar::new().symlink("etc", "/etc").file("etc/passwd", b"pwned").finish(),
            Expect::Fails,
        ),
        case(
            "file over a symlink to a host file",
            Tar::new().symlink("s", &secret).file("s", b"pwned").finish(),
            Expect::Ok(|dest, _, _| {
                let m = fs::symlink_metadata(dest.join("s")).unwrap();
                assert!(m.is_file(), "the symlink was replaced, not written through");
            }),
        ),
        case(
            "dir over a symlink to a host dir",
            Tar::new().symlink("d", &out).dir("d/", 0o777, 1).file("d/secret", b"pwned").finish(),
            Expect::Ok(|dest, _, _| assert!(fs::symlink_metadata(dest.join("d")).unwrap().is_dir())),
        ),
        case("hard link with dotdot", Tar::new().hardlink("h", "../outside/secret").finish(), Expect::Escapes),
        case("hard link to an absolute host path", Tar::new().hardlink("h", &secret).finish(), Expect::Fails),
        case(
            "hard link through a symlink to /",
            Tar::new().symlink("link", "/").hardlink("h", &format!("link{secret}")).finish(),
            Expect::Fails,
        ),
        case(
            "hard link to a symlink pointing out",
            Tar::new().symlink("s", &secret).hardlink("h", "s").finish(),
            Expect::Ok(|dest, _, _| {
                assert!(fs::symlink_metadata(dest.join("h")).unwrap().file_type().is_symlink());
            }),
        ),
        case(
            "write through a hard-linked symlink",
            Tar::new().symlink("s", &secret).hardlink("h", "s").file("h", b"pwned").finish(),
            Expect::Ok(|dest, _, _| assert_eq!(fs::read(dest.join("h")).unwrap(), b"pwned")),
        ),
        case(
            "hard link to a directory",
            Tar::new().dir("dd/", 0o755, 1).hardlink("hd", "dd").finish(),
            Expect::Invalid,
        ),
        case(
            "symlink loop",
            Tar::new().symlink("l1", "l2").symlink("l2", "l1").file("l1/x", b"x").finish(),
            Expect::Fails,
        ),
        case("whiteout with dotdot", Tar::new().file("../.wh.secret", b"").finish(), Expect::Escapes),
        case("non-directory entry naming the root", Tar::new().file("./", b"x").finish(), Expect::Invalid),
        case(
            "root directory entry",
            Tar::new().dir("./", 0o751, 1).finish(),
            Expect::Ok(|dest, _, _| assert_eq!(fs::metadata(dest).unwrap().mode() & 0o7777, 0o751)),
        ),
    ];
    v.push(Case {
        name: "delete-style whiteout through a symlinked parent",
        tar: Tar::new().symlink("p", &out).file("p/.wh.victim", b"").finish(),
        style: del,
        rootless: false,
        needs_root: false,
        expect: Expect::Contained,
    });
    v.push(Case {
        name: "delete-style opaque through a symlinked parent",
        tar: Tar::new().symlink("p", &out).file("p/.wh..wh..opq", b"").finish(),
        style: del,
        rootless: false,
        needs_root: false,
        expect: Expect::Contained,
    });
    v.push(Case {
        name: "overlay whiteout through a symlinked parent",
        tar: Tar::new().symlink("p", &out).file("p/.wh.victim", b"").finish(),
        style: ov,
        rootless: false,
        needs_root: true,
        expect: Expect::Contained,
    });
    v.push(Case {
        name: "overlay opaque through a symlinked parent",
        tar: Tar::new().symlink("p", &out).file("p/.wh..wh..opq", b"").finish(),
        style: ov,
        rootless: false,
        needs_root: true,
        expect: Expect::Contained,
    });
    v.push(Case {
        name: "device node in rootless mode",
        tar: Tar::new().device("dev/sda", EntryType::Block, 8, 0).finish(),
        style: ov,
        rootless: true,
        needs_root: false,
        expect: Expect::Ok(|dest, _, r| {
            assert_eq!(r.skipped.len(), 1);
            assert!(!dest.join("dev/sda").exists());
        }),
    });
    v
}

fn run_corpus(force_userspace_resolve: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir_all(outside.join("dir")).unwrap();
    fs::write(outside.join("secret"), "secret").unwrap();
    fs::write(outside.join("victim"), "victim").unwrap();
    let outside_before = tree(&outside);
    let etc_passwd = fs::metadata("/etc/passwd").ok().map(|m| (m.len(), m.mtime(), m.ino()));
    for (i, case) in corpus(&outside).into_iter().enumerate() {
        if case.needs_root && !is_root() {
            eprintln!("skipping hostile case {:?}: needs root", case.name);
            continue;
        }
        let dest = tmp.path().join(format!("dest{i}"));
        fs::create_dir(&dest).unwrap();
        let opts = UnpackOptions {
            whiteouts: case.style,
            rootless: case.rootless,
            force_userspace_resolve,
            ..Default::default()
        };
        let result = unpack(&case.tar[..], &dest, &opts);
        let name = case.name;
        match (&case.expect, &result) {
            (Expect::Ok(check), Ok(r)) => check(&dest, &outside, r),
            (Expect::Escapes, Err(UnpackError::PathEscapes { .. })) => {}
            (Expect::Invalid, Err(UnpackError::InvalidEntry { .. })) => {}
            (Expect::Fails, Err(UnpackError::Extract { .. })) => {}
            (Expect::Contained, _) => {}
            (_, other) => panic!("case {name:?} (userspace resolver: {force_userspace_resolve}): unexpected {other:?}"),
        }
        assert_eq!(tree(&outside), outside_before, "case {name:?} changed the outside tree");
        assert_eq!(fs::metadata(outside.join("secret")).unwrap().nlink(), 1, "case {name:?} linked a host file");
        let mut top = names(tmp.path());
        top.retain(|n| !n.starts_with("dest"));
        assert_eq!(top, vec!["outside"], "case {name:?} wrote next to the destination");
        assert_eq!(
            fs::metadata("/etc/passwd").ok().map(|m| (m.len(), m.mtime(), m.ino())),
            etc_passwd,
            "case {name:?}"
        );
    }
}

#[test]
fn hostile_corpus_kernel_resolver() {
    run_corpus(false);
}

#[test]
fn hostile_corpus_userspace_resolver() {
    run_corpus(true);
}

/// A whiteout of a symlink (from a lower layer) that points at a host file removes the
/// symlink, never its target; an opaque directory over a symlinked host dir neither.
#[test]
fn delete_style_whiteouts_never_follow_symlinks() {
    for force_userspace_resolve in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let (dest, outside) = (tmp.path().join("dest"), tmp.path().join("outside"));
        fs::create_dir_all(&dest).unwrap();
        fs::create_dir_all(outside.join("dir")).unwrap();
        fs::write(outside.join("victim"), "v").unwrap();
        fs::write(outside.join("dir/child"), "c").unwrap();
        std::os::unix::fs::symlink(outside.join("victim"), dest.join("v")).unwrap();
        std::os::unix::fs::symlink(outside.join("dir"), dest.join("d")).unwrap();
        let layer = Tar::new().file(".wh.v", b"").file("d/.wh..wh..opq", b"").file(".wh.d", b"").finish();
        let opts = UnpackOptions { whiteouts: WhiteoutStyle::Delete, force_userspace_resolve, ..Default::default() };
        let _ = unpack(&layer[..], &dest, &opts);
        assert!(fs::symlink_metadata(dest.join("v")).is_err(), "the symlink itself is whited out");
        assert_eq!(fs::read(outside.join("victim")).unwrap(), b"v");
        assert_eq!(fs::read(outside.join("dir/child")).unwrap(), b"c");
    }
}
