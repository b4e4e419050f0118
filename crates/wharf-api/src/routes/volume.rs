//! `/volumes/...`: handlers parse, call one `VolumeBackend` method, and map the result.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};
use wharf_types::{EngineError, ErrorKind};

use crate::error::ApiError;
use crate::models::{Volume, VolumeCreateRequest};
use crate::query::Query;
use crate::router::AppState;
use crate::routes::container::read_json;
use crate::version::ApiVersion;

/// A volume as Docker writes it: `Options` is `null` when the volume has none (observed on
/// the wire), `Labels` a map.
pub fn volume_json(v: &Volume) -> Value {
    let mut out = serde_json::to_value(v).unwrap_or(Value::Null);
    if let Some(obj) = out.as_object_mut()
        && obj.get("Options").and_then(Value::as_object).is_some_and(|m| m.is_empty())
    {
        obj.insert("Options".into(), Value::Null);
    }
    out
}

pub async fn create(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let body = read_json(req.into_body(), 1 << 20).await?;
    let mut body = body.unwrap_or_else(|| json!({}));
    if let Some(obj) = body.as_object_mut() {
        obj.retain(|_, v| !v.is_null());
    }
    let create: VolumeCreateRequest =
        serde_json::from_value(body).map_err(|e| ApiError::invalid(format!("invalid volume config: {e}")))?;
    let volume = st.backends.volumes.create(create).await?;
    Ok((StatusCode::CREATED, Json(volume_json(&volume))).into_response())
}

pub async fn list(State(st): State<AppState>, query: Query) -> Result<Response, ApiError> {
    let resp = st.backends.volumes.list(query.filters()?).await?;
    let volumes: Vec<Value> = resp.volumes.unwrap_or_default().iter().map(volume_json).collect();
    Ok(Json(json!({ "Volumes": volumes, "Warnings": resp.warnings })).into_response())
}

pub async fn inspect(State(st): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let volume = st.backends.volumes.inspect(&name).await?;
    Ok(Json(volume_json(&volume)).into_response())
}

pub async fn remove(State(st): State<AppState>, Path(name): Path<String>, query: Query) -> Result<Response, ApiError> {
    st.backends.volumes.remove(&name, query.bool("force", false)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn prune(
    State(st): State<AppState>,
    version: axum::Extension<ApiVersion>,
    query: Query,
) -> Result<Response, ApiError> {
    let mut filters = query.filters()?;
    // API 1.42 made prune keep named volumes unless `all=true`; older clients get the old
    // behaviour.
    if !version.0.at_least(1, 42) && !filters.contains("all") {
        filters.add("all", "true");
    }
    let resp = st.backends.volumes.prune(filters).await?;
    Ok(Json(resp).into_response())
}

/// `PUT /volumes/{name}` updates swarm cluster volumes; a node outside a swarm refuses it
/// before looking at anything else, as Docker does (the body is read so the client is not cut
/// off while sending it).
pub async fn update(_body: axum::body::Bytes) -> ApiError {
    ApiError(EngineError::new(
        ErrorKind::Unavailable,
        "volume update only valid for cluster volumes, but swarm is unavailable",
    ))
}
