//! One function per verb; each loads the container from `--root` and calls one `libcontainer`
//! operation. Output shapes (`state`, `ps --format json`, `features`) are runc's.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use libcgroups::common::{CgroupConfig, CgroupManager, ControllerOpt, create_cgroup_manager};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::oci_spec::runtime::{LinuxResources, Spec};
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;

use crate::cli::{Command, Create, Delete, Exec, Kill, Opts, Ps, Update};
use crate::executor::RuncStyleExecutor;

/// Runs the selected verb and returns the process exit code.
pub fn run(opts: &Opts) -> Result<i32> {
    if opts.version {
        println!("wharf-runtime version {}", env!("CARGO_PKG_VERSION"));
        println!("spec: {}", libcontainer::oci_spec::runtime::VERSION);
        println!("libcontainer: 0.7.0");
        return Ok(0);
    }
    let Some(command) = &opts.command else {
        bail!("no command given; see --help");
    };
    let root = &opts.root;
    match command {
        Command::Create(c) => create(root, opts.systemd_cgroup, c).map(|()| 0),
        Command::Start(c) => {
            let mut container = load(root, &c.id)?;
            container.start().map_err(|e| anyhow!(e).context("start failed"))?;
            Ok(0)
        }
        Command::State(c) => state(root, &c.id).map(|()| 0),
        Command::Kill(c) => kill(root, c).map(|()| 0),
        Command::Delete(c) => delete(root, c).map(|()| 0),
        Command::Exec(c) => exec(root, c),
        Command::Pause(c) => {
            load(root, &c.id)?.pause().map_err(|e| anyhow!(e).context("pause failed"))?;
            Ok(0)
        }
        Command::Resume(c) => {
            load(root, &c.id)?.resume().map_err(|e| anyhow!(e).context("resume failed"))?;
            Ok(0)
        }
        Command::Ps(c) => ps(root, c).map(|()| 0),
        Command::Update(c) => update(root, c).map(|()| 0),
        Command::Features => features().map(|()| 0),
    }
}

fn container_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Loads a container, failing with runc's message when it does not exist.
fn load(root: &Path, id: &str) -> Result<Container> {
    let dir = container_dir(root, id);
    if !dir.join("state.json").exists() {
        bail!("container does not exist");
    }
    Container::load(dir).with_context(|| format!("load container {id}"))
}

/// runc resolves a relative `--console-socket` against its working directory (how callers pass
/// paths too long for a `sockaddr_un`); libcontainer links to it from the container's state dir,
/// where a relative target would dangle. Absolute paths are fine for it at any length: it
/// connects through a short link name.
fn console_socket(path: Option<&Path>) -> Result<Option<PathBuf>> {
    path.map(|p| std::path::absolute(p).with_context(|| format!("console socket {}", p.display()))).transpose()
}

fn create(root: &Path, systemd: bool, c: &Create) -> Result<()> {
    std::fs::create_dir_all(root).with_context(|| format!("create root {}", root.display()))?;
    normalize_rootfs_propagation(&c.bundle)?;
    ContainerBuilder::new(c.id.clone(), SyscallType::default())
        .with_executor(RuncStyleExecutor)
        .with_root_path(root)?
        .with_pid_file(c.pid_file.as_ref())?
        .with_console_socket(console_socket(c.console_socket.as_deref())?)
        .with_preserved_fds(c.preserve_fds)
        .validate_id()?
        .as_init(&c.bundle)
        .with_systemd(systemd)
        .with_detach(true)
        .with_no_pivot(c.no_pivot)
        .build()
        .map_err(|e| start_error("create", e))?;
    Ok(())
}

/// runc accepts `rootfsPropagation` in its recursive forms (`rslave`, which Docker writes for
/// slave binds, `rshared`, `rprivate`, `runbindable`); libcontainer knows only the plain names,
/// and always applies them recursively to `/`. The bundle's spec is rewritten (atomically) to
/// the plain name, which means the same there.
fn normalize_rootfs_propagation(bundle: &Path) -> Result<()> {
    let path = bundle.join("config.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(());
    };
    let mut doc: serde_json::Value = serde_json::from_slice(&bytes).context("parse config.json")?;
    let Some(p) = doc.pointer_mut("/linux/rootfsPropagation") else {
        return Ok(());
    };
    let plain = match p.as_str() {
        Some("rslave") => "slave",
        Some("rshared") => "shared",
        Some("rprivate") => "private",
        Some("runbindable") => "unbindable",
        _ => return Ok(()),
    };
    *p = serde_json::Value::String(plain.to_owned());
    let tmp = bundle.join(".config.json.tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .context("write config.json")?;
        f.write_all(&serde_json::to_vec(&doc)?).context("write config.json")?;
    }
    std::fs::rename(&tmp, &path).context("replace config.json")?;
    Ok(())
}

/// runc's wording for a failed create/exec: `<verb> failed: unable to start container process:
/// exec: "x": …` — libcontainer's intermediate wrappers are dropped when the executor's message
/// is in the chain, so the daemon sees the same text whichever runtime ran.
fn start_error(verb: &str, e: libcontainer::error::LibcontainerError) -> anyhow::Error {
    let full = format!("{:#}", anyhow!(e));
    let detail = match full.find("exec: \"") {
        Some(i) => &full[i..],
        None => full.as_str(),
    };
    anyhow!("{verb} failed: unable to start container process: {detail}")
}

fn status_word(s: ContainerStatus) -> &'static str {
    match s {
        ContainerStatus::Creating => "creating",
        ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Stopped => "stopped",
        ContainerStatus::Paused => "paused",
    }
}

fn state(root: &Path, id: &str) -> Result<()> {
    let container = load(root, id)?;
    let st = &container.state;
    let bundle = st.bundle.clone();
    let rootfs = std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Spec>(&b).ok())
        .and_then(|s| s.root().as_ref().map(|r| r.path().clone()))
        .map(|p| if p.is_absolute() { p } else { bundle.join(p) })
        .unwrap_or_else(|| bundle.join("rootfs"));
    let pid = match container.status() {
        ContainerStatus::Stopped => 0,
        _ => st.pid.unwrap_or(0),
    };
    let mut out = serde_json::json!({
        "ociVersion": libcontainer::oci_spec::runtime::VERSION,
        "id": st.id,
        "pid": pid,
        "status": status_word(container.status()),
        "bundle": bundle,
        "rootfs": rootfs,
        "created": st.created.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
        "owner": "",
    });
    if let Some(a) = &st.annotations {
        out["annotations"] = serde_json::to_value(a)?;
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn kill(root: &Path, c: &Kill) -> Result<()> {
    let signal = Signal::try_from(c.signal.as_str()).map_err(|_| anyhow!("unknown signal {:?}", c.signal))?;
    let mut container = load(root, &c.id)?;
    container.kill(signal, c.all).map_err(|e| anyhow!(e).context("kill failed"))?;
    Ok(())
}

fn delete(root: &Path, c: &Delete) -> Result<()> {
    let dir = container_dir(root, &c.id);
    if !dir.join("state.json").exists() {
        if c.force {
            // runc: a forced delete of a missing container succeeds (idempotent cleanup).
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(());
        }
        bail!("container does not exist");
    }
    let mut container = Container::load(dir)?;
    container.delete(c.force).map_err(|e| anyhow!(e).context("delete failed"))?;
    Ok(())
}

fn exec(root: &Path, c: &Exec) -> Result<i32> {
    let mut builder = ContainerBuilder::new(c.id.clone(), SyscallType::default())
        .with_executor(RuncStyleExecutor)
        .with_root_path(root)?
        .with_console_socket(console_socket(c.console_socket.as_deref())?)
        .with_pid_file(c.pid_file.as_ref())?
        .with_preserved_fds(c.preserve_fds)
        .validate_id()?
        .as_tenant()
        .with_detach(c.detach)
        .with_cwd(c.cwd.as_ref())
        .with_env(c.env.iter().filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))).collect())
        .with_process(c.process.as_ref())
        .with_ignore_paused(c.ignore_paused)
        .with_container_args(c.command.clone());
    if c.no_new_privs {
        builder = builder.with_no_new_privs(true);
    }
    if !load(root, &c.id)?.can_exec() {
        bail!("cannot exec in a stopped container");
    }
    let pid = builder.build().map_err(|e| start_error("exec", e))?;
    if c.detach {
        return Ok(0);
    }
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer; `pid` is our child (created by `build` above).
    let r = unsafe { libc::waitpid(pid.as_raw(), &mut status, 0) };
    if r < 0 {
        bail!("wait for exec'd process: {}", std::io::Error::last_os_error());
    }
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        0
    })
}

fn cgroup_manager(container: &Container) -> Result<libcgroups::common::AnyCgroupManager> {
    let config = container.spec().context("read container config")?;
    Ok(create_cgroup_manager(CgroupConfig {
        cgroup_path: config.cgroup_path,
        systemd_cgroup: container.systemd(),
        container_name: container.id().to_owned(),
    })?)
}

fn ps(root: &Path, c: &Ps) -> Result<()> {
    let container = load(root, &c.id)?;
    let pids: Vec<i32> = cgroup_manager(&container)?
        .get_all_pids()
        .context("list cgroup pids")?
        .into_iter()
        .map(|p| p.as_raw())
        .collect();
    if c.format == "json" {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    if c.format != "table" {
        bail!("invalid format option");
    }
    let args = if c.ps_args.is_empty() { vec!["-ef".to_owned()] } else { c.ps_args.clone() };
    let out = std::process::Command::new("ps").args(&args).output().context("run ps")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header.split_whitespace().position(|h| h == "PID").context("no PID column in ps output")?;
    println!("{header}");
    for line in lines {
        if let Some(Ok(pid)) = line.split_whitespace().nth(pid_col).map(str::parse::<i32>)
            && pids.contains(&pid)
        {
            println!("{line}");
        }
    }
    Ok(())
}

fn update(root: &Path, c: &Update) -> Result<()> {
    let container = load(root, &c.id)?;
    let raw = match c.resources.as_deref() {
        None => bail!("--resources is required"),
        Some(p) if p == Path::new("-") => {
            let mut s = Vec::new();
            std::io::stdin().read_to_end(&mut s)?;
            s
        }
        Some(p) => std::fs::read(p).with_context(|| format!("read {}", p.display()))?,
    };
    let resources: LinuxResources = serde_json::from_slice(&raw).context("parse resources")?;
    cgroup_manager(&container)?
        .apply(&ControllerOpt {
            resources: &resources,
            disable_oom_killer: false,
            oom_score_adj: None,
            freezer_state: None,
        })
        .context("update failed")?;
    Ok(())
}

fn features() -> Result<()> {
    let out = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": libcontainer::oci_spec::runtime::VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec",
            "iversion", "lazytime", "loud", "mand", "noatime", "nodev", "nodiratime", "noexec",
            "noiversion", "nolazytime", "nomand", "norelatime", "nostrictatime", "nosuid",
            "nosymfollow", "private", "rbind", "relatime", "remount", "ro", "rprivate", "rshared",
            "rslave", "runbindable", "rw", "shared", "slave", "strictatime", "suid", "symfollow",
            "sync", "tmpcopyup", "unbindable"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"],
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": false},
            "seccomp": {"enabled": true},
            "apparmor": {"enabled": true},
            "selinux": {"enabled": false},
        },
        "annotations": {"org.opencontainers.runtime-spec.features": "wharf-runtime"},
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
