//! Drives the `wharf-runtime` binary directly through runc's command line, as root, with
//! busybox bundles. The test process is a child subreaper so it can collect container exits.

mod bundle;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bundle::{Bundle, can_run};

const BIN: &str = env!("CARGO_BIN_EXE_wharf-runtime");

struct Rt {
    root: tempfile::TempDir,
    log: PathBuf,
}

impl Rt {
    fn new() -> Rt {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let root = tempfile::Builder::new().prefix("wharf-rt-root-").tempdir().unwrap();
        let log = root.path().join("log.json");
        Rt { root, log }
    }

    /// Runs a verb and captures its output. stdout/stderr go through files, not pipes: after
    /// `create` the container holds the runtime's stdio (runc's contract), so a pipe would not
    /// reach EOF until the container exits.
    fn run(&self, args: &[&str]) -> Output {
        let dir = tempfile::tempdir().unwrap();
        let (o, e) = (dir.path().join("out"), dir.path().join("err"));
        let status = Command::new(BIN)
            .arg("--root")
            .arg(self.root.path())
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json")
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&o).unwrap())
            .stderr(std::fs::File::create(&e).unwrap())
            .status()
            .expect("run wharf-runtime");
        Output { status, stdout: std::fs::read(&o).unwrap(), stderr: std::fs::read(&e).unwrap() }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn state(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state json")
    }

    fn create(&self, b: &Bundle) -> i32 {
        let pid_file = b.path().join("pid");
        self.ok(&["create", "--bundle", b.path().to_str().unwrap(), "--pid-file", pid_file.to_str().unwrap(), &b.id]);
        std::fs::read_to_string(pid_file).unwrap().trim().parse().unwrap()
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        for e in std::fs::read_dir(self.root.path()).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.run(&["delete", "--force", &id]);
            }
        }
    }
}

/// Exit statuses reaped so far. Every child is reaped (`waitpid(-1)`): an exec'd process is
/// our child too (we are the subreaper), and a pid namespace's init does not finish exiting
/// until every process of the namespace has been reaped.
static REAPED: std::sync::Mutex<Vec<(i32, i32)>> = std::sync::Mutex::new(Vec::new());

fn wait_exit(pid: i32, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let mut reaped = REAPED.lock().unwrap();
            loop {
                let mut status = 0;
                // SAFETY: `status` is a valid out-pointer.
                let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
                if r <= 0 {
                    break;
                }
                reaped.push((r, status));
            }
            if let Some(i) = reaped.iter().position(|(p, _)| *p == pid) {
                let (_, status) = reaped.remove(i);
                return if libc::WIFSIGNALED(status) {
                    128 + libc::WTERMSIG(status)
                } else {
                    libc::WEXITSTATUS(status)
                };
            }
        }
        assert!(Instant::now() < deadline, "pid {pid} did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn output_file(b: &Bundle, name: &str) -> PathBuf {
    b.path().join("rootfs/tmp").join(name)
}

#[test]
fn lifecycle_create_start_state_kill_delete() {
    if !can_run("lifecycle_create_start_state_kill_delete") {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("rt-life", &["sleep", "1000"], false);
    let pid = rt.create(&b);
    // CVE-2019-5736: the waiting init runs from a sealed memfd, not from the binary on disk.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.to_string_lossy().starts_with("/memfd:wharf-runtime"), "{exe:?}");
    let st = rt.state(&b.id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["pid"], pid);
    assert_eq!(st["bundle"], b.path().to_str().unwrap());
    rt.ok(&["start", &b.id]);
    assert_eq!(rt.state(&b.id)["status"], "running");
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &b.id])).unwrap();
    assert_eq!(pids, vec![pid]);
    // Deleting a running container without --force is refused.
    assert!(!rt.run(&["delete", &b.id]).status.success());
    rt.ok(&["kill", &b.id, "KILL"]);
    assert_eq!(wait_exit(pid, Duration::from_secs(10)), 137);
    assert_eq!(rt.state(&b.id)["status"], "stopped");
    rt.ok(&["delete", &b.id]);
    let out = rt.run(&["state", &b.id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("container does not exist"));
    // The container's own cgroup is gone.
    assert!(!Path::new("/sys/fs/cgroup/memory").join(b.cgroups_path.trim_start_matches('/')).exists());
}

#[test]
fn exit_codes_and_signal_names() {
    if !can_run("exit_codes_and_signal_names") {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("rt-exit", &["sh", "-c", "echo out > /tmp/o; exit 42"], false);
    let pid = rt.create(&b);
    rt.ok(&["start", &b.id]);
    assert_eq!(wait_exit(pid, Duration::from_secs(10)), 42);
    assert_eq!(std::fs::read_to_string(output_file(&b, "o")).unwrap(), "out\n");
    rt.ok(&["delete", &b.id]);

    // A pid-namespace init ignores signals it has no handler for, hence the trap.
    let b = Bundle::new(
        "rt-term",
        &["sh", "-c", "trap 'exit 7' TERM; touch /tmp/ready; while true; do sleep 0.05; done"],
        false,
    );
    let pid = rt.create(&b);
    rt.ok(&["start", &b.id]);
    while !output_file(&b, "ready").exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    rt.ok(&["kill", &b.id, "SIGTERM"]);
    assert_eq!(wait_exit(pid, Duration::from_secs(10)), 7);
    rt.ok(&["delete", &b.id]);
}

#[test]
fn missing_executable_is_reported_like_runc() {
    if !can_run("missing_executable_is_reported_like_runc") {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("rt-missing", &["no-such-program"], false);
    let out = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &b.id]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exec: \"no-such-program\": executable file not found in $PATH"), "{stderr}");
    let log = std::fs::read_to_string(&rt.log).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(last["msg"].as_str().unwrap().contains("executable file not found in $PATH"));
    assert!(!rt.root.path().join(&b.id).exists(), "failed create left state behind");

    let b = Bundle::new("rt-noperm", &["/etc/passwd"], false);
    let out = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &b.id]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("permission denied"));
    let b = Bundle::new("rt-nofile", &["/bin/nope"], false);
    let out = rt.run(&["create", "--bundle", b.path().to_str().unwrap(), &b.id]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file or directory"));
}

#[test]
fn exec_returns_the_process_exit_code() {
    if !can_run("exec_returns_the_process_exit_code") {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("rt-exec", &["sleep", "1000"], false);
    let pid = rt.create(&b);
    rt.ok(&["start", &b.id]);
    let mut process = b.spec().process().clone().unwrap();
    process.set_args(Some(vec!["sh".into(), "-c".into(), "echo $$ > /tmp/execpid; exit 5".into()]));
    let pfile = b.path().join("proc.json");
    std::fs::write(&pfile, serde_json::to_vec(&process).unwrap()).unwrap();
    let out = rt.run(&["exec", "--process", pfile.to_str().unwrap(), &b.id]);
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    // It ran in the container's pid namespace.
    let inner: i32 = std::fs::read_to_string(output_file(&b, "execpid")).unwrap().trim().parse().unwrap();
    assert!(inner > 1 && inner < 100, "pid in container {inner}");
    // Detached exec writes the pid file.
    let epid = b.path().join("exec.pid");
    let out = rt.run(&["exec", "--detach", "--pid-file", epid.to_str().unwrap(), &b.id, "sleep", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_to_string(&epid).unwrap().trim().parse::<i32>().unwrap() > 0);
    let out = rt.run(&["exec", &b.id, "nonexistent-cmd"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("executable file not found in $PATH"));
    rt.ok(&["kill", &b.id, "9"]);
    wait_exit(pid, Duration::from_secs(10));
    rt.ok(&["delete", &b.id]);
}

#[test]
fn pause_resume_and_update() {
    if !can_run("pause_resume_and_update") {
        return;
    }
    let rt = Rt::new();
    let b = Bundle::new("rt-pause", &["sleep", "1000"], false);
    let pid = rt.create(&b);
    rt.ok(&["start", &b.id]);
    rt.ok(&["pause", &b.id]);
    assert_eq!(rt.state(&b.id)["status"], "paused");
    rt.ok(&["resume", &b.id]);
    assert_eq!(rt.state(&b.id)["status"], "running");
    let res = b.path().join("res.json");
    std::fs::write(&res, r#"{"pids":{"limit":99}}"#).unwrap();
    rt.ok(&["update", "--resources", res.to_str().unwrap(), &b.id]);
    let limit = std::fs::read_to_string(
        Path::new("/sys/fs/cgroup/pids").join(b.cgroups_path.trim_start_matches('/')).join("pids.max"),
    );
    if let Ok(limit) = limit {
        assert_eq!(limit.trim(), "99");
    }
    rt.ok(&["delete", "--force", &b.id]);
    wait_exit(pid, Duration::from_secs(10));
}

#[test]
fn features_and_version() {
    let out = Command::new(BIN).arg("features").output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["linux"]["seccomp"]["enabled"], true);
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("wharf-runtime version"));
}
