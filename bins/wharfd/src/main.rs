//! `wharfd`: parses flags, merges `daemon.json`, takes the data-root lock, opens the sockets and
//! serves the Docker Engine API until SIGTERM/SIGINT. SIGHUP re-reads `daemon.json`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Parser;
use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::{EnvFilter, reload};
use wharf_api::server::Listener;
use wharf_daemon::config::{Config, DEFAULT_CONFIG_FILE, FileConfig, FlagConfig, parse_log_level};
use wharf_daemon::{BuildInfo, Daemon};

/// The Wharf container engine daemon. Serves the Docker Engine API (1.53, minimum 1.24).
#[derive(Debug, Parser)]
#[command(name = "wharfd", version, about)]
struct Args {
    /// Daemon socket(s) to listen on: unix:///path or tcp://addr:port (repeatable).
    #[arg(short = 'H', long = "host", value_name = "ADDR")]
    hosts: Vec<String>,
    /// Root of persistent state (images, containers, volumes).
    #[arg(long, value_name = "DIR")]
    data_root: Option<PathBuf>,
    /// Root of runtime state (sockets, container run dirs); a tmpfs in production.
    #[arg(long, value_name = "DIR")]
    exec_root: Option<PathBuf>,
    /// Daemon configuration file (Docker's daemon.json keys).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG_FILE)]
    config_file: PathBuf,
    /// Log level: debug, info, warn, error, fatal.
    #[arg(short = 'l', long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Debug mode (log level debug).
    #[arg(short = 'D', long)]
    debug: bool,
    /// Group that owns the unix socket (if it exists); otherwise root only.
    #[arg(short = 'G', long, value_name = "GROUP")]
    group: Option<String>,
    /// Where to write the daemon's pid.
    #[arg(short = 'p', long, value_name = "FILE")]
    pidfile: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    validate: bool,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("wharfd: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    if let Some(level) = &args.log_level {
        parse_log_level(level).map_err(anyhow::Error::msg)?;
    }
    let file = FileConfig::load(&args.config_file)?;
    let flags = FlagConfig {
        hosts: args.hosts,
        data_root: args.data_root,
        exec_root: args.exec_root,
        log_level: args.log_level,
        debug: args.debug,
        group: args.group,
        pidfile: args.pidfile,
    };
    let config = Config::merge(flags, file, args.config_file)?;
    if args.validate {
        println!("configuration OK");
        return Ok(());
    }
    let filter = EnvFilter::new(filter_directive(&config.log_level));
    let (filter, log_handle) = reload::Layer::new(filter);
    use tracing_subscriber::prelude::*;
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = runtime.block_on(serve(config, log_handle));
    // Streams (log follows, hijacked sessions) may still hold tasks: do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}

fn filter_directive(level: &str) -> String {
    let level = parse_log_level(level).unwrap_or("info");
    format!("{level},hyper=warn,h2=warn")
}

type LogHandle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

async fn serve(config: Config, log_handle: LogHandle) -> Result<()> {
    let build = BuildInfo {
        git_commit: env!("WHARF_GIT_COMMIT").to_owned(),
        rustc: env!("WHARF_RUSTC").to_owned(),
        build_time: env!("WHARF_BUILD_TIME").to_owned(),
    };
    let daemon = Daemon::open(config.clone(), build)
        .map_err(|e| anyhow::anyhow!(wharf_types::EngineError::from_classified(&e)))?;
    std::fs::create_dir_all(config.pidfile.parent().unwrap_or(Path::new("/")))?;
    std::fs::write(&config.pidfile, std::process::id().to_string())
        .with_context(|| format!("write pid file {}", config.pidfile.display()))?;

    let signals = install_signals()?;
    let mut listeners = Vec::new();
    let mut socket_paths = Vec::new();
    for host in &config.hosts {
        let (listener, path) = bind(host, &config.group).await?;
        listeners.push(listener);
        socket_paths.extend(path);
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(handle_signals(daemon.clone(), shutdown.clone(), log_handle, signals));
    let restored = daemon.restore().await;
    tracing::info!(hosts = ?config.hosts, data_root = %config.data_root.display(), restored, "API listening");
    let app = wharf_api::router::build(daemon.backends(), shutdown.clone());
    wharf_api::server::serve(listeners, app, shutdown).await;
    daemon.shutdown().await;
    for p in socket_paths {
        let _ = std::fs::remove_file(p);
    }
    let _ = std::fs::remove_file(&config.pidfile);
    tracing::info!("daemon shut down");
    Ok(())
}

/// The signals the daemon handles, registered before the API is reachable so that none arrives
/// with its default (fatal) disposition.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

fn install_signals() -> Result<Signals> {
    Ok(Signals {
        term: signal(SignalKind::terminate())?,
        int: signal(SignalKind::interrupt())?,
        hup: signal(SignalKind::hangup())?,
    })
}

async fn handle_signals(daemon: Arc<Daemon>, shutdown: CancellationToken, log_handle: LogHandle, signals: Signals) {
    let Signals { mut term, mut int, mut hup } = signals;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                let path = daemon.config().config_file;
                match FileConfig::load(&path) {
                    Ok(file) => {
                        daemon.reload(file);
                        let _ = log_handle.reload(EnvFilter::new(filter_directive(&daemon.config().log_level)));
                        tracing::info!(file = %path.display(), "configuration reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "reload failed; keeping the current configuration"),
                }
            }
        }
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

/// Opens one `-H` address. Unix sockets get mode 0660 and the configured group when it exists.
async fn bind(host: &str, group: &str) -> Result<(Listener, Option<PathBuf>)> {
    if let Some(rest) = host.strip_prefix("unix://") {
        let path = PathBuf::from(if rest.is_empty() { "/run/wharf/wharf.sock" } else { rest });
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        if path.exists() {
            if tokio::net::UnixStream::connect(&path).await.is_ok() {
                bail!("socket {} is in use by another daemon; stop it or pass a different -H", path.display());
            }
            std::fs::remove_file(&path).with_context(|| format!("remove stale socket {}", path.display()))?;
        }
        let listener = UnixListener::bind(&path).with_context(|| format!("listen on {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
        if let Some(gid) = group_id(group) {
            rustix::fs::chown(&path, None, Some(rustix::fs::Gid::from_raw(gid)))
                .with_context(|| format!("chown {} to group {group}", path.display()))?;
        }
        return Ok((Listener::Unix(listener), Some(path)));
    }
    if let Some(rest) = host.strip_prefix("tcp://") {
        let addr = if rest.contains(':') { rest.to_owned() } else { format!("{rest}:2375") };
        let listener = TcpListener::bind(&addr).await.with_context(|| format!("listen on tcp://{addr}"))?;
        tracing::warn!(addr, "the API is reachable over TCP without TLS: anyone who can connect has root on this host");
        return Ok((Listener::Tcp(listener), None));
    }
    bail!("invalid -H address {host:?}: use unix:///path or tcp://addr:port")
}

/// The gid of `name` from /etc/group, if the group exists.
fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}
