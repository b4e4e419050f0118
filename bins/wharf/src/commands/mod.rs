//! Command implementations: each parses nothing itself (clap did), calls the API, prints.

mod df;
mod image;
mod system;
mod volume;

use crate::cli::{Cli, Cmd, ImageCmd, PluginCmd, SystemCmd, VolumeCmd};
use crate::client::{self, CliError};

/// What every command gets: the client and the address it points at (for messages).
pub struct Ctx {
    pub docker: bollard::Docker,
    pub host: String,
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    if cli.global.version {
        println!(
            "Wharf version {}, build {}",
            env!("CARGO_PKG_VERSION"),
            option_env!("WHARF_GIT_COMMIT").unwrap_or("unknown")
        );
        return Ok(());
    }
    let host = client::resolve_host(&cli.global.host);
    let docker = client::connect(&host)?;
    let ctx = Ctx { docker, host };
    match cli.cmd {
        Cmd::Version(a) => system::version(&ctx, a).await,
        Cmd::Info(a) | Cmd::System(SystemCmd::Info(a)) => system::info(&ctx, a).await,
        Cmd::Events(a) | Cmd::System(SystemCmd::Events(a)) => system::events(&ctx, a).await,
        Cmd::Plugin(PluginCmd::Ls(a)) => system::plugin_ls(&ctx, a).await,
        Cmd::System(SystemCmd::Df(a)) => df::df(&ctx, a).await,
        Cmd::Images(a) | Cmd::Image(ImageCmd::Ls(a)) => image::list(&ctx, a).await,
        Cmd::Image(ImageCmd::Inspect(a)) => image::inspect(&ctx, a).await,
        Cmd::Tag(a) | Cmd::Image(ImageCmd::Tag(a)) => image::tag(&ctx, a).await,
        Cmd::Rmi(a) | Cmd::Image(ImageCmd::Rm(a)) => image::remove(&ctx, a).await,
        Cmd::History(a) | Cmd::Image(ImageCmd::History(a)) => image::history(&ctx, a).await,
        Cmd::Import(a) | Cmd::Image(ImageCmd::Import(a)) => image::import(&ctx, a).await,
        Cmd::Save(a) | Cmd::Image(ImageCmd::Save(a)) => image::save(&ctx, a).await,
        Cmd::Load(a) | Cmd::Image(ImageCmd::Load(a)) => image::load(&ctx, a).await,
        Cmd::Image(ImageCmd::Prune(a)) => image::prune(&ctx, a).await,
        Cmd::Volume(VolumeCmd::Create(a)) => volume::create(&ctx, a).await,
        Cmd::Volume(VolumeCmd::Inspect(a)) => volume::inspect(&ctx, a).await,
        Cmd::Volume(VolumeCmd::Ls(a)) => volume::ls(&ctx, a).await,
        Cmd::Volume(VolumeCmd::Prune(a)) => volume::prune(&ctx, a).await,
        Cmd::Volume(VolumeCmd::Rm(a)) => volume::rm(&ctx, a).await,
    }
}

/// Parses docker's `-f key=value` filter flags into the API's filter map.
pub fn parse_filters(flags: &[String]) -> Result<std::collections::HashMap<String, Vec<String>>, CliError> {
    let mut out: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for f in flags {
        let Some((k, v)) = f.split_once('=') else {
            return Err(CliError::Usage(format!(
                "invalid argument \"{f}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)"
            )));
        };
        out.entry(k.trim().to_lowercase()).or_default().push(v.to_owned());
    }
    Ok(out)
}
