//! The daemon connection the container commands use: version negotiation like the docker CLI
//! (`HEAD /_ping`, then the lower of the daemon's `Api-Version` and ours), a bollard client at
//! that version, and a raw HTTP/1.1 client (hyper) for what bollard does not do the docker way:
//! - hijacked attach and exec (`101`, then half-close: shutdown(SHUT_WR) on stdin EOF while
//!   output keeps flowing) — see [`Raw::hijack`];
//! - `/wait`, which must return as soon as the response headers arrive (the CLI starts the
//!   container only then) — see [`Raw::wait`];
//! - byte streams demultiplexed by `Config.Tty` rather than by sniffing (logs), raw JSON in the
//!   daemon's key order (inspect), archive heads.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bollard::{ClientVersion, Docker};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::client::CliError;
use crate::commands::Ctx;

/// The highest API version we speak (bollard's).
pub const MAX_API_VERSION: (u16, u16) = (1, 53);

/// Long enough for streams that stay open (`logs -f`, `attach`, `events`).
const TIMEOUT_SECS: u64 = 60 * 60 * 24 * 365;

/// A negotiated connection to the daemon.
pub struct Api {
    pub docker: Docker,
    pub raw: Raw,
    pub host: String,
    /// The daemon's `Ostype` (`linux` unless it says otherwise).
    pub os_type: String,
}

impl Api {
    /// Pings the daemon (as the docker CLI does before its first request) and picks the version.
    pub async fn connect(ctx: &Ctx) -> Result<Self, CliError> {
        let endpoint = Endpoint::parse(&ctx.host)?;
        let mut raw = Raw { endpoint, version: None, host: ctx.host.clone() };
        let ping = raw.ping().await?;
        let server = ping.api_version.as_deref().map_or((1, 24), parse_version);
        // DOCKER_API_VERSION pins the version (the docker CLI still pings first)
        let pinned = std::env::var("DOCKER_API_VERSION").ok().filter(|v| !v.is_empty()).map(|v| parse_version(&v));
        let version = match pinned {
            Some(v) => v,
            None if server < MAX_API_VERSION => server,
            None => MAX_API_VERSION,
        };
        raw.version = Some(format!("{}.{}", version.0, version.1));
        let cv = ClientVersion { major_version: version.0 as usize, minor_version: version.1 as usize };
        let docker = match &raw.endpoint {
            Endpoint::Unix(p) => Docker::connect_with_unix(&p.to_string_lossy(), TIMEOUT_SECS, &cv),
            Endpoint::Tcp(a) => Docker::connect_with_http(&format!("http://{a}"), TIMEOUT_SECS, &cv),
        }
        .map_err(|e| CliError::from_bollard(e, &ctx.host))?;
        Ok(Self { docker, raw, host: ctx.host.clone(), os_type: ping.os_type.unwrap_or_else(|| "linux".into()) })
    }

    /// The negotiated version as `(major, minor)`.
    pub fn version(&self) -> (u16, u16) {
        self.raw.version.as_deref().map_or((1, 24), parse_version)
    }

    /// Maps a bollard error to docker's message.
    pub fn err(&self, e: bollard::errors::Error) -> CliError {
        CliError::from_bollard(e, &self.host)
    }
}

fn parse_version(s: &str) -> (u16, u16) {
    let (a, b) = s.split_once('.').unwrap_or((s, "0"));
    (a.trim().parse().unwrap_or(1), b.trim().parse().unwrap_or(0))
}

/// What `/_ping` told us.
pub struct Ping {
    pub api_version: Option<String>,
    pub os_type: Option<String>,
}

#[derive(Clone, Debug)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

impl Endpoint {
    pub fn parse(host: &str) -> Result<Self, CliError> {
        if let Some(p) = host.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(PathBuf::from(p)));
        }
        if host.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(host)));
        }
        for scheme in ["tcp://", "http://"] {
            if let Some(a) = host.strip_prefix(scheme) {
                return Ok(Endpoint::Tcp(a.trim_end_matches('/').to_owned()));
            }
        }
        Err(CliError::Usage(format!("invalid -H address {host:?}: use unix:///path or tcp://host:port")))
    }
}

/// A unix or TCP stream.
pub enum Io {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Unix(s) => Pin::new(s).poll_flush(cx),
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }
    /// Half-close: `shutdown(SHUT_WR)`; reading continues.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

pub type Body = BoxBody<Bytes, std::io::Error>;

/// A request body from bytes.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// An empty request body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A streaming (chunked) request body.
pub fn streaming(s: impl Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static) -> Body {
    BodyExt::boxed(http_body_util::StreamBody::new(s.map(|r| r.map(hyper::body::Frame::data))))
}

/// The raw HTTP client: one connection per request (hijacked connections are always fresh).
#[derive(Clone)]
pub struct Raw {
    endpoint: Endpoint,
    /// `None` before negotiation: paths are then unversioned.
    version: Option<String>,
    host: String,
}

/// An upgraded (hijacked) connection.
pub struct Hijacked {
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
    pub writer: Box<dyn AsyncWrite + Send + Unpin>,
}

/// Bytes already read past the response head, then the stream.
struct Prefixed<R> {
    prefix: Bytes,
    inner: R,
}

impl<R: AsyncRead + Unpin> AsyncRead for Prefixed<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl Raw {
    async fn connect(&self) -> Result<Io, CliError> {
        let res = match &self.endpoint {
            Endpoint::Unix(p) => UnixStream::connect(p).await.map(Io::Unix),
            Endpoint::Tcp(a) => TcpStream::connect(a).await.map(Io::Tcp),
        };
        res.map_err(|e| CliError::Connect { host: self.host.clone(), detail: e.to_string() })
    }

    /// `/v1.53/containers/json` from `/containers/json`.
    pub fn path(&self, p: &str) -> String {
        match &self.version {
            Some(v) => format!("/v{v}{p}"),
            None => p.to_owned(),
        }
    }

    fn request(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Body) -> Request<Body> {
        let mut b = Request::builder()
            .method(method)
            .uri(self.path(path))
            .header("Host", "api.moby.localhost")
            .header("User-Agent", concat!("Wharf-Client/", env!("CARGO_PKG_VERSION"), " (linux)"));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        // The builder only fails on invalid header values, which callers never pass.
        b.body(body).unwrap_or_else(|_| Request::new(empty()))
    }

    async fn send_on(&self, io: Io, req: Request<Body>, upgrades: bool) -> Result<Response<Incoming>, CliError> {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| CliError::Other(format!("error during connect: {e}")))?;
        if upgrades {
            tokio::spawn(async move {
                let _ = conn.with_upgrades().await;
            });
        } else {
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
        sender.send_request(req).await.map_err(|e| CliError::Other(format!("error during connect: {e}")))
    }

    /// Sends a request; any status but 2xx, 101 and 304 becomes docker's error.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<Response<Incoming>, CliError> {
        let io = self.connect().await?;
        let req = self.request(method, path, headers, body);
        let resp = self.send_on(io, req, false).await?;
        check(resp, &self.path(path)).await
    }

    /// GET (or other) with the whole body read.
    pub async fn bytes(&self, method: Method, path: &str) -> Result<(HeaderMap, Bytes), CliError> {
        let resp = self.send(method, path, &[], empty()).await?;
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.map_err(|e| CliError::Other(e.to_string()))?.to_bytes();
        Ok((headers, body))
    }

    /// `HEAD /_ping`, falling back to `GET /_ping` when HEAD is not answered with 200/500.
    pub async fn ping(&self) -> Result<Ping, CliError> {
        let mut last = None;
        for method in [Method::HEAD, Method::GET] {
            let io = self.connect().await?;
            let req = self.request(method, "/_ping", &[], empty());
            let resp = self.send_on(io, req, false).await?;
            let st = resp.status();
            let h = resp.headers();
            let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let ping = Ping { api_version: get("Api-Version"), os_type: get("Ostype") };
            if st == StatusCode::OK || st == StatusCode::INTERNAL_SERVER_ERROR {
                return Ok(ping);
            }
            last = Some(ping);
        }
        Ok(last.unwrap_or(Ping { api_version: None, os_type: None }))
    }

    /// A hijacked request (`Connection: Upgrade`, `Upgrade: tcp`); the daemon must answer 101.
    pub async fn hijack(&self, path: &str, content_type: &str, body: Bytes) -> Result<Hijacked, CliError> {
        let io = self.connect().await?;
        let len = body.len().to_string();
        let req = self.request(
            Method::POST,
            path,
            &[("Content-Type", content_type), ("Connection", "Upgrade"), ("Upgrade", "tcp"), ("Content-Length", &len)],
            full(body),
        );
        let resp = self.send_on(io, req, true).await?;
        let resp = check(resp, &self.path(path)).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(CliError::Other(format!("unable to upgrade to tcp, received {}", resp.status().as_u16())));
        }
        // The 101's Content-Type (raw or multiplexed) is not used: like docker, we demultiplex
        // by the container's (or exec's) Tty setting.
        let upgraded =
            hyper::upgrade::on(resp).await.map_err(|e| CliError::Other(format!("unable to upgrade to tcp: {e}")))?;
        match upgraded.downcast::<TokioIo<Io>>() {
            Ok(parts) => {
                let (r, w) = tokio::io::split(parts.io.into_inner());
                Ok(Hijacked { reader: Box::new(Prefixed { prefix: parts.read_buf, inner: r }), writer: Box::new(w) })
            }
            Err(upgraded) => {
                let (r, w) = tokio::io::split(TokioIo::new(upgraded));
                Ok(Hijacked { reader: Box::new(r), writer: Box::new(w) })
            }
        }
    }

    /// `POST /containers/{id}/wait?condition=…`: returns once the daemon has answered with its
    /// headers; the handle then yields the exit status (docker's `ContainerWait`).
    pub async fn wait(&self, id: &str, condition: Option<&str>) -> Result<WaitHandle, CliError> {
        let path = match condition {
            Some(c) => format!("/containers/{id}/wait?condition={c}"),
            None => format!("/containers/{id}/wait"),
        };
        let resp = self.send(Method::POST, &path, &[], empty()).await?;
        let task = tokio::spawn(async move {
            let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            let v: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| format!("error waiting for container: {e}"))?;
            Ok(WaitResult {
                status_code: v.get("StatusCode").and_then(|c| c.as_i64()).unwrap_or(-1),
                error: v
                    .pointer("/Error/Message")
                    .and_then(|m| m.as_str())
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned),
            })
        });
        Ok(WaitHandle { task })
    }
}

/// What `/wait` reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitResult {
    pub status_code: i64,
    pub error: Option<String>,
}

/// A pending `/wait`. Dropping it closes the connection (the daemon sees the client go away).
pub struct WaitHandle {
    task: tokio::task::JoinHandle<Result<WaitResult, String>>,
}

impl WaitHandle {
    pub async fn result(mut self) -> Result<WaitResult, String> {
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Drop for WaitHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Turns an error status into docker's `Error response from daemon: …`.
async fn check(resp: Response<Incoming>, url: &str) -> Result<Response<Incoming>, CliError> {
    let st = resp.status();
    if st.is_success() || st == StatusCode::NOT_MODIFIED || st == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(resp);
    }
    let is_json = resp
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let message = error_message(st, &body, is_json, url);
    Err(CliError::Daemon { status: st.as_u16(), message })
}

/// The text docker shows for an error response.
pub fn error_message(st: StatusCode, body: &[u8], is_json: bool, url: &str) -> String {
    if body.is_empty() {
        return format!(
            "request returned {} for API route and version {url}, check if the server supports the requested API version",
            st.canonical_reason().unwrap_or("")
        );
    }
    if is_json
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(m) = v.get("message").and_then(|m| m.as_str())
    {
        return m.to_owned();
    }
    String::from_utf8_lossy(body).trim().to_owned()
}

/// A response body as a byte stream.
pub fn body_stream(resp: Response<Incoming>) -> impl Stream<Item = Result<Bytes, hyper::Error>> + Unpin {
    http_body_util::BodyDataStream::new(resp.into_body())
}

/// Writes output from a hijacked or logs stream: raw for TTYs, demultiplexed otherwise
/// (docker's `stdcopy.StdCopy`). Frame type 3 ends with `error from daemon in stream: …`.
pub struct Demux {
    buf: Vec<u8>,
}

/// Where a demultiplexed frame goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Stdout(&'a [u8]),
    Stderr(&'a [u8]),
    SystemErr(&'a [u8]),
}

impl Default for Demux {
    fn default() -> Self {
        Self::new()
    }
}

impl Demux {
    pub fn new() -> Self {
        Self { buf: Vec::new() }
    }

    /// Feeds bytes; calls `out` for each complete frame.
    pub fn feed(&mut self, data: &[u8], mut out: impl FnMut(Frame<'_>) -> std::io::Result<()>) -> Result<(), String> {
        self.buf.extend_from_slice(data);
        let mut off = 0;
        while self.buf.len() - off >= 8 {
            let h = &self.buf[off..off + 8];
            let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
            if self.buf.len() - off - 8 < len {
                break;
            }
            let kind = h[0];
            let payload = &self.buf[off + 8..off + 8 + len];
            let frame = match kind {
                0 | 1 => Frame::Stdout(payload),
                2 => Frame::Stderr(payload),
                3 => Frame::SystemErr(payload),
                k => {
                    return Err(format!("Unrecognized input header: {k}"));
                }
            };
            if let Frame::SystemErr(p) = frame {
                return Err(format!("error from daemon in stream: {}", String::from_utf8_lossy(p)));
            }
            out(frame).map_err(|e| e.to_string())?;
            off += 8 + len;
        }
        self.buf.drain(..off);
        Ok(())
    }
}

/// Copies a stream to stdout (TTY) or demultiplexes it to stdout/stderr.
pub async fn copy_output(
    mut reader: impl AsyncRead + Unpin,
    tty: bool,
    stdout: bool,
    stderr: bool,
) -> Result<(), String> {
    use std::io::Write;
    use tokio::io::AsyncReadExt;
    let mut demux = Demux::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        if tty {
            if stdout || stderr {
                let mut o = std::io::stdout().lock();
                o.write_all(&buf[..n]).map_err(|e| e.to_string())?;
                o.flush().map_err(|e| e.to_string())?;
            }
            continue;
        }
        let mut sink = FrameSink::default();
        demux.feed(&buf[..n], |f| match f {
            Frame::Stdout(p) if stdout => sink.stdout(p),
            Frame::Stderr(p) if stderr => sink.stderr(p),
            _ => Ok(()),
        })?;
        sink.flush().map_err(|e| e.to_string())?;
    }
}

/// Demultiplexed output of one network read: frames of the same stream are gathered and
/// written with one syscall (a log line per frame made `logs` syscall-bound); switching
/// streams writes what the other one holds first, so the interleaving is kept.
#[derive(Default)]
pub struct FrameSink {
    buf: Vec<u8>,
    to_stderr: bool,
}

impl FrameSink {
    pub fn stdout(&mut self, p: &[u8]) -> std::io::Result<()> {
        self.push(false, p)
    }

    pub fn stderr(&mut self, p: &[u8]) -> std::io::Result<()> {
        self.push(true, p)
    }

    fn push(&mut self, to_stderr: bool, p: &[u8]) -> std::io::Result<()> {
        if to_stderr != self.to_stderr {
            self.flush()?;
            self.to_stderr = to_stderr;
        }
        self.buf.extend_from_slice(p);
        Ok(())
    }

    /// Writes and flushes what is held.
    pub fn flush(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.to_stderr {
            let mut o = std::io::stderr().lock();
            o.write_all(&self.buf)?;
            o.flush()?;
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(&self.buf)?;
            o.flush()?;
        }
        self.buf.clear();
        Ok(())
    }
}

/// Closes our sending side (stdin EOF) and keeps the connection open for reading.
pub async fn close_write(w: &mut (dyn AsyncWrite + Send + Unpin)) {
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demux_splits_frames_across_chunks() {
        let mut d = Demux::new();
        let mut got: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut sink = |f: Frame<'_>| {
            match f {
                Frame::Stdout(p) => got.push((1, p.to_vec())),
                Frame::Stderr(p) => got.push((2, p.to_vec())),
                Frame::SystemErr(_) => {}
            }
            Ok(())
        };
        let data = b"\x01\0\0\0\0\0\0\x0cline1\nline2\n\x02\0\0\0\0\0\0\x04err\n";
        d.feed(&data[..5], &mut sink).unwrap();
        d.feed(&data[5..23], &mut sink).unwrap();
        d.feed(&data[23..], &mut sink).unwrap();
        assert_eq!(got, vec![(1, b"line1\nline2\n".to_vec()), (2, b"err\n".to_vec())]);
        let err = Demux::new().feed(b"\x03\0\0\0\0\0\0\x04boom", |_| Ok(())).unwrap_err();
        assert_eq!(err, "error from daemon in stream: boom");
    }

    #[test]
    fn error_messages_like_the_go_client() {
        assert_eq!(
            error_message(
                StatusCode::NOT_FOUND,
                br#"{"message":"No such container: x"}"#,
                true,
                "/v1.53/containers/x/json"
            ),
            "No such container: x"
        );
        assert_eq!(
            error_message(StatusCode::NOT_FOUND, b"", true, "/v1.53/x"),
            "request returned Not Found for API route and version /v1.53/x, check if the server supports the requested API version"
        );
        assert_eq!(error_message(StatusCode::INTERNAL_SERVER_ERROR, b"oops\n", false, "/x"), "oops");
    }

    #[test]
    fn endpoints() {
        assert!(matches!(
            Endpoint::parse("unix:///run/x.sock").unwrap(),
            Endpoint::Unix(p) if p == std::path::Path::new("/run/x.sock")
        ));
        assert!(matches!(
            Endpoint::parse("tcp://127.0.0.1:2375").unwrap(),
            Endpoint::Tcp(a) if a == "127.0.0.1:2375"
        ));
        assert!(Endpoint::parse("ssh://x").is_err());
        assert_eq!(parse_version("1.41"), (1, 41));
    }
}
