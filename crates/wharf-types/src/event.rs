//! The engine's event record. Every state change publishes one on the daemon's bus; the API
//! renders it in Docker's `/events` shape for the request's version.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The object type an event is about (`Type` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Builder,
    Config,
    Container,
    Daemon,
    Image,
    Network,
    Node,
    Plugin,
    Secret,
    Service,
    Volume,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Builder => "builder",
            EventType::Config => "config",
            EventType::Container => "container",
            EventType::Daemon => "daemon",
            EventType::Image => "image",
            EventType::Network => "network",
            EventType::Node => "node",
            EventType::Plugin => "plugin",
            EventType::Secret => "secret",
            EventType::Service => "service",
            EventType::Volume => "volume",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "builder" => EventType::Builder,
            "config" => EventType::Config,
            "container" => EventType::Container,
            "daemon" => EventType::Daemon,
            "image" => EventType::Image,
            "network" => EventType::Network,
            "node" => EventType::Node,
            "plugin" => EventType::Plugin,
            "secret" => EventType::Secret,
            "service" => EventType::Service,
            "volume" => EventType::Volume,
            _ => return None,
        })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who the event is about: its ID (or name, for volumes) and attributes (`name`, `image`,
/// labels, `exitCode`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventActor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// One event. `action` is Docker's action string, which may carry a detail after `: `
/// (`health_status: healthy`, `exec_start: sh -c true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub action: String,
    pub actor: EventActor,
    /// `local` (or `swarm`).
    pub scope: &'static str,
    /// Unix time in nanoseconds.
    pub time_nano: i64,
}

impl Event {
    /// An event stamped with the current time.
    pub fn now(
        kind: EventType,
        action: impl Into<String>,
        id: impl Into<String>,
        attributes: BTreeMap<String, String>,
    ) -> Self {
        let time_nano = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        Self { kind, action: action.into(), actor: EventActor { id: id.into(), attributes }, scope: "local", time_nano }
    }

    /// Unix seconds.
    pub fn time(&self) -> i64 {
        self.time_nano.div_euclid(1_000_000_000)
    }

    /// The action without its detail: `health_status: healthy` → `health_status`.
    pub fn base_action(&self) -> &str {
        self.action.split_once(':').map_or(self.action.as_str(), |(a, _)| a.trim())
    }
}
