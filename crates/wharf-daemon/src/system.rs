//! The system backend: `/info`, `/version`, `/events`.

use std::collections::HashMap;
use std::path::PathBuf;

use async_trait::async_trait;
use futures_util::StreamExt;
use wharf_api::backend::{EventStream, SystemBackend};
use wharf_api::models::{
    Commit, IndexInfo, LocalNodeState, PluginsInfo, RegistryServiceConfig, Runtime, SwarmInfo, SystemInfo,
    SystemInfoCgroupDriverEnum, SystemInfoCgroupVersionEnum, SystemInfoDefaultAddressPools, SystemVersion,
    SystemVersionComponents, SystemVersionPlatform,
};
use wharf_api::router::ENGINE_VERSION;
use wharf_api::version::ApiVersion;
use wharf_types::{EngineError, Filters};

use crate::Daemon;
use crate::events::EventFilter;
use crate::info;

/// The runtime containers get unless they ask for another: Wharf's own.
pub const DEFAULT_RUNTIME: &str = "wharf";

impl Daemon {
    /// The runtimes containers may choose: Wharf's own, `runc` when installed, and those of
    /// `daemon.json`.
    pub fn runtimes(&self) -> HashMap<String, Runtime> {
        let cfg = self.config();
        let mut out = HashMap::new();
        out.insert(
            DEFAULT_RUNTIME.to_owned(),
            Runtime { path: Some(sibling_binary("wharf-runtime").display().to_string()), ..Default::default() },
        );
        if let Some(runc) = find_in_path("runc") {
            out.insert("runc".to_owned(), Runtime { path: Some(runc.display().to_string()), ..Default::default() });
        }
        for (name, rt) in cfg.file.runtimes.unwrap_or_default() {
            out.insert(
                name,
                Runtime {
                    path: Some(rt.path),
                    runtime_args: (!rt.runtime_args.is_empty()).then_some(rt.runtime_args),
                    ..Default::default()
                },
            );
        }
        out
    }
}

/// A binary installed beside the running one (`wharfd` finds `wharf-runtime`, `wharf-shim`…):
/// `WHARF_BIN_DIR` if set (tests), the running executable's directory (and its parent when
/// that is a cargo `deps` dir), else `PATH`.
pub fn sibling_binary(name: &str) -> PathBuf {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("WHARF_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        dirs.push(dir.to_path_buf());
        if dir.ends_with("deps")
            && let Some(up) = dir.parent()
        {
            dirs.push(up.to_path_buf());
        }
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .or_else(|| find_in_path(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

pub fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()))
}

#[async_trait]
impl SystemBackend for Daemon {
    async fn info(&self) -> Result<SystemInfo, EngineError> {
        let cfg = self.config();
        let h = &self.host;
        let insecure: Vec<String> =
            ["127.0.0.0/8".to_owned(), "::1/128".to_owned()].into_iter().chain(cfg.insecure_registries()).collect();
        let mirrors = cfg.file.registry_mirrors.clone().unwrap_or_default();
        let index_configs = HashMap::from([(
            "docker.io".to_owned(),
            IndexInfo {
                name: Some("docker.io".to_owned()),
                mirrors: Some(mirrors.clone()),
                secure: Some(true),
                official: Some(true),
            },
        )]);
        let mut security_options = vec!["name=seccomp,profile=builtin".to_owned()];
        if h.cgroup_version == "2" {
            security_options.push("name=cgroupns".to_owned());
        }
        if cfg.file.no_new_privileges.unwrap_or(false) {
            security_options.push("name=no-new-privileges".to_owned());
        }
        let env = |k: &str| std::env::var(k).or_else(|_| std::env::var(k.to_lowercase())).unwrap_or_default();
        let (total, running, paused, stopped) = self.containers.counts();
        Ok(SystemInfo {
            id: Some(self.engine_id.clone()),
            containers: Some(total),
            containers_running: Some(running),
            containers_paused: Some(paused),
            containers_stopped: Some(stopped),
            images: Some(self.image_count().await?),
            driver: Some(self.images.driver().docker_name().to_owned()),
            driver_status: Some(self.images.driver_status(&h.backing_fs)),
            docker_root_dir: Some(cfg.data_root.display().to_string()),
            plugins: Some(PluginsInfo {
                volume: Some(vec!["local".to_owned()]),
                network: Some(["bridge", "host", "macvlan", "null"].map(String::from).to_vec()),
                authorization: None,
                log: Some(["json-file", "local", "none"].map(String::from).to_vec()),
            }),
            memory_limit: Some(h.memory_limit),
            swap_limit: Some(h.swap_limit),
            cpu_cfs_period: Some(h.cpu_cfs),
            cpu_cfs_quota: Some(h.cpu_cfs),
            cpu_shares: Some(h.cpu_shares),
            cpu_set: Some(h.cpuset),
            pids_limit: Some(h.pids_limit),
            oom_kill_disable: Some(h.oom_kill_disable),
            ipv4_forwarding: Some(info::ipv4_forwarding()),
            debug: Some(cfg.log_level == "debug"),
            nfd: Some(info::open_fds()),
            n_goroutines: Some(info::threads()),
            system_time: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
            logging_driver: Some(cfg.log_driver().to_owned()),
            cgroup_driver: Some(SystemInfoCgroupDriverEnum::CGROUPFS),
            cgroup_version: Some(if h.cgroup_version == "2" {
                SystemInfoCgroupVersionEnum::_2
            } else {
                SystemInfoCgroupVersionEnum::_1
            }),
            n_events_listener: Some(self.events.listeners() as i64),
            kernel_version: Some(h.kernel_version.clone()),
            operating_system: Some(h.operating_system.clone()),
            os_version: Some(h.os_version.clone()),
            os_type: Some("linux".to_owned()),
            architecture: Some(h.architecture.clone()),
            ncpu: Some(h.ncpu),
            mem_total: Some(h.mem_total),
            index_server_address: Some("https://index.docker.io/v1/".to_owned()),
            registry_config: Some(RegistryServiceConfig {
                insecure_registry_cidrs: Some(insecure),
                index_configs: Some(index_configs),
                mirrors: Some(mirrors),
            }),
            http_proxy: Some(env("HTTP_PROXY")),
            https_proxy: Some(env("HTTPS_PROXY")),
            no_proxy: Some(env("NO_PROXY")),
            name: Some(h.hostname.clone()),
            labels: Some(cfg.labels()),
            experimental_build: Some(false),
            server_version: Some(ENGINE_VERSION.to_owned()),
            runtimes: Some(self.runtimes()),
            default_runtime: Some(cfg.file.default_runtime.clone().unwrap_or_else(|| DEFAULT_RUNTIME.to_owned())),
            swarm: Some(SwarmInfo {
                node_id: Some(String::new()),
                node_addr: Some(String::new()),
                local_node_state: Some(LocalNodeState::INACTIVE),
                control_available: Some(false),
                error: Some(String::new()),
                remote_managers: None,
                ..Default::default()
            }),
            live_restore_enabled: Some(cfg.live_restore()),
            init_binary: Some("wharf-init".to_owned()),
            containerd_commit: Some(Commit { id: Some(String::new()) }),
            runc_commit: Some(Commit { id: Some(self.build.git_commit.clone()) }),
            init_commit: Some(Commit { id: Some(self.build.git_commit.clone()) }),
            security_options: Some(security_options),
            default_address_pools: cfg.file.default_address_pools.as_ref().map(|pools| {
                pools
                    .iter()
                    .map(|p| SystemInfoDefaultAddressPools { base: Some(p.base.clone()), size: Some(p.size.into()) })
                    .collect()
            }),
            warnings: Some(h.warnings()),
            ..Default::default()
        })
    }

    async fn version(&self) -> Result<SystemVersion, EngineError> {
        let h = &self.host;
        let b = &self.build;
        let details = HashMap::from([
            ("ApiVersion".to_owned(), ApiVersion::MAX.to_string()),
            ("MinAPIVersion".to_owned(), ApiVersion::MIN.to_string()),
            ("Arch".to_owned(), info::go_arch().to_owned()),
            ("Os".to_owned(), "linux".to_owned()),
            ("KernelVersion".to_owned(), h.kernel_version.clone()),
            ("GitCommit".to_owned(), b.git_commit.clone()),
            ("GoVersion".to_owned(), b.rustc.clone()),
            ("BuildTime".to_owned(), b.build_time.clone()),
            ("Experimental".to_owned(), "false".to_owned()),
        ]);
        Ok(SystemVersion {
            platform: Some(SystemVersionPlatform { name: format!("Wharf Engine {ENGINE_VERSION}") }),
            components: Some(vec![SystemVersionComponents {
                name: "Engine".to_owned(),
                version: ENGINE_VERSION.to_owned(),
                details: Some(details),
            }]),
            version: Some(ENGINE_VERSION.to_owned()),
            api_version: Some(ApiVersion::MAX.to_string()),
            min_api_version: Some(ApiVersion::MIN.to_string()),
            git_commit: Some(b.git_commit.clone()),
            go_version: Some(b.rustc.clone()),
            os: Some("linux".to_owned()),
            arch: Some(info::go_arch().to_owned()),
            kernel_version: Some(h.kernel_version.clone()),
            experimental: Some(false),
            build_time: Some(b.build_time.clone()),
        })
    }

    fn events(&self, since: Option<i64>, until: Option<i64>, filters: Filters) -> Result<EventStream, EngineError> {
        Ok(self.events.subscribe(since, until, EventFilter::new(filters)).boxed())
    }

    async fn disk_usage(
        &self,
        opts: wharf_api::backend::DiskUsageOptions,
    ) -> Result<wharf_api::models::SystemDataUsageResponse, EngineError> {
        self.system_disk_usage(opts).await
    }
}
