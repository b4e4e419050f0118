//! `exec`: create the exec, start it hijacked (or detached with `-d`), stream, then exit with
//! the exec's `ExitCode` from `GET /exec/{id}/json`.

use bollard::exec::StartExecOptions;
use bollard::models::ExecConfig;
use bytes::Bytes;

use super::Ctx;
use super::run::exit_with;
use super::stream::{self, End, Session};
use crate::api::Api;
use crate::cli_container::ExecArgs;
use crate::client::CliError;
use crate::dockerconfig;
use crate::opts;
use crate::term;

pub async fn exec(ctx: &Ctx, args: ExecArgs) -> Result<(), CliError> {
    let (container, cmd) = args
        .container_and_command
        .split_first()
        .ok_or_else(|| CliError::Usage("\"exec\" requires at least 2 arguments".into()))?;
    let mut env = Vec::new();
    for e in &args.env {
        env.push(
            opts::validate_env(e)
                .map_err(|m| CliError::Usage(format!("invalid argument \"{e}\" for \"-e, --env\" flag: {m}")))?,
        );
    }
    let env = opts::read_kv_env_strings(&args.env_file, &env).map_err(|e| CliError::Other(e.to_string()))?;
    let cfg = dockerconfig::load();
    let detach_keys = args.detach_keys.clone().filter(|k| !k.is_empty()).unwrap_or_else(|| cfg.detach_keys.clone());
    let (attach_stdin, attach_out) = if args.detach { (false, false) } else { (args.interactive, true) };

    let api = Api::connect(ctx).await?;
    api.docker.inspect_container(container, None).await.map_err(|e| api.err(e))?;
    if !args.detach && args.tty && attach_stdin && !term::stdin_is_tty() {
        return Err(CliError::Other("the input device is not a TTY".into()));
    }
    let console = args.tty.then(|| {
        let (h, w) = term::stdout_size();
        vec![usize::from(h), usize::from(w)]
    });
    let config = ExecConfig {
        user: Some(args.user.clone().unwrap_or_default()),
        privileged: Some(args.privileged),
        tty: Some(args.tty),
        console_size: console.clone(),
        attach_stdin: Some(attach_stdin),
        attach_stderr: Some(attach_out),
        attach_stdout: Some(attach_out),
        detach_keys: Some(detach_keys.clone()),
        env: (!env.is_empty()).then_some(env),
        working_dir: Some(args.workdir.clone().unwrap_or_default()),
        cmd: Some(cmd.to_vec()),
    };
    // raw: the docker CLI's body also carries `Detach`, which bollard's type lacks
    let mut body = serde_json::to_value(&config).map_err(|e| CliError::Other(e.to_string()))?;
    body["Detach"] = serde_json::Value::Bool(args.detach);
    let (_, created) = {
        use http_body_util::BodyExt;
        let resp = api
            .raw
            .send(
                http::Method::POST,
                &format!("/containers/{container}/exec"),
                &[("Content-Type", "application/json")],
                crate::api::full(body.to_string()),
            )
            .await?;
        let b = resp.into_body().collect().await.map_err(|e| CliError::Other(e.to_string()))?.to_bytes();
        ((), b)
    };
    let created: serde_json::Value = serde_json::from_slice(&created).map_err(|e| CliError::Other(e.to_string()))?;
    let exec_id = created.get("Id").and_then(serde_json::Value::as_str).unwrap_or("").to_owned();
    if exec_id.is_empty() {
        return Err(CliError::Other("exec ID empty".into()));
    }
    if args.detach {
        api.docker
            .start_exec(&exec_id, Some(StartExecOptions { detach: true, tty: args.tty, output_capacity: None }))
            .await
            .map_err(|e| api.err(e))?;
        return Ok(());
    }
    let mut body = serde_json::json!({"Detach": false, "Tty": args.tty});
    if let Some(c) = &console {
        body["ConsoleSize"] = serde_json::json!(c);
    }
    let hijacked =
        api.raw.hijack(&format!("/exec/{exec_id}/start"), "application/json", Bytes::from(body.to_string())).await?;
    let session = tokio::spawn(stream::stream(
        hijacked,
        Session { stdin: attach_stdin, stdout: true, stderr: true, tty: args.tty, detach_keys: Some(detach_keys) },
    ));
    if args.tty && term::stdin_is_tty() {
        drop(stream::monitor_tty_size(api.docker.clone(), exec_id.clone(), true));
    }
    match session.await {
        Ok(Ok(End::Detached)) => return Err(CliError::Other(stream::ESCAPE_ERROR.into())),
        Ok(Err(e)) => return Err(CliError::Other(e)),
        _ => {}
    }
    let inspect = api.docker.inspect_exec(&exec_id).await.map_err(|e| api.err(e))?;
    let code = inspect.exit_code.unwrap_or(0);
    if code != 0 {
        return Err(exit_with(code as i32));
    }
    Ok(())
}
