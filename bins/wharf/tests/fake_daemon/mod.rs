//! A fake Docker Engine API daemon for the CLI tests.
//!
//! IMPORTANT: this fake stands in ONLY for the daemon's replies. It answers the way dockerd
//! does in the captures of `shared/compat/docker-api.md` (101 hijacks with multiplexed frames,
//! `/wait` whose headers come at once and whose body comes at exit, JSON errors), so the tests
//! can check what the CLI sends and how it handles the answers. The real daemon side is
//! exercised by the lead's end-to-end tests against wharfd.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const CID: &str = "c0ffee00000000000000000000000000000000000000000000000000000000aa";
pub const EXEC_ID: &str = "e0e0e0e0000000000000000000000000000000000000000000000000000000bb";

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Rec {
    pub method: String,
    /// The path without its `/vX.Y` prefix.
    pub path: String,
    pub version: Option<String>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Rec {
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str())
    }

    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap_or(Json::Null)
    }

    /// `METHOD /path?normalized-query`: booleans as `1`, false/empty values dropped, filters
    /// as sorted `key=value` lists — what a daemon makes of the query either way.
    pub fn normalized(&self) -> String {
        let mut q: Vec<String> = Vec::new();
        for (k, v) in &self.query {
            let v = match v.as_str() {
                "true" | "True" | "1" => "1".to_owned(),
                "false" | "False" | "0" | "" => continue,
                _ => v.clone(),
            };
            if k == "filters" {
                let f: Json = serde_json::from_str(&v).unwrap_or(Json::Null);
                let mut items = Vec::new();
                if let Some(m) = f.as_object() {
                    for (fk, fv) in m {
                        match fv {
                            Json::Array(a) => {
                                for x in a {
                                    items.push(format!("{fk}={}", x.as_str().unwrap_or("")))
                                }
                            }
                            Json::Object(o) => {
                                for (x, on) in o {
                                    if on.as_bool() == Some(true) {
                                        items.push(format!("{fk}={x}"))
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                items.sort();
                q.push(format!("filters=[{}]", items.join(",")));
                continue;
            }
            q.push(format!("{k}={v}"));
        }
        q.sort();
        if q.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, q.join("&"))
        }
    }
}

/// How the fake container behaves.
#[derive(Clone, Default)]
pub struct Scenario {
    pub tty: bool,
    pub open_stdin: bool,
    pub exit_code: i64,
    /// Output frames (stream 1 or 2) sent once the container starts.
    pub output: Vec<(u8, Vec<u8>)>,
    /// Echo what the client sends on stdin (`cat`).
    pub echo_stdin: bool,
    /// The first create answers 404 `No such image`.
    pub image_missing: bool,
    /// `POST start` fails with this message (400).
    pub start_error: Option<String>,
    pub exec_exit: i64,
    /// `GET /containers/json`.
    pub list: Json,
    /// `GET /containers/{id}/logs` frames.
    pub logs: Vec<(u8, Vec<u8>)>,
    /// `NetworkSettings.Ports` of the inspect answer.
    pub ports: Json,
    /// The container has already exited with `exit_code` (for `wait`).
    pub exited: bool,
    /// The container is already running (for `attach`).
    pub running: bool,
    /// The container runs until `POST kill`, then exits with 128+signal (INT: 130).
    pub until_killed: bool,
    /// Inspect reports the container as stopped.
    pub stopped: bool,
}

pub struct State {
    pub scenario: Scenario,
    pub log: Mutex<Vec<Rec>>,
    started: tokio::sync::watch::Sender<bool>,
    exited: tokio::sync::watch::Sender<Option<i64>>,
    creates: Mutex<u32>,
    /// What the client sent on hijacked stdin, and whether it half-closed.
    pub stdin: Mutex<Vec<u8>>,
    pub stdin_eof: Mutex<bool>,
    killed: tokio::sync::watch::Sender<Option<String>>,
}

pub struct Fake {
    _dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub state: Arc<State>,
    _thread: std::thread::JoinHandle<()>,
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn full(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed_unsync());
    *r.status_mut() = status;
    if !ctype.is_empty() {
        r.headers_mut().insert("Content-Type", ctype.parse().expect("header"));
    }
    add_common(&mut r);
    r
}

fn add_common(r: &mut Response<Body>) {
    let h = r.headers_mut();
    h.insert("Api-Version", "1.53".parse().expect("header"));
    h.insert("Ostype", "linux".parse().expect("header"));
    h.insert("Server", "Docker/28.2.2-compat (linux)".parse().expect("header"));
    h.insert("Docker-Experimental", "false".parse().expect("header"));
}

fn json_reply(status: StatusCode, v: Json) -> Response<Body> {
    full(status, "application/json", v.to_string())
}

fn err_reply(status: StatusCode, msg: &str) -> Response<Body> {
    json_reply(status, json!({ "message": msg }))
}

/// A chunked body fed by a channel (headers go out at once).
fn channel_body(status: StatusCode, ctype: &str) -> (Response<Body>, tokio::sync::mpsc::Sender<Bytes>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut r = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
    *r.status_mut() = status;
    r.headers_mut().insert("Content-Type", ctype.parse().expect("header"));
    add_common(&mut r);
    (r, tx)
}

pub fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![stream, 0, 0, 0];
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                if let Ok(v) = u8::from_str_radix(h, 16) {
                    out.push(v);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn stat_header(name: &str, size: i64, mode: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(
        json!({"name": name, "size": size, "mode": mode, "mtime": "2026-11-23T02:22:51Z", "linkTarget": ""})
            .to_string(),
    )
}

impl Fake {
    pub fn start(scenario: Scenario) -> Fake {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("docker.sock");
        let (started, _) = tokio::sync::watch::channel(scenario.running);
        let (exited, _) = tokio::sync::watch::channel(scenario.exited.then_some(scenario.exit_code));
        let state = Arc::new(State {
            scenario,
            log: Mutex::new(Vec::new()),
            started,
            exited,
            creates: Mutex::new(0),
            stdin: Mutex::new(Vec::new()),
            stdin_eof: Mutex::new(false),
            killed: tokio::sync::watch::channel(None).0,
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let st = state.clone();
        let path = sock.clone();
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::UnixListener::bind(&path).expect("bind");
                let _ = ready_tx.send(());
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let st = st.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .with_upgrades()
                            .await;
                    });
                }
            });
        });
        ready_rx.recv().expect("fake daemon started");
        Fake { _dir: dir, sock, state, _thread: thread }
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    pub fn requests(&self) -> Vec<Rec> {
        self.state.log.lock().expect("log").clone()
    }

    /// The normalized request lines, pings and resizes included.
    pub fn sequence(&self) -> Vec<String> {
        self.requests().iter().map(Rec::normalized).collect()
    }

    pub fn stdin_seen(&self) -> (Vec<u8>, bool) {
        (self.state.stdin.lock().expect("stdin").clone(), *self.state.stdin_eof.lock().expect("eof"))
    }
}

fn inspect_text(s: &Scenario) -> String {
    format!(
        r#"{{"Id":"{CID}","Created":"2026-11-23T02:22:03.065273975Z","Path":"sh","Args":[],"State":{{"Status":"{}","Running":{},"Paused":false,"Restarting":false,"Pid":42,"ExitCode":0}},"Image":"sha256:1111","Name":"/web","HostConfig":{{"AutoRemove":false,"CpuShares":0,"Dns":[]}},"Config":{{"Hostname":"c0ffee","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":{},"OpenStdin":{},"StdinOnce":false,"Env":["A=<b>&c"],"Cmd":null,"Image":"busybox","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{{}}}},"NetworkSettings":{{"Ports":{}}}}}"#,
        if s.stopped { "exited" } else { "running" },
        !s.stopped,
        s.tty,
        s.open_stdin,
        if s.ports.is_null() { "{}".to_owned() } else { s.ports.to_string() }
    )
}

fn inspect_doc(s: &Scenario) -> Json {
    json!({
        "Id": CID,
        "Name": "/web",
        "Image": "sha256:1111",
        "Config": {"Tty": s.tty, "OpenStdin": s.open_stdin, "Image": "busybox"},
        "State": {"Status": "running", "Running": true, "Paused": false, "Restarting": false},
        "HostConfig": {"AutoRemove": false},
        "NetworkSettings": {"Ports": s.ports},
    })
}

async fn handle(st: Arc<State>, mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let on_upgrade = hyper::upgrade::on(&mut req);
    let method = req.method().to_string();
    let full_path = req.uri().path().to_owned();
    let (version, path) = match full_path.strip_prefix("/v") {
        Some(rest) if rest.chars().next().is_some_and(|c| c.is_ascii_digit()) => {
            let i = rest.find('/').unwrap_or(rest.len());
            (Some(rest[..i].to_owned()), rest[i..].to_owned())
        }
        _ => (None, full_path.clone()),
    };
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (url_decode(k), url_decode(v))
        })
        .collect();
    let headers: Vec<(String, String)> =
        req.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned())).collect();
    let is_put = method == "PUT";
    let body = req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    let rec = Rec { method: method.clone(), path: path.clone(), version, query: query.clone(), headers, body };
    st.log.lock().expect("log").push(rec.clone());
    let s = &st.scenario;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let reply = match (method.as_str(), parts.as_slice()) {
        ("HEAD" | "GET", ["_ping"]) => {
            full(StatusCode::OK, "text/plain; charset=utf-8", if method == "GET" { "OK" } else { "" })
        }
        ("POST", ["containers", "create"]) => {
            let mut n = st.creates.lock().expect("creates");
            *n += 1;
            if s.image_missing && *n == 1 {
                err_reply(StatusCode::NOT_FOUND, "No such image: busybox:latest")
            } else {
                json_reply(StatusCode::CREATED, json!({"Id": CID, "Warnings": []}))
            }
        }
        ("POST", ["images", "create"]) => {
            let msgs = [
                json!({"status":"Pulling from library/busybox","id":"latest"}),
                json!({"status":"Pulling fs layer","progressDetail":{},"id":"fbe4e913f855"}),
                json!({"status":"Downloading","progressDetail":{"current":57,"total":114},"progress":"[=====>  ]  57B/114B","id":"fbe4e913f855"}),
                json!({"status":"Pull complete","progressDetail":{},"id":"fbe4e913f855"}),
                json!({"status":"Digest: sha256:3d0c83"}),
                json!({"status":"Status: Downloaded newer image for busybox:latest"}),
            ];
            let body: String = msgs.iter().map(|m| format!("{m}\r\n")).collect();
            full(StatusCode::OK, "application/json", body)
        }
        ("POST", ["containers", _, "attach"]) => {
            let stdin = rec.q("stdin") == Some("1");
            let st2 = st.clone();
            tokio::spawn(async move {
                let Ok(up) = on_upgrade.await else { return };
                let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                let mut started = st2.started.subscribe();
                let _ = started.wait_for(|s| *s).await;
                let sc = &st2.scenario;
                for (stream, data) in &sc.output {
                    let bytes = if sc.tty { data.clone() } else { frame(*stream, data) };
                    let _ = w.write_all(&bytes).await;
                }
                if stdin && sc.echo_stdin {
                    let mut buf = [0u8; 4096];
                    loop {
                        match r.read(&mut buf).await {
                            Ok(0) | Err(_) => {
                                *st2.stdin_eof.lock().expect("eof") = true;
                                break;
                            }
                            Ok(n) => {
                                st2.stdin.lock().expect("stdin").extend_from_slice(&buf[..n]);
                                let data = &buf[..n];
                                let end = sc.tty && data.contains(&4);
                                let echo = if sc.tty { data.to_vec() } else { frame(1, data) };
                                let _ = w.write_all(&echo).await;
                                if end {
                                    break;
                                }
                            }
                        }
                    }
                }
                let mut code = sc.exit_code;
                if sc.until_killed {
                    let mut killed = st2.killed.subscribe();
                    if let Ok(sig) = killed.wait_for(|k| k.is_some()).await {
                        code = match sig.as_deref() {
                            Some("INT") => 130,
                            Some("TERM") => 143,
                            _ => 137,
                        };
                    }
                }
                let _ = w.flush().await;
                let _ = w.shutdown().await;
                drop(w);
                drop(r);
                st2.exited.send_replace(Some(code));
            });
            let mut resp = full(
                StatusCode::SWITCHING_PROTOCOLS,
                if s.tty { "application/vnd.docker.raw-stream" } else { "application/vnd.docker.multiplexed-stream" },
                Bytes::new(),
            );
            resp.headers_mut().insert("Connection", "Upgrade".parse().expect("h"));
            resp.headers_mut().insert("Upgrade", "tcp".parse().expect("h"));
            resp
        }
        ("POST", ["containers", _, "wait"]) => {
            let (resp, tx) = channel_body(StatusCode::OK, "application/json");
            let mut exited = st.exited.subscribe();
            tokio::spawn(async move {
                let code = match exited.wait_for(|e| e.is_some()).await {
                    Ok(c) => c.unwrap_or(-1),
                    Err(_) => return,
                };
                let _ = tx.send(Bytes::from(format!("{{\"Error\":null,\"StatusCode\":{code}}}\n"))).await;
            });
            resp
        }
        ("POST", ["containers", _, "start"]) => {
            if let Some(m) = &s.start_error {
                st.exited.send_replace(Some(-1));
                err_reply(StatusCode::BAD_REQUEST, m)
            } else {
                st.started.send_replace(true);
                full(StatusCode::NO_CONTENT, "", Bytes::new())
            }
        }
        ("POST", ["containers", _, "resize"]) | ("POST", ["exec", _, "resize"]) => {
            full(StatusCode::OK, "text/plain; charset=utf-8", Bytes::new())
        }
        ("GET", ["containers", "json"]) => json_reply(StatusCode::OK, s.list.clone()),
        ("GET", ["containers", "missing", "json"]) => err_reply(StatusCode::NOT_FOUND, "No such container: missing"),
        ("GET", ["containers", _, "json"]) => {
            // the daemon's key order, which inspect must keep
            full(StatusCode::OK, "application/json", inspect_text(s))
        }
        ("GET", ["containers", _, "logs"]) => {
            let (resp, tx) = channel_body(
                StatusCode::OK,
                if s.tty { "application/vnd.docker.raw-stream" } else { "application/vnd.docker.multiplexed-stream" },
            );
            let logs = s.logs.clone();
            let tty = s.tty;
            tokio::spawn(async move {
                for (stream, data) in logs {
                    let b = if tty { data } else { frame(stream, &data) };
                    let _ = tx.send(Bytes::from(b)).await;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            });
            resp
        }
        ("POST", ["containers", _, "exec"]) => json_reply(StatusCode::CREATED, json!({"Id": EXEC_ID})),
        ("POST", ["exec", _, "start"]) if rec.json()["Detach"] == json!(true) => full(StatusCode::OK, "", Bytes::new()),
        ("POST", ["exec", _, "start"]) => {
            let st2 = st.clone();
            tokio::spawn(async move {
                let Ok(up) = on_upgrade.await else { return };
                let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                let mut buf = [0u8; 4096];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            *st2.stdin_eof.lock().expect("eof") = true;
                            break;
                        }
                        Ok(n) => {
                            st2.stdin.lock().expect("stdin").extend_from_slice(&buf[..n]);
                            let _ = w.write_all(&frame(1, &buf[..n])).await;
                        }
                    }
                }
                let _ = w.write_all(&frame(2, b"err\n")).await;
                let _ = w.shutdown().await;
            });
            let mut resp =
                full(StatusCode::SWITCHING_PROTOCOLS, "application/vnd.docker.multiplexed-stream", Bytes::new());
            resp.headers_mut().insert("Connection", "Upgrade".parse().expect("h"));
            resp.headers_mut().insert("Upgrade", "tcp".parse().expect("h"));
            resp
        }
        ("GET", ["exec", _, "json"]) => json_reply(
            StatusCode::OK,
            json!({"ID": EXEC_ID, "Running": false, "ExitCode": s.exec_exit, "ContainerID": CID}),
        ),
        ("HEAD" | "GET", ["containers", _, "archive"]) => {
            let p = rec.q("path").unwrap_or("").to_owned();
            match p.as_str() {
                "/tmp" | "/tmp/" => {
                    let mut r = full(StatusCode::OK, "", Bytes::new());
                    r.headers_mut().insert(
                        "X-Docker-Container-Path-Stat",
                        stat_header("tmp", 4096, (1 << 31) | 0o755).parse().expect("h"),
                    );
                    r
                }
                "/tmp/f.txt" => {
                    let mut b = tar::Builder::new(Vec::new());
                    let mut h = tar::Header::new_gnu();
                    h.set_size(6);
                    h.set_mode(0o644);
                    h.set_mtime(1_700_000_000);
                    b.append_data(&mut h, "f.txt", &b"hello\n"[..]).expect("tar");
                    let data = b.into_inner().expect("tar");
                    let mut r =
                        full(StatusCode::OK, "application/x-tar", if method == "GET" { data } else { Vec::new() });
                    r.headers_mut()
                        .insert("X-Docker-Container-Path-Stat", stat_header("f.txt", 6, 0o644).parse().expect("h"));
                    r
                }
                other => err_reply(StatusCode::NOT_FOUND, &format!("Could not find the file {other} in container web")),
            }
        }
        ("PUT", ["containers", _, "archive"]) if is_put => full(StatusCode::OK, "", Bytes::new()),
        ("POST", ["containers", _, "kill"]) => {
            st.killed.send_replace(Some(rec.q("signal").unwrap_or("KILL").to_owned()));
            full(StatusCode::NO_CONTENT, "", Bytes::new())
        }
        ("POST", ["containers", _, "stop" | "pause" | "unpause" | "restart"]) => {
            full(StatusCode::NO_CONTENT, "", Bytes::new())
        }
        ("DELETE", ["containers", "missing"]) => err_reply(StatusCode::NOT_FOUND, "No such container: missing"),
        ("DELETE", ["containers", _]) => full(StatusCode::NO_CONTENT, "", Bytes::new()),
        ("POST", ["containers", _, "rename"]) => full(StatusCode::NO_CONTENT, "", Bytes::new()),
        ("GET", ["containers", _, "top"]) => json_reply(
            StatusCode::OK,
            json!({"Titles":["UID","PID","PPID","C","STIME","TTY","TIME","CMD"],
                   "Processes":[["root","18158","18137","0","02:22","?","00:00:00","sleep 100"],
                                ["root","18201","18158","0","02:23","pts/0","00:00:00","sh -c while true; do sleep 1; done"]]}),
        ),
        ("GET", ["containers", _, "changes"]) => json_reply(
            StatusCode::OK,
            json!([{"Path":"/tmp","Kind":0},{"Path":"/tmp/a.txt","Kind":1},{"Path":"/etc/motd","Kind":2}]),
        ),
        ("POST", ["commit"]) => json_reply(
            StatusCode::CREATED,
            json!({"Id":"sha256:d84325e9636960cc84b69e13453e1d1065c6c4aab25adc311ac57716bff695e2"}),
        ),
        ("POST", ["containers", _, "update"]) => json_reply(
            StatusCode::OK,
            json!({"Warnings":["Your kernel does not support memory swappiness capabilities"]}),
        ),
        ("POST", ["containers", "prune"]) => {
            json_reply(StatusCode::OK, json!({"ContainersDeleted":["aaaa","bbbb"],"SpaceReclaimed":123456}))
        }
        ("GET", ["containers", _, "export"]) => {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(3);
            h.set_mode(0o644);
            h.set_mtime(1_700_000_000);
            b.append_data(&mut h, "etc/hostname", &b"web"[..]).expect("tar");
            full(StatusCode::OK, "application/x-tar", b.into_inner().expect("tar"))
        }
        ("GET", ["containers", _, "stats"]) => {
            let sample = json!({
                "read":"2026-11-23T02:22:29.005861126Z","preread":"2026-11-23T02:22:28.004861126Z",
                "pids_stats":{"current":3},
                "blkio_stats":{"io_service_bytes_recursive":[{"major":8,"minor":0,"op":"read","value":4096},{"major":8,"minor":0,"op":"write","value":8192}]},
                "num_procs":0,"storage_stats":{},
                "cpu_stats":{"cpu_usage":{"total_usage":89490550u64,"percpu_usage":[1,2],"usage_in_kernelmode":50000000,"usage_in_usermode":30000000},"system_cpu_usage":699770000000u64,"online_cpus":2,"throttling_data":{"periods":0,"throttled_periods":0,"throttled_time":0}},
                "precpu_stats":{"cpu_usage":{"total_usage":79490550u64,"usage_in_kernelmode":0,"usage_in_usermode":0},"system_cpu_usage":697770000000u64,"online_cpus":2,"throttling_data":{"periods":0,"throttled_periods":0,"throttled_time":0}},
                "memory_stats":{"usage":868352,"max_usage":4091904,"stats":{"total_inactive_file":4096},"limit":25276063744u64},
                "name":"/web","id":CID,
                "networks":{"eth0":{"rx_bytes":876,"rx_packets":10,"rx_errors":0,"rx_dropped":0,"tx_bytes":0,"tx_packets":0,"tx_errors":0,"tx_dropped":0}}
            });
            if rec.q("stream") == Some("1") {
                // one sample every 200 ms until the client goes away
                let (resp, tx) = channel_body(StatusCode::OK, "application/json");
                tokio::spawn(async move {
                    while tx.send(Bytes::from(format!("{sample}\n"))).await.is_ok() {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                });
                resp
            } else {
                full(StatusCode::OK, "application/json", format!("{sample}\n"))
            }
        }
        ("GET", ["events"]) => {
            let (resp, tx) = channel_body(StatusCode::OK, "application/json");
            // keep the stream open until the client goes away
            tokio::spawn(async move {
                tx.closed().await;
            });
            resp
        }
        ("GET", ["info"]) => json_reply(
            StatusCode::OK,
            json!({"ID":"x","OSType":"linux","Swarm":{"NodeID":"","NodeAddr":"","LocalNodeState":"inactive","ControlAvailable":false,"Error":"","RemoteManagers":null}}),
        ),
        ("GET", ["images", "busybox", "json"]) => full(
            StatusCode::OK,
            "application/json",
            r#"{"Id":"sha256:1111","RepoTags":["busybox:latest"],"Config":{"Cmd":["sh"],"Env":["PATH=/bin"]},"Os":"linux","Size":4261000}"#,
        ),
        ("GET", ["images", name, "json"]) => err_reply(StatusCode::NOT_FOUND, &format!("No such image: {name}")),
        ("GET", ["networks", name]) => err_reply(StatusCode::NOT_FOUND, &format!("network {name} not found")),
        ("GET", ["volumes", name]) => err_reply(StatusCode::NOT_FOUND, &format!("get {name}: no such volume")),
        ("GET", ["plugins", name, "json"]) => err_reply(StatusCode::NOT_FOUND, &format!("plugin \"{name}\" not found")),
        _ => err_reply(StatusCode::NOT_FOUND, "page not found"),
    };
    Ok(reply)
}

/// Runs a CLI binary against the fake; returns (exit code, stdout, stderr).
pub fn run_cli(
    bin: &str,
    fake: &Fake,
    args: &[&str],
    stdin: Option<&[u8]>,
    cwd: Option<&std::path::Path>,
) -> (i32, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let cfg = tempfile::tempdir().expect("cfg");
    let mut cmd = Command::new(bin);
    cmd.env("DOCKER_HOST", fake.host())
        .env("WHARF_HOST", fake.host())
        .env("DOCKER_CONFIG", cfg.path())
        .env_remove("DOCKER_API_VERSION")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_DEFAULT_PLATFORM")
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().expect("spawn cli");
    if let Some(input) = stdin {
        let mut si = child.stdin.take().expect("stdin");
        si.write_all(input).expect("write stdin");
        drop(si);
    }
    let out = wait_timeout(child, std::time::Duration::from_secs(20));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wait_timeout(mut child: std::process::Child, t: std::time::Duration) -> std::process::Output {
    let start = std::time::Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > t {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "CLI timed out; stdout={:?} stderr={:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The docker CLI, when installed (its requests are the reference).
pub fn docker() -> Option<String> {
    if std::env::var_os("WHARF_TEST_NO_DOCKER").is_some() {
        return None;
    }
    let out = std::process::Command::new("docker").arg("--version").output().ok()?;
    out.status.success().then(|| "docker".to_owned())
}

/// Removes nulls (bollard omits what Go sends as null) so bodies compare by meaning.
pub fn strip_nulls(v: &Json) -> Json {
    match v {
        Json::Object(m) => {
            Json::Object(m.iter().filter(|(_, x)| !x.is_null()).map(|(k, x)| (k.clone(), strip_nulls(x))).collect())
        }
        Json::Array(a) => Json::Array(a.iter().map(strip_nulls).collect()),
        x => x.clone(),
    }
}

pub fn by_path<'a>(reqs: &'a [Rec], method: &str, suffix: &str) -> Vec<&'a Rec> {
    reqs.iter().filter(|r| r.method == method && r.path.ends_with(suffix)).collect()
}

pub fn sorted_map(v: &[(String, String)]) -> BTreeMap<String, String> {
    v.iter().cloned().collect()
}
