//! Async wrappers that run the OCI runtime binary directly (runc's command line) for the verbs
//! that need no shim: `pause`, `resume`, `update`, `ps`, `state`, `delete`. Each is a short-lived
//! subprocess; the runtime itself stays single-threaded.

use std::process::Stdio;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::error::ShimError;
pub use super::protocol::RuntimeConfig;

/// runc's `state` output.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeState {
    #[serde(default)]
    pub oci_version: String,
    pub id: String,
    #[serde(default)]
    pub pid: i32,
    pub status: String,
    #[serde(default)]
    pub bundle: String,
    #[serde(default)]
    pub rootfs: String,
    #[serde(default)]
    pub created: Option<String>,
}

/// The error text of a failed runtime run: the last `msg` of its JSON log lines on stderr, or
/// the last non-empty stderr line.
fn error_text(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut last = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        last = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("msg").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| line.trim().to_owned());
    }
    last
}

impl RuntimeConfig {
    async fn run(&self, verb: &'static str, args: &[&str], input: Option<Vec<u8>>) -> Result<Vec<u8>, ShimError> {
        let mut cmd = tokio::process::Command::new(&self.path);
        cmd.arg("--root").arg(&self.root).arg("--log-format").arg("json").args(&self.args).arg(verb).args(args);
        cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawn_err = |source| ShimError::RuntimeSpawn { runtime: self.name.clone(), verb, source };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(&data).await.map_err(spawn_err)?;
        }
        let out = child.wait_with_output().await.map_err(spawn_err)?;
        if !out.status.success() {
            let mut message = error_text(&out.stderr);
            if message.is_empty() {
                message = format!("exit status {}", out.status);
            }
            return Err(ShimError::Runtime { runtime: self.name.clone(), verb, message });
        }
        Ok(out.stdout)
    }

    pub async fn pause(&self, id: &str) -> Result<(), ShimError> {
        self.run("pause", &[id], None).await.map(drop)
    }

    pub async fn resume(&self, id: &str) -> Result<(), ShimError> {
        self.run("resume", &[id], None).await.map(drop)
    }

    /// Applies new cgroup limits (`update --resources -`).
    pub async fn update(&self, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<(), ShimError> {
        let body = serde_json::to_vec(resources).map_err(|source| ShimError::RuntimeOutput {
            runtime: self.name.clone(),
            verb: "update",
            source,
        })?;
        self.run("update", &["--resources", "-", id], Some(body)).await.map(drop)
    }

    /// Pids of the container's processes (`ps --format json`).
    pub async fn ps(&self, id: &str) -> Result<Vec<i32>, ShimError> {
        let out = self.run("ps", &["--format", "json", id], None).await?;
        serde_json::from_slice(&out).map_err(|source| ShimError::RuntimeOutput {
            runtime: self.name.clone(),
            verb: "ps",
            source,
        })
    }

    pub async fn state(&self, id: &str) -> Result<RuntimeState, ShimError> {
        let out = self.run("state", &[id], None).await?;
        serde_json::from_slice(&out).map_err(|source| ShimError::RuntimeOutput {
            runtime: self.name.clone(),
            verb: "state",
            source,
        })
    }

    /// Removes the runtime's record of the container (cleanup after a lost shim).
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), ShimError> {
        let args: Vec<&str> = if force { vec!["--force", id] } else { vec![id] };
        self.run("delete", &args, None).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[test]
    fn error_text_prefers_json_msg() {
        let s = b"{\"level\":\"error\",\"msg\":\"container does not exist\",\"time\":\"x\"}\n";
        assert_eq!(error_text(s), "container does not exist");
        assert_eq!(error_text(b"plain failure\n\n"), "plain failure");
    }
}
