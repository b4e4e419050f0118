//! `wharf-shim`: one small single-threaded process per container (no async runtime; epoll and a
//! signalfd). It holds the container's stdio pipes or pty master, writes its log, serves attach,
//! resize, kill, exec, state and wait over a unix socket, reaps the container (it is a child
//! subreaper) and records its exit status atomically, so containers outlive the daemon.
//!
//! Map:
//! - [`main`] (this file): launch contract, detaching, `<runtime> create`, the ready handshake.
//! - [`server`]: the event loop and the protocol of `wharf_runtime::shim::protocol`.
//! - [`runtime`]: running the OCI runtime (runc's command line) and reading its errors.
//! - [`sys`]: syscall wrappers (epoll, signalfd, pipes, SCM_RIGHTS, TIOCSWINSZ, atomic writes).
//!
//! Launch: `wharf-shim <state-dir>` with `<state-dir>/shim.json` (a `ShimConfig`) written
//! beforehand and stdout a pipe. The shim forks; the first process exits at once (the daemon
//! reaps it), the second calls setsid, becomes a child subreaper, sets its oom_score_adj to
//! -999, chdirs into the state dir, runs `<runtime> create`, and writes one JSON line (`Ready`)
//! to the pipe: `{"ok":true,"shim_pid":…,"pid":…}` or `{"ok":false,"error":"<runtime's message>"}`.
//! Everything it needs later lives in the state dir (layout in the protocol module).

mod runtime;
mod server;
mod sys;

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use wharf_runtime::shim::protocol::{CONFIG_FILE, INIT_PID_FILE, Ready, SHIM_PID_FILE, ShimConfig};

use crate::runtime::Runtime;

/// The container's stdio as the shim holds it after `create`.
pub enum Stdio3 {
    Pipes { stdin: Option<OwnedFd>, stdout: OwnedFd, stderr: OwnedFd },
    Pty { master: OwnedFd },
}

fn main() {
    let Some(state_dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: wharf-shim <state-dir>");
        std::process::exit(2);
    };
    let ready = match sys::dup_cloexec(1) {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) => {
            eprintln!("wharf-shim: dup ready pipe: {e}");
            std::process::exit(1);
        }
    };
    match sys::fork() {
        Ok(0) => {}
        Ok(_) => std::process::exit(0),
        Err(e) => {
            eprintln!("wharf-shim: fork: {e}");
            std::process::exit(1);
        }
    }
    let mut ready = Some(ready);
    let code = match run(&state_dir, &mut ready) {
        Ok(()) => 0,
        Err(msg) => {
            if let Some(mut r) = ready.take() {
                let line = serde_json::to_string(&Ready {
                    ok: false,
                    shim_pid: std::process::id() as i32,
                    pid: 0,
                    error: Some(msg.clone()),
                })
                .unwrap_or_default();
                let _ = writeln!(r, "{line}");
            }
            let _ = std::fs::write(state_dir.join("shim.err"), msg);
            1
        }
    };
    std::process::exit(code);
}

fn detach(state_dir: &Path) -> Result<Vec<u8>, String> {
    let _ = sys::setsid();
    std::env::set_current_dir(state_dir).map_err(|e| format!("chdir {}: {e}", state_dir.display()))?;
    let null = sys::open_devnull().map_err(|e| format!("open /dev/null: {e}"))?;
    for fd in 0..3 {
        let _ = sys::dup2(null.as_raw_fd(), fd);
    }
    sys::set_child_subreaper().map_err(|e| format!("set child subreaper: {e}"))?;
    let adj = std::fs::read("/proc/self/oom_score_adj").unwrap_or_else(|_| b"0".to_vec());
    let _ = std::fs::write("/proc/self/oom_score_adj", "-999");
    Ok(adj.trim_ascii().to_vec())
}

fn run(state_dir: &Path, ready: &mut Option<std::fs::File>) -> Result<(), String> {
    let oom_adj = detach(state_dir)?;
    let raw = std::fs::read(CONFIG_FILE).map_err(|e| format!("read {}: {e}", state_dir.join(CONFIG_FILE).display()))?;
    let config: ShimConfig = serde_json::from_slice(&raw).map_err(|e| format!("parse {CONFIG_FILE}: {e}"))?;
    let sigfd = sys::signalfd(&[libc::SIGCHLD]).map_err(|e| format!("signalfd: {e}"))?;
    let rt = Runtime::new(config.runtime.clone(), config.id.clone(), oom_adj);
    let _ = std::fs::remove_file(INIT_PID_FILE);

    let (stdio, pid) = create(&config, &rt)?;
    std::fs::write(SHIM_PID_FILE, std::process::id().to_string()).map_err(|e| format!("write {SHIM_PID_FILE}: {e}"))?;
    let mut server = server::Server::new(config, rt, sigfd, stdio, pid).map_err(|e| format!("serve: {e}"))?;
    if let Some(mut r) = ready.take() {
        let line = serde_json::to_string(&Ready { ok: true, shim_pid: std::process::id() as i32, pid, error: None })
            .unwrap_or_default();
        let _ = writeln!(r, "{line}");
    }
    sys::trim_text();
    server.run();
    Ok(())
}

/// Runs `<runtime> create` with the container's stdio; returns that stdio and the init pid.
fn create(config: &ShimConfig, rt: &Runtime) -> Result<(Stdio3, i32), String> {
    let offset = rt.log_offset();
    let bundle = config.bundle.as_os_str();
    let mut args: Vec<&OsStr> =
        vec!["create".as_ref(), "--bundle".as_ref(), bundle, "--pid-file".as_ref(), INIT_PID_FILE.as_ref()];
    let io_err = |what: &str, e: std::io::Error| format!("{what}: {e}");
    let (stdio, status) = if config.tty {
        // Runtimes resolve a relative console socket against their cwd (the state dir): absolute
        // when it fits a sockaddr_un, relative otherwise.
        let abs = config.state_dir.join("console.sock");
        let sock_path = if abs.as_os_str().len() < 100 { abs } else { PathBuf::from("console.sock") };
        let sock = sock_path.as_os_str();
        let _ = std::fs::remove_file(sock);
        let listener = UnixListener::bind(sock).map_err(|e| io_err("bind console socket", e))?;
        listener.set_nonblocking(true).map_err(|e| io_err("console socket", e))?;
        args.push(OsStr::new("--console-socket"));
        args.push(sock);
        args.push(config.id.as_ref());
        let pid =
            rt.spawn(&args, Stdio::null(), Stdio::null(), Stdio::null()).map_err(|e| io_err("spawn runtime", e))?;
        let mut master = None;
        let mut status = None;
        let deadline = Instant::now() + Duration::from_secs(120);
        while status.is_none() && Instant::now() < deadline {
            if master.is_none()
                && let Ok((conn, _)) = listener.accept()
            {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                master = Some(sys::recv_fd(conn.as_raw_fd()).map_err(|e| io_err("receive pty master", e))?);
            }
            status = sys::try_wait_pid(pid);
            if status.is_none() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let _ = std::fs::remove_file(sock);
        let status = match status {
            Some(s) => s,
            None => {
                let _ = sys::kill(pid, libc::SIGKILL);
                sys::wait_pid(pid).unwrap_or(0)
            }
        };
        if master.is_none()
            && status == 0
            && let Ok((conn, _)) = listener.accept()
        {
            master = sys::recv_fd(conn.as_raw_fd()).ok();
        }
        match master {
            Some(master) => (Stdio3::Pty { master }, status),
            None if status != 0 => return Err(rt.error_since(offset, "create", status)),
            None => return Err("runtime did not send a pty master on the console socket".into()),
        }
    } else {
        args.push(config.id.as_ref());
        let (in_r, in_w) = if config.stdin {
            let (r, w) = sys::pipe().map_err(|e| io_err("pipe", e))?;
            (Stdio::from(r), Some(w))
        } else {
            (Stdio::null(), None)
        };
        let (out_r, out_w) = sys::pipe().map_err(|e| io_err("pipe", e))?;
        let (err_r, err_w) = sys::pipe().map_err(|e| io_err("pipe", e))?;
        let pid =
            rt.spawn(&args, in_r, Stdio::from(out_w), Stdio::from(err_w)).map_err(|e| io_err("spawn runtime", e))?;
        let status = sys::wait_pid(pid).map_err(|e| io_err("wait for runtime", e))?;
        (Stdio3::Pipes { stdin: in_w, stdout: out_r, stderr: err_r }, status)
    };
    if status != 0 {
        let msg = rt.error_since(offset, "create", status);
        let _ = rt
            .spawn(
                &["delete".as_ref(), "--force".as_ref(), config.id.as_ref()],
                Stdio::null(),
                Stdio::null(),
                Stdio::null(),
            )
            .map(sys::wait_pid);
        return Err(msg);
    }
    let pid: i32 = std::fs::read_to_string(INIT_PID_FILE)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("runtime create succeeded but wrote no pid to {INIT_PID_FILE}"))?;
    Ok((stdio, pid))
}
