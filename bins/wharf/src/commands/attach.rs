//! `attach` and `start` (with `-a`/`-i` they attach before starting, as `run` does).

use bollard::models::ContainerInspectResponse;
use bytes::Bytes;

use super::Ctx;
use super::run::{attach_path, exit_with, status_of};
use super::stream::{self, End, Session};
use crate::api::Api;
use crate::cli_container::{AttachArgs, StartArgs};
use crate::client::CliError;
use crate::dockerconfig;
use crate::term;

async fn inspect_running(api: &Api, id: &str) -> Result<ContainerInspectResponse, CliError> {
    let c = api.docker.inspect_container(id, None).await.map_err(|e| api.err(e))?;
    let st = c.state.clone().unwrap_or_default();
    if st.running != Some(true) {
        return Err(CliError::Other("You cannot attach to a stopped container, start it first".into()));
    }
    if st.paused == Some(true) {
        return Err(CliError::Other("You cannot attach to a paused container, unpause it first".into()));
    }
    if st.restarting == Some(true) {
        return Err(CliError::Other("You cannot attach to a restarting container, wait until it is running".into()));
    }
    Ok(c)
}

fn detach_keys(flag: &Option<String>, cfg: &dockerconfig::ConfigFile) -> String {
    flag.clone().filter(|k| !k.is_empty()).unwrap_or_else(|| cfg.detach_keys.clone())
}

pub async fn attach(ctx: &Ctx, args: AttachArgs) -> Result<(), CliError> {
    let api = Api::connect(ctx).await?;
    let cfg = dockerconfig::load();
    let sig_proxy = match &args.sig_proxy {
        None => true,
        Some(v) => crate::opts::go_parse_bool(v)
            .map_err(|e| CliError::Usage(format!("invalid argument \"{v}\" for \"--sig-proxy\" flag: {e}")))?,
    };
    let wait = api.raw.wait(&args.container, None).await;
    let c = inspect_running(&api, &args.container).await?;
    let config = c.config.clone().unwrap_or_default();
    let tty = config.tty == Some(true);
    if tty && !args.no_stdin && !term::stdin_is_tty() {
        return Err(CliError::Other("the input device is not a TTY".into()));
    }
    let keys = detach_keys(&args.detach_keys, &cfg);
    let stdin = !args.no_stdin && config.open_stdin == Some(true);
    // docker addresses the container by the name given, not the ID, from here on
    let id = args.container.clone();
    let _signals = (sig_proxy && !tty).then(|| stream::forward_signals(api.docker.clone(), args.container.clone()));
    let path = attach_path(&args.container, stdin, true, true, &keys);
    let hijacked = api.raw.hijack(&path, "text/plain", Bytes::new()).await?;
    inspect_running(&api, &args.container).await?;
    if tty && term::stdout_is_tty() {
        let (h, w) = term::stdout_size();
        stream::resize_to(&api.docker, &id, false, h + 1, w + 1).await;
        drop(stream::monitor_tty_size(api.docker.clone(), id.clone(), false));
    }
    let session = Session { stdin, stdout: true, stderr: true, tty, detach_keys: Some(keys) };
    match stream::stream(hijacked, session).await {
        Ok(End::Detached) => return Err(CliError::Other(stream::ESCAPE_ERROR.into())),
        Ok(End::Done) => {}
        Err(e) => return Err(CliError::Other(e)),
    }
    match wait {
        Err(e) => Err(e),
        Ok(h) => match h.result().await {
            Ok(r) => match r.error {
                Some(m) => Err(CliError::Other(m)),
                None if r.status_code != 0 => Err(exit_with(r.status_code as i32)),
                None => Ok(()),
            },
            Err(e) => Err(CliError::Other(e)),
        },
    }
}

pub async fn start(ctx: &Ctx, args: StartArgs) -> Result<(), CliError> {
    let api = Api::connect(ctx).await?;
    if !(args.attach || args.interactive) {
        let mut failed = Vec::new();
        for c in &args.containers {
            match api.docker.start_container(c, None).await {
                Ok(()) => println!("{c}"),
                Err(e) => {
                    stream::flush_std();
                    eprintln!("{}", api.err(e));
                    failed.push(c.clone());
                }
            }
        }
        if !failed.is_empty() {
            return Err(CliError::Other(format!("Error: failed to start containers: {}", failed.join(", "))));
        }
        return Ok(());
    }
    if args.containers.len() > 1 {
        return Err(CliError::Other("you cannot start and attach multiple containers at once".into()));
    }
    let cfg = dockerconfig::load();
    let name = &args.containers[0];
    let c = api.docker.inspect_container(name, None).await.map_err(|e| api.err(e))?;
    let id = c.id.clone().unwrap_or_else(|| name.clone());
    let config = c.config.clone().unwrap_or_default();
    let tty = config.tty == Some(true);
    let auto_remove = c.host_config.as_ref().and_then(|h| h.auto_remove).unwrap_or(false);
    let _signals = (!tty).then(|| stream::forward_signals(api.docker.clone(), id.clone()));
    let keys = detach_keys(&args.detach_keys, &cfg);
    let stdin = args.interactive && config.open_stdin == Some(true);
    let path = attach_path(&id, stdin, true, true, &keys);
    let hijacked = api.raw.hijack(&path, "text/plain", Bytes::new()).await?;
    let session = tokio::spawn(stream::stream(
        hijacked,
        Session { stdin, stdout: true, stderr: true, tty, detach_keys: Some(keys) },
    ));
    let condition = if auto_remove { "removed" } else { "next-exit" };
    let wait = api.raw.wait(&id, Some(condition)).await;
    let status = tokio::spawn(status_of(wait));
    if let Err(e) = api.docker.start_container(&id, None).await {
        session.abort();
        let _ = session.await;
        if auto_remove {
            let _ = status.await;
        }
        return Err(api.err(e));
    }
    if tty && term::stdout_is_tty() {
        drop(stream::monitor_tty_size(api.docker.clone(), id.clone(), false));
    }
    match session.await {
        Ok(Ok(End::Detached)) => return Ok(()),
        Ok(Err(e)) => return Err(CliError::Other(e)),
        _ => {}
    }
    let code = status.await.unwrap_or(125);
    if code != 0 {
        return Err(exit_with(code));
    }
    Ok(())
}
