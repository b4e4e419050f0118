//! The daemon's async client of `wharf-shim`.
//!
//! Lifecycle: [`spawn`] writes `shim.json`, launches the shim and waits for its ready line (the
//! container is then *created*); [`ShimClient::start`] runs it; [`ShimClient::wait`] resolves
//! when it exits (immediately, from `exit.json`, if it already has — even if the shim is gone);
//! [`ShimClient::shutdown`] lets the shim go once the daemon recorded the exit. After a daemon
//! restart, [`ShimClient::connect`] finds the shim again from the state dir alone.
//!
//! Streams: [`ShimClient::attach`] and [`ShimClient::exec`] return an [`OutputStream`] (a
//! `Stream` of `(StreamKind, Bytes)`) and a [`StdinWriter`] (`AsyncWrite`; `shutdown()` is the
//! stdin half-close). Framing is the protocol module's (Docker's 8-byte header).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;

use super::error::ShimError;
use super::protocol::{
    CONFIG_FILE, EXIT_FILE, ExitStatus, FRAME_CLOSE_STDIN, FRAME_EXIT, FRAME_RESIZE, FRAME_STDERR, FRAME_STDIN,
    FRAME_STDOUT, MAX_FRAME, Ready, Request, Response, SOCKET_FILE, ShimConfig, ShimState, frame_header, parse_header,
};
use crate::logs::StreamKind;

/// A handle on one container's shim. Cheap to clone; every call opens its own connection.
#[derive(Debug, Clone)]
pub struct ShimClient {
    state_dir: PathBuf,
    socket: PathBuf,
    id: String,
    pid: i32,
    shim_pid: i32,
}

/// What to attach to.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// An attached client: output frames and (if requested and the container has stdin) a writer.
pub struct AttachStream {
    pub output: OutputStream,
    pub stdin: Option<StdinWriter>,
}

/// A process to run in the running container.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Unique among the container's live execs; names the shim's files for it.
    pub exec_id: String,
    pub process: oci_spec::runtime::Process,
    pub tty: bool,
    pub stdin: bool,
}

/// A started exec: its pid, I/O, and its exit status (delivered after its output ended).
pub struct ExecHandle {
    pub pid: i32,
    pub output: OutputStream,
    pub stdin: Option<StdinWriter>,
    exit: oneshot::Receiver<ExitStatus>,
    client: ShimClient,
    exec_id: String,
}

impl ExecHandle {
    /// Resolves with the exit status once [`Self::output`] has been read to its end (the status
    /// is the last frame on the same connection).
    pub async fn wait(self) -> Result<ExitStatus, ShimError> {
        self.exit.await.map_err(|_| ShimError::Protocol {
            path: self.client.socket.clone(),
            detail: "exec stream ended without an exit status".into(),
        })
    }

    /// Resizes the exec's pty.
    pub async fn resize(&self, rows: u16, cols: u16) -> Result<(), ShimError> {
        self.client.resize_exec(Some(self.exec_id.clone()), rows, cols).await
    }

    /// Splits into parts so output, stdin and the exit can be driven by different tasks.
    pub fn into_parts(self) -> (OutputStream, Option<StdinWriter>, oneshot::Receiver<ExitStatus>) {
        (self.output, self.stdin, self.exit)
    }
}

/// Launches a shim for a new container and waits until `<runtime> create` finished.
/// The state dir is created; `config.state_dir` must be short enough for a unix socket path.
pub async fn spawn(shim_binary: &Path, config: ShimConfig) -> Result<ShimClient, ShimError> {
    let dir = config.state_dir.clone();
    let prep = |source| ShimError::PrepareStateDir { path: dir.clone(), source };
    tokio::fs::create_dir_all(&dir).await.map_err(prep)?;
    let raw = serde_json::to_vec_pretty(&config).map_err(|e| prep(io::Error::other(e)))?;
    let tmp = dir.join(format!("{CONFIG_FILE}.tmp"));
    tokio::fs::write(&tmp, &raw).await.map_err(prep)?;
    tokio::fs::rename(&tmp, dir.join(CONFIG_FILE)).await.map_err(prep)?;
    let _ = tokio::fs::remove_file(dir.join(EXIT_FILE)).await;

    let mut child = tokio::process::Command::new(shim_binary)
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ShimError::Launch { binary: shim_binary.to_path_buf(), source })?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    // The first process exits at once after forking the real shim.
    let _ = child.wait().await;
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line).await;
    let handshake = |detail: String| ShimError::Handshake { id: config.id.clone(), detail };
    if line.trim().is_empty() {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err).await;
        let saved = tokio::fs::read_to_string(dir.join("shim.err")).await.unwrap_or_default();
        return Err(handshake(format!("no ready line ({}{})", err.trim(), saved.trim())));
    }
    let ready: Ready =
        serde_json::from_str(line.trim()).map_err(|e| handshake(format!("bad ready line {line:?}: {e}")))?;
    if !ready.ok {
        return Err(ShimError::Create { id: config.id.clone(), message: ready.error.unwrap_or_default() });
    }
    Ok(ShimClient {
        socket: dir.join(SOCKET_FILE),
        state_dir: dir,
        id: config.id,
        pid: ready.pid,
        shim_pid: ready.shim_pid,
    })
}

impl ShimClient {
    /// Reconnects to the shim of the container whose state dir is `state_dir` (after a daemon
    /// restart). Fails with [`ShimError::Connect`] if the shim is gone; then
    /// [`ShimClient::exit_status_in`] tells whether the container's exit was recorded.
    pub async fn connect(state_dir: &Path) -> Result<ShimClient, ShimError> {
        let raw = tokio::fs::read(state_dir.join(CONFIG_FILE))
            .await
            .map_err(|source| ShimError::Connect { path: state_dir.join(CONFIG_FILE), source })?;
        let config: ShimConfig = serde_json::from_slice(&raw)
            .map_err(|e| ShimError::Protocol { path: state_dir.join(CONFIG_FILE), detail: e.to_string() })?;
        let mut client = ShimClient {
            state_dir: state_dir.to_path_buf(),
            socket: state_dir.join(SOCKET_FILE),
            id: config.id,
            pid: 0,
            shim_pid: 0,
        };
        let st = client.state().await?;
        client.pid = st.pid;
        client.shim_pid = st.shim_pid;
        Ok(client)
    }

    /// The exit status recorded in a state dir, if any (readable without a shim).
    pub async fn exit_status_in(state_dir: &Path) -> Result<Option<ExitStatus>, ShimError> {
        let path = state_dir.join(EXIT_FILE);
        match tokio::fs::read(&path).await {
            Ok(raw) => {
                serde_json::from_slice(&raw).map(Some).map_err(|e| ShimError::Protocol { path, detail: e.to_string() })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ShimError::ExitFile { path, source }),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    /// The container's init pid as of spawn/connect.
    pub fn pid(&self) -> i32 {
        self.pid
    }
    pub fn shim_pid(&self) -> i32 {
        self.shim_pid
    }
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    async fn open(&self, req: &Request) -> Result<(BufReader<OwnedReadHalf>, OwnedWriteHalf, Response), ShimError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|source| ShimError::Connect { path: self.socket.clone(), source })?;
        let (r, mut w) = stream.into_split();
        let io_err = |source| ShimError::Io { path: self.socket.clone(), source };
        let mut line = serde_json::to_vec(req).map_err(|e| io_err(io::Error::other(e)))?;
        line.push(b'\n');
        w.write_all(&line).await.map_err(io_err)?;
        let mut r = BufReader::new(r);
        let mut answer = String::new();
        r.read_line(&mut answer).await.map_err(io_err)?;
        if answer.is_empty() {
            return Err(ShimError::Protocol {
                path: self.socket.clone(),
                detail: "connection closed without an answer".into(),
            });
        }
        let resp: Response = serde_json::from_str(answer.trim())
            .map_err(|e| ShimError::Protocol { path: self.socket.clone(), detail: e.to_string() })?;
        Ok((r, w, resp))
    }

    async fn request(&self, op: &'static str, req: Request) -> Result<Response, ShimError> {
        let (_, _, resp) = self.open(&req).await?;
        if resp.ok { Ok(resp) } else { Err(ShimError::Rejected { op, message: resp.error.unwrap_or_default() }) }
    }

    /// Runs the created container's process. Fails with the runtime's message verbatim.
    pub async fn start(&self) -> Result<(), ShimError> {
        let (_, _, resp) = self.open(&Request::Start).await?;
        if resp.ok {
            Ok(())
        } else {
            Err(ShimError::Start { id: self.id.clone(), message: resp.error.unwrap_or_default() })
        }
    }

    pub async fn state(&self) -> Result<ShimState, ShimError> {
        let resp = self.request("state", Request::State).await?;
        resp.state.ok_or_else(|| ShimError::Protocol { path: self.socket.clone(), detail: "state missing".into() })
    }

    /// Signals the container's init process.
    pub async fn kill(&self, signal: i32) -> Result<(), ShimError> {
        self.request("kill", Request::Kill { signal, all: false }).await.map(drop)
    }

    /// Signals every process of the container (`<runtime> kill --all`).
    pub async fn kill_all(&self, signal: i32) -> Result<(), ShimError> {
        self.request("kill", Request::Kill { signal, all: true }).await.map(drop)
    }

    /// Waits for the container to exit. Returns at once if `exit.json` exists; works when the
    /// shim is already gone.
    pub async fn wait(&self) -> Result<ExitStatus, ShimError> {
        if let Some(exit) = Self::exit_status_in(&self.state_dir).await? {
            return Ok(exit);
        }
        match self.open(&Request::Wait).await {
            Ok((_, _, resp)) if resp.ok => resp
                .exit
                .ok_or_else(|| ShimError::Protocol { path: self.socket.clone(), detail: "exit missing".into() }),
            Ok((_, _, resp)) => Err(ShimError::Rejected { op: "wait", message: resp.error.unwrap_or_default() }),
            Err(err) => match Self::exit_status_in(&self.state_dir).await? {
                Some(exit) => Ok(exit),
                None if matches!(err, ShimError::Connect { .. }) => {
                    Err(ShimError::Gone { path: self.state_dir.clone() })
                }
                None => Err(err),
            },
        }
    }

    /// Resizes the container's pty.
    pub async fn resize(&self, rows: u16, cols: u16) -> Result<(), ShimError> {
        self.resize_exec(None, rows, cols).await
    }

    /// Resizes the pty of a running exec by its id.
    pub async fn resize_exec_pty(&self, exec_id: &str, rows: u16, cols: u16) -> Result<(), ShimError> {
        self.resize_exec(Some(exec_id.to_owned()), rows, cols).await
    }

    async fn resize_exec(&self, exec_id: Option<String>, rows: u16, cols: u16) -> Result<(), ShimError> {
        self.request("resize", Request::Resize { exec_id, rows, cols }).await.map(drop)
    }

    /// Attaches to the container's stdio. Several clients may attach at once; all get all
    /// output from now on.
    pub async fn attach(&self, opts: AttachOptions) -> Result<AttachStream, ShimError> {
        let req = Request::Attach { stdin: opts.stdin, stdout: opts.stdout, stderr: opts.stderr };
        let (r, w, resp) = self.open(&req).await?;
        if !resp.ok {
            return Err(ShimError::Rejected { op: "attach", message: resp.error.unwrap_or_default() });
        }
        let (output, _) = OutputStream::new(r);
        Ok(AttachStream { output, stdin: opts.stdin.then(|| StdinWriter::new(w)) })
    }

    /// Runs a process in the running container (`<runtime> exec --detach`).
    pub async fn exec(&self, opts: ExecOptions) -> Result<ExecHandle, ShimError> {
        let process = serde_json::to_value(&opts.process)
            .map_err(|e| ShimError::Protocol { path: self.socket.clone(), detail: e.to_string() })?;
        let req = Request::Exec { exec_id: opts.exec_id.clone(), process, tty: opts.tty, stdin: opts.stdin };
        let (r, w, resp) = self.open(&req).await?;
        if !resp.ok {
            return Err(ShimError::Start { id: self.id.clone(), message: resp.error.unwrap_or_default() });
        }
        let (output, exit) = OutputStream::new(r);
        Ok(ExecHandle {
            pid: resp.pid.unwrap_or(0),
            output,
            stdin: opts.stdin.then(|| StdinWriter::new(w)),
            exit,
            client: self.clone(),
            exec_id: opts.exec_id,
        })
    }

    /// Tells the shim the daemon recorded the exit; it exits after the runtime's delete.
    pub async fn shutdown(&self) -> Result<(), ShimError> {
        self.request("shutdown", Request::Shutdown).await.map(drop)
    }
}

/// Output of an attach or exec: a `Stream` of `(stream, bytes)`; ends when the shim closes
/// the connection. For an exec the last frame (the exit status) resolves the exec's `wait`.
pub struct OutputStream {
    reader: BufReader<OwnedReadHalf>,
    buf: BytesMut,
    exit: Option<oneshot::Sender<ExitStatus>>,
    done: bool,
}

impl OutputStream {
    fn new(reader: BufReader<OwnedReadHalf>) -> (Self, oneshot::Receiver<ExitStatus>) {
        let (tx, rx) = oneshot::channel();
        (Self { reader, buf: BytesMut::with_capacity(16 * 1024), exit: Some(tx), done: false }, rx)
    }

    /// Collects all output until the stream ends: `(stdout, stderr)`.
    pub async fn collect(mut self) -> io::Result<(Vec<u8>, Vec<u8>)> {
        use futures_util::StreamExt;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        while let Some(item) = self.next().await {
            let (kind, data) = item?;
            match kind {
                StreamKind::Stdout => out.extend_from_slice(&data),
                StreamKind::Stderr => err.extend_from_slice(&data),
            }
        }
        Ok((out, err))
    }
}

impl Stream for OutputStream {
    type Item = io::Result<(StreamKind, Bytes)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if this.buf.len() >= 8 {
                let (kind, len) = parse_header(this.buf[..8].try_into().expect("8 bytes"));
                if len > MAX_FRAME {
                    this.done = true;
                    return Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::InvalidData, "frame too large"))));
                }
                if this.buf.len() >= 8 + len {
                    this.buf.advance(8);
                    let payload = this.buf.split_to(len).freeze();
                    match kind {
                        FRAME_STDOUT => {
                            return Poll::Ready(Some(Ok((StreamKind::Stdout, payload))));
                        }
                        FRAME_STDERR => {
                            return Poll::Ready(Some(Ok((StreamKind::Stderr, payload))));
                        }
                        FRAME_EXIT => {
                            if let (Some(tx), Ok(exit)) = (this.exit.take(), serde_json::from_slice(&payload)) {
                                let _ = tx.send(exit);
                            }
                            this.done = true;
                            return Poll::Ready(None);
                        }
                        _ => continue,
                    }
                }
            }
            if this.buf.capacity() - this.buf.len() < 8 * 1024 {
                this.buf.reserve(64 * 1024);
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.reader).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                this.done = true;
                return Poll::Ready(None);
            }
            this.buf.extend_from_slice(rb.filled());
        }
    }
}

/// Stdin of an attach or exec: an `AsyncWrite` whose `shutdown()` half-closes the process's
/// stdin (see the protocol's stdin EOF rules).
pub struct StdinWriter {
    inner: OwnedWriteHalf,
    pending: Vec<u8>,
    pos: usize,
    closed: bool,
}

impl StdinWriter {
    fn new(inner: OwnedWriteHalf) -> Self {
        Self { inner, pending: Vec::new(), pos: 0, closed: false }
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pos < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
        }
        self.pending.clear();
        self.pos = 0;
        Poll::Ready(Ok(()))
    }

    fn queue(&mut self, kind: u8, data: &[u8]) {
        self.pending.extend_from_slice(&frame_header(kind, data.len()));
        self.pending.extend_from_slice(data);
    }

    /// Sends a resize frame (same effect as [`ShimClient::resize`], ordered with stdin).
    pub async fn resize(&mut self, rows: u16, cols: u16) -> io::Result<()> {
        let mut p = [0u8; 4];
        p[..2].copy_from_slice(&rows.to_be_bytes());
        p[2..].copy_from_slice(&cols.to_be_bytes());
        std::future::poll_fn(|cx| self.poll_drain(cx)).await?;
        self.queue(FRAME_RESIZE, &p);
        std::future::poll_fn(|cx| self.poll_drain(cx)).await
    }
}

impl AsyncWrite for StdinWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        ready!(this.poll_drain(cx))?;
        let n = buf.len().min(64 * 1024);
        this.queue(FRAME_STDIN, &buf[..n]);
        // The frame is queued; push what the socket takes now, the rest on the next call.
        let _ = this.poll_drain(cx)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if !this.closed {
            this.closed = true;
            this.queue(FRAME_CLOSE_STDIN, &[]);
        }
        this.poll_drain(cx)
    }
}
