//! Many lower layers: 130 committed overlay layers under one container snapshot, mounted with
//! the new mount API (`lowerdir+`) and with `mount(2)` (where the absolute option string is over
//! a page and relative paths must be used). Needs root and overlayfs; skips with the reason
//! otherwise.

use std::fs;
use std::path::{Path, PathBuf};

use wharf_snapshot::{
    OverlaySnapshotter, Snapshotter, mount_all, mount_all_legacy, overlay_lowerdir_plus, overlay_supported, unmount,
};

const LAYERS: usize = 130;

struct MountGuard(PathBuf);
impl Drop for MountGuard {
    fn drop(&mut self) {
        unmount(&self.0).expect("unmount in test cleanup");
    }
}

fn skip_reason() -> Option<&'static str> {
    if !rustix::process::geteuid().is_root() {
        Some("needs root")
    } else if !overlay_supported() {
        Some("needs overlayfs")
    } else {
        None
    }
}

fn build_layers(sn: &OverlaySnapshotter) -> String {
    let mut parent: Option<String> = None;
    for i in 0..LAYERS {
        let key = format!("extract-{i}");
        sn.prepare(&key, parent.as_deref()).unwrap();
        let dir = sn.writable_dir(&key).unwrap();
        fs::write(dir.join(format!("layer-{i}")), i.to_string()).unwrap();
        fs::write(dir.join("top"), i.to_string()).unwrap();
        let name = format!("sha256:{i:064x}");
        sn.commit(&name, &key).unwrap();
        parent = Some(name);
    }
    parent.unwrap()
}

fn check(target: &Path) {
    for i in 0..LAYERS {
        assert_eq!(fs::read_to_string(target.join(format!("layer-{i}"))).unwrap(), i.to_string());
    }
    assert_eq!(fs::read_to_string(target.join("top")).unwrap(), (LAYERS - 1).to_string());
    fs::write(target.join("written"), "rw").unwrap();
}

#[test]
fn mounts_130_layers() {
    if let Some(why) = skip_reason() {
        eprintln!("skipping mounts_130_layers: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let sn = OverlaySnapshotter::open(&tmp.path().join("root")).unwrap();
    let top = build_layers(&sn);
    let target = tmp.path().join("rootfs");
    fs::create_dir(&target).unwrap();

    let mounts = sn.prepare("container", Some(&top)).unwrap();
    let data_len: usize = mounts[0].options.iter().map(|o| o.len() + 1).sum();
    assert!(data_len > 4096, "the absolute option string ({data_len} bytes) should exceed a page for this test");
    if overlay_lowerdir_plus() {
        mount_all(&mounts, &target).unwrap();
        let _guard = MountGuard(target.clone());
        check(&target);
    } else {
        eprintln!("kernel has no overlay lowerdir+: only the mount(2) path is tested");
    }
    {
        mount_all_legacy(&mounts, &target).unwrap();
        let _guard = MountGuard(target.clone());
        check(&target);
    }
    // A read-only view of all layers.
    let mounts = sn.view("view", Some(&top)).unwrap();
    mount_all(&mounts, &target).unwrap();
    let _guard = MountGuard(target.clone());
    assert_eq!(fs::read_to_string(target.join("layer-0")).unwrap(), "0");
    assert!(fs::write(target.join("x"), "x").is_err());
}
