//! The server on the wire: hostile names, wrong digests, size limits, ranges, upload sessions,
//! manifest validation, referrers, deletes, catalog pagination, gc, TLS.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use wharf_registry::client::{Access, AuthConfig, PushBlobOptions};
use wharf_registry::server::AuthMode;
use wharf_registry::server::gc::{GcOptions, collect};
use wharf_types::oci::media_type;
use wharf_types::{Classify, Platform};

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, k: &str) -> Option<&str> {
        self.headers.iter().find(|(a, _)| a.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str())
    }
    fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["errors"][0]["code"].as_str().unwrap_or("").to_owned()
    }
}

/// One HTTP/1.1 request written by hand, so paths reach the server exactly as given.
fn raw(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    Resp { status, headers, body: out[split + 4..].to_vec() }
}

fn zero_digest() -> String {
    format!("sha256:{}", "0".repeat(64))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_refused() {
    let srv = TestServer::start(AuthMode::None, None).await;
    let addr = srv.addr;
    let paths = [
        "/v2/../etc/manifests/latest",
        "/v2/a/../../etc/manifests/latest",
        "/v2//etc/manifests/latest",
        "/v2/UPPER/manifests/latest",
        "/v2/a//b/tags/list",
        "/v2/%2e%2e/manifests/latest",
        "/v2/a/_manifests/manifests/latest",
        "/v2/.hidden/blobs/uploads/",
        "/v2/a-/tags/list",
    ];
    for p in paths {
        for m in ["GET", "POST", "PUT"] {
            let r = tokio::task::spawn_blocking(move || raw(addr, m, p, &[], b"{}")).await.unwrap();
            assert_eq!(r.status, 400, "{m} {p}");
            assert_eq!(r.code(), "NAME_INVALID", "{m} {p}");
        }
    }
    let repos = std::fs::read_dir(srv.root.path().join("repositories")).unwrap().count();
    assert_eq!(repos, 0);
    assert!(!srv.root.path().parent().unwrap().join("etc/_manifests").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_digest_uploads_store_nothing() {
    let srv = TestServer::start(AuthMode::None, None).await;
    let addr = srv.addr;
    let data = noise(7, 5000);
    let d = zero_digest();
    let r =
        tokio::task::spawn_blocking(move || raw(addr, "POST", &format!("/v2/w/blobs/uploads/?digest={d}"), &[], &data))
            .await
            .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "DIGEST_INVALID");

    // Session upload: POST, PATCH, PUT with the wrong digest.
    let r = tokio::task::spawn_blocking(move || {
        let start = raw(addr, "POST", "/v2/w/blobs/uploads/", &[], b"");
        assert_eq!(start.status, 202);
        assert_eq!(start.header("Range"), Some("0-0"));
        let loc = start.header("Location").unwrap().to_owned();
        let p = raw(addr, "PATCH", &loc, &[("Content-Range", "0-2")], b"abc");
        assert_eq!(p.status, 202);
        assert_eq!(p.header("Range"), Some("0-2"));
        raw(addr, "PUT", &format!("{loc}?digest={}", zero_digest()), &[], b"")
    })
    .await
    .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "DIGEST_INVALID");
    let blobs: Vec<_> = walk(&srv.root.path().join("blobs"));
    assert!(blobs.is_empty(), "{blobs:?}");
    assert_eq!(std::fs::read_dir(srv.root.path().join("_uploads")).unwrap().count(), 0);
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_sessions_ranges_and_limits() {
    let srv = TestServer::start(AuthMode::None, Some(10_000)).await;
    let addr = srv.addr;
    tokio::task::spawn_blocking(move || {
        // Too large, declared and streamed.
        let big = noise(1, 20_000);
        let d = sha(&big).to_string();
        let r = raw(addr, "POST", &format!("/v2/l/blobs/uploads/?digest={d}"), &[], &big);
        assert_eq!((r.status, r.code().as_str()), (413, "SIZE_INVALID"));

        // Chunks: out-of-order range → 416; status; resume; finish; Range GET.
        let data = noise(2, 9_000);
        let d = sha(&data).to_string();
        let start = raw(addr, "POST", "/v2/l/blobs/uploads/", &[], b"");
        let loc = start.header("Location").unwrap().to_owned();
        let r = raw(addr, "PATCH", &loc, &[("Content-Range", "0-3999")], &data[..4000]);
        assert_eq!(r.status, 202);
        let loc = r.header("Location").unwrap().to_owned();
        let r = raw(addr, "PATCH", &loc, &[("Content-Range", "5000-5999")], &data[5000..6000]);
        assert_eq!((r.status, r.code().as_str()), (416, "RANGE_INVALID"));
        assert_eq!(r.header("Range"), Some("0-3999"));
        let r = raw(addr, "GET", &loc, &[], b"");
        assert_eq!(r.status, 204);
        assert_eq!(r.header("Range"), Some("0-3999"));
        let r = raw(addr, "PATCH", &loc, &[("Content-Range", "4000-8999")], &data[4000..]);
        assert_eq!(r.status, 202);
        let r = raw(addr, "PUT", &format!("{loc}?digest={d}"), &[], b"");
        assert_eq!(r.status, 201);
        assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
        assert_eq!(r.header("Location"), Some(format!("/v2/l/blobs/{d}").as_str()));

        let r = raw(addr, "GET", &format!("/v2/l/blobs/{d}"), &[("Range", "bytes=100-199")], b"");
        assert_eq!(r.status, 206);
        assert_eq!(r.header("Content-Range"), Some("bytes 100-199/9000"));
        assert_eq!(r.body, &data[100..200]);
        let r = raw(addr, "GET", &format!("/v2/l/blobs/{d}"), &[("Range", "bytes=9000-")], b"");
        assert_eq!(r.status, 416);
        let r = raw(addr, "HEAD", &format!("/v2/l/blobs/{d}"), &[], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Content-Length"), Some("9000"));
        // Another repository cannot read it without a mount.
        let r = raw(addr, "GET", &format!("/v2/m/blobs/{d}"), &[], b"");
        assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
        let r = raw(addr, "POST", &format!("/v2/m/blobs/uploads/?mount={d}&from=l"), &[], b"");
        assert_eq!(r.status, 201);
        let r = raw(addr, "GET", &format!("/v2/m/blobs/{d}"), &[], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, data);

        // Cancel, then the session is gone.
        let start = raw(addr, "POST", "/v2/l/blobs/uploads/", &[], b"");
        let loc = start.header("Location").unwrap().to_owned();
        assert_eq!(raw(addr, "DELETE", &loc, &[], b"").status, 204);
        let r = raw(addr, "GET", &loc, &[], b"");
        assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
        // A session of another repository is unknown here.
        let start = raw(addr, "POST", "/v2/l/blobs/uploads/", &[], b"");
        let id = start.header("Docker-Upload-UUID").unwrap().to_owned();
        let r = raw(addr, "GET", &format!("/v2/m/blobs/uploads/{id}"), &[], b"");
        assert_eq!(r.status, 404);

        // Blob delete.
        assert_eq!(raw(addr, "DELETE", &format!("/v2/m/blobs/{d}"), &[], b"").status, 202);
        assert_eq!(raw(addr, "HEAD", &format!("/v2/m/blobs/{d}"), &[], b"").status, 404);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_are_validated_and_referrers_listed() {
    let srv = TestServer::start(AuthMode::None, None).await;
    let c = client();
    let repo = open(&c, &srv.host(), "v/app", &AuthConfig::default(), Access::Push).await;
    let img = TestImage::generate(40, &[3_000, 4_000], "amd64");
    let addr = srv.addr;

    // Missing blobs → MANIFEST_BLOB_UNKNOWN; junk → MANIFEST_INVALID.
    let m = img.manifest.clone();
    tokio::task::spawn_blocking(move || {
        let ct = ("Content-Type", media_type::DOCKER_MANIFEST);
        let r = raw(addr, "PUT", "/v2/v/app/manifests/x", &[ct], &m);
        assert_eq!((r.status, r.code().as_str()), (400, "MANIFEST_BLOB_UNKNOWN"));
        let r = raw(addr, "PUT", "/v2/v/app/manifests/x", &[ct], b"{not json");
        assert_eq!((r.status, r.code().as_str()), (400, "MANIFEST_INVALID"));
        let r = raw(
            addr,
            "PUT",
            "/v2/v/app/manifests/x",
            &[("Content-Type", "application/x-foo")],
            b"{\"schemaVersion\":2}",
        );
        assert_eq!((r.status, r.code().as_str()), (400, "MANIFEST_INVALID"));
        let r = raw(addr, "PUT", &format!("/v2/v/app/manifests/{}", zero_digest()), &[ct], &m);
        assert_eq!(r.code(), "DIGEST_INVALID");
        let r = raw(addr, "GET", "/v2/v/app/tags/list", &[], b"");
        assert_eq!((r.status, r.code().as_str()), (404, "NAME_UNKNOWN"));
    })
    .await
    .unwrap();

    push_image(&repo, &img, "v1", &PushBlobOptions::default()).await;

    // An artifact whose subject is the image; then the referrers API lists it.
    let (empty_desc, _) = repo.push_blob_bytes(media_type::OCI_EMPTY, Bytes::from_static(b"{}")).await.unwrap();
    let artifact = serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": empty_desc, "layers": [empty_desc],
        "subject": img.descriptor(),
        "annotations": {"org.example": "yes"},
    });
    let body = Bytes::from(serde_json::to_vec(&artifact).unwrap());
    let art_digest = sha(&body);
    let dg = art_digest.to_string();
    let subject = img.manifest_digest.to_string();
    tokio::task::spawn_blocking(move || {
        let r = raw(
            addr,
            "PUT",
            &format!("/v2/v/app/manifests/{dg}"),
            &[("Content-Type", media_type::OCI_MANIFEST)],
            &body,
        );
        assert_eq!(r.status, 201);
        assert_eq!(r.header("OCI-Subject"), Some(subject.as_str()));
        let r = raw(addr, "GET", &format!("/v2/v/app/referrers/{subject}"), &[], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Content-Type"), Some(media_type::OCI_INDEX));
        let idx: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(idx["manifests"][0]["digest"], dg.as_str());
        assert_eq!(idx["manifests"][0]["artifactType"], "application/vnd.example.sbom");
        assert_eq!(idx["manifests"][0]["annotations"]["org.example"], "yes");
        let r = raw(addr, "GET", &format!("/v2/v/app/referrers/{subject}?artifactType=application/other"), &[], b"");
        assert_eq!(r.header("OCI-Filters-Applied"), Some("artifactType"));
        let idx: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(idx["manifests"].as_array().unwrap().len(), 0);

        // Delete the artifact: gone from referrers. Delete a tag, then by digest.
        assert_eq!(raw(addr, "DELETE", &format!("/v2/v/app/manifests/{dg}"), &[], b"").status, 202);
        let r = raw(addr, "GET", &format!("/v2/v/app/referrers/{subject}"), &[], b"");
        let idx: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(idx["manifests"].as_array().unwrap().len(), 0);
        assert_eq!(raw(addr, "DELETE", &format!("/v2/v/app/manifests/{dg}"), &[], b"").status, 404);
    })
    .await
    .unwrap();

    repo.push_manifest("v2", img.media_type, img.manifest.clone()).await.unwrap();
    repo.delete_manifest("v2").await.unwrap();
    assert_eq!(repo.all_tags(None).await.unwrap(), ["v1"]);
    repo.delete_manifest(&img.manifest_digest.to_string()).await.unwrap();
    assert!(repo.all_tags(None).await.unwrap().is_empty());
    let err = repo.fetch_manifest("v1").await.unwrap_err();
    assert_eq!(err.kind(), wharf_types::ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_only_unreferenced_blobs() {
    let srv = TestServer::start(AuthMode::None, None).await;
    let c = client();
    let keep = open(&c, &srv.host(), "gc/keep", &AuthConfig::default(), Access::Push).await;
    let drop_repo = open(&c, &srv.host(), "gc/drop", &AuthConfig::default(), Access::Push).await;
    let a = TestImage::generate(50, &[5_000, 6_000], "amd64");
    let b = TestImage::generate(51, &[7_000], "amd64");
    push_image(&keep, &a, "v1", &Default::default()).await;
    push_image(&drop_repo, &b, "v1", &Default::default()).await;
    // Share one of a's layers into gc/drop; it must survive (a still references it).
    drop_repo.mount_blob(&a.layers[0].0.digest, "gc/keep").await.unwrap();
    let (orphan, _) = keep.push_blob_bytes("application/octet-stream", Bytes::from(noise(9, 1234))).await.unwrap();
    drop_repo.delete_manifest(&b.manifest_digest.to_string()).await.unwrap();

    let root = srv.root.path().to_owned();
    // Within the grace period nothing goes.
    let r = collect(&root, &GcOptions::default()).unwrap();
    assert!(r.deleted.is_empty());
    assert_eq!(r.kept_recent, 4); // b's config, layer and manifest, plus the orphan

    let opts = GcOptions { grace: Duration::ZERO, ..Default::default() };
    let r = collect(&root, &opts).unwrap();
    let mut deleted: Vec<String> = r.deleted.iter().map(|d| d.to_string()).collect();
    deleted.sort();
    let mut want = vec![
        orphan.digest.to_string(),
        b.config_desc.digest.to_string(),
        b.layers[0].0.digest.to_string(),
        b.manifest_digest.to_string(),
    ];
    want.sort();
    assert_eq!(deleted, want);
    // Everything of a is intact.
    let got = keep.fetch_image("v1", &Platform::host()).await.unwrap();
    assert_eq!(got.digest, a.manifest_digest);
    for (d, bytes) in &a.layers {
        assert_eq!(read_blob(&keep, d).await.unwrap(), bytes.to_vec());
    }
    assert_eq!(drop_repo.blob_exists(&b.layers[0].0.digest).await.unwrap(), None);
    assert!(drop_repo.blob_exists(&a.layers[0].0.digest).await.unwrap().is_some());
    // A second run finds nothing.
    assert!(collect(&root, &opts).unwrap().deleted.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_waits_for_commits_in_flight() {
    // gc holds the lock exclusively; a commit (shared) waits for it, and vice versa.
    let srv = TestServer::start(AuthMode::None, None).await;
    let storage = srv.registry.storage().clone();
    let lock = storage.gc_lock(true).await.unwrap();
    let c = client();
    let repo = open(&c, &srv.host(), "gc/wait", &AuthConfig::default(), Access::Push).await;
    let push = tokio::spawn(async move {
        repo.push_blob_bytes("application/octet-stream", Bytes::from_static(b"hello")).await.unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!push.is_finished(), "the commit went through while gc held the lock");
    drop(lock);
    push.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_pages() {
    let srv = TestServer::start(AuthMode::None, None).await;
    let c = client();
    for n in ["c/a", "c/b", "c/c"] {
        let r = open(&c, &srv.host(), n, &AuthConfig::default(), Access::Push).await;
        push_image(&r, &TestImage::generate(60, &[100], "amd64"), "v", &Default::default()).await;
    }
    let addr = srv.addr;
    tokio::task::spawn_blocking(move || {
        let r = raw(addr, "GET", "/v2/_catalog?n=2", &[], b"");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["repositories"], serde_json::json!(["c/a", "c/b"]));
        assert_eq!(r.header("Link"), Some("</v2/_catalog?last=c%2Fb&n=2>; rel=\"next\""));
        let r = raw(addr, "GET", "/v2/_catalog?n=2&last=c%2Fb", &[], b"");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["repositories"], serde_json::json!(["c/c"]));
        assert_eq!(r.header("Link"), None);
        let r = raw(addr, "GET", "/v2/", &[], b"");
        assert_eq!(r.header("Docker-Distribution-API-Version"), Some("registry/2.0"));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_challenge_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let h = wharf_registry::server::auth::Htpasswd::load(&htpasswd_file(dir.path(), "u", "p")).unwrap();
    let srv = TestServer::start(AuthMode::Basic { realm: "wharf-test".into(), htpasswd: h }, None).await;
    let addr = srv.addr;
    tokio::task::spawn_blocking(move || {
        let r = raw(addr, "GET", "/v2/", &[], b"");
        assert_eq!(r.status, 401);
        assert_eq!(r.header("WWW-Authenticate"), Some("Basic realm=\"wharf-test\""));
        assert_eq!(r.code(), "UNAUTHORIZED");
        let r = raw(addr, "GET", "/v2/", &[("Authorization", "Basic dTpw")], b"");
        assert_eq!(r.status, 200);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_server_with_insecure_loopback_client() {
    require_tool!("openssl");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let ok = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-subj", "/CN=localhost", "-days", "1", "-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl req failed");
    let tls = wharf_registry::server::tls_config(&cert, &key).unwrap();
    let srv = TestServer::start_tls(AuthMode::None, None, Some(tls)).await;
    let c = client();
    let repo = open(&c, &srv.host(), "tls/app", &AuthConfig::default(), Access::Push).await;
    assert!(repo.endpoint().is_https(), "{:?}", repo.endpoint());
    let img = TestImage::generate(70, &[50_000], "amd64");
    push_image(&repo, &img, "v1", &Default::default()).await;
    let got = repo.fetch_image("v1", &Platform::host()).await.unwrap();
    assert_eq!(got.digest, img.manifest_digest);
    assert_eq!(read_blob(&repo, &img.layers[0].0).await.unwrap(), img.layers[0].1.to_vec());
}
