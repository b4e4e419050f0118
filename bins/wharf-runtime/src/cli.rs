//! runc's command-line grammar. Flags that runc accepts and that mean nothing here
//! (`--rootless`, `--criu`, `--no-new-keyring`) are accepted and ignored so callers written
//! for runc work unchanged.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Parser)]
#[command(name = "wharf-runtime", disable_version_flag = true, about = "OCI runtime (runc-compatible command line)")]
pub struct Opts {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = "/run/wharf-runtime")]
    pub root: PathBuf,
    /// Where errors are logged (besides stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Use systemd to manage cgroups (cgroupsPath is then `slice:prefix:name`).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    #[arg(long, global = true)]
    pub debug: bool,
    #[arg(long, global = true, hide = true)]
    pub rootless: Option<String>,
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container from a bundle; its process waits for `start`.
    Create(Create),
    /// Run the user process of a created container.
    Start(Id),
    /// Print the container's state as JSON.
    State(Id),
    /// Send a signal to the container's init process (or all its processes).
    Kill(Kill),
    /// Delete a stopped container's resources.
    Delete(Delete),
    /// Run a new process inside a running container.
    Exec(Exec),
    /// Freeze all processes of the container.
    Pause(Id),
    /// Thaw all processes of the container.
    Resume(Id),
    /// List the container's processes.
    Ps(Ps),
    /// Change the container's cgroup resources.
    Update(Update),
    /// Print the runtime's features as JSON.
    Features,
}

#[derive(Debug, Args)]
pub struct Id {
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Create {
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long)]
    pub no_pivot: bool,
    #[arg(long, hide = true)]
    pub no_new_keyring: bool,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: i32,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Kill {
    #[arg(short, long)]
    pub all: bool,
    pub id: String,
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Debug, Args)]
pub struct Delete {
    #[arg(short, long)]
    pub force: bool,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Exec {
    /// Path to a process.json (an OCI `process` object).
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    #[arg(long)]
    pub no_new_privs: bool,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: i32,
    #[arg(long)]
    pub ignore_paused: bool,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Ps {
    #[arg(short, long, default_value = "table")]
    pub format: String,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Update {
    /// A file with a JSON `LinuxResources` object, or `-` for stdin.
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    pub id: String,
}
