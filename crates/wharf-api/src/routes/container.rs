//! `/containers/...`: handlers parse, call one `ContainerBackend` method, and map the result.

use std::convert::Infallible;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::backend::{AttachOptions, ListOptions, LogsOptions, WaitCondition};
use crate::error::ApiError;
use crate::hijack;
use crate::query::Query;
use crate::router::AppState;
use crate::routes::system::parse_timestamp;
use crate::version::ApiVersion;

/// Reads a JSON body; an empty body is `None`.
pub async fn read_json(body: Body, limit: usize) -> Result<Option<Value>, ApiError> {
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| ApiError::invalid(format!("reading the request body: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| ApiError::invalid(format!("invalid JSON: {e}")))
}

const RESTART_POLICIES: &[&str] = &["", "no", "always", "unless-stopped", "on-failure"];

pub async fn create(State(st): State<AppState>, query: Query, req: Request) -> Result<Response, ApiError> {
    let Some(mut body) = read_json(req.into_body(), 4 << 20).await? else {
        return Err(ApiError::invalid("config cannot be empty in order to create a container"));
    };
    if let Some(name) = body.pointer("/HostConfig/RestartPolicy/Name").and_then(Value::as_str)
        && !RESTART_POLICIES.contains(&name)
    {
        return Err(ApiError::invalid(format!(
            "invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        )));
    }
    // `null` where the model expects a map or list means "unset".
    if let Some(obj) = body.as_object_mut() {
        obj.retain(|_, v| !v.is_null());
    }
    let create =
        serde_json::from_value(body).map_err(|e| ApiError::invalid(format!("invalid container config: {e}")))?;
    let name = query.get("name").map(str::to_owned);
    let resp = st.backends.containers.create(name, create).await?;
    Ok((StatusCode::CREATED, Json(resp)).into_response())
}

pub async fn list(State(st): State<AppState>, query: Query) -> Result<Response, ApiError> {
    let opts = ListOptions {
        all: query.bool("all", false),
        limit: query.int("limit")?.filter(|l| *l > 0),
        size: query.bool("size", false),
        filters: query.filters()?,
    };
    Ok(Json(st.backends.containers.list(opts).await?).into_response())
}

pub async fn inspect(
    State(st): State<AppState>,
    Path(id): Path<String>,
    version: axum::Extension<ApiVersion>,
    query: Query,
) -> Result<Response, ApiError> {
    let resp = st.backends.containers.inspect(&id, query.bool("size", false)).await?;
    let mut v =
        serde_json::to_value(resp).map_err(|e| ApiError::new(wharf_types::ErrorKind::Internal, e.to_string()))?;
    shape_inspect(&mut v, version.0);
    Ok(Json(v).into_response())
}

/// Below API 1.52, `NetworkSettings` also carries the default network's fields at its top level.
pub fn shape_inspect(v: &mut Value, version: ApiVersion) {
    if version.at_least(1, 52) {
        return;
    }
    let Some(ns) = v.get_mut("NetworkSettings").and_then(Value::as_object_mut) else {
        return;
    };
    let bridge = ns.get("Networks").and_then(|n| n.get("bridge")).cloned().unwrap_or(Value::Null);
    let field = |k: &str, default: Value| bridge.get(k).cloned().unwrap_or(default);
    for (k, d) in [
        ("EndpointID", json!("")),
        ("Gateway", json!("")),
        ("GlobalIPv6Address", json!("")),
        ("GlobalIPv6PrefixLen", json!(0)),
        ("IPAddress", json!("")),
        ("IPPrefixLen", json!(0)),
        ("IPv6Gateway", json!("")),
        ("MacAddress", json!("")),
    ] {
        ns.entry(k.to_owned()).or_insert_with(|| field(k, d));
    }
    for (k, d) in [
        ("Bridge", json!("")),
        ("HairpinMode", json!(false)),
        ("LinkLocalIPv6Address", json!("")),
        ("LinkLocalIPv6PrefixLen", json!(0)),
        ("SecondaryIPAddresses", Value::Null),
        ("SecondaryIPv6Addresses", Value::Null),
    ] {
        ns.entry(k.to_owned()).or_insert(d);
    }
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

pub async fn start(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    st.backends.containers.start(&id).await?;
    Ok(no_content())
}

pub async fn stop(State(st): State<AppState>, Path(id): Path<String>, query: Query) -> Result<Response, ApiError> {
    st.backends
        .containers
        .stop(&id, query.int("t")?, query.get("signal").filter(|s| !s.is_empty()).map(str::to_owned))
        .await?;
    Ok(no_content())
}

pub async fn restart(State(st): State<AppState>, Path(id): Path<String>, query: Query) -> Result<Response, ApiError> {
    st.backends
        .containers
        .restart(&id, query.int("t")?, query.get("signal").filter(|s| !s.is_empty()).map(str::to_owned))
        .await?;
    Ok(no_content())
}

pub async fn kill(State(st): State<AppState>, Path(id): Path<String>, query: Query) -> Result<Response, ApiError> {
    st.backends.containers.kill(&id, query.get("signal").filter(|s| !s.is_empty()).map(str::to_owned)).await?;
    Ok(no_content())
}

pub async fn pause(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    st.backends.containers.pause(&id).await?;
    Ok(no_content())
}

pub async fn unpause(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    st.backends.containers.unpause(&id).await?;
    Ok(no_content())
}

pub async fn rename(State(st): State<AppState>, Path(id): Path<String>, query: Query) -> Result<Response, ApiError> {
    let name = query.get("name").unwrap_or("");
    st.backends.containers.rename(&id, name).await?;
    Ok(no_content())
}

pub async fn remove(State(st): State<AppState>, Path(id): Path<String>, query: Query) -> Result<Response, ApiError> {
    st.backends
        .containers
        .remove(&id, query.bool("force", false), query.bool("v", false), query.bool("link", false))
        .await?;
    Ok(no_content())
}

pub async fn top(State(st): State<AppState>, Path(id): Path<String>, query: Query) -> Result<Response, ApiError> {
    let args = query.get("ps_args").filter(|s| !s.is_empty()).map(str::to_owned);
    Ok(Json(st.backends.containers.top(&id, args).await?).into_response())
}

pub async fn resize(State(st): State<AppState>, Path(id): Path<String>, query: Query) -> Result<Response, ApiError> {
    let h = query.int("h")?.unwrap_or(0);
    let w = query.int("w")?.unwrap_or(0);
    st.backends.containers.resize(&id, h.clamp(0, u16::MAX.into()) as u16, w.clamp(0, u16::MAX.into()) as u16).await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn stats(State(st): State<AppState>, Path(id): Path<String>, query: Query) -> Result<Response, ApiError> {
    let stream = query.bool("stream", true);
    let one_shot = query.bool("one-shot", false);
    if one_shot && stream {
        return Err(ApiError::invalid("cannot have stream=true and one-shot=true"));
    }
    let samples = st.backends.containers.stats(&id, stream, one_shot).await?;
    let shutdown = st.shutdown.clone();
    Ok(crate::stream::json_lines(samples.take_until(async move { shutdown.cancelled().await }), "\n"))
}

/// `POST /containers/{id}/update`: the body is `Resources` plus `RestartPolicy`; zero values
/// mean "unchanged" (the CLI sends every field).
pub async fn update(
    State(st): State<AppState>,
    Path(id): Path<String>,
    version: axum::Extension<ApiVersion>,
    req: Request,
) -> Result<Response, ApiError> {
    let mut body = read_json(req.into_body(), 1 << 20).await?.unwrap_or(json!({}));
    if let Some(name) = body.pointer("/RestartPolicy/Name").and_then(Value::as_str)
        && !RESTART_POLICIES.contains(&name)
    {
        return Err(ApiError::invalid(format!(
            "invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        )));
    }
    if let Some(obj) = body.as_object_mut() {
        obj.retain(|_, v| !v.is_null());
        if !version.0.at_least(1, 40) {
            obj.remove("PidsLimit");
        }
    }
    let update: crate::models::ContainerUpdateBody =
        serde_json::from_value(body).map_err(|e| ApiError::invalid(format!("invalid update config: {e}")))?;
    let resp = st.backends.containers.update(&id, update).await?;
    Ok(Json(json!({ "Warnings": resp.warnings })).into_response())
}

pub async fn prune(State(st): State<AppState>, query: Query) -> Result<Response, ApiError> {
    Ok(Json(st.backends.containers.prune(query.filters()?).await?).into_response())
}

/// `POST /containers/{id}/wait`: headers go out at once; the body comes when the condition is met.
pub async fn wait(State(st): State<AppState>, Path(id): Path<String>, query: Query) -> Result<Response, ApiError> {
    let condition = match query.get("condition").unwrap_or("") {
        "" | "not-running" => WaitCondition::NotRunning,
        "next-exit" => WaitCondition::NextExit,
        "removed" => WaitCondition::Removed,
        other => return Err(ApiError::invalid(format!("invalid condition: \"{other}\""))),
    };
    let fut = st.backends.containers.wait(&id, condition).await?;
    let body = futures_util::stream::once(async move {
        let o = fut.await;
        let err = match o.error {
            Some(m) => json!({ "Message": m }),
            None => Value::Null,
        };
        let line = format!("{}\n", json!({ "Error": err, "StatusCode": o.status_code }));
        Ok::<_, Infallible>(Bytes::from(line))
    });
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

fn stream_content_type(version: ApiVersion, tty: bool) -> HeaderValue {
    if version.at_least(1, 42) && !tty {
        HeaderValue::from_static("application/vnd.docker.multiplexed-stream")
    } else {
        HeaderValue::from_static("application/vnd.docker.raw-stream")
    }
}

pub async fn logs(
    State(st): State<AppState>,
    Path(id): Path<String>,
    version: axum::Extension<ApiVersion>,
    query: Query,
) -> Result<Response, ApiError> {
    let opts = LogsOptions {
        stdout: query.bool("stdout", false),
        stderr: query.bool("stderr", false),
        follow: query.bool("follow", false),
        since: query.get("since").filter(|s| !s.is_empty() && *s != "0").map(parse_timestamp).transpose()?,
        until: query.get("until").filter(|s| !s.is_empty() && *s != "0").map(parse_timestamp).transpose()?,
        tail: match query.get("tail") {
            None | Some("") | Some("all") => None,
            Some(n) => n.parse::<i64>().ok().filter(|n| *n >= 0).map(|n| n as usize),
        },
    };
    if !opts.stdout && !opts.stderr {
        return Err(ApiError::invalid("Bad parameters: you must choose at least one stream"));
    }
    let timestamps = query.bool("timestamps", false);
    let logs = st.backends.containers.logs(&id, opts).await?;
    let tty = logs.tty;
    let shutdown = st.shutdown.clone();
    let body = logs.stream.take_until(async move { shutdown.cancelled().await }).map(move |item| match item {
        Ok(c) => {
            let mut data = Vec::with_capacity(c.bytes.len() + 32);
            if timestamps {
                data.extend_from_slice(format_timestamp(c.timestamp).as_bytes());
                data.push(b' ');
            }
            data.extend_from_slice(&c.bytes);
            hijack::frame(tty, c.stream, &data)
        }
        Err(e) => hijack::frame(false, 3, format!("Error grabbing logs: {}\n", e.message).as_bytes()),
    });
    // One body chunk per log line made reading a big log syscall- and chunk-bound: frames that
    // are ready together go out together (a follow still sends each line as it comes).
    let body = body.ready_chunks(1024).map(|frames| {
        let bytes = match <[Bytes; 1]>::try_from(frames) {
            Ok([one]) => one,
            Err(frames) => {
                let mut joined = bytes::BytesMut::with_capacity(frames.iter().map(Bytes::len).sum());
                for f in &frames {
                    joined.extend_from_slice(f);
                }
                joined.freeze()
            }
        };
        Ok::<_, Infallible>(bytes)
    });
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(header::CONTENT_TYPE, stream_content_type(version.0, tty));
    Ok(resp)
}

/// `2006-01-02T15:04:05.000000000Z07:00` in UTC, as docker logs prints timestamps.
pub fn format_timestamp(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `POST /containers/{id}/attach`: errors before the upgrade are ordinary JSON responses; after
/// it the connection is hijacked (101) and [`hijack::pump`] moves the bytes.
pub async fn attach(
    State(st): State<AppState>,
    Path(id): Path<String>,
    version: axum::Extension<ApiVersion>,
    query: Query,
    mut req: Request,
) -> Result<Response, ApiError> {
    let detach_keys = query.get("detachKeys").filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(k) = &detach_keys {
        hijack::parse_detach_keys(k).map_err(ApiError::invalid)?;
    }
    let opts = AttachOptions {
        stream: query.bool("stream", false),
        logs: query.bool("logs", false),
        stdin: query.bool("stdin", false),
        stdout: query.bool("stdout", false),
        stderr: query.bool("stderr", false),
        detach_keys,
    };
    let session = st.backends.containers.attach(&id, opts).await?;
    let content_type = stream_content_type(version.0, session.tty);
    let upgrading = req.headers().contains_key(header::UPGRADE);
    if !upgrading {
        // Old clients: a plain 200 whose body is the output (stdin unsupported).
        let tty = session.tty;
        let body = session.output.map(move |(s, b)| Ok::<_, Infallible>(hijack::frame(tty, s, &b)));
        let mut resp = Response::new(Body::from_stream(body));
        resp.headers_mut().insert(header::CONTENT_TYPE, content_type);
        return Ok(resp);
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => hijack::pump(hyper_util::rt::TokioIo::new(upgraded), session).await,
            Err(e) => tracing::debug!(error = %e, "attach upgrade failed"),
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    Ok(resp)
}

/// `GET /containers/{id}/attach/ws`: the attach over a websocket (raw output, binary messages
/// from API 1.28 on). Errors before the upgrade are ordinary JSON responses.
pub async fn attach_ws(
    State(st): State<AppState>,
    Path(id): Path<String>,
    version: axum::Extension<ApiVersion>,
    query: Query,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let detach_keys = query.get("detachKeys").filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(k) = &detach_keys {
        hijack::parse_detach_keys(k).map_err(ApiError::invalid)?;
    }
    let opts = AttachOptions {
        stream: query.bool("stream", false),
        logs: query.bool("logs", false),
        stdin: query.bool("stdin", false),
        stdout: query.bool("stdout", false),
        stderr: query.bool("stderr", false),
        detach_keys,
    };
    let session = st.backends.containers.attach(&id, opts).await?;
    let binary = version.0.at_least(1, 28);
    Ok(ws.on_upgrade(move |socket| hijack::pump_ws(socket, session, binary)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_nine_digits() {
        assert_eq!(format_timestamp(1_795_400_523_065_273_975), "2026-11-23T02:22:03.065273975Z");
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn legacy_network_fields_below_1_52() {
        let mut v =
            json!({"NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2", "Gateway": "172.17.0.1"}}}});
        shape_inspect(&mut v, ApiVersion::new(1, 50));
        assert_eq!(v["NetworkSettings"]["IPAddress"], "172.17.0.2");
        assert_eq!(v["NetworkSettings"]["Gateway"], "172.17.0.1");
        assert_eq!(v["NetworkSettings"]["MacAddress"], "");
        let mut v = json!({"NetworkSettings": {"Networks": {}}});
        shape_inspect(&mut v, ApiVersion::MAX);
        assert!(v["NetworkSettings"].get("IPAddress").is_none());
    }
}
