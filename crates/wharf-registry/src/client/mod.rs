//! The registry client: what the daemon calls to log in, pull and push.
//!
//! ```text
//! let client = Client::new(RegistryConfig::default());
//! client.login(&creds).await?;                                   // POST /auth
//! let repo = client.repository(&reference, &creds, Access::Pull).await?;   // pings /v2/
//! let image = repo.fetch_image(&manifest_ref(&reference), &Platform::host()).await?;
//! let config = repo.fetch_blob_bytes(&image.config_descriptor(), 16 << 20).await?;
//! let layer = repo.fetch_blob(&image.layers()[0]).await?;       // verified, resumable stream
//! ```
//!
//! Modules: [`config`] (endpoints, insecure registries, mirrors, certs.d), [`auth`] (credentials,
//! challenges, tokens), `transport` (HTTP, TLS, redirects), `manifest` (resolve, fetch,
//! platform selection), `blob` (downloads), `push` (uploads, manifests, tags), [`error`].
//!
//! A [`Repository`] is a session with one repository on one endpoint: it keeps the challenge
//! from the ping, attaches credentials or tokens (cached in the [`Client`], shared by all
//! sessions) to requests for its own origin only, retries transient failures with back-off
//! (connect errors, 5xx, 429 honouring `Retry-After`) when the request can be replayed, and
//! re-authenticates once on a 401.

pub mod auth;
mod blob;
pub mod config;
pub mod error;
mod manifest;
mod push;
mod search;
pub(crate) mod transport;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use hyper::body::Incoming;
use wharf_types::Reference;

pub use self::auth::{AuthConfig, Challenge};
pub use self::blob::{BlobEvent, BlobStream};
pub use self::config::{Endpoint, RegistryConfig, RetryPolicy};
pub use self::error::ClientError;
pub use self::manifest::{FetchedManifest, ResolvedImage};
pub use self::push::{MountResult, ProgressFn, PushBlobOptions, PushOutcome, TagPage, UploadMode};
pub use self::search::{SearchResult, SearchResults};

use self::auth::{TokenCache, fetch_token, parse_challenges};
use self::error::render_errors;
use self::transport::{ReqBody, Transport, go_method, origin, read_errors};

/// What a session will do, which decides the token scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

/// The result of a successful login (`POST /auth`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOutcome {
    /// `Login Succeeded`.
    pub status: String,
    /// A refresh token to store in place of the password, when the token server gave one.
    pub identity_token: Option<String>,
}

/// The tag or digest to ask a registry for (`latest` when the reference has neither).
pub fn manifest_ref(r: &Reference) -> String {
    match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => "latest".to_owned(),
    }
}

/// A registry client. Cheap to clone; holds the connection pool and the token cache.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    config: Arc<RegistryConfig>,
    transport: Transport,
    tokens: TokenCache,
}

impl Client {
    pub fn new(config: RegistryConfig) -> Self {
        let config = Arc::new(config);
        Self {
            inner: Arc::new(ClientInner {
                transport: Transport::new(config.clone()),
                config,
                tokens: TokenCache::default(),
            }),
        }
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// Checks credentials against a registry as `POST /auth` needs: ping `/v2/`, then Basic
    /// credentials or a token (asking for a refresh token, returned as the identity token).
    /// `server` is `serveraddress` as the CLI sends it (`127.0.0.1:5000`, `http://h:5000`,
    /// `https://index.docker.io/v1/`; empty means Docker Hub).
    /// A refusal reads `login attempt to http://127.0.0.1:5000/v2/ failed with status: 401 Unauthorized`.
    pub async fn login(&self, server: &str, creds: &AuthConfig) -> Result<LoginOutcome, ClientError> {
        let server = if server.is_empty() { config::DOCKER_HUB_INDEX } else { server };
        let (domain, scheme) = config::parse_server_address(server);
        let endpoints = self.inner.config.endpoints(&domain, true, scheme);
        let mut last = None;
        for (i, ep) in endpoints.iter().enumerate() {
            let last_one = i + 1 == endpoints.len();
            match self.login_endpoint(ep, creds, last_one).await {
                Err(e @ (ClientError::Connect { .. } | ClientError::Transport { .. })) if !last_one => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or(ClientError::InvalidReference(server.to_owned())))
    }

    async fn login_endpoint(
        &self,
        ep: &Endpoint,
        creds: &AuthConfig,
        retry: bool,
    ) -> Result<LoginOutcome, ClientError> {
        let url = format!("{}/v2/", ep.base);
        let challenge = self.ping(&url, retry).await?;
        let succeeded = |identity_token| LoginOutcome { status: "Login Succeeded".to_owned(), identity_token };
        let (auth, identity) = match challenge {
            None => return Ok(succeeded(None)),
            Some(Challenge::Basic { .. }) => {
                let (u, p) = creds.user_password().unwrap_or_default();
                let v = format!(
                    "Basic {}",
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{u}:{p}"))
                );
                (v, None)
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let t = fetch_token(
                    &self.inner.transport,
                    &realm,
                    &service,
                    &[],
                    creds,
                    true,
                    &self.inner.config.user_agent,
                )
                .await
                .map_err(|e| match e {
                    ClientError::Unauthorized { message, .. } => {
                        ClientError::Unauthorized { method: "Get".to_owned(), url: url.clone(), message }
                    }
                    other => other,
                })?;
                (format!("Bearer {}", t.token), t.refresh_token)
            }
        };
        let mut headers = self.base_headers();
        if let Ok(v) = HeaderValue::from_str(&auth) {
            headers.insert(header::AUTHORIZATION, v);
        }
        let (resp, _) = self.inner.transport.send(&Method::GET, &url, &headers, &mut ReqBody::Empty).await?;
        let status = resp.status();
        if status.is_success() {
            Ok(succeeded(identity))
        } else {
            Err(ClientError::LoginFailed {
                url,
                status: format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("")),
            })
        }
    }

    fn base_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&self.inner.config.user_agent) {
            h.insert(header::USER_AGENT, v);
        }
        h
    }

    /// `GET /v2/`: `None` when no auth is needed, else the challenge.
    async fn ping(&self, url: &str, retry: bool) -> Result<Option<Challenge>, ClientError> {
        let policy = &self.inner.config.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let res = self.inner.transport.send(&Method::GET, url, &self.base_headers(), &mut ReqBody::Empty).await;
            let transient = match &res {
                Err(e) => e.is_transient(),
                Ok((r, _)) => r.status().is_server_error(),
            };
            if retry && transient && attempt < policy.max_attempts {
                tokio::time::sleep(policy.delay(attempt)).await;
                continue;
            }
            let (resp, _) = res?;
            let status = resp.status();
            if status.is_success() {
                return Ok(None);
            }
            if status == StatusCode::UNAUTHORIZED {
                return Ok(parse_challenges(resp.headers()));
            }
            let errors = read_errors(resp).await;
            return Err(ClientError::Status {
                method: "Get".to_owned(),
                url: url.to_owned(),
                status: status.as_u16(),
                message: render_errors(&errors, status),
            });
        }
    }

    /// Opens a session with `reference`'s repository: picks the first endpoint that answers
    /// the `/v2/` ping (mirrors first for Docker Hub pulls; HTTPS then HTTP for insecure
    /// registries) and remembers its challenge.
    pub async fn repository(
        &self,
        reference: &Reference,
        creds: &AuthConfig,
        access: Access,
    ) -> Result<Repository, ClientError> {
        let actions = match access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        };
        let scope = format!("repository:{}:{actions}", reference.path());
        self.session(
            reference.domain(),
            reference.path(),
            &reference.familiar_name(),
            creds,
            access == Access::Push,
            scope,
        )
        .await
    }

    async fn session(
        &self,
        domain: &str,
        name: &str,
        familiar: &str,
        creds: &AuthConfig,
        push: bool,
        scope: String,
    ) -> Result<Repository, ClientError> {
        let endpoints = self.inner.config.endpoints(domain, push, None);
        if endpoints.is_empty() {
            return Err(ClientError::InvalidReference(domain.to_owned()));
        }
        let template = RepoInner {
            client: self.clone(),
            endpoint: endpoints[0].clone(),
            fallbacks: endpoints[1..].to_vec(),
            name: name.to_owned(),
            familiar: familiar.to_owned(),
            creds: creds.clone(),
            scope,
            challenge: Mutex::new(None),
        };
        self.open_endpoints(template, endpoints).await
    }

    /// Pings `endpoints` in order; the first that answers becomes the session's endpoint and the
    /// rest its fallbacks.
    async fn open_endpoints(&self, template: RepoInner, endpoints: Vec<Endpoint>) -> Result<Repository, ClientError> {
        let mut last = None;
        for (i, ep) in endpoints.iter().enumerate() {
            let last_one = i + 1 == endpoints.len();
            match self.ping(&format!("{}/v2/", ep.base), last_one).await {
                Ok(challenge) => {
                    return Ok(Repository {
                        inner: Arc::new(RepoInner {
                            endpoint: ep.clone(),
                            fallbacks: endpoints[i + 1..].to_vec(),
                            challenge: Mutex::new(challenge),
                            client: template.client.clone(),
                            name: template.name.clone(),
                            familiar: template.familiar.clone(),
                            creds: template.creds.clone(),
                            scope: template.scope.clone(),
                        }),
                    });
                }
                Err(e)
                    if !last_one
                        && (ep.mirror
                            || e.is_transient()
                            || matches!(e, ClientError::Connect { .. } | ClientError::Transport { .. })) =>
                {
                    tracing::debug!(endpoint = %ep.base, error = %e, "endpoint failed, trying the next");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::InvalidReference(template.name.clone())))
    }

    /// Resolves and fetches an image for `platform` as `docker pull` does: mirrors first for
    /// Docker Hub, falling back to the next endpoint when a mirror fails in any way. Returns the
    /// session pinned to the endpoint that served the manifest, for the blobs.
    pub async fn pull_image(
        &self,
        reference: &Reference,
        creds: &AuthConfig,
        platform: &wharf_types::Platform,
    ) -> Result<(Repository, ResolvedImage), ClientError> {
        let mut repo = self.repository(reference, creds, Access::Pull).await?;
        let wanted = manifest_ref(reference);
        loop {
            match repo.fetch_image(&wanted, platform).await {
                Ok(img) => return Ok((repo, img)),
                Err(e) if repo.endpoint().mirror && !repo.inner.fallbacks.is_empty() => {
                    tracing::debug!(mirror = %repo.endpoint().base, error = %e, "mirror failed, falling back");
                    repo = repo.fallback().await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// All repository names of a registry (`/v2/_catalog`, following `Link` pages).
    pub async fn catalog(
        &self,
        domain: &str,
        creds: &AuthConfig,
        page_size: Option<usize>,
    ) -> Result<Vec<String>, ClientError> {
        let s = self.session(domain, "", domain, creds, false, "registry:catalog:*".to_owned()).await?;
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            repositories: Vec<String>,
        }
        let mut url = format!("{}/v2/_catalog", s.inner.endpoint.base);
        if let Some(n) = page_size {
            url.push_str(&format!("?n={n}"));
        }
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let (page, next): (Page, _) = s.get_json(&url, Subject::Other).await?;
            out.extend(page.repositories);
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(out)
    }
}

/// A session with one repository on one endpoint. Cheap to clone.
#[derive(Clone)]
pub struct Repository {
    inner: Arc<RepoInner>,
}

struct RepoInner {
    client: Client,
    endpoint: Endpoint,
    /// Endpoints after this one (the official registry after its mirrors).
    fallbacks: Vec<Endpoint>,
    name: String,
    familiar: String,
    creds: AuthConfig,
    /// `repository:<name>:pull[,push]`.
    scope: String,
    challenge: Mutex<Option<Challenge>>,
}

/// What a failed response was about, to word the error.
pub(crate) enum Subject<'a> {
    Manifest(&'a str),
    Blob(&'a wharf_types::Digest),
    Repository,
    Other,
}

impl Repository {
    /// The endpoint this session talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// A session with the same repository on the next endpoint (after a mirror failed).
    pub async fn fallback(&self) -> Result<Repository, ClientError> {
        let endpoints = self.inner.fallbacks.clone();
        let template = RepoInner {
            client: self.inner.client.clone(),
            endpoint: self.inner.endpoint.clone(),
            fallbacks: Vec::new(),
            name: self.inner.name.clone(),
            familiar: self.inner.familiar.clone(),
            creds: self.inner.creds.clone(),
            scope: self.inner.scope.clone(),
            challenge: Mutex::new(None),
        };
        self.inner.client.open_endpoints(template, endpoints).await
    }

    /// The repository path (`library/busybox`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub(crate) fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{}", self.inner.endpoint.base, self.inner.name, rest)
    }

    fn policy(&self) -> &RetryPolicy {
        &self.inner.client.inner.config.retry
    }

    /// `name:tag` or `name@digest` as the user would write it.
    pub(crate) fn display_ref(&self, reference: &str) -> String {
        if reference.contains(':') {
            format!("{}@{reference}", self.inner.familiar)
        } else {
            format!("{}:{reference}", self.inner.familiar)
        }
    }

    async fn authorization(&self, url: &str, extra_scopes: &[String]) -> Result<Option<HeaderValue>, ClientError> {
        if origin(url) != origin(&self.inner.endpoint.base) {
            return Ok(None);
        }
        let challenge = self.inner.challenge.lock().expect("poisoned").clone();
        let creds = &self.inner.creds;
        let value = match challenge {
            None => return Ok(None),
            Some(Challenge::Basic { .. }) => match creds.user_password() {
                Some((u, p)) => format!(
                    "Basic {}",
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{u}:{p}"))
                ),
                None => return Ok(None),
            },
            Some(Challenge::Bearer { .. }) if !creds.registrytoken.is_empty() => {
                format!("Bearer {}", creds.registrytoken)
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let scopes = self.scopes(extra_scopes);
                let client = &self.inner.client.inner;
                let token = match client.tokens.get(&realm, &service, &scopes, creds) {
                    Some(t) => t,
                    None => {
                        let t = fetch_token(
                            &client.transport,
                            &realm,
                            &service,
                            &scopes,
                            creds,
                            false,
                            &client.config.user_agent,
                        )
                        .await?;
                        client.tokens.put(&realm, &service, &scopes, creds, &t);
                        t.token
                    }
                };
                format!("Bearer {token}")
            }
        };
        Ok(HeaderValue::from_str(&value).ok())
    }

    fn scopes(&self, extra: &[String]) -> Vec<String> {
        let mut s = vec![self.inner.scope.clone()];
        s.extend(extra.iter().cloned());
        s
    }

    /// Sends a request with auth, retries and redirects. Returns the response and final URL.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        mut body: ReqBody,
        extra_scopes: &[String],
    ) -> Result<(Response<Incoming>, String), ClientError> {
        let client = &self.inner.client.inner;
        let policy = self.policy().clone();
        let mut attempt = 0;
        let mut reauthed = false;
        loop {
            attempt += 1;
            let mut h = self.inner.client.base_headers();
            h.extend(headers.clone());
            if let Some(a) = self.authorization(url, extra_scopes).await? {
                h.insert(header::AUTHORIZATION, a);
            }
            let replayable = body.replayable();
            let fut = client.transport.send(&method, url, &h, &mut body);
            let res = if replayable {
                tokio::time::timeout(client.config.read_timeout, fut).await.unwrap_or_else(|_| {
                    Err(ClientError::Transport {
                        method: go_method(&method),
                        url: url.to_owned(),
                        message: "timeout awaiting response headers".to_owned(),
                    })
                })
            } else {
                fut.await
            };
            let can_retry = replayable && attempt < policy.max_attempts;
            let resp = match res {
                Err(e) if can_retry && e.is_transient() => {
                    let d = policy.delay(attempt);
                    tracing::debug!(%url, error = %e, delay = ?d, "retrying");
                    tokio::time::sleep(d).await;
                    continue;
                }
                Err(e) => return Err(e),
                Ok(r) => r,
            };
            let status = resp.0.status();
            if status == StatusCode::UNAUTHORIZED && replayable && !reauthed {
                if let Some(c) = parse_challenges(resp.0.headers()) {
                    reauthed = true;
                    if let Challenge::Bearer { realm, service, .. } = &c {
                        client.tokens.forget(realm, service, &self.scopes(extra_scopes), &self.inner.creds);
                    }
                    let had = self.inner.challenge.lock().expect("poisoned").replace(c);
                    if had.is_some() || !self.inner.creds.is_empty() {
                        continue;
                    }
                }
                return Ok(resp);
            }
            let retry_status = status == StatusCode::TOO_MANY_REQUESTS
                || (status.is_server_error()
                    && status != StatusCode::NOT_IMPLEMENTED
                    && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED);
            if retry_status && can_retry {
                let d = retry_after(resp.0.headers())
                    .map(|d| d.min(policy.max_delay))
                    .unwrap_or_else(|| policy.delay(attempt));
                tracing::debug!(%url, %status, delay = ?d, "retrying");
                tokio::time::sleep(d).await;
                continue;
            }
            return Ok(resp);
        }
    }

    /// Turns an unsuccessful response into an error worded for `subject`.
    pub(crate) async fn status_error(
        &self,
        method: &Method,
        url: &str,
        resp: Response<Incoming>,
        subject: Subject<'_>,
    ) -> ClientError {
        let status = resp.status();
        let errors = read_errors(resp).await;
        let message = render_errors(&errors, status);
        let method = go_method(method);
        let url = url.to_owned();
        match status {
            StatusCode::UNAUTHORIZED => ClientError::Unauthorized { method, url, message },
            StatusCode::FORBIDDEN => ClientError::Denied { method, url, message },
            StatusCode::TOO_MANY_REQUESTS => ClientError::TooManyRequests { method, url, message },
            StatusCode::NOT_FOUND => match subject {
                Subject::Manifest(r) => ClientError::ManifestNotFound {
                    reference: self.display_ref(r),
                    message: if errors.is_empty() { "manifest unknown".to_owned() } else { message },
                },
                Subject::Blob(d) => ClientError::BlobNotFound { digest: d.clone(), message },
                Subject::Repository => ClientError::RepositoryNotFound { name: self.inner.familiar.clone(), message },
                Subject::Other => ClientError::Status { method, url, status: 404, message },
            },
            _ => ClientError::Status { method, url, status: status.as_u16(), message },
        }
    }

    /// GET a JSON document; returns it and the next page's URL from `Link`.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        subject: Subject<'_>,
    ) -> Result<(T, Option<String>), ClientError> {
        let (resp, final_url) = self.send(Method::GET, url, HeaderMap::new(), ReqBody::Empty, &[]).await?;
        if !resp.status().is_success() {
            return Err(self.status_error(&Method::GET, url, resp, subject).await);
        }
        let next = next_link(resp.headers(), &final_url);
        let bytes = transport::read_body(resp, 16 << 20, &Method::GET, url).await?.map_err(|_| {
            ClientError::InvalidResponse {
                method: "Get".to_owned(),
                url: url.to_owned(),
                what: "response too large".to_owned(),
            }
        })?;
        let v = serde_json::from_slice(&bytes).map_err(|e| ClientError::InvalidResponse {
            method: "Get".to_owned(),
            url: url.to_owned(),
            what: e.to_string(),
        })?;
        Ok((v, next))
    }
}

/// `Retry-After`: seconds or an HTTP date.
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// The `rel="next"` URL of a `Link` header, resolved against `base`.
fn next_link(h: &HeaderMap, base: &str) -> Option<String> {
    for v in h.get_all(header::LINK) {
        let v = v.to_str().ok()?;
        for part in v.split(',') {
            let (target, params) = part.split_once(';').unwrap_or((part, ""));
            if params.contains("rel=\"next\"") || params.contains("rel=next") {
                let t = target.trim().trim_start_matches('<').trim_end_matches('>');
                return Some(transport::resolve_location(base, t));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_and_retry_after() {
        let mut h = HeaderMap::new();
        h.insert(header::LINK, HeaderValue::from_static("</v2/x/tags/list?last=b&n=2>; rel=\"next\""));
        assert_eq!(
            next_link(&h, "http://r:1/v2/x/tags/list?n=2").as_deref(),
            Some("http://r:1/v2/x/tags/list?last=b&n=2")
        );
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
    }
}
