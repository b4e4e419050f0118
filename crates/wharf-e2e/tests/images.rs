//! Images end to end: the real docker CLI (and `wharf`) against a wharfd — import of a busybox
//! rootfs made from the host's /bin/busybox, images/tag/rmi/inspect/history, save|load round
//! trips, OCI layouts by hand and from skopeo, hostile archives, a SIGKILL during a large load,
//! prune and system df, version-shaped API answers and image events.

use std::borrow::BorrowMut;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use wharf_testkit::{DaemonOptions, TestDaemon, ok, require, run_text as run, skip_unless};

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A tar holding `bin/busybox` and its applet symlinks: a usable busybox rootfs.
fn busybox_rootfs() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    b.append_data(&mut dir.clone(), "bin/", std::io::empty()).unwrap();
    let bin = std::fs::read("/bin/busybox").expect("busybox-static is installed");
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o755);
    h.set_size(bin.len() as u64);
    b.append_data(&mut h, "bin/busybox", &bin[..]).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet == "busybox" || applet.is_empty() {
            continue;
        }
        let mut l = tar::Header::new_ustar();
        l.set_entry_type(tar::EntryType::Symlink);
        l.set_mode(0o777);
        l.set_size(0);
        b.append_link(&mut l, format!("bin/{applet}"), "busybox").unwrap();
    }
    b.into_inner().unwrap()
}

fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn config_for(layers: &[Vec<u8>]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let history: Vec<serde_json::Value> = (0..layers.len())
        .map(|i| serde_json::json!({"created": "2024-01-02T03:04:05Z", "created_by": format!("layer {i}")}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Labels": {"made": "by-hand"}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }))
    .unwrap()
}

fn append(b: &mut tar::Builder<impl Write>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, path, data).unwrap();
}

/// A legacy docker-archive (`<id>/layer.tar`, `<id>.json`), entries in an odd order.
fn docker_archive(layers: &[Vec<u8>], tags: &[&str]) -> (Vec<u8>, String) {
    let config = config_for(layers);
    let id = sha256(&config);
    let mut b = tar::Builder::new(Vec::new());
    let paths: Vec<String> = (0..layers.len()).map(|i| format!("{:064x}/layer.tar", i + 1)).collect();
    let manifest = serde_json::json!([{
        "Config": format!("{}.json", &id[7..]),
        "RepoTags": tags,
        "Layers": paths,
    }]);
    append(&mut b, "manifest.json", manifest.to_string().as_bytes());
    for (p, l) in paths.iter().zip(layers) {
        append(&mut b, p, l);
    }
    append(&mut b, &format!("{}.json", &id[7..]), &config);
    (b.into_inner().unwrap(), id)
}

/// An OCI image layout with gzip layers, named through the index annotation.
fn oci_layout(layers: &[Vec<u8>], name: Option<&str>) -> (Vec<u8>, String) {
    let config = config_for(layers);
    let id = sha256(&config);
    let mut b = tar::Builder::new(Vec::new());
    let mut layer_descs = Vec::new();
    for l in layers {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(l).unwrap();
        let gz = gz.finish().unwrap();
        let d = sha256(&gz);
        append(&mut b, &format!("blobs/sha256/{}", &d[7..]), &gz);
        layer_descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": d,
            "size": gz.len(),
        }));
    }
    append(&mut b, &format!("blobs/sha256/{}", &id[7..]), &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": id, "size": config.len()},
        "layers": layer_descs,
    }))
    .unwrap();
    let md = sha256(&manifest);
    append(&mut b, &format!("blobs/sha256/{}", &md[7..]), &manifest);
    let mut desc = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md,
        "size": manifest.len(),
        "platform": {"architecture": "amd64", "os": "linux"},
    });
    if let Some(n) = name {
        desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": n});
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [desc]});
    append(&mut b, "index.json", index.to_string().as_bytes());
    append(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    (b.into_inner().unwrap(), id)
}

fn write(d: &TestDaemon, name: &str, data: &[u8]) -> PathBuf {
    let p = d.dir().join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// Runs `cmd` with `input` on stdin.
fn with_stdin(mut cmd: impl BorrowMut<Command>, input: &Path) -> (i32, String, String) {
    let o = cmd.borrow_mut().stdin(std::fs::File::open(input).unwrap()).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
}

fn snapshot_dirs(d: &TestDaemon) -> usize {
    count_entries(&d.data_root.join("snapshots/overlay/snapshots"))
        + count_entries(&d.data_root.join("snapshots/native/snapshots"))
}

fn blobs(d: &TestDaemon) -> usize {
    count_entries(&d.data_root.join("content/blobs/sha256"))
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root = dir.to_string_lossy().into_owned();
    text.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&root)).map(str::to_owned).collect()
}

fn import_busybox(d: &TestDaemon, name: &str) -> String {
    let tar = write(d, "busybox.tar", &busybox_rootfs());
    ok(d.docker(&["import", tar.to_str().unwrap(), name])).trim().to_owned()
}

#[test]
fn docker_import_images_tag_inspect_history() {
    skip_unless!(require::root(), require::program("docker"));
    let d = TestDaemon::start();
    let tar = write(&d, "busybox.tar", &busybox_rootfs());
    let out = ok(d.docker(&[
        "import",
        "-c",
        "ENV FOO=bar",
        "-c",
        "CMD [\"sh\"]",
        "-c",
        "LABEL stage=test",
        "-m",
        "from the host",
        tar.to_str().unwrap(),
        "busybox:latest",
    ]));
    let id = out.trim().to_owned();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");
    // Default table, go-units sizes.
    let table = ok(d.docker(&["images"]));
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("REPOSITORY   TAG       IMAGE ID       CREATED") && header.ends_with("SIZE"), "{table}");
    let row = lines.next().unwrap();
    assert!(row.starts_with("busybox      latest    "), "{table}");
    assert!(row.contains(&id[7..19]), "{table}");
    assert!(row.ends_with("MB"), "{table}");
    // --format, --filter, -q, --no-trunc.
    assert_eq!(
        ok(d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])).trim(),
        format!("busybox:latest {}", &id[7..19])
    );
    assert_eq!(ok(d.docker(&["images", "-q", "--no-trunc"])).trim(), id);
    assert_eq!(ok(d.docker(&["images", "-q", "--filter", "label=stage=test"])).trim(), &id[7..19]);
    assert_eq!(ok(d.docker(&["images", "-q", "--filter", "dangling=true"])).trim(), "");
    assert_eq!(ok(d.docker(&["images", "-q", "busy*"])).trim(), &id[7..19]);
    // tag, then one row per tag.
    ok(d.docker(&["tag", "busybox", "example.com/team/bb:v2"]));
    let tags = ok(d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    let mut tags: Vec<&str> = tags.lines().collect();
    tags.sort();
    assert_eq!(tags, vec!["busybox:latest", "example.com/team/bb:v2"]);
    // inspect --format
    let f = ok(d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}|{{index .Config.Env 0}}|{{json .Config.Cmd}}|{{.Comment}}|{{.Os}}|{{len .RootFS.Layers}}|{{.Config.Labels.stage}}",
        "example.com/team/bb:v2",
    ]));
    assert_eq!(f.trim(), format!("{id}|FOO=bar|[\"sh\"]|from the host|linux|1|test"));
    let full = ok(d.docker(&["image", "inspect", "busybox"]));
    let v: serde_json::Value = serde_json::from_str(&full).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
    assert_eq!(v[0]["GraphDriver"]["Name"], "overlay2");
    assert!(v[0]["Metadata"]["LastTagTime"].as_str().unwrap() > "2000");
    // history
    let h = ok(d.docker(&["history", "busybox"]));
    let h: Vec<&str> = h.lines().collect();
    assert_eq!(h[0].split_whitespace().collect::<Vec<_>>(), ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]);
    assert!(h[1].starts_with(&id[7..19]) && h[1].ends_with("from the host"), "{h:?}");
    // Errors as docker users know them.
    let (code, _, err) = run(d.docker(&["image", "inspect", "nosuch"]));
    assert_eq!(code, 1);
    assert!(err.contains("No such image: nosuch"), "{err}");
    let (code, _, err) = run(d.docker(&["tag", "nosuch", "x"]));
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "Error response from daemon: No such image: nosuch:latest");
    let (code, _, err) = run(d.docker(&["import", "-c", "RUN true", tar.to_str().unwrap()]));
    assert_eq!(code, 1);
    assert!(err.contains("run is not a valid change command"), "{err}");
    // /info counts images.
    assert_eq!(ok(d.docker(&["info", "--format", "{{.Images}} {{.Driver}}"])).trim(), "1 overlay2");
}

#[test]
fn docker_rmi_untags_deletes_and_refuses() {
    skip_unless!(require::root(), require::program("docker"));
    let d = TestDaemon::start();
    let id = import_busybox(&d, "one:latest");
    ok(d.docker(&["tag", "one", "two:v1"]));
    // Untag only: another tag remains.
    assert_eq!(ok(d.docker(&["rmi", "two:v1"])), "Untagged: two:v1\n");
    ok(d.docker(&["tag", "one", "three"]));
    // By ID with tags in two repositories: a conflict, exactly as moby words it.
    let (code, _, err) = run(d.docker(&["rmi", &id[7..19]]));
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        format!(
            "Error response from daemon: conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
            &id[7..19]
        )
    );
    let r = d.api("DELETE", &format!("/images/{}", &id[7..19]), b"");
    assert_eq!(r.status, 409);
    // Forced: every tag, then the image and its layer.
    let out = ok(d.docker(&["rmi", "-f", &id[7..19]]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Untagged: one:latest");
    assert_eq!(lines[1], "Untagged: three:latest");
    assert_eq!(lines[2], format!("Deleted: {id}"));
    assert!(lines[3].starts_with("Deleted: sha256:"), "{out}");
    assert_eq!(ok(d.docker(&["images", "-q"])), "");
    assert_eq!(blobs(&d), 0, "GC removed the blobs");
    assert_eq!(snapshot_dirs(&d), 0, "GC removed the snapshots");
    let (code, _, err) = run(d.docker(&["rmi", "one"]));
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "Error response from daemon: No such image: one:latest");
    // -f with a missing image: printed, but exit 0 (docker's rule).
    let (code, _, err) = run(d.docker(&["rmi", "-f", "gone"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("No such image: gone:latest"));
}

#[test]
fn docker_save_load_round_trip_keeps_the_id() {
    skip_unless!(require::root(), require::program("docker"));
    let d = TestDaemon::start();
    let id = import_busybox(&d, "busybox:latest");
    // A second, multi-layer image on top of the same content.
    let layers = vec![busybox_rootfs(), layer(&[("etc/motd", b"hello\n")])];
    let (archive, multi_id) = docker_archive(&layers, &["multi:v1"]);
    let legacy = write(&d, "legacy.tar", &archive);
    assert_eq!(ok(d.docker(&["load", "-i", legacy.to_str().unwrap()])), "Loaded image: multi:v1\n");
    let saved = d.dir().join("saved.tar");
    ok(d.docker(&["save", "-o", saved.to_str().unwrap(), "busybox", "multi:v1"]));
    let listing = ok(Command::new("tar").arg("tf").arg(&saved));
    for f in ["index.json", "manifest.json", "oci-layout", "repositories"] {
        assert!(listing.lines().any(|l| l == f), "{f} missing: {listing}");
    }
    assert!(listing.contains(&format!("blobs/sha256/{}", &id[7..])));
    ok(d.docker(&["rmi", "busybox", "multi:v1"]));
    assert_eq!(ok(d.docker(&["images", "-q"])), "");
    let out = ok(d.docker(&["load", "-i", saved.to_str().unwrap()]));
    assert_eq!(out, "Loaded image: busybox:latest\nLoaded image: multi:v1\n");
    assert_eq!(ok(d.docker(&["image", "inspect", "--format", "{{.Id}}", "busybox"])).trim(), id);
    assert_eq!(ok(d.docker(&["image", "inspect", "--format", "{{.Id}}", "multi:v1"])).trim(), multi_id);
    // docker save | docker load, and a gzip-compressed archive on stdin.
    let piped = Command::new("sh")
        .arg("-c")
        .arg("docker save multi:v1 | docker load")
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir().join("docker-config"))
        .output()
        .unwrap();
    assert!(piped.status.success(), "{piped:?}");
    assert_eq!(String::from_utf8_lossy(&piped.stdout), "Loaded image: multi:v1\n");
    let gz = d.dir().join("saved.tar.gz");
    ok(Command::new("sh").arg("-c").arg(format!("gzip -c {} > {}", saved.display(), gz.display())));
    let (code, out, err) = with_stdin(d.docker(&["load"]), &gz);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Loaded image: multi:v1"), "{out}");
    // An untagged image loads as an ID.
    ok(d.docker(&["save", "-o", d.dir().join("id.tar").to_str().unwrap(), &multi_id]));
    ok(d.docker(&["rmi", "multi:v1"]));
    assert_eq!(
        ok(d.docker(&["load", "-i", d.dir().join("id.tar").to_str().unwrap()])),
        format!("Loaded image ID: {multi_id}\n")
    );
    // save refuses a terminal? (not testable without a pty); a bad name is a 404.
    let nowhere = d.dir().join("nowhere.tar");
    let (code, _, err) = run(d.docker(&["save", "-o", nowhere.to_str().unwrap(), "nosuch"]));
    assert_eq!(code, 1);
    assert!(err.contains("No such image: nosuch:latest"), "{err}");
    assert!(mounts_under(d.dir()).is_empty(), "image operations mount nothing");
}

#[test]
fn oci_layouts_load_by_hand_and_from_skopeo() {
    skip_unless!(require::root(), require::program("docker"));
    let d = TestDaemon::start();
    let layers = vec![busybox_rootfs(), layer(&[("etc/oci", b"yes\n")])];
    let (oci, id) = oci_layout(&layers, Some("oci/busybox:v1"));
    let p = write(&d, "oci.tar", &oci);
    assert_eq!(ok(d.docker(&["load", "-i", p.to_str().unwrap()])), "Loaded image: oci/busybox:v1\n");
    assert_eq!(
        ok(d.docker(&["image", "inspect", "--format", "{{.Id}} {{.Config.Labels.made}}", "oci/busybox:v1"])).trim(),
        format!("{id} by-hand")
    );
    // Without a name: loaded by ID. Saving it again gives uncompressed layers with the same
    // diff IDs (the stored gzip blobs are decompressed on the fly).
    let (oci2, id2) = oci_layout(&[layer(&[("x", b"1")])], None);
    let p2 = write(&d, "oci2.tar", &oci2);
    assert_eq!(ok(d.docker(&["load", "-i", p2.to_str().unwrap()])), format!("Loaded image ID: {id2}\n"));
    let saved = d.dir().join("resaved.tar");
    ok(d.docker(&["save", "-o", saved.to_str().unwrap(), "oci/busybox:v1"]));
    ok(d.docker(&["rmi", "oci/busybox:v1"]));
    ok(d.docker(&["load", "-i", saved.to_str().unwrap()]));
    assert_eq!(ok(d.docker(&["image", "inspect", "--format", "{{.Id}}", "oci/busybox:v1"])).trim(), id);
    if require::program("skopeo").is_err() {
        eprintln!("SKIP skopeo part: skopeo is not installed");
        return;
    }
    let out = d.dir().join("skopeo-oci.tar");
    let (code, so, se) = run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "--dest-compress",
        &format!("docker-archive:{}", saved.display()),
        &format!("oci-archive:{}:skopeo/busybox:v9", out.display()),
    ]));
    assert_eq!(code, 0, "skopeo: {so}{se}");
    assert_eq!(ok(d.docker(&["load", "-i", out.to_str().unwrap()])), "Loaded image: skopeo/busybox:v9\n");
    // skopeo rewrites the config (so the ID differs) but the layers are the same content.
    let layers_of = |name: &str| ok(d.docker(&["image", "inspect", "--format", "{{json .RootFS.Layers}}", name]));
    assert_eq!(layers_of("skopeo/busybox:v9"), layers_of("oci/busybox:v1"));
}

/// Things on disk and in the database that a refused request must not change.
fn store_state(d: &TestDaemon) -> (String, usize, usize) {
    (ok(d.docker(&["images", "-aq", "--no-trunc"])), blobs(d), snapshot_dirs(d))
}

#[test]
fn hostile_archives_and_layers_are_refused() {
    skip_unless!(require::root(), require::program("docker"));
    let d = TestDaemon::start();
    import_busybox(&d, "keep:1");
    let before = store_state(&d);
    let evil_entry = |name: &str, link: Option<(&str, tar::EntryType)>| {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        match link {
            Some((target, kind)) => {
                h.set_entry_type(kind);
                h.set_size(0);
                h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
            }
            None => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(4);
            }
        }
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, &b"evil"[..(if link.is_some() { 0 } else { 4 })]).unwrap();
        b.into_inner().unwrap()
    };
    let marker = d.dir().join("outside");
    std::fs::create_dir(&marker).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("import-dotdot", evil_entry("../../../escape", None), "points outside the root"),
        (
            "import-hardlink",
            evil_entry("link", Some(("../../../../etc/passwd", tar::EntryType::Link))),
            "points outside the root",
        ),
    ];
    for (name, tar, want) in &cases {
        let p = write(&d, name, tar);
        let (code, _, err) = run(d.docker(&["import", p.to_str().unwrap(), "evil"]));
        assert_eq!(code, 1, "{name}");
        assert!(err.contains(want), "{name}: {err}");
    }
    // A symlink that points outside and a file written through it: confined to the layer.
    let mut b = tar::Builder::new(Vec::new());
    let mut l = tar::Header::new_ustar();
    l.set_entry_type(tar::EntryType::Symlink);
    l.set_size(0);
    b.append_link(&mut l, "out", &marker).unwrap();
    let mut f = tar::Header::new_ustar();
    f.set_size(4);
    f.set_mode(0o644);
    b.append_data(&mut f, "out/pwned", &b"evil"[..]).unwrap();
    let p = write(&d, "symlink.tar", &b.into_inner().unwrap());
    let _ = run(d.docker(&["import", p.to_str().unwrap(), "confined"]));
    assert!(!marker.join("pwned").exists(), "a layer wrote outside its root");
    let _ = run(d.docker(&["rmi", "confined"]));
    // Archives: escaping entry names, bad manifest JSON, missing blobs, digest mismatches,
    // layers whose content is not their diff ID, not a tar at all.
    let good_layer = layer(&[("a", b"1")]);
    let (good, _) = docker_archive(std::slice::from_ref(&good_layer), &["x:1"]);
    let mut escaping = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_entry_type(tar::EntryType::Regular);
    h.as_old_mut().name[..13].copy_from_slice(b"../../outside");
    h.set_cksum();
    escaping.append(&h, &b"{}"[..]).unwrap();
    let escaping = escaping.into_inner().unwrap();
    let mut bad_json = tar::Builder::new(Vec::new());
    append(&mut bad_json, "manifest.json", b"[{\"Config\": ");
    let bad_json = bad_json.into_inner().unwrap();
    let (oci, _) = oci_layout(std::slice::from_ref(&good_layer), Some("y:1"));
    // Drop one blob from the layout: a missing layer.
    let missing_blob = {
        let mut out = tar::Builder::new(Vec::new());
        let mut a = tar::Archive::new(&oci[..]);
        let mut dropped = false;
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            if !dropped && path.starts_with("blobs/") {
                dropped = true;
                continue;
            }
            append(&mut out, &path, &data);
        }
        out.into_inner().unwrap()
    };
    let wrong_digest = {
        let mut out = tar::Builder::new(Vec::new());
        append(&mut out, &format!("blobs/sha256/{}", "a".repeat(64)), b"not what the name says");
        append(&mut out, "index.json", br#"{"schemaVersion":2,"manifests":[]}"#);
        out.into_inner().unwrap()
    };
    let wrong_diff_id = {
        // The config names one layer, the archive carries another.
        let other = layer(&[("a", b"2")]);
        let config = config_for(std::slice::from_ref(&good_layer));
        let mut b = tar::Builder::new(Vec::new());
        append(&mut b, "l.tar", &other);
        append(&mut b, "c.json", &config);
        append(
            &mut b,
            "manifest.json",
            serde_json::json!([{"Config": "c.json", "RepoTags": ["z:1"], "Layers": ["l.tar"]}]).to_string().as_bytes(),
        );
        b.into_inner().unwrap()
    };
    let archives: Vec<(&str, Vec<u8>, &str)> = vec![
        ("escaping", escaping, "points outside the archive"),
        ("bad-json", bad_json, "failed to decode manifest.json"),
        ("missing-blob", missing_blob, "missing blob"),
        ("wrong-digest", wrong_digest, "digest mismatch"),
        ("wrong-diff-id", wrong_diff_id, "diff_id mismatch"),
        ("not-a-tar", b"hello, I am not an archive at all".repeat(40), "invalid archive"),
        ("no-manifest", layer(&[("x", b"y")]), "does not contain a manifest.json"),
    ];
    for (name, data, want) in &archives {
        let p = write(&d, name, data);
        let (code, out, err) = run(d.docker(&["load", "-i", p.to_str().unwrap()]));
        assert_eq!(code, 1, "{name}: {out}{err}");
        assert!(err.contains(want), "{name}: {err}");
        let r = wharf_testkit::http::request(&d.socket, "POST", "/images/load?quiet=1", &[], data).unwrap();
        assert_eq!(r.status, 400, "{name}: {}", r.text());
    }
    // Nothing half-stored: same images, blobs and snapshots as before.
    assert_eq!(store_state(&d), before);
    // The good archive still loads.
    let p = write(&d, "good.tar", &good);
    ok(d.docker(&["load", "-i", p.to_str().unwrap()]));
}

/// A docker-archive of `n` layers of `size` bytes each, written to `path`.
fn big_archive(path: &Path, n: usize, size: usize) -> String {
    let mut out = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(path).unwrap()));
    let mut diff_ids = Vec::new();
    let mut paths = Vec::new();
    for i in 0..n {
        let data: Vec<u8> = (0..size)
            .map(|j| (j as u32).wrapping_mul(2_654_435_761).wrapping_add(i as u32 * 7) as u8 ^ (j >> 13) as u8)
            .collect();
        let l = layer(&[(&format!("data/{i}.bin"), &data)]);
        diff_ids.push(sha256(&l));
        let p = format!("blobs/sha256/{}", &sha256(&l)[7..]);
        append(&mut out, &p, &l);
        paths.push(p);
    }
    let history: Vec<serde_json::Value> =
        (0..n).map(|i| serde_json::json!({"created_by": format!("big layer {i}")})).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-05-06T07:08:09Z",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }))
    .unwrap();
    let id = sha256(&config);
    append(&mut out, &format!("blobs/sha256/{}", &id[7..]), &config);
    append(
        &mut out,
        "manifest.json",
        serde_json::json!([{"Config": format!("blobs/sha256/{}", &id[7..]), "RepoTags": ["big:1"], "Layers": paths}])
            .to_string()
            .as_bytes(),
    );
    out.into_inner().unwrap().flush().unwrap();
    id
}

fn kill_during_load(d: &mut TestDaemon, archive: &Path, when: &dyn Fn(&TestDaemon) -> bool) -> bool {
    let mut child = d
        .docker(&["load", "-i", archive.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut killed = false;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if when(d) {
            d.kill9();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.wait();
    killed
}

fn assert_clean_after_restart(d: &mut TestDaemon) {
    // The daemon was killed: start it on the same roots.
    d.restart();
    assert_eq!(ok(d.docker(&["images", "-aq"])), "", "no half-visible image");
    assert_eq!(blobs(d), 0, "GC removed the blobs of the interrupted load");
    assert_eq!(count_entries(&d.data_root.join("content/ingest")), 0);
    assert_eq!(snapshot_dirs(d), 0, "GC removed the snapshots of the interrupted load");
    assert!(mounts_under(d.dir()).is_empty());
}

#[test]
fn sigkill_during_a_large_load_leaves_a_consistent_store() {
    skip_unless!(require::root(), require::program("docker"));
    let mut d = TestDaemon::start();
    let archive = d.dir().join("big.tar");
    // 24 layers of 10 MiB: 240 MiB.
    let id = big_archive(&archive, 24, 10 << 20);
    // While the archive is being stored.
    let killed = kill_during_load(&mut d, &archive, &|d| blobs(d) >= 6);
    assert!(killed, "the load finished before it could be interrupted");
    assert_clean_after_restart(&mut d);
    // While layers are being unpacked.
    let killed = kill_during_load(&mut d, &archive, &|d| snapshot_dirs(d) >= 4);
    assert!(killed, "the load finished before it could be interrupted");
    assert_clean_after_restart(&mut d);
    // And then it loads.
    assert_eq!(ok(d.docker(&["load", "-i", archive.to_str().unwrap()])), "Loaded image: big:1\n");
    assert_eq!(
        ok(d.docker(&["image", "inspect", "--format", "{{.Id}} {{len .RootFS.Layers}}", "big:1"])).trim(),
        format!("{id} 24")
    );
    assert_eq!(snapshot_dirs(&d), 24);
    ok(d.docker(&["rmi", "big:1"]));
    assert_eq!(snapshot_dirs(&d), 0);
    assert_eq!(blobs(&d), 0);
}

#[test]
fn prune_and_system_df() {
    skip_unless!(require::root(), require::program("docker"));
    let d = TestDaemon::start();
    let tagged = import_busybox(&d, "kept:1");
    let dangling = {
        let p = write(&d, "small.tar", &layer(&[("only", b"dangling")]));
        ok(d.docker(&["import", p.to_str().unwrap()])).trim().to_owned()
    };
    let df = ok(d.docker(&["system", "df"]));
    let lines: Vec<Vec<&str>> = df.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    assert_eq!(&lines[1][..3], ["Images", "2", "0"]);
    assert!(lines[1][4].ends_with("(100%)") || lines[1][5] == "(100%)", "{df}");
    assert_eq!(lines[2][0], "Containers");
    assert_eq!(&lines[3][..2], ["Local", "Volumes"]);
    assert_eq!(&lines[4][..2], ["Build", "Cache"]);
    let v = ok(d.docker(&["system", "df", "-v"]));
    assert!(v.starts_with("Images space usage:"), "{v}");
    assert!(v.contains("kept"), "{v}");
    let f = ok(d.docker(&["system", "df", "--format", "{{.Type}}={{.TotalCount}}"]));
    assert_eq!(f, "Images=2\nContainers=0\nLocal Volumes=0\nBuild Cache=0\n");
    // Dangling only; the confirmation is skipped with -f.
    let out = ok(d.docker(&["image", "prune", "-f"]));
    assert!(out.starts_with(&format!("Deleted Images:\ndeleted: {dangling}\n")), "{out}");
    assert!(out.trim_end().ends_with("Total reclaimed space: 8B"), "{out}");
    assert_eq!(ok(d.docker(&["images", "-q", "--no-trunc"])).trim(), tagged);
    // The prompt, answered no.
    let (code, out, _) = run(d.docker(&["image", "prune", "-a"]));
    assert!(
        out.contains("WARNING! This will remove all images without at least one container associated to them."),
        "{out}"
    );
    let _ = code;
    assert_eq!(ok(d.docker(&["images", "-q", "--no-trunc"])).trim(), tagged);
    // until filters out images created after the given time.
    let out = ok(d.docker(&["image", "prune", "-a", "-f", "--filter", "until=2000-01-01T00:00:00Z"]));
    assert_eq!(out, "Total reclaimed space: 0B\n");
    let out = ok(d.docker(&["image", "prune", "-a", "-f", "--filter", "label=nope"]));
    assert_eq!(out, "Total reclaimed space: 0B\n");
    let out = ok(d.docker(&["image", "prune", "-a", "-f"]));
    assert!(out.contains("untagged: kept:1") && out.contains(&format!("deleted: {tagged}")), "{out}");
    assert_eq!(ok(d.docker(&["images", "-aq"])), "");
    assert_eq!((blobs(&d), snapshot_dirs(&d)), (0, 0));
}

#[test]
fn wharf_cli_image_flows() {
    skip_unless!(require::root());
    let d = TestDaemon::start();
    let tar = write(&d, "busybox.tar", &busybox_rootfs());
    let id = ok(d.wharf(&["import", "-c", "ENV A=1", tar.to_str().unwrap(), "bb:1"])).trim().to_owned();
    assert!(id.starts_with("sha256:"));
    let table = ok(d.wharf(&["images"]));
    assert!(table.starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"), "{table}");
    assert!(table.contains(&format!("bb           1         {}", &id[7..19])), "{table}");
    ok(d.wharf(&["tag", "bb:1", "bb:2"]));
    assert_eq!(ok(d.wharf(&["images", "--format", "{{.Tag}}", "--filter", "reference=bb:2"])), "2\n");
    assert_eq!(ok(d.wharf(&["image", "inspect", "--format", "{{.Id}} {{.Os}}", "bb:2"])).trim(), format!("{id} linux"));
    let h = ok(d.wharf(&["history", "-H=false", "--no-trunc", "bb:1"]));
    assert!(h.lines().nth(1).unwrap().starts_with(&id), "{h}");
    let saved = d.dir().join("w.tar");
    ok(d.wharf(&["save", "-o", saved.to_str().unwrap(), "bb"]));
    assert_eq!(ok(d.wharf(&["rmi", "bb:2"])), "Untagged: bb:2\n");
    let out = ok(d.wharf(&["rmi", "bb:1"]));
    assert!(out.starts_with(&format!("Untagged: bb:1\nDeleted: {id}\n")), "{out}");
    let out = ok(d.wharf(&["load", "-i", saved.to_str().unwrap()]));
    assert_eq!(out, "Loaded image: bb:1\nLoaded image: bb:2\n");
    let (code, out, err) = with_stdin(d.wharf(&["load"]), &saved);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Loaded image: bb:1\nLoaded image: bb:2\n");
    let df = ok(d.wharf(&["system", "df"]));
    assert!(df.contains("Images          1         0"), "{df}");
    assert_eq!(ok(d.wharf(&["image", "prune", "-f"])), "Total reclaimed space: 0B\n");
    let (code, _, err) = run(d.wharf(&["rmi", "nosuch"]));
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "Error response from daemon: No such image: nosuch:latest");
    // docker's conflict message through wharf too.
    ok(d.wharf(&["tag", "bb:1", "other:1"]));
    let (code, _, err) = run(d.wharf(&["rmi", &id[7..19]]));
    assert_eq!(code, 1);
    assert!(err.contains("image is referenced in multiple repositories"), "{err}");
}

#[test]
fn api_shapes_by_version_and_image_events() {
    skip_unless!(require::root());
    let d = TestDaemon::start();
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 1;
    let body = layer(&[("a", b"1")]);
    let r = wharf_testkit::http::request(
        &d.socket,
        "POST",
        "/v1.53/images/create?fromSrc=-&repo=docker.io/library/api&tag=t&changes=CMD%20%5B%22sh%22%5D",
        &[],
        &body,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let id = r.json()["status"].as_str().unwrap().to_owned();
    let untagged =
        wharf_testkit::http::request(&d.socket, "POST", "/images/create?fromSrc=-", &[], &layer(&[("b", b"2")]))
            .unwrap()
            .json()["status"]
            .as_str()
            .unwrap()
            .to_owned();
    // Lists.
    let old = d.api("GET", "/v1.41/images/json", b"").json();
    let new = d.api("GET", "/v1.53/images/json", b"").json();
    let find = |v: &serde_json::Value, id: &str| v.as_array().unwrap().iter().find(|i| i["Id"] == id).unwrap().clone();
    assert_eq!(find(&old, &untagged)["RepoTags"], serde_json::json!(["<none>:<none>"]));
    assert_eq!(find(&old, &untagged)["RepoDigests"], serde_json::json!(["<none>@<none>"]));
    assert_eq!(find(&old, &id)["Containers"], -1);
    assert!(find(&old, &id).get("VirtualSize").is_some());
    assert_eq!(find(&new, &untagged)["RepoTags"], serde_json::json!([]));
    assert_eq!(find(&new, &id)["Containers"], 0);
    assert!(find(&new, &id).get("VirtualSize").is_none());
    assert_eq!(find(&new, &id)["RepoTags"], serde_json::json!(["api:t"]));
    // Inspect.
    let i41 = d.api("GET", "/v1.41/images/api:t/json", b"").json();
    assert_eq!(i41["Config"]["Hostname"], "");
    assert!(i41.get("ContainerConfig").is_some() && i41.get("VirtualSize").is_some());
    let i50 = d.api("GET", "/v1.50/images/api:t/json", b"").json();
    assert!(i50["Config"].get("Hostname").is_none());
    assert_eq!(i50["Config"]["Env"], serde_json::Value::Null);
    assert_eq!(i50["Parent"], "");
    let i53 = d.api("GET", "/v1.53/images/docker.io/library/api:t/json", b"").json();
    assert!(i53["Config"].get("Env").is_none() && i53.get("Parent").is_none());
    assert_eq!(i53["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(i53["RootFS"]["Type"], "layers");
    assert_eq!(d.api("GET", "/images/nosuch/json", b"").json()["message"], "No such image: nosuch:latest");
    // History.
    let h = d.api("GET", &format!("/images/{}/history", &id[7..19]), b"").json();
    assert_eq!(h[0]["Id"], id.as_str());
    assert_eq!(h[0]["Tags"], serde_json::json!(["api:t"]));
    // /system/df by version.
    let df50 = d.api("GET", "/v1.50/system/df", b"").json();
    assert_eq!(df50["Images"].as_array().unwrap().len(), 2);
    assert!(df50["LayersSize"].as_i64().unwrap() > 0);
    assert!(df50.get("ImageUsage").is_none());
    assert_eq!(df50["Containers"], serde_json::json!([]));
    let df52 = d.api("GET", "/v1.52/system/df", b"").json();
    assert!(df52.get("Images").is_some() && df52.get("ImageUsage").is_some());
    let df53 = d.api("GET", "/v1.53/system/df", b"").json();
    assert!(df53.get("Images").is_none());
    assert_eq!(df53["ImageUsage"]["TotalCount"], 2);
    assert!(df53["ImageUsage"].get("Items").is_none());
    let v = d.api("GET", "/v1.53/system/df?verbose=1&type=image", b"").json();
    assert_eq!(v["ImageUsage"]["Items"].as_array().unwrap().len(), 2);
    assert!(v.get("ContainerUsage").is_none());
    assert_eq!(d.api("GET", "/system/df?type=bogus", b"").status, 400);
    // Import and pull errors are clear.
    let r = d.api("POST", "/images/create?fromSrc=http://example.com/x.tar", b"");
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("not supported"));
    // Docker Hub is unreachable here: the pull fails before its first message, a 500 naming it.
    let r = d.api("POST", "/images/create?fromImage=docker.io/library/busybox&tag=latest", b"");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.json()["message"].as_str().unwrap().contains("registry-1.docker.io"), "{}", r.text());
    // Tag, save, delete: events with Docker's actors.
    let r = d.api("POST", "/images/api:t/tag?repo=docker.io/library/api2&tag=x", b"");
    assert_eq!(r.status, 201);
    assert!(r.body.is_empty());
    let r = d.api("POST", "/images/api:t/tag?repo=api3&tag=-bad", b"");
    assert_eq!(r.status, 400);
    let save = d.api("GET", "/images/api2:x/get", b"");
    assert_eq!(save.status, 200);
    assert_eq!(save.header("content-type"), Some("application/x-tar"));
    let load = wharf_testkit::http::request(&d.socket, "POST", "/images/load?quiet=0", &[], &save.body).unwrap();
    let text = load.text();
    assert!(text.contains("\"status\":\"Loading layer\"") || text.contains("Loaded image"), "{text}");
    assert!(text.contains("{\"stream\":\"Loaded image: api2:x\\n\"}\r\n"), "{text}");
    let del = d.api("DELETE", "/images/api2:x", b"").json();
    assert_eq!(del, serde_json::json!([{"Untagged": "api2:x"}]));
    std::thread::sleep(Duration::from_millis(1100));
    let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let ev =
        d.api("GET", &format!("/events?since={since}&until={until}&filters=%7B%22type%22%3A%5B%22image%22%5D%7D"), b"");
    let events: Vec<serde_json::Value> =
        ev.text().lines().filter(|l| !l.is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
    let actions: Vec<&str> = events.iter().map(|e| e["Action"].as_str().unwrap()).collect();
    for a in ["import", "tag", "save", "load", "untag"] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let tag = events.iter().find(|e| e["Action"] == "tag" && e["Actor"]["Attributes"]["name"] == "api2:x").unwrap();
    assert_eq!(tag["Actor"]["ID"], id.as_str());
    assert_eq!(tag["Type"], "image");
}

#[test]
fn native_snapshotter_end_to_end() {
    skip_unless!(require::root(), require::program("docker"));
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(r#"{"storage-driver": "vfs"}"#.to_owned()),
        ..Default::default()
    });
    assert_eq!(ok(d.docker(&["info", "--format", "{{.Driver}} {{len .DriverStatus}}"])).trim(), "vfs 0");
    let layers = vec![busybox_rootfs(), layer(&[("etc/motd", b"native\n")]), layer(&[("etc/motd", b"replaced\n")])];
    let (archive, id) = docker_archive(&layers, &["native:1"]);
    let p = write(&d, "n.tar", &archive);
    assert_eq!(ok(d.docker(&["load", "-i", p.to_str().unwrap()])), "Loaded image: native:1\n");
    let top = d.data_root.join("snapshots/native/snapshots");
    // Each native snapshot is a full tree: the top one has busybox and the last motd.
    let found = std::fs::read_dir(&top).unwrap().filter_map(Result::ok).any(|e| {
        std::fs::read(e.path().join("fs/etc/motd")).is_ok_and(|c| c == b"replaced\n")
            && e.path().join("fs/bin/busybox").exists()
    });
    assert!(found, "the top layer's tree is complete");
    let saved = d.dir().join("n2.tar");
    ok(d.docker(&["save", "-o", saved.to_str().unwrap(), "native:1"]));
    ok(d.docker(&["rmi", "native:1"]));
    assert_eq!(snapshot_dirs(&d), 0);
    ok(d.docker(&["load", "-i", saved.to_str().unwrap()]));
    assert_eq!(ok(d.docker(&["images", "-q", "--no-trunc"])).trim(), id);
}
