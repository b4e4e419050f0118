//! The value where snapshots and the runtime meet (containerd's `Mount`): what to mount, not where.

use serde::{Deserialize, Serialize};

/// One filesystem mount: `mount -t <kind> -o <options> <source> <target>`, with the target chosen
/// by whoever performs the mount. A snapshot's root is a list of these (usually one overlay or
/// one bind mount).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Filesystem type: `overlay`, `bind`, `tmpfs`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Source: a device, a directory (bind) or a name (`overlay`).
    pub source: String,
    /// Mount options, e.g. `lowerdir=…`, `upperdir=…`, `rbind`, `ro`.
    pub options: Vec<String>,
}

impl Mount {
    /// True when the options make the mount read-only.
    pub fn is_readonly(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}
