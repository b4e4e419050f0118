//! The flag set `docker run` and `docker create` share (docker/cli `container/opts.go`) and its
//! conversion into a create request (`Config` + `HostConfig` + `NetworkingConfig`), with docker's
//! defaults and validation messages.
//!
//! Values stay strings in clap so that errors read like pflag's; booleans accept `--flag=false`.
//! The request carries the same values the docker CLI sends, its Go zero values included, so a
//! daemon sees the same body from either client.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, HealthConfig, HostConfig, HostConfigCgroupnsModeEnum,
    HostConfigIsolationEnum, HostConfigLogConfig, NetworkingConfig, RestartPolicy, RestartPolicyNameEnum,
};
use clap::Args;

use super::{OptError, OptResult, mounts, network, ports};

/// Flags of `run` and `create` that become the container's configuration.
#[derive(Debug, Default, Clone, Args)]
pub struct ContainerFlags {
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach", value_name = "list")]
    pub attach: Vec<String>,
    /// Add a rule to the cgroup allowed devices list
    #[arg(long = "device-cgroup-rule", value_name = "list")]
    pub device_cgroup_rule: Vec<String>,
    /// Add a host device to the container
    #[arg(long = "device", value_name = "list")]
    pub device: Vec<String>,
    /// GPU devices to add to the container ('all' to pass all GPUs)
    #[arg(long = "gpus", value_name = "gpu-request")]
    pub gpus: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long = "entrypoint", value_name = "string", allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Add additional groups to join
    #[arg(long = "group-add", value_name = "list")]
    pub group_add: Vec<String>,
    /// Container host name
    #[arg(short = 'h', long = "hostname", value_name = "string")]
    pub hostname: Option<String>,
    /// Container NIS domain name
    #[arg(long = "domainname", value_name = "string")]
    pub domainname: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long = "interactive", value_name = "bool", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub interactive: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file", value_name = "list")]
    pub label_file: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only", value_name = "bool", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub read_only: Option<String>,
    /// Restart policy to apply when a container exits (default "no")
    #[arg(long = "restart", value_name = "string")]
    pub restart: Option<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal", value_name = "string")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", value_name = "int", allow_hyphen_values = true)]
    pub stop_timeout: Option<String>,
    /// Sysctl options
    #[arg(long = "sysctl", value_name = "map")]
    pub sysctl: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long = "tty", value_name = "bool", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tty: Option<String>,
    /// Ulimit options
    #[arg(long = "ulimit", value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long = "user", value_name = "string")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "string")]
    pub workdir: Option<String>,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long = "rm", value_name = "bool", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub rm: Option<String>,

    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "list")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "list")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long = "privileged", value_name = "bool", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub privileged: Option<String>,
    /// Security Options
    #[arg(long = "security-opt", value_name = "list")]
    pub security_opt: Vec<String>,
    /// User namespace to use
    #[arg(long = "userns", value_name = "string")]
    pub userns: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long = "cgroupns", value_name = "string")]
    pub cgroupns: Option<String>,

    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "list")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long = "dns", value_name = "list")]
    pub dns: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", visible_alias = "dns-opt", value_name = "list")]
    pub dns_option: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search", value_name = "list")]
    pub dns_search: Vec<String>,
    /// Expose a port or a range of ports
    #[arg(long = "expose", value_name = "list")]
    pub expose: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long = "ip", value_name = "string")]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long = "ip6", value_name = "string")]
    pub ip6: Option<String>,
    /// Add link to another container
    #[arg(long = "link", value_name = "list")]
    pub link: Vec<String>,
    /// Container IPv4/IPv6 link-local addresses
    #[arg(long = "link-local-ip", value_name = "list")]
    pub link_local_ip: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address", value_name = "string")]
    pub mac_address: Option<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish", value_name = "list")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all", value_name = "bool", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub publish_all: Option<String>,
    /// Connect a container to a network
    #[arg(long = "network", visible_alias = "net", value_name = "network")]
    pub network: Vec<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", visible_alias = "net-alias", value_name = "list")]
    pub network_alias: Vec<String>,

    /// Logging driver for the container
    #[arg(long = "log-driver", value_name = "string")]
    pub log_driver: Option<String>,
    /// Optional volume driver for the container
    #[arg(long = "volume-driver", value_name = "string")]
    pub volume_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt", value_name = "list")]
    pub log_opt: Vec<String>,
    /// Storage driver options for the container
    #[arg(long = "storage-opt", value_name = "list")]
    pub storage_opt: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long = "tmpfs", value_name = "list")]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from", value_name = "list")]
    pub volumes_from: Vec<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume", value_name = "list")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long = "mount", value_name = "mount")]
    pub mount: Vec<String>,

    /// Command to run to check health
    #[arg(long = "health-cmd", value_name = "string", allow_hyphen_values = true)]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long = "health-interval", value_name = "duration", allow_hyphen_values = true)]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries", value_name = "int", allow_hyphen_values = true)]
    pub health_retries: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long = "health-timeout", value_name = "duration", allow_hyphen_values = true)]
    pub health_timeout: Option<String>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-period", value_name = "duration", allow_hyphen_values = true)]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-interval", value_name = "duration", allow_hyphen_values = true)]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck", value_name = "bool", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub no_healthcheck: Option<String>,

    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long = "blkio-weight", value_name = "uint16")]
    pub blkio_weight: Option<String>,
    /// Block IO weight (relative device weight)
    #[arg(long = "blkio-weight-device", value_name = "list")]
    pub blkio_weight_device: Vec<String>,
    /// Write the container ID to the file
    #[arg(long = "cidfile", value_name = "string")]
    pub cidfile: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// CPU count (Windows only)
    #[arg(long = "cpu-count", value_name = "int", hide = true)]
    pub cpu_count: Option<String>,
    /// CPU percent (Windows only)
    #[arg(long = "cpu-percent", value_name = "int", hide = true)]
    pub cpu_percent: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", value_name = "int")]
    pub cpu_period: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", value_name = "int", allow_hyphen_values = true)]
    pub cpu_quota: Option<String>,
    /// Limit CPU real-time period in microseconds
    #[arg(long = "cpu-rt-period", value_name = "int")]
    pub cpu_rt_period: Option<String>,
    /// Limit CPU real-time runtime in microseconds
    #[arg(long = "cpu-rt-runtime", value_name = "int")]
    pub cpu_rt_runtime: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    pub cpu_shares: Option<String>,
    /// Number of CPUs
    #[arg(long = "cpus", value_name = "decimal")]
    pub cpus: Option<String>,
    /// Limit read rate (bytes per second) from a device
    #[arg(long = "device-read-bps", value_name = "list")]
    pub device_read_bps: Vec<String>,
    /// Limit read rate (IO per second) from a device
    #[arg(long = "device-read-iops", value_name = "list")]
    pub device_read_iops: Vec<String>,
    /// Limit write rate (bytes per second) to a device
    #[arg(long = "device-write-bps", value_name = "list")]
    pub device_write_bps: Vec<String>,
    /// Limit write rate (IO per second) to a device
    #[arg(long = "device-write-iops", value_name = "list")]
    pub device_write_iops: Vec<String>,
    /// Maximum IO bandwidth limit for the system drive (Windows only)
    #[arg(long = "io-maxbandwidth", value_name = "bytes", hide = true)]
    pub io_maxbandwidth: Option<String>,
    /// Maximum IOps limit for the system drive (Windows only)
    #[arg(long = "io-maxiops", value_name = "uint", hide = true)]
    pub io_maxiops: Option<String>,
    /// Kernel memory limit
    #[arg(long = "kernel-memory", value_name = "bytes")]
    pub kernel_memory: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long = "memory", value_name = "bytes")]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "bytes")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container memory swappiness (0 to 100) (default -1)
    #[arg(long = "memory-swappiness", value_name = "int", allow_hyphen_values = true)]
    pub memory_swappiness: Option<String>,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable", value_name = "bool", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub oom_kill_disable: Option<String>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj", value_name = "int", allow_hyphen_values = true)]
    pub oom_score_adj: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "int", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,

    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent", value_name = "string")]
    pub cgroup_parent: Option<String>,
    /// IPC mode to use
    #[arg(long = "ipc", value_name = "string")]
    pub ipc: Option<String>,
    /// Container isolation technology
    #[arg(long = "isolation", value_name = "string")]
    pub isolation: Option<String>,
    /// PID namespace to use
    #[arg(long = "pid", value_name = "string")]
    pub pid: Option<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size", value_name = "bytes")]
    pub shm_size: Option<String>,
    /// UTS namespace to use
    #[arg(long = "uts", value_name = "string")]
    pub uts: Option<String>,
    /// Runtime to use for this container
    #[arg(long = "runtime", value_name = "string")]
    pub runtime: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long = "init", value_name = "bool", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub init: Option<String>,
    /// Add an annotation to the container (passed through to the OCI runtime)
    #[arg(long = "annotation", value_name = "map")]
    pub annotation: Vec<String>,
}

/// The create request and what the command needs besides it.
#[derive(Debug, Clone)]
pub struct CreateConfig {
    pub body: ContainerCreateBody,
    /// `--cidfile`.
    pub cidfile: String,
    /// `-a` was given.
    pub attach_given: bool,
}

/// A boolean flag (`--rm`, `--rm=false`).
pub fn bool_flag(flag: &str, v: &Option<String>) -> OptResult<bool> {
    match v {
        None => Ok(false),
        Some(s) => super::go_parse_bool(s).map_err(|e| OptError::flag(flag, s, e)),
    }
}

fn validate_list(flag: &str, values: &[String], f: impl Fn(&str) -> Result<String, String>) -> OptResult<Vec<String>> {
    values.iter().map(|v| f(v).map_err(|e| OptError::flag(flag, v, e))).collect()
}

fn opt_num(flag: &str, v: &Option<String>, bits: u32) -> OptResult<i64> {
    v.as_deref().map_or(Ok(0), |s| super::int_flag(flag, s, bits))
}

fn opt_mem(flag: &str, v: &Option<String>) -> OptResult<i64> {
    v.as_deref().map_or(Ok(0), |s| super::mem_bytes_flag(flag, s))
}

fn opt_dur(flag: &str, v: &Option<String>) -> OptResult<i64> {
    v.as_deref().map_or(Ok(0), |s| super::duration_flag(flag, s))
}

/// `container.PidMode.Valid` and friends: `""`, `host`, `container:<id>` (pid, ipc-like).
fn valid_ns_mode(v: &str, allow_container: bool) -> bool {
    match v.split_once(':') {
        None => v.is_empty() || v == "host",
        Some(("container", id)) => allow_container && !id.is_empty(),
        _ => false,
    }
}

/// Linux device validation (`validateLinuxPath` with the device-mode validator).
fn validate_device(val: &str) -> Result<String, String> {
    let valid_mode = |m: &str| {
        !m.is_empty() && m.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) && {
            let mut seen = std::collections::HashSet::new();
            m.chars().all(|c| seen.insert(c))
        }
    };
    if val.matches(':').count() > 2 {
        return Err(format!("bad format for path: {val}"));
    }
    let split: Vec<&str> = val.splitn(3, ':').collect();
    if split[0].is_empty() {
        return Err(format!("bad format for path: {val}"));
    }
    let (container_path, out) = match split.as_slice() {
        [p] => (p.to_string(), mounts::clean_path(p)),
        [a, b] if valid_mode(b) => (a.to_string(), format!("{}:{b}", mounts::clean_path(a))),
        [a, b] => (b.to_string(), format!("{a}:{}", mounts::clean_path(b))),
        [a, b, c] => {
            if !valid_mode(c) {
                return Err(format!("bad mode specified: {c}"));
            }
            (b.to_string(), format!("{a}:{b}:{c}"))
        }
        _ => return Err(format!("bad format for path: {val}")),
    };
    if !container_path.starts_with('/') {
        return Err(format!("{container_path} is not an absolute path"));
    }
    Ok(out)
}

/// `parseLinuxDevice`.
fn parse_device(device: &str) -> Result<DeviceMapping, String> {
    let valid_mode = |m: &str| !m.is_empty() && m.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    let arr: Vec<&str> = device.splitn(4, ':').collect();
    let (src, mut dst, mut perms) = (arr[0].to_owned(), String::new(), "rwm".to_owned());
    match arr.len() {
        1 => {}
        2 => {
            if valid_mode(arr[1]) {
                perms = arr[1].to_owned();
            } else {
                dst = arr[1].to_owned();
            }
        }
        3 => {
            perms = arr[2].to_owned();
            if !valid_mode(arr[1]) {
                dst = arr[1].to_owned();
            }
        }
        _ => return Err(format!("invalid device specification: {device}")),
    }
    if dst.is_empty() {
        dst = src.clone();
    }
    Ok(DeviceMapping { path_on_host: Some(src), path_in_container: Some(dst), cgroup_permissions: Some(perms) })
}

/// A CDI device name (`vendor.com/class=name`).
fn is_cdi_name(device: &str) -> bool {
    let Some((kind, name)) = device.split_once('=') else {
        return false;
    };
    let Some((vendor, class)) = kind.split_once('/') else {
        return false;
    };
    !vendor.is_empty() && !class.is_empty() && !name.is_empty() && vendor.contains('.')
}

/// `parseSecurityOpts` + `parseSystemPaths`: seccomp profiles are read and sent inline;
/// `systempaths=unconfined` becomes empty masked/read-only path lists.
#[allow(clippy::type_complexity)]
fn security_opts(opts: &[String]) -> OptResult<(Vec<String>, Option<Vec<String>>, Option<Vec<String>>)> {
    let mut out = Vec::new();
    let (mut masked, mut ro) = (None, None);
    for opt in opts {
        let (k, v, ok) = match opt.split_once('=') {
            Some((k, v)) => (k, v, true),
            None if opt != "no-new-privileges" => match opt.split_once(':') {
                Some((k, v)) => (k, v, true),
                None => (opt.as_str(), "", false),
            },
            None => (opt.as_str(), "", false),
        };
        if (!ok || v.is_empty()) && k != "no-new-privileges" {
            return Err(OptError::Parse(format!("Invalid --security-opt: {}", super::go_quote(opt))));
        }
        if opt == "systempaths=unconfined" {
            masked = Some(Vec::new());
            ro = Some(Vec::new());
            continue;
        }
        if k == "seccomp" && v != "builtin" && v != "unconfined" {
            let data = std::fs::read(v).map_err(|e| {
                OptError::Parse(format!("opening seccomp profile ({v}) failed: open {v}: {}", super::io_text(&e)))
            })?;
            let json: serde_json::Value = serde_json::from_slice(&data)
                .map_err(|e| OptError::Parse(format!("compacting json for seccomp profile ({v}) failed: {e}")))?;
            out.push(format!("seccomp={json}"));
            continue;
        }
        out.push(opt.clone());
    }
    Ok((out, masked, ro))
}

/// `--gpus` is not supported by Wharf (no device-request drivers).
fn gpus(v: &Option<String>) -> OptResult<Option<Vec<DeviceRequest>>> {
    match v {
        None => Ok(None),
        Some(s) => Err(OptError::flag("--gpus", s, "GPU device requests are not supported by wharf")),
    }
}

/// docker's `parse()`: the flags, the image and the command into a create request.
/// `console_size` is `(rows, cols)` of the terminal (`(0, 0)` when not one).
pub fn parse(f: &ContainerFlags, image: &str, args: &[String], console_size: (u16, u16)) -> OptResult<CreateConfig> {
    // --- pflag-time validation -----------------------------------------------------------
    let attach = validate_list("-a, --attach", &f.attach, super::validate_attach)?;
    let device_cgroup_rules =
        validate_list("--device-cgroup-rule", &f.device_cgroup_rule, super::validate_device_cgroup_rule)?;
    let device_requests = gpus(&f.gpus)?;
    let env = validate_list("-e, --env", &f.env, super::validate_env)?;
    let interactive = bool_flag("-i, --interactive", &f.interactive)?;
    let labels = validate_list("-l, --label", &f.label, super::validate_label)?;
    let read_only = bool_flag("--read-only", &f.read_only)?;
    let stop_timeout = f.stop_timeout.as_deref().map(|s| super::int_flag("--stop-timeout", s, 64)).transpose()?;
    let sysctls = validate_list("--sysctl", &f.sysctl, super::validate_sysctl)?;
    let tty = bool_flag("-t, --tty", &f.tty)?;
    let mut ulimits = Vec::new();
    for u in &f.ulimit {
        let parsed = super::parse_ulimit(u).map_err(|e| OptError::flag("--ulimit", u, e))?;
        // later values replace earlier ones of the same name
        ulimits.retain(|x: &bollard::models::ResourcesUlimits| x.name != parsed.name);
        ulimits.push(parsed);
    }
    ulimits.sort_by(|a, b| a.name.cmp(&b.name));
    let auto_remove = bool_flag("--rm", &f.rm)?;
    let privileged = bool_flag("--privileged", &f.privileged)?;
    let extra_hosts = validate_list("--add-host", &f.add_host, super::validate_extra_host)?;
    let dns = validate_list("--dns", &f.dns, super::validate_ip)?;
    let dns_search = validate_list("--dns-search", &f.dns_search, super::validate_dns_search)?;
    let links = validate_list("--link", &f.link, super::validate_link)?;
    let publish_all = bool_flag("-P, --publish-all", &f.publish_all)?;
    let mut networks = Vec::new();
    for n in &f.network {
        networks.push(network::parse_network(n).map_err(|e| OptError::flag("--network", n, e))?);
    }
    let mut mounts_list = Vec::new();
    for m in &f.mount {
        mounts_list.push(mounts::parse_mount(m).map_err(|e| OptError::flag("--mount", m, e))?);
    }
    let health_interval = opt_dur("--health-interval", &f.health_interval)?;
    let health_retries = opt_num("--health-retries", &f.health_retries, 64)?;
    let health_timeout = opt_dur("--health-timeout", &f.health_timeout)?;
    let health_start_period = opt_dur("--health-start-period", &f.health_start_period)?;
    let health_start_interval = opt_dur("--health-start-interval", &f.health_start_interval)?;
    let no_healthcheck = bool_flag("--no-healthcheck", &f.no_healthcheck)?;
    let blkio_weight = f.blkio_weight.as_deref().map_or(Ok(0), |s| super::uint_flag("--blkio-weight", s, 16))? as u16;
    let weight_devices = f
        .blkio_weight_device
        .iter()
        .map(|v| super::parse_weight_device(v).map_err(|e| OptError::flag("--blkio-weight-device", v, e)))
        .collect::<OptResult<Vec<_>>>()?;
    let cpu_count = opt_num("--cpu-count", &f.cpu_count, 64)?;
    let cpu_percent = opt_num("--cpu-percent", &f.cpu_percent, 64)?;
    let cpu_period = opt_num("--cpu-period", &f.cpu_period, 64)?;
    let cpu_quota = opt_num("--cpu-quota", &f.cpu_quota, 64)?;
    let cpu_rt_period = opt_num("--cpu-rt-period", &f.cpu_rt_period, 64)?;
    let cpu_rt_runtime = opt_num("--cpu-rt-runtime", &f.cpu_rt_runtime, 64)?;
    let cpu_shares = opt_num("-c, --cpu-shares", &f.cpu_shares, 64)?;
    let nano_cpus = match &f.cpus {
        None => 0,
        Some(s) => super::parse_cpus(s).map_err(|e| OptError::flag("--cpus", s, e))?,
    };
    let throttle = |flag: &str, vals: &[String], iops: bool| {
        vals.iter()
            .map(|v| {
                if iops { super::parse_throttle_iops(v) } else { super::parse_throttle_bps(v) }
                    .map_err(|e| OptError::flag(flag, v, e))
            })
            .collect::<OptResult<Vec<_>>>()
    };
    let read_bps = throttle("--device-read-bps", &f.device_read_bps, false)?;
    let read_iops = throttle("--device-read-iops", &f.device_read_iops, true)?;
    let write_bps = throttle("--device-write-bps", &f.device_write_bps, false)?;
    let write_iops = throttle("--device-write-iops", &f.device_write_iops, true)?;
    let io_max_bw = opt_mem("--io-maxbandwidth", &f.io_maxbandwidth)?;
    let io_max_iops = f.io_maxiops.as_deref().map_or(Ok(0), |s| super::uint_flag("--io-maxiops", s, 64))?;
    let _kernel_memory = opt_mem("--kernel-memory", &f.kernel_memory)?;
    let memory = opt_mem("-m, --memory", &f.memory)?;
    let memory_reservation = opt_mem("--memory-reservation", &f.memory_reservation)?;
    let memory_swap = f.memory_swap.as_deref().map_or(Ok(0), |s| super::mem_swap_flag("--memory-swap", s))?;
    let swappiness = match &f.memory_swappiness {
        None => -1,
        Some(s) => super::int_flag("--memory-swappiness", s, 64)?,
    };
    let oom_kill_disable = bool_flag("--oom-kill-disable", &f.oom_kill_disable)?;
    let oom_score_adj = opt_num("--oom-score-adj", &f.oom_score_adj, 64)?;
    let pids_limit = opt_num("--pids-limit", &f.pids_limit, 64)?;
    let shm_size = opt_mem("--shm-size", &f.shm_size)?;
    let init = f.init.as_ref().map(|_| bool_flag("--init", &f.init)).transpose()?;
    let annotations: HashMap<String, String> = super::kv_to_map(&f.annotation);
    let sysctl_map = super::kv_to_map(&sysctls);

    // --- parse() -------------------------------------------------------------------------
    let mut attach_stdin = attach.iter().any(|a| a == "stdin");
    let mut attach_stdout = attach.iter().any(|a| a == "stdout");
    let mut attach_stderr = attach.iter().any(|a| a == "stderr");
    let mac = f.mac_address.clone().unwrap_or_default();
    if !mac.is_empty() && !super::validate_mac(&mac) {
        return Err(OptError::Parse(format!("{mac} is not a valid mac address")));
    }
    if interactive {
        attach_stdin = true;
    }
    if attach.is_empty() {
        attach_stdout = true;
        attach_stderr = true;
    }
    if swappiness != -1 && !(0..=100).contains(&swappiness) {
        return Err(OptError::Parse(format!("invalid value: {swappiness}. Valid memory swappiness range is 0-100")));
    }
    let (binds, volumes) = mounts::split_volumes(&f.volume).map_err(OptError::Parse)?;
    let tmpfs = mounts::parse_tmpfs(&f.tmpfs);
    let cmd = (!args.is_empty()).then(|| args.to_vec());
    let entrypoint = match f.entrypoint.as_deref() {
        Some("") => Some(vec![String::new()]),
        Some(e) => Some(vec![e.to_owned()]),
        None => None,
    };
    let converted = ports::convert_to_standard_notation(&f.publish)?;
    let (mut exposed, bindings) = ports::parse_port_specs(&converted)?;
    ports::add_exposed(&mut exposed, &f.expose)?;

    let mut devices = Vec::new();
    let mut cdi = Vec::new();
    for d in &f.device {
        if is_cdi_name(d) {
            cdi.push(d.clone());
            continue;
        }
        let validated = validate_device(d).map_err(OptError::Parse)?;
        devices.push(parse_device(&validated).map_err(OptError::Parse)?);
    }
    let mut device_requests = device_requests.unwrap_or_default();
    if !cdi.is_empty() {
        device_requests.push(DeviceRequest {
            driver: Some("cdi".into()),
            device_ids: Some(cdi),
            count: Some(0),
            ..Default::default()
        });
    }

    let env = super::read_kv_env_strings(&f.env_file, &env)?;
    let labels = super::read_kv_strings(&f.label_file, &labels)?;

    let pid_mode = f.pid.clone().unwrap_or_default();
    if !valid_ns_mode(&pid_mode, true) {
        return Err(OptError::Parse("--pid: invalid PID mode".into()));
    }
    let uts_mode = f.uts.clone().unwrap_or_default();
    if !valid_ns_mode(&uts_mode, false) {
        return Err(OptError::Parse("--uts: invalid UTS mode".into()));
    }
    let userns_mode = f.userns.clone().unwrap_or_default();
    if !valid_ns_mode(&userns_mode, false) {
        return Err(OptError::Parse("--userns: invalid USER mode".into()));
    }
    let cgroupns = match f.cgroupns.as_deref().unwrap_or("") {
        "" => HostConfigCgroupnsModeEnum::EMPTY,
        "host" => HostConfigCgroupnsModeEnum::HOST,
        "private" => HostConfigCgroupnsModeEnum::PRIVATE,
        _ => return Err(OptError::Parse("--cgroupns: invalid CGROUP mode".into())),
    };
    let restart = super::parse_restart_policy(f.restart.as_deref().unwrap_or("no"))?;
    let log_driver = f.log_driver.clone().unwrap_or_default();
    if log_driver == "none" && !f.log_opt.is_empty() {
        return Err(OptError::Parse(format!("invalid logging opts for driver {log_driver}")));
    }
    let log_opts = super::kv_to_map(&f.log_opt);
    let (security_opt, masked_paths, readonly_paths) = security_opts(&f.security_opt)?;
    let mut storage_opt = HashMap::new();
    for o in &f.storage_opt {
        let Some((k, v)) = o.split_once('=') else {
            return Err(OptError::Parse("invalid storage option".into()));
        };
        storage_opt.insert(k.to_owned(), v.to_owned());
    }

    let health_cmd = f.health_cmd.clone().unwrap_or_default();
    let have_health = !health_cmd.is_empty()
        || health_interval != 0
        || health_timeout != 0
        || health_start_period != 0
        || health_retries != 0
        || health_start_interval != 0;
    let healthcheck = if no_healthcheck {
        if have_health {
            return Err(OptError::Parse("--no-healthcheck conflicts with --health-* options".into()));
        }
        Some(HealthConfig { test: Some(vec!["NONE".into()]), ..Default::default() })
    } else if have_health {
        for (v, name) in [
            (health_interval, "--health-interval"),
            (health_timeout, "--health-timeout"),
            (health_retries, "--health-retries"),
            (health_start_period, "--health-start-period"),
            (health_start_interval, "--health-start-interval"),
        ] {
            if v < 0 {
                return Err(OptError::Parse(format!("{name} cannot be negative")));
            }
        }
        let nz = |v: i64| (v != 0).then_some(v);
        Some(HealthConfig {
            test: (!health_cmd.is_empty()).then(|| vec!["CMD-SHELL".into(), health_cmd]),
            interval: nz(health_interval),
            timeout: nz(health_timeout),
            start_period: nz(health_start_period),
            start_interval: nz(health_start_interval),
            retries: nz(health_retries),
        })
    } else {
        None
    };

    let isolation = match f.isolation.as_deref().unwrap_or("") {
        "" => HostConfigIsolationEnum::EMPTY,
        "default" => HostConfigIsolationEnum::DEFAULT,
        "process" => HostConfigIsolationEnum::PROCESS,
        "hyperv" => HostConfigIsolationEnum::HYPERV,
        other => {
            return Err(OptError::Parse(format!("invalid isolation: {other}. Use one of default, process, hyperv")));
        }
    };

    if auto_remove && restart.name.is_some_and(|n| n != RestartPolicyNameEnum::NO && n != RestartPolicyNameEnum::EMPTY)
    {
        return Err(OptError::Parse("conflicting options: cannot specify both --restart and --rm".into()));
    }

    let common = network::Common {
        aliases: &f.network_alias,
        links: &links,
        ipv4: f.ip.as_deref().unwrap_or(""),
        ipv6: f.ip6.as_deref().unwrap_or(""),
        mac: &mac,
        link_local_ips: &f.link_local_ip,
    };
    let (endpoints, network_mode) = network::endpoints(&networks, &common)?;

    let caps = |v: &[String]| -> Option<Vec<String>> {
        if v.is_empty() {
            return None;
        }
        let mut out: Vec<String> = Vec::new();
        for c in v {
            let c = c.to_uppercase();
            let c = if c == "ALL" || c.starts_with("CAP_") { c } else { format!("CAP_{c}") };
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out.sort();
        Some(out)
    };

    let nonempty = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let port_bindings: bollard::models::PortMap = bindings.into_iter().map(|(k, v)| (k, Some(v))).collect();

    let host_config = HostConfig {
        binds: nonempty(binds),
        container_id_file: Some(f.cidfile.clone().unwrap_or_default()),
        log_config: Some(HostConfigLogConfig { typ: Some(log_driver), config: Some(log_opts) }),
        network_mode: Some(network_mode),
        port_bindings: Some(port_bindings),
        restart_policy: Some(if restart.name.is_none() {
            RestartPolicy { name: Some(RestartPolicyNameEnum::EMPTY), maximum_retry_count: Some(0) }
        } else {
            restart
        }),
        auto_remove: Some(auto_remove),
        volume_driver: Some(f.volume_driver.clone().unwrap_or_default()),
        volumes_from: nonempty(f.volumes_from.clone()),
        console_size: Some(vec![console_size.0.into(), console_size.1.into()]),
        cap_add: caps(&f.cap_add),
        cap_drop: caps(&f.cap_drop),
        cgroupns_mode: Some(cgroupns),
        dns: Some(dns),
        dns_options: Some(f.dns_option.clone()),
        dns_search: Some(dns_search),
        extra_hosts: nonempty(extra_hosts),
        group_add: nonempty(f.group_add.clone()),
        ipc_mode: Some(f.ipc.clone().unwrap_or_default()),
        cgroup: Some(String::new()),
        links: nonempty(links.clone()),
        oom_score_adj: Some(oom_score_adj),
        pid_mode: Some(pid_mode),
        privileged: Some(privileged),
        publish_all_ports: Some(publish_all),
        readonly_rootfs: Some(read_only),
        security_opt: nonempty(security_opt),
        storage_opt: (!storage_opt.is_empty()).then_some(storage_opt),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        uts_mode: Some(uts_mode),
        userns_mode: Some(userns_mode),
        shm_size: Some(shm_size),
        sysctls: (!sysctl_map.is_empty()).then_some(sysctl_map),
        runtime: f.runtime.clone().filter(|r| !r.is_empty()),
        isolation: Some(isolation),
        mounts: (!mounts_list.is_empty()).then_some(mounts_list),
        masked_paths,
        readonly_paths,
        annotations: (!annotations.is_empty()).then_some(annotations),
        init,
        // Resources
        cgroup_parent: Some(f.cgroup_parent.clone().unwrap_or_default()),
        memory: Some(memory),
        memory_reservation: Some(memory_reservation),
        memory_swap: Some(memory_swap),
        memory_swappiness: Some(swappiness),
        oom_kill_disable: Some(oom_kill_disable),
        nano_cpus: Some(nano_cpus),
        cpu_count: Some(cpu_count),
        cpu_percent: Some(cpu_percent),
        cpu_shares: Some(cpu_shares),
        cpu_period: Some(cpu_period),
        cpuset_cpus: Some(f.cpuset_cpus.clone().unwrap_or_default()),
        cpuset_mems: Some(f.cpuset_mems.clone().unwrap_or_default()),
        cpu_quota: Some(cpu_quota),
        cpu_realtime_period: Some(cpu_rt_period),
        cpu_realtime_runtime: Some(cpu_rt_runtime),
        pids_limit: Some(pids_limit),
        blkio_weight: Some(blkio_weight),
        blkio_weight_device: Some(weight_devices),
        blkio_device_read_bps: Some(read_bps),
        blkio_device_write_bps: Some(write_bps),
        blkio_device_read_iops: Some(read_iops),
        blkio_device_write_iops: Some(write_iops),
        io_maximum_iops: Some(io_max_iops as i64),
        io_maximum_bandwidth: Some(io_max_bw),
        ulimits: Some(ulimits),
        device_cgroup_rules: nonempty(device_cgroup_rules),
        devices: Some(devices),
        device_requests: nonempty_vec(device_requests),
    };

    let open_stdin = interactive;
    let body = ContainerCreateBody {
        hostname: Some(f.hostname.clone().unwrap_or_default()),
        domainname: Some(f.domainname.clone().unwrap_or_default()),
        user: Some(f.user.clone().unwrap_or_default()),
        attach_stdin: Some(attach_stdin),
        attach_stdout: Some(attach_stdout),
        attach_stderr: Some(attach_stderr),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: Some(tty),
        open_stdin: Some(open_stdin),
        // When allocating stdin in attached mode, close stdin at client disconnect
        stdin_once: Some(open_stdin && attach_stdin),
        env: nonempty(env),
        cmd,
        healthcheck,
        image: Some(image.to_owned()),
        volumes: Some(volumes),
        working_dir: Some(f.workdir.clone().unwrap_or_default()),
        entrypoint,
        labels: Some(super::kv_to_map(&labels)),
        stop_signal: f.stop_signal.clone().filter(|s| !s.is_empty()),
        stop_timeout,
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig { endpoints_config: Some(endpoints) }),
        ..Default::default()
    };
    Ok(CreateConfig { body, cidfile: f.cidfile.clone().unwrap_or_default(), attach_given: !attach.is_empty() })
}

fn nonempty_vec<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::{Value, json};

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct T {
        #[command(flatten)]
        f: ContainerFlags,
        #[arg(trailing_var_arg = true, num_args = 1..)]
        rest: Vec<String>,
    }

    fn flags(args: &[&str]) -> ContainerFlags {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        v.push("busybox");
        T::try_parse_from(v).unwrap().f
    }

    fn body(args: &[&str]) -> Value {
        let c = parse(&flags(args), "busybox", &[], (0, 0)).unwrap();
        serde_json::to_value(&c.body).unwrap()
    }

    fn err(args: &[&str]) -> String {
        parse(&flags(args), "busybox", &[], (0, 0)).unwrap_err().to_string()
    }

    #[test]
    fn defaults_match_the_docker_cli() {
        // Captured from `docker create busybox echo hi` (CLI 28.2.2, API 1.50), nulls removed.
        let c = parse(&ContainerFlags::default(), "busybox", &["echo".into(), "hi".into()], (0, 0)).unwrap();
        let got = serde_json::to_value(&c.body).unwrap();
        let want: Value = serde_json::from_str(
            r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Cmd":["echo","hi"],"Image":"busybox","Volumes":{},"WorkingDir":"","Labels":{},"HostConfig":{"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"VolumeDriver":"","ConsoleSize":[0,0],"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"IpcMode":"","Cgroup":"","OomScoreAdj":0,"PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],"MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0},"NetworkingConfig":{"EndpointsConfig":{"default":{"MacAddress":"","GwPriority":0,"NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0}}}}"#,
        )
        .unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn interactive_tty_rm() {
        let b = body(&["-it", "--rm"]);
        assert_eq!(b["AttachStdin"], true);
        assert_eq!(b["OpenStdin"], true);
        assert_eq!(b["StdinOnce"], true);
        assert_eq!(b["Tty"], true);
        assert_eq!(b["HostConfig"]["AutoRemove"], true);
        let b = body(&["--rm=false", "-i=false"]);
        assert_eq!(b["HostConfig"]["AutoRemove"], false);
        assert_eq!(b["OpenStdin"], false);
        let b = body(&["-a", "stdout"]);
        assert_eq!(
            (b["AttachStdin"].clone(), b["AttachStdout"].clone(), b["AttachStderr"].clone()),
            (json!(false), json!(true), json!(false))
        );
    }

    #[test]
    fn ports_and_expose() {
        let b = body(&["-p", "8080:80", "-p", "127.0.0.1::53/udp", "--expose", "9000-9001", "-P"]);
        assert_eq!(b["ExposedPorts"], json!({"80/tcp":{},"53/udp":{},"9000/tcp":{},"9001/tcp":{}}));
        assert_eq!(
            b["HostConfig"]["PortBindings"],
            json!({"80/tcp":[{"HostIp":"","HostPort":"8080"}],"53/udp":[{"HostIp":"127.0.0.1","HostPort":""}]})
        );
        assert_eq!(b["HostConfig"]["PublishAllPorts"], true);
        assert_eq!(err(&["-p", "abc"]), "invalid containerPort: abc");
    }

    #[test]
    fn env_labels_files() {
        let dir = tempfile::tempdir().unwrap();
        let ef = dir.path().join("e");
        std::fs::write(&ef, "A=1\n# c\nB=2\n").unwrap();
        let lf = dir.path().join("l");
        std::fs::write(&lf, "x=1\ny\n").unwrap();
        let (ef, lf) = (ef.to_string_lossy(), lf.to_string_lossy());
        let b = body(&["--env-file", &ef, "-e", "C=3", "--label-file", &lf, "-l", "z=9"]);
        assert_eq!(b["Env"], json!(["A=1", "B=2", "C=3"]));
        assert_eq!(b["Labels"], json!({"x":"1","z":"9"}));
        assert_eq!(
            err(&["-e", "=x"]),
            "invalid argument \"=x\" for \"-e, --env\" flag: invalid environment variable: =x"
        );
    }

    #[test]
    fn resources_and_units() {
        let b = body(&[
            "-m",
            "512m",
            "--memory-swap",
            "-1",
            "--memory-reservation",
            "256m",
            "--cpus",
            "1.5",
            "-c",
            "512",
            "--cpu-period",
            "100000",
            "--cpu-quota",
            "50000",
            "--cpuset-cpus",
            "0-1",
            "--pids-limit",
            "100",
            "--shm-size",
            "64m",
            "--blkio-weight",
            "300",
            "--oom-score-adj",
            "-500",
            "--memory-swappiness",
            "10",
            "--oom-kill-disable",
            "--ulimit",
            "nofile=1024:2048",
            "--ulimit",
            "core=0",
        ]);
        let h = &b["HostConfig"];
        assert_eq!(h["Memory"], 512 << 20);
        assert_eq!(h["MemorySwap"], -1);
        assert_eq!(h["MemoryReservation"], 256 << 20);
        assert_eq!(h["NanoCpus"], 1_500_000_000i64);
        assert_eq!(h["CpuShares"], 512);
        assert_eq!(h["CpuPeriod"], 100000);
        assert_eq!(h["CpuQuota"], 50000);
        assert_eq!(h["CpusetCpus"], "0-1");
        assert_eq!(h["PidsLimit"], 100);
        assert_eq!(h["ShmSize"], 64 << 20);
        assert_eq!(h["BlkioWeight"], 300);
        assert_eq!(h["OomScoreAdj"], -500);
        assert_eq!(h["MemorySwappiness"], 10);
        assert_eq!(h["OomKillDisable"], true);
        assert_eq!(h["Ulimits"], json!([{"Name":"core","Soft":0,"Hard":0},{"Name":"nofile","Soft":1024,"Hard":2048}]));
        assert_eq!(err(&["-m", "1q"]), "invalid argument \"1q\" for \"-m, --memory\" flag: invalid suffix: 'q'");
        assert_eq!(err(&["--memory-swappiness", "101"]), "invalid value: 101. Valid memory swappiness range is 0-100");
        assert_eq!(
            err(&["-c", "x"]),
            "invalid argument \"x\" for \"-c, --cpu-shares\" flag: strconv.ParseInt: parsing \"x\": invalid syntax"
        );
    }

    #[test]
    fn restart_and_rm() {
        let b = body(&["--restart", "on-failure:5"]);
        assert_eq!(b["HostConfig"]["RestartPolicy"], json!({"Name":"on-failure","MaximumRetryCount":5}));
        assert_eq!(
            err(&["--rm", "--restart", "always"]),
            "conflicting options: cannot specify both --restart and --rm"
        );
        // `--rm --restart no` is fine
        body(&["--rm", "--restart", "no"]);
    }

    #[test]
    fn health_options() {
        let b = body(&[
            "--health-cmd",
            "curl -f http://localhost/",
            "--health-interval",
            "30s",
            "--health-timeout",
            "5s",
            "--health-retries",
            "3",
            "--health-start-period",
            "1m",
            "--health-start-interval",
            "2s",
        ]);
        assert_eq!(
            b["Healthcheck"],
            json!({"Test":["CMD-SHELL","curl -f http://localhost/"],"Interval":30_000_000_000i64,"Timeout":5_000_000_000i64,"Retries":3,"StartPeriod":60_000_000_000i64,"StartInterval":2_000_000_000i64})
        );
        assert_eq!(body(&["--no-healthcheck"])["Healthcheck"], json!({"Test":["NONE"]}));
        assert_eq!(
            err(&["--no-healthcheck", "--health-retries", "1"]),
            "--no-healthcheck conflicts with --health-* options"
        );
        assert_eq!(err(&["--health-interval", "-1s"]), "--health-interval cannot be negative");
        assert_eq!(
            err(&["--health-timeout", "soon"]),
            "invalid argument \"soon\" for \"--health-timeout\" flag: time: invalid duration \"soon\""
        );
    }

    #[test]
    fn volumes_mounts_tmpfs() {
        let b = body(&[
            "-v",
            "/data",
            "-v",
            "vol:/v:ro",
            "--mount",
            "type=tmpfs,dst=/t,tmpfs-size=1m",
            "--tmpfs",
            "/run:rw,size=64m",
            "--volumes-from",
            "other:ro",
            "--read-only",
        ]);
        assert_eq!(b["Volumes"], json!({"/data":{}}));
        assert_eq!(b["HostConfig"]["Binds"], json!(["vol:/v:ro"]));
        assert_eq!(
            b["HostConfig"]["Mounts"],
            json!([{"Target":"/t","Type":"tmpfs","TmpfsOptions":{"SizeBytes":1048576}}])
        );
        assert_eq!(b["HostConfig"]["Tmpfs"], json!({"/run":"rw,size=64m"}));
        assert_eq!(b["HostConfig"]["VolumesFrom"], json!(["other:ro"]));
        assert_eq!(b["HostConfig"]["ReadonlyRootfs"], true);
        assert_eq!(
            err(&["--mount", "type=bind"]),
            "invalid argument \"type=bind\" for \"--mount\" flag: target is required"
        );
    }

    #[test]
    fn networking() {
        let b = body(&[
            "--network",
            "mynet",
            "--network-alias",
            "web",
            "--ip",
            "172.20.0.5",
            "--mac-address",
            "92:d0:c6:0a:29:33",
            "--dns",
            "8.8.8.8",
            "--dns-search",
            "example.com",
            "--dns-option",
            "ndots:2",
            "--add-host",
            "db=10.0.0.2",
            "--hostname",
            "h",
            "--domainname",
            "d",
        ]);
        let h = &b["HostConfig"];
        assert_eq!(h["NetworkMode"], "mynet");
        assert_eq!(h["Dns"], json!(["8.8.8.8"]));
        assert_eq!(h["DnsSearch"], json!(["example.com"]));
        assert_eq!(h["DnsOptions"], json!(["ndots:2"]));
        assert_eq!(h["ExtraHosts"], json!(["db:10.0.0.2"]));
        let ep = &b["NetworkingConfig"]["EndpointsConfig"]["mynet"];
        assert_eq!(ep["Aliases"], json!(["web"]));
        assert_eq!(ep["IPAMConfig"], json!({"IPv4Address":"172.20.0.5"}));
        assert_eq!(ep["MacAddress"], "92:d0:c6:0a:29:33");
        assert_eq!((b["Hostname"].clone(), b["Domainname"].clone()), (json!("h"), json!("d")));
        assert_eq!(
            err(&["--dns", "x"]),
            "invalid argument \"x\" for \"--dns\" flag: IP address is not correctly formatted: x"
        );
        assert_eq!(err(&["--mac-address", "zz"]), "zz is not a valid mac address");
    }

    #[test]
    fn security_and_namespaces() {
        let b = body(&[
            "--cap-add",
            "net_admin",
            "--cap-add",
            "CAP_SYS_TIME",
            "--cap-drop",
            "all",
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            "systempaths=unconfined",
            "--privileged",
            "--pid",
            "host",
            "--ipc",
            "private",
            "--uts",
            "host",
            "--userns",
            "host",
            "--cgroupns",
            "private",
            "--cgroup-parent",
            "/p",
            "--group-add",
            "audio",
            "--init",
            "--runtime",
            "runc",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "--isolation",
            "default",
            "--device",
            "/dev/fuse",
            "--device",
            "/dev/sda:/dev/xvda:r",
            "--device-cgroup-rule",
            "c 1:3 mr",
            "--log-driver",
            "json-file",
            "--log-opt",
            "max-size=10m",
            "--stop-signal",
            "SIGINT",
            "--stop-timeout",
            "20",
            "-u",
            "1000:1000",
            "-w",
            "/work",
            "--entrypoint",
            "",
        ]);
        let h = &b["HostConfig"];
        assert_eq!(h["CapAdd"], json!(["CAP_NET_ADMIN", "CAP_SYS_TIME"]));
        assert_eq!(h["CapDrop"], json!(["ALL"]));
        assert_eq!(h["SecurityOpt"], json!(["no-new-privileges"]));
        assert_eq!(h["MaskedPaths"], json!([]));
        assert_eq!(h["ReadonlyPaths"], json!([]));
        assert_eq!(h["Privileged"], true);
        assert_eq!(h["PidMode"], "host");
        assert_eq!(h["IpcMode"], "private");
        assert_eq!(h["UTSMode"], "host");
        assert_eq!(h["UsernsMode"], "host");
        assert_eq!(h["CgroupnsMode"], "private");
        assert_eq!(h["CgroupParent"], "/p");
        assert_eq!(h["GroupAdd"], json!(["audio"]));
        assert_eq!(h["Init"], true);
        assert_eq!(h["Runtime"], "runc");
        assert_eq!(h["Sysctls"], json!({"net.ipv4.ip_forward":"1"}));
        assert_eq!(h["Isolation"], "default");
        assert_eq!(
            h["Devices"],
            json!([{"PathOnHost":"/dev/fuse","PathInContainer":"/dev/fuse","CgroupPermissions":"rwm"},
                   {"PathOnHost":"/dev/sda","PathInContainer":"/dev/xvda","CgroupPermissions":"r"}])
        );
        assert_eq!(h["DeviceCgroupRules"], json!(["c 1:3 mr"]));
        assert_eq!(h["LogConfig"], json!({"Type":"json-file","Config":{"max-size":"10m"}}));
        assert_eq!(b["StopSignal"], "SIGINT");
        assert_eq!(b["StopTimeout"], 20);
        assert_eq!(b["User"], "1000:1000");
        assert_eq!(b["WorkingDir"], "/work");
        assert_eq!(b["Entrypoint"], json!([""]));
        assert_eq!(err(&["--pid", "bogus"]), "--pid: invalid PID mode");
        assert_eq!(err(&["--security-opt", "label"]), "Invalid --security-opt: \"label\"");
        assert_eq!(err(&["--log-driver", "none", "--log-opt", "a=b"]), "invalid logging opts for driver none");
        assert_eq!(err(&["--device", "/dev/sda:rr:x"]), "bad mode specified: x");
        assert_eq!(err(&["--device", "/dev/sda:dev/xvda"]), "dev/xvda is not an absolute path");
    }

    #[test]
    fn gpus_are_refused_clearly() {
        assert_eq!(
            err(&["--gpus", "all"]),
            "invalid argument \"all\" for \"--gpus\" flag: GPU device requests are not supported by wharf"
        );
    }

    #[test]
    fn console_size() {
        let c = parse(&ContainerFlags::default(), "busybox", &[], (40, 120)).unwrap();
        assert_eq!(c.body.host_config.unwrap().console_size, Some(vec![40, 120]));
    }
}
