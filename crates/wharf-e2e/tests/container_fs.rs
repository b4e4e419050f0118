//! A container's file system through the API with the real docker CLI: `cp` both ways
//! (compat §3.8), `diff`, `export`, `commit` and `update`.

use std::process::Stdio;

use wharf_testkit::{TestDaemon, require, run_text, skip_unless};

fn docker(d: &TestDaemon, args: &[&str]) -> (i32, String, String) {
    run_text(&mut d.docker(args))
}

fn ok(d: &TestDaemon, args: &[&str]) -> String {
    let (code, out, err) = docker(d, args);
    assert_eq!(code, 0, "docker {args:?}: {err}");
    out
}

#[test]
fn cp_diff_export_commit_update() {
    skip_unless!(require::root(), require::program("docker"), require::program("tar"), require::busybox());
    let d = TestDaemon::start();
    d.import_busybox();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("a.txt"), "hello\n").unwrap();
    std::fs::create_dir_all(host.path().join("cpsrc/sub")).unwrap();
    std::fs::write(host.path().join("cpsrc/sub/b.txt"), "bee\n").unwrap();
    let h = |p: &str| host.path().join(p).display().to_string();

    ok(&d, &["run", "-d", "--name", "fs", "busybox", "sleep", "300"]);
    // Into a path that does not exist yet (HEAD 404, PUT into the parent), and a directory.
    ok(&d, &["cp", &h("a.txt"), "fs:/tmp/renamed.txt"]);
    ok(&d, &["cp", &h("cpsrc"), "fs:/tmp/dir"]);
    ok(&d, &["cp", &h("a.txt"), "fs:/tmp/"]);
    let out = ok(&d, &["exec", "fs", "sh", "-c", "cat /tmp/renamed.txt /tmp/dir/sub/b.txt /tmp/a.txt"]);
    assert_eq!(out, "hello\nbee\nhello\n");
    // Out again: a file, a directory, a directory's content.
    ok(&d, &["exec", "fs", "sh", "-c", "mkdir -p /srv/x && echo made > /srv/x/f"]);
    ok(&d, &["cp", "fs:/srv/x/f", &h("out.txt")]);
    assert_eq!(std::fs::read_to_string(h("out.txt")).unwrap(), "made\n");
    ok(&d, &["cp", "fs:/srv/x", &h("outdir")]);
    assert_eq!(std::fs::read_to_string(h("outdir/f")).unwrap(), "made\n");
    std::fs::create_dir(h("content")).unwrap();
    ok(&d, &["cp", "fs:/srv/x/.", &h("content")]);
    assert_eq!(std::fs::read_to_string(h("content/f")).unwrap(), "made\n");
    let (code, _, err) = docker(&d, &["cp", "fs:/nonexistent", &h("nothing")]);
    assert_ne!(code, 0);
    assert!(err.contains("Could not find the file /nonexistent in container fs"), "{err}");

    // diff: Docker's rules (A added, C changed).
    let diff = ok(&d, &["diff", "fs"]);
    for line in ["C /tmp", "A /tmp/renamed.txt", "A /srv", "A /srv/x/f"] {
        assert!(diff.lines().any(|l| l == line), "{line:?} missing from:\n{diff}");
    }

    // export: the whole root file system as a tar.
    let mut export = d.docker(&["export", "fs"]).stdout(Stdio::piped()).spawn().unwrap();
    let list = std::process::Command::new("tar").arg("-t").stdin(export.stdout.take().unwrap()).output().unwrap();
    assert!(export.wait().unwrap().success());
    let names = String::from_utf8_lossy(&list.stdout);
    assert!(names.lines().any(|l| l.trim_start_matches("./") == "bin/busybox"), "{names}");
    assert!(names.lines().any(|l| l.trim_start_matches("./") == "srv/x/f"), "{names}");

    // commit: a new image with the layer, and the changes applied.
    ok(&d, &["commit", "-c", "ENV FROM_COMMIT=yes", "fs", "committed:v1"]);
    let out = ok(&d, &["run", "--rm", "committed:v1", "sh", "-c", "cat /srv/x/f; echo $FROM_COMMIT"]);
    assert_eq!(out, "made\nyes\n");
    // update: resources and restart policy, seen by inspect.
    ok(&d, &["update", "--memory", "100m", "--memory-swap", "200m", "--restart", "on-failure:2", "fs"]);
    let out = ok(&d, &["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}", "fs"]);
    assert_eq!(out.trim(), "104857600 on-failure");
    ok(&d, &["rm", "-f", "fs"]);
    // cp works on a stopped container too.
    ok(&d, &["create", "--name", "stopped", "busybox", "true"]);
    ok(&d, &["cp", &h("a.txt"), "stopped:/a.txt"]);
    ok(&d, &["cp", "stopped:/a.txt", &h("back.txt")]);
    assert_eq!(std::fs::read_to_string(h("back.txt")).unwrap(), "hello\n");
}
