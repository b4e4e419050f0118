//! `wharf-init`: the tiny init that `docker run --init` puts at PID 1 (bind-mounted at
//! `/sbin/docker-init`). Usage: `wharf-init [-g] [--] COMMAND [ARG…]`.
//!
//! Map (one file): it blocks every asynchronous signal, forks COMMAND into its own process
//! group (and makes that group the terminal's foreground group when stdin is a tty), then waits
//! in `sigtimedwait`: SIGCHLD reaps every zombie (as PID 1 it inherits all orphans); any other
//! signal is forwarded to the child — to its whole process group when the child leads one (it
//! does, unless it changed that itself), or with `-g` always. When the child exits, wharf-init
//! exits with its status: the exit code, or 128+signal.
//!
//! It must run in a `FROM scratch` image, so release builds are static (`crt-static`, glibc's
//! libc.a): build it from its own directory, where `.cargo/config.toml` adds the flag —
//! `cd bins/wharf-init && cargo build --release` — or from anywhere with
//! `cargo rustc -p wharf-init --release --bin wharf-init -- -C target-feature=+crt-static`.
//! `build.rs` warns when a release build is not static. No allocation happens after the fork.

use std::ffi::CString;
use std::io::Write;

// Signals that are synchronous faults of wharf-init itself stay unblocked.
const SYNCHRONOUS: &[i32] =
    &[libc::SIGFPE, libc::SIGILL, libc::SIGSEGV, libc::SIGBUS, libc::SIGABRT, libc::SIGTRAP, libc::SIGSYS];

fn die(msg: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "wharf-init: {msg}");
    std::process::exit(1);
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut group_always = false;
    while let Some(first) = args.first() {
        match first.as_str() {
            "--" => {
                args.remove(0);
                break;
            }
            "-g" => {
                group_always = true;
                args.remove(0);
            }
            "-s" | "-v" => {
                args.remove(0);
            }
            "-h" | "--help" => {
                println!("usage: wharf-init [-g] [--] COMMAND [ARG...]");
                return;
            }
            _ => break,
        }
    }
    if args.is_empty() {
        die("no command given (usage: wharf-init [-g] [--] COMMAND [ARG...])");
    }
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_else(|_| die("argument contains a NUL byte")))
        .collect();
    let mut argv: Vec<*const libc::c_char> = cargs.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());

    // SAFETY: sigset_t is plain data; it is initialised by sigfillset before use.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; sigprocmask fills it.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: the sets are valid for the calls; wharf-init is single-threaded.
    unsafe {
        libc::sigfillset(&mut all);
        for &s in SYNCHRONOUS {
            libc::sigdelset(&mut all, s);
        }
        libc::sigprocmask(libc::SIG_SETMASK, &all, &mut old);
        // So that tcsetpgrp from a background group does not stop us.
        libc::signal(libc::SIGTTIN, libc::SIG_IGN);
        libc::signal(libc::SIGTTOU, libc::SIG_IGN);
    }

    // SAFETY: single-threaded, so the child may continue; it only makes async-signal-safe calls
    // on memory prepared before the fork.
    let child = unsafe { libc::fork() };
    if child < 0 {
        die(&format!("fork: {}", std::io::Error::last_os_error()));
    }
    if child == 0 {
        // SAFETY: async-signal-safe calls only; `argv` is a NULL-terminated array of C strings.
        unsafe {
            libc::setpgid(0, 0);
            if libc::isatty(0) == 1 {
                libc::tcsetpgrp(0, libc::getpid());
            }
            libc::signal(libc::SIGTTIN, libc::SIG_DFL);
            libc::signal(libc::SIGTTOU, libc::SIG_DFL);
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            libc::execvp(argv[0], argv.as_ptr());
            let errno = *libc::__errno_location();
            let msg: &[u8] = if errno == libc::ENOENT {
                b"wharf-init: exec failed: executable file not found in $PATH\n"
            } else if errno == libc::EACCES {
                b"wharf-init: exec failed: permission denied\n"
            } else {
                b"wharf-init: exec failed\n"
            };
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(if errno == libc::ENOENT { 127 } else { 126 });
        }
    }

    let timeout = libc::timespec { tv_sec: 1, tv_nsec: 0 };
    loop {
        // SAFETY: siginfo_t is plain data; zeroed is valid and sigtimedwait fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `all`, `info` and `timeout` are valid for the call.
        let sig = unsafe { libc::sigtimedwait(&all, &mut info, &timeout) };
        if sig > 0 && sig != libc::SIGCHLD {
            // SAFETY: getpgid/kill take plain integers.
            unsafe {
                let target = if group_always || libc::getpgid(child) == child { -child } else { child };
                if libc::kill(target, sig) != 0 {
                    libc::kill(child, sig);
                }
            }
        }
        // Reap everything, whatever woke us (a timeout catches a missed SIGCHLD).
        loop {
            let mut status = 0;
            // SAFETY: `status` is a valid out-pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                let code =
                    if libc::WIFSIGNALED(status) { 128 + libc::WTERMSIG(status) } else { libc::WEXITSTATUS(status) };
                std::process::exit(code);
            }
        }
    }
}
