//! `/_ping`, `/version`, `/info`, `/events`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, header};
use serde::Serialize;
use wharf_types::{Event, EventType};

use crate::error::ApiError;
use crate::query::Query;
use crate::router::AppState;
use crate::version::ApiVersion;

fn ping_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store, must-revalidate"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert("Swarm", HeaderValue::from_static("inactive"));
}

pub async fn ping_get() -> Response {
    let mut resp = "OK".into_response();
    ping_headers(resp.headers_mut());
    resp
}

pub async fn ping_head() -> Response {
    let mut resp = ().into_response();
    ping_headers(resp.headers_mut());
    resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

pub async fn version(State(st): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(st.backends.system.version().await?).into_response())
}

pub async fn info(State(st): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(st.backends.system.info().await?).into_response())
}

/// Filters `GET /events` accepts (compat §3.7).
pub const EVENT_FILTERS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

pub async fn events(
    State(st): State<AppState>,
    version: axum::Extension<ApiVersion>,
    query: Query,
) -> Result<Response, ApiError> {
    let filters = query.filters()?;
    filters.validate(EVENT_FILTERS)?;
    for t in filters.get("type") {
        if EventType::parse(t).is_none() {
            return Err(ApiError::invalid(format!("invalid filter 'type={t}'")));
        }
    }
    let since = query.get("since").map(parse_timestamp).transpose()?;
    let until = query.get("until").map(parse_timestamp).transpose()?;
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err(ApiError::invalid("`since` time must be before `until` time"));
    }
    let events = st.backends.system.events(since, until, filters)?;
    let version = version.0;
    let shutdown = st.shutdown.clone();
    let stream =
        events.take_until(async move { shutdown.cancelled().await }).map(move |e| EventJson::render(&e, version));
    Ok(crate::stream::json_lines(stream, "\n"))
}

/// Parses Docker's `since`/`until`: `<seconds>[.<nanoseconds>]` (what clients send), or an
/// RFC 3339 date as a courtesy. Returns Unix nanoseconds.
pub fn parse_timestamp(s: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::invalid(format!("failed to parse value as time or duration: \"{s}\""));
    if let Some((secs, frac)) = s.split_once('.') {
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let nanos: i64 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
        return Ok(secs * 1_000_000_000 + nanos);
    }
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(secs * 1_000_000_000);
    }
    Err(bad())
}

/// An event on the wire. Below API 1.52 container and image events also carry the legacy
/// `status`, `id` and `from` fields.
#[derive(Serialize)]
pub struct EventJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(rename = "Type")]
    kind: &'static str,
    #[serde(rename = "Action")]
    action: &'a str,
    #[serde(rename = "Actor")]
    actor: &'a wharf_types::EventActor,
    scope: &'static str,
    time: i64,
    #[serde(rename = "timeNano")]
    time_nano: i64,
}

impl EventJson<'_> {
    /// Serialises `e` for a client speaking `version`.
    pub fn render(e: &Event, version: ApiVersion) -> serde_json::Value {
        let legacy = !version.at_least(1, 52) && matches!(e.kind, EventType::Container | EventType::Image);
        let json = EventJson {
            status: legacy.then_some(e.action.as_str()),
            id: legacy.then_some(e.actor.id.as_str()),
            from: if legacy && e.kind == EventType::Container {
                e.actor.attributes.get("image").map(String::as_str)
            } else {
                None
            },
            kind: e.kind.as_str(),
            action: &e.action,
            actor: &e.actor,
            scope: e.scope,
            time: e.time(),
            time_nano: e.time_nano,
        };
        serde_json::to_value(json).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1795400529").unwrap(), 1_795_400_529_000_000_000);
        assert_eq!(parse_timestamp("1795400529.5").unwrap(), 1_795_400_529_500_000_000);
        assert_eq!(parse_timestamp("1795400529.000000001").unwrap(), 1_795_400_529_000_000_001);
        assert!(parse_timestamp("yesterday").is_err());
        assert!(parse_timestamp("1.").is_err());
        assert!(parse_timestamp("1.1234567890").is_err());
    }

    #[test]
    fn legacy_fields_by_version() {
        let e = Event::now(
            EventType::Container,
            "create",
            "abc",
            [("image".to_owned(), "busybox".to_owned()), ("name".to_owned(), "c".to_owned())].into(),
        );
        let old = EventJson::render(&e, ApiVersion::new(1, 50));
        assert_eq!(old["status"], "create");
        assert_eq!(old["id"], "abc");
        assert_eq!(old["from"], "busybox");
        assert_eq!(old["Type"], "container");
        assert_eq!(old["Actor"]["Attributes"]["name"], "c");
        let new = EventJson::render(&e, ApiVersion::MAX);
        assert!(new.get("status").is_none() && new.get("id").is_none() && new.get("from").is_none());
        assert_eq!(new["Action"], "create");
        assert_eq!(new["time"], e.time());
        let net = Event::now(EventType::Network, "connect", "n", Default::default());
        assert!(EventJson::render(&net, ApiVersion::new(1, 41)).get("status").is_none());
    }
}
