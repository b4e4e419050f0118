//! Fixtures for end-to-end tests.
//!
//! Map:
//! - [`TestDaemon`]: a `wharfd` on its own temp data root, exec root and socket (parallel-safe),
//!   ready when `/_ping` answers; on drop it is stopped and everything it made is removed, and
//!   if the test failed its log is printed.
//! - [`net`]: a [`net::NetSlot`] per daemon — its own bridge, link prefix, firewall table
//!   and subnets — removed from the host when the daemon goes.
//! - [`http`]: a small blocking HTTP/1.1 client over the daemon's unix socket, for tests that
//!   check the wire (headers, status codes, exact bodies).
//! - [`pty`]: a program (the docker CLI) on a pseudo-terminal, typed at and read like a screen.
//! - [`require`]: checks for root, kernel features and installed clients; tests skip with a
//!   printed reason when one is missing.
//! - [`bin_path`]: where the workspace's binaries are (`WHARF_BIN_DIR`, else beside the test
//!   executable's `target/<profile>` dir).

pub mod http;
pub mod net;
pub mod pty;
pub mod require;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The directory holding `wharfd`, `wharf` and the other binaries of the build under test.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WHARF_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test> → target/<profile>
    let dir = exe.parent().and_then(Path::parent).expect("test executable lives in target/<profile>/deps");
    dir.to_path_buf()
}

/// The path of a workspace binary; panics with what to run when it has not been built.
pub fn bin_path(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`) or set WHARF_BIN_DIR",
        p.display()
    );
    p
}

/// The statically linked wharf-init `scripts/build-init.sh` builds (cargo keeps re-copying its
/// own dynamic build into `target/<profile>`, so tests point the daemon at this one).
pub fn static_init_binary() -> Option<PathBuf> {
    let dir = bin_dir();
    let profile = dir.file_name()?.to_owned();
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let p = dir.parent()?.join(triple).join(profile).join("wharf-init");
    p.exists().then_some(p)
}

/// A unique short name for this process and call (bridges, cgroups, netns names).
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}{}x{}", std::process::id() % 100_000, N.fetch_add(1, Ordering::Relaxed))
}

/// Sleeps past the next whole second. `--until 0s` is sent in whole seconds (by the docker CLI
/// too), so events of the current second are only replayed once it is over.
pub fn wait_next_second() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    std::thread::sleep(Duration::from_nanos(1_000_000_000 - u64::from(now.subsec_nanos())) + Duration::from_millis(20));
}

/// A tar of a minimal busybox root filesystem built from the host's static busybox
/// (`/bin/busybox` with its applets as symlinks, `/etc/passwd` and `/etc/group`), made once per
/// test process into a per-process directory, then moved to a cache shared by all test processes
/// (`$TMPDIR/wharf-testkit-cache/busybox-<size>-<mtime>.tar`, one file per busybox build), so
/// test runs leave nothing behind but that file. `None` when the host has no static busybox.
pub fn busybox_rootfs_tar() -> Option<&'static Path> {
    static TAR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    TAR.get_or_init(|| {
        let busybox = Path::new("/bin/busybox");
        if !busybox.exists() {
            return None;
        }
        let meta = busybox.metadata().ok()?;
        let mtime = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
        let cache = std::env::temp_dir().join("wharf-testkit-cache");
        let cached = cache.join(format!("busybox-{}-{mtime}.tar", meta.len()));
        if cached.exists() {
            return Some(cached);
        }
        std::fs::create_dir_all(&cache).ok()?;
        let dir = cache.join(format!("build-{}", std::process::id()));
        let root = dir.join("rootfs");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(root.join("bin")).ok()?;
        std::fs::create_dir_all(root.join("etc")).ok()?;
        std::fs::create_dir_all(root.join("tmp")).ok()?;
        std::fs::copy(busybox, root.join("bin/busybox")).ok()?;
        let list = Command::new(busybox).arg("--list").output().ok()?;
        for applet in String::from_utf8_lossy(&list.stdout).lines().filter(|a| *a != "busybox" && !a.is_empty()) {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .ok()?;
        std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").ok()?;
        let tar = dir.join("busybox.tar");
        let status = Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg(".").status().ok()?;
        let moved = status.success() && std::fs::rename(&tar, &cached).is_ok();
        let _ = std::fs::remove_dir_all(&dir);
        moved.then_some(cached)
    })
    .as_deref()
}

/// Options for starting a daemon.
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// Contents of daemon.json (none: no file).
    pub config: Option<String>,
    /// Extra wharfd flags.
    pub args: Vec<String>,
}

/// A running `wharfd` owned by one test.
pub struct TestDaemon {
    dir: tempfile::TempDir,
    /// The cgroup parent of this daemon's containers (unique per daemon).
    pub cgroup_parent: String,
    child: Option<Child>,
    pub socket: PathBuf,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub config_file: PathBuf,
    pub log_path: PathBuf,
    options: DaemonOptions,
    /// This daemon's network names and addresses (dropped after the daemon is stopped).
    pub net: net::NetSlot,
}

impl TestDaemon {
    /// Starts a daemon with default options and waits until it answers.
    pub fn start() -> Self {
        Self::start_with(DaemonOptions::default())
    }

    pub fn start_with(options: DaemonOptions) -> Self {
        let dir = tempfile::Builder::new().prefix("wharf-test-").tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        let cgroup_parent = format!("/{}", unique_name("wharf-test-"));
        let mut d = TestDaemon {
            cgroup_parent: cgroup_parent.clone(),
            socket: root.join("wharf.sock"),
            data_root: root.join("data"),
            exec_root: root.join("exec"),
            config_file: root.join("daemon.json"),
            log_path: root.join("wharfd.log"),
            dir,
            child: None,
            options,
            net: net::NetSlot::acquire(),
        };
        let mut cfg: serde_json::Value = match &d.options.config {
            Some(text) => serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.clone())),
            None => serde_json::json!({}),
        };
        match cfg.as_object_mut() {
            Some(obj) => {
                obj.entry("cgroup-parent").or_insert(serde_json::Value::String(cgroup_parent));
                for (k, v) in d.net.daemon_json() {
                    obj.entry(k).or_insert(v);
                }
                if let Some(init) = static_init_binary() {
                    obj.entry("init-path").or_insert(serde_json::Value::String(init.display().to_string()));
                }
                std::fs::write(&d.config_file, cfg.to_string()).expect("write daemon.json");
            }
            // Not an object: the test wants to see the daemon refuse it, so write it verbatim.
            None => {
                std::fs::write(&d.config_file, d.options.config.as_deref().unwrap_or("")).expect("write daemon.json")
            }
        }
        d.spawn();
        d
    }

    /// The `wharfd` command line this fixture uses (for tests that run it themselves).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(bin_path("wharfd"));
        cmd.arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--config-file")
            .arg(&self.config_file)
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(&self.options.args)
            .env("RUST_BACKTRACE", "1");
        cmd
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path).expect("daemon log");
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn wharfd");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("wharfd exited during start ({status}); log:\n{}", self.log());
            }
            if let Ok(resp) = http::request(&self.socket, "GET", "/_ping", &[], b"")
                && resp.status == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "wharfd did not answer /_ping within 20s; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `unix:///…/wharf.sock`, for `-H` and `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The temp directory holding everything this daemon made.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Imports the busybox root filesystem as `busybox:latest` (with `CMD ["sh"]`) through the
    /// API, as `docker import` does.
    pub fn import_busybox(&self) {
        let tar = busybox_rootfs_tar().expect("/bin/busybox (busybox-static) is needed");
        let body = std::fs::read(tar).expect("busybox tar");
        let r = http::request(
            &self.socket,
            "POST",
            "/images/create?fromSrc=-&repo=busybox&tag=latest&changes=CMD%20%5B%22sh%22%5D",
            &[("Content-Type", "application/x-tar")],
            &body,
        )
        .unwrap_or_else(|e| panic!("import busybox: {e}; log:\n{}", self.log()));
        assert_eq!(r.status, 200, "import busybox: {}", r.text());
        assert!(!r.text().contains("errorDetail"), "import busybox: {}", r.text());
    }

    /// The real docker CLI pointed at this daemon (no config dir of the user's).
    pub fn docker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .args(args);
        cmd
    }

    /// The wharf CLI pointed at this daemon.
    pub fn wharf(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin_path("wharf"));
        cmd.env("WHARF_HOST", self.host()).env("DOCKER_CONFIG", self.dir.path().join("docker-config")).args(args);
        cmd
    }

    /// An API request on the daemon's socket.
    pub fn api(&self, method: &str, path: &str, body: &[u8]) -> http::Response {
        http::request(&self.socket, method, path, &[("Content-Type", "application/json")], body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}; daemon log:\n{}", self.log()))
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
    }

    /// Waits for the daemon to exit and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                self.child = None;
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the daemon with SIGTERM (SIGKILL after 15 s).
    pub fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        self.signal(libc::SIGTERM);
        if self.wait_exit(Duration::from_secs(15)).is_none() {
            self.kill9();
        }
    }

    /// Kills the daemon with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the daemon again on the same roots (after [`stop`](Self::stop) or [`kill9`](Self::kill9)).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.stop();
        cleanup_host_state(self.dir.path(), &self.cgroup_parent);
        if std::thread::panicking() {
            eprintln!(
                "---- wharfd log ({}) ----\n{}\n---- end of wharfd log ----",
                self.log_path.display(),
                self.log()
            );
        }
    }
}

/// Removes what a daemon under `root` may leave on the host once it is stopped (live restore
/// keeps containers running): shims, container processes, mounts, and the cgroups under
/// `cgroup_parent`.
pub fn cleanup_host_state(root: &Path, cgroup_parent: &str) {
    let root_s = root.to_string_lossy().into_owned();
    // Container processes first, while their shims are alive to reap them.
    let cgroup_dirs = cgroup_dirs(cgroup_parent);
    for _ in 0..100 {
        let pids: Vec<i32> = cgroup_dirs.iter().flat_map(|d| procs_under(d)).collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: kill(2) on a pid read from the cgroup; at worst it is already gone.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Then shims, which carry their state dir (under the root) on their command line.
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else { continue };
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&root_s) && pid != std::process::id() as i32 {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    unmount_under(root);
    // A cgroup can be removed once its last task is reaped, which may take a moment.
    for _ in 0..100 {
        for d in &cgroup_dirs {
            remove_cgroup_tree(d);
        }
        if cgroup_dirs.iter().all(|d| !d.exists()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every cgroup directory named `parent` (v1 controllers and the unified hierarchy).
fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let rel = parent.trim_start_matches('/');
    if rel.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Ok(ctrls) = std::fs::read_dir("/sys/fs/cgroup") {
        for c in ctrls.flatten() {
            let d = c.path().join(rel);
            if d.is_dir() {
                out.push(d);
            }
        }
    }
    let d = Path::new("/sys/fs/cgroup").join(rel);
    if d.is_dir() {
        out.push(d);
    }
    out
}

fn procs_under(dir: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                out.extend(procs_under(&e.path()));
            }
        }
    }
    out
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Lazily unmounts everything mounted under `root` (deepest first), so the temp dir can go.
pub fn unmount_under(root: &Path) {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let root = root.to_string_lossy().into_owned();
    let mut points: Vec<String> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p.starts_with(&root))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p) {
            // SAFETY: umount2 with a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Runs a command and returns its output, panicking with both streams if it could not start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

/// Output as text: (exit code, stdout, stderr). Takes a `Command` or a `&mut Command`.
pub fn run_text(mut cmd: impl std::borrow::BorrowMut<Command>) -> (i32, String, String) {
    let o = run(cmd.borrow_mut());
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs a command that must succeed (the assertion shows both streams); its stdout.
pub fn ok(mut cmd: impl std::borrow::BorrowMut<Command>) -> String {
    let cmd = cmd.borrow_mut();
    let (code, out, err) = run_text(&mut *cmd);
    assert_eq!(code, 0, "{cmd:?} failed:\n{out}{err}");
    out
}

/// Reads a child's stdout to the end with a deadline (for streaming commands).
pub fn read_with_timeout(mut child: Child, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut s = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut s);
    }
    s
}
