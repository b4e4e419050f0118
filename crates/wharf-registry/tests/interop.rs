//! Our client against our server and against Debian's docker-registry (distribution 2.8):
//! push, pull by tag and digest, re-push skips, cross-repository mounts, chunked and monolithic
//! uploads, tag pagination, multi-platform indexes, Basic and Bearer auth, login.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use wharf_registry::client::{Access, AuthConfig, ClientError, PushBlobOptions, PushOutcome, UploadMode};
use wharf_registry::server::AuthMode;
use wharf_registry::server::auth::{Htpasswd, TokenAuth};
use wharf_types::oci::{Descriptor, DescriptorPlatform, media_type};
use wharf_types::{Classify, ErrorKind, Platform};

/// The whole push/pull tour against one registry.
async fn scenario(host: &str, creds: &AuthConfig, paginates_tags: bool) {
    let client = client();
    let app = open(&client, host, "it/app", creds, Access::Push).await;
    let img = TestImage::generate(1, &[40_000, 120_000], "amd64");

    // Push, then push again: every blob already exists.
    let first = push_image(&app, &img, "v1", &PushBlobOptions::default()).await;
    assert!(first.iter().all(|o| *o == PushOutcome::Pushed), "{first:?}");
    let again = push_image(&app, &img, "v1", &PushBlobOptions::default()).await;
    assert!(again.iter().all(|o| *o == PushOutcome::Exists), "{again:?}");

    // Pull by tag and by digest.
    let puller = open(&client, host, "it/app", creds, Access::Pull).await;
    let resolved = puller.resolve("v1").await.unwrap();
    assert_eq!(resolved.digest, img.manifest_digest);
    assert_eq!(resolved.media_type, media_type::DOCKER_MANIFEST);
    let image = puller.fetch_image("v1", &Platform::host()).await.unwrap();
    assert_eq!(image.digest, img.manifest_digest);
    assert_eq!(image.manifest.bytes, img.manifest);
    let cfg = puller.fetch_blob_bytes(image.config_descriptor(), 1 << 20).await.unwrap();
    assert_eq!(cfg, img.config);
    for (d, b) in &img.layers {
        assert_eq!(read_blob(&puller, d).await.unwrap(), b.to_vec());
    }
    let by_digest = puller.fetch_manifest(&img.manifest_digest.to_string()).await.unwrap();
    assert_eq!(by_digest.bytes, img.manifest);

    // Missing tag: Docker's wording and kind.
    let err = puller.fetch_manifest("nope").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        format!("manifest for {host}/it/app:nope not found: manifest unknown: manifest unknown")
    );

    // Cross-repository mount.
    let other = open(&client, host, "it/other", creds, Access::Push).await;
    let (d, b) = &img.layers[1];
    let opts = PushBlobOptions { mount_from: vec!["it/app".to_owned()], ..Default::default() };
    let out = other.push_blob(d, std::io::Cursor::new(b.clone()), &opts).await.unwrap();
    assert_eq!(out, PushOutcome::Mounted { from: "it/app".into() });
    assert_eq!(other.blob_exists(&d.digest).await.unwrap(), Some(d.size));

    // A blob whose digest is known only once sent (a layer gzipped while it uploads).
    let data = noise(7, 200_000);
    let (digest, size) = other.upload_blob_stream(std::io::Cursor::new(data.clone()), None).await.unwrap();
    assert_eq!((digest.clone(), size), (sha(&data), data.len() as u64));
    assert_eq!(other.blob_exists(&digest).await.unwrap(), Some(size));

    // Chunked and monolithic uploads, with progress.
    for (repo, mode, seed) in
        [("it/chunked", UploadMode::Chunked(64 * 1024), 2), ("it/mono", UploadMode::Monolithic, 3)]
    {
        let r = open(&client, host, repo, creds, Access::Push).await;
        let img2 = TestImage::generate(seed, &[300_000, 1_000], "amd64");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let opts = PushBlobOptions {
            mode,
            progress: Some(std::sync::Arc::new(move |n| s.lock().unwrap().push(n))),
            ..Default::default()
        };
        push_image(&r, &img2, "latest", &opts).await;
        let seen = seen.lock().unwrap().clone();
        assert!(seen.contains(&(img2.layers[0].0.size)), "{mode:?}: {seen:?}");
        if let UploadMode::Chunked(_) = mode {
            assert!(seen.len() > 5, "chunked progress: {seen:?}");
        }
        let got = r.fetch_image("latest", &Platform::host()).await.unwrap();
        for (d, b) in &img2.layers {
            assert_eq!(read_blob(&r, d).await.unwrap(), b.to_vec());
        }
        assert_eq!(got.digest, img2.manifest_digest);
    }

    // Tags, paginated.
    for t in ["t0", "t1", "t2", "t3"] {
        app.push_manifest(t, img.media_type, img.manifest.clone()).await.unwrap();
    }
    // (distribution 2.8 ignores `n` on tags: pagination came in 3.0.)
    if paginates_tags {
        let page = app.tags(Some(2), None).await.unwrap();
        assert_eq!(page.tags, ["t0", "t1"]);
        assert!(page.next.is_some());
        let last = app.tags(Some(2), Some("t3")).await.unwrap();
        assert_eq!(last.tags, ["v1"]);
        assert!(last.next.is_none());
    }
    let mut all = app.all_tags(Some(2)).await.unwrap();
    all.sort();
    assert_eq!(all, ["t0", "t1", "t2", "t3", "v1"]);

    // A multi-platform index: the client picks the platform's entry.
    let multi = open(&client, host, "it/multi", creds, Access::Push).await;
    let amd = TestImage::generate(10, &[5_000], "amd64");
    let arm = TestImage::generate(11, &[6_000], "arm64");
    let mut entries = Vec::new();
    for (img, arch, variant) in [(&amd, "amd64", None), (&arm, "arm64", Some("v8"))] {
        push_image(&multi, img, &img.manifest_digest.to_string(), &Default::default()).await;
        let mut d: Descriptor = img.descriptor();
        d.platform = Some(DescriptorPlatform::from(&Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(str::to_owned),
        }));
        entries.push(d);
    }
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": entries,
    });
    let index = Bytes::from(serde_json::to_vec(&index).unwrap());
    let index_digest = multi.push_manifest("multi", media_type::OCI_INDEX, index).await.unwrap();
    for (p, want) in [("linux/amd64", &amd.manifest_digest), ("linux/arm64", &arm.manifest_digest)] {
        let got = multi.fetch_image("multi", &Platform::parse(p).unwrap()).await.unwrap();
        assert_eq!(&got.manifest.descriptor.digest, want, "{p}");
        assert_eq!(got.digest, index_digest);
        assert!(got.index.is_some());
    }
    let err = multi.fetch_image("multi", &Platform::parse("linux/s390x").unwrap()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "no matching manifest for linux/s390x in the manifest list entries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_against_our_server() {
    let srv = TestServer::start(AuthMode::None, None).await;
    scenario(&srv.host(), &AuthConfig::default(), true).await;
    let repos = client().catalog(&srv.host(), &AuthConfig::default(), Some(2)).await.unwrap();
    assert_eq!(repos, ["it/app", "it/chunked", "it/mono", "it/multi", "it/other"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_against_distribution() {
    let Some(reg) = Distribution::start(None) else {
        eprintln!("SKIP: docker-registry is not installed");
        return;
    };
    scenario(&reg.addr, &AuthConfig::default(), false).await;
}

async fn basic_auth_checks(host: &str) {
    let c = client();
    let good = AuthConfig::basic("alice", "s3cret");
    let bad = AuthConfig::basic("alice", "wrong");

    let ok = c.login(host, &good).await.unwrap();
    assert_eq!(ok.status, "Login Succeeded");
    let ok = c.login(&format!("http://{host}"), &good).await.unwrap();
    assert_eq!(ok.identity_token, None);

    let err = c.login(host, &bad).await.unwrap_err();
    assert_eq!(err.to_string(), format!("login attempt to http://{host}/v2/ failed with status: 401 Unauthorized"));
    assert_eq!(err.kind(), ErrorKind::Unauthorized);

    let repo = open(&c, host, "auth/app", &bad, Access::Push).await;
    let err = repo.fetch_manifest("latest").await.unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("Get \"http://{host}/v2/auth/app/manifests/latest\": unauthorized: authentication required")
    );
    assert_eq!(err.kind(), ErrorKind::Unauthorized);

    let repo = open(&c, host, "auth/app", &good, Access::Push).await;
    let img = TestImage::generate(20, &[10_000], "amd64");
    push_image(&repo, &img, "v1", &Default::default()).await;
    let got = repo.fetch_image("v1", &Platform::host()).await.unwrap();
    assert_eq!(got.digest, img.manifest_digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_against_our_server() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = Htpasswd::load(&htpasswd_file(dir.path(), "alice", "s3cret")).unwrap();
    let srv = TestServer::start(AuthMode::Basic { realm: "wharf".into(), htpasswd }, None).await;
    basic_auth_checks(&srv.host()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_against_distribution() {
    require_tool!("htpasswd");
    let Some(reg) = Distribution::start(Some(("alice", "s3cret"))) else {
        eprintln!("SKIP: docker-registry is not installed");
        return;
    };
    basic_auth_checks(&reg.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_against_our_server() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = Htpasswd::load(&htpasswd_file(dir.path(), "bob", "pw")).unwrap();
    // The realm must name the server's own port, known only after binding: bind, then patch.
    let port = free_port();
    let token = TokenAuth::new(
        format!("http://127.0.0.1:{port}/token"),
        "wharf-test".into(),
        Duration::from_secs(2),
        None,
        Some(htpasswd),
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let registry = wharf_registry::server::Registry::new(wharf_registry::server::ServerConfig {
        root: root.path().to_owned(),
        max_upload_size: None,
        auth: AuthMode::Token(token),
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let app = wharf_registry::server::router(registry);
    tokio::spawn(wharf_registry::server::serve(listener, app, None, std::future::pending()));
    let host = format!("127.0.0.1:{port}");
    let c = client();

    // Login with a password returns an identity (refresh) token.
    let out = c.login(&host, &AuthConfig::basic("bob", "pw")).await.unwrap();
    let identity = out.identity_token.expect("a refresh token from login");
    let err = c.login(&host, &AuthConfig::basic("bob", "nope")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");

    // Push with username/password (GET token), pull with the identity token (POST token).
    let pusher = open(&c, &host, "tok/app", &AuthConfig::basic("bob", "pw"), Access::Push).await;
    let img = TestImage::generate(30, &[20_000, 30_000], "amd64");
    push_image(&pusher, &img, "v1", &Default::default()).await;
    let id_creds = AuthConfig { identitytoken: identity, ..Default::default() };
    let puller = open(&c, &host, "tok/app", &id_creds, Access::Pull).await;
    let got = puller.fetch_image("v1", &Platform::host()).await.unwrap();
    assert_eq!(got.digest, img.manifest_digest);

    // v1 search: a Bearer challenge answered with a catalog token.
    let found = c.search(&host, "TOK", 25, &AuthConfig::basic("bob", "pw")).await.unwrap();
    let names: Vec<&str> = found.results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!((found.num_results, names), (1, vec!["tok/app"]));
    let err = c.search(&host, "tok", 25, &AuthConfig::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");

    // Tokens expire (2 s here) and are fetched again.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    for (d, b) in &img.layers {
        assert_eq!(read_blob(&puller, d).await.unwrap(), b.to_vec());
    }

    // A pull-only token cannot push; anonymous gets no token.
    let anon = open(&c, &host, "tok/app", &AuthConfig::default(), Access::Pull).await;
    let err = anon.fetch_manifest("v1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    let pull_only = open(&c, &host, "tok/app", &id_creds, Access::Pull).await;
    let err = pull_only.push_manifest("v2", img.media_type, img.manifest.clone()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");

    // Cross-repository mount with tokens (needs pull on the source too).
    let other = open(&c, &host, "tok/other", &AuthConfig::basic("bob", "pw"), Access::Push).await;
    let (d, b) = &img.layers[0];
    let out = other
        .push_blob(
            d,
            std::io::Cursor::new(b.clone()),
            &PushBlobOptions { mount_from: vec!["tok/app".into()], ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(out, PushOutcome::Mounted { from: "tok/app".into() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_reads_like_docker() {
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    let r: wharf_types::Reference = format!("{host}/x").parse().unwrap();
    let err = match client().repository(&r, &AuthConfig::default(), Access::Pull).await {
        Err(e) => e,
        Ok(_) => panic!("connected to a closed port"),
    };
    assert_eq!(err.to_string(), format!("Get \"http://{host}/v2/\": dial tcp {host}: connect: connection refused"));
    assert_eq!(err.kind(), ErrorKind::Internal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_hub_mirrors_fall_back_in_order() {
    let empty = TestServer::start(AuthMode::None, None).await;
    let full = TestServer::start(AuthMode::None, None).await;
    let img = TestImage::generate(90, &[8_000], "amd64");
    let seed = open(&client(), &full.host(), "library/mirrored", &AuthConfig::default(), Access::Push).await;
    push_image(&seed, &img, "v1", &Default::default()).await;

    let c = wharf_registry::client::Client::new(wharf_registry::client::RegistryConfig {
        mirrors: vec![
            format!("http://127.0.0.1:{}", free_port()), // down
            format!("http://{}", empty.host()),          // up, but without the image
            format!("http://{}/", full.host()),
        ],
        retry: wharf_registry::client::RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        },
        ..Default::default()
    });
    let r: wharf_types::Reference = "mirrored:v1".parse().unwrap();
    let (repo, got) = c.pull_image(&r, &AuthConfig::default(), &Platform::host()).await.unwrap();
    assert_eq!(repo.endpoint().base, format!("http://{}", full.host()));
    assert!(repo.endpoint().mirror);
    assert_eq!(repo.name(), "library/mirrored");
    assert_eq!(got.digest, img.manifest_digest);
    assert_eq!(read_blob(&repo, &img.layers[0].0).await.unwrap(), img.layers[0].1.to_vec());
}
