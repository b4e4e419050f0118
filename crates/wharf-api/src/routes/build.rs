//! `/build` (the legacy builder, compat §5), `/build/prune`, and the BuildKit endpoints this
//! daemon does not serve (`/session`, `/grpc`).
//!
//! Wire rules kept here: `-q` (`q=1`) holds every message back and sends only
//! `{"stream":"sha256:…\n"}` on success, or the held messages and then the error on failure;
//! `aux` IDs go only to clients of API 1.30 and later; a failure before the first message is an
//! HTTP error, later ones are `{"errorDetail":{"code":…,"message":…},"error":…}` messages; the
//! build is cancelled when the client goes away. Beyond Docker's API: the
//! `X-Wharf-Build-Secrets` header carries `wharf build --secret` values.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt;
use http::HeaderMap;
use wharf_types::{EngineError, ErrorKind};

use crate::backend::{BuildFailure, BuildPruneOptions, BuildRequest, ByteStream};
use crate::error::ApiError;
use crate::query::Query;
use crate::router::AppState;
use crate::stream::{ErrorDetail, JsonMessage, ProgressSender, cancellable_message_stream};
use crate::version::ApiVersion;

type Version = axum::Extension<ApiVersion>;

fn body_stream(body: Body) -> ByteStream {
    body.into_data_stream().map(|r| r.map_err(std::io::Error::other)).boxed()
}

/// A JSON query parameter (`buildargs`, `labels`, `cachefrom`, `ulimits`): empty or absent is
/// `None`; malformed is a 400 naming it.
fn json_param<T: serde::de::DeserializeOwned>(query: &Query, key: &str, what: &str) -> Result<Option<T>, ApiError> {
    match query.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            serde_json::from_str(v).map(Some).map_err(|e| ApiError::invalid(format!("unable to parse {what}: {e}")))
        }
    }
}

/// The header `wharf build --secret` sends: base64url of a JSON map secret ID → base64 of the
/// content.
pub const SECRETS_HEADER: &str = "X-Wharf-Build-Secrets";

/// [`SECRETS_HEADER`], decoded; absent means no secrets, malformed is a 400.
fn build_secrets(headers: &HeaderMap) -> Result<BTreeMap<String, Vec<u8>>, ApiError> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    let Some(raw) = headers.get(SECRETS_HEADER) else {
        return Ok(BTreeMap::new());
    };
    let bad = || ApiError::invalid(format!("invalid {SECRETS_HEADER} header: expected base64url of a JSON map"));
    let json = raw.to_str().ok().and_then(|v| URL_SAFE.decode(v.trim()).ok()).ok_or_else(bad)?;
    let map: BTreeMap<String, String> = serde_json::from_slice(&json).map_err(|_| bad())?;
    map.into_iter()
        .map(|(id, content)| {
            let bytes = STANDARD.decode(content).map_err(|_| bad())?;
            Ok((id, bytes))
        })
        .collect()
}

/// `X-Registry-Config`: base64url of a JSON map registry → auth config. Malformed values are
/// ignored, as moby does (a build does not need credentials to start).
fn registry_config(headers: &HeaderMap) -> BTreeMap<String, serde_json::Value> {
    let Some(raw) = headers.get("X-Registry-Config").and_then(|v| v.to_str().ok()) else {
        return BTreeMap::new();
    };
    let raw = raw.trim();
    let engines = [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|e| e.decode(raw).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// The query as a [`BuildRequest`], with moby's checks.
pub fn parse_request(query: &Query, headers: &HeaderMap, v: ApiVersion) -> Result<BuildRequest, ApiError> {
    match query.get("version").unwrap_or("1") {
        "" | "1" => {}
        "2" => {
            return Err(ApiError::new(
                ErrorKind::NotImplemented,
                "BuildKit (builder version 2) is not supported by this daemon: use the legacy builder (DOCKER_BUILDKIT=0 docker build)",
            ));
        }
        other => return Err(ApiError::invalid(format!("unsupported builder version {other:?}"))),
    }
    let remote = query.get("remote").unwrap_or("").to_owned();
    if remote == "client-session" {
        return Err(ApiError::invalid(
            "the client-session remote is BuildKit's, which this daemon does not serve: use the legacy builder",
        ));
    }
    if query.bool("squash", false) {
        return Err(ApiError::invalid("squash is only supported with experimental mode"));
    }
    match query.get("isolation").unwrap_or("") {
        "" | "default" | "process" => {}
        other => return Err(ApiError::invalid(format!("Unsupported isolation: \"{other}\""))),
    }
    let int = |k: &str| -> Result<i64, ApiError> { Ok(query.int(k)?.unwrap_or(0)) };
    let shm_size = int("shmsize")?;
    if shm_size < 0 {
        return Err(ApiError::invalid("SHM size can not be less than 0"));
    }
    let strings = |k: &str| query.all(k).into_iter().filter(|s| !s.is_empty()).map(str::to_owned).collect();
    Ok(BuildRequest {
        tags: strings("t"),
        dockerfile: query.get("dockerfile").unwrap_or("").to_owned(),
        build_args: json_param(query, "buildargs", "build args")?.unwrap_or_default(),
        labels: json_param(query, "labels", "labels")?.unwrap_or_default(),
        no_cache: query.bool("nocache", false),
        remove: query.bool("rm", true),
        force_remove: query.bool("forcerm", false),
        pull: query.bool("pull", false),
        target: query.get("target").unwrap_or("").to_owned(),
        platform: if v.at_least(1, 32) { query.get("platform").unwrap_or("").to_owned() } else { String::new() },
        cache_from: json_param(query, "cachefrom", "cache-from")?.unwrap_or_default(),
        network_mode: query.get("networkmode").unwrap_or("").to_owned(),
        extra_hosts: strings("extrahosts"),
        shm_size,
        memory: int("memory")?,
        memory_swap: int("memswap")?,
        cpu_shares: int("cpushares")?,
        cpu_period: int("cpuperiod")?,
        cpu_quota: int("cpuquota")?,
        cpuset_cpus: query.get("cpusetcpus").unwrap_or("").to_owned(),
        cpuset_mems: query.get("cpusetmems").unwrap_or("").to_owned(),
        cgroup_parent: query.get("cgroupparent").unwrap_or("").to_owned(),
        ulimits: json_param(query, "ulimits", "ulimits")?,
        security_opt: strings("securityopt"),
        registry_auth: registry_config(headers),
        secrets: build_secrets(headers)?,
        remote,
    })
}

fn failure_message(f: &BuildFailure) -> JsonMessage {
    JsonMessage {
        error_detail: Some(ErrorDetail { code: f.code.map(i64::from), message: f.error.message.clone() }),
        error: Some(f.error.message.clone()),
        ..Default::default()
    }
}

/// `POST /build`.
pub async fn build(
    State(st): State<AppState>,
    version: Version,
    query: Query,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req = parse_request(&query, &headers, version.0)?;
    let quiet = query.bool("q", false);
    let want_aux = version.0.at_least(1, 30);
    let backend = st.backends.builds.clone();
    let cancel = st.shutdown.child_token();
    let context = body_stream(body);
    let token = cancel.clone();
    cancellable_message_stream(cancel, move |out: ProgressSender| async move {
        let (inner, mut buffer) = ProgressSender::buffer();
        let mut held: Vec<JsonMessage> = Vec::new();
        let mut sent = false;
        let pass = |m: JsonMessage, held: &mut Vec<JsonMessage>, sent: &mut bool| {
            if m.aux.is_some() && !want_aux {
                return;
            }
            if quiet {
                held.push(m);
            } else {
                *sent = true;
                out.send(m);
            }
        };
        let fut = backend.build(context, req, inner, token);
        tokio::pin!(fut);
        let result = loop {
            tokio::select! {
                biased;
                m = buffer.recv() => match m {
                    Some(m) => pass(m, &mut held, &mut sent),
                    None => break (&mut fut).await,
                },
                r = &mut fut => break r,
            }
        };
        while let Some(m) = buffer.try_recv() {
            pass(m, &mut held, &mut sent);
        }
        match result {
            Ok(id) => {
                if quiet {
                    out.send(JsonMessage::stream(format!("{id}\n")));
                }
                Ok(())
            }
            Err(f) => {
                if quiet && !held.is_empty() {
                    for m in held {
                        out.send(m);
                    }
                    sent = true;
                }
                if !sent {
                    return Err(f.error);
                }
                out.send(failure_message(&f));
                Ok(())
            }
        }
    })
    .await
}

/// `POST /build/prune?all=&filters=&keep-storage=` (`reserved-space` from API 1.48).
pub async fn prune(State(st): State<AppState>, query: Query) -> Result<Response, ApiError> {
    let keep = match query.int("reserved-space")? {
        Some(n) => n,
        None => query.int("keep-storage")?.unwrap_or(0),
    };
    let opts = BuildPruneOptions { all: query.bool("all", false), filters: query.filters()?, keep_storage: keep };
    let resp = st.backends.builds.prune(opts).await?;
    Ok(Json(resp).into_response())
}

/// `/session` and `/grpc`: BuildKit's endpoints. Without them buildx reports the daemon has no
/// BuildKit, and `DOCKER_BUILDKIT=0 docker build` uses `/build`.
pub async fn buildkit() -> ApiError {
    ApiError(EngineError::not_found("page not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<BuildRequest, ApiError> {
        parse_request(&Query::parse(q), &HeaderMap::new(), ApiVersion::MAX)
    }

    #[test]
    fn parameters_as_the_cli_sends_them() {
        let r = parse(
            "buildargs=%7B%22A%22%3A%221%22%2C%22B%22%3Anull%7D&dockerfile=Dockerfile&labels=%7B%22l%22%3A%221%22%7D\
             &nocache=1&platform=linux%2Famd64&t=spy%2Fbuilt%3Av1&t=spy%2Fbuilt%3Av1b&version=1&rm=0&forcerm=1\
             &cachefrom=%5B%22a%22%5D&extrahosts=h%3A1.2.3.4&extrahosts=g%3A5.6.7.8&shmsize=1048576&memory=8000000\
             &networkmode=host&target=t1",
        )
        .unwrap();
        assert_eq!(r.tags, vec!["spy/built:v1", "spy/built:v1b"]);
        assert_eq!(r.build_args["A"], Some("1".into()));
        assert_eq!(r.build_args["B"], None);
        assert_eq!(r.labels["l"], "1");
        assert!(r.no_cache && !r.remove && r.force_remove);
        assert_eq!(r.platform, "linux/amd64");
        assert_eq!(r.cache_from, vec!["a"]);
        assert_eq!(r.extra_hosts, vec!["h:1.2.3.4", "g:5.6.7.8"]);
        assert_eq!((r.shm_size, r.memory), (1_048_576, 8_000_000));
        assert_eq!((r.network_mode.as_str(), r.target.as_str()), ("host", "t1"));
        assert!(parse("").unwrap().remove, "rm defaults to true");
    }

    #[test]
    fn refusals_are_clear() {
        assert_eq!(parse("version=2").unwrap_err().0.kind, ErrorKind::NotImplemented);
        assert_eq!(parse("remote=https%3A%2F%2Fx%2Fy.tar").unwrap().remote, "https://x/y.tar");
        assert!(parse("remote=client-session").unwrap_err().0.message.contains("BuildKit"));
        assert!(parse("buildargs=%7Bnope").unwrap_err().0.message.starts_with("unable to parse build args"));
        assert_eq!(parse("shmsize=x").unwrap_err().0.kind, ErrorKind::InvalidArgument);
        assert_eq!(parse("squash=1").unwrap_err().0.kind, ErrorKind::InvalidArgument);
    }

    #[test]
    fn secrets_are_decoded() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        let mut h = HeaderMap::new();
        assert!(build_secrets(&h).unwrap().is_empty());
        let json = format!(r#"{{"tok":"{}"}}"#, STANDARD.encode(b"s3cr\x00t"));
        h.insert(SECRETS_HEADER, URL_SAFE.encode(json).parse().unwrap());
        assert_eq!(build_secrets(&h).unwrap()["tok"], b"s3cr\x00t");
        h.insert(SECRETS_HEADER, "!!!".parse().unwrap());
        assert!(build_secrets(&h).is_err());
    }

    #[test]
    fn registry_config_is_decoded() {
        let mut h = HeaderMap::new();
        h.insert("X-Registry-Config", "e30=".parse().unwrap());
        assert!(registry_config(&h).is_empty());
        let json = r#"{"r.example:5000":{"username":"u","password":"p"}}"#;
        let enc = base64::engine::general_purpose::URL_SAFE.encode(json);
        h.insert("X-Registry-Config", enc.parse().unwrap());
        assert_eq!(registry_config(&h)["r.example:5000"]["username"], "u");
        h.insert("X-Registry-Config", "!!!".parse().unwrap());
        assert!(registry_config(&h).is_empty());
    }

    #[tokio::test]
    async fn stream_shapes() {
        use crate::fakes::call;
        let (s, b) = call("POST", "/v1.41/build?dockerfile=ok", "").await;
        assert_eq!(s, 200);
        assert_eq!(b, "{\"stream\":\"Step 1/2 : FROM busybox\"}\r\n{\"aux\":{\"ID\":\"sha256:aaaa\"}}\r\n");
        let (_, b) = call("POST", "/v1.29/build?dockerfile=ok", "").await;
        assert!(!b.contains("aux"), "no aux before 1.30: {b}");
        let (_, b) = call("POST", "/build?dockerfile=ok&q=1", "").await;
        assert_eq!(b, "{\"stream\":\"sha256:aaaa\\n\"}\r\n");
        let (s, b) = call("POST", "/build", "").await;
        assert_eq!(s, 200);
        assert!(
            b.ends_with("{\"errorDetail\":{\"code\":3,\"message\":\"The command '/bin/sh -c exit 3' returned a non-zero code: 3\"},\"error\":\"The command '/bin/sh -c exit 3' returned a non-zero code: 3\"}\r\n"),
            "{b}"
        );
        let (_, b) = call("POST", "/build?q=1", "").await;
        assert!(b.starts_with("{\"stream\":\"Step 1/2"), "held output comes first: {b}");
        assert!(b.contains("\"code\":3"), "{b}");
        let (s, b) = call("POST", "/build?dockerfile=early", "").await;
        assert_eq!(
            (s, b.as_str()),
            (400, r#"{"message":"dockerfile parse error on line 1: unknown instruction: NOPE"}"#)
        );
        assert_eq!(call("POST", "/build?version=2", "").await.0, 501);
        assert_eq!(call("POST", "/session", "").await.0, 404);
        assert_eq!(call("GET", "/grpc", "").await.0, 404);
        let (s, b) = call("POST", "/build/prune?all=1&keep-storage=5", "").await;
        assert_eq!((s, b.as_str()), (200, r#"{"CachesDeleted":["all=true keep=5"],"SpaceReclaimed":0}"#));
    }
}
