//! `pull`, `push`, `login`, `logout`, `search`: docker's flags, output and credential storage (config.json
//! `auths`, or a credential helper from `credsStore`/`credHelpers`; see [`dockerconfig`]).

use std::io::{BufRead, IsTerminal, Write};

use hyper::Method;

use super::Ctx;
use super::run::encode_query;
use crate::api::{self, Api};
use crate::cli::{LoginArgs, LogoutArgs, PullArgs, PushArgs, SearchArgs};
use crate::client::CliError;
use crate::dockerconfig;
use crate::format::{self, Format, ellipsis, to_value};
use crate::jsonmessage::{self, Renderer};

fn parse_ref(s: &str) -> Result<wharf_types::Reference, CliError> {
    wharf_types::Reference::parse_normalized(s).map_err(|e| CliError::Other(format!("invalid reference format: {e}")))
}

/// `wharf pull [-a] [--platform] [-q] NAME[:TAG|@DIGEST]`: progress on stdout, then the
/// reference. With `-a` the request has no `tag`, which makes the daemon pull every tag.
pub async fn pull(ctx: &Ctx, args: PullArgs) -> Result<(), CliError> {
    let r = parse_ref(&args.image)?;
    let name_only = r.tag().is_none() && r.digest().is_none();
    if args.all_tags && !name_only {
        return Err(CliError::Other("tag can't be used with --all-tags/-a".into()));
    }
    let api = Api::connect(ctx).await?;
    let cfg = dockerconfig::load();
    if name_only && !args.all_tags && !args.quiet {
        println!("Using default tag: latest");
    }
    let r = if args.all_tags { r } else { r.with_default_tag() };
    let mut q = vec![("fromImage", r.name())];
    match (r.digest(), r.tag()) {
        (Some(d), _) => q.push(("tag", d.to_string())),
        (None, Some(t)) => q.push(("tag", t.to_owned())),
        (None, None) => {}
    }
    if let Some(p) = args.platform.as_deref().filter(|p| !p.is_empty()) {
        q.push(("platform", p.to_owned()));
    }
    let path = format!("/images/create?{}", encode_query(&q));
    let auth = cfg.registry_auth(r.domain());
    let resp = api.raw.send(Method::POST, &path, &[("X-Registry-Auth", &auth)], api::empty()).await?;
    let body = api::body_stream(resp);
    let res = if args.quiet {
        let mut renderer = Renderer::new(std::io::sink(), false);
        jsonmessage::render_stream(body, &mut renderer, |_| {}).await
    } else {
        let stdout = std::io::stdout();
        let terminal = stdout.is_terminal();
        let mut renderer = Renderer::new(stdout.lock(), terminal);
        jsonmessage::render_stream(body, &mut renderer, |_| {}).await
    };
    res.map_err(|e| CliError::Other(e.message))?;
    println!("{}", r);
    Ok(())
}

/// `wharf push [-a] [-q] NAME[:TAG]`.
pub async fn push(ctx: &Ctx, args: PushArgs) -> Result<(), CliError> {
    let api = Api::connect(ctx).await?;
    let cfg = dockerconfig::load();
    let r = parse_ref(&args.image)?;
    let tag = if args.all_tags { String::new() } else { r.tag().unwrap_or("latest").to_owned() };
    if r.tag().is_none() && !args.all_tags && !args.quiet {
        println!("Using default tag: latest");
    }
    let name = r.name();
    let path = format!("/images/{name}/push?{}", encode_query(&[("tag", tag)]));
    let auth = cfg.registry_auth(r.domain());
    let resp = api.raw.send(Method::POST, &path, &[("X-Registry-Auth", &auth)], api::empty()).await?;
    let body = api::body_stream(resp);
    let res = if args.quiet {
        let mut renderer = Renderer::new(std::io::sink(), false);
        jsonmessage::render_stream(body, &mut renderer, |_| {}).await
    } else {
        let stdout = std::io::stdout();
        let terminal = stdout.is_terminal();
        let mut renderer = Renderer::new(stdout.lock(), terminal);
        jsonmessage::render_stream(body, &mut renderer, |_| {}).await
    };
    res.map_err(|e| CliError::Other(e.message))?;
    if args.quiet {
        println!("{}", r.with_default_tag().familiar());
    }
    Ok(())
}

/// The key under `auths` for a server argument (`docker.io` and empty mean Docker Hub).
fn server_key(server: &str) -> String {
    let s = server.trim_end_matches('/');
    if s.is_empty() {
        return dockerconfig::auth_key("docker.io");
    }
    let host = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s);
    let host = host.split('/').next().unwrap_or(host);
    dockerconfig::auth_key(host)
}

/// `wharf login [-u USER] [-p PASS | --password-stdin] [SERVER]`.
pub async fn login(ctx: &Ctx, args: LoginArgs) -> Result<(), CliError> {
    let api = Api::connect(ctx).await?;
    let key = server_key(args.server.as_deref().unwrap_or(""));
    let mut password = args.password.clone().unwrap_or_default();
    if args.password_stdin {
        if args.password.is_some() {
            return Err(CliError::Usage("--password and --password-stdin are mutually exclusive".into()));
        }
        if args.username.as_deref().unwrap_or("").is_empty() {
            return Err(CliError::Usage("Must provide --username with --password-stdin".into()));
        }
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| CliError::Other(e.to_string()))?;
        password = line.trim_end_matches(['\n', '\r']).to_owned();
    } else if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let mut username = args.username.clone().unwrap_or_default();
    if username.is_empty() || password.is_empty() {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Other("Error: Cannot perform an interactive login from a non TTY device".into()));
        }
        if username.is_empty() {
            print!("Username: ");
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map_err(|e| CliError::Other(e.to_string()))?;
            username = line.trim().to_owned();
        }
        if password.is_empty() {
            print!("Password: ");
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map_err(|e| CliError::Other(e.to_string()))?;
            println!();
            password = line.trim_end_matches(['\n', '\r']).to_owned();
        }
    }
    if username.is_empty() {
        return Err(CliError::Other("Error: Non-null Username Required".into()));
    }
    if password.is_empty() {
        return Err(CliError::Other("Error: Password Required".into()));
    }
    let body = serde_json::json!({"username": username, "password": password, "serveraddress": key});
    let resp = api
        .raw
        .send(Method::POST, "/auth", &[("Content-Type", "application/json")], api::full(body.to_string()))
        .await?;
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map_err(|e| CliError::Other(e.to_string()))?
        .to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let token = answer.get("IdentityToken").and_then(|t| t.as_str()).unwrap_or("").to_owned();
    // With a token, the password is not kept (docker's login does the same).
    let creds = if token.is_empty() {
        dockerconfig::Credentials { username, password, identity_token: String::new() }
    } else {
        dockerconfig::Credentials { username, password: String::new(), identity_token: token }
    };
    let stored = dockerconfig::store_credentials(&key, &creds).map_err(CliError::Other)?;
    if let dockerconfig::StoredIn::File(path) = stored {
        eprintln!(
            "WARNING! Your credentials are stored unencrypted in '{}'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n",
            path.display()
        );
    }
    let status = answer.get("Status").and_then(|s| s.as_str()).unwrap_or("Login Succeeded");
    if !status.is_empty() {
        println!("{status}");
    }
    Ok(())
}

/// `wharf logout [SERVER]`: removes the stored credentials (`auths` and the helper's); never
/// contacts the daemon.
pub async fn logout(_ctx: &Ctx, args: LogoutArgs) -> Result<(), CliError> {
    let key = server_key(args.server.as_deref().unwrap_or(""));
    let erased = dockerconfig::erase_credentials(&key).map_err(CliError::Other)?;
    if !erased.was_logged_in {
        println!("Not logged in to {key}");
        return Ok(());
    }
    println!("Removing login credentials for {key}");
    for w in erased.warnings {
        eprintln!("{w}");
    }
    Ok(())
}

/// `wharf search [--filter k=v] [--limit n] [--no-trunc] [--format t] TERM`: the daemon asks
/// the index the term names (`host/term`, else Docker Hub's) with the stored login for it.
pub async fn search(ctx: &Ctx, args: SearchArgs) -> Result<(), CliError> {
    let filters = super::parse_filters(&args.filter)?;
    let (index, _) = wharf_types::reference::split_search_term(&args.term);
    let mut q = vec![("term", args.term.clone())];
    if args.limit > 0 {
        q.push(("limit", args.limit.to_string()));
    }
    if !filters.is_empty() {
        q.push(("filters", serde_json::to_string(&filters).unwrap_or_default()));
    }
    let api = Api::connect(ctx).await?;
    let auth = dockerconfig::load().registry_auth(index);
    let path = format!("/images/search?{}", encode_query(&q));
    let resp = api.raw.send(Method::GET, &path, &[("X-Registry-Auth", &auth)], api::empty()).await?;
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map_err(|e| CliError::Other(e.to_string()))?
        .to_bytes();
    let results: Vec<serde_json::Value> =
        serde_json::from_slice(&body).map_err(|e| CliError::Other(format!("invalid search answer: {e}")))?;
    let ok = |b: &serde_json::Value| if b.as_bool() == Some(true) { "[OK]" } else { "" };
    let rows: Vec<_> = results
        .iter()
        .map(|r| {
            let desc = r["description"].as_str().unwrap_or("").replace(['\n', '\r'], " ");
            let row = serde_json::json!({
                "Name": r["name"].as_str().unwrap_or(""),
                "Description": if args.no_trunc { desc } else { ellipsis(&desc, 45) },
                "StarCount": r["star_count"].as_i64().unwrap_or(0).to_string(),
                "IsOfficial": ok(&r["is_official"]),
                "IsAutomated": ok(&r["is_automated"]),
            });
            to_value(&row, &[])
        })
        .collect();
    let format =
        Format::new(args.format.as_deref(), "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}");
    format::print_rows(
        format,
        &rows,
        &[
            ("Name", "NAME"),
            ("Description", "DESCRIPTION"),
            ("StarCount", "STARS"),
            ("IsOfficial", "OFFICIAL"),
            ("IsAutomated", "AUTOMATED"),
        ],
    )?;
    Ok(())
}
