//! `run` and `create`, in the docker CLI's order (compat §3.4):
//! create (404 "No such image" → `Unable to find image 'x' locally`, pull, create again), then for
//! `run`: attach (hijack) before start when attached, wait (`next-exit`, or `removed` with
//! `--rm`) once the daemon has answered its headers, start, resize for `-t`, stream until the
//! output ends, exit with the container's status. Start errors exit 125, 126 or 127 by the
//! daemon's message (`toStatusError`).

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptions;
use http::Method;

use super::Ctx;
use super::stream::{self, End, Session};
use crate::api::{self, Api};
use crate::cli_container::{CreateArgs, CreateOnly, RunArgs};
use crate::client::CliError;
use crate::dockerconfig;
use crate::jsonmessage::{self, Renderer};
use crate::opts::{self, OptError, container::CreateConfig};
use crate::term;

const RUN_USAGE: &str = "run [OPTIONS] IMAGE [COMMAND] [ARG...]";
const CREATE_USAGE: &str = "create [OPTIONS] IMAGE [COMMAND] [ARG...]";

/// Prints `msg` and exits with `code` (the message is already in docker's form).
pub fn fail(msg: &str, code: i32) -> CliError {
    stream::flush_std();
    eprintln!("{msg}");
    CliError::Status(code)
}

/// docker's `toStatusError` for `run`: 127 for a missing executable, 126 for one that cannot
/// be executed, 125 for anything else; the message gets `docker: ` and the help hint.
pub fn to_status_error(err: &CliError) -> CliError {
    let msg = err.to_string();
    let code = if msg.contains("executable file not found")
        || msg.contains("no such file or directory")
        || msg.contains("system cannot find the file specified")
    {
        127
    } else if msg.contains("permission denied") || msg.contains("is a directory") {
        126
    } else {
        125
    };
    fail(&opts::with_help(&msg, "run"), code)
}

fn opt_fail(e: &OptError, command: &str, usage: &str) -> CliError {
    fail(&e.render(command, usage), 125)
}

fn validate_pull(v: &str) -> Result<(), String> {
    match v {
        "always" | "missing" | "never" | "" => Ok(()),
        _ => Err(format!("invalid pull option: '{v}': must be one of \"always\", \"missing\" or \"never\"")),
    }
}

/// The image reference as docker reads it: `None` for IDs and digests (never pulled).
fn named_ref(image: &str) -> Result<Option<wharf_types::Reference>, String> {
    let hex64 = image.len() == 64 && image.bytes().all(|b| b.is_ascii_hexdigit());
    if hex64 || image.starts_with("sha256:") {
        return Ok(None);
    }
    wharf_types::Reference::parse_normalized(image).map(|r| Some(r.with_default_tag())).map_err(|e| e.to_string())
}

/// Env after `config.json`'s proxies, deduplicated by key (last value wins), as docker's
/// `ParseProxyConfig` map does.
fn with_proxy_env(cfg: &dockerconfig::ConfigFile, host: &str, env: &[String]) -> Vec<String> {
    let mut all: Vec<String> = env.to_vec();
    all.extend(cfg.proxy_env(host, env));
    let mut out: Vec<String> = Vec::new();
    for e in all {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k).to_owned();
        if let Some(slot) = out.iter_mut().find(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) == key) {
            *slot = e;
        } else {
            out.push(e);
        }
    }
    out
}

fn parse_config(
    ctx: &Ctx,
    cfg: &dockerconfig::ConfigFile,
    flags: &crate::opts::container::ContainerFlags,
    image_and_args: &[String],
    command: &str,
    usage: &str,
) -> Result<CreateConfig, CliError> {
    let (image, args) = image_and_args
        .split_first()
        .ok_or_else(|| CliError::Usage(format!("\"{command}\" requires at least 1 argument")))?;
    if image.starts_with('-') && image.len() > 1 {
        let msg = if image.starts_with("--") {
            format!("unknown flag: {image}")
        } else {
            format!("unknown shorthand flag: '{}' in {image}", image.chars().nth(1).unwrap_or('-'))
        };
        return Err(fail(
            &format!(
                "{msg}\n\nUsage:  {} {usage}\n\nRun '{} {command} --help' for more information",
                opts::PROG,
                opts::PROG
            ),
            125,
        ));
    }
    let mut flags = flags.clone();
    flags.env = {
        // validate first (flag errors), then merge the proxies
        let mut v = Vec::new();
        for e in &flags.env {
            v.push(opts::validate_env(e).map_err(|m| opt_fail(&OptError::flag("-e, --env", e, m), command, usage))?);
        }
        with_proxy_env(cfg, &ctx.host, &v)
    };
    opts::container::parse(&flags, image, args, term::stdout_size()).map_err(|e| opt_fail(&e, command, usage))
}

/// The container ID file (`--cidfile`): refused if it exists, removed if creation fails.
struct CidFile {
    path: String,
    written: bool,
}

impl CidFile {
    fn new(path: &str) -> Result<Self, CliError> {
        if path.is_empty() {
            return Ok(Self { path: String::new(), written: false });
        }
        if std::path::Path::new(path).exists() {
            return Err(CliError::Other(format!(
                "container ID file found, make sure the other container isn't running or delete {path}"
            )));
        }
        std::fs::File::create(path).map_err(|e| {
            CliError::Other(format!("failed to create the container ID file: open {path}: {}", opts::io_text(&e)))
        })?;
        Ok(Self { path: path.to_owned(), written: false })
    }

    fn write(&mut self, id: &str) -> Result<(), CliError> {
        if self.path.is_empty() {
            return Ok(());
        }
        std::fs::write(&self.path, id).map_err(|e| {
            CliError::Other(format!("failed to write the container ID to the file: {}", opts::io_text(&e)))
        })?;
        self.written = true;
        Ok(())
    }
}

impl Drop for CidFile {
    fn drop(&mut self) {
        if !self.path.is_empty() && !self.written {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `POST /images/create` with the progress renderer on stderr (`quiet`: no output).
pub async fn pull_image(
    api: &Api,
    cfg: &dockerconfig::ConfigFile,
    image: &str,
    platform: Option<&str>,
    quiet: bool,
) -> Result<(), CliError> {
    let r =
        wharf_types::Reference::parse_normalized(image).map_err(|e| CliError::Other(e.to_string()))?.with_default_tag();
    let tag = match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => "latest".to_owned(),
    };
    let mut q = vec![("fromImage", r.name()), ("tag", tag)];
    if let Some(p) = platform.filter(|p| !p.is_empty()) {
        q.push(("platform", p.to_owned()));
    }
    let path = format!("/images/create?{}", encode_query(&q));
    let auth = cfg.registry_auth(r.domain());
    let resp = api.raw.send(Method::POST, &path, &[("X-Registry-Auth", &auth)], api::empty()).await?;
    let body = api::body_stream(resp);
    let res = if quiet {
        let mut renderer = Renderer::new(std::io::sink(), false);
        jsonmessage::render_stream(body, &mut renderer, |_| {}).await
    } else {
        let mut renderer = Renderer::new(std::io::stderr(), term::stderr_is_tty());
        jsonmessage::render_stream(body, &mut renderer, |_| {}).await
    };
    res.map_err(|e| CliError::Other(e.message))
}

/// `application/x-www-form-urlencoded` query text, keys sorted (Go's `url.Values.Encode`).
pub fn encode_query(pairs: &[(&str, String)]) -> String {
    let mut pairs = pairs.to_vec();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs.iter().map(|(k, v)| format!("{k}={}", url_escape(v))).collect::<Vec<_>>().join("&")
}

/// Go's `url.QueryEscape`.
pub fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `createContainer`: create, pulling on a missing image; prints warnings; writes `--cidfile`.
async fn create_container(
    api: &Api,
    cfg: &dockerconfig::ConfigFile,
    body: &ContainerCreateBody,
    cidfile: &str,
    opts: &CreateOnly,
) -> Result<String, CliError> {
    let mut cid = CidFile::new(cidfile)?;
    let image = body.image.clone().unwrap_or_default();
    let named = named_ref(&image).map_err(CliError::Other)?;
    let platform =
        opts.platform.as_deref().filter(|p| !p.is_empty() && api.version() >= (1, 41)).map(|p| p.to_lowercase());
    let pull = |img: String| {
        let platform = platform.clone();
        async move { pull_image(api, cfg, &img, platform.as_deref(), opts.quiet).await }
    };
    if opts.pull == "always" {
        pull(image.clone()).await?;
    }
    let mut body = body.clone();
    if api.version() < (1, 42)
        && let Some(hc) = body.host_config.as_mut()
    {
        hc.console_size = None;
    }
    let options = CreateContainerOptions {
        name: opts.name.clone().filter(|n| !n.is_empty()),
        platform: platform.clone().unwrap_or_default(),
    };
    let resp = match api.docker.create_container(Some(options.clone()), body.clone()).await {
        Ok(r) => r,
        Err(e) => {
            let err = api.err(e);
            let not_found = matches!(err, CliError::Daemon { status: 404, .. });
            match (&named, not_found && opts.pull == "missing") {
                (Some(r), true) => {
                    if !opts.quiet {
                        eprintln!("Unable to find image '{}' locally", r.familiar());
                    }
                    pull(image.clone()).await?;
                    api.docker.create_container(Some(options), body.clone()).await.map_err(|e| api.err(e))?
                }
                _ => return Err(err),
            }
        }
    };
    let mut warnings = resp.warnings.clone();
    if let Some(dns) = body.host_config.as_ref().and_then(|h| h.dns.as_ref()) {
        for d in dns {
            if let Ok(ip) = d.parse::<std::net::IpAddr>()
                && ip.is_loopback()
            {
                warnings.push(format!("Localhost DNS ({ip}) may fail in containers."));
                break;
            }
        }
    }
    for w in warnings {
        eprintln!("WARNING: {w}");
    }
    cid.write(&resp.id)?;
    Ok(resp.id)
}

pub async fn create(ctx: &Ctx, args: CreateArgs) -> Result<(), CliError> {
    if let Err(e) = validate_pull(&args.create.pull) {
        return Err(fail(&opts::with_help(&e, "create"), 125));
    }
    let cfg = dockerconfig::load();
    let config = parse_config(ctx, &cfg, &args.flags, &args.image_and_args, "create", CREATE_USAGE)?;
    let api = Api::connect(ctx).await?;
    let id = create_container(&api, &cfg, &config.body, &config.cidfile, &args.create).await?;
    println!("{id}");
    Ok(())
}

fn query_bool(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

/// The attach query the docker CLI sends (`stream=1&stdin=1&stdout=1&stderr=1&detachKeys=…`).
pub fn attach_path(id: &str, stdin: bool, stdout: bool, stderr: bool, keys: &str) -> String {
    let mut q: Vec<(&str, String)> = Vec::new();
    if stderr {
        q.push(("stderr", query_bool(true).into()));
    }
    if stdin {
        q.push(("stdin", query_bool(true).into()));
    }
    if stdout {
        q.push(("stdout", query_bool(true).into()));
    }
    q.push(("stream", "1".into()));
    if !keys.is_empty() {
        q.push(("detachKeys", keys.to_owned()));
    }
    format!("/containers/{id}/attach?{}", encode_query(&q))
}

/// What `/wait` ended with, as the exit status docker uses (125 when waiting failed).
pub async fn status_of(wait: Result<api::WaitHandle, CliError>) -> i32 {
    match wait {
        Err(e) => {
            eprintln!("error waiting for container: {e}");
            125
        }
        Ok(h) => match h.result().await {
            Ok(r) => match r.error {
                Some(m) => {
                    eprintln!("Error waiting for container: {m}");
                    125
                }
                None => r.status_code as i32,
            },
            Err(e) => {
                eprintln!("error waiting for container: {e}");
                125
            }
        },
    }
}

pub async fn run(ctx: &Ctx, args: RunArgs) -> Result<(), CliError> {
    if let Err(e) = validate_pull(&args.create.pull) {
        return Err(fail(&opts::with_help(&e, "run"), 125));
    }
    let detach =
        opts::container::bool_flag("-d, --detach", &args.detach).map_err(|e| opt_fail(&e, "run", RUN_USAGE))?;
    let sig_proxy = match &args.sig_proxy {
        None => true,
        Some(_) => {
            opts::container::bool_flag("--sig-proxy", &args.sig_proxy).map_err(|e| opt_fail(&e, "run", RUN_USAGE))?
        }
    };
    let cfg = dockerconfig::load();
    let mut config = parse_config(ctx, &cfg, &args.flags, &args.image_and_args, "run", RUN_USAGE)?;
    let api = match Api::connect(ctx).await {
        Ok(a) => a,
        Err(e) => return Err(to_status_error(&e)),
    };
    let body = &mut config.body;
    let tty = body.tty == Some(true);
    if !detach {
        if tty && body.attach_stdin == Some(true) && !term::stdin_is_tty() {
            return Err(CliError::Other("the input device is not a TTY".into()));
        }
    } else {
        if config.attach_given {
            return Err(CliError::Other("conflicting options: cannot specify both --attach and --detach".into()));
        }
        body.attach_stdin = Some(false);
        body.attach_stdout = Some(false);
        body.attach_stderr = Some(false);
        body.stdin_once = Some(false);
    }
    let (attach_stdin, attach_stdout, attach_stderr) =
        (body.attach_stdin == Some(true), body.attach_stdout == Some(true), body.attach_stderr == Some(true));
    let auto_remove = body.host_config.as_ref().and_then(|h| h.auto_remove).unwrap_or(false);

    let id = match create_container(&api, &cfg, &config.body, &config.cidfile, &args.create).await {
        Ok(id) => id,
        Err(e) => return Err(to_status_error(&e)),
    };
    let _signals = sig_proxy.then(|| stream::forward_signals(api.docker.clone(), id.clone()));

    let attach = attach_stdin || attach_stdout || attach_stderr;
    if !attach {
        println!("{id}");
    }
    let mut session = None;
    if attach {
        let keys = args.detach_keys.clone().filter(|k| !k.is_empty()).unwrap_or_else(|| cfg.detach_keys.clone());
        let path = attach_path(&id, attach_stdin, attach_stdout, attach_stderr, &keys);
        let hijacked = api.raw.hijack(&path, "text/plain", bytes::Bytes::new()).await?;
        let s =
            Session { stdin: attach_stdin, stdout: attach_stdout, stderr: attach_stderr, tty, detach_keys: Some(keys) };
        session = Some(tokio::spawn(stream::stream(hijacked, s)));
    }

    // The daemon answers /wait's headers before we start: no exit can be missed.
    let condition = if auto_remove { "removed" } else { "next-exit" };
    let wait = api.raw.wait(&id, Some(condition)).await;
    let status = tokio::spawn(status_of(wait));

    if let Err(e) = api.docker.start_container(&id, None).await {
        let err = api.err(e);
        if let Some(s) = session.take() {
            s.abort();
            let _ = s.await;
        }
        if auto_remove {
            let _ = status.await;
        }
        return Err(to_status_error(&err));
    }

    let Some(mut session) = session else {
        // detached: the wait connection is closed as we return
        status.abort();
        return Ok(());
    };

    if tty && term::stdout_is_tty() {
        drop(stream::monitor_tty_size(api.docker.clone(), id.clone(), false));
    }

    let mut status = status;
    tokio::select! {
        res = &mut session => {
            match res {
                Ok(Ok(End::Detached)) => return Ok(()),
                Ok(Err(e)) => return Err(CliError::Other(e)),
                Ok(Ok(End::Done)) | Err(_) => {}
            }
            let code = status.await.unwrap_or(125);
            if code != 0 {
                return Err(exit_with(code));
            }
        }
        code = &mut status => {
            let code = code.unwrap_or(125);
            if !attach_stdout && !attach_stderr {
                session.abort();
            }
            let _ = session.await;
            if code != 0 {
                return Err(exit_with(code));
            }
        }
    }
    Ok(())
}

/// Exit silently with a container's status.
pub fn exit_with(code: i32) -> CliError {
    stream::flush_std();
    CliError::Status(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_errors() {
        let e = |m: &str| CliError::Daemon { status: 400, message: m.into() };
        let code = |m: &str| match to_status_error(&e(m)) {
            CliError::Status(c) => c,
            _ => 0,
        };
        assert_eq!(
            code(
                "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"nonexistentcmd\": executable file not found in $PATH: unknown"
            ),
            127
        );
        assert_eq!(code("exec: \"/etc/passwd\": permission denied: unknown"), 126);
        assert_eq!(code("something else"), 125);
    }

    #[test]
    fn attach_query_like_the_go_client() {
        assert_eq!(
            attach_path("abc", true, true, true, ""),
            "/containers/abc/attach?stderr=1&stdin=1&stdout=1&stream=1"
        );
        assert_eq!(
            attach_path("abc", false, true, false, "ctrl-a,a"),
            "/containers/abc/attach?detachKeys=ctrl-a%2Ca&stdout=1&stream=1"
        );
    }

    #[test]
    fn references() {
        assert!(named_ref(&"a".repeat(64)).unwrap().is_none());
        assert_eq!(named_ref("busybox").unwrap().unwrap().familiar(), "busybox:latest");
        assert!(named_ref("Busybox").is_err());
        assert_eq!(url_escape("docker.io/library/busybox"), "docker.io%2Flibrary%2Fbusybox");
    }

    #[test]
    fn proxy_env_dedup() {
        let cfg = dockerconfig::ConfigFile::default();
        assert_eq!(with_proxy_env(&cfg, "x", &["A=1".into(), "B=2".into(), "A=3".into()]), vec!["A=3", "B=2"]);
    }
}
