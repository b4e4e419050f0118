//! Error reporting the way runc does it: the shim (or containerd) reads the last `error` line of
//! the `--log` file to learn why a command failed, and a human reads stderr.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::LogFormat;

pub struct Logger {
    path: Option<PathBuf>,
    format: LogFormat,
    #[allow(dead_code)]
    debug: bool,
}

impl Logger {
    pub fn new(path: Option<&Path>, format: LogFormat, debug: bool) -> Self {
        Self { path: path.map(Path::to_path_buf), format, debug }
    }

    /// Logs `msg` at level error to the log file and to stderr. Failures to log are ignored:
    /// there is nowhere left to report them.
    pub fn error(&self, msg: &str) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if let Some(path) = &self.path {
            let line = match self.format {
                LogFormat::Json => {
                    let mut s = serde_json::json!({"level": "error", "msg": msg, "time": now}).to_string();
                    s.push('\n');
                    s
                }
                LogFormat::Text => format!("time=\"{now}\" level=error msg={}\n", serde_json::Value::from(msg)),
            };
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                let _ = f.write_all(line.as_bytes());
            }
        }
        let _ = writeln!(std::io::stderr(), "{msg}");
    }
}
