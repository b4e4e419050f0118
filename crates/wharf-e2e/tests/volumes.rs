//! Volumes and mounts with real clients against wharfd: the docker CLI (volume commands, `-v`,
//! `--mount`, `--tmpfs`, `--volumes-from`, `rm -v`, `--rm`, `system df`, events), docker-py,
//! and `wharf volume …` (whose output must match docker's). Images are `docker import`ed from
//! a busybox root built here; one declares `VOLUME /data` over owned content, one carries a
//! symlink to a host directory. Every test ends by checking that no mount is left.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;

use wharf_testkit::{TestDaemon, require, run_text, skip_unless};

const APPLETS: &[&str] =
    &["sh", "ls", "cat", "echo", "df", "stat", "touch", "mkdir", "test", "wc", "sleep", "dd", "grep", "true", "id"];

fn requirements() -> Result<(), String> {
    require::root()?;
    require::overlayfs()?;
    require::program("docker")?;
    require::program("tar")?;
    if !Path::new("/bin/busybox").exists() {
        return Err("needs /bin/busybox (busybox-static)".into());
    }
    Ok(())
}

/// Imports `volimg` (busybox, `VOLUME /data` over files owned 1000:1000 and 1234:5678) and
/// `escimg` (busybox with `/escape` → `host`, an absolute host path).
fn import_images(d: &TestDaemon, host: &Path) {
    let root = d.dir().join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for a in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    for dir in ["etc", "tmp", "proc", "sys", "dev", "data/sub"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("data/hello"), "from image\n").unwrap();
    std::fs::write(root.join("data/sub/deep"), "deep\n").unwrap();
    let own = |p: &Path, uid: u32, gid: u32, mode: u32| {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    };
    own(&root.join("data"), 1000, 1000, 0o750);
    own(&root.join("data/hello"), 1234, 5678, 0o640);
    let tar = d.dir().join("rootfs.tar");
    let (code, _, err) = run_text(
        std::process::Command::new("tar").arg("--numeric-owner").arg("-C").arg(&root).arg("-cf").arg(&tar).arg("."),
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_text(&mut d.docker(&[
        "import",
        "-c",
        "VOLUME /data",
        "-c",
        "CMD [\"sh\"]",
        tar.to_str().unwrap(),
        "volimg",
    ]));
    assert_eq!(code, 0, "{err}");
    std::fs::remove_dir_all(root.join("data")).unwrap();
    std::os::unix::fs::symlink(host, root.join("escape")).unwrap();
    let (code, _, err) = run_text(
        std::process::Command::new("tar").arg("--numeric-owner").arg("-C").arg(&root).arg("-cf").arg(&tar).arg("."),
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_text(&mut d.docker(&["import", "-c", "CMD [\"sh\"]", tar.to_str().unwrap(), "escimg"]));
    assert_eq!(code, 0, "{err}");
}

/// Mount points under `dir` (the daemon's roots) still in the mount table.
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_string_lossy();
    info.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&*dir)).map(str::to_owned).collect()
}

fn docker(d: &TestDaemon, args: &[&str]) -> (i32, String, String) {
    run_text(&mut d.docker(args))
}

fn ok(d: &TestDaemon, args: &[&str]) -> String {
    let (code, out, err) = docker(d, args);
    assert_eq!(code, 0, "docker {args:?}: {err}\n{out}");
    out
}

#[test]
fn docker_cli_volume_commands_and_wharf_cli_agree() {
    skip_unless!(requirements());
    let d = TestDaemon::start();
    assert_eq!(ok(&d, &["volume", "create", "--label", "tier=web", "--label", "bare", "web"]), "web\n");
    assert_eq!(
        ok(&d, &["volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", "ram"]),
        "ram\n"
    );
    let anon = ok(&d, &["volume", "create"]).trim().to_owned();
    assert_eq!(anon.len(), 64);
    let ls = ok(&d, &["volume", "ls"]);
    assert_eq!(ls, format!("DRIVER    VOLUME NAME\nlocal     {anon}\nlocal     ram\nlocal     web\n"));
    let inspect = ok(&d, &["volume", "inspect", "web"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["Labels"], serde_json::json!({"tier": "web", "bare": ""}));
    assert_eq!(v[0]["Options"], serde_json::Value::Null);
    assert_eq!(v[0]["Scope"], "local");
    assert_eq!(v[0]["Mountpoint"], d.data_root.join("volumes/web/_data").to_str().unwrap());
    assert!(inspect.starts_with("[\n    {\n        \"CreatedAt\": \""), "{inspect}");
    assert_eq!(ok(&d, &["volume", "inspect", "-f", "{{.Options.type}} {{.Driver}}", "ram"]), "tmpfs local\n");
    assert_eq!(ok(&d, &["volume", "ls", "-q", "-f", "label=tier=web"]), "web\n");
    assert_eq!(ok(&d, &["volume", "ls", "-q", "-f", "name=ra"]), "ram\n");
    // Docker joins labels in map order (random): either order.
    let labels = ok(&d, &["volume", "ls", "--format", "{{.Name}}:{{.Labels}}", "-f", "name=web"]);
    assert!(["web:bare=,tier=web\n", "web:tier=web,bare=\n"].contains(&labels.as_str()), "{labels}");

    // Our CLI prints what docker prints.
    for args in [
        &["volume", "ls"][..],
        &["volume", "ls", "-q", "-f", "dangling=true"],
        &["volume", "ls", "--format", "json", "-f", "name=ra"],
        &["volume", "ls", "--format", "table {{.Name}}\t{{.Driver}}\t{{.Mountpoint}}"],
        &["volume", "inspect", "web", "ram"],
        &["volume", "inspect", "--format", "{{.Name}} {{json .Labels}} {{.Scope}}", "web", "ram"],
        &["volume", "inspect", "--format", "json", "web"],
    ] {
        let (dc, dout, derr) = docker(&d, args);
        let (wc, wout, werr) = run_text(&mut d.wharf(args));
        assert_eq!((wc, wout.as_str()), (dc, dout.as_str()), "{args:?}: {derr} / {werr}");
    }
    let (dc, _, derr) = docker(&d, &["volume", "inspect", "nosuch"]);
    let (wc, _, werr) = run_text(&mut d.wharf(&["volume", "inspect", "nosuch"]));
    assert_eq!((wc, werr.trim()), (dc, derr.trim()));
    assert_eq!(derr.trim(), "Error response from daemon: get nosuch: no such volume");

    // Bad input: Docker's messages.
    let (code, _, err) = docker(&d, &["volume", "create", "bad/name"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "Error response from daemon: create bad/name: \"bad/name\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    );
    let (_, _, err) = docker(&d, &["volume", "create", "-o", "type=tmpfs", "x2"]);
    assert_eq!(err.trim(), "Error response from daemon: create x2: missing required option: \"device\"");
    let (_, _, err) = docker(&d, &["volume", "ls", "-f", "bogus=1"]);
    assert_eq!(err.trim(), "Error response from daemon: invalid filter 'bogus'");
    let r = d.api("PUT", "/v1.53/volumes/web?version=1", b"{}");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["message"], "volume update only valid for cluster volumes, but swarm is unavailable");
    assert_eq!(d.api("POST", "/volumes/create", b"{\"Name\":\"x/y\"}").status, 400);

    // Prune asks first; `n` cancels, `y` removes anonymous volumes only; -a takes named ones.
    let prune = |input: &str, extra: &[&str]| {
        let mut args = vec!["volume", "prune"];
        args.extend_from_slice(extra);
        let mut child = d.docker(&args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let warning = "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ";
    assert_eq!(prune("n\n", &[]), (0, warning.to_owned()));
    assert_eq!(prune("y\n", &[]), (0, format!("{warning}Deleted Volumes:\n{anon}\n\nTotal reclaimed space: 0B\n")));
    let mut child = d.wharf(&["volume", "prune", "-a"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"n\n").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout),
        "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] "
    );
    let (code, out, _) = run_text(&mut d.wharf(&["volume", "prune", "-a", "-f", "--filter", "label=tier=web"]));
    assert_eq!((code, out.as_str()), (0, "Deleted Volumes:\nweb\n\nTotal reclaimed space: 0B\n"));
    let (code, out, err) = run_text(&mut d.wharf(&["volume", "rm", "ram", "nosuch"]));
    assert_eq!(
        (code, out.as_str(), err.trim()),
        (1, "ram\n", "Error response from daemon: get nosuch: no such volume")
    );
    assert_eq!(ok(&d, &["volume", "ls", "-q"]), "");

    // Events, as Docker names them (`--until 0s` ends at a whole second).
    wharf_testkit::wait_next_second();
    let events = ok(
        &d,
        &[
            "events",
            "--since",
            "5m",
            "--until",
            "0s",
            "--filter",
            "type=volume",
            "--format",
            "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.driver}}",
        ],
    );
    assert!(events.starts_with("create web local\ncreate ram local\n"), "{events}");
    assert!(events.contains("destroy web local\n"), "{events}");
    assert!(mounts_under(d.dir()).is_empty());
}

#[test]
fn docker_cli_mounts_copy_up_persistence_and_errors() {
    skip_unless!(requirements());
    let d = TestDaemon::start();
    let host = d.dir().join("host-secret");
    std::fs::create_dir_all(&host).unwrap();
    import_images(&d, &host);

    // Copy-up: a new named volume over the image's /data gets its files, owners and modes.
    let out = ok(
        &d,
        &[
            "run",
            "--name",
            "w1",
            "-v",
            "data:/data",
            "volimg",
            "sh",
            "-c",
            "stat -c '%u:%g %a %n' /data /data/hello; cat /data/sub/deep; echo kept > /data/new",
        ],
    );
    assert_eq!(out, "1000:1000 750 /data\n1234:5678 640 /data/hello\ndeep\n");
    let on_host = d.data_root.join("volumes/data/_data/hello");
    assert_eq!((std::fs::metadata(&on_host).unwrap().uid(), std::fs::metadata(&on_host).unwrap().gid()), (1234, 5678));
    // It persists; a read-only mount refuses writes.
    let (code, out, err) =
        docker(&d, &["run", "--rm", "-v", "data:/data:ro", "volimg", "sh", "-c", "cat /data/new; touch /data/x"]);
    assert_eq!((code, out.as_str()), (1, "kept\n"), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    // In use (w1 exists, stopped): refused with Docker's message.
    let id = ok(&d, &["inspect", "-f", "{{.Id}}", "w1"]).trim().to_owned();
    let (code, _, err) = docker(&d, &["volume", "rm", "data"]);
    assert_eq!(
        (code, err.trim()),
        (1, format!("Error response from daemon: remove data: volume is in use - [{id}]").as_str())
    );
    assert_eq!(
        ok(&d, &["inspect", "-f", "{{json .Mounts}}", "w1"]).trim(),
        format!(
            "[{{\"Type\":\"volume\",\"Name\":\"data\",\"Source\":\"{}\",\"Destination\":\"/data\",\"Driver\":\"local\",\"Mode\":\"z\",\"RW\":true,\"Propagation\":\"\"}}]",
            d.data_root.join("volumes/data/_data").display()
        )
    );
    assert_eq!(ok(&d, &["ps", "-a", "--filter", "volume=data", "--format", "{{.Names}}"]), "w1\n");
    assert_eq!(ok(&d, &["ps", "-a", "--filter", "volume=/data", "--format", "{{.Names}}"]), "w1\n");
    assert_eq!(ok(&d, &["ps", "-a", "--filter", "volume=nope", "--format", "{{.Names}}"]), "");

    // Binds: `-v` creates a missing host path; a read-only bind refuses writes; `--mount` with
    // a missing source is refused at create (exit 125).
    let src = d.dir().join("bind-src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "host\n").unwrap();
    let made = d.dir().join("made/by/v");
    let out = ok(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            &format!("{}:/ro:ro", src.display()),
            "-v",
            &format!("{}:/new", made.display()),
            "volimg",
            "sh",
            "-c",
            "cat /ro/f; touch /ro/x 2>/dev/null || echo refused; touch /new/y",
        ],
    );
    assert_eq!(out, "host\nrefused\n");
    assert!(made.join("y").exists() && !src.join("x").exists());
    let (code, _, err) =
        docker(&d, &["run", "--rm", "--mount", "type=bind,source=/nonexistent-wharf,target=/x", "volimg", "true"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("Error response from daemon: invalid mount config for type \"bind\": bind source path does not exist: /nonexistent-wharf"),
        "{err}"
    );
    let (code, _, err) = docker(&d, &["run", "--rm", "-v", "bad/name:/x", "volimg", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("includes invalid characters for a local volume name"), "{err}");

    // --volume-driver with no such plugin: a bad request (400, not a 404 that makes the CLI pull).
    let (code, _, err) = docker(&d, &["run", "--rm", "--volume-driver", "nfsplugin", "-v", "x9:/x", "volimg", "true"]);
    assert_eq!(code, 125);
    assert!(!err.contains("Unable to find image"), "{err}");
    assert!(
        err.contains("create x9: error looking up volume plugin nfsplugin: plugin \"nfsplugin\" not found"),
        "{err}"
    );
    // --mount volume keys: volume-opt (a tmpfs volume made for the mount), volume-subpath.
    let out = ok(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            "type=volume,src=ov,dst=/o,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=1m",
            "volimg",
            "sh",
            "-c",
            "df -k /o | grep -v Filesystem | while read a s r; do echo $s; done",
        ],
    );
    assert_eq!(out, "1024\n");
    assert_eq!(ok(&d, &["volume", "inspect", "-f", "{{.Options.type}}", "ov"]), "tmpfs\n");
    ok(&d, &["run", "--rm", "-v", "sp:/sp", "volimg", "sh", "-c", "mkdir -p /sp/a/b; echo in > /sp/a/b/f"]);
    assert_eq!(
        ok(&d, &["run", "--rm", "--mount", "type=volume,src=sp,dst=/s,volume-subpath=a/b", "volimg", "ls", "/s"]),
        "f\n"
    );
    let (code, _, err) =
        docker(&d, &["run", "--rm", "--mount", "type=volume,src=sp,dst=/s,volume-subpath=nope", "volimg", "true"]);
    assert_eq!(code, 127, "Docker's message says `no such file or directory`");
    assert!(
        err.contains("cannot access path") && err.contains("/volumes/sp/_data/nope: no such file or directory"),
        "{err}"
    );
    ok(&d, &["volume", "rm", "ov", "sp"]);

    // tmpfs limits (`--tmpfs` and `--mount type=tmpfs`), seen with df inside.
    let out = ok(
        &d,
        &[
            "run",
            "--rm",
            "--tmpfs",
            "/t1:size=1m",
            "--mount",
            "type=tmpfs,target=/t2,tmpfs-size=2m,tmpfs-mode=0700",
            "volimg",
            "sh",
            "-c",
            "df -k /t1 /t2 | grep -v Filesystem | while read a s r; do echo $s; done; stat -c %a /t2; dd if=/dev/zero of=/t1/f bs=1k count=2048 2>/dev/null || echo full",
        ],
    );
    assert_eq!(out, "1024\n2048\n700\nfull\n");

    // --volumes-from (ro): the same volumes, not writable; `rm -v` removes only anonymous ones.
    ok(
        &d,
        &[
            "run",
            "--name",
            "src",
            "-v",
            "/anon",
            "-v",
            "shared:/shared",
            "volimg",
            "sh",
            "-c",
            "echo s > /shared/f; echo a > /anon/f",
        ],
    );
    let out = ok(
        &d,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "src:ro",
            "volimg",
            "sh",
            "-c",
            "cat /shared/f /anon/f /data/hello; touch /shared/g 2>/dev/null || echo ro",
        ],
    );
    assert_eq!(out, "s\na\nfrom image\nro\n");
    let before = ok(&d, &["volume", "ls", "-q"]).lines().count();
    ok(&d, &["rm", "-v", "src"]);
    let names = ok(&d, &["volume", "ls", "-q"]);
    assert_eq!(names.lines().count(), before - 2, "src's /anon and /data went: {names}");
    assert!(names.contains("shared\n") && names.contains("data\n"));
    // --rm removes the anonymous volume of the image's VOLUME.
    let before = ok(&d, &["volume", "ls", "-q"]);
    ok(&d, &["run", "--rm", "volimg", "cat", "/data/hello"]);
    assert_eq!(ok(&d, &["volume", "ls", "-q"]), before);

    // A symlink to a host directory in the image cannot direct a mount or a copy there.
    let out = ok(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "esc:/escape/vol",
            "-v",
            "leak:/escape",
            "escimg",
            "sh",
            "-c",
            "ls /escape; echo x > /escape/vol/f; echo done",
        ],
    );
    assert_eq!(out, "vol\ndone\n");
    assert_eq!(std::fs::read_dir(&host).unwrap().count(), 0, "nothing appeared in the host directory");
    assert!(mounts_under(&host).is_empty());

    // system df shows the volumes with their use.
    let df = ok(&d, &["system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}"]);
    assert!(df.contains("Local Volumes 4 1\n"), "{df}");
    ok(&d, &["rm", "w1"]);
    ok(&d, &["volume", "prune", "-a", "-f"]);
    assert_eq!(ok(&d, &["volume", "ls", "-q"]), "");
    assert!(mounts_under(d.dir()).is_empty(), "{:?}", mounts_under(d.dir()));
}

#[test]
fn mounts_and_references_survive_a_daemon_restart() {
    skip_unless!(requirements());
    let mut d = TestDaemon::start();
    import_images(&d, &d.dir().join("unused"));
    ok(&d, &["volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=3m", "ram"]);
    let mp = d.data_root.join("volumes/ram/_data");
    assert!(mounts_under(&mp).is_empty(), "mounted only while used");
    ok(&d, &["run", "-d", "--name", "r1", "-v", "ram:/r", "volimg", "sleep", "1000"]);
    ok(&d, &["create", "--name", "c2", "-v", "kept:/kept", "volimg"]);
    assert_eq!(mounts_under(&mp).len(), 1);
    d.restart();
    // Live restore: the container kept running with its volume mounted; references hold.
    assert_eq!(
        ok(&d, &["exec", "r1", "sh", "-c", "df -k /r | grep -v Filesystem | while read a s r; do echo $s; done"]),
        "3072\n"
    );
    assert_eq!(mounts_under(&mp).len(), 1);
    for v in ["ram", "kept"] {
        let (code, _, err) = docker(&d, &["volume", "rm", v]);
        assert_eq!(code, 1);
        assert!(err.contains(&format!("remove {v}: volume is in use")), "{err}");
    }
    assert_eq!(ok(&d, &["volume", "prune", "-a", "-f"]), "Total reclaimed space: 0B\n");
    ok(&d, &["rm", "-f", "-v", "r1", "c2"]);
    assert!(mounts_under(&mp).is_empty(), "unmounted with its last user");
    ok(&d, &["volume", "rm", "ram", "kept"]);
    assert_eq!(ok(&d, &["volume", "ls", "-q"]), "");
    d.stop();
    assert!(mounts_under(d.dir()).is_empty(), "{:?}", mounts_under(d.dir()));
}

#[test]
fn docker_py_volumes_and_mounts() {
    skip_unless!(requirements(), require::python_module("docker"));
    let d = TestDaemon::start();
    import_images(&d, &d.dir().join("unused"));
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url='{host}')
v = c.volumes.create(name='pyvol', driver='local', labels={{'k': 'v'}})
print(v.name, v.attrs['Labels'], v.attrs['Driver'])
print(c.containers.run('volimg', ['sh', '-c', 'echo py > /v/f; cat /data/hello'], volumes={{'pyvol': {{'bind': '/v', 'mode': 'rw'}}}}, remove=True).decode(), end='')
print(c.containers.run('volimg', ['cat', '/m/f'], mounts=[docker.types.Mount('/m', 'pyvol', type='volume', read_only=True)], remove=True).decode(), end='')
print([x.name for x in c.volumes.list(filters={{'label': 'k=v'}})])
ct = c.containers.create('volimg', ['true'], volumes=['pyvol:/v'])
try:
    c.volumes.get('pyvol').remove()
except docker.errors.APIError as e:
    print(e.status_code, e.explanation.split(' - ')[0])
ct.remove(v=True)
c.volumes.get('pyvol').remove()
try:
    c.volumes.get('pyvol')
except docker.errors.NotFound as e:
    print('NotFound', e.explanation)
r = c.volumes.prune()
print(len(r['VolumesDeleted']), r['SpaceReclaimed'] > 0)
"#,
        host = d.host()
    );
    let (code, out, err) = run_text(std::process::Command::new("python3").args(["-c", &script]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "pyvol {'k': 'v'} local\nfrom image\npy\n['pyvol']\n409 remove pyvol: volume is in use\nNotFound get pyvol: no such volume\n2 True\n"
    );
    assert!(mounts_under(d.dir()).is_empty());
}
