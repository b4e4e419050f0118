//! `wharf-runtime`: an OCI runtime built on the `libcontainer` crate (youki's library) that
//! speaks runc's command line, so `wharf-shim` can drive it, runc, crun or youki alike.
//!
//! Map:
//! - [`cli`]: the argument grammar (runc's global flags and verbs).
//! - [`commands`]: one function per verb, each a thin wrapper over a `libcontainer` operation.
//! - [`executor`]: the workload executor; it reports a missing or non-executable program with
//!   runc's wording (`exec: "x": executable file not found in $PATH`), which the daemon and the
//!   docker CLI turn into exit codes 127/126.
//! - [`seal`]: CVE-2019-5736 protection: re-execution from a sealed memfd copy, first thing.
//! - [`log`]: runc's error reporting: JSON lines `{"level":"error","msg":…,"time":…}` in the
//!   `--log` file (or text), and the message on stderr.
//!
//! On disk: container state lives under `--root` (default `/run/wharf-runtime`), one directory
//! per container id, owned by `libcontainer`. Each invocation is a fresh single-threaded process:
//! `libcontainer` forks, and forking from a multi-threaded process is unsafe.

mod cli;
mod commands;
mod executor;
mod log;
mod seal;

use clap::Parser;

fn main() {
    if let Err(e) = seal::ensure_sealed() {
        eprintln!("wharf-runtime: cannot re-execute from a sealed copy of itself: {e}");
        std::process::exit(1);
    }
    let opts = cli::Opts::parse();
    let logger = log::Logger::new(opts.log.as_deref(), opts.log_format, opts.debug);
    let code = match commands::run(&opts) {
        Ok(code) => code,
        Err(err) => {
            logger.error(&format!("{err:#}"));
            1
        }
    };
    std::process::exit(code);
}
