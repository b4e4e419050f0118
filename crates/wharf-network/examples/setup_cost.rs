//! Network setup cost per container: netns create + veth into it + addresses + MAC + default
//! route (bridge driver), as `Controller::connect` does it. Needs root.
//!
//!     cargo run --release -p wharf-network --example setup_cost [-- ITERATIONS]

use std::sync::Arc;
use std::time::{Duration, Instant};

use wharf_network::controller::{Controller, ControllerConfig, EndpointRequest, IpamConfig, NetworkCreate};
use wharf_network::ipam::NoStore;
use wharf_network::netns;
use wharf_types::ContainerId;

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let pct = |p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
    println!(
        "{name:<22} n={:<4} min={:>8.3?} median={:>8.3?} p90={:>8.3?} max={:>8.3?}",
        v.len(),
        v[0],
        pct(50),
        pct(90),
        v[v.len() - 1]
    );
}

#[tokio::main]
async fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("setup_cost: needs root (network namespaces, netlink)");
        return;
    }
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(50);
    let tag = format!("{:x}", std::process::id() % 0xffff);
    let cfg = ControllerConfig {
        firewall_table: format!("wbench{tag}"),
        bridge_prefix: format!("wbb{tag}"),
        veth_prefix: format!("wbv{tag}"),
        dummy_prefix: format!("wbd{tag}"),
        ..Default::default()
    };
    let c = Controller::new(cfg, Arc::new(NoStore), vec![]).unwrap();
    let net = c
        .create_network(NetworkCreate {
            name: "bench".into(),
            ipam: vec![IpamConfig { subnet: Some("10.239.0.0/16".into()), ..Default::default() }],
            ..Default::default()
        })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Phase 1: set up N containers back to back (as `docker run` in a loop would), then tear
    // them all down. Phase 2: set up and tear down alternately, so the kernel's asynchronous
    // namespace cleanup competes with each setup (the worst case).
    for interleaved in [false, true] {
        let (mut t_ns, mut t_conn, mut t_total, mut t_teardown) = (vec![], vec![], vec![], vec![]);
        let mut live = Vec::new();
        for i in 0..n {
            let id = ContainerId::random();
            let path = dir.path().join(format!("c{i}"));
            let t0 = Instant::now();
            netns::create(path.clone()).await.unwrap();
            let t1 = Instant::now();
            c.connect(
                &net.id,
                EndpointRequest {
                    container: Some(id.clone()),
                    container_name: format!("c{i}"),
                    netns: path.clone(),
                    default_route: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            let t2 = Instant::now();
            t_ns.push(t1 - t0);
            t_conn.push(t2 - t1);
            t_total.push(t2 - t0);
            live.push((id, path));
            if interleaved {
                for (id, path) in live.drain(..) {
                    let t = Instant::now();
                    c.disconnect(&net.id, &id).await.unwrap();
                    netns::delete(path).await.unwrap();
                    t_teardown.push(t.elapsed());
                }
            }
        }
        for (id, path) in live.drain(..) {
            let t = Instant::now();
            c.disconnect(&net.id, &id).await.unwrap();
            netns::delete(path).await.unwrap();
            t_teardown.push(t.elapsed());
        }
        println!("-- {} --", if interleaved { "interleaved setup/teardown" } else { "setup all, then teardown all" });
        stats("netns create", t_ns);
        stats("connect (veth+addr+rt)", t_conn);
        stats("setup total", t_total);
        stats("teardown", t_teardown);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    c.delete_network(&net.id).await.unwrap();
    c.teardown().await.unwrap();
}
