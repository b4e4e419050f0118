//! Interactive sessions on a hijacked connection, as docker's `hijackedIOStreamer`:
//! - output: raw copy for TTYs, demultiplexed to stdout/stderr otherwise;
//! - input: stdin copied to the connection; for a TTY the terminal is raw and the detach keys
//!   end the session; on stdin EOF the write side is shut down (half-close) while output keeps
//!   flowing;
//! - plus signal forwarding (`--sig-proxy`) and terminal size tracking (`resize`, SIGWINCH).

use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::query_parameters::{KillContainerOptions, ResizeContainerTTYOptions, ResizeExecOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::api::{self, Hijacked};
use crate::term::{self, EscapeProxy, RawMode};

/// Which streams a session carries.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    /// `--detach-keys` (or config.json's `detachKeys`); the default is ctrl-p,ctrl-q.
    pub detach_keys: Option<String>,
}

/// How a session ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Output ended (or input ended with nothing to read).
    Done,
    /// The user typed the detach sequence.
    Detached,
}

/// The error docker's `term.EscapeError` prints.
pub const ESCAPE_ERROR: &str = "read escape sequence";

/// Runs a session to its end. Dropping the future ends it and restores the terminal.
pub async fn stream(h: Hijacked, s: Session) -> Result<End, String> {
    let Hijacked { reader, mut writer, .. } = h;
    let raw: Arc<Mutex<Option<RawMode>>> = Arc::new(Mutex::new(None));
    let mut escape = None;
    if s.stdin && s.tty {
        let mode = RawMode::enable()
            .map_err(|e| format!("unable to setup input stream: unable to set IO streams as raw terminal: {e}"))?;
        if let Ok(mut g) = raw.lock() {
            *g = Some(mode);
        }
        let keys = match s.detach_keys.as_deref().filter(|k| !k.is_empty()) {
            None => term::DEFAULT_DETACH_KEYS.to_vec(),
            Some(k) => term::detach_keys(k).unwrap_or_else(|e| {
                eprintln!("invalid detach escape keys, using default: {e}");
                term::DEFAULT_DETACH_KEYS.to_vec()
            }),
        };
        escape = Some(EscapeProxy::new(keys));
    }
    let restore = {
        let raw = raw.clone();
        move || {
            if let Ok(mut g) = raw.lock()
                && let Some(mut m) = g.take()
            {
                m.restore();
            }
        }
    };
    let has_output = s.stdout || s.stderr;
    let output = {
        let restore = restore.clone();
        async move {
            if !has_output {
                return std::future::pending::<Result<(), String>>().await;
            }
            let r = api::copy_output(reader, s.tty, s.stdout, s.stderr).await;
            if s.tty {
                restore();
            }
            r
        }
    };
    let input = {
        let restore = restore.clone();
        async move {
            let mut detached = false;
            if s.stdin {
                let mut stdin = tokio::io::stdin();
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    let n = match stdin.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let (data, hit) = match escape.as_mut() {
                        Some(p) => p.feed(&buf[..n]),
                        None => (buf[..n].to_vec(), false),
                    };
                    if !data.is_empty() && writer.write_all(&data).await.is_err() {
                        break;
                    }
                    if hit {
                        detached = true;
                        break;
                    }
                }
                restore();
            }
            if detached {
                return End::Detached;
            }
            // half-close: the daemon sees stdin end and keeps sending output
            api::close_write(&mut *writer).await;
            End::Done
        }
    };
    tokio::pin!(output, input);
    let res = tokio::select! {
        r = &mut output => r.map(|_| End::Done),
        end = &mut input => match end {
            End::Detached => Ok(End::Detached),
            End::Done if has_output => output.await.map(|_| End::Done),
            End::Done => Ok(End::Done),
        },
    };
    restore();
    res
}

/// Signals the CLI forwards to the container (`ForwardAllSignals`: everything catchable but
/// SIGCHLD, SIGPIPE and SIGURG), with the names the API takes.
const FORWARDED: &[(i32, &str)] = &[
    (libc::SIGHUP, "HUP"),
    (libc::SIGINT, "INT"),
    (libc::SIGQUIT, "QUIT"),
    (libc::SIGABRT, "ABRT"),
    (libc::SIGUSR1, "USR1"),
    (libc::SIGUSR2, "USR2"),
    (libc::SIGALRM, "ALRM"),
    (libc::SIGTERM, "TERM"),
    (libc::SIGCONT, "CONT"),
    (libc::SIGTSTP, "TSTP"),
    (libc::SIGTTIN, "TTIN"),
    (libc::SIGTTOU, "TTOU"),
    (libc::SIGWINCH, "WINCH"),
    (libc::SIGIO, "IO"),
    (libc::SIGPROF, "PROF"),
    (libc::SIGVTALRM, "VTALRM"),
    (libc::SIGXCPU, "XCPU"),
    (libc::SIGXFSZ, "XFSZ"),
    (libc::SIGSYS, "SYS"),
    (libc::SIGPWR, "PWR"),
];

/// Forwards received signals as `POST /containers/{id}/kill?signal=NAME` until aborted.
pub fn forward_signals(docker: Docker, id: String) -> JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    for &(num, name) in FORWARDED {
        let Ok(mut s) = signal(SignalKind::from_raw(num)) else {
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(name).is_err() {
                    break;
                }
            }
        });
    }
    tokio::spawn(async move {
        while let Some(name) = rx.recv().await {
            let _ = docker.kill_container(&id, Some(KillContainerOptions { signal: name.to_owned() })).await;
        }
    })
}

async fn resize(docker: &Docker, id: &str, exec: bool, h: u16, w: u16) -> Result<(), ()> {
    if h == 0 && w == 0 {
        return Ok(());
    }
    let r = if exec {
        docker.resize_exec(id, ResizeExecOptions { h: i32::from(h), w: i32::from(w) }).await
    } else {
        docker.resize_container_tty(id, ResizeContainerTTYOptions { h: i32::from(h), w: i32::from(w) }).await
    };
    r.map_err(|_| ())
}

/// `resizeTtyTo` once (`attach` nudges the size by one first so the program redraws).
pub async fn resize_to(docker: &Docker, id: &str, exec: bool, h: u16, w: u16) {
    let _ = resize(docker, id, exec, h, w).await;
}

/// `MonitorTtySize`: the terminal's size now (retried up to 10 times, as the process may not
/// be running yet) and on every SIGWINCH.
pub fn monitor_tty_size(docker: Docker, id: String, exec: bool) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (h, w) = term::stdout_size();
        if resize(&docker, &id, exec, h, w).await.is_err() {
            let (d, i) = (docker.clone(), id.clone());
            tokio::spawn(async move {
                for retry in 0..10u64 {
                    tokio::time::sleep(std::time::Duration::from_millis((retry + 1) * 10)).await;
                    let (h, w) = term::stdout_size();
                    if resize(&d, &i, exec, h, w).await.is_ok() {
                        return;
                    }
                }
                eprintln!("failed to resize tty, using default size");
            });
        }
        let Ok(mut winch) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()) else {
            return;
        };
        while winch.recv().await.is_some() {
            let (h, w) = term::stdout_size();
            let _ = resize(&docker, &id, exec, h, w).await;
        }
    })
}

/// Flushes stdout/stderr (before exiting with a container's status).
pub fn flush_std() {
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let _ = std::io::Write::flush(&mut std::io::stderr());
}
