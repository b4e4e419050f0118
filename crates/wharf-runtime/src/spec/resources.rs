//! Resource limits: Docker's create-time defaults and checks on `--memory`, `--cpus`, … (with
//! its messages) and their mapping into `linux.resources`.

use serde_json::{Map, Value, json};

use super::error::SpecError;
use super::host::HostInfo;
use super::parse::parse_cpuset;

/// Smallest memory limit or reservation Docker accepts.
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;
/// CFS period Docker uses for `--cpus`.
pub const CPU_PERIOD_FOR_CPUS: u64 = 100_000;
/// Cpuset lists above this many CPUs are refused unless the host has more (CVE-2018-20699).
const MAX_CPUSET: u32 = 8192;

/// The resource part of a container's host config, in Docker's units (bytes, nano-CPUs,
/// microseconds). Zero means "not set" except where noted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// `--memory`, bytes.
    pub memory: i64,
    /// `--memory-swap`, bytes of memory plus swap; `-1` unlimited; 0 means twice `memory`.
    pub memory_swap: i64,
    /// `--memory-reservation`, bytes.
    pub memory_reservation: i64,
    /// `--memory-swappiness` 0–100; `None` or `-1` leaves the kernel default.
    pub memory_swappiness: Option<i64>,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: Option<bool>,
    /// `--cpus` × 1e9.
    pub nano_cpus: i64,
    /// `--cpu-shares` (relative weight).
    pub cpu_shares: i64,
    /// `--cpu-period`, µs.
    pub cpu_period: i64,
    /// `--cpu-quota`, µs.
    pub cpu_quota: i64,
    /// `--cpuset-cpus` (`0-3`, `0,1`).
    pub cpuset_cpus: String,
    /// `--cpuset-mems`.
    pub cpuset_mems: String,
    /// `--pids-limit`; 0 or negative means unlimited.
    pub pids_limit: Option<i64>,
    /// `--blkio-weight` 10–1000.
    pub blkio_weight: u16,
}

/// Applies Docker's create-time defaults (swap twice the memory, OOM killer enabled) and checks,
/// in Docker's order and with its messages. Returns the warnings Docker would print for settings
/// the host cannot honour (those settings are dropped).
pub fn check_resources(r: &mut Resources, host: &HostInfo) -> Result<Vec<String>, SpecError> {
    let fail = |m: &str| Err(SpecError::InvalidResources(m.to_owned()));
    let mut warnings = Vec::new();
    if r.memory > 0 && r.memory_swap == 0 {
        r.memory_swap = r.memory * 2;
    }
    if r.oom_kill_disable.is_none() {
        r.oom_kill_disable = Some(false);
    }
    if r.memory_swappiness == Some(-1) {
        r.memory_swappiness = None;
    }

    if r.memory != 0 && r.memory < MIN_MEMORY {
        return fail("Minimum memory limit allowed is 6MB");
    }
    if r.memory > 0 && r.memory_swap != -1 && !host.swap_limit {
        warnings.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".into());
        r.memory_swap = -1;
    }
    if r.memory > 0 && r.memory_swap > 0 && r.memory_swap < r.memory {
        return fail("Minimum memoryswap limit should be larger than memory limit, see usage");
    }
    if r.memory == 0 && r.memory_swap > 0 {
        return fail("You should always set the Memory limit when using Memoryswap limit, see usage");
    }
    if let Some(s) = r.memory_swappiness
        && !(0..=100).contains(&s)
    {
        return Err(SpecError::InvalidResources(format!("Invalid value: {s}, valid memory swappiness range is 0-100")));
    }
    if r.memory_reservation > 0 && r.memory_reservation < MIN_MEMORY {
        return fail("Minimum memory reservation allowed is 6MB");
    }
    if r.memory > 0 && r.memory_reservation > 0 && r.memory < r.memory_reservation {
        return fail("Minimum memory limit can not be less than memory reservation limit, see usage");
    }
    if r.oom_kill_disable.is_some() && !host.oom_kill_disable {
        if r.oom_kill_disable == Some(true) {
            warnings.push("Your kernel does not support OomKillDisable. OomKillDisable discarded.".into());
        }
        r.oom_kill_disable = None;
    }
    if r.oom_kill_disable == Some(true) && r.memory == 0 {
        warnings.push("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.".into());
    }

    if r.nano_cpus > 0 && r.cpu_period > 0 {
        return fail("Conflicting options: Nano CPUs and CPU Period cannot both be set");
    }
    if r.nano_cpus > 0 && r.cpu_quota > 0 {
        return fail("Conflicting options: Nano CPUs and CPU Quota cannot both be set");
    }
    if r.nano_cpus != 0 {
        let n = host.cpu_count as i64;
        if r.nano_cpus < 0 || r.nano_cpus > n * 1_000_000_000 {
            return Err(SpecError::InvalidResources(format!(
                "range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available"
            )));
        }
    }
    if r.cpu_shares < 0 {
        return Err(SpecError::InvalidResources(format!(
            "invalid CPU shares ({}): value must be a positive integer",
            r.cpu_shares
        )));
    }
    if r.cpu_period != 0 && !(1000..=1_000_000).contains(&r.cpu_period) {
        return fail("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)");
    }
    if r.cpu_quota > 0 && r.cpu_quota < 1000 {
        return fail("CPU cfs quota can not be less than 1ms (i.e. 1000)");
    }

    let (cpus, mems) = (host.cpuset_cpu_set(), host.cpuset_mem_set());
    if (!r.cpuset_cpus.is_empty() || !r.cpuset_mems.is_empty()) && cpus.is_none() {
        warnings.push("Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.".into());
        r.cpuset_cpus.clear();
        r.cpuset_mems.clear();
    }
    for (requested, available, what, nodes) in
        [(&r.cpuset_cpus, &cpus, "cpus", "CPUs"), (&r.cpuset_mems, &mems, "mems", "memory nodes")]
    {
        let available = available.clone().unwrap_or_default();
        let maximum = available.iter().max().copied().unwrap_or(0).max(MAX_CPUSET);
        let wanted = parse_cpuset(requested, maximum)
            .map_err(|e| SpecError::InvalidResources(format!("Invalid value {requested} for cpuset {what}: {e}")))?;
        if !wanted.is_subset(&available) {
            let listed = if what == "cpus" { host.cpuset_cpus.as_deref() } else { host.cpuset_mems.as_deref() };
            return Err(SpecError::InvalidResources(format!(
                "Requested {nodes} are not available - requested {requested}, available: {}",
                listed.unwrap_or("")
            )));
        }
    }

    if r.blkio_weight > 0 && !(10..=1000).contains(&r.blkio_weight) {
        return fail("Range of blkio weight is from 10 to 1000");
    }
    Ok(warnings)
}

/// `linux.resources` without the device rules, as Docker's `WithResources`: empty sections are
/// left out, except `blockIO`, which Docker always writes.
pub fn resources_entry(r: &Resources) -> Map<String, Value> {
    let mut out = Map::new();
    let mut memory = Map::new();
    if r.memory > 0 {
        memory.insert("limit".into(), json!(r.memory));
    }
    if r.memory_reservation > 0 {
        memory.insert("reservation".into(), json!(r.memory_reservation));
    }
    if r.memory_swap > 0 {
        memory.insert("swap".into(), json!(r.memory_swap));
    }
    if let Some(s) = r.memory_swappiness {
        memory.insert("swappiness".into(), json!(s));
    }
    if let Some(d) = r.oom_kill_disable {
        memory.insert("disableOOMKiller".into(), json!(d));
    }
    if !memory.is_empty() {
        out.insert("memory".into(), Value::Object(memory));
    }

    let mut cpu = Map::new();
    if r.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(r.cpu_shares));
    }
    if r.nano_cpus > 0 {
        let quota = r.nano_cpus * CPU_PERIOD_FOR_CPUS as i64 / 1_000_000_000;
        cpu.insert("quota".into(), json!(quota));
        cpu.insert("period".into(), json!(CPU_PERIOD_FOR_CPUS));
    }
    if r.cpu_period != 0 {
        cpu.insert("period".into(), json!(r.cpu_period));
    }
    if r.cpu_quota != 0 {
        cpu.insert("quota".into(), json!(r.cpu_quota));
    }
    if !r.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(r.cpuset_cpus));
    }
    if !r.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(r.cpuset_mems));
    }
    if !cpu.is_empty() {
        out.insert("cpu".into(), Value::Object(cpu));
    }

    if let Some(limit) = r.pids_limit {
        out.insert("pids".into(), json!({"limit": if limit <= 0 { -1 } else { limit }}));
    }
    let mut blkio = Map::new();
    if r.blkio_weight != 0 {
        blkio.insert("weight".into(), json!(r.blkio_weight));
    }
    out.insert("blockIO".into(), Value::Object(blkio));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(r: Resources) -> Result<Resources, String> {
        let mut r = r;
        check_resources(&mut r, &HostInfo::fixture()).map(|_| r).map_err(|e| e.to_string())
    }

    const MB: i64 = 1 << 20;

    #[test]
    fn memory_checks_use_dockers_messages() {
        let err = |r: Resources| check(r).unwrap_err();
        assert_eq!(err(Resources { memory: 4 * MB, ..Default::default() }), "Minimum memory limit allowed is 6MB");
        assert_eq!(
            err(Resources { memory: 64 * MB, memory_swap: 32 * MB, ..Default::default() }),
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        );
        assert_eq!(
            err(Resources { memory_swap: 32 * MB, ..Default::default() }),
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        );
        assert_eq!(
            err(Resources { memory_reservation: MB, ..Default::default() }),
            "Minimum memory reservation allowed is 6MB"
        );
        assert_eq!(
            err(Resources { memory: 64 * MB, memory_reservation: 128 * MB, ..Default::default() }),
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        );
        assert_eq!(
            err(Resources { memory_swappiness: Some(101), ..Default::default() }),
            "Invalid value: 101, valid memory swappiness range is 0-100"
        );
        let r = check(Resources { memory: 64 * MB, ..Default::default() }).unwrap();
        assert_eq!(r.memory_swap, 128 * MB);
    }

    #[test]
    fn cpu_checks_use_dockers_messages() {
        let err = |r: Resources| check(r).unwrap_err();
        assert_eq!(
            err(Resources { nano_cpus: 1_000_000_000, cpu_period: 50_000, ..Default::default() }),
            "Conflicting options: Nano CPUs and CPU Period cannot both be set"
        );
        assert_eq!(
            err(Resources { nano_cpus: 1_000_000_000, cpu_quota: 50_000, ..Default::default() }),
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set"
        );
        assert_eq!(
            err(Resources { nano_cpus: 3_000_000_000, ..Default::default() }),
            "range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"
        );
        assert_eq!(
            err(Resources { cpu_period: 10, ..Default::default() }),
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        );
        assert_eq!(
            err(Resources { cpu_quota: 10, ..Default::default() }),
            "CPU cfs quota can not be less than 1ms (i.e. 1000)"
        );
        assert_eq!(
            err(Resources { cpu_shares: -2, ..Default::default() }),
            "invalid CPU shares (-2): value must be a positive integer"
        );
        assert_eq!(
            err(Resources { cpuset_cpus: "1-x".into(), ..Default::default() }),
            "Invalid value 1-x for cpuset cpus: invalid format: 1-x"
        );
        assert_eq!(
            err(Resources { cpuset_cpus: "0-3".into(), ..Default::default() }),
            "Requested CPUs are not available - requested 0-3, available: 0-1"
        );
        assert_eq!(
            err(Resources { cpuset_mems: "1".into(), ..Default::default() }),
            "Requested memory nodes are not available - requested 1, available: 0"
        );
        assert_eq!(
            err(Resources { blkio_weight: 5, ..Default::default() }),
            "Range of blkio weight is from 10 to 1000"
        );
    }

    #[test]
    fn mapping_matches_docker() {
        let r = check(Resources {
            memory: 512 * MB,
            memory_reservation: 256 * MB,
            nano_cpus: 1_500_000_000,
            cpu_shares: 512,
            cpuset_cpus: "0-1".into(),
            cpuset_mems: "0".into(),
            pids_limit: Some(100),
            blkio_weight: 300,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            Value::Object(resources_entry(&r)),
            json!({
                "memory": {"limit": 536870912, "reservation": 268435456, "swap": 1073741824,
                           "disableOOMKiller": false},
                "cpu": {"shares": 512, "quota": 150000, "period": 100000, "cpus": "0-1", "mems": "0"},
                "pids": {"limit": 100},
                "blockIO": {"weight": 300}
            })
        );
        let r = check(Resources { pids_limit: Some(0), cpu_period: 50_000, cpu_quota: 25_000, ..Default::default() })
            .unwrap();
        assert_eq!(
            Value::Object(resources_entry(&r)),
            json!({"memory": {"disableOOMKiller": false}, "cpu": {"period": 50000, "quota": 25000},
                   "pids": {"limit": -1}, "blockIO": {}})
        );
        // cgroup v2 cannot disable the OOM killer: Docker drops the field.
        let mut host = HostInfo::fixture();
        host.oom_kill_disable = false;
        let mut r = Resources::default();
        check_resources(&mut r, &host).unwrap();
        assert_eq!(Value::Object(resources_entry(&r)), json!({"blockIO": {}}));
        // Memory with unlimited swap.
        let r = check(Resources { memory: 64 * MB, memory_swap: -1, ..Default::default() }).unwrap();
        assert_eq!(resources_entry(&r)["memory"], json!({"limit": 67108864, "disableOOMKiller": false}));
    }
}
