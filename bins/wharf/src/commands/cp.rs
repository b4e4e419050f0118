//! `cp` in both directions (compat §3.8), with docker's path semantics:
//! - into a container: `HEAD …/archive?path=DEST` to learn whether DEST exists and is a
//!   directory (following a symlink once), then a tar of the source — renamed to DEST's name
//!   when DEST is missing or a file — `PUT` into DEST (a directory) or its parent;
//! - out of a container: `GET …/archive?path=SRC` (after a `HEAD` with `-L`), extracted locally
//!   with the same rules; `-` streams the tar from stdin or to stdout.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use http::Method;
use serde_json::Value as Json;
use tokio::io::AsyncReadExt;

use super::Ctx;
use super::run::encode_query;
use crate::api::{self, Api};
use crate::archive::{self, CopyInfo};
use crate::cli_container::CpArgs;
use crate::client::CliError;
use crate::{term, units};

const MODE_DIR: u64 = 1 << 31;
const MODE_SYMLINK: u64 = 1 << 27;
const MODE_DEVICE: u64 = 1 << 26;
const MODE_IRREGULAR: u64 = 1 << 19;

/// `X-Docker-Container-Path-Stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// A Go `os.FileMode`.
    pub mode: u64,
    pub link_target: String,
}

impl PathStat {
    pub fn is_dir(&self) -> bool {
        self.mode & MODE_DIR != 0
    }
    pub fn is_symlink(&self) -> bool {
        self.mode & MODE_SYMLINK != 0
    }
}

pub fn decode_stat(header: &str) -> Option<PathStat> {
    let raw = base64::engine::general_purpose::STANDARD.decode(header.trim()).ok()?;
    let v: Json = serde_json::from_slice(&raw).ok()?;
    Some(PathStat {
        name: v.get("name")?.as_str()?.to_owned(),
        size: v.get("size").and_then(Json::as_i64).unwrap_or(0),
        mode: v.get("mode").and_then(Json::as_u64).unwrap_or(0),
        link_target: v.get("linkTarget").and_then(Json::as_str).unwrap_or("").to_owned(),
    })
}

/// `splitCpArg`: `container:path`, unless the argument is an absolute or `.`-relative path.
pub fn split_cp_arg(arg: &str) -> (String, String) {
    if arg.starts_with('/') {
        return (String::new(), arg.to_owned());
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.starts_with('.') => (c.to_owned(), p.to_owned()),
        _ => (String::new(), arg.to_owned()),
    }
}

fn archive_path(container: &str, path: &str, extra: &[(&str, String)]) -> String {
    let mut q: Vec<(&str, String)> = vec![("path", path.to_owned())];
    q.extend(extra.iter().cloned());
    format!("/containers/{container}/archive?{}", encode_query(&q))
}

async fn stat_path(api: &Api, container: &str, path: &str) -> Result<PathStat, CliError> {
    let resp = api.raw.send(Method::HEAD, &archive_path(container, path, &[]), &[], api::empty()).await?;
    let h = resp.headers().get("X-Docker-Container-Path-Stat").and_then(|v| v.to_str().ok()).unwrap_or("");
    decode_stat(h).ok_or_else(|| CliError::Other("unable to decode container path stat header".into()))
}

/// Go's `filepath.Join` of a parent and a relative link target.
fn join(parent: &str, rel: &str) -> String {
    crate::opts::mounts::clean_path(&format!("{parent}/{rel}"))
}

/// The terminal progress line of `docker cp` (stderr), until `done` is set.
fn progress(header: &'static str, total: Arc<AtomicI64>) -> Option<tokio::task::JoinHandle<()>> {
    if !term::stderr_is_tty() {
        return None;
    }
    eprint!("\x1b[sPreparing to copy...");
    Some(tokio::spawn(async move {
        eprint!("\x1b[?25l\x1b[u\x1b[2K{header}{}", units::human_size_precision(0.0, 3));
        let mut last = 0;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(75)).await;
            let n = total.load(Ordering::Relaxed);
            if n == last {
                continue;
            }
            eprint!("\x1b[{}G\x1b[0K{}", header.len() + 1, units::human_size_precision(n as f64, 3));
            last = n;
        }
    }))
}

fn end_progress(p: Option<tokio::task::JoinHandle<()>>) {
    if let Some(p) = p {
        p.abort();
        eprint!("\x1b[?25h\x1b[u\x1b[2K");
    }
}

pub async fn cp(ctx: &Ctx, args: CpArgs) -> Result<(), CliError> {
    if args.src.is_empty() {
        return Err(CliError::Other("source can not be empty".into()));
    }
    if args.dst.is_empty() {
        return Err(CliError::Other("destination can not be empty".into()));
    }
    let quiet = args.quiet || !term::stdout_is_tty();
    let (src_c, src_p) = split_cp_arg(&args.src);
    let (dst_c, dst_p) = split_cp_arg(&args.dst);
    match (src_c.is_empty(), dst_c.is_empty()) {
        (false, true) => copy_from(ctx, &src_c, &src_p, &dst_p, args.follow_link, quiet).await,
        (true, false) => copy_to(ctx, &dst_c, &src_p, &dst_p, args.follow_link, args.archive, quiet).await,
        (false, false) => Err(CliError::Other("copying between containers is not supported".into())),
        (true, true) => Err(CliError::Other("must specify at least one container source".into())),
    }
}

/// `ValidateOutputPath`.
fn validate_output_path(path: &str) -> Result<(), CliError> {
    let d = archive::dir(&crate::opts::mounts::clean_path(path));
    if !d.is_empty() && d != "." && !std::path::Path::new(&d).exists() {
        return Err(CliError::Other(format!("invalid output path: directory \"{d}\" does not exist")));
    }
    if let Ok(m) = std::fs::metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        let ft = m.file_type();
        if ft.is_dir() || ft.is_file() {
            return Ok(());
        }
        let what = if ft.is_block_device() || ft.is_char_device() { "got a device" } else { "got an irregular file" };
        return Err(CliError::Other(format!(
            "invalid output path: \"{path}\" must be a directory or a regular file: {what}"
        )));
    }
    Ok(())
}

async fn copy_from(
    ctx: &Ctx,
    container: &str,
    src: &str,
    dst: &str,
    follow: bool,
    quiet: bool,
) -> Result<(), CliError> {
    let dst = if dst == "-" { dst.to_owned() } else { archive::resolve_local_path(dst) };
    validate_output_path(&dst)?;
    let api = Api::connect(ctx).await?;
    let mut src_path = src.to_owned();
    let mut rebase = String::new();
    if follow
        && let Ok(st) = stat_path(&api, container, &src_path).await
        && st.is_symlink()
    {
        let mut target = st.link_target.clone();
        if !target.starts_with('/') {
            let (parent, _) = archive::split_path_dir_entry(&src_path);
            target = join(&parent, &target);
        }
        let (t, r) = archive::rebase_name(&src_path, &target);
        src_path = t;
        rebase = r;
    }
    let resp = api.raw.send(Method::GET, &archive_path(container, &src_path, &[]), &[], api::empty()).await?;
    let stat = resp
        .headers()
        .get("X-Docker-Container-Path-Stat")
        .and_then(|v| v.to_str().ok())
        .and_then(decode_stat)
        .unwrap_or_default();
    let mut body = api::body_stream(resp);
    if dst == "-" {
        let mut out = std::io::stdout().lock();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| CliError::Other(e.to_string()))?;
            out.write_all(&chunk).map_err(|e| CliError::Other(e.to_string()))?;
        }
        let _ = out.flush();
        return Ok(());
    }
    let src_info =
        CopyInfo { path: src_path.clone(), exists: true, is_dir: stat.is_dir(), rebase_name: rebase.clone() };
    // The archive is extracted on a blocking thread fed through a pipe.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(16);
    let total = Arc::new(AtomicI64::new(0));
    let dst2 = dst.clone();
    let extract = tokio::task::spawn_blocking(move || {
        let reader = ChannelReader { rx, buf: Bytes::new() };
        if rebase.is_empty() {
            archive::copy_to(reader, &src_info, &dst2)
        } else {
            // RebaseArchiveEntries(srcBase → rebase) before CopyTo
            let (_, src_base) = archive::split_path_dir_entry(&src_info.path);
            let first = archive::Rebase { old: src_base, new: rebase };
            let dst_info = archive::copy_info_destination_path(&dst2)?;
            let renamed = CopyInfo { rebase_name: String::new(), ..src_info.clone() };
            let mut renamed = renamed;
            renamed.path = format!("{}/{}", archive::split_path_dir_entry(&src_info.path).0, first.new);
            let (dir, second) = archive::prepare_archive_copy(&renamed, &dst_info)?;
            let chain = Chain { first, second: second.unwrap_or_default() };
            archive::untar(reader, std::path::Path::new(&dir), Some(&chain.combined()))
        }
    });
    let bar = if quiet { None } else { progress("Copying from container - ", total.clone()) };
    let mut send_err = None;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => {
                total.fetch_add(c.len() as i64, Ordering::Relaxed);
                if tx.send(c).is_err() {
                    break;
                }
            }
            Err(e) => {
                send_err = Some(e.to_string());
                break;
            }
        }
    }
    drop(tx);
    let res = extract.await.map_err(|e| CliError::Other(e.to_string()))?;
    end_progress(bar);
    if !quiet {
        eprintln!(
            "Successfully copied {} to {dst}",
            units::human_size_precision(total.load(Ordering::Relaxed) as f64, 3)
        );
    }
    if let Some(e) = send_err {
        return Err(CliError::Other(e));
    }
    res.map_err(|e| CliError::Other(e.to_string()))
}

/// Two renames applied in order, expressed as one.
struct Chain {
    first: archive::Rebase,
    second: archive::Rebase,
}

impl Chain {
    fn combined(&self) -> archive::Rebase {
        // The entries are rooted at the first rename's target, which the second renames
        // again: old → second.new when the second rename starts from first.new.
        if self.second.old.is_empty() && self.second.new.is_empty() {
            return self.first.clone();
        }
        if self.second.old == self.first.new {
            archive::Rebase { old: self.first.old.clone(), new: self.second.new.clone() }
        } else {
            self.first.clone()
        }
    }
}

/// Reads the chunks a channel delivers.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Bytes>,
    buf: Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.buf = b,
                Err(_) => return Ok(0),
            }
        }
        let n = self.buf.len().min(out.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        Ok(n)
    }
}

/// Writes into a channel as chunks (the tar producer side of a streaming upload).
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    counter: Arc<AtomicI64>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.counter.fetch_add(data.len() as i64, Ordering::Relaxed);
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(data)))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn receiver_stream(
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}

async fn copy_to(
    ctx: &Ctx,
    container: &str,
    src: &str,
    dst: &str,
    follow: bool,
    copy_uid_gid: bool,
    quiet: bool,
) -> Result<(), CliError> {
    let src = if src == "-" { src.to_owned() } else { archive::resolve_local_path(src) };
    let api = Api::connect(ctx).await?;
    let mut dst_info = CopyInfo { path: dst.to_owned(), ..Default::default() };
    let mut st = stat_path(&api, container, dst).await;
    if let Ok(s) = &st
        && s.is_symlink()
    {
        let mut target = s.link_target.clone();
        if !target.starts_with('/') {
            let (parent, _) = archive::split_path_dir_entry(dst);
            target = join(&parent, &target);
        }
        dst_info.path = target.clone();
        st = stat_path(&api, container, &target).await;
    }
    let mode = st.as_ref().map(|s| s.mode).unwrap_or(0);
    if mode & MODE_DEVICE != 0 {
        return Err(CliError::Other(format!(
            "destination \"{container}:{dst}\" must be a directory or a regular file: got a device"
        )));
    }
    if mode & MODE_IRREGULAR != 0 {
        return Err(CliError::Other(format!(
            "destination \"{container}:{dst}\" must be a directory or a regular file: got an irregular file"
        )));
    }
    if let Ok(s) = &st {
        dst_info.exists = true;
        dst_info.is_dir = s.is_dir();
    }
    let counter = Arc::new(AtomicI64::new(0));
    let (resolved_dst, body) = if src == "-" {
        if !dst_info.is_dir {
            return Err(CliError::Other(format!("destination \"{container}:{dst}\" must be a directory")));
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx.send(Ok(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        break;
                    }
                }
            }
        });
        (dst_info.path.clone(), api::streaming(receiver_stream(rx)))
    } else {
        let src_info = archive::copy_info_source_path(&src, follow).map_err(|e| CliError::Other(e.to_string()))?;
        let (dst_dir, rebase) =
            archive::prepare_archive_copy(&src_info, &dst_info).map_err(|e| CliError::Other(e.to_string()))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
        let c = counter.clone();
        tokio::task::spawn_blocking(move || {
            let w = ChannelWriter { tx: tx.clone(), counter: c };
            if let Err(e) = archive::tar_resource(&src_info, rebase.as_ref(), w) {
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        });
        (dst_dir, api::streaming(receiver_stream(rx)))
    };
    let mut extra: Vec<(&str, String)> = vec![("noOverwriteDirNonDir", "true".into())];
    if copy_uid_gid {
        extra.push(("copyUIDGID", "true".into()));
    }
    let bar = if quiet { None } else { progress("Copying to container - ", counter.clone()) };
    let res = api
        .raw
        .send(Method::PUT, &archive_path(container, &resolved_dst, &extra), &[("Content-Type", "text/plain")], body)
        .await;
    end_progress(bar);
    if !quiet {
        eprintln!(
            "Successfully copied {} to {container}:{}",
            units::human_size_precision(counter.load(Ordering::Relaxed) as f64, 3),
            dst_info.path
        );
    }
    res.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_args() {
        assert_eq!(split_cp_arg("c:/tmp/a"), ("c".into(), "/tmp/a".into()));
        assert_eq!(split_cp_arg("/abs:x"), ("".into(), "/abs:x".into()));
        assert_eq!(split_cp_arg("./rel:x"), ("".into(), "./rel:x".into()));
        assert_eq!(split_cp_arg("file"), ("".into(), "file".into()));
        assert_eq!(split_cp_arg("c:rel"), ("c".into(), "rel".into()));
    }

    #[test]
    fn stat_header() {
        // {"name":"tmp","size":4096,"mode":2147484141,"mtime":"…","linkTarget":""}
        let h = base64::engine::general_purpose::STANDARD
            .encode(r#"{"name":"tmp","size":4096,"mode":2147484141,"mtime":"2026-11-23T02:22:51Z","linkTarget":""}"#);
        let s = decode_stat(&h).unwrap();
        assert!(s.is_dir());
        assert_eq!(s.mode & 0o777, 0o755);
        let h = base64::engine::general_purpose::STANDARD
            .encode(r#"{"name":"l","size":1,"mode":134218239,"mtime":"x","linkTarget":"/etc"}"#);
        assert!(decode_stat(&h).unwrap().is_symlink());
    }

    #[test]
    fn chained_renames() {
        let c = Chain {
            first: archive::Rebase { old: "target".into(), new: "link".into() },
            second: archive::Rebase { old: "link".into(), new: "out".into() },
        };
        assert_eq!(c.combined().apply("target/a"), "out/a");
    }
}
