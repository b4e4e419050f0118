//! Runs generated specs with Debian's `runc` on a busybox bundle and looks at the container from
//! inside: the effective capabilities must be Docker's fourteen and seccomp must be filtering.
//!
//! Needs root, `runc` and a static `/bin/busybox`; skipped with the reason otherwise. Each run
//! uses its own runc state root and cgroup parent, and removes both afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::caps::{DEFAULT_CAPABILITIES, KNOWN_CAPABILITIES};
use super::*;

const CGROUP_PARENT: &str = "wharf-spec-test";

fn skip_reason() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root".into());
    }
    let runc = Command::new("runc").arg("--version").output();
    if !runc.is_ok_and(|o| o.status.success()) {
        return Some("runc is not installed".into());
    }
    if !Path::new("/bin/busybox").is_file() {
        return Some("/bin/busybox is missing".into());
    }
    None
}

struct Bundle {
    dir: tempfile::TempDir,
    id: String,
}

impl Bundle {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
        let id = format!("wharf-spec-{name}-{}", std::process::id());
        Bundle { dir, id }
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Writes `config.json` for `opts`, runs the container to completion, returns stdout.
    fn run(&self, opts: &SpecOptions) -> String {
        let spec = generate(opts).unwrap();
        spec.save(self.dir.path().join("config.json")).unwrap();
        let mut child = Command::new("runc")
            .arg("--root")
            .arg(self.state())
            .args(["run", "--bundle"])
            .arg(self.dir.path())
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "runc run failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
        stdout
    }

    fn opts(&self, cmd: &[&str]) -> SpecOptions {
        SpecOptions {
            id: self.id.clone(),
            rootfs: self.rootfs(),
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            hostname: "wharf-test".into(),
            cgroup_parent: format!("/{CGROUP_PARENT}"),
            ..Default::default()
        }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .arg("--root")
            .arg(self.state())
            .args(["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .status();
        remove_cgroup_dirs(&self.id);
    }
}

/// Removes `<parent>/<id>` and the parent itself from every cgroup hierarchy, if empty.
fn remove_cgroup_dirs(id: &str) {
    let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut roots: Vec<PathBuf> = controllers.flatten().map(|e| e.path()).collect();
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    for root in roots {
        let _ = std::fs::remove_dir(root.join(CGROUP_PARENT).join(id));
        let _ = std::fs::remove_dir(root.join(CGROUP_PARENT));
    }
}

fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in:\n{status}"))
        .trim()
        .to_owned()
}

fn mask(caps: &[&str]) -> u64 {
    caps.iter().map(|c| 1u64 << KNOWN_CAPABILITIES.iter().position(|k| k == c).unwrap()).sum()
}

#[test]
fn default_container_has_dockers_caps_and_seccomp() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipped: {reason}");
        return;
    }
    let bundle = Bundle::new("default");
    let status = bundle.run(&bundle.opts(&["/bin/busybox", "cat", "/proc/self/status"]));
    let cap_eff = u64::from_str_radix(&status_field(&status, "CapEff"), 16).unwrap();
    assert_eq!(cap_eff, mask(DEFAULT_CAPABILITIES), "CapEff");
    assert_eq!(status_field(&status, "CapBnd"), status_field(&status, "CapEff"));
    assert_eq!(status_field(&status, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&status, "Seccomp"), "2");
}

#[test]
fn default_container_cannot_mount_or_read_masked_paths() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipped: {reason}");
        return;
    }
    let bundle = Bundle::new("confined");
    let script = "mount -t tmpfs t /tmp; echo mount=$?; \
                  echo masked=$(stat -c %t:%T /proc/interrupts); \
                  echo sys=$(grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1); \
                  echo host=$(hostname); id -u";
    let out = bundle.run(&bundle.opts(&["/bin/busybox", "sh", "-c", script]));
    assert!(out.contains("mount=1") || out.contains("mount=255"), "{out}");
    // Masked: /dev/null (1:3) is bound over it.
    assert!(out.contains("masked=1:3"), "{out}");
    assert!(out.contains("sys=ro"), "{out}");
    assert!(out.contains("host=wharf-test"), "{out}");
    assert!(out.trim_end().ends_with('0'), "{out}");
}

#[test]
fn privileged_container_gets_the_daemons_caps_without_seccomp() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipped: {reason}");
        return;
    }
    let bundle = Bundle::new("privileged");
    let mut opts = bundle.opts(&["/bin/busybox", "cat", "/proc/self/status"]);
    opts.privileged = true;
    let status = bundle.run(&opts);
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(status_field(&status, "CapEff"), status_field(&ours, "CapBnd"));
    assert_eq!(status_field(&status, "Seccomp"), "0");
}
