//! Networking end to end with the real docker CLI: a daemon in this process (see `common`)
//! serving the API, real containers, real bridges, veths, nftables rules and DNS. Every test
//! ends with a leak check (no veth, user bridge, table, namespace or IP allocation left).

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::{InProc, eventually, fake_dns, host_ipv4, http_get, requirements, udp_echo_in, udp_roundtrip};
use wharf_testkit::skip_unless;

fn reqs() -> Result<(), String> {
    requirements()?;
    wharf_testkit::require::program("docker")
}

const HTTPD: &[&str] = &["busybox", "httpd", "-f", "-p", "80", "-h", "/www"];

fn run_d(d: &InProc, opts: &[&str], cmd: &[&str]) -> String {
    let mut args = vec!["run", "-d"];
    args.extend_from_slice(opts);
    args.extend_from_slice(cmd);
    let id = d.ok(&args);
    if cmd == HTTPD {
        assert!(d.wait_listening(&id, 80), "httpd in {id} did not start listening");
    }
    id
}

/// `wget` from a throwaway container; `Err(stderr)` when it fails.
fn wget(d: &InProc, opts: &[&str], url: &str) -> Result<String, String> {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(opts);
    // Not `wget -T` (busybox 1.35 crashes on it); `sh` stays PID 1 so `timeout` can kill wget.
    let script = format!("timeout 3 wget -qO- {url}; exit $?");
    args.extend_from_slice(&["busybox", "sh", "-c", &script]);
    let (code, out, err) = d.run(&args);
    if code == 0 { Ok(out.trim().to_owned()) } else { Err(format!("{err}{out}")) }
}

#[test]
fn default_bridge_ls_inspect_and_legacy_fields() {
    skip_unless!(reqs());
    let d = InProc::start();
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"]);
    assert_eq!(ls, "bridge bridge local\nhost host local\nnone null local");
    let cid = run_d(&d, &["--name", "web"], HTTPD);
    let ip = d.ip("web", "bridge");
    assert!(ip.starts_with(&format!("10.{}.0.", d.net.octet())), "{ip}");
    // CLI 28 talks API 1.50: the legacy top-level fields come from the bridge entry.
    assert_eq!(d.inspect("web", "{{.NetworkSettings.IPAddress}}"), ip);
    assert_eq!(d.inspect("web", "{{.NetworkSettings.Gateway}}"), format!("10.{}.0.1", d.net.octet()));
    assert_eq!(wget(&d, &[], &format!("http://{ip}/")).unwrap(), "hello from busybox");
    let containers = d.ok(&["network", "inspect", "bridge", "-f", "{{json .Containers}}"]);
    let v: serde_json::Value = serde_json::from_str(&containers).unwrap();
    assert_eq!(v[&cid]["Name"], "web");
    assert_eq!(v[&cid]["IPv4Address"], format!("{ip}/24"));
    let subnet = d.ok(&["network", "inspect", "bridge", "-f", "{{(index .IPAM.Config 0).Subnet}} {{.Options}}"]);
    assert!(subnet.starts_with(&format!("10.{}.0.0/24 ", d.net.octet())), "{subnet}");
    assert!(subnet.contains(&format!("com.docker.network.bridge.name:{}", d.net.bridge())), "{subnet}");
    // /etc/hosts carries the address and the short-ID hostname; resolv.conf has no 127.0.0.11.
    let hosts =
        d.ok(&["run", "--rm", "--add-host", "gw:host-gateway", "busybox", "cat", "/etc/hosts", "/etc/resolv.conf"]);
    assert!(hosts.contains(&format!("10.{}.0.1\tgw", d.net.octet())), "{hosts}");
    assert!(!hosts.contains("127.0.0.11"), "{hosts}");
    d.finish_and_check_leaks();
}

#[test]
fn user_network_names_aliases_dns_forwarding_and_isolation() {
    skip_unless!(reqs());
    let d = InProc::start();
    let (front, back) = (d.net.subnet(100), d.net.subnet(101));
    d.ok(&["network", "create", "--subnet", &front, "front"]);
    d.ok(&["network", "create", "--subnet", &back, "back"]);
    run_d(&d, &["--name", "web", "--network", "front", "--network-alias", "www"], HTTPD);
    for host in ["web", "www", "web.front"] {
        assert_eq!(wget(&d, &["--network", "front"], &format!("http://{host}/")).unwrap(), "hello from busybox");
    }
    let resolv = d.ok(&["run", "--rm", "--network", "front", "busybox", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 127.0.0.11\n"), "{resolv}");
    // Other networks neither resolve the name nor reach the address.
    let ip = d.ip("web", "front");
    assert!(wget(&d, &["--network", "back"], "http://web/").is_err());
    assert!(wget(&d, &["--network", "back"], &format!("http://{ip}/")).is_err(), "isolation across networks");
    assert!(wget(&d, &[], &format!("http://{ip}/")).is_err(), "isolation from the default bridge");
    // Names the embedded server does not know go to the container's DNS servers.
    let gw = format!("10.{}.100.1", d.net.octet());
    fake_dns(SocketAddr::new(gw.parse().unwrap(), 53), Ipv4Addr::new(192, 0, 2, 77));
    let out = d.ok(&["run", "--rm", "--network", "front", "--dns", &gw, "busybox", "nslookup", "forwarded.test"]);
    assert!(out.contains("192.0.2.77"), "{out}");
    let out = d.ok(&["run", "--rm", "--network", "front", "--dns", &gw, "busybox", "nslookup", "web"]);
    assert!(out.contains(&ip), "{out}");
    // Inspect shows aliases and DNS names.
    let eps = d.inspect("web", "{{json .NetworkSettings.Networks.front}}");
    let v: serde_json::Value = serde_json::from_str(&eps).unwrap();
    assert_eq!(v["Aliases"], serde_json::json!(["www"]));
    assert_eq!(v["DNSNames"][0], "web");
    assert_eq!(v["DNSNames"][1], "www");
    // A fixed address on a network with a user subnet.
    let fixed = format!("10.{}.100.50", d.net.octet());
    run_d(&d, &["--name", "fixed", "--network", "front", "--ip", &fixed], &["busybox", "sleep", "1000"]);
    assert_eq!(d.ip("fixed", "front"), fixed);
    let (code, _, err) = d.run(&["run", "--rm", "--network", "front", "--ip", &fixed, "busybox", "true"]);
    assert_ne!(code, 0);
    assert!(err.contains("Address already in use"), "{err}");
    let (code, _, err) = d.run(&["run", "--rm", "--ip", "10.1.1.1", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("user specified IP address is supported on user defined networks only"), "{err}");
    d.finish_and_check_leaks();
}

#[test]
fn published_ports_tcp_udp_random_and_conflicts() {
    skip_unless!(reqs());
    let d = InProc::start();
    let port = 20000 + d.net.number() * 10;
    let p = port.to_string();
    let all = (port + 2).to_string();
    run_d(
        &d,
        &["--name", "web", "-p", &format!("127.0.0.1:{p}:80"), "-p", &format!("{all}:80"), "--expose", "7000", "-P"],
        HTTPD,
    );
    let got = http_get(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    assert!(got.ends_with("hello from busybox\n"), "{got}");
    let ports = d.ok(&["port", "web"]);
    assert!(ports.contains(&format!("80/tcp -> 127.0.0.1:{p}")), "{ports}");
    let random: u16 = ports
        .lines()
        .find(|l| l.starts_with("7000/tcp -> 0.0.0.0:"))
        .and_then(|l| l.rsplit(':').next()?.parse().ok())
        .unwrap_or_else(|| panic!("-P gave 7000 a port: {ports}"));
    assert!(random >= 1024);
    let ps = d.ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains(&format!("127.0.0.1:{p}->80/tcp")), "{ps}");
    // The same host port again: Docker's error, and the container does not start.
    let (code, _, err) = d.run(&["run", "-d", "--name", "web2", "-p", &format!("127.0.0.1:{p}:80"), "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains(&format!("Bind for 127.0.0.1:{p} failed: port is already allocated")), "{err}");
    assert_eq!(d.inspect("web2", "{{.State.Running}}"), "false");
    // UDP, through the userland proxy (loopback) and the DNAT path (the host's own address).
    let up = port + 1;
    run_d(&d, &["--name", "udp", "-p", &format!("{up}:9999/udp")], &["busybox", "sleep", "1000"]);
    udp_echo_in(&d.netns_of("udp"), 9999);
    assert_eq!(udp_roundtrip(SocketAddr::from(([127, 0, 0, 1], up)), b"ping").as_deref(), Some(&b"ping"[..]));
    if let Some(host) = host_ipv4() {
        assert_eq!(udp_roundtrip(SocketAddr::from((host, up)), b"pong").as_deref(), Some(&b"pong"[..]));
        let got = http_get(SocketAddr::from((host, port + 2))).unwrap();
        assert!(got.ends_with("hello from busybox\n"), "DNAT of the host's address: {got}");
    }
    // Stopping releases the ports: the same publication works again.
    d.ok(&["rm", "-f", "web"]);
    run_d(&d, &["--name", "web3", "-p", &format!("127.0.0.1:{p}:80")], HTTPD);
    let got = eventually(5, || http_get(SocketAddr::from(([127, 0, 0, 1], port))).ok()).unwrap();
    assert!(got.ends_with("hello from busybox\n"));
    d.finish_and_check_leaks();
}

#[test]
fn outbound_nat_and_host_addresses() {
    skip_unless!(reqs());
    let d = InProc::start();
    // A server on the host's own non-loopback address.
    if let Some(host) = host_ipv4() {
        let srv = std::net::TcpListener::bind((host, 0)).unwrap();
        let addr = srv.local_addr().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            if let Ok((mut s, _)) = srv.accept() {
                common::read_request(&mut s);
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nfrom the host\n");
            }
        });
        assert_eq!(wget(&d, &[], &format!("http://{addr}/")).unwrap(), "from the host");
    }
    // A server beyond the host (another namespace routed through it) sees the host's address:
    // the container's traffic was masqueraded.
    let o = d.net.octet();
    let outside = d.dir().join("outside");
    wharf_network::netns::create_blocking(&outside).unwrap();
    let (host_end, peer_end) = (d.net.test_link(0), d.net.test_link(1));
    let mut nl = wharf_network::netlink::Netlink::open().unwrap();
    let ns = std::fs::File::open(&outside).unwrap();
    let idx = nl.add_veth(&host_end, &peer_end, None, Some(std::os::fd::AsRawFd::as_raw_fd(&ns))).unwrap();
    nl.add_address(idx, format!("10.{o}.250.1/24").parse().unwrap()).unwrap();
    nl.set_up(idx).unwrap();
    let mut inner = wharf_network::netlink::Netlink::open_in(&outside).unwrap();
    let pidx = inner.link_index(&peer_end).unwrap();
    inner.add_address(pidx, format!("10.{o}.250.2/24").parse().unwrap()).unwrap();
    inner.set_up(pidx).unwrap();
    let srv =
        wharf_network::netns::run_in(&outside, || std::net::TcpListener::bind(("0.0.0.0", 8080))).unwrap().unwrap();
    let seen = std::thread::spawn(move || {
        use std::io::Write;
        let (mut s, peer) = srv.accept().unwrap();
        common::read_request(&mut s);
        let _ = s.write_all(format!("HTTP/1.0 200 OK\r\n\r\n{}\n", peer.ip()).as_bytes());
        peer.ip().to_string()
    });
    let said = wget(&d, &[], &format!("http://10.{o}.250.2:8080/")).unwrap();
    assert_eq!(said, format!("10.{o}.250.1"), "masqueraded to the host's address");
    assert_eq!(seen.join().unwrap(), said);
    nl.del_link_by_name(&host_end).unwrap();
    wharf_network::netns::delete_blocking(&outside).unwrap();
    d.finish_and_check_leaks();
}

#[test]
fn host_none_and_container_modes() {
    skip_unless!(reqs());
    let d = InProc::start();
    let host_links = std::fs::read_dir("/sys/class/net").unwrap().count();
    let n: usize = d
        .ok(&["run", "--rm", "--network", "host", "busybox", "sh", "-c", "ls /sys/class/net | wc -l"])
        .parse()
        .unwrap();
    assert!(n >= host_links.min(3), "host mode sees the host's links ({n} vs {host_links})");
    let hn = d.ok(&["run", "--rm", "--network", "host", "busybox", "hostname"]);
    assert_eq!(hn, rustix::system::uname().nodename().to_string_lossy());
    let out = d.ok(&["run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net"]);
    assert_eq!(out, "lo");
    run_d(&d, &["--name", "web"], HTTPD);
    let ip = d.ip("web", "bridge");
    // The other container's namespace: its address, and its server on localhost.
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "container:web",
        "busybox",
        "sh",
        "-c",
        "ip addr; wget -qO- http://127.0.0.1/",
    ]);
    assert!(out.contains(&format!("inet {ip}/")), "{out}");
    assert!(out.contains("hello from busybox"), "{out}");
    let (code, _, err) = d.run(&["run", "--rm", "--network", "container:web", "-p", "80", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("conflicting options: port publishing and the container type network mode"), "{err}");
    let nets = d.inspect("web", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}");
    assert_eq!(nets, "bridge");
    run_d(&d, &["--name", "onhost", "--network", "host"], &["busybox", "sleep", "100"]);
    assert_eq!(d.inspect("onhost", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}"), "host");
    let on_host = d.ok(&["network", "inspect", "host", "-f", "{{range .Containers}}{{.Name}}{{end}}"]);
    assert_eq!(on_host, "onhost");
    let (code, _, err) = d.run(&["network", "connect", "bridge", "onhost"]);
    assert_eq!(code, 1);
    assert!(err.contains("container cannot be disconnected from host network or connected to host network"), "{err}");
    d.finish_and_check_leaks();
}

#[test]
fn connect_disconnect_running_and_network_errors() {
    skip_unless!(reqs());
    let d = InProc::start();
    let sub = d.net.subnet(102);
    let id = d.ok(&["network", "create", "--subnet", &sub, "--label", "team=a", "n1"]);
    assert_eq!(id.len(), 64);
    run_d(&d, &["--name", "web"], HTTPD);
    run_d(&d, &["--name", "client", "--network", "n1"], &["busybox", "sleep", "1000"]);
    let fetch = || {
        let (code, out, _) = d.run(&["exec", "client", "wget", "-T", "2", "-qO-", "http://web/"]);
        (code == 0).then_some(out)
    };
    // `exec` may not exist yet in this daemon: reach the name from a fresh container instead.
    let probe = |name: &str| wget(&d, &["--network", "n1"], &format!("http://{name}/")).is_ok();
    let _ = fetch;
    assert!(!probe("web"), "not on n1 yet");
    d.ok(&["network", "connect", "--alias", "w2", "n1", "web"]);
    assert!(probe("web") && probe("w2"), "reachable by name and alias after connect");
    let hosts = d.ok(&["run", "--rm", "--network", "container:web", "busybox", "cat", "/etc/hosts"]);
    assert_eq!(hosts.lines().filter(|l| l.ends_with(&d.inspect("web", "{{.Config.Hostname}}"))).count(), 2, "{hosts}");
    let (code, _, err) = d.run(&["network", "connect", "n1", "web"]);
    assert_eq!(code, 1);
    assert!(err.contains("endpoint with name web already exists in network n1"), "{err}");
    // rm while in use, and the predefined networks.
    let (code, _, err) = d.run(&["network", "rm", "n1"]);
    assert_eq!(code, 1);
    assert!(err.contains("error while removing network: network n1 has active endpoints (name:\"client\""), "{err}");
    for n in ["bridge", "host", "none"] {
        let (code, _, err) = d.run(&["network", "rm", n]);
        assert_eq!(code, 1);
        assert!(err.contains(&format!("{n} is a pre-defined network and cannot be removed")), "{err}");
    }
    d.ok(&["network", "disconnect", "n1", "web"]);
    assert!(!probe("web"), "gone from n1 after disconnect");
    let (code, _, err) = d.run(&["network", "disconnect", "n1", "web"]);
    assert_eq!(code, 1);
    assert!(err.contains("is not connected to network n1"), "{err}");
    // Connect a stopped container: it joins at its next start.
    d.ok(&["stop", "-t", "0", "web"]);
    d.ok(&["network", "connect", "n1", "web"]);
    d.ok(&["start", "web"]);
    assert!(probe("web"));
    assert_eq!(d.inspect("web", "{{len .NetworkSettings.Networks}}"), "2");
    // Create errors.
    let (code, _, err) = d.run(&["network", "create", "n1"]);
    assert_eq!(code, 1);
    assert!(err.contains("network with name n1 already exists"), "{err}");
    let (code, _, err) = d.run(&["network", "create", "--subnet", &sub, "n2"]);
    assert_eq!(code, 1);
    assert!(err.contains("Pool overlaps with other one on this address space"), "{err}");
    let (code, _, err) = d.run(&["network", "create", "--subnet", "10.0.0.0/33", "n3"]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid CIDR"), "{err}");
    let (code, _, err) = d.run(&["network", "create", "-d", "nosuch", "n4"]);
    assert_eq!(code, 1);
    assert!(err.contains("plugin not found"), "{err}");
    let (code, _, err) = d.run(&["network", "inspect", "nosuch"]);
    assert_eq!(code, 1);
    assert!(err.contains("network nosuch not found"), "{err}");
    let (code, _, err) = d.run(&["run", "--rm", "--network", "nosuch", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("network nosuch not found"), "{err}");
    // Internal networks: no way out, names still resolve inside.
    d.ok(&["network", "create", "--internal", "--subnet", &d.net.subnet(103), "int"]);
    assert_eq!(d.ok(&["network", "inspect", "int", "-f", "{{.Internal}}"]), "true");
    let host_gw = format!("10.{}.0.1", d.net.octet());
    assert!(wget(&d, &["--network", "int"], &format!("http://{host_gw}:1/")).is_err());
    // ls filters and prune.
    let custom = d.ok(&["network", "ls", "--filter", "type=custom", "--format", "{{.Name}}"]);
    assert_eq!(custom, "int\nn1");
    let labelled = d.ok(&["network", "ls", "-f", "label=team=a", "-q"]);
    assert_eq!(labelled, id[..12]);
    let dangling = d.ok(&["network", "ls", "-f", "dangling=true", "--format", "{{.Name}}"]);
    assert_eq!(dangling, "int");
    let pruned = d.ok(&["network", "prune", "-f"]);
    assert!(pruned.contains("int") && !pruned.contains("n1"), "{pruned}");
    let on_n1 = d.ok(&["ps", "--filter", "network=n1", "--format", "{{.Names}}"]);
    assert_eq!(on_n1.lines().count(), 2, "{on_n1}");
    d.finish_and_check_leaks();
}

#[test]
fn network_events_in_dockers_order() {
    skip_unless!(reqs());
    let d = InProc::start();
    let since = chrono::Utc::now().timestamp().to_string();
    d.ok(&["network", "create", "--subnet", &d.net.subnet(104), "evnet"]);
    run_d(&d, &["--name", "ev", "--network", "evnet"], &["busybox", "sleep", "100"]);
    d.ok(&["stop", "-t", "0", "ev"]);
    d.ok(&["rm", "ev"]);
    d.ok(&["network", "rm", "evnet"]);
    std::thread::sleep(Duration::from_millis(100));
    let until = (chrono::Utc::now().timestamp() + 1).to_string();
    let out = d.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}{{with .Actor.Attributes.type}} {{.}}{{end}}",
    ]);
    let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with("container kill")).collect();
    assert_eq!(
        lines,
        [
            "network create evnet bridge",
            "container create ev",
            "network connect evnet bridge",
            "container start ev",
            "container die ev",
            "network disconnect evnet bridge",
            "container stop ev",
            "container destroy ev",
            "network destroy evnet bridge",
        ],
        "{out}"
    );
    d.finish_and_check_leaks();
}

#[test]
fn live_restore_and_reconcile_after_a_crash() {
    skip_unless!(reqs());
    let mut d = InProc::start();
    d.ok(&["network", "create", "--subnet", &d.net.subnet(105), "keep"]);
    let port = 20005 + d.net.number() * 10;
    run_d(&d, &["--name", "web", "--network", "keep", "-p", &format!("127.0.0.1:{port}:80")], HTTPD);
    let ip = d.ip("web", "keep");
    // A daemon killed with a container running, plus debris of a half-made start: a veth of
    // ours nobody owns, an address allocated to nobody, a namespace of a container that is not
    // running.
    d.crash();
    let stray = format!("{}vdead01", d.net.link_prefix());
    let mut nl = wharf_network::netlink::Netlink::open().unwrap();
    nl.add_veth(&stray, &d.net.test_link(9), None, None).unwrap();
    let stray_ns = d.exec_root().join("c").join("f".repeat(32)).join("netns");
    wharf_network::netns::create_blocking(&stray_ns).unwrap();
    {
        let db = wharf_store::Db::open(&d.dir().join("data/wharf.db")).unwrap();
        let conn = db.conn();
        let doc: String = conn
            .query_row("SELECT doc FROM network_pools WHERE subnet = ?1", [d.net.subnet(105)], |r| r.get(0))
            .unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&doc).unwrap();
        v["allocated"].as_array_mut().unwrap().push(format!("10.{}.105.99", d.net.octet()).into());
        conn.execute("UPDATE network_pools SET doc = ?1 WHERE subnet = ?2", (v.to_string(), d.net.subnet(105)))
            .unwrap();
    }
    d.restart();
    assert!(!d.net.links().contains(&stray), "the stray veth is gone");
    assert!(!wharf_network::netns::is_netns_mount(&stray_ns), "the stray namespace is gone");
    let pools = d.ok(&["network", "inspect", "keep", "-f", "{{.Name}}"]);
    assert_eq!(pools, "keep");
    // The running container kept its address, port, and name.
    assert_eq!(d.ip("web", "keep"), ip);
    let got = eventually(5, || http_get(SocketAddr::from(([127, 0, 0, 1], port))).ok()).unwrap();
    assert!(got.ends_with("hello from busybox\n"), "{got}");
    assert_eq!(wget(&d, &["--network", "keep"], "http://web/").unwrap(), "hello from busybox");
    // The stray address is free again: a container asking for it gets it.
    let stray_ip = format!("10.{}.105.99", d.net.octet());
    run_d(&d, &["--name", "again", "--network", "keep", "--ip", &stray_ip], &["busybox", "sleep", "100"]);
    assert_eq!(d.ip("again", "keep"), stray_ip);
    d.finish_and_check_leaks();
}

#[test]
fn killed_mid_start_leaves_nothing_after_restart() {
    skip_unless!(reqs());
    let mut d = InProc::start();
    d.ok(&["network", "create", "--subnet", &d.net.subnet(106), "mid"]);
    for (i, delay) in [5u64, 20, 40, 80].into_iter().enumerate() {
        let name = format!("c{i}");
        let port = (20006 + d.net.number() * 10 + i as u16 * 1000).to_string();
        let mut child = d
            .docker(&["run", "-d", "--name", &name, "--network", "mid", "-p", &format!("127.0.0.1:{port}:80")])
            .args(HTTPD)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        d.crash();
        let _ = child.wait();
        d.restart();
        // Whatever the start had done, only running containers own links, addresses, rules.
        let running: Vec<String> = d.ok(&["ps", "-q", "--no-trunc"]).lines().map(str::to_owned).collect();
        let endpoints = d.daemon().networks().controller().endpoints();
        assert!(endpoints.iter().all(|e| running.contains(&e.container.to_string())), "{endpoints:?}");
        let veths: Vec<String> =
            d.net.links().into_iter().filter(|l| l.starts_with(&format!("{}v", d.net.link_prefix()))).collect();
        assert_eq!(veths.len(), endpoints.iter().filter(|e| e.join.host_ifname.is_some()).count(), "{veths:?}");
        let _ = d.run(&["rm", "-f", &name]);
    }
    d.finish_and_check_leaks();
}

#[test]
fn ps_filters_and_summary() {
    skip_unless!(reqs());
    let d = InProc::start();
    d.ok(&["network", "create", "--subnet", &d.net.subnet(107), "pn"]);
    run_d(&d, &["--name", "ca", "--network", "pn", "-p", "127.0.0.1::80"], HTTPD);
    run_d(&d, &["--name", "cb", "--expose", "7000"], &["busybox", "sleep", "100"]);
    assert_eq!(d.ok(&["ps", "--filter", "network=pn", "--format", "{{.Names}}"]), "ca");
    assert_eq!(d.ok(&["ps", "--filter", "network=bridge", "--format", "{{.Names}}"]), "cb");
    assert_eq!(d.ok(&["ps", "--filter", "publish=80", "--format", "{{.Names}}"]), "ca");
    assert_eq!(d.ok(&["ps", "--filter", "expose=7000", "--format", "{{.Names}}"]), "cb");
    assert_eq!(d.ok(&["ps", "--filter", "name=cb", "--format", "{{.Ports}}"]), "7000/tcp");
    assert_eq!(d.ok(&["ps", "--filter", "name=ca", "--format", "{{.Networks}}"]), "pn");
    d.finish_and_check_leaks();
}

/// A daemon to poke at by hand: `WHARF_HOLD=600 cargo test -p wharf-daemon --test networks hold --
/// --ignored --nocapture`, then `DOCKER_HOST=unix://<printed socket> docker …`. It stops early
/// (and cleans up) when the file `<dir>/stop` appears.
#[test]
#[ignore = "manual exploration only"]
fn hold() {
    skip_unless!(requirements());
    let d = InProc::start();
    eprintln!("DOCKER_HOST=unix://{}\nstop: touch {}/stop", d.socket.display(), d.dir().display());
    let secs = std::env::var("WHARF_HOLD").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let _ = eventually(secs, || d.dir().join("stop").exists().then_some(()));
}
