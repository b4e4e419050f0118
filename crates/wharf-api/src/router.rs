//! The front of every request: the `/v<version>` prefix, the headers every response carries, the
//! route table and the JSON 404.

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use http::{HeaderValue, Method, Request, Uri};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::backend::Backends;
use crate::error::ApiError;
use crate::routes::{archive, build, container, disk_usage, distribution, exec, image, network, stubs, system, volume};
use crate::version::{ApiVersion, PrefixCheck, check_prefix};

/// The engine's version, shared by every crate of the workspace.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// State every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub backends: Backends,
    /// Cancelled when the daemon shuts down; long streams end on it.
    pub shutdown: CancellationToken,
}

/// The whole HTTP application: cheap to clone, one per connection.
#[derive(Clone)]
pub struct App {
    router: Router,
    server: HeaderValue,
}

/// Builds the application over `backends`.
pub fn build(backends: Backends, shutdown: CancellationToken) -> App {
    let state = AppState { backends, shutdown };
    let mut router = Router::new()
        .route("/_ping", get(system::ping_get).head(system::ping_head))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(system::events))
        .route("/containers/create", post(container::create))
        .route("/containers/json", get(container::list))
        .route("/containers/prune", post(container::prune))
        .route("/containers/{id}/json", get(container::inspect))
        .route("/containers/{id}/start", post(container::start))
        .route("/containers/{id}/stop", post(container::stop))
        .route("/containers/{id}/restart", post(container::restart))
        .route("/containers/{id}/kill", post(container::kill))
        .route("/containers/{id}/pause", post(container::pause))
        .route("/containers/{id}/unpause", post(container::unpause))
        .route("/containers/{id}/rename", post(container::rename))
        .route("/containers/{id}/wait", post(container::wait))
        .route("/containers/{id}/top", get(container::top))
        .route("/containers/{id}/stats", get(container::stats))
        .route("/containers/{id}/logs", get(container::logs))
        .route("/containers/{id}/attach", post(container::attach))
        .route("/containers/{id}/attach/ws", get(container::attach_ws))
        .route("/containers/{id}/resize", post(container::resize))
        .route("/containers/{id}", delete(container::remove))
        .route("/containers/{id}/update", post(container::update))
        .route("/containers/{id}/archive", get(archive::get).head(archive::stat).put(archive::put))
        .route("/containers/{id}/export", get(archive::export))
        .route("/containers/{id}/changes", get(archive::changes))
        .route("/commit", post(archive::commit))
        .route("/volumes", get(volume::list))
        .route("/volumes/create", post(volume::create))
        .route("/volumes/prune", post(volume::prune))
        .route("/volumes/{name}", get(volume::inspect).delete(volume::remove).put(volume::update))
        .route("/containers/{id}/exec", post(exec::create))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/system/df", get(disk_usage::disk_usage))
        .route("/images/json", get(image::list))
        .route("/images/create", post(image::create))
        .route("/images/load", post(image::load))
        .route("/images/prune", post(image::prune))
        .route("/images/get", get(image::save_many))
        .route("/images/search", get(distribution::search))
        .route("/auth", post(distribution::auth))
        .route("/distribution/{*rest}", get(distribution::inspect))
        .route("/images/{*rest}", get(image::named).post(image::named).delete(image::named))
        .route("/build", post(build::build))
        .route("/build/prune", post(build::prune))
        .route("/session", any(build::buildkit))
        .route("/grpc", any(build::buildkit))
        .route("/networks", get(network::list))
        .route("/networks/create", post(network::create))
        .route("/networks/prune", post(network::prune))
        .route("/networks/{id}", get(network::inspect).delete(network::remove))
        .route("/networks/{id}/connect", post(network::connect))
        .route("/networks/{id}/disconnect", post(network::disconnect))
        .route("/plugins", get(stubs::plugins_list))
        .route("/plugins/privileges", get(stubs::plugin_other))
        .route("/plugins/pull", any(stubs::plugin_other))
        .route("/plugins/create", any(stubs::plugin_other))
        .route("/plugins/{name}", any(stubs::plugin_inspect))
        .route("/plugins/{name}/{action}", any(stubs::plugin_named));
    for prefix in ["swarm", "nodes", "services", "tasks", "secrets", "configs"] {
        router = router
            .route(&format!("/{prefix}"), any(stubs::swarm_inactive))
            .route(&format!("/{prefix}/{{*rest}}"), any(stubs::swarm_inactive));
    }
    let router = router
        .fallback(|| async { ApiError::page_not_found() })
        .method_not_allowed_fallback(|| async { ApiError::page_not_found() })
        .with_state(state);
    let server = HeaderValue::from_str(&format!("Docker/{ENGINE_VERSION}-wharf (linux)")).expect("ascii header");
    App { router, server }
}

impl App {
    /// Serves one request.
    pub async fn handle<B>(&self, req: Request<B>) -> Response
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let mut req = req.map(Body::new);
        let mut resp = match route_version(&mut req) {
            Err(e) => e.into_response(),
            Ok(_) if req.method() == Method::OPTIONS => ().into_response(),
            Ok(_) => match self.router.clone().oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            },
        };
        let h = resp.headers_mut();
        h.insert("Api-Version", HeaderValue::from_static(MAX_VERSION_TEXT));
        h.insert("Docker-Experimental", HeaderValue::from_static("false"));
        h.insert("Ostype", HeaderValue::from_static("linux"));
        h.insert(http::header::SERVER, self.server.clone());
        resp
    }
}

const MAX_VERSION_TEXT: &str = "1.53";

/// Strips a `/v<version>` prefix, rejecting versions outside the supported range, and records
/// the request's version as an extension (unversioned requests get the newest).
fn route_version(req: &mut Request<Body>) -> Result<ApiVersion, ApiError> {
    let path = req.uri().path();
    let mut version = ApiVersion::MAX;
    if let Some(rest) = path.strip_prefix("/v")
        && let Some(slash) = rest.find('/')
        && slash > 0
        && rest[..slash].bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        let text = &rest[..slash];
        version = match check_prefix(text) {
            PrefixCheck::Ok(v) => v,
            PrefixCheck::TooOld(v) => {
                return Err(ApiError::invalid(format!(
                    "client version {v} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
                    ApiVersion::MIN
                )));
            }
            PrefixCheck::TooNew(v) => {
                return Err(ApiError::invalid(format!(
                    "client version {v} is too new. Maximum supported API version is {}",
                    ApiVersion::MAX
                )));
            }
        };
        let new_path = rest[slash..].to_owned();
        let pq = match req.uri().query() {
            Some(q) => format!("{new_path}?{q}"),
            None => new_path,
        };
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = Some(pq.parse().map_err(|_| ApiError::page_not_found())?);
        *req.uri_mut() = Uri::from_parts(parts).map_err(|_| ApiError::page_not_found())?;
    }
    req.extensions_mut().insert(version);
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str) -> Request<Body> {
        Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    #[test]
    fn route_table_builds() {
        // Route conflicts panic at build time; catch them here rather than at daemon start.
        crate::fakes::app();
    }

    #[tokio::test]
    async fn container_routes_translate_errors_and_bodies() {
        use crate::fakes::call;
        assert_eq!(call("GET", "/v1.50/containers/json", "").await, (200, "[]".into()));
        let (s, b) = call("GET", "/containers/nope/json", "").await;
        assert_eq!((s, b.as_str()), (404, r#"{"message":"No such container: nope"}"#));
        let (s, b) = call("POST", "/containers/create", "").await;
        assert_eq!((s, b.as_str()), (400, r#"{"message":"config cannot be empty in order to create a container"}"#));
        let (s, b) = call("POST", "/containers/create", "{nope").await;
        assert_eq!(s, 400, "{b}");
        let (s, b) =
            call("POST", "/containers/create", r#"{"Image":"x","HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}"#)
                .await;
        assert_eq!(s, 400);
        assert!(b.contains("invalid restart policy: unknown policy 'sometimes'"), "{b}");
        let (s, b) = call("POST", "/containers/create", r#"{"Image":"busybox","Env":null}"#).await;
        assert_eq!((s, b.as_str()), (404, r#"{"message":"No such image: busybox"}"#));
        let (s, b) = call("POST", "/containers/x/wait?condition=sometime", "").await;
        assert_eq!((s, b.as_str()), (400, r#"{"message":"invalid condition: \"sometime\""}"#));
        let (s, b) = call("GET", "/containers/x/logs", "").await;
        assert_eq!((s, b.as_str()), (400, r#"{"message":"Bad parameters: you must choose at least one stream"}"#));
        let (s, b) = call("POST", "/containers/x/attach?detachKeys=meta-q", "").await;
        assert_eq!(s, 400, "{b}");
        let (s, _) = call("POST", "/containers/prune", "").await;
        assert_eq!(s, 200);
    }

    #[tokio::test]
    async fn volume_routes_translate_errors_and_bodies() {
        use crate::fakes::call;
        assert_eq!(call("GET", "/v1.50/volumes", "").await, (200, r#"{"Volumes":[],"Warnings":null}"#.into()));
        let (s, b) = call("GET", "/volumes/nope", "").await;
        assert_eq!((s, b.as_str()), (404, r#"{"message":"get nope: no such volume"}"#));
        let (s, b) = call("POST", "/volumes/create", r#"{"Name":"v1","Labels":{"a":"b"},"DriverOpts":null}"#).await;
        assert_eq!(s, 201, "{b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["Name"], "v1");
        assert_eq!(v["Options"], serde_json::Value::Null, "no options: null, as Docker");
        assert_eq!(v["Labels"]["a"], "b");
        assert_eq!(v["Scope"], "local");
        let (s, _) = call("POST", "/volumes/create", "").await;
        assert_eq!(s, 201, "an empty body creates an anonymous volume");
        let (s, b) = call("POST", "/volumes/create", "{nope").await;
        assert_eq!(s, 400, "{b}");
        assert_eq!(call("DELETE", "/volumes/v1?force=1", "").await.0, 204);
        let (s, b) = call("PUT", "/v1.53/volumes/v1?version=1", "{}").await;
        assert_eq!(
            (s, b.as_str()),
            (503, r#"{"message":"volume update only valid for cluster volumes, but swarm is unavailable"}"#)
        );
        // Below 1.42 prune removes named volumes too: the route asks for `all`.
        let (_, b) = call("POST", "/v1.41/volumes/prune", "").await;
        assert_eq!(b, r#"{"VolumesDeleted":["all=true"],"SpaceReclaimed":0}"#);
        let (_, b) = call("POST", "/v1.42/volumes/prune", "").await;
        assert_eq!(b, r#"{"VolumesDeleted":[],"SpaceReclaimed":0}"#);
    }

    #[tokio::test]
    async fn network_routes_translate_errors_and_bodies() {
        use crate::fakes::call;
        let (s, b) = call("GET", "/v1.50/networks", "").await;
        assert_eq!(s, 200);
        assert!(b.contains(r#""Name":"bridge""#), "{b}");
        let (s, b) = call("GET", "/networks?filters=%7B%22nope%22%3A%5B%22x%22%5D%7D", "").await;
        assert_eq!((s, b.as_str()), (400, r#"{"message":"invalid filter 'nope'"}"#));
        let (s, b) = call("GET", "/networks/nosuch", "").await;
        assert_eq!((s, b.as_str()), (404, r#"{"message":"network nosuch not found"}"#));
        let (s, b) = call("DELETE", "/networks/bridge", "").await;
        assert_eq!((s, b.as_str()), (403, r#"{"message":"bridge is a pre-defined network and cannot be removed"}"#));
        let (s, _) = call("POST", "/networks/create", r#"{"Name":"n1","Driver":"bridge","IPAM":null}"#).await;
        assert_eq!(s, 201);
        let (s, _) = call("POST", "/networks/create", r#"{"Name":"bridge"}"#).await;
        assert_eq!(s, 409);
        let (s, _) = call("POST", "/networks/create", "").await;
        assert_eq!(s, 400);
        let (s, b) = call("POST", "/networks/bridge/connect", r#"{"Container":"c1","EndpointConfig":null}"#).await;
        assert_eq!((s, b.as_str()), (404, r#"{"message":"No such container: c1"}"#));
        let (s, _) = call("POST", "/networks/bridge/disconnect", r#"{"Force":false}"#).await;
        assert_eq!(s, 400, "Container is required");
        let (s, b) = call("POST", "/networks/prune", "").await;
        assert_eq!((s, b.as_str()), (200, r#"{"NetworksDeleted":[]}"#));
    }

    #[test]
    fn prefix_is_stripped_and_recorded() {
        let mut r = req("/v1.41/containers/json?all=1");
        assert_eq!(route_version(&mut r).unwrap(), ApiVersion::new(1, 41));
        assert_eq!(r.uri().path(), "/containers/json");
        assert_eq!(r.uri().query(), Some("all=1"));
        let mut r = req("/_ping");
        assert_eq!(route_version(&mut r).unwrap(), ApiVersion::MAX);
        assert_eq!(r.uri().path(), "/_ping");
    }

    #[test]
    fn out_of_range_versions_get_dockers_messages() {
        let e = route_version(&mut req("/v1.54/info")).unwrap_err();
        assert_eq!(e.0.message, "client version 1.54 is too new. Maximum supported API version is 1.53");
        let e = route_version(&mut req("/v1.23/info")).unwrap_err();
        assert_eq!(
            e.0.message,
            "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
        );
    }

    #[test]
    fn non_version_paths_pass_through() {
        for p in ["/volumes/v1.2/x", "/vx/info", "/v/info", "/v1.53"] {
            let mut r = req(p);
            assert_eq!(route_version(&mut r).unwrap(), ApiVersion::MAX, "{p}");
            assert_eq!(r.uri().path(), p);
        }
    }
}
