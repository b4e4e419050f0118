//! Running the OCI runtime binary (runc's command line) from the shim, and recovering its error
//! message from the JSON `--log` file, verbatim.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use wharf_runtime::shim::protocol::{RUNTIME_LOG_FILE, RuntimeConfig};

pub struct Runtime {
    pub config: RuntimeConfig,
    pub id: String,
    /// The oom_score_adj the shim started with; children get it back (the shim's own -999 must
    /// not be inherited by containers).
    oom_score_adj: Vec<u8>,
}

impl Runtime {
    pub fn new(config: RuntimeConfig, id: String, oom_score_adj: Vec<u8>) -> Self {
        Self { config, id, oom_score_adj }
    }

    /// Current size of the runtime log: errors of the next command are read from here on.
    pub fn log_offset(&self) -> u64 {
        std::fs::metadata(RUNTIME_LOG_FILE).map(|m| m.len()).unwrap_or(0)
    }

    /// Spawns `<runtime> <global args> <args…>` in the state dir (the shim's cwd) with the
    /// given stdio; returns its pid. The caller reaps it.
    pub fn spawn(&self, args: &[&OsStr], stdin: Stdio, stdout: Stdio, stderr: Stdio) -> io::Result<libc::pid_t> {
        let mut cmd = Command::new(&self.config.path);
        cmd.args(self.config.global_args(&PathBuf::from(RUNTIME_LOG_FILE))).args(args);
        cmd.stdin(stdin).stdout(stdout).stderr(stderr);
        let adj = self.oom_score_adj.clone();
        // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
        // functions (open, write, close) on buffers prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let path = c"/proc/self/oom_score_adj";
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd >= 0 {
                    libc::write(fd, adj.as_ptr().cast(), adj.len());
                    libc::close(fd);
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        Ok(child.id() as libc::pid_t)
    }

    /// Args for a verb that takes only the container id.
    pub fn simple(&self, verb: &str) -> Vec<OsString> {
        vec![verb.into(), self.id.clone().into()]
    }

    /// The last `error` message the runtime logged after `offset`, or a generic message.
    pub fn error_since(&self, offset: u64, verb: &str, status: i32) -> String {
        let text = std::fs::read(RUNTIME_LOG_FILE).unwrap_or_default();
        let tail = text.get(offset as usize..).unwrap_or_default();
        let mut last = None;
        for line in tail.split(|&b| b == b'\n') {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line)
                && v.get("level").and_then(|l| l.as_str()) == Some("error")
                && let Some(m) = v.get("msg").and_then(|m| m.as_str())
            {
                last = Some(m.to_owned());
            }
        }
        last.unwrap_or_else(|| {
            let (code, sig) = crate::sys::decode_status(status);
            match sig {
                Some(s) => format!("{} {verb} killed by signal {s}", self.config.name),
                None => format!("{} {verb} failed with exit status {code}", self.config.name),
            }
        })
    }
}
