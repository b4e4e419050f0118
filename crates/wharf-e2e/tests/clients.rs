//! Real clients against wharfd: the docker CLI, docker-py, bollard, and our own CLI.

use std::process::Stdio;
use std::time::Duration;

use wharf_testkit::{TestDaemon, read_with_timeout, require, run_text, skip_unless};

#[test]
fn docker_cli_version_negotiates_without_downgrade() {
    skip_unless!(require::root(), require::program("docker"));
    let d = TestDaemon::start();
    let (code, out, err) = run_text(&mut d.docker(&["version"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("API version:       1.50\n"), "client at 1.50: {out}");
    assert!(out.contains("API version:      1.53 (minimum version 1.24)"), "{out}");
    assert!(!out.contains("downgraded"), "{out}");
    let (code, out, _) = run_text(&mut d.docker(&[
        "version",
        "--format",
        "{{.Server.APIVersion}}/{{.Server.MinAPIVersion}}/{{.Server.Os}}",
    ]));
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "1.53/1.24/linux");
}

#[test]
fn docker_cli_info_and_errors() {
    skip_unless!(require::root(), require::program("docker"));
    let d = TestDaemon::start();
    let (code, out, err) = run_text(&mut d.docker(&["info"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(" Storage Driver: overlay2"), "{out}");
    assert!(out.contains(&format!(" Docker Root Dir: {}", d.data_root.display())), "{out}");
    assert!(out.contains(" Swarm: inactive"), "{out}");
    let (code, out, _) = run_text(&mut d.docker(&["info", "--format", "{{.OSType}} {{.Swarm.LocalNodeState}}"]));
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "linux inactive");

    let (code, _, err) = run_text(&mut d.docker(&["node", "ls"]));
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "Error response from daemon: This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again."
    );
    let (code, out, err) = run_text(&mut d.docker(&["inspect", "nosuch"]));
    assert_eq!(code, 1);
    assert_eq!(out.trim(), "[]");
    assert_eq!(err.trim(), "Error: No such object: nosuch");
    let (code, out, _) = run_text(&mut d.docker(&["plugin", "ls"]));
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "ID        NAME      DESCRIPTION   ENABLED");
}

#[test]
fn docker_cli_events_replay_and_stream() {
    skip_unless!(require::root(), require::program("docker"));
    let d = TestDaemon::start();
    let live = d
        .docker(&["events", "--filter", "type=daemon", "--format", "{{.Type}} {{.Action}}"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The subscription must be in place before the event: wait until /info counts a listener.
    for _ in 0..200 {
        if d.api("GET", "/info", b"").json()["NEventsListener"].as_i64() == Some(1) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    d.signal(libc::SIGHUP);
    let streamed = read_with_timeout(live, Duration::from_secs(2));
    assert_eq!(streamed.trim(), "daemon reload", "live stream");
    wharf_testkit::wait_next_second();
    let (code, out, err) = run_text(&mut d.docker(&["events", "--since", "5m", "--until", "0s"]));
    assert_eq!(code, 0, "{err}");
    let line = out.trim();
    assert!(line.contains(" daemon reload "), "{line}");
    assert!(line.contains("live-restore=true"), "{line}");
    let (_, out, _) = run_text(&mut d.docker(&["events", "--since", "5m", "--until", "0s", "--filter", "event=start"]));
    assert_eq!(out, "");
}

#[test]
fn docker_py_version() {
    skip_unless!(require::root(), require::python_module("docker"));
    let d = TestDaemon::start();
    let script = format!(
        "import docker\nc = docker.DockerClient(base_url='{}')\nv = c.version()\nprint(v['ApiVersion'], v['MinAPIVersion'], c.api.api_version)\nprint(c.ping())\nprint(c.info()['OSType'])",
        d.host()
    );
    let (code, out, err) = run_text(std::process::Command::new("python3").args(["-c", &script]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1.53 1.24 1.53\nTrue\nlinux\n");
}

#[tokio::test]
async fn bollard_version_and_ping() {
    skip_unless!(require::root());
    let d = TestDaemon::start();
    let docker =
        bollard::Docker::connect_with_unix(d.socket.to_str().unwrap(), 30, bollard::API_DEFAULT_VERSION).unwrap();
    let v = docker.version().await.unwrap();
    assert_eq!(v.api_version.as_deref(), Some("1.53"));
    assert_eq!(docker.ping().await.unwrap(), "OK");
    let docker = docker.negotiate_version().await.unwrap();
    assert_eq!(docker.client_version().to_string(), "1.53");
    let info = docker.info().await.unwrap();
    assert_eq!(info.os_type.as_deref(), Some("linux"));
}

#[test]
fn wharf_cli_system_commands() {
    skip_unless!(require::root());
    let d = TestDaemon::start();
    let (code, out, err) =
        run_text(&mut d.wharf(&["version", "--format", "{{.Server.APIVersion}} {{.Client.APIVersion}}"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "1.53 1.53");
    let (code, out, _) = run_text(&mut d.wharf(&["info"]));
    assert_eq!(code, 0);
    assert!(out.contains(" Cgroup Driver: cgroupfs"), "{out}");
    let (code, out, _) = run_text(&mut d.wharf(&["system", "info", "--format", "{{json .Swarm.LocalNodeState}}"]));
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "\"inactive\"");
    d.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(200));
    wharf_testkit::wait_next_second();
    let (code, out, _) =
        run_text(&mut d.wharf(&["events", "--since", "1m", "--until", "0s", "--format", "{{.Type}}/{{.Action}}"]));
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "daemon/reload");
    let (code, out, _) =
        run_text(&mut d.wharf(&["system", "events", "--since", "1m", "--until", "0s", "--format", "json"]));
    assert_eq!(code, 0);
    let e: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(e["Action"], "reload");
    assert_eq!(e["scope"], "local", "json keeps the wire names");
    let (code, _, err) = run_text(&mut d.wharf(&["events", "--filter", "nonsense"]));
    assert_eq!(code, 125, "usage errors exit 125");
    assert!(err.contains("bad format of filter"), "{err}");
    let (code, _, err) = run_text(&mut d.wharf(&["events", "--filter", "bogus=1", "--until", "0s"]));
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "Error response from daemon: invalid filter 'bogus'");
    let (code, _, err) = run_text(&mut d.wharf(&["--no-such-flag"]));
    assert_eq!(code, 125, "{err}");
}

#[test]
fn wharf_cli_says_when_the_daemon_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    let (code, _, err) = run_text(
        std::process::Command::new(wharf_testkit::bin_path("wharf"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .arg("info"),
    );
    assert_eq!(code, 1);
    assert!(err.contains("Cannot connect to the Wharf daemon at unix://"), "{err}");
    assert!(err.contains("Is the wharf daemon running?"), "{err}");
}
