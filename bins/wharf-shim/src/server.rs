//! The shim's event loop. Every fd (listener, signalfd, container output, stdin sinks, client
//! connections, exec I/O) is registered in one epoll set keyed by its fd number; `sources` says
//! what each fd is. Runtime invocations (`start`, `exec`, `kill --all`, `delete`) run as child
//! processes whose completion arrives, like every exit, through SIGCHLD.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::process::Stdio;

use wharf_runtime::logs::format::StreamKind;
use wharf_runtime::logs::time::{now_nanos, rfc3339_nano};
use wharf_runtime::logs::writer::{LineSplitter, LogWriter};
use wharf_runtime::shim::protocol::{
    EXIT_FILE, ExitStatus, FRAME_CLOSE_STDIN, FRAME_EXIT, FRAME_RESIZE, FRAME_STDERR, FRAME_STDIN, FRAME_STDOUT,
    MAX_FRAME, Request, Response, SOCKET_FILE, ShimConfig, ShimState, Status, frame_header, parse_header,
};

use crate::Stdio3;
use crate::runtime::Runtime;
use crate::sys::{self, Epoll};

const IN: u32 = libc::EPOLLIN as u32;
const OUT: u32 = libc::EPOLLOUT as u32;
/// A client that falls this far behind is dropped rather than stalling the container.
const MAX_CLIENT_BACKLOG: usize = 16 << 20;
/// Stop reading stdin from clients while this much is queued for a process.
const MAX_STDIN_BACKLOG: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Owner {
    Container,
    Exec(String),
}

enum Source {
    Listener,
    Signal,
    /// Holds the fd open (it is closed when the source is removed).
    Output {
        owner: Owner,
        kind: StreamKind,
        _fd: OwnedFd,
    },
    Stdin(Owner),
    Conn,
    Console(String),
}

/// Bytes queued for a process's stdin (a pipe, or a dup of the pty master).
struct StdinSink {
    fd: OwnedFd,
    pending: Vec<u8>,
    is_pty: bool,
    close_when_flushed: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Mode {
    Request,
    Waiting,
    Busy,
    Attach { stdin: bool, stdout: bool, stderr: bool },
    Exec(String),
    Closing,
}

struct Conn {
    /// Owns the socket; epoll and `conns` are keyed by its number.
    _fd: OwnedFd,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    mode: Mode,
    paused: bool,
    /// The client shut down its write side (end of its stdin); we may still write to it.
    read_closed: bool,
    stdin_done: bool,
}

struct Exec {
    tty: bool,
    conn: Option<RawFd>,
    pid: Option<i32>,
    master: Option<OwnedFd>,
    outputs: Vec<(RawFd, OwnedFd, StreamKind)>,
    stdin: Option<OwnedFd>,
    console: Option<UnixListener>,
}

enum Call {
    Start(RawFd),
    KillAll(RawFd),
    Exec(String),
    Delete,
}

pub struct Server {
    config: ShimConfig,
    rt: Runtime,
    ep: Epoll,
    listener: UnixListener,
    sigfd: OwnedFd,
    sources: HashMap<RawFd, Source>,
    conns: HashMap<RawFd, Conn>,
    sinks: HashMap<Owner, StdinSink>,
    execs: HashMap<String, Exec>,
    calls: HashMap<i32, (Call, u64)>,
    /// Exits of children not yet known (an exec'd process can exit before its pid file is read).
    orphans: HashMap<i32, i32>,
    pid: i32,
    status: Status,
    exit: Option<ExitStatus>,
    master: Option<OwnedFd>,
    splitters: [LineSplitter; 2],
    log: Option<LogWriter>,
    shutdown: bool,
    /// Connections that asked for shutdown; answered once no runtime command is running, so
    /// the daemon knows the runtime's state for this id is gone.
    shutdown_waiters: Vec<RawFd>,
    /// The container exited while `runtime start` was still running: `delete` waits for it
    /// (runc removes its exec fifo at the end of `start`).
    delete_after_start: bool,
    buf: Vec<u8>,
}

fn frame(kind: u8, data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&frame_header(kind, data.len()));
    out.extend_from_slice(data);
}

fn stream_frame_kind(kind: StreamKind) -> u8 {
    match kind {
        StreamKind::Stdout => FRAME_STDOUT,
        StreamKind::Stderr => FRAME_STDERR,
    }
}

impl Server {
    pub fn new(config: ShimConfig, rt: Runtime, sigfd: OwnedFd, stdio: Stdio3, pid: i32) -> std::io::Result<Self> {
        let _ = std::fs::remove_file(SOCKET_FILE);
        let listener = UnixListener::bind(SOCKET_FILE)?;
        listener.set_nonblocking(true)?;
        let log = LogWriter::open(&config.log).ok();
        let mut s = Self {
            config,
            rt,
            ep: Epoll::new()?,
            listener,
            sigfd,
            sources: HashMap::new(),
            conns: HashMap::new(),
            sinks: HashMap::new(),
            execs: HashMap::new(),
            calls: HashMap::new(),
            orphans: HashMap::new(),
            pid,
            status: Status::Created,
            exit: None,
            master: None,
            splitters: [LineSplitter::default(), LineSplitter::default()],
            log,
            shutdown: false,
            shutdown_waiters: Vec::new(),
            delete_after_start: false,
            buf: vec![0; 64 * 1024],
        };
        s.ep.add(s.listener.as_raw_fd(), IN)?;
        s.sources.insert(s.listener.as_raw_fd(), Source::Listener);
        s.ep.add(s.sigfd.as_raw_fd(), IN)?;
        s.sources.insert(s.sigfd.as_raw_fd(), Source::Signal);
        match stdio {
            Stdio3::Pipes { stdin, stdout, stderr } => {
                s.add_output(Owner::Container, StreamKind::Stdout, stdout)?;
                s.add_output(Owner::Container, StreamKind::Stderr, stderr)?;
                if let Some(w) = stdin {
                    s.add_sink(Owner::Container, w, false)?;
                }
            }
            Stdio3::Pty { master } => {
                let dup = sys::dup_cloexec(master.as_raw_fd())?;
                s.add_output(Owner::Container, StreamKind::Stdout, dup)?;
                if s.config.stdin {
                    s.add_sink(Owner::Container, sys::dup_cloexec(master.as_raw_fd())?, true)?;
                }
                s.master = Some(master);
            }
        }
        // The init may already have exited (and be a zombie) before the signalfd saw it.
        s.reap();
        Ok(s)
    }

    fn add_output(&mut self, owner: Owner, kind: StreamKind, fd: OwnedFd) -> std::io::Result<()> {
        sys::set_nonblocking(fd.as_raw_fd())?;
        self.ep.add(fd.as_raw_fd(), IN)?;
        self.sources.insert(fd.as_raw_fd(), Source::Output { owner, kind, _fd: fd });
        Ok(())
    }

    fn add_sink(&mut self, owner: Owner, fd: OwnedFd, is_pty: bool) -> std::io::Result<()> {
        sys::set_nonblocking(fd.as_raw_fd())?;
        self.ep.add(fd.as_raw_fd(), 0)?;
        self.sources.insert(fd.as_raw_fd(), Source::Stdin(owner.clone()));
        self.sinks.insert(owner, StdinSink { fd, pending: Vec::new(), is_pty, close_when_flushed: false });
        Ok(())
    }

    pub fn run(&mut self) {
        let mut events = Vec::new();
        loop {
            if self.shutdown && self.calls.is_empty() {
                for fd in std::mem::take(&mut self.shutdown_waiters) {
                    self.respond_and_close(fd, &Response::ok());
                }
                if self.conns.values().all(|c| c.out.is_empty()) {
                    break;
                }
            }
            if self.ep.wait(&mut events, -1).is_err() {
                break;
            }
            for &(fd, ev) in &events.clone() {
                self.dispatch(fd, ev);
            }
        }
        let _ = std::fs::remove_file(SOCKET_FILE);
    }

    fn dispatch(&mut self, fd: RawFd, ev: u32) {
        let what = match self.sources.get(&fd) {
            None => return,
            Some(Source::Listener) => 0,
            Some(Source::Signal) => 1,
            Some(Source::Output { .. }) => 2,
            Some(Source::Stdin(_)) => 3,
            Some(Source::Conn) => 4,
            Some(Source::Console(_)) => 5,
        };
        match what {
            0 => self.accept(),
            1 => {
                sys::read_signals(fd);
                self.reap();
            }
            2 => {
                self.on_output(fd);
            }
            3 => {
                if let Some(Source::Stdin(owner)) = self.sources.get(&fd) {
                    let owner = owner.clone();
                    self.flush_sink(&owner);
                }
            }
            4 => {
                if ev & OUT != 0 {
                    self.flush_conn(fd);
                }
                if ev & IN != 0 {
                    self.on_conn_readable(fd);
                }
                // Both directions gone: nobody is listening any more.
                if ev & (libc::EPOLLHUP as u32 | libc::EPOLLERR as u32) != 0 {
                    self.close_conn(fd);
                }
            }
            _ => self.on_console(fd),
        }
    }

    // ---- connections -------------------------------------------------------------------

    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            let fd: OwnedFd = stream.into();
            let raw = fd.as_raw_fd();
            let _ = sys::set_nonblocking(raw);
            if self.ep.add(raw, IN).is_err() {
                continue;
            }
            self.sources.insert(raw, Source::Conn);
            self.conns.insert(
                raw,
                Conn {
                    _fd: fd,
                    inbuf: Vec::new(),
                    out: Vec::new(),
                    mode: Mode::Request,
                    paused: false,
                    read_closed: false,
                    stdin_done: false,
                },
            );
        }
    }

    fn close_conn(&mut self, fd: RawFd) {
        if let Some(conn) = self.conns.remove(&fd) {
            self.ep.delete(fd);
            self.sources.remove(&fd);
            // The fd number will be reused by the next accept: forget every reference to it.
            for (call, _) in self.calls.values_mut() {
                match call {
                    Call::Start(c) | Call::KillAll(c) if *c == fd => *c = -1,
                    _ => {}
                }
            }
            for e in self.execs.values_mut() {
                if e.conn == Some(fd) {
                    e.conn = None;
                }
            }
            match conn.mode {
                Mode::Attach { stdin: true, .. } if !conn.stdin_done => self.client_stdin_ended(&Owner::Container),
                Mode::Exec(id) => {
                    if let Some(e) = self.execs.get_mut(&id) {
                        e.conn = None;
                    }
                    if !conn.stdin_done {
                        self.client_stdin_ended(&Owner::Exec(id));
                    }
                }
                _ => {}
            }
        }
    }

    /// Queues bytes for a client and tries to send them now.
    fn send(&mut self, fd: RawFd, data: &[u8]) {
        let Some(conn) = self.conns.get_mut(&fd) else {
            return;
        };
        conn.out.extend_from_slice(data);
        if conn.out.len() > MAX_CLIENT_BACKLOG {
            self.close_conn(fd);
            return;
        }
        self.flush_conn(fd);
    }

    fn respond(&mut self, fd: RawFd, resp: &Response) {
        let mut line = serde_json::to_vec(resp).unwrap_or_default();
        line.push(b'\n');
        self.send(fd, &line);
    }

    fn respond_and_close(&mut self, fd: RawFd, resp: &Response) {
        if let Some(c) = self.conns.get_mut(&fd) {
            c.mode = Mode::Closing;
        }
        self.respond(fd, resp);
        self.finish_conn(fd);
    }

    /// Closes a connection once its queued output is sent.
    fn finish_conn(&mut self, fd: RawFd) {
        if let Some(c) = self.conns.get_mut(&fd) {
            if matches!(c.mode, Mode::Attach { .. } | Mode::Exec(_)) {
                c.stdin_done = true;
            }
            c.mode = Mode::Closing;
            if c.out.is_empty() {
                self.close_conn(fd);
            }
        }
    }

    fn conn_interest(&self, c: &Conn) -> u32 {
        let mut ev = if c.paused || c.read_closed { 0 } else { IN };
        if !c.out.is_empty() {
            ev |= OUT;
        }
        ev
    }

    fn flush_conn(&mut self, fd: RawFd) {
        let Some(conn) = self.conns.get_mut(&fd) else {
            return;
        };
        let mut written = 0;
        let mut failed = false;
        while written < conn.out.len() {
            match sys::send(fd, &conn.out[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            self.close_conn(fd);
            return;
        }
        conn.out.drain(..written);
        if conn.out.is_empty() && conn.mode == Mode::Closing {
            self.close_conn(fd);
            return;
        }
        let Some(conn) = self.conns.get(&fd) else {
            return;
        };
        let _ = self.ep.modify(fd, self.conn_interest(conn));
    }

    fn on_conn_readable(&mut self, fd: RawFd) {
        let Some(conn) = self.conns.get_mut(&fd) else {
            return;
        };
        if conn.paused {
            return;
        }
        let n = match sys::read(fd, &mut self.buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {
                return;
            }
            Err(_) => 0,
        };
        if n == 0 {
            // A half-close: the client sent all it will send. Requests are incomplete; streams
            // lose their stdin; waiters keep waiting (EPOLLHUP or a failed write ends them).
            match conn.mode {
                Mode::Request | Mode::Closing => self.close_conn(fd),
                _ => {
                    conn.read_closed = true;
                    let owner = match &conn.mode {
                        Mode::Attach { stdin: true, .. } if !conn.stdin_done => Some(Owner::Container),
                        Mode::Exec(id) if !conn.stdin_done => Some(Owner::Exec(id.clone())),
                        _ => None,
                    };
                    conn.stdin_done = true;
                    let ev = self.conn_interest(self.conns.get(&fd).expect("present"));
                    let _ = self.ep.modify(fd, ev);
                    if let Some(owner) = owner {
                        self.client_stdin_ended(&owner);
                    }
                }
            }
            return;
        }
        conn.inbuf.extend_from_slice(&self.buf[..n]);
        match &conn.mode {
            Mode::Request => {
                if let Some(i) = conn.inbuf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = conn.inbuf.drain(..=i).collect();
                    match serde_json::from_slice::<Request>(&line) {
                        Ok(req) => self.handle(fd, req),
                        Err(e) => self.respond_and_close(fd, &Response::err(format!("bad request: {e}"))),
                    }
                } else if conn.inbuf.len() > 4 * MAX_FRAME {
                    self.respond_and_close(fd, &Response::err("request too large"));
                }
            }
            Mode::Attach { .. } | Mode::Exec(_) => self.process_frames(fd),
            _ => conn.inbuf.clear(),
        }
    }

    fn process_frames(&mut self, fd: RawFd) {
        loop {
            let Some(conn) = self.conns.get_mut(&fd) else {
                return;
            };
            if conn.inbuf.len() < 8 {
                return;
            }
            let (kind, len) = parse_header(conn.inbuf[..8].try_into().unwrap_or(&[0; 8]));
            if len > MAX_FRAME {
                self.close_conn(fd);
                return;
            }
            if conn.inbuf.len() < 8 + len {
                return;
            }
            let payload: Vec<u8> = conn.inbuf.drain(..8 + len).skip(8).collect();
            let owner = match &conn.mode {
                Mode::Attach { stdin: true, .. } => Some(Owner::Container),
                Mode::Exec(id) => Some(Owner::Exec(id.clone())),
                _ => None,
            };
            let stdin_done = conn.stdin_done;
            match (kind, owner) {
                (FRAME_STDIN, Some(owner)) if !stdin_done => self.stdin_write(&owner, &payload, fd),
                (FRAME_CLOSE_STDIN, Some(owner)) if !stdin_done => {
                    if let Some(c) = self.conns.get_mut(&fd) {
                        c.stdin_done = true;
                    }
                    self.client_stdin_ended(&owner);
                }
                (FRAME_RESIZE, _) if payload.len() >= 4 => {
                    let rows = u16::from_be_bytes([payload[0], payload[1]]);
                    let cols = u16::from_be_bytes([payload[2], payload[3]]);
                    let exec = match &self.conns.get(&fd).map(|c| &c.mode) {
                        Some(Mode::Exec(id)) => Some(id.clone()),
                        _ => None,
                    };
                    let _ = self.resize(exec.as_deref(), rows, cols);
                }
                _ => {}
            }
        }
    }

    // ---- requests ----------------------------------------------------------------------

    fn state(&self) -> ShimState {
        ShimState {
            id: self.config.id.clone(),
            pid: self.pid,
            shim_pid: std::process::id() as i32,
            status: self.status,
            exit: self.exit.clone(),
        }
    }

    fn handle(&mut self, fd: RawFd, req: Request) {
        match req {
            Request::State => {
                let resp = Response { state: Some(self.state()), ..Response::ok() };
                self.respond_and_close(fd, &resp);
            }
            Request::Wait => match &self.exit {
                Some(exit) => {
                    let resp = Response { exit: Some(exit.clone()), ..Response::ok() };
                    self.respond_and_close(fd, &resp);
                }
                None => {
                    if let Some(c) = self.conns.get_mut(&fd) {
                        c.mode = Mode::Waiting;
                    }
                }
            },
            Request::Start => {
                if self.status != Status::Created {
                    let msg = format!("cannot start a container that is {}", status_word(self.status));
                    self.respond_and_close(fd, &Response::err(msg));
                    return;
                }
                let args = self.rt.simple("start");
                self.call(fd, Call::Start(fd), &args);
            }
            Request::Kill { signal, all } => {
                if self.exit.is_some() {
                    self.respond_and_close(fd, &Response::err("container is not running"));
                } else if all {
                    let args: Vec<OsString> =
                        vec!["kill".into(), "--all".into(), self.config.id.clone().into(), signal.to_string().into()];
                    self.call(fd, Call::KillAll(fd), &args);
                } else {
                    let resp = match sys::kill(self.pid, signal) {
                        Ok(()) => Response::ok(),
                        Err(e) => Response::err(format!("kill {}: {e}", self.pid)),
                    };
                    self.respond_and_close(fd, &resp);
                }
            }
            Request::Resize { exec_id, rows, cols } => {
                let resp = match self.resize(exec_id.as_deref(), rows, cols) {
                    Ok(()) => Response::ok(),
                    Err(e) => Response::err(e),
                };
                self.respond_and_close(fd, &resp);
            }
            Request::Attach { stdin, stdout, stderr } => {
                let stdin = stdin && self.sinks.contains_key(&Owner::Container);
                self.respond(fd, &Response::ok());
                if self.exit.is_some() {
                    self.finish_conn(fd);
                } else if let Some(c) = self.conns.get_mut(&fd) {
                    c.mode = Mode::Attach { stdin, stdout, stderr };
                    c.stdin_done = !stdin;
                    let leftover = !c.inbuf.is_empty();
                    if leftover {
                        self.process_frames(fd);
                    }
                }
            }
            Request::Exec { exec_id, process, tty, stdin } => self.exec(fd, exec_id, process, tty, stdin),
            Request::Shutdown => {
                if self.exit.is_none() {
                    self.respond_and_close(
                        fd,
                        &Response::err("container is running: kill it before shutting the shim down"),
                    );
                } else {
                    self.shutdown = true;
                    self.shutdown_waiters.push(fd);
                }
            }
        }
    }

    fn resize(&mut self, exec: Option<&str>, rows: u16, cols: u16) -> Result<(), String> {
        let master = match exec {
            None => self.master.as_ref(),
            Some(id) => self.execs.get(id).and_then(|e| e.master.as_ref()),
        };
        let master = master.ok_or_else(|| "no tty to resize".to_owned())?;
        sys::set_winsize(master.as_raw_fd(), rows, cols).map_err(|e| format!("resize: {e}"))
    }

    /// Starts a runtime command for connection `fd`, answered when it exits.
    fn call(&mut self, fd: RawFd, call: Call, args: &[OsString]) {
        let offset = self.rt.log_offset();
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        match self.rt.spawn(&refs, Stdio::null(), Stdio::null(), Stdio::null()) {
            Ok(pid) => {
                if let Some(c) = self.conns.get_mut(&fd) {
                    c.mode = Mode::Busy;
                }
                self.calls.insert(pid, (call, offset));
            }
            Err(e) => self.respond_and_close(fd, &Response::err(format!("run {}: {e}", self.rt.config.path.display()))),
        }
    }

    fn exec(&mut self, fd: RawFd, id: String, mut process: serde_json::Value, tty: bool, stdin: bool) {
        if self.status != Status::Running || self.exit.is_some() {
            self.respond_and_close(fd, &Response::err(format!("container {} is not running", self.config.id)));
            return;
        }
        if self.execs.contains_key(&id) || id.is_empty() || id.contains('/') {
            self.respond_and_close(fd, &Response::err(format!("exec id {id:?} is invalid or in use")));
            return;
        }
        match self.start_exec(fd, &id, &mut process, tty, stdin) {
            Ok(()) => {}
            Err(e) => {
                self.drop_exec(&id);
                self.respond_and_close(fd, &Response::err(e));
            }
        }
    }

    fn start_exec(
        &mut self,
        fd: RawFd,
        id: &str,
        process: &mut serde_json::Value,
        tty: bool,
        stdin: bool,
    ) -> Result<(), String> {
        let e = |what: &str, err: std::io::Error| format!("{what}: {err}");
        process["terminal"] = serde_json::Value::Bool(tty);
        let spec_file = format!("exec-{id}.json");
        let pid_file = format!("exec-{id}.pid");
        std::fs::write(&spec_file, serde_json::to_vec(process).unwrap_or_default())
            .map_err(|x| e("write process", x))?;
        let _ = std::fs::remove_file(&pid_file);
        let mut args: Vec<OsString> = vec![
            "exec".into(),
            "--process".into(),
            spec_file.into(),
            "--detach".into(),
            "--pid-file".into(),
            pid_file.into(),
        ];
        let mut ex =
            Exec { tty, conn: Some(fd), pid: None, master: None, outputs: Vec::new(), stdin: None, console: None };
        let (sin, sout, serr) = if tty {
            let sock = format!("exec-{id}.sock");
            let _ = std::fs::remove_file(&sock);
            let l = UnixListener::bind(&sock).map_err(|x| e("bind console socket", x))?;
            l.set_nonblocking(true).map_err(|x| e("console socket", x))?;
            self.ep.add(l.as_raw_fd(), IN).map_err(|x| e("epoll", x))?;
            self.sources.insert(l.as_raw_fd(), Source::Console(id.to_owned()));
            ex.console = Some(l);
            let abs = self.config.state_dir.join(&sock);
            let arg: OsString = if abs.as_os_str().len() < 100 { abs.into() } else { sock.into() };
            args.extend(["--console-socket".into(), arg, "--tty".into()]);
            (Stdio::null(), Stdio::null(), Stdio::null())
        } else {
            let sin = if stdin {
                let (r, w) = sys::pipe().map_err(|x| e("pipe", x))?;
                ex.stdin = Some(w);
                Stdio::from(r)
            } else {
                Stdio::null()
            };
            let (or, ow) = sys::pipe().map_err(|x| e("pipe", x))?;
            let (er, ew) = sys::pipe().map_err(|x| e("pipe", x))?;
            ex.outputs.push((or.as_raw_fd(), or, StreamKind::Stdout));
            ex.outputs.push((er.as_raw_fd(), er, StreamKind::Stderr));
            (sin, Stdio::from(ow), Stdio::from(ew))
        };
        args.push(self.config.id.clone().into());
        let offset = self.rt.log_offset();
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        self.execs.insert(id.to_owned(), ex);
        let pid = self.rt.spawn(&refs, sin, sout, serr).map_err(|x| e("run runtime exec", x))?;
        self.calls.insert(pid, (Call::Exec(id.to_owned()), offset));
        if let Some(c) = self.conns.get_mut(&fd) {
            c.mode = Mode::Busy;
        }
        if !stdin && let Some(ex) = self.execs.get_mut(id) {
            ex.stdin = None;
        }
        Ok(())
    }

    fn on_console(&mut self, fd: RawFd) {
        let Some(Source::Console(id)) = self.sources.get(&fd) else {
            return;
        };
        let id = id.clone();
        let Some(ex) = self.execs.get_mut(&id) else {
            return;
        };
        let Some(l) = &ex.console else { return };
        if let Ok((conn, _)) = l.accept() {
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            if let Ok(master) = sys::recv_fd(conn.as_raw_fd()) {
                ex.master = Some(master);
            }
        }
        if ex.master.is_some() {
            self.ep.delete(fd);
            self.sources.remove(&fd);
            ex.console = None;
            let _ = std::fs::remove_file(format!("exec-{id}.sock"));
        }
    }

    fn drop_exec(&mut self, id: &str) {
        if let Some(ex) = self.execs.remove(id) {
            for (raw, _, _) in &ex.outputs {
                self.ep.delete(*raw);
                self.sources.remove(raw);
            }
            if let Some(l) = &ex.console {
                self.ep.delete(l.as_raw_fd());
                self.sources.remove(&l.as_raw_fd());
            }
            let owner = Owner::Exec(id.to_owned());
            if let Some(sink) = self.sinks.remove(&owner) {
                self.ep.delete(sink.fd.as_raw_fd());
                self.sources.remove(&sink.fd.as_raw_fd());
            }
            // Output fds registered as sources were moved there; drop them too.
            let stale: Vec<RawFd> = self
                .sources
                .iter()
                .filter(|(_, s)| matches!(s, Source::Output { owner: o, .. } if *o == owner))
                .map(|(fd, _)| *fd)
                .collect();
            for fd in stale {
                self.ep.delete(fd);
                self.sources.remove(&fd);
            }
        }
        for f in [format!("exec-{id}.json"), format!("exec-{id}.pid"), format!("exec-{id}.sock")] {
            let _ = std::fs::remove_file(f);
        }
    }

    // ---- stdin -------------------------------------------------------------------------

    fn stdin_write(&mut self, owner: &Owner, data: &[u8], from: RawFd) {
        let Some(sink) = self.sinks.get_mut(owner) else {
            return;
        };
        if sink.close_when_flushed {
            return;
        }
        sink.pending.extend_from_slice(data);
        self.flush_sink(owner);
        if let Some(sink) = self.sinks.get(owner)
            && sink.pending.len() > MAX_STDIN_BACKLOG
            && let Some(c) = self.conns.get_mut(&from)
        {
            c.paused = true;
            let ev = self.conn_interest(self.conns.get(&from).expect("present"));
            let _ = self.ep.modify(from, ev);
        }
    }

    /// A client's stdin ended: with stdin_once (and for an exec) the process's stdin closes.
    fn client_stdin_ended(&mut self, owner: &Owner) {
        let close = match owner {
            Owner::Container => self.config.stdin_once,
            Owner::Exec(_) => true,
        };
        if !close {
            return;
        }
        if let Some(sink) = self.sinks.get_mut(owner) {
            sink.close_when_flushed = true;
            if sink.is_pty {
                // A pty has no half-close: send the EOF character (^D) instead.
                sink.pending.push(4);
            }
        }
        self.flush_sink(owner);
    }

    fn flush_sink(&mut self, owner: &Owner) {
        let Some(sink) = self.sinks.get_mut(owner) else {
            return;
        };
        let fd = sink.fd.as_raw_fd();
        let mut written = 0;
        let mut broken = false;
        while written < sink.pending.len() {
            match sys::write(fd, &sink.pending[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        sink.pending.drain(..written);
        if broken || (sink.pending.is_empty() && sink.close_when_flushed) {
            self.ep.delete(fd);
            self.sources.remove(&fd);
            self.sinks.remove(owner);
        } else {
            let _ = self.ep.modify(fd, if sink.pending.is_empty() { 0 } else { OUT });
        }
        let backlog = self.sinks.get(owner).map(|s| s.pending.len()).unwrap_or(0);
        if backlog < MAX_STDIN_BACKLOG / 2 {
            let paused: Vec<RawFd> = self.conns.iter().filter(|(_, c)| c.paused).map(|(fd, _)| *fd).collect();
            for cfd in paused {
                if let Some(c) = self.conns.get_mut(&cfd) {
                    c.paused = false;
                }
                if let Some(c) = self.conns.get(&cfd) {
                    let _ = self.ep.modify(cfd, self.conn_interest(c));
                }
            }
        }
    }

    // ---- output ------------------------------------------------------------------------

    /// Reads what is available on an output fd; returns false at EOF (the fd is then closed).
    fn on_output(&mut self, fd: RawFd) -> bool {
        let Some(Source::Output { owner, kind, .. }) = self.sources.get(&fd) else {
            return false;
        };
        let (owner, kind) = (owner.clone(), *kind);
        loop {
            let n = match sys::read(fd, &mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => 0, // EIO on a pty master once the slave side is closed.
            };
            if n == 0 {
                self.ep.delete(fd);
                self.sources.remove(&fd);
                if owner == Owner::Container {
                    let idx = kind as usize;
                    let mut splitter = std::mem::take(&mut self.splitters[idx]);
                    let now = now_nanos();
                    splitter.finish(|line, partial| {
                        if let Some(log) = &mut self.log {
                            let _ = log.write(kind, line, partial, now);
                        }
                    });
                }
                return false;
            }
            let data = self.buf[..n].to_vec();
            self.deliver(&owner, kind, &data);
            if n < self.buf.len() {
                return true;
            }
        }
    }

    fn deliver(&mut self, owner: &Owner, kind: StreamKind, data: &[u8]) {
        let mut framed = Vec::with_capacity(data.len() + 8);
        frame(stream_frame_kind(kind), data, &mut framed);
        match owner {
            Owner::Container => {
                let now = now_nanos();
                let idx = kind as usize;
                let log = &mut self.log;
                self.splitters[idx].feed(data, |line, partial| {
                    if let Some(log) = log {
                        let _ = log.write(kind, line, partial, now);
                    }
                });
                let targets: Vec<RawFd> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| match c.mode {
                        Mode::Attach { stdout, stderr, .. } => {
                            (kind == StreamKind::Stdout && stdout) || (kind == StreamKind::Stderr && stderr)
                        }
                        _ => false,
                    })
                    .map(|(fd, _)| *fd)
                    .collect();
                for t in targets {
                    self.send(t, &framed);
                }
            }
            Owner::Exec(id) => {
                if let Some(c) = self.execs.get(id).and_then(|e| e.conn) {
                    self.send(c, &framed);
                }
            }
        }
    }

    fn drain_outputs(&mut self, owner: &Owner) {
        let fds: Vec<RawFd> = self
            .sources
            .iter()
            .filter(|(_, s)| matches!(s, Source::Output { owner: o, .. } if o == owner))
            .map(|(fd, _)| *fd)
            .collect();
        for fd in fds {
            if self.on_output(fd) {
                // Still open (a writer outlives the process): stop listening; finish the
                // partial line.
                if let Some(Source::Output { kind, .. }) = self.sources.remove(&fd) {
                    self.ep.delete(fd);
                    if *owner == Owner::Container {
                        let now = now_nanos();
                        let mut splitter = std::mem::take(&mut self.splitters[kind as usize]);
                        splitter.finish(|line, partial| {
                            if let Some(log) = &mut self.log {
                                let _ = log.write(kind, line, partial, now);
                            }
                        });
                    }
                }
            }
        }
    }

    // ---- children ----------------------------------------------------------------------

    fn reap(&mut self) {
        while let Some((pid, status)) = sys::reap_any() {
            if pid == self.pid && self.exit.is_none() {
                self.container_exited(status);
            } else if let Some((call, offset)) = self.calls.remove(&pid) {
                self.call_done(call, offset, status);
            } else if let Some(id) = self.execs.iter().find(|(_, e)| e.pid == Some(pid)).map(|(id, _)| id.clone()) {
                self.exec_exited(&id, status);
            } else {
                if self.orphans.len() > 4096 {
                    self.orphans.clear();
                }
                self.orphans.insert(pid, status);
            }
        }
    }

    fn container_exited(&mut self, status: i32) {
        let (code, signal) = sys::decode_status(status);
        self.drain_outputs(&Owner::Container);
        let exit = ExitStatus { code, signal, exited_at: rfc3339_nano(now_nanos()), oom_killed: self.oom_killed() };
        let _ = sys::write_atomic(std::path::Path::new(EXIT_FILE), &serde_json::to_vec(&exit).unwrap_or_default());
        self.status = Status::Stopped;
        self.exit = Some(exit.clone());
        if let Some(sink) = self.sinks.remove(&Owner::Container) {
            self.ep.delete(sink.fd.as_raw_fd());
            self.sources.remove(&sink.fd.as_raw_fd());
        }
        let conns: Vec<(RawFd, bool)> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.mode, Mode::Waiting | Mode::Attach { .. }))
            .map(|(fd, c)| (*fd, c.mode == Mode::Waiting))
            .collect();
        for (fd, waiting) in conns {
            if waiting {
                let resp = Response { exit: Some(exit.clone()), ..Response::ok() };
                self.respond_and_close(fd, &resp);
            } else {
                self.finish_conn(fd);
            }
        }
        // Execs die with the container's pid namespace; their exits arrive as SIGCHLD.
        if self.calls.values().any(|(c, _)| matches!(c, Call::Start(_))) {
            self.delete_after_start = true;
        } else {
            self.delete_runtime_state();
        }
    }

    fn delete_runtime_state(&mut self) {
        let args = self.rt.simple("delete");
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let offset = self.rt.log_offset();
        if let Ok(pid) = self.rt.spawn(&refs, Stdio::null(), Stdio::null(), Stdio::null()) {
            self.calls.insert(pid, (Call::Delete, offset));
        }
    }

    fn call_done(&mut self, call: Call, offset: u64, status: i32) {
        let failed = status != 0;
        match call {
            Call::Start(fd) => {
                if failed {
                    let msg = self.rt.error_since(offset, "start", status);
                    self.respond_and_close(fd, &Response::err(msg));
                } else {
                    if self.status == Status::Created {
                        self.status = Status::Running;
                    }
                    self.respond_and_close(fd, &Response::ok());
                }
                if std::mem::take(&mut self.delete_after_start) {
                    self.delete_runtime_state();
                }
            }
            Call::KillAll(fd) => {
                let resp =
                    if failed { Response::err(self.rt.error_since(offset, "kill", status)) } else { Response::ok() };
                self.respond_and_close(fd, &resp);
            }
            Call::Delete => {
                if !failed {
                    self.pid = 0;
                }
            }
            Call::Exec(id) => self.exec_started(&id, offset, status),
        }
    }

    fn exec_started(&mut self, id: &str, offset: u64, status: i32) {
        let Some(ex) = self.execs.get_mut(id) else {
            return;
        };
        let conn = ex.conn;
        if status != 0 {
            let msg = self.rt.error_since(offset, "exec", status);
            self.drop_exec(id);
            if let Some(fd) = conn {
                self.respond_and_close(fd, &Response::err(msg));
            }
            return;
        }
        let pid: Option<i32> =
            std::fs::read_to_string(format!("exec-{id}.pid")).ok().and_then(|s| s.trim().parse().ok());
        let Some(pid) = pid else {
            self.drop_exec(id);
            if let Some(fd) = conn {
                self.respond_and_close(fd, &Response::err("runtime exec wrote no pid file"));
            }
            return;
        };
        if ex.tty && ex.master.is_none() {
            // The runtime sent the master just before exiting; pick it up now.
            if let Some(l) = ex.console.as_ref().map(|l| l.as_raw_fd()) {
                self.on_console(l);
            }
        }
        let Some(ex) = self.execs.get_mut(id) else {
            return;
        };
        ex.pid = Some(pid);
        let outputs = std::mem::take(&mut ex.outputs);
        let stdin = ex.stdin.take();
        let master = ex.master.as_ref().map(|m| m.as_raw_fd());
        let owner = Owner::Exec(id.to_owned());
        if let Some(fd) = conn {
            let resp = Response { pid: Some(pid), ..Response::ok() };
            self.respond(fd, &resp);
            if let Some(c) = self.conns.get_mut(&fd) {
                c.mode = Mode::Exec(id.to_owned());
                c.stdin_done = stdin.is_none() && master.is_none();
            }
        }
        for (_, fd, kind) in outputs {
            let _ = self.add_output(owner.clone(), kind, fd);
        }
        if let Some(w) = stdin {
            let _ = self.add_sink(owner.clone(), w, false);
        }
        if let Some(m) = master {
            if let Ok(d) = sys::dup_cloexec(m) {
                let _ = self.add_output(owner.clone(), StreamKind::Stdout, d);
            }
            if let Ok(d) = sys::dup_cloexec(m) {
                let _ = self.add_sink(owner.clone(), d, true);
            }
        }
        if let Some(fd) = conn {
            let pending = self.conns.get(&fd).is_some_and(|c| !c.inbuf.is_empty());
            if pending {
                self.process_frames(fd);
            }
        }
        if let Some(st) = self.orphans.remove(&pid) {
            self.exec_exited(id, st);
        }
    }

    fn exec_exited(&mut self, id: &str, status: i32) {
        let (code, signal) = sys::decode_status(status);
        let owner = Owner::Exec(id.to_owned());
        self.drain_outputs(&owner);
        let conn = self.execs.get(id).and_then(|e| e.conn);
        let exit = ExitStatus { code, signal, exited_at: rfc3339_nano(now_nanos()), oom_killed: false };
        if let Some(fd) = conn {
            let mut f = Vec::new();
            frame(FRAME_EXIT, &serde_json::to_vec(&exit).unwrap_or_default(), &mut f);
            self.send(fd, &f);
            self.finish_conn(fd);
        }
        self.drop_exec(id);
    }

    /// Whether the kernel OOM-killed a process in the container's memory cgroup.
    fn oom_killed(&self) -> bool {
        let Ok(raw) = std::fs::read(self.config.bundle.join("config.json")) else {
            return false;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&raw) else {
            return false;
        };
        let Some(path) = v["linux"]["cgroupsPath"].as_str() else {
            return false;
        };
        if !path.starts_with('/') {
            return false; // systemd slice:prefix:name — not resolved here.
        }
        let (file, key) = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            (format!("/sys/fs/cgroup{path}/memory.events"), "oom_kill ")
        } else {
            (format!("/sys/fs/cgroup/memory{path}/memory.oom_control"), "oom_kill ")
        };
        std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix(key).and_then(|n| n.trim().parse::<u64>().ok())))
            .is_some_and(|n| n > 0)
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Created => "created",
        Status::Running => "running",
        Status::Stopped => "stopped",
    }
}
