//! Volumes and mounts end to end below the HTTP layer: real containers (overlay snapshot with
//! busybox, the shim, the OCI runtime) using named, anonymous, bind, tmpfs and driver-option
//! volumes. The image service is the test's: a busybox image, and one declaring `VOLUME /data`
//! with content (owners, modes, an xattr) and hostile symlinks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use wharf_api::backend::{ContainerBackend, ListOptions, LogsOptions, VolumeBackend, WaitCondition};
use wharf_api::models::{ContainerCreateBody, VolumeCreateRequest};
use wharf_daemon::config::{Config, FileConfig, FlagConfig};
use wharf_daemon::container::{ImageProvider, ResolvedImage};
use wharf_daemon::events::EventFilter;
use wharf_daemon::{BuildInfo, Daemon};
use wharf_snapshot::Snapshotter;
use wharf_types::{EngineError, ErrorKind, Filters};

const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "ls", "true", "false", "id", "stat", "df", "touch", "mkdir", "rm", "grep", "test",
    "readlink", "wc", "mount", "dd",
];

struct Images {
    snapshotter: Arc<dyn Snapshotter>,
}

fn image_config(volumes: bool) -> wharf_types::image::ImageConfig {
    let mut config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": []}
    });
    if volumes {
        config["config"]["Volumes"] = serde_json::json!({"/data": {}});
    }
    serde_json::from_value(config).unwrap()
}

#[async_trait]
impl ImageProvider for Images {
    async fn resolve_image(&self, name: &str) -> Result<ResolvedImage, EngineError> {
        match name {
            "busybox" | "sha256:b0000000" => Ok(ResolvedImage {
                id: "sha256:b0000000".into(),
                config: image_config(false),
                top_layer: Some("bb".into()),
            }),
            "volimg" | "sha256:v0000000" => Ok(ResolvedImage {
                id: "sha256:v0000000".into(),
                config: image_config(true),
                top_layer: Some("vol".into()),
            }),
            _ => Err(EngineError::not_found(format!("No such image: {name}"))),
        }
    }
    fn snapshotter(&self) -> Arc<dyn Snapshotter> {
        self.snapshotter.clone()
    }
}

fn requirements() -> Result<(), String> {
    wharf_testkit::require::root()?;
    wharf_testkit::require::overlayfs()?;
    if !Path::new("/bin/busybox").exists() {
        return Err("needs /bin/busybox (busybox-static)".into());
    }
    Ok(())
}

struct Fixture {
    daemon: Option<Arc<Daemon>>,
    dir: tempfile::TempDir,
    cgroup_parent: String,
    /// A host directory image symlinks point at; nothing may ever be mounted or written there.
    host: PathBuf,
    /// This daemon's own bridge, subnet and firewall table (not the host-wide `wharf0`, which
    /// parallel tests and other daemons would share); dropped after the daemon.
    _net: wharf_testkit::net::NetSlot,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.daemon = None;
        wharf_testkit::cleanup_host_state(self.dir.path(), &self.cgroup_parent);
    }
}

impl Fixture {
    fn daemon(&self) -> &Arc<Daemon> {
        self.daemon.as_ref().unwrap()
    }
    fn c(&self) -> Arc<dyn ContainerBackend> {
        self.daemon().containers().clone()
    }
    fn v(&self) -> Arc<wharf_daemon::volume::VolumeService> {
        self.daemon().volumes().clone()
    }
}

async fn fixture() -> Fixture {
    // SAFETY: set before any thread reads it; every test sets the same value.
    unsafe { std::env::set_var("WHARF_BIN_DIR", wharf_testkit::bin_dir()) };
    let dir = tempfile::Builder::new().prefix("wharf-test-").tempdir().unwrap();
    let data = dir.path().join("data");
    let host = dir.path().join("host-secret");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("secret"), "host only").unwrap();
    let flags = FlagConfig { data_root: Some(data), exec_root: Some(dir.path().join("exec")), ..Default::default() };
    let cgroup_parent = format!("/{}", wharf_testkit::unique_name("wharf-test-"));
    let net = wharf_testkit::net::NetSlot::acquire();
    let file = FileConfig {
        cgroup_parent: Some(cgroup_parent.clone()),
        ..FileConfig::parse(&serde_json::Value::Object(net.daemon_json()).to_string()).unwrap()
    };
    let config = Config::merge(flags, file, dir.path().join("daemon.json")).unwrap();
    let daemon = open(config, host.clone());
    Fixture { daemon: Some(daemon), dir, cgroup_parent, host, _net: net }
}

/// Opens the daemon with the test's images, building their layers in the image service's
/// snapshotter the first time.
fn open(config: Config, host: PathBuf) -> Arc<Daemon> {
    let provider: wharf_daemon::ImageProviderFactory = Box::new(move |images| {
        let snapshotter = images.snapshotter();
        if snapshotter.stat("vol").is_err() {
            build_layers(&*snapshotter, &host);
        }
        Arc::new(Images { snapshotter }) as Arc<dyn ImageProvider>
    });
    Daemon::open_with(config, BuildInfo::default(), Some(provider)).unwrap()
}

/// `bb`: busybox, its applets, and hostile symlinks (an absolute host path, a way up).
/// `vol`: `bb` plus `/data` with content whose owners, modes and xattrs copy-up must keep.
fn build_layers(snapshotter: &dyn Snapshotter, host: &Path) {
    snapshotter.prepare("bb-build", None).unwrap();
    let fs = snapshotter.writable_dir("bb-build").unwrap();
    std::fs::create_dir_all(fs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", fs.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", fs.join("bin").join(applet)).unwrap();
    }
    for d in ["proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(fs.join(d)).unwrap();
    }
    std::fs::write(fs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::os::unix::fs::symlink(host, fs.join("escape")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../..", fs.join("up")).unwrap();
    snapshotter.commit("bb", "bb-build").unwrap();
    snapshotter.prepare("vol-build", Some("bb")).unwrap();
    let fs = snapshotter.writable_dir("vol-build").unwrap();
    std::fs::create_dir_all(fs.join("data/sub")).unwrap();
    std::fs::write(fs.join("data/hello"), "from image\n").unwrap();
    std::fs::write(fs.join("data/sub/deep"), "deep\n").unwrap();
    let own = |p: &Path, uid: u32, gid: u32, mode: u32| {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    };
    own(&fs.join("data"), 1000, 1000, 0o750);
    own(&fs.join("data/hello"), 1234, 5678, 0o640);
    let _ = rustix::fs::setxattr(fs.join("data/hello"), "user.origin", b"image", rustix::fs::XattrFlags::empty());
    snapshotter.commit("vol", "vol-build").unwrap();
}

fn body(json: serde_json::Value) -> ContainerCreateBody {
    serde_json::from_value(json).unwrap()
}

async fn logs_text(c: &dyn ContainerBackend, id: &str) -> String {
    let mut logs = c.logs(id, LogsOptions { stdout: true, stderr: true, ..Default::default() }).await.unwrap();
    let mut out = String::new();
    while let Some(Ok(chunk)) = logs.stream.next().await {
        out.push_str(&String::from_utf8_lossy(&chunk.bytes));
    }
    out
}

/// Creates and runs a container to its exit; returns (id, exit code, output).
async fn run(
    c: &dyn ContainerBackend,
    image: &str,
    script: &str,
    host_config: serde_json::Value,
) -> (String, i64, String) {
    let created = c
        .create(None, body(serde_json::json!({"Image": image, "Cmd": ["sh", "-c", script], "HostConfig": host_config})))
        .await
        .unwrap_or_else(|e| panic!("create for {script:?}: {}", e.message));
    let wait = c.wait(&created.id, WaitCondition::NextExit).await.unwrap();
    c.start(&created.id).await.unwrap_or_else(|e| panic!("start for {script:?}: {}", e.message));
    let outcome = tokio::time::timeout(Duration::from_secs(30), wait).await.expect("exits");
    let out = logs_text(c, &created.id).await;
    (created.id, outcome.status_code, out)
}

fn mountinfo_mentions(p: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = p.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&*p)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_volume_copy_up_persistence_and_in_use_removal() {
    wharf_testkit::skip_unless!(requirements());
    let fx = fixture().await;
    let (c, v) = (fx.c(), fx.v());
    let t0 = wharf_daemon::events::now_nanos();
    // A new named volume over the image's /data gets its content, owners, modes and xattrs.
    let (id1, code, out) = run(
        &*c,
        "volimg",
        "stat -c '%u:%g %a' /data /data/hello; cat /data/hello /data/sub/deep; echo kept > /data/new",
        serde_json::json!({"Binds": ["data:/data"]}),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "1000:1000 750\n1234:5678 640\nfrom image\ndeep\n");
    let on_host = v.mountpoint("data").join("hello");
    if let Ok(Some(x)) = xattr_of(&on_host, "user.origin") {
        assert_eq!(x, b"image");
    }
    // The data persists into another container (no copy-up over a non-empty volume).
    let (id2, code, out) =
        run(&*c, "busybox", "cat /data/new; ls /data | wc -l", serde_json::json!({"Binds": ["data:/data:ro"]})).await;
    assert_eq!((code, out.as_str()), (0, "kept\n3\n"));
    // Inspect and ps show the mount; ps filters by volume name and destination.
    let i = c.inspect(&id1, false).await.unwrap();
    let m = &i.mounts.unwrap()[0];
    assert_eq!(m.typ.as_deref(), Some("volume"));
    assert_eq!(m.name.as_deref(), Some("data"));
    assert_eq!(m.mode.as_deref(), Some("z"));
    assert_eq!(m.rw, Some(true));
    assert!(m.source.as_deref().unwrap().ends_with("/volumes/data/_data"));
    let f = |j: &str| ListOptions { all: true, filters: Filters::parse(j).unwrap(), ..Default::default() };
    assert_eq!(c.list(f(r#"{"volume":["data"]}"#)).await.unwrap().len(), 2);
    assert_eq!(c.list(f(r#"{"volume":["/data"]}"#)).await.unwrap().len(), 2);
    assert_eq!(c.list(f(r#"{"volume":["other"]}"#)).await.unwrap().len(), 0);
    // In use: refused with Docker's message, even forced.
    let e = VolumeBackend::remove(&*v, "data", true).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    let mut users = [id1.clone(), id2.clone()];
    users.sort();
    assert_eq!(e.message, format!("remove data: volume is in use - [{} {}]", users[0], users[1]));
    // rm -v keeps named volumes.
    c.remove(&id1, false, true, false).await.unwrap();
    c.remove(&id2, false, true, false).await.unwrap();
    assert_eq!(VolumeBackend::inspect(&*v, "data").await.unwrap().name, "data");
    VolumeBackend::remove(&*v, "data", false).await.unwrap();
    // Events: create, mount/unmount per run (with Docker's attributes), destroy.
    let events: Vec<_> = fx
        .daemon()
        .events()
        .subscribe(
            Some(t0),
            Some(wharf_daemon::events::now_nanos()),
            EventFilter::new(Filters::parse(r#"{"type":["volume"]}"#).unwrap()),
        )
        .collect()
        .await;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["create", "mount", "unmount", "mount", "unmount", "destroy"], "{events:?}");
    let mount = &events[1].actor.attributes;
    assert_eq!(mount["container"], id1);
    assert_eq!(mount["destination"], "/data");
    assert_eq!(mount["driver"], "local");
    assert_eq!(mount["read/write"], "true");
    assert_eq!(events[3].actor.attributes["read/write"], "false");
    assert_eq!(events[2].actor.attributes["container"], id1);
}

fn xattr_of(p: &Path, name: &str) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(p, name, &mut buf[..]) {
        Ok(n) => Ok(Some(buf[..n].to_vec())),
        Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_volumes_nocopy_rm_v_auto_remove_and_prune() {
    wharf_testkit::skip_unless!(requirements());
    let fx = fixture().await;
    let (c, v) = (fx.c(), fx.v());
    // The image's VOLUME /data becomes an anonymous volume with the image's content.
    let (id, code, out) = run(&*c, "volimg", "cat /data/hello", serde_json::json!({})).await;
    assert_eq!((code, out.as_str()), (0, "from image\n"));
    let mounts = c.inspect(&id, false).await.unwrap().mounts.unwrap();
    assert_eq!(mounts.len(), 1);
    let anon = mounts[0].name.clone().unwrap();
    assert_eq!(anon.len(), 64);
    assert_eq!(mounts[0].mode.as_deref(), Some(""));
    let vol = VolumeBackend::inspect(&*v, &anon).await.unwrap();
    assert!(vol.labels.contains_key("com.docker.volume.anonymous"));
    // rm without -v leaves it, dangling; prune (anonymous only by default) takes it.
    c.remove(&id, false, false, false).await.unwrap();
    let dangling = VolumeBackend::list(&*v, Filters::parse(r#"{"dangling":["true"]}"#).unwrap()).await.unwrap();
    assert_eq!(dangling.volumes.unwrap().len(), 1);
    let pruned = VolumeBackend::prune(&*v, Filters::default()).await.unwrap();
    assert_eq!(pruned.volumes_deleted.unwrap(), vec![anon.clone()]);
    assert!(pruned.space_reclaimed.unwrap() >= 16, "hello + deep");

    // rm -v removes anonymous volumes (image VOLUME and `-v /path`), not named ones.
    let (id, code, _) = run(
        &*c,
        "volimg",
        "! test -e /data/hello && test -d /anon2",
        serde_json::json!({"Binds": ["/anon2", "keepme:/keep", "nc:/data:nocopy"]}),
    )
    .await;
    assert_eq!(code, 0, "nocopy: the image's /data content stays out of the volume");
    let names: Vec<String> =
        c.inspect(&id, false).await.unwrap().mounts.unwrap().iter().map(|m| m.name.clone().unwrap()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    c.remove(&id, false, true, false).await.unwrap();
    let left: Vec<String> = VolumeBackend::list(&*v, Filters::default())
        .await
        .unwrap()
        .volumes
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(left, vec!["keepme", "nc"]);

    // --rm (AutoRemove) removes the anonymous volumes with the container.
    let created = c
        .create(None, body(serde_json::json!({"Image": "volimg", "Cmd": ["true"], "HostConfig": {"AutoRemove": true}})))
        .await
        .unwrap();
    let wait = c.wait(&created.id, WaitCondition::Removed).await.unwrap();
    c.start(&created.id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), wait).await.unwrap();
    assert_eq!(VolumeBackend::list(&*v, Filters::default()).await.unwrap().volumes.unwrap().len(), 2);
    // prune all=true takes the named ones.
    let pruned = VolumeBackend::prune(&*v, Filters::parse(r#"{"all":["true"]}"#).unwrap()).await.unwrap();
    assert_eq!(pruned.volumes_deleted.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_read_only_tmpfs_limits_volumes_from_and_subpaths() {
    wharf_testkit::skip_unless!(requirements());
    let fx = fixture().await;
    let (c, v) = (fx.c(), fx.v());
    let src = fx.dir.path().join("bind-src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), "host file\n").unwrap();
    // A read-only bind refuses writes; a `-v` host path that does not exist is created.
    let missing = fx.dir.path().join("created/by/v");
    let (_, code, out) = run(
        &*c,
        "busybox",
        "cat /ro/f; touch /ro/x 2>/dev/null && echo WROTE; touch /new/x && echo made",
        serde_json::json!({"Binds": [format!("{}:/ro:ro", src.display()), format!("{}:/new", missing.display())]}),
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "host file\nmade\n"));
    assert!(missing.join("x").exists());
    assert!(!src.join("x").exists());
    // --mount bind with a missing source: Docker's error at create.
    let e = c
        .create(
            None,
            body(serde_json::json!({"Image": "busybox", "HostConfig": {"Mounts": [{"Type": "bind", "Source": "/nonexistent-wharf-x", "Target": "/x"}]}})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert_eq!(
        e.message,
        "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent-wharf-x"
    );
    let e = c
        .create(None, body(serde_json::json!({"Image": "busybox", "HostConfig": {"Binds": ["bad/name:/x"]}})))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(e.message.contains("includes invalid characters for a local volume name"), "{}", e.message);
    let e = c
        .create(None, body(serde_json::json!({"Image": "busybox", "HostConfig": {"Binds": ["a1:/x", "a2:/x"]}})))
        .await
        .unwrap_err();
    assert_eq!(e.message, "Duplicate mount point: /x");
    assert!(
        VolumeBackend::list(&*v, Filters::default()).await.unwrap().volumes.unwrap().iter().all(|v| v.name != "a2")
    );

    // tmpfs size limits: HostConfig.Tmpfs and --mount type=tmpfs.
    let (_, code, out) = run(
        &*c,
        "busybox",
        "df -k /t1 /t2 | grep -v Filesystem | while read fs size rest; do echo $size; done; stat -c %a /t2; dd if=/dev/zero of=/t1/big bs=1k count=2048 2>/dev/null || echo full",
        serde_json::json!({"Tmpfs": {"/t1": "size=1m"}, "Mounts": [{"Type": "tmpfs", "Target": "/t2", "TmpfsOptions": {"SizeBytes": 2097152, "Mode": 448}}]}),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "1024\n2048\n700\nfull\n");

    // volumes-from, read-only: the same volume, not writable.
    let (src_id, code, _) = run(&*c, "busybox", "echo shared > /vf/x", serde_json::json!({"Binds": ["vf:/vf"]})).await;
    assert_eq!(code, 0);
    let (_, code, out) = run(
        &*c,
        "busybox",
        "cat /vf/x; touch /vf/y 2>/dev/null && echo WROTE; echo done",
        serde_json::json!({"VolumesFrom": [format!("{src_id}:ro")]}),
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "shared\ndone\n"));
    let e = c
        .create(None, body(serde_json::json!({"Image": "busybox", "HostConfig": {"VolumesFrom": ["nosuch"]}})))
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::InvalidArgument, "No such container: nosuch"));

    // volume-subpath: only that directory of the volume, and nothing outside it.
    std::fs::create_dir_all(v.mountpoint("vf").join("sub")).unwrap();
    std::fs::write(v.mountpoint("vf").join("sub/in"), "in sub\n").unwrap();
    std::os::unix::fs::symlink("/", v.mountpoint("vf").join("root-link")).unwrap();
    let (_, code, out) = run(
        &*c,
        "busybox",
        "ls /s",
        serde_json::json!({"Mounts": [{"Type": "volume", "Source": "vf", "Target": "/s", "VolumeOptions": {"Subpath": "sub"}}]}),
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "in\n"));
    // A subpath through a symlink to / resolves inside the volume (which has no such path).
    let created = c
        .create(
            None,
            body(serde_json::json!({"Image": "busybox", "Cmd": ["ls", "/s"], "HostConfig": {"Mounts": [{"Type": "volume", "Source": "vf", "Target": "/s", "VolumeOptions": {"Subpath": "root-link/etc"}}]}})),
        )
        .await
        .unwrap();
    let e = c.start(&created.id).await.unwrap_err();
    assert!(e.message.contains("cannot access path"), "{}", e.message);
    assert!(!mountinfo_mentions(&fx.dir.path().join("exec")), "a failed start leaves no mount");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_targets_stay_inside_the_container() {
    wharf_testkit::skip_unless!(requirements());
    let fx = fixture().await;
    let c = fx.c();
    let before: Vec<_> = std::fs::read_dir(&fx.host).unwrap().flatten().map(|e| e.file_name()).collect();
    // /escape is a symlink to a host directory; mounts through it land inside the rootfs.
    let (_, code, out) = run(
        &*c,
        "busybox",
        "echo in > /escape/vol/x; echo ok",
        serde_json::json!({"Binds": ["esc:/escape/vol", "up2:/up/wharf-up-test"]}),
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "ok\n"));
    assert!(!Path::new("/wharf-up-test").exists(), "a symlink to .. stays at the container's /");
    let after: Vec<_> = std::fs::read_dir(&fx.host).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(before, after, "nothing created in the host directory the symlink names");
    assert!(!mountinfo_mentions(&fx.host), "nothing mounted on the host directory");
    // Copy-up through a symlink reads the container's files, never the host's.
    let (_, code, out) =
        run(&*c, "busybox", "ls /escape | wc -l", serde_json::json!({"Binds": ["leak:/escape"]})).await;
    assert_eq!(code, 0);
    assert_eq!(out, "0\n", "the host directory's secret was not copied into the volume");
    assert!(!fx.v().mountpoint("leak").join("secret").exists());
    // `..` in a target cannot climb out either.
    let (_, code, out) = run(
        &*c,
        "busybox",
        "echo hi > /etc/dotdot/f; echo ok",
        serde_json::json!({"Binds": ["dd:/../../../etc/dotdot"]}),
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "ok\n"));
    assert!(!Path::new("/etc/dotdot").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_option_volumes_mount_only_while_used() {
    wharf_testkit::skip_unless!(requirements());
    let fx = fixture().await;
    let v = fx.v();
    let opts: std::collections::HashMap<String, String> =
        [("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=2m,uid=1000")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let vol = VolumeBackend::create(
        &*v,
        VolumeCreateRequest { name: Some("ram".into()), driver_opts: Some(opts), ..Default::default() },
    )
    .await
    .unwrap();
    assert_eq!(vol.options["type"], "tmpfs");
    let mp = v.mountpoint("ram");
    assert!(!mountinfo_mentions(&mp), "mounted only while used");
    let c = fx.c();
    let created = c
        .create(
            Some("ramuser".into()),
            body(serde_json::json!({"Image": "busybox", "Cmd": ["sh", "-c", "df -k /r | grep -v Filesystem | while read a s r; do echo $s; done; stat -c %u /r; sleep 1000"], "HostConfig": {"Binds": ["ram:/r"]}})),
        )
        .await
        .unwrap();
    c.start(&created.id).await.unwrap();
    let mut out = String::new();
    for _ in 0..100 {
        out = logs_text(&*c, &created.id).await;
        if out.lines().count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(out, "2048\n1000\n");
    assert!(mountinfo_mentions(&mp));
    assert_eq!(VolumeBackend::remove(&*v, "ram", false).await.unwrap_err().kind, ErrorKind::Conflict);
    c.stop(&created.id, Some(0), None).await.unwrap();
    assert!(!mountinfo_mentions(&mp), "unmounted when the last user stopped");
    c.remove(&created.id, false, false, false).await.unwrap();
    VolumeBackend::remove(&*v, "ram", false).await.unwrap();
    assert!(!mp.exists());
    // `type=none,o=bind,device=<dir>`: a host directory bound while in use.
    let dir = fx.dir.path().join("bound");
    std::fs::create_dir_all(&dir).unwrap();
    let opts: std::collections::HashMap<String, String> =
        [("type", "none"), ("o", "bind"), ("device", dir.to_str().unwrap())]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    VolumeBackend::create(
        &*v,
        VolumeCreateRequest { name: Some("bnd".into()), driver_opts: Some(opts), ..Default::default() },
    )
    .await
    .unwrap();
    let (_, code, _) = run(&*c, "busybox", "echo via-volume > /b/f", serde_json::json!({"Binds": ["bnd:/b"]})).await;
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "via-volume\n");
    assert!(!mountinfo_mentions(&v.mountpoint("bnd")));
    // Bad options are refused at create.
    let bad: std::collections::HashMap<String, String> = [("o".to_string(), "size=1m".to_string())].into();
    let e = VolumeBackend::create(
        &*v,
        VolumeCreateRequest { name: Some("bad".into()), driver_opts: Some(bad), ..Default::default() },
    )
    .await
    .unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::InvalidArgument, "create bad: missing required option: \"device\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_propagation_rslave_sees_later_host_mounts() {
    wharf_testkit::skip_unless!(requirements());
    let fx = fixture().await;
    let c = fx.c();
    // A shared host mount point (bind of itself), bound into the container as rslave.
    let shared = fx.dir.path().join("shared");
    std::fs::create_dir_all(shared.join("later")).unwrap();
    rustix::mount::mount_bind(&shared, &shared).unwrap();
    rustix::mount::mount_change(&shared, rustix::mount::MountPropagationFlags::SHARED).unwrap();
    let created = c
        .create(
            None,
            body(serde_json::json!({"Image": "busybox", "Cmd": ["sh", "-c", "while ! test -e /s/later/marker; do sleep 0.1; done; echo seen"], "HostConfig": {"Binds": [format!("{}:/s:rslave", shared.display())]}})),
        )
        .await
        .unwrap();
    let wait = c.wait(&created.id, WaitCondition::NextExit).await.unwrap();
    c.start(&created.id).await.unwrap();
    let inner = fx.dir.path().join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(inner.join("marker"), "").unwrap();
    rustix::mount::mount_bind(&inner, shared.join("later")).unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), wait).await.expect("the host mount propagated");
    assert_eq!(outcome.status_code, 0);
    assert_eq!(logs_text(&*c, &created.id).await, "seen\n");
    let m = &c.inspect(&created.id, false).await.unwrap().mounts.unwrap()[0];
    assert_eq!((m.propagation.as_deref(), m.mode.as_deref()), (Some("rslave"), Some("rslave")));
    c.remove(&created.id, true, false, false).await.unwrap();
    let _ = rustix::mount::unmount(shared.join("later"), rustix::mount::UnmountFlags::DETACH);
    let _ = rustix::mount::unmount(&shared, rustix::mount::UnmountFlags::DETACH);
}
