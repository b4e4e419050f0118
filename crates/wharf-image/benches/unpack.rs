//! Layer unpack throughput: MB/s of uncompressed tar data, for a generated layer set (many
//! small files plus a few big ones, gzip), unpacked one layer at a time and several layers in
//! parallel threads, against a decompress+hash-only baseline.
//!
//! `cargo bench -p wharf-image --bench unpack` (`WHARF_BENCH_LAYER_MB=<n>` sets the size of one
//! layer, default 110; `WHARF_BENCH_LAYERS=<n>` the number of layers, default 4).

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

use wharf_image::layer::{UnpackOptions, unpack};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Text-like bytes: words from a small vocabulary (gzip gets about 3:1, as on real layers).
    fn fill(&mut self, buf: &mut [u8], words: &[Vec<u8>]) {
        let mut i = 0;
        while i < buf.len() {
            let w = &words[(self.next() % words.len() as u64) as usize];
            let n = w.len().min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&w[..n]);
            i += n;
        }
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One gzip layer of about `mb` MB: 70% in two big files, 30% in small files of 1–8 KiB.
fn make_layer(seed: u64, mb: usize) -> (Vec<u8>, u64, usize) {
    let mut rng = Rng(seed | 1);
    let words: Vec<Vec<u8>> = (0..2048)
        .map(|_| {
            let len = 2 + rng.next() % 10;
            let mut w: Vec<u8> = (0..len).map(|_| b'a' + (rng.next() % 26) as u8).collect();
            w.push(b" \n"[(rng.next() % 2) as usize]);
            w
        })
        .collect();
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mut raw = 0u64;
    let mut files = 0;
    let big = mb * 1_000_000 * 35 / 100;
    for i in 0..2 {
        let mut data = vec![0u8; big];
        rng.fill(&mut data, &words);
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, format!("big/blob{i}"), &data[..]).unwrap();
        raw += data.len() as u64;
        files += 1;
    }
    let small_total = mb * 1_000_000 * 30 / 100;
    let mut written = 0;
    let mut buf = vec![0u8; 8192];
    while written < small_total {
        let size = 1024 + (rng.next() % 7168) as usize;
        rng.fill(&mut buf[..size], &words);
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, format!("d{:03}/f{files:06}", files % 200), &buf[..size]).unwrap();
        written += size;
        raw += size as u64;
        files += 1;
    }
    (b.into_inner().unwrap().finish().unwrap(), raw, files)
}

/// CPU seconds (user + system) this process has used, from /proc (clock ticks of 1/100 s).
fn cpu_secs() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    if std::env::var_os("WHARF_BENCH_VERBOSE").is_some() {
        eprintln!("  (user {:.2}s, system {:.2}s)", ticks(11) / 100.0, ticks(12) / 100.0);
    }
    (ticks(11) + ticks(12)) / 100.0
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing to run quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (layers, mb) = if quick { (2, 4) } else { (env("WHARF_BENCH_LAYERS", 4), env("WHARF_BENCH_LAYER_MB", 110)) };
    let tmp = tempfile::tempdir_in(std::env::var("WHARF_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into())).unwrap();
    eprintln!("generating {layers} gzip layers of ~{mb} MB ...");
    let t = Instant::now();
    let set: Vec<(Vec<u8>, u64, usize)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..layers).map(|i| s.spawn(move || make_layer(0x9e37_79b9 * (i as u64 + 1), mb))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let tar_bytes: u64 = set.iter().map(|l| l.1).sum();
    let gz_bytes: usize = set.iter().map(|l| l.0.len()).sum();
    let files: usize = set.iter().map(|l| l.2).sum();
    eprintln!(
        "  {files} files, {:.0} MB of file data, {:.0} MB gzip, generated in {:.1}s",
        tar_bytes as f64 / 1e6,
        gz_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // Baseline: decompress + sha256 only.
    let t = Instant::now();
    let cpu = cpu_secs();
    for (gz, _, _) in &set {
        let mut d = flate2::read::MultiGzDecoder::new(&gz[..]);
        let mut h = HashSink(sha2::Sha256::default());
        io::copy(&mut d, &mut h).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu;
    println!(
        "baseline gunzip+sha256 only, 1 thread:  {:7.1} MB/s wall ({secs:.2}s), {:7.1} MB per CPU-second",
        mbps(tar_bytes, secs),
        mbps(tar_bytes, cpu)
    );

    let run = |tag: &str, parallel: bool| {
        let root = tmp.path().join(tag);
        fs::create_dir(&root).unwrap();
        // Start from a clean page cache state: earlier runs' writeback must not be billed here.
        rustix::fs::syncfs(fs::File::open(&root).unwrap()).unwrap();
        let t = Instant::now();
        let cpu = cpu_secs();
        let unpacked: u64 = if parallel {
            std::thread::scope(|s| {
                let hs: Vec<_> = set
                    .iter()
                    .enumerate()
                    .map(|(i, (gz, _, _))| {
                        let dest = root.join(i.to_string());
                        s.spawn(move || one(gz, &dest))
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum()
            })
        } else {
            set.iter().enumerate().map(|(i, (gz, _, _))| one(gz, &root.join(i.to_string()))).sum()
        };
        let secs = t.elapsed().as_secs_f64();
        let cpu = cpu_secs() - cpu;
        fs::remove_dir_all(&root).unwrap();
        rustix::fs::syncfs(fs::File::open(tmp.path()).unwrap()).unwrap();
        (unpacked, secs, cpu)
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for round in 1..=2 {
        let (bytes, secs, cpu) = run("serial", false);
        println!(
            "round {round}: unpack, 1 layer at a time:      {:7.1} MB/s wall ({secs:.2}s), {:7.1} MB per CPU-second",
            mbps(bytes, secs),
            mbps(bytes, cpu)
        );
        let (bytes, secs, cpu) = run("parallel", true);
        println!(
            "round {round}: unpack, {layers} layers in parallel:  {:7.1} MB/s wall ({secs:.2}s), {:7.1} MB per CPU-second ({cores} cores)",
            mbps(bytes, secs),
            mbps(bytes, cpu)
        );
    }
    io::stdout().flush().unwrap();
}

fn one(gz: &[u8], dest: &Path) -> u64 {
    fs::create_dir(dest).unwrap();
    let r = unpack(gz, dest, &UnpackOptions::default()).unwrap();
    r.tar_size
}

struct HashSink(sha2::Sha256);
impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sha2::Digest::update(&mut self.0, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
