//! Test fixtures: a builder over a real overlay snapshotter and content store in a temp dir, a
//! busybox base image made from the host's static busybox, an in-memory image store, and a
//! runner that really runs RUN steps: fork, a private mount namespace, the step's mounts,
//! `chroot` into the mounted rootfs, exec.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use wharf_build::mountpoints::MountPoints;
use wharf_build::{
    BaseImage, BuildEvent, BuildOptions, BuildResult, Builder, BuilderDeps, CacheStore, ContainerRunner,
    ImageCommitter, ImageSource, KeptContainer, MountSource, NetworkMode, NewImage, OutputSink, OutputStream,
    ProgressFn, PullPolicy, RunSpec,
};
use wharf_image::ContentStore;
use wharf_image::layer::{UnpackOptions, unpack};
use wharf_snapshot::{OverlaySnapshotter, Snapshotter};
use wharf_types::image::{History, ImageConfig, RuntimeConfig};
use wharf_types::{Digest, EngineError, ErrorKind, Platform, Reference};

pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why the kernel-level tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<&'static str> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root (mounts, chroot)");
    }
    if !wharf_snapshot::overlay_supported() {
        return Some("needs overlayfs");
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("needs /bin/busybox (busybox-static)");
    }
    None
}

#[macro_export]
macro_rules! require_root {
    () => {
        if let Some(r) = common::skip_reason() {
            eprintln!("skipped: {r}");
            return;
        }
    };
}

/// Images by ID and tag, in memory: the daemon's part, simulated.
#[derive(Default)]
pub struct Images {
    pub by_id: Mutex<BTreeMap<Digest, (BaseImage, Option<Digest>)>>,
    pub tags: Mutex<BTreeMap<String, Digest>>,
    pub resolves: Mutex<Vec<(String, PullPolicy)>>,
    pub commits: Mutex<usize>,
}

fn tag_key(r: &str) -> String {
    let r = r.strip_prefix("docker.io/library/").unwrap_or(r);
    r.strip_suffix(":latest").unwrap_or(r).to_string()
}

#[async_trait]
impl ImageSource for Images {
    async fn resolve(
        &self,
        reference: &str,
        _platform: &Platform,
        policy: PullPolicy,
        progress: ProgressFn,
    ) -> Result<BaseImage, EngineError> {
        self.resolves.lock().unwrap().push((reference.to_string(), policy));
        let id = match reference.parse::<Digest>() {
            Ok(d) => Some(d),
            Err(_) => self.tags.lock().unwrap().get(&tag_key(reference)).cloned(),
        };
        let Some(id) = id else {
            return Err(EngineError::not_found(format!(
                "pull access denied for {reference}, repository does not exist or may require 'docker login'"
            )));
        };
        if policy == PullPolicy::Always {
            progress(serde_json::json!({"status": format!("Pulling from library/{reference}")}));
        }
        Ok(self.by_id.lock().unwrap()[&id].0.clone())
    }

    async fn get(&self, id: &Digest) -> Result<Option<BaseImage>, EngineError> {
        Ok(self.by_id.lock().unwrap().get(id).map(|v| v.0.clone()))
    }
}

#[async_trait]
impl ImageCommitter for Images {
    async fn commit(&self, image: NewImage) -> Result<(), EngineError> {
        let parsed: ImageConfig =
            serde_json::from_slice(&image.config_json).map_err(|e| EngineError::internal(e.to_string()))?;
        assert_eq!(parsed, image.config);
        *self.commits.lock().unwrap() += 1;
        self.by_id.lock().unwrap().insert(image.id.clone(), (BaseImage { id: image.id, config: parsed }, image.parent));
        Ok(())
    }

    async fn tag(&self, image: &Digest, reference: &Reference) -> Result<(), EngineError> {
        self.tags.lock().unwrap().insert(tag_key(&reference.familiar()), image.clone());
        Ok(())
    }
}

/// Runs RUN steps for real: a child process in its own mount namespace with the step's extra
/// mounts and /proc, chrooted into the mounted rootfs, as the step's user.
pub struct ChrootRunner {
    pub runs: Mutex<Vec<RunSpec>>,
    /// Containers the builder kept, with the paths in their changes' tar.
    pub kept: Mutex<Vec<(KeptContainer, Vec<String>)>>,
    /// (command, start, end) of every finished process.
    pub spans: Mutex<Vec<(String, std::time::Instant, std::time::Instant)>>,
}

impl ChrootRunner {
    pub fn new() -> Self {
        Self { runs: Mutex::new(Vec::new()), kept: Mutex::new(Vec::new()), spans: Mutex::new(Vec::new()) }
    }
}

fn lookup_id(root: &Path, db: &str, name: &str) -> Option<(u32, u32)> {
    let text = fs::read_to_string(root.join("etc").join(db)).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && (f[0] == name || f[2] == name))
            .then(|| (f[2].parse().ok(), f[3].parse().ok()))
            .and_then(|(a, b)| Some((a?, b.unwrap_or(0))))
    })
}

fn resolve_user(root: &Path, user: &str) -> Result<(u32, u32), EngineError> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = user.split_once(':').map_or((user, None), |(u, g)| (u, Some(g)));
    let (uid, mut gid) = match u.parse::<u32>() {
        Ok(n) => (n, lookup_id(root, "passwd", u).map(|x| x.1).unwrap_or(0)),
        Err(_) => lookup_id(root, "passwd", u).ok_or_else(|| {
            EngineError::invalid(format!("unable to find user {u}: no matching entries in passwd file"))
        })?,
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => fs::read_to_string(root.join("etc/group"))
                .ok()
                .and_then(|t| {
                    t.lines().find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() >= 3 && f[0] == g).then(|| f[2].parse().ok()).flatten()
                    })
                })
                .ok_or_else(|| EngineError::invalid(format!("unable to find group {g}")))?,
        };
    }
    Ok((uid, gid))
}

fn find_program(mp: &MountPoints, prog: &str, env: &[String]) -> Result<String, EngineError> {
    if prog.contains('/') {
        return Ok(prog.to_string());
    }
    let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(PATH);
    for dir in path.split(':') {
        let cand = format!("{dir}/{prog}");
        if mp.host_path(&cand).map(|p| p.exists()).unwrap_or(false) {
            return Ok(cand);
        }
    }
    Err(EngineError::invalid(format!("exec: \"{prog}\": executable file not found in $PATH")))
}

struct MountOp {
    src: CString,
    dst: CString,
    fstype: CString,
    flags: libc::c_ulong,
    data: CString,
    remount_ro: bool,
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

#[async_trait]
impl ContainerRunner for ChrootRunner {
    async fn run(
        &self,
        spec: RunSpec,
        output: Arc<dyn OutputSink>,
        cancel: CancellationToken,
    ) -> Result<i32, EngineError> {
        self.runs.lock().unwrap().push(spec.clone());
        let started = std::time::Instant::now();
        let label = spec.args.join(" ");
        let mp = MountPoints::new(&spec.rootfs);
        let (uid, gid) = resolve_user(&spec.rootfs, &spec.user)?;
        let prog = find_program(&mp, &spec.args[0], &spec.env)?;
        let mut ops = Vec::new();
        let proc_dir = spec.rootfs.join("proc");
        if proc_dir.is_dir() {
            ops.push(MountOp {
                src: CString::new("proc").unwrap(),
                dst: cstr(&proc_dir),
                fstype: CString::new("proc").unwrap(),
                flags: 0,
                data: CString::new("").unwrap(),
                remount_ro: false,
            });
        }
        for m in &spec.mounts {
            let dst = mp.host_path(&m.target).map_err(|e| EngineError::internal(e.to_string()))?;
            match &m.source {
                MountSource::Bind { source, read_only } => ops.push(MountOp {
                    src: cstr(source),
                    dst: cstr(&dst),
                    fstype: CString::new("").unwrap(),
                    flags: libc::MS_BIND | libc::MS_REC,
                    data: CString::new("").unwrap(),
                    remount_ro: *read_only,
                }),
                MountSource::Tmpfs { size } => ops.push(MountOp {
                    src: CString::new("tmpfs").unwrap(),
                    dst: cstr(&dst),
                    fstype: CString::new("tmpfs").unwrap(),
                    flags: 0,
                    data: CString::new(size.map(|s| format!("size={s}")).unwrap_or_default()).unwrap(),
                    remount_ro: false,
                }),
            }
        }
        let root = cstr(&spec.rootfs);
        let wd = CString::new(spec.workdir.clone()).unwrap();
        let slash = CString::new("/").unwrap();
        let no_net = spec.network == NetworkMode::None;
        let mut cmd = tokio::process::Command::new(&prog);
        cmd.args(&spec.args[1..])
            .env_clear()
            .envs(spec.env.iter().filter_map(|e| e.split_once('=')))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: the closure runs in the forked child before exec and only makes raw system
        // calls on data prepared (allocated) before the fork; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                let check = |r: libc::c_int| {
                    if r != 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
                };
                check(libc::unshare(libc::CLONE_NEWNS))?;
                check(libc::mount(
                    std::ptr::null(),
                    slash.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ))?;
                for op in &ops {
                    let fstype = if op.fstype.as_bytes().is_empty() { std::ptr::null() } else { op.fstype.as_ptr() };
                    check(libc::mount(op.src.as_ptr(), op.dst.as_ptr(), fstype, op.flags, op.data.as_ptr().cast()))?;
                    if op.remount_ro {
                        check(libc::mount(
                            std::ptr::null(),
                            op.dst.as_ptr(),
                            std::ptr::null(),
                            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC,
                            std::ptr::null(),
                        ))?;
                    }
                }
                if no_net {
                    check(libc::unshare(libc::CLONE_NEWNET))?;
                }
                check(libc::chroot(root.as_ptr()))?;
                check(libc::chdir(wd.as_ptr()))?;
                check(libc::setgroups(0, std::ptr::null()))?;
                check(libc::setgid(gid))?;
                check(libc::setuid(uid))?;
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                EngineError::invalid(format!("exec: \"{prog}\": no such file or directory"))
            } else {
                EngineError::internal(format!("start container process: {e}"))
            }
        })?;
        let pump = |mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                    stream: OutputStream,
                    out: Arc<dyn OutputSink>| async move {
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                out.write(stream, &buf[..n]);
            }
        };
        let a = tokio::spawn(pump(Box::new(child.stdout.take().unwrap()), OutputStream::Stdout, output.clone()));
        let b = tokio::spawn(pump(Box::new(child.stderr.take().unwrap()), OutputStream::Stderr, output.clone()));
        let status = tokio::select! {
            s = child.wait() => s.map_err(|e| EngineError::internal(e.to_string()))?,
            _ = cancel.cancelled() => {
                let _ = child.kill().await;
                let _ = a.await;
                let _ = b.await;
                return Err(EngineError::new(ErrorKind::Cancelled, "cancelled"));
            }
        };
        let _ = a.await;
        let _ = b.await;
        self.spans.lock().unwrap().push((label, started, std::time::Instant::now()));
        use std::os::unix::process::ExitStatusExt;
        Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }

    async fn keep(&self, container: KeptContainer) -> Result<(), EngineError> {
        let mut paths = Vec::new();
        if let Some(p) = &container.changes {
            let mut a = tar::Archive::new(fs::File::open(p).map_err(|e| EngineError::internal(e.to_string()))?);
            for e in a.entries().map_err(|e| EngineError::internal(e.to_string()))? {
                let e = e.map_err(|e| EngineError::internal(e.to_string()))?;
                paths.push(e.path().map_err(|e| EngineError::internal(e.to_string()))?.display().to_string());
            }
        }
        self.kept.lock().unwrap().push((container, paths));
        Ok(())
    }
}

/// One test's world: snapshotter, content store, images, cache, builder, in a temp dir.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub snapshotter: Arc<OverlaySnapshotter>,
    pub content: ContentStore,
    pub images: Arc<Images>,
    pub runner: Arc<ChrootRunner>,
    pub cache: Arc<dyn CacheStore>,
    pub builder: Builder,
}

/// The host's busybox as a one-layer base image tar: /bin/busybox, applet symlinks, an
/// /etc/passwd with root and app (1000), /etc/group with root, app (1000) and staff (50),
/// /tmp, /root, /proc, /dev.
pub fn busybox_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, name: &str, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, std::io::empty()).unwrap();
    };
    let file = |b: &mut tar::Builder<Vec<u8>>, name: &str, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    for (d, m) in [
        ("bin/", 0o755),
        ("etc/", 0o755),
        ("tmp/", 0o1777),
        ("root/", 0o700),
        ("proc/", 0o555),
        ("dev/", 0o755),
        ("home/", 0o755),
    ] {
        dir(&mut b, d, m);
    }
    file(&mut b, "bin/busybox", 0o755, &fs::read("/bin/busybox").unwrap());
    for applet in [
        "sh", "echo", "cat", "ls", "mkdir", "touch", "sleep", "env", "id", "rm", "true", "false", "printf", "test",
        "wc", "stat", "chmod", "cp", "sed", "grep", "head", "tr", "seq", "ln", "pwd", "whoami", "cut",
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(1_600_000_000);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox").unwrap();
    }
    file(&mut b, "etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n");
    file(&mut b, "etc/group", 0o644, b"root:x:0:\nstaff:x:50:\napp:x:1000:\n");
    b.into_inner().unwrap()
}

fn sha256(data: &[u8]) -> Digest {
    use sha2::Digest as _;
    Digest::sha256_bytes(&sha2::Sha256::digest(data).into())
}

impl Env {
    pub fn new() -> Self {
        Self::with_cache(None)
    }

    /// A world whose cache is persisted at `cache_file` (to test restarts).
    pub fn with_cache(cache_file: Option<&Path>) -> Self {
        let dir = tempfile::Builder::new().prefix("wharf-test-build-").tempdir().unwrap();
        let snapshotter = Arc::new(OverlaySnapshotter::open(&dir.path().join("snapshots")).unwrap());
        let content = ContentStore::open(&dir.path().join("content")).unwrap();
        let images = Arc::new(Images::default());
        let runner = Arc::new(ChrootRunner::new());
        let cache: Arc<dyn CacheStore> = match cache_file {
            Some(p) => Arc::new(wharf_build::FileCacheStore::open(p).unwrap()),
            None => Arc::new(wharf_build::MemoryCacheStore::default()),
        };
        let builder = Self::make_builder(&dir, &snapshotter, &content, &images, &runner, &cache);
        let env = Self { dir, snapshotter, content, images, runner, cache, builder };
        env.add_busybox();
        env
    }

    fn make_builder(
        dir: &tempfile::TempDir,
        snapshotter: &Arc<OverlaySnapshotter>,
        content: &ContentStore,
        images: &Arc<Images>,
        runner: &Arc<ChrootRunner>,
        cache: &Arc<dyn CacheStore>,
    ) -> Builder {
        Builder::new(BuilderDeps {
            root: dir.path().join("builder"),
            snapshotter: snapshotter.clone(),
            content: content.clone(),
            images: images.clone(),
            committer: images.clone(),
            runner: runner.clone(),
            cache: cache.clone(),
        })
        .unwrap()
    }

    /// Replaces the cache store and the builder (a daemon restart with the same state).
    pub fn restart_with_cache(&mut self, cache: Arc<dyn CacheStore>) {
        self.cache = cache;
        self.builder =
            Self::make_builder(&self.dir, &self.snapshotter, &self.content, &self.images, &self.runner, &self.cache);
    }

    fn add_busybox(&self) {
        let layer = busybox_layer();
        let diff_id = sha256(&layer);
        let key = "test-extract";
        self.snapshotter.prepare(key, None).unwrap();
        let wd = self.snapshotter.writable_dir(key).unwrap();
        unpack(&layer[..], &wd, &UnpackOptions { whiteouts: self.snapshotter.whiteouts(), ..UnpackOptions::default() })
            .unwrap();
        self.snapshotter.commit(&diff_id.to_string(), key).unwrap();
        let config = ImageConfig {
            architecture: wharf_types::platform::host_arch().into(),
            os: "linux".into(),
            config: Some(RuntimeConfig {
                env: Some(vec![format!("PATH={PATH}")]),
                cmd: Some(vec!["sh".into()]),
                ..RuntimeConfig::default()
            }),
            rootfs: wharf_types::image::RootFs { kind: "layers".into(), diff_ids: vec![diff_id.clone()] },
            history: vec![
                History {
                    created: Some("2024-01-01T00:00:00Z".into()),
                    created_by: Some(format!("/bin/sh -c #(nop) ADD file:{} in / ", diff_id.hex())),
                    ..History::default()
                },
                History {
                    created: Some("2024-01-01T00:00:00Z".into()),
                    created_by: Some("/bin/sh -c #(nop)  CMD [\"sh\"]".into()),
                    empty_layer: true,
                    ..History::default()
                },
            ],
            ..ImageConfig::default()
        };
        let json = serde_json::to_vec(&config).unwrap();
        let id = sha256(&json);
        self.images.by_id.lock().unwrap().insert(id.clone(), (BaseImage { id: id.clone(), config }, None));
        self.images.tags.lock().unwrap().insert("busybox".into(), id);
    }

    pub fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    /// Builds a context tar from files (`name`, content); names ending in `/` are dirs.
    pub async fn build(&self, files: &[(&str, &str)], opts: BuildOptions) -> Outcome {
        self.build_tar(context_tar(files), opts, CancellationToken::new()).await
    }

    pub async fn build_tar(&self, tar: Vec<u8>, opts: BuildOptions, cancel: CancellationToken) -> Outcome {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let res = self.builder.build(&tar[..], opts, tx, cancel).await;
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        Outcome { result: res, events }
    }

    pub fn image(&self, id: &Digest) -> BaseImage {
        self.images.by_id.lock().unwrap()[id].0.clone()
    }

    /// Mounts a view of the image's filesystem and runs `f` on its root.
    pub fn with_fs<T>(&self, id: &Digest, f: impl FnOnce(&Path) -> T) -> T {
        let img = self.image(id);
        let top = wharf_build::layer::top_snapshot(&img.config.rootfs.diff_ids);
        let key = format!("test-view-{}", &wharf_types::random_hex_id()[..12]);
        let mounts = self.snapshotter.view(&key, top.as_deref()).unwrap();
        let target = self.dir.path().join(&key);
        fs::create_dir_all(&target).unwrap();
        wharf_snapshot::mount_all(&mounts, &target).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&target)));
        wharf_snapshot::unmount(&target).unwrap();
        fs::remove_dir(&target).unwrap();
        self.snapshotter.remove(&key).unwrap();
        match r {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    pub fn read(&self, id: &Digest, path: &str) -> Option<String> {
        self.with_fs(id, |root| fs::read_to_string(root.join(path.trim_start_matches('/'))).ok())
    }

    /// (mode & 0o7777, uid, gid, is_dir) of a path in an image.
    pub fn stat(&self, id: &Digest, path: &str) -> Option<(u32, u32, u32, bool)> {
        use std::os::unix::fs::MetadataExt;
        self.with_fs(id, |root| {
            fs::symlink_metadata(root.join(path.trim_start_matches('/')))
                .ok()
                .map(|m| (m.mode() & 0o7777, m.uid(), m.gid(), m.is_dir()))
        })
    }

    /// No active snapshots or views are left, nothing is mounted under the test dir.
    pub fn assert_clean(&self) {
        let active: Vec<String> = self
            .snapshotter
            .list()
            .unwrap()
            .into_iter()
            .filter(|i| i.kind != wharf_snapshot::Kind::Committed)
            .map(|i| i.name)
            .collect();
        assert!(active.is_empty(), "snapshots left behind: {active:?}");
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = self.dir.path().to_string_lossy().to_string();
        let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&root)).collect();
        assert!(left.is_empty(), "mounts left behind: {left:?}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Nothing may stay mounted in the temp dir, whatever the test did.
        if let Ok(mounts) = fs::read_to_string("/proc/self/mountinfo") {
            let root = self.dir.path().to_string_lossy().to_string();
            for l in mounts.lines() {
                if let Some(p) = l.split_whitespace().nth(4)
                    && p.starts_with(&root)
                {
                    let _ = wharf_snapshot::unmount(Path::new(p));
                }
            }
        }
    }
}

/// A build's result and events.
pub struct Outcome {
    pub result: Result<BuildResult, wharf_build::BuildError>,
    pub events: Vec<BuildEvent>,
}

impl Outcome {
    #[track_caller]
    pub fn ok(&self) -> Digest {
        match &self.result {
            Ok(r) => r.image.clone(),
            Err(e) => panic!("build failed: {e}\n--- output ---\n{}", self.text()),
        }
    }

    #[track_caller]
    pub fn err(&self) -> String {
        match &self.result {
            Ok(_) => panic!("build succeeded unexpectedly\n{}", self.text()),
            Err(e) => e.to_string(),
        }
    }

    /// The stream text as the CLI would print it.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for e in &self.events {
            for m in wharf_build::render(e) {
                if let Some(t) = m.stream {
                    s.push_str(&t);
                }
            }
        }
        s
    }

    pub fn cache_hits(&self) -> usize {
        self.events.iter().filter(|e| matches!(e, BuildEvent::UsingCache)).count()
    }
}

/// A context tar from (name, content); names ending in `/` are directories; a content of
/// `->target` makes a symlink.
pub fn context_tar(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        if name.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_cksum();
            b.append_data(&mut h, name, std::io::empty()).unwrap();
        } else if let Some(t) = content.strip_prefix("->") {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            b.append_link(&mut h, name, t).unwrap();
        } else {
            h.set_mode(if name.ends_with(".sh") { 0o755 } else { 0o644 });
            h.set_size(content.len() as u64);
            h.set_cksum();
            b.append_data(&mut h, name, content.as_bytes()).unwrap();
        }
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn opts() -> BuildOptions {
    BuildOptions::default()
}
