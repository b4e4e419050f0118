//! The API's plumbing on the wire: version prefix, headers, errors, stubs, events.

use wharf_testkit::{TestDaemon, require, skip_unless};

#[test]
fn ping_has_dockers_headers_with_and_without_prefix() {
    skip_unless!(require::root());
    let d = TestDaemon::start();
    for path in ["/_ping", "/v1.53/_ping", "/v1.24/_ping"] {
        let r = d.api("GET", path, b"");
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.text(), "OK");
        assert_eq!(r.header("api-version"), Some("1.53"));
        assert_eq!(r.header("ostype"), Some("linux"));
        assert_eq!(r.header("docker-experimental"), Some("false"));
        assert_eq!(r.header("swarm"), Some("inactive"));
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.header("cache-control"), Some("no-cache, no-store, must-revalidate"));
        let server = r.header("server").unwrap();
        assert!(server.starts_with("Docker/") && server.ends_with(" (linux)"), "{server}");
        let h = d.api("HEAD", path, b"");
        assert_eq!(h.status, 200);
        assert_eq!(h.header("content-length"), Some("0"));
    }
}

#[test]
fn version_range_and_unknown_paths() {
    skip_unless!(require::root());
    let d = TestDaemon::start();
    let r = d.api("GET", "/v1.54/version", b"");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["message"], "client version 1.54 is too new. Maximum supported API version is 1.53");
    let r = d.api("GET", "/v1.23/version", b"");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
    );
    for (method, path) in [("GET", "/nope"), ("DELETE", "/version"), ("POST", "/v1.53/_ping"), ("GET", "/session")] {
        let r = d.api(method, path, b"");
        assert_eq!(r.status, 404, "{method} {path}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.text(), r#"{"message":"page not found"}"#);
        assert_eq!(r.header("api-version"), Some("1.53"), "every response carries Api-Version");
    }
    assert_eq!(d.api("OPTIONS", "/containers/json", b"").status, 200);
}

#[test]
fn version_and_info_report_the_engine() {
    skip_unless!(require::root());
    let d = TestDaemon::start();
    let v = d.api("GET", "/version", b"").json();
    assert_eq!(v["ApiVersion"], "1.53");
    assert_eq!(v["MinAPIVersion"], "1.24");
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Components"][0]["Name"], "Engine");
    assert_eq!(v["Components"][0]["Details"]["ApiVersion"], "1.53");
    let i = d.api("GET", "/v1.41/info", b"").json();
    assert_eq!(i["OSType"], "linux");
    assert_eq!(i["Swarm"]["ControlAvailable"], false);
    assert_eq!(i["Swarm"]["LocalNodeState"], "inactive");
    assert_eq!(i["DockerRootDir"], d.data_root.display().to_string());
    let ncpu = std::thread::available_parallelism().unwrap().get() as i64;
    assert!(i["NCPU"].as_i64().unwrap() >= ncpu.min(1));
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: i64 = mem.lines().next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(i["MemTotal"].as_i64().unwrap(), kb * 1024);
    let uname = std::process::Command::new("uname").arg("-r").output().unwrap();
    assert_eq!(i["KernelVersion"], String::from_utf8_lossy(&uname.stdout).trim());
    assert!(i["CgroupVersion"] == "1" || i["CgroupVersion"] == "2");
    assert_eq!(i["CgroupDriver"], "cgroupfs");
    assert!(i["SecurityOptions"].as_array().unwrap().iter().any(|o| o == "name=seccomp,profile=builtin"));
    assert!(i["Runtimes"]["wharf"]["path"].as_str().unwrap().ends_with("wharf-runtime"));
}

#[test]
fn swarm_and_plugin_stubs() {
    skip_unless!(require::root());
    let d = TestDaemon::start();
    for path in
        ["/swarm", "/nodes", "/services?filters={}", "/tasks", "/secrets", "/configs", "/swarm/init", "/v1.50/nodes/x"]
    {
        let r = d.api("GET", path, b"");
        assert_eq!(r.status, 503, "{path}");
        assert!(r.json()["message"].as_str().unwrap().starts_with("This node is not a swarm manager."));
    }
    assert_eq!(d.api("GET", "/plugins", b"").text(), "[]");
    let r = d.api("GET", "/plugins/foo/json", b"");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "plugin \"foo\" not found");
}

#[test]
fn events_replay_filter_and_version_shape() {
    skip_unless!(require::root());
    let d = TestDaemon::start();
    d.signal(libc::SIGHUP);
    // Wait for the reload to be published, then read it back from the ring.
    let mut events = Vec::new();
    for _ in 0..100 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let r = d.api("GET", &format!("/events?since=0&until={now}.999999999"), b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        events = r.text().lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).collect();
        if !events.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(events.len(), 1, "one reload event");
    let e = &events[0];
    assert_eq!(e["Type"], "daemon");
    assert_eq!(e["Action"], "reload");
    assert_eq!(e["scope"], "local");
    assert!(e["timeNano"].as_i64().unwrap() / 1_000_000_000 == e["time"].as_i64().unwrap());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let filtered =
        d.api("GET", &format!("/events?since=0&until={now}&filters=%7B%22type%22%3A%5B%22container%22%5D%7D"), b"");
    assert_eq!(filtered.text(), "", "type=container filters the daemon event out");
    let bad = d.api("GET", "/events?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D", b"");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["message"], "invalid filter 'bogus'");
    let bad = d.api("GET", "/events?since=yesterday", b"");
    assert_eq!(bad.status, 400);
    let bad = d.api("GET", "/events?filters=%7B", b"");
    assert_eq!(bad.status, 400);
}
