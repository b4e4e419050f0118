//! Command implementations: each parses nothing itself (clap did), calls the API, prints.

mod build;
mod df;
mod image;
pub mod network;
mod registry;
mod system;
mod volume;

mod attach;
mod container;
mod cp;
mod exec;
mod inspect;
mod logs;
mod ps;
pub mod run;
mod stats;
pub mod stream;
use crate::cli::{BuilderCmd, Cli, Cmd, ImageCmd, PluginCmd, SystemCmd, VolumeCmd};
use crate::cli_container::ContainerCmd;
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
        Cmd::Build(a) | Cmd::Builder(BuilderCmd::Build(a)) | Cmd::Image(ImageCmd::Build(a)) => {
            build::build(&ctx, a).await
        }
        Cmd::Builder(BuilderCmd::Prune(a)) => build::prune(&ctx, a).await,
        Cmd::Pull(a) | Cmd::Image(ImageCmd::Pull(a)) => registry::pull(&ctx, a).await,
        Cmd::Push(a) | Cmd::Image(ImageCmd::Push(a)) => registry::push(&ctx, a).await,
        Cmd::Login(a) => registry::login(&ctx, a).await,
        Cmd::Search(a) => registry::search(&ctx, a).await,
        Cmd::Logout(a) => registry::logout(&ctx, a).await,
        Cmd::Volume(VolumeCmd::Create(a)) => volume::create(&ctx, a).await,
        Cmd::Volume(VolumeCmd::Inspect(a)) => volume::inspect(&ctx, a).await,
        Cmd::Volume(VolumeCmd::Ls(a)) => volume::ls(&ctx, a).await,
        Cmd::Volume(VolumeCmd::Prune(a)) => volume::prune(&ctx, a).await,
        Cmd::Volume(VolumeCmd::Rm(a)) => volume::rm(&ctx, a).await,
        Cmd::Network(c) => network::run(&ctx, c).await,
        Cmd::Container(c) => container_cmd(&ctx, c).await,
        Cmd::Run(a) => run::run(&ctx, a).await,
        Cmd::Create(a) => run::create(&ctx, a).await,
        Cmd::Exec(a) => exec::exec(&ctx, a).await,
        Cmd::Ps(a) => ps::ps(&ctx, a).await,
        Cmd::Start(a) => attach::start(&ctx, a).await,
        Cmd::Stop(a) => container::stop(&ctx, a).await,
        Cmd::Restart(a) => container::restart(&ctx, a).await,
        Cmd::Kill(a) => container::kill(&ctx, a).await,
        Cmd::Wait(a) => container::wait(&ctx, a).await,
        Cmd::Rm(a) => container::rm(&ctx, a).await,
        Cmd::Rename(a) => container::rename(&ctx, a).await,
        Cmd::Pause(a) => container::pause(&ctx, a, false).await,
        Cmd::Unpause(a) => container::pause(&ctx, a, true).await,
        Cmd::Inspect(a) => inspect::inspect(&ctx, a).await,
        Cmd::Top(a) => container::top(&ctx, a).await,
        Cmd::Logs(a) => logs::logs(&ctx, a).await,
        Cmd::Port(a) => container::port(&ctx, a).await,
        Cmd::Attach(a) => attach::attach(&ctx, a).await,
        Cmd::Cp(a) => cp::cp(&ctx, a).await,
        Cmd::Commit(a) => container::commit(&ctx, a).await,
        Cmd::Export(a) => container::export(&ctx, a).await,
        Cmd::Diff(a) => container::diff(&ctx, a).await,
        Cmd::Stats(a) => stats::stats(&ctx, a).await,
        Cmd::Update(a) => container::update(&ctx, a).await,
    }
}

/// `container <verb>`: the same commands as the top-level shortcuts.
async fn container_cmd(ctx: &Ctx, c: ContainerCmd) -> Result<(), CliError> {
    match c {
        ContainerCmd::Attach(a) => attach::attach(ctx, a).await,
        ContainerCmd::Commit(a) => container::commit(ctx, a).await,
        ContainerCmd::Cp(a) => cp::cp(ctx, a).await,
        ContainerCmd::Create(a) => run::create(ctx, a).await,
        ContainerCmd::Diff(a) => container::diff(ctx, a).await,
        ContainerCmd::Exec(a) => exec::exec(ctx, a).await,
        ContainerCmd::Export(a) => container::export(ctx, a).await,
        ContainerCmd::Inspect(a) => inspect::container_inspect(ctx, a).await,
        ContainerCmd::Kill(a) => container::kill(ctx, a).await,
        ContainerCmd::Logs(a) => logs::logs(ctx, a).await,
        ContainerCmd::Ls(a) => ps::ps(ctx, a).await,
        ContainerCmd::Pause(a) => container::pause(ctx, a, false).await,
        ContainerCmd::Port(a) => container::port(ctx, a).await,
        ContainerCmd::Prune(a) => container::prune(ctx, a).await,
        ContainerCmd::Rename(a) => container::rename(ctx, a).await,
        ContainerCmd::Restart(a) => container::restart(ctx, a).await,
        ContainerCmd::Rm(a) => container::rm(ctx, a).await,
        ContainerCmd::Run(a) => run::run(ctx, a).await,
        ContainerCmd::Start(a) => attach::start(ctx, a).await,
        ContainerCmd::Stats(a) => stats::stats(ctx, a).await,
        ContainerCmd::Stop(a) => container::stop(ctx, a).await,
        ContainerCmd::Top(a) => container::top(ctx, a).await,
        ContainerCmd::Unpause(a) => container::pause(ctx, a, true).await,
        ContainerCmd::Update(a) => container::update(ctx, a).await,
        ContainerCmd::Wait(a) => container::wait(ctx, a).await,
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
