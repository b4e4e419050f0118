//! The event bus. Every subsystem publishes here; `/events` subscribers get a replay of the
//! bounded ring (for `since`) followed by live events, with no gap and no duplicate between the
//! two because both are taken under one lock.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use wharf_types::{Event, EventType, Filters};

/// How many past events are kept for replay (moby keeps 256; events are small).
pub const RING_CAPACITY: usize = 1024;
/// How far a slow subscriber may fall behind before it loses events.
const LIVE_CAPACITY: usize = 4096;

pub struct EventBus {
    inner: Mutex<Inner>,
}

struct Inner {
    ring: VecDeque<Event>,
    live: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        Self { inner: Mutex::new(Inner { ring: VecDeque::with_capacity(RING_CAPACITY), live }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes one event to the ring and to every live subscriber.
    pub fn publish(&self, event: Event) {
        tracing::debug!(kind = %event.kind, action = %event.action, id = %event.actor.id, "event");
        let mut inner = self.lock();
        if inner.ring.len() == RING_CAPACITY {
            inner.ring.pop_front();
        }
        inner.ring.push_back(event.clone());
        let _ = inner.live.send(event);
    }

    /// Number of live subscribers (`NEventsListener` in `/info`).
    pub fn listeners(&self) -> usize {
        self.lock().live.receiver_count()
    }

    /// Events matching `filter`: those in the ring at or after `since` (nanoseconds), then live
    /// ones; the stream ends when `until` passes. Without `since`, only live events.
    pub fn subscribe(&self, since: Option<i64>, until: Option<i64>, filter: EventFilter) -> BoxStream<'static, Event> {
        let now = now_nanos();
        let (replay, receiver) = {
            let inner = self.lock();
            let replay: Vec<Event> = match since {
                Some(since) => inner
                    .ring
                    .iter()
                    .filter(|e| e.time_nano >= since && until.is_none_or(|u| e.time_nano <= u) && filter.matches(e))
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            (replay, inner.live.subscribe())
        };
        let replay = stream::iter(replay);
        if until.is_some_and(|u| u <= now) {
            return replay.boxed();
        }
        let live = BroadcastStream::new(receiver).filter_map(move |r| {
            let keep = match r {
                Ok(e) if filter.matches(&e) => Some(e),
                Ok(_) => None,
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "an events subscriber fell behind and missed events");
                    None
                }
            };
            futures_util::future::ready(keep)
        });
        match until {
            None => replay.chain(live).boxed(),
            Some(until) => {
                let deadline = tokio::time::sleep(Duration::from_nanos((until - now).max(0) as u64));
                replay
                    .chain(
                        live.take_while(move |e| futures_util::future::ready(e.time_nano <= until))
                            .take_until(deadline),
                    )
                    .boxed()
            }
        }
    }
}

pub fn now_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// moby's event filter (`daemon/events/filter.go`): every given key must match.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    filters: Filters,
}

impl EventFilter {
    pub fn new(filters: Filters) -> Self {
        Self { filters }
    }

    pub fn matches(&self, e: &Event) -> bool {
        let f = &self.filters;
        self.match_action(e)
            && f.exact_match("type", e.kind.as_str())
            && f.exact_match("scope", e.scope)
            && self.fuzzy_name(e, EventType::Daemon, "daemon")
            && self.fuzzy_name(e, EventType::Container, "container")
            && self.fuzzy_name(e, EventType::Plugin, "plugin")
            && self.fuzzy_name(e, EventType::Volume, "volume")
            && self.fuzzy_name(e, EventType::Network, "network")
            && self.fuzzy_name(e, EventType::Node, "node")
            && self.fuzzy_name(e, EventType::Service, "service")
            && self.fuzzy_name(e, EventType::Secret, "secret")
            && self.fuzzy_name(e, EventType::Config, "config")
            && self.match_image(e)
            && f.match_labels(&e.actor.attributes)
    }

    /// `health_status`, `exec_create` and `exec_start` match their detailed forms by prefix.
    fn match_action(&self, e: &Event) -> bool {
        let prefixed = ["health_status", "exec_create", "exec_start"];
        if self.filters.get("event").any(|v| prefixed.contains(&v)) {
            self.filters.any("event", |v| e.action.starts_with(v))
        } else {
            self.filters.exact_match("event", &e.action)
        }
    }

    /// A `container=x` (etc.) filter matches the actor's ID or name, exactly or by prefix. Note
    /// that, as in Docker, it also excludes events of other types.
    fn fuzzy_name(&self, e: &Event, _kind: EventType, key: &str) -> bool {
        if !self.filters.contains(key) {
            return true;
        }
        let id = e.actor.id.as_str();
        let name = e.actor.attributes.get("name").map(String::as_str).unwrap_or("");
        self.filters.any(key, |v| id.starts_with(v) || (!name.is_empty() && name.starts_with(v)))
    }

    fn match_image(&self, e: &Event) -> bool {
        if !self.filters.contains("image") {
            return true;
        }
        let strip = |s: &str| -> String {
            match s.rfind(':') {
                Some(i) if !s[i..].contains('/') => s[..i].to_owned(),
                _ => s.to_owned(),
            }
        };
        let id = e.actor.id.as_str();
        let image = e.actor.attributes.get("image").map(String::as_str).unwrap_or("");
        self.filters.any("image", |v| v == id || v == image || v == strip(id) || v == strip(image))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ev(kind: EventType, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        let attributes: BTreeMap<String, String> = attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Event::now(kind, action, id, attributes)
    }

    fn filter(json: &str) -> EventFilter {
        EventFilter::new(Filters::parse(json).unwrap())
    }

    #[test]
    fn filters_follow_moby() {
        let start = ev(
            EventType::Container,
            "start",
            "abcdef",
            &[("name", "web"), ("image", "busybox:latest"), ("tier", "front")],
        );
        let health = ev(EventType::Container, "health_status: healthy", "abcdef", &[("name", "web")]);
        let net = ev(EventType::Network, "connect", "n1", &[("name", "bridge"), ("container", "abcdef")]);
        assert!(filter("").matches(&start));
        assert!(filter(r#"{"type":["container"]}"#).matches(&start));
        assert!(!filter(r#"{"type":["container"]}"#).matches(&net));
        assert!(filter(r#"{"event":["start"]}"#).matches(&start));
        assert!(!filter(r#"{"event":["stop"]}"#).matches(&start));
        assert!(filter(r#"{"event":["health_status"]}"#).matches(&health));
        assert!(filter(r#"{"container":["web"]}"#).matches(&start));
        assert!(filter(r#"{"container":["abc"]}"#).matches(&start));
        assert!(!filter(r#"{"container":["xyz"]}"#).matches(&start));
        assert!(
            !filter(r#"{"container":["abc"]}"#).matches(&net),
            "a container filter drops other types, as in Docker"
        );
        assert!(filter(r#"{"network":["bridge"]}"#).matches(&net));
        assert!(filter(r#"{"image":["busybox"]}"#).matches(&start));
        assert!(filter(r#"{"image":["busybox:latest"]}"#).matches(&start));
        assert!(!filter(r#"{"image":["alpine"]}"#).matches(&start));
        assert!(filter(r#"{"label":["tier=front"]}"#).matches(&start));
        assert!(!filter(r#"{"label":["tier=back"]}"#).matches(&start));
        assert!(filter(r#"{"scope":["local"]}"#).matches(&start));
        assert!(!filter(r#"{"scope":["swarm"]}"#).matches(&start));
    }

    #[tokio::test]
    async fn replay_then_live_without_gap() {
        let bus = EventBus::new();
        let t0 = now_nanos();
        bus.publish(ev(EventType::Image, "tag", "one", &[]));
        bus.publish(ev(EventType::Image, "tag", "two", &[]));
        let mut s = bus.subscribe(Some(t0), None, EventFilter::default());
        bus.publish(ev(EventType::Image, "tag", "three", &[]));
        let ids: Vec<String> = (&mut s).take(3).map(|e| e.actor.id).collect().await;
        assert_eq!(ids, vec!["one", "two", "three"]);
    }

    #[tokio::test]
    async fn until_in_the_past_ends_after_replay() {
        let bus = EventBus::new();
        let t0 = now_nanos();
        bus.publish(ev(EventType::Daemon, "reload", "d", &[]));
        let until = now_nanos();
        let got: Vec<Event> = bus.subscribe(Some(t0), Some(until), EventFilter::default()).collect().await;
        assert_eq!(got.len(), 1);
    }

    #[tokio::test]
    async fn until_in_the_future_ends_on_time() {
        let bus = EventBus::new();
        let until = now_nanos() + 200_000_000;
        let started = std::time::Instant::now();
        let got: Vec<Event> = bus.subscribe(None, Some(until), EventFilter::default()).collect().await;
        assert!(got.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(150));
    }

    #[tokio::test]
    async fn ring_is_bounded_and_since_selects() {
        let bus = EventBus::new();
        for i in 0..(RING_CAPACITY + 10) {
            bus.publish(ev(EventType::Image, "tag", &i.to_string(), &[]));
        }
        let all: Vec<Event> = bus.subscribe(Some(0), Some(now_nanos()), EventFilter::default()).collect().await;
        assert_eq!(all.len(), RING_CAPACITY);
        assert_eq!(all[0].actor.id, "10");
        let filtered: Vec<Event> =
            bus.subscribe(Some(0), Some(now_nanos()), filter(r#"{"image":["5"]}"#)).collect().await;
        assert!(filtered.is_empty(), "5 fell out of the ring");
    }
}
