//! Registries end to end: the docker CLI, docker-py and `wharf` against a wharfd that pulls
//! from and pushes to real registry servers on 127.0.0.1 — our own (`wharf-registry serve`,
//! with and without htpasswd auth) and Debian's `docker-registry` when installed — plus a
//! scripted hostile/slow registry (python3) for digest mismatches and a SIGKILL mid-pull.

use std::borrow::BorrowMut;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use wharf_testkit::{TestDaemon, bin_path, require, run_text, skip_unless};

fn run(mut cmd: impl BorrowMut<Command>) -> (i32, String, String) {
    run_text(cmd.borrow_mut())
}

fn ok(mut cmd: impl BorrowMut<Command>) -> String {
    let cmd = cmd.borrow_mut();
    let (code, out, err) = run_text(cmd);
    assert_eq!(code, 0, "{cmd:?} failed: {out}{err}");
    out
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A registry server child process; killed and its storage removed on drop.
struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Registry {
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `wharf-registry serve` on a free port (Basic auth with `htpasswd` when given).
    fn ours(htpasswd: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(bin_path("wharf-registry"));
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--root"]).arg(dir.path().join("root"));
        if let Some((u, p)) = htpasswd {
            let out = Command::new("htpasswd").args(["-Bbn", u, p]).output().expect("htpasswd");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).unwrap();
            cmd.arg("--htpasswd").arg(&file);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn wharf-registry");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected: {line:?}"));
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        Registry { child, _dir: dir, port }
    }

    /// Debian's `docker-registry` (distribution 2.x) on a free port.
    fn debian() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn docker-registry");
        let r = Registry { child, _dir: dir, port };
        r.wait_listening();
        r
    }

    /// `fake_registry.py` serving `dir` (see [`FAKE_REGISTRY`]).
    fn fake(dir: &Path, delay_ms: u64) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let script = tmp.path().join("fake_registry.py");
        std::fs::write(&script, FAKE_REGISTRY).unwrap();
        let port = free_port();
        let child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(dir)
            .arg(delay_ms.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn python3");
        let r = Registry { child, _dir: tmp, port };
        r.wait_listening();
        r
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "registry on {} did not start", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal distribution API over a directory: `manifest.json` (served for every tag or its
/// digest) and `blobs/<hex>`, sent as they are (so a blob file may lie about its digest), in
/// 64 KiB chunks with `delay_ms` between them.
const FAKE_REGISTRY: &str = r#"
import hashlib, http.server, os, sys, time
port, root, delay = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]) / 1000.0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send_body(self, body, ctype, extra=None, head=False):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items(): self.send_header(k, v)
        self.end_headers()
        if head: return
        for i in range(0, len(body), 65536):
            try:
                self.wfile.write(body[i:i + 65536]); self.wfile.flush()
            except Exception:
                return
            if delay: time.sleep(delay)
    def handle_any(self, head):
        p = self.path.split("?")[0]
        if p == "/v2/":
            return self.send_body(b"{}", "application/json", head=head)
        if "/manifests/" in p:
            m = open(os.path.join(root, "manifest.json"), "rb").read()
            d = "sha256:" + hashlib.sha256(m).hexdigest()
            return self.send_body(m, "application/vnd.docker.distribution.manifest.v2+json", {"Docker-Content-Digest": d}, head)
        if "/blobs/sha256:" in p:
            f = os.path.join(root, "blobs", p.rsplit(":", 1)[1])
            if os.path.exists(f):
                return self.send_body(open(f, "rb").read(), "application/octet-stream", head=head)
        body = b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head: self.wfile.write(body)
    def do_GET(self): self.handle_any(False)
    def do_HEAD(self): self.handle_any(True)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Writes an image for [`FAKE_REGISTRY`] into `dir`: gzip layers, config, schema 2 manifest.
/// `corrupt`: the first layer's blob file holds other bytes than its digest says.
fn fake_image(dir: &Path, layers: &[Vec<u8>], corrupt: bool) -> String {
    std::fs::create_dir_all(dir.join("blobs")).unwrap();
    let put = |data: &[u8]| {
        let d = sha256(data);
        std::fs::write(dir.join("blobs").join(&d[7..]), data).unwrap();
        d
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let gz = gzip(l);
        let d = put(&gz);
        if corrupt && i == 0 {
            let mut bad = gz.clone();
            let n = bad.len() / 2;
            bad[n] ^= 0xff;
            std::fs::write(dir.join("blobs").join(&d[7..]), &bad).unwrap();
        }
        diff_ids.push(sha256(l));
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": d, "size": gz.len(),
        }));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": wharf_arch(), "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cd = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cd, "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    std::fs::write(dir.join("manifest.json"), &manifest).unwrap();
    sha256(&manifest)
}

fn wharf_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn blobs(d: &TestDaemon) -> usize {
    std::fs::read_dir(d.data_root.join("content/blobs/sha256")).map(|r| r.count()).unwrap_or(0)
}

fn images(d: &TestDaemon) -> String {
    ok(d.docker(&["images", "-a", "--format", "{{.Repository}}:{{.Tag}}"]))
}

/// Push, rmi, pull (by tag, again, by digest), run; events and RepoDigests.
fn round_trip(d: &TestDaemon, reg: &Registry) {
    let image = format!("{}/wharf/busybox:t", reg.host());
    ok(d.docker(&["tag", "busybox:latest", &image]));
    let out = ok(d.docker(&["push", &image]));
    assert!(out.contains(&format!("The push refers to repository [{}/wharf/busybox]", reg.host())), "{out}");
    assert!(out.contains(": Pushed"), "{out}");
    assert!(out.contains("t: digest: sha256:") && out.contains(" size: "), "{out}");
    let out = ok(d.docker(&["push", &image]));
    assert!(out.contains(": Layer already exists"), "second push: {out}");

    ok(d.docker(&["rmi", &image]));
    ok(d.docker(&["rmi", "busybox:latest"]));
    assert_eq!(images(d).trim(), "", "everything removed");

    let out = ok(d.docker(&["pull", &image]));
    assert!(out.contains("t: Pulling from wharf/busybox"), "{out}");
    assert!(out.contains(": Pull complete"), "{out}");
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert!(out.contains(&format!("Status: Downloaded newer image for {image}")), "{out}");
    assert!(out.trim_end().ends_with(&image), "the CLI prints the reference last: {out}");
    let digest = out.lines().find_map(|l| l.strip_prefix("Digest: ")).unwrap().trim().to_owned();

    let out = ok(d.docker(&["pull", &image]));
    assert!(out.contains(&format!("Status: Image is up to date for {image}")), "{out}");

    let repo_digests = ok(d.docker(&["image", "inspect", "--format", "{{json .RepoDigests}}", &image]));
    assert!(repo_digests.contains(&format!("{}/wharf/busybox@{digest}", reg.host())), "{repo_digests}");

    // By digest, after removing the tag.
    ok(d.docker(&["rmi", &image]));
    let by_digest = format!("{}/wharf/busybox@{digest}", reg.host());
    let out = ok(d.docker(&["pull", &by_digest]));
    assert!(out.contains(&format!("{digest}: Pulling from wharf/busybox")), "{out}");
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    let out = ok(d.docker(&["run", "--rm", &by_digest, "echo", "pulled-and-ran"]));
    assert_eq!(out.trim(), "pulled-and-ran");

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1;
    let ev = ok(d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        &now.to_string(),
        "--filter",
        "type=image",
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ]));
    assert!(ev.contains(&format!("push {image}")), "{ev}");
    assert!(ev.contains(&format!("pull {image}")), "{ev}");
}

#[test]
fn docker_cli_push_pull_run_through_our_registry() {
    skip_unless!(require::root(), require::program("docker"), require::busybox());
    let reg = Registry::ours(None);
    let d = TestDaemon::start();
    d.import_busybox();
    round_trip(&d, &reg);

    // Errors: a repository or a tag the registry does not have.
    let (code, _, err) = run(d.docker(&["pull", &format!("{}/nosuch/repo:v1", reg.host())]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("{}/nosuch/repo", reg.host())) && err.contains("not found"), "{err}");
    let (code, _, err) = run(d.docker(&["pull", &format!("{}/wharf/busybox:nope", reg.host())]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("manifest for {}/wharf/busybox:nope not found: manifest unknown", reg.host())),
        "{err}"
    );
    let r = d.api("POST", &format!("/images/create?fromImage={}/wharf/busybox&tag=nope", reg.host()), b"");
    assert_eq!(r.status, 404, "{}", r.text());
    // Pushing what does not exist locally.
    let (code, _, err) = run(d.docker(&["push", &format!("{}/wharf/none:v1", reg.host())]));
    assert_eq!(code, 1);
    assert!(err.contains("An image does not exist locally with the tag"), "{err}");

    // distribution inspect.
    let r = d.api("GET", &format!("/distribution/{}/wharf/busybox:t/json", reg.host()), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    assert!(v["Descriptor"]["digest"].as_str().unwrap().starts_with("sha256:"), "{v}");
    assert_eq!(v["Platforms"][0]["os"], "linux", "{v}");
    // Search: distribution registries have no v1 search.
    let r = d.api("GET", &format!("/images/search?term={}/wharf", reg.host()), b"");
    assert!(r.status >= 400, "{}", r.text());

    // A build pulls the FROM image it does not have.
    for id in ok(d.docker(&["images", "-aq"])).split_whitespace() {
        ok(d.docker(&["rmi", "-f", id]));
    }
    let dockerfile = format!("FROM {}/wharf/busybox:t\nRUN echo built > /f\nCMD [\"cat\", \"/f\"]\n", reg.host());
    let mut cmd = d.docker(&["build", "-t", "frompull", "-"]);
    cmd.env("DOCKER_BUILDKIT", "0").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(dockerfile.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("Pulling from wharf/busybox") && out.contains("Successfully tagged frompull:latest"), "{out}");
    assert_eq!(ok(d.docker(&["run", "--rm", "frompull"])).trim(), "built");
}

#[test]
fn docker_cli_push_pull_through_debian_docker_registry() {
    skip_unless!(require::root(), require::program("docker"), require::busybox());
    if !Path::new("/usr/bin/docker-registry").exists() {
        eprintln!("SKIP: /usr/bin/docker-registry is not installed (apt install docker-registry)");
        return;
    }
    let reg = Registry::debian();
    let d = TestDaemon::start();
    d.import_busybox();
    round_trip(&d, &reg);
    let (code, _, err) = run(d.docker(&["pull", &format!("{}/wharf/busybox:nope", reg.host())]));
    assert_eq!(code, 1);
    assert!(err.contains("manifest unknown"), "{err}");
}

#[test]
fn docker_login_push_pull_with_htpasswd_auth() {
    skip_unless!(require::root(), require::program("docker"), require::program("htpasswd"), require::busybox());
    let reg = Registry::ours(Some(("wharfuser", "s3cret")));
    let d = TestDaemon::start();
    d.import_busybox();
    let image = format!("{}/private/bb:v1", reg.host());
    ok(d.docker(&["tag", "busybox:latest", &image]));

    // Without credentials.
    let (code, _, err) = run(d.docker(&["push", &image]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unauthorized") || err.contains("authentication required"), "{err}");

    // A wrong password: 401 with Docker's wording, nothing stored.
    let (code, _, err) = run(d.docker(&["login", "-u", "wharfuser", "-p", "wrong", &reg.host()]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("login attempt to http://{}/v2/ failed with status: 401 Unauthorized", reg.host())),
        "{err}"
    );
    let r = d.api(
        "POST",
        "/auth",
        format!(r#"{{"username":"wharfuser","password":"wrong","serveraddress":"{}"}}"#, reg.host()).as_bytes(),
    );
    assert_eq!(r.status, 401, "{}", r.text());

    let (code, out, err) = run(d.docker(&["login", "-u", "wharfuser", "-p", "s3cret", &reg.host()]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Login Succeeded"), "{out}");
    let cfg = std::fs::read_to_string(d.dir().join("docker-config/config.json")).unwrap();
    assert!(cfg.contains(&reg.host()), "{cfg}");

    let out = ok(d.docker(&["push", &image]));
    assert!(out.contains("v1: digest: sha256:"), "{out}");
    ok(d.docker(&["rmi", &image]));
    let out = ok(d.docker(&["pull", &image]));
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");

    ok(d.docker(&["logout", &reg.host()]));
    ok(d.docker(&["rmi", &image]));
    let (code, _, err) = run(d.docker(&["pull", &image]));
    assert_eq!(code, 1, "pull without credentials must fail: {err}");
    assert!(err.contains("pull access denied for") && err.contains("may require 'docker login'"), "{err}");

    // The wharf CLI: login stores base64 auths like docker, pull and push use them.
    let (code, out, err) = run(d.wharf(&["login", "-u", "wharfuser", "-p", "bad", &reg.host()]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("401 Unauthorized"), "{err}");
    let out = ok(d.wharf(&["login", "-u", "wharfuser", "-p", "s3cret", &reg.host()]));
    assert!(out.contains("Login Succeeded"), "{out}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.dir().join("docker-config/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["auths"][reg.host()]["auth"], "d2hhcmZ1c2VyOnMzY3JldA==", "{cfg}");
    let out = ok(d.wharf(&["pull", &image]));
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    assert!(out.trim_end().ends_with(&image), "{out}");
    let out = ok(d.wharf(&["push", &image]));
    assert!(out.contains("Layer already exists") && out.contains("v1: digest: sha256:"), "{out}");
    let out = ok(d.wharf(&["logout", &reg.host()]));
    assert!(out.contains(&format!("Removing login credentials for {}", reg.host())), "{out}");
}

#[test]
fn docker_hub_unreachable_fails_cleanly() {
    skip_unless!(require::root(), require::program("docker"));
    let d = TestDaemon::start();
    let started = Instant::now();
    let mut child =
        d.docker(&["pull", "busybox:latest"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("docker pull busybox did not fail within 240s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("Error response from daemon: ") && err.contains("registry-1.docker.io"), "{err}");
    eprintln!("docker.io failed after {:?}: {}", started.elapsed(), err.trim());
}

#[test]
fn docker_py_pull_and_push() {
    skip_unless!(require::root(), require::python_module("docker"), require::busybox());
    let reg = Registry::ours(None);
    let d = TestDaemon::start();
    d.import_busybox();
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="{host}")
img = c.images.get("busybox:latest")
assert img.tag("{reg}/py/bb", "p1")
out = c.images.push("{reg}/py/bb", tag="p1", stream=True, decode=True)
msgs = list(out)
assert any("aux" in m and m["aux"]["Tag"] == "p1" for m in msgs), msgs
c.images.remove("{reg}/py/bb:p1")
pulled = c.images.pull("{reg}/py/bb", tag="p1")
assert "{reg}/py/bb:p1" in pulled.tags, pulled.tags
assert pulled.id == img.id, (pulled.id, img.id)
try:
    c.images.pull("{reg}/py/bb", tag="missing")
    raise SystemExit("pull of a missing tag succeeded")
except docker.errors.NotFound as e:
    assert "manifest unknown" in str(e), str(e)
print("ok")
"#,
        host = d.host(),
        reg = reg.host()
    );
    let (code, out, err) = run(Command::new("python3").args(["-c", &script]));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "ok");
}

#[test]
fn hostile_registry_digest_mismatch_registers_nothing() {
    skip_unless!(require::root(), require::program("docker"), require::program("python3"));
    let dir = tempfile::tempdir().unwrap();
    fake_image(dir.path(), &[layer_tar(&[("a.txt", b"hello")]), layer_tar(&[("b.txt", b"world")])], true);
    let reg = Registry::fake(dir.path(), 0);
    let d = TestDaemon::start();
    let before = blobs(&d);
    let (code, out, err) = run(d.docker(&["pull", &format!("{}/evil/img:t", reg.host())]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("digest mismatch") || err.contains("digest"), "{err}");
    assert_eq!(images(&d).trim(), "", "nothing half-registered");
    assert_eq!(blobs(&d), before, "the downloaded blobs are gone");
    assert_eq!(
        std::fs::read_dir(d.data_root.join("content/ingest")).map(|r| r.count()).unwrap_or(0),
        0,
        "no temp files left"
    );
}

#[test]
fn sigkill_during_a_pull_leaves_a_consistent_store() {
    skip_unless!(require::root(), require::program("docker"), require::program("python3"));
    let dir = tempfile::tempdir().unwrap();
    // Incompressible data so that the layer is big on the wire: 8 MiB at 64 KiB / 20 ms.
    let mut noise = vec![0u8; 8 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    fake_image(dir.path(), &[layer_tar(&[("small", b"s")]), layer_tar(&[("noise", &noise)])], false);
    let reg = Registry::fake(dir.path(), 20);
    let mut d = TestDaemon::start();
    let image = format!("{}/slow/img:t", reg.host());
    let mut child = d.docker(&["pull", &image]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    let mut line = String::new();
    while Instant::now() < deadline && reader.read_line(&mut line).unwrap_or(0) > 0 {
        seen.push_str(&line);
        if line.contains("Pulling fs layer") && seen.matches("Pulling fs layer").count() >= 2 {
            std::thread::sleep(Duration::from_millis(500));
            break;
        }
        line.clear();
    }
    d.kill9();
    let _ = child.wait();
    d.restart();
    assert_eq!(images(&d).trim(), "", "no half-visible image after the crash: {seen}");
    assert_eq!(blobs(&d), 0, "GC removed the blobs of the interrupted pull");
    assert_eq!(std::fs::read_dir(d.data_root.join("content/ingest")).map(|r| r.count()).unwrap_or(0), 0);
    // And the pull works afterwards (fast now).
    drop(reg);
    let reg = Registry::fake(dir.path(), 0);
    let image = format!("{}/slow/img:t", reg.host());
    let out = ok(d.docker(&["pull", &image]));
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    let _: PathBuf = d.data_root.clone();
}

/// `GET http://127.0.0.1:<port><path>` with `Accept`, without authentication; the body.
fn registry_get(port: u16, path: &str, accept: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: {accept}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"), "{head}\n{body}");
    body.to_owned()
}

fn image_id(d: &TestDaemon, image: &str) -> String {
    ok(d.docker(&["image", "inspect", "--format", "{{.Id}}", image])).trim().to_owned()
}

/// An imported (uncompressed) layer is gzipped by the first push only: later pushes, to the
/// same or another repository, reuse the stored gzip blob. The manifest is Docker's schema 2
/// with gzip layers; the blob lives exactly as long as the layer; `docker run` of the image
/// once it is gone pulls it back with the same ID.
#[test]
fn push_gzips_a_layer_once_and_run_pulls_the_same_image_back() {
    skip_unless!(require::root(), require::program("docker"), require::busybox());
    let reg = Registry::ours(None);
    let d = TestDaemon::start();
    d.import_busybox();
    let id = image_id(&d, "busybox:latest");
    let image = format!("{}/wharf/gz:v1", reg.host());
    ok(d.docker(&["tag", "busybox:latest", &image]));
    let compressions = |d: &TestDaemon| d.log().matches("compressed a layer for push").count();

    // The first push, through the API to see the progress: the layer is gzipped while it
    // uploads, and `Pushing` counts the uncompressed tar, as Docker's does.
    let before = blobs(&d);
    let r = d.api("POST", &format!("/images/{}/wharf/gz/push?tag=v1", reg.host()), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let messages: Vec<serde_json::Value> =
        r.text().lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
    let status = |s: &str| messages.iter().filter(|m| m["status"] == s).count();
    assert_eq!((status("Preparing"), status("Pushed")), (1, 1), "{messages:?}");
    let tar_size = std::fs::metadata(wharf_testkit::busybox_rootfs_tar().unwrap()).unwrap().len();
    let last = messages.iter().rfind(|m| m["status"] == "Pushing").expect("Pushing progress");
    assert_eq!(last["progressDetail"]["total"], tar_size, "{last}");
    assert_eq!(last["progressDetail"]["current"], tar_size, "{last}");
    assert!(messages.iter().any(|m| m["aux"]["Tag"] == "v1"), "{messages:?}");
    assert_eq!(blobs(&d), before + 1, "the gzip blob is kept");
    assert_eq!(compressions(&d), 1, "{}", d.log());

    let manifest: serde_json::Value = serde_json::from_str(&registry_get(
        reg.port,
        "/v2/wharf/gz/manifests/v1",
        "application/vnd.docker.distribution.manifest.v2+json",
    ))
    .unwrap();
    assert_eq!(manifest["mediaType"], "application/vnd.docker.distribution.manifest.v2+json", "{manifest}");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.docker.container.image.v1+json", "{manifest}");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip", "{manifest}");
    let layer = layers[0]["digest"].as_str().unwrap().to_owned();
    let gz_path = d.data_root.join("content/blobs/sha256").join(&layer[7..]);
    let gz = std::fs::read(&gz_path).expect("the pushed blob is the stored one");
    assert_eq!(sha256(&gz), layer);
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip");

    // Again, with the docker CLI: nothing to compress, nothing to send.
    let out = ok(d.docker(&["push", &image]));
    assert!(out.contains(": Layer already exists"), "{out}");
    assert!(!out.contains("Pushing") && !out.contains(": Pushed"), "{out}");
    assert_eq!(blobs(&d), before + 1);
    assert_eq!(compressions(&d), 1, "no second compression");

    // Another repository of the same registry: mounted from the first.
    let other = format!("{}/other/gz:v2", reg.host());
    ok(d.docker(&["tag", "busybox:latest", &other]));
    let out = ok(d.docker(&["push", &other]));
    assert!(out.contains(": Mounted from wharf/gz"), "{out}");
    assert!(out.contains("v2: digest: sha256:"), "{out}");
    assert_eq!(compressions(&d), 1);

    // The wharf CLI renders the same stream.
    let out = ok(d.wharf(&["push", &image]));
    assert!(out.contains(": Layer already exists"), "{out}");

    // GC keeps the gzip blob while the layer lives, and removes it with the layer.
    ok(d.docker(&["rmi", &image, &other]));
    assert!(gz_path.exists(), "busybox:latest still has the layer");
    ok(d.docker(&["rmi", "busybox:latest"]));
    assert!(!gz_path.exists(), "the layer is gone, so is its gzip blob");
    assert_eq!(blobs(&d), 0);

    // `docker run` of an image that is not here: create → 404 → pull → create.
    let (code, out, err) = run(d.docker(&["run", "--rm", &image, "echo", "pulled-by-run"]));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "pulled-by-run");
    assert!(err.contains(&format!("Unable to find image '{image}' locally")), "{err}");
    assert!(err.contains(": Pull complete") && err.contains("Status: Downloaded newer image for"), "{err}");
    assert_eq!(image_id(&d, &image), id, "the pulled image is the pushed one");
}

/// A `docker-credential-<name>` helper on `PATH` (a shell script keeping one file per server
/// under `store/`, and appending each action to `calls`), as docker-credential-helpers speak.
struct FakeHelper {
    dir: tempfile::TempDir,
}

impl FakeHelper {
    const NAME: &str = "wharftest";

    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join(format!("docker-credential-{}", Self::NAME));
        std::fs::write(
            &script,
            r#"#!/bin/sh
here=$(dirname "$0")
mkdir -p "$here/store"
echo "$1" >> "$here/calls"
file() { printf '%s/store/%s' "$here" "$(printf '%s' "$1" | tr '/:' '__')"; }
case "$1" in
store)
  in=$(cat)
  server=$(printf '%s' "$in" | sed 's/.*"ServerURL":"\([^"]*\)".*/\1/')
  printf '%s' "$in" > "$(file "$server")" ;;
get)
  f=$(file "$(cat)")
  if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
erase)
  f=$(file "$(cat)")
  if [ -f "$f" ]; then rm "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
list)
  printf '{'; sep=''
  for f in "$here"/store/*; do
    [ -f "$f" ] || continue
    s=$(sed 's/.*"ServerURL":"\([^"]*\)".*/\1/' "$f"); u=$(sed 's/.*"Username":"\([^"]*\)".*/\1/' "$f")
    printf '%s"%s":"%s"' "$sep" "$s" "$u"; sep=','
  done
  printf '}\n' ;;
*) echo "unknown action $1"; exit 1 ;;
esac
"#,
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        FakeHelper { dir }
    }

    /// `cmd` with the helper's directory first on `PATH`.
    fn on_path(&self, mut cmd: Command) -> Command {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", self.dir.path().display()));
        cmd
    }

    /// The stored `{"ServerURL","Username","Secret"}` for `server`, if any.
    fn stored(&self, server: &str) -> Option<serde_json::Value> {
        let name = server.replace(['/', ':'], "_");
        let text = std::fs::read_to_string(self.dir.path().join("store").join(name)).ok()?;
        Some(serde_json::from_str(&text).unwrap())
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default()
    }
}

/// `credsStore`/`credHelpers`: `docker login` and `wharf login` store through the helper, with
/// an empty `auths` entry in the one config.json they share; each CLI's push/pull reads what
/// the other stored; logout erases; a missing helper fails with docker's words.
#[test]
fn credential_helpers_are_shared_by_docker_and_wharf() {
    skip_unless!(require::root(), require::program("docker"), require::program("htpasswd"), require::busybox());
    let reg = Registry::ours(Some(("helperuser", "h3lper")));
    let d = TestDaemon::start();
    d.import_busybox();
    let host = reg.host();
    let image = format!("{host}/helped/bb:v1");
    ok(d.docker(&["tag", "busybox:latest", &image]));
    let helper = FakeHelper::new();
    let config_path = d.dir().join("docker-config/config.json");
    std::fs::create_dir_all(config_path.parent().unwrap()).unwrap();
    let write_config = |v: serde_json::Value| std::fs::write(&config_path, v.to_string()).unwrap();
    let read_config =
        || -> serde_json::Value { serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap() };
    write_config(serde_json::json!({"credsStore": FakeHelper::NAME, "detachKeys": "ctrl-x,x"}));
    let docker = |args: &[&str]| helper.on_path(d.docker(args));
    let wharf = |args: &[&str]| helper.on_path(d.wharf(args));

    // docker login → the helper; config.json only records the login; other keys are kept.
    let (code, out, err) = run(docker(&["login", "-u", "helperuser", "-p", "h3lper", &host]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("stored unencrypted"), "{err}");
    assert_eq!(
        helper.stored(&host),
        Some(serde_json::json!({"ServerURL": host, "Username": "helperuser", "Secret": "h3lper"}))
    );
    let cfg = read_config();
    assert_eq!(cfg["auths"][&host], serde_json::json!({}), "{cfg}");
    assert_eq!(cfg["detachKeys"], "ctrl-x,x", "{cfg}");

    // wharf push reads docker's login from the helper.
    let out = ok(wharf(&["push", &image]));
    assert!(out.contains("v1: digest: sha256:"), "{out}");
    assert!(helper.calls().contains("get"), "{}", helper.calls());

    // wharf logout erases both; a second logout has nothing to do.
    let out = ok(wharf(&["logout", &host]));
    assert!(out.contains(&format!("Removing login credentials for {host}")), "{out}");
    assert_eq!(helper.stored(&host), None);
    assert!(read_config()["auths"].get(&host).is_none());
    assert_eq!(read_config()["credsStore"], FakeHelper::NAME);
    let out = ok(wharf(&["logout", &host]));
    assert!(out.contains(&format!("Not logged in to {host}")), "{out}");

    // Without a login the helper answers "not found": an anonymous pull, refused.
    ok(d.docker(&["rmi", &image]));
    let (code, _, err) = run(wharf(&["pull", &image]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("pull access denied") || err.contains("unauthorized"), "{err}");

    // wharf login → the helper (no warning); docker pull and logout use it.
    let (code, out, err) = run(wharf(&["login", "-u", "helperuser", "-p", "h3lper", &host]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Login Succeeded"), "{out}");
    assert!(!err.contains("stored unencrypted"), "{err}");
    assert_eq!(helper.stored(&host).unwrap()["Secret"], "h3lper");
    assert_eq!(read_config()["auths"][&host], serde_json::json!({}));
    let out = ok(docker(&["pull", &image]));
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    let out = ok(docker(&["logout", &host]));
    assert!(out.contains(&format!("Removing login credentials for {host}")), "{out}");
    assert_eq!(helper.stored(&host), None);

    // credHelpers picks the helper per registry, ahead of credsStore.
    write_config(serde_json::json!({"credsStore": "wharf-no-such-helper", "credHelpers": {&host: FakeHelper::NAME}}));
    ok(wharf(&["login", "-u", "helperuser", "-p", "h3lper", &host]));
    assert_eq!(helper.stored(&host).unwrap()["Username"], "helperuser");
    let out = ok(docker(&["push", &image]));
    assert!(out.contains("Layer already exists"), "{out}");

    // A helper that is not installed: a pull goes without credentials (docker ignores the
    // error), a login fails to save them with the helper client's words.
    write_config(serde_json::json!({"credsStore": "wharf-no-such-helper"}));
    for cmd in [docker(&["pull", &image]), wharf(&["pull", &image])] {
        let (code, _, err) = run(cmd);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("pull access denied"), "{err}");
    }
    let want = "Error saving credentials: error storing credentials - err: exec: \"docker-credential-wharf-no-such-helper\": executable file not found in $PATH";
    for cmd in [
        docker(&["login", "-u", "helperuser", "-p", "h3lper", &host]),
        wharf(&["login", "-u", "helperuser", "-p", "h3lper", &host]),
    ] {
        let (code, _, err) = run(cmd);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
}

/// skopeo (containers/image) against our registry server, with htpasswd auth: copy in from a
/// `wharf save` docker-archive, inspect, convert, list tags, copy out to OCI and dir layouts,
/// delete a manifest; then pull through wharfd with the docker CLI and run.
#[test]
fn skopeo_copies_to_and_from_our_registry_server() {
    skip_unless!(
        require::root(),
        require::program("docker"),
        require::program("skopeo"),
        require::program("htpasswd"),
        require::busybox()
    );
    let reg = Registry::ours(Some(("skopeo", "sk0peo")));
    let d = TestDaemon::start();
    d.import_busybox();
    let id = image_id(&d, "busybox:latest");
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("bb.tar");
    ok(d.wharf(&["save", "-o", archive.to_str().unwrap(), "busybox:latest"]));
    let host = reg.host();
    let repo = format!("docker://{host}/sk/bb");
    let creds = "skopeo:sk0peo";
    let skopeo = |args: &[&str]| {
        let mut cmd = Command::new("skopeo");
        // No user policy or auth files: the system default policy, credentials from flags only.
        cmd.env("REGISTRY_AUTH_FILE", tmp.path().join("auth.json")).args(args);
        cmd
    };
    let src = format!("docker-archive:{}", archive.display());

    // Refused without credentials, accepted with them.
    let (code, _, err) = run(skopeo(&["copy", "--dest-tls-verify=false", &src, &format!("{repo}:v1")]));
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("authentication required") || err.contains("unauthorized"), "{err}");
    ok(skopeo(&["copy", "--dest-tls-verify=false", "--dest-creds", creds, &src, &format!("{repo}:v1")]));

    let info: serde_json::Value =
        serde_json::from_str(&ok(skopeo(&["inspect", "--tls-verify=false", "--creds", creds, &format!("{repo}:v1")])))
            .unwrap();
    assert_eq!(info["Architecture"], wharf_arch(), "{info}");
    assert_eq!(info["Os"], "linux", "{info}");
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(1), "{info}");
    let v1_digest = info["Digest"].as_str().unwrap().to_owned();

    // Registry to registry, converted to OCI: another manifest for the same blobs.
    ok(skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--src-creds",
        creds,
        "--dest-creds",
        creds,
        "--format",
        "oci",
        &format!("{repo}:v1"),
        &format!("{repo}:v2"),
    ]));
    let raw: serde_json::Value = serde_json::from_str(&ok(skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        creds,
        &format!("{repo}:v2"),
    ])))
    .unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.manifest.v1+json", "{raw}");
    let tags = |expect: &[&str]| {
        let v: serde_json::Value =
            serde_json::from_str(&ok(skopeo(&["list-tags", "--tls-verify=false", "--creds", creds, &repo]))).unwrap();
        let mut got: Vec<&str> = v["Tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, expect, "{v}");
    };
    tags(&["v1", "v2"]);

    // Out again, to an OCI layout and a dir.
    let layout = tmp.path().join("layout");
    ok(skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        creds,
        &format!("{repo}:v1"),
        &format!("oci:{}:v1", layout.display()),
    ]));
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "v1", "{index}");
    let dir = tmp.path().join("dir");
    ok(skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        creds,
        &format!("{repo}:v1"),
        &format!("dir:{}", dir.display()),
    ]));
    let m = std::fs::read(dir.join("manifest.json")).unwrap();
    assert_eq!(sha256(&m), v1_digest, "dir: keeps the manifest as the registry served it");

    // DELETE of the OCI manifest: v2 goes, v1 stays.
    ok(skopeo(&["delete", "--tls-verify=false", "--creds", creds, &format!("{repo}:v2")]));
    tags(&["v1"]);
    let (code, _, err) = run(skopeo(&["inspect", "--tls-verify=false", "--creds", creds, &format!("{repo}:v2")]));
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("manifest unknown"), "{err}");

    // Through wharfd: what skopeo pushed is our busybox.
    ok(d.docker(&["rmi", "busybox:latest"]));
    ok(d.docker(&["login", "-u", "skopeo", "-p", "sk0peo", &host]));
    let image = format!("{host}/sk/bb:v1");
    let out = ok(d.docker(&["pull", &image]));
    assert!(out.contains(&format!("Digest: {v1_digest}")), "{out}");
    assert_eq!(image_id(&d, &image), id);
    let out = ok(d.docker(&["run", "--rm", &image, "echo", "via-skopeo"]));
    assert_eq!(out.trim(), "via-skopeo");
}
