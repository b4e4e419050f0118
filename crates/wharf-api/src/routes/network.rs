//! `/networks/...`: handlers parse, call one `NetworkBackend` method, and map the result.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::query::Query;
use crate::router::AppState;
use crate::routes::container::read_json;

/// Decodes a JSON body into a wire type; `null` members mean "unset", as for containers.
async fn body<T: DeserializeOwned>(req: Request, what: &str) -> Result<Option<T>, ApiError> {
    let Some(mut v) = read_json(req.into_body(), 1 << 20).await? else {
        return Ok(None);
    };
    if let Some(obj) = v.as_object_mut() {
        obj.retain(|_, x| !x.is_null());
    }
    serde_json::from_value(v).map(Some).map_err(|e| ApiError::invalid(format!("invalid {what}: {e}")))
}

pub async fn list(State(st): State<AppState>, query: Query) -> Result<Response, ApiError> {
    Ok(Json(st.backends.networks.list(query.filters()?).await?).into_response())
}

pub async fn inspect(State(st): State<AppState>, Path(id): Path<String>, query: Query) -> Result<Response, ApiError> {
    let scope = query.get("scope").filter(|s| !s.is_empty()).map(str::to_owned);
    Ok(Json(st.backends.networks.inspect(&id, query.bool("verbose", false), scope).await?).into_response())
}

pub async fn create(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let create = body(req, "network config").await?.ok_or_else(|| ApiError::invalid("network name is required"))?;
    let resp = st.backends.networks.create(create).await?;
    Ok((StatusCode::CREATED, Json(resp)).into_response())
}

pub async fn remove(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    st.backends.networks.remove(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn connect(State(st): State<AppState>, Path(id): Path<String>, req: Request) -> Result<Response, ApiError> {
    let r = body(req, "connect request").await?.ok_or_else(|| ApiError::invalid("container is required"))?;
    st.backends.networks.connect(&id, r).await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn disconnect(
    State(st): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let r = body(req, "disconnect request").await?.ok_or_else(|| ApiError::invalid("container is required"))?;
    st.backends.networks.disconnect(&id, r).await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn prune(State(st): State<AppState>, query: Query) -> Result<Response, ApiError> {
    Ok(Json(st.backends.networks.prune(query.filters()?).await?).into_response())
}
