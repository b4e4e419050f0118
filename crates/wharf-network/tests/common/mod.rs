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
    tempfile::Builder::new()
        .prefix("wharf-net-test")
        .tempdir()
        .unwrap()
}

pub fn path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Names of links in the host namespace containing `needle`.
pub fn host_links_containing(needle: &str) -> Vec<String> {
    let mut nl = wharf_network::netlink::Netlink::open().unwrap();
    nl.links()
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .filter(|n| n.contains(needle))
        .collect()
}

/// Whether an nftables table with this name exists in any family.
pub fn nft_table_exists(name: &str) -> bool {
    let out = std::process::Command::new("nft")
        .args(["list", "tables"])
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.split_whitespace().last() == Some(name)),
        Err(_) => false,
    }
}
