//! The client against a misbehaving registry written here: truncated bodies, wrong content,
//! 500s and 429s, a connection dropped mid-blob (resumed with Range), redirects to another host
//! (no Authorization leaks), oversized and unknown manifests.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use common::*;
use wharf_registry::client::{Access, AuthConfig, ClientError};
use wharf_types::oci::{Descriptor, media_type};
use wharf_types::{Classify, ErrorKind};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Content-Length says all, the connection dies after half; every time.
    TruncateAlways,
    /// Chunked, ends cleanly after half; every time.
    ShortAlways,
    /// Same size, other bytes.
    WrongContent,
    /// 500 once, then fine.
    ServerErrorOnce,
    /// 429 with Retry-After: 1 once, then fine.
    TooManyOnce,
    /// Dies after half once; honours Range afterwards.
    DropOnceThenRange,
    /// 307 to another host.
    Redirect,
    /// Always 503.
    Unavailable,
    /// Sends half, then stalls forever once; honours Range afterwards.
    StallOnceThenRange,
}

struct Fault {
    mode: Mode,
    data: Bytes,
    hits: AtomicUsize,
    ranges: Mutex<Vec<String>>,
    auth_seen: Mutex<Vec<Option<String>>>,
    redirect_to: Mutex<String>,
    manifest: Mutex<(String, Bytes)>,
}

/// Sends half the data, waits so that it reaches the client, then kills the connection.
fn half_then_error(data: Bytes) -> Body {
    use futures_util::StreamExt;
    let half = data.slice(..data.len() / 2);
    let items = vec![Ok(half), Err(std::io::Error::other("connection dropped by the test"))];
    Body::from_stream(futures_util::stream::iter(items).then(|item| async move {
        if item.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        item
    }))
}

async fn blob(State(f): State<Arc<Fault>>, headers: HeaderMap) -> Response {
    let n = f.hits.fetch_add(1, Ordering::SeqCst);
    f.auth_seen.lock().unwrap().push(headers.get("authorization").map(|v| v.to_str().unwrap().to_owned()));
    let range = headers.get("range").map(|v| v.to_str().unwrap().to_owned());
    if let Some(r) = &range {
        f.ranges.lock().unwrap().push(r.clone());
    }
    let len = f.data.len().to_string();
    let full = || ([("content-length", len.clone())], f.data.clone()).into_response();
    match f.mode {
        Mode::TruncateAlways => ([("content-length", len)], half_then_error(f.data.clone())).into_response(),
        Mode::ShortAlways => Body::from_stream(futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
            f.data.slice(..f.data.len() / 2),
        )]))
        .into_response(),
        Mode::WrongContent => {
            let mut v = f.data.to_vec();
            v[0] ^= 0xff;
            ([("content-length", len)], v).into_response()
        }
        Mode::ServerErrorOnce if n == 0 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::TooManyOnce if n == 0 => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response(),
        Mode::DropOnceThenRange if n == 0 => {
            ([("content-length", len)], half_then_error(f.data.clone())).into_response()
        }
        Mode::StallOnceThenRange if n == 0 => {
            use futures_util::StreamExt;
            let half = f.data.slice(..f.data.len() / 2);
            let stalled =
                futures_util::stream::iter(vec![Ok::<_, std::io::Error>(half)]).chain(futures_util::stream::pending());
            ([("content-length", len)], Body::from_stream(stalled)).into_response()
        }
        Mode::DropOnceThenRange | Mode::StallOnceThenRange => {
            let start: usize = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            let body = f.data.slice(start..);
            (
                StatusCode::PARTIAL_CONTENT,
                [
                    ("content-range", format!("bytes {start}-{}/{}", f.data.len() - 1, f.data.len())),
                    ("content-length", body.len().to_string()),
                ],
                body,
            )
                .into_response()
        }
        Mode::Redirect => {
            (StatusCode::TEMPORARY_REDIRECT, [("location", f.redirect_to.lock().unwrap().clone())]).into_response()
        }
        Mode::Unavailable => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        _ => full(),
    }
}

async fn manifest(State(f): State<Arc<Fault>>) -> Response {
    let (ct, body) = f.manifest.lock().unwrap().clone();
    ([("content-type", ct)], body).into_response()
}

async fn ping(headers: HeaderMap) -> Response {
    // Basic auth, so the client attaches credentials to its own origin.
    if headers.get("authorization").is_some() {
        StatusCode::OK.into_response()
    } else {
        (StatusCode::UNAUTHORIZED, [("www-authenticate", "Basic realm=\"faults\"")]).into_response()
    }
}

async fn start(f: Arc<Fault>) -> String {
    let app = Router::new()
        .route("/v2/", get(ping))
        .route("/v2/f/blobs/{d}", get(blob))
        .route("/v2/f/manifests/{r}", get(manifest))
        .route("/elsewhere", get(blob))
        .with_state(f);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    addr.to_string()
}

fn fault(mode: Mode, data: Bytes) -> Arc<Fault> {
    Arc::new(Fault {
        mode,
        data,
        hits: AtomicUsize::new(0),
        ranges: Mutex::default(),
        auth_seen: Mutex::default(),
        redirect_to: Mutex::default(),
        manifest: Mutex::new((String::new(), Bytes::new())),
    })
}

fn creds() -> AuthConfig {
    AuthConfig::basic("u", "p")
}

async fn fetch(mode: Mode) -> (Arc<Fault>, Result<Vec<u8>, String>, Bytes) {
    let data = Bytes::from(noise(99, 300_000));
    let f = fault(mode, data.clone());
    let host = start(f.clone()).await;
    let c = client();
    let repo = open(&c, &host, "f", &creds(), Access::Pull).await;
    let d = Descriptor::new(media_type::OCI_LAYER_GZIP, sha(&data), data.len() as u64);
    let res = read_blob(&repo, &d).await;
    (f, res, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_body_fails_after_retries() {
    let (f, res, _) = fetch(Mode::TruncateAlways).await;
    let err = res.unwrap_err();
    assert!(err.contains("reading the blob body"), "{err}");
    assert_eq!(f.hits.load(Ordering::SeqCst), 4, "one try plus three resumes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_body_is_a_size_error() {
    let (_, res, _) = fetch(Mode::ShortAlways).await;
    let err = res.unwrap_err();
    assert!(err.starts_with("unexpected EOF reading sha256:"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_is_a_digest_error() {
    let data = Bytes::from(noise(98, 10_000));
    let f = fault(Mode::WrongContent, data.clone());
    let host = start(f.clone()).await;
    let c = client();
    let repo = open(&c, &host, "f", &creds(), Access::Pull).await;
    let d = Descriptor::new(media_type::OCI_LAYER_GZIP, sha(&data), data.len() as u64);
    use futures_util::StreamExt;
    let mut s = repo.fetch_blob(&d).await.unwrap();
    let mut last = None;
    while let Some(item) = s.next().await {
        last = Some(item);
    }
    match last {
        Some(Err(e @ ClientError::DigestMismatch { .. })) => {
            assert_eq!(e.kind(), ErrorKind::Internal);
            assert!(e.to_string().starts_with("digest mismatch for sha256:"));
        }
        other => panic!("expected a digest mismatch as the last item, got {other:?}"),
    }
    // And as an AsyncRead: the error surfaces instead of EOF.
    let mut r = repo.fetch_blob(&d).await.unwrap().into_async_read();
    let mut buf = Vec::new();
    let err = tokio::io::AsyncReadExt::read_to_end(&mut r, &mut buf).await.unwrap_err();
    let inner = err.get_ref().unwrap().downcast_ref::<ClientError>().unwrap();
    assert!(matches!(inner, ClientError::DigestMismatch { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_is_retried() {
    let (f, res, data) = fetch(Mode::ServerErrorOnce).await;
    assert_eq!(res.unwrap(), data.to_vec());
    assert_eq!(f.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_waits_for_retry_after() {
    let t = Instant::now();
    let (f, res, data) = fetch(Mode::TooManyOnce).await;
    assert_eq!(res.unwrap(), data.to_vec());
    assert_eq!(f.hits.load(Ordering::SeqCst), 2);
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_503_gives_up_with_the_status() {
    let (f, res, _) = fetch(Mode::Unavailable).await;
    let err = res.unwrap_err();
    assert!(err.contains("503 Service Unavailable"), "{err}");
    assert_eq!(f.hits.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_resumes_with_range() {
    let (f, res, data) = fetch(Mode::DropOnceThenRange).await;
    assert_eq!(res.unwrap(), data.to_vec());
    assert_eq!(f.hits.load(Ordering::SeqCst), 2);
    assert_eq!(*f.ranges.lock().unwrap(), [format!("bytes={}-", data.len() / 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_to_another_host_drops_authorization() {
    let data = Bytes::from(noise(97, 50_000));
    let other = fault(Mode::ServerErrorOnce, data.clone());
    other.hits.store(1, Ordering::SeqCst); // serve plainly
    let other_host = start(other.clone()).await;
    let main = fault(Mode::Redirect, data.clone());
    *main.redirect_to.lock().unwrap() = format!("http://{other_host}/elsewhere");
    let host = start(main.clone()).await;
    let c = client();
    let repo = open(&c, &host, "f", &creds(), Access::Pull).await;
    let d = Descriptor::new(media_type::OCI_LAYER_GZIP, sha(&data), data.len() as u64);
    assert_eq!(read_blob(&repo, &d).await.unwrap(), data.to_vec());
    assert!(
        main.auth_seen.lock().unwrap()[0].as_deref().is_some_and(|a| a.starts_with("Basic ")),
        "the registry itself gets credentials"
    );
    assert_eq!(*other.auth_seen.lock().unwrap(), [None], "no credentials leak to another host");
}

async fn manifest_case(content_type: &str, body: Bytes, reference: &str) -> ClientError {
    let f = fault(Mode::WrongContent, Bytes::new());
    *f.manifest.lock().unwrap() = (content_type.to_owned(), body);
    let host = start(f).await;
    let c = client();
    let repo = open(&c, &host, "f", &creds(), Access::Pull).await;
    repo.fetch_manifest(reference).await.unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_manifests_are_refused_clearly() {
    let big = Bytes::from(vec![b' '; 5 << 20]);
    let e = manifest_case(media_type::OCI_MANIFEST, big, "latest").await;
    assert!(matches!(e, ClientError::ManifestTooLarge { .. }), "{e}");
    assert!(e.to_string().contains("larger than the 4194304 byte limit"), "{e}");

    let e =
        manifest_case("application/vnd.example.unknown+json", Bytes::from_static(br#"{"schemaVersion":2}"#), "latest")
            .await;
    assert!(matches!(e, ClientError::UnsupportedMediaType { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);

    let e = manifest_case(
        media_type::DOCKER_MANIFEST_V1_SIGNED,
        Bytes::from_static(br#"{"schemaVersion":1,"fsLayers":[]}"#),
        "latest",
    )
    .await;
    assert!(matches!(e, ClientError::UnsupportedMediaType { .. }), "{e}");

    let body = Bytes::from_static(
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
    );
    let wrong = sha(b"something else").to_string();
    let e = manifest_case(media_type::OCI_INDEX, body, &wrong).await;
    assert!(matches!(e, ClientError::DigestMismatch { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha512_descriptors_are_verified() {
    use sha2::{Digest as _, Sha512};
    let data = Bytes::from(noise(96, 20_000));
    let f = fault(Mode::ServerErrorOnce, data.clone());
    f.hits.store(1, Ordering::SeqCst);
    let host = start(f).await;
    let c = client();
    let repo = open(&c, &host, "f", &creds(), Access::Pull).await;
    let d512: wharf_types::Digest = format!("sha512:{}", hex::encode(Sha512::digest(&data))).parse().unwrap();
    let d = Descriptor::new(media_type::OCI_LAYER_GZIP, d512, data.len() as u64);
    assert_eq!(read_blob(&repo, &d).await.unwrap(), data.to_vec());
    let wrong: wharf_types::Digest = format!("sha512:{}", "ab".repeat(64)).parse().unwrap();
    let d = Descriptor::new(media_type::OCI_LAYER_GZIP, wrong, data.len() as u64);
    assert!(read_blob(&repo, &d).await.unwrap_err().starts_with("digest mismatch"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_body_times_out_and_resumes() {
    let data = Bytes::from(noise(95, 200_000));
    let f = fault(Mode::StallOnceThenRange, data.clone());
    let host = start(f.clone()).await;
    let c = wharf_registry::client::Client::new(wharf_registry::client::RegistryConfig {
        read_timeout: Duration::from_millis(300),
        ..Default::default()
    });
    let repo = open(&c, &host, "f", &creds(), Access::Pull).await;
    let d = Descriptor::new(media_type::OCI_LAYER_GZIP, sha(&data), data.len() as u64);
    let t = Instant::now();
    assert_eq!(read_blob(&repo, &d).await.unwrap(), data.to_vec());
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(*f.ranges.lock().unwrap(), [format!("bytes={}-", data.len() / 2)]);
}
