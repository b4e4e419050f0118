//! `docker stats`: samples of a container's cgroup counters (v1, v2 and hybrid hosts) and its
//! network namespace's interface counters, in the shape the docker CLI computes with
//! (compat §3.10): `cpu_stats`/`precpu_stats`, `memory_stats`, `blkio_stats`, `pids_stats`,
//! `networks`.

use std::path::PathBuf;

use serde_json::{Map, Value, json};

use super::model::ContainerRecord;

/// Where a container's cgroup lives on this host.
pub struct CgroupPaths {
    /// cgroup v2 (unified) directory, when the host is v2-only.
    unified: Option<PathBuf>,
    /// cgroup v1 root (`/sys/fs/cgroup`) when the host has v1 controllers.
    v1_root: Option<PathBuf>,
    rel: String,
}

impl CgroupPaths {
    pub fn new(cgroup_parent: &str, r: &ContainerRecord) -> Self {
        let parent =
            r.host_config.cgroup_parent.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| cgroup_parent.to_owned());
        let rel = format!("{}/{}", parent.trim_matches('/'), r.id);
        let v2 = crate::info::cgroup_version() == "2";
        Self {
            unified: v2.then(|| PathBuf::from("/sys/fs/cgroup").join(&rel)),
            v1_root: (!v2).then(|| PathBuf::from("/sys/fs/cgroup")),
            rel,
        }
    }

    /// Removes the container's cgroup directories the runtime's `delete` left behind (it can
    /// race the last task's release on v1 hierarchies); only empty ones, a few tries each.
    pub fn remove_leftovers(&self) {
        let mut dirs: Vec<PathBuf> = self.unified.iter().cloned().collect();
        if let Some(root) = &self.v1_root
            && let Ok(entries) = std::fs::read_dir(root)
        {
            dirs.extend(entries.flatten().map(|e| e.path().join(&self.rel)));
        }
        for dir in dirs.into_iter().filter(|d| d.is_dir()) {
            for attempt in 0..5 {
                match std::fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if attempt == 4 => {
                        tracing::warn!(cgroup = %dir.display(), error = %e, "leftover cgroup not removed")
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20 << attempt)),
                }
            }
        }
    }

    fn v1(&self, ctrl: &str, file: &str) -> Option<PathBuf> {
        self.v1_root.as_ref().map(|r| r.join(ctrl).join(&self.rel).join(file))
    }

    fn v2(&self, file: &str) -> Option<PathBuf> {
        self.unified.as_ref().map(|d| d.join(file))
    }
}

fn read(p: Option<PathBuf>) -> Option<String> {
    p.and_then(|p| std::fs::read_to_string(p).ok())
}

fn read_u64(p: Option<PathBuf>) -> Option<u64> {
    read(p).and_then(|s| s.trim().parse().ok())
}

/// `key value` lines (memory.stat, cpu.stat).
fn kv(text: &str) -> Map<String, Value> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v: u64 = it.next()?.parse().ok()?;
            Some((k.to_owned(), json!(v)))
        })
        .collect()
}

/// Total host CPU time in nanoseconds, from /proc/stat (what `system_cpu_usage` means).
pub fn system_cpu_usage() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else { return 0 };
    let ticks: u64 = line.split_whitespace().skip(1).take(8).filter_map(|v| v.parse::<u64>().ok()).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * (1_000_000_000 / hz)
}

fn online_cpus() -> u64 {
    rustix::thread::sched_getaffinity(None).map(|s| s.count() as u64).unwrap_or(1)
}

/// Per-interface counters of the container's network namespace (through its init's /proc).
fn networks(pid: i64) -> Value {
    if pid <= 0 {
        return Value::Null;
    }
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) else { return Value::Null };
    let mut out = Map::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if v.len() < 16 {
            continue;
        }
        out.insert(
            name.to_owned(),
            json!({
                "rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11]
            }),
        );
    }
    if out.is_empty() { Value::Null } else { Value::Object(out) }
}

/// One sample (without `precpu_stats`/`preread`, which the caller fills from the previous one).
pub fn sample(c: &CgroupPaths, r: &ContainerRecord) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let (cpu, memory, blkio, pids) = if c.unified.is_some() { v2_sample(c) } else { v1_sample(c) };
    json!({
        "read": now,
        "preread": super::model::ZERO_TIME,
        "pids_stats": pids,
        "blkio_stats": blkio,
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu,
        "precpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
        "memory_stats": memory,
        "name": format!("/{}", r.name),
        "id": r.id.to_string(),
        "networks": networks(r.state.pid),
    })
}

fn v1_sample(c: &CgroupPaths) -> (Value, Value, Value, Value) {
    let percpu: Vec<u64> = read(c.v1("cpuacct", "cpuacct.usage_percpu"))
        .map(|s| s.split_whitespace().filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    let acct = read(c.v1("cpuacct", "cpuacct.stat")).map(|s| kv(&s)).unwrap_or_default();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks = |k: &str| acct.get(k).and_then(Value::as_u64).unwrap_or(0) * (1_000_000_000 / hz);
    let throttle = read(c.v1("cpu", "cpu.stat")).map(|s| kv(&s)).unwrap_or_default();
    let cpu = json!({
        "cpu_usage": {
            "total_usage": read_u64(c.v1("cpuacct", "cpuacct.usage")).unwrap_or(0),
            "percpu_usage": percpu,
            "usage_in_kernelmode": ticks("system"),
            "usage_in_usermode": ticks("user"),
        },
        "system_cpu_usage": system_cpu_usage(),
        "online_cpus": online_cpus(),
        "throttling_data": {
            "periods": throttle.get("nr_periods").cloned().unwrap_or(json!(0)),
            "throttled_periods": throttle.get("nr_throttled").cloned().unwrap_or(json!(0)),
            "throttled_time": throttle.get("throttled_time").cloned().unwrap_or(json!(0)),
        },
    });
    let stats = read(c.v1("memory", "memory.stat")).map(|s| kv(&s)).unwrap_or_default();
    let memory = json!({
        "usage": read_u64(c.v1("memory", "memory.usage_in_bytes")).unwrap_or(0),
        "max_usage": read_u64(c.v1("memory", "memory.max_usage_in_bytes")).unwrap_or(0),
        "failcnt": read_u64(c.v1("memory", "memory.failcnt")).unwrap_or(0),
        "limit": read_u64(c.v1("memory", "memory.limit_in_bytes")).map(|l| l.min(mem_total())).unwrap_or(0),
        "stats": stats,
    });
    let blkio = json!({
        "io_service_bytes_recursive": blkio_v1(read(c.v1("blkio", "blkio.throttle.io_service_bytes_recursive"))),
        "io_serviced_recursive": blkio_v1(read(c.v1("blkio", "blkio.throttle.io_serviced_recursive"))),
        "io_queue_recursive": null, "io_service_time_recursive": null, "io_wait_time_recursive": null,
        "io_merged_recursive": null, "io_time_recursive": null, "sectors_recursive": null,
    });
    let pids = json!({
        "current": read_u64(c.v1("pids", "pids.current")).unwrap_or(0),
        "limit": read(c.v1("pids", "pids.max")).and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0),
    });
    (cpu, memory, blkio, pids)
}

/// `8:0 Read 4096` lines → Docker's entries (the `Total` line dropped).
fn blkio_v1(text: Option<String>) -> Value {
    let Some(text) = text else { return Value::Null };
    let entries: Vec<Value> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, value] = f.as_slice() else { return None };
            let (major, minor) = dev.split_once(':')?;
            Some(json!({"major": major.parse::<u64>().ok()?, "minor": minor.parse::<u64>().ok()?, "op": op, "value": value.parse::<u64>().ok()?}))
        })
        .collect();
    if entries.is_empty() { Value::Null } else { Value::Array(entries) }
}

fn v2_sample(c: &CgroupPaths) -> (Value, Value, Value, Value) {
    let cpu_stat = read(c.v2("cpu.stat")).map(|s| kv(&s)).unwrap_or_default();
    let usec = |k: &str| cpu_stat.get(k).and_then(Value::as_u64).unwrap_or(0) * 1000;
    let cpu = json!({
        "cpu_usage": {
            "total_usage": usec("usage_usec"),
            "usage_in_kernelmode": usec("system_usec"),
            "usage_in_usermode": usec("user_usec"),
        },
        "system_cpu_usage": system_cpu_usage(),
        "online_cpus": online_cpus(),
        "throttling_data": {
            "periods": cpu_stat.get("nr_periods").cloned().unwrap_or(json!(0)),
            "throttled_periods": cpu_stat.get("nr_throttled").cloned().unwrap_or(json!(0)),
            "throttled_time": usec("throttled_usec"),
        },
    });
    let stats = read(c.v2("memory.stat")).map(|s| kv(&s)).unwrap_or_default();
    let limit = read(c.v2("memory.max")).and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or_else(mem_total);
    let memory = json!({
        "usage": read_u64(c.v2("memory.current")).unwrap_or(0),
        "limit": limit,
        "stats": stats,
    });
    let mut entries = Vec::new();
    for line in read(c.v2("io.stat")).unwrap_or_default().lines() {
        let mut it = line.split_whitespace();
        let Some((major, minor)) = it.next().and_then(|d| d.split_once(':')) else { continue };
        for kvp in it {
            let Some((k, v)) = kvp.split_once('=') else { continue };
            let op = match k {
                "rbytes" => "read",
                "wbytes" => "write",
                _ => continue,
            };
            entries.push(json!({"major": major.parse::<u64>().unwrap_or(0), "minor": minor.parse::<u64>().unwrap_or(0), "op": op, "value": v.parse::<u64>().unwrap_or(0)}));
        }
    }
    let blkio =
        json!({ "io_service_bytes_recursive": if entries.is_empty() { Value::Null } else { Value::Array(entries) } });
    let pids = json!({
        "current": read_u64(c.v2("pids.current")).unwrap_or(0),
        "limit": read(c.v2("pids.max")).and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0),
    });
    (cpu, memory, blkio, pids)
}

fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(u64::MAX)
}

/// Moves `prev`'s CPU figures into `next`'s `precpu_stats` and `preread`.
pub fn chain(prev: &Value, next: &mut Value) {
    if let Some(cpu) = prev.get("cpu_stats") {
        next["precpu_stats"] = cpu.clone();
    }
    if let Some(read) = prev.get("read") {
        next["preread"] = read.clone();
    }
}

/// A stopped container's sample: zeros, as Docker returns for it.
pub fn empty(r: &ContainerRecord) -> Value {
    json!({
        "read": super::model::ZERO_TIME, "preread": super::model::ZERO_TIME,
        "pids_stats": {}, "blkio_stats": {"io_service_bytes_recursive": null}, "num_procs": 0, "storage_stats": {},
        "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
        "precpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
        "memory_stats": {}, "name": format!("/{}", r.name), "id": r.id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        let m = kv("cache 4096\nrss 8192\ntotal_inactive_file 0\n");
        assert_eq!(m["rss"], 8192);
        let b = blkio_v1(Some("8:0 Read 4096\n8:0 Write 512\nTotal 4608\n".into()));
        assert_eq!(b[0]["op"], "Read");
        assert_eq!(b[1]["value"], 512);
        assert_eq!(b.as_array().unwrap().len(), 2);
        assert!(system_cpu_usage() > 0);
        let mut next = json!({"cpu_stats": {"x": 2}, "read": "b"});
        chain(&json!({"cpu_stats": {"x": 1}, "read": "a"}), &mut next);
        assert_eq!(next["precpu_stats"]["x"], 1);
        assert_eq!(next["preread"], "a");
    }
}
