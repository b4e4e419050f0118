//! End to end through both snapshotters: unpack a three-layer image (with whiteouts and an
//! opaque directory) into snapshots, mount the result, change it as a container would, and
//! turn the changes back into a layer that reproduces them. Needs root (mounts; overlay also
//! needs overlayfs); skips with the reason otherwise.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use wharf_image::layer::{ChangeKind, Compression, LayerWriter, UnpackOptions, changes, diff, unpack};
use wharf_snapshot::{NativeSnapshotter, OverlaySnapshotter, Snapshotter, mount_all, overlay_supported, unmount};

struct MountGuard(PathBuf);
impl Drop for MountGuard {
    fn drop(&mut self) {
        unmount(&self.0).expect("unmount in test cleanup");
    }
}

fn layers() -> Vec<Vec<u8>> {
    vec![
        gzip(
            &Tar::new()
                .file("a", b"a")
                .file("d/x", b"x")
                .file("d/y", b"y")
                .file("o/p", b"p")
                .file("o/q/r", b"r")
                .finish(),
        ),
        zstd(
            &Tar::new()
                .file(".wh.a", b"")
                .file("d/.wh.x", b"")
                .dir("o/", 0o755, 1)
                .file("o/.wh..wh..opq", b"")
                .file("o/new", b"new")
                .finish(),
        ),
        Tar::new().file("b", b"b").finish(),
    ]
}

fn build(sn: &dyn Snapshotter) -> String {
    let mut parent: Option<String> = None;
    for (i, blob) in layers().iter().enumerate() {
        let key = format!("extract-{i}");
        sn.prepare(&key, parent.as_deref()).unwrap();
        let opts = UnpackOptions { whiteouts: sn.whiteouts(), ..Default::default() };
        let r = unpack(&blob[..], &sn.writable_dir(&key).unwrap(), &opts).unwrap();
        let name = format!("layer-{i}-{}", r.diff_id.short());
        sn.commit(&name, &key).unwrap();
        parent = Some(name);
    }
    parent.unwrap()
}

fn check_image(root: &Path) {
    assert_eq!(names(root), vec!["b", "d", "o"]);
    assert_eq!(names(&root.join("d")), vec!["y"]);
    assert_eq!(names(&root.join("o")), vec!["new"]);
}

fn run(sn: &dyn Snapshotter, tmp: &Path) {
    let top = build(sn);
    let target = tmp.join("rootfs");
    fs::create_dir(&target).unwrap();
    {
        mount_all(&sn.view("image-view", Some(&top)).unwrap(), &target).unwrap();
        let _g = MountGuard(target.clone());
        check_image(&target);
    }
    // A container: delete, modify, add.
    {
        mount_all(&sn.prepare("container", Some(&top)).unwrap(), &target).unwrap();
        let _g = MountGuard(target.clone());
        fs::remove_file(target.join("b")).unwrap();
        fs::write(target.join("d/y"), "y2").unwrap();
        fs::create_dir(target.join("c")).unwrap();
        fs::write(target.join("c/file"), "c").unwrap();
    }
    let source = sn.diff_source("container").unwrap();
    let got: Vec<(String, ChangeKind)> = changes(&source).unwrap().into_iter().map(|c| (c.path, c.kind)).collect();
    let want = [
        ("/b", ChangeKind::Deleted),
        ("/c", ChangeKind::Added),
        ("/c/file", ChangeKind::Added),
        ("/d", ChangeKind::Modified),
        ("/d/y", ChangeKind::Modified),
    ];
    assert_eq!(got, want.iter().map(|(p, k)| (p.to_string(), *k)).collect::<Vec<_>>());
    // `docker commit`: the changes as a layer, applied on the image in a new snapshot.
    let mut w = LayerWriter::new(Vec::new(), Compression::Gzip, None).unwrap();
    diff(&source, &mut w).unwrap();
    let layer = w.finish().unwrap();
    sn.prepare("commit", Some(&top)).unwrap();
    let opts = UnpackOptions { whiteouts: sn.whiteouts(), ..Default::default() };
    let r = unpack(&layer.inner[..], &sn.writable_dir("commit").unwrap(), &opts).unwrap();
    assert_eq!(r.diff_id, layer.diff_id);
    sn.commit("committed", "commit").unwrap();
    mount_all(&sn.view("committed-view", Some("committed")).unwrap(), &target).unwrap();
    let _g = MountGuard(target.clone());
    assert_eq!(names(&target), vec!["c", "d", "o"]);
    assert_eq!(fs::read_to_string(target.join("d/y")).unwrap(), "y2");
    assert_eq!(fs::read_to_string(target.join("c/file")).unwrap(), "c");
    assert_eq!(names(&target.join("o")), vec!["new"]);
}

#[test]
fn overlay_end_to_end() {
    if !is_root() || !overlay_supported() {
        eprintln!("skipping overlay_end_to_end: needs root and overlayfs");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sn = OverlaySnapshotter::open(&tmp.path().join("sn")).unwrap();
    run(&sn, tmp.path());
}

#[test]
fn native_end_to_end() {
    if !is_root() {
        eprintln!("skipping native_end_to_end: needs root (bind mounts)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sn = NativeSnapshotter::open(&tmp.path().join("sn")).unwrap();
    run(&sn, tmp.path());
}

/// Parallel unpack on overlay: each layer into its own parentless snapshot, concurrently; then
/// committed in order, each onto the previous (`commit_rebased`).
#[test]
fn overlay_parallel_unpack_with_rebase() {
    if !is_root() || !overlay_supported() {
        eprintln!("skipping overlay_parallel_unpack_with_rebase: needs root and overlayfs");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sn = OverlaySnapshotter::open(&tmp.path().join("sn")).unwrap();
    assert!(sn.can_rebase());
    let blobs = layers();
    std::thread::scope(|s| {
        for (i, blob) in blobs.iter().enumerate() {
            let sn = &sn;
            s.spawn(move || {
                let key = format!("extract-{i}");
                sn.prepare(&key, None).unwrap();
                let opts = UnpackOptions { whiteouts: sn.whiteouts(), ..Default::default() };
                unpack(&blob[..], &sn.writable_dir(&key).unwrap(), &opts).unwrap();
            });
        }
    });
    let mut parent: Option<String> = None;
    for i in 0..blobs.len() {
        let name = format!("layer-{i}");
        sn.commit_rebased(&name, &format!("extract-{i}"), parent.as_deref()).unwrap();
        parent = Some(name);
    }
    let target = tmp.path().join("rootfs");
    fs::create_dir(&target).unwrap();
    mount_all(&sn.view("v", parent.as_deref()).unwrap(), &target).unwrap();
    let _g = MountGuard(target.clone());
    check_image(&target);
}
