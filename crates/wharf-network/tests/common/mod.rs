//! Shared fixtures for the root-only tests: skip reasons, unique names, leak checks.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// Returns false (after printing why) when the test cannot run here.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        eprintln!("skipping {test}: needs root (network namespaces, netlink, nftables)");
        return false;
    }
    true
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short unique tag for link names (≤ 15 chars total with prefixes): pid-based plus a counter.
pub fn tag() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{:x}{n:x}", std::process::id() % 0xfff)
}

/// A temp directory for netns mounts of one test.
pub fn netns_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("wharf-net-test").tempdir().unwrap()
}

pub fn path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Names of links in the host namespace containing `needle`.
pub fn host_links_containing(needle: &str) -> Vec<String> {
    let mut nl = wharf_network::netlink::Netlink::open().unwrap();
    nl.links().unwrap().into_iter().map(|l| l.name).filter(|n| n.contains(needle)).collect()
}

/// Whether an nftables table with this name exists in any family.
pub fn nft_table_exists(name: &str) -> bool {
    let out = std::process::Command::new("nft").args(["list", "tables"]).output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).lines().any(|l| l.split_whitespace().last() == Some(name)),
        Err(_) => false,
    }
}

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wharf_network::controller::{Controller, ControllerConfig};
use wharf_network::firewall::Backend;
use wharf_network::ipam::NoStore;
use wharf_network::netns;

/// Name prefixes unique to one test, so parallel tests and daemons never collide.
pub struct Names {
    pub tag: String,
    pub table: String,
    pub bridge_prefix: String,
    pub veth_prefix: String,
    pub dummy_prefix: String,
    /// Host ports this test's controller publishes on, apart from every other test's (a
    /// port freed by one test and taken by another made release checks flaky).
    pub port_range: (u16, u16),
    _port_lock: std::fs::File,
}

/// Takes one of 180 blocks of 100 host ports (40000–57999) with an flock, held while the
/// test runs.
fn port_block() -> ((u16, u16), std::fs::File) {
    use std::os::fd::AsRawFd;
    let dir = std::env::temp_dir().join("wharf-testkit-cache").join("portblocks");
    std::fs::create_dir_all(&dir).unwrap();
    let start = std::process::id() % 180;
    for i in 0..180 {
        let k = (start + i) % 180;
        let f = std::fs::File::create(dir.join(format!("{k}.lock"))).unwrap();
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            let lo = 40000 + k as u16 * 100;
            return ((lo, lo + 99), f);
        }
    }
    panic!("all port blocks are in use");
}

pub fn names() -> Names {
    let tag = tag();
    let (port_range, _port_lock) = port_block();
    Names {
        table: format!("wt{tag}"),
        bridge_prefix: format!("wb{tag}"),
        veth_prefix: format!("wv{tag}"),
        dummy_prefix: format!("wd{tag}"),
        tag,
        port_range,
        _port_lock,
    }
}

pub fn config(n: &Names) -> ControllerConfig {
    ControllerConfig {
        firewall_table: n.table.clone(),
        firewall_backend: Some(Backend::Nft),
        bridge_prefix: n.bridge_prefix.clone(),
        veth_prefix: n.veth_prefix.clone(),
        dummy_prefix: n.dummy_prefix.clone(),
        port_range: Some(n.port_range),
        ..Default::default()
    }
}

pub fn controller(n: &Names) -> Controller {
    Controller::new(config(n), Arc::new(NoStore), vec![]).unwrap()
}

/// Asserts that nothing named with this test's prefixes is left on the host.
pub fn assert_no_leaks(n: &Names, netns_dir: &Path) {
    for p in [&n.bridge_prefix, &n.veth_prefix, &n.dummy_prefix] {
        let left = host_links_containing(p);
        assert!(left.is_empty(), "links left behind: {left:?}");
    }
    assert!(!nft_table_exists(&n.table), "nft table {} left behind", n.table);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(netns_dir.to_str().unwrap()), "netns mounts left under {}", netns_dir.display());
}

/// A TCP server bound inside a namespace: answers each connection with the peer's address.
pub fn tcp_peer_server(ns: &Path, addr: SocketAddr) -> SocketAddr {
    let l = netns::run_in(ns, move || TcpListener::bind(addr).unwrap()).unwrap();
    let local = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let peer = c.peer_addr().unwrap();
            let _ = c.write_all(peer.ip().to_string().as_bytes());
        }
    });
    local
}

/// A UDP echo server bound inside a namespace.
pub fn udp_echo_server(ns: &Path, addr: SocketAddr) {
    let s = netns::run_in(ns, move || UdpSocket::bind(addr).unwrap()).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let _ = s.send_to(&buf[..n], from);
        }
    });
}

/// Connects to `addr` from inside the namespace `ns` (or the host when `None`) and returns what
/// the server said, or the error.
pub fn tcp_fetch(ns: Option<&Path>, addr: SocketAddr) -> std::io::Result<String> {
    let connect = move || -> std::io::Result<String> {
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_millis(1500))?;
        c.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut s = String::new();
        c.read_to_string(&mut s)?;
        Ok(s)
    };
    match ns {
        Some(p) => netns::run_in(p, connect).unwrap(),
        None => connect(),
    }
}

/// busybox ping from inside a namespace, if nsenter and busybox exist.
pub fn ping(ns: &Path, ip: &str) -> Option<bool> {
    let nsenter = ["/usr/bin/nsenter", "/bin/nsenter"].into_iter().find(|p| Path::new(p).exists())?;
    if !Path::new("/bin/busybox").exists() {
        return None;
    }
    let st = std::process::Command::new(nsenter)
        .arg(format!("--net={}", ns.display()))
        .args(["/bin/busybox", "ping", "-c", "1", "-W", "1", ip])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    Some(st.success())
}

/// Removes everything carrying a test's names when dropped, so a failed (panicking) test does
/// not leave links, rules or namespace mounts that would confuse the next run.
pub struct Guard {
    prefixes: Vec<String>,
    table: String,
    dir: std::path::PathBuf,
}

pub fn guard(n: &Names, dir: &tempfile::TempDir) -> Guard {
    Guard {
        prefixes: vec![n.bridge_prefix.clone(), n.veth_prefix.clone(), n.dummy_prefix.clone()],
        table: n.table.clone(),
        dir: dir.path().to_path_buf(),
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(mut nl) = wharf_network::netlink::Netlink::open()
            && let Ok(links) = nl.links()
        {
            for l in links {
                if self.prefixes.iter().any(|p| l.name.starts_with(p.as_str())) {
                    let _ = nl.del_link_by_name(&l.name);
                }
            }
        }
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "inet", &self.table])
            .stderr(std::process::Stdio::null())
            .status();
        for p in netns::list(&self.dir) {
            let _ = netns::delete_blocking(&p);
        }
    }
}
