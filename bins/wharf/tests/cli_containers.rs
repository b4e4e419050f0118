//! The container commands against a fake daemon: the request sequences, headers and bodies
//! the CLI sends (compared with the real docker CLI's when it is installed), and how it handles
//! the replies (hijacked streams split to stdout/stderr, wait results as exit codes).
//!
//! The fake (tests/fake_daemon) stands in ONLY for the daemon's replies; the daemon itself is
//! exercised by the end-to-end tests against wharfd.

mod fake_daemon;

use fake_daemon::{CID, EXEC_ID, Fake, Rec, Scenario, by_path, docker, run_cli, strip_nulls};
use serde_json::{Value as Json, json};

const WHARF: &str = env!("CARGO_BIN_EXE_wharf");

fn wharf(fake: &Fake, args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    run_cli(WHARF, fake, args, stdin, None)
}

/// The request lines after the ping(s).
fn calls(fake: &Fake) -> Vec<String> {
    fake.sequence().into_iter().filter(|l| !l.ends_with(" /_ping")).collect()
}

/// docker's output with its program name replaced by ours (`docker: …`, `Run 'docker run --help'`),
/// so the rest can be compared byte for byte.
fn as_wharf(s: &str) -> String {
    s.replace("docker: ", "wharf: ").replace("'docker ", "'wharf ").replace("Usage:  docker ", "Usage:  wharf ")
}

/// Runs the same command with the docker CLI against a fresh fake of the same scenario and
/// checks the two request sequences agree; returns docker's requests.
fn same_as_docker(scenario: &Scenario, args: &[&str], stdin: Option<&[u8]>, ours: &Fake) -> Option<Vec<Rec>> {
    let bin = docker()?;
    let fake = Fake::start(scenario.clone());
    let (code, out, err) = run_cli(&bin, &fake, args, stdin, None);
    let theirs = calls(&fake);
    assert_eq!(
        calls(ours),
        theirs,
        "request sequence differs from docker's (docker: rc={code} out={out:?} err={err:?})"
    );
    Some(fake.requests())
}

fn create_body(reqs: &[Rec]) -> Json {
    by_path(reqs, "POST", "/containers/create").last().map(|r| r.json()).unwrap_or(Json::Null)
}

fn assert_same_create_body(ours: &Fake, docker_reqs: &Option<Vec<Rec>>) {
    if let Some(d) = docker_reqs {
        assert_eq!(
            strip_nulls(&create_body(&ours.requests())),
            strip_nulls(&create_body(d)),
            "create body differs from docker's"
        );
    }
}

fn hijack_headers_ok(r: &Rec) {
    assert_eq!(r.header("Upgrade"), Some("tcp"), "{r:?}");
    assert_eq!(r.header("Connection"), Some("Upgrade"), "{r:?}");
}

#[test]
fn run_attached_splits_output_and_exits_with_the_status() {
    let sc =
        Scenario { exit_code: 3, output: vec![(1, b"out\n".to_vec()), (2, b"err\n".to_vec())], ..Default::default() };
    let fake = Fake::start(sc.clone());
    let args = ["run", "--name", "web", "-e", "A=1", "busybox", "sh", "-c", "exit 3"];
    let (code, out, err) = wharf(&fake, &args, None);
    assert_eq!((code, out.as_str(), err.as_str()), (3, "out\n", "err\n"));
    assert_eq!(
        calls(&fake),
        vec![
            "POST /containers/create?name=web".to_string(),
            format!("POST /containers/{CID}/attach?stderr=1&stdout=1&stream=1"),
            format!("POST /containers/{CID}/wait?condition=next-exit"),
            format!("POST /containers/{CID}/start"),
        ]
    );
    let reqs = fake.requests();
    let attach = by_path(&reqs, "POST", "/attach")[0];
    hijack_headers_ok(attach);
    assert_eq!(attach.header("Content-Type"), Some("text/plain"));
    let body = create_body(&reqs);
    assert_eq!(body["Cmd"], json!(["sh", "-c", "exit 3"]));
    assert_eq!(body["Env"], json!(["A=1"]));
    assert_eq!(body["HostConfig"]["NetworkMode"], "default");
    assert!(body["NetworkingConfig"]["EndpointsConfig"]["default"].is_object());
    let d = same_as_docker(&sc, &args, None, &fake);
    assert_same_create_body(&fake, &d);
}

#[test]
fn run_detached_prints_the_id_and_waits_before_start() {
    let fake = Fake::start(Scenario::default());
    let args = ["run", "-d", "-p", "8080:80", "busybox", "top"];
    let (code, out, err) = wharf(&fake, &args, None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{CID}\n"));
    assert_eq!(
        calls(&fake),
        vec![
            "POST /containers/create".to_string(),
            format!("POST /containers/{CID}/wait?condition=next-exit"),
            format!("POST /containers/{CID}/start"),
        ]
    );
    let body = create_body(&fake.requests());
    assert_eq!(body["AttachStdout"], false);
    assert_eq!(body["ExposedPorts"], json!({"80/tcp": {}}));
    assert_eq!(body["HostConfig"]["PortBindings"], json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}));
    let d = same_as_docker(&Scenario::default(), &args, None, &fake);
    assert_same_create_body(&fake, &d);
}

#[test]
fn run_rm_waits_for_removal() {
    let sc = Scenario { exit_code: 0, output: vec![(1, b"hi\n".to_vec())], ..Default::default() };
    let fake = Fake::start(sc.clone());
    let args = ["run", "--rm", "busybox", "echo", "hi"];
    let (code, out, _) = wharf(&fake, &args, None);
    assert_eq!((code, out.as_str()), (0, "hi\n"));
    assert!(calls(&fake).contains(&format!("POST /containers/{CID}/wait?condition=removed")));
    assert_eq!(create_body(&fake.requests())["HostConfig"]["AutoRemove"], true);
    let d = same_as_docker(&sc, &args, None, &fake);
    assert_same_create_body(&fake, &d);
}

#[test]
fn run_interactive_pipes_stdin_and_half_closes() {
    let sc = Scenario { echo_stdin: true, ..Default::default() };
    let fake = Fake::start(sc.clone());
    let args = ["run", "-i", "busybox", "cat"];
    let (code, out, err) = wharf(&fake, &args, Some(b"hi\n"));
    assert_eq!((code, out.as_str()), (0, "hi\n"), "{err}");
    let (seen, eof) = fake.stdin_seen();
    assert_eq!(seen, b"hi\n");
    assert!(eof, "the CLI half-closes its side when stdin ends");
    assert!(calls(&fake).contains(&format!("POST /containers/{CID}/attach?stderr=1&stdin=1&stdout=1&stream=1")));
    let body = create_body(&fake.requests());
    assert_eq!(
        (&body["OpenStdin"], &body["StdinOnce"], &body["AttachStdin"]),
        (&json!(true), &json!(true), &json!(true))
    );
    let d = same_as_docker(&sc, &args, Some(b"hi\n"), &fake);
    assert_same_create_body(&fake, &d);
}

#[test]
fn run_pulls_a_missing_image() {
    let sc = Scenario { image_missing: true, ..Default::default() };
    let fake = Fake::start(sc.clone());
    let args = ["run", "-d", "busybox"];
    let (code, out, err) = wharf(&fake, &args, None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{CID}\n"));
    assert_eq!(
        err,
        "Unable to find image 'busybox:latest' locally\n\
         latest: Pulling from library/busybox\n\
         fbe4e913f855: Pulling fs layer\n\
         fbe4e913f855: Pull complete\n\
         Digest: sha256:3d0c83\n\
         Status: Downloaded newer image for busybox:latest\n"
    );
    let seq = calls(&fake);
    assert_eq!(
        &seq[..3],
        &[
            "POST /containers/create".to_string(),
            "POST /images/create?fromImage=docker.io/library/busybox&tag=latest".to_string(),
            "POST /containers/create".to_string(),
        ]
    );
    let reqs = fake.requests();
    let pull = by_path(&reqs, "POST", "/images/create")[0];
    assert_eq!(pull.header("X-Registry-Auth"), Some("e30="));
    same_as_docker(&sc, &args, None, &fake);
}

#[test]
fn run_start_errors_map_to_126_127_125() {
    for (msg, want) in [
        (
            "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"nonexistentcmd\": executable file not found in $PATH: unknown",
            127,
        ),
        ("failed to create shim task: exec: \"/etc/passwd\": permission denied: unknown", 126),
        ("driver failed programming external connectivity", 125),
    ] {
        let fake = Fake::start(Scenario { start_error: Some(msg.into()), ..Default::default() });
        let (code, _, err) = wharf(&fake, &["run", "busybox", "nonexistentcmd"], None);
        assert_eq!(code, want, "{err}");
        assert_eq!(
            err,
            format!("wharf: Error response from daemon: {msg}\n\nRun 'wharf run --help' for more information\n")
        );
    }
}

#[test]
fn run_option_errors_exit_125_with_dockers_messages() {
    let fake = Fake::start(Scenario::default());
    let (code, _, err) = wharf(&fake, &["run", "-p", "abc", "busybox"], None);
    assert_eq!(code, 125);
    assert_eq!(err, "wharf: invalid containerPort: abc\n\nRun 'wharf run --help' for more information\n");
    let (code, _, err) = wharf(&fake, &["run", "--dns", "x", "busybox"], None);
    assert_eq!(code, 125);
    assert_eq!(
        err,
        "invalid argument \"x\" for \"--dns\" flag: IP address is not correctly formatted: x\n\nUsage:  wharf run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'wharf run --help' for more information\n"
    );
    let (code, _, err) = wharf(&fake, &["run", "--rm", "--restart", "always", "busybox"], None);
    assert_eq!(code, 125);
    assert!(err.starts_with("wharf: conflicting options: cannot specify both --restart and --rm"));
    assert!(calls(&fake).is_empty(), "nothing is sent for bad options");
    if let Some(bin) = docker() {
        for args in [
            &["run", "-p", "abc", "busybox"][..],
            &["run", "--dns", "x", "busybox"][..],
            &["run", "-m", "1q", "busybox"][..],
        ] {
            let (dc, _, derr) = run_cli(&bin, &fake, args, None, None);
            let derr = as_wharf(&derr);
            let (wc, _, werr) = wharf(&fake, args, None);
            assert_eq!((wc, werr), (dc, derr), "{args:?}");
        }
    }
}

#[test]
fn exec_interactive_streams_and_returns_the_exec_exit_code() {
    let sc = Scenario { exec_exit: 2, ..Default::default() };
    let fake = Fake::start(sc.clone());
    let args = ["exec", "-i", "web", "sh", "-c", "cat; echo err >&2; exit 2"];
    let input = b"line1\nline2\n";
    let (code, out, err) = wharf(&fake, &args, Some(input));
    assert_eq!((code, out.as_str(), err.as_str()), (2, "line1\nline2\n", "err\n"));
    assert_eq!(
        calls(&fake),
        vec![
            "GET /containers/web/json".to_string(),
            "POST /containers/web/exec".to_string(),
            format!("POST /exec/{EXEC_ID}/start"),
            format!("GET /exec/{EXEC_ID}/json"),
        ]
    );
    let reqs = fake.requests();
    let start = by_path(&reqs, "POST", "/start")[0];
    hijack_headers_ok(start);
    assert_eq!(start.json(), json!({"Detach": false, "Tty": false}));
    let create = by_path(&reqs, "POST", "/exec")[0].json();
    assert_eq!(create["AttachStdin"], true);
    assert_eq!(create["Cmd"], json!(["sh", "-c", "cat; echo err >&2; exit 2"]));
    assert!(fake.stdin_seen().1, "stdin half-closed");
    if let Some(d) = same_as_docker(&sc, &args, Some(input), &fake) {
        let theirs = by_path(&d, "POST", "/exec")[0].json();
        assert_eq!(strip_nulls(&create), strip_nulls(&theirs));
        let theirs = by_path(&d, "POST", "/start")[0].json();
        assert_eq!(start.json(), strip_nulls(&theirs));
    }
}

#[test]
fn logs_follow_demultiplexes_by_tty() {
    let sc = Scenario {
        logs: vec![(1, b"tick 1\n".to_vec()), (2, b"oops\n".to_vec()), (1, b"tick 2\n".to_vec())],
        ..Default::default()
    };
    let fake = Fake::start(sc.clone());
    let args = ["logs", "-f", "-t", "--tail", "3", "web"];
    let (code, out, err) = wharf(&fake, &args, None);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "tick 1\ntick 2\n", "oops\n"));
    assert_eq!(
        calls(&fake),
        vec![
            "GET /containers/web/json".to_string(),
            format!("GET /containers/{CID}/logs?follow=1&stderr=1&stdout=1&tail=3&timestamps=1"),
        ]
    );
    same_as_docker(&sc, &args, None, &fake);
    // a TTY container's log is copied raw
    let tty = Fake::start(Scenario { tty: true, logs: vec![(1, b"\x01raw\r\n".to_vec())], ..Default::default() });
    let (_, out, _) = wharf(&tty, &["logs", "web"], None);
    assert_eq!(out, "\x01raw\r\n");
}

#[test]
fn cp_uses_dockers_path_rules() {
    let fake = Fake::start(Scenario::default());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "data\n").unwrap();
    let src = dir.path().join("a.txt");
    let src = src.to_string_lossy();
    // to a missing path: HEAD 404, then PUT into the parent with the entry renamed
    let (code, _, err) = wharf(&fake, &["cp", &src, "web:/tmp/b.txt"], None);
    assert_eq!(code, 0, "{err}");
    // into an existing directory: PUT there, entry keeps its name
    let (code, _, err) = wharf(&fake, &["cp", &src, "web:/tmp/"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        calls(&fake),
        vec![
            "HEAD /containers/web/archive?path=/tmp/b.txt".to_string(),
            "PUT /containers/web/archive?noOverwriteDirNonDir=1&path=/tmp".to_string(),
            "HEAD /containers/web/archive?path=/tmp/".to_string(),
            "PUT /containers/web/archive?noOverwriteDirNonDir=1&path=/tmp/".to_string(),
        ]
    );
    let reqs = fake.requests();
    let puts = by_path(&reqs, "PUT", "/archive");
    let names = |r: &Rec| -> Vec<(String, Vec<u8>)> {
        let mut a = tar::Archive::new(&r.body[..]);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let n = e.path().unwrap().to_string_lossy().into_owned();
                let mut d = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut d).unwrap();
                (n, d)
            })
            .collect()
    };
    assert_eq!(names(puts[0]), vec![("b.txt".to_string(), b"data\n".to_vec())]);
    assert_eq!(names(puts[1]), vec![("a.txt".to_string(), b"data\n".to_vec())]);
    // out of the container
    let out = dir.path().join("out.txt");
    let (code, _, err) = wharf(&fake, &["cp", "web:/tmp/f.txt", &out.to_string_lossy()], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "hello\n");
    // `-` streams the tar to stdout
    let (code, tarball, _) = wharf(&fake, &["cp", "web:/tmp/f.txt", "-"], None);
    assert_eq!(code, 0);
    assert!(tarball.starts_with("f.txt"));
    // a missing source is the daemon's 404
    let (code, _, err) = wharf(&fake, &["cp", "web:/nonexistent", &out.to_string_lossy()], None);
    assert_eq!(code, 1);
    assert_eq!(err, "Error response from daemon: Could not find the file /nonexistent in container web\n");
    if let Some(bin) = docker() {
        let theirs = Fake::start(Scenario::default());
        for args in [vec!["cp", &*src, "web:/tmp/b.txt"], vec!["cp", &*src, "web:/tmp/"]] {
            let (c, _, e) = run_cli(&bin, &theirs, &args, None, None);
            assert_eq!(c, 0, "{e}");
        }
        let d = theirs.requests();
        let theirs_seq: Vec<String> = theirs.sequence().into_iter().filter(|l| !l.ends_with("/_ping")).collect();
        assert_eq!(calls(&fake)[..4].to_vec(), theirs_seq);
        let dputs = by_path(&d, "PUT", "/archive");
        assert_eq!(names(puts[0]), names(dputs[0]));
        assert_eq!(names(puts[1]), names(dputs[1]));
    }
}

#[test]
fn stop_reports_each_container() {
    let fake = Fake::start(Scenario::default());
    let args = ["stop", "-t", "5", "web", "db"];
    let (code, out, _) = wharf(&fake, &args, None);
    assert_eq!((code, out.as_str()), (0, "web\ndb\n"));
    let mut seq = calls(&fake);
    seq.sort();
    assert_eq!(seq, vec!["POST /containers/db/stop?t=5".to_string(), "POST /containers/web/stop?t=5".to_string(),]);
    if let Some(bin) = docker() {
        let theirs = Fake::start(Scenario::default());
        run_cli(&bin, &theirs, &args, None, None);
        let mut t: Vec<String> = theirs.sequence().into_iter().filter(|l| !l.ends_with("/_ping")).collect();
        t.sort();
        assert_eq!(seq, t);
    }
}

fn ps_list() -> Json {
    json!([{
        "Id": "4f66ad9a0b2e8f27c6b9c7f8c6d0f4b2a1c3e5d7f9a8b6c4d2e0f1a3b5c7d9e1",
        "Names": ["/web"],
        "Image": "nginx",
        "ImageID": "sha256:aaaaaaaaaaaabbbb",
        "Command": "/docker-entrypoint.sh nginx -g 'daemon off;'",
        "Created": 1_700_000_000,
        "Ports": [
            {"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
            {"IP":"::","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
            {"PrivatePort":443,"Type":"tcp"},{"PrivatePort":444,"Type":"tcp"}
        ],
        "Labels": {"a":"1"},
        "State": "running",
        "Status": "Up 5 minutes",
        "HostConfig": {"NetworkMode": "bridge"},
        "NetworkSettings": {"Networks": {"bridge": {}}},
        "Mounts": []
    }])
}

#[test]
fn ps_table_and_formats() {
    let sc = Scenario { list: ps_list(), ..Default::default() };
    let fake = Fake::start(sc.clone());
    let (code, out, _) = wharf(&fake, &["ps", "-a", "--filter", "status=running"], None);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("CONTAINER ID   IMAGE     COMMAND                  CREATED"));
    assert!(lines[1].starts_with("4f66ad9a0b2e   nginx     \"/docker-entrypoint.…\"   "));
    assert!(lines[1].ends_with("Up 5 minutes   443-444/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp   web"));
    assert_eq!(calls(&fake), vec!["GET /containers/json?all=1&filters=[status=running]".to_string()]);
    if let Some(bin) = docker() {
        let theirs = Fake::start(sc.clone());
        for args in [
            vec!["ps", "-a", "--filter", "status=running"],
            vec!["ps", "--format", "{{.ID}} {{.Names}} {{.Ports}} {{.Labels}} {{.Command}}"],
            vec!["ps", "--no-trunc", "-q"],
            vec!["ps", "--format", "table {{.Names}}\t{{.Status}}\t{{.Networks}}"],
            vec!["ps", "--format", "json"],
        ] {
            let (dc, dout, _) = run_cli(&bin, &theirs, &args, None, None);
            let (wc, wout, _) = wharf(&fake, &args, None);
            assert_eq!((wc, wout), (dc, dout), "{args:?}");
        }
    }
}

#[test]
fn port_lists_mappings() {
    let sc = Scenario {
        ports: json!({"80/tcp": [{"HostIp":"0.0.0.0","HostPort":"8080"},{"HostIp":"::","HostPort":"8080"}], "53/udp": null}),
        ..Default::default()
    };
    let fake = Fake::start(sc.clone());
    let (code, out, _) = wharf(&fake, &["port", "web"], None);
    assert_eq!((code, out.as_str()), (0, "80/tcp -> 0.0.0.0:8080\n80/tcp -> [::]:8080\n"));
    if let Some(bin) = docker() {
        for args in [vec!["port", "web"], vec!["port", "web", "80"], vec!["port", "web", "53/udp"]] {
            let (dc, dout, derr) = run_cli(&bin, &fake, &args, None, None);
            let (dout, derr) = (as_wharf(&dout), as_wharf(&derr));
            let (wc, wout, werr) = wharf(&fake, &args, None);
            assert_eq!((wc, wout, werr), (dc, dout, derr), "{args:?}");
        }
    }
}

/// What a CLI run on a pseudo-terminal did.
struct PtyRun {
    code: Option<i32>,
    output: Vec<u8>,
    before: rustix::termios::Termios,
    after: rustix::termios::Termios,
}

/// Runs wharf with a pty (30x100) as its terminal; types `hello` until the fake sees stdin,
/// then `finish`.
fn run_on_pty(fake: &Fake, args: &[&str], finish: &[u8]) -> PtyRun {
    use rustix::termios;
    use std::os::fd::AsFd;
    let master =
        rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY).expect("openpt");
    rustix::pty::grantpt(&master).expect("grantpt");
    rustix::pty::unlockpt(&master).expect("unlockpt");
    let name = rustix::pty::ptsname(&master, Vec::new()).expect("ptsname");
    let open_slave = || {
        std::fs::OpenOptions::new().read(true).write(true).open(name.to_str().expect("pts name")).expect("open slave")
    };
    let slave = open_slave();
    termios::tcsetwinsize(slave.as_fd(), termios::Winsize { ws_row: 30, ws_col: 100, ws_xpixel: 0, ws_ypixel: 0 })
        .expect("winsize");
    let before = termios::tcgetattr(slave.as_fd()).expect("tcgetattr");
    let cfg = tempfile::tempdir().expect("cfg");
    let mut child = std::process::Command::new(WHARF)
        .env("WHARF_HOST", fake.host())
        .env("DOCKER_CONFIG", cfg.path())
        .args(args)
        .stdin(slave.try_clone().expect("dup"))
        .stdout(slave.try_clone().expect("dup"))
        .stderr(slave.try_clone().expect("dup"))
        .spawn()
        .expect("spawn");
    // only the child holds the slave now: reading the master ends when it exits
    drop(slave);
    let mut m = std::fs::File::from(master);
    let reader = {
        let mut m2 = m.try_clone().expect("dup master");
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 1024];
            while let Ok(n) = std::io::Read::read(&mut m2, &mut buf) {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
            }
            all
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline && fake.stdin_seen().0.is_empty() {
        // keep typing until the session is up (before raw mode, the terminal buffers it)
        std::io::Write::write_all(&mut m, b"hello").expect("type");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    std::io::Write::write_all(&mut m, finish).expect("type");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > std::time::Duration::from_secs(15) {
            let _ = child.kill();
            panic!("{args:?} hung on the pty");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let output = reader.join().expect("reader");
    let after = termios::tcgetattr(open_slave().as_fd()).expect("tcgetattr");
    PtyRun { code: status.code(), output, before, after }
}

#[test]
fn run_tty_uses_a_raw_terminal_and_resizes() {
    let sc = Scenario {
        tty: true,
        open_stdin: true,
        echo_stdin: true,
        exit_code: 5,
        output: vec![(1, b"/ # ".to_vec())],
        ..Default::default()
    };
    let fake = Fake::start(sc);
    // ctrl-d: the fake's "shell" exits with 5
    let r = run_on_pty(&fake, &["run", "-it", "--rm", "busybox", "sh"], b"\x04");
    assert_eq!(r.code, Some(5));
    assert!(r.output.windows(4).any(|w| w == b"/ # "), "{:?}", r.output);
    let (typed, _) = fake.stdin_seen();
    assert!(typed.starts_with(b"hello"), "{typed:?}");
    let reqs = fake.requests();
    let body = create_body(&reqs);
    assert_eq!(body["Tty"], true);
    assert_eq!(body["HostConfig"]["ConsoleSize"], json!([30, 100]));
    let resize = by_path(&reqs, "POST", "/resize");
    assert!(!resize.is_empty(), "{:?}", calls(&fake));
    assert_eq!((resize[0].q("h"), resize[0].q("w")), (Some("30"), Some("100")));
    assert!(calls(&fake).contains(&format!("POST /containers/{CID}/wait?condition=removed")));
    // the terminal is restored
    assert_eq!(r.after.local_modes, r.before.local_modes);
    assert_eq!(r.after.input_modes, r.before.input_modes);
    assert_eq!(r.after.output_modes, r.before.output_modes);
}

#[test]
fn run_tty_detach_keys_end_the_session() {
    let sc = Scenario {
        tty: true,
        open_stdin: true,
        echo_stdin: true,
        output: vec![(1, b"/ # ".to_vec())],
        ..Default::default()
    };
    // the default ctrl-p ctrl-q
    let fake = Fake::start(sc.clone());
    let r = run_on_pty(&fake, &["run", "-it", "busybox", "sh"], b"\x10\x11");
    assert_eq!(r.code, Some(0), "{:?}", String::from_utf8_lossy(&r.output));
    let (typed, _) = fake.stdin_seen();
    assert!(!typed.contains(&0x10), "the detach keys are not sent: {typed:?}");
    assert_eq!(r.after.local_modes, r.before.local_modes);
    // --detach-keys, also sent to the daemon
    let fake = Fake::start(sc);
    let r = run_on_pty(&fake, &["run", "-it", "--detach-keys", "ctrl-a,x", "busybox", "sh"], b"\x01x");
    assert_eq!(r.code, Some(0));
    assert!(
        calls(&fake)
            .contains(&format!("POST /containers/{CID}/attach?detachKeys=ctrl-a,x&stderr=1&stdin=1&stdout=1&stream=1"))
    );
}

/// Commands whose output and requests must match the docker CLI's exactly (skipped without
/// docker): each runs against a fresh fake with the same scenario.
#[test]
fn simple_commands_match_docker() {
    let Some(bin) = docker() else {
        eprintln!("skipped: the docker CLI is not installed");
        return;
    };
    let sc = Scenario {
        exit_code: 7,
        exited: true,
        list: ps_list(),
        ports: json!({"80/tcp": [{"HostIp":"0.0.0.0","HostPort":"8080"}]}),
        ..Default::default()
    };
    let cases: &[&[&str]] = &[
        &["wait", "web"],
        &["wait", "missing"],
        &["rm", "-f", "web", "missing"],
        &["rm", "web", "missing"],
        &["rm", "-v", "web"],
        &["kill", "web", "db"],
        &["kill", "-s", "USR1", "web"],
        &["restart", "-t", "3", "web"],
        &["pause", "web"],
        &["unpause", "web", "db"],
        &["rename", "web", "web2"],
        &["top", "web"],
        &["top", "web", "aux"],
        &["diff", "web"],
        &["commit", "-m", "msg", "-a", "me", "-c", "ENV A=1", "-c", "CMD sh", "web", "repo/x:tag"],
        &["commit", "--pause=false", "web"],
        &["update", "-m", "512m", "--cpus", "1.5", "--restart", "on-failure:3", "web"],
        &["update", "web"],
        &["container", "prune", "-f"],
        &["container", "prune", "-f", "--filter", "until=24h"],
        &["export", "web"],
        &["inspect", "web"],
        &["inspect", "-f", "{{.Name}} {{.State.Running}} {{.Id}}", "web"],
        &["inspect", "-f", "{{.ID}}", "web"],
        &["inspect", "-f", "{{.HostConfig.CpuShares}} {{json .HostConfig}}", "web"],
        &["inspect", "--format", "json", "web"],
        &["inspect", "-f", "{{json .Config}}", "web"],
        &["inspect", "busybox"],
        &["inspect", "nosuch"],
        &["inspect", "web", "nosuch"],
        &["inspect", "--type", "volume", "nosuch"],
        &["inspect", "-s", "busybox"],
        &["container", "inspect", "web", "missing"],
        &["stats", "--no-stream", "web"],
        &[
            "stats",
            "--no-stream",
            "--no-trunc",
            "--format",
            "{{.Container}} {{.Name}} {{.ID}} {{.CPUPerc}} {{.MemUsage}} {{.NetIO}} {{.BlockIO}} {{.PIDs}}",
            "web",
        ],
        &["stats", "--no-stream", "--format", "json", "web"],
        &["stats", "--no-stream"],
        &["start", "web", "db"],
        &["start", "missing"],
        &["create", "--name", "x", "busybox"],
        &["port", "web", "80/tcp"],
        &["port", "web", "81"],
        &["logs", "web"],
        &["ps", "-n", "2", "-s"],
        &["ps", "-l", "--format", "{{.Size}}"],
        &["container", "ls", "-a", "-q"],
        &["rename", " ", "x"],
        &["stop", "--time", "1", "-t", "2", "web"],
        &["exec", "-d", "-e", "A=1", "-w", "/tmp", "-u", "1000", "web", "sleep", "10"],
        &["exec", "-it", "web", "sh"],
        &["run", "-it", "busybox"],
        &["rm", "/"],
        &["ps", "-a", "--filter", "status=exited", "--filter", "label=a=1", "--no-trunc"],
        &["ps", "--format", "raw"],
        &["ps", "--format", "table {{.ID}}\t{{.Label \"a\"}}\t{{.Mounts}}"],
        &["logs", "--since", "2026-01-02T03:04:05Z", "--until", "1700000000", "--details", "web"],
        &["port", "missing"],
        &["top", "missing"],
        &["inspect", "--type", "bogus", "web"],
        &["container", "inspect", "-s", "-f", "{{.Name}}", "web"],
        &["export", "-o", "/nonexistent-dir/x.tar", "web"],
        &["commit", "web", "Bad:Ref"],
        &["commit", "web", "repo@sha256:0000000000000000000000000000000000000000000000000000000000000000"],
        &["update", "--restart", "bogus:x", "web"],
        &["wait", "web", "missing"],
    ];
    let mut failures = Vec::new();
    let stdin_cases: &[(&[&str], &[u8])] =
        &[(&["container", "prune"], b"n\n"), (&["container", "prune"], b"y\n"), (&["container", "prune"], b"")];
    let all = cases.iter().map(|a| (*a, None)).chain(stdin_cases.iter().map(|(a, i)| (*a, Some(*i))));
    for (args, input) in all {
        let theirs = Fake::start(sc.clone());
        let (dc, dout, derr) = run_cli(&bin, &theirs, args, input, None);
        let (dout, derr) = (as_wharf(&dout), as_wharf(&derr));
        let ours = Fake::start(sc.clone());
        let (wc, wout, werr) = wharf(&ours, args, input);
        let mut dseq = calls(&theirs);
        let mut wseq = calls(&ours);
        dseq.sort();
        wseq.sort();
        if (dc, &dout, &derr) != (wc, &wout, &werr) || dseq != wseq {
            failures.push(format!(
                "{args:?}\n  docker: rc={dc} out={dout:?} err={derr:?}\n          {dseq:?}\n  wharf:  rc={wc} out={wout:?} err={werr:?}\n          {wseq:?}"
            ));
        }
    }
    // attaching to a stopped container
    let stopped = Scenario { stopped: true, ..Default::default() };
    let theirs = Fake::start(stopped.clone());
    let ours = Fake::start(stopped);
    let d = run_cli(&bin, &theirs, &["attach", "web"], None, None);
    let d = (d.0, as_wharf(&d.1), as_wharf(&d.2));
    let w = wharf(&ours, &["attach", "web"], None);
    if d != w {
        failures.push(format!("attach to a stopped container: {d:?} vs {w:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `create` with every flag family: the request body must equal the docker CLI's.
#[test]
fn create_bodies_match_docker_for_all_flag_families() {
    let Some(bin) = docker() else {
        eprintln!("skipped: the docker CLI is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("env"), "FROM_FILE=1\n# comment\nEMPTY=\n").unwrap();
    std::fs::write(dir.path().join("labels"), "lf=1\nbare\n").unwrap();
    let cases: &[&[&str]] = &[
        &[
            "-e",
            "A=1",
            "-e",
            "HOME",
            "--env-file",
            "env",
            "-l",
            "a=b",
            "--label-file",
            "labels",
            "-p",
            "127.0.0.1:8080-8081:80-81/udp",
            "-p",
            "[::1]:9000:9000",
            "-p",
            "53",
            "-P",
            "--expose",
            "7000-7001",
            "-v",
            "/data",
            "-v",
            "vol:/v:ro",
            "-v",
            "./rel:/r",
            "--tmpfs",
            "/run:rw,size=1m",
            "--read-only",
            "--volumes-from",
            "other:ro",
        ],
        &[
            "--mount",
            "type=bind,src=/tmp,dst=/t,readonly,bind-propagation=rshared",
            "--mount",
            "type=tmpfs,dst=/tt,tmpfs-size=64m,tmpfs-mode=1770",
            "--mount",
            "type=volume,src=v2,dst=/v2,volume-driver=local,volume-opt=type=tmpfs,volume-label=x=y,volume-nocopy",
            "--mount",
            "type=bind,src=./rel,dst=/b,bind-recursive=disabled",
            "--mount",
            "type=image,src=busybox,dst=/img,image-subpath=bin",
            "--mount",
            "dst=/anon",
        ],
        &[
            "--privileged",
            "--cap-add",
            "net_admin",
            "--cap-add",
            "CAP_SYS_TIME",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            "apparmor=unconfined",
            "--security-opt",
            "systempaths=unconfined",
            "--device",
            "/dev/fuse",
            "--device",
            "/dev/sda:/dev/xvda:r",
            "--device-cgroup-rule",
            "c 1:3 mr",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "--ulimit",
            "nofile=1024:2048",
            "--ulimit",
            "core=0",
            "--init",
            "--ipc",
            "private",
            "--pid",
            "host",
            "--uts",
            "host",
            "--userns",
            "host",
            "--cgroupns",
            "private",
            "--cgroup-parent",
            "/x",
            "--runtime",
            "runc",
            "--group-add",
            "audio",
            "--annotation",
            "a=b",
            "--isolation",
            "default",
        ],
        &[
            "-m",
            "512m",
            "--memory-swap",
            "1g",
            "--memory-reservation",
            "256m",
            "--memory-swappiness",
            "10",
            "--oom-kill-disable",
            "--oom-score-adj",
            "100",
            "--cpus",
            "1.5",
            "-c",
            "512",
            "--cpu-period",
            "100000",
            "--cpu-quota",
            "50000",
            "--cpuset-cpus",
            "0-1",
            "--cpuset-mems",
            "0",
            "--pids-limit",
            "100",
            "--blkio-weight",
            "300",
            "--blkio-weight-device",
            "/dev/sda:200",
            "--device-read-bps",
            "/dev/sda:1mb",
            "--device-write-iops",
            "/dev/sda:100",
            "--shm-size",
            "64m",
            "--cpu-rt-runtime",
            "950",
        ],
        &[
            "--restart",
            "on-failure:3",
            "--stop-signal",
            "SIGINT",
            "--stop-timeout",
            "20",
            "--health-cmd",
            "curl -f http://localhost/",
            "--health-interval",
            "30s",
            "--health-timeout",
            "5s",
            "--health-retries",
            "3",
            "--health-start-period",
            "1m",
            "--health-start-interval",
            "2s",
            "--log-driver",
            "json-file",
            "--log-opt",
            "max-size=10m",
            "-w",
            "/w",
            "-u",
            "1000:1000",
            "--entrypoint",
            "/bin/sh",
            "--hostname",
            "h",
            "--domainname",
            "d",
            "--add-host",
            "db:10.0.0.2",
            "--add-host",
            "v6=[::1]",
            "--dns",
            "8.8.8.8",
            "--dns-search",
            "example.com",
            "--dns-option",
            "ndots:2",
            "--name",
            "x",
            "-t",
            "-i",
        ],
        &[
            "--network",
            "mynet",
            "--network-alias",
            "web",
            "--ip",
            "172.20.0.5",
            "--ip6",
            "2001:db8::33",
            "--mac-address",
            "92:d0:c6:0a:29:33",
            "--link",
            "db:db",
            "--link-local-ip",
            "169.254.0.9",
        ],
        &["--network", "name=a,alias=x,driver-opt=k=v,gw-priority=3", "--network", "b"],
        &["--net", "host", "--rm", "--restart", "no"],
        &["--network", "none", "-a", "stdout", "-a", "STDERR"],
        &["--no-healthcheck", "--entrypoint", "", "--platform", "linux/amd64", "--pull", "never"],
        &["--restart", "unless-stopped", "--storage-opt", "size=10G", "--volume-driver", "local"],
    ];
    let mut failures = Vec::new();
    for flags in cases {
        let mut args = vec!["create"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "sh", "-c", "echo hi"]);
        let theirs = Fake::start(Scenario::default());
        let (dc, _, derr) = run_cli(&bin, &theirs, &args, None, Some(dir.path()));
        let ours = Fake::start(Scenario::default());
        let (wc, _, werr) = run_cli(WHARF, &ours, &args, None, Some(dir.path()));
        let (d, w) = (theirs.requests(), ours.requests());
        let dc_req = by_path(&d, "POST", "/containers/create");
        let wc_req = by_path(&w, "POST", "/containers/create");
        if dc != wc || derr != werr || dc_req.len() != wc_req.len() {
            failures.push(format!("{flags:?}: docker rc={dc} {derr:?} / wharf rc={wc} {werr:?}"));
            continue;
        }
        if let (Some(dr), Some(wr)) = (dc_req.first(), wc_req.first()) {
            // docker builds Binds from a Go map: its order is random
            // (and the `-e` part of Env, from another Go map)
            let sort_binds = |mut v: Json| {
                for p in ["/HostConfig/Binds", "/Env"] {
                    if let Some(b) = v.pointer_mut(p).and_then(Json::as_array_mut) {
                        b.sort_by_key(|x| x.to_string());
                    }
                }
                v
            };
            let (db, wb) = (sort_binds(strip_nulls(&dr.json())), sort_binds(strip_nulls(&wr.json())));
            if db != wb {
                failures.push(format!(
                    "{flags:?}:\n  docker {}\n  wharf  {}",
                    serde_json::to_string(&db).unwrap(),
                    serde_json::to_string(&wb).unwrap()
                ));
            }
            if dr.normalized() != wr.normalized() {
                failures.push(format!("{flags:?}: {} vs {}", dr.normalized(), wr.normalized()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Invalid option values: the same message and exit code (125) as docker, nothing created.
#[test]
fn option_errors_match_docker() {
    let Some(bin) = docker() else {
        eprintln!("skipped: the docker CLI is not installed");
        return;
    };
    let cases: &[&[&str]] = &[
        &["--ulimit", "bogus=1"],
        &["--ulimit", "nofile=2:1"],
        &["--mount", "type=bind,src=/a"],
        &["--mount", "type=volume,dst=/a,tmpfs-size=1m"],
        &["--mount", "dst=/a,bogus=1"],
        &["--health-interval", "soon"],
        &["--health-retries", "-1", "--health-cmd", "true"],
        &["--no-healthcheck", "--health-cmd", "true"],
        &["--memory-swappiness", "200"],
        &["--expose", "1:2"],
        &["--expose", "x"],
        &["-p", "1.2.3:80:80"],
        &["-p", "80/xyz"],
        &["-p", "published=1,bad"],
        &["--cpus", "abc"],
        &["--cpus", "0.0000000001"],
        &["-m", "1kbb"],
        &["--shm-size", "x"],
        &["--device", "/dev/sda:rr:x"],
        &["--device", "relative"],
        &["--security-opt", "label"],
        &["--pid", "bogus"],
        &["--uts", "container:x"],
        &["--userns", "bogus"],
        &["--cgroupns", "bogus"],
        &["--network", "alias=x"],
        &["--network", "host", "--network-alias", "x"],
        &["--network", "a", "--network", "host"],
        &["--mac-address", "zz"],
        &["-l", "=x"],
        &["--sysctl", "kernel.foo=1"],
        &["--add-host", "bad"],
        &["--add-host", "h:1.2.3"],
        &["--dns", "x"],
        &["--dns-search", "123"],
        &["-a", "bogus"],
        &["--blkio-weight", "70000"],
        &["--blkio-weight-device", "sda:5"],
        &["--device-read-bps", "/dev/sda:x"],
        &["-e", "=x"],
        &["--env-file", "/nonexistent"],
        &["--label-file", "/nonexistent"],
        &["--stop-timeout", "x"],
        &["-c", "x"],
        &["--oom-score-adj", "x"],
        &["--log-driver", "none", "--log-opt", "a=b"],
        &["--restart", ":3"],
        &["--restart", "on-failure:x"],
        &["--rm", "--restart", "always"],
        &["--storage-opt", "x"],
        &["--device-cgroup-rule", "x 1:3 mr"],
        &["--link", "a:b:c"],
        &["--pull", "sometimes"],
        &["--rm=maybe"],
    ];
    let fake = Fake::start(Scenario::default());
    let mut failures = Vec::new();
    for flags in cases {
        for cmd in ["run", "create"] {
            let mut args = vec![cmd];
            args.extend_from_slice(flags);
            args.push("busybox");
            let (dc, dout, derr) = run_cli(&bin, &fake, &args, None, None);
            let (dout, derr) = (as_wharf(&dout), as_wharf(&derr));
            let (wc, wout, werr) = wharf(&fake, &args, None);
            if (dc, &dout, &derr) != (wc, &wout, &werr) {
                failures
                    .push(format!("{args:?}\n  docker rc={dc} {dout:?} {derr:?}\n  wharf  rc={wc} {wout:?} {werr:?}"));
            }
        }
    }
    assert!(
        by_path(&fake.requests(), "POST", "/containers/create").is_empty(),
        "a container was created for an invalid option"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn start_attach_and_attach_follow_dockers_sequences() {
    let sc = Scenario {
        exit_code: 3,
        open_stdin: true,
        echo_stdin: true,
        output: vec![(1, b"out\n".to_vec()), (2, b"err\n".to_vec())],
        ..Default::default()
    };
    // start -a: inspect, attach, wait next-exit, start; the container's status is ours
    let fake = Fake::start(sc.clone());
    let (code, out, err) = wharf(&fake, &["start", "-a", "web"], None);
    assert_eq!((code, out.as_str(), err.as_str()), (3, "out\n", "err\n"));
    assert_eq!(
        calls(&fake),
        vec![
            "GET /containers/web/json".to_string(),
            format!("POST /containers/{CID}/attach?stderr=1&stdout=1&stream=1"),
            format!("POST /containers/{CID}/wait?condition=next-exit"),
            format!("POST /containers/{CID}/start"),
        ]
    );
    same_as_docker(&sc, &["start", "-a", "web"], None, &fake);
    // start -ai: stdin attached
    let fake = Fake::start(sc.clone());
    let (code, out, _) = wharf(&fake, &["start", "-ai", "web"], Some(b"hi\n"));
    assert_eq!((code, out.as_str()), (3, "out\nhi\n"));
    same_as_docker(&sc, &["start", "-ai", "web"], Some(b"hi\n"), &fake);
    // attach to a running container: wait, inspect, attach, inspect
    let running = Scenario { running: true, echo_stdin: false, ..sc.clone() };
    for args in [&["attach", "web"][..], &["attach", "--no-stdin", "web"][..]] {
        let fake = Fake::start(running.clone());
        let (code, out, err) = wharf(&fake, args, None);
        assert_eq!((code, out.as_str(), err.as_str()), (3, "out\n", "err\n"), "{args:?}");
        let stdin = if args.len() == 2 { "stdin=1&" } else { "" };
        assert_eq!(
            calls(&fake),
            vec![
                "POST /containers/web/wait".to_string(),
                "GET /containers/web/json".to_string(),
                format!("POST /containers/web/attach?stderr=1&{stdin}stdout=1&stream=1"),
                "GET /containers/web/json".to_string(),
            ]
        );
        same_as_docker(&running, args, None, &fake);
    }
}

#[test]
fn run_forwards_signals_to_the_container() {
    let fake =
        Fake::start(Scenario { until_killed: true, output: vec![(1, b"running\n".to_vec())], ..Default::default() });
    let cfg = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(WHARF)
        .env("WHARF_HOST", fake.host())
        .env("DOCKER_CONFIG", cfg.path())
        .args(["run", "busybox", "sleep", "100"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !calls(&fake).iter().any(|c| c.ends_with("/start")) {
        assert!(std::time::Instant::now() < deadline, "never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let mut child = child;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("run did not end after SIGINT: {out:?}\n{:?}", calls(&fake));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "running\n");
    assert!(calls(&fake).contains(&format!("POST /containers/{CID}/kill?signal=INT")), "{:?}", calls(&fake));
}

/// The first frames of a live `stats` run of `bin` (killed after 1.7 s).
fn stats_frames(bin: &str) -> (Vec<String>, Vec<String>) {
    let fake = Fake::start(Scenario::default());
    let cfg = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(bin)
        .env("WHARF_HOST", fake.host())
        .env("DOCKER_HOST", fake.host())
        .env("DOCKER_CONFIG", cfg.path())
        .args(["stats", "--format", "table {{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}", "web"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1700));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let frames = out.split_inclusive("\x1b[J").filter(|f| f.ends_with("\x1b[J")).map(str::to_owned).collect();
    (frames, calls(&fake))
}

#[test]
fn stats_redraws_the_table_in_place() {
    let (frames, seq) = stats_frames(WHARF);
    assert!(frames.len() >= 2, "{frames:?}");
    let first = &frames[0];
    assert!(
        first.starts_with("\x1b[HNAME      CPU %     MEM USAGE / LIMIT\nweb       1.00%     844KiB / 23.54GiB\n"),
        "{first:?}"
    );
    assert!(first.contains(" \x1b[K\n"), "{first:?}");
    assert!(seq.contains(&"GET /containers/web/stats?stream=1".to_string()), "{seq:?}");
    if let Some(bin) = docker() {
        let (theirs, tseq) = stats_frames(&bin);
        assert_eq!(frames[0], theirs[0]);
        assert_eq!(seq, tseq);
    }
}
