//! Bridge networks end to end, as root, in namespaces these tests create: connectivity,
//! isolation, masquerade, DNAT + userland proxy (TCP and UDP), port conflicts, IPAM across a
//! restart, reconcile, and a leak check after each test.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wharf_network::controller::{Controller, EndpointRequest, IpamConfig, NetworkCreate};
use wharf_network::ipam::{IpamStore, PoolRecord, StoreError};
use wharf_network::netlink::Netlink;
use wharf_network::netns;
use wharf_network::ports::parse_port_spec;
use wharf_types::{ContainerId, NetworkId};

fn net(name: &str, subnet: &str) -> NetworkCreate {
    NetworkCreate {
        name: name.into(),
        driver: "bridge".into(),
        ipam: vec![IpamConfig { subnet: Some(subnet.into()), ..Default::default() }],
        ..Default::default()
    }
}

async fn container(
    c: &Controller,
    dir: &tempfile::TempDir,
    name: &str,
    net: &NetworkId,
    ports: &[&str],
) -> (ContainerId, PathBuf, IpAddr) {
    let id = ContainerId::random();
    let ns = dir.path().join(id.as_str());
    netns::create(ns.clone()).await.unwrap();
    let ports = ports.iter().flat_map(|p| parse_port_spec(p).unwrap()).collect();
    let ep = c
        .connect(
            net,
            EndpointRequest {
                container: Some(id.clone()),
                container_name: name.into(),
                netns: ns.clone(),
                dns_names: vec![name.into()],
                ports,
                default_route: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    (id, ns, ep.ipv4.unwrap().addr())
}

async fn remove(c: &Controller, net: &NetworkId, id: &ContainerId, ns: &std::path::Path) {
    c.disconnect(net, id).await.unwrap();
    netns::delete(ns.to_path_buf()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_containers_talk_and_bridges_are_isolated() {
    if !common::require_root("two_containers_talk_and_bridges_are_isolated") {
        return;
    }
    let n = common::names();
    let dir = common::netns_dir();
    let _guard = common::guard(&n, &dir);
    let c = common::controller(&n);
    let a = c.create_network(net("a", "10.231.1.0/24")).await.unwrap();
    let b = c.create_network(net("b", "10.231.2.0/24")).await.unwrap();
    assert_eq!(a.subnets[0].gateway, Some("10.231.1.1".parse().unwrap()));
    let (c1, ns1, ip1) = container(&c, &dir, "c1", &a.id, &[]).await;
    let (c2, ns2, ip2) = container(&c, &dir, "c2", &a.id, &[]).await;
    let (c3, ns3, ip3) = container(&c, &dir, "c3", &b.id, &[]).await;
    assert_eq!((ip1.to_string().as_str(), ip2.to_string().as_str()), ("10.231.1.2", "10.231.1.3"));
    // Docker's MAC from the IP.
    let mac = netns::run_in(&ns1, || Netlink::open().unwrap().link("eth0").unwrap().unwrap().mac).unwrap();
    assert_eq!(mac, Some([0x02, 0x42, 10, 231, 1, 2]));

    let srv2 = common::tcp_peer_server(&ns2, SocketAddr::new(ip2, 7000));
    let srv3 = common::tcp_peer_server(&ns3, SocketAddr::new(ip3, 7000));
    // Same bridge: direct, unNATed.
    assert_eq!(common::tcp_fetch(Some(&ns1), srv2).unwrap(), ip1.to_string());
    if let Some(ok) = common::ping(&ns1, &ip2.to_string()) {
        assert!(ok, "busybox ping c1 -> c2");
    }
    // Other bridge: dropped by the isolation rules.
    assert!(common::tcp_fetch(Some(&ns1), srv3).is_err(), "bridges must be isolated");
    // The gateway (host) is reachable from c3.
    let host_srv = std::net::TcpListener::bind("10.231.2.1:0").unwrap();
    let host_addr = host_srv.local_addr().unwrap();
    let t = std::thread::spawn(move || host_srv.accept().map(|(_, p)| p.ip()));
    netns::run_in(&ns3, move || std::net::TcpStream::connect_timeout(&host_addr, Duration::from_secs(2)).unwrap())
        .unwrap();
    assert_eq!(t.join().unwrap().unwrap(), ip3);

    // Deleting a network with endpoints is refused with Docker's message.
    let e = c.delete_network(&a.id).await.unwrap_err();
    assert_eq!(e.to_string(), "network a has active endpoints (c1, c2)");
    remove(&c, &a.id, &c1, &ns1).await;
    remove(&c, &a.id, &c2, &ns2).await;
    remove(&c, &b.id, &c3, &ns3).await;
    c.delete_network(&a.id).await.unwrap();
    c.delete_network(&b.id).await.unwrap();
    c.teardown().await.unwrap();
    common::assert_no_leaks(&n, dir.path());
}

/// An "outside" host in its own namespace, linked to the host by a veth with a /30.
struct Outside {
    ns: PathBuf,
    host_if: String,
    host_ip: IpAddr,
    peer_ip: IpAddr,
}

fn outside(dir: &tempfile::TempDir, n: &common::Names, third: u8) -> Outside {
    let ns = dir.path().join("outside");
    netns::create_blocking(&ns).unwrap();
    let host_if = format!("{}o", n.veth_prefix);
    let f = std::fs::File::open(&ns).unwrap();
    let mut nl = Netlink::open().unwrap();
    let idx = nl.add_veth(&host_if, "eth0", None, Some(f.as_raw_fd())).unwrap();
    let host_ip: IpAddr = format!("10.232.{third}.1").parse().unwrap();
    let peer_ip: IpAddr = format!("10.232.{third}.2").parse().unwrap();
    nl.add_address(idx, format!("{host_ip}/30").parse().unwrap()).unwrap();
    nl.set_up(idx).unwrap();
    let mut inner = Netlink::open_in(&ns).unwrap();
    let e = inner.link_index("eth0").unwrap();
    inner.add_address(e, format!("{peer_ip}/30").parse().unwrap()).unwrap();
    inner.set_up(e).unwrap();
    // No route back to container subnets: only masquerading makes replies possible.
    Outside { ns, host_if, host_ip, peer_ip }
}

impl Outside {
    fn remove(&self) {
        Netlink::open().unwrap().del_link_by_name(&self.host_if).unwrap();
        netns::delete_blocking(&self.ns).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn masquerade_dnat_proxy_and_udp() {
    if !common::require_root("masquerade_dnat_proxy_and_udp") {
        return;
    }
    let n = common::names();
    let dir = common::netns_dir();
    let _guard = common::guard(&n, &dir);
    let c = common::controller(&n);
    let out = outside(&dir, &n, 4);
    let a = c.create_network(net("pub", "10.231.3.0/24")).await.unwrap();
    let (c1, ns1, ip1) = container(&c, &dir, "web", &a.id, &["80", "53/udp"]).await;

    // Masquerade: the outside server sees the host's address, not the container's.
    let srv = common::tcp_peer_server(&out.ns, SocketAddr::new(out.peer_ip, 7100));
    assert_eq!(common::tcp_fetch(Some(&ns1), srv).unwrap(), out.host_ip.to_string());

    let ep = c.endpoints().into_iter().find(|e| e.container == c1).unwrap();
    let tcp = ep.ports.iter().find(|m| m.container_port == 80 && m.host_ip.is_ipv4()).unwrap().clone();
    let udp = ep.ports.iter().find(|m| m.container_port == 53 && m.host_ip.is_ipv4()).unwrap().clone();
    assert!(tcp.host_port >= wharf_network::ports::ephemeral_range().0, "random ports come from the ephemeral range");
    common::tcp_peer_server(&ns1, SocketAddr::new(ip1, 80));
    common::udp_echo_server(&ns1, SocketAddr::new(ip1, 53));

    // From the host's loopback: the userland proxy (the container sees the gateway).
    let said = common::tcp_fetch(None, SocketAddr::new("127.0.0.1".parse().unwrap(), tcp.host_port)).unwrap();
    assert_eq!(said, "10.231.3.1");
    // From outside: DNAT straight to the container, the client's address preserved.
    let said = common::tcp_fetch(Some(&out.ns), SocketAddr::new(out.host_ip, tcp.host_port)).unwrap();
    assert_eq!(said, out.peer_ip.to_string());
    // Hairpin: the container reaches its own published port through the host's address.
    let gw = SocketAddr::new("10.231.3.1".parse().unwrap(), tcp.host_port);
    assert_eq!(common::tcp_fetch(Some(&ns1), gw).unwrap(), "10.231.3.1");
    // UDP through the proxy.
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    u.send_to(b"ping-udp", ("127.0.0.1", udp.host_port)).unwrap();
    let mut buf = [0u8; 64];
    let (len, _) = u.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"ping-udp");

    // Release stops the proxies and removes the DNAT.
    remove(&c, &a.id, &c1, &ns1).await;
    assert!(common::tcp_fetch(None, SocketAddr::new("127.0.0.1".parse().unwrap(), tcp.host_port)).is_err());
    let rules = String::from_utf8(
        std::process::Command::new("nft").args(["list", "table", "inet", &n.table]).output().unwrap().stdout,
    )
    .unwrap();
    assert!(!rules.contains(&ip1.to_string()), "{rules}");
    c.delete_network(&a.id).await.unwrap();
    c.teardown().await.unwrap();
    out.remove();
    common::assert_no_leaks(&n, dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn port_conflicts_have_dockers_messages() {
    if !common::require_root("port_conflicts_have_dockers_messages") {
        return;
    }
    let n = common::names();
    let dir = common::netns_dir();
    let _guard = common::guard(&n, &dir);
    let c = common::controller(&n);
    let a = c.create_network(net("ports", "10.231.5.0/24")).await.unwrap();
    // A free port to publish on, found by binding and closing.
    let port = std::net::TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port();
    let (c1, ns1, _) = container(&c, &dir, "one", &a.id, &[&format!("{port}:80")]).await;
    let id2 = ContainerId::random();
    let ns2 = dir.path().join(id2.as_str());
    netns::create(ns2.clone()).await.unwrap();
    let req = |ports: &str| EndpointRequest {
        container: Some(id2.clone()),
        container_name: "two".into(),
        netns: ns2.clone(),
        ports: parse_port_spec(ports).unwrap(),
        ..Default::default()
    };
    let e = c.connect(&a.id, req(&format!("{port}:80"))).await.unwrap_err();
    assert!(e.to_string().ends_with(&format!("Bind for 0.0.0.0:{port} failed: port is already allocated")), "{e}");
    assert!(e.to_string().starts_with("driver failed programming external connectivity on endpoint two"), "{e}");
    // Held by another program: the kernel's answer.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = other.local_addr().unwrap().port();
    let e = c.connect(&a.id, req(&format!("127.0.0.1:{busy}:80"))).await.unwrap_err();
    assert!(e.to_string().contains("address already in use"), "{e}");
    // Failed connects left nothing: the address is free again and a plain connect works.
    let ep = c.connect(&a.id, req("127.0.0.1::80")).await.unwrap();
    assert_eq!(ep.ipv4.unwrap().addr().to_string(), "10.231.5.3");
    // Ports can be added to and withdrawn from a connected endpoint.
    let more = c.publish_ports(&a.id, &id2, &parse_port_spec("127.0.0.1::90").unwrap()).await.unwrap();
    assert_eq!(more.len(), 1);
    let mine = c.endpoints().into_iter().find(|e| e.container == id2).unwrap();
    assert_eq!(mine.ports.len(), 2);
    c.unpublish_ports(&a.id, &id2).await.unwrap();
    assert!(c.endpoints().into_iter().find(|e| e.container == id2).unwrap().ports.is_empty());
    remove(&c, &a.id, &id2, &ns2).await;
    remove(&c, &a.id, &c1, &ns1).await;
    c.delete_network(&a.id).await.unwrap();
    c.teardown().await.unwrap();
    common::assert_no_leaks(&n, dir.path());
}

/// A store like the daemon's: records kept outside the controller, by (network, subnet).
#[derive(Default)]
struct FileLikeStore(Mutex<BTreeMap<String, String>>);

impl IpamStore for FileLikeStore {
    fn save_pool(&self, pool: &PoolRecord) -> Result<(), StoreError> {
        self.0.lock().unwrap().insert(format!("{}/{}", pool.network, pool.subnet), serde_json::to_string(pool)?);
        Ok(())
    }
    fn remove_pool(&self, network: &NetworkId, subnet: &ipnet::IpNet) -> Result<(), StoreError> {
        self.0.lock().unwrap().remove(&format!("{network}/{subnet}"));
        Ok(())
    }
}

impl FileLikeStore {
    fn load(&self) -> Vec<PoolRecord> {
        self.0.lock().unwrap().values().map(|s| serde_json::from_str(s).unwrap()).collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_addresses_and_reconcile_removes_orphans() {
    if !common::require_root("restart_keeps_addresses_and_reconcile_removes_orphans") {
        return;
    }
    let n = common::names();
    let dir = common::netns_dir();
    let _guard = common::guard(&n, &dir);
    let store = Arc::new(FileLikeStore::default());
    let c = Controller::new(common::config(&n), store.clone(), vec![]).unwrap();
    let a = c.create_network(net("keep", "10.231.6.0/24")).await.unwrap();
    let (c1, ns1, ip1) = container(&c, &dir, "stays", &a.id, &["127.0.0.1::80"]).await;
    let (_c2, ns2, ip2) = container(&c, &dir, "dies", &a.id, &["127.0.0.1::81"]).await;
    let eps = c.endpoints();
    let ep1 = eps.iter().find(|e| e.container == c1).unwrap().clone();
    // "Crash": the daemon goes away without cleaning up; container 2 dies meanwhile.
    drop(c);
    netns::delete(ns2.clone()).await.unwrap();
    // An orphan netns mount from an earlier life, and an orphan bridge of ours.
    let stale = dir.path().join("stale");
    netns::create(stale.clone()).await.unwrap();
    let orphan = format!("{}zz", n.bridge_prefix);
    Netlink::open().unwrap().add_bridge(&orphan, None).unwrap();

    let c = Controller::new(common::config(&n), store.clone(), store.load()).unwrap();
    let report = c.reconcile(vec![a.clone()], eps, Some(dir.path().to_path_buf()), vec![]).await.unwrap();
    assert!(report.removed.iter().any(|r| r.contains(&orphan)), "{report:?}");
    assert!(report.removed.iter().any(|r| r.contains("stale")), "{report:?}");
    assert!(report.removed.iter().any(|r| r.contains(&ip2.to_string())), "{report:?}");
    assert!(!stale.exists());
    let rules = String::from_utf8(
        std::process::Command::new("nft").args(["list", "table", "inet", &n.table]).output().unwrap().stdout,
    )
    .unwrap();
    assert!(rules.contains(&format!("dnat ip to {ip1}:80")), "{rules}");
    assert!(!rules.contains(&ip2.to_string()), "rules of the dead endpoint are gone: {rules}");
    // The surviving container's address is still taken; the dead one's is free again.
    let (c3, ns3, ip3) = container(&c, &dir, "new", &a.id, &[]).await;
    assert_ne!(ip3, ip1);
    assert_eq!(ip3, ip2);
    // Its published port works again through a restarted proxy.
    common::tcp_peer_server(&ns1, SocketAddr::new(ip1, 80));
    let port = ep1.ports[0].host_port;
    let fetched = common::tcp_fetch(None, SocketAddr::new("127.0.0.1".parse().unwrap(), port));
    assert_eq!(fetched.as_deref().unwrap_or_else(|e| panic!("port {port}: {e}; reconcile: {report:?}")), "10.231.6.1");
    remove(&c, &a.id, &c1, &ns1).await;
    remove(&c, &a.id, &c3, &ns3).await;
    c.delete_network(&a.id).await.unwrap();
    assert!(store.load().is_empty(), "network delete releases its pools");
    c.teardown().await.unwrap();
    common::assert_no_leaks(&n, dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_network_has_no_way_out() {
    if !common::require_root("internal_network_has_no_way_out") {
        return;
    }
    let n = common::names();
    let dir = common::netns_dir();
    let _guard = common::guard(&n, &dir);
    let c = common::controller(&n);
    let out = outside(&dir, &n, 8);
    let mut req = net("int", "10.231.7.0/24");
    req.internal = true;
    let a = c.create_network(req).await.unwrap();
    let (c1, ns1, _) = container(&c, &dir, "i1", &a.id, &[]).await;
    let (c2, ns2, ip2) = container(&c, &dir, "i2", &a.id, &[]).await;
    let srv = common::tcp_peer_server(&out.ns, SocketAddr::new(out.peer_ip, 7200));
    assert!(common::tcp_fetch(Some(&ns1), srv).is_err(), "internal networks have no outbound");
    let srv2 = common::tcp_peer_server(&ns2, SocketAddr::new(ip2, 7200));
    assert!(common::tcp_fetch(Some(&ns1), srv2).is_ok(), "but containers on it talk");
    remove(&c, &a.id, &c1, &ns1).await;
    remove(&c, &a.id, &c2, &ns2).await;
    c.delete_network(&a.id).await.unwrap();
    c.teardown().await.unwrap();
    out.remove();
    common::assert_no_leaks(&n, dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn dual_stack_bridge() {
    if !common::require_root("dual_stack_bridge") {
        return;
    }
    let n = common::names();
    let dir = common::netns_dir();
    let _guard = common::guard(&n, &dir);
    let c = common::controller(&n);
    let mut req = net("ds", "10.231.14.0/24");
    req.enable_ipv6 = true;
    req.ipam.push(IpamConfig { subnet: Some("fd77:14::/64".into()), ..Default::default() });
    let a = c.create_network(req).await.unwrap();
    assert_eq!(a.gateway(true), Some("fd77:14::1".parse().unwrap()));
    let mut eps = Vec::new();
    for name in ["v1", "v2"] {
        let id = ContainerId::random();
        let ns = dir.path().join(name);
        netns::create(ns.clone()).await.unwrap();
        let ep = c
            .connect(
                &a.id,
                EndpointRequest {
                    container: Some(id.clone()),
                    container_name: name.into(),
                    netns: ns.clone(),
                    default_route: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        eps.push((id, ns, ep));
    }
    let v6 = |i: usize| eps[i].2.ipv6.unwrap().addr();
    assert_eq!(v6(0).to_string(), "fd77:14::2");
    let srv = common::tcp_peer_server(&eps[1].1, SocketAddr::new(v6(1), 7400));
    assert_eq!(common::tcp_fetch(Some(&eps[0].1), srv).unwrap(), v6(0).to_string());
    // The IPv6 default route goes through the bridge's gateway.
    let routes = netns::run_in(&eps[0].1, || Netlink::open().unwrap().route_destinations().unwrap()).unwrap();
    assert!(routes.contains(&"fd77:14::/64".parse().unwrap()), "{routes:?}");
    for (id, ns, _) in &eps {
        remove(&c, &a.id, id, ns).await;
    }
    c.delete_network(&a.id).await.unwrap();
    c.teardown().await.unwrap();
    common::assert_no_leaks(&n, dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_removes_everything_without_disconnects() {
    if !common::require_root("teardown_removes_everything_without_disconnects") {
        return;
    }
    let n = common::names();
    let dir = common::netns_dir();
    let _guard = common::guard(&n, &dir);
    let c = common::controller(&n);
    let a = c.create_network(net("t1", "10.231.15.0/24")).await.unwrap();
    let b = c.create_network(net("t2", "10.231.16.0/24")).await.unwrap();
    let (c1, ns1, _) = container(&c, &dir, "x1", &a.id, &["127.0.0.1::80", "127.0.0.1::53/udp"]).await;
    let (_c2, ns2, _) = container(&c, &dir, "x2", &b.id, &[]).await;
    c.start_dns(&c1, &ns1, vec![]).await.unwrap();
    let port = c.endpoints().iter().find(|e| e.container == c1).unwrap().ports[0].host_port;
    c.teardown().await.unwrap();
    // Proxies are gone with it.
    assert!(common::tcp_fetch(None, SocketAddr::new("127.0.0.1".parse().unwrap(), port)).is_err());
    // Namespaces are the daemon's to delete.
    for ns in [ns1, ns2] {
        netns::delete(ns).await.unwrap();
    }
    common::assert_no_leaks(&n, dir.path());
}
