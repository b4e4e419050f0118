//! Build benchmark: a small multi-step Dockerfile on a busybox base made FROM scratch from the
//! host's busybox, through the real overlay snapshotter, content store and a chroot runner.
//!
//! Reports the median and minimum of: a cold build (empty cache), a full-cache rebuild (goal:
//! ≤ 50 ms inside the engine), and a rebuild after one late file changed.
//!
//! Run: `cargo bench -p wharf-build` (as root; skips otherwise).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Env, opts};

const DOCKERFILE: &str = "\
FROM busybox
ENV APP=/app
WORKDIR /app
COPY a.txt b.txt ./
RUN cat a.txt b.txt > ab.txt
COPY src /app/src
RUN ls src > list.txt
COPY late.txt .
RUN cat late.txt > late.out
CMD [\"sh\"]
";

fn files(late: &str) -> Vec<(String, String)> {
    let mut v = vec![
        ("Dockerfile".to_string(), DOCKERFILE.to_string()),
        ("a.txt".into(), "a\n".repeat(100)),
        ("b.txt".into(), "b\n".repeat(100)),
        ("src/".into(), String::new()),
        ("late.txt".into(), late.to_string()),
    ];
    for i in 0..20 {
        v.push((format!("src/f{i}.rs"), format!("fn f{i}() {{}}\n").repeat(50)));
    }
    v
}

fn stats(name: &str, mut d: Vec<Duration>) {
    d.sort();
    let median = d[d.len() / 2];
    println!(
        "{name:<28} median {:>8.1} ms   min {:>8.1} ms   (n={})",
        median.as_secs_f64() * 1e3,
        d[0].as_secs_f64() * 1e3,
        d.len()
    );
}

async fn build(env: &Env, late: &str) -> (Duration, usize) {
    let f = files(late);
    let refs: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let t = Instant::now();
    let out = env.build(&refs, opts()).await;
    let took = t.elapsed();
    out.ok();
    (took, out.cache_hits())
}

#[tokio::main]
async fn main() {
    if let Some(r) = common::skip_reason() {
        println!("build bench skipped: {r}");
        return;
    }
    let mut env = Env::new();
    // Warm the page cache and the busybox base.
    build(&env, "warm").await;

    let mut cold = Vec::new();
    for i in 0..5 {
        env.restart_with_cache(Arc::new(wharf_build::MemoryCacheStore::default()));
        let (t, hits) = build(&env, &format!("cold {i}")).await;
        assert_eq!(hits, 0);
        cold.push(t);
    }
    let mut full = Vec::new();
    for _ in 0..30 {
        let (t, hits) = build(&env, "cold 4").await;
        assert_eq!(hits, 9);
        full.push(t);
    }
    let mut late = Vec::new();
    for i in 0..10 {
        let (t, hits) = build(&env, &format!("late {i}")).await;
        assert_eq!(hits, 6);
        late.push(t);
    }
    println!("wharf-build: 10-step Dockerfile, busybox base, overlay snapshotter, chroot runner");
    stats("cold build", cold);
    stats("full-cache rebuild", full);
    stats("one late file changed", late);
}
