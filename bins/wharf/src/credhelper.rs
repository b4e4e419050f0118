//! The credential helper protocol (docker-credential-helpers), as the docker CLI drives it: a
//! program `docker-credential-<name>` on `PATH`, run once per action with the action as its only
//! argument:
//!
//! | action | stdin | stdout |
//! |---|---|---|
//! | `store` | `{"ServerURL","Username","Secret"}` | nothing |
//! | `get` | the server URL | `{"ServerURL","Username","Secret"}` |
//! | `erase` | the server URL | nothing |
//! | `list` | nothing | `{"<server URL>": "<username>", …}` |
//!
//! A failing helper exits non-zero with its error message on stdout; `credentials not found in
//! native keychain` is the one message with a meaning (no credentials: not an error for `get`).
//! An identity token is stored with the user name `<token>` and the token as the secret.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

/// The message of a helper that has no credentials for a server.
pub const NOT_FOUND: &str = "credentials not found in native keychain";

/// The user name under which an identity token is stored.
pub const TOKEN_USERNAME: &str = "<token>";

/// What a helper stores per server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperCredentials {
    #[serde(rename = "ServerURL", default)]
    pub server_url: String,
    #[serde(rename = "Username", default)]
    pub username: String,
    #[serde(rename = "Secret", default)]
    pub secret: String,
}

/// A helper action that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelperError {
    /// The helper has no credentials for the server.
    NotFound,
    /// Anything else, worded as docker's helper client words it:
    /// ``error getting credentials - err: exit status 1, out: `…` ``.
    Failed(String),
}

impl fmt::Display for HelperError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HelperError::NotFound => f.write_str(NOT_FOUND),
            HelperError::Failed(m) => f.write_str(m),
        }
    }
}

/// A credential helper, by its name (`credsStore`/`credHelpers` values: `pass`, `osxkeychain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    /// `docker-credential-<name>`, looked up on `PATH`.
    program: String,
}

impl Helper {
    pub fn new(name: &str) -> Self {
        Self { program: format!("docker-credential-{name}") }
    }

    /// The program run (`docker-credential-<name>`).
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Runs `action` with `input` on stdin; its stdout on success. `doing` words the error
    /// (`getting`, `storing`, …).
    fn run(&self, action: &str, doing: &str, input: &[u8]) -> Result<Vec<u8>, HelperError> {
        let program = &self.program;
        let failed = |err: String, out: &[u8]| {
            HelperError::Failed(format!(
                "error {doing} credentials - err: {err}, out: `{}`",
                String::from_utf8_lossy(out).trim()
            ))
        };
        let mut child = Command::new(program)
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    failed(format!("exec: \"{program}\": executable file not found in $PATH"), b"")
                }
                _ => failed(format!("exec: \"{program}\": {e}"), b""),
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading its input fails below with its own message.
            let _ = stdin.write_all(input);
        }
        let out = child.wait_with_output().map_err(|e| failed(e.to_string(), b""))?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        if String::from_utf8_lossy(&out.stdout).trim() == NOT_FOUND {
            return Err(HelperError::NotFound);
        }
        let err = match out.status.code() {
            Some(c) => format!("exit status {c}"),
            None => "signal: killed".to_owned(),
        };
        Err(failed(err, &out.stdout))
    }

    /// `get`: the credentials stored for `server`.
    pub fn get(&self, server: &str) -> Result<HelperCredentials, HelperError> {
        let out = self.run("get", "getting", server.as_bytes())?;
        let mut creds: HelperCredentials = serde_json::from_slice(&out).map_err(|e| {
            HelperError::Failed(format!(
                "error getting credentials - err: {e}, out: `{}`",
                String::from_utf8_lossy(&out).trim()
            ))
        })?;
        creds.server_url = server.to_owned();
        Ok(creds)
    }

    /// `store`: saves `creds` (its `server_url` names the server).
    pub fn store(&self, creds: &HelperCredentials) -> Result<(), HelperError> {
        let input = serde_json::to_vec(creds).expect("plain strings serialize");
        self.run("store", "storing", &input).map(drop)
    }

    /// `erase`: forgets `server`'s credentials.
    pub fn erase(&self, server: &str) -> Result<(), HelperError> {
        self.run("erase", "erasing", server.as_bytes()).map(drop)
    }

    /// `list`: every server the helper has credentials for, with its user name.
    pub fn list(&self) -> Result<BTreeMap<String, String>, HelperError> {
        let out = self.run("list", "listing", b"")?;
        serde_json::from_slice(&out).map_err(|e| {
            HelperError::Failed(format!(
                "error listing credentials - err: {e}, out: `{}`",
                String::from_utf8_lossy(&out).trim()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A helper script that keeps one server's credentials in a file beside it.
    fn fake_helper(dir: &std::path::Path) -> Helper {
        let script = dir.join("docker-credential-wharfunit");
        let store = dir.join("store.json");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nin=$(cat)\ncase \"$1\" in\n\
                 store) printf '%s' \"$in\" > {s} ;;\n\
                 get) if [ -f {s} ] && grep -q \"\\\"ServerURL\\\":\\\"$in\\\"\" {s}; then cat {s}; else echo '{NOT_FOUND}'; exit 1; fi ;;\n\
                 erase) if [ -f {s} ]; then rm {s}; else echo '{NOT_FOUND}'; exit 1; fi ;;\n\
                 list) if [ -f {s} ]; then echo '{{\"h:1\":\"u\"}}'; else echo '{{}}'; fi ;;\n\
                 *) echo \"unknown action $1\"; exit 2 ;;\nesac\n",
                s = store.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        Helper { program: script.display().to_string() }
    }

    #[test]
    fn store_get_list_erase_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let h = fake_helper(dir.path());
        assert_eq!(h.get("h:1"), Err(HelperError::NotFound));
        let creds = HelperCredentials { server_url: "h:1".into(), username: "u".into(), secret: "s".into() };
        h.store(&creds).unwrap();
        assert_eq!(h.get("h:1").unwrap(), creds);
        assert_eq!(h.list().unwrap(), BTreeMap::from([("h:1".to_owned(), "u".to_owned())]));
        h.erase("h:1").unwrap();
        assert_eq!(h.erase("h:1"), Err(HelperError::NotFound));
        let e = h.run("bogus", "doing", b"").unwrap_err();
        assert_eq!(e.to_string(), "error doing credentials - err: exit status 2, out: `unknown action bogus`");
    }

    #[test]
    fn a_missing_helper_is_worded_as_docker() {
        let e = Helper::new("wharf-no-such-helper").get("x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "error getting credentials - err: exec: \"docker-credential-wharf-no-such-helper\": executable file not found in $PATH, out: ``"
        );
    }
}
