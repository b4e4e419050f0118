//! The embedded DNS server inside a container namespace: names, aliases, network-scoped names,
//! AAAA/PTR, visibility per network, forwarding to a fake upstream over UDP and TCP, NXDOMAIN.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use wharf_network::controller::{Controller, EndpointRequest, IpamConfig, NetworkCreate};
use wharf_network::dns::{DnsMode, Upstream};
use wharf_network::netns;
use wharf_types::{ContainerId, NetworkId};

const FAKE: &str = "192.0.2.99";

/// A fake upstream on the host's loopback answering every A query with [`FAKE`].
fn fake_upstream() -> SocketAddr {
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = u.local_addr().unwrap();
    let t = TcpListener::bind(addr).unwrap();
    let reply = |wire: &[u8]| -> Vec<u8> {
        let q = Message::from_vec(wire).unwrap();
        let mut r = Message::response(q.metadata.id, OpCode::Query);
        let query = q.queries[0].clone();
        r.add_query(query.clone());
        r.add_answer(Record::from_rdata(query.name, 60, RData::A(A(FAKE.parse().unwrap()))));
        r.to_vec().unwrap()
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = u.recv_from(&mut buf) {
            let _ = u.send_to(&reply(&buf[..n]), from);
        }
    });
    std::thread::spawn(move || {
        for mut c in t.incoming().flatten() {
            let mut len = [0u8; 2];
            if c.read_exact(&mut len).is_err() {
                continue;
            }
            let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
            c.read_exact(&mut msg).unwrap();
            let r = reply(&msg);
            c.write_all(&(r.len() as u16).to_be_bytes()).unwrap();
            c.write_all(&r).unwrap();
        }
    });
    addr
}

fn query(ns: &Path, name: &str, ty: RecordType, tcp: bool) -> Message {
    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), ty));
    let wire = q.to_vec().unwrap();
    let target: SocketAddr = "127.0.0.11:53".parse().unwrap();
    let resp = netns::run_in(ns, move || -> Vec<u8> {
        if tcp {
            let mut c = TcpStream::connect_timeout(&target, Duration::from_secs(2)).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
            c.write_all(&(wire.len() as u16).to_be_bytes()).unwrap();
            c.write_all(&wire).unwrap();
            let mut len = [0u8; 2];
            c.read_exact(&mut len).unwrap();
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            c.read_exact(&mut buf).unwrap();
            buf
        } else {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
            s.send_to(&wire, target).unwrap();
            let mut buf = vec![0u8; 1500];
            let n = s.recv(&mut buf).unwrap();
            buf.truncate(n);
            buf
        }
    })
    .unwrap();
    let m = Message::from_vec(&resp).unwrap();
    assert_eq!(m.metadata.message_type, MessageType::Response);
    m
}

fn addrs(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.0.to_string(),
            RData::AAAA(a) => a.0.to_string(),
            RData::PTR(p) => p.0.to_ascii(),
            other => format!("{other:?}"),
        })
        .collect()
}

async fn join(
    c: &Controller,
    dir: &tempfile::TempDir,
    net: &NetworkId,
    names: &[&str],
) -> (ContainerId, PathBuf, IpAddr) {
    let id = ContainerId::random();
    let ns = dir.path().join(id.as_str());
    netns::create(ns.clone()).await.unwrap();
    let ep = c
        .connect(
            net,
            EndpointRequest {
                container: Some(id.clone()),
                container_name: names[0].into(),
                netns: ns.clone(),
                dns_names: names.iter().map(|s| s.to_string()).collect(),
                default_route: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    (id, ns, ep.ipv4.unwrap().addr())
}

fn mk(name: &str, subnet: &str) -> NetworkCreate {
    NetworkCreate {
        name: name.into(),
        ipam: vec![IpamConfig { subnet: Some(subnet.into()), ..Default::default() }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_dnat_mode() {
    if !common::require_root("dns_dnat_mode") {
        return;
    }
    dns_answers_names_aliases_and_forwards(DnsMode::Dnat, 9).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_direct_mode() {
    if !common::require_root("dns_direct_mode") {
        return;
    }
    dns_answers_names_aliases_and_forwards(DnsMode::Direct, 17).await;
}

async fn dns_answers_names_aliases_and_forwards(mode: DnsMode, third: u8) {
    let n = common::names();
    let dir = common::netns_dir();
    let _guard = common::guard(&n, &dir);
    let mut cfg = common::config(&n);
    cfg.dns_mode = mode;
    let c = Controller::new(cfg, std::sync::Arc::new(wharf_network::ipam::NoStore), vec![]).unwrap();
    let front = c.create_network(mk("front", &format!("10.231.{third}.0/24"))).await.unwrap();
    let back = c.create_network(mk("back", &format!("10.231.{}.0/24", third + 1))).await.unwrap();
    let (web, web_ns, web_ip) = join(&c, &dir, &front.id, &["web", "www"]).await;
    let (client, client_ns, _) = join(&c, &dir, &front.id, &["client"]).await;
    let (db, db_ns, _) = join(&c, &dir, &back.id, &["db"]).await;
    let upstream = fake_upstream();
    c.start_dns(&client, &client_ns, vec![Upstream { addr: upstream, from_host: true }]).await.unwrap();
    c.start_dns(&web, &web_ns, vec![]).await.unwrap();

    for name in ["web.", "www.", "WEB.", "web.front."] {
        let m = query(&client_ns, name, RecordType::A, false);
        assert_eq!(addrs(&m), [web_ip.to_string()], "{name}");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    }
    // Known name, no IPv6 address: empty NOERROR, not forwarded.
    let m = query(&client_ns, "web.", RecordType::AAAA, false);
    assert_eq!((m.metadata.response_code, m.answers.len()), (ResponseCode::NoError, 0));
    // Reverse lookup.
    let IpAddr::V4(v4) = web_ip else { unreachable!() };
    let o = v4.octets();
    let m = query(&client_ns, &format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0]), RecordType::PTR, false);
    assert_eq!(addrs(&m), ["web.front."]);
    // `db` lives on another network: not visible, so forwarded (the fake answers everything).
    assert_eq!(addrs(&query(&client_ns, "db.", RecordType::A, false)), [FAKE]);
    assert_eq!(addrs(&query(&client_ns, "example.org.", RecordType::A, true)), [FAKE], "TCP forward");
    assert_eq!(addrs(&query(&client_ns, "web.", RecordType::A, true)), [web_ip.to_string()], "TCP local");
    if mode == DnsMode::Dnat {
        // The container's own programs can still bind port 53 (only the redirect is taken).
        let bound = netns::run_in(&client_ns, || UdpSocket::bind("0.0.0.0:53").is_ok()).unwrap();
        assert!(bound, "port 53 stays free for the container in DNAT mode");
    }
    // No external servers: NXDOMAIN for unknown names.
    let m = query(&web_ns, "example.org.", RecordType::A, false);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // Disconnecting removes the name.
    c.disconnect(&front.id, &web).await.unwrap();
    assert_eq!(addrs(&query(&client_ns, "www.", RecordType::A, false)), [FAKE]);

    c.stop_dns(&client).await;
    c.stop_dns(&web).await;
    c.disconnect(&front.id, &client).await.unwrap();
    c.disconnect(&back.id, &db).await.unwrap();
    for ns in [web_ns, client_ns, db_ns] {
        netns::delete(ns).await.unwrap();
    }
    c.delete_network(&front.id).await.unwrap();
    c.delete_network(&back.id).await.unwrap();
    c.teardown().await.unwrap();
    common::assert_no_leaks(&n, dir.path());
}
