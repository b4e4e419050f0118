//! Fixtures: our server in-process on a free port, Debian's docker-registry as a child process,
//! generated images, and a skip macro for missing tools.
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use wharf_registry::client::{
    Access, AuthConfig, Client, PushBlobOptions, PushOutcome, RegistryConfig, Repository, RetryPolicy,
};
use wharf_registry::server::{self, AuthMode, Registry, ServerConfig};
use wharf_types::oci::{Descriptor, media_type};
use wharf_types::{Digest, Reference};

/// Prints why a test is skipped and returns from it.
#[macro_export]
macro_rules! require_tool {
    ($tool:expr) => {
        if !common::have_tool($tool) {
            eprintln!("SKIP: `{}` is not installed", $tool);
            return;
        }
    };
}

pub fn have_tool(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub fn sha(b: &[u8]) -> Digest {
    Digest::sha256_bytes(&Sha256::digest(b).into())
}

/// A client tuned for tests: fast retries.
pub fn client() -> Client {
    Client::new(RegistryConfig {
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(3),
        },
        certs_dir: PathBuf::from("/nonexistent/certs.d"),
        ..Default::default()
    })
}

// ---- our server ----

pub struct TestServer {
    pub addr: SocketAddr,
    pub root: tempfile::TempDir,
    pub registry: Arc<Registry>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start(auth: AuthMode, max_upload_size: Option<u64>) -> Self {
        Self::start_tls(auth, max_upload_size, None).await
    }

    pub async fn start_tls(
        auth: AuthMode,
        max_upload_size: Option<u64>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let root = tempfile::tempdir().unwrap();
        let registry = Registry::new(ServerConfig { root: root.path().to_owned(), max_upload_size, auth }).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(registry.clone());
        tokio::spawn(async move {
            let _ = server::serve(listener, app, tls, async {
                let _ = rx.await;
            })
            .await;
        });
        Self { addr, root, registry, stop: Some(tx) }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub fn htpasswd_file(dir: &Path, user: &str, pass: &str) -> PathBuf {
    let hash = bcrypt::hash(pass, 5).unwrap();
    let p = dir.join("htpasswd");
    std::fs::write(&p, format!("{user}:{hash}\n")).unwrap();
    p
}

// ---- Debian's docker-registry ----

pub struct Distribution {
    pub addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Distribution {
    /// Starts `docker-registry` on a free port, with htpasswd auth when `creds` is set.
    pub fn start(creds: Option<(&str, &str)>) -> Option<Self> {
        if !have_tool("docker-registry") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let auth = match creds {
            Some((u, p)) => {
                let out = Command::new("htpasswd").args(["-Bbn", u, p]).output().expect("htpasswd (apache2-utils)");
                let f = dir.path().join("htpasswd");
                std::fs::write(&f, out.stdout).unwrap();
                format!("auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n", f.display())
            }
            None => String::new(),
        };
        let cfg = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
            dir.path().join("data").display()
        );
        let cfg_path = dir.path().join("config.yml");
        std::fs::File::create(&cfg_path).unwrap().write_all(cfg.as_bytes()).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self { addr, child, _dir: dir })
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

// ---- generated images ----

/// Deterministic pseudo-random bytes.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A config blob, gzip layers and a Docker schema 2 manifest.
#[derive(Clone)]
pub struct TestImage {
    pub config: Bytes,
    pub config_desc: Descriptor,
    pub layers: Vec<(Descriptor, Bytes)>,
    pub manifest: Bytes,
    pub manifest_digest: Digest,
    pub media_type: &'static str,
}

impl TestImage {
    pub fn generate(seed: u64, layer_sizes: &[usize], arch: &str) -> Self {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for (i, size) in layer_sizes.iter().enumerate() {
            let raw = noise(seed * 1000 + i as u64, *size);
            diff_ids.push(sha(&raw).to_string());
            let gz = Bytes::from(gzip(&raw));
            let d = Descriptor::new(media_type::DOCKER_LAYER_GZIP, sha(&gz), gz.len() as u64);
            layers.push((d, gz));
        }
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": format!("seed {seed}")}],
        });
        let config = Bytes::from(serde_json::to_vec(&config).unwrap());
        let config_desc = Descriptor::new(media_type::DOCKER_CONFIG, sha(&config), config.len() as u64);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::DOCKER_MANIFEST,
            "config": config_desc,
            "layers": layers.iter().map(|(d, _)| d).collect::<Vec<_>>(),
        });
        let manifest = Bytes::from(serde_json::to_vec_pretty(&manifest).unwrap());
        Self {
            manifest_digest: sha(&manifest),
            config,
            config_desc,
            layers,
            manifest,
            media_type: media_type::DOCKER_MANIFEST,
        }
    }

    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type, self.manifest_digest.clone(), self.manifest.len() as u64)
    }
}

/// Pushes an image's blobs and manifest; returns the outcomes of the blobs (config first).
pub async fn push_image(repo: &Repository, img: &TestImage, tag: &str, opts: &PushBlobOptions) -> Vec<PushOutcome> {
    let mut outcomes = Vec::new();
    let cfg = std::io::Cursor::new(img.config.clone());
    outcomes.push(repo.push_blob(&img.config_desc, cfg, opts).await.unwrap());
    for (d, b) in &img.layers {
        outcomes.push(repo.push_blob(d, std::io::Cursor::new(b.clone()), opts).await.unwrap());
    }
    let digest = repo.push_manifest(tag, img.media_type, img.manifest.clone()).await.unwrap();
    assert_eq!(digest, img.manifest_digest);
    outcomes
}

pub async fn open(client: &Client, host: &str, name: &str, creds: &AuthConfig, access: Access) -> Repository {
    let r: Reference = format!("{host}/{name}").parse().unwrap();
    client.repository(&r, creds, access).await.unwrap()
}

/// Reads a whole verified blob.
pub async fn read_blob(repo: &Repository, d: &Descriptor) -> Result<Vec<u8>, String> {
    use futures_util::StreamExt;
    let mut s = repo.fetch_blob(d).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.map_err(|e| e.to_string())?);
    }
    Ok(out)
}
