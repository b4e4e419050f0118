//! The daemon's configuration: command-line flags merged with `daemon.json`, which uses Docker's
//! keys where they apply. Unknown keys, and Docker keys Wharf does not implement, are refused
//! with a message naming them, so a setting is never silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use wharf_types::{Classify, ErrorKind};

/// Where a runtime binary lives and what extra arguments it gets (daemon.json `runtimes`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeEntry {
    pub path: String,
    #[serde(default, rename = "runtimeArgs", skip_serializing_if = "Vec::is_empty")]
    pub runtime_args: Vec<String>,
}

/// An address pool for networks (daemon.json `default-address-pools`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressPool {
    pub base: String,
    pub size: u8,
}

/// Settings read from `daemon.json`. Every field is optional there.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FileConfig {
    pub hosts: Option<Vec<String>>,
    pub data_root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    pub log_level: Option<String>,
    pub debug: Option<bool>,
    pub group: Option<String>,
    pub pidfile: Option<PathBuf>,
    pub labels: Option<Vec<String>>,
    pub insecure_registries: Option<Vec<String>>,
    pub registry_mirrors: Option<Vec<String>>,
    pub max_concurrent_downloads: Option<u32>,
    pub max_concurrent_uploads: Option<u32>,
    pub max_download_attempts: Option<u32>,
    pub runtimes: Option<BTreeMap<String, RuntimeEntry>>,
    pub default_runtime: Option<String>,
    pub log_driver: Option<String>,
    pub log_opts: Option<BTreeMap<String, String>>,
    pub storage_driver: Option<String>,
    pub live_restore: Option<bool>,
    pub shutdown_timeout: Option<u32>,
    pub bip: Option<String>,
    pub fixed_cidr: Option<String>,
    pub default_address_pools: Option<Vec<AddressPool>>,
    pub mtu: Option<u32>,
    pub dns: Option<Vec<String>>,
    pub dns_opts: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub iptables: Option<bool>,
    pub ip_forward: Option<bool>,
    pub ip_masq: Option<bool>,
    pub userland_proxy: Option<bool>,
    pub icc: Option<bool>,
    pub bridge: Option<String>,
    /// Docker 28's `firewall-backend`: `nftables` or `iptables` (default: nftables when `nft`
    /// is installed).
    pub firewall_backend: Option<String>,
    /// Wharf's own: the nftables table (or iptables chain prefix) of this daemon, so several
    /// daemons can share a host (default `wharf`).
    pub firewall_table: Option<String>,
    /// Wharf's own: the prefix of kernel links this daemon creates and may reclaim at startup
    /// (`<prefix>-<network id>` bridges, `<prefix>v…` veths, `<prefix>d…` dummies; default `wh`).
    pub link_prefix: Option<String>,
    pub default_shm_size: Option<String>,
    pub default_ulimits: Option<BTreeMap<String, Value>>,
    pub cgroup_parent: Option<String>,
    pub exec_opts: Option<Vec<String>>,
    pub no_new_privileges: Option<bool>,
    pub seccomp_profile: Option<String>,
    pub init: Option<bool>,
    pub init_path: Option<String>,
    pub experimental: Option<bool>,
    pub features: Option<BTreeMap<String, bool>>,
    pub ipv6: Option<bool>,
    pub fixed_cidr_v6: Option<String>,
    pub tls: Option<bool>,
    pub tlsverify: Option<bool>,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
}

/// Keys of Docker's daemon.json that Wharf knows but does not implement. A file that sets one is
/// refused: silently ignoring (say) `userns-remap` would weaken what the user asked for.
const UNSUPPORTED_DOCKER_KEYS: &[&str] = &[
    "allow-nondistributable-artifacts",
    "api-cors-header",
    "authorization-plugins",
    "cluster-advertise",
    "cluster-store",
    "cluster-store-opts",
    "containerd",
    "containerd-namespace",
    "containerd-plugins-namespace",
    "cpu-rt-period",
    "cpu-rt-runtime",
    "default-cgroupns-mode",
    "default-gateway",
    "default-gateway-v6",
    "default-ipc-mode",
    "default-network-opts",
    "default-runtime-options",
    "node-generic-resources",
    "oom-score-adjust",
    "raw-logs",
    "selinux-enabled",
    "storage-opts",
    "swarm-default-advertise-addr",
    "userns-remap",
    "cdi-spec-dirs",
    "proxies",
    "log-format",
    "metrics-addr",
    "ip",
    "ip6tables",
    "ip-masq-v6",
    "host-gateway-ip",
    "host-gateway-ips",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unable to configure wharfd with file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unable to configure wharfd with file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "unable to configure wharfd with file {path}: the following directives are specified both as a flag and in the configuration file: {conflicts}"
    )]
    Conflict { path: PathBuf, conflicts: String },
}

impl Classify for ConfigError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

impl FileConfig {
    /// Reads `path`. A missing file is an empty configuration; anything malformed or unknown is
    /// an error naming the file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(ConfigError::Read { path: path.to_owned(), source });
            }
        };
        Self::parse(&text).map_err(|message| ConfigError::Invalid { path: path.to_owned(), message })
    }

    /// Parses the JSON text of a daemon.json.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let Value::Object(map) = &value else {
            return Err("the configuration must be a JSON object".to_owned());
        };
        let known = known_keys();
        let mut unknown: Vec<&str> = Vec::new();
        let mut unsupported: Vec<&str> = Vec::new();
        for key in map.keys() {
            if UNSUPPORTED_DOCKER_KEYS.contains(&key.as_str()) {
                unsupported.push(key);
            } else if !known.contains(&key.as_str()) {
                unknown.push(key);
            }
        }
        if !unknown.is_empty() {
            return Err(format!(
                "the following directives don't match any configuration option: {}",
                unknown.join(", ")
            ));
        }
        if !unsupported.is_empty() {
            return Err(format!(
                "the following Docker directives are not supported by wharf: {}",
                unsupported.join(", ")
            ));
        }
        let cfg: FileConfig = serde_json::from_value(value).map_err(|e| format!("invalid value: {e}"))?;
        if let Some(level) = &cfg.log_level {
            parse_log_level(level)?;
        }
        Ok(cfg)
    }
}

/// The daemon.json keys Wharf reads; kept in step with [`FileConfig`]'s fields by a test.
fn known_keys() -> &'static [&'static str] {
    &[
        "hosts",
        "data-root",
        "exec-root",
        "log-level",
        "debug",
        "group",
        "pidfile",
        "labels",
        "insecure-registries",
        "registry-mirrors",
        "max-concurrent-downloads",
        "max-concurrent-uploads",
        "max-download-attempts",
        "runtimes",
        "default-runtime",
        "log-driver",
        "log-opts",
        "storage-driver",
        "live-restore",
        "shutdown-timeout",
        "bip",
        "fixed-cidr",
        "default-address-pools",
        "mtu",
        "dns",
        "dns-opts",
        "dns-search",
        "iptables",
        "ip-forward",
        "ip-masq",
        "userland-proxy",
        "icc",
        "bridge",
        "firewall-backend",
        "firewall-table",
        "link-prefix",
        "default-shm-size",
        "default-ulimits",
        "cgroup-parent",
        "exec-opts",
        "no-new-privileges",
        "seccomp-profile",
        "init",
        "init-path",
        "experimental",
        "features",
        "ipv6",
        "fixed-cidr-v6",
        "tls",
        "tlsverify",
        "tlscacert",
        "tlscert",
        "tlskey",
    ]
}

/// Accepts Docker's log levels.
pub fn parse_log_level(level: &str) -> Result<&'static str, String> {
    Ok(match level {
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" => "error",
        "fatal" | "panic" => "error",
        "trace" => "trace",
        other => {
            return Err(format!("invalid log level: {other:?} (use debug, info, warn, error or fatal)"));
        }
    })
}

/// Values given on the command line; `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct FlagConfig {
    pub hosts: Vec<String>,
    pub data_root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    pub log_level: Option<String>,
    pub debug: bool,
    pub group: Option<String>,
    pub pidfile: Option<PathBuf>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub hosts: Vec<String>,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub log_level: String,
    pub group: String,
    pub pidfile: PathBuf,
    pub config_file: PathBuf,
    pub file: FileConfig,
}

pub const DEFAULT_HOST: &str = "unix:///run/wharf/wharf.sock";
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/wharf";
pub const DEFAULT_EXEC_ROOT: &str = "/run/wharf";
pub const DEFAULT_CONFIG_FILE: &str = "/etc/wharf/daemon.json";

impl Config {
    /// Merges flags over the file. A setting given both ways is an error, as in Docker.
    pub fn merge(flags: FlagConfig, file: FileConfig, config_file: PathBuf) -> Result<Self, ConfigError> {
        let mut conflicts = Vec::new();
        let mut both = |name: &str, flag: Option<String>, file: Option<String>| {
            if let (Some(a), Some(b)) = (flag, file) {
                conflicts.push(format!("{name}: (from flag: {a}, from file: {b})"));
            }
        };
        both(
            "hosts",
            (!flags.hosts.is_empty()).then(|| format!("{:?}", flags.hosts)),
            file.hosts.as_ref().map(|h| format!("{h:?}")),
        );
        let show = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        both("data-root", show(&flags.data_root), show(&file.data_root));
        both("exec-root", show(&flags.exec_root), show(&file.exec_root));
        both("log-level", flags.log_level.clone(), file.log_level.clone());
        both("group", flags.group.clone(), file.group.clone());
        both("pidfile", show(&flags.pidfile), show(&file.pidfile));
        if !conflicts.is_empty() {
            return Err(ConfigError::Conflict { path: config_file, conflicts: conflicts.join(", ") });
        }
        let hosts = if !flags.hosts.is_empty() {
            flags.hosts
        } else {
            file.hosts.clone().unwrap_or_else(|| vec![DEFAULT_HOST.to_owned()])
        };
        let exec_root = flags.exec_root.or_else(|| file.exec_root.clone()).unwrap_or_else(|| DEFAULT_EXEC_ROOT.into());
        let debug = flags.debug || file.debug.unwrap_or(false);
        let log_level = flags
            .log_level
            .or_else(|| file.log_level.clone())
            .unwrap_or_else(|| if debug { "debug".to_owned() } else { "info".to_owned() });
        parse_log_level(&log_level).map_err(|message| ConfigError::Invalid { path: config_file.clone(), message })?;
        Ok(Self {
            hosts,
            data_root: flags.data_root.or_else(|| file.data_root.clone()).unwrap_or_else(|| DEFAULT_DATA_ROOT.into()),
            pidfile: flags.pidfile.or_else(|| file.pidfile.clone()).unwrap_or_else(|| exec_root.join("wharfd.pid")),
            exec_root,
            log_level,
            group: flags.group.or_else(|| file.group.clone()).unwrap_or_else(|| "wharf".to_owned()),
            config_file,
            file,
        })
    }

    /// Whether containers keep running while the daemon is down (on by default in Wharf).
    pub fn live_restore(&self) -> bool {
        self.file.live_restore.unwrap_or(true)
    }

    /// The registries that may be reached over plain HTTP, besides 127.0.0.0/8.
    pub fn insecure_registries(&self) -> Vec<String> {
        self.file.insecure_registries.clone().unwrap_or_default()
    }

    pub fn log_driver(&self) -> &str {
        self.file.log_driver.as_deref().unwrap_or("json-file")
    }

    /// Daemon labels (`key=value` strings).
    pub fn labels(&self) -> Vec<String> {
        self.file.labels.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_missing_files_are_defaults() {
        assert_eq!(FileConfig::parse("").unwrap(), FileConfig::default());
        assert_eq!(FileConfig::parse("{}").unwrap(), FileConfig::default());
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(FileConfig::load(&dir.path().join("nope.json")).unwrap(), FileConfig::default());
    }

    #[test]
    fn docker_keys_parse() {
        let cfg = FileConfig::parse(
            r#"{"insecure-registries":["r:5000"],"registry-mirrors":["https://m"],"log-driver":"local",
                "log-opts":{"max-size":"10m"},"runtimes":{"runc":{"path":"/usr/bin/runc","runtimeArgs":["--debug"]}},
                "default-address-pools":[{"base":"10.10.0.0/16","size":24}],"live-restore":false,"debug":true}"#,
        )
        .unwrap();
        assert_eq!(cfg.insecure_registries.unwrap(), vec!["r:5000"]);
        assert_eq!(cfg.runtimes.unwrap()["runc"].runtime_args, vec!["--debug"]);
        assert_eq!(cfg.default_address_pools.unwrap()[0].size, 24);
        assert_eq!(cfg.live_restore, Some(false));
    }

    #[test]
    fn unknown_and_unsupported_keys_are_refused_by_name() {
        let e = FileConfig::parse(r#"{"bogus":1,"debug":true}"#).unwrap_err();
        assert_eq!(e, "the following directives don't match any configuration option: bogus");
        let e = FileConfig::parse(r#"{"userns-remap":"default"}"#).unwrap_err();
        assert!(e.contains("not supported by wharf: userns-remap"), "{e}");
        let e = FileConfig::parse(r#"{"debug":"yes"}"#).unwrap_err();
        assert!(e.starts_with("invalid value:"), "{e}");
        let e = FileConfig::parse("{").unwrap_err();
        assert!(e.starts_with("invalid JSON:"), "{e}");
        let e = FileConfig::parse("[]").unwrap_err();
        assert_eq!(e, "the configuration must be a JSON object");
        let e = FileConfig::parse(r#"{"log-level":"loud"}"#).unwrap_err();
        assert!(e.contains("invalid log level"), "{e}");
    }

    #[test]
    fn every_field_is_a_known_key() {
        // Deserialising an object with every known key set to null must succeed, which proves
        // each known key maps to a field (serde would reject a misspelt one only if
        // deny_unknown_fields were on, so check the reverse through a round trip of names).
        let all: serde_json::Map<String, Value> = known_keys().iter().map(|k| (k.to_string(), Value::Null)).collect();
        let cfg: FileConfig = serde_json::from_value(Value::Object(all)).unwrap();
        assert_eq!(cfg, FileConfig::default());
        for k in known_keys() {
            let mut one = serde_json::Map::new();
            one.insert(k.to_string(), Value::Bool(true));
            // A wrong type must be reported, which only happens when the key reaches a field.
            let r: Result<FileConfig, _> = serde_json::from_value(Value::Object(one));
            let reached_field = r.is_err() || *k == "debug" || r.as_ref().is_ok_and(|c| c != &FileConfig::default());
            assert!(reached_field, "key {k} does not map to a FileConfig field");
        }
    }

    #[test]
    fn flags_and_file_conflict_like_docker() {
        let file = FileConfig::parse(r#"{"data-root":"/a"}"#).unwrap();
        let flags = FlagConfig { data_root: Some("/b".into()), ..Default::default() };
        let e = Config::merge(flags, file, "/etc/wharf/daemon.json".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to configure wharfd with file /etc/wharf/daemon.json: the following directives are specified both as a flag and in the configuration file: data-root: (from flag: /b, from file: /a)"
        );
    }

    #[test]
    fn defaults() {
        let c = Config::merge(FlagConfig::default(), FileConfig::default(), DEFAULT_CONFIG_FILE.into()).unwrap();
        assert_eq!(c.hosts, vec![DEFAULT_HOST]);
        assert_eq!(c.data_root, PathBuf::from(DEFAULT_DATA_ROOT));
        assert_eq!(c.exec_root, PathBuf::from(DEFAULT_EXEC_ROOT));
        assert_eq!(c.pidfile, PathBuf::from("/run/wharf/wharfd.pid"));
        assert_eq!(c.log_level, "info");
        assert!(c.live_restore());
    }
}
