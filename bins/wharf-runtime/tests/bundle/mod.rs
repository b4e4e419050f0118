//! Test fixture: OCI bundles built by hand from the host's static busybox, with a private pid,
//! net, ipc, uts and mount namespace and an explicit cgroupsPath under a per-process test
//! parent. Dropping a [`Bundle`] removes its cgroups (every v1 controller and the unified
//! hierarchy) and its temp dir. Shared by the runtime and shim test suites.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBuilder, LinuxNamespace, LinuxNamespaceType, ProcessBuilder, RootBuilder, Spec};

pub const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "true", "false", "ls", "stty", "env", "id", "ps", "read", "kill", "head", "tr", "wc",
];

/// Whether the tests can run; prints the reason when they cannot.
pub fn can_run(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIP {test}: needs root (namespaces, cgroups, mounts)");
        return false;
    }
    if !Path::new("/bin/busybox").exists() {
        println!("SKIP {test}: needs /bin/busybox (busybox-static)");
        return false;
    }
    true
}

pub fn cgroup_parent() -> String {
    format!("wharf-test-{}", std::process::id())
}

pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub id: String,
    pub cgroups_path: String,
}

impl Bundle {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A busybox bundle running `args`.
    pub fn new(id: &str, args: &[&str], terminal: bool) -> Bundle {
        let dir = tempfile::Builder::new().prefix("wharf-bundle-").tempdir().expect("temp dir");
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).expect("mkdir");
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).expect("symlink");
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").expect("passwd");
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").expect("group");
        let cgroups_path = format!("/{}/{id}", cgroup_parent());
        let mut spec = Spec::default();
        let process = ProcessBuilder::default()
            .terminal(terminal)
            .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .env(vec!["PATH=/bin".to_string(), "HOME=/".to_string(), "TERM=xterm".to_string()])
            .cwd("/")
            .build()
            .expect("process");
        let mut base = process.clone();
        if let Some(p) = spec.process() {
            base = p.clone();
            base.set_terminal(Some(terminal));
            base.set_args(process.args().clone());
            base.set_env(process.env().clone());
            base.set_cwd(PathBuf::from("/"));
        }
        spec.set_process(Some(base));
        spec.set_root(Some(RootBuilder::default().path("rootfs").readonly(false).build().expect("root")));
        spec.set_hostname(Some(id.chars().take(60).collect()));
        let namespaces: Vec<LinuxNamespace> = [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Mount,
        ]
        .into_iter()
        .map(|t| {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(t);
            ns
        })
        .collect();
        let mut linux = spec.linux().clone().unwrap_or_else(|| LinuxBuilder::default().build().expect("linux"));
        linux.set_namespaces(Some(namespaces));
        linux.set_cgroups_path(Some(PathBuf::from(&cgroups_path)));
        spec.set_linux(Some(linux));
        spec.save(dir.path().join("config.json")).expect("write config.json");
        Bundle { dir, id: id.to_string(), cgroups_path }
    }

    pub fn spec(&self) -> Spec {
        Spec::load(self.path().join("config.json")).expect("load spec")
    }

    pub fn save(&self, spec: &Spec) {
        spec.save(self.path().join("config.json")).expect("save spec");
    }
}

/// Removes `rel` (and its test parent when empty) from every cgroup hierarchy.
pub fn remove_cgroup(rel: &str) {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut roots: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    let rel = rel.trim_start_matches('/');
    for root in roots {
        let leaf = root.join(rel);
        for _ in 0..50 {
            if !leaf.exists() || std::fs::remove_dir(&leaf).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if let Some(parent) = leaf.parent()
            && parent != root
        {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        remove_cgroup(&self.cgroups_path);
    }
}

/// Pids of processes whose command line mentions `needle` (leak checks).
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd).contains(needle)
        {
            out.push(pid);
        }
    }
    out
}
