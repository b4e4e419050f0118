//! [`HostInfo`]: the facts about the machine that a spec depends on, read once.
//!
//! Docker consults the same facts (its `sysinfo`): which capabilities the daemon holds, the
//! kernel version (seccomp rules are version-conditional), the CPUs and memory nodes cpusets may
//! use, the cgroup layout, and which sysctls exist. Tests build a `HostInfo` by hand to pin them.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use super::caps;
use super::parse::parse_cpuset;

/// How cgroups are mounted on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// cgroup v1 controllers only.
    Legacy,
    /// v1 controllers plus a cgroup2 tree at `/sys/fs/cgroup/unified`.
    Hybrid,
    /// cgroup v2 only.
    Unified,
}

/// A kernel `major.minor`, as seccomp's `minKernel` compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub major: u64,
    pub minor: u64,
}

impl KernelVersion {
    /// Parses the start of a release string (`6.18.44-fc`, `3.12-1-amd64`).
    pub fn parse(release: &str) -> Option<Self> {
        let mut parts = release.splitn(3, '.');
        let major = parts.next()?.parse().ok()?;
        let minor_text = parts.next()?;
        let end = minor_text.find(|c: char| !c.is_ascii_digit()).unwrap_or(minor_text.len());
        let minor = minor_text[..end].parse().ok()?;
        Some(Self { major, minor })
    }
}

/// What the spec needs to know about the host.
#[derive(Debug, Clone)]
pub struct HostInfo {
    /// Capabilities the daemon holds (CapBnd ∩ CapEff), in bit order: what `--privileged` grants
    /// and the only ones `--cap-add` may name.
    pub capabilities: Vec<String>,
    /// `None` when `uname` could not be parsed: kernel-conditional seccomp rules then fail.
    pub kernel: Option<KernelVersion>,
    /// libseccomp's name for this architecture (`amd64`, `arm64`, `x86`, …), as Docker uses it
    /// in seccomp profiles' `arches` filters.
    pub seccomp_arch: &'static str,
    /// CPUs the daemon may run on (Go's `runtime.NumCPU`).
    pub cpu_count: usize,
    /// CPUs a cpuset may use, as listed (`0-1`), or `None` when there is no cpuset controller.
    pub cpuset_cpus: Option<String>,
    /// Memory nodes a cpuset may use (`0`).
    pub cpuset_mems: Option<String>,
    pub cgroup_mode: CgroupMode,
    /// The memory controller can limit swap (v1 `memory.memsw.*`, or v2).
    pub swap_limit: bool,
    /// The memory controller can disable the OOM killer (cgroup v1 only).
    pub oom_kill_disable: bool,
    /// `/proc/sys/net/ipv4/ping_group_range` exists (Docker then opens ping to all groups).
    pub sysctl_ping_group_range: bool,
    /// `/proc/sys/net/ipv4/ip_unprivileged_port_start` exists.
    pub sysctl_unprivileged_port_start: bool,
    /// `/sys/devices/system/cpu/cpuN/thermal_throttle` paths that exist; Docker masks them.
    pub thermal_throttle_paths: Vec<String>,
}

impl HostInfo {
    /// The facts about this machine, probed on first use.
    pub fn current() -> &'static HostInfo {
        static HOST: OnceLock<HostInfo> = OnceLock::new();
        HOST.get_or_init(HostInfo::probe)
    }

    /// Reads the facts from `/proc` and `/sys`. Missing files mean "not supported".
    pub fn probe() -> HostInfo {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let exists = |p: &str| Path::new(p).exists();
        let status = read("/proc/self/status").unwrap_or_default();
        let cgroup_mode = if exists("/sys/fs/cgroup/cgroup.controllers") {
            CgroupMode::Unified
        } else if exists("/sys/fs/cgroup/unified/cgroup.controllers") {
            CgroupMode::Hybrid
        } else {
            CgroupMode::Legacy
        };
        let (cpuset_cpus, cpuset_mems) = if cgroup_mode == CgroupMode::Unified {
            (read("/sys/fs/cgroup/cpuset.cpus.effective"), read("/sys/fs/cgroup/cpuset.mems.effective"))
        } else {
            (read("/sys/fs/cgroup/cpuset/cpuset.cpus"), read("/sys/fs/cgroup/cpuset/cpuset.mems"))
        };
        let (swap_limit, oom_kill_disable) = if cgroup_mode == CgroupMode::Unified {
            (true, false)
        } else {
            (
                exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
                exists("/sys/fs/cgroup/memory/memory.oom_control"),
            )
        };
        let possible = read("/sys/devices/system/cpu/possible").unwrap_or_default();
        let thermal_throttle_paths = parse_cpuset(possible.trim(), 0)
            .unwrap_or_default()
            .into_iter()
            .map(|cpu| format!("/sys/devices/system/cpu/cpu{cpu}/thermal_throttle"))
            .filter(|p| exists(p))
            .collect();
        HostInfo {
            capabilities: caps::held_capabilities(&status),
            kernel: read("/proc/sys/kernel/osrelease").and_then(|r| KernelVersion::parse(r.trim())),
            seccomp_arch: native_seccomp_arch(),
            cpu_count: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpuset_cpus: cpuset_cpus.map(|s| s.trim().to_owned()),
            cpuset_mems: cpuset_mems.map(|s| s.trim().to_owned()),
            cgroup_mode,
            swap_limit,
            oom_kill_disable,
            sysctl_ping_group_range: exists("/proc/sys/net/ipv4/ping_group_range"),
            sysctl_unprivileged_port_start: exists("/proc/sys/net/ipv4/ip_unprivileged_port_start"),
            thermal_throttle_paths,
        }
    }

    /// A fixed host for tests: x86-64, kernel 6.1, two CPUs, hybrid cgroups, every capability
    /// held, both default sysctls present.
    pub fn fixture() -> HostInfo {
        HostInfo {
            capabilities: caps::KNOWN_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            kernel: Some(KernelVersion { major: 6, minor: 1 }),
            seccomp_arch: "amd64",
            cpu_count: 2,
            cpuset_cpus: Some("0-1".into()),
            cpuset_mems: Some("0".into()),
            cgroup_mode: CgroupMode::Hybrid,
            swap_limit: true,
            oom_kill_disable: true,
            sysctl_ping_group_range: true,
            sysctl_unprivileged_port_start: true,
            thermal_throttle_paths: Vec::new(),
        }
    }

    /// The cpuset CPUs as a set (empty when unknown).
    pub(crate) fn cpuset_cpu_set(&self) -> Option<BTreeSet<u32>> {
        self.cpuset_cpus.as_deref().map(|s| parse_cpuset(s, 0).unwrap_or_default())
    }

    /// The cpuset memory nodes as a set (empty when unknown).
    pub(crate) fn cpuset_mem_set(&self) -> Option<BTreeSet<u32>> {
        self.cpuset_mems.as_deref().map(|s| parse_cpuset(s, 0).unwrap_or_default())
    }
}

/// libseccomp's architecture name for the target we were compiled for (moby's `goToNative`).
fn native_seccomp_arch() -> &'static str {
    let little = cfg!(target_endian = "little");
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "powerpc64" if little => "ppc64le",
        "powerpc64" => "ppc64",
        "powerpc" => "ppc",
        "mips64" if little => "mipsel64",
        "mips64" => "mips64",
        "mips" if little => "mipsel",
        "mips" => "mips",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(KernelVersion::parse("6.18.44-fc-v782"), Some(KernelVersion { major: 6, minor: 18 }));
        assert_eq!(KernelVersion::parse("3.12-1-amd64"), Some(KernelVersion { major: 3, minor: 12 }));
        assert_eq!(KernelVersion::parse("junk"), None);
    }

    #[test]
    fn probe_reads_this_machine() {
        let host = HostInfo::probe();
        assert!(host.kernel.is_some());
        assert!(host.cpu_count >= 1);
        assert!(!host.capabilities.is_empty());
    }
}
