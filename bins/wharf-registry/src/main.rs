//! `wharf-registry`: an OCI distribution registry server over a directory.
//!
//! ```text
//! wharf-registry serve --addr 127.0.0.1:5000 --root DIR [--htpasswd FILE] [--tls-cert F --tls-key F]
//!                      [--max-upload-size N] [--token-realm URL [--token-service S] [--token-key F]]
//! wharf-registry gc --root DIR [--grace SECS] [--dry-run]
//! ```
//! `serve` prints `listening on <addr>` once bound (so `--addr 127.0.0.1:0` can be used).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use wharf_registry::server::auth::{Htpasswd, TokenAuth};
use wharf_registry::server::gc::{GcOptions, collect};
use wharf_registry::server::{AuthMode, Registry, ServerConfig, router, serve, tls_config};

#[derive(Parser)]
#[command(name = "wharf-registry", version, about = "An OCI distribution registry server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the distribution API.
    Serve(ServeArgs),
    /// Delete blobs no manifest references.
    Gc(GcArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5000")]
    addr: String,
    /// Storage directory.
    #[arg(long)]
    root: PathBuf,
    /// htpasswd file with bcrypt entries (`htpasswd -Bbn user pass`): enables Basic auth, or
    /// guards the token endpoint in token mode.
    #[arg(long)]
    htpasswd: Option<PathBuf>,
    /// Realm named in Basic challenges.
    #[arg(long, default_value = "wharf-registry")]
    realm: String,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest blob accepted, in bytes (413 SIZE_INVALID beyond).
    #[arg(long)]
    max_upload_size: Option<u64>,
    /// Enable bearer-token auth; this URL (normally `http(s)://<addr>/token`, served by this
    /// process) is advertised as the realm.
    #[arg(long)]
    token_realm: Option<String>,
    /// The token service name.
    #[arg(long, default_value = "wharf-registry")]
    token_service: String,
    /// File holding the token signing key (random per process otherwise).
    #[arg(long)]
    token_key: Option<PathBuf>,
    /// Token lifetime in seconds.
    #[arg(long, default_value_t = 300)]
    token_ttl: u64,
}

#[derive(clap::Args)]
struct GcArgs {
    #[arg(long)]
    root: PathBuf,
    /// Keep unreferenced blobs written less than this many seconds before the run.
    #[arg(long, default_value_t = 3600)]
    grace: u64,
    /// Report what would be deleted.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(a) => run_serve(a),
        Command::Gc(a) => run_gc(a),
    }
}

fn run_serve(a: ServeArgs) -> anyhow::Result<()> {
    let htpasswd = a.htpasswd.as_deref().map(Htpasswd::load).transpose().context("load --htpasswd")?;
    let auth = match (a.token_realm, htpasswd) {
        (Some(realm), h) => AuthMode::Token(
            TokenAuth::new(realm, a.token_service, Duration::from_secs(a.token_ttl), a.token_key.as_deref(), h)
                .context("token auth")?,
        ),
        (None, Some(h)) => AuthMode::Basic { realm: a.realm, htpasswd: h },
        (None, None) => AuthMode::None,
    };
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(tls_config(c, k).context("TLS")?),
        _ => None,
    };
    let registry = Registry::new(ServerConfig { root: a.root, max_upload_size: a.max_upload_size, auth })
        .context("open the registry")?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&a.addr).await.with_context(|| format!("listen on {}", a.addr))?;
        println!("listening on {}", listener.local_addr()?);
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("install SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        serve(listener, router(registry), tls, shutdown).await?;
        Ok(())
    })
}

fn run_gc(a: GcArgs) -> anyhow::Result<()> {
    let opts = GcOptions { grace: Duration::from_secs(a.grace), dry_run: a.dry_run, ..Default::default() };
    let report = collect(&a.root, &opts).context("gc")?;
    let verb = if a.dry_run { "would delete" } else { "deleted" };
    for d in &report.deleted {
        println!("{verb} {d}");
    }
    println!(
        "{} manifests, {} blobs referenced, {} blobs {verb} ({} bytes), {} kept as recent, {} stale uploads removed",
        report.manifests,
        report.marked,
        report.deleted.len(),
        report.bytes_freed,
        report.kept_recent,
        report.uploads_removed
    );
    Ok(())
}
