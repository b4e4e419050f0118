//! OCI runtime-spec generation: a container's create options in, the `config.json` Docker
//! (moby 28) would write out, so that a container run by Wharf looks like Docker's from inside.
//!
//! Map:
//! - [`SpecOptions`] (this file): everything the spec depends on, as plain data. The daemon maps
//!   Docker's `Config`/`HostConfig` into it, resolves volumes to host paths, creates the netns
//!   and writes the `/etc` files; nothing here talks to the API or the store.
//! - [`generate`] (`generate.rs`): the one entry point; builds the document in Docker's order
//!   (common options, cgroups, resources, sysctls, devices, rlimits, namespaces, capabilities,
//!   seccomp, mounts, user) and converts it into an [`oci_spec::runtime::Spec`].
//! - [`parse`]: the flag parsers the CLI and daemon share (`--ulimit`, `--device`,
//!   `--security-opt`, `--sysctl`, capability names, `512m`, `1.5`, cpuset lists).
//! - [`caps`]: Docker's 14 default capabilities, `--cap-add`/`--cap-drop`, the daemon's own set.
//! - [`mounts`]: default mounts, user mounts sorted by depth, `/dev/shm`, tmpfs options.
//! - [`devices`]: default device cgroup rules, `--device`, all of `/dev` when privileged.
//! - [`resources`]: Docker's resource checks (`Minimum memory limit allowed is 6MB`) and mapping.
//! - [`seccomp`]: Docker's default profile (`seccomp_default.json`, data from moby/profiles) and
//!   custom profiles, filtered by capabilities, architecture and kernel version.
//! - [`user`]: `--user`/`--group-add` against the image's `/etc/passwd` and `/etc/group`, read
//!   without ever leaving the rootfs; [`user::ensure_working_dir`] creates the working directory
//!   there before start, as Docker does.
//! - [`host`]: the host facts the spec depends on (held capabilities, kernel, CPUs, cgroups).
//! - [`SpecError`] (`error.rs`): Docker's messages, classified as `InvalidArgument` when the
//!   user is at fault.
//!
//! On disk: reads the rootfs's `/etc/passwd` and `/etc/group`; reads `/proc/self/status`,
//! `/proc/self/mountinfo`, `/proc/sys`, `/sys/fs/cgroup` and `/dev` on the host. Writes nothing,
//! except the working directory [`user::ensure_working_dir`] is asked to create.

pub mod caps;
pub mod devices;
mod error;
mod generate;
pub mod host;
pub mod mounts;
pub mod parse;
pub mod resources;
pub mod seccomp;
pub mod user;

#[cfg(test)]
mod runc_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use error::SpecError;
pub use generate::{MergedConfig, generate, generate_document, generate_on, merge_config};
pub use host::HostInfo;
pub use parse::{DeviceMapping, Ulimit};
pub use resources::Resources;

/// The OCI runtime-spec version Docker 28 writes.
pub const OCI_VERSION: &str = "1.2.1";
/// `PATH` when the image sets none.
pub const DEFAULT_PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The parts of an image's config that shape the process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    /// Not part of the spec; merged for the daemon's use (see [`merge_config`]).
    pub stop_signal: String,
}

/// `--network`: the daemon creates and configures network namespaces; the spec only joins them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// A namespace of the container's own: the one the daemon made at `netns` (bridge and
    /// user-defined networks), or a fresh empty one (`none`).
    Private { netns: Option<PathBuf> },
    /// `host`: no network namespace.
    Host,
    /// `container:<id>`: that container's namespace (`/proc/<pid>/ns/net`).
    Container { netns: PathBuf },
}

impl Default for NetworkMode {
    fn default() -> Self {
        NetworkMode::Private { netns: None }
    }
}

/// `--pid`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PidMode {
    #[default]
    Private,
    Host,
    /// `container:<id>`: its `/proc/<pid>/ns/pid`.
    Container {
        ns: PathBuf,
    },
}

/// `--ipc`. `/dev/shm` follows the mode: private gets its own tmpfs (`--shm-size`), shareable
/// and `container:` bind the tmpfs the daemon mounted for the owning container, host binds the
/// host's `/dev/shm`, none has no `/dev/shm`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum IpcMode {
    #[default]
    Private,
    /// `shareable`: the daemon mounted a tmpfs at `shm_path` for others to join.
    Shareable {
        shm_path: PathBuf,
    },
    None,
    Host,
    /// `container:<id>`: its `/proc/<pid>/ns/ipc`, and its shm mount when it has one.
    Container {
        ns: PathBuf,
        shm_path: Option<PathBuf>,
    },
}

/// `--uts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UtsMode {
    #[default]
    Private,
    Host,
}

/// `--cgroupns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupnsMode {
    Private,
    Host,
}

/// `--userns`. Wharf has no user-namespace remapping (`userns-remap`), so, as in a Docker daemon
/// without it, neither mode creates a user namespace and the spec has no id mappings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UsernsMode {
    #[default]
    Private,
    Host,
}

/// How cgroups are named: paths under a parent (`/docker/<id>`) or systemd units
/// (`system.slice:docker:<id>`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CgroupDriver {
    #[default]
    Cgroupfs,
    Systemd,
}

/// What a user mount is; binds and volumes differ only in their default propagation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MountKind {
    #[default]
    Bind,
    Volume,
    Tmpfs,
}

/// A mount the daemon resolved from `-v`, `--mount` or a volume: host source, container
/// destination, mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserMount {
    pub kind: MountKind,
    /// Host path (ignored for tmpfs).
    pub source: PathBuf,
    pub destination: String,
    pub writable: bool,
    /// `private`, `rprivate`, `shared`, `rshared`, `slave`, `rslave`; binds default to
    /// `rprivate`, volumes to none.
    pub propagation: Option<String>,
    /// `bind-nonrecursive`: `bind` instead of `rbind`.
    pub non_recursive: bool,
    /// `readonly=true` without making submounts read-only (`ro`, not `rro`).
    pub readonly_non_recursive: bool,
    /// Fail rather than fall back to `ro` when `rro` is unavailable.
    pub readonly_force_recursive: bool,
    /// tmpfs data (`size=64m,mode=1777`), see [`tmpfs_data`].
    pub tmpfs_data: String,
}

/// The tmpfs data string Docker derives from `--mount type=tmpfs` options.
pub fn tmpfs_data(readonly: bool, mode: Option<u32>, size_bytes: Option<i64>) -> String {
    let mut opts = Vec::new();
    if readonly {
        opts.push("ro".to_owned());
    }
    if let Some(mode) = mode.filter(|m| *m != 0) {
        opts.push(format!("mode={mode:o}"));
    }
    if let Some(size) = size_bytes.filter(|s| *s != 0) {
        let (value, suffix) = [("g", 1i64 << 30), ("m", 1 << 20), ("k", 1 << 10)]
            .into_iter()
            .find(|(_, d)| size % d == 0)
            .map_or((size, ""), |(s, d)| (size / d, s));
        opts.push(format!("size={value}{suffix}"));
    }
    opts.join(",")
}

/// The per-container files the daemon writes and Docker binds over the image's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcFiles {
    pub resolv_conf: Option<PathBuf>,
    pub hostname: Option<PathBuf>,
    pub hosts: Option<PathBuf>,
}

/// Everything a container's spec depends on. Empty strings and zeros mean "not set", as in
/// Docker's `HostConfig`.
#[derive(Debug, Clone, Default)]
pub struct SpecOptions {
    /// The full container ID (names the cgroup).
    pub id: String,
    /// The container's root filesystem (the mounted snapshot).
    pub rootfs: PathBuf,

    /// The image's config; the fields below override it as `docker run` does.
    pub image: ImageConfig,
    /// `--entrypoint`: `None` keeps the image's, `Some([""])` clears it.
    pub entrypoint: Option<Vec<String>>,
    /// The command after the image name; `None` or empty keeps the image's.
    pub cmd: Option<Vec<String>>,
    /// `-e`; variables without `=` unset the image's.
    pub env: Vec<String>,
    /// `--user` (`name`, `uid`, `name:group`, `uid:gid`).
    pub user: String,
    /// `--group-add`.
    pub group_add: Vec<String>,
    /// `--workdir`.
    pub working_dir: String,
    /// `--stop-signal` (not in the spec; see [`merge_config`]).
    pub stop_signal: String,
    /// `-t`.
    pub tty: bool,
    /// `-i`: not part of the spec (the shim owns stdin); kept so one struct carries the config.
    pub open_stdin: bool,
    /// Initial terminal size `[height, width]` when `tty`.
    pub console_size: Option<[u32; 2]>,
    /// The container's hostname (the daemon defaults it to the short ID, or the host's name
    /// with `--network host`).
    pub hostname: String,
    pub domainname: String,

    pub network: NetworkMode,
    pub pid: PidMode,
    pub ipc: IpcMode,
    pub uts: UtsMode,
    /// `None`: Docker's default for the host (private on cgroup v2, host otherwise).
    pub cgroupns: Option<CgroupnsMode>,
    pub userns: UsernsMode,

    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--security-opt` as the daemon receives it (see [`parse::parse_security_opts`]).
    pub security_opt: Vec<String>,
    /// The daemon's `no-new-privileges` default; `--security-opt` overrides it.
    pub no_new_privileges: bool,
    /// SELinux process and mount labels, when the daemon computed them.
    pub selinux_label: Option<String>,
    pub mount_label: Option<String>,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// Replace Docker's masked / read-only `/proc` and `/sys` paths (`systempaths=unconfined` is
    /// `Some(vec![])` for both).
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,

    /// `--device`.
    pub devices: Vec<DeviceMapping>,
    /// `--device-cgroup-rule`.
    pub device_cgroup_rules: Vec<String>,

    /// `--shm-size` in bytes; 0 is 64 MiB.
    pub shm_size: i64,
    /// `--tmpfs dest[:options]`.
    pub tmpfs: BTreeMap<String, String>,
    /// Volumes, binds and `--mount`s.
    pub mounts: Vec<UserMount>,
    pub etc_files: EtcFiles,
    /// The runtime can make read-only binds recursively read-only (`rro`; kernel ≥ 5.12 and
    /// listed in the runtime's `features`). Docker then uses `rro` for read-only binds.
    pub rro_supported: bool,

    /// `--sysctl`.
    pub sysctls: BTreeMap<String, String>,
    /// `--ulimit`.
    pub ulimits: Vec<Ulimit>,
    /// The daemon's `default-ulimits`; the container's win by name.
    pub default_ulimits: Vec<Ulimit>,
    /// `--init`: the host path of the init binary (bound at `/sbin/docker-init`).
    pub init: Option<PathBuf>,
    pub resources: Resources,
    /// `--oom-score-adj`.
    pub oom_score_adj: i32,

    /// `--cgroup-parent` (or the daemon's); empty is `/docker` (`system.slice` with systemd).
    pub cgroup_parent: String,
    pub cgroup_driver: CgroupDriver,
    /// Use this cgroups path verbatim instead of deriving it.
    pub cgroups_path: Option<String>,

    /// `--annotation`.
    pub annotations: BTreeMap<String, String>,
}
