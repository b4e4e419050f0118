//! Log read-back throughput: writes a ~200 MiB log (json-file and local) with the shim's writer,
//! then reads it all back through `read_logs`, and times `tail 100`.
//!
//! `cargo run --release -p wharf-runtime --example logbench [MiB]`

use std::time::Instant;

use futures_util::StreamExt;
use wharf_runtime::logs::format::StreamKind;
use wharf_runtime::logs::writer::LogWriter;
use wharf_runtime::logs::{ReadOptions, read_logs};
use wharf_runtime::shim::{LogConfig, LogDriver};

#[tokio::main]
async fn main() {
    let mib: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().expect("temp dir");
    let line = "GET /index.html HTTP/1.1 200 1234 \"Mozilla/5.0 (X11; Linux x86_64)\" rt=0.003 uct=0.000";
    for driver in [LogDriver::JsonFile, LogDriver::Local] {
        let path = dir.path().join(format!("{driver:?}.log"));
        let cfg = LogConfig { driver, path: path.clone(), max_size: None, max_file: 1 };
        let mut w = LogWriter::open(&cfg).expect("open");
        let mut t = 1_700_000_000_000_000_000i64;
        while std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) < mib << 20 {
            for _ in 0..10_000 {
                t += 1_234_567;
                w.write(StreamKind::Stdout, line.as_bytes(), false, t).expect("write");
            }
        }
        drop(w);
        let size = std::fs::metadata(&path).expect("stat").len();
        // Warm the page cache, as a recently written log is.
        let _ = std::fs::read(&path);

        let start = Instant::now();
        let mut s = read_logs(path.clone(), ReadOptions { driver, ..Default::default() });
        let (mut n, mut bytes) = (0u64, 0u64);
        while let Some(batch) = s.next_batch().await {
            for e in batch.expect("read") {
                n += 1;
                bytes += e.bytes.len() as u64;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{driver:?}: read {n} entries ({} MiB payload) from a {} MiB file in {secs:.3}s = {:.0} MiB/s of file",
            bytes >> 20,
            size >> 20,
            size as f64 / (1 << 20) as f64 / secs
        );

        let start = Instant::now();
        let mut s = read_logs(path.clone(), ReadOptions { driver, ..Default::default() });
        let mut m = 0u64;
        while let Some(e) = s.next().await {
            e.expect("read");
            m += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{driver:?}: entry-by-entry Stream: {m} entries in {secs:.3}s = {:.0} MiB/s",
            size as f64 / (1 << 20) as f64 / secs
        );

        let start = Instant::now();
        let mut s = read_logs(path.clone(), ReadOptions { driver, tail: Some(100), ..Default::default() });
        let mut k = 0;
        while let Some(e) = s.next().await {
            e.expect("read");
            k += 1;
        }
        println!("{driver:?}: tail 100 -> {k} entries in {:?}", start.elapsed());
    }
}
