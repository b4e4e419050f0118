//! `ADD <http(s) URL>`: download into a temp directory, as the legacy builder does.
//!
//! The file is named after the URL path's last component, else the `Content-Disposition`
//! filename, else it has no name (the caller uses `__unnamed__` and requires a file
//! destination). Its mtime is the `Last-Modified` time when the server sends one (else the
//! epoch), so the content hash is stable across downloads. `--checksum=sha256:<hex>` is
//! verified before the file is used. Downloads are never extracted.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256, Sha512};
use tokio_util::sync::CancellationToken;
use wharf_types::{Classify, Digest, ErrorKind};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Request(String),
    /// Docker's words: the status line, then the server's answer (trimmed), which usually
    /// says what is wrong.
    #[error("failed to GET {url} with status {status}: {body}")]
    Status { url: String, code: u16, status: String, body: String },
    #[error("write download of {url} to {path}")]
    Write {
        url: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid checksum digest format")]
    BadChecksum(String),
    #[error("digest mismatch {actual}: {expected}")]
    Mismatch { expected: String, actual: String },
    #[error("Build cancelled")]
    Cancelled,
}

impl Classify for FetchError {
    fn kind(&self) -> ErrorKind {
        match self {
            FetchError::BadChecksum(_) | FetchError::Mismatch { .. } => ErrorKind::InvalidArgument,
            FetchError::Status { code, .. } => match code {
                400 => ErrorKind::InvalidArgument,
                401 => ErrorKind::Unauthorized,
                403 => ErrorKind::Forbidden,
                404 => ErrorKind::NotFound,
                _ => ErrorKind::Internal,
            },
            FetchError::Cancelled => ErrorKind::Cancelled,
            _ => ErrorKind::Internal,
        }
    }
}

/// How much of an error answer's body goes into the error message.
const ERROR_BODY_MAX: u64 = 4096;

/// Whether a source is a URL the builder downloads (`http://` or `https://`).
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Whether a source is a git URL (`git://`, `git@…`, `…​.git` over http(s), `github.com/`).
pub fn is_git_url(s: &str) -> bool {
    s.starts_with("git://")
        || s.starts_with("git@")
        || s.starts_with("github.com/")
        || (is_url(s) && (s.ends_with(".git") || s.contains(".git#")))
}

/// A downloaded file.
#[derive(Debug, Clone)]
pub struct Download {
    /// Where it is (inside the directory given).
    pub path: PathBuf,
    /// Its name from the URL or `Content-Disposition`; `None` when neither gave one.
    pub filename: Option<String>,
}

fn filename_from(url_path: &str, disposition: Option<&str>) -> Option<String> {
    if !url_path.is_empty() && !url_path.ends_with('/') {
        let base = url_path.rsplit('/').next().unwrap_or_default();
        if !base.is_empty() {
            return Some(base.to_string());
        }
    }
    let d = disposition?;
    for part in d.split(';') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("filename=") {
            let v = v.trim_matches('"');
            if !v.is_empty() && !v.ends_with('/') {
                return v.rsplit('/').next().map(str::to_string);
            }
        }
    }
    None
}

/// Bytes between two progress reports (Docker's progress reader reports every 512 KiB).
const PROGRESS_EVERY: u64 = 512 * 1024;

/// Downloads `url` into `dir` (which exists). Blocking; checks `cancel` between chunks.
/// `progress` is told the bytes received so far and the size the server announced, every
/// 512 KiB and at the end.
pub fn download(
    url: &str,
    dir: &Path,
    checksum: Option<&str>,
    cancel: &CancellationToken,
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<Download, FetchError> {
    let expected =
        checksum.map(|c| c.parse::<Digest>().map_err(|_| FetchError::BadChecksum(c.to_string()))).transpose()?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let resp = agent.get(url).call().map_err(|e| FetchError::Request(format!("Get \"{url}\": {e}")))?;
    let status = resp.status();
    if status.as_u16() >= 400 {
        // At most a page of the answer: enough for the server's reason, bounded for the stream.
        let mut body = Vec::new();
        let read = resp.into_body().into_reader().take(ERROR_BODY_MAX).read_to_end(&mut body);
        let body = match read {
            Ok(_) => String::from_utf8_lossy(&body).trim().to_string(),
            Err(_) => "error reading body".to_string(),
        };
        return Err(FetchError::Status {
            url: url.to_string(),
            code: status.as_u16(),
            status: format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("")),
            body,
        });
    }
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let total = header("content-length").and_then(|v| v.parse::<u64>().ok());
    let disposition = header("content-disposition");
    let last_modified = header("last-modified");
    let url_path = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("")
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    let filename = filename_from(url_path, disposition.as_deref());
    let path = dir.join(filename.as_deref().unwrap_or("__unnamed__"));
    let werr = |source| FetchError::Write { url: url.to_string(), path: path.clone(), source };
    // 0600, as Docker creates the download (and then copies it with its mode).
    let mut out = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(werr)?;
    let mut body = resp.into_body().into_reader();
    let mut h256 = Sha256::new();
    let mut h512 = Sha512::new();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut received, mut reported) = (0u64, 0u64);
    loop {
        if cancel.is_cancelled() {
            return Err(FetchError::Cancelled);
        }
        let n = body.read(&mut buf).map_err(|e| FetchError::Request(format!("Get \"{url}\": {e}")))?;
        if n == 0 {
            break;
        }
        h256.update(&buf[..n]);
        h512.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(werr)?;
        received += n as u64;
        if received - reported >= PROGRESS_EVERY {
            progress(received, total);
            reported = received;
        }
    }
    progress(received, total);
    out.sync_all().map_err(werr)?;
    if let Some(exp) = expected {
        let actual = match exp.algorithm() {
            wharf_types::digest::Algorithm::Sha256 => {
                format!("sha256:{}", hex::encode(h256.finalize()))
            }
            wharf_types::digest::Algorithm::Sha512 => {
                format!("sha512:{}", hex::encode(h512.finalize()))
            }
        };
        if actual != exp.to_string() {
            return Err(FetchError::Mismatch { expected: exp.to_string(), actual });
        }
    }
    let mtime = last_modified.as_deref().and_then(parse_http_date).unwrap_or(SystemTime::UNIX_EPOCH);
    out.set_modified(mtime).map_err(werr)?;
    Ok(Download { path, filename })
}

/// An RFC 7231 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, mon, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let mon = months.iter().position(|m| m == mon)? as i64 + 1;
    let hms: Vec<i64> = time.split(':').filter_map(|x| x.parse().ok()).collect();
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mon <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mon + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    u64::try_from(secs).ok().map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        assert_eq!(filename_from("/a/b.tar.gz", None).as_deref(), Some("b.tar.gz"));
        assert_eq!(filename_from("/", Some("attachment; filename=\"x.txt\"")).as_deref(), Some("x.txt"));
        assert_eq!(filename_from("/", None), None);
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert!(is_url("https://x/y"));
        assert!(is_git_url("https://github.com/a/b.git"));
        assert!(!is_git_url("https://x/y.tar"));
    }

    #[test]
    fn error_answers_in_dockers_words() {
        use std::io::Write;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = "  not here\n";
            let head = format!("HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(body.as_bytes()).unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{port}/a/f.txt");
        let e = download(&url, dir.path(), None, &CancellationToken::new(), &|_, _| {}).unwrap_err();
        server.join().unwrap();
        assert_eq!(e.to_string(), format!("failed to GET {url} with status 404 Not Found: not here"));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(!dir.path().join("f.txt").exists());
    }
}
