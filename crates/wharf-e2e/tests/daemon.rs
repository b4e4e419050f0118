//! wharfd as a process: configuration errors, the data-root lock, the socket, signals.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use wharf_testkit::{DaemonOptions, TestDaemon, require, run_text, skip_unless};

#[test]
fn bad_daemon_json_refuses_to_start() {
    skip_unless!(require::root());
    let d = TestDaemon::start();
    for (cfg, expect) in [
        (r#"{"bogus": 1}"#, "the following directives don't match any configuration option: bogus"),
        (r#"{"debug": "yes"}"#, "invalid value"),
        ("{not json", "invalid JSON"),
        (r#"{"userns-remap": "default"}"#, "not supported by wharf: userns-remap"),
    ] {
        let other = tempfile::tempdir().unwrap();
        let file = other.path().join("daemon.json");
        std::fs::write(&file, cfg).unwrap();
        let (code, _out, err) = run_text(
            std::process::Command::new(wharf_testkit::bin_path("wharfd"))
                .arg("--config-file")
                .arg(&file)
                .arg("--data-root")
                .arg(other.path().join("data"))
                .arg("--exec-root")
                .arg(other.path().join("exec"))
                .arg("-H")
                .arg(format!("unix://{}", other.path().join("s.sock").display())),
        );
        assert_ne!(code, 0, "{cfg}");
        assert!(err.contains(expect), "{cfg}: {err}");
        assert!(err.contains(&file.display().to_string()), "the message names the file: {err}");
    }
    // A flag and the file disagreeing is an error too.
    let other = tempfile::tempdir().unwrap();
    let file = other.path().join("daemon.json");
    std::fs::write(&file, r#"{"data-root": "/somewhere"}"#).unwrap();
    let (code, _, err) = run_text(
        std::process::Command::new(wharf_testkit::bin_path("wharfd"))
            .arg("--config-file")
            .arg(&file)
            .arg("--data-root")
            .arg("/elsewhere"),
    );
    assert_ne!(code, 0);
    assert!(err.contains("specified both as a flag and in the configuration file: data-root"), "{err}");
    drop(d);
}

#[test]
fn validate_flag_checks_and_exits() {
    skip_unless!(require::root());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("daemon.json");
    std::fs::write(&file, r#"{"log-driver":"json-file","insecure-registries":["r:5000"]}"#).unwrap();
    let (code, out, _) = run_text(
        std::process::Command::new(wharf_testkit::bin_path("wharfd")).arg("--config-file").arg(&file).arg("--validate"),
    );
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "configuration OK");
}

#[test]
fn second_daemon_on_the_same_data_root_is_refused() {
    skip_unless!(require::root());
    let d = TestDaemon::start();
    let other_sock = d.dir().join("other.sock");
    let (code, _, err) = run_text(
        std::process::Command::new(wharf_testkit::bin_path("wharfd"))
            .arg("--data-root")
            .arg(&d.data_root)
            .arg("--exec-root")
            .arg(d.dir().join("exec2"))
            .arg("--config-file")
            .arg(&d.config_file)
            .arg("-H")
            .arg(format!("unix://{}", other_sock.display())),
    );
    assert_ne!(code, 0);
    assert!(err.contains("is in use by another wharfd"), "{err}");
    assert!(err.contains(&format!("pid {}", d.pid())), "names the holder: {err}");
    // And a second daemon on the same socket but another root is refused too.
    let (code, _, err) = run_text(
        std::process::Command::new(wharf_testkit::bin_path("wharfd"))
            .arg("--data-root")
            .arg(d.dir().join("data2"))
            .arg("--exec-root")
            .arg(d.dir().join("exec3"))
            .arg("--config-file")
            .arg(&d.config_file)
            .arg("-H")
            .arg(d.host()),
    );
    assert_ne!(code, 0);
    assert!(err.contains("is in use by another daemon"), "{err}");
    // The first daemon is unharmed.
    assert_eq!(d.api("GET", "/_ping", b"").status, 200);
}

#[test]
fn socket_mode_and_clean_shutdown() {
    skip_unless!(require::root());
    let mut d = TestDaemon::start();
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let pidfile = d.exec_root.join("wharfd.pid");
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), d.pid().to_string());
    let wharf_gid = std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("wharf:").and_then(|r| r.split(':').nth(1)).and_then(|g| g.parse::<u32>().ok()));
    assert_eq!(meta.gid(), wharf_gid.unwrap_or(0), "group wharf if it exists, else root");
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(10)).expect("daemon exits on SIGTERM");
    assert!(status.success(), "{status}");
    assert!(!d.socket.exists(), "socket removed");
    assert!(!pidfile.exists(), "pid file removed");
    // It starts again on the same roots.
    d.restart();
    assert_eq!(d.api("GET", "/_ping", b"").status, 200);
}

#[test]
fn sigint_stops_and_sighup_reloads_config() {
    skip_unless!(require::root());
    let mut d = TestDaemon::start_with(DaemonOptions { config: Some(r#"{"labels":["a=1"]}"#.into()), args: vec![] });
    assert_eq!(d.api("GET", "/info", b"").json()["Labels"], serde_json::json!(["a=1"]));
    std::fs::write(&d.config_file, r#"{"labels":["b=2"],"debug":true}"#).unwrap();
    d.signal(libc::SIGHUP);
    let mut labels = serde_json::Value::Null;
    for _ in 0..100 {
        labels = d.api("GET", "/info", b"").json()["Labels"].clone();
        if labels == serde_json::json!(["b=2"]) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(labels, serde_json::json!(["b=2"]));
    assert_eq!(d.api("GET", "/info", b"").json()["Debug"], true);
    // A broken file on reload keeps the running configuration.
    std::fs::write(&d.config_file, "{broken").unwrap();
    d.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(d.api("GET", "/info", b"").json()["Labels"], serde_json::json!(["b=2"]));
    assert!(d.log().contains("reload failed"), "{}", d.log());
    d.signal(libc::SIGINT);
    assert!(d.wait_exit(Duration::from_secs(10)).expect("exits on SIGINT").success());
}

#[test]
fn tcp_listener_serves_the_api() {
    skip_unless!(require::root());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let d = TestDaemon::start_with(DaemonOptions {
        config: None,
        args: vec!["-H".into(), format!("tcp://127.0.0.1:{port}")],
    });
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /v1.53/_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("OK"), "{resp}");
    assert_eq!(d.api("GET", "/_ping", b"").status, 200, "unix socket still served");
}
