//! A container's file system through the API: `HEAD/GET/PUT /containers/{id}/archive`
//! (`docker cp`, compat §3.8), `GET /containers/{id}/export`, `GET /containers/{id}/changes`
//! (`docker diff`) and `POST /commit`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::StreamExt;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::backend::{ByteStream, CommitOptions, ExtractOptions, PathStat};
use crate::error::ApiError;
use crate::query::Query;
use crate::router::AppState;
use crate::routes::container::read_json;

/// The header `docker cp` reads: base64 (standard, padded) of the stat as JSON.
pub const PATH_STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// The header value for a stat.
pub fn encode_stat(stat: &PathStat) -> HeaderValue {
    let json = serde_json::to_vec(stat).unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD.encode(json);
    HeaderValue::from_str(&b64).expect("base64 is a valid header value")
}

fn path_param(query: &Query) -> Result<String, ApiError> {
    match query.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_owned()),
        _ => Err(ApiError::invalid("path cannot be empty")),
    }
}

fn body_stream(body: Body) -> ByteStream {
    body.into_data_stream().map(|r| r.map_err(std::io::Error::other)).boxed()
}

fn tar_response(stream: ByteStream) -> Response {
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    resp
}

/// `HEAD /containers/{id}/archive?path=`.
pub async fn stat(State(st): State<AppState>, Path(id): Path<String>, query: Query) -> Result<Response, ApiError> {
    let path = path_param(&query)?;
    let stat = st.backends.containers.archive_stat(&id, &path).await?;
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut().insert(PATH_STAT_HEADER, encode_stat(&stat));
    Ok(resp)
}

/// `GET /containers/{id}/archive?path=`.
pub async fn get(State(st): State<AppState>, Path(id): Path<String>, query: Query) -> Result<Response, ApiError> {
    let path = path_param(&query)?;
    let archive = st.backends.containers.archive_get(&id, &path).await?;
    let mut resp = tar_response(archive.tar);
    resp.headers_mut().insert(PATH_STAT_HEADER, encode_stat(&archive.stat));
    Ok(resp)
}

/// `PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=&copyUIDGID=`.
pub async fn put(
    State(st): State<AppState>,
    Path(id): Path<String>,
    query: Query,
    body: Body,
) -> Result<Response, ApiError> {
    let opts = ExtractOptions {
        path: path_param(&query)?,
        no_overwrite_dir_non_dir: query.bool("noOverwriteDirNonDir", false),
        copy_uid_gid: query.bool("copyUIDGID", false),
    };
    st.backends.containers.archive_put(&id, opts, body_stream(body)).await?;
    Ok(StatusCode::OK.into_response())
}

/// `GET /containers/{id}/export`.
pub async fn export(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(tar_response(st.backends.containers.export(&id).await?))
}

/// `GET /containers/{id}/changes`: `null` when nothing changed, as Docker answers.
pub async fn changes(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let changes = st.backends.containers.changes(&id).await?;
    if changes.is_empty() {
        return Ok(Json(serde_json::Value::Null).into_response());
    }
    Ok(Json(changes).into_response())
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`; the body is a
/// container config (or empty). `pause` defaults to true (API ≥ 1.13).
pub async fn commit(State(st): State<AppState>, query: Query, req: Request) -> Result<Response, ApiError> {
    let config = match read_json(req.into_body(), 4 << 20).await? {
        // The Go client sends `null` when it has no config.
        None | Some(serde_json::Value::Null) => None,
        Some(mut v) => {
            if let Some(obj) = v.as_object_mut() {
                obj.retain(|_, v| !v.is_null());
            }
            Some(serde_json::from_value(v).map_err(|e| ApiError::invalid(format!("invalid config: {e}")))?)
        }
    };
    let opts = CommitOptions {
        container: query.get("container").unwrap_or("").to_owned(),
        repo: query.get("repo").unwrap_or("").to_owned(),
        tag: query.get("tag").unwrap_or("").to_owned(),
        comment: query.get("comment").unwrap_or("").to_owned(),
        author: query.get("author").unwrap_or("").to_owned(),
        pause: query.bool("pause", true),
        changes: query.all("changes").into_iter().map(str::to_owned).collect(),
        config,
    };
    let id = st.backends.containers.commit(opts).await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": id }))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_header_is_base64_of_dockers_json() {
        let stat = PathStat {
            name: "a.txt".into(),
            size: 6,
            mode: 420,
            mtime: "2026-11-23T02:22:51Z".into(),
            link_target: String::new(),
        };
        let h = encode_stat(&stat);
        let raw = base64::engine::general_purpose::STANDARD.decode(h.as_bytes()).unwrap();
        assert_eq!(
            std::str::from_utf8(&raw).unwrap(),
            r#"{"name":"a.txt","size":6,"mode":420,"mtime":"2026-11-23T02:22:51Z","linkTarget":""}"#
        );
    }

    #[tokio::test]
    async fn routes_map_errors_before_streams() {
        use crate::fakes::call;
        let (s, b) = call("HEAD", "/containers/x/archive?path=/etc", "").await;
        assert_eq!((s, b.as_str()), (404, ""), "HEAD carries no body");
        let (s, b) = call("GET", "/containers/x/archive", "").await;
        assert_eq!((s, b.as_str()), (400, r#"{"message":"path cannot be empty"}"#));
        let (s, b) = call("GET", "/containers/x/archive?path=/nope", "").await;
        assert_eq!((s, b.as_str()), (404, r#"{"message":"Could not find the file /nope in container x"}"#));
        let (s, _) = call("PUT", "/containers/x/archive?path=/tmp", "").await;
        assert_eq!(s, 404);
        let (s, b) = call("GET", "/containers/x/changes", "").await;
        assert_eq!((s, b.as_str()), (200, "null"));
        let (s, _) = call("GET", "/containers/x/export", "").await;
        assert_eq!(s, 404);
        let (s, b) = call("POST", "/commit?container=x&repo=r&changes=CMD%20ls&changes=USER%20a", "").await;
        assert_eq!((s, b.as_str()), (201, r#"{"Id":"x r true CMD ls|USER a"}"#));
        let (s, b) = call("POST", "/commit?container=x&pause=0", r#"{"Cmd":["sh"],"Env":null}"#).await;
        assert_eq!((s, b.as_str()), (201, r#"{"Id":"x  false  sh"}"#));
        let (s, b) = call("POST", "/commit?container=x", "null").await;
        assert_eq!((s, b.as_str()), (201, r#"{"Id":"x  true"}"#));
        let (s, _) = call("POST", "/commit?container=x", "{nope").await;
        assert_eq!(s, 400);
    }
}
