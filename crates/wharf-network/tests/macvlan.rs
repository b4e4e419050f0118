//! Macvlan networks on a dummy parent, and the dummy parent Wharf makes when none is given.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use wharf_network::controller::{EndpointRequest, IpamConfig, NetworkCreate};
use wharf_network::netlink::Netlink;
use wharf_network::netns;
use wharf_types::ContainerId;

#[tokio::test(flavor = "multi_thread")]
async fn macvlan_on_a_dummy_parent() {
    if !common::require_root("macvlan_on_a_dummy_parent") {
        return;
    }
    let n = common::names();
    let dir = common::netns_dir();
    let _guard = common::guard(&n, &dir);
    let c = common::controller(&n);
    let parent = format!("{}p", n.dummy_prefix);
    {
        // A dummy parent; where the kernel lacks the dummy driver, one end of a veth pair.
        let mut nl = Netlink::open().unwrap();
        let idx = match nl.add_dummy(&parent) {
            Ok(i) => i,
            Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => {
                eprintln!("no dummy driver in this kernel: using a veth end as the macvlan parent");
                let peer = format!("{}q", n.dummy_prefix);
                let i = nl.add_veth(&parent, &peer, None, None).unwrap();
                let q = nl.link_index(&peer).unwrap();
                nl.set_up(q).unwrap();
                i
            }
            Err(e) => panic!("{e}"),
        };
        nl.set_up(idx).unwrap();
    }
    let mut options = BTreeMap::new();
    options.insert("parent".to_string(), parent.clone());
    let net = c
        .create_network(NetworkCreate {
            name: "mv".into(),
            driver: "macvlan".into(),
            ipam: vec![IpamConfig {
                subnet: Some("10.231.13.0/24".into()),
                gateway: Some("10.231.13.254".into()),
                ..Default::default()
            }],
            options,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut eps = Vec::new();
    for name in ["m1", "m2"] {
        let id = ContainerId::random();
        let ns = dir.path().join(name);
        netns::create(ns.clone()).await.unwrap();
        let ep = c
            .connect(
                &net.id,
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
        assert_eq!(ep.ifname, "eth0");
        eps.push((id, ns, ep.ipv4.unwrap().addr()));
    }
    assert_eq!(eps[0].2.to_string(), "10.231.13.1");
    let kind = netns::run_in(&eps[0].1, || Netlink::open().unwrap().link("eth0").unwrap().unwrap().kind).unwrap();
    assert_eq!(kind.as_deref(), Some("macvlan"));
    let srv = common::tcp_peer_server(&eps[1].1, SocketAddr::new(eps[1].2, 7300));
    assert_eq!(common::tcp_fetch(Some(&eps[0].1), srv).unwrap(), eps[0].2.to_string());
    for (id, ns, _) in &eps {
        c.disconnect(&net.id, id).await.unwrap();
        netns::delete(ns.clone()).await.unwrap();
    }
    c.delete_network(&net.id).await.unwrap();
    // The parent was the admin's (ours here): the network must not have deleted it.
    assert!(Netlink::open().unwrap().link(&parent).unwrap().is_some());
    Netlink::open().unwrap().del_link_by_name(&parent).unwrap();

    // Without a parent, a dummy one is made and removed with the network.
    let net = c
        .create_network(NetworkCreate { name: "mv2".into(), driver: "macvlan".into(), ..Default::default() })
        .await
        .unwrap();
    let made = net.link.clone().unwrap();
    assert!(made.starts_with(&n.dummy_prefix), "{made}");
    assert!(Netlink::open().unwrap().link(&made).unwrap().is_some());
    c.delete_network(&net.id).await.unwrap();
    c.teardown().await.unwrap();
    common::assert_no_leaks(&n, dir.path());
}
