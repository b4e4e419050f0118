//! `/images/*`. Names may contain slashes (`/images/127.0.0.1:5000/a/b/json`), so everything
//! under `/images/` that is not a fixed path goes through [`named`], which splits the action
//! off the end as moby's `{name:.*}/json` routes do.
//!
//! Version shaping (moby's image router): `RepoTags: ["<none>:<none>"]` for untagged images
//! before 1.43, `VirtualSize` before 1.44, `Containers: -1` before 1.51; inspect drops
//! `Container`/`ContainerConfig` at 1.45, the non-OCI `Config` fields at 1.50, and omits empty
//! `Parent`/`Comment`/`DockerVersion`/`Author` (and unset `Config` fields) from 1.52.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::backend::{ImageImportOptions, ImageInspectData, ImageListOptions, ImagePullOptions, ImagePushOptions};
use crate::error::ApiError;
use crate::query::Query;
use crate::router::AppState;
use crate::stream::message_stream;
use crate::version::ApiVersion;

type Version = axum::Extension<ApiVersion>;

/// The request body for a backend. If the backend drops it before its end (an early error),
/// the rest is read and discarded in the background: a client still sending it then gets
/// the error response instead of a broken pipe (the docker CLI sends whole tarballs first).
fn body_stream(body: Body) -> crate::backend::ByteStream {
    DrainOnDrop { inner: Some(body.into_data_stream()), done: false }.boxed()
}

struct DrainOnDrop {
    inner: Option<axum::body::BodyDataStream>,
    done: bool,
}

impl futures_util::Stream for DrainOnDrop {
    type Item = Result<bytes::Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let next = inner.poll_next_unpin(cx);
        if let std::task::Poll::Ready(None) = next {
            self.done = true;
        }
        next.map(|o| o.map(|r| r.map_err(std::io::Error::other)))
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        if let (false, Some(mut rest)) = (self.done, self.inner.take())
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(async move { while let Some(Ok(_)) = rest.next().await {} });
        }
    }
}

/// `GET /images/json`.
pub async fn list(State(st): State<AppState>, version: Version, query: Query) -> Result<Response, ApiError> {
    let v = version.0;
    let mut filters = query.filters()?;
    if !v.at_least(1, 25)
        && !filters.contains("reference")
        && let Some(f) = query.get("filter").filter(|f| !f.is_empty())
    {
        filters.add("reference", f);
    }
    let opts = ImageListOptions {
        all: query.bool("all", false),
        filters,
        shared_size: v.at_least(1, 42) && query.bool("shared-size", false),
    };
    let images = st.backends.images.list(opts).await?;
    let out: Vec<Value> = images
        .into_iter()
        .map(|mut i| {
            if !v.at_least(1, 43) && i.repo_tags.is_empty() && i.repo_digests.is_empty() {
                i.repo_tags.push("<none>:<none>".into());
                i.repo_digests.push("<none>@<none>".into());
            }
            if !v.at_least(1, 51) {
                i.containers = -1;
            }
            let size = i.size;
            let mut value = serde_json::to_value(i).unwrap_or_default();
            if !v.at_least(1, 44) {
                value["VirtualSize"] = json!(size);
            }
            value
        })
        .collect();
    Ok(Json(out).into_response())
}

/// `POST /images/create`: import (`fromSrc`) or pull (`fromImage`).
pub async fn create(
    State(st): State<AppState>,
    version: Version,
    query: Query,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let platform = if version.0.at_least(1, 32) {
        query.get("platform").filter(|p| !p.is_empty()).map(str::to_owned)
    } else {
        None
    };
    let images = st.backends.images.clone();
    if let Some(image) = query.get("fromImage").filter(|s| !s.is_empty()) {
        let opts = ImagePullOptions {
            from_image: image.to_owned(),
            tag: query.get("tag").unwrap_or("").to_owned(),
            platform,
            registry_auth: super::distribution::registry_auth(&headers),
        };
        return message_stream(|tx| async move { images.pull(opts, tx).await }).await;
    }
    match query.get("fromSrc").unwrap_or("") {
        "-" => {}
        "" => {
            return Err(ApiError::invalid("either fromImage or fromSrc must be given"));
        }
        url => {
            return Err(ApiError::invalid(format!(
                "importing from a URL ({url}) is not supported: send the tarball as the request body with fromSrc=-"
            )));
        }
    }
    let opts = ImageImportOptions {
        repo: query.get("repo").unwrap_or("").to_owned(),
        tag: query.get("tag").unwrap_or("").to_owned(),
        message: query.get("message").unwrap_or("").to_owned(),
        changes: query.all("changes").into_iter().map(str::to_owned).collect(),
        platform,
    };
    let body = body_stream(body);
    message_stream(|tx| async move { images.import(body, opts, tx).await }).await
}

/// `POST /images/load?quiet`.
pub async fn load(State(st): State<AppState>, query: Query, body: Body) -> Result<Response, ApiError> {
    let quiet = query.bool("quiet", true);
    let images = st.backends.images.clone();
    let body = body_stream(body);
    message_stream(|tx| async move { images.load(body, quiet, tx).await }).await
}

/// `POST /images/prune`.
pub async fn prune(State(st): State<AppState>, query: Query) -> Result<Response, ApiError> {
    let report = st.backends.images.prune(query.filters()?).await?;
    Ok(Json(json!({
        "ImagesDeleted": report.images_deleted,
        "SpaceReclaimed": report.space_reclaimed.unwrap_or(0),
    }))
    .into_response())
}

/// `GET /images/get?names=…`.
pub async fn save_many(State(st): State<AppState>, query: Query) -> Result<Response, ApiError> {
    let names: Vec<String> = query.all("names").into_iter().map(str::to_owned).collect();
    save(st, names).await
}

async fn save(st: AppState, names: Vec<String>) -> Result<Response, ApiError> {
    let stream = st.backends.images.save(names).await?;
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    Ok(resp)
}

/// Everything under `/images/{name}/…` (and `DELETE /images/{name}`).
pub async fn named(
    State(st): State<AppState>,
    method: Method,
    version: Version,
    Path(rest): Path<String>,
    query: Query,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let split = |suffix: &str| rest.strip_suffix(suffix).filter(|n| !n.is_empty());
    let images = &st.backends.images;
    match method {
        Method::DELETE => {
            let force = query.bool("force", false);
            let noprune = query.bool("noprune", false);
            let records = images.delete(&rest, force, noprune).await?;
            Ok(Json(records).into_response())
        }
        Method::GET => {
            if let Some(name) = split("/json") {
                let data = images.inspect(name).await?;
                Ok(Json(shape_inspect(data, version.0)).into_response())
            } else if let Some(name) = split("/history") {
                Ok(Json(images.history(name).await?).into_response())
            } else if let Some(name) = split("/get") {
                save(st.clone(), vec![name.to_owned()]).await
            } else {
                Err(ApiError::page_not_found())
            }
        }
        Method::POST => {
            if let Some(name) = split("/tag") {
                let repo = query.get("repo").unwrap_or("");
                let tag = query.get("tag").unwrap_or("");
                images.tag(name, repo, tag).await?;
                Ok(StatusCode::CREATED.into_response())
            } else if let Some(name) = split("/push") {
                let opts = ImagePushOptions {
                    name: name.to_owned(),
                    tag: query.get("tag").unwrap_or("").to_owned(),
                    platform: query.get("platform").filter(|p| !p.is_empty()).map(str::to_owned),
                    registry_auth: super::distribution::registry_auth(&headers),
                };
                let images = images.clone();
                message_stream(|tx| async move { images.push(opts, tx).await }).await
            } else {
                Err(ApiError::page_not_found())
            }
        }
        _ => Err(ApiError::page_not_found()),
    }
}

/// `Config` fields older clients always get (moby's `legacyConfigFields`): 1.50–1.51 the
/// OCI fields without `omitempty`, 1.49 and older also the container-only ones.
fn legacy_config_fields(v: ApiVersion) -> Vec<(&'static str, Value)> {
    let mut f: Vec<(&'static str, Value)> = vec![
        ("Cmd", Value::Null),
        ("Entrypoint", Value::Null),
        ("Env", Value::Null),
        ("Labels", Value::Null),
        ("OnBuild", Value::Null),
        ("User", json!("")),
        ("Volumes", Value::Null),
        ("WorkingDir", json!("")),
    ];
    if !v.at_least(1, 50) {
        f.extend([
            ("AttachStderr", json!(false)),
            ("AttachStdin", json!(false)),
            ("AttachStdout", json!(false)),
            ("Domainname", json!("")),
            ("Hostname", json!("")),
            ("Image", json!("")),
            ("OpenStdin", json!(false)),
            ("StdinOnce", json!(false)),
            ("Tty", json!(false)),
        ]);
    }
    f
}

/// The inspect response for a client speaking `v`.
pub fn shape_inspect(data: ImageInspectData, v: ApiVersion) -> Value {
    let size = data.inspect.size.unwrap_or(0);
    let mut out = serde_json::to_value(&data.inspect).unwrap_or_default();
    let Some(obj) = out.as_object_mut() else {
        return out;
    };
    for k in ["RepoTags", "RepoDigests"] {
        if obj.get(k).is_none_or(Value::is_null) {
            obj.insert(k.to_owned(), json!([]));
        }
    }
    if !v.at_least(1, 44) {
        obj.insert("VirtualSize".into(), json!(size));
        if obj.get("Created").is_none_or(Value::is_null) {
            obj.insert("Created".into(), json!("0001-01-01T00:00:00Z"));
        }
    }
    if !v.at_least(1, 45) {
        obj.insert("Container".into(), json!(data.container));
        obj.insert("ContainerConfig".into(), data.container_config.clone().unwrap_or(Value::Null));
    }
    if !v.at_least(1, 48) {
        obj.remove("Descriptor");
    }
    if !v.at_least(1, 52) {
        for (k, val) in [("Parent", data.parent.clone()), ("DockerVersion", data.docker_version.clone())] {
            obj.insert(k.into(), json!(val));
        }
        for k in ["Comment", "Author"] {
            if obj.get(k).is_none() {
                obj.insert(k.into(), json!(""));
            }
        }
        let config = obj.entry("Config").or_insert_with(|| Value::Object(Map::new()));
        if let Some(c) = config.as_object_mut() {
            for (k, default) in legacy_config_fields(v) {
                c.entry(k).or_insert(default);
            }
        }
    } else {
        if !data.parent.is_empty() {
            obj.insert("Parent".into(), json!(data.parent));
        }
        if !data.docker_version.is_empty() {
            obj.insert("DockerVersion".into(), json!(data.docker_version));
        }
        for k in ["Comment", "Author"] {
            if obj.get(k).is_some_and(|c| c.as_str() == Some("")) {
                obj.remove(k);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{ImageConfig, ImageInspect};

    fn data() -> ImageInspectData {
        ImageInspectData {
            inspect: ImageInspect {
                id: Some("sha256:x".into()),
                size: Some(5),
                comment: Some(String::new()),
                config: Some(ImageConfig { cmd: Some(vec!["sh".into()]), ..Default::default() }),
                ..Default::default()
            },
            parent: String::new(),
            docker_version: String::new(),
            container: String::new(),
            container_config: None,
        }
    }

    #[test]
    fn inspect_by_version() {
        let new = shape_inspect(data(), ApiVersion::MAX);
        assert_eq!(new["RepoTags"], json!([]));
        assert!(new.get("Comment").is_none() && new.get("Parent").is_none());
        assert!(new.get("VirtualSize").is_none() && new.get("Container").is_none());
        assert!(new["Config"].get("Env").is_none());
        let v150 = shape_inspect(data(), ApiVersion::new(1, 50));
        assert_eq!(v150["Config"]["Env"], Value::Null);
        assert_eq!(v150["Config"]["Cmd"], json!(["sh"]));
        assert!(v150["Config"].get("Hostname").is_none());
        assert_eq!(v150["Parent"], "");
        let v141 = shape_inspect(data(), ApiVersion::new(1, 41));
        assert_eq!(v141["VirtualSize"], 5);
        assert_eq!(v141["Created"], "0001-01-01T00:00:00Z");
        assert_eq!(v141["Config"]["Hostname"], "");
        assert!(v141.get("ContainerConfig").is_some());
    }
}
