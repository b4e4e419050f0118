//! Remote build contexts end to end: a git repository and plain files served over HTTP on
//! 127.0.0.1 (python3's `http.server`, a "dumb" git server), built from by `wharf build <url>`,
//! by the API's `remote` parameter, and by the docker CLI (which downloads URL contexts
//! itself); refs and subdirectories in the fragment; fetch failures as clear errors; nothing
//! left in the builder's temp directory.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wharf_testkit::{TestDaemon, ok, require, run_text as run, skip_unless};

/// `python3 -m http.server` on a free loopback port; killed on drop.
struct FileServer {
    child: Child,
    port: u16,
}

impl FileServer {
    fn start(dir: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        FileServer { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) {
    ok(Command::new("git").args(["-c", "user.name=t", "-c", "user.email=t@example.com"]).args(args).current_dir(dir));
}

/// Serves `app.git` (tag `v1`: page "v1"; the default branch: page "v2"; the Dockerfile in
/// `web/`), `ctx.tar` (a context tar) and `Dockerfile` (a bare Dockerfile).
fn serve_fixtures(root: &Path) -> FileServer {
    let src = root.join("src");
    std::fs::create_dir_all(src.join("web")).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    std::fs::write(
        src.join("web/Dockerfile"),
        "FROM busybox\nCOPY page.html /page.html\nCMD [\"cat\", \"/page.html\"]\n",
    )
    .unwrap();
    std::fs::write(src.join("web/page.html"), "v1\n").unwrap();
    std::fs::write(src.join("README"), "not a directory\n").unwrap();
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "one"]);
    git(&src, &["tag", "v1"]);
    std::fs::write(src.join("web/page.html"), "v2\n").unwrap();
    git(&src, &["commit", "-q", "-am", "two"]);
    let served = root.join("served");
    std::fs::create_dir_all(&served).unwrap();
    git(root, &["clone", "-q", "--bare", src.to_str().unwrap(), served.join("app.git").to_str().unwrap()]);
    git(&served.join("app.git"), &["update-server-info"]);

    let mut tar = tar::Builder::new(Vec::new());
    for (name, text) in
        [("Dockerfile", "FROM busybox\nCOPY msg /msg\nCMD [\"cat\", \"/msg\"]\n"), ("msg", "from a tar\n")]
    {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, text.as_bytes()).unwrap();
    }
    std::fs::write(served.join("ctx.tar"), tar.into_inner().unwrap()).unwrap();
    std::fs::write(served.join("Dockerfile"), "FROM busybox\nRUN echo bare > /bare\nCMD [\"cat\", \"/bare\"]\n")
        .unwrap();
    FileServer::start(&served)
}

fn run_image(d: &TestDaemon, image: &str) -> String {
    ok(d.docker(&["run", "--rm", image]))
}

fn builder_tmp_is_empty(d: &TestDaemon) {
    let left: Vec<_> = std::fs::read_dir(d.data_root.join("builder/tmp"))
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "builder tmp left: {left:?}");
}

#[test]
fn builds_from_git_repositories_and_urls() {
    skip_unless!(require::root(), require::busybox(), require::overlayfs());
    let d = TestDaemon::start();
    d.import_busybox();
    let server = serve_fixtures(&d.dir().join("remote"));

    // wharf build <git url>#<ref>:<subdir>, then the default branch.
    let git_url = server.url("app.git");
    let (code, out, err) =
        run(d.wharf(&["build", "--progress", "plain", "-t", "remote/git:v1", &format!("{git_url}#v1:web")]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("naming to docker.io/remote/git:v1 done") || err.contains("naming to remote/git:v1 done"),
        "{err}"
    );
    assert_eq!(run_image(&d, "remote/git:v1"), "v1\n");
    ok(d.wharf(&["build", "-q", "-t", "remote/git:head", &format!("{git_url}#:web")]));
    assert_eq!(run_image(&d, "remote/git:head"), "v2\n");

    // The API's remote parameter with a tar URL and with a bare Dockerfile URL.
    let q = |u: &str| u.replace(':', "%3A").replace('/', "%2F");
    let r = d.api("POST", &format!("/build?t=remote/tar&remote={}", q(&server.url("ctx.tar"))), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Successfully tagged remote/tar:latest"), "{}", r.text());
    assert_eq!(run_image(&d, "remote/tar"), "from a tar\n");
    let (code, out, err) =
        run(d.wharf(&["build", "--progress", "plain", "-t", "remote/bare", &server.url("Dockerfile")]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("[2/3] RUN echo bare > /bare"), "{err}");
    assert_eq!(run_image(&d, "remote/bare"), "bare\n");

    // The docker CLI downloads a URL context itself and sends it as the body.
    let mut c = d.docker(&["build", "-q", "-t", "remote/cli", &server.url("ctx.tar")]);
    c.env("DOCKER_BUILDKIT", "0");
    ok(c);
    assert_eq!(run_image(&d, "remote/cli"), "from a tar\n");

    // Failures: clear messages, exit code 1, nothing left behind.
    for (url, want) in [
        (format!("{git_url}#v1:nope"), "error setting git context"),
        (format!("{git_url}#v1:README"), "not a directory"),
        (format!("{git_url}#v1:../.."), "not within git root"),
        (format!("{git_url}#nosuchref:web"), "unable to 'git clone'"),
        (server.url("missing.git"), "unable to 'git clone'"),
        (server.url("missing.tar"), "failed to GET"),
    ] {
        let (code, out, err) = run(d.wharf(&["build", &url]));
        assert_eq!(code, 1, "{url}: {out}{err}");
        assert!(err.contains(want), "{url}: want {want:?} in {err}");
    }
    builder_tmp_is_empty(&d);
}
