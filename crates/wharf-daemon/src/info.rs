//! Facts about the host for `/info` and `/version`, read from the kernel and /etc. Static facts
//! are read once at start; counters are read per request.

use std::path::Path;

/// What does not change while the daemon runs.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub ncpu: i64,
    pub mem_total: i64,
    pub kernel_version: String,
    pub operating_system: String,
    pub os_version: String,
    pub architecture: String,
    pub hostname: String,
    pub cgroup_version: &'static str,
    pub memory_limit: bool,
    pub swap_limit: bool,
    pub cpu_cfs: bool,
    pub cpu_shares: bool,
    pub cpuset: bool,
    pub pids_limit: bool,
    pub oom_kill_disable: bool,
    pub backing_fs: String,
}

impl HostFacts {
    pub fn read() -> Self {
        let uname = rustix::system::uname();
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let os_field = |key: &str| {
            os_release
                .lines()
                .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                .map(|v| v.trim_matches('"').to_owned())
        };
        let cgroup_version = cgroup_version();
        let v1 = |ctrl: &str, file: &str| Path::new("/sys/fs/cgroup").join(ctrl).join(file).exists();
        let (memory_limit, swap_limit, cpu_cfs, cpu_shares, cpuset, pids_limit, oom_kill_disable) =
            if cgroup_version == "2" {
                let ctrls = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
                let has = |c: &str| ctrls.split_whitespace().any(|x| x == c);
                (has("memory"), has("memory"), has("cpu"), has("cpu"), has("cpuset"), has("pids"), false)
            } else {
                (
                    v1("memory", "memory.limit_in_bytes"),
                    v1("memory", "memory.memsw.limit_in_bytes"),
                    v1("cpu", "cpu.cfs_quota_us"),
                    v1("cpu", "cpu.shares"),
                    v1("cpuset", "cpuset.cpus"),
                    v1("pids", "pids.max"),
                    v1("memory", "memory.oom_control"),
                )
            };
        Self {
            ncpu: rustix::thread::sched_getaffinity(None).map(|s| s.count() as i64).unwrap_or(1),
            mem_total: mem_total().unwrap_or(0),
            kernel_version: uname.release().to_string_lossy().into_owned(),
            operating_system: os_field("PRETTY_NAME").unwrap_or_else(|| "Linux".to_owned()),
            os_version: os_field("VERSION_ID").unwrap_or_default(),
            architecture: uname.machine().to_string_lossy().into_owned(),
            hostname: uname.nodename().to_string_lossy().into_owned(),
            cgroup_version,
            memory_limit,
            swap_limit,
            cpu_cfs,
            cpu_shares,
            cpuset,
            pids_limit,
            oom_kill_disable,
            backing_fs: String::new(),
        }
    }

    /// Warnings `docker info` prints for missing kernel features.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if !self.memory_limit {
            w.push("WARNING: No memory limit support".to_owned());
        }
        if !self.swap_limit {
            w.push("WARNING: No swap limit support".to_owned());
        }
        if !self.cpu_cfs {
            w.push("WARNING: No cpu cfs quota support".to_owned());
        }
        if !self.cpu_shares {
            w.push("WARNING: No cpu shares support".to_owned());
        }
        w
    }
}

/// `2` on a unified (cgroup v2 only) host, `1` on v1 and hybrid hosts (as Docker reports).
pub fn cgroup_version() -> &'static str {
    match rustix::fs::statfs("/sys/fs/cgroup") {
        Ok(s) if s.f_type == 0x6367_7270 => "2",
        _ => "1",
    }
}

fn mem_total() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The name of the filesystem type under `path` as Docker prints it (`extfs`, `xfs`, `tmpfs`…).
pub fn backing_filesystem(path: &Path) -> String {
    let Ok(s) = rustix::fs::statfs(path) else {
        return "unknown".to_owned();
    };
    match s.f_type {
        0xEF53 => "extfs",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0x6969 => "nfs",
        0xF2F5_2010 => "f2fs",
        _ => "unknown",
    }
    .to_owned()
}

/// Open file descriptors of this process (`NFd`).
pub fn open_fds() -> i64 {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count() as i64).unwrap_or(0)
}

/// Threads of this process (reported as `NGoroutines`, the closest analogue).
pub fn threads() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").and_then(|v| v.trim().parse().ok())))
        .unwrap_or(0)
}

/// True when IPv4 forwarding is on.
pub fn ipv4_forwarding() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").map(|s| s.trim() == "1").unwrap_or(false)
}

/// Go's GOARCH name for the host (`amd64`).
pub fn go_arch() -> &'static str {
    wharf_types::platform::host_arch()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_facts_are_real() {
        let f = HostFacts::read();
        assert!(f.ncpu >= 1);
        assert!(f.mem_total > 64 * 1024 * 1024);
        assert!(!f.kernel_version.is_empty());
        assert!(f.cgroup_version == "1" || f.cgroup_version == "2");
        assert!(open_fds() > 2);
        assert!(threads() >= 1);
    }
}
