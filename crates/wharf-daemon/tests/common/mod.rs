//! A whole daemon in the test process, serving the Docker API on a unix socket, with a busybox
//! image (every applet) in a real overlay snapshot, so the real docker CLI can run containers
//! before the image service lands. Everything else is the real thing: shims, runtime,
//! namespaces, cgroups, bridges, nftables. Each fixture has its own roots, cgroup parent and
//! network slot; dropping it removes containers, mounts, links and rules.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use wharf_daemon::config::{Config, FileConfig, FlagConfig};
use wharf_daemon::container::{ImageProvider, ResolvedImage};
use wharf_daemon::{BuildInfo, Daemon};
use wharf_snapshot::Snapshotter;
use wharf_testkit::net::NetSlot;
use wharf_types::EngineError;

pub struct BusyboxImage {
    pub snapshotter: Arc<dyn Snapshotter>,
}

#[async_trait]
impl ImageProvider for BusyboxImage {
    async fn resolve_image(&self, name: &str) -> Result<ResolvedImage, EngineError> {
        if !["busybox", "busybox:latest", "docker.io/library/busybox:latest", "sha256:b0000000"].contains(&name) {
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

pub fn requirements() -> Result<(), String> {
    wharf_testkit::require::root()?;
    wharf_testkit::require::overlayfs()?;
    wharf_testkit::require::program("nft")?;
    if !Path::new("/bin/busybox").exists() {
        return Err("needs /bin/busybox (busybox-static)".into());
    }
    Ok(())
}

/// Builds the busybox layer (committed as snapshot `busybox`): the static binary and a symlink
/// per applet, and a web root for httpd.
pub fn build_busybox_layer(snapshotter: &dyn Snapshotter) {
    drop(snapshotter.prepare("busybox-build", None).unwrap());
    let fs = snapshotter.writable_dir("busybox-build").unwrap();
    std::fs::create_dir_all(fs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", fs.join("bin/busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines().filter(|a| !a.is_empty() && *a != "busybox") {
        let _ = std::os::unix::fs::symlink("busybox", fs.join("bin").join(applet));
    }
    for d in ["proc", "sys", "dev", "etc", "tmp", "www"] {
        std::fs::create_dir_all(fs.join(d)).unwrap();
    }
    std::fs::write(fs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        .unwrap();
    std::fs::write(fs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    std::fs::write(fs.join("www/index.html"), "hello from busybox\n").unwrap();
    snapshotter.commit("busybox", "busybox-build").unwrap();
}

/// A daemon serving the API in this process.
pub struct InProc {
    daemon: Option<Arc<Daemon>>,
    pub socket: PathBuf,
    pub net: NetSlot,
    pub cgroup_parent: String,
    config: Config,
    /// Whether the busybox layer exists (built at the first boot).
    built: bool,
    shutdown: tokio_util::sync::CancellationToken,
    rt: Option<tokio::runtime::Runtime>,
    dir: tempfile::TempDir,
}

impl InProc {
    pub fn start() -> InProc {
        Self::start_with(serde_json::json!({}))
    }

    /// `extra` is merged into the daemon.json the fixture builds (network slot, cgroup parent).
    pub fn start_with(extra: serde_json::Value) -> InProc {
        // SAFETY: set before any thread reads the environment; every test sets the same value.
        unsafe { std::env::set_var("WHARF_BIN_DIR", wharf_testkit::bin_dir()) };
        let dir = tempfile::Builder::new().prefix("wharf-test-").tempdir().unwrap();
        let net = NetSlot::acquire();
        let cgroup_parent = format!("/{}", wharf_testkit::unique_name("wharf-test-"));
        let mut file = net.daemon_json();
        file.insert("cgroup-parent".into(), cgroup_parent.clone().into());
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            file.insert(k, v);
        }
        let data = dir.path().join("data");
        let flags =
            FlagConfig { data_root: Some(data), exec_root: Some(dir.path().join("exec")), ..Default::default() };
        let file = FileConfig::parse(&serde_json::Value::Object(file).to_string()).unwrap();
        let config = Config::merge(flags, file, dir.path().join("daemon.json")).unwrap();
        let socket = dir.path().join("wharf.sock");
        let mut p = InProc {
            daemon: None,
            socket,
            net,
            cgroup_parent,
            config,
            built: false,
            shutdown: tokio_util::sync::CancellationToken::new(),
            rt: None,
            dir,
        };
        p.boot();
        p
    }

    /// Opens the daemon on the fixture's roots, restores, and serves the API.
    fn boot(&mut self) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let _ = std::fs::remove_file(&self.socket);
        self.shutdown = tokio_util::sync::CancellationToken::new();
        let (config, socket, shutdown) = (self.config.clone(), self.socket.clone(), self.shutdown.clone());
        let build = !self.built;
        self.built = true;
        let provider: wharf_daemon::ImageProviderFactory = Box::new(move |images| {
            let snapshotter = images.snapshotter();
            if build {
                build_busybox_layer(&*snapshotter);
            }
            Arc::new(BusyboxImage { snapshotter }) as Arc<dyn ImageProvider>
        });
        let daemon = rt.block_on(async move {
            let daemon = Daemon::open_with(config, BuildInfo::default(), Some(provider)).unwrap();
            daemon.restore().await;
            let listener = tokio::net::UnixListener::bind(&socket).unwrap();
            let app = wharf_api::router::build(daemon.backends(), shutdown.clone());
            tokio::spawn(wharf_api::server::serve(vec![wharf_api::server::Listener::Unix(listener)], app, shutdown));
            daemon
        });
        self.daemon = Some(daemon);
        self.rt = Some(rt);
    }

    pub fn daemon(&self) -> &Arc<Daemon> {
        self.daemon.as_ref().expect("daemon running")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn exec_root(&self) -> PathBuf {
        self.dir.path().join("exec")
    }

    /// Runs a future on the daemon's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.as_ref().expect("daemon running").block_on(f)
    }

    /// The real docker CLI pointed at this daemon.
    pub fn docker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .args(args);
        cmd
    }

    /// Runs docker and returns (exit code, stdout, stderr). A command still running after a
    /// minute is killed and the test fails (so the fixture still cleans up).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        use std::io::Read;
        let mut child = self
            .docker(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn docker");
        let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = so.read_to_string(&mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = se.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Ok(Some(st)) = child.try_wait() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("docker {args:?} hung for a minute");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        (status.code().unwrap_or(-1), out.join().unwrap_or_default(), err.join().unwrap_or_default())
    }

    /// Runs docker, asserting success; returns stdout trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "docker {args:?} failed: {err}{out}");
        out.trim().to_owned()
    }

    /// `docker inspect -f <format> <name>`.
    pub fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", "-f", format, name])
    }

    /// The container's IPv4 address on a network.
    pub fn ip(&self, name: &str, network: &str) -> String {
        self.inspect(name, &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"))
    }

    /// The PID of a running container's process.
    pub fn pid(&self, name: &str) -> i32 {
        self.inspect(name, "{{.State.Pid}}").parse().unwrap()
    }

    /// Waits until a TCP port listens in a running container's namespace.
    pub fn wait_listening(&self, name: &str, port: u16) -> bool {
        let pid = self.pid(name);
        let want = format!(":{port:04X} ");
        eventually(10, || {
            let tcp = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default()
                + &std::fs::read_to_string(format!("/proc/{pid}/net/tcp6")).unwrap_or_default();
            tcp.lines()
                .any(|l| {
                    l.split_whitespace().nth(1).is_some_and(|a| a.ends_with(want.trim()))
                        && l.split_whitespace().nth(3) == Some("0A")
                })
                .then_some(())
        })
        .is_some()
    }

    /// The network namespace of a running container, for test helpers busybox lacks (a UDP
    /// server) run from the host.
    pub fn netns_of(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid(name)))
    }

    /// Stops the API and the daemon as wharfd does at SIGTERM (containers keep running).
    pub fn shutdown(&mut self) {
        if let Some(rt) = self.rt.take() {
            self.shutdown.cancel();
            let d = self.daemon.take();
            rt.block_on(async move {
                if let Some(d) = d {
                    d.shutdown().await;
                }
            });
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }

    /// Kills the daemon as SIGKILL would: its tasks vanish, no shutdown code runs.
    pub fn crash(&mut self) {
        if let Some(rt) = self.rt.take() {
            self.shutdown.cancel();
            self.daemon = None;
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }

    /// A new daemon on the same roots and slot (after `shutdown` or `crash`).
    pub fn restart(&mut self) {
        self.crash();
        self.boot();
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        if let Some(d) = self.daemon.clone() {
            self.block_on(async move {
                use wharf_api::backend::ContainerBackend;
                let all = d
                    .containers()
                    .list(wharf_api::backend::ListOptions { all: true, ..Default::default() })
                    .await
                    .unwrap_or_default();
                for c in all {
                    let _ = d.containers().remove(c.id.as_deref().unwrap_or(""), true, false, false).await;
                }
            });
            self.shutdown();
        }
        wharf_testkit::cleanup_host_state(self.dir.path(), &self.cgroup_parent);
    }
}

/// Polls `f` until it returns `Some`, for up to `secs` seconds.
pub fn eventually<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// HTTP GET with a plain TCP client (what `curl` does, without needing curl).
pub fn http_get(addr: std::net::SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The host's first global IPv4 address (a non-loopback address of this machine).
pub fn host_ipv4() -> Option<std::net::Ipv4Addr> {
    let out = Command::new("ip").args(["-4", "-o", "addr", "show", "scope", "global"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains(" ws"))
        .find_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1)?.split('/').next()?.parse().ok())
}

/// A UDP echo server bound inside a namespace (busybox has no UDP server); served by a thread.
pub fn udp_echo_in(netns: &Path, port: u16) {
    let sock = wharf_network::netns::run_in(netns, move || std::net::UdpSocket::bind(("0.0.0.0", port)))
        .expect("enter the container's namespace")
        .expect("bind the UDP echo server");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], from);
        }
    });
}

/// Sends one datagram and waits for its echo.
pub fn udp_roundtrip(to: std::net::SocketAddr, payload: &[u8]) -> Option<Vec<u8>> {
    let bind: std::net::SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().ok()?;
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    for _ in 0..6 {
        s.send_to(payload, to).ok()?;
        let mut buf = [0u8; 1500];
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            return Some(buf[..n].to_vec());
        }
    }
    None
}

/// A DNS server answering every A query with `answer` (and AAAA with no records), for
/// forwarding tests. Returns once bound.
pub fn fake_dns(addr: std::net::SocketAddr, answer: std::net::Ipv4Addr) {
    let sock = std::net::UdpSocket::bind(addr).expect("bind the fake DNS server");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let q = &buf[..n];
            // The question ends after its labels, then QTYPE and QCLASS.
            let mut i = 12;
            while i < n && q[i] != 0 {
                i += q[i] as usize + 1;
            }
            if i + 5 > n {
                continue;
            }
            let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
            let question = &q[12..i + 5];
            let mut r = Vec::with_capacity(64);
            r.extend_from_slice(&q[0..2]);
            r.extend_from_slice(&[0x81, 0x80, 0, 1]);
            r.extend_from_slice(&[0, u8::from(qtype == 1), 0, 0, 0, 0]);
            r.extend_from_slice(question);
            if qtype == 1 {
                r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                r.extend_from_slice(&answer.octets());
            }
            let _ = sock.send_to(&r, from);
        }
    });
}

impl InProc {
    /// Ends a test the way a user would leave a host: containers and user networks removed,
    /// daemon stopped. Then nothing of the daemon may remain but its default bridge: no veth,
    /// no user bridge, no firewall table, no namespace mount, no IP allocation.
    pub fn finish_and_check_leaks(mut self) {
        for id in self.ok(&["ps", "-aq"]).lines() {
            self.ok(&["rm", "-f", id]);
        }
        self.ok(&["network", "prune", "-f"]);
        self.shutdown();
        let mut leaks: Vec<String> =
            self.net.leaks().into_iter().filter(|l| *l != format!("link {}", self.net.bridge())).collect();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let root = self.dir.path().display().to_string();
        leaks.extend(
            mounts.lines().filter(|l| l.contains(&root) && l.contains("nsfs")).map(|l| format!("netns mount {l}")),
        );
        let db = wharf_store::Db::open(&self.config.data_root.join("wharf.db")).unwrap();
        let pools: Vec<String> = {
            let conn = db.conn();
            let mut st = conn.prepare("SELECT doc FROM network_pools").unwrap();
            st.query_map([], |r| r.get::<_, String>(0)).unwrap().filter_map(Result::ok).collect()
        };
        for p in pools {
            let v: serde_json::Value = serde_json::from_str(&p).unwrap();
            if v["allocated"].as_array().is_some_and(|a| !a.is_empty()) {
                leaks.push(format!("IP allocation {}", v["allocated"]));
            }
        }
        let endpoints: i64 =
            db.conn().query_row("SELECT COUNT(*) FROM network_endpoints", [], |r| r.get(0)).unwrap_or(-1);
        if endpoints != 0 {
            leaks.push(format!("{endpoints} endpoint rows"));
        }
        assert!(leaks.is_empty(), "left behind: {leaks:#?}");
    }
}

/// Reads an HTTP request's head, so that closing afterwards is a clean FIN, not a reset.
pub fn read_request(s: &mut std::net::TcpStream) {
    use std::io::Read;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
