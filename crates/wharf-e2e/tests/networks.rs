//! `wharf network …` and `wharf run --network/--network-alias/--ip/-p` against wharfd, compared
//! with the docker CLI on the same daemon: what `create` and `connect` send (the resulting
//! network and endpoint, compared field by field), `ls` tables, filters and formats, `inspect`,
//! `rm`, `prune` (prompt and report), and the messages and exit codes of failures. The daemon's
//! networking itself (bridges, DNS, NAT, ports) is tested in wharf-daemon's tests/networks.rs.
//! Every test ends by checking that the daemon's network slot left no link or firewall table.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value as Json;
use wharf_testkit::{TestDaemon, require, run_text, skip_unless};

fn requirements() -> Result<(), String> {
    require::root()?;
    require::overlayfs()?;
    require::program("docker")?;
    require::program("ip")?;
    require::program("nft")?;
    if !Path::new("/bin/busybox").exists() {
        return Err("needs /bin/busybox (busybox-static)".into());
    }
    Ok(())
}

type Out = (i32, String, String);

/// docker's output with its program name replaced by ours.
fn as_wharf(s: &str) -> String {
    s.replace("docker: ", "wharf: ").replace("'docker ", "'wharf ").replace("Usage:  docker ", "Usage:  wharf ")
}

fn docker(d: &TestDaemon, args: &[&str]) -> Out {
    run_text(&mut d.docker(args))
}

fn wharf(d: &TestDaemon, args: &[&str]) -> Out {
    run_text(&mut d.wharf(args))
}

fn ok(d: &TestDaemon, args: &[&str]) -> String {
    let (code, out, err) = docker(d, args);
    assert_eq!(code, 0, "docker {args:?}: {err}\n{out}");
    out
}

/// Runs `args` with both CLIs (docker first) and checks exit code, stdout and stderr agree.
fn same(d: &TestDaemon, args: &[&str]) -> Out {
    let (dc, dout, derr) = docker(d, args);
    let (wc, wout, werr) = wharf(d, args);
    assert_eq!(
        (wc, wout.as_str(), werr.as_str()),
        (dc, dout.as_str(), as_wharf(&derr).as_str()),
        "wharf {args:?} differs from docker"
    );
    (dc, dout, derr)
}

/// Like [`same`] for JSON output, compared as values: the daemon builds its maps (`Options`)
/// afresh for every answer, so their key order may differ from one request to the next.
fn same_json(d: &TestDaemon, args: &[&str]) {
    let (dc, dout, derr) = docker(d, args);
    let (wc, wout, werr) = wharf(d, args);
    assert_eq!((wc, werr.as_str()), (dc, as_wharf(&derr).as_str()), "wharf {args:?} differs from docker");
    let parse = |s: &str| -> Json { serde_json::from_str(s).unwrap_or_else(|e| panic!("{args:?}: {e}: {s}")) };
    assert_eq!(parse(&wout), parse(&dout), "wharf {args:?} differs from docker");
    assert_eq!(wout.lines().count(), dout.lines().count(), "{args:?}: layout differs:\n{wout}\n{dout}");
}

/// A command both CLIs must refuse the same way; `expect` is docker's message.
fn same_error(d: &TestDaemon, args: &[&str], expect: &str) {
    let (code, out, err) = same(d, args);
    assert_eq!((code, out.as_str(), err.trim_end()), (1, "", expect), "docker {args:?}");
}

/// `network inspect` of `name` without what differs between two creations (ID, time).
fn network_doc(d: &TestDaemon, name: &str) -> Json {
    let mut v: Json = serde_json::from_str(&ok(d, &["network", "inspect", name])).unwrap();
    let n = &mut v[0];
    for k in ["Id", "Created"] {
        n.as_object_mut().unwrap().remove(k);
    }
    n.clone()
}

fn is_id_line(s: &str) -> bool {
    s.len() == 65 && s.ends_with('\n') && s[..64].bytes().all(|b| b.is_ascii_hexdigit())
}

fn prune_with_input(cmd: &mut std::process::Command, input: &str) -> (i32, String) {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check_no_leaks(d: TestDaemon) {
    let net = ok(&d, &["network", "ls", "-q", "--filter", "type=custom"]);
    assert_eq!(net, "", "custom networks left");
    let mut d = d;
    d.stop();
    // The default bridge stays, as docker0 does (the slot removes it when the test ends).
    let leaks: Vec<String> = d.net.leaks().into_iter().filter(|l| *l != format!("link {}", d.net.bridge())).collect();
    assert!(leaks.is_empty(), "left on the host after the daemon stopped: {leaks:?}");
}

#[test]
fn network_create_sends_what_docker_sends() {
    skip_unless!(requirements());
    let d = TestDaemon::start();
    let o = d.net.octet();
    let s100 = d.net.subnet(100);
    let s101 = d.net.subnet(101);
    let g100 = format!("10.{o}.100.254");
    let r100 = format!("10.{o}.100.128/25");
    let aux = format!("router=10.{o}.101.2");
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec![
            "--subnet",
            &s100,
            "--gateway",
            &g100,
            "--ip-range",
            &r100,
            "--label",
            "tier=web",
            "--label",
            "bare",
            "-o",
            "com.docker.network.driver.mtu=1400",
            "--opt",
            "com.docker.network.bridge.enable_icc=false",
            "--internal",
            "--attachable",
        ],
        vec!["-d", "bridge", "--subnet", &s101, "--aux-address", &aux, "--ipam-opt", "foo=bar", "--ipv4"],
        vec!["--ipv6=false", "--scope", "local", "--ipam-driver", "default"],
    ];
    for args in &cases {
        let mut theirs = vec!["network", "create"];
        theirs.extend_from_slice(args);
        theirs.push("n1");
        let (code, out, err) = docker(&d, &theirs);
        assert!(code == 0 && is_id_line(&out), "docker {theirs:?}: {err}{out}");
        let want = network_doc(&d, "n1");
        assert_eq!(ok(&d, &["network", "rm", "n1"]), "n1\n");
        let (code, out, err) = wharf(&d, &theirs);
        assert!(code == 0 && is_id_line(&out) && err.is_empty(), "wharf {theirs:?}: {err}{out}");
        assert_eq!(network_doc(&d, "n1"), want, "wharf {theirs:?}");
        let (code, out, _) = wharf(&d, &["network", "rm", "n1"]);
        assert_eq!((code, out.as_str()), (0, "n1\n"));
    }

    // Refusals: the CLI's own checks and the daemon's answers, with docker's words and codes.
    ok(&d, &["network", "create", "--subnet", &s100, "front"]);
    same_error(
        &d,
        &["network", "create", "front"],
        "Error response from daemon: network with name front already exists",
    );
    same_error(
        &d,
        &["network", "create", "--gateway", "10.9.9.9", "x"],
        "every ip-range or gateway must have a corresponding subnet",
    );
    same_error(
        &d,
        &["network", "create", "--subnet", &s101, "--gateway", "10.9.9.9", "x"],
        "no matching subnet for gateway 10.9.9.9",
    );
    same_error(
        &d,
        &["network", "create", "--subnet", &s101, "--ip-range", "10.9.9.0/24", "x"],
        "no matching subnet for range 10.9.9.0/24",
    );
    same_error(
        &d,
        &["network", "create", "--subnet", &format!("10.{o}.0.0/16"), "--subnet", &s101, "x"],
        "multiple overlapping subnet configuration is not supported",
    );
    same_error(
        &d,
        &["network", "create", "--subnet", "bogus", "--gateway", "10.9.9.9", "x"],
        "invalid subnet: invalid CIDR address: bogus",
    );
    for args in [
        &["network", "create", "--subnet", &s100, "x"][..],
        &["network", "create", "--subnet", "bogus", "x"],
        &["network", "create", "-d", "nosuchdriver", "x"],
        &["network", "create", "-d", "host", "x"],
        &["network", "create", "-d", "overlay", "x"],
        &["network", "create", "--ipv4=false", "x"],
        &["network", "create", "bridge"],
        &["network", "create", "-o", "com.docker.network.driver.mtu=big", "x"],
    ] {
        let (code, out, err) = same(&d, args);
        assert!(code != 0 && out.is_empty() && err.starts_with("Error response from daemon: "), "{args:?}: {err}");
    }
    assert_eq!(ok(&d, &["network", "ls", "-q", "-f", "name=x"]), "");
    assert_eq!(ok(&d, &["network", "rm", "front"]), "front\n");
    check_no_leaks(d);
}

#[test]
fn network_ls_inspect_rm_prune_agree_with_docker() {
    skip_unless!(requirements());
    let d = TestDaemon::start();
    d.import_busybox();
    let s100 = d.net.subnet(100);
    ok(&d, &["network", "create", "--subnet", &s100, "--label", "tier=web", "front"]);
    ok(&d, &["network", "create", "--internal", "--label", "tier=db", "back"]);
    ok(&d, &["network", "create", "net10"]);
    ok(&d, &["network", "create", "net9"]);
    let front = ok(&d, &["network", "inspect", "-f", "{{.Id}}", "front"]).trim().to_owned();

    let ls = same(&d, &["network", "ls"]).1;
    let names: Vec<&str> = ls.lines().skip(1).map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(names, ["back", "bridge", "front", "host", "net9", "net10", "none"], "{ls}");
    let id_prefix = &front[..5];
    for args in [
        &["network", "ls", "-q"][..],
        &["network", "ls", "--no-trunc"],
        &["network", "ls", "-q", "--no-trunc"],
        &["network", "ls", "--format", "json"],
        &["network", "ls", "--format", "raw"],
        &["network", "ls", "-q", "--format", "raw"],
        &["network", "ls", "-q", "--format", "{{.Name}}"],
        &["network", "ls", "--format", "table"],
        &["network", "ls", "--format", "{{.Name}}\t{{.Internal}} {{.IPv4}} {{.IPv6}} {{.Labels}} {{.CreatedAt}}"],
        &["network", "ls", "--format", "table {{.Name}}\t{{.Driver}}\t{{.Internal}}\t{{.Labels}}\t{{.IPv6}}"],
        &["network", "ls", "--format", "table {{.ID}}\t{{.Label \"tier\"}}"],
        &["network", "ls", "--format", "{{.Name}}={{.Label \"tier\"}}"],
        &["network", "ls", "-f", "driver=bridge"],
        &["network", "ls", "-f", "name=net"],
        &["network", "ls", "-f", "label=tier"],
        &["network", "ls", "--filter", "label=tier=db", "--filter", "label=tier=web"],
        &["network", "ls", "-f", "type=custom", "-f", "name=ne"],
        &["network", "ls", "-f", "type=builtin"],
        &["network", "ls", "-f", "scope=local", "-q"],
        &["network", "ls", "-f", &format!("id={id_prefix}")],
        &["network", "ls", "-f", "dangling=true", "--format", "{{.Name}}"],
        &["network", "ls", "-f", "bogus=1"],
        &["network", "ls", "-f", "type=nosuch"],
        &["network", "ls", "-f", "nokey"],
        &["network", "list", "-q"],
        &["network", "inspect", "--format", "json", "back"],
        &["network", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Internal}} {{json .Labels}} {{.EnableIPv4}}", "back"],
        &["network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", "front"],
        &["network", "inspect", "nosuch"],
        &["network", "inspect", "-f", "{{.Name}}", "front", "nosuch", "back"],
        &["inspect", "--type", "network", "-f", "{{.Name}}", "front"],
    ] {
        same(&d, args);
    }
    for args in [
        &["network", "inspect", "front"][..],
        &["network", "inspect", "front", "bridge", "host"],
        &["network", "inspect", "-v", "bridge"],
        &["network", "inspect", "--format", "json", "bridge"],
    ] {
        same_json(&d, args);
    }
    let (_, _, err) = same(&d, &["network", "inspect", "nosuch"]);
    assert_eq!(err.trim_end(), "Error response from daemon: network nosuch not found");

    // rm: several names, errors on stderr and status 1, -f quiet about missing ones.
    let c = ok(&d, &["run", "-d", "--name", "user", "--network", "back", "busybox", "sleep", "1000"]);
    assert!(is_id_line(&c));
    same(&d, &["network", "rm", "back"]);
    same(&d, &["network", "rm", "host"]);
    same(&d, &["network", "rm", "-f", "nosuch"]);
    same(&d, &["network", "rm", "nosuch"]);
    ok(&d, &["network", "create", "gone"]);
    let (code, out, err) = wharf(&d, &["network", "rm", "gone", "nosuch", "back", "net9"]);
    assert_eq!(code, 1);
    assert_eq!(out, "gone\nnet9\n");
    let mut lines = err.lines();
    assert_eq!(lines.next(), Some("Error response from daemon: network nosuch not found"));
    assert!(
        lines.next().unwrap().starts_with(
            "Error response from daemon: error while removing network: network back has active endpoints (name:\"user\" id:\""
        ),
        "{err}"
    );
    assert_eq!(lines.next(), Some("exit status 1"));
    let (code, out, _) = wharf(&d, &["network", "remove", "-f", "nosuch", "net10"]);
    assert_eq!((code, out.as_str()), (0, "net10\n"));

    // prune: the prompt, `n` cancels, `y` prunes; filters; in-use and built-in networks stay.
    let warning = "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ";
    let theirs = prune_with_input(&mut d.docker(&["network", "prune"]), "n\n");
    assert_eq!(theirs.1, warning);
    assert_eq!(prune_with_input(&mut d.wharf(&["network", "prune"]), "n\n"), theirs);
    let setup = || {
        ok(&d, &["network", "create", "--label", "keep=1", "p1"]);
        ok(&d, &["network", "create", "p2"]);
    };
    setup();
    let theirs = same_as_prune(&d, &["network", "prune", "-f", "--filter", "label!=keep"]);
    assert_eq!(theirs, "Deleted Networks:\nfront\np2\n\n");
    // Both pruned the same: recreate what docker pruned for the next comparison.
    ok(&d, &["network", "create", "--subnet", &s100, "--label", "tier=web", "front"]);
    ok(&d, &["network", "create", "p2"]);
    let theirs = prune_with_input(&mut d.docker(&["network", "prune"]), "y\n");
    assert_eq!(theirs.1, format!("{warning}Deleted Networks:\nfront\np1\np2\n\n"));
    ok(&d, &["network", "create", "--subnet", &s100, "--label", "tier=web", "front"]);
    setup();
    assert_eq!(prune_with_input(&mut d.wharf(&["network", "prune"]), "y\n"), theirs);
    same(&d, &["network", "prune", "-f"]);
    same(&d, &["network", "prune", "-f", "--filter", "bogus=1"]);
    same(&d, &["network", "prune", "-f", "--filter", "nokey"]);
    ok(&d, &["rm", "-f", "user"]);
    assert_eq!(ok(&d, &["network", "prune", "-f"]), "Deleted Networks:\nback\n\n");
    check_no_leaks(d);
}

/// `network prune -f …` with docker then (after the same networks are made again by the
/// caller's state being equal) with wharf; returns docker's stdout.
fn same_as_prune(d: &TestDaemon, args: &[&str]) -> String {
    let before = ok(d, &["network", "ls", "--format", "{{.Name}}|{{.Labels}}|{{.Internal}}"]);
    let (dc, dout, derr) = docker(d, args);
    assert_eq!(dc, 0, "{derr}");
    // Put back what docker removed, with the same definitions.
    for line in before.lines() {
        let name = line.split('|').next().unwrap();
        if dout.lines().any(|l| l == name) {
            let doc = recreate_args(name, &before);
            let mut args = vec!["network".to_owned(), "create".to_owned()];
            args.extend(doc);
            args.push(name.to_owned());
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            ok(d, &refs);
        }
    }
    let after = ok(d, &["network", "ls", "--format", "{{.Name}}|{{.Labels}}|{{.Internal}}"]);
    assert_eq!(after, before);
    let (wc, wout, werr) = wharf(d, args);
    assert_eq!((wc, wout.as_str(), werr.as_str()), (dc, dout.as_str(), derr.as_str()), "{args:?}");
    dout
}

/// Create flags that remake a pruned network (labels and `--internal`; subnets are the pool's),
/// from a `name|labels|internal` listing.
fn recreate_args(name: &str, listing: &str) -> Vec<String> {
    let line = listing.lines().find(|l| l.split('|').next() == Some(name)).unwrap();
    let parts: Vec<&str> = line.split('|').collect();
    let mut args = Vec::new();
    for kv in parts[1].split(',').filter(|kv| !kv.is_empty()) {
        args.push("--label".to_owned());
        args.push(kv.to_owned());
    }
    if parts[2] == "true" {
        args.push("--internal".to_owned());
    }
    args
}

/// The endpoint `container` has on `network`, without what a new attachment changes.
fn endpoint_doc(d: &TestDaemon, container: &str, network: &str) -> Json {
    let f = format!("{{{{json (index .NetworkSettings.Networks \"{network}\")}}}}");
    let mut v: Json = serde_json::from_str(ok(d, &["inspect", "-f", &f, container]).trim()).unwrap();
    for k in ["EndpointID", "MacAddress"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

#[test]
fn network_connect_disconnect_and_run_flags_agree_with_docker() {
    skip_unless!(requirements());
    let d = TestDaemon::start();
    d.import_busybox();
    let o = d.net.octet();
    let s100 = d.net.subnet(100);
    ok(&d, &["network", "create", "--subnet", &s100, "front"]);
    ok(&d, &["network", "create", "back"]);
    ok(&d, &["run", "-d", "--name", "app", "busybox", "sleep", "1000"]);
    let ip = format!("10.{o}.100.77");
    for args in
        [vec!["--alias", "www", "--alias", "web2,web3", "--ip", ip.as_str()], vec!["--driver-opt", "k=v"], vec![]]
    {
        let mut theirs = vec!["network", "connect"];
        theirs.extend_from_slice(&args);
        theirs.extend_from_slice(&["front", "app"]);
        let (code, out, err) = docker(&d, &theirs);
        assert_eq!((code, out.as_str()), (0, ""), "{err}");
        let want = endpoint_doc(&d, "app", "front");
        assert_eq!(ok(&d, &["network", "disconnect", "front", "app"]), "");
        let (code, out, err) = wharf(&d, &theirs);
        assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""), "wharf {theirs:?}");
        assert_eq!(endpoint_doc(&d, "app", "front"), want, "wharf {theirs:?}");
        let (code, out, err) = wharf(&d, &["network", "disconnect", "front", "app"]);
        assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    }
    // The alias resolves from another container on the network (the embedded DNS).
    let (code, _, err) = wharf(&d, &["network", "connect", "--alias", "www", "front", "app"]);
    assert_eq!(code, 0, "{err}");
    let out = ok(&d, &["run", "--rm", "--network", "front", "busybox", "nslookup", "www"]);
    assert!(out.contains(&format!("10.{o}.100.")), "{out}");
    for args in [
        &["network", "connect", "front", "app"][..],
        &["network", "connect", "front", "nosuch"],
        &["network", "connect", "nosuch", "app"],
        &["network", "connect", "--ip", "10.1.2.3", "bridge", "app"],
        &["network", "connect", "--ip", "bogus", "back", "app"],
        &["network", "connect", "--driver-opt", "novalue", "back", "app"],
        &["network", "disconnect", "back", "app"],
        &["network", "disconnect", "nosuch", "app"],
        &["network", "disconnect", "front", "nosuch"],
    ] {
        let (code, out, err) = same(&d, args);
        assert!(code == 1 && out.is_empty() && !err.is_empty(), "{args:?}");
    }
    // State-changing ones: docker's run, the state put back, then ours.
    for (args, undo) in [
        (&["network", "disconnect", "-f", "front", "app"][..], &["network", "connect", "front", "app"][..]),
        (&["network", "disconnect", "bridge", "app"], &["network", "connect", "bridge", "app"]),
    ] {
        let theirs = docker(&d, args);
        assert_eq!(theirs, (0, String::new(), String::new()), "{args:?}");
        ok(&d, undo);
        assert_eq!(wharf(&d, args), theirs, "{args:?}");
    }
    let (code, _, err) = wharf(&d, &["network", "connect", "bridge", "app"]);
    assert_eq!(code, 0, "{err}");
    assert!(d.api("GET", "/containers/app/json", b"").json()["NetworkSettings"]["Networks"]["bridge"].is_object());

    // `run`/`create` network flags send what docker sends.
    let p = (20000 + d.net.number() * 10 + 5).to_string();
    let flags = [
        "--network",
        "front",
        "--network-alias",
        "api",
        "--ip",
        &format!("10.{o}.100.88"),
        "-p",
        &format!("127.0.0.1:{p}:80"),
        "-p",
        "8080/udp",
        "--expose",
        "9000",
        "--dns",
        "192.0.2.53",
        "--hostname",
        "h1",
    ];
    let show = "{{json .HostConfig.PortBindings}} {{json .HostConfig.NetworkMode}} {{json .Config.ExposedPorts}} {{json .HostConfig.Dns}} {{json .NetworkSettings.Networks.front.IPAMConfig}} {{json .NetworkSettings.Networks.front.Aliases}}";
    let mut theirs = vec!["create", "--name", "c1"];
    theirs.extend_from_slice(&flags);
    theirs.extend_from_slice(&["busybox", "sleep", "1000"]);
    ok(&d, &theirs);
    let want = ok(&d, &["inspect", "-f", show, "c1"]);
    ok(&d, &["rm", "c1"]);
    let mut ours = vec!["run", "-d", "--name", "c1"];
    ours.extend_from_slice(&flags);
    ours.extend_from_slice(&["busybox", "sleep", "1000"]);
    let (code, out, err) = wharf(&d, &ours);
    assert!(code == 0 && is_id_line(&out), "{err}");
    assert_eq!(ok(&d, &["inspect", "-f", show, "c1"]), want);
    assert_eq!(ok(&d, &["port", "c1", "80"]), format!("127.0.0.1:{p}\n"));
    let out = ok(&d, &["run", "--rm", "--network", "front", "busybox", "nslookup", "api"]);
    assert!(out.contains(&format!("10.{o}.100.88")), "{out}");
    for args in [
        &["run", "--rm", "--ip", "10.1.1.1", "busybox", "true"][..],
        &["run", "--rm", "--network", "nosuch", "busybox", "true"],
        &["run", "--rm", "--network-alias", "x", "busybox", "true"],
        &["run", "--rm", "--network", "front", "--ip", &format!("10.{o}.100.88"), "busybox", "true"],
    ] {
        let (dc, _, derr) = docker(&d, args);
        let (wc, _, werr) = wharf(&d, args);
        assert_eq!((wc, werr.trim_end()), (dc, as_wharf(&derr).trim_end()), "{args:?}");
    }
    ok(&d, &["rm", "-f", "app", "c1"]);
    ok(&d, &["network", "rm", "front", "back"]);
    check_no_leaks(d);
}
