//! The shim's wire protocol and state-dir layout, shared by `wharf-shim` (the server) and
//! [`super::client`]. This file is the spec; both sides are tested against it.
//!
//! # State dir (one per container, on tmpfs under the daemon's exec root)
//!
//! | file | written by | content |
//! |---|---|---|
//! | `shim.json` | client, before launch | [`ShimConfig`]: everything needed to (re)connect |
//! | `shim.sock` | shim | the unix socket serving this protocol |
//! | `shim.pid` | shim | the shim's pid (after it detached) |
//! | `init.pid` | runtime (`--pid-file`) | the container's init pid |
//! | `exit.json` | shim, atomically (temp, fsync, rename) | [`ExitStatus`] once the init exited |
//! | `runtime.log` | runtime (`--log`, JSON lines) | runtime errors; the shim surfaces the last one |
//! | `exec-<id>.json`, `exec-<id>.pid` | shim, runtime | process spec and pid of an exec |
//!
//! # Connections
//!
//! Every connection carries one request: the client writes one JSON line ([`Request`]), the shim
//! answers one JSON line ([`Response`]). `wait` answers only when the container has exited.
//! After a successful `attach` or `exec` answer the connection switches to *frames* in both
//! directions, each an 8-byte header `[kind, 0, 0, 0, len: u32 big-endian]` followed by `len`
//! bytes — the same header as Docker's multiplexed attach stream, so stdout/stderr frames can be
//! passed through to a non-tty Docker client unchanged.
//!
//! | kind | direction | payload |
//! |---|---|---|
//! | 0 [`FRAME_STDIN`] | client → shim | stdin bytes |
//! | 1 [`FRAME_STDOUT`] | shim → client | stdout bytes (all output when a tty is used) |
//! | 2 [`FRAME_STDERR`] | shim → client | stderr bytes |
//! | 3 [`FRAME_EXIT`] | shim → client | exec only: JSON [`ExitStatus`], the last frame |
//! | 4 [`FRAME_CLOSE_STDIN`] | client → shim | empty: this client's stdin ended |
//! | 5 [`FRAME_RESIZE`] | client → shim | `rows: u16 BE, cols: u16 BE` |
//!
//! Stdin EOF: on an attach with `stdin_once` configured and no tty, a client's
//! `FRAME_CLOSE_STDIN` (or its disconnect) closes the container's stdin; otherwise it only ends
//! that client's input. For an exec without a tty it always closes the exec'd process's stdin;
//! with a tty it never does (a client detaching must not end the shell). An attach stream ends (the shim closes the
//! connection) after the container's output reached EOF.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub const CONFIG_FILE: &str = "shim.json";
pub const SOCKET_FILE: &str = "shim.sock";
pub const SHIM_PID_FILE: &str = "shim.pid";
pub const INIT_PID_FILE: &str = "init.pid";
pub const EXIT_FILE: &str = "exit.json";
pub const RUNTIME_LOG_FILE: &str = "runtime.log";

pub const FRAME_STDIN: u8 = 0;
pub const FRAME_STDOUT: u8 = 1;
pub const FRAME_STDERR: u8 = 2;
pub const FRAME_EXIT: u8 = 3;
pub const FRAME_CLOSE_STDIN: u8 = 4;
pub const FRAME_RESIZE: u8 = 5;
/// Largest payload either side sends in one frame.
pub const MAX_FRAME: usize = 1 << 20;

/// Builds a frame header.
pub fn frame_header(kind: u8, len: usize) -> [u8; 8] {
    let l = (len as u32).to_be_bytes();
    [kind, 0, 0, 0, l[0], l[1], l[2], l[3]]
}

/// Parses a frame header into `(kind, len)`.
pub fn parse_header(h: &[u8; 8]) -> (u8, usize) {
    (h[0], u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize)
}

/// Which OCI runtime a container uses, with its command-line contract (runc's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeConfig {
    /// Name as the daemon config knows it (`runc`, `wharf-runtime`, …).
    pub name: String,
    /// The executable.
    pub path: PathBuf,
    /// `--root` for the runtime's own state.
    pub root: PathBuf,
    /// Extra global arguments placed before the verb (`--systemd-cgroup`, …).
    #[serde(default)]
    pub args: Vec<String>,
}

impl RuntimeConfig {
    /// The global arguments every invocation gets: `--root R --log L --log-format json ARGS…`.
    pub fn global_args(&self, log: &std::path::Path) -> Vec<std::ffi::OsString> {
        let mut v: Vec<std::ffi::OsString> = vec![
            "--root".into(),
            self.root.clone().into(),
            "--log".into(),
            log.as_os_str().to_owned(),
            "--log-format".into(),
            "json".into(),
        ];
        v.extend(self.args.iter().map(Into::into));
        v
    }
}

/// Log driver of a container, as `docker run --log-driver` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LogDriver {
    #[default]
    JsonFile,
    Local,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LogConfig {
    pub driver: LogDriver,
    /// The log file (`<id>-json.log` for json-file, `container.log` for local).
    pub path: PathBuf,
    /// Rotate when the file reaches this size (`max-size`); `None`: never.
    #[serde(default)]
    pub max_size: Option<u64>,
    /// Files kept including the current one (`max-file`, default 1).
    #[serde(default = "one")]
    pub max_file: u32,
}

fn one() -> u32 {
    1
}

/// Everything a shim needs; written to `shim.json` by the client before launch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimConfig {
    /// The container id the runtime knows.
    pub id: String,
    pub bundle: PathBuf,
    pub state_dir: PathBuf,
    pub runtime: RuntimeConfig,
    /// Allocate a pty (`process.terminal` in the bundle must agree).
    pub tty: bool,
    /// Keep the container's stdin open (`docker run -i`).
    pub stdin: bool,
    /// Close the container's stdin when the first attached client's stdin ends.
    pub stdin_once: bool,
    pub log: LogConfig,
}

/// How the container's (or an exec's) process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code; 128+signal for signal deaths.
    pub code: i32,
    /// The signal that killed it, if any.
    #[serde(default)]
    pub signal: Option<i32>,
    /// RFC 3339 with nanoseconds, UTC.
    pub exited_at: String,
    /// The kernel's OOM killer killed a process of the container (from the cgroup's counters).
    #[serde(default)]
    pub oom_killed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Stopped,
}

/// What `state` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimState {
    pub id: String,
    /// The container's init pid (0 once deleted).
    pub pid: i32,
    pub shim_pid: i32,
    pub status: Status,
    #[serde(default)]
    pub exit: Option<ExitStatus>,
}

/// One request per connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    State,
    Start,
    /// Signal the init process (`all`: every process, through the runtime's `kill --all`).
    Kill {
        signal: i32,
        #[serde(default)]
        all: bool,
    },
    /// Answered when the container has exited.
    Wait,
    /// Resize the container's pty, or an exec's when `exec_id` is set.
    Resize {
        #[serde(default)]
        exec_id: Option<String>,
        rows: u16,
        cols: u16,
    },
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// `process` is an OCI `process` object (`terminal` must equal `tty`).
    Exec {
        exec_id: String,
        process: serde_json::Value,
        tty: bool,
        stdin: bool,
    },
    /// The daemon recorded the exit: the shim may go once the container is gone.
    Shutdown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ShimState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStatus>,
    /// Pid of a started exec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
}

impl Response {
    pub fn ok() -> Self {
        Self { ok: true, ..Self::default() }
    }
    pub fn err(msg: impl Into<String>) -> Self {
        Self { ok: false, error: Some(msg.into()), ..Self::default() }
    }
}

/// The first line the shim writes on its stdout (the ready pipe) after `create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub ok: bool,
    #[serde(default)]
    pub shim_pid: i32,
    #[serde(default)]
    pub pid: i32,
    /// The runtime's message, verbatim, when `create` failed.
    #[serde(default)]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_json_lines() {
        let r = Request::Kill { signal: 9, all: false };
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"op":"kill","signal":9,"all":false}"#);
        let back: Request = serde_json::from_str(r#"{"op":"kill","signal":15}"#).unwrap();
        assert_eq!(back, Request::Kill { signal: 15, all: false });
        assert_eq!(parse_header(&frame_header(2, 70000)), (2, 70000));
    }
}
