//! [`generate`]: [`SpecOptions`] → OCI spec, step by step as moby's `createSpec` does.
//!
//! The document is assembled as JSON in Docker's shape (Go's `omitempty` rules: absent, not
//! empty) and converted into [`oci_spec::runtime::Spec`] once at the end, so no default of the
//! Rust types leaks in.

use std::collections::BTreeMap;
use std::path::Path;

use oci_spec::runtime::Spec;
use serde_json::{Map, Value, json};

use super::caps::{normalize_capabilities, tweak_capabilities};
use super::devices::{self, default_device_rules, rule_entry};
use super::error::SpecError;
use super::host::{CgroupMode, HostInfo};
use super::mounts::{self, INIT_PATH, clean};
use super::parse::{IPC_SYSCTLS, SeccompChoice, parse_device_cgroup_rule, parse_security_opts};
use super::resources::{check_resources, resources_entry};
use super::seccomp::{default_seccomp, load_seccomp};
use super::user::resolve_user;
use super::{
    CgroupDriver, CgroupnsMode, DEFAULT_PATH_ENV, IpcMode, NetworkMode, OCI_VERSION, PidMode, SpecOptions, UtsMode,
};

/// Docker's masked paths (before the per-CPU `thermal_throttle` ones).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
pub const DEFAULT_READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The process as Docker derives it from image config plus overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedConfig {
    /// The executable (`Path` in `docker inspect`).
    pub path: String,
    /// Its arguments (`Args`).
    pub args: Vec<String>,
    /// User env with the image's variables it does not set.
    pub env: Vec<String>,
    pub user: String,
    /// Cleaned; empty when neither sets one.
    pub working_dir: String,
    pub stop_signal: String,
}

/// Merges the image config with the overrides as the daemon does at create: entrypoint and
/// command (`--entrypoint ""` drops the image's), env, user, working directory, stop signal.
pub fn merge_config(opts: &SpecOptions) -> Result<MergedConfig, SpecError> {
    let image = &opts.image;
    for env in &opts.env {
        if env.split('=').next().unwrap_or("").is_empty() {
            return Err(SpecError::InvalidConfig(format!("invalid environment variable: {env}")));
        }
    }
    let mut entrypoint = opts.entrypoint.clone();
    let mut cmd = opts.cmd.clone().unwrap_or_default();
    if entrypoint.as_ref().is_none_or(Vec::is_empty) {
        if cmd.is_empty() {
            cmd = image.cmd.clone();
        }
        if entrypoint.is_none() {
            entrypoint = Some(image.entrypoint.clone());
        }
    }
    let mut entrypoint = entrypoint.unwrap_or_default();
    if entrypoint.len() == 1 && entrypoint[0].is_empty() {
        entrypoint.clear();
    }
    let (path, args) = match (entrypoint.split_first(), cmd.split_first()) {
        (Some((first, rest)), _) => {
            let mut args = rest.to_vec();
            args.extend(cmd.iter().cloned());
            (first.clone(), args)
        }
        (None, Some((first, rest))) => (first.clone(), rest.to_vec()),
        (None, None) => return Err(SpecError::InvalidConfig("no command specified".into())),
    };

    let env = if opts.env.is_empty() {
        image.env.clone()
    } else {
        let key = |e: &str| e.split('=').next().unwrap_or("").to_owned();
        let mut env = opts.env.clone();
        for e in &image.env {
            if !opts.env.iter().any(|u| key(u) == key(e)) {
                env.push(e.clone());
            }
        }
        env
    };
    let pick = |mine: &str, theirs: &str| if mine.is_empty() { theirs } else { mine }.to_owned();
    let mut working_dir = pick(&opts.working_dir, &image.working_dir);
    if !working_dir.is_empty() {
        if !working_dir.starts_with('/') {
            return Err(SpecError::InvalidConfig(format!(
                "the working directory '{working_dir}' is invalid, it needs to be an absolute path"
            )));
        }
        working_dir = clean(&working_dir);
    }
    Ok(MergedConfig {
        path,
        args,
        env,
        user: pick(&opts.user, &image.user),
        working_dir,
        stop_signal: pick(&opts.stop_signal, &image.stop_signal),
    })
}

/// Docker's `ReplaceOrAppendEnvValues`: overrides replace defaults by key, `KEY` alone removes.
fn replace_or_append_env(mut defaults: Vec<String>, overrides: &[String]) -> Vec<String> {
    let key = |e: &str| e.split('=').next().unwrap_or("").to_owned();
    let index: BTreeMap<String, usize> = defaults.iter().enumerate().map(|(i, e)| (key(e), i)).collect();
    for value in overrides {
        match value.split_once('=') {
            None => {
                if let Some(&i) = index.get(value) {
                    defaults[i].clear();
                }
            }
            Some((k, _)) => match index.get(k) {
                Some(&i) => defaults[i] = value.clone(),
                None => defaults.push(value.clone()),
            },
        }
    }
    defaults.retain(|e| !e.is_empty());
    defaults
}

/// Generates the spec for `opts` on this machine.
pub fn generate(opts: &SpecOptions) -> Result<Spec, SpecError> {
    generate_on(opts, HostInfo::current())
}

/// Generates the spec for `opts` as it would be on `host`.
pub fn generate_on(opts: &SpecOptions, host: &HostInfo) -> Result<Spec, SpecError> {
    serde_json::from_value(generate_document(opts, host)?).map_err(SpecError::AssembleSpec)
}

/// The spec as the JSON document Docker writes (`config.json`), before conversion.
pub fn generate_document(opts: &SpecOptions, host: &HostInfo) -> Result<Value, SpecError> {
    let security = parse_security_opts(&opts.security_opt)?;
    check_host_config(opts)?;
    let merged = merge_config(opts)?;

    // Capabilities: validated as at create (`invalid CapAdd: …`), then tweaked.
    for (field, list) in [("CapAdd", &opts.cap_add), ("CapDrop", &opts.cap_drop)] {
        normalize_capabilities(list, &host.capabilities)
            .map_err(|e| SpecError::ValidateCapabilities { field, source: Box::new(e) })?;
    }
    let capabilities = tweak_capabilities(&opts.cap_add, &opts.cap_drop, opts.privileged, &host.capabilities)?;

    let mut resources = opts.resources.clone();
    check_resources(&mut resources, host)?;

    // Process.
    let pid_private = opts.pid == PidMode::Private;
    let init = opts.init.as_deref().filter(|_| pid_private);
    let mut args = Vec::new();
    if init.is_some() {
        args.extend([INIT_PATH.to_owned(), "--".to_owned()]);
    }
    args.push(merged.path.clone());
    args.extend(merged.args.iter().cloned());

    let mut env = vec![format!("PATH={DEFAULT_PATH_ENV}"), format!("HOSTNAME={}", opts.hostname)];
    if opts.tty {
        env.push("TERM=xterm".into());
    }
    let env = replace_or_append_env(env, &merged.env);
    let cwd = if merged.working_dir.is_empty() { "/".to_owned() } else { merged.working_dir.clone() };

    let user = resolve_user(&opts.rootfs, &merged.user, &opts.group_add)?;
    let mut process = Map::new();
    if opts.tty {
        process.insert("terminal".into(), json!(true));
        if let Some([h, w]) = opts.console_size.filter(|[h, w]| *h > 0 || *w > 0) {
            process.insert("consoleSize".into(), json!({"height": h, "width": w}));
        }
    }
    process.insert("user".into(), json!({"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids}));
    process.insert("args".into(), json!(args));
    process.insert("env".into(), json!(env));
    process.insert("cwd".into(), json!(cwd));
    if !capabilities.is_empty() {
        process.insert(
            "capabilities".into(),
            json!({"bounding": capabilities, "effective": capabilities, "permitted": capabilities}),
        );
    }
    let rlimits = rlimits(opts);
    if !rlimits.is_empty() {
        process.insert("rlimits".into(), Value::Array(rlimits));
    }
    if security.no_new_privileges.unwrap_or(opts.no_new_privileges) {
        process.insert("noNewPrivileges".into(), json!(true));
    }
    if let Some(profile) = &security.apparmor_profile {
        process.insert("apparmorProfile".into(), json!(profile));
    }
    process.insert("oomScoreAdj".into(), json!(opts.oom_score_adj));
    if let Some(label) = opts.selinux_label.as_ref().filter(|l| !l.is_empty()) {
        process.insert("selinuxLabel".into(), json!(label));
    }

    // Namespaces, in Docker's order: mount, network, uts, pid, ipc, then cgroup.
    let mut namespaces: Vec<Value> = Vec::new();
    let ns = |kind: &str, path: Option<&Path>| match path {
        Some(p) => json!({"type": kind, "path": p}),
        None => json!({"type": kind}),
    };
    namespaces.push(ns("mount", None));
    match &opts.network {
        NetworkMode::Host => {}
        NetworkMode::Private { netns } => namespaces.push(ns("network", netns.as_deref())),
        NetworkMode::Container { netns } => namespaces.push(ns("network", Some(netns))),
    }
    if opts.uts == UtsMode::Private {
        namespaces.push(ns("uts", None));
    }
    match &opts.pid {
        PidMode::Host => {}
        PidMode::Private => namespaces.push(ns("pid", None)),
        PidMode::Container { ns: path } => namespaces.push(ns("pid", Some(path))),
    }
    match &opts.ipc {
        IpcMode::Host => {}
        IpcMode::Container { ns: path, .. } => namespaces.push(ns("ipc", Some(path))),
        _ => namespaces.push(ns("ipc", None)),
    }
    // Docker's default: private on cgroup v2 hosts (privileged or not), host elsewhere.
    let cgroupns = opts.cgroupns.unwrap_or(if host.cgroup_mode == CgroupMode::Unified {
        CgroupnsMode::Private
    } else {
        CgroupnsMode::Host
    });
    if cgroupns == CgroupnsMode::Private {
        namespaces.push(ns("cgroup", None));
    }

    // Mounts.
    let writable_cgroups = security.writable_cgroups.unwrap_or(opts.privileged);
    let (mounts, rootfs_propagation) = mounts::assemble(opts, init, writable_cgroups)?;

    // Devices.
    let mut device_entries: Vec<Value> = Vec::new();
    let mut device_rules = default_device_rules();
    if opts.privileged {
        device_entries.extend(devices::host_devices()?.iter().map(|d| d.entry()));
        for mapping in &opts.devices {
            if mapping.path_on_host == mapping.path_in_container {
                continue;
            }
            let full = super::parse::DeviceMapping { cgroup_permissions: "rwm".into(), ..mapping.clone() };
            device_entries.extend(devices::devices_from_path(&full)?.iter().map(|d| d.entry()));
        }
        device_rules = vec![json!({"allow": true, "access": "rwm"})];
    } else {
        for mapping in &opts.devices {
            for dev in devices::devices_from_path(mapping)? {
                device_entries.push(dev.entry());
                device_rules.push(dev.rule(&mapping.cgroup_permissions));
            }
        }
        for rule in &opts.device_cgroup_rules {
            device_rules.push(rule_entry(&parse_device_cgroup_rule(rule)?));
        }
    }

    // Sysctls: Docker's network defaults, the NIS domain name, then the user's.
    let mut sysctl: BTreeMap<String, String> = BTreeMap::new();
    if matches!(opts.network, NetworkMode::Private { .. }) {
        if host.sysctl_ping_group_range {
            sysctl.insert("net.ipv4.ping_group_range".into(), "0 2147483647".into());
        }
        if host.sysctl_unprivileged_port_start {
            sysctl.insert("net.ipv4.ip_unprivileged_port_start".into(), "0".into());
        }
    }
    if !opts.domainname.is_empty() {
        sysctl.insert("kernel.domainname".into(), opts.domainname.clone());
    }
    sysctl.extend(opts.sysctls.clone());
    check_sysctls(&sysctl, opts)?;

    // Seccomp (after capabilities: rules depend on the bounding set).
    let seccomp = match (&security.seccomp, opts.privileged) {
        (SeccompChoice::Unconfined, _) => None,
        (SeccompChoice::Custom(body), _) => load_seccomp(body, &capabilities, host)?,
        (SeccompChoice::Default, true) => None,
        (SeccompChoice::Default | SeccompChoice::Builtin, _) => default_seccomp(&capabilities, host)?,
    };

    // Linux section.
    let mut linux = Map::new();
    if !sysctl.is_empty() {
        linux.insert("sysctl".into(), json!(sysctl));
    }
    let mut res = resources_entry(&resources);
    res.insert("devices".into(), Value::Array(device_rules));
    linux.insert("resources".into(), Value::Object(res));
    linux.insert("cgroupsPath".into(), json!(cgroups_path(opts)));
    linux.insert("namespaces".into(), Value::Array(namespaces));
    if !device_entries.is_empty() {
        linux.insert("devices".into(), Value::Array(device_entries));
    }
    if let Some(seccomp) = seccomp {
        linux.insert("seccomp".into(), seccomp);
    }
    if let Some(p) = rootfs_propagation {
        linux.insert("rootfsPropagation".into(), json!(p));
    }
    let (mut masked, mut readonly): (Vec<String>, Vec<String>) = if opts.privileged {
        (Vec::new(), Vec::new())
    } else {
        let mut masked: Vec<String> = DEFAULT_MASKED_PATHS.iter().map(|p| p.to_string()).collect();
        masked.extend(host.thermal_throttle_paths.iter().cloned());
        (masked, DEFAULT_READONLY_PATHS.iter().map(|p| p.to_string()).collect())
    };
    if let Some(m) = &opts.masked_paths {
        masked = m.clone();
    }
    if let Some(r) = &opts.readonly_paths {
        readonly = r.clone();
    }
    if !masked.is_empty() {
        linux.insert("maskedPaths".into(), json!(masked));
    }
    if !readonly.is_empty() {
        linux.insert("readonlyPaths".into(), json!(readonly));
    }
    if let Some(label) = opts.mount_label.as_ref().filter(|l| !l.is_empty()) {
        linux.insert("mountLabel".into(), json!(label));
    }

    let mut root = json!({"path": opts.rootfs});
    if opts.readonly_rootfs {
        root["readonly"] = json!(true);
    }
    let mut spec = Map::new();
    spec.insert("ociVersion".into(), json!(OCI_VERSION));
    spec.insert("process".into(), Value::Object(process));
    spec.insert("root".into(), root);
    if opts.uts == UtsMode::Private && !opts.hostname.is_empty() {
        spec.insert("hostname".into(), json!(opts.hostname));
    }
    spec.insert("mounts".into(), Value::Array(mounts.iter().map(|m| m.entry()).collect()));
    spec.insert("linux".into(), Value::Object(linux));
    if !opts.annotations.is_empty() {
        spec.insert("annotations".into(), json!(opts.annotations));
    }
    Ok(Value::Object(spec))
}

/// Create-time checks on the host config that are not about resources.
fn check_host_config(opts: &SpecOptions) -> Result<(), SpecError> {
    let fail = |m: String| Err(SpecError::InvalidHostConfig(m));
    if opts.shm_size < 0 {
        return fail("SHM size can not be less than 0".into());
    }
    if !(-1000..=1000).contains(&opts.oom_score_adj) {
        return fail(format!("Invalid value {}, range for oom score adj is [-1000, 1000]", opts.oom_score_adj));
    }
    if opts.cgroup_driver == CgroupDriver::Systemd
        && !opts.cgroup_parent.is_empty()
        && (opts.cgroup_parent.len() <= 6 || !opts.cgroup_parent.ends_with(".slice"))
    {
        return fail("cgroup-parent for systemd cgroup should be a valid slice named as \"xxx.slice\"".into());
    }
    if opts.annotations.contains_key("") {
        return fail("invalid Annotations: the empty string is not permitted as an annotation key".into());
    }
    Ok(())
}

/// `linux.cgroupsPath`: `<parent>/<id>` (default parent `/docker`), or with systemd
/// `<slice>:docker:<id>` (default slice `system.slice`).
fn cgroups_path(opts: &SpecOptions) -> String {
    if let Some(p) = &opts.cgroups_path {
        return p.clone();
    }
    match opts.cgroup_driver {
        CgroupDriver::Systemd => {
            let parent = if opts.cgroup_parent.is_empty() { "system.slice" } else { &opts.cgroup_parent };
            format!("{parent}:docker:{}", opts.id)
        }
        CgroupDriver::Cgroupfs => {
            let parent = if opts.cgroup_parent.is_empty() { "/docker" } else { &opts.cgroup_parent };
            let joined = format!("{parent}/{}", opts.id);
            if joined.starts_with('/') { clean(&joined) } else { clean(&joined).trim_start_matches('/').to_owned() }
        }
    }
}

/// `process.rlimits`: the container's ulimits, then the daemon defaults it does not override.
fn rlimits(opts: &SpecOptions) -> Vec<Value> {
    let mut ulimits = opts.ulimits.clone();
    let mut defaults = opts.default_ulimits.clone();
    defaults.sort_by(|a, b| a.name.cmp(&b.name));
    for d in defaults {
        if !ulimits.iter().any(|u| u.name == d.name) {
            ulimits.push(d);
        }
    }
    ulimits
        .iter()
        .map(|u| {
            json!({
                "type": format!("RLIMIT_{}", u.name.to_uppercase()),
                "hard": u.hard as u64,
                "soft": u.soft as u64,
            })
        })
        .collect()
}

/// The sysctl checks runc applies before starting (so Docker users see them at start): each
/// sysctl must belong to a namespace the container has of its own.
fn check_sysctls(sysctl: &BTreeMap<String, String>, opts: &SpecOptions) -> Result<(), SpecError> {
    let fail = |m: String| Err(SpecError::InvalidSysctl(m));
    for key in sysctl.keys() {
        let s = key.replace('/', ".");
        if IPC_SYSCTLS.contains(&s.as_str()) || s.starts_with("fs.mqueue.") {
            if opts.ipc == IpcMode::Host {
                return fail(format!("sysctl {s:?} is not allowed in the hosts ipc namespace"));
            }
            continue;
        }
        if s.starts_with("net.") {
            if opts.network == NetworkMode::Host {
                return fail(format!("sysctl {s:?} not allowed in host network namespace"));
            }
            continue;
        }
        if opts.uts == UtsMode::Private {
            match s.as_str() {
                "kernel.domainname" => continue,
                "kernel.hostname" => {
                    return fail(format!(
                        "sysctl {s:?} is not allowed as it conflicts with the OCI \"hostname\" field"
                    ));
                }
                _ => {}
            }
        }
        if s.starts_with("user.") {
            return fail(format!("setting ucounts without a user namespace not allowed: {s}"));
        }
        return fail(format!("sysctl {s:?} is not in a separate kernel namespace"));
    }
    Ok(())
}
