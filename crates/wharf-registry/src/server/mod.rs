//! The registry server: the OCI distribution spec v1.1 over filesystem storage.
//!
//! Start with [`Registry::new`] and [`router`], then [`serve`] (plain or TLS). One handler,
//! [`handle`], parses the path into a [`route::Route`], checks auth for the access the route
//! needs, and calls one operation in `ops`; storage is in [`storage`], garbage collection in
//! [`gc`]. Every response carries `Docker-Distribution-API-Version: registry/2.0`. Beside the
//! spec, `GET /v1/search` (Docker Hub's search API, which `docker search host/term` asks)
//! answers from the catalog, with the catalog's access check.

pub mod auth;
pub mod error;
pub mod gc;
pub mod name;
mod ops;
pub mod route;
pub mod storage;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use wharf_types::{Classify, ErrorKind};

use self::auth::{Access, Htpasswd, TokenAuth, TokenRejection};
use self::error::{ApiError, Code};
use self::route::{Route, RouteError};
use self::storage::{Storage, StorageError};

/// Largest manifest accepted on PUT.
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("open storage")]
    Storage(#[from] StorageError),
    #[error("load TLS certificate {path}")]
    TlsCert {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("load TLS key {path}: no private key found")]
    TlsKey { path: PathBuf },
    #[error("build TLS configuration")]
    Tls(#[source] rustls::Error),
}

impl Classify for ServerError {
    fn kind(&self) -> ErrorKind {
        match self {
            ServerError::Storage(e) => e.kind(),
            _ => ErrorKind::InvalidArgument,
        }
    }
}

/// How clients authenticate.
#[derive(Debug)]
pub enum AuthMode {
    /// Everything is open.
    None,
    /// `Authorization: Basic` checked against an htpasswd file.
    Basic { realm: String, htpasswd: Htpasswd },
    /// Bearer tokens from the built-in token service (see [`auth`]).
    Token(TokenAuth),
}

/// What a server is configured with.
#[derive(Debug)]
pub struct ServerConfig {
    pub root: PathBuf,
    /// Largest blob accepted, in bytes.
    pub max_upload_size: Option<u64>,
    pub auth: AuthMode,
}

/// The running registry's state, shared by all requests.
#[derive(Debug)]
pub struct Registry {
    pub(crate) storage: Storage,
    pub(crate) max_upload_size: Option<u64>,
    pub(crate) auth: AuthMode,
    /// Running sha256 state of uploads in progress, so the final PUT need not re-read the data.
    /// Lost on restart; then the data is re-hashed from disk.
    pub(crate) uploads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<ops::UploadHash>>>>>,
}

impl Registry {
    pub fn new(config: ServerConfig) -> Result<Arc<Self>, ServerError> {
        Ok(Arc::new(Self {
            storage: Storage::open(&config.root)?,
            max_upload_size: config.max_upload_size,
            auth: config.auth,
            uploads: Mutex::default(),
        }))
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }
}

/// The axum router: every path goes to [`handle`].
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new().fallback(handle).with_state(registry)
}

/// Loads a PEM certificate chain and key into a rustls server configuration.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ServerError::TlsCert { path: cert.to_owned(), source: io::Error::other(e.to_string()) })?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|_| ServerError::TlsKey { path: key.to_owned() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ServerError::Tls)?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(ServerError::Tls)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Serves HTTP/1.1 (over TLS when `tls` is set) on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let svc = TowerToHyperService::new(app);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(std::time::Duration::from_secs(30));
            let res = match acceptor {
                Some(acc) => match acc.accept(stream).await {
                    Ok(tls) => builder.serve_connection(TokioIo::new(tls), svc).await,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake");
                        return;
                    }
                },
                None => builder.serve_connection(TokioIo::new(stream), svc).await,
            };
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "connection");
            }
        });
    }
}

/// The access a request needs, for the auth check.
fn required_access(route: &Route, method: &Method) -> Vec<Access> {
    let actions: &[&str] = match *method {
        Method::GET | Method::HEAD => &["pull"],
        Method::DELETE => &["delete"],
        _ => &["pull", "push"],
    };
    match route {
        Route::Base => Vec::new(),
        Route::Catalog => vec![Access::catalog()],
        Route::Tags(n)
        | Route::Manifest(n, _)
        | Route::Blob(n, _)
        | Route::UploadStart(n)
        | Route::Upload(n, _)
        | Route::Referrers(n, _) => vec![Access::repository(n.as_str(), actions)],
    }
}

/// The outcome of the auth check: who may also mount from other repositories.
pub(crate) struct Authorized {
    /// `None` means any repository may be a mount source (Basic auth or no auth).
    bearer: Option<String>,
}

impl Authorized {
    pub(crate) fn may_pull(&self, reg: &Registry, repo: &str) -> bool {
        match (&reg.auth, &self.bearer) {
            (AuthMode::Token(t), Some(h)) => t.authorize(Some(h), &[Access::repository(repo, &["pull"])]).is_ok(),
            _ => true,
        }
    }
}

fn authorize(reg: &Registry, req: &Request, need: &[Access]) -> Result<Authorized, ApiError> {
    let header = req.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match &reg.auth {
        AuthMode::None => Ok(Authorized { bearer: None }),
        AuthMode::Basic { realm, htpasswd } => match header.and_then(auth::parse_basic) {
            Some((u, p)) if htpasswd.verify(&u, &p) => Ok(Authorized { bearer: None }),
            _ => Err(ApiError::new(Code::Unauthorized)
                .challenge(format!("Basic realm=\"{realm}\""))
                .detail(need.iter().map(Access::scope).collect::<Vec<_>>())),
        },
        AuthMode::Token(t) => match t.authorize(header, need) {
            Ok(()) => Ok(Authorized { bearer: header.map(str::to_owned) }),
            Err(TokenRejection::Missing) => {
                Err(ApiError::new(Code::Unauthorized).challenge(t.challenge(need, false)).detail(need))
            }
            Err(TokenRejection::InsufficientScope) => Err(ApiError::new(Code::Unauthorized)
                .message("insufficient scope")
                .challenge(t.challenge(need, true))
                .detail(need)),
        },
    }
}

/// The single entry point: parse, authorize, dispatch, add the API version header.
pub async fn handle(State(reg): State<Arc<Registry>>, req: Request) -> Response {
    let mut resp = match dispatch(&reg, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.headers_mut().insert("Docker-Distribution-API-Version", HeaderValue::from_static("registry/2.0"));
    resp
}

async fn dispatch(reg: &Arc<Registry>, req: Request) -> Result<Response, ApiError> {
    let path = req.uri().path().to_owned();
    if path == "/token" {
        return match &reg.auth {
            AuthMode::Token(t) => ops::token(t, req).await,
            _ => Ok(StatusCode::NOT_FOUND.into_response()),
        };
    }
    if path == "/v1/search" {
        if req.method() != Method::GET {
            return Err(
                ApiError::new(Code::Unsupported).message(format!("{} is not supported on {path}", req.method()))
            );
        }
        authorize(reg, &req, &[Access::catalog()])?;
        return ops::search(reg, &ops::Query::parse(req.uri().query())).await;
    }
    let route = match route::parse(&path) {
        Ok(r) => r,
        Err(RouteError::NotFound) => {
            return Err(ApiError::new(Code::Unsupported)
                .status(StatusCode::NOT_FOUND)
                .message(format!("no route for {path}")));
        }
        Err(RouteError::NameInvalid(n)) => {
            return Err(ApiError::new(Code::NameInvalid).detail(serde_json::json!({"name": n})));
        }
    };
    let method = req.method().clone();
    let authz = authorize(reg, &req, &required_access(&route, &method))?;
    let query = ops::Query::parse(req.uri().query());
    let unsupported = || Err(ApiError::new(Code::Unsupported).message(format!("{method} is not supported on {path}")));
    match (&method, route) {
        (&Method::GET | &Method::HEAD, Route::Base) => Ok(axum::Json(serde_json::json!({})).into_response()),
        (&Method::GET, Route::Catalog) => ops::catalog(reg, &query).await,
        (&Method::GET, Route::Tags(n)) => ops::tags(reg, &n, &query).await,
        (&Method::GET | &Method::HEAD, Route::Manifest(n, r)) => {
            ops::get_manifest(reg, &n, &r, method == Method::HEAD).await
        }
        (&Method::PUT, Route::Manifest(n, r)) => ops::put_manifest(reg, &n, &r, req).await,
        (&Method::DELETE, Route::Manifest(n, r)) => ops::delete_manifest(reg, &n, &r).await,
        (&Method::GET | &Method::HEAD, Route::Blob(n, d)) => {
            ops::get_blob(reg, &n, &d, req.headers(), method == Method::HEAD).await
        }
        (&Method::DELETE, Route::Blob(n, d)) => ops::delete_blob(reg, &n, &d).await,
        (&Method::POST, Route::UploadStart(n)) => ops::start_upload(reg, &n, &query, &authz, req).await,
        (&Method::GET, Route::Upload(n, id)) => ops::upload_status(reg, &n, &id).await,
        (&Method::PATCH, Route::Upload(n, id)) => ops::patch_upload(reg, &n, &id, req).await,
        (&Method::PUT, Route::Upload(n, id)) => ops::put_upload(reg, &n, &id, &query, req).await,
        (&Method::DELETE, Route::Upload(n, id)) => ops::cancel_upload(reg, &n, &id).await,
        (&Method::GET, Route::Referrers(n, d)) => ops::referrers(reg, &n, &d, &query).await,
        _ => unsupported(),
    }
}

/// An empty body response with a status and headers.
pub(crate) fn empty(status: StatusCode, headers: &[(&str, String)]) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            r.headers_mut().insert(axum::http::HeaderName::from_bytes(k.as_bytes()).expect("static header names"), v);
        }
    }
    r
}
