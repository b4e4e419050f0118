//! The one conformance suite of the `Snapshotter` trait, run against every implementation.
//! Each test function is generic over the snapshotter; `suite!` instantiates them per
//! implementation. Tests that mount need root (and overlay for the overlay snapshotter): they
//! say so and skip the mounting part otherwise.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wharf_snapshot::{
    DiffSource, Kind, NativeSnapshotter, OverlaySnapshotter, SnapshotError, Snapshotter, WhiteoutStyle, mount_all,
    overlay_supported, unmount,
};
use wharf_types::{Classify, ErrorKind};

/// Unmounts its target when dropped, so a failing assertion leaves no mount behind.
struct MountGuard(PathBuf);
impl Drop for MountGuard {
    fn drop(&mut self) {
        unmount(&self.0).expect("unmount in test cleanup");
    }
}

fn can_mount(needs_overlay: bool) -> Result<(), &'static str> {
    if !rustix::process::geteuid().is_root() {
        return Err("needs root");
    }
    if needs_overlay && !overlay_supported() {
        return Err("needs overlayfs");
    }
    Ok(())
}

fn kind_of(r: Result<impl Sized, SnapshotError>) -> ErrorKind {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.kind(),
    }
}

fn write(sn: &dyn Snapshotter, key: &str, name: &str, data: &str) {
    fs::write(sn.writable_dir(key).unwrap().join(name), data).unwrap();
}

fn lifecycle<S: Snapshotter>(sn: &S, _root: &Path) {
    let mounts = sn.prepare("a", None).unwrap();
    assert_eq!(mounts.len(), 1);
    assert!(!mounts[0].is_readonly());
    assert_eq!(sn.mounts("a").unwrap(), mounts);
    write(sn, "a", "one", "1");
    let info = sn.stat("a").unwrap();
    assert_eq!((info.kind, info.parent), (Kind::Active, None));
    sn.commit("A", "a").unwrap();
    assert_eq!(kind_of(sn.stat("a")), ErrorKind::NotFound);
    assert_eq!(sn.stat("A").unwrap().kind, Kind::Committed);

    sn.prepare("b", Some("A")).unwrap();
    assert_eq!(sn.stat("b").unwrap().parent.as_deref(), Some("A"));
    write(sn, "b", "two", "2");
    sn.commit("B", "b").unwrap();

    let view = sn.view("v", Some("B")).unwrap();
    assert!(view.iter().all(|m| m.is_readonly()), "{view:?}");
    assert_eq!(sn.stat("v").unwrap().kind, Kind::View);
    let names: Vec<_> = sn.list().unwrap().into_iter().map(|i| (i.name, i.kind)).collect();
    assert_eq!(names, vec![("A".into(), Kind::Committed), ("B".into(), Kind::Committed), ("v".into(), Kind::View)]);

    sn.remove("v").unwrap();
    sn.remove("B").unwrap();
    sn.remove("A").unwrap();
    assert!(sn.list().unwrap().is_empty());
}

fn namespace_and_kinds<S: Snapshotter>(sn: &S, _root: &Path) {
    sn.prepare("a", None).unwrap();
    assert_eq!(kind_of(sn.prepare("a", None)), ErrorKind::Conflict);
    assert_eq!(kind_of(sn.view("a", None)), ErrorKind::Conflict);
    assert_eq!(kind_of(sn.prepare("x", Some("a"))), ErrorKind::InvalidArgument, "active parent");
    assert_eq!(kind_of(sn.prepare("x", Some("nope"))), ErrorKind::NotFound);
    assert_eq!(kind_of(sn.prepare("", None)), ErrorKind::InvalidArgument);
    sn.commit("A", "a").unwrap();
    assert_eq!(kind_of(sn.mounts("A")), ErrorKind::InvalidArgument, "committed has no mounts");
    assert_eq!(kind_of(sn.writable_dir("A")), ErrorKind::InvalidArgument);
    assert_eq!(kind_of(sn.commit("B", "A")), ErrorKind::InvalidArgument, "commit of committed");
    sn.view("v", Some("A")).unwrap();
    assert_eq!(kind_of(sn.commit("V", "v")), ErrorKind::InvalidArgument, "commit of a view");
    assert_eq!(kind_of(sn.writable_dir("v")), ErrorKind::InvalidArgument);
    sn.prepare("c", Some("A")).unwrap();
    assert_eq!(kind_of(sn.commit("A", "c")), ErrorKind::Conflict, "name taken");
    assert_eq!(kind_of(sn.commit("v", "c")), ErrorKind::Conflict, "name taken by a key");
    assert_eq!(kind_of(sn.mounts("missing")), ErrorKind::NotFound);
    assert_eq!(kind_of(sn.remove("missing")), ErrorKind::NotFound);
    // Keys are opaque strings; slashes and colons do not become paths.
    sn.prepare("sha256:ab/../../etc", None).unwrap();
    sn.remove("sha256:ab/../../etc").unwrap();
}

fn remove_refuses_parents<S: Snapshotter>(sn: &S, _root: &Path) {
    sn.prepare("a", None).unwrap();
    sn.commit("A", "a").unwrap();
    sn.prepare("b", Some("A")).unwrap();
    sn.view("v", Some("A")).unwrap();
    let err = sn.remove("A").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("b, v"), "{err}");
    sn.remove("b").unwrap();
    sn.remove("v").unwrap();
    sn.remove("A").unwrap();
}

fn usage_and_diff_source<S: Snapshotter>(sn: &S, _root: &Path) {
    sn.prepare("a", None).unwrap();
    let dir = sn.writable_dir("a").unwrap();
    fs::write(dir.join("big"), vec![7u8; 1 << 20]).unwrap();
    fs::create_dir(dir.join("d")).unwrap();
    fs::hard_link(dir.join("big"), dir.join("d/link")).unwrap();
    sn.commit("A", "a").unwrap();
    let u = sn.usage("A").unwrap();
    assert!(u.size >= 1 << 20 && u.size < 2 << 20, "hard link counted once: {u:?}");
    assert_eq!(u.inodes, 3, "root, big (= d/link), d");
    sn.prepare("b", Some("A")).unwrap();
    match (sn.whiteouts(), sn.diff_source("b").unwrap()) {
        (WhiteoutStyle::Overlay, DiffSource::Overlay { upper, lowers }) => {
            assert_eq!(upper, sn.writable_dir("b").unwrap());
            assert_eq!(lowers, vec![dir.clone()]);
            assert!(fs::read_dir(&upper).unwrap().next().is_none(), "an overlay upper starts empty");
        }
        (WhiteoutStyle::Delete, DiffSource::Trees { lower, upper }) => {
            assert_eq!(lower, Some(dir.clone()));
            assert_eq!(upper, sn.writable_dir("b").unwrap());
            assert_eq!(fs::read(upper.join("d/link")).unwrap().len(), 1 << 20, "a native snapshot is a full copy");
        }
        other => panic!("whiteout style and diff source disagree: {other:?}"),
    }
}

fn mounted_content<S: Snapshotter>(sn: &S, root: &Path, needs_overlay: bool) {
    if let Err(why) = can_mount(needs_overlay) {
        eprintln!("skipping mounted_content: {why}");
        return;
    }
    sn.prepare("a", None).unwrap();
    write(sn, "a", "one", "1");
    write(sn, "a", "gone", "x");
    sn.commit("A", "a").unwrap();
    sn.prepare("b", Some("A")).unwrap();
    write(sn, "b", "two", "2");
    sn.commit("B", "b").unwrap();

    let target = root.join("mnt");
    fs::create_dir(&target).unwrap();
    let mounts = sn.prepare("c", Some("B")).unwrap();
    {
        mount_all(&mounts, &target).unwrap();
        let _guard = MountGuard(target.clone());
        assert_eq!(fs::read_to_string(target.join("one")).unwrap(), "1");
        assert_eq!(fs::read_to_string(target.join("two")).unwrap(), "2");
        fs::write(target.join("three"), "3").unwrap();
        fs::write(target.join("one"), "1b").unwrap();
        fs::remove_file(target.join("gone")).unwrap();
    }
    assert!(!target.join("one").exists(), "unmounted");
    sn.commit("C", "c").unwrap();
    for (key, parent) in [("v1", "A"), ("v3", "C")] {
        let mounts = sn.view(key, Some(parent)).unwrap();
        mount_all(&mounts, &target).unwrap();
        let _guard = MountGuard(target.clone());
        assert!(fs::write(target.join("new"), "x").is_err(), "a view is read-only");
        if key == "v3" {
            assert_eq!(fs::read_to_string(target.join("one")).unwrap(), "1b");
            assert_eq!(fs::read_to_string(target.join("three")).unwrap(), "3");
            assert!(!target.join("gone").exists());
        } else {
            assert_eq!(fs::read_to_string(target.join("one")).unwrap(), "1");
            assert!(target.join("gone").exists());
        }
    }
    // The parent layers were not changed by the child's writes.
    sn.prepare("d", Some("A")).unwrap();
    let mounts = sn.mounts("d").unwrap();
    mount_all(&mounts, &target).unwrap();
    let _guard = MountGuard(target.clone());
    assert_eq!(fs::read_to_string(target.join("one")).unwrap(), "1");
}

/// Parallel unpack with rebase: layers prepared without parents, committed onto each other.
fn rebase<S: Snapshotter>(sn: &S, root: &Path) {
    sn.prepare("l1", None).unwrap();
    sn.prepare("l2", None).unwrap();
    write(sn, "l1", "one", "1");
    write(sn, "l2", "two", "2");
    sn.commit("L1", "l1").unwrap();
    if !sn.can_rebase() {
        assert_eq!(kind_of(sn.commit_rebased("L2", "l2", Some("L1"))), ErrorKind::NotImplemented);
        return;
    }
    assert_eq!(kind_of(sn.commit_rebased("L2", "l2", Some("missing"))), ErrorKind::NotFound);
    sn.commit_rebased("L2", "l2", Some("L1")).unwrap();
    assert_eq!(sn.stat("L2").unwrap().parent.as_deref(), Some("L1"));
    assert_eq!(kind_of(sn.remove("L1")), ErrorKind::Conflict, "L1 is now a parent");
    if can_mount(true).is_err() {
        return;
    }
    let target = root.join("mnt");
    fs::create_dir(&target).unwrap();
    mount_all(&sn.view("v", Some("L2")).unwrap(), &target).unwrap();
    let _guard = MountGuard(target.clone());
    assert_eq!(fs::read_to_string(target.join("one")).unwrap(), "1");
    assert_eq!(fs::read_to_string(target.join("two")).unwrap(), "2");
}

fn concurrent_prepares<S: Snapshotter + 'static>(sn: S, _root: &Path) {
    sn.prepare("base", None).unwrap();
    sn.commit("BASE", "base").unwrap();
    let sn = Arc::new(sn);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let sn = Arc::clone(&sn);
            std::thread::spawn(move || {
                let own = sn.prepare(&format!("k{i}"), Some("BASE")).map(|_| ());
                let shared = sn.prepare("same", Some("BASE")).map(|_| ());
                (own, shared)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results.iter().all(|(own, _)| own.is_ok()));
    assert_eq!(results.iter().filter(|(_, shared)| shared.is_ok()).count(), 1, "one winner per key");
    assert_eq!(sn.list().unwrap().len(), 10);
}

/// A crash leaves temp dirs and files; reopening sweeps them and rolls half-done steps forward
/// or back.
fn crash_recovery<S: Snapshotter>(open: fn(&Path) -> Result<S, SnapshotError>, root: &Path) {
    let snaps = root.join("snapshots");
    {
        let sn = open(root).unwrap();
        sn.prepare("a", None).unwrap();
        write(&sn, "a", "f", "data");
        sn.commit("A", "a").unwrap();
        sn.prepare("b", Some("A")).unwrap();
        assert_eq!(kind_of(open(root)), ErrorKind::Conflict, "a second open of the same root is refused");
    }
    let ids: Vec<String> =
        fs::read_dir(&snaps).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    let (a_id, b_id) = (ids.iter().min().unwrap().clone(), ids.iter().max().unwrap().clone());
    // A create that committed its metadata but not its rename; a remove that renamed but did not
    // commit; leftovers of creates and removes that never committed; a stray metadata temp file.
    fs::rename(snaps.join(&a_id), snaps.join(format!("new-{a_id}"))).unwrap();
    fs::rename(snaps.join(&b_id), snaps.join(format!("del-{b_id}"))).unwrap();
    for junk in ["new-900/fs/x", "del-901/fs/y", "902/fs", "new-garbage"] {
        fs::create_dir_all(snaps.join(junk)).unwrap();
    }
    fs::write(root.join("metadata.json.tmp-123-abc"), "{").unwrap();

    let sn = open(root).unwrap();
    let names: Vec<_> = sn.list().unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, vec!["A", "b"]);
    let mut left: Vec<String> =
        fs::read_dir(&snaps).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    let mut want = vec![a_id, b_id];
    want.sort();
    assert_eq!(left, want, "temp dirs swept, renames rolled forward/back");
    assert!(!root.join("metadata.json.tmp-123-abc").exists());
    assert_eq!(
        fs::read_to_string(
            sn.writable_dir("b").unwrap().parent().unwrap().parent().unwrap().join(&left[0]).join("fs/f")
        )
        .unwrap(),
        "data"
    );
    // New ids never reuse old ones.
    sn.prepare("c", None).unwrap();
    assert_eq!(sn.list().unwrap().len(), 3);
}

fn persists_across_reopen<S: Snapshotter>(open: fn(&Path) -> Result<S, SnapshotError>, root: &Path) {
    let before = {
        let sn = open(root).unwrap();
        sn.prepare("a", None).unwrap();
        sn.commit("A", "a").unwrap();
        sn.view("v", Some("A")).unwrap();
        sn.list().unwrap()
    };
    let sn = open(root).unwrap();
    assert_eq!(sn.list().unwrap(), before);
    drop(sn);
    // A lost metadata file must not make every snapshot look orphaned.
    fs::rename(root.join("metadata.json"), root.join("saved.json")).unwrap();
    assert!(open(root).is_err(), "refuses to open (and wipe) without metadata");
    fs::rename(root.join("saved.json"), root.join("metadata.json")).unwrap();
    assert_eq!(open(root).unwrap().list().unwrap(), before);
}

macro_rules! suite {
    ($module:ident, $ty:ty, $needs_overlay:expr) => {
        mod $module {
            use super::*;

            fn open(root: &Path) -> Result<$ty, SnapshotError> {
                <$ty>::open(root)
            }

            fn run(test: impl FnOnce($ty, &Path)) {
                if $needs_overlay && !overlay_supported() {
                    eprintln!("skipping: needs overlayfs");
                    return;
                }
                let tmp = tempfile::tempdir().unwrap();
                let root = tmp.path().join("root");
                test(open(&root).unwrap(), tmp.path());
            }

            #[test]
            fn lifecycle() {
                run(|sn, root| super::lifecycle(&sn, root));
            }
            #[test]
            fn namespace_and_kinds() {
                run(|sn, root| super::namespace_and_kinds(&sn, root));
            }
            #[test]
            fn remove_refuses_parents() {
                run(|sn, root| super::remove_refuses_parents(&sn, root));
            }
            #[test]
            fn usage_and_diff_source() {
                run(|sn, root| super::usage_and_diff_source(&sn, root));
            }
            #[test]
            fn mounted_content() {
                run(|sn, root| super::mounted_content(&sn, root, $needs_overlay));
            }
            #[test]
            fn rebase() {
                run(|sn, root| super::rebase(&sn, root));
            }
            #[test]
            fn concurrent_prepares() {
                run(|sn, root| super::concurrent_prepares(sn, root));
            }
            #[test]
            fn crash_recovery() {
                let tmp = tempfile::tempdir().unwrap();
                super::crash_recovery(open, tmp.path());
            }
            #[test]
            fn persists_across_reopen() {
                let tmp = tempfile::tempdir().unwrap();
                super::persists_across_reopen(open, tmp.path());
            }
        }
    };
}

suite!(overlay, OverlaySnapshotter, true);
suite!(native, NativeSnapshotter, false);
