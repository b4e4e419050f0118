//! Image builds end to end with real clients against a wharfd: the docker CLI's legacy builder
//! (`DOCKER_BUILDKIT=0 docker build`) on a multi-stage Dockerfile, running the result, cached
//! and partly cached rebuilds (also after a daemon restart), failures with Docker's messages
//! and exit codes, docker-py's `images.build`, hostile contexts through the raw API, `system
//! df`/`builder prune`, and `wharf build`. Every test checks that builds leave no mounts, step
//! processes, run dirs or cgroups behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use wharf_testkit::pty::Pty;
use wharf_testkit::{TestDaemon, ok, require, run_text as run, skip_unless};

/// `docker build` with the legacy builder (no buildx here; BuildKit off).
fn docker_build(d: &TestDaemon, args: &[&str]) -> Command {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    let mut c = d.docker(&all);
    c.env("DOCKER_BUILDKIT", "0");
    c
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn context_dir(d: &TestDaemon, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = d.dir().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    write_files(&dir, files);
    dir
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root = dir.to_string_lossy().into_owned();
    text.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&root)).map(str::to_owned).collect()
}

/// Nothing of a finished build is left: no step mounts, no one-shot run dirs, no processes
/// but the daemon, no cgroups of step containers.
fn assert_no_leftovers(d: &TestDaemon) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mounts = mounts_under(&d.data_root.join("builder"));
        let oneshots: Vec<_> = std::fs::read_dir(d.exec_root.join("b"))
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        let root = d.dir().to_string_lossy().into_owned();
        let procs: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|p| {
                let pid: u32 = p.file_name().to_string_lossy().parse().ok()?;
                let cmd = std::fs::read(p.path().join("cmdline")).ok()?;
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                (pid != d.pid() && cmd.contains(&root) && !cmd.starts_with("docker") && !cmd.contains("python"))
                    .then(|| format!("{pid}: {cmd}"))
            })
            .collect();
        let rel = d.cgroup_parent.trim_start_matches('/');
        let cgroups: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
            .map(|r| r.flatten().map(|c| c.path().join(rel)).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain([Path::new("/sys/fs/cgroup").join(rel)])
            .filter(|p| p.is_dir())
            .flat_map(|p| {
                std::fs::read_dir(p).map(|r| r.flatten().map(|e| e.path()).collect::<Vec<_>>()).unwrap_or_default()
            })
            .filter(|p: &PathBuf| p.is_dir())
            .collect();
        if mounts.is_empty() && oneshots.is_empty() && procs.is_empty() && cgroups.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left behind: mounts {mounts:?}, run dirs {oneshots:?}, processes {procs:?}, cgroups {cgroups:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

const MULTI_STAGE: &str = r#"# syntax is Docker's legacy builder's
FROM busybox AS base
ARG GREETING=hello
ENV APP_HOME=/app
WORKDIR $APP_HOME
COPY app.txt ./
RUN echo "$GREETING from run" > run.txt && cat app.txt
COPY late.txt ./

FROM busybox
LABEL org.example.stage=final
COPY --from=base /app /app
ADD extra.tar /opt/
ENV PATH=/bin:/usr/bin
RUN mkdir -p /data && chown nobody /data
USER nobody
WORKDIR /data
EXPOSE 8080/tcp
HEALTHCHECK --interval=30s CMD true
ENTRYPOINT ["sh", "-c"]
CMD ["cat /app/run.txt /app/app.txt /app/late.txt /opt/extra/inside.txt; id -un; pwd"]
"#;

fn extra_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = b"inside the tar\n";
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "extra/inside.txt", &data[..]).unwrap();
    b.into_inner().unwrap()
}

fn step_lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("Step ")).collect()
}

/// For each step, whether its output said ` ---> Using cache`.
fn cached_steps(out: &str) -> Vec<bool> {
    let mut v = Vec::new();
    for l in out.lines() {
        if l.starts_with("Step ") {
            v.push(false);
        } else if l == " ---> Using cache" {
            *v.last_mut().unwrap() = true;
        }
    }
    v
}

fn built_id(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .unwrap_or_else(|| panic!("no ID in:\n{out}"))
        .to_owned()
}

#[test]
fn docker_build_multi_stage_cache_rebuild_and_restart() {
    skip_unless!(require::root(), require::busybox(), require::program("docker"), require::overlayfs());
    let mut d = TestDaemon::start();
    d.import_busybox();
    let ctx = context_dir(&d, "ctx", &[("Dockerfile", MULTI_STAGE), ("app.txt", "app v1\n"), ("late.txt", "late\n")]);
    std::fs::write(ctx.join("extra.tar"), extra_tar()).unwrap();
    let c = ctx.to_str().unwrap();

    let out = ok(docker_build(&d, &["-t", "e2e/app:1", "--build-arg", "GREETING=hi", "--label", "via=cli", c]));
    assert!(out.starts_with("Sending build context to Docker daemon"), "{out}");
    let steps = step_lines(&out);
    assert_eq!(steps.len(), 20, "{out}");
    assert_eq!(steps[0], "Step 1/20 : FROM busybox AS base");
    assert_eq!(steps[5], "Step 6/20 : RUN echo \"$GREETING from run\" > run.txt && cat app.txt");
    assert_eq!(steps[19], "Step 20/20 : LABEL via=cli");
    assert!(out.contains(" ---> Running in "), "{out}");
    assert!(out.contains("\napp v1\n"), "RUN output is passed through: {out}");
    assert!(out.contains("Removing intermediate container "), "{out}");
    assert!(out.contains("Successfully tagged e2e/app:1\n"), "{out}");
    let id = built_id(&out);
    assert_no_leftovers(&d);

    // The result runs, with every instruction's effect.
    let run_out = ok(d.docker(&["run", "--rm", "e2e/app:1"]));
    assert_eq!(run_out, "hi from run\napp v1\nlate\ninside the tar\nnobody\n/data\n");
    let inspect = ok(d.docker(&["image", "inspect", "e2e/app:1"]));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let cfg = &v[0]["Config"];
    assert_eq!(cfg["User"], "nobody");
    assert_eq!(cfg["WorkingDir"], "/data");
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["sh", "-c"]));
    assert!(cfg["ExposedPorts"].get("8080/tcp").is_some(), "{cfg}");
    assert_eq!(cfg["Healthcheck"]["Test"], serde_json::json!(["CMD-SHELL", "true"]));
    assert_eq!(cfg["Labels"]["org.example.stage"], "final");
    assert_eq!(cfg["Labels"]["via"], "cli");
    assert!(v[0]["Id"].as_str().unwrap().starts_with(&format!("sha256:{id}")));

    // Second build: everything after FROM is cached, same image.
    let out2 = ok(docker_build(&d, &["-t", "e2e/app:1", "--build-arg", "GREETING=hi", "--label", "via=cli", c]));
    let cached = cached_steps(&out2);
    let from_steps = [0usize, 7];
    for (i, c) in cached.iter().enumerate() {
        assert_eq!(*c, !from_steps.contains(&i), "step {} cached? {out2}", i + 1);
    }
    assert!(!out2.contains("Running in"), "{out2}");
    assert_eq!(built_id(&out2), id);

    // -q prints only the ID.
    let q = ok(docker_build(&d, &["-q", "--build-arg", "GREETING=hi", "--label", "via=cli", c]));
    assert_eq!(q.trim(), v[0]["Id"].as_str().unwrap());

    // A change to late.txt rebuilds step 8 of the first stage and what depends on it.
    std::fs::write(ctx.join("late.txt"), "later\n").unwrap();
    let out3 = ok(docker_build(&d, &["-t", "e2e/app:2", "--build-arg", "GREETING=hi", "--label", "via=cli", c]));
    let cached = cached_steps(&out3);
    assert_eq!(&cached[1..6], &[true; 5], "steps 2-6 stay cached: {out3}");
    assert!(!cached[6], "COPY late.txt reruns: {out3}");
    assert!(cached[8], "LABEL of the second stage is cached: {out3}");
    assert!(!cached[9], "COPY --from=base sees the new stage: {out3}");
    assert!(cached[10..].iter().all(|c| !c), "{out3}");
    assert!(!out3.contains("app v1\n"), "the RUN step was not re-run: {out3}");
    assert_eq!(ok(d.docker(&["run", "--rm", "e2e/app:2", "cat /app/late.txt"])), "later\n");

    // The cache survives a daemon restart.
    d.restart();
    let out4 = ok(docker_build(&d, &["-t", "e2e/app:2", "--build-arg", "GREETING=hi", "--label", "via=cli", c]));
    assert_eq!(cached_steps(&out4).iter().filter(|c| **c).count(), 18, "{out4}");
    assert_eq!(built_id(&out4), built_id(&out3));

    // --no-cache runs everything again.
    let out5 = ok(docker_build(&d, &["--no-cache", "--build-arg", "GREETING=hi", c]));
    assert!(!out5.contains("Using cache"), "{out5}");

    // --target stops at the named stage.
    let out6 = ok(docker_build(&d, &["--target", "base", "-t", "e2e/base", c]));
    assert_eq!(step_lines(&out6).len(), 7, "{out6}");
    assert_eq!(ok(d.docker(&["run", "--rm", "e2e/base", "cat", "run.txt"])), "hello from run\n");

    // Build cache in system df, and builder prune.
    let df = ok(d.docker(&["system", "df"]));
    let row = df.lines().find(|l| l.starts_with("Build Cache")).unwrap_or_else(|| panic!("{df}"));
    let count: usize = row.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(count > 10, "{df}");
    let dfv = ok(d.docker(&["system", "df", "-v"]));
    assert!(dfv.contains("Build cache usage:"), "{dfv}");
    let pruned = ok(d.docker(&["builder", "prune", "-af"]));
    assert!(pruned.contains("Total reclaimed space:"), "{pruned}");
    let df = ok(d.docker(&["system", "df"]));
    let row = df.lines().find(|l| l.starts_with("Build Cache")).unwrap();
    assert_eq!(row.split_whitespace().nth(2), Some("0"), "{df}");
    // Tagged images stay usable after the prune; a rebuild is no longer cached.
    assert_eq!(ok(d.docker(&["run", "--rm", "e2e/app:2", "cat /app/late.txt"])), "later\n");
    let out7 = ok(docker_build(&d, &["--build-arg", "GREETING=hi", c]));
    assert!(!out7.contains("Using cache"), "{out7}");
    assert_no_leftovers(&d);
}

#[test]
fn docker_build_failures_speak_dockers_words() {
    skip_unless!(require::root(), require::busybox(), require::program("docker"), require::overlayfs());
    let d = TestDaemon::start();
    d.import_busybox();
    let ctx = context_dir(&d, "ctx", &[("Dockerfile", "FROM busybox\nRUN false\n"), ("f.txt", "x")]);
    let c = ctx.to_str().unwrap();

    let (code, out, err) = run(docker_build(&d, &[c]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("Step 2/2 : RUN false\n ---> Running in "), "{out}");
    assert!(err.contains("The command '/bin/sh -c false' returned a non-zero code: 1"), "{err}");

    // The step's exit code is the CLI's.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo before; exit 3\n").unwrap();
    let (code, out, err) = run(docker_build(&d, &[c]));
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("before\n"), "{out}");
    assert!(err.contains("The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3"), "{err}");
    // With -q the buffered output goes to stderr before the error.
    let (code, out, err) = run(docker_build(&d, &["-q", c]));
    assert_eq!((code, out.as_str()), (3, ""), "{err}");
    assert!(err.contains("before\n") && err.contains("returned a non-zero code: 3"), "{err}");

    // A bad Dockerfile: the parse error, before any step.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nNOPE x\n").unwrap();
    let (code, out, err) = run(docker_build(&d, &[c]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("Error response from daemon: dockerfile parse error on line 2: unknown instruction: NOPE"),
        "{err}"
    );
    assert!(!out.contains("Step 1"), "{out}");

    // COPY of a missing file.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY nosuch /x\n").unwrap();
    let (code, _, err) = run(docker_build(&d, &[c]));
    assert_eq!(code, 1);
    assert!(
        err.contains("COPY failed: file not found in build context or excluded by .dockerignore: stat nosuch: file does not exist"),
        "{err}"
    );

    // A base image that is not there is pulled; Docker Hub is unreachable here: a clear error.
    std::fs::write(ctx.join("Dockerfile"), "FROM nosuch/image:1\nRUN true\n").unwrap();
    let (code, out, err) = run(docker_build(&d, &[c]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("registry-1.docker.io"), "{out}{err}");

    // -f outside the context (the CLI adds it as .dockerfile.<hex>, without tar end blocks).
    let outside = d.dir().join("Outside.Dockerfile");
    std::fs::write(&outside, "FROM busybox\nCOPY f.txt /f.txt\nRUN cat /f.txt\n").unwrap();
    let out = ok(docker_build(&d, &["-f", outside.to_str().unwrap(), "-t", "e2e/outside", c]));
    assert!(out.contains("Successfully tagged e2e/outside:latest"), "{out}");
    // Dockerfile on stdin: `docker build - < Dockerfile`.
    let mut child = docker_build(&d, &["-t", "e2e/stdin", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"FROM busybox\nRUN echo from stdin\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("from stdin\n"));
    // As in Docker, the containers of the failed RUN steps stay (exited, with their codes).
    let ps = ok(d.docker(&["ps", "-a", "--format", "{{.Status}}"]));
    let mut codes: Vec<&str> = ps.lines().filter_map(|l| l.strip_prefix("Exited (")?.split(')').next()).collect();
    codes.sort();
    assert_eq!(codes, ["1", "3", "3"], "{ps}");
    assert_no_leftovers(&d);
}

#[test]
fn docker_py_images_build() {
    skip_unless!(require::root(), require::busybox(), require::python_module("docker"), require::overlayfs());
    let d = TestDaemon::start();
    d.import_busybox();
    let ctx = context_dir(
        &d,
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox\nARG V=none\nCOPY f.txt /f.txt\nRUN echo \"v=$V\" > /v.txt\nCMD [\"cat\", \"/v.txt\"]\n",
            ),
            ("f.txt", "x"),
        ],
    );
    let script = format!(
        r#"
import docker, io, sys
c = docker.DockerClient(base_url="unix://{sock}")
img, logs = c.images.build(path="{ctx}", tag="e2e/py:1", buildargs={{"V": "py"}}, labels={{"via": "py"}}, rm=True)
text = "".join(l.get("stream", "") for l in logs)
assert "Successfully tagged e2e/py:1" in text, text
assert img.tags == ["e2e/py:1"], img.tags
assert img.labels["via"] == "py", img.labels
print(c.containers.run("e2e/py:1", remove=True).decode(), end="")
img2, logs2 = c.images.build(path="{ctx}", tag="e2e/py:1", buildargs={{"V": "py"}}, labels={{"via": "py"}})
assert img2.id == img.id
assert "Using cache" in "".join(l.get("stream", "") for l in logs2)
try:
    c.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 4\n"))
    sys.exit("no BuildError")
except docker.errors.BuildError as e:
    print(e.msg)
try:
    c.images.build(fileobj=io.BytesIO(b"FROM busybox\nBOGUS\n"))
    sys.exit("no APIError")
except docker.errors.APIError as e:
    print(e.response.status_code, e.explanation)
"#,
        sock = d.socket.display(),
        ctx = ctx.display()
    );
    let out = ok(Command::new("python3").arg("-c").arg(script));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "v=py");
    assert_eq!(lines[1], "The command '/bin/sh -c exit 4' returned a non-zero code: 4");
    assert!(lines[2].starts_with("400 dockerfile parse error on line 2: unknown instruction: BOGUS"), "{out}");
    assert_no_leftovers(&d);
}

fn tar_of(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        // Set the name bytes directly: the tar crate refuses `..` in paths it writes.
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn post_build(d: &TestDaemon, query: &str, body: &[u8]) -> (u16, String) {
    let r = wharf_testkit::http::request(
        &d.socket,
        "POST",
        &format!("/v1.41/build?{query}"),
        &[("Content-Type", "application/x-tar")],
        body,
    )
    .unwrap();
    (r.status, r.text())
}

#[test]
fn hostile_contexts_are_refused_or_confined() {
    skip_unless!(require::root(), require::busybox(), require::overlayfs());
    let d = TestDaemon::start();
    d.import_busybox();
    let df = b"FROM busybox\nCOPY . /ctx/\n";

    // `..` entries climb out of the context directory: refused, nothing written outside.
    let marker = d.data_root.join("builder/escaped");
    let body = tar_of(&[
        ("Dockerfile", tar::EntryType::Regular, df, None),
        ("../escaped", tar::EntryType::Regular, b"pwned", None),
        ("../../../../../../../../tmp/wharf-e2e-escaped", tar::EntryType::Regular, b"pwned", None),
    ]);
    let (status, text) = post_build(&d, "t=e2e/dotdot", &body);
    assert_ne!(status, 200, "{text}");
    assert!(!marker.exists() && !Path::new("/tmp/wharf-e2e-escaped").exists());
    assert!(d.api("GET", "/images/e2e/dotdot/json", b"").status == 404);

    // Symlinks out of the context: COPY resolves them inside it.
    let body = tar_of(&[
        ("Dockerfile", tar::EntryType::Regular, b"FROM busybox\nCOPY passwd /got\n", None),
        ("passwd", tar::EntryType::Symlink, b"", Some("../../../../../../../../etc/passwd")),
    ]);
    let (status, text) = post_build(&d, "t=e2e/symlink", &body);
    assert!(status != 200 || text.contains("errorDetail"), "{text}");
    let body = tar_of(&[
        ("Dockerfile", tar::EntryType::Regular, b"FROM busybox\nCOPY etc/hostname /got\n", None),
        ("etc", tar::EntryType::Symlink, b"", Some("/etc")),
    ]);
    let (_, text) = post_build(&d, "t=e2e/symlink2", &body);
    if !text.contains("errorDetail") {
        // Confined: whatever was copied is not the host's file.
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let r = wharf_testkit::http::request(&d.socket, "GET", "/images/e2e/symlink2/get", &[], b"").unwrap();
        assert!(!host.is_empty() && !String::from_utf8_lossy(&r.body).contains(host.trim()), "host file leaked");
    }
    // A symlink in the context pointing out, then a file written "through" it: stays inside.
    let body = tar_of(&[
        ("Dockerfile", tar::EntryType::Regular, df, None),
        ("out", tar::EntryType::Symlink, b"", Some("/tmp")),
        ("out/wharf-e2e-through-link", tar::EntryType::Regular, b"pwned", None),
    ]);
    let _ = post_build(&d, "t=e2e/through", &body);
    assert!(!Path::new("/tmp/wharf-e2e-through-link").exists(), "extraction followed a symlink out");

    // Malformed: a truncated tar, gzip garbage, an entry claiming 8 GiB with no data.
    let whole = tar_of(&[
        ("Dockerfile", tar::EntryType::Regular, df, None),
        ("big", tar::EntryType::Regular, &[7u8; 4000], None),
    ]);
    let (status, text) = post_build(&d, "", &whole[..512 + 512 + 512 + 1000]);
    assert_ne!(status, 200, "{text}");
    let (status, text) = post_build(&d, "", &[0x1f, 0x8b, 0x08, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_ne!(status, 200, "{text}");
    let mut huge = tar::Header::new_gnu();
    huge.set_path("huge").unwrap();
    huge.set_size(8 << 30);
    huge.set_mode(0o644);
    huge.set_cksum();
    let mut body = tar_of(&[("Dockerfile", tar::EntryType::Regular, df, None)]);
    body.truncate(1024);
    body.extend_from_slice(huge.as_bytes());
    body.extend_from_slice(&[1u8; 4096]);
    let (status, text) = post_build(&d, "", &body);
    assert_ne!(status, 200, "{text}");
    // Not a tar and not a Dockerfile: a parse error.
    let (status, text) = post_build(&d, "", b"\x00\x01binary garbage\xff\n");
    assert_eq!(status, 400, "{text}");
    // Remote contexts that cannot be fetched or are BuildKit's, and BuildKit: clear refusals.
    let (status, text) = post_build(&d, "remote=http%3A%2F%2F127.0.0.1%3A1%2Fx.git", b"");
    assert_eq!(status, 400);
    assert!(text.contains("unable to prepare context"), "{text}");
    let (status, text) = post_build(&d, "remote=ftp%3A%2F%2Fx%2Fy", b"");
    assert_eq!(status, 400);
    assert!(text.contains("unsupported remote context"), "{text}");
    let (status, text) = post_build(&d, "remote=client-session", b"");
    assert_eq!(status, 400);
    assert!(text.contains("BuildKit"), "{text}");
    let (status, _) = post_build(&d, "version=2", b"");
    assert_eq!(status, 501);

    // The daemon is fine, and nothing is left in the builder's temp dir.
    assert_eq!(d.api("GET", "/_ping", b"").status, 200);
    let tmp: Vec<_> = std::fs::read_dir(d.data_root.join("builder/tmp"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "{tmp:?}");
    assert_no_leftovers(&d);
}

#[test]
fn wharf_build_cli() {
    skip_unless!(require::root(), require::busybox(), require::overlayfs());
    let d = TestDaemon::start();
    d.import_busybox();
    let ctx = context_dir(
        &d,
        "ctx",
        &[
            ("Dockerfile", "FROM busybox\nARG V\nLABEL from=dockerfile\nCOPY . /ctx/\nRUN echo \"v=$V\"; ls /ctx\n"),
            (".dockerignore", "*.secret\nignored/\n"),
            ("keep.txt", "k"),
            ("a.secret", "s"),
            ("ignored/x", "x"),
        ],
    );
    let c = ctx.to_str().unwrap();
    // Not on a terminal: BuildKit's plain progress on stderr.
    let (code, out, err) = run(d.wharf(&["build", "-t", "e2e/w:1", "--build-arg", "V=7", "--label", "l=1", c]));
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(err.starts_with("#0 [internal] load build context\n#0 transferring context: "), "{err}");
    assert!(err.contains("\n#1 [1/6] FROM busybox\n#1 DONE "), "{err}");
    assert!(err.contains("\n#5 [5/6] RUN echo \"v=$V\"; ls /ctx\n"), "{err}");
    let run_output: Vec<&str> = err
        .lines()
        .filter_map(|l| l.strip_prefix("#5 ")?.split_once(' '))
        .filter_map(|(time, text)| time.parse::<f64>().is_ok().then_some(text))
        .collect();
    assert_eq!(run_output, ["v=7", "Dockerfile", "keep.txt"], ".dockerignore is honoured: {err}");
    assert!(err.contains("\n#6 [6/6] LABEL l=1\n"), "{err}");
    assert!(err.contains("\n#7 exporting to image\n#7 writing image sha256:"), "{err}");
    assert!(err.contains("\n#7 naming to e2e/w:1 done\n"), "{err}");
    // -q: just the ID, and it is cached.
    let q = ok(d.wharf(&["build", "-q", "--build-arg", "V=7", "--label", "l=1", c]));
    assert!(q.trim().starts_with("sha256:") && q.lines().count() == 1, "{q}");
    let inspect = ok(d.docker(&["image", "inspect", "-f", "{{.Id}} {{index .Config.Labels \"l\"}}", "e2e/w:1"]));
    assert_eq!(inspect.trim(), format!("{} 1", q.trim()));
    // --compress sends the context gzipped: the same context, so the same cached image.
    let qc = ok(d.wharf(&["build", "-q", "--compress", "--build-arg", "V=7", "--label", "l=1", c]));
    assert_eq!(qc, q);
    // --target, --no-cache, -f - (Dockerfile from stdin), and a failing step's exit code.
    let mut child = d
        .wharf(&["build", "--no-cache", "-f", "-", "-t", "e2e/w:stdin", c])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"FROM busybox\nCOPY keep.txt /\nRUN cat /keep.txt; exit 5\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("The command '/bin/sh -c cat /keep.txt; exit 5' returned a non-zero code: 5")
    );
    // builder prune.
    let pruned = ok(d.wharf(&["builder", "prune", "-af"]));
    assert!(pruned.contains("Total reclaimed space:"), "{pruned}");
    // A remote context the daemon cannot fetch (tests of working ones: build_remote.rs).
    let (code, _, err) = run(d.wharf(&["build", "http://127.0.0.1:1/repo.git"]));
    assert_eq!(code, 1);
    assert!(err.contains("unable to prepare context"), "{err}");
    assert_no_leftovers(&d);
}

/// Path → status and body.
type Answers = std::collections::HashMap<String, (u16, Vec<u8>)>;

/// A small HTTP server on 127.0.0.1 for the daemon to download from (the daemon runs on the
/// host, so loopback reaches it): each path answers with the status and body set for it, 404
/// otherwise, and every answer carries a fixed `Last-Modified`.
struct FileServer {
    port: u16,
    files: std::sync::Arc<std::sync::Mutex<Answers>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// `Last-Modified` of every answer: 1994-11-06T08:49:37Z.
const LAST_MODIFIED: (&str, u64) = ("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_777);

impl FileServer {
    fn start() -> FileServer {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let files = std::sync::Arc::new(std::sync::Mutex::new(Answers::new()));
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (f, h) = (files.clone(), hits.clone());
        // Serves until the test process exits.
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (status, body) = f.lock().unwrap().get(&path).cloned().unwrap_or((404, b"no such file\n".to_vec()));
                let reason = if status == 200 { "OK" } else { "Not Found" };
                let head = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nLast-Modified: {}\r\nConnection: close\r\n\r\n",
                    body.len(),
                    LAST_MODIFIED.0
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body);
            }
        });
        FileServer { port, files, hits }
    }

    fn set(&self, path: &str, status: u16, body: &[u8]) {
        self.files.lock().unwrap().insert(path.to_owned(), (status, body.to_vec()));
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn docker_build_add_downloads_urls() {
    skip_unless!(require::root(), require::busybox(), require::program("docker"), require::overlayfs());
    let d = TestDaemon::start();
    d.import_busybox();
    let web = FileServer::start();
    web.set("/files/data.txt", 200, b"version 1\n");
    let df = format!(
        "FROM busybox\n\
         ADD {url} /dl/\n\
         ADD {url} /renamed\n\
         RUN stat -c '%a %Y %n' /dl/data.txt /renamed && cat /dl/data.txt\n",
        url = web.url("/files/data.txt")
    );
    let ctx = context_dir(&d, "ctx", &[("Dockerfile", &df)]);
    let c = ctx.to_str().unwrap();

    // Destination directory: named after the URL path; otherwise the destination's name.
    // Mode 0600 and the Last-Modified time, as Docker's download; not extracted.
    let out = ok(docker_build(&d, &["-t", "e2e/dl:1", c]));
    let url = web.url("/files/data.txt");
    assert!(out.contains(&format!("Step 2/4 : ADD {url} /dl/\n\n ---> ")), "a blank line after downloads: {out}");
    let mtime = LAST_MODIFIED.1;
    assert!(out.contains(&format!("600 {mtime} /dl/data.txt\n600 {mtime} /renamed\nversion 1\n")), "{out}");
    assert_eq!(ok(d.docker(&["run", "--rm", "e2e/dl:1", "cat", "/renamed"])), "version 1\n");

    // Every build downloads again; the same content is a cache hit.
    let before = web.hits();
    let out = ok(docker_build(&d, &[c]));
    assert_eq!(web.hits(), before + 2, "both ADDs download again");
    assert_eq!(cached_steps(&out), [false, true, true, true], "{out}");
    // New content: the ADD steps and what follows run again.
    web.set("/files/data.txt", 200, b"version 2\n");
    let out = ok(docker_build(&d, &[c]));
    assert_eq!(cached_steps(&out), [false, false, false, false], "{out}");
    assert!(out.contains("version 2\n"), "{out}");

    // The download's progress, for clients that draw it.
    let df = format!("FROM busybox\nADD {url} /p.txt\n");
    let (status, text) =
        post_build(&d, "nocache=1", &tar_of(&[("Dockerfile", tar::EntryType::Regular, df.as_bytes(), None)]));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(r#"{"status":"Downloading","progressDetail":{"current":10,"total":10}}"#), "{text}");

    // --checksum: verified against the download, with BuildKit's words on a mismatch.
    let body = b"version 2\n";
    let sum = format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body)));
    std::fs::write(ctx.join("Dockerfile"), format!("FROM busybox\nADD --checksum={sum} {url} /sum.txt\n")).unwrap();
    ok(docker_build(&d, &[c]));
    let bad = format!("sha256:{}", "0".repeat(64));
    std::fs::write(ctx.join("Dockerfile"), format!("FROM busybox\nADD --checksum={bad} {url} /sum.txt\n")).unwrap();
    let (code, out, err) = run(docker_build(&d, &[c]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&format!("ADD failed: digest mismatch {sum}: {bad}")), "{err}");

    // A missing file: the step's line, then the URL and the server's answer.
    let missing = web.url("/files/nosuch.txt");
    std::fs::write(ctx.join("Dockerfile"), format!("FROM busybox\nRUN true\nADD {missing} /x\n")).unwrap();
    let (code, out, err) = run(docker_build(&d, &[c]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&format!("Step 3/3 : ADD {missing} /x\n")), "{out}");
    assert!(
        err.contains(&format!("ADD failed: failed to GET {missing} with status 404 Not Found: no such file")),
        "{err}"
    );
    assert_no_leftovers(&d);
}

/// The step snapshots (`build-…`) the snapshotter still has: none once a build is over.
fn step_snapshots(d: &TestDaemon) -> Vec<String> {
    let meta = d.data_root.join("snapshots/overlay/metadata.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap_or_default()).unwrap_or_default();
    let names = v["snapshots"].as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    names.into_iter().filter(|n| n.starts_with("build-")).collect()
}

/// This daemon's host links, firewall table (counters left out) and address allocations, to
/// compare before and after builds.
fn host_network_state(d: &TestDaemon) -> (Vec<String>, String, Vec<String>) {
    let mut links = d.net.links();
    links.sort();
    let table = ok(Command::new("nft").args(["list", "table", "inet", &d.net.firewall_table()]));
    let mut words = Vec::new();
    let mut it = table.split_whitespace();
    while let Some(w) = it.next() {
        if w == "packets" || w == "bytes" {
            it.next();
        } else {
            words.push(w);
        }
    }
    let db =
        rusqlite::Connection::open_with_flags(d.data_root.join("wharf.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut q = db.prepare("SELECT doc FROM network_pools ORDER BY network, subnet").unwrap();
    let pools = q.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect();
    (links, words.join(" "), pools)
}

/// Prints the step's network interfaces (`links: eth0 lo `), its `foo` line of `/etc/hosts`,
/// and what `http://$T/` answers (retrying while the server starts; no `-T`: busybox 1.35's
/// wget crashes with it).
const NETWORK_PROBE: &str = r#"FROM busybox
ARG T
RUN echo "links: $(sed -n 's/^ *\([^:|]*\):.*/\1/p' /proc/net/dev | sort | tr '\n' ' ')"; grep -w foo /etc/hosts || true
RUN for i in $(seq 100); do wget -q -O- "http://$T/" && exit 0; sleep 0.2; done; exit 1
"#;

#[test]
fn docker_build_run_steps_join_the_requested_network() {
    skip_unless!(
        require::root(),
        require::busybox(),
        require::program("docker"),
        require::overlayfs(),
        require::program("ip"),
        require::program("nft")
    );
    let mut d = TestDaemon::start();
    d.import_busybox();
    let serve = |name: &str, network: &str, text: &str| {
        let script = format!("mkdir /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www");
        ok(d.docker(&["run", "-d", "--name", name, "--network", network, "busybox", "sh", "-c", &script]));
    };
    serve("web", "bridge", "hello-bridge");
    ok(d.docker(&["network", "create", "e2e-build"]));
    serve("web2", "e2e-build", "hello-user");
    let ip = ok(d.docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"])).trim().to_owned();
    let before = host_network_state(&d);
    assert!(before.2.iter().any(|p| p.contains(&format!("\"{ip}\""))), "{:?}", before.2);
    let ctx = context_dir(&d, "ctx", &[("Dockerfile", NETWORK_PROBE)]);
    let c = ctx.to_str().unwrap();

    // The default bridge, by address; --add-host lands in /etc/hosts.
    let t = format!("T={ip}");
    let out = ok(docker_build(&d, &["--add-host", "foo:1.2.3.4", "--build-arg", &t, c]));
    assert!(out.contains("links: eth0 lo \n1.2.3.4\tfoo\n"), "{out}");
    assert!(out.contains("hello-bridge\n"), "{out}");

    // A user-defined network, by name through its DNS.
    let out = ok(docker_build(&d, &["--network", "e2e-build", "--build-arg", "T=web2", "--no-cache", c]));
    assert!(out.contains("hello-user\n"), "{out}");

    // Another container's network: its namespace, so its server answers on loopback.
    let out = ok(docker_build(&d, &["--network", "container:web", "--build-arg", "T=127.0.0.1", "--no-cache", c]));
    assert!(out.contains("links: eth0 lo \n") && out.contains("hello-bridge\n"), "{out}");

    // none: loopback only; host: the host's links, the daemon's bridge among them.
    std::fs::write(ctx.join("Dockerfile"), NETWORK_PROBE.lines().take(3).collect::<Vec<_>>().join("\n")).unwrap();
    let out = ok(docker_build(&d, &["--network", "none", "--no-cache", c]));
    assert!(out.contains("links: lo \n"), "{out}");
    let out = ok(docker_build(&d, &["--network", "host", "--no-cache", c]));
    let links = out.lines().find(|l| l.starts_with("links: ")).unwrap_or_else(|| panic!("{out}"));
    assert!(links.split_whitespace().any(|l| l == d.net.bridge()), "{out}");
    // A network that does not exist: Docker's words.
    let (code, out, err) = run(docker_build(&d, &["--network", "nosuch", "--no-cache", c]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("network nosuch not found"), "{err}");
    // RUN --network in the Dockerfile overrides the build's network.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN --network=none cat /proc/net/dev | grep -c :\n").unwrap();
    let out = ok(docker_build(&d, &["--no-cache", c]));
    assert!(out.contains("\n1\n"), "only lo: {out}");

    // Every step's endpoint is gone: links, rules, addresses, and the networks' endpoints.
    assert_eq!(host_network_state(&d), before);
    for (net, n) in [("bridge", "1"), ("e2e-build", "1"), ("none", "0"), ("host", "0")] {
        let count = ok(d.docker(&["network", "inspect", "-f", "{{len .Containers}}", net]));
        assert_eq!(count.trim(), n, "endpoints left on {net}");
    }
    ok(d.docker(&["rm", "-f", "web", "web2"]));
    ok(d.docker(&["network", "rm", "e2e-build"]));
    assert_no_leftovers(&d);
    d.stop();
    let leaks: Vec<String> = d.net.leaks().into_iter().filter(|l| *l != format!("link {}", d.net.bridge())).collect();
    assert!(leaks.is_empty(), "left on the host after the daemon stopped: {leaks:?}");
}

#[test]
fn docker_build_cancelled_by_the_client_leaves_nothing() {
    use std::io::BufRead;
    skip_unless!(require::root(), require::busybox(), require::program("docker"), require::overlayfs());
    let d = TestDaemon::start();
    d.import_busybox();
    // The last step waits until the gate opens: forever the first time, not the second.
    let gate = FileServer::start();
    let df = format!(
        "FROM busybox\n\
         RUN echo first > /first\n\
         RUN echo started; until wget -q -O /dev/null {}; do sleep 1; done; echo released\n",
        gate.url("/go")
    );
    let ctx = context_dir(&d, "ctx", &[("Dockerfile", &df)]);
    let c = ctx.to_str().unwrap();
    let mut child =
        docker_build(&d, &["--network", "host", c]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("started") {
        match rx.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(l) => seen.push(l),
            Err(e) => panic!("the last step did not start ({e}):\n{}\n{}", seen.join("\n"), d.log()),
        }
    }
    // The CLI goes away (as on Ctrl-C): the daemon sees the connection close.
    child.kill().unwrap();
    child.wait().unwrap();

    // The step's container is stopped and removed, with its mounts, cgroup and snapshot.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let run_dirs = std::fs::read_dir(d.exec_root.join("b")).map(|r| r.count()).unwrap_or(0);
        if run_dirs == 0 && step_snapshots(&d).is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the cancelled step is still there: {run_dirs} run dirs, snapshots {:?}",
            step_snapshots(&d)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_no_leftovers(&d);
    assert_eq!(ok(d.docker(&["ps", "-aq"])), "");

    // The daemon still builds: the finished step is cached, the cancelled one was not.
    gate.set("/go", 200, b"go\n");
    let out = ok(docker_build(&d, &["--network", "host", c]));
    assert_eq!(cached_steps(&out), [false, true, false], "{out}");
    assert!(out.contains("started\nreleased\n"), "{out}");
    assert_no_leftovers(&d);
    assert!(step_snapshots(&d).is_empty(), "{:?}", step_snapshots(&d));
}

/// A final screen's lines without the times at their ends (`  0.3s`).
fn untimed(screen: &[String]) -> Vec<String> {
    screen
        .iter()
        .map(|l| {
            let t = l.trim_end();
            match t.rsplit_once(' ') {
                Some((head, time))
                    if time.ends_with('s') && time[..time.len() - 1].parse::<f64>().is_ok() && head.ends_with(' ') =>
                {
                    head.trim_end().to_owned()
                }
                _ => t.to_owned(),
            }
        })
        .collect()
}

#[test]
fn wharf_build_live_view_on_a_terminal() {
    skip_unless!(require::root(), require::busybox(), require::overlayfs());
    let d = TestDaemon::start();
    d.import_busybox();
    let ctx = context_dir(
        &d,
        "ctx",
        &[
            ("Dockerfile", "FROM busybox\nCOPY f.txt /f.txt\nRUN echo built from $(cat /f.txt); sleep 1\nLABEL x=y\n"),
            ("f.txt", "one"),
        ],
    );
    let c = ctx.to_str().unwrap();
    let cols = 100;

    // First build: the running step's output shows under it while it runs.
    let mut p = Pty::spawn(d.wharf(&["build", "-t", "e2e/tty", c]), 40, cols as u16);
    p.expect(" => => # built from one");
    assert_eq!(p.wait(), 0, "{}", p.output());
    let screen = untimed(&p.screen(cols));
    assert!(screen[0].starts_with("[+] Building ") && screen[0].ends_with(" (4/4) FINISHED"), "{screen:#?}");
    assert_eq!(
        screen[3..7],
        [
            " => [1/4] FROM busybox",
            " => [2/4] COPY f.txt /f.txt",
            " => [3/4] RUN echo built from $(cat /f.txt); sleep 1",
            " => [4/4] LABEL x=y",
        ]
    );
    assert!(p.screen(cols).iter().all(|l| l.chars().count() < cols), "lines fit the terminal");

    // Rebuild: every step after FROM is cached; the final frame stays on the screen.
    let mut p = Pty::spawn(d.wharf(&["build", "-t", "e2e/tty", c]), 40, cols as u16);
    assert_eq!(p.wait(), 0, "{}", p.output());
    let screen = untimed(&p.screen(cols));
    assert!(screen[0].starts_with("[+] Building ") && screen[0].ends_with(" (4/4) FINISHED"), "{screen:#?}");
    assert_eq!(
        screen[1..],
        [
            " => [internal] load build context".to_owned(),
            format!(" => => transferring context: {}", screen[2].rsplit(' ').next().unwrap()),
            " => [1/4] FROM busybox".into(),
            " => CACHED [2/4] COPY f.txt /f.txt".into(),
            " => CACHED [3/4] RUN echo built from $(cat /f.txt); sleep 1".into(),
            " => CACHED [4/4] LABEL x=y".into(),
            " => exporting to image".into(),
            screen[8].clone(),
            " => => naming to e2e/tty:latest".into(),
        ]
    );
    assert!(screen[8].starts_with(" => => writing image sha256:"), "{screen:#?}");

    // A failing RUN: the step's whole output, Docker's error line, the step's exit code.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo before; exit 3\n").unwrap();
    let mut p = Pty::spawn(d.wharf(&["build", c]), 40, cols as u16);
    assert_eq!(p.wait(), 3, "{}", p.output());
    let screen = untimed(&p.screen(cols));
    let at = screen.iter().position(|l| l == " => ERROR [2/2] RUN echo before; exit 3").expect("an ERROR line");
    let report = &screen[at + 1..];
    assert_eq!(report[0], "------");
    assert_eq!(report[1], " > [2/2] RUN echo before; exit 3:");
    assert!(report[2].ends_with(" before"), "{screen:#?}");
    assert_eq!(report[3..], ["------", "The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3"]);
    assert_no_leftovers(&d);
}

#[test]
fn cache_from_a_loaded_image_on_a_fresh_daemon() {
    skip_unless!(require::root(), require::busybox(), require::program("docker"), require::overlayfs());
    let files: &[(&str, &str)] = &[
        (
            "Dockerfile",
            "FROM busybox\nENV A=1\nCOPY f.txt /f.txt\nCOPY dir /dir/\nRUN echo ran > /ran.txt\nWORKDIR /dir\nLABEL l=1\n",
        ),
        ("f.txt", "x"),
        ("dir/a", "a"),
    ];
    // Machine A builds and saves the image.
    let a = TestDaemon::start();
    a.import_busybox();
    let ctx = context_dir(&a, "ctx", files);
    let out = ok(docker_build(&a, &["-t", "e2e/cf:1", ctx.to_str().unwrap()]));
    let id = built_id(&out);
    let history = ok(a.docker(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", "e2e/cf:1"]));
    assert!(history.contains("/bin/sh -c #(nop) COPY file:"), "COPY's history names its content: {history}");
    assert!(history.contains("/bin/sh -c #(nop) COPY dir:"), "{history}");
    // The base image goes along, as it would come from a registry on both machines.
    let saved = a.dir().join("cf.tar");
    ok(a.docker(&["save", "-o", saved.to_str().unwrap(), "e2e/cf:1", "busybox"]));

    // Machine B: the images, no build cache. A plain build runs every step.
    let b = TestDaemon::start();
    ok(b.docker(&["load", "-i", saved.to_str().unwrap()]));
    let ctx = context_dir(&b, "ctx", files);
    let c = ctx.to_str().unwrap();
    let plain = ok(docker_build(&b, &[c]));
    assert!(!plain.contains("Using cache"), "{plain}");
    // With --cache-from the loaded image satisfies every step (the local cache of the build
    // above does not count), and the result is that image.
    let out = ok(docker_build(&b, &["--cache-from", "e2e/cf:1", "-t", "e2e/cf:2", c]));
    assert_eq!(cached_steps(&out), [false, true, true, true, true, true, true], "{out}");
    assert!(!out.contains("Running in"), "{out}");
    assert_eq!(built_id(&out), id);
    // A changed file: its COPY and the steps after it run again.
    std::fs::write(ctx.join("dir/a"), "changed").unwrap();
    let out = ok(docker_build(&b, &["--cache-from", "e2e/cf:1", c]));
    assert_eq!(cached_steps(&out), [false, true, true, false, false, false, false], "{out}");
    assert_ne!(built_id(&out), id);
    assert_no_leftovers(&a);
    assert_no_leftovers(&b);
}

#[test]
fn intermediate_containers_with_rm_and_force_rm() {
    skip_unless!(require::root(), require::busybox(), require::program("docker"), require::overlayfs());
    let d = TestDaemon::start();
    d.import_busybox();
    let ctx =
        context_dir(&d, "ctx", &[("Dockerfile", "FROM busybox\nENV A=1\nRUN echo kept > /kept.txt\nWORKDIR /w\n")]);
    let c = ctx.to_str().unwrap();
    let all = || ok(d.docker(&["ps", "-aq", "--no-trunc"])).lines().map(str::to_owned).collect::<Vec<_>>();

    // The default: containers are removed as the steps succeed.
    let out = ok(docker_build(&d, &[c]));
    assert_eq!(out.matches("Removing intermediate container").count(), 3, "{out}");
    assert!(all().is_empty());

    // --rm=false: every step's container stays, under the ID the build printed.
    let out = ok(docker_build(&d, &["--rm=false", "--no-cache", c]));
    assert!(!out.contains("Removing intermediate container"), "{out}");
    let printed: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix(" ---> Running in ")).collect();
    assert_eq!(printed.len(), 3, "{out}");
    let kept = all();
    for id in &printed {
        assert!(kept.iter().any(|k| k.starts_with(id)), "{id} not in {kept:?}");
    }
    let env_step = ok(d.docker(&["inspect", "-f", "{{.State.Status}} {{json .Config.Cmd}}", printed[0]]));
    assert_eq!(env_step.trim(), r##"created ["/bin/sh","-c","#(nop) ","ENV A=1"]"##);
    let run_step =
        ok(d.docker(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{json .Config.Cmd}}", printed[1]]));
    assert_eq!(run_step.trim(), r#"exited 0 ["/bin/sh","-c","echo kept > /kept.txt"]"#);
    // The build's network mode is recorded, as moby does (the CLI sends `default`).
    assert_eq!(ok(d.docker(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", printed[1]])).trim(), "default");
    // Its writable layer holds the step's changes.
    let diff = ok(d.docker(&["diff", printed[1]]));
    assert!(diff.lines().any(|l| l == "A /kept.txt"), "{diff}");
    let commit = ok(d.docker(&["commit", printed[1], "e2e/from-kept"]));
    assert!(commit.starts_with("sha256:"), "{commit}");
    assert_eq!(ok(d.docker(&["run", "--rm", "e2e/from-kept", "cat", "/kept.txt"])), "kept\n");
    let workdir_step = ok(d.docker(&["inspect", "-f", "{{.State.Status}} {{.Config.WorkingDir}}", printed[2]]));
    assert_eq!(workdir_step.trim(), "created /w");
    let diff = ok(d.docker(&["diff", printed[2]]));
    assert!(diff.lines().any(|l| l == "A /w"), "{diff}");
    ok(d.docker(&["rm", printed[0], printed[1], printed[2]]));

    // A failing RUN: its container stays by default, exited with the step's code...
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo failing > /f.txt; exit 7\n").unwrap();
    let (code, out, err) = run(docker_build(&d, &["--network", "none", c]));
    assert_eq!(code, 7, "{out}{err}");
    let failed = out.lines().find_map(|l| l.strip_prefix(" ---> Running in ")).expect("a container").to_owned();
    assert!(!out.contains("Removing intermediate container"), "{out}");
    let state =
        ok(d.docker(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.HostConfig.NetworkMode}}", &failed]));
    assert_eq!(state.trim(), "exited 7 none");
    // Started again, it runs the step's command on the step's network.
    let (code, _, _) = run(d.docker(&["start", "-a", &failed]));
    assert_eq!(code, 7);
    let diff = ok(d.docker(&["diff", &failed]));
    assert!(diff.lines().any(|l| l == "A /f.txt"), "{diff}");
    ok(d.docker(&["rm", &failed]));
    // ...and --force-rm removes it.
    let (code, out, err) = run(docker_build(&d, &["--force-rm", c]));
    assert_eq!(code, 7, "{out}{err}");
    assert!(out.contains("Removing intermediate container"), "{out}");
    assert!(all().is_empty(), "{:?}", all());
    // wharf build takes the same flags.
    let (code, _, err) = run(d.wharf(&["build", "--rm=false", "--progress=plain", c]));
    assert_eq!(code, 7, "{err}");
    assert_eq!(all().len(), 1);
    let (code, _, err) = run(d.wharf(&["build", "--force-rm", "--progress=plain", c]));
    assert_eq!(code, 7, "{err}");
    assert_eq!(all().len(), 1, "the earlier one only");
    assert_no_leftovers(&d);
}

#[test]
fn wharf_build_secrets_reach_run_mounts_and_not_the_image() {
    skip_unless!(require::root(), require::busybox(), require::overlayfs());
    let d = TestDaemon::start();
    d.import_busybox();
    let df = "FROM busybox\n\
              RUN --mount=type=secret,id=tok cat /run/secrets/tok; echo\n\
              RUN --mount=type=secret,id=api,env=API_KEY echo \"key=$API_KEY\"\n\
              RUN --mount=type=secret,id=none,required=true true\n";
    let ctx = context_dir(&d, "ctx", &[("Dockerfile", df), ("tok.txt", "from-a-file")]);
    let c = ctx.to_str().unwrap();
    let tok = format!("id=tok,src={}", ctx.join("tok.txt").display());
    let (code, out, err) = run(d
        .wharf(&["build", "--progress=plain", "--secret", &tok, "--secret", "id=api,env=E2E_KEY", c])
        .env("E2E_KEY", "from-the-env"));
    assert_eq!(code, 1, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(all.contains("from-a-file\n"), "{all}");
    assert!(all.contains("key=from-the-env\n"), "{all}");
    assert!(all.contains("secret none: not found"), "{all}");

    // Without the required one it builds, and the image holds no secret.
    std::fs::write(ctx.join("Dockerfile"), df.lines().take(3).collect::<Vec<_>>().join("\n")).unwrap();
    ok(d.wharf(&["build", "-q", "-t", "e2e/sec", "--secret", &tok, "--secret", "id=api,env=E2E_KEY", c])
        .env("E2E_KEY", "from-the-env"));
    let listing =
        ok(d.docker(&["run", "--rm", "e2e/sec", "sh", "-c", "ls -A /run/secrets 2>&1; env | grep -c from- ; true"]));
    assert!(!listing.contains("tok") && listing.ends_with("0\n"), "{listing}");
    // A bad --secret is refused before anything is sent.
    let (code, _, err) = run(d.wharf(&["build", "--secret", "src=/nowhere", c]));
    assert_eq!(code, 1);
    assert!(err.contains("invalid secret \"src=/nowhere\": id is required"), "{err}");
    assert_no_leftovers(&d);
}
