//! `wharf`: the docker CLI's commands, flags, output and exit codes, against any daemon that
//! speaks the Docker Engine API (wharfd first of all).
//!
//! Map:
//! - [`cli`]: the command tree (clap). Global flags: `-H/--host` (then `WHARF_HOST`, then
//!   `DOCKER_HOST`), `-D`, `-l`.
//! - [`client`]: connecting (bollard) and turning failures into docker's messages and exit codes.
//! - [`format`]: the output layer (tables, `--format` Go templates, json) all commands share.
//! - [`timefmt`]: Go durations, `--since/--until`, human durations.
//! - [`commands`]: one module per command group; each command is a thin wrapper over API calls.
//! - Containers: [`cli_container`] (flags), [`opts`] (docker's flag → API conversions),
//!   [`api`] (negotiation, raw hijack/wait/streams next to bollard), [`term`] (raw mode, sizes,
//!   detach keys), [`jsonmessage`] (pull/push/build progress), [`units`] (go-units sizes),
//!   [`archive`] (`cp` path rules and tars), [`dockerconfig`] (config.json, registry auth).
//! - [`buildprogress`]: `build --progress` (the live step view, plain lines).

mod api;
mod archive;
mod buildprogress;
mod cli;
mod cli_container;
mod client;
mod commands;
mod dockerconfig;
mod format;
mod jsonmessage;
mod opts;
mod term;
mod timefmt;
mod units;

use clap::Parser;

use crate::client::CliError;

/// `history -H` means `--human` (docker's flag), while `-H` is the global `--host` everywhere
/// else; clap cannot have both, so after a `history` word `-H` is spelled out.
fn docker_argv() -> Vec<std::ffi::OsString> {
    let mut seen_history = false;
    std::env::args_os()
        .map(|a| {
            let s = a.to_string_lossy();
            if seen_history {
                if s == "-H" {
                    return "--human".into();
                }
                if let Some(v) = s.strip_prefix("-H=") {
                    return format!("--human={v}").into();
                }
            } else if s == "history" {
                seen_history = true;
            }
            a
        })
        .collect()
}

fn main() {
    let cli = match cli::Cli::try_parse_from(docker_argv()) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                std::process::exit(0);
            }
            let _ = e.print();
            std::process::exit(125);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wharf: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(commands::run(cli)) {
        Ok(()) => 0,
        Err(CliError::Status(code)) => code,
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
    };
    // Streams may still hold the runtime; exit without waiting for them.
    std::process::exit(code);
}
