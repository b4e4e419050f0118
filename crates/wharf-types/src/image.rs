//! The image configuration document (Docker image spec v1.2 / OCI image config), whose sha256
//! digest is the image ID. Parsed for reading; a config we did not create is never
//! re-serialised (its bytes are its identity), but unknown fields are kept for round trips.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::digest::Digest;

/// An image's ID: the digest of its config blob (`sha256:<hex>`), which `docker images` shows
/// shortened to 12 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(Digest);

impl ImageId {
    pub fn new(config_digest: Digest) -> Self {
        Self(config_digest)
    }

    /// The config digest this ID is.
    pub fn digest(&self) -> &Digest {
        &self.0
    }

    /// The hex digits without the algorithm.
    pub fn hex(&self) -> &str {
        self.0.hex()
    }

    /// The first 12 hex digits, as tables show them.
    pub fn short(&self) -> &str {
        self.0.short()
    }
}

impl std::fmt::Display for ImageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for ImageId {
    type Err = crate::digest::DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// The whole config blob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// RFC 3339 with nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RuntimeConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields this type does not name (`container`, `container_config`, `docker_version`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `rootfs`: the layers' diff IDs, bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        Self { kind: "layers".to_owned(), diff_ids: Vec::new() }
    }
}

/// One `history` entry; `empty_layer` entries made no layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// A healthcheck as images and containers carry it (durations in nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// The runtime defaults an image carries (`config`), in Docker's field names. Docker's full
/// container `Config` is a superset; the extra fields it writes into images are kept too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The chain ID of a layer stack (OCI image spec): the first layer's chain ID is its diff ID;
/// each next one is `sha256(parent_chain + " " + diff_id)`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    use sha2::{Digest as _, Sha256};
    let sha256 = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => Digest::sha256_bytes(&sha256(format!("{parent} {d}").as_bytes())),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let b: Digest = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        // sha256("sha256:aaa… sha256:bbb…"), computed independently with sha256sum.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s' '{a} {b}' | sha256sum"))
            .output()
            .unwrap();
        let hex = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_owned();
        assert_eq!(chain[1].hex(), hex);
    }

    #[test]
    fn docker_config_round_trips_unknown_fields() {
        let json = r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"],"Image":"sha256:x","Healthcheck":{"Test":["CMD","true"],"Interval":1000000000}},"rootfs":{"type":"layers","diff_ids":[]},"docker_version":"28.2.2","history":[{"created_by":"x","empty_layer":true}]}"#;
        let cfg: ImageConfig = serde_json::from_str(json).unwrap();
        let rc = cfg.config.as_ref().unwrap();
        assert_eq!(rc.cmd.as_deref(), Some(&["sh".to_owned()][..]));
        assert_eq!(rc.healthcheck.as_ref().unwrap().interval, 1_000_000_000);
        assert_eq!(rc.extra["Image"], "sha256:x");
        assert_eq!(cfg.extra["docker_version"], "28.2.2");
        assert!(cfg.history[0].empty_layer);
        let back: serde_json::Value = serde_json::to_value(&cfg).unwrap();
        assert_eq!(back["config"]["Image"], "sha256:x");
        assert_eq!(back["docker_version"], "28.2.2");
    }
}
