//! `build` (the docker CLI's legacy builder client) and `builder prune`.
//!
//! `build` makes the context the way `docker build` does without BuildKit: a directory is
//! walked in lexical order into a tar (owners 0:0), skipping what `.dockerignore` excludes
//! (the ignore file and the Dockerfile are always sent); a Dockerfile from stdin (`-f -`) or
//! from outside the directory is added as `.dockerfile.<20 hex>` and hidden through
//! `.dockerignore`; `-` reads the context from stdin (a tar, maybe compressed, or a bare
//! Dockerfile, which is wrapped into a tar as `Dockerfile`). The stream is shown as
//! `--progress` says ([`crate::buildprogress`]: a live step view on a terminal, BuildKit's
//! plain lines otherwise, on stderr); `-q` prints only the image ID (and the buffered output
//! on failure); a failed step's exit code is the command's, as with the docker CLI.
//!
//! Remote contexts (git repositories, http(s) URLs) are fetched by the daemon (the `remote`
//! parameter) rather than by the CLI as docker's does; the result is the same for a local
//! daemon. Registry credentials for `FROM` go in `X-Registry-Config` (every stored login, as
//! the CLI sends). `--compress` gzips the context.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use http::Method;
use http_body_util::BodyExt;
use serde_json::{Value as Json, json};
use wharf_dockerfile::ignore::{MatchInfo, PatternMatcher, read_ignore_file, trim_build_files_from_excludes};

use super::Ctx;
use super::run::encode_query;
use crate::api::{self, Api};
use crate::buildprogress;
use crate::cli::{BuildArgs, BuilderPruneArgs};
use crate::client::CliError;
use crate::jsonmessage::{Renderer, StreamError, render_stream};
use crate::units::{human_size, ram_in_bytes};

fn prepare(msg: impl std::fmt::Display) -> CliError {
    CliError::Other(format!("unable to prepare context: {msg}"))
}

/// Whether `head` starts an archive the daemon unpacks (tar, or compressed).
fn is_archive(head: &[u8]) -> bool {
    let compressed = head.starts_with(&[0x1f, 0x8b, 0x08])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    compressed
        || (head.len() >= 512
            && head[..100].iter().any(|b| *b != 0)
            && tar::Header::from_byte_slice(&head[..512]).cksum().ok() == Some(header_sum(head)))
}

fn header_sum(block: &[u8]) -> u32 {
    block[..512].iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { u32::from(*b) }).sum()
}

fn is_remote(ctx: &str) -> bool {
    ["http://", "https://", "git://", "git@", "github.com/"].iter().any(|p| ctx.starts_with(p))
}

/// `.dockerfile.` and 20 random hex digits, as the CLI names a Dockerfile it adds.
fn random_dockerfile_name() -> String {
    let mut b = [0u8; 10];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        b[..8].copy_from_slice(&(t.as_nanos() as u64 ^ u64::from(std::process::id())).to_le_bytes());
    }
    format!(".dockerfile.{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

fn read_stdin() -> Result<Vec<u8>, CliError> {
    let mut buf = Vec::new();
    std::io::stdin().read_to_end(&mut buf).map_err(|e| CliError::Other(format!("read stdin: {e}")))?;
    Ok(buf)
}

fn file_header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0));
    h
}

/// The context directory as a tar: lexical walk, `.dockerignore` applied as the CLI does.
struct Walker<'a> {
    root: &'a Path,
    pm: Option<PatternMatcher>,
    tar: tar::Builder<Vec<u8>>,
    /// The root `.dockerignore` is sent rewritten instead (a Dockerfile was added).
    replace_ignore: bool,
}

impl Walker<'_> {
    fn walk(&mut self, rel: &str, parent: &MatchInfo) -> Result<(), CliError> {
        let dir = if rel.is_empty() { self.root.to_path_buf() } else { self.root.join(rel) };
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| prepare(format!("read {}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        for name in names {
            let path = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            if self.replace_ignore && path == ".dockerignore" {
                continue;
            }
            let full = self.root.join(&path);
            let meta = std::fs::symlink_metadata(&full)
                .map_err(|e| CliError::Other(format!("error checking context: {e}")))?;
            let (skip, info) = match &self.pm {
                Some(pm) => pm.matches_using_parent_results(&path, parent),
                None => (false, MatchInfo::default()),
            };
            if skip {
                if meta.is_dir() && !self.pm.as_ref().is_some_and(|pm| pm.can_skip_dir(&path)) {
                    self.walk(&path, &info)?;
                }
                continue;
            }
            self.append(&path, &full, &meta)?;
            if meta.is_dir() {
                self.walk(&path, &info)?;
            }
        }
        Ok(())
    }

    fn append(&mut self, rel: &str, full: &Path, meta: &std::fs::Metadata) -> Result<(), CliError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |e: std::io::Error| CliError::Other(format!("error checking context: {e}"));
        let mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        if ft.is_dir() {
            let mut h = file_header(0, mode);
            h.set_entry_type(tar::EntryType::Directory);
            self.tar.append_data(&mut h, format!("{rel}/"), std::io::empty()).map_err(io)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(full).map_err(io)?;
            let mut h = file_header(0, mode);
            h.set_entry_type(tar::EntryType::Symlink);
            self.tar.append_link(&mut h, rel, target).map_err(io)?;
        } else if ft.is_file() {
            let f = std::fs::File::open(full).map_err(|e| {
                CliError::Other(format!("error checking context: can't stat '{}': {e}", full.display()))
            })?;
            let mut h = file_header(meta.len(), mode);
            self.tar.append_data(&mut h, rel, f).map_err(io)?;
        }
        // Sockets, fifos and devices are not sent (as the CLI's archiver skips sockets).
        Ok(())
    }

    fn add_file(&mut self, name: &str, data: &[u8]) -> Result<(), CliError> {
        let mut h = file_header(data.len() as u64, 0o600);
        self.tar.append_data(&mut h, name, data).map_err(|e| CliError::Other(format!("add {name}: {e}")))
    }
}

/// `--compress`: the context gzipped (the daemon detects the compression, as Docker's does).
fn gzip(body: &[u8]) -> Result<Vec<u8>, CliError> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 2), flate2::Compression::fast());
    e.write_all(body).and_then(|_| e.finish()).map_err(|e| CliError::Other(format!("compress the context: {e}")))
}

/// A tar with one entry.
fn single_file_tar(name: &str, data: &[u8]) -> Result<Vec<u8>, CliError> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = file_header(data.len() as u64, 0o600);
    b.append_data(&mut h, name, data).map_err(|e| CliError::Other(format!("add {name}: {e}")))?;
    b.into_inner().map_err(|e| CliError::Other(e.to_string()))
}

/// The request body and the `dockerfile` parameter.
fn context(args: &BuildArgs) -> Result<(Vec<u8>, String), CliError> {
    let file = args.file.as_deref().filter(|f| !f.is_empty());
    if args.context == "-" {
        if file == Some("-") {
            return Err(CliError::Other(
                "invalid argument: can't use stdin for both build context and dockerfile".into(),
            ));
        }
        let body = read_stdin()?;
        if is_archive(&body) {
            return Ok((body, file.unwrap_or("").to_owned()));
        }
        return Ok((single_file_tar("Dockerfile", &body)?, "Dockerfile".into()));
    }
    if is_remote(&args.context) {
        // The daemon fetches it (the `remote` parameter); `-f` names a file inside it.
        return Ok((Vec::new(), file.unwrap_or("").to_owned()));
    }
    let root =
        std::fs::canonicalize(&args.context).map_err(|_| prepare(format!("path {:?} not found", args.context)))?;
    if !root.is_dir() {
        return Err(prepare(format!("context must be a directory: {}", root.display())));
    }
    // The Dockerfile: from stdin, or a path relative to the current directory (not the context).
    let mut extra: Option<(String, Vec<u8>)> = None;
    let rel_dockerfile = match file {
        Some("-") => {
            let name = random_dockerfile_name();
            extra = Some((name.clone(), read_stdin()?));
            name
        }
        Some(f) => {
            let abs = std::path::absolute(f).map_err(|e| prepare(e.to_string()))?;
            let abs = std::fs::canonicalize(&abs).map_err(|e| {
                prepare(format!("unable to evaluate symlinks in Dockerfile path: lstat {}: {e}", abs.display()))
            })?;
            match abs.strip_prefix(&root) {
                Ok(rel) => rel.to_string_lossy().into_owned(),
                Err(_) => {
                    let data = std::fs::read(&abs).map_err(|e| prepare(format!("read {}: {e}", abs.display())))?;
                    let name = random_dockerfile_name();
                    extra = Some((name.clone(), data));
                    name
                }
            }
        }
        None => {
            let upper = root.join("Dockerfile");
            if upper.exists() {
                "Dockerfile".into()
            } else if root.join("dockerfile").exists() {
                "dockerfile".into()
            } else {
                return Err(prepare(format!(
                    "unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
                    upper.display()
                )));
            }
        }
    };
    let ignore_path = root.join(".dockerignore");
    let ignore_text = std::fs::read_to_string(&ignore_path).ok();
    let excludes = ignore_text.as_deref().map(read_ignore_file).unwrap_or_default();
    let excludes = trim_build_files_from_excludes(&excludes, &rel_dockerfile, extra.is_some());
    let pm = if excludes.is_empty() {
        None
    } else {
        Some(PatternMatcher::new(&excludes).map_err(|e| CliError::Other(format!("error checking context: {e}")))?)
    };
    let mut w = Walker { root: &root, pm, tar: tar::Builder::new(Vec::new()), replace_ignore: extra.is_some() };
    w.tar.mode(tar::HeaderMode::Complete);
    w.walk("", &MatchInfo::default())?;
    if let Some((name, data)) = &extra {
        // Added and then hidden from COPY, as the CLI's AddDockerfileToBuildContext does.
        w.add_file(name, data)?;
        let mut ignore = ignore_text.unwrap_or_else(|| ".dockerignore".into());
        ignore.push_str(&format!("\n{name}\n"));
        w.add_file(".dockerignore", ignore.as_bytes())?;
    }
    let body = w.tar.into_inner().map_err(|e| CliError::Other(e.to_string()))?;
    Ok((body, rel_dockerfile))
}

/// `KEY=value` list flags as a map; a bare `KEY` is `""` (labels).
fn key_values(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.clone(), String::new()),
        })
        .collect()
}

/// `--build-arg`: a bare `KEY` takes its value from the environment, else it is null.
fn build_args(items: &[String]) -> BTreeMap<String, Json> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), json!(v)),
            None => (kv.clone(), std::env::var(kv).map(Json::String).unwrap_or(Json::Null)),
        })
        .collect()
}

fn size_flag(name: &str, v: &Option<String>) -> Result<Option<i64>, CliError> {
    match v.as_deref() {
        None | Some("") => Ok(None),
        Some("-1") => Ok(Some(-1)),
        Some(s) => ram_in_bytes(s)
            .map(Some)
            .map_err(|e| CliError::Usage(format!("invalid argument {s:?} for \"{name}\" flag: {e}"))),
    }
}

/// The query of `POST /build` for these flags.
fn query(args: &BuildArgs, dockerfile: &str) -> Result<String, CliError> {
    let mut q: Vec<(&str, String)> = vec![("version", "1".into())];
    for t in &args.tag {
        q.push(("t", t.clone()));
    }
    if !dockerfile.is_empty() {
        q.push(("dockerfile", dockerfile.to_owned()));
    }
    if is_remote(&args.context) {
        q.push(("remote", args.context.clone()));
    }
    if !args.build_arg.is_empty() {
        q.push(("buildargs", serde_json::to_string(&build_args(&args.build_arg)).unwrap_or_default()));
    }
    if !args.label.is_empty() {
        q.push(("labels", serde_json::to_string(&key_values(&args.label)).unwrap_or_default()));
    }
    if !args.cache_from.is_empty() {
        q.push(("cachefrom", serde_json::to_string(&args.cache_from).unwrap_or_default()));
    }
    let flag = |b: bool| if b { "1".to_owned() } else { "0".to_owned() };
    if args.no_cache {
        q.push(("nocache", "1".into()));
    }
    if args.quiet {
        q.push(("q", "1".into()));
    }
    q.push(("rm", flag(args.rm)));
    if args.force_rm {
        q.push(("forcerm", "1".into()));
    }
    if args.pull {
        q.push(("pull", "1".into()));
    }
    for (k, v) in [
        ("target", &args.target),
        ("platform", &args.platform),
        ("cpusetcpus", &args.cpuset_cpus),
        ("cpusetmems", &args.cpuset_mems),
        ("cgroupparent", &args.cgroup_parent),
        ("isolation", &args.isolation),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            q.push((k, v.to_owned()));
        }
    }
    if args.network != "default" && !args.network.is_empty() {
        q.push(("networkmode", args.network.clone()));
    }
    for h in &args.add_host {
        q.push(("extrahosts", h.clone()));
    }
    for s in &args.security_opt {
        q.push(("securityopt", s.clone()));
    }
    if let Some(n) = size_flag("--shm-size", &args.shm_size)? {
        q.push(("shmsize", n.to_string()));
    }
    if let Some(n) = size_flag("--memory", &args.memory)? {
        q.push(("memory", n.to_string()));
    }
    if let Some(n) = size_flag("--memory-swap", &args.memory_swap)? {
        q.push(("memswap", n.to_string()));
    }
    for (k, v) in [("cpushares", args.cpu_shares), ("cpuperiod", args.cpu_period), ("cpuquota", args.cpu_quota)] {
        if let Some(v) = v.filter(|v| *v != 0) {
            q.push((k, v.to_string()));
        }
    }
    if !args.ulimit.is_empty() {
        let mut list = Vec::new();
        for u in &args.ulimit {
            let (name, limits) = u.split_once('=').ok_or_else(|| {
                CliError::Usage(format!("invalid argument {u:?} for \"--ulimit\" flag: invalid ulimit argument"))
            })?;
            let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
            let n = |s: &str| {
                s.parse::<i64>().map_err(|_| CliError::Usage(format!("invalid argument {u:?} for \"--ulimit\" flag")))
            };
            list.push(json!({"Name": name, "Soft": n(soft)?, "Hard": n(hard)?}));
        }
        q.push(("ulimits", Json::Array(list).to_string()));
    }
    if args.squash {
        q.push(("squash", "1".into()));
    }
    Ok(encode_query(&q))
}

/// The daemon's header for `--secret` values (a wharf extension of `POST /build`; see
/// `wharf-api`'s build route).
const SECRETS_HEADER: &str = "X-Wharf-Build-Secrets";

/// `--secret` values, BuildKit's syntax: `id=<id>` with `src=<file>` (also `source=`) or
/// `env=<variable>`; with neither, the variable named like the ID. Returns the header value
/// (base64url of a JSON map ID → base64 content), `None` without secrets.
fn secrets(specs: &[String]) -> Result<Option<String>, CliError> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    if specs.is_empty() {
        return Ok(None);
    }
    let mut map = BTreeMap::new();
    for spec in specs {
        let bad = |why: &str| CliError::Other(format!("invalid secret {spec:?}: {why}"));
        let (mut id, mut src, mut env) = (None, None, None);
        for field in spec.split(',') {
            match field.split_once('=') {
                Some(("id", v)) => id = Some(v.to_owned()),
                Some(("src" | "source", v)) => src = Some(v.to_owned()),
                Some(("env", v)) => env = Some(v.to_owned()),
                Some(("type", "file" | "env")) => {}
                _ => return Err(bad(&format!("unexpected key or value in {field:?}"))),
            }
        }
        let id = id.filter(|i| !i.is_empty()).ok_or_else(|| bad("id is required"))?;
        let content = match (src, env) {
            (Some(path), None) => std::fs::read(&path)
                .map_err(|e| CliError::Other(format!("failed to read secret {id} from {path}: {e}")))?,
            (None, var) => {
                let var = var.unwrap_or_else(|| id.clone());
                std::env::var(&var).map_err(|_| bad(&format!("environment variable {var} is not set")))?.into_bytes()
            }
            (Some(_), Some(_)) => return Err(bad("src and env are exclusive")),
        };
        map.insert(id, STANDARD.encode(content));
    }
    let json = serde_json::to_vec(&map).map_err(|e| CliError::Other(e.to_string()))?;
    Ok(Some(URL_SAFE.encode(json)))
}

pub async fn build(ctx: &Ctx, mut args: BuildArgs) -> Result<(), CliError> {
    let mode = buildprogress::mode(&args.progress, args.quiet)?;
    args.quiet = mode.is_none();
    let (mut body, dockerfile) = context(&args)?;
    if args.compress && !body.is_empty() {
        body = gzip(&body)?;
    }
    let query = query(&args, &dockerfile)?;
    let secrets = secrets(&args.secret)?;
    let registry_config = crate::dockerconfig::load().registry_config();
    let mut headers = vec![("Content-Type", "application/x-tar"), ("X-Registry-Config", registry_config.as_str())];
    if let Some(s) = secrets.as_deref() {
        headers.push((SECRETS_HEADER, s));
    }
    let api = Api::connect(ctx).await?;
    let size = human_size(body.len() as f64);
    let resp = api.raw.send(Method::POST, &format!("/build?{query}"), &headers, api::full(body)).await?;
    let stream = resp.into_body().into_data_stream();
    let (image_id, result) = match mode {
        Some(mode) => {
            let model = buildprogress::show(stream, mode, size).await;
            (model.image_id.unwrap_or_default(), model.error.map_or(Ok(()), Err))
        }
        None => quiet(stream, &size).await,
    };
    if let Err(e) = result {
        eprintln!("{}", e.message);
        return Err(CliError::Status(e.code.filter(|c| *c != 0).unwrap_or(1)));
    }
    if let Some(path) = args.iidfile.as_deref().filter(|p| !p.is_empty()) {
        std::fs::write(path, &image_id)
            .map_err(|e| CliError::Other(format!("failed to write image ID to file: {e}")))?;
    }
    Ok(())
}

/// `-q`: the daemon sends only the image ID, printed on stdout; on failure the progress it
/// buffered goes to stderr, after the line about the context.
async fn quiet<S, E>(stream: S, size: &str) -> (String, Result<(), StreamError>)
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut image_id = String::new();
    let on_aux = |aux: &Json| {
        if let Some(id) = aux.get("ID").and_then(Json::as_str) {
            image_id = id.to_owned();
        }
    };
    let mut r = Renderer::new(Vec::new(), false);
    let res = render_stream(stream, &mut r, on_aux).await;
    let out = r.into_inner();
    match res {
        Ok(()) => {
            let text = String::from_utf8_lossy(&out).into_owned();
            print!("{text}");
            if image_id.is_empty() {
                image_id = text.trim().to_owned();
            }
            (image_id, Ok(()))
        }
        Err(e) => {
            let mut err = std::io::stderr();
            let _ = writeln!(err, "Sending build context to Docker daemon  {size}");
            let _ = err.write_all(&out);
            (image_id, Err(e))
        }
    }
}

pub async fn prune(ctx: &Ctx, args: BuilderPruneArgs) -> Result<(), CliError> {
    let warning = if args.all {
        "WARNING! This will remove all build cache. Are you sure you want to continue?"
    } else {
        "WARNING! This will remove all dangling build cache. Are you sure you want to continue?"
    };
    if !args.force && !super::image::confirm(warning) {
        return Ok(());
    }
    let filters = super::parse_filters(&args.filter)?;
    let mut q: Vec<(&str, String)> = Vec::new();
    if args.all {
        q.push(("all", "1".into()));
    }
    if !filters.is_empty() {
        q.push(("filters", serde_json::to_string(&filters).unwrap_or_default()));
    }
    if let Some(n) = size_flag("--keep-storage", &args.keep_storage)? {
        q.push(("keep-storage", n.to_string()));
    }
    let api = Api::connect(ctx).await?;
    let path = if q.is_empty() { "/build/prune".to_owned() } else { format!("/build/prune?{}", encode_query(&q)) };
    let (_, body) = api.raw.bytes(Method::POST, &path).await?;
    let report: Json = serde_json::from_slice(&body).map_err(|e| CliError::Other(format!("build prune: {e}")))?;
    let deleted: Vec<String> = report
        .get("CachesDeleted")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let mut out = String::new();
    if !deleted.is_empty() {
        out.push_str("Deleted build cache objects:\n");
        for id in &deleted {
            out.push_str(id);
            out.push('\n');
        }
    }
    println!("{out}");
    let reclaimed = report.get("SpaceReclaimed").and_then(Json::as_i64).unwrap_or(0);
    println!("Total reclaimed space: {}", human_size(reclaimed as f64));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(tar: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(tar);
        a.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect()
    }

    fn args(ctx: &str, file: Option<&str>) -> BuildArgs {
        use clap::Parser;
        let mut argv = vec!["wharf".to_owned(), "build".to_owned()];
        if let Some(f) = file {
            argv.push("-f".into());
            argv.push(f.into());
        }
        argv.push(ctx.into());
        match crate::cli::Cli::parse_from(argv).cmd {
            crate::cli::Cmd::Build(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn dockerignore_is_honoured_and_build_files_always_sent() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::write(p.join("Dockerfile"), "FROM busybox\n").unwrap();
        std::fs::write(p.join(".dockerignore"), "*.log\nsecret/\nDockerfile\n.dockerignore\n!keep.log\n").unwrap();
        std::fs::write(p.join("a.log"), "x").unwrap();
        std::fs::write(p.join("keep.log"), "x").unwrap();
        std::fs::create_dir_all(p.join("secret/deep")).unwrap();
        std::fs::write(p.join("secret/deep/key"), "x").unwrap();
        std::fs::create_dir(p.join("src")).unwrap();
        std::fs::write(p.join("src/main.c"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", p.join("link")).unwrap();
        let (tar, df) = context(&args(p.to_str().unwrap(), None)).unwrap();
        assert_eq!(df, "Dockerfile");
        assert_eq!(files(&tar), vec![".dockerignore", "Dockerfile", "keep.log", "link", "src/", "src/main.c"]);
    }

    #[test]
    fn outside_dockerfile_is_added_and_hidden() {
        let d = tempfile::tempdir().unwrap();
        let ctx = d.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        std::fs::write(ctx.join("f"), "x").unwrap();
        let df = d.path().join("Other.Dockerfile");
        std::fs::write(&df, "FROM busybox\n").unwrap();
        let (tar, name) = context(&args(ctx.to_str().unwrap(), Some(df.to_str().unwrap()))).unwrap();
        assert!(name.starts_with(".dockerfile.") && name.len() == ".dockerfile.".len() + 20, "{name}");
        assert_eq!(files(&tar), vec!["f".to_owned(), name.clone(), ".dockerignore".to_owned()]);
        let mut a = tar::Archive::new(&tar[..]);
        let mut ignore = String::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_str() == Some(".dockerignore") {
                e.read_to_string(&mut ignore).unwrap();
            }
        }
        assert_eq!(ignore, format!(".dockerignore\n{name}\n"));
    }

    #[test]
    fn remote_contexts_go_to_the_daemon() {
        let a = args("https://example.com/app.git#main:web", Some("Dockerfile.prod"));
        let (body, df) = context(&a).unwrap();
        assert!(body.is_empty());
        let q = query(&a, &df).unwrap();
        assert!(q.contains("remote=https%3A%2F%2Fexample.com%2Fapp.git%23main%3Aweb"), "{q}");
        assert!(q.contains("dockerfile=Dockerfile.prod"), "{q}");
        assert!(context(&args("/nonexistent/ctx", None)).unwrap_err().to_string().contains("not found"));
    }

    #[test]
    fn query_like_the_cli() {
        let mut a = args(".", None);
        a.tag = vec!["x:1".into(), "y".into()];
        a.build_arg = vec!["A=1".into(), "WHARF_SURELY_UNSET_VAR".into()];
        a.label = vec!["l=1".into()];
        a.no_cache = true;
        a.target = Some("t".into());
        a.memory = Some("8m".into());
        let q = query(&a, "Dockerfile").unwrap();
        assert_eq!(
            q,
            "buildargs=%7B%22A%22%3A%221%22%2C%22WHARF_SURELY_UNSET_VAR%22%3Anull%7D&dockerfile=Dockerfile\
             &labels=%7B%22l%22%3A%221%22%7D&memory=8388608&nocache=1&rm=1&t=x%3A1&t=y&target=t&version=1"
        );
    }

    #[test]
    fn rm_force_rm_and_cache_from() {
        use clap::Parser;
        let argv = ["wharf", "build", "--rm=false", "--force-rm", "--cache-from", "a:1,b", "."];
        let crate::cli::Cmd::Build(a) = crate::cli::Cli::parse_from(argv).cmd else { unreachable!() };
        assert_eq!(query(&a, "").unwrap(), "cachefrom=%5B%22a%3A1%22%2C%22b%22%5D&forcerm=1&rm=0&version=1");
    }

    #[test]
    fn archives_are_recognised() {
        let t = single_file_tar("Dockerfile", b"FROM x\n").unwrap();
        assert!(is_archive(&t));
        assert!(is_archive(&[0x1f, 0x8b, 0x08, 0]));
        assert!(!is_archive(b"FROM busybox\nRUN true\n"));
    }
}
