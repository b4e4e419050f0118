//! The shim end to end, as root: `wharf_runtime::shim` client → `wharf-shim` → OCI runtime
//! (`wharf-runtime`, and Debian's `runc`) → busybox containers.
//!
//! Needs the `wharf-runtime` binary next to `wharf-shim` (`cargo test -p wharf-shim -p
//! wharf-runtime-bin` builds both); tests skip with a reason when it or root is missing.

#[path = "../../wharf-runtime/tests/bundle/mod.rs"]
mod bundle;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bundle::{Bundle, can_run};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use wharf_runtime::logs::{ReadOptions, read_logs};
use wharf_runtime::shim::{
    AttachOptions, ExecOptions, LogConfig, LogDriver, RuntimeConfig, ShimClient, ShimConfig, ShimError, Status, spawn,
};

const SHIM_BUILT: &str = env!("CARGO_BIN_EXE_wharf-shim");

/// The shim under test; `WHARF_TEST_SHIM` selects another build (e.g. release, to measure).
fn shim_bin() -> PathBuf {
    std::env::var_os("WHARF_TEST_SHIM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(SHIM_BUILT))
}

/// The runtime under test; `WHARF_TEST_RUNTIME` overrides the one next to the shim.
fn runtime_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WHARF_TEST_RUNTIME") {
        return Some(PathBuf::from(p));
    }
    let p = Path::new(SHIM_BUILT).with_file_name("wharf-runtime");
    p.exists().then_some(p)
}

fn runc_bin() -> Option<PathBuf> {
    ["/usr/sbin/runc", "/usr/bin/runc"].iter().map(PathBuf::from).find(|p| p.exists())
}

/// One container under test: bundle, state dir, runtime root; cleans all up on drop.
struct Case {
    bundle: Bundle,
    work: tempfile::TempDir,
    config: ShimConfig,
}

impl Case {
    fn new(runtime: &Path, name: &str, id: &str, args: &[&str], tty: bool, stdin: bool, stdin_once: bool) -> Case {
        let bundle = Bundle::new(id, args, tty);
        // Short paths: unix socket names are limited to 108 bytes.
        let work = tempfile::Builder::new().prefix("wsh").tempdir_in("/tmp").unwrap();
        let config = ShimConfig {
            id: id.to_string(),
            bundle: bundle.path().to_path_buf(),
            state_dir: work.path().join("s"),
            runtime: RuntimeConfig {
                name: name.to_string(),
                path: runtime.to_path_buf(),
                root: work.path().join("rt"),
                args: vec![],
            },
            tty,
            stdin,
            stdin_once,
            log: LogConfig {
                driver: LogDriver::JsonFile,
                path: work.path().join("c-json.log"),
                max_size: None,
                max_file: 1,
            },
        };
        Case { bundle, work, config }
    }

    async fn spawn(&self) -> Result<ShimClient, ShimError> {
        spawn(&shim_bin(), self.config.clone()).await
    }

    fn log_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.config.log.path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json-file line"))
            .collect()
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        // Kill the shim (if alive) and whatever the runtime still knows about.
        if let Ok(pid) = std::fs::read_to_string(self.config.state_dir.join("shim.pid"))
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            if let Ok(init) = std::fs::read_to_string(self.config.state_dir.join("init.pid"))
                && let Ok(init) = init.trim().parse::<i32>()
            {
                // SAFETY: plain kill(2) of the test's own container.
                unsafe { libc::kill(init, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(50));
            // SAFETY: plain kill(2) of the shim this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = std::process::Command::new(&self.config.runtime.path)
            .arg("--root")
            .arg(&self.config.runtime.root)
            .args(["delete", "--force", &self.config.id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = &self.bundle;
        let _ = &self.work;
    }
}

fn process_alive(pid: i32) -> bool {
    // Zombies count as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().map(|r| !r.trim_start().starts_with('Z')).unwrap_or(false))
        .unwrap_or(false)
}

async fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

macro_rules! need {
    ($name:expr) => {{
        if !can_run($name) {
            return;
        }
        match runtime_bin() {
            Some(p) => p,
            None => {
                println!(
                    "SKIP {}: wharf-runtime binary not built (cargo test -p wharf-shim -p wharf-runtime-bin)",
                    $name
                );
                return;
            }
        }
    }};
}

async fn run_to_exit_with_logs(runtime: &Path, name: &str, id: &str) {
    let case = Case::new(
        runtime,
        name,
        id,
        &["sh", "-c", "echo out; echo err >&2; printf 'no newline'; exit 3"],
        false,
        false,
        false,
    );
    let client = case.spawn().await.expect("spawn");
    assert_eq!(client.state().await.unwrap().status, Status::Created);
    let shim_pid = client.shim_pid();
    client.start().await.expect("start");
    let exit = client.wait().await.expect("wait");
    assert_eq!(exit.code, 3);
    assert_eq!(exit.signal, None);
    assert!(!exit.oom_killed);
    // The exit file was written atomically and wait() answers from it as well.
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(case.config.state_dir.join("exit.json")).unwrap()).unwrap();
    assert_eq!(file["code"], 3);
    assert_eq!(client.wait().await.unwrap(), exit);
    let lines = case.log_lines();
    let mut out: Vec<(String, String)> =
        lines.iter().map(|l| (l["stream"].as_str().unwrap().into(), l["log"].as_str().unwrap().into())).collect();
    out.sort();
    assert_eq!(
        out,
        vec![
            ("stderr".into(), "err\n".into()),
            ("stdout".into(), "no newline\n".into()),
            ("stdout".into(), "out\n".into())
        ]
    );
    for l in &lines {
        let t = l["time"].as_str().unwrap();
        assert!(t.ends_with('Z') && t.len() >= 20, "{t}");
    }
    // Read back through the log reader, too.
    let mut s = read_logs(case.config.log.path.clone(), ReadOptions::default());
    let mut n = 0;
    while let Some(e) = s.next().await {
        e.unwrap();
        n += 1;
    }
    assert_eq!(n, 3);
    client.shutdown().await.expect("shutdown");
    wait_gone(shim_pid).await;
    assert!(!case.config.state_dir.join("shim.sock").exists());
    // wait() still works from the exit file with the shim gone.
    assert_eq!(client.wait().await.unwrap().code, 3);
}

#[tokio::test]
async fn shim_runs_container_logs_and_records_exit() {
    let rt = need!("shim_runs_container_logs_and_records_exit");
    run_to_exit_with_logs(&rt, "wharf-runtime", "sh-exit").await;
}

#[tokio::test]
async fn shim_with_runc_runs_container_logs_and_records_exit() {
    let _ = need!("shim_with_runc_runs_container_logs_and_records_exit");
    let Some(runc) = runc_bin() else {
        println!("SKIP shim_with_runc: runc not installed");
        return;
    };
    run_to_exit_with_logs(&runc, "runc", "sh-runc-exit").await;
}

async fn create_error_is_verbatim(runtime: &Path, name: &str, id: &str) {
    let case = Case::new(runtime, name, id, &["no-such-binary"], false, false, false);
    let err = case.spawn().await.expect_err("create must fail");
    let msg = err.to_string();
    assert!(msg.contains("exec: \"no-such-binary\": executable file not found in $PATH"), "{name}: {msg}");
    assert_eq!(err.start_exit_code(), 127);
}

#[tokio::test]
async fn shim_reports_missing_executable() {
    let rt = need!("shim_reports_missing_executable");
    create_error_is_verbatim(&rt, "wharf-runtime", "sh-missing").await;
    if let Some(runc) = runc_bin() {
        create_error_is_verbatim(&runc, "runc", "sh-runc-missing").await;
    }
}

#[tokio::test]
async fn long_lines_split_like_docker_and_local_driver_rotates() {
    let rt = need!("long_lines_split_like_docker_and_local_driver_rotates");
    // A 40000-byte line: json-file records of 16 KiB, 16 KiB, and the rest with the newline.
    let case = Case::new(
        &rt,
        "wharf-runtime",
        "sh-long",
        &["sh", "-c", "head -c 40000 /dev/zero | tr '\\0' a; echo"],
        false,
        false,
        false,
    );
    let client = case.spawn().await.unwrap();
    client.start().await.unwrap();
    assert_eq!(client.wait().await.unwrap().code, 0);
    let lens: Vec<(usize, bool)> = case
        .log_lines()
        .iter()
        .map(|l| {
            let s = l["log"].as_str().unwrap();
            (s.len(), s.ends_with('\n'))
        })
        .collect();
    assert_eq!(lens, vec![(16384, false), (16384, false), (40000 - 2 * 16384 + 1, true)]);
    client.shutdown().await.unwrap();

    // The local driver with rotation, read back in order across files.
    let mut case = Case::new(
        &rt,
        "wharf-runtime",
        "sh-local",
        &["sh", "-c", "for i in $(seq 1 300); do echo line $i; done"],
        false,
        false,
        false,
    );
    case.config.log = LogConfig {
        driver: LogDriver::Local,
        path: case.work.path().join("container.log"),
        max_size: Some(2000),
        max_file: 3,
    };
    let client = case.spawn().await.unwrap();
    client.start().await.unwrap();
    assert_eq!(client.wait().await.unwrap().code, 0);
    let log = &case.config.log.path;
    assert!(log.exists() && log.with_extension("log.1").exists() && log.with_extension("log.2").exists());
    assert!(!log.with_extension("log.3").exists());
    let mut s = read_logs(log.clone(), ReadOptions { driver: LogDriver::Local, ..Default::default() });
    let mut got = Vec::new();
    while let Some(e) = s.next().await {
        got.push(String::from_utf8(e.unwrap().bytes.to_vec()).unwrap());
    }
    assert_eq!(got.last().unwrap(), "line 300\n");
    let first: usize = got[0].trim().strip_prefix("line ").unwrap().parse().unwrap();
    let expect: Vec<String> = (first..=300).map(|i| format!("line {i}\n")).collect();
    assert_eq!(got, expect);
    client.shutdown().await.unwrap();
}

#[tokio::test]
async fn attach_fans_out_and_stdin_once_closes_stdin() {
    let rt = need!("attach_fans_out_and_stdin_once_closes_stdin");
    let case = Case::new(&rt, "wharf-runtime", "sh-attach", &["cat"], false, true, true);
    let client = case.spawn().await.expect("spawn");
    let a1 = client.attach(AttachOptions { stdin: true, stdout: true, stderr: true }).await.unwrap();
    let a2 = client.attach(AttachOptions { stdin: false, stdout: true, stderr: true }).await.unwrap();
    client.start().await.unwrap();
    let mut stdin = a1.stdin.unwrap();
    stdin.write_all(b"hello\n").await.unwrap();
    stdin.write_all(b"world\n").await.unwrap();
    stdin.shutdown().await.unwrap(); // StdinOnce: closes cat's stdin, cat exits 0
    let (o1, o2) = tokio::join!(a1.output.collect(), a2.output.collect());
    assert_eq!(o1.unwrap().0, b"hello\nworld\n");
    assert_eq!(o2.unwrap().0, b"hello\nworld\n");
    assert_eq!(client.wait().await.unwrap().code, 0);
    client.shutdown().await.unwrap();
}

#[tokio::test]
async fn stdin_without_once_survives_a_client_leaving() {
    let rt = need!("stdin_without_once_survives_a_client_leaving");
    let case = Case::new(&rt, "wharf-runtime", "sh-stdin", &["cat"], false, true, false);
    let client = case.spawn().await.expect("spawn");
    client.start().await.unwrap();
    let a = client.attach(AttachOptions { stdin: true, stdout: true, stderr: false }).await.unwrap();
    let mut stdin = a.stdin.unwrap();
    stdin.write_all(b"one\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    drop(stdin);
    let mut first = a.output;
    assert_eq!(&first.next().await.unwrap().unwrap().1[..], b"one\n");
    drop(first);
    let b = client.attach(AttachOptions { stdin: true, stdout: true, stderr: false }).await.unwrap();
    let mut stdin = b.stdin.unwrap();
    stdin.write_all(b"two\n").await.unwrap();
    stdin.flush().await.unwrap();
    let mut out = b.output;
    let (_, data) = out.next().await.unwrap().unwrap();
    assert_eq!(&data[..], b"two\n", "cat still reads stdin after the first client ended");
    client.kill(libc::SIGKILL).await.unwrap();
    assert_eq!(client.wait().await.unwrap().code, 137);
    let logged: Vec<String> = case.log_lines().iter().map(|l| l["log"].as_str().unwrap().to_string()).collect();
    assert_eq!(logged, vec!["one\n", "two\n"]);
    client.shutdown().await.unwrap();
}

async fn tty_resize(runtime: &Path, name: &str, id: &str) {
    let case = Case::new(runtime, name, id, &["sh", "-c", "read x; stty size; exit 4"], true, true, false);
    let client = case.spawn().await.expect("spawn");
    let a = client.attach(AttachOptions { stdin: true, stdout: true, stderr: true }).await.unwrap();
    client.start().await.unwrap();
    client.resize(33, 111).await.unwrap();
    let mut stdin = a.stdin.unwrap();
    stdin.write_all(b"go\n").await.unwrap();
    stdin.flush().await.unwrap();
    let (out, err) = a.output.collect().await.unwrap();
    assert!(err.is_empty(), "a tty has one stream");
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("33 111"), "{name}: {text:?}");
    assert_eq!(client.wait().await.unwrap().code, 4);
    client.shutdown().await.unwrap();
}

#[tokio::test]
async fn tty_via_console_socket_with_resize() {
    let rt = need!("tty_via_console_socket_with_resize");
    tty_resize(&rt, "wharf-runtime", "sh-tty").await;
    if let Some(runc) = runc_bin() {
        tty_resize(&runc, "runc", "sh-runc-tty").await;
    }
}

fn process(case: &Case, args: &[&str], tty: bool) -> oci_spec::runtime::Process {
    let mut p = case.bundle.spec().process().clone().unwrap();
    p.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
    p.set_terminal(Some(tty));
    p
}

async fn exec_cases(runtime: &Path, name: &str, id: &str) {
    let case = Case::new(runtime, name, id, &["sleep", "1000"], false, false, false);
    let client = case.spawn().await.expect("spawn");
    client.start().await.unwrap();
    // Plain exec with output and an exit code.
    let h = client
        .exec(ExecOptions {
            exec_id: "e1".into(),
            process: process(&case, &["sh", "-c", "echo hi; echo oops >&2; exit 7"], false),
            tty: false,
            stdin: false,
        })
        .await
        .expect("exec");
    assert!(h.pid > 0);
    let (output, _, exit) = h.into_parts();
    let (out, err) = output.collect().await.unwrap();
    assert_eq!((out.as_slice(), err.as_slice()), (&b"hi\n"[..], &b"oops\n"[..]));
    assert_eq!(exit.await.unwrap().code, 7);
    // Exec with stdin.
    let h = client
        .exec(ExecOptions { exec_id: "e2".into(), process: process(&case, &["cat"], false), tty: false, stdin: true })
        .await
        .unwrap();
    let (output, stdin, exit) = h.into_parts();
    let mut stdin = stdin.unwrap();
    stdin.write_all(b"piped\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    assert_eq!(output.collect().await.unwrap().0, b"piped\n");
    assert_eq!(exit.await.unwrap().code, 0);
    // Exec with a tty and resize.
    let h = client
        .exec(ExecOptions {
            exec_id: "e3".into(),
            process: process(&case, &["sh", "-c", "read x; stty size"], true),
            tty: true,
            stdin: true,
        })
        .await
        .unwrap();
    h.resize(21, 77).await.unwrap();
    let (output, stdin, exit) = h.into_parts();
    let mut stdin = stdin.unwrap();
    stdin.write_all(b"\n").await.unwrap();
    stdin.flush().await.unwrap();
    let text = String::from_utf8_lossy(&output.collect().await.unwrap().0).into_owned();
    assert!(text.contains("21 77"), "{name}: {text:?}");
    assert_eq!(exit.await.unwrap().code, 0);
    // A missing executable in an exec fails with the runtime's message.
    let err = client
        .exec(ExecOptions { exec_id: "e4".into(), process: process(&case, &["nope"], false), tty: false, stdin: false })
        .await
        .err()
        .expect("exec of a missing binary fails");
    assert!(err.to_string().contains("executable file not found in $PATH"), "{name}: {err}");
    // The direct runtime wrappers: state, ps, pause/resume, update.
    let rt = &case.config.runtime;
    let st = rt.state(id).await.unwrap();
    assert_eq!((st.status.as_str(), st.pid), ("running", client.pid()));
    assert!(rt.ps(id).await.unwrap().contains(&client.pid()));
    rt.pause(id).await.unwrap();
    assert_eq!(rt.state(id).await.unwrap().status, "paused");
    rt.resume(id).await.unwrap();
    assert_eq!(rt.state(id).await.unwrap().status, "running");
    let res: oci_spec::runtime::LinuxResources = serde_json::from_str(r#"{"pids":{"limit":77}}"#).unwrap();
    rt.update(id, &res).await.unwrap();
    let pids_max = std::path::Path::new("/sys/fs/cgroup/pids")
        .join(case.bundle.cgroups_path.trim_start_matches('/'))
        .join("pids.max");
    if let Ok(v) = std::fs::read_to_string(pids_max) {
        assert_eq!(v.trim(), "77", "{name}");
    }
    let err = rt.pause("no-such-container").await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{name}: {err}");
    client.kill_all(libc::SIGKILL).await.unwrap();
    let exit = client.wait().await.unwrap();
    assert_eq!((exit.code, exit.signal), (137, Some(9)));
    client.shutdown().await.unwrap();
}

#[tokio::test]
async fn exec_with_exit_codes_stdin_and_tty() {
    let rt = need!("exec_with_exit_codes_stdin_and_tty");
    exec_cases(&rt, "wharf-runtime", "sh-exec").await;
}

#[tokio::test]
async fn exec_with_runc() {
    let _ = need!("exec_with_runc");
    let Some(runc) = runc_bin() else {
        println!("SKIP exec_with_runc: runc not installed");
        return;
    };
    exec_cases(&runc, "runc", "sh-runc-exec").await;
}

/// Helper run in a child process by `survives_client_death_and_reconnects`: spawns a shim,
/// starts the container, prints the state dir, then hangs until killed.
#[tokio::test]
async fn helper_spawn_and_hang() {
    let Ok(spec) = std::env::var("WHARF_SHIM_HELPER") else {
        return;
    };
    let v: serde_json::Value = serde_json::from_str(&spec).unwrap();
    let config: ShimConfig = serde_json::from_value(v).unwrap();
    let client = spawn(&shim_bin(), config).await.unwrap();
    client.start().await.unwrap();
    println!("READY {}", client.shim_pid());
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test]
async fn survives_client_death_and_reconnects() {
    let rt = need!("survives_client_death_and_reconnects");
    let case =
        Case::new(&rt, "wharf-runtime", "sh-reconnect", &["sh", "-c", "echo started; sleep 1000"], false, false, false);
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_spawn_and_hang", "--nocapture", "--test-threads=1"])
        .env("WHARF_SHIM_HELPER", serde_json::to_string(&case.config).unwrap())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        use tokio::io::AsyncBufReadExt;
        assert!(out.read_line(&mut line).await.unwrap() > 0, "helper died");
        if line.contains("READY") {
            break;
        }
    }
    // SIGKILL the "daemon".
    child.kill().await.unwrap();
    let _ = child.wait().await;
    let client = ShimClient::connect(&case.config.state_dir).await.expect("reconnect");
    let st = client.state().await.unwrap();
    assert_eq!(st.status, Status::Running);
    assert!(process_alive(st.pid));
    // The shim is not our child and lives in its own session.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", st.shim_pid)).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    assert_ne!(fields[1].parse::<u32>().unwrap(), std::process::id());
    assert_eq!(fields[3].parse::<i32>().unwrap(), st.shim_pid, "session leader");
    // Lowering oom_score_adj needs CAP_SYS_RESOURCE (this CI's root may lack it).
    let adj = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", st.shim_pid)).unwrap();
    if has_cap_sys_resource() {
        assert_eq!(adj.trim(), "-999");
    } else {
        println!("NOTE: no CAP_SYS_RESOURCE: shim oom_score_adj stays {}", adj.trim());
    }
    let cadj = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", st.pid)).unwrap();
    assert_ne!(cadj.trim(), "-999", "containers must not inherit the shim's oom protection");
    let waiter = {
        let c = client.clone();
        tokio::spawn(async move { c.wait().await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.kill(libc::SIGKILL).await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap().code, 137);
    assert_eq!(case.log_lines()[0]["log"], "started\n");
    client.shutdown().await.unwrap();
    wait_gone(st.shim_pid).await;
}

fn has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim();
    u64::from_str_radix(eff, 16).unwrap() & (1 << 24) != 0
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap()))
        .unwrap()
}

/// Prints the shim's RSS and the create+start+wait latency of `true` (a measurement, not a
/// timing assertion; run with `--nocapture`).
#[tokio::test]
async fn measure_rss_and_latency() {
    let rt = need!("measure_rss_and_latency");
    let case = Case::new(&rt, "wharf-runtime", "sh-rss", &["sleep", "1000"], false, true, false);
    let client = case.spawn().await.unwrap();
    client.start().await.unwrap();
    let _a = client.attach(AttachOptions { stdin: true, stdout: true, stderr: true }).await.unwrap();
    let rss = rss_kib(client.shim_pid());
    let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", client.shim_pid())).unwrap_or_default();
    let pss = rollup.lines().find_map(|l| l.strip_prefix("Pss:")).unwrap_or("?").trim().to_string();
    println!("MEASURE shim RSS with a running container and one attach: {rss} KiB (PSS {pss})");
    if std::env::var_os("WHARF_TEST_SMAPS").is_some() {
        let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", client.shim_pid())).unwrap();
        let mut name = String::new();
        for l in smaps.lines() {
            if l.contains('-') && !l.starts_with(|c: char| c.is_ascii_uppercase()) {
                name = l.split_whitespace().skip(5).collect::<Vec<_>>().join(" ");
            } else if let Some(v) = l.strip_prefix("Rss:") {
                let kb: u64 = v.trim().trim_end_matches(" kB").trim().parse().unwrap();
                if kb > 0 {
                    println!("SMAPS {kb:>6} KiB {name}");
                }
            }
        }
    }
    client.kill(9).await.unwrap();
    client.wait().await.unwrap();
    client.shutdown().await.unwrap();

    for (name, path) in [("wharf-runtime", Some(rt.clone())), ("runc", runc_bin())] {
        let Some(path) = path else { continue };
        let mut times = Vec::new();
        for i in 0..5 {
            let case = Case::new(&path, name, &format!("sh-lat-{name}-{i}"), &["true"], false, false, false);
            let t = Instant::now();
            let client = case.spawn().await.unwrap();
            let t_create = t.elapsed();
            client.start().await.unwrap();
            let exit = client.wait().await.unwrap();
            let total = t.elapsed();
            assert_eq!(exit.code, 0);
            times.push((t_create, total));
            client.shutdown().await.unwrap();
        }
        times.sort_by_key(|t| t.1);
        let (c, t) = times[times.len() / 2];
        println!("MEASURE {name}: busybox true create+start+wait median {t:?} (create {c:?})");
    }
}
