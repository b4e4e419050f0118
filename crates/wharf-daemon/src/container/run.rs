//! What starting a container does on the host, and its undo:
//! rootfs mount → network namespace → networking and /etc files ([`crate::network`]) →
//! volumes → OCI bundle → shim (`create` + `start`).
//! Every step is undone by [`teardown`] if a later one fails, so a failed start leaves no
//! mount, namespace or shim behind.

use std::path::{Path, PathBuf};

use wharf_runtime::shim::protocol::{LogConfig, LogDriver, ShimConfig};
use wharf_runtime::shim::{self, ShimClient};
use wharf_types::{EngineError, ErrorKind};

use super::model::ContainerRecord;
use super::spec::{RunPaths, spec_options};
use super::{Ctx, internal};

/// Where a running container's host-side pieces are.
pub struct RunLayout {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub netns: PathBuf,
    pub shim_state: PathBuf,
}

pub fn layout(ctx: &Ctx, r: &ContainerRecord) -> RunLayout {
    let dir = ctx.paths.run_dir(&r.id);
    RunLayout { rootfs: dir.join("rootfs"), netns: dir.join("netns"), shim_state: dir.join("shim"), dir }
}

/// True when the container gets a network namespace of its own (not host, not another's).
pub fn own_netns(r: &ContainerRecord) -> bool {
    let m = r.host_config.network_mode.clone().unwrap_or_default();
    m != "host" && !m.starts_with("container:")
}

/// Creates the container's process (the runtime's `create`: namespaces, mounts, the process
/// waiting at its first instruction); [`begin`] lets it run. In between, attach sessions
/// connect to the shim so no output is lost.
pub async fn create(ctx: &Ctx, r: &ContainerRecord, peer: &super::spec::PeerNs) -> Result<ShimClient, EngineError> {
    match start_inner(ctx, r, peer).await {
        Ok(c) => Ok(c),
        Err(e) => {
            teardown(ctx, r).await;
            Err(e)
        }
    }
}

/// Lets a created container run.
pub async fn begin(ctx: &Ctx, r: &ContainerRecord, client: &ShimClient) -> Result<(), EngineError> {
    if let Err(e) = client.start().await {
        let _ = client.kill(9).await;
        let _ = client.wait().await;
        let _ = client.shutdown().await;
        teardown(ctx, r).await;
        return Err(start_error(e));
    }
    Ok(())
}

async fn start_inner(ctx: &Ctx, r: &ContainerRecord, peer: &super::spec::PeerNs) -> Result<ShimClient, EngineError> {
    let l = layout(ctx, r);
    // A previous run's shim state (exit file, socket) must not be mistaken for this run's.
    let _ = tokio::fs::remove_dir_all(&l.shim_state).await;
    tokio::fs::create_dir_all(&l.rootfs).await.map_err(internal)?;

    let snapshotter = ctx.images.snapshotter();
    let (key, target) = (r.rw_layer.clone(), l.rootfs.clone());
    tokio::task::spawn_blocking(move || -> Result<(), EngineError> {
        let mounts = snapshotter.mounts(&key).map_err(|e| EngineError::from_classified(&e))?;
        wharf_snapshot::mount_all(&mounts, &target).map_err(|e| EngineError::from_classified(&e))
    })
    .await
    .map_err(internal)??;

    // The one-time network reconcile must not run while this start's namespace exists.
    ctx.network.ready().await?;
    let netns = if own_netns(r) {
        wharf_network::netns::create(l.netns.clone()).await.map_err(|e| EngineError::from_classified(&e))?;
        Some(l.netns.clone())
    } else {
        None
    };

    // Endpoints, published ports, DNS names, and the hostname/hosts/resolv.conf files.
    let etc_dir = ctx.paths.container_dir(&r.id);
    ctx.network.attach(r, netns.as_deref(), &etc_dir).await?;

    if r.host_config.init == Some(true) && !is_static_elf(&ctx.paths.init_binary) {
        return Err(EngineError::internal(format!(
            "the init binary {} is not statically linked, so it cannot run in every image; build it with scripts/build-init.sh",
            ctx.paths.init_binary.display()
        )));
    }

    let mounts = {
        let (volumes, id, points) = (ctx.volumes.clone(), r.id.to_string(), r.mount_points.clone());
        let (dir, rootfs) = (l.dir.clone(), l.rootfs.clone());
        tokio::task::spawn_blocking(move || volumes.setup(&id, &points, &dir, &rootfs)).await.map_err(internal)??
    };

    let image = ctx.images.resolve_image(&r.image_id).await?;
    let opts = spec_options(
        r,
        &image.config,
        &RunPaths { rootfs: &l.rootfs, netns, etc_dir: &etc_dir, init_binary: &ctx.paths.init_binary, mounts },
        &ctx.cgroup_parent,
        peer,
    )?;
    let bundle = l.dir.clone();
    tokio::task::spawn_blocking(move || -> Result<(), EngineError> {
        let spec = wharf_runtime::spec::generate(&opts).map_err(|e| EngineError::from_classified(&e))?;
        let json = serde_json::to_vec(&spec).map_err(internal)?;
        wharf_store::write_atomic(&bundle.join("config.json"), &json, 0o600).map_err(internal)
    })
    .await
    .map_err(internal)??;

    let mut runtime = (ctx.runtimes)(&r.runtime)
        .ok_or_else(|| EngineError::invalid(format!("unknown or invalid runtime name: {}", r.runtime)))?;
    runtime.root = ctx.paths.runtime_root(&r.runtime);
    let log = log_config(r)?;
    if let Some(dir) = log.path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(internal)?;
    }
    let cfg = ShimConfig {
        id: r.id.to_string(),
        bundle: l.dir.clone(),
        state_dir: l.shim_state.clone(),
        runtime,
        tty: r.tty(),
        stdin: r.config.open_stdin.unwrap_or(false),
        stdin_once: r.config.stdin_once.unwrap_or(false),
        log,
    };
    shim::spawn(&ctx.paths.shim_binary, cfg).await.map_err(start_error)
}

/// Docker's wording for start failures; the CLI maps the substrings to exit codes 126/127.
fn start_error(e: shim::ShimError) -> EngineError {
    let msg = e.to_string();
    let kind = e.kind_for_start();
    EngineError::new(
        kind,
        format!(
            "failed to create task for container: failed to create shim task: OCI runtime create failed: {msg}: unknown"
        ),
    )
}

trait StartKind {
    fn kind_for_start(&self) -> ErrorKind;
}

impl StartKind for shim::ShimError {
    /// A create/start failure caused by the container's configuration (bad command, not
    /// executable) is the user's (400), as moby classifies it; the rest is ours (500).
    fn kind_for_start(&self) -> ErrorKind {
        match self {
            shim::ShimError::Create { .. } | shim::ShimError::Start { .. } => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        }
    }
}

fn log_config(r: &ContainerRecord) -> Result<LogConfig, EngineError> {
    let lc = r.host_config.log_config.clone().unwrap_or_default();
    let opts = lc.config.unwrap_or_default();
    let driver = match lc.typ.as_deref().unwrap_or("json-file") {
        "json-file" | "" => LogDriver::JsonFile,
        "local" => LogDriver::Local,
        "none" => LogDriver::None,
        other => {
            return Err(EngineError::invalid(format!("logger: no log driver named '{other}' is registered")));
        }
    };
    let max_size = match opts.get("max-size") {
        Some(s) if s != "-1" => Some(
            wharf_runtime::logs::writer::parse_size(s)
                .ok_or_else(|| EngineError::invalid(format!("invalid max-size: {s}")))?,
        ),
        _ if driver == LogDriver::Local => Some(20 * 1024 * 1024),
        _ => None,
    };
    let max_file = match opts.get("max-file") {
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| EngineError::invalid(format!("invalid value for max-file: {s}")))?,
        None if driver == LogDriver::Local => 5,
        None => 1,
    };
    Ok(LogConfig { driver, path: PathBuf::from(&r.log_path), max_size, max_file })
}

/// True when `path` is an ELF executable without a program interpreter (statically linked).
fn is_static_elf(path: &Path) -> bool {
    let Ok(data) = std::fs::read(path) else { return false };
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |o: usize| data.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |o: usize| data.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize);
    if data.get(..5) != Some(b"\x7fELF\x02") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else { return false };
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| u32_at(phoff + i * phentsize) != Some(PT_INTERP))
}

/// Undoes a start: releases the networking, unmounts the rootfs and removes the network
/// namespace. Safe to call when any of it was never done or is already undone.
pub async fn teardown(ctx: &Ctx, r: &ContainerRecord) {
    let l = layout(ctx, r);
    ctx.network.release(&r.id).await;
    if own_netns(r)
        && wharf_network::netns::is_netns_mount(&l.netns)
        && let Err(e) = wharf_network::netns::delete(l.netns.clone()).await
    {
        tracing::warn!(container = %r.id, error = %e, "removing the network namespace failed");
    }
    let rootfs = l.rootfs.clone();
    let (volumes, id, dir) = (ctx.volumes.clone(), r.id.to_string(), l.dir.clone());
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = wharf_snapshot::unmount(&rootfs) {
            tracing::debug!(error = %e, "rootfs unmount");
        }
        volumes.teardown(&id, &dir);
    })
    .await;
}

/// Removes the host-side run directory (after the container is gone for good).
pub async fn remove_run_dir(ctx: &Ctx, r: &ContainerRecord) {
    let l = layout(ctx, r);
    let _ = tokio::fs::remove_dir_all(&l.dir).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_elf_detection() {
        // The test binary itself is dynamically linked; /bin/busybox (busybox-static) is not.
        assert!(!is_static_elf(&std::env::current_exe().unwrap()));
        if Path::new("/bin/busybox").exists() {
            assert!(is_static_elf(Path::new("/bin/busybox")));
        }
        assert!(!is_static_elf(Path::new("/etc/hostname")));
    }
}
