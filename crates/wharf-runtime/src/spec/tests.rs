//! Spec-level tests: generated documents against what Docker 28 writes for the same options
//! (expected fragments written from moby's defaults: `oci/defaults.go`, `daemon/oci_linux.go`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};
use wharf_types::{Classify, ErrorKind};

use super::caps::{DEFAULT_CAPABILITIES, KNOWN_CAPABILITIES, held_capabilities};
use super::host::CgroupMode;
use super::*;

const ID: &str = "4f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

struct Fixture {
    rootfs: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let rootfs = tempfile::tempdir().unwrap();
        std::fs::create_dir(rootfs.path().join("etc")).unwrap();
        std::fs::write(
            rootfs.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n\
             www:x:33:33::/var/www:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            rootfs.path().join("etc/group"),
            "root:x:0:\nwww-data:x:33:\nstaff:x:50:www\nnogroup:x:65534:\n",
        )
        .unwrap();
        Fixture { rootfs }
    }

    fn opts(&self) -> SpecOptions {
        SpecOptions {
            id: ID.into(),
            rootfs: self.rootfs.path().to_path_buf(),
            image: ImageConfig { cmd: vec!["sh".into()], ..Default::default() },
            hostname: ID[..12].into(),
            network: NetworkMode::Private { netns: Some("/run/wharf/netns/c1".into()) },
            ..Default::default()
        }
    }
}

fn doc(opts: &SpecOptions) -> Value {
    generate_document(opts, &HostInfo::fixture()).unwrap()
}

fn err(opts: &SpecOptions) -> SpecError {
    generate_document(opts, &HostInfo::fixture()).unwrap_err()
}

fn mount<'a>(doc: &'a Value, dest: &str) -> Option<&'a Value> {
    doc["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == dest)
}

fn destinations(doc: &Value) -> Vec<String> {
    doc["mounts"].as_array().unwrap().iter().map(|m| m["destination"].as_str().unwrap().to_owned()).collect()
}

fn namespaces(doc: &Value) -> Vec<Value> {
    doc["linux"]["namespaces"].as_array().unwrap().clone()
}

fn default_mounts_json() -> Value {
    json!([
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]}
    ])
}

#[test]
fn default_container_matches_docker() {
    let f = Fixture::new();
    let mut d = doc(&f.opts());
    let seccomp = d["linux"].as_object_mut().unwrap().remove("seccomp").unwrap();
    assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(seccomp["defaultErrnoRet"], 1);
    let caps: Vec<&str> = DEFAULT_CAPABILITIES.to_vec();
    let expected = json!({
        "ociVersion": "1.2.1",
        "process": {
            "user": {"uid": 0, "gid": 0, "additionalGids": [0]},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOSTNAME=4f1e2d3c4b5a"
            ],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "oomScoreAdj": 0
        },
        "root": {"path": f.rootfs.path()},
        "hostname": "4f1e2d3c4b5a",
        "mounts": default_mounts_json(),
        "linux": {
            "sysctl": {
                "net.ipv4.ip_unprivileged_port_start": "0",
                "net.ipv4.ping_group_range": "0 2147483647"
            },
            "resources": {
                "devices": [
                    {"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
                    {"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
                ],
                "memory": {"disableOOMKiller": false},
                "blockIO": {}
            },
            "cgroupsPath": format!("/docker/{ID}"),
            "namespaces": [
                {"type": "mount"},
                {"type": "network", "path": "/run/wharf/netns/c1"},
                {"type": "uts"},
                {"type": "pid"},
                {"type": "ipc"}
            ],
            "maskedPaths": [
                "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    assert_eq!(d, expected);
}

/// Capabilities are sets in `oci_spec`; compare them sorted.
fn sort_caps(v: &mut Value) {
    if let Some(caps) = v.pointer_mut("/process/capabilities").and_then(Value::as_object_mut) {
        for set in caps.values_mut() {
            if let Some(list) = set.as_array_mut() {
                list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
}

#[test]
fn oci_spec_conversion_keeps_everything() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.tty = true;
    opts.console_size = Some([40, 120]);
    opts.ulimits = vec![parse::parse_ulimit("nofile=1024:2048").unwrap()];
    opts.resources.pids_limit = Some(64);
    opts.resources.nano_cpus = 500_000_000;
    opts.devices = vec![parse::parse_device("/dev/null:/dev/mynull:rw").unwrap()];
    opts.readonly_rootfs = true;
    opts.domainname = "example.org".into();
    opts.annotations.insert("org.example/a".into(), "b".into());
    let host = HostInfo::fixture();
    let mut d = generate_document(&opts, &host).unwrap();
    let spec = generate_on(&opts, &host).unwrap();
    let mut back = serde_json::to_value(&spec).unwrap();
    sort_caps(&mut d);
    sort_caps(&mut back);
    assert_eq!(back, d);
}

#[test]
fn tty_and_console_size() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.tty = true;
    opts.console_size = Some([24, 80]);
    let d = doc(&opts);
    assert_eq!(d["process"]["terminal"], true);
    assert_eq!(d["process"]["consoleSize"], json!({"height": 24, "width": 80}));
    assert_eq!(d["process"]["env"][2], "TERM=xterm");
    opts.tty = false;
    let d = doc(&opts);
    assert!(d["process"].get("terminal").is_none());
    assert!(d["process"].get("consoleSize").is_none());
    assert_eq!(d["process"]["env"].as_array().unwrap().len(), 2);
}

#[test]
fn env_merges_like_docker() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.image.env = vec!["PATH=/opt/bin:/bin".into(), "LANG=C".into(), "KEEP=image".into()];
    opts.env = vec!["KEEP=user".into(), "HOSTNAME=custom".into(), "EXTRA=1".into()];
    let d = doc(&opts);
    assert_eq!(d["process"]["env"], json!(["PATH=/opt/bin:/bin", "HOSTNAME=custom", "KEEP=user", "EXTRA=1", "LANG=C"]));
    // A bare name removes a default.
    opts.env = vec!["PATH".into()];
    opts.image.env.clear();
    let d = doc(&opts);
    assert_eq!(d["process"]["env"], json!(["HOSTNAME=4f1e2d3c4b5a"]));
    opts.env = vec!["=x".into()];
    assert_eq!(err(&opts).to_string(), "invalid environment variable: =x");
}

#[test]
fn entrypoint_and_cmd_merge_like_docker() {
    let f = Fixture::new();
    let mut opts = f.opts();
    let args = |opts: &SpecOptions| doc(opts)["process"]["args"].clone();
    opts.image = ImageConfig {
        entrypoint: vec!["/entry.sh".into(), "-x".into()],
        cmd: vec!["serve".into()],
        ..Default::default()
    };
    assert_eq!(args(&opts), json!(["/entry.sh", "-x", "serve"]));
    opts.cmd = Some(vec!["run".into(), "fast".into()]);
    assert_eq!(args(&opts), json!(["/entry.sh", "-x", "run", "fast"]));
    opts.entrypoint = Some(vec!["/bin/echo".into()]);
    opts.cmd = None;
    // A new entrypoint does not pick up the image's command.
    assert_eq!(args(&opts), json!(["/bin/echo"]));
    opts.entrypoint = Some(vec!["".into()]);
    opts.cmd = Some(vec!["ls".into(), "-l".into()]);
    assert_eq!(args(&opts), json!(["ls", "-l"]));
    opts.cmd = None;
    assert_eq!(err(&opts).to_string(), "no command specified");
    let merged = merge_config(&SpecOptions {
        image: ImageConfig {
            cmd: vec!["sh".into()],
            stop_signal: "SIGQUIT".into(),
            working_dir: "/srv/./app/".into(),
            user: "www".into(),
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        (merged.path.as_str(), merged.stop_signal.as_str(), merged.working_dir.as_str(), merged.user.as_str()),
        ("sh", "SIGQUIT", "/srv/app", "www")
    );
}

#[test]
fn working_dir_and_user() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.working_dir = "/var//www/".into();
    opts.user = "www".into();
    opts.group_add = vec!["nogroup".into(), "4000".into()];
    let d = doc(&opts);
    assert_eq!(d["process"]["cwd"], "/var/www");
    assert_eq!(d["process"]["user"], json!({"uid": 33, "gid": 33, "additionalGids": [33, 50, 65534, 4000]}));
    opts.user = "www:nogroup".into();
    opts.group_add.clear();
    assert_eq!(doc(&opts)["process"]["user"], json!({"uid": 33, "gid": 65534, "additionalGids": [65534]}));
    opts.user = "ghost".into();
    let e = err(&opts);
    assert_eq!(e.to_string(), "unable to find user ghost: no matching entries in passwd file");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    opts.user.clear();
    opts.working_dir = "relative/dir".into();
    assert_eq!(
        err(&opts).to_string(),
        "the working directory 'relative/dir' is invalid, it needs to be an absolute path"
    );
}

#[test]
fn init_is_bound_and_prepended() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.init = Some("/usr/libexec/wharf/tini".into());
    opts.image.entrypoint = vec!["/entry".into()];
    let d = doc(&opts);
    assert_eq!(d["process"]["args"], json!(["/sbin/docker-init", "--", "/entry", "sh"]));
    assert_eq!(
        mount(&d, "/sbin/docker-init").unwrap(),
        &json!({"destination": "/sbin/docker-init", "type": "bind",
                "source": "/usr/libexec/wharf/tini", "options": ["bind", "ro"]})
    );
    // Right after the defaults, before user mounts.
    assert_eq!(destinations(&d)[7], "/sbin/docker-init");
    // Another process is pid 1 already: no init.
    opts.pid = PidMode::Host;
    let d = doc(&opts);
    assert_eq!(d["process"]["args"], json!(["/entry", "sh"]));
    assert!(mount(&d, "/sbin/docker-init").is_none());
}

#[test]
fn host_and_shared_namespaces() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.network = NetworkMode::Host;
    opts.pid = PidMode::Host;
    opts.ipc = IpcMode::Host;
    opts.uts = UtsMode::Host;
    let d = doc(&opts);
    assert_eq!(namespaces(&d), vec![json!({"type": "mount"})]);
    assert!(d.get("hostname").is_none());
    // HOSTNAME still comes from the config.
    assert_eq!(d["process"]["env"][1], "HOSTNAME=4f1e2d3c4b5a");
    // No network sysctls outside a private netns.
    assert!(d["linux"].get("sysctl").is_none());
    // --ipc host: the host's /dev/shm is bound in place of the tmpfs.
    assert_eq!(
        mount(&d, "/dev/shm").unwrap(),
        &json!({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                "options": ["rbind", "rprivate"]})
    );

    opts.network = NetworkMode::Container { netns: "/proc/42/ns/net".into() };
    opts.pid = PidMode::Container { ns: "/proc/42/ns/pid".into() };
    opts.ipc = IpcMode::Container {
        ns: "/proc/42/ns/ipc".into(),
        shm_path: Some("/var/lib/wharf/containers/x/mounts/shm".into()),
    };
    opts.uts = UtsMode::Private;
    let d = doc(&opts);
    assert_eq!(
        namespaces(&d),
        vec![
            json!({"type": "mount"}),
            json!({"type": "network", "path": "/proc/42/ns/net"}),
            json!({"type": "uts"}),
            json!({"type": "pid", "path": "/proc/42/ns/pid"}),
            json!({"type": "ipc", "path": "/proc/42/ns/ipc"}),
        ]
    );
    assert!(d["linux"].get("sysctl").is_none());
    assert_eq!(mount(&d, "/dev/shm").unwrap()["source"], "/var/lib/wharf/containers/x/mounts/shm");

    opts.ipc = IpcMode::None;
    opts.network = NetworkMode::Private { netns: None };
    let d = doc(&opts);
    assert!(mount(&d, "/dev/shm").is_none());
    assert_eq!(namespaces(&d)[1], json!({"type": "network"}));
    assert_eq!(namespaces(&d)[4], json!({"type": "ipc"}));
    // `none` is a private netns: Docker still sets its sysctls.
    assert!(d["linux"]["sysctl"].get("net.ipv4.ping_group_range").is_some());
}

#[test]
fn cgroup_namespace_defaults_follow_the_host() {
    let f = Fixture::new();
    let opts = f.opts();
    let mut host = HostInfo::fixture();
    let has_cgroupns = |host: &HostInfo, opts: &SpecOptions| {
        generate_document(opts, host).unwrap()["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "cgroup"}))
    };
    assert!(!has_cgroupns(&host, &opts));
    host.cgroup_mode = CgroupMode::Unified;
    host.oom_kill_disable = false;
    assert!(has_cgroupns(&host, &opts));
    let mut privileged = opts.clone();
    privileged.privileged = true;
    assert!(has_cgroupns(&host, &privileged));
    let mut explicit = opts.clone();
    explicit.cgroupns = Some(CgroupnsMode::Host);
    assert!(!has_cgroupns(&host, &explicit));
    host.cgroup_mode = CgroupMode::Hybrid;
    explicit.cgroupns = Some(CgroupnsMode::Private);
    assert!(has_cgroupns(&host, &explicit));
}

#[test]
fn shm_size() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.shm_size = parse::parse_ram_bytes("1g").unwrap();
    let d = doc(&opts);
    assert_eq!(
        mount(&d, "/dev/shm").unwrap()["options"],
        json!(["nosuid", "noexec", "nodev", "mode=1777", "size=1073741824"])
    );
    opts.shm_size = -1;
    assert_eq!(err(&opts).to_string(), "SHM size can not be less than 0");
}

fn bind(source: &str, dest: &str, writable: bool) -> UserMount {
    UserMount { kind: MountKind::Bind, source: source.into(), destination: dest.into(), writable, ..Default::default() }
}

#[test]
fn user_mounts_are_sorted_and_shaped_like_dockers() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.rro_supported = true;
    opts.mounts = vec![
        bind("/srv/a/b", "/data/deep/er", true),
        UserMount {
            kind: MountKind::Volume,
            source: "/var/lib/wharf/volumes/v/_data".into(),
            destination: "/data".into(),
            writable: true,
            ..Default::default()
        },
        bind("/srv/conf", "/etc/app", false),
        UserMount { readonly_non_recursive: true, ..bind("/srv/ro", "/ro", false) },
        UserMount { non_recursive: true, propagation: Some("private".into()), ..bind("/", "/host", true) },
    ];
    opts.tmpfs.insert("/run".into(), "size=64m,exec".into());
    opts.etc_files = EtcFiles {
        resolv_conf: Some("/c/resolv.conf".into()),
        hostname: Some("/c/hostname".into()),
        hosts: Some("/c/hosts".into()),
    };
    let d = doc(&opts);
    let user_part: Vec<Value> = d["mounts"].as_array().unwrap()[7..].to_vec();
    assert_eq!(
        Value::Array(user_part),
        json!([
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "rprivate", "size=64m", "exec"]},
            {"destination": "/data", "type": "bind", "source": "/var/lib/wharf/volumes/v/_data",
             "options": ["rbind"]},
            {"destination": "/ro", "type": "bind", "source": "/srv/ro", "options": ["rbind", "ro", "rprivate"]},
            {"destination": "/host", "type": "bind", "source": "/", "options": ["bind", "private"]},
            {"destination": "/etc/app", "type": "bind", "source": "/srv/conf",
             "options": ["rbind", "rro", "rprivate"]},
            {"destination": "/etc/resolv.conf", "type": "bind", "source": "/c/resolv.conf",
             "options": ["rbind", "rprivate"]},
            {"destination": "/etc/hostname", "type": "bind", "source": "/c/hostname",
             "options": ["rbind", "rprivate"]},
            {"destination": "/etc/hosts", "type": "bind", "source": "/c/hosts",
             "options": ["rbind", "rprivate"]},
            {"destination": "/data/deep/er", "type": "bind", "source": "/srv/a/b",
             "options": ["rbind", "rprivate"]}
        ])
    );
    assert!(d["linux"].get("rootfsPropagation").is_none());
    // Without rro support read-only binds are plain `ro`.
    opts.rro_supported = false;
    let d = doc(&opts);
    assert_eq!(mount(&d, "/etc/app").unwrap()["options"], json!(["rbind", "ro", "rprivate"]));
}

#[test]
fn user_mounts_replace_defaults_and_duplicates_fail() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.tmpfs.insert("/dev/shm".into(), "size=1g".into());
    opts.mounts = vec![bind("/host/sys", "/sys", true)];
    let d = doc(&opts);
    assert_eq!(mount(&d, "/dev/shm").unwrap()["source"], "tmpfs");
    assert_eq!(mount(&d, "/dev/shm").unwrap()["options"], json!(["noexec", "nosuid", "nodev", "rprivate", "size=1g"]));
    assert_eq!(mount(&d, "/sys").unwrap()["source"], "/host/sys");
    assert_eq!(destinations(&d).iter().filter(|m| *m == "/sys").count(), 1);

    // A user /dev hides every default under /dev.
    opts.tmpfs.clear();
    opts.mounts = vec![bind("/dev", "/dev", true)];
    let d = doc(&opts);
    assert_eq!(destinations(&d), ["/proc", "/sys", "/sys/fs/cgroup", "/dev"]);

    opts.mounts = vec![bind("/a", "/data", true), bind("/b", "/data/", false)];
    let e = err(&opts);
    assert_eq!(e.to_string(), "Duplicate mount point: /data");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    opts.mounts = vec![bind("/a", "/", true)];
    assert_eq!(err(&opts).to_string(), "invalid specification: destination can't be '/'");
    opts.mounts.clear();
    opts.tmpfs.insert("rel".into(), String::new());
    assert_eq!(err(&opts).to_string(), "invalid mount path: 'rel' mount path must be absolute");
    opts.tmpfs.clear();
    opts.tmpfs.insert("/t".into(), "bogus".into());
    assert_eq!(err(&opts).to_string(), "invalid tmpfs option [\"bogus\"]");
}

#[test]
fn user_mount_over_a_network_file_replaces_it() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.etc_files.hosts = Some("/c/hosts".into());
    opts.mounts = vec![bind("/srv/my-hosts", "/etc/hosts", false)];
    let d = doc(&opts);
    assert_eq!(
        mount(&d, "/etc/hosts").unwrap(),
        &json!({"destination": "/etc/hosts", "type": "bind", "source": "/srv/my-hosts",
                "options": ["rbind", "ro", "rprivate"]})
    );
    assert_eq!(destinations(&d).iter().filter(|m| *m == "/etc/hosts").count(), 1);
}

#[test]
fn readonly_rootfs() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.readonly_rootfs = true;
    opts.etc_files.hosts = Some("/c/hosts".into());
    opts.mounts = vec![bind("/srv", "/srv", true)];
    let d = doc(&opts);
    assert_eq!(d["root"], json!({"path": f.rootfs.path(), "readonly": true}));
    assert_eq!(mount(&d, "/etc/hosts").unwrap()["options"], json!(["rbind", "ro", "rprivate"]));
    assert_eq!(mount(&d, "/srv").unwrap()["options"], json!(["rbind", "rprivate"]));
    assert_eq!(mount(&d, "/proc").unwrap()["options"], json!(["nosuid", "noexec", "nodev"]));
    assert_eq!(mount(&d, "/sys/fs/cgroup").unwrap()["options"], json!(["ro", "nosuid", "noexec", "nodev"]));
}

#[test]
fn privileged_matches_docker() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.privileged = true;
    opts.devices = vec![parse::parse_device("/dev/null:/dev/other-null").unwrap()];
    let mut host = HostInfo::fixture();
    host.capabilities.retain(|c| c != "CAP_SYS_RESOURCE");
    let d = generate_document(&opts, &host).unwrap();
    assert_eq!(d["process"]["capabilities"]["bounding"], json!(host.capabilities));
    assert_eq!(d["process"]["capabilities"]["effective"], json!(host.capabilities));
    assert!(d["process"]["capabilities"].get("inheritable").is_none());
    assert!(d["linux"].get("seccomp").is_none());
    assert!(d["linux"].get("maskedPaths").is_none());
    assert!(d["linux"].get("readonlyPaths").is_none());
    assert_eq!(mount(&d, "/sys").unwrap()["options"], json!(["nosuid", "noexec", "nodev"]));
    assert_eq!(mount(&d, "/sys/fs/cgroup").unwrap()["options"], json!(["nosuid", "noexec", "nodev"]));
    assert_eq!(d["linux"]["resources"]["devices"], json!([{"allow": true, "access": "rwm"}]));
    let devices = d["linux"]["devices"].as_array().unwrap();
    assert!(devices.iter().any(|d| d["path"] == "/dev/null"));
    assert!(devices.iter().any(|d| d["path"] == "/dev/other-null"));
    // A custom seccomp profile still applies when privileged.
    opts.security_opt = vec![r#"seccomp={"defaultAction":"SCMP_ACT_LOG"}"#.into()];
    let d = generate_document(&opts, &host).unwrap();
    assert_eq!(d["linux"]["seccomp"], json!({"defaultAction": "SCMP_ACT_LOG"}));
}

#[test]
fn privileged_gets_exactly_the_daemons_capabilities() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.privileged = true;
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = caps::status_mask(&status, "CapBnd").unwrap();
    let expected: Vec<String> = KNOWN_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| bnd >> bit & 1 == 1)
        .map(|(_, c)| c.to_string())
        .collect();
    assert_eq!(held_capabilities(&status), expected, "CapEff differs from CapBnd here");
    let spec = generate(&opts).unwrap();
    let process = spec.process().as_ref().unwrap();
    let bounding: std::collections::BTreeSet<String> = process
        .capabilities()
        .as_ref()
        .unwrap()
        .bounding()
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap().as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bounding, expected.iter().cloned().collect());
}

#[test]
fn capability_flags() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.cap_add = vec!["net_admin".into(), "CAP_SYS_PTRACE".into()];
    opts.cap_drop = vec!["mknod".into()];
    let d = doc(&opts);
    let bounding = d["process"]["capabilities"]["bounding"].as_array().unwrap();
    assert_eq!(bounding.len(), 15);
    assert!(bounding.contains(&json!("CAP_NET_ADMIN")));
    assert!(!bounding.contains(&json!("CAP_MKNOD")));
    opts.cap_add = vec!["CAP_FOO".into()];
    let e = err(&opts);
    assert_eq!(e.to_string(), "invalid CapAdd: unknown capability: \"CAP_FOO\"");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    opts.cap_add.clear();
    opts.cap_drop = vec!["bogus".into()];
    assert_eq!(err(&opts).to_string(), "invalid CapDrop: unknown capability: \"CAP_BOGUS\"");
    opts.cap_drop = vec!["all".into()];
    opts.cap_add = vec!["chown".into()];
    assert_eq!(d_caps(&doc(&opts)), ["CAP_CHOWN"]);
    let mut host = HostInfo::fixture();
    host.capabilities.retain(|c| c != "CAP_SYS_RESOURCE");
    opts.cap_add = vec!["SYS_RESOURCE".into()];
    opts.cap_drop.clear();
    assert_eq!(
        generate_document(&opts, &host).unwrap_err().to_string(),
        "invalid CapAdd: capability not supported by your kernel or not available in the current environment: \"CAP_SYS_RESOURCE\""
    );
}

fn d_caps(d: &Value) -> Vec<String> {
    d["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn seccomp_options() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.security_opt = vec!["seccomp=unconfined".into()];
    assert!(doc(&opts)["linux"].get("seccomp").is_none());
    opts.security_opt = vec!["seccomp=builtin".into()];
    assert_eq!(doc(&opts)["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    opts.security_opt = vec![
        r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#
            .into(),
    ];
    assert_eq!(
        doc(&opts)["linux"]["seccomp"],
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})
    );
    opts.security_opt = vec!["seccomp={not json".into()];
    let e = err(&opts);
    assert!(e.to_string().starts_with("Decoding seccomp profile failed: "));
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    // With CAP_SYS_ADMIN added, mount is allowed by the default profile.
    opts.security_opt.clear();
    opts.cap_add = vec!["SYS_ADMIN".into()];
    let d = doc(&opts);
    let rules = d["linux"]["seccomp"]["syscalls"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["action"] == "SCMP_ACT_ALLOW"
        && r.get("args").is_none()
        && r["names"].as_array().unwrap().contains(&json!("mount"))));
}

#[test]
fn other_security_options() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.security_opt = vec!["no-new-privileges".into(), "apparmor=my-profile".into()];
    let d = doc(&opts);
    assert_eq!(d["process"]["noNewPrivileges"], true);
    assert_eq!(d["process"]["apparmorProfile"], "my-profile");
    opts.security_opt = vec!["no-new-privileges=false".into()];
    opts.no_new_privileges = true;
    assert!(doc(&opts)["process"].get("noNewPrivileges").is_none());
    opts.security_opt.clear();
    assert_eq!(doc(&opts)["process"]["noNewPrivileges"], true);
    opts.selinux_label = Some("system_u:system_r:container_t:s0:c1,c2".into());
    opts.mount_label = Some("system_u:object_r:container_file_t:s0:c1,c2".into());
    let d = doc(&opts);
    assert_eq!(d["process"]["selinuxLabel"], "system_u:system_r:container_t:s0:c1,c2");
    assert_eq!(d["linux"]["mountLabel"], "system_u:object_r:container_file_t:s0:c1,c2");
    opts.security_opt = vec!["writable-cgroups=true".into()];
    assert_eq!(mount(&doc(&opts), "/sys/fs/cgroup").unwrap()["options"], json!(["nosuid", "noexec", "nodev"]));
    opts.security_opt = vec!["bogus=1".into()];
    let e = err(&opts);
    assert_eq!(e.to_string(), "invalid --security-opt 2: \"bogus=1\"");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn masked_and_readonly_path_overrides() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.masked_paths = Some(vec![]);
    opts.readonly_paths = Some(vec![]);
    let d = doc(&opts);
    assert!(d["linux"].get("maskedPaths").is_none());
    assert!(d["linux"].get("readonlyPaths").is_none());
    opts.masked_paths = Some(vec!["/proc/foo".into()]);
    assert_eq!(doc(&opts)["linux"]["maskedPaths"], json!(["/proc/foo"]));
    let mut host = HostInfo::fixture();
    host.thermal_throttle_paths = vec!["/sys/devices/system/cpu/cpu0/thermal_throttle".into()];
    opts.masked_paths = None;
    let d = generate_document(&opts, &host).unwrap();
    let masked = d["linux"]["maskedPaths"].as_array().unwrap();
    assert_eq!(masked.len(), 13);
    assert_eq!(masked[12], "/sys/devices/system/cpu/cpu0/thermal_throttle");
}

#[test]
fn sysctls_are_validated_like_runc() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.sysctls = BTreeMap::from([
        ("net.ipv4.ip_forward".to_owned(), "1".to_owned()),
        ("kernel.shmmax".to_owned(), "1000000".to_owned()),
        ("net.ipv4.ping_group_range".to_owned(), "1 1".to_owned()),
    ]);
    opts.domainname = "corp.example".into();
    let d = doc(&opts);
    assert_eq!(
        d["linux"]["sysctl"],
        json!({
            "kernel.domainname": "corp.example",
            "kernel.shmmax": "1000000",
            "net.ipv4.ip_forward": "1",
            "net.ipv4.ip_unprivileged_port_start": "0",
            "net.ipv4.ping_group_range": "1 1"
        })
    );
    let check = |opts: &SpecOptions, key: &str| {
        let mut opts = opts.clone();
        opts.domainname.clear();
        opts.sysctls = BTreeMap::from([(key.to_owned(), "1".to_owned())]);
        let e = err(&opts);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        e.to_string()
    };
    assert_eq!(check(&opts, "kernel.panic"), "sysctl \"kernel.panic\" is not in a separate kernel namespace");
    assert_eq!(
        check(&opts, "kernel.hostname"),
        "sysctl \"kernel.hostname\" is not allowed as it conflicts with the OCI \"hostname\" field"
    );
    assert_eq!(
        check(&opts, "user.max_user_namespaces"),
        "setting ucounts without a user namespace not allowed: user.max_user_namespaces"
    );
    let mut host_net = opts.clone();
    host_net.network = NetworkMode::Host;
    assert_eq!(
        check(&host_net, "net.core.somaxconn"),
        "sysctl \"net.core.somaxconn\" not allowed in host network namespace"
    );
    let mut host_ipc = opts.clone();
    host_ipc.ipc = IpcMode::Host;
    assert_eq!(
        check(&host_ipc, "fs.mqueue.msg_max"),
        "sysctl \"fs.mqueue.msg_max\" is not allowed in the hosts ipc namespace"
    );
    let mut host_uts = opts.clone();
    host_uts.uts = UtsMode::Host;
    assert_eq!(
        check(&host_uts, "kernel.domainname"),
        "sysctl \"kernel.domainname\" is not in a separate kernel namespace"
    );
}

#[test]
fn ulimits_become_rlimits() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.ulimits = vec![parse::parse_ulimit("nofile=1024:2048").unwrap(), parse::parse_ulimit("core=-1").unwrap()];
    opts.default_ulimits =
        vec![parse::parse_ulimit("nproc=512").unwrap(), parse::parse_ulimit("nofile=65535").unwrap()];
    assert_eq!(
        doc(&opts)["process"]["rlimits"],
        json!([
            {"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024},
            {"type": "RLIMIT_CORE", "hard": u64::MAX, "soft": u64::MAX},
            {"type": "RLIMIT_NPROC", "hard": 512, "soft": 512}
        ])
    );
}

#[test]
fn devices_and_rules() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.devices = vec![parse::parse_device("/dev/zero:/dev/z:r").unwrap()];
    opts.device_cgroup_rules = vec!["c 42:* rmw".into()];
    let d = doc(&opts);
    let dev = &d["linux"]["devices"][0];
    assert_eq!(
        (dev["path"].clone(), dev["type"].clone(), dev["major"].clone(), dev["minor"].clone()),
        (json!("/dev/z"), json!("c"), json!(1), json!(5))
    );
    let rules = d["linux"]["resources"]["devices"].as_array().unwrap();
    assert_eq!(rules.len(), 10);
    assert_eq!(rules[8], json!({"allow": true, "type": "c", "major": 1, "minor": 5, "access": "r"}));
    assert_eq!(rules[9], json!({"allow": true, "type": "c", "major": 42, "minor": -1, "access": "rmw"}));
    opts.device_cgroup_rules = vec!["c 42 rmw".into()];
    assert_eq!(err(&opts).to_string(), "invalid device cgroup rule format: 'c 42 rmw'");
    opts.device_cgroup_rules.clear();
    opts.devices = vec![parse::parse_device("/dev/does-not-exist").unwrap()];
    let e = err(&opts);
    assert!(
        e.to_string()
            .starts_with("error gathering device information while adding custom device \"/dev/does-not-exist\"")
    );
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn resources_reach_the_spec() {
    let f = Fixture::new();
    let mut opts = f.opts();
    opts.resources = Resources {
        memory: parse::parse_ram_bytes("512m").unwrap(),
        memory_swap: parse::parse_memory_swap("1g").unwrap(),
        nano_cpus: parse::parse_cpus("1.5").unwrap(),
        cpuset_cpus: "1".into(),
        pids_limit: Some(200),
        blkio_weight: 500,
        oom_kill_disable: Some(true),
        ..Default::default()
    };
    opts.oom_score_adj = 500;
    let d = doc(&opts);
    let r = &d["linux"]["resources"];
    assert_eq!(r["memory"], json!({"limit": 536870912, "swap": 1073741824, "disableOOMKiller": true}));
    assert_eq!(r["cpu"], json!({"quota": 150000, "period": 100000, "cpus": "1"}));
    assert_eq!(r["pids"], json!({"limit": 200}));
    assert_eq!(r["blockIO"], json!({"weight": 500}));
    assert_eq!(d["process"]["oomScoreAdj"], 500);

    opts.resources.memory = parse::parse_ram_bytes("4m").unwrap();
    assert_eq!(err(&opts).to_string(), "Minimum memory limit allowed is 6MB");
    opts.resources.memory = parse::parse_ram_bytes("2g").unwrap();
    let e = err(&opts);
    assert_eq!(e.to_string(), "Minimum memoryswap limit should be larger than memory limit, see usage");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    opts.resources.memory = 0;
    opts.resources.memory_swap = 0;
    opts.resources.cpu_quota = 50_000;
    assert_eq!(err(&opts).to_string(), "Conflicting options: Nano CPUs and CPU Quota cannot both be set");
    opts.resources.cpu_quota = 0;
    opts.resources.cpuset_cpus = "x".into();
    assert_eq!(err(&opts).to_string(), "Invalid value x for cpuset cpus: invalid format: x");
    opts.resources.cpuset_cpus.clear();
    opts.oom_score_adj = 1001;
    assert_eq!(err(&opts).to_string(), "Invalid value 1001, range for oom score adj is [-1000, 1000]");
}

#[test]
fn cgroups_paths() {
    let f = Fixture::new();
    let mut opts = f.opts();
    let path = |opts: &SpecOptions| doc(opts)["linux"]["cgroupsPath"].as_str().unwrap().to_owned();
    assert_eq!(path(&opts), format!("/docker/{ID}"));
    opts.cgroup_parent = "/ci/jobs".into();
    assert_eq!(path(&opts), format!("/ci/jobs/{ID}"));
    opts.cgroup_driver = CgroupDriver::Systemd;
    opts.cgroup_parent.clear();
    assert_eq!(path(&opts), format!("system.slice:docker:{ID}"));
    opts.cgroup_parent = "ci.slice".into();
    assert_eq!(path(&opts), format!("ci.slice:docker:{ID}"));
    opts.cgroup_parent = "ci".into();
    assert_eq!(
        err(&opts).to_string(),
        "cgroup-parent for systemd cgroup should be a valid slice named as \"xxx.slice\""
    );
    opts.cgroups_path = Some("/custom/path".into());
    opts.cgroup_parent.clear();
    assert_eq!(path(&opts), "/custom/path");
}

#[test]
fn tmpfs_data_matches_dockers_conversion() {
    assert_eq!(tmpfs_data(false, Some(0o1777), Some(64 << 20)), "mode=1777,size=64m");
    assert_eq!(tmpfs_data(true, None, Some(3 << 30)), "ro,size=3g");
    assert_eq!(tmpfs_data(false, None, Some(1000)), "size=1000");
    assert_eq!(tmpfs_data(false, None, None), "");
}

#[test]
fn tmpfs_option_merging() {
    let m = |v: &[&str]| mounts::merge_tmpfs_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        m(&["noexec", "nosuid", "nodev", "rprivate", "exec", "size=1m", "size=2m", "shared"]).unwrap(),
        ["nosuid", "nodev", "exec", "size=2m", "shared"]
    );
    assert_eq!(m(&["defaults", "ro"]).unwrap(), ["ro"]);
    assert_eq!(m(&["foo=bar"]).unwrap_err().to_string(), "invalid tmpfs option [\"foo\" \"bar\"]");
}

#[test]
fn every_user_error_is_invalid_argument() {
    let errors = [
        SpecError::UnknownCapability("CAP_X".into()),
        SpecError::InvalidUlimit("x".into()),
        SpecError::InvalidDevice("x".into()),
        SpecError::InvalidSysctl("x".into()),
        SpecError::InvalidResources("x".into()),
        SpecError::InvalidMount("x".into()),
        SpecError::ResolveUser("x".into()),
    ];
    assert!(errors.iter().all(|e| e.kind() == ErrorKind::InvalidArgument));
    let internal =
        SpecError::ReadRootfsFile { path: PathBuf::from("/etc/passwd"), source: std::io::Error::other("eio") };
    assert_eq!(internal.kind(), ErrorKind::Internal);
}
