//! One-shot processes: run one process on a root filesystem someone else mounted, through
//! the shim and the OCI runtime exactly as `docker run` would (Docker's default capabilities
//! and seccomp profile, cgroups under the daemon's parent, `/proc`, `/dev`, `/sys`,
//! `/etc/hosts`…), stream its output, and return its exit code. The builder's RUN steps.
//!
//! Such a process is not a container of the container service: it has no record, no name in
//! `docker ps`, no restart policy, no log file. It publishes the container events Docker's
//! intermediate containers do (`create`, `start`, `die`, `destroy`).
//!
//! Lifecycle of [`ContainerService::run_oneshot`]: run dir → network namespace → networking
//! and `/etc` files through the network service, exactly as a `docker run` container gets
//! them (endpoint on the requested network, `--add-host` entries, embedded DNS on user-defined
//! networks) → bundle → shim `create` → attach → `start` → output until EOF → exit status →
//! shim shutdown (the runtime's `delete` removes the cgroup) → networking released (veth,
//! address, DNS names) → namespace and run dir removed. Cancellation kills every process of
//! the container and goes through the same cleanup. Events follow Docker's order for an
//! intermediate container: `create`, `network connect`, `start`, `die`, `network disconnect`,
//! `destroy`.
//!
//! On disk: `<exec-root>/b/<id32>/` (bundle `config.json`, `etc/`, `netns`, `shim/`), only
//! while the process runs; [`ContainerService::cleanup_oneshots`] removes what a crashed
//! daemon left there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use wharf_api::models::{ContainerConfig, HostConfig};
use wharf_runtime::logs::StreamKind;
use wharf_runtime::shim::protocol::{LogConfig, LogDriver, ShimConfig};
use wharf_runtime::shim::{self, AttachOptions, ShimClient};
use wharf_runtime::spec::{EtcFiles, NetworkMode, Resources, SpecOptions, Ulimit, UserMount};
use wharf_types::{ContainerId, EngineError, ErrorKind, Event, EventType};

use super::model::{ContainerRecord, State, Status};
use super::{ContainerService, internal};

/// The network of a one-shot process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneShotNetwork {
    /// A namespace of its own joined to a network, as `docker run --network <name>`:
    /// `bridge` (the default bridge) or a user-defined network's name or ID.
    Network(String),
    /// The namespace of another running container, by name or ID (`container:<x>`), with its
    /// hostname and `/etc` files.
    Container(String),
    /// A namespace with only loopback (`none`).
    None,
    /// The host's namespace.
    Host,
}

impl OneShotNetwork {
    /// The `HostConfig.NetworkMode` a container with this network has.
    fn mode(&self) -> String {
        match self {
            OneShotNetwork::Network(n) => n.clone(),
            OneShotNetwork::Container(c) => format!("container:{c}"),
            OneShotNetwork::None => "none".to_owned(),
            OneShotNetwork::Host => "host".to_owned(),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct OneShot {
    pub id: ContainerId,
    /// The root filesystem, already mounted read-write; left mounted.
    pub rootfs: PathBuf,
    /// argv; `args[0]` is looked up in `PATH` from `env`.
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// `name`, `uid`, `name:group`, `uid:gid`; empty for root.
    pub user: String,
    pub workdir: String,
    pub network: OneShotNetwork,
    /// Binds and tmpfs mounts; their targets exist in the rootfs.
    pub mounts: Vec<UserMount>,
    /// `host:ip` entries for `/etc/hosts` (`--add-host`; `host-gateway` allowed).
    pub extra_hosts: Vec<String>,
    /// `/dev/shm` size in bytes (0: 64 MiB).
    pub shm_size: i64,
    pub resources: Resources,
    pub ulimits: Vec<Ulimit>,
    pub privileged: bool,
    pub security_opt: Vec<String>,
    /// Empty: the daemon's cgroup parent.
    pub cgroup_parent: String,
    /// For events: the image the process runs on (none when empty).
    pub image: String,
}

/// Publishes a container event: the action and one extra attribute.
type EventFn<'a> = dyn Fn(&str, Option<(&str, String)>) + Send + Sync + 'a;

/// Where output goes, chunk by chunk as read.
pub type OutputFn = Box<dyn Fn(StreamKind, &[u8]) + Send + Sync>;

/// The host side of one one-shot process.
struct Layout {
    dir: PathBuf,
    etc: PathBuf,
    netns: PathBuf,
    shim: PathBuf,
}

fn layout(exec_root: &Path, id: &ContainerId) -> Layout {
    let dir = oneshot_root(exec_root).join(&id.as_str()[..32]);
    Layout { etc: dir.join("etc"), netns: dir.join("netns"), shim: dir.join("shim"), dir }
}

fn oneshot_root(exec_root: &Path) -> PathBuf {
    exec_root.join("b")
}

/// Docker's wording for a process that could not start; the CLI maps the substrings
/// (`executable file not found`, `permission denied`) as it does for `docker run`.
fn start_error(e: shim::ShimError) -> EngineError {
    let kind = match e {
        shim::ShimError::Create { .. } | shim::ShimError::Start { .. } => ErrorKind::InvalidArgument,
        _ => ErrorKind::Internal,
    };
    EngineError::new(kind, format!("failed to create shim task: OCI runtime create failed: {e}: unknown"))
}

impl ContainerService {
    /// Runs `spec` to its end (see the module doc): output to `output` as it comes, then the
    /// exit code (128+n after signal n). Errors: the process could not start (Docker's words),
    /// or `cancel` fired (kind [`ErrorKind::Cancelled`], after everything was cleaned up).
    pub async fn run_oneshot(
        &self,
        spec: OneShot,
        output: OutputFn,
        cancel: CancellationToken,
    ) -> Result<i32, EngineError> {
        let ctx = &self.ctx;
        let l = layout(&ctx.paths.exec_root, &spec.id);
        let mut attrs = BTreeMap::from([("name".to_owned(), spec.id.short().to_owned())]);
        if !spec.image.is_empty() {
            attrs.insert("image".to_owned(), spec.image.clone());
        }
        let event = |action: &str, extra: Option<(&str, String)>| {
            let mut a = attrs.clone();
            if let Some((k, v)) = extra {
                a.insert(k.to_owned(), v);
            }
            ctx.events.publish(Event::now(EventType::Container, action, spec.id.to_string(), a));
        };
        event("create", None);
        let result = self.oneshot_inner(&spec, &l, output, &cancel, &event).await;
        if let Ok(code) = &result {
            event("die", Some(("exitCode", code.to_string())));
        }
        ctx.network.release(&spec.id).await;
        ctx.network.forget_container(&spec.id);
        self.oneshot_teardown(&l).await;
        event("destroy", None);
        result
    }

    async fn oneshot_inner(
        &self,
        spec: &OneShot,
        l: &Layout,
        output: OutputFn,
        cancel: &CancellationToken,
        event: &EventFn<'_>,
    ) -> Result<i32, EngineError> {
        let ctx = &self.ctx;
        if spec.args.is_empty() {
            return Err(EngineError::invalid("No command specified"));
        }
        tokio::fs::create_dir_all(&l.etc).await.map_err(internal)?;
        let mut hostname = spec.id.short().to_owned();
        // The one-time network reconcile (which also makes the predefined networks) must not
        // run while this namespace exists.
        ctx.network.ready().await?;
        if let OneShotNetwork::Network(name) = &spec.network {
            // Docker's words when the build names a network that does not exist.
            ctx.network.find(name)?;
        }
        let network = match &spec.network {
            OneShotNetwork::Host => NetworkMode::Host,
            OneShotNetwork::Container(peer) => {
                let (netns, peer_hostname) = self.peer_network(peer)?;
                hostname = peer_hostname;
                NetworkMode::Container { netns }
            }
            OneShotNetwork::Network(_) | OneShotNetwork::None => {
                wharf_network::netns::create(l.netns.clone()).await.map_err(|e| EngineError::from_classified(&e))?;
                NetworkMode::Private { netns: Some(l.netns.clone()) }
            }
        };
        let netns = match &network {
            NetworkMode::Private { netns } => netns.as_deref(),
            _ => None,
        };
        // Endpoint, DNS names, and the hostname/hosts/resolv.conf files, as for `docker run`.
        ctx.network.attach(&network_record(spec, &hostname), netns, &l.etc).await?;
        let cgroup_parent =
            if spec.cgroup_parent.is_empty() { ctx.cgroup_parent.clone() } else { spec.cgroup_parent.clone() };
        let opts = SpecOptions {
            id: spec.id.to_string(),
            rootfs: spec.rootfs.clone(),
            entrypoint: Some(spec.args.clone()),
            cmd: Some(Vec::new()),
            env: spec.env.clone(),
            user: spec.user.clone(),
            working_dir: spec.workdir.clone(),
            hostname: if spec.network == OneShotNetwork::Host {
                rustix::system::uname().nodename().to_string_lossy().into_owned()
            } else {
                hostname
            },
            network,
            privileged: spec.privileged,
            security_opt: spec.security_opt.clone(),
            shm_size: spec.shm_size,
            mounts: spec.mounts.clone(),
            etc_files: EtcFiles {
                resolv_conf: Some(l.etc.join("resolv.conf")),
                hostname: Some(l.etc.join("hostname")),
                hosts: Some(l.etc.join("hosts")),
            },
            ulimits: spec.ulimits.clone(),
            resources: spec.resources.clone(),
            cgroup_parent,
            ..Default::default()
        };
        let bundle = l.dir.clone();
        tokio::task::spawn_blocking(move || -> Result<(), EngineError> {
            let spec = wharf_runtime::spec::generate(&opts).map_err(|e| EngineError::from_classified(&e))?;
            let json = serde_json::to_vec(&spec).map_err(internal)?;
            wharf_store::write_atomic(&bundle.join("config.json"), &json, 0o600).map_err(internal)
        })
        .await
        .map_err(internal)??;
        let mut runtime = (ctx.runtimes)(&ctx.default_runtime)
            .ok_or_else(|| EngineError::invalid(format!("unknown or invalid runtime name: {}", ctx.default_runtime)))?;
        runtime.root = ctx.paths.runtime_root(&ctx.default_runtime);
        let cfg = ShimConfig {
            id: spec.id.to_string(),
            bundle: l.dir.clone(),
            state_dir: l.shim.clone(),
            runtime,
            tty: false,
            stdin: false,
            stdin_once: false,
            log: LogConfig { driver: LogDriver::None, path: l.dir.join("log"), max_size: None, max_file: 1 },
        };
        if cancel.is_cancelled() {
            return Err(EngineError::new(ErrorKind::Cancelled, "cancelled"));
        }
        let t0 = std::time::Instant::now();
        let client = shim::spawn(&ctx.paths.shim_binary, cfg).await.map_err(start_error)?;
        let created = t0.elapsed();
        let r = drive(&client, output, cancel, event).await;
        let exited = t0.elapsed();
        if r.is_err() {
            let _ = client.kill_all(libc::SIGKILL).await;
            let _ = client.wait().await;
        }
        let _ = client.shutdown().await;
        let shut = t0.elapsed();
        wait_shim_gone(&client).await;
        tracing::debug!(id = %spec.id, ?created, ?exited, ?shut, gone = ?t0.elapsed(), "one-shot phases");
        r
    }

    /// `container:<x>`: the network namespace of running container `x` and its hostname, which
    /// a container sharing its network takes, as in Docker.
    fn peer_network(&self, key: &str) -> Result<(PathBuf, String), EngineError> {
        let peer = self.lookup(key)?.record();
        if !peer.state.status.is_running() {
            return Err(EngineError::conflict(format!(
                "cannot join network namespace of a non running container: container {} is {}",
                peer.id,
                peer.state.status.as_str()
            )));
        }
        let netns = if super::run::own_netns(&peer) {
            super::run::layout(&self.ctx, &peer).netns
        } else {
            PathBuf::from(format!("/proc/{}/ns/net", peer.state.pid))
        };
        let hostname = peer.config.hostname.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| peer.id.short().into());
        Ok((netns, hostname))
    }

    async fn oneshot_teardown(&self, l: &Layout) {
        if wharf_network::netns::is_netns_mount(&l.netns)
            && let Err(e) = wharf_network::netns::delete(l.netns.clone()).await
        {
            tracing::warn!(dir = %l.dir.display(), error = %e, "removing a one-shot network namespace failed");
        }
        let _ = tokio::fs::remove_dir_all(&l.dir).await;
    }

    /// Kills and removes what one-shot processes of a previous daemon left behind (a crash
    /// mid-build). Call once at start.
    pub async fn cleanup_oneshots(&self) -> usize {
        let root = oneshot_root(&self.ctx.paths.exec_root);
        let Ok(mut rd) = tokio::fs::read_dir(&root).await else { return 0 };
        let mut n = 0;
        while let Ok(Some(e)) = rd.next_entry().await {
            let dir = e.path();
            let l = Layout { etc: dir.join("etc"), netns: dir.join("netns"), shim: dir.join("shim"), dir };
            if let Ok(client) = ShimClient::connect(&l.shim).await {
                let _ = client.kill_all(libc::SIGKILL).await;
                let _ = client.wait().await;
                let _ = client.shutdown().await;
                wait_shim_gone(&client).await;
            }
            self.oneshot_teardown(&l).await;
            n += 1;
        }
        n
    }
}

/// Attach, start, pump output, wait. Any error or cancellation returns early; the caller
/// kills and cleans up.
async fn drive(
    client: &ShimClient,
    output: OutputFn,
    cancel: &CancellationToken,
    event: &EventFn<'_>,
) -> Result<i32, EngineError> {
    let cancelled = || EngineError::new(ErrorKind::Cancelled, "cancelled");
    let attached =
        client.attach(AttachOptions { stdin: false, stdout: true, stderr: true }).await.map_err(start_error)?;
    client.start().await.map_err(start_error)?;
    event("start", None);
    let mut out = attached.output;
    loop {
        tokio::select! {
            item = out.next() => match item {
                Some(Ok((kind, data))) => output(kind, &data),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "one-shot output ended with an error");
                    break;
                }
                None => break,
            },
            _ = cancel.cancelled() => return Err(cancelled()),
        }
    }
    let status = tokio::select! {
        s = client.wait() => s.map_err(|e| EngineError::internal(format!("wait for the process: {e}")))?,
        _ = cancel.cancelled() => return Err(cancelled()),
    };
    Ok(status.code)
}

/// After `shutdown` the shim runs the runtime's `delete` (cgroup, runtime state) and exits;
/// wait for that (bounded) so nothing of the process outlives the call.
async fn wait_shim_gone(client: &ShimClient) {
    let pid = client.shim_pid();
    if pid <= 0 {
        return;
    }
    for _ in 0..500 {
        // SAFETY: kill(2) with signal 0 only checks that the pid exists.
        if unsafe { libc::kill(pid, 0) } != 0 || is_zombie(pid) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tracing::warn!(shim = pid, "a one-shot shim did not exit within 5s");
}

/// Whether `pid` has exited and only waits to be reaped. The shim is reparented (it double
/// forks), and its new parent may reap late: some init processes do it only every second or so,
/// which would otherwise add that delay to every RUN step.
fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return true };
    // `pid (comm) S …`: the state follows the last `)` (comm may contain one).
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()).is_some_and(|c| c == 'Z' || c == 'X')
}

/// The container record the network service attaches and releases for a one-shot process.
/// A one-shot has no record of its own; networking reads only its ID and name, hostname,
/// network mode and `--add-host` entries from it (the DNS settings are the daemon's).
fn network_record(spec: &OneShot, hostname: &str) -> ContainerRecord {
    ContainerRecord {
        id: spec.id.clone(),
        name: spec.id.short().to_owned(),
        created: super::now_rfc3339(),
        image: spec.image.clone(),
        image_id: String::new(),
        config: ContainerConfig { hostname: Some(hostname.to_owned()), ..Default::default() },
        host_config: HostConfig {
            network_mode: Some(spec.network.mode()),
            extra_hosts: Some(spec.extra_hosts.clone()),
            ..Default::default()
        },
        networking_config: None,
        path: spec.args.first().cloned().unwrap_or_default(),
        args: spec.args.iter().skip(1).cloned().collect(),
        state: State { status: Status::Running, ..Default::default() },
        restart_count: 0,
        manually_stopped: false,
        has_been_started: true,
        runtime: String::new(),
        log_path: String::new(),
        rw_layer: String::new(),
        image_top_layer: None,
        mount_points: Vec::new(),
    }
}
