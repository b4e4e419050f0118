//! `mount_all` / `unmount` for bind and tmpfs mounts and stacked mounts. Needs root.

use std::fs;

use wharf_snapshot::{Mount, mount_all, unmount};

fn skip() -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return true;
    }
    false
}

fn mount(kind: &str, source: &str, options: &[&str]) -> Mount {
    Mount { kind: kind.into(), source: source.into(), options: options.iter().map(|s| s.to_string()).collect() }
}

#[test]
fn bind_ro_tmpfs_and_stacking() {
    if skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (src, target) = (tmp.path().join("src"), tmp.path().join("target"));
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&target).unwrap();
    fs::write(src.join("f"), "bound").unwrap();

    mount_all(&[mount("bind", src.to_str().unwrap(), &["rbind", "ro"])], &target).unwrap();
    let ro_write = fs::write(target.join("g"), "x");
    let content = fs::read_to_string(target.join("f"));
    unmount(&target).unwrap();
    assert!(ro_write.is_err(), "read-only bind");
    assert_eq!(content.unwrap(), "bound");
    assert!(!target.join("f").exists(), "unmounted");

    // A tmpfs stacked on a bind: both come off with one unmount.
    let stack = [
        mount("bind", src.to_str().unwrap(), &["bind", "rw"]),
        mount("tmpfs", "tmpfs", &["nosuid", "size=1m", "mode=0700"]),
    ];
    mount_all(&stack, &target).unwrap();
    let tmpfs_empty = fs::read_dir(&target).map(|d| d.count());
    let mode = fs::metadata(&target).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777);
    unmount(&target).unwrap();
    assert_eq!(tmpfs_empty.unwrap(), 0, "tmpfs on top");
    assert_eq!(mode.unwrap(), 0o700, "tmpfs data options");
    assert!(!target.join("f").exists(), "both layers unmounted");
    unmount(&target).unwrap(); // idempotent

    // A failing mount leaves nothing behind.
    let bad = [mount("bind", src.to_str().unwrap(), &["rbind"]), mount("bind", "/nonexistent/wharf", &["rbind"])];
    assert!(mount_all(&bad, &target).is_err());
    assert!(!target.join("f").exists(), "first mount rolled back");
}
