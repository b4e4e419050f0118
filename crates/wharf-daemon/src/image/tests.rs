//! The image service against real stores in temp dirs: lookups, tags, moby's delete rules with
//! a fake container usage, GC of crash leftovers, save/load round trips, new images from a
//! layer. The native snapshotter is used unless a test needs overlay (root).

use std::io::{Cursor, Read, Write};
use std::sync::Arc;

use wharf_store::Db;
use wharf_types::image::{History, RuntimeConfig};
use wharf_types::{ContainerId, Filters, ImageId};

use super::delete::DeleteRecord;
use super::import::ImportOptions;
use super::layer::{LayerSource, NewImage, Progress};
use super::{ImageService, ImageUsage, ImageUser};
use crate::events::EventBus;

struct Fixture {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    svc: ImageService,
}

fn open(root: &std::path::Path, driver: &str) -> ImageService {
    let db = Arc::new(Db::open(&root.join("wharf.db")).unwrap());
    ImageService::open(root, Some(driver), db, Arc::new(EventBus::new())).unwrap()
}

fn fixture(driver: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let svc = open(&root, driver);
    Fixture { _dir: dir, root, svc }
}

fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn import(svc: &ImageService, files: &[(&str, &[u8])], repo: &str) -> ImageId {
    svc.import(
        Box::new(Cursor::new(layer_tar(files))),
        ImportOptions { repo: repo.to_owned(), source: "-".into(), ..Default::default() },
    )
    .unwrap()
}

fn snapshots(svc: &ImageService) -> Vec<String> {
    svc.snapshotter().list().unwrap().into_iter().map(|i| i.name).collect()
}

fn blob_count(root: &std::path::Path) -> usize {
    std::fs::read_dir(root.join("content/blobs/sha256")).unwrap().count()
}

struct Users(Vec<ImageUser>);

impl ImageUsage for Users {
    fn image_users(&self) -> Vec<ImageUser> {
        self.0.clone()
    }
}

#[test]
fn lookups_follow_dockers_rules() {
    let f = fixture("vfs");
    let id = import(&f.svc, &[("a", b"1")], "busybox");
    let hex = id.hex().to_owned();
    for name in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:latest",
        &hex,
        &hex[..12],
        &format!("sha256:{}", &hex[..8]),
        &id.to_string(),
    ] {
        let r = f.svc.resolve(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.id, id, "{name}");
        assert_eq!(r.top_layer.as_deref(), Some(snapshots(&f.svc)[0].as_str()));
    }
    assert_eq!(f.svc.resolve("busybox").unwrap().reference.unwrap().to_string(), "docker.io/library/busybox:latest");
    let e = f.svc.resolve("nope").unwrap_err();
    assert_eq!(e.message, "No such image: nope:latest");
    assert_eq!(e.kind, wharf_types::ErrorKind::NotFound);
    let e = f.svc.resolve(&"0".repeat(64)).unwrap_err();
    assert_eq!(e.message, format!("No such image: sha256:{}", "0".repeat(64)));
    let e = f.svc.resolve("Busy").unwrap_err();
    assert_eq!(e.kind, wharf_types::ErrorKind::InvalidArgument);
    assert_eq!(f.svc.count().unwrap(), 1);
}

#[test]
fn untag_versus_delete_and_layers_reported() {
    let f = fixture("vfs");
    let id = import(&f.svc, &[("a", b"1")], "one");
    f.svc.tag("one", "two", "v1").unwrap();
    let r = f.svc.delete("two:v1", false, true).unwrap();
    assert_eq!(r, vec![DeleteRecord::Untagged("two:v1".into())]);
    // Two tags in different repositories: deleting by ID needs force.
    f.svc.tag("one", "three", "").unwrap();
    let e = f.svc.delete(&id.hex()[..12], false, true).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
            id.short()
        )
    );
    let r = f.svc.delete(&id.hex()[..12], true, true).unwrap();
    let layer = r.last().cloned();
    assert_eq!(
        &r[..3],
        &[
            DeleteRecord::Untagged("one:latest".into()),
            DeleteRecord::Untagged("three:latest".into()),
            DeleteRecord::Deleted(id.to_string()),
        ]
    );
    assert!(matches!(layer, Some(DeleteRecord::Deleted(d)) if d.starts_with("sha256:") && d != id.to_string()));
    assert!(snapshots(&f.svc).is_empty(), "GC removed the layer");
    assert_eq!(blob_count(&f.root), 0, "GC removed config and layer blobs");
    assert!(f.svc.delete("one", false, true).is_err());
}

#[test]
fn containers_make_conflicts_like_moby() {
    let f = fixture("vfs");
    let id = import(&f.svc, &[("a", b"1")], "bb:1");
    let c = ContainerId::random();
    f.svc.set_usage(Arc::new(Users(vec![ImageUser { container: c.clone(), image: id.clone(), running: false }])));
    let e = f.svc.delete("bb:1", false, true).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "conflict: unable to remove repository reference \"bb:1\" (must force) - container {} is using its referenced image {}",
            c.short(),
            id.short()
        )
    );
    let e = f.svc.delete(id.hex(), false, true).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "conflict: unable to delete {} (must be forced) - image is being used by stopped container {}",
            id.short(),
            c.short()
        )
    );
    f.svc.set_usage(Arc::new(Users(vec![ImageUser { container: c.clone(), image: id.clone(), running: true }])));
    let e = f.svc.delete(id.hex(), true, true).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "conflict: unable to delete {} (cannot be forced) - image is being used by running container {}",
            id.short(),
            c.short()
        )
    );
    // A container's snapshot keeps the layer even when the image is force-removed.
    let top = f.svc.resolve("bb:1").unwrap().top_layer.unwrap();
    f.svc.snapshotter().prepare(&format!("container-{c}"), Some(&top)).unwrap();
    let list = f.svc.list(&Default::default()).unwrap();
    assert_eq!(list[0].containers, 1);
    f.svc.set_usage(Arc::new(Users(vec![ImageUser { container: c.clone(), image: id.clone(), running: false }])));
    let r = f.svc.delete(id.hex(), true, true).unwrap();
    assert_eq!(r.len(), 2, "untag + delete, no layer: the container holds it: {r:?}");
    assert!(snapshots(&f.svc).contains(&top));
    f.svc.snapshotter().remove(&format!("container-{c}")).unwrap();
    f.svc.gc().unwrap();
    assert!(snapshots(&f.svc).is_empty());
}

#[test]
fn held_snapshots_and_blobs_survive_gc() {
    let f = fixture("vfs");
    let id = import(&f.svc, &[("a", b"1")], "x");
    let top = f.svc.resolve("x").unwrap().top_layer.unwrap();
    f.svc.hold("build:1", super::GcRefKind::Snapshot, &top).unwrap();
    f.svc.hold("build:1", super::GcRefKind::Blob, &id.to_string()).unwrap();
    f.svc.delete("x", false, true).unwrap();
    assert_eq!(snapshots(&f.svc), vec![top.clone()]);
    assert_eq!(blob_count(&f.root), 2, "the held config and the layer's blob");
    f.svc.release("build:1").unwrap();
    f.svc.gc().unwrap();
    assert!(snapshots(&f.svc).is_empty());
    assert_eq!(blob_count(&f.root), 0);
}

#[test]
fn gc_at_open_removes_what_a_crash_left() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let svc = open(dir.path(), "vfs");
        let id = import(&svc, &[("a", b"1")], "keep");
        let sn = svc.snapshotter();
        // A layer committed without its metadata, a half unpack, a blob without a row.
        sn.prepare("wharf-tmp-half", None).unwrap();
        let orphan = format!("sha256:{}", "e".repeat(64));
        sn.prepare("x", None).unwrap();
        sn.commit(&orphan, "x").unwrap();
        svc.content.ingest(&b"orphan blob"[..], None, None).unwrap();
        let mut w = svc.content.writer(None, None).unwrap();
        w.write_all(b"half written").unwrap();
        std::mem::forget(w);
        id
    };
    let svc = open(dir.path(), "vfs");
    assert_eq!(snapshots(&svc).len(), 1, "only the image's layer: {:?}", snapshots(&svc));
    assert_eq!(blob_count(dir.path()), 2, "config and layer");
    assert_eq!(std::fs::read_dir(dir.path().join("content/ingest")).unwrap().count(), 0);
    assert_eq!(svc.resolve("keep").unwrap().id, id);
}

fn save(svc: &ImageService, names: &[&str]) -> Vec<u8> {
    let plan = svc.save_plan(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let mut out = Vec::new();
    svc.write_save(&plan, &mut out).unwrap();
    out
}

fn multi_layer(svc: &ImageService) -> ImageId {
    let base = import(svc, &[("etc/one", b"1"), ("keep", b"k")], "");
    let mut id = base;
    for i in 0..4 {
        let data = format!("layer {i}").repeat(1000);
        let tar = layer_tar(&[(&format!("l{i}"), data.as_bytes())]);
        id = svc
            .create_image(NewImage {
                base: Some(id.clone()),
                layer: Some(LayerSource::Writer(Box::new(move |w| w.write_all(&tar)))),
                config: RuntimeConfig { cmd: Some(vec!["sh".into()]), ..Default::default() },
                history: History { created_by: Some(format!("step {i}")), ..Default::default() },
                created: None,
                author: None,
                comment: None,
                platform: None,
                parent: Some(id.clone()),
                tag: None,
            })
            .unwrap();
    }
    svc.tag(id.hex(), "multi", "v1").unwrap();
    id
}

fn save_load_round_trip(driver: &str) {
    let a = fixture(driver);
    let id = multi_layer(&a.svc);
    let history = a.svc.history("multi:v1").unwrap();
    assert_eq!(history.len(), 5);
    assert_eq!(history[0].id, id.to_string());
    assert_eq!(history[0].created_by, "step 3");
    assert_eq!(history[0].tags, vec!["multi:v1".to_owned()]);
    assert!(history[4].id.starts_with("sha256:"), "the chain of parents is local");
    let archive = save(&a.svc, &["multi:v1"]);
    let b = fixture(driver);
    let lines = std::sync::Mutex::new(Vec::new());
    b.svc.load(&mut Cursor::new(archive.clone()), false, &|p| lines.lock().unwrap().push(p)).unwrap();
    let lines = lines.into_inner().unwrap();
    assert!(lines.contains(&Progress::Line("Loaded image: multi:v1".into())));
    assert!(lines.iter().any(|p| matches!(p, Progress::Bytes { action: "Loading layer", .. })));
    let loaded = b.svc.resolve("multi:v1").unwrap();
    assert_eq!(loaded.id, id, "the ID survives save and load");
    assert_eq!(b.svc.inspect("multi:v1").unwrap().row.size, a.svc.inspect("multi:v1").unwrap().row.size);
    // The unpacked tree has every layer.
    let top = loaded.top_layer.unwrap();
    let sn = b.svc.snapshotter();
    sn.view("check", Some(&top)).unwrap();
    // Saving again from the loaded copy gives the same archive.
    assert_eq!(save(&b.svc, &["multi:v1"]), archive);
    sn.remove("check").unwrap();
    // Loading twice is a no-op that reports the same.
    b.svc.load(&mut Cursor::new(archive), true, &|_| {}).unwrap();
    assert_eq!(b.svc.count().unwrap(), 1);
}

#[test]
fn save_load_round_trip_native() {
    save_load_round_trip("vfs");
}

#[test]
fn save_load_round_trip_overlay() {
    if !rustix::process::geteuid().is_root() || !wharf_snapshot::overlay_supported() {
        eprintln!("SKIP save_load_round_trip_overlay: needs root and overlayfs");
        return;
    }
    save_load_round_trip("overlay2");
}

#[test]
fn bad_layers_leave_nothing() {
    let f = fixture("vfs");
    let keep = import(&f.svc, &[("a", b"1")], "keep");
    let before = (snapshots(&f.svc), blob_count(&f.root));
    // `..` climbing out of the layer.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_entry_type(tar::EntryType::Regular);
    h.as_old_mut().name[..9].copy_from_slice(b"../escape");
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let evil = b.into_inner().unwrap();
    let e = f
        .svc
        .import(Box::new(Cursor::new(evil)), ImportOptions { repo: "evil".into(), ..Default::default() })
        .unwrap_err();
    assert!(e.to_string().contains("failed to register layer"), "{e}");
    assert!(wharf_types::EngineError::from(e).message.contains("points outside the root"));
    f.svc.gc().unwrap();
    assert_eq!((snapshots(&f.svc), blob_count(&f.root)), before);
    assert_eq!(f.svc.count().unwrap(), 1);
    assert_eq!(f.svc.resolve("keep").unwrap().id, keep);
}

#[test]
fn prune_and_list_filters() {
    let f = fixture("vfs");
    let tagged = import(&f.svc, &[("a", b"1")], "t");
    let dangling = import(&f.svc, &[("b", b"2")], "");
    let list = f.svc.list(&Default::default()).unwrap();
    assert_eq!(list.len(), 2);
    let only = |json: &str| {
        f.svc
            .list(&super::query::ListOptions { filters: Filters::parse(json).unwrap(), ..Default::default() })
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(only(r#"{"dangling":["true"]}"#), vec![dangling.clone()]);
    assert_eq!(only(r#"{"dangling":["false"]}"#), vec![tagged.clone()]);
    assert_eq!(only(r#"{"reference":["t*"]}"#), vec![tagged.clone()]);
    assert_eq!(only(r#"{"reference":["docker.io/library/t"]}"#), vec![tagged.clone()]);
    assert!(only(r#"{"label":["x"]}"#).is_empty());
    assert!(
        f.svc
            .list(&super::query::ListOptions {
                filters: Filters::parse(r#"{"nope":["x"]}"#).unwrap(),
                ..Default::default()
            })
            .is_err()
    );
    let (records, _) = f.svc.prune(&Filters::default()).unwrap();
    assert_eq!(records[0], DeleteRecord::Deleted(dangling.to_string()));
    assert_eq!(f.svc.count().unwrap(), 1);
    let (records, reclaimed) = f.svc.prune(&Filters::parse(r#"{"dangling":["false"]}"#).unwrap()).unwrap();
    assert_eq!(records[0], DeleteRecord::Untagged("t:latest".into()));
    assert_eq!(reclaimed, 1);
    assert_eq!(f.svc.count().unwrap(), 0);
}

#[test]
fn child_images_and_noprune() {
    let f = fixture("vfs");
    let top = multi_layer(&f.svc);
    // The base has a child: deleting it by ID is a hard conflict.
    let chain = f.svc.history("multi:v1").unwrap();
    let base = &chain[4].id;
    let e = f.svc.delete(base, true, true).unwrap_err();
    assert!(e.to_string().contains("(cannot be forced) - image has dependent child images"), "{e}");
    // Removing the top prunes the untagged parents, each with its freed layer.
    let r = f.svc.delete("multi:v1", false, true).unwrap();
    let deleted_images = r.iter().filter(|d| matches!(d, DeleteRecord::Deleted(_))).count();
    assert_eq!(deleted_images, 10, "5 images and their 5 layers: {r:?}");
    assert_eq!(f.svc.count().unwrap(), 0);
    let _ = top;
    // With noprune the parents stay.
    let top = multi_layer(&f.svc);
    let r = f.svc.delete("multi:v1", false, false).unwrap();
    assert!(r.contains(&DeleteRecord::Deleted(top.to_string())));
    assert_eq!(f.svc.count().unwrap(), 4);
}

#[test]
fn a_push_gzips_an_uncompressed_layer_once_and_the_blob_lives_with_the_layer() {
    use super::push::{LayerBlob, PushRequest, UploadTap};
    use wharf_image::layer::Compression;

    let f = fixture("vfs");
    import(&f.svc, &[("a", b"1"), ("b", &[7u8; 4096])], "x");
    let req = PushRequest {
        reference: wharf_types::Reference::parse_normalized("127.0.0.1:5000/x:latest").unwrap(),
        tag: String::new(),
        creds: Default::default(),
    };
    let tagged = import(&f.svc, &[("a", b"1"), ("b", &[7u8; 4096])], "127.0.0.1:5000/x");
    let plan = f.svc.push_plan(&req).unwrap();
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].id, tagged);
    let (diff_id, blob) = plan[0].layers[0].clone();
    let LayerBlob::Compress { tar, .. } = blob else { panic!("an imported plain tar needs compressing: {blob:?}") };
    assert_eq!(tar, diff_id, "the stored tar is the layer itself");

    let before = blob_count(&f.root);
    let tap = || {
        let (started, started_rx) = tokio::sync::oneshot::channel();
        let (bytes, bytes_rx) = tokio::sync::mpsc::channel(4);
        (UploadTap { started, bytes, progress: Box::new(|_| {}) }, started_rx, bytes_rx)
    };
    // An upload that stops: nothing is kept.
    let (upload, mut started, bytes_rx) = tap();
    drop(bytes_rx);
    f.svc.gzip_layer(&diff_id, &tar, Some(upload)).unwrap_err();
    assert_eq!(started.try_recv(), Ok(true));
    assert_eq!(blob_count(&f.root), before);
    assert!(matches!(f.svc.push_plan(&req).unwrap()[0].layers[0].1, LayerBlob::Compress { .. }));

    // The upload gets exactly the stored bytes.
    let (upload, _started, mut bytes_rx) = tap();
    let sent = std::thread::spawn(move || {
        let mut all = Vec::new();
        while let Some(chunk) = bytes_rx.blocking_recv() {
            all.extend_from_slice(&chunk.unwrap());
        }
        all
    });
    let (gz, size) = f.svc.gzip_layer(&diff_id, &tar, Some(upload)).unwrap();
    assert_eq!(blob_count(&f.root), before + 1);
    let bytes = std::fs::read(f.root.join("content/blobs/sha256").join(gz.hex())).unwrap();
    assert_eq!(sent.join().unwrap(), bytes);
    assert_eq!(bytes.len() as u64, size);
    let mut plain = Vec::new();
    wharf_image::layer::decompress(&bytes[..], Compression::Gzip).unwrap().read_to_end(&mut plain).unwrap();
    assert_eq!(wharf_image::sha256_digest(&plain), diff_id, "it holds the layer");

    // Cached: the next plan sends it, a second compression is not done.
    let plan = f.svc.push_plan(&req).unwrap();
    let LayerBlob::Stored { digest, size: s, compression } = &plan[0].layers[0].1 else { panic!() };
    assert_eq!((digest, *s, *compression), (&gz, size, Compression::Gzip));
    assert_eq!(f.svc.gzip_layer(&diff_id, &tar, None).unwrap(), (gz.clone(), size));
    assert_eq!(blob_count(&f.root), before + 1);

    // GC keeps it while an image has the layer, and removes it with the layer.
    let gz_path = f.root.join("content/blobs/sha256").join(gz.hex());
    f.svc.delete("127.0.0.1:5000/x", false, true).unwrap();
    f.svc.gc().unwrap();
    assert!(gz_path.exists(), "x:latest still has the layer");
    f.svc.delete("x", false, true).unwrap();
    f.svc.gc().unwrap();
    assert!(!gz_path.exists());
    assert_eq!(blob_count(&f.root), 0);
}
