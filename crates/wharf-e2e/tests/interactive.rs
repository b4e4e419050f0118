//! Interactive containers with the real docker CLI on a pseudo-terminal (`run -it`, `exec -it`,
//! `attach`, detach keys) and raw clients where the CLI cannot show the wire: hijacked attach
//! with log replay and server-side detach, and the websocket attach.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use wharf_testkit::pty::Pty;
use wharf_testkit::{TestDaemon, require, run_text, skip_unless};

fn daemon() -> TestDaemon {
    let d = TestDaemon::start();
    d.import_busybox();
    d
}

fn docker(d: &TestDaemon, args: &[&str]) -> (i32, String, String) {
    run_text(&mut d.docker(args))
}

fn running(d: &TestDaemon, name: &str) -> bool {
    docker(d, &["inspect", "-f", "{{.State.Running}}", name]).1.trim() == "true"
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A hijacked `POST …/attach?<query>`: the stream after the 101's headers.
fn raw_attach(d: &TestDaemon, container: &str, query: &str) -> UnixStream {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        s,
        "POST /v1.53/containers/{container}/attach?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\
         Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "attach response ended early: {}", String::from_utf8_lossy(&head));
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// Reads from a raw stream until `text` has appeared; returns everything read.
fn read_until(s: &mut impl Read, text: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(text.len()).any(|w| w == text.as_bytes()) {
        let n = s.read(&mut buf).unwrap_or(0);
        assert!(n > 0, "stream ended before {text:?}: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// The container's events (actions) since `since` (unix seconds), up to now.
fn actions(d: &TestDaemon, since: u64, name: &str) -> Vec<String> {
    wharf_testkit::wait_next_second();
    let (_, out, err) = docker(
        d,
        &[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            "0s",
            "--filter",
            &format!("container={name}"),
            "--format",
            "{{.Action}}",
        ],
    );
    assert!(err.is_empty(), "{err}");
    out.lines().map(str::to_owned).collect()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Asks the shell on `p` for its terminal size until it is `size`: the window change travels
/// SIGWINCH → docker CLI → `POST …/resize` → the pty, which takes a while on a loaded machine.
fn await_size(p: &mut Pty, size: &str) {
    for _ in 0..50 {
        p.send(b"stty size\r");
        if p.expect("# ").contains(size) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the terminal never became {size}: {}", p.output());
}

#[test]
fn run_it_echo_ctrl_c_resize_and_exit_code() {
    skip_unless!(require::root(), require::program("docker"), require::busybox());
    let d = daemon();
    let mut p = Pty::spawn(d.docker(&["run", "-it", "--name", "tty1", "busybox", "sh"]), 33, 101);
    p.expect("# ");
    // The initial size comes with the create (ConsoleSize) and the first resize.
    p.send(b"stty size\r");
    p.expect("33 101");
    p.expect("# ");
    // A window change reaches the pty through POST /containers/{id}/resize.
    p.resize(40, 120);
    await_size(&mut p, "40 120");
    // ctrl-c goes to the foreground process (the tty's line discipline), not the shell.
    p.send(b"sleep 100\r");
    p.expect("sleep 100");
    std::thread::sleep(Duration::from_millis(300));
    p.send(b"\x03");
    p.expect("# ");
    p.send(b"echo $((6*7))\r");
    p.expect("42\r\n");
    p.send(b"exit 5\r");
    assert_eq!(p.wait(), 5, "{}", p.output());
    // A tty stream is raw: no multiplexing headers, pty line endings.
    assert!(!p.output().contains('\u{1}'), "{:?}", p.output());
    assert_eq!(docker(&d, &["inspect", "-f", "{{.State.ExitCode}}", "tty1"]).1.trim(), "5");
    // Resizing a container that is not running is an error.
    let r = d.api("POST", "/containers/tty1/resize?h=10&w=10", b"");
    assert_ne!(r.status, 200, "{}", r.text());
}

#[test]
fn exec_it_resize_and_close_stdin() {
    skip_unless!(require::root(), require::program("docker"), require::busybox());
    let d = daemon();
    let (code, _, err) = docker(&d, &["run", "-d", "-it", "--name", "ex", "busybox", "sh"]);
    assert_eq!(code, 0, "{err}");
    let mut p = Pty::spawn(d.docker(&["exec", "-it", "ex", "sh"]), 20, 70);
    p.expect("# ");
    p.send(b"stty size; tty\r");
    p.expect("20 70");
    p.expect("/dev/pts/");
    p.resize(21, 71);
    await_size(&mut p, "21 71");
    p.send(b"exit 7\r");
    assert_eq!(p.wait(), 7, "{}", p.output());
    assert!(!p.output().contains('\u{1}'), "raw stream: {:?}", p.output());
    // Detaching from an exec leaves its process running.
    let mut p = Pty::spawn(d.docker(&["exec", "-it", "ex", "sh"]), 20, 70);
    p.expect("# ");
    p.send(b"echo $$ > /tmp/exec.pid\r");
    p.expect("# ");
    p.send(b"\x10\x11");
    p.wait();
    let (_, pid, _) = docker(&d, &["exec", "ex", "cat", "/tmp/exec.pid"]);
    let (code, _, _) = docker(&d, &["exec", "ex", "kill", "-0", pid.trim()]);
    assert_eq!(code, 0, "the detached exec's shell ({}) is gone", pid.trim());
    // exec: stdin EOF closes the process's stdin and the output keeps coming (compat §3.1).
    let mut child = d
        .docker(&["exec", "-i", "ex", "sh", "-c", "cat; echo err >&2; exit 2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"line1\nline2\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "line1\nline2\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    // The exec resize endpoint needs a running exec with a tty.
    let r = d.api("POST", "/exec/nope/resize?h=10&w=10", b"");
    assert_eq!(r.status, 404, "{}", r.text());
    docker(&d, &["rm", "-f", "ex"]);
}

#[test]
fn detach_keys_and_attach_back() {
    skip_unless!(require::root(), require::program("docker"), require::busybox());
    let d = daemon();
    let since = now_secs();
    let mut p = Pty::spawn(d.docker(&["run", "-it", "--name", "dk", "busybox", "sh"]), 24, 80);
    p.expect("# ");
    p.send(b"echo one\r");
    p.expect("one\r\n");
    // ctrl-p ctrl-q: the CLI detaches, the container keeps running.
    p.send(b"\x10\x11");
    assert_eq!(p.wait(), 0, "{}", p.output());
    assert!(running(&d, "dk"));
    // Back in, with other keys.
    let mut p = Pty::spawn(d.docker(&["attach", "--detach-keys", "ctrl-x,y", "dk"]), 24, 80);
    std::thread::sleep(Duration::from_millis(300));
    p.send(b"echo two\r");
    p.expect("two\r\n");
    p.send(b"\x18y");
    p.wait();
    assert!(p.output().contains("read escape sequence"), "{}", p.output());
    assert!(running(&d, "dk"));
    // The server detects the keys too (clients that do not): it ends the session and says so.
    let mut s = raw_attach(&d, "dk", "stream=1&stdin=1&stdout=1&stderr=1&detachKeys=ctrl-a");
    s.write_all(b"echo three\r").unwrap();
    read_until(&mut s, "three\r\n");
    s.write_all(b"\x01").unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(running(&d, "dk"));
    // And the shell is still there for the next attach.
    let mut p = Pty::spawn(d.docker(&["attach", "dk"]), 24, 80);
    std::thread::sleep(Duration::from_millis(300));
    p.send(b"exit 3\r");
    assert_eq!(p.wait(), 3, "{}", p.output());
    let acts = actions(&d, since, "dk");
    assert!(acts.iter().filter(|a| *a == "attach").count() >= 4, "{acts:?}");
    assert_eq!(acts.iter().filter(|a| *a == "detach").count(), 1, "{acts:?}");
    assert_eq!(acts.last().map(String::as_str), Some("die"), "{acts:?}");
}

#[test]
fn attach_replays_logs_and_stdin_once() {
    skip_unless!(require::root(), require::program("docker"), require::busybox());
    let d = daemon();
    let (code, _, err) =
        docker(&d, &["run", "-d", "-i", "--name", "rl", "busybox", "sh", "-c", "echo before; read x; echo after $x"]);
    assert_eq!(code, 0, "{err}");
    wait_for("the first line in the log", || docker(&d, &["logs", "rl"]).1.contains("before"));
    // logs=1&stream=1: what was logged, then live output, multiplexed (no tty).
    let mut s = raw_attach(&d, "rl", "logs=1&stream=1&stdin=1&stdout=1&stderr=1");
    let got = read_until(&mut s, "before\n");
    assert!(got.starts_with(b"\x01\0\0\0\0\0\0\x07before\n"), "{got:?}");
    s.write_all(b"hi\n").unwrap();
    let got = read_until(&mut s, "after hi\n");
    assert!(got.starts_with(b"\x01\0\0\0\0\0\0\x09after hi\n"), "{got:?}");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "the stream ends when the container does: {rest:?}");
    // logs=1 without stream: only the replay.
    let mut s = raw_attach(&d, "rl", "logs=1&stdout=1");
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"\x01\0\0\0\0\0\0\x07before\n\x01\0\0\0\0\0\0\x09after hi\n");
    // StdinOnce (start -ai): the client's stdin EOF closes the container's stdin.
    let (code, _, err) = docker(&d, &["create", "-i", "--name", "so", "busybox", "sh", "-c", "cat; echo done"]);
    assert_eq!(code, 0, "{err}");
    let mut child = d.docker(&["start", "-ai", "so"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"piped\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped\ndone\n");
}

#[test]
fn websocket_attach() {
    skip_unless!(require::root(), require::program("docker"), require::busybox());
    use tungstenite::Message;
    let d = daemon();
    let (code, _, err) = docker(&d, &["run", "-d", "-i", "--name", "ws", "busybox", "sh", "-c", "echo ready; cat"]);
    assert_eq!(code, 0, "{err}");
    wait_for("the first line in the log", || docker(&d, &["logs", "ws"]).1.contains("ready"));
    let connect = |version: &str| {
        let s = UnixStream::connect(&d.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let url = format!("ws://localhost/{version}/containers/ws/attach/ws?logs=1&stream=1&stdin=1&stdout=1&stderr=1");
        tungstenite::client(url, s).unwrap_or_else(|e| panic!("websocket handshake: {e}")).0
    };
    let mut ws = connect("v1.53");
    let mut got = Vec::new();
    // Raw output (no multiplexing headers) in binary messages; stdin from any message.
    fn read(ws: &mut tungstenite::WebSocket<UnixStream>, got: &mut Vec<u8>, want: &str, binary: bool) {
        while !String::from_utf8_lossy(got).contains(want) {
            match ws.read().unwrap() {
                Message::Binary(b) if binary => got.extend_from_slice(&b),
                Message::Text(t) if !binary => got.extend_from_slice(t.as_bytes()),
                other => panic!("unexpected message {other:?}"),
            }
        }
    }
    read(&mut ws, &mut got, "ready\n", true);
    ws.send(Message::Binary(b"ping\n".to_vec().into())).unwrap();
    read(&mut ws, &mut got, "ping\n", true);
    assert_eq!(String::from_utf8_lossy(&got), "ready\nping\n");
    ws.close(None).unwrap();
    while ws.read().is_ok() {}
    // Closing ended the session only (no StdinOnce): the container keeps running.
    assert!(running(&d, "ws"));
    // Old clients get text messages.
    got.clear();
    let mut ws = connect("v1.27");
    read(&mut ws, &mut got, "ping\n", false);
    ws.send(Message::Text("pong\n".into())).unwrap();
    read(&mut ws, &mut got, "pong\n", false);
    drop(ws);
    // A missing container is a plain 404 before any upgrade.
    let s = UnixStream::connect(&d.socket).unwrap();
    match tungstenite::client("ws://localhost/containers/nope/attach/ws?stream=1", s) {
        Err(tungstenite::handshake::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            assert_eq!(r.status(), 404)
        }
        other => panic!("expected a 404, got {:?}", other.map(|_| ())),
    }
    docker(&d, &["rm", "-f", "ws"]);
}

#[test]
fn docker_py_tty_attach_socket_resize_and_exec() {
    skip_unless!(require::root(), require::python_module("docker"), require::busybox());
    let d = daemon();
    let script = format!(
        r#"
import docker, time
cl = docker.DockerClient(base_url='{host}')
c = cl.containers.run('busybox', 'sh', tty=True, stdin_open=True, detach=True, name='py')
c.resize(height=30, width=90)
s = c.attach_socket(params={{'stdin': 1, 'stream': 1, 'stdout': 1, 'stderr': 1}})._sock
s.settimeout(15)
s.sendall(b'stty size\n')
buf = b''
while b'30 90' not in buf:
    chunk = s.recv(4096)
    assert chunk, buf
    buf += chunk
assert b'\x01\x00\x00\x00' not in buf, buf
r = c.exec_run(['sh', '-c', 'echo out; echo err >&2; exit 3'], demux=True)
print(r.exit_code, r.output)
r = c.exec_run('tty', tty=True)
print(r.exit_code, r.output.startswith(b'/dev/pts/'), r.output.endswith(b'\r\n'))
s.sendall(b'exit 4\n')
print(c.wait(timeout=15)['StatusCode'])
c.remove()
"#,
        host = d.host()
    );
    let (code, out, err) = run_text(std::process::Command::new("python3").args(["-c", &script]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "3 (b'out\\n', b'err\\n')\n0 True True\n4\n");
}
