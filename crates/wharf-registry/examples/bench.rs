//! Push and pull throughput of our client against our server on loopback.
//!
//! ```text
//! cargo run --release -p wharf-registry --example bench -- [--mb 300] [--layers 6] [--parallel 1,3,6]
//! ```
//! Layers are incompressible random bytes (the registry never decompresses). Pull reads every
//! layer through the verifying stream and discards it; push streams from memory. Storage is a
//! temp dir (`TMPDIR` decides the disk).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};
use wharf_registry::client::{Access, AuthConfig, Client, PushBlobOptions, RegistryConfig};
use wharf_registry::server::{self, AuthMode, Registry, ServerConfig};
use wharf_types::oci::{Descriptor, media_type};
use wharf_types::{Digest, Reference};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_owned())
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
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

async fn run_parallel<F, Fut>(items: usize, parallel: usize, f: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    futures_util::stream::iter(0..items).map(f).buffer_unordered(parallel).collect::<Vec<()>>().await;
}

#[tokio::main]
async fn main() {
    let total_mb: usize = arg("--mb", "300").parse().unwrap();
    let layers: usize = arg("--layers", "6").parse().unwrap();
    let parallels: Vec<usize> = arg("--parallel", "1,3,6").split(',').map(|p| p.parse().unwrap()).collect();
    let layer_size = total_mb * 1024 * 1024 / layers;

    let root = tempfile::tempdir().unwrap();
    let registry =
        Registry::new(ServerConfig { root: root.path().to_owned(), max_upload_size: None, auth: AuthMode::None })
            .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(server::serve(listener, server::router(registry), None, std::future::pending()));

    let blobs: Arc<Vec<(Descriptor, Bytes)>> = Arc::new(
        (0..layers)
            .map(|i| {
                let b = Bytes::from(noise(i as u64 + 1, layer_size));
                let d = Digest::sha256_bytes(&Sha256::digest(&b).into());
                (Descriptor::new(media_type::OCI_LAYER_GZIP, d, b.len() as u64), b)
            })
            .collect(),
    );
    let mb = (layer_size * layers) as f64 / (1024.0 * 1024.0);
    println!(
        "image: {layers} layers x {:.1} MiB = {mb:.0} MiB, server on {host}, storage {}",
        layer_size as f64 / 1048576.0,
        root.path().display()
    );

    let client = Client::new(RegistryConfig::default());
    for &p in &parallels {
        let name: Reference = format!("{host}/bench/p{p}").parse().unwrap();
        let repo = client.repository(&name, &AuthConfig::default(), Access::Push).await.unwrap();
        let t = Instant::now();
        run_parallel(layers, p, |i| {
            let repo = repo.clone();
            let blobs = blobs.clone();
            async move {
                let (d, b) = &blobs[i];
                repo.push_blob(d, std::io::Cursor::new(b.clone()), &PushBlobOptions::default()).await.unwrap();
            }
        })
        .await;
        let push = t.elapsed();

        let t = Instant::now();
        run_parallel(layers, p, |i| {
            let repo = repo.clone();
            let blobs = blobs.clone();
            async move {
                let d = &blobs[i].0;
                let mut s = repo.fetch_blob(d).await.unwrap();
                let mut n = 0u64;
                while let Some(c) = s.next().await {
                    n += c.unwrap().len() as u64;
                }
                assert_eq!(n, d.size);
            }
        })
        .await;
        let pull = t.elapsed();
        println!(
            "parallel {p}: push {:.0} MB/s ({:.2} s), pull {:.0} MB/s ({:.2} s)",
            mb / push.as_secs_f64(),
            push.as_secs_f64(),
            mb / pull.as_secs_f64(),
            pull.as_secs_f64()
        );
    }
}
