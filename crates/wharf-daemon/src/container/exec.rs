//! `docker exec`: a process run inside a running container through its shim. The process is
//! the container's own OCI `process` (capabilities, env, rlimits, no-new-privileges, seccomp
//! comes with the container) with the exec's command, env, user, working dir and terminal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use wharf_api::backend::AttachSession;
use wharf_api::hijack::{DEFAULT_DETACH_KEYS, parse_detach_keys};
use wharf_api::models::{ExecConfig, ExecInspectResponse, ProcessConfig};
use wharf_runtime::logs::StreamKind;
use wharf_runtime::shim::ExecOptions;
use wharf_types::{EngineError, Event, EventType, ExecId};

use super::model::Status;
use super::{ContainerService, Handle, run};

/// One exec instance (created, maybe running, maybe done).
pub struct ExecInstance {
    pub id: ExecId,
    pub container: Arc<Handle>,
    pub config: ExecConfig,
    state: Mutex<ExecState>,
}

#[derive(Default, Clone)]
struct ExecState {
    running: bool,
    started: bool,
    exit_code: Option<i64>,
    pid: i64,
    resize: Option<wharf_runtime::shim::ShimClient>,
    /// A resize that came before the process started.
    pending_size: Option<(u16, u16)>,
}

impl ExecInstance {
    /// The shim started the process: record it, and apply a resize that came first.
    async fn started(&self, pid: i64, client: &wharf_runtime::shim::ShimClient) {
        let pending = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.pid = pid;
            st.resize = Some(client.clone());
            st.pending_size.take()
        };
        if let Some((h, w)) = pending {
            let _ = client.resize_exec_pty(self.id.as_str(), h, w).await;
        }
    }
}

/// The live exec instances of the daemon.
#[derive(Default)]
pub struct Execs {
    map: Mutex<HashMap<ExecId, Arc<ExecInstance>>>,
}

impl Execs {
    pub fn get(&self, id: &str) -> Result<Arc<ExecInstance>, EngineError> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        ExecId::parse(id)
            .and_then(|e| map.get(&e).cloned())
            .ok_or_else(|| EngineError::not_found(format!("No such exec instance: {id}")))
    }

    /// Exec IDs of a container (inspect's `ExecIDs`).
    pub fn of_container(&self, container: &wharf_types::ContainerId) -> Vec<String> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.values().filter(|e| &e.container.id == container).map(|e| e.id.to_string()).collect()
    }

    /// Forgets a removed container's execs.
    pub fn forget_container(&self, container: &wharf_types::ContainerId) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, e| &e.container.id != container);
    }
}

fn running_check(h: &Handle) -> Result<(), EngineError> {
    let r = h.record();
    match r.state.status {
        Status::Running => Ok(()),
        Status::Paused => {
            Err(EngineError::conflict(format!("Container {} is paused, unpause the container before exec", r.id)))
        }
        Status::Restarting => {
            Err(EngineError::conflict(format!("Container {} is restarting, wait until the container is running", r.id)))
        }
        _ => Err(EngineError::conflict(format!("Container {} is not running", r.id))),
    }
}

fn command_text(c: &ExecConfig) -> String {
    c.cmd.clone().unwrap_or_default().join(" ")
}

impl ContainerService {
    pub fn exec_create(&self, container: &str, config: ExecConfig) -> Result<ExecId, EngineError> {
        let h = self.lookup(container)?;
        running_check(&h)?;
        if config.cmd.as_ref().is_none_or(Vec::is_empty) {
            return Err(EngineError::invalid("No exec command specified"));
        }
        if let Some(k) = &config.detach_keys
            && !k.is_empty()
        {
            parse_detach_keys(k).map_err(EngineError::invalid)?;
        }
        for e in config.env.iter().flatten() {
            if e.split('=').next().unwrap_or("").is_empty() {
                return Err(EngineError::invalid(format!("invalid environment variable: {e}")));
            }
        }
        let id = ExecId::random();
        let r = h.record();
        let mut attrs = r.event_attributes();
        attrs.insert("execID".to_owned(), id.to_string());
        self.ctx.events.publish(Event::now(
            EventType::Container,
            format!("exec_create: {}", command_text(&config)),
            r.id.as_str(),
            attrs,
        ));
        let inst =
            Arc::new(ExecInstance { id: id.clone(), container: h, config, state: Mutex::new(ExecState::default()) });
        self.execs.map.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), inst);
        Ok(id)
    }

    pub fn exec_inspect(&self, id: &str) -> Result<ExecInspectResponse, EngineError> {
        let e = self.execs.get(id)?;
        let st = e.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let cmd = e.config.cmd.clone().unwrap_or_default();
        Ok(ExecInspectResponse {
            can_remove: Some(false),
            id: Some(e.id.to_string()),
            running: Some(st.running),
            exit_code: st.exit_code,
            process_config: Some(ProcessConfig {
                privileged: Some(e.config.privileged.unwrap_or(false)),
                user: Some(e.config.user.clone().unwrap_or_default()),
                tty: Some(e.config.tty.unwrap_or(false)),
                entrypoint: cmd.first().cloned(),
                arguments: Some(cmd.iter().skip(1).cloned().collect()),
            }),
            open_stdin: Some(e.config.attach_stdin.unwrap_or(false)),
            open_stderr: Some(e.config.attach_stderr.unwrap_or(false)),
            open_stdout: Some(e.config.attach_stdout.unwrap_or(false)),
            container_id: Some(e.container.id.to_string()),
            detach_keys: Some(e.config.detach_keys.clone().unwrap_or_default()),
            pid: Some(st.pid),
        })
    }

    pub async fn exec_resize(&self, id: &str, h: u16, w: u16) -> Result<(), EngineError> {
        let e = self.execs.get(id)?;
        let client = e.state.lock().unwrap_or_else(|p| p.into_inner()).resize.clone();
        match client {
            Some(c) => {
                c.resize_exec_pty(e.id.as_str(), h, w).await.map_err(|err| EngineError::internal(err.to_string()))
            }
            None => {
                let mut st = e.state.lock().unwrap_or_else(|p| p.into_inner());
                if st.running && st.exit_code.is_none() {
                    // Started by the API, not yet by the shim: applied once it is.
                    st.pending_size = Some((h, w));
                    return Ok(());
                }
                Err(EngineError::conflict(format!("Exec {} is not running", e.id)))
            }
        }
    }

    /// Starts an exec. With `detach`, returns at once and the output is discarded; otherwise the
    /// returned session carries its I/O (the API hijacks the connection for it).
    pub async fn exec_start(
        &self,
        id: &str,
        detach: bool,
        tty_override: Option<bool>,
        console: Option<[u16; 2]>,
    ) -> Result<Option<AttachSession>, EngineError> {
        let e = self.execs.get(id)?;
        {
            let mut st = e.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.running {
                return Err(EngineError::conflict(format!("Error: Exec command {} is already running", e.id)));
            }
            if st.started {
                return Err(EngineError::conflict(format!("Error: Exec command {} has already run", e.id)));
            }
            st.started = true;
            st.running = true;
        }
        let h = e.container.clone();
        if let Err(err) = running_check(&h) {
            e.state.lock().unwrap_or_else(|p| p.into_inner()).running = false;
            return Err(err);
        }
        let client = h.shim().ok_or_else(|| EngineError::conflict(format!("Container {} is not running", h.id)))?;
        let tty = tty_override.unwrap_or(false) || e.config.tty.unwrap_or(false);
        let with_stdin = e.config.attach_stdin.unwrap_or(false) && !detach;
        let process = self.exec_process(&h, &e.config, tty, console).await?;
        let r = h.record();
        let mut attrs = r.event_attributes();
        attrs.insert("execID".to_owned(), e.id.to_string());
        self.ctx.events.publish(Event::now(
            EventType::Container,
            format!("exec_start: {}", command_text(&e.config)),
            r.id.as_str(),
            attrs.clone(),
        ));
        let started = {
            let (client, exec_id) = (client.clone(), e.id.to_string());
            async move { client.exec(ExecOptions { exec_id, process, tty, stdin: with_stdin }).await }
        };
        let events = self.ctx.events.clone();
        let die = move |inst: &ExecInstance, code: i64| {
            {
                let mut st = inst.state.lock().unwrap_or_else(|p| p.into_inner());
                st.running = false;
                st.exit_code = Some(code);
                st.resize = None;
            }
            let mut a = attrs.clone();
            a.insert("exitCode".to_owned(), code.to_string());
            events.publish(Event::now(EventType::Container, "exec_die", inst.container.id.as_str(), a));
        };
        // As moby: a failure to start goes into the stream, and the exit code says why.
        let failure = |err: &dyn std::fmt::Display| {
            let msg = format!("OCI runtime exec failed: {err}: unknown\r\n");
            let code = if msg.contains("executable file not found") || msg.contains("no such file or directory") {
                127
            } else {
                126
            };
            (msg, code)
        };
        let (tx, rx) = mpsc::channel::<(u8, bytes::Bytes)>(64);
        if detach {
            let handle = match started.await {
                Ok(handle) => handle,
                Err(err) => {
                    let (msg, code) = failure(&err);
                    die(&e, code);
                    return Err(EngineError::internal(msg.trim_end().to_owned()));
                }
            };
            e.started(i64::from(handle.pid), &client).await;
            let (mut output, _, exit) = handle.into_parts();
            let inst = e.clone();
            tokio::spawn(async move {
                while output.next().await.is_some() {}
                let code = exit.await.map(|s| i64::from(s.code)).unwrap_or(126);
                die(&inst, code);
            });
            return Ok(None);
        }
        // The process starts once the client reads the stream, after the 101 went out (as
        // moby: its first output must not share a read with the response's headers, which
        // docker-py would lose).
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let (app_stdin, mut from_app) = if with_stdin {
            let (a, b) = tokio::io::duplex(64 * 1024);
            (Some(Box::pin(a) as std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>), Some(b))
        } else {
            (None, None)
        };
        let inst = e.clone();
        tokio::spawn(async move {
            let _ = go_rx.await;
            let handle = match started.await {
                Ok(handle) => handle,
                Err(err) => {
                    let (msg, code) = failure(&err);
                    die(&inst, code);
                    let _ = tx.send((1u8, bytes::Bytes::from(msg))).await;
                    return;
                }
            };
            inst.started(i64::from(handle.pid), &client).await;
            let (mut output, stdin, exit) = handle.into_parts();
            if let (Some(mut shim_stdin), Some(mut b)) = (stdin, from_app.take()) {
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut b, &mut shim_stdin).await;
                    let _ = shim_stdin.shutdown().await;
                });
            }
            while let Some(Ok((kind, data))) = output.next().await {
                let n = if kind == StreamKind::Stdout { 1 } else { 2 };
                // A client that went away is no reason to block the process: keep draining.
                let _ = tx.send((n, data)).await;
            }
            drop(tx);
            let code = exit.await.map(|s| i64::from(s.code)).unwrap_or(126);
            die(&inst, code);
        });
        let mut go = Some(go_tx);
        let mut rx = tokio_stream::wrappers::ReceiverStream::new(rx);
        let output = futures_util::stream::poll_fn(move |cx| {
            if let Some(go) = go.take() {
                let _ = go.send(());
            }
            rx.poll_next_unpin(cx)
        });
        let detach_keys = match e.config.detach_keys.as_deref() {
            Some(k) if !k.is_empty() => parse_detach_keys(k).map_err(EngineError::invalid)?,
            _ => DEFAULT_DETACH_KEYS.to_vec(),
        };
        Ok(Some(AttachSession {
            tty,
            // exec's CloseStdin is always true: stdin EOF closes the process's stdin.
            stdin_once: true,
            output: output.boxed(),
            stdin: app_stdin,
            detach_keys,
            on_detach: None,
        }))
    }

    /// The OCI process of an exec (or a health probe) in this container.
    pub(crate) async fn exec_process_for(
        &self,
        h: &Handle,
        c: &ExecConfig,
        tty: bool,
        console: Option<[u16; 2]>,
    ) -> Result<oci_spec::runtime::Process, EngineError> {
        self.exec_process(h, c, tty, console).await
    }

    /// The exec's OCI process: the container's, with the exec's overrides.
    async fn exec_process(
        &self,
        h: &Handle,
        c: &ExecConfig,
        tty: bool,
        console: Option<[u16; 2]>,
    ) -> Result<oci_spec::runtime::Process, EngineError> {
        let r = h.record();
        let l = run::layout(&self.ctx, &r);
        let raw = tokio::fs::read(l.dir.join("config.json"))
            .await
            .map_err(|e| EngineError::internal(format!("reading the container's spec: {e}")))?;
        let spec: oci_spec::runtime::Spec =
            serde_json::from_slice(&raw).map_err(|e| EngineError::internal(e.to_string()))?;
        let mut p =
            spec.process().clone().ok_or_else(|| EngineError::internal("the container's spec has no process"))?;
        p.set_args(c.cmd.clone());
        let mut env: Vec<String> = p.env().clone().unwrap_or_default();
        for e in c.env.iter().flatten() {
            let key = e.split('=').next().unwrap_or("");
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        p.set_env(Some(env));
        if let Some(wd) = c.working_dir.as_deref().filter(|w| !w.is_empty()) {
            p.set_cwd(wd.into());
        }
        p.set_terminal(Some(tty));
        if tty {
            let size = console
                .or_else(|| c.console_size.as_ref().filter(|v| v.len() == 2).map(|v| [v[0] as u16, v[1] as u16]));
            if let Some([rows, cols]) = size.filter(|s| s[0] > 0 && s[1] > 0) {
                let b = oci_spec::runtime::BoxBuilder::default()
                    .height(u64::from(rows))
                    .width(u64::from(cols))
                    .build()
                    .map_err(|e| EngineError::internal(e.to_string()))?;
                p.set_console_size(Some(b));
            }
        } else {
            p.set_console_size(None);
        }
        if let Some(user) = c.user.as_deref().filter(|u| !u.is_empty()) {
            let rootfs = l.rootfs.clone();
            let user = user.to_owned();
            let group_add = r.host_config.group_add.clone().unwrap_or_default();
            let resolved = tokio::task::spawn_blocking(move || {
                wharf_runtime::spec::user::resolve_user(&rootfs, &user, &group_add)
            })
            .await
            .map_err(|e| EngineError::internal(e.to_string()))?
            .map_err(|e| EngineError::from_classified(&e))?;
            let u = oci_spec::runtime::UserBuilder::default()
                .uid(resolved.uid)
                .gid(resolved.gid)
                .additional_gids(resolved.additional_gids)
                .build()
                .map_err(|e| EngineError::internal(e.to_string()))?;
            p.set_user(u);
        }
        if c.privileged.unwrap_or(false) {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let held = wharf_runtime::spec::caps::held_capabilities(&status);
            let set: std::collections::HashSet<oci_spec::runtime::Capability> =
                held.iter().filter_map(|c| c.parse().ok()).collect();
            let caps = oci_spec::runtime::LinuxCapabilitiesBuilder::default()
                .bounding(set.clone())
                .effective(set.clone())
                .permitted(set)
                .build()
                .map_err(|e| EngineError::internal(e.to_string()))?;
            p.set_capabilities(Some(caps));
        }
        Ok(p)
    }
}
