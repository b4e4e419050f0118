//! The command tree, shaped like the docker CLI's: top-level shortcuts and management commands
//! (`wharf system events` = `wharf events`).

use clap::{Args, Parser, Subcommand};

/// A self-sufficient runtime for containers, speaking Docker's API.
#[derive(Debug, Parser)]
#[command(name = "wharf", disable_version_flag = true, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Args)]
pub struct GlobalOpts {
    /// Daemon socket to connect to (unix:///path or tcp://host:port)
    #[arg(short = 'H', long = "host", global = true, value_name = "list")]
    pub host: Vec<String>,
    /// Enable debug mode
    #[arg(short = 'D', long, global = true)]
    pub debug: bool,
    /// Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")
    #[arg(short = 'l', long, global = true, value_name = "string")]
    pub log_level: Option<String>,
    /// Print version information and quit
    #[arg(short = 'v', long = "version")]
    pub version: bool,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Show the Wharf version information
    Version(VersionArgs),
    /// Display system-wide information
    Info(InfoArgs),
    /// Get real time events from the server
    Events(EventsArgs),
    /// Manage Wharf
    #[command(subcommand)]
    System(SystemCmd),
    /// Manage plugins
    #[command(subcommand)]
    Plugin(PluginCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(VolumeCmd),
}

#[derive(Debug, Subcommand)]
pub enum VolumeCmd {
    /// Create a volume
    Create(VolumeCreateArgs),
    /// Display detailed information on one or more volumes
    Inspect(VolumeInspectArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(VolumeLsArgs),
    /// Remove all unused local volumes
    Prune(VolumePruneArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(VolumeRmArgs),
}

#[derive(Debug, Args)]
pub struct VolumeCreateArgs {
    /// Volume name
    #[arg(value_name = "VOLUME")]
    pub volume: Option<String>,
    /// Specify volume driver name
    #[arg(short, long, value_name = "string", default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long, value_name = "list")]
    pub label: Vec<String>,
    /// Specify volume name
    #[arg(long, value_name = "string")]
    pub name: Option<String>,
    /// Set driver specific options
    #[arg(short, long = "opt", value_name = "map")]
    pub opt: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VolumeInspectArgs {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
    #[arg(value_name = "VOLUME", required = true)]
    pub volumes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VolumeLsArgs {
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short, long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template: 'table', 'json' or a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct VolumePruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct VolumeRmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    pub force: bool,
    #[arg(value_name = "VOLUME", required = true)]
    pub volumes: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum PluginCmd {
    /// List plugins
    #[command(visible_alias = "list")]
    Ls(PluginLsArgs),
}

#[derive(Debug, Args)]
pub struct PluginLsArgs {
    /// Format output using a custom template: 'table', 'json' or a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Only display plugin IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Debug, Subcommand)]
pub enum SystemCmd {
    /// Display system-wide information
    Info(InfoArgs),
    /// Get real time events from the server
    Events(EventsArgs),
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long, value_name = "string")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short, long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template: 'json' or a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long, value_name = "string")]
    pub until: Option<String>,
}
