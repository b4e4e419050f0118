//! The engine as the API sees it: one narrow trait per resource. `wharf-daemon` implements them;
//! route tests can implement them with fakes. Every method returns an [`EngineError`] whose kind
//! decides the status code.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use wharf_types::{EngineError, Event, Filters};

use crate::models::{SystemInfo, SystemVersion};

/// A stream of events that ends when `until` passes (if given) or the daemon shuts down.
pub type EventStream = BoxStream<'static, Event>;

/// System-wide queries: `/info`, `/version`, `/events`.
#[async_trait]
pub trait SystemBackend: Send + Sync + 'static {
    /// `GET /info`.
    async fn info(&self) -> Result<SystemInfo, EngineError>;

    /// `GET /version`.
    async fn version(&self) -> Result<SystemVersion, EngineError>;

    /// `GET /events`: replays buffered events with `since <= time` (nanoseconds), then streams live
    /// ones, all matching `filters`, ending once an event's time passes `until` or, when
    /// `until` is in the past, right after the replay. Filters have been validated by the caller.
    fn events(
        &self,
        since: Option<i64>,
        until: Option<i64>,
        filters: Filters,
    ) -> Result<EventStream, EngineError>;
}

/// Every backend the router needs.
#[derive(Clone)]
pub struct Backends {
    pub system: Arc<dyn SystemBackend>,
}
