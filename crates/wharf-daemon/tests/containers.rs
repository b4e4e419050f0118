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
    // SAFETY of the env: set before any thread reads it; all tests set the same value.
    unsafe { std::env::set_var("WHARF_BIN_DIR", wharf_testkit::bin_dir()) };
    let dir = tempfile::Builder::new().prefix("wharf-test-").tempdir().unwrap();
    let data = dir.path().join("data");
    let snapshotter: Arc<dyn Snapshotter> =
        Arc::new(wharf_snapshot::OverlaySnapshotter::open(&data.join("snapshots/overlay")).unwrap());
    let root = snapshotter.prepare("busybox-build", None).unwrap();
    drop(root);
    let fs = snapshotter.writable_dir("busybox-build").unwrap();
    std::fs::create_dir_all(fs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", fs.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "cat", "sleep", "ls", "true", "false", "id", "hostname", "ps", "kill", "printf", "wc"]
    {
        std::os::unix::fs::symlink("busybox", fs.join("bin").join(applet)).unwrap();
    }
    for d in ["proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(fs.join(d)).unwrap();
    }
    std::fs::write(fs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        .unwrap();
    std::fs::write(fs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    snapshotter.commit("busybox", "busybox-build").unwrap();
    let flags = FlagConfig { data_root: Some(data), exec_root: Some(dir.path().join("exec")), ..Default::default() };
    let cgroup_parent = format!("/{}", wharf_testkit::unique_name("wharf-test-"));
    let net = wharf_testkit::net::NetSlot::acquire();
    let file = FileConfig {
        cgroup_parent: Some(cgroup_parent.clone()),
        ..FileConfig::parse(&serde_json::Value::Object(net.daemon_json()).to_string()).unwrap()
    };
    let config = Config::merge(flags, file, dir.path().join("daemon.json")).unwrap();
    let daemon = Daemon::open(config, BuildInfo::default(), Arc::new(BusyboxImage { snapshotter })).unwrap();
    Fixture { daemon, dir, cgroup_parent, _net: net }
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
    assert_eq!(logs_text(&*c, "t1").await, "out\nerr\n");
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
