//! Namespaces and links over netlink: create/delete leaves nothing behind.

mod common;

use wharf_network::netlink::Netlink;
use wharf_network::netns;

#[test]
fn netns_create_delete_leaves_nothing() {
    if !common::require_root("netns_create_delete_leaves_nothing") {
        return;
    }
    let dir = common::netns_dir();
    let p = common::path(&dir, "c1");
    netns::create_blocking(&p).unwrap();
    assert!(netns::is_netns_mount(&p));
    // A second create at the same path is refused.
    assert!(matches!(netns::create_blocking(&p), Err(netns::NetnsError::CreateExists { .. })));
    // lo is up inside, and only lo exists.
    let links = netns::run_in(&p, || Netlink::open().unwrap().links().unwrap()).unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert!(links[0].up && links[0].name == "lo");
    netns::delete_blocking(&p).unwrap();
    assert!(!p.exists());
    // Idempotent.
    netns::delete_blocking(&p).unwrap();
    // The mount table no longer mentions it.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(p.to_str().unwrap()));
}

#[test]
fn veth_into_netns_with_addresses_and_route() {
    if !common::require_root("veth_into_netns_with_addresses_and_route") {
        return;
    }
    let dir = common::netns_dir();
    let p = common::path(&dir, "c2");
    netns::create_blocking(&p).unwrap();
    let tag = common::tag();
    let host = format!("wtv{tag}");
    let ns = std::fs::File::open(&p).unwrap();
    let mut nl = Netlink::open().unwrap();
    use std::os::fd::AsRawFd;
    nl.add_veth(&host, "eth0", Some(1400), Some(ns.as_raw_fd())).unwrap();
    let mut inner = Netlink::open_in(&p).unwrap();
    let eth0 = inner.link("eth0").unwrap().unwrap();
    assert_eq!(eth0.mtu, Some(1400));
    inner.set_mac(eth0.index, [2, 0x42, 10, 1, 2, 3]).unwrap();
    inner.add_address(eth0.index, "10.251.7.2/24".parse().unwrap()).unwrap();
    inner.add_address(eth0.index, "fd77:1::2/64".parse().unwrap()).unwrap();
    inner.set_up(eth0.index).unwrap();
    inner.add_route(None, Some("10.251.7.1".parse().unwrap()), Some(eth0.index)).unwrap();
    let addrs = inner.addresses(eth0.index).unwrap();
    assert!(addrs.contains(&"10.251.7.2/24".parse().unwrap()), "{addrs:?}");
    assert!(addrs.contains(&"fd77:1::2/64".parse().unwrap()), "{addrs:?}");
    let routes = inner.route_destinations().unwrap();
    assert!(routes.contains(&"10.251.7.0/24".parse().unwrap()), "{routes:?}");
    assert_eq!(inner.link("eth0").unwrap().unwrap().mac, Some([2, 0x42, 10, 1, 2, 3]));
    drop(inner);
    drop(ns);
    netns::delete_blocking(&p).unwrap();
    nl.del_link_by_name(&host).unwrap();
    assert!(common::host_links_containing(&host).is_empty());
}

#[test]
fn move_and_rename_into_netns() {
    if !common::require_root("move_and_rename_into_netns") {
        return;
    }
    let dir = common::netns_dir();
    let p = common::path(&dir, "c3");
    netns::create_blocking(&p).unwrap();
    let tag = common::tag();
    let (host, peer) = (format!("wtm{tag}"), format!("wtn{tag}"));
    let mut nl = Netlink::open().unwrap();
    nl.add_veth(&host, &peer, None, None).unwrap();
    let pidx = nl.link_index(&peer).unwrap();
    let ns = std::fs::File::open(&p).unwrap();
    nl.move_to_netns(pidx, &ns).unwrap();
    assert!(nl.link(&peer).unwrap().is_none(), "peer left the host namespace");
    let mut inner = Netlink::open_in(&p).unwrap();
    let idx = inner.link_index(&peer).unwrap();
    inner.rename(idx, "eth0").unwrap();
    inner.set_up(idx).unwrap();
    assert!(inner.link("eth0").unwrap().unwrap().up);
    drop(inner);
    drop(ns);
    nl.del_link_by_name(&host).unwrap();
    netns::delete_blocking(&p).unwrap();
    assert!(common::host_links_containing(&tag).iter().all(|l| !l.starts_with("wtm") && !l.starts_with("wtn")));
}
