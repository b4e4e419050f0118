//! The firewall tables against the real kernel: apply, update, reconcile, teardown.

mod common;

use wharf_network::firewall::{Backend, BridgeRules, Desired, Firewall};
use wharf_network::ports::{PortMapping, Proto};

fn desired(tag: &str) -> Desired {
    let mut d = Desired::default();
    let b = format!("wtfw{tag}");
    d.networks.insert(
        b.clone(),
        BridgeRules {
            bridge: b.clone(),
            subnets: vec!["10.213.0.0/24".parse().unwrap()],
            internal: false,
            masquerade: true,
            icc: true,
        },
    );
    d.ports.insert((
        b,
        PortMapping {
            proto: Proto::Udp,
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: 5353,
            container_ip: "10.213.0.2".parse().unwrap(),
            container_port: 53,
        },
    ));
    d
}

fn list(table: &str, family: &str) -> String {
    let o = std::process::Command::new("nft").args(["list", "table", family, table]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn nft_apply_reconcile_teardown() {
    if !common::require_root("nft_apply_reconcile_teardown") {
        return;
    }
    let tag = common::tag();
    let table = format!("wharf-t{tag}");
    let mut fw = Firewall::new(&table, Backend::Nft).unwrap();
    fw.reconcile(desired(&tag)).unwrap();
    let text = list(&table, "inet");
    assert!(text.contains("masquerade"), "{text}");
    assert!(text.contains("dnat ip to 10.213.0.2:53"), "{text}");
    // Idempotent: applying again changes nothing.
    fw.apply().unwrap();
    assert_eq!(list(&table, "inet"), text);
    // Reconcile with nothing removes every rule of ours.
    fw.reconcile(Desired::default()).unwrap();
    assert!(!list(&table, "inet").contains("10.213.0"));
    fw.teardown().unwrap();
    assert!(!common::nft_table_exists(&table));
    // Teardown twice is fine.
    fw.teardown().unwrap();
}

#[test]
fn iptables_apply_teardown() {
    if !common::require_root("iptables_apply_teardown") {
        return;
    }
    if std::process::Command::new("iptables-restore").arg("--version").output().is_err() {
        eprintln!("skipping iptables_apply_teardown: iptables-restore not installed");
        return;
    }
    // Inside a namespace of its own: iptables creates its built-in tables on first use, and
    // those must not be left on the host.
    let dir = common::netns_dir();
    let ns = common::path(&dir, "fw");
    wharf_network::netns::create_blocking(&ns).unwrap();
    let tag = common::tag();
    let table = format!("WT{tag}");
    let save =
        || String::from_utf8_lossy(&std::process::Command::new("iptables-save").output().unwrap().stdout).into_owned();
    let (applied, after) = wharf_network::netns::run_in(&ns, || {
        let mut fw = Firewall::new(&table, Backend::Iptables).unwrap();
        fw.reconcile(desired(&tag)).unwrap();
        let applied = save();
        fw.teardown().unwrap();
        (applied, save())
    })
    .unwrap();
    assert!(applied.contains(&format!("-A FORWARD -j {table}-FWD")), "{applied}");
    assert!(applied.contains("--to-destination 10.213.0.2:53"), "{applied}");
    assert!(!after.contains(&table), "{after}");
    wharf_network::netns::delete_blocking(&ns).unwrap();
}
