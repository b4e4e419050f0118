//! HTTP/1.1 to registries: TCP (with Go-worded dial errors), TLS through rustls with the `ring`
//! provider (system roots plus certs.d, client certificates, no verification for insecure
//! registries), connection pooling, and redirects that drop `Authorization` when they change
//! origin.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::config::RegistryConfig;
use super::error::{ClientError, DialError, RegistryErrorEntry};

pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;
pub(crate) type BoxBody = UnsyncBoxBody<Bytes, BoxError>;

/// A request body that can be sent again (empty or in memory) or only once (a stream).
pub(crate) enum ReqBody {
    Empty,
    Full(Bytes),
    Stream(Option<BoxBody>),
}

impl ReqBody {
    pub(crate) fn replayable(&self) -> bool {
        !matches!(self, ReqBody::Stream(_))
    }

    fn take(&mut self) -> BoxBody {
        match self {
            ReqBody::Empty => Empty::new().map_err(|e| match e {}).boxed_unsync(),
            ReqBody::Full(b) => Full::new(b.clone()).map_err(|e| match e {}).boxed_unsync(),
            ReqBody::Stream(s) => s.take().unwrap_or_else(|| Empty::new().map_err(|e| match e {}).boxed_unsync()),
        }
    }
}

/// Go's spelling of the method in `url.Error` (`Get "https://…"`).
pub(crate) fn go_method(m: &Method) -> String {
    let s = m.as_str();
    let mut out = s[..1].to_owned();
    out.push_str(&s[1..].to_lowercase());
    out
}

/// `scheme://host[:port]` of a URL.
pub(crate) fn origin(url: &str) -> &str {
    let after = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after..].find('/') {
        Some(j) => &url[..after + j],
        None => url,
    }
}

/// Resolves a `Location` (absolute URL, absolute path, or relative path) against `base`.
pub(crate) fn resolve_location(base: &str, loc: &str) -> String {
    if loc.contains("://") {
        loc.to_owned()
    } else if loc.starts_with('/') {
        format!("{}{}", origin(base), loc)
    } else {
        let path_end = base.find('?').unwrap_or(base.len());
        let dir = match base[..path_end].rfind('/') {
            Some(i) => &base[..=i],
            None => base,
        };
        format!("{dir}{loc}")
    }
}

/// The shared HTTP client.
#[derive(Clone)]
pub(crate) struct Transport {
    client: HyperClient<Connector, BoxBody>,
}

impl Transport {
    pub(crate) fn new(config: Arc<RegistryConfig>) -> Self {
        let connector = Connector { inner: Arc::new(ConnectorInner { config, tls: Mutex::default() }) };
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .build(connector);
        Self { client }
    }

    /// One request, no retries, no redirects.
    pub(crate) async fn send_once(
        &self,
        method: &Method,
        url: &str,
        headers: &HeaderMap,
        body: &mut ReqBody,
    ) -> Result<Response<Incoming>, ClientError> {
        let uri: Uri = url.parse().map_err(|_| ClientError::InvalidResponse {
            method: go_method(method),
            url: url.to_owned(),
            what: "not a valid URL".to_owned(),
        })?;
        let mut req = Request::builder().method(method.clone()).uri(uri);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req.body(body.take()).expect("valid request parts");
        self.client.request(req).await.map_err(|e| map_hyper_error(method, url, &e))
    }

    /// A request following redirects (GET and HEAD only); `Authorization` is dropped when a
    /// redirect leaves the original origin. Returns the response and the final URL.
    pub(crate) async fn send(
        &self,
        method: &Method,
        url: &str,
        headers: &HeaderMap,
        body: &mut ReqBody,
    ) -> Result<(Response<Incoming>, String), ClientError> {
        let mut url = url.to_owned();
        let first_origin = origin(&url).to_owned();
        let mut headers = headers.clone();
        for _ in 0..10 {
            let resp = self.send_once(method, &url, &headers, body).await?;
            let follow = matches!(*method, Method::GET | Method::HEAD)
                && resp.status().is_redirection()
                && resp.status() != http::StatusCode::NOT_MODIFIED;
            let loc = resp.headers().get(header::LOCATION).and_then(|v| v.to_str().ok());
            match (follow, loc) {
                (true, Some(loc)) => {
                    url = resolve_location(&url, loc);
                    if origin(&url) != first_origin {
                        headers.remove(header::AUTHORIZATION);
                    }
                }
                _ => return Ok((resp, url)),
            }
        }
        Err(ClientError::InvalidResponse {
            method: go_method(method),
            url,
            what: "stopped after 10 redirects".to_owned(),
        })
    }
}

fn map_hyper_error(method: &Method, url: &str, e: &hyper_util::client::legacy::Error) -> ClientError {
    let mut src: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(s) = src {
        if let Some(d) = s.downcast_ref::<DialError>() {
            return ClientError::Connect { method: go_method(method), url: url.to_owned(), source: d.clone() };
        }
        src = s.source();
    }
    let mut message = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    ClientError::Transport { method: go_method(method), url: url.to_owned(), message }
}

/// Reads a whole body, at most `limit` bytes.
pub(crate) async fn read_body(
    resp: Response<Incoming>,
    limit: usize,
    method: &Method,
    url: &str,
) -> Result<Result<Bytes, usize>, ClientError> {
    let mut body = resp.into_body();
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ClientError::Transport {
            method: go_method(method),
            url: url.to_owned(),
            message: e.to_string(),
        })?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Ok(Err(out.len() + data.len()));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Ok(out.freeze()))
}

/// The distribution error entries of an error response (empty when the body is not one).
pub(crate) async fn read_errors(resp: Response<Incoming>) -> Vec<RegistryErrorEntry> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<RegistryErrorEntry>,
    }
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(d) = frame.into_data() {
            out.extend_from_slice(&d);
            if out.len() > 64 * 1024 {
                break;
            }
        }
    }
    serde_json::from_slice::<Body>(&out).map(|b| b.errors).unwrap_or_default()
}

// ---- the connector ----

#[derive(Clone)]
struct Connector {
    inner: Arc<ConnectorInner>,
}

struct ConnectorInner {
    config: Arc<RegistryConfig>,
    tls: Mutex<HashMap<String, Arc<rustls::ClientConfig>>>,
}

/// A TCP stream, maybe wrapped in TLS.
pub(crate) enum MaybeTls {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Connection for MaybeTls {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for MaybeTls {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.is_write_vectored(),
            MaybeTls::Tls(s) => s.is_write_vectored(),
        }
    }
}

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<MaybeTls>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, DialError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { inner.connect(uri).await.map(TokioIo::new) })
    }
}

/// Go's wording of a socket error (`connection refused`, not `Connection refused (os error 111)`).
fn go_errno(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset by peer".to_owned(),
        io::ErrorKind::TimedOut => "i/o timeout".to_owned(),
        io::ErrorKind::HostUnreachable => "no route to host".to_owned(),
        io::ErrorKind::NetworkUnreachable => "network is unreachable".to_owned(),
        _ => {
            let s = e.to_string().to_lowercase();
            match s.find(" (os error") {
                Some(i) => s[..i].to_owned(),
                None => s,
            }
        }
    }
}

/// The Go wording of a handshake failure, and whether trying again could help.
fn tls_message(e: &io::Error) -> (String, bool) {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) => {
            ("http: server gave HTTP response to HTTPS client".to_owned(), false)
        }
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
            ("tls: failed to verify certificate: x509: certificate signed by unknown authority".to_owned(), false)
        }
        Some(rustls::Error::InvalidCertificate(c)) => {
            (format!("tls: failed to verify certificate: x509: {c:?}"), false)
        }
        Some(r) => (format!("tls: {r}"), false),
        None if e.kind() == io::ErrorKind::UnexpectedEof => ("EOF".to_owned(), true),
        None => (format!("tls: {}", go_errno(e)), true),
    }
}

impl ConnectorInner {
    async fn connect(&self, uri: Uri) -> Result<MaybeTls, DialError> {
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().ok_or_else(|| DialError::permanent(format!("no host in {uri}")))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|_| DialError::transient(format!("dial tcp: lookup {bare}: no such host")))?
            .collect();
        if addrs.is_empty() {
            return Err(DialError::transient(format!("dial tcp: lookup {bare}: no such host")));
        }
        let mut last = String::new();
        let mut stream = None;
        for addr in addrs {
            match tokio::time::timeout(self.config.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    stream = Some(s);
                    break;
                }
                Ok(Err(e)) => last = format!("dial tcp {addr}: connect: {}", go_errno(&e)),
                Err(_) => last = format!("dial tcp {addr}: i/o timeout"),
            }
        }
        let tcp = stream.ok_or(DialError::transient(last))?;
        let _ = tcp.set_nodelay(true);
        if !https {
            return Ok(MaybeTls::Plain(tcp));
        }
        let host_port = match uri.port_u16() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let cfg = self.tls_config(&host_port).map_err(|e| DialError::permanent(e.to_string()))?;
        let name = ServerName::try_from(bare.to_owned())
            .map_err(|_| DialError::permanent(format!("tls: invalid server name {bare}")))?;
        let tls = tokio_rustls::TlsConnector::from(cfg).connect(name, tcp).await.map_err(|e| {
            let (message, retryable) = tls_message(&e);
            DialError { message, retryable }
        })?;
        Ok(MaybeTls::Tls(Box::new(tls)))
    }

    fn tls_config(&self, host_port: &str) -> Result<Arc<rustls::ClientConfig>, ClientError> {
        if let Some(c) = self.tls.lock().expect("poisoned").get(host_port) {
            return Ok(c.clone());
        }
        let cfg = Arc::new(build_tls_config(&self.config, host_port)?);
        self.tls.lock().expect("poisoned").insert(host_port.to_owned(), cfg.clone());
        Ok(cfg)
    }
}

fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

fn system_roots() -> Arc<RootCertStore> {
    static R: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    R.get_or_init(|| {
        let mut store = RootCertStore::empty();
        let res = rustls_native_certs::load_native_certs();
        store.add_parsable_certificates(res.certs);
        Arc::new(store)
    })
    .clone()
}

/// The TLS configuration for one registry host: system roots plus `<certs_dir>/<host>/*.crt`,
/// a client certificate from `*.cert` + `*.key`, and no verification for insecure hosts.
pub(crate) fn build_tls_config(config: &RegistryConfig, host_port: &str) -> Result<rustls::ClientConfig, ClientError> {
    use rustls::pki_types::pem::PemObject;
    let dir = config.certs_dir.join(host_port);
    let tls_err = |source| ClientError::Tls { host: host_port.to_owned(), source };
    let mut roots = (*system_roots()).clone();
    let mut client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> = None;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut names: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        names.sort();
        for p in names {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext == "crt" {
                for c in load_certs(&p)? {
                    roots.add(c).map_err(tls_err)?;
                }
            } else if ext == "cert" && client_cert.is_none() {
                let key = p.with_extension("key");
                let certs = load_certs(&p)?;
                let k = PrivateKeyDer::from_pem_file(&key)
                    .map_err(|e| ClientError::Certs { path: key.clone(), source: io::Error::other(e.to_string()) })?;
                client_cert = Some((certs, k));
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?;
    let builder = if config.is_insecure(host_port) {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
    } else {
        builder.with_root_certificates(roots)
    };
    let mut cfg = match client_cert {
        Some((certs, key)) => builder.with_client_auth_cert(certs, key).map_err(tls_err)?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

fn load_certs(p: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_file_iter(p)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ClientError::Certs { path: p.to_owned(), source: io::Error::other(e.to_string()) })
}

/// Accepts any server certificate (still checking handshake signatures): Docker's
/// `InsecureSkipVerify` for insecure registries.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            resolve_location("http://a:1/v2/x/blobs/uploads/", "/v2/x/blobs/uploads/u?s=1"),
            "http://a:1/v2/x/blobs/uploads/u?s=1"
        );
        assert_eq!(resolve_location("http://a:1/v2/x", "https://b/y"), "https://b/y");
        assert_eq!(resolve_location("http://a:1/v2/x/blobs/uploads/?q=1", "u"), "http://a:1/v2/x/blobs/uploads/u");
        assert_eq!(origin("http://a:1/v2/x"), "http://a:1");
        assert_eq!(go_method(&Method::GET), "Get");
    }
}
