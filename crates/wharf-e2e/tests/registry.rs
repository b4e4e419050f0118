//! Registries end to end: the docker CLI, docker-py and `wharf` against a wharfd that pulls
//! from and pushes to real registry servers on 127.0.0.1 — our own (`wharf-registry serve`,
//! with and without htpasswd auth) and Debian's `docker-registry` when installed — plus a
//! scripted hostile/slow registry (python3) for digest mismatches and a SIGKILL mid-pull.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use wharf_testkit::{DaemonOptions, TestDaemon, bin_path, ok, require, run_text as run, skip_unless};

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
/// 64 KiB chunks with `delay_ms` between them. Every request is appended to `requests.log`
/// (`GET <path> range=<Range header>`).
///
/// Faults come from `faults.json` in the directory, read at each request (counts restart
/// whenever the file changes), for the blob named by `"blob"` (hex):
/// - `"ranges": true` — honour `Range` (206, `Content-Range`, `Accept-Ranges: bytes`);
///   otherwise a ranged request gets the whole blob with 200;
/// - `"truncate": n` — the first n responses (-1: all) close the connection after half the
///   body (`Content-Length` announces all of it);
/// - `"status": [code, n]` — the first n requests (-1: all) get `code` (429 with
///   `Retry-After: 0`);
/// - `"manifest_type": t` — the manifest's `Content-Type`;
/// - `"tags": [...]` — `/tags/list`, two per page with a `Link` to the next.
const FAKE_REGISTRY: &str = r#"
import hashlib, http.server, json, os, sys, threading, time
port, root, delay = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]) / 1000.0
lock = threading.Lock()
counts = {}
def faults():
    try:
        return open(os.path.join(root, "faults.json")).read()
    except OSError:
        return "{}"
def bump(key):
    with lock:
        counts[key] = counts.get(key, 0) + 1
        return counts[key]
def hit(rule, n):
    return rule is not None and (rule < 0 or n <= rule)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send_body(self, body, ctype, extra=None, head=False, status=200, cut=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items(): self.send_header(k, v)
        self.end_headers()
        if head: return
        end = len(body) if cut is None else cut
        for i in range(0, end, 65536):
            try:
                self.wfile.write(body[i:min(i + 65536, end)]); self.wfile.flush()
            except Exception:
                return
            if delay: time.sleep(delay)
        if cut is not None:
            time.sleep(0.1)
            self.close_connection = True
    def handle_any(self, head):
        p = self.path.split("?")[0]
        text = faults()
        f = json.loads(text)
        with lock:
            with open(os.path.join(root, "requests.log"), "a") as log:
                log.write("%s %s range=%s\n" % (self.command, self.path, self.headers.get("Range")))
        if p == "/v2/":
            return self.send_body(b"{}", "application/json", head=head)
        if p.endswith("/tags/list"):
            tags = f.get("tags", [])
            last = self.path.split("last=")[1].split("&")[0] if "last=" in self.path else None
            start = tags.index(last) + 1 if last in tags else 0
            page = tags[start:start + 2]
            extra = {}
            if start + 2 < len(tags):
                extra["Link"] = '<%s?n=2&last=%s>; rel="next"' % (p, page[-1])
            body = json.dumps({"name": p[4:-10], "tags": page}).encode()
            return self.send_body(body, "application/json", extra, head)
        if "/manifests/" in p:
            m = open(os.path.join(root, "manifest.json"), "rb").read()
            d = "sha256:" + hashlib.sha256(m).hexdigest()
            mt = f.get("manifest_type", "application/vnd.docker.distribution.manifest.v2+json")
            return self.send_body(m, mt, {"Docker-Content-Digest": d}, head)
        if "/blobs/sha256:" in p:
            hexd = p.rsplit(":", 1)[1]
            fp = os.path.join(root, "blobs", hexd)
            if os.path.exists(fp):
                data = open(fp, "rb").read()
                if f.get("blob") != hexd:
                    return self.send_body(data, "application/octet-stream", head=head)
                n = bump(text + hexd)
                st = f.get("status")
                if st and hit(st[1], n):
                    body = b'{"errors":[{"code":"UNKNOWN","message":"scripted failure"}]}' if st[0] != 429 else b""
                    return self.send_body(body, "application/json", {"Retry-After": "0"}, head, st[0])
                status, extra, start = 200, {}, 0
                rng = self.headers.get("Range")
                if f.get("ranges"):
                    extra["Accept-Ranges"] = "bytes"
                    if rng:
                        start = int(rng.split("=")[1].split("-")[0])
                        status = 206
                        extra["Content-Range"] = "bytes %d-%d/%d" % (start, len(data) - 1, len(data))
                body = data[start:]
                cut = len(body) // 2 if hit(f.get("truncate"), n) else None
                return self.send_body(body, "application/octet-stream", extra, head, status, cut)
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
    // Search: our registry answers v1 search from its catalog (distribution's does not: below).
    let r = d.api("GET", &format!("/images/search?term={}/wharf", reg.host()), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(r#""name":"wharf/busybox""#), "{}", r.text());

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
    // Distribution has no v1 search: moby's "Unexpected status code 404".
    let (code, _, err) = run(d.docker(&["search", &format!("{}/wharf", reg.host())]));
    assert_eq!(code, 1);
    assert!(err.contains("Unexpected status code 404"), "{err}");
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
    // The bad first layer fails while the big one is still streaming (64 KiB per 10 ms): that
    // one is cancelled, and its half-unpacked snapshot and temp blob go too.
    let layers =
        [layer_tar(&[("a.txt", b"hello")]), layer_tar(&[("b.txt", b"world")]), layer_tar(&[("n", &noise(2 << 20))])];
    fake_image(dir.path(), &layers, true);
    let reg = Registry::fake(dir.path(), 10);
    let d = TestDaemon::start();
    let before = blobs(&d);
    let (code, out, err) = run(d.docker(&["pull", &format!("{}/evil/img:t", reg.host())]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("digest mismatch") || err.contains("digest"), "{err}");
    assert_eq!(images(&d).trim(), "", "nothing half-registered");
    assert_eq!(blobs(&d), before, "the downloaded blobs are gone");
    assert_store_empty(&d, "digest mismatch");
}

#[test]
fn sigkill_during_a_pull_leaves_a_consistent_store() {
    skip_unless!(require::root(), require::program("docker"), require::program("python3"));
    let dir = tempfile::tempdir().unwrap();
    // Incompressible data so that the layer is big on the wire: 8 MiB at 64 KiB / 20 ms.
    fake_image(dir.path(), &[layer_tar(&[("small", b"s")]), layer_tar(&[("noise", &noise(8 << 20))])], false);
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
    // No half-visible image, and GC removed the blobs, temp files and half-unpacked snapshots
    // of the interrupted pull.
    assert!(seen.contains("Pulling fs layer"), "{seen}");
    assert_store_empty(&d, "after the crash");
    // And the pull works afterwards (fast now).
    drop(reg);
    let reg = Registry::fake(dir.path(), 0);
    let image = format!("{}/slow/img:t", reg.host());
    let out = ok(d.docker(&["pull", &image]));
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    let _: PathBuf = d.data_root.clone();
}

/// Pseudo-random bytes: a layer that stays big on the wire.
fn noise(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in out.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    out
}

/// The blob digest (hex) of layer `i` of the image [`fake_image`] wrote into `dir`.
fn layer_hex(dir: &Path, i: usize) -> String {
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    m["layers"][i]["digest"].as_str().unwrap()[7..].to_owned()
}

fn set_faults(dir: &Path, faults: serde_json::Value) {
    std::fs::write(dir.join("faults.json"), faults.to_string()).unwrap();
}

fn requests(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("requests.log")).unwrap_or_default()
}

fn count_dir(p: &Path) -> usize {
    std::fs::read_dir(p).map(|r| r.count()).unwrap_or(0)
}

/// Asserts that a failed pull left nothing behind in a daemon that had no images: no image,
/// no blob, no temp file in the content store's ingest dir, no snapshot (committed or half
/// unpacked).
fn assert_store_empty(d: &TestDaemon, what: &str) {
    assert_eq!(images(d).trim(), "", "{what}: nothing registered");
    assert_eq!(blobs(d), 0, "{what}: no blobs left");
    assert_eq!(count_dir(&d.data_root.join("content/ingest")), 0, "{what}: no temp blobs left");
    for driver in ["overlay", "native"] {
        let dir = d.data_root.join("snapshots").join(driver).join("snapshots");
        assert_eq!(count_dir(&dir), 0, "{what}: no snapshots left in {}", dir.display());
    }
}

/// The fake registry (no delay) serving an image of `layers` from a temp directory: the
/// directory `set_faults` and `layer_hex` take.
fn fake_registry(layers: &[Vec<u8>]) -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    fake_image(dir.path(), layers, false);
    let reg = Registry::fake(dir.path(), 0);
    (dir, reg)
}

/// A pull through the API, returning the stream's messages.
fn api_pull(d: &TestDaemon, image: &str, tag: &str) -> Vec<serde_json::Value> {
    let r = d.api("POST", &format!("/images/create?fromImage={image}&tag={tag}"), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text().split("\r\n").filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The statuses sent for layer `id`, in order (consecutive repeats collapsed).
fn layer_statuses(msgs: &[serde_json::Value], id: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in msgs.iter().filter(|m| m["id"] == id) {
        let s = m["status"].as_str().unwrap_or("").to_owned();
        if out.last() != Some(&s) {
            out.push(s);
        }
    }
    out
}

#[test]
fn truncated_blob_is_resumed_with_range_and_unpacked_in_one_pass() {
    skip_unless!(require::root(), require::program("docker"), require::program("python3"));
    let (dir, reg) = fake_registry(&[layer_tar(&[("small", b"s")]), layer_tar(&[("noise", &noise(2 << 20))])]);
    let big = layer_hex(dir.path(), 1);
    set_faults(dir.path(), serde_json::json!({"blob": big, "ranges": true, "truncate": 1}));
    let d = TestDaemon::start();
    let msgs = api_pull(&d, &format!("{}/flaky/img", reg.host()), "t");
    assert!(msgs.iter().all(|m| m.get("errorDetail").is_none()), "{msgs:?}");
    // The second request for the layer asked for the rest only.
    let log = requests(dir.path());
    let gets: Vec<&str> = log.lines().filter(|l| l.contains(&big)).collect();
    assert_eq!(gets.len(), 2, "{log}");
    assert!(gets[0].ends_with("range=None") && gets[1].contains("range=bytes="), "{log}");
    // moby's sequence per layer, with its notice of the retry, Extracting after the download.
    assert_eq!(
        layer_statuses(&msgs, &big[..12]),
        [
            "Pulling fs layer",
            "Downloading",
            "Retrying in 1 second",
            "Downloading",
            "Verifying Checksum",
            "Download complete",
            "Extracting",
            "Pull complete"
        ],
        "{msgs:?}"
    );
    let last = msgs.last().unwrap()["status"].as_str().unwrap().to_owned();
    assert_eq!(last, format!("Status: Downloaded newer image for {}/flaky/img:t", reg.host()));
    // The layer is whole: its file is there with its content.
    let out = ok(d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        &format!("{}/flaky/img:t", reg.host()),
    ]));
    assert_eq!(out.trim(), "2");
    assert_eq!(count_dir(&d.data_root.join("content/ingest")), 0);
    // Removing it leaves an empty store (the snapshot was committed under its chain ID, not
    // left as a temp one).
    ok(d.docker(&["rmi", &format!("{}/flaky/img:t", reg.host())]));
    assert_store_empty(&d, "after rmi");
}

#[test]
fn truncated_blob_without_range_support_restarts_or_fails_cleanly() {
    skip_unless!(require::root(), require::program("docker"), require::program("python3"));
    let (dir, reg) = fake_registry(&[layer_tar(&[("small", b"s")]), layer_tar(&[("noise", &noise(2 << 20))])]);
    let big = layer_hex(dir.path(), 1);
    let d = TestDaemon::start();
    let image = format!("{}/noranges/img:t", reg.host());

    // Cut on every response: after the client's retries, a clear error and nothing left.
    set_faults(dir.path(), serde_json::json!({"blob": big, "truncate": -1}));
    let (code, out, err) = run(d.docker(&["pull", &image]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&format!("sha256:{big}")) || err.contains("reading the blob body"), "{err}");
    assert_store_empty(&d, "truncated every time");

    // Cut once: the retry (a ranged request answered with the whole blob) reads from the start
    // again and the pull succeeds.
    set_faults(dir.path(), serde_json::json!({"blob": big, "truncate": 1}));
    let out = ok(d.docker(&["pull", &image]));
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    let log = requests(dir.path());
    assert!(log.lines().any(|l| l.contains(&big) && l.contains("range=bytes=")), "{log}");
    ok(d.docker(&["rmi", &image]));
    assert_store_empty(&d, "after rmi");
}

#[test]
fn persistent_5xx_and_429_fail_with_clear_errors() {
    skip_unless!(require::root(), require::program("docker"), require::program("python3"));
    let (dir, reg) = fake_registry(&[layer_tar(&[("a", b"a")]), layer_tar(&[("noise", &noise(256 << 10))])]);
    let big = layer_hex(dir.path(), 1);
    let d = TestDaemon::start();
    let image = format!("{}/status/img:t", reg.host());

    set_faults(dir.path(), serde_json::json!({"blob": big, "status": [500, -1]}));
    let (code, out, err) = run(d.docker(&["pull", &image]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("unknown: scripted failure"), "{err}");
    let tries = requests(dir.path()).lines().filter(|l| l.contains(&big)).count();
    assert_eq!(tries, 5, "retried up to max-download-attempts (5)");
    assert_store_empty(&d, "persistent 500");

    set_faults(dir.path(), serde_json::json!({"blob": big, "status": [429, -1]}));
    let (code, out, err) = run(d.docker(&["pull", &image]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("toomanyrequests"), "{err}");
    assert_store_empty(&d, "persistent 429");

    // A registry that asks to wait twice is waited for.
    set_faults(dir.path(), serde_json::json!({"blob": big, "status": [429, 2]}));
    let out = ok(d.docker(&["pull", &image]));
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
}

#[test]
fn oversized_and_unknown_manifests_are_refused_clearly() {
    skip_unless!(require::root(), require::program("docker"), require::program("python3"));
    let (dir, reg) = fake_registry(&[layer_tar(&[("a", b"a")])]);
    let d = TestDaemon::start();

    set_faults(dir.path(), serde_json::json!({"manifest_type": "application/vnd.example.unknown+json"}));
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    m["mediaType"] = "application/vnd.example.unknown+json".into();
    std::fs::write(dir.path().join("manifest.json"), m.to_string()).unwrap();
    let (code, out, err) = run(d.docker(&["pull", &format!("{}/odd/img:t", reg.host())]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("unsupported manifest media type \"application/vnd.example.unknown+json\""), "{err}");
    assert_store_empty(&d, "unknown media type");

    set_faults(dir.path(), serde_json::json!({}));
    m["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json".into();
    m["annotations"] = serde_json::json!({"padding": "x".repeat(5 << 20)});
    std::fs::write(dir.path().join("manifest.json"), m.to_string()).unwrap();
    let (code, out, err) = run(d.docker(&["pull", &format!("{}/huge/img:t", reg.host())]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("is larger than the 4194304 byte limit"), "{err}");
    assert_store_empty(&d, "oversized manifest");
}

#[test]
fn pull_all_tags_follows_tag_pages() {
    skip_unless!(require::root(), require::program("docker"), require::program("python3"));
    let (dir, reg) = fake_registry(&[layer_tar(&[("a", b"a")]), layer_tar(&[("b", b"b")])]);
    set_faults(dir.path(), serde_json::json!({"tags": ["v1", "v2", "v3"]}));
    let d = TestDaemon::start();
    let repo = format!("{}/multi/img", reg.host());

    let out = ok(d.docker(&["pull", "-a", &repo]));
    for t in ["v1", "v2", "v3"] {
        assert!(out.contains(&format!("{t}: Pulling from multi/img")), "{out}");
    }
    assert_eq!(out.matches("Pull complete").count(), 2, "the layers are pulled once: {out}");
    assert_eq!(out.matches("Status: ").count(), 1, "{out}");
    assert!(out.contains(&format!("Status: Downloaded newer image for {repo}\n")), "{out}");
    let tags = ok(d.docker(&["images", "--format", "{{.Tag}}", &repo]));
    let mut tags: Vec<&str> = tags.lines().collect();
    tags.sort();
    assert_eq!(tags, ["v1", "v2", "v3"]);
    // The second page was asked for with the `Link` the first one gave.
    let log = requests(dir.path());
    assert!(log.contains("/v2/multi/img/tags/list?n=2&last=v2"), "{log}");

    // The wharf CLI: the same request; everything is there already.
    let out = ok(d.wharf(&["pull", "-a", &repo]));
    assert!(out.contains(&format!("Status: Image is up to date for {repo}")), "{out}");
    let (code, _, err) = run(d.wharf(&["pull", "-a", &format!("{repo}:v1")]));
    assert_eq!(code, 1);
    assert!(err.contains("tag can't be used with --all-tags/-a"), "{err}");
}

#[test]
fn sighup_reload_rebuilds_the_registry_client() {
    skip_unless!(require::root(), require::program("docker"), require::busybox());
    let reg = Registry::ours(None);
    let d = TestDaemon::start();
    d.import_busybox();
    let pushed = format!("{}/wharftest/bb:m", reg.host());
    ok(d.docker(&["tag", "busybox:latest", &pushed]));
    ok(d.docker(&["push", &pushed]));

    // Docker Hub through a mirror configured after start.
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&d.config_file).unwrap()).unwrap();
    cfg["registry-mirrors"] = serde_json::json!([format!("http://{}", reg.host())]);
    std::fs::write(&d.config_file, cfg.to_string()).unwrap();
    d.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mirrors = ok(d.docker(&["info", "--format", "{{json .RegistryConfig.Mirrors}}"]));
        if mirrors.contains(&reg.host()) {
            break;
        }
        assert!(Instant::now() < deadline, "the reload was not applied: {mirrors}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = ok(d.docker(&["pull", "wharftest/bb:m"]));
    assert!(out.contains("Status: Downloaded newer image for wharftest/bb:m"), "{out}");
    let log = ok(d.docker(&["image", "inspect", "--format", "{{.Id}}", "wharftest/bb:m", "busybox:latest"]));
    let ids: Vec<&str> = log.lines().collect();
    assert_eq!(ids[0], ids[1], "the mirror served the pushed image");
}

#[test]
fn repeated_layer_and_the_native_snapshotter() {
    skip_unless!(require::root(), require::program("docker"), require::program("python3"));
    // The same blob at the bottom and the top: two chains, one download.
    let a = layer_tar(&[("a.txt", b"from a")]);
    let (_dir, reg) = fake_registry(&[a.clone(), layer_tar(&[("b.txt", b"from b")]), a]);
    for config in [None, Some(r#"{"storage-driver":"vfs"}"#)] {
        let d = TestDaemon::start_with(DaemonOptions { config: config.map(str::to_owned), ..Default::default() });
        let image = format!("{}/twice/img:t", reg.host());
        let out = ok(d.docker(&["pull", &image]));
        assert!(out.contains("Status: Downloaded newer image for"), "{config:?}: {out}");
        let layers = ok(d.docker(&["image", "inspect", "--format", "{{len .RootFS.Layers}}", &image]));
        assert_eq!(layers.trim(), "3", "{config:?}");
        ok(d.docker(&["create", "--name", "cp-src", &image]));
        let (code, got, err) = run(d.docker(&["cp", "cp-src:/b.txt", "-"]));
        assert_eq!(code, 0, "{config:?}: {err}");
        assert!(got.contains("from b"), "{config:?}: {got}");
        ok(d.docker(&["rm", "cp-src"]));
        ok(d.docker(&["rmi", &image]));
        assert_store_empty(&d, &format!("{config:?} after rmi"));
    }
}

#[test]
fn max_concurrent_downloads_is_honoured() {
    skip_unless!(require::root(), require::program("docker"), require::program("python3"));
    let layers: Vec<Vec<u8>> = (0..3).map(|i| layer_tar(&[(&format!("f{i}"), &noise(64 << 10 | i))])).collect();
    let (dir, reg) = fake_registry(&layers);
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(r#"{"max-concurrent-downloads":1}"#.to_owned()),
        ..Default::default()
    });
    let msgs = api_pull(&d, &format!("{}/one/atatime", reg.host()), "t");
    let ids: Vec<String> = (0..3).map(|i| layer_hex(dir.path(), i)[..12].to_owned()).collect();
    let waiting: Vec<&str> =
        msgs.iter().filter(|m| m["status"] == "Waiting").map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(waiting, [ids[1].as_str(), ids[2].as_str()], "{msgs:?}");
    // One at a time: a layer starts downloading only after the one before is done.
    let at = |id: &str, status: &str| msgs.iter().position(|m| m["id"] == id && m["status"] == status).unwrap();
    for w in ids.windows(2) {
        assert!(at(&w[0], "Download complete") < at(&w[1], "Downloading"), "{msgs:?}");
    }
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

    // The pull recorded where the layer came from, so pushing it to a third repository of the
    // same registry mounts it from there (as Docker's v2 metadata does).
    let third = format!("{}/third/gz:v3", reg.host());
    ok(d.docker(&["tag", &image, &third]));
    let out = ok(d.docker(&["push", &third]));
    assert!(out.contains(": Mounted from wharf/gz"), "{out}");
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

/// `docker search` and `wharf search` through wharfd against our registry's v1 search (its
/// catalog): matching names, limit, filters with moby's errors, and Basic auth from the login.
#[test]
fn search_a_registry_with_docker_and_wharf() {
    skip_unless!(require::root(), require::program("docker"), require::program("htpasswd"), require::busybox());
    let reg = Registry::ours(Some(("searcher", "f1nd")));
    let d = TestDaemon::start();
    d.import_busybox();
    ok(d.docker(&["login", "-u", "searcher", "-p", "f1nd", &reg.host()]));
    for repo in ["tools/findme-one", "tools/findme-two", "other/thing"] {
        let image = format!("{}/{repo}:v1", reg.host());
        ok(d.docker(&["tag", "busybox:latest", &image]));
        ok(d.docker(&["push", &image]));
    }
    let term = format!("{}/FindMe", reg.host());

    let out = ok(d.docker(&["search", &term]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"], "{out}");
    assert!(lines[1].starts_with("tools/findme-one ") && lines[2].starts_with("tools/findme-two "), "{out}");
    // The wharf CLI prints the same table.
    assert_eq!(ok(d.wharf(&["search", &term])), out);

    let names = |args: &[&str]| {
        let mut a = vec!["search", "--format", "{{.Name}} {{.StarCount}} [{{.IsOfficial}}]"];
        a.extend_from_slice(args);
        ok(d.docker(&a))
    };
    assert_eq!(names(&["--limit", "1", &term]), "tools/findme-one 0 []\n");
    assert_eq!(names(&[&format!("{}/thing", reg.host())]), "other/thing 0 []\n");
    assert_eq!(names(&["--filter", "stars=1", &term]), "");
    assert_eq!(names(&["--filter", "is-official=false", &term]).lines().count(), 2);

    // Bad input: moby's wording, 400s.
    let (code, _, err) = run(d.docker(&["search", "--limit", "101", &term]));
    assert_eq!(code, 1);
    assert!(err.contains("limit 101 is outside the range of [1, 100]"), "{err}");
    let (code, _, err) = run(d.docker(&["search", "--filter", "colour=red", &term]));
    assert_eq!(code, 1);
    assert!(err.contains("invalid filter 'colour'"), "{err}");
    let (code, _, err) = run(d.wharf(&["search", "--filter", "stars=many", &term]));
    assert_eq!(code, 1);
    assert!(err.contains("invalid filter 'stars=many'"), "{err}");
    let r = d.api("GET", "/images/search?term=x&limit=0", b"");
    assert_eq!(r.status, 400, "{}", r.text());

    // Without the login the registry refuses.
    ok(d.docker(&["logout", &reg.host()]));
    let (code, _, err) = run(d.docker(&["search", &term]));
    assert_eq!(code, 1);
    assert!(err.contains("/v1/search?q=FindMe&n=25") && err.contains("401"), "{err}");
}
