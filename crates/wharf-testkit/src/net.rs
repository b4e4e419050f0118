//! Per-daemon network names and addresses.
//!
//! Every test daemon takes a [`NetSlot`]: a number held through an exclusive lock file for the
//! daemon's life (parallel test processes never share one), from which come its link prefix
//! (`ws<n>`: bridges `ws<n>-…`, veths `ws<n>v…`, links tests make `ws<n>x…`), its default bridge (`ws<n>-0`), its firewall
//! table (`ws<n>`) and its addresses (`10.<160+n>.0.0/16`: the default bridge on `.0.0/24`,
//! user networks on the following /24s). Dropping the slot removes every link and table carrying
//! those names, so a test leaves nothing even when its daemon was killed.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// How many slots exist (10.160.0.0/16 … 10.199.0.0/16).
pub const SLOTS: u16 = 40;
const FIRST_OCTET: u16 = 160;

/// See the module documentation.
#[derive(Debug)]
pub struct NetSlot {
    n: u16,
    _lock: File,
}

/// The slots' lock files (kept between runs, beside the busybox cache).
fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("wharf-testkit-cache").join("netslots")
}

impl NetSlot {
    /// Takes the first free slot; panics when all are in use.
    pub fn acquire() -> NetSlot {
        std::fs::create_dir_all(lock_dir()).expect("slot lock dir");
        // Start at a pid-dependent slot so parallel processes rarely contend for the same file.
        let start = std::process::id() as u16 % SLOTS;
        for i in 0..SLOTS {
            let n = (start + i) % SLOTS;
            let f = File::create(lock_dir().join(format!("{n}.lock"))).expect("slot lock file");
            // SAFETY: flock on a file descriptor we own.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                let slot = NetSlot { n, _lock: f };
                // A test process killed earlier may have left this slot's objects behind.
                slot.cleanup();
                return slot;
            }
        }
        panic!("all {SLOTS} network slots are in use");
    }

    pub fn number(&self) -> u16 {
        self.n
    }

    /// `link-prefix` of the daemon.
    pub fn link_prefix(&self) -> String {
        format!("ws{}", self.n)
    }

    /// The default bridge (`bridge` in daemon.json).
    pub fn bridge(&self) -> String {
        format!("ws{}-0", self.n)
    }

    /// `firewall-table` of the daemon.
    pub fn firewall_table(&self) -> String {
        format!("ws{}", self.n)
    }

    /// The second octet of every address of this slot.
    pub fn octet(&self) -> u16 {
        FIRST_OCTET + self.n
    }

    /// A /24 of this slot for a user network (`i` ≥ 100 stays clear of IPAM's picks).
    pub fn subnet(&self, i: u8) -> String {
        format!("10.{}.{i}.0/24", self.octet())
    }

    /// The daemon.json entries that give a daemon this slot's names and addresses.
    pub fn daemon_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let o = self.octet();
        let v = serde_json::json!({
            "bridge": self.bridge(),
            "bip": format!("10.{o}.0.1/24"),
            "default-address-pools": [{"base": format!("10.{o}.0.0/16"), "size": 24}],
            "firewall-table": self.firewall_table(),
            "link-prefix": self.link_prefix(),
        });
        v.as_object().cloned().unwrap_or_default()
    }

    /// A name for a link a test makes itself (`ws<n>x<i>`): removed with the slot, never
    /// touched by the daemon (not one of its prefixes).
    pub fn test_link(&self, i: u8) -> String {
        format!("ws{}x{i}", self.n)
    }

    /// Host links of this slot (bridges, veth host ends, dummies, test links).
    pub fn links(&self) -> Vec<String> {
        let out = Command::new("ip").args(["-o", "link", "show"]).output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        let p = self.link_prefix();
        let mine = |name: &str| name.strip_prefix(&p).is_some_and(|rest| rest.starts_with(['-', 'v', 'd', 'x']));
        text.lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_owned())
            .filter(|n| mine(n))
            .collect()
    }

    /// Whether this slot's nftables table exists.
    pub fn table_exists(&self) -> bool {
        let out = Command::new("nft").args(["list", "tables"]).stderr(Stdio::null()).output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        let t = self.firewall_table();
        text.lines().any(|l| l.split_whitespace().last() == Some(t.as_str()))
    }

    /// What this slot still has on the host: links and the firewall table.
    pub fn leaks(&self) -> Vec<String> {
        let mut out: Vec<String> = self.links().into_iter().map(|l| format!("link {l}")).collect();
        if self.table_exists() {
            out.push(format!("nft table inet {}", self.firewall_table()));
        }
        out
    }

    /// Removes every link and the firewall table of this slot.
    pub fn cleanup(&self) {
        for l in self.links() {
            let _ = Command::new("ip").args(["link", "del", &l]).stderr(Stdio::null()).status();
        }
        if self.table_exists() {
            let t = self.firewall_table();
            let _ = Command::new("nft").args(["delete", "table", "inet", &t]).stderr(Stdio::null()).status();
        }
    }
}

impl Drop for NetSlot {
    fn drop(&mut self) {
        self.cleanup();
    }
}
