//! skopeo (containers/image) against our server: copy in and out of `dir:` layouts, inspect,
//! list-tags, delete, with no auth, Basic auth and bearer tokens.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use wharf_registry::client::{Access, AuthConfig};
use wharf_registry::server::AuthMode;
use wharf_registry::server::auth::{Htpasswd, TokenAuth};
use wharf_types::Platform;

/// Writes an image as skopeo's `dir:` transport lays it out (version 1.1: blobs by hex).
fn write_dir(img: &TestImage, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    std::fs::write(dir.join("manifest.json"), &img.manifest).unwrap();
    std::fs::write(dir.join(img.config_desc.digest.hex()), &img.config).unwrap();
    for (d, b) in &img.layers {
        std::fs::write(dir.join(d.digest.hex()), b).unwrap();
    }
}

async fn skopeo(args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("skopeo").arg("--insecure-policy").args(args).output(),
    )
    .await
    .expect("skopeo timed out")
    .unwrap();
    assert!(out.status.success(), "skopeo {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Copies an image in with skopeo, reads it with our client; pushes one with our client, copies
/// it out with skopeo; inspects and lists tags.
async fn round_trip(host: &str, creds: Option<(&str, &str)>, client_creds: &AuthConfig) {
    let tmp = tempfile::tempdir().unwrap();
    let img = TestImage::generate(80, &[70_000, 30_000], "amd64");
    let src = tmp.path().join("src");
    write_dir(&img, &src);
    let cred_arg = creds.map(|(u, p)| format!("{u}:{p}"));
    let mut dest_creds = vec![];
    let mut src_creds = vec![];
    let mut creds_flag = vec![];
    if let Some(c) = &cred_arg {
        dest_creds = vec!["--dest-creds", c.as_str()];
        src_creds = vec!["--src-creds", c.as_str()];
        creds_flag = vec!["--creds", c.as_str()];
    }

    // skopeo → our server.
    let dest = format!("docker://{host}/sk/app:v1");
    let src_ref = format!("dir:{}", src.display());
    let mut args = vec!["copy", "--dest-tls-verify=false", "--preserve-digests"];
    args.extend(&dest_creds);
    args.extend([src_ref.as_str(), dest.as_str()]);
    skopeo(&args).await;

    let c = client();
    let repo = open(&c, host, "sk/app", client_creds, Access::Push).await;
    let got = repo.fetch_image("v1", &Platform::host()).await.unwrap();
    assert_eq!(got.digest, img.manifest_digest);
    for (d, b) in &img.layers {
        assert_eq!(read_blob(&repo, d).await.unwrap(), b.to_vec());
    }

    // skopeo inspect (parsed and raw).
    let mut args = vec!["inspect", "--tls-verify=false"];
    args.extend(&creds_flag);
    args.push(dest.as_str());
    let v: serde_json::Value = serde_json::from_str(&skopeo(&args).await).unwrap();
    assert_eq!(v["Digest"], img.manifest_digest.to_string());
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    args.extend(&creds_flag);
    args.push(dest.as_str());
    assert_eq!(skopeo(&args).await.as_bytes(), &img.manifest[..]);

    // Our client pushes; skopeo copies out to a dir.
    let mine = TestImage::generate(81, &[20_000], "arm64");
    push_image(&repo, &mine, "mine", &Default::default()).await;
    let out_dir = tmp.path().join("out");
    let out_ref = format!("dir:{}", out_dir.display());
    let from = format!("docker://{host}/sk/app:mine");
    let mut args = vec!["copy", "--src-tls-verify=false"];
    args.extend(&src_creds);
    args.extend([from.as_str(), out_ref.as_str()]);
    skopeo(&args).await;
    assert_eq!(std::fs::read(out_dir.join("manifest.json")).unwrap(), mine.manifest.to_vec());
    assert_eq!(std::fs::read(out_dir.join(mine.layers[0].0.digest.hex())).unwrap(), mine.layers[0].1.to_vec());
    assert_eq!(std::fs::read(out_dir.join(mine.config_desc.digest.hex())).unwrap(), mine.config.to_vec());

    // list-tags and delete.
    let repo_ref = format!("docker://{host}/sk/app");
    let mut args = vec!["list-tags", "--tls-verify=false"];
    args.extend(&creds_flag);
    args.push(repo_ref.as_str());
    let v: serde_json::Value = serde_json::from_str(&skopeo(&args).await).unwrap();
    assert_eq!(v["Tags"], serde_json::json!(["mine", "v1"]));
    let del = format!("docker://{host}/sk/app@{}", mine.manifest_digest);
    let mut args = vec!["delete", "--tls-verify=false"];
    args.extend(&creds_flag);
    args.push(del.as_str());
    skopeo(&args).await;
    assert_eq!(repo.all_tags(None).await.unwrap(), ["v1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_without_auth() {
    require_tool!("skopeo");
    let srv = TestServer::start(AuthMode::None, None).await;
    round_trip(&srv.host(), None, &AuthConfig::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_with_basic_auth() {
    require_tool!("skopeo");
    let dir = tempfile::tempdir().unwrap();
    let h = Htpasswd::load(&htpasswd_file(dir.path(), "sk", "pw")).unwrap();
    let srv = TestServer::start(AuthMode::Basic { realm: "wharf".into(), htpasswd: h }, None).await;
    round_trip(&srv.host(), Some(("sk", "pw")), &AuthConfig::basic("sk", "pw")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_with_bearer_tokens() {
    require_tool!("skopeo");
    let dir = tempfile::tempdir().unwrap();
    let h = Htpasswd::load(&htpasswd_file(dir.path(), "sk", "pw")).unwrap();
    let port = free_port();
    let token = TokenAuth::new(
        format!("http://127.0.0.1:{port}/token"),
        "wharf-test".into(),
        Duration::from_secs(300),
        None,
        Some(h),
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
    tokio::spawn(wharf_registry::server::serve(
        listener,
        wharf_registry::server::router(registry),
        None,
        std::future::pending(),
    ));
    round_trip(&format!("127.0.0.1:{port}"), Some(("sk", "pw")), &AuthConfig::basic("sk", "pw")).await;
}
