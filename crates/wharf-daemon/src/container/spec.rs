//! Docker's create-time semantics: merging the image's defaults into the create request,
//! validating the HostConfig, and turning a container into the runtime's `SpecOptions`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wharf_api::models::{ContainerConfig, ContainerCreateBody, HealthConfig, HostConfig, RestartPolicyNameEnum};
use wharf_runtime::spec::{
    self as rspec, CgroupnsMode, DeviceMapping, EtcFiles, IpcMode, NetworkMode, PidMode, SpecOptions, Ulimit,
    UserMount, UsernsMode, UtsMode,
};
use wharf_types::EngineError;
use wharf_types::image::{HealthConfig as ImageHealth, ImageConfig};

use super::model::ContainerRecord;

/// moby's `merge(userConf, imageConf)`: the image's defaults fill what the request left out.
pub fn merge_create_config(body: &ContainerCreateBody, image: &ImageConfig) -> ContainerConfig {
    let img = image.config.clone().unwrap_or_default();
    let mut env = body.env.clone().unwrap_or_default();
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_owned();
    if env.is_empty() {
        env = img.env.clone().unwrap_or_default();
    } else {
        for ie in img.env.clone().unwrap_or_default() {
            if !env.iter().any(|u| key(u) == key(&ie)) {
                env.push(ie);
            }
        }
    }
    let mut labels: std::collections::HashMap<String, String> = body.labels.clone().unwrap_or_default();
    for (k, v) in img.labels.clone().unwrap_or_default() {
        labels.entry(k).or_insert(v);
    }
    let mut cmd = body.cmd.clone();
    let mut entrypoint = body.entrypoint.clone();
    let mut args_escaped = body.args_escaped;
    if entrypoint.as_ref().is_none_or(Vec::is_empty) {
        if cmd.as_ref().is_none_or(Vec::is_empty) {
            cmd = img.cmd.clone();
            args_escaped = img.args_escaped;
        }
        if entrypoint.is_none() {
            entrypoint = img.entrypoint.clone();
        }
    }
    let mut exposed: Vec<String> = body.exposed_ports.clone().unwrap_or_default();
    for p in img.exposed_ports.clone().unwrap_or_default().into_keys() {
        if !exposed.contains(&p) {
            exposed.push(p);
        }
    }
    let mut volumes: Vec<String> = body.volumes.clone().unwrap_or_default();
    for v in img.volumes.clone().unwrap_or_default().into_keys() {
        if !volumes.contains(&v) {
            volumes.push(v);
        }
    }
    let healthcheck = merge_health(body.healthcheck.clone(), img.healthcheck.clone());
    let pick = |user: &Option<String>, image: &Option<String>| {
        user.clone().filter(|s| !s.is_empty()).or_else(|| image.clone())
    };
    ContainerConfig {
        hostname: body.hostname.clone(),
        domainname: body.domainname.clone(),
        user: pick(&body.user, &img.user),
        attach_stdin: body.attach_stdin,
        attach_stdout: body.attach_stdout,
        attach_stderr: body.attach_stderr,
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: body.tty,
        open_stdin: body.open_stdin,
        stdin_once: body.stdin_once,
        env: Some(env),
        cmd,
        healthcheck,
        args_escaped,
        image: body.image.clone(),
        volumes: (!volumes.is_empty()).then_some(volumes),
        working_dir: pick(&body.working_dir, &img.working_dir),
        entrypoint,
        network_disabled: body.network_disabled,
        on_build: None,
        labels: Some(labels),
        stop_signal: pick(&body.stop_signal, &img.stop_signal),
        stop_timeout: body.stop_timeout,
        shell: body.shell.clone().or(img.shell.clone()),
    }
}

fn merge_health(user: Option<HealthConfig>, image: Option<ImageHealth>) -> Option<HealthConfig> {
    let from_image = |h: ImageHealth| HealthConfig {
        test: (!h.test.is_empty()).then_some(h.test),
        interval: Some(h.interval),
        timeout: Some(h.timeout),
        retries: Some(h.retries),
        start_period: Some(h.start_period),
        start_interval: Some(h.start_interval),
    };
    match (user, image) {
        (None, img) => img.map(from_image),
        (Some(mut u), Some(img)) => {
            if u.test.as_ref().is_none_or(Vec::is_empty) {
                u.test = (!img.test.is_empty()).then_some(img.test.clone());
            }
            let fill = |v: &mut Option<i64>, d: i64| {
                if v.unwrap_or(0) == 0 {
                    *v = Some(d);
                }
            };
            fill(&mut u.interval, img.interval);
            fill(&mut u.timeout, img.timeout);
            fill(&mut u.start_period, img.start_period);
            fill(&mut u.start_interval, img.start_interval);
            fill(&mut u.retries, img.retries);
            Some(u)
        }
        (Some(u), None) => Some(u),
    }
}

/// `Path` and `Args` from the merged config; `No command specified` when there is none.
pub fn entrypoint_and_args(c: &ContainerConfig) -> Result<(String, Vec<String>), EngineError> {
    let mut all: Vec<String> = c.entrypoint.clone().unwrap_or_default();
    if all.len() == 1 && all[0].is_empty() {
        all.clear();
    }
    all.extend(c.cmd.clone().unwrap_or_default());
    match all.split_first() {
        Some((p, rest)) => Ok((p.clone(), rest.to_vec())),
        None => Err(EngineError::invalid("No command specified")),
    }
}

/// Validates what Docker validates before creating anything; returns warnings.
pub fn validate_host_config(hc: &mut HostConfig) -> Result<Vec<String>, EngineError> {
    let mut warnings = Vec::new();
    if let Some(rp) = &hc.restart_policy {
        let name = rp.name.unwrap_or(RestartPolicyNameEnum::EMPTY);
        let max = rp.maximum_retry_count.unwrap_or(0);
        match name {
            RestartPolicyNameEnum::ON_FAILURE if max < 0 => {
                return Err(EngineError::invalid("invalid restart policy: maximum retry count cannot be negative"));
            }
            RestartPolicyNameEnum::ON_FAILURE => {}
            other if max != 0 => {
                let n = match other {
                    RestartPolicyNameEnum::ALWAYS => "always",
                    RestartPolicyNameEnum::UNLESS_STOPPED => "unless-stopped",
                    _ => "no",
                };
                return Err(EngineError::invalid(format!(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure', got '{n}'"
                )));
            }
            _ => {}
        }
        if hc.auto_remove == Some(true) && !matches!(name, RestartPolicyNameEnum::EMPTY | RestartPolicyNameEnum::NO) {
            return Err(EngineError::invalid("can't create 'AutoRemove' container with restart policy"));
        }
    }
    let mut r = super::update::host_resources(hc);
    let host = rspec::HostInfo::current();
    warnings.extend(rspec::resources::check_resources(&mut r, host).map_err(|e| EngineError::from_classified(&e))?);
    for u in hc.ulimits.iter().flatten() {
        if u.name.as_deref().unwrap_or("").is_empty() {
            return Err(EngineError::invalid("invalid ulimit: missing name"));
        }
        if u.soft.unwrap_or(0) > u.hard.unwrap_or(0) {
            return Err(EngineError::invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                u.soft.unwrap_or(0),
                u.hard.unwrap_or(0)
            )));
        }
    }
    if hc.oom_score_adj.is_some_and(|v| !(-1000..=1000).contains(&v)) {
        return Err(EngineError::invalid(format!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            hc.oom_score_adj.unwrap_or(0)
        )));
    }
    if hc.shm_size.is_some_and(|s| s < 0) {
        return Err(EngineError::invalid("SHM size can not be less than 0"));
    }
    Ok(warnings)
}

/// Host paths a started container's spec refers to.
pub struct RunPaths<'a> {
    pub rootfs: &'a Path,
    pub netns: Option<PathBuf>,
    pub etc_dir: &'a Path,
    pub init_binary: &'a Path,
    /// Volumes, binds and `--mount`s with their host sources, from
    /// `crate::volume::VolumeService::setup`.
    pub mounts: Vec<UserMount>,
}

/// A namespace of another container, resolved by the caller (`container:<x>` modes).
pub type PeerNs = dyn Fn(&str, &str) -> Result<PathBuf, EngineError> + Send + Sync;

/// The record as the runtime's spec options.
pub fn spec_options(
    r: &ContainerRecord,
    image: &ImageConfig,
    p: &RunPaths<'_>,
    cgroup_parent: &str,
    peer: &PeerNs,
) -> Result<SpecOptions, EngineError> {
    let hc = &r.host_config;
    let c = &r.config;
    let img = image.config.clone().unwrap_or_default();
    let mode = |m: &Option<String>| m.clone().unwrap_or_default();
    let network = match mode(&hc.network_mode).as_str() {
        "host" => NetworkMode::Host,
        m if m.starts_with("container:") => NetworkMode::Container { netns: peer(&m["container:".len()..], "net")? },
        _ => NetworkMode::Private { netns: p.netns.clone() },
    };
    let pid = match mode(&hc.pid_mode).as_str() {
        "host" => PidMode::Host,
        m if m.starts_with("container:") => PidMode::Container { ns: peer(&m["container:".len()..], "pid")? },
        _ => PidMode::Private,
    };
    let ipc = match mode(&hc.ipc_mode).as_str() {
        "host" => IpcMode::Host,
        "none" => IpcMode::None,
        m if m.starts_with("container:") => {
            IpcMode::Container { ns: peer(&m["container:".len()..], "ipc")?, shm_path: None }
        }
        _ => IpcMode::Private,
    };
    let uts = match mode(&hc.uts_mode).as_str() {
        "host" => UtsMode::Host,
        _ => UtsMode::Private,
    };
    let userns = match mode(&hc.userns_mode).as_str() {
        "host" => UsernsMode::Host,
        _ => UsernsMode::Private,
    };
    let cgroupns = hc.cgroupns_mode.map(|m| match m {
        wharf_api::models::HostConfigCgroupnsModeEnum::HOST => CgroupnsMode::Host,
        _ => CgroupnsMode::Private,
    });
    let tmpfs: BTreeMap<String, String> = hc.tmpfs.clone().unwrap_or_default().into_iter().collect();
    let ulimits = hc
        .ulimits
        .iter()
        .flatten()
        .map(|u| Ulimit {
            name: u.name.clone().unwrap_or_default(),
            soft: u.soft.unwrap_or(0),
            hard: u.hard.unwrap_or(0),
        })
        .collect();
    let devices = hc
        .devices
        .iter()
        .flatten()
        .map(|d| DeviceMapping {
            path_on_host: d.path_on_host.clone().unwrap_or_default(),
            path_in_container: d
                .path_in_container
                .clone()
                .filter(|s| !s.is_empty())
                .or(d.path_on_host.clone())
                .unwrap_or_default(),
            cgroup_permissions: d.cgroup_permissions.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "rwm".into()),
        })
        .collect();
    let console =
        hc.console_size.as_ref().filter(|v| v.len() == 2 && v[0] > 0 && v[1] > 0).map(|v| [v[0] as u32, v[1] as u32]);
    Ok(SpecOptions {
        id: r.id.to_string(),
        rootfs: p.rootfs.to_path_buf(),
        image: rspec::ImageConfig {
            entrypoint: img.entrypoint.clone().unwrap_or_default(),
            cmd: img.cmd.clone().unwrap_or_default(),
            env: img.env.clone().unwrap_or_default(),
            working_dir: img.working_dir.clone().unwrap_or_default(),
            user: img.user.clone().unwrap_or_default(),
            stop_signal: img.stop_signal.clone().unwrap_or_default(),
        },
        entrypoint: Some(vec![r.path.clone()]),
        cmd: Some(r.args.clone()),
        env: c.env.clone().unwrap_or_default(),
        user: c.user.clone().unwrap_or_default(),
        group_add: hc.group_add.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        stop_signal: c.stop_signal.clone().unwrap_or_default(),
        tty: c.tty.unwrap_or(false),
        open_stdin: c.open_stdin.unwrap_or(false),
        console_size: console,
        hostname: c.hostname.clone().unwrap_or_default(),
        domainname: c.domainname.clone().unwrap_or_default(),
        network,
        pid,
        ipc,
        uts,
        cgroupns,
        userns,
        privileged: hc.privileged.unwrap_or(false),
        cap_add: hc.cap_add.clone().unwrap_or_default(),
        cap_drop: hc.cap_drop.clone().unwrap_or_default(),
        security_opt: hc.security_opt.clone().unwrap_or_default(),
        readonly_rootfs: hc.readonly_rootfs.unwrap_or(false),
        masked_paths: hc.masked_paths.clone(),
        readonly_paths: hc.readonly_paths.clone(),
        devices,
        device_cgroup_rules: hc.device_cgroup_rules.clone().unwrap_or_default(),
        shm_size: hc.shm_size.unwrap_or(0),
        tmpfs,
        mounts: p.mounts.clone(),
        etc_files: EtcFiles {
            resolv_conf: Some(p.etc_dir.join("resolv.conf")),
            hostname: Some(p.etc_dir.join("hostname")),
            hosts: Some(p.etc_dir.join("hosts")),
        },
        sysctls: hc.sysctls.clone().unwrap_or_default().into_iter().collect(),
        ulimits,
        init: hc.init.unwrap_or(false).then(|| p.init_binary.to_path_buf()),
        resources: super::update::host_resources(hc),
        oom_score_adj: hc.oom_score_adj.unwrap_or(0) as i32,
        cgroup_parent: hc.cgroup_parent.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| cgroup_parent.to_owned()),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_follows_moby() {
        let image: ImageConfig = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin","A=img"],"Cmd":["sh"],"WorkingDir":"/w","Labels":{"l":"img","m":"img"},"ExposedPorts":{"80/tcp":{}}},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let body: ContainerCreateBody = serde_json::from_str(
            r#"{"Image":"x","Env":["A=user"],"Labels":{"l":"user"},"ExposedPorts":{"81/tcp":{}}}"#,
        )
        .unwrap();
        let c = merge_create_config(&body, &image);
        assert_eq!(c.env.unwrap(), vec!["A=user", "PATH=/bin"]);
        assert_eq!(c.cmd.unwrap(), vec!["sh"]);
        assert_eq!(c.working_dir.as_deref(), Some("/w"));
        let labels = c.labels.unwrap();
        assert_eq!(labels["l"], "user");
        assert_eq!(labels["m"], "img");
        assert_eq!(c.exposed_ports.unwrap(), vec!["81/tcp", "80/tcp"]);
        // An entrypoint from the user drops the image's cmd.
        let body: ContainerCreateBody = serde_json::from_str(r#"{"Image":"x","Entrypoint":["echo"]}"#).unwrap();
        let c = merge_create_config(&body, &image);
        assert_eq!(entrypoint_and_args(&c).unwrap(), ("echo".to_owned(), vec![]));
        let body: ContainerCreateBody = serde_json::from_str(r#"{"Image":"x","Cmd":["ls","-l"]}"#).unwrap();
        let c = merge_create_config(&body, &image);
        assert_eq!(entrypoint_and_args(&c).unwrap(), ("ls".to_owned(), vec!["-l".to_owned()]));
    }

    #[test]
    fn no_command_is_an_error() {
        let c = ContainerConfig::default();
        assert_eq!(entrypoint_and_args(&c).unwrap_err().message, "No command specified");
    }

    #[test]
    fn restart_policy_rules() {
        let mut hc: HostConfig =
            serde_json::from_str(r#"{"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3}}"#).unwrap();
        assert!(validate_host_config(&mut hc).is_ok(), "on-failure takes a retry count");
        let mut hc: HostConfig =
            serde_json::from_str(r#"{"RestartPolicy":{"Name":"always","MaximumRetryCount":3}}"#).unwrap();
        assert!(
            validate_host_config(&mut hc)
                .unwrap_err()
                .message
                .contains("maximum retry count can only be used with 'on-failure'")
        );
        let mut hc: HostConfig =
            serde_json::from_str(r#"{"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":-1}}"#).unwrap();
        assert!(validate_host_config(&mut hc).is_err());
        let mut hc: HostConfig =
            serde_json::from_str(r#"{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}"#).unwrap();
        assert_eq!(
            validate_host_config(&mut hc).unwrap_err().message,
            "can't create 'AutoRemove' container with restart policy"
        );
        let mut hc: HostConfig = serde_json::from_str(r#"{"Memory":1024}"#).unwrap();
        assert!(validate_host_config(&mut hc).unwrap_err().message.contains("Minimum memory limit allowed is 6MB"));
    }
}
