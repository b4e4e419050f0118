//! Containers end to end with the real docker CLI against wharfd: the run contract (exit
//! codes, stdin), every `run` flag checked from inside the container, lifecycle commands,
//! restart policies, logs and rotation, live restore across a daemon SIGKILL.

use std::time::Duration;

use wharf_testkit::{DaemonOptions, TestDaemon, require, run_text, skip_unless};

fn daemon() -> TestDaemon {
    let d = TestDaemon::start();
    d.import_busybox();
    d
}

/// `docker <args>` → (code, stdout, stderr).
fn docker(d: &TestDaemon, args: &[&str]) -> (i32, String, String) {
    run_text(&mut d.docker(args))
}

/// Runs `docker run --rm busybox sh -c <script>` with extra flags; returns trimmed stdout.
fn run_sh(d: &TestDaemon, flags: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    let (code, out, err) = docker(d, &args);
    assert_eq!(code, 0, "docker {args:?}: {err}");
    out.trim().to_owned()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn run_exit_code_contract() {
    skip_unless!(require::root(), require::program("docker"), require::busybox());
    let d = daemon();
    let (code, out, err) = docker(&d, &["run", "--rm", "busybox", "echo", "hello"]);
    assert_eq!((code, out.as_str()), (0, "hello\n"), "{err}");
    assert_eq!(docker(&d, &["run", "busybox", "sh", "-c", "exit 3"]).0, 3);
    let (code, _, err) = docker(&d, &["run", "--rm", "busybox", "nonexistentcmd"]);
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("executable file not found in $PATH"), "{err}");
    let (code, _, err) = docker(&d, &["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(code, 126, "{err}");
    let (code, _, err) = docker(&d, &["run", "--rm", "nosuchimage"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("No such image") || err.contains("Unable to find image"), "{err}");
    // --rm containers are gone, also after a failed start.
    let (_, out, _) = docker(&d, &["ps", "-aq", "--filter", "status=created"]);
    assert_eq!(out.trim(), "");
    // stdin with -i: the half-close ends the container's stdin (compat acceptance check 4).
    let mut child = d
        .docker(&["run", "-i", "--rm", "busybox", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hi\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"hi\n");
}

#[test]
fn flags_take_effect_inside_the_container() {
    skip_unless!(require::root(), require::program("docker"), require::busybox());
    let d = daemon();
    // Docker's default capabilities, seccomp filtering, no-new-privileges off by default.
    let caps = run_sh(&d, &[], "grep -E '^(CapEff|CapBnd|Seccomp):' /proc/self/status | tr -s '\\t ' ' '");
    assert!(caps.contains("CapEff: 00000000a80425fb"), "{caps}");
    assert!(caps.contains("CapBnd: 00000000a80425fb"), "{caps}");
    assert!(caps.contains("Seccomp: 2"), "{caps}");
    let caps = run_sh(&d, &["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"], "grep CapEff /proc/self/status");
    assert!(caps.ends_with("0000000000001000"), "{caps}");
    // --privileged grants what the daemon holds (its bounding set), without seccomp.
    let daemon_bnd = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_owned()))
        .unwrap();
    let p = run_sh(&d, &["--privileged"], "grep -E '^(CapEff|Seccomp):' /proc/self/status | tr -s '\\t ' ' '");
    assert!(p.contains(&format!("CapEff: {daemon_bnd}")), "{p} vs {daemon_bnd}");
    assert!(p.contains("Seccomp: 0"), "{p}");
    // Seccomp refuses what Docker's profile refuses.
    let (code, _, _) = docker(&d, &["run", "--rm", "busybox", "sh", "-c", "unshare -U true"]);
    assert_ne!(code, 0, "unshare of a user namespace is refused");
    // Masked and read-only paths.
    assert_ne!(std::fs::read_to_string("/proc/interrupts").unwrap_or_default().len(), 0);
    assert_eq!(run_sh(&d, &[], "wc -c < /proc/interrupts"), "0", "masked paths read empty");
    assert_eq!(run_sh(&d, &[], "touch /proc/sys/kernel/x 2>/dev/null && echo writable || echo ro"), "ro");
    // Identity, environment, working dir, hostname.
    assert_eq!(run_sh(&d, &["-u", "nobody"], "id -u; id -g"), "65534\n65534");
    assert_eq!(run_sh(&d, &["-u", "1234:5678"], "id -u; id -g"), "1234\n5678");
    assert_eq!(run_sh(&d, &["-e", "FOO=bar", "-w", "/tmp"], "echo $FOO; pwd"), "bar\n/tmp");
    assert_eq!(run_sh(&d, &["--hostname", "wharfy"], "hostname"), "wharfy");
    assert_eq!(run_sh(&d, &[], "echo $PATH"), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    // Limits through cgroups (v1 controllers here; v2 files on unified hosts).
    let v2 = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains("cgroup2"));
    if v2 {
        assert_eq!(run_sh(&d, &["--memory", "64m"], "cat /sys/fs/cgroup/memory.max"), "67108864");
        assert_eq!(run_sh(&d, &["--cpus", "0.5"], "cat /sys/fs/cgroup/cpu.max"), "50000 100000");
        assert_eq!(run_sh(&d, &["--pids-limit", "42"], "cat /sys/fs/cgroup/pids.max"), "42");
    } else {
        assert_eq!(run_sh(&d, &["--memory", "64m"], "cat /sys/fs/cgroup/memory/memory.limit_in_bytes"), "67108864");
        assert_eq!(run_sh(&d, &["--cpus", "0.5"], "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us"), "50000");
        assert_eq!(run_sh(&d, &["--cpu-shares", "512"], "cat /sys/fs/cgroup/cpu/cpu.shares"), "512");
        assert_eq!(run_sh(&d, &["--pids-limit", "42"], "cat /sys/fs/cgroup/pids/pids.max"), "42");
        assert_eq!(run_sh(&d, &["--cpuset-cpus", "0"], "cat /sys/fs/cgroup/cpuset/cpuset.cpus"), "0");
    }
    // rlimits, /dev/shm, read-only rootfs, tmpfs, devices, sysctls.
    assert_eq!(run_sh(&d, &["--ulimit", "nofile=100:200"], "ulimit -n; ulimit -Hn"), "100\n200");
    assert_eq!(run_sh(&d, &["--shm-size", "8m"], "df -k /dev/shm | tail -1 | tr -s ' ' | cut -d' ' -f2"), "8192");
    assert_eq!(run_sh(&d, &["--read-only"], "touch /x 2>&1 | grep -c 'Read-only file system'"), "1");
    assert_eq!(run_sh(&d, &["--read-only", "--tmpfs", "/scratch"], "touch /scratch/x && echo ok"), "ok");
    assert_eq!(run_sh(&d, &["--device", "/dev/null:/dev/mynull"], "echo hi > /dev/mynull && echo ok"), "ok");
    assert_eq!(run_sh(&d, &["--sysctl", "net.ipv4.ip_forward=1"], "cat /proc/sys/net/ipv4/ip_forward"), "1");
    // --init: a tiny init is PID 1 and the command runs under it.
    assert_eq!(
        run_sh(&d, &["--init"], "cat /proc/1/cmdline | tr '\\0' ' '"),
        "/sbin/docker-init -- sh -c cat /proc/1/cmdline | tr '\\0' ' '"
    );
    // Network modes available before user networks: none (loopback only) and host.
    assert_eq!(run_sh(&d, &["--network", "none"], "ls /sys/class/net"), "lo");
    // The host's links, not a copy of their count: parallel tests add and remove bridges
    // meanwhile. This daemon's default bridge exists only in the host's namespace.
    let inside = run_sh(&d, &["--network", "host"], "ls /sys/class/net");
    assert!(inside.lines().any(|l| l == d.net.bridge()), "{inside}");
    assert!(
        inside.lines().all(|l| l.starts_with("ws") || std::path::Path::new("/sys/class/net").join(l).exists()),
        "{inside}"
    );
    // Bad options are refused before anything is created.
    let (code, _, err) = docker(&d, &["run", "--rm", "--memory", "1k", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("Minimum memory limit allowed is 6MB"), "{err}");
    let (code, _, err) = docker(&d, &["run", "--rm", "--cap-add", "NOPE", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.to_lowercase().contains("unknown capability"), "{err}");
    let (_, out, _) = docker(&d, &["ps", "-aq"]);
    assert_eq!(out.trim(), "", "nothing left from refused runs");
}

#[test]
fn lifecycle_commands() {
    skip_unless!(require::root(), require::program("docker"), require::busybox());
    let d = daemon();
    let (code, id, err) = docker(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-l",
            "tier=front",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 0' TERM; echo started; while true; do sleep 0.1; done",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 64);
    wait_for("started log line", || docker(&d, &["logs", "web"]).1.contains("started"));
    let (_, ps, _) = docker(&d, &["ps", "--format", "{{.Names}} {{.Status}} {{.Labels}}"]);
    assert!(ps.starts_with("web Up "), "{ps}");
    assert!(ps.contains("tier=front"), "{ps}");
    assert_eq!(docker(&d, &["ps", "-q", "--filter", "label=tier=front"]).1.trim(), &id[..12]);
    assert_eq!(docker(&d, &["ps", "-q", "--filter", "ancestor=busybox"]).1.trim(), &id[..12]);
    assert_eq!(
        docker(&d, &["inspect", "-f", "{{.State.Status}} {{.Name}} {{.Config.Image}}", "web"]).1.trim(),
        "running /web busybox"
    );
    let (code, top, _) = docker(&d, &["top", "web"]);
    assert_eq!(code, 0);
    assert!(top.starts_with("UID") && top.contains("sh -c"), "{top}");
    assert_eq!(docker(&d, &["pause", "web"]).0, 0);
    assert_eq!(docker(&d, &["inspect", "-f", "{{.State.Status}}", "web"]).1.trim(), "paused");
    assert!(docker(&d, &["ps", "--format", "{{.Status}}"]).1.contains("(Paused)"));
    assert_eq!(docker(&d, &["unpause", "web"]).0, 0);
    assert_eq!(docker(&d, &["rename", "web", "web2"]).0, 0);
    let (code, _, err) = docker(&d, &["rm", "web2"]);
    assert_eq!(code, 1);
    assert!(err.contains("You cannot remove a running container"), "{err}");
    let (code, out, _) = docker(&d, &["stop", "web2"]);
    assert_eq!((code, out.trim()), (0, "web2"));
    assert_eq!(docker(&d, &["inspect", "-f", "{{.State.ExitCode}}", "web2"]).1.trim(), "0");
    assert_eq!(docker(&d, &["stop", "web2"]).0, 0, "stopping a stopped container is fine (304)");
    let (code, _, err) = docker(&d, &["kill", "web2"]);
    assert_eq!(code, 1);
    assert!(err.contains("is not running"), "{err}");
    assert_eq!(docker(&d, &["start", "web2"]).0, 0);
    assert_eq!(docker(&d, &["kill", "-s", "KILL", "web2"]).0, 0);
    let (code, out, _) = docker(&d, &["wait", "web2"]);
    assert_eq!((code, out.trim()), (0, "137"));
    let (_, ps, _) = docker(&d, &["ps", "-a", "--filter", "exited=137", "--format", "{{.Names}}"]);
    assert_eq!(ps.trim(), "web2");
    // `docker create` exits 1 on daemon errors (only `run` turns them into 125).
    let (code, name_clash, err) = docker(&d, &["create", "--name", "web2", "busybox"]);
    assert_eq!(code, 1, "{name_clash}");
    assert!(err.contains("Conflict. The container name \"/web2\" is already in use"), "{err}");
    let (code, out, _) = docker(&d, &["container", "prune", "-f"]);
    assert_eq!(code, 0);
    assert!(out.contains(&id), "{out}");
    assert_eq!(docker(&d, &["ps", "-aq"]).1.trim(), "");
    let (code, _, err) = docker(&d, &["inspect", "--type", "container", "web2"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such container: web2"), "{err}");
}

#[test]
fn restart_policies() {
    skip_unless!(require::root(), require::program("docker"), require::busybox());
    let d = daemon();
    docker(&d, &["run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "false"]);
    wait_for("two restarts", || {
        let out = docker(&d, &["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "flaky"]).1;
        out.trim() == "2 exited"
    });
    docker(&d, &["run", "-d", "--name", "always", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2"]);
    wait_for("always restarts", || {
        docker(&d, &["inspect", "-f", "{{.RestartCount}}", "always"]).1.trim().parse::<i64>().unwrap_or(0) >= 2
    });
    // A manual stop is not undone by the policy.
    assert_eq!(docker(&d, &["stop", "-t", "1", "always"]).0, 0);
    let count = docker(&d, &["inspect", "-f", "{{.RestartCount}}", "always"]).1;
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        docker(&d, &["inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "always"]).1.trim(),
        format!("exited {}", count.trim())
    );
    let (code, _, err) = docker(&d, &["run", "--rm", "--restart", "always", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.to_lowercase().contains("conflicting options"), "{err}");
    // Through the API (the CLI refuses this itself), the daemon gives Docker's message.
    let r = d.api(
        "POST",
        "/containers/create",
        br#"{"Image":"busybox","HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "can't create 'AutoRemove' container with restart policy");
    let (code, _, err) = docker(&d, &["run", "--restart", "sometimes", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("invalid restart policy") || err.contains("sometimes"), "{err}");
}

#[test]
fn logs_follow_tail_timestamps_and_rotation() {
    skip_unless!(require::root(), require::program("docker"), require::busybox());
    let d = daemon();
    docker(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "chatty",
            "--log-opt",
            "max-size=2k",
            "--log-opt",
            "max-file=3",
            "busybox",
            "sh",
            "-c",
            "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done; echo bye >&2",
        ],
    );
    wait_for("exit", || docker(&d, &["inspect", "-f", "{{.State.Status}}", "chatty"]).1.trim() == "exited");
    let (code, out, err) = docker(&d, &["logs", "--tail", "3", "chatty"]);
    assert_eq!(code, 0);
    assert_eq!(out, "line 298\nline 299\n");
    assert_eq!(err, "bye\n", "stderr lines go to fd 2");
    let (_, _, err) = docker(&d, &["logs", "-t", "--tail", "1", "chatty"]);
    let (ts, line) = err.split_once(' ').unwrap();
    assert_eq!(ts.len(), "2026-11-23T02:22:03.065273975Z".len(), "{err}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
    assert_eq!(line, "bye\n");
    let log_path = docker(&d, &["inspect", "-f", "{{.LogPath}}", "chatty"]).1.trim().to_owned();
    let rotated: Vec<_> =
        (1..=3).map(|n| std::path::PathBuf::from(format!("{log_path}.{n}"))).filter(|p| p.exists()).collect();
    assert_eq!(rotated.len(), 2, "max-file=3 keeps the live file and two rotated ones");
    assert!(std::fs::metadata(&log_path).unwrap().len() <= 2048 + 200);
    // follow ends when the container stops.
    docker(
        &d,
        &["run", "-d", "--name", "ticker", "busybox", "sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.3; done"],
    );
    let (code, out, _) = docker(&d, &["logs", "-f", "ticker"]);
    assert_eq!((code, out.as_str()), (0, "tick 1\ntick 2\ntick 3\n"));
    let (code, _, err) = docker(&d, &["logs", "nosuch"]);
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "Error response from daemon: No such container: nosuch");
}

#[test]
fn live_restore_across_a_daemon_sigkill() {
    skip_unless!(require::root(), require::program("docker"), require::busybox());
    let mut d = TestDaemon::start_with(DaemonOptions::default());
    d.import_busybox();
    docker(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "survivor",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do echo alive; sleep 0.2; done",
        ],
    );
    docker(&d, &["run", "-d", "--name", "shortlived", "busybox", "sh", "-c", "sleep 1; exit 7"]);
    let pid = docker(&d, &["inspect", "-f", "{{.State.Pid}}", "survivor"]).1.trim().to_owned();
    d.kill9();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "the container outlived the daemon");
    d.restart();
    assert_eq!(
        docker(&d, &["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "survivor"]).1.trim(),
        format!("running {pid}")
    );
    wait_for("the missed exit to be collected", || {
        docker(&d, &["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "shortlived"]).1.trim() == "exited 7"
    });
    let before = docker(&d, &["logs", "survivor"]).1.lines().count();
    wait_for("logs to keep flowing", || docker(&d, &["logs", "survivor"]).1.lines().count() > before);
    assert_eq!(docker(&d, &["stop", "survivor"]).0, 0);
    assert_eq!(docker(&d, &["inspect", "-f", "{{.State.ExitCode}}", "survivor"]).1.trim(), "0");
}

#[test]
fn events_follow_the_lifecycle() {
    skip_unless!(require::root(), require::program("docker"), require::busybox());
    let d = daemon();
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    docker(&d, &["run", "--name", "ev", "busybox", "true"]);
    docker(&d, &["rm", "ev"]);
    wharf_testkit::wait_next_second();
    let (_, out, _) = docker(
        &d,
        &["events", "--since", &since, "--until", "0s", "--filter", "type=container", "--format", "{{.Action}}"],
    );
    let actions: Vec<&str> = out.lines().filter(|a| !a.starts_with("exec")).collect();
    assert_eq!(actions, vec!["create", "attach", "start", "die", "destroy"], "{out}");
}
