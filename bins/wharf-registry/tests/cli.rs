//! The binary end to end: `serve` on a free port (with htpasswd), a push and pull through the
//! library client, then `gc` after the server stops.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use wharf_registry::client::{Access, AuthConfig, Client, PushBlobOptions};
use wharf_types::oci::{Descriptor, media_type};
use wharf_types::{Classify, Digest, ErrorKind, Reference};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start(args: &[&str]) -> (Server, String) {
    let mut child =
        Command::new(env!("CARGO_BIN_EXE_wharf-registry")).args(args).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (Server(child), addr)
}

fn digest(b: &[u8]) -> Digest {
    use sha2::Digest as _;
    Digest::sha256_bytes(&sha2::Sha256::digest(b).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_push_pull_then_gc() {
    if !have("htpasswd") {
        eprintln!("SKIP: htpasswd (apache2-utils) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let pw = dir.path().join("htpasswd");
    let out = Command::new("htpasswd").args(["-Bbn", "ci", "secret"]).output().unwrap();
    std::fs::write(&pw, out.stdout).unwrap();
    let (server, addr) = start(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--root",
        root.to_str().unwrap(),
        "--htpasswd",
        pw.to_str().unwrap(),
        "--max-upload-size",
        "100000",
    ]);

    let client = Client::new(Default::default());
    let err = client.login(&addr, &AuthConfig::basic("ci", "wrong")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    let creds = AuthConfig::basic("ci", "secret");
    let r: Reference = format!("{addr}/cli/app").parse().unwrap();
    let repo = client.repository(&r, &creds, Access::Push).await.unwrap();

    let layer = Bytes::from(vec![7u8; 50_000]);
    let layer_desc = Descriptor::new(media_type::OCI_LAYER_GZIP, digest(&layer), layer.len() as u64);
    repo.push_blob(&layer_desc, std::io::Cursor::new(layer.clone()), &PushBlobOptions::default()).await.unwrap();
    let (config_desc, _) = repo.push_blob_bytes(media_type::OCI_CONFIG, Bytes::from_static(b"{}")).await.unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "config": config_desc, "layers": [layer_desc],
    });
    let m = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    repo.push_manifest("v1", media_type::OCI_MANIFEST, m.clone()).await.unwrap();
    // Over the size limit: refused.
    let big = Bytes::from(vec![1u8; 200_000]);
    let err = repo.push_blob_bytes("application/octet-stream", big).await.unwrap_err();
    assert!(err.to_string().contains("maximum upload size"), "{err}");
    // An orphan blob for gc.
    repo.push_blob_bytes("application/octet-stream", Bytes::from_static(b"orphan")).await.unwrap();
    let got = repo.fetch_manifest("v1").await.unwrap();
    assert_eq!(got.bytes, m);
    drop(server);

    let gc = Command::new(env!("CARGO_BIN_EXE_wharf-registry"))
        .args(["gc", "--root", root.to_str().unwrap(), "--grace", "0"])
        .output()
        .unwrap();
    assert!(gc.status.success());
    let text = String::from_utf8(gc.stdout).unwrap();
    assert!(text.contains(&format!("deleted {}", digest(b"orphan"))), "{text}");
    assert!(text.contains("1 blobs deleted"), "{text}");
}
