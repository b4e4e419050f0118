//! Registry-facing endpoints that are not about one local image: `POST /auth`,
//! `GET /distribution/{name}/json` and `GET /images/search`. Pull and push live with the
//! images (`routes/image.rs`).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde_json::json;

use crate::backend::{AuthRequest, ImageSearchOptions};
use crate::error::ApiError;
use crate::query::Query;
use crate::router::AppState;

/// The `X-Registry-Auth` header as sent, if any.
pub(crate) fn registry_auth(headers: &HeaderMap) -> Option<String> {
    headers.get("X-Registry-Auth").and_then(|h| h.to_str().ok()).map(str::to_owned)
}

/// `POST /auth`: 200 `{"IdentityToken":"","Status":"Login Succeeded"}`, 401 on bad credentials.
pub async fn auth(State(st): State<AppState>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let req: AuthRequest = if body.is_empty() {
        AuthRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("invalid auth configuration: {e}")))?
    };
    let r = st.backends.images.auth(req).await?;
    Ok(Json(json!({"IdentityToken": r.identity_token, "Status": r.status})).into_response())
}

/// `GET /distribution/{name}/json` (names contain slashes: the path ends in `/json`).
pub async fn inspect(
    State(st): State<AppState>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(name) = rest.strip_suffix("/json").filter(|n| !n.is_empty()) else {
        return Err(ApiError::page_not_found());
    };
    let v = st.backends.images.distribution(name, registry_auth(&headers)).await?;
    Ok(Json(v).into_response())
}

/// `GET /images/search?term=&limit=&filters=`.
pub async fn search(State(st): State<AppState>, query: Query, headers: HeaderMap) -> Result<Response, ApiError> {
    let term = query.get("term").unwrap_or("").to_owned();
    if term.is_empty() {
        return Err(ApiError::invalid("term is required"));
    }
    let limit = match query.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => Some(l.parse::<usize>().map_err(|_| ApiError::invalid(format!("invalid limit {l:?}")))?),
        None => None,
    };
    let opts = ImageSearchOptions { term, limit, filters: query.filters()?, registry_auth: registry_auth(&headers) };
    Ok(Json(st.backends.images.search(opts).await?).into_response())
}
