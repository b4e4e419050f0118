//! The container machinery end to end below the HTTP layer: a real overlay snapshot holding
//! busybox, the real shim and OCI runtime, real namespaces and cgroups. Only the image lookup
//! is provided by the test (the image service has its own tests).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use wharf_api::backend::{AttachOptions, ContainerBackend, ListOptions, LogsOptions, WaitCondition};
use wharf_api::models::ContainerCreateBody;
use wharf_daemon::config::{Config, FileConfig, FlagConfig};
use wharf_daemon::container::{ImageProvider, ResolvedImage};
use wharf_daemon::{BuildInfo, Daemon};
use wharf_snapshot::Snapshotter;
use wharf_types::EngineError;

struct BusyboxImage {
    snapshotter: Arc<dyn Snapshotter>,
}

#[async_trait]
impl ImageProvider for BusyboxImage {
    async fn resolve_image(&self, name: &str) -> Result<ResolvedImage, EngineError> {
        if !["busybox", "busybox:latest", "sha256:b0000000"].contains(&name) {
            return Err(EngineError::not_found(format!("No such image: {name}")));
        }
        let config = serde_json::from_value(serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": []}
        }))
        .unwrap();
        Ok(ResolvedImage { id: "sha256:b0000000".into(), config, top_layer: Some("busybox".into()) })
    }
    fn snapshotter(&self) -> Arc<dyn Snapshotter> {
        self.snapshotter.clone()
    }
}

fn requirements() -> Result<(), String> {
    wharf_testkit::require::root()?;
    wharf_testkit::require::overlayfs()?;
    if !std::path::Path::new("/bin/busybox").exists() {
        return Err("needs /bin/busybox (busybox-static)".into());
    }
    Ok(())
}

struct Fixture {
    daemon: Arc<Daemon>,
    dir: tempfile::TempDir,
    cgroup_parent: String,
    _net: wharf_testkit::net::NetSlot,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        wharf_testkit::cleanup_host_state(self.dir.path(), &self.cgroup_parent);
    }
}

async fn fixture() -> Fixture {
    // SAFETY: every test sets the same value, and nothing reads the variable concurrently with a
    // write of a different value.
    unsafe { std::env::set_var("WHARF_BIN_DIR", wharf_testkit::bin_dir()) };
    let dir = tempfile::Builder::new().prefix("wharf-test-").tempdir().unwrap();
    let data = dir.path().join("data");
    let flags = FlagConfig { data_root: Some(data), exec_root: Some(dir.path().join("exec")), ..Default::default() };
    let cgroup_parent = format!("/{}", wharf_testkit::unique_name("wharf-test-"));
    let net = wharf_testkit::net::NetSlot::acquire();
    let file = FileConfig {
        cgroup_parent: Some(cgroup_parent.clone()),
        ..FileConfig::parse(&serde_json::Value::Object(net.daemon_json()).to_string()).unwrap()
    };
    let config = Config::merge(flags, file, dir.path().join("daemon.json")).unwrap();
    let provider: wharf_daemon::ImageProviderFactory = Box::new(|images| {
        let snapshotter = images.snapshotter();
        build_busybox_layer(&*snapshotter);
        Arc::new(BusyboxImage { snapshotter }) as Arc<dyn ImageProvider>
    });
    let daemon = Daemon::open_with(config, BuildInfo::default(), Some(provider)).unwrap();
    Fixture { daemon, dir, cgroup_parent, _net: net }
}

/// A layer holding /bin/busybox and its applets, committed as snapshot `busybox`.
fn build_busybox_layer(snapshotter: &dyn Snapshotter) {
    snapshotter.prepare("busybox-build", None).unwrap();
    let fs = snapshotter.writable_dir("busybox-build").unwrap();
    std::fs::create_dir_all(fs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", fs.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "echo", "cat", "sleep", "ls", "true", "false", "id", "hostname", "ps", "kill", "printf", "wc", "touch",
        "test", "[", "rm", "mkdir", "df",
    ] {
        std::os::unix::fs::symlink("busybox", fs.join("bin").join(applet)).unwrap();
    }
    for d in ["proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(fs.join(d)).unwrap();
    }
    std::fs::write(fs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        .unwrap();
    std::fs::write(fs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    snapshotter.commit("busybox", "busybox-build").unwrap();
}

fn body(json: serde_json::Value) -> ContainerCreateBody {
    serde_json::from_value(json).unwrap()
}

async fn logs_text(c: &dyn ContainerBackend, id: &str) -> String {
    let mut logs = c.logs(id, LogsOptions { stdout: true, stderr: true, ..Default::default() }).await.unwrap();
    let mut out = String::new();
    while let Some(Ok(chunk)) = logs.stream.next().await {
        out.push_str(&String::from_utf8_lossy(&chunk.bytes));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_to_completion_with_exit_code_and_logs() {
    wharf_testkit::skip_unless!(requirements());
    let fx = fixture().await;
    let c = fx.daemon.containers().clone();
    let created = ContainerBackend::create(
        &*c,
        Some("t1".into()),
        body(serde_json::json!({"Image": "busybox", "Cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"]})),
    )
    .await
    .unwrap();
    let wait = c.wait(&created.id, WaitCondition::NextExit).await.unwrap();
    c.start("t1").await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), wait).await.expect("exits");
    assert_eq!(outcome.status_code, 3);
    // stdout and stderr are separate pipes: their relative order is not kept (nor by Docker).
    let logs = logs_text(&*c, "t1").await;
    assert!(logs == "out\nerr\n" || logs == "err\nout\n", "{logs:?}");
    let inspect = c.inspect("t1", false).await.unwrap();
    let state = inspect.state.unwrap();
    assert_eq!(state.exit_code, Some(3));
    assert_eq!(state.running, Some(false));
    assert_eq!(c.start("t1").await.map_err(|e| e.kind), Ok(()), "a stopped container starts again");
    c.remove("t1", true, false, false).await.unwrap();
    assert_eq!(c.inspect("t1", false).await.unwrap_err().kind, wharf_types::ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_before_start_sees_all_output_and_stdin_once() {
    wharf_testkit::skip_unless!(requirements());
    let fx = fixture().await;
    let c = fx.daemon.containers().clone();
    let created = ContainerBackend::create(
        &*c,
        None,
        body(serde_json::json!({"Image": "busybox", "Cmd": ["cat"], "OpenStdin": true, "StdinOnce": true, "AttachStdin": true})),
    )
    .await
    .unwrap();
    let mut session = c
        .attach(
            &created.id,
            AttachOptions { stream: true, stdin: true, stdout: true, stderr: true, ..Default::default() },
        )
        .await
        .unwrap();
    let wait = c.wait(&created.id, WaitCondition::NextExit).await.unwrap();
    c.start(&created.id).await.unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = session.stdin.take().expect("stdin attached");
    stdin.write_all(b"hello\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    let mut got = Vec::new();
    while let Some((stream, data)) =
        tokio::time::timeout(Duration::from_secs(20), session.output.next()).await.expect("output")
    {
        assert_eq!(stream, 1);
        got.extend_from_slice(&data);
    }
    assert_eq!(got, b"hello\n");
    assert_eq!(tokio::time::timeout(Duration::from_secs(20), wait).await.unwrap().status_code, 0);
    c.remove(&created.id, true, false, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kill_restart_policy_and_errors() {
    wharf_testkit::skip_unless!(requirements());
    let fx = fixture().await;
    let c = fx.daemon.containers().clone();
    let created = ContainerBackend::create(
        &*c,
        Some("sleeper".into()),
        body(serde_json::json!({"Image": "busybox", "Cmd": ["sh", "-c", "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done"]})),
    )
    .await
    .unwrap();
    c.start("sleeper").await.unwrap();
    assert_eq!(c.start("sleeper").await.unwrap_err().kind, wharf_types::ErrorKind::NotModified);
    let running = c.list(ListOptions::default()).await.unwrap();
    assert_eq!(running.len(), 1);
    assert!(running[0].status.as_deref().unwrap().starts_with("Up "));
    let err = c.remove("sleeper", false, false, false).await.unwrap_err();
    assert_eq!(err.kind, wharf_types::ErrorKind::Conflict);
    assert!(err.message.starts_with("You cannot remove a running container"), "{}", err.message);
    // The trap ends it on SIGTERM, well within the timeout (once the trap is installed).
    for _ in 0..100 {
        if logs_text(&*c, "sleeper").await.contains("ready") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t0 = std::time::Instant::now();
    c.stop("sleeper", Some(10), None).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(8));
    assert_eq!(c.inspect("sleeper", false).await.unwrap().state.unwrap().exit_code, Some(7));
    assert_eq!(c.stop("sleeper", None, None).await.unwrap_err().kind, wharf_types::ErrorKind::NotModified);
    let err = c.kill("sleeper", None).await.unwrap_err();
    assert_eq!(err.message, format!("Cannot kill container: sleeper: Container {} is not running", created.id));
    // PID 1 without a handler ignores SIGTERM (as under Docker): after the timeout, SIGKILL.
    ContainerBackend::create(
        &*c,
        Some("stubborn".into()),
        body(serde_json::json!({"Image": "busybox", "Cmd": ["sleep", "1000"]})),
    )
    .await
    .unwrap();
    c.start("stubborn").await.unwrap();
    c.stop("stubborn", Some(1), None).await.unwrap();
    assert_eq!(c.inspect("stubborn", false).await.unwrap().state.unwrap().exit_code, Some(137));

    // on-failure:2 restarts a failing container twice, then leaves it.
    let failing = ContainerBackend::create(
        &*c,
        Some("flaky".into()),
        body(serde_json::json!({"Image": "busybox", "Cmd": ["false"], "HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}}})),
    )
    .await
    .unwrap();
    c.start("flaky").await.unwrap();
    let mut restarts = 0;
    for _ in 0..100 {
        let i = c.inspect(&failing.id, false).await.unwrap();
        restarts = i.restart_count.unwrap();
        if restarts == 2 && i.state.unwrap().status == Some(wharf_api::models::ContainerStateStatusEnum::EXITED) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(restarts, 2);
    for id in ["sleeper", "stubborn", "flaky"] {
        c.remove(id, true, false, false).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_executable_is_a_127_style_error_and_leaves_nothing() {
    wharf_testkit::skip_unless!(requirements());
    let fx = fixture().await;
    let c = fx.daemon.containers().clone();
    let created =
        ContainerBackend::create(&*c, None, body(serde_json::json!({"Image": "busybox", "Cmd": ["nonexistentcmd"]})))
            .await
            .unwrap();
    let err = c.start(&created.id).await.unwrap_err();
    assert!(err.message.contains("executable file not found in $PATH"), "{}", err.message);
    assert_eq!(err.kind, wharf_types::ErrorKind::InvalidArgument);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&created.id[..32]), "no rootfs mount left");
    assert_eq!(c.inspect(&created.id, false).await.unwrap().state.unwrap().exit_code, Some(127));
    c.remove(&created.id, true, false, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_stdin_user_exit_codes_and_errors() {
    wharf_testkit::skip_unless!(requirements());
    let fx = fixture().await;
    let c = fx.daemon.containers().clone();
    ContainerBackend::create(
        &*c,
        Some("box".into()),
        body(serde_json::json!({"Image": "busybox", "Cmd": ["sleep", "1000"]})),
    )
    .await
    .unwrap();
    c.start("box").await.unwrap();
    let exec = |cmd: serde_json::Value, extra: serde_json::Value| {
        let mut cfg = serde_json::json!({"Cmd": cmd, "AttachStdout": true, "AttachStderr": true});
        cfg.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value::<wharf_api::models::ExecConfig>(cfg).unwrap()
    };
    // stdin in, stdout and stderr out, exit code 2.
    let id = c
        .exec_create(
            "box",
            exec(
                serde_json::json!(["sh", "-c", "cat; echo err >&2; exit 2"]),
                serde_json::json!({"AttachStdin": true}),
            ),
        )
        .unwrap();
    let mut s = c.exec_start(id.as_str(), false, None, None).await.unwrap().unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = s.stdin.take().unwrap();
    stdin.write_all(b"line1\nline2\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some((stream, data)) = tokio::time::timeout(Duration::from_secs(20), s.output.next()).await.unwrap() {
        if stream == 1 { out.extend_from_slice(&data) } else { err.extend_from_slice(&data) }
    }
    assert_eq!(out, b"line1\nline2\n");
    assert_eq!(err, b"err\n");
    let mut code = None;
    for _ in 0..100 {
        code = c.exec_inspect(id.as_str()).unwrap().exit_code;
        if code.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(code, Some(2));
    // -u resolves in the container's passwd.
    let id =
        c.exec_create("box", exec(serde_json::json!(["id", "-u"]), serde_json::json!({"User": "nobody"}))).unwrap();
    let mut s = c.exec_start(id.as_str(), false, None, None).await.unwrap().unwrap();
    let mut out = Vec::new();
    while let Some((_, data)) = tokio::time::timeout(Duration::from_secs(20), s.output.next()).await.unwrap() {
        out.extend_from_slice(&data);
    }
    assert_eq!(out, b"65534\n");
    // A missing binary: the message in the stream, exit code 127 (or 126 for older runtimes).
    let id = c.exec_create("box", exec(serde_json::json!(["nosuchbinary"]), serde_json::json!({}))).unwrap();
    let mut s = c.exec_start(id.as_str(), false, None, None).await.unwrap().unwrap();
    let mut out = Vec::new();
    while let Some((_, data)) = tokio::time::timeout(Duration::from_secs(20), s.output.next()).await.unwrap() {
        out.extend_from_slice(&data);
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("executable file not found") || text.contains("no such file"), "{text}");
    for _ in 0..100 {
        if c.exec_inspect(id.as_str()).unwrap().exit_code.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.exec_inspect(id.as_str()).unwrap().exit_code, Some(127));
    assert_eq!(
        c.exec_create("box", exec(serde_json::json!([]), serde_json::json!({}))).unwrap_err().message,
        "No exec command specified"
    );
    c.kill("box", None).await.unwrap();
    for _ in 0..100 {
        if c.inspect("box", false).await.unwrap().state.unwrap().running == Some(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = c.exec_create("box", exec(serde_json::json!(["true"]), serde_json::json!({}))).unwrap_err();
    assert_eq!(err.kind, wharf_types::ErrorKind::Conflict);
    assert!(err.message.ends_with("is not running"), "{}", err.message);
    c.remove("box", true, false, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_have_the_figures_the_cli_computes_with() {
    wharf_testkit::skip_unless!(requirements());
    let fx = fixture().await;
    let c = fx.daemon.containers().clone();
    ContainerBackend::create(
        &*c,
        Some("busy".into()),
        body(serde_json::json!({"Image": "busybox", "Cmd": ["sh", "-c", "while true; do :; done"], "HostConfig": {"Memory": 67108864, "PidsLimit": 50}})),
    )
    .await
    .unwrap();
    c.start("busy").await.unwrap();
    let samples: Vec<serde_json::Value> = c.stats("busy", false, false).await.unwrap().collect().await;
    assert_eq!(samples.len(), 1);
    let s = &samples[0];
    let cpu = s["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap();
    let pre = s["precpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap();
    let sys =
        s["cpu_stats"]["system_cpu_usage"].as_u64().unwrap() - s["precpu_stats"]["system_cpu_usage"].as_u64().unwrap();
    let online = s["cpu_stats"]["online_cpus"].as_u64().unwrap();
    let percent = (cpu - pre) as f64 / sys as f64 * online as f64 * 100.0;
    assert!(percent > 20.0, "a spinning shell uses CPU: {percent}% ({s})");
    assert!(s["memory_stats"]["usage"].as_u64().unwrap() > 0);
    assert_eq!(s["memory_stats"]["limit"].as_u64().unwrap(), 67108864);
    assert!(s["pids_stats"]["current"].as_u64().unwrap() >= 1);
    assert_eq!(s["pids_stats"]["limit"].as_u64().unwrap(), 50);
    assert_eq!(s["name"], "/busy");
    let one: Vec<serde_json::Value> = c.stats("busy", false, true).await.unwrap().collect().await;
    assert_eq!(one[0]["precpu_stats"]["cpu_usage"]["total_usage"], 0);
    c.remove("busy", true, false, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_goes_starting_unhealthy_healthy() {
    wharf_testkit::skip_unless!(requirements());
    let fx = fixture().await;
    let c = fx.daemon.containers().clone();
    let mut events = fx.daemon.events().subscribe(None, None, wharf_daemon::events::EventFilter::default());
    ContainerBackend::create(
        &*c,
        Some("hc".into()),
        body(serde_json::json!({
            "Image": "busybox", "Cmd": ["sleep", "1000"],
            "Healthcheck": {"Test": ["CMD-SHELL", "test -f /tmp/ok && echo fine"], "Interval": 200_000_000, "Timeout": 2_000_000_000, "Retries": 2}
        })),
    )
    .await
    .unwrap();
    c.start("hc").await.unwrap();
    let status = |c: Arc<wharf_daemon::container::ContainerService>| async move {
        c.inspect("hc", false).await.unwrap().state.unwrap().health.and_then(|h| h.status).map(|s| s.to_string())
    };
    let mut seen = Vec::new();
    for _ in 0..100 {
        let s = status(c.clone()).await.unwrap_or_default();
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if s == "unhealthy" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, vec!["starting", "unhealthy"]);
    let id =
        c.exec_create("hc", serde_json::from_value(serde_json::json!({"Cmd": ["touch", "/tmp/ok"]})).unwrap()).unwrap();
    c.exec_start(id.as_str(), true, None, None).await.unwrap();
    for _ in 0..100 {
        if status(c.clone()).await.as_deref() == Some("healthy") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let inspect = c.inspect("hc", false).await.unwrap();
    let health = inspect.state.unwrap().health.unwrap();
    assert_eq!(health.status.unwrap().to_string(), "healthy");
    assert_eq!(health.failing_streak, Some(0));
    assert_eq!(health.log.unwrap().last().unwrap().output.as_deref(), Some("fine\n"));
    let listed = c
        .list(ListOptions {
            filters: wharf_types::Filters::parse(r#"{"health":["healthy"]}"#).unwrap(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].status.as_deref().unwrap().ends_with("(healthy)"));
    let mut actions = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        if e.action.starts_with("health_status") {
            actions.push(e.action);
        }
    }
    assert_eq!(actions, vec!["health_status: unhealthy", "health_status: healthy"]);
    c.remove("hc", true, false, false).await.unwrap();
}
