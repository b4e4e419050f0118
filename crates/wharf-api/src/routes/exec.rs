//! `/containers/{id}/exec` and `/exec/{id}/...`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::error::ApiError;
use crate::hijack;
use crate::query::Query;
use crate::router::AppState;
use crate::routes::container::read_json;
use crate::version::ApiVersion;

pub async fn create(
    State(st): State<AppState>,
    Path(id): Path<String>,
    version: axum::Extension<ApiVersion>,
    req: Request,
) -> Result<Response, ApiError> {
    let Some(body) = read_json(req.into_body(), 1 << 20).await? else {
        return Err(ApiError::invalid("No exec command specified"));
    };
    let mut config: crate::models::ExecConfig =
        serde_json::from_value(body).map_err(|e| ApiError::invalid(format!("invalid exec config: {e}")))?;
    if !version.0.at_least(1, 42) {
        config.console_size = None;
    }
    let exec_id = st.backends.execs.create(&id, config).await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": exec_id }))).into_response())
}

pub async fn start(
    State(st): State<AppState>,
    Path(id): Path<String>,
    version: axum::Extension<ApiVersion>,
    mut req: Request,
) -> Result<Response, ApiError> {
    let upgrading = req.headers().contains_key(header::UPGRADE);
    let on_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
    let body = read_json(req.into_body(), 1 << 20).await?.unwrap_or(json!({}));
    let cfg: crate::models::ExecStartConfig =
        serde_json::from_value(body).map_err(|e| ApiError::invalid(format!("invalid exec start config: {e}")))?;
    let console = cfg
        .console_size
        .as_ref()
        .filter(|v| v.len() == 2 && version.0.at_least(1, 42))
        .map(|v| [v[0].min(u16::MAX as usize) as u16, v[1].min(u16::MAX as usize) as u16]);
    let detach = cfg.detach.unwrap_or(false);
    let session = st.backends.execs.start(&id, detach, cfg.tty, console).await?;
    let Some(session) = session else {
        return Ok(StatusCode::OK.into_response());
    };
    let content_type = if version.0.at_least(1, 42) && !session.tty {
        HeaderValue::from_static("application/vnd.docker.multiplexed-stream")
    } else {
        HeaderValue::from_static("application/vnd.docker.raw-stream")
    };
    let Some(on_upgrade) = on_upgrade else {
        use futures_util::StreamExt;
        let tty = session.tty;
        let body = session.output.map(move |(s, b)| Ok::<_, std::convert::Infallible>(hijack::frame(tty, s, &b)));
        let mut resp = Response::new(Body::from_stream(body));
        resp.headers_mut().insert(header::CONTENT_TYPE, content_type);
        return Ok(resp);
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => hijack::pump(hyper_util::rt::TokioIo::new(upgraded), session).await,
            Err(e) => tracing::debug!(error = %e, "exec upgrade failed"),
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

pub async fn resize(State(st): State<AppState>, Path(id): Path<String>, query: Query) -> Result<Response, ApiError> {
    let h = query.int("h")?.unwrap_or(0).clamp(0, u16::MAX.into()) as u16;
    let w = query.int("w")?.unwrap_or(0).clamp(0, u16::MAX.into()) as u16;
    st.backends.execs.resize(&id, h, w).await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn inspect(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(st.backends.execs.inspect(&id).await?).into_response())
}
