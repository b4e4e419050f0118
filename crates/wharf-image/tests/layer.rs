//! Layer unpack, diff and compression: every entry kind a layer can hold survives unpack, in
//! all three compressions; whiteouts in both styles; diff round trips; parallel unpacks.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use common::*;
use tar::EntryType;
use wharf_image::layer::{Change, ChangeKind, Compression, LayerWriter, UnpackOptions, changes, diff, unpack};
use wharf_snapshot::{DiffSource, WhiteoutStyle};

fn opts(whiteouts: WhiteoutStyle) -> UnpackOptions {
    UnpackOptions { whiteouts, ..Default::default() }
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// A layer with every kind of entry.
fn rich_layer(sparse_src: &Path) -> Vec<u8> {
    let mut t = Tar::new();
    t.dir("etc/", 0o755, 1_500_000_000)
        .file_owned("etc/passwd", b"root:x:0:0\n", 0o644, 0, 0, 1_500_000_001)
        .file_owned("bin/su", b"ELF", 0o4755, 0, 0, 1_500_000_002)
        .dir("tmp/", 0o1777, 1_500_000_003)
        .file_owned("home/user/owned", b"mine", 0o600, 1000, 1001, 1_500_000_004)
        .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
        .hardlink("bin/su-again", "bin/su")
        .device("dev/null", EntryType::Char, 1, 3)
        .device("dev/loop0", EntryType::Block, 7, 0)
        .device("run/fifo", EntryType::Fifo, 0, 0)
        .pax(&[("SCHILY.xattr.user.wharf", b"yes"), ("SCHILY.xattr.trusted.overlay.redirect", b"/evil")])
        .file("with-xattr", b"x")
        .pax(&[("mtime", b"1600000000.5"), ("uid", b"3000000")])
        .file("pax-meta", b"p");
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(150));
    t.pax(&[("path", long.as_bytes())]).file("short", b"pax long name");
    let gnu_long = format!("{}/gnu-long", "g".repeat(200));
    t.gnu_long_file(gnu_long.as_bytes(), b"gnu long name");
    t.gnu_long_link("long-symlink", EntryType::Symlink, format!("/{}", "t".repeat(300)).as_bytes());
    // GNU sparse, written by the tar crate from a real sparse file.
    let mut h = tar::Header::new_gnu();
    let f = fs::File::open(sparse_src).unwrap();
    h.set_metadata(&f.metadata().unwrap());
    t.0.sparse(true);
    t.0.append_file("sparse", &mut fs::File::open(sparse_src).unwrap()).unwrap();
    t.dir("etc/", 0o750, 1_500_000_000);
    t.finish()
}

#[test]
fn unpack_keeps_every_entry_kind_in_every_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let sparse_src = tmp.path().join("sparse-src");
    let f = fs::File::create(&sparse_src).unwrap();
    f.set_len(32 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"middle", 16 << 20).unwrap();
    let plain = rich_layer(&sparse_src);
    assert!(
        tar::Archive::new(&plain[..])
            .entries()
            .unwrap()
            .any(|e| e.unwrap().header().entry_type() == EntryType::GNUSparse),
        "the corpus holds a GNU sparse entry"
    );
    for (compression, blob) in
        [(Compression::None, plain.clone()), (Compression::Gzip, gzip(&plain)), (Compression::Zstd, zstd(&plain))]
    {
        let dest = tmp.path().join(format!("{compression:?}"));
        fs::create_dir(&dest).unwrap();
        let r = unpack(&blob[..], &dest, &opts(WhiteoutStyle::Overlay)).unwrap();
        assert_eq!(r.compression, compression);
        assert_eq!(r.diff_id.to_string(), sha256(&plain), "diff_id is the sha256 of the tar");
        assert_eq!(r.tar_size, plain.len() as u64);
        match compression {
            Compression::None => assert_eq!(r.compressed, None),
            _ => assert_eq!(
                r.compressed.as_ref().map(|(d, s)| (d.to_string(), *s)),
                Some((sha256(&blob), blob.len() as u64))
            ),
        }
        let m = |p: &str| fs::symlink_metadata(dest.join(p)).unwrap();
        assert_eq!(fs::read(dest.join("etc/passwd")).unwrap(), b"root:x:0:0\n");
        assert_eq!(m("etc/passwd").mtime(), 1_500_000_001);
        assert_eq!(m("etc").mode() & 0o7777, 0o750, "a repeated directory entry wins");
        assert_eq!(m("etc").mtime(), 1_500_000_000, "directory mtime set after its contents");
        assert_eq!(m("tmp").mode() & 0o7777, 0o1777, "sticky bit");
        assert_eq!(fs::read_link(dest.join("etc/localtime")).unwrap(), Path::new("/usr/share/zoneinfo/UTC"));
        assert_eq!(m("bin/su").ino(), m("bin/su-again").ino(), "hard link");
        assert_eq!(fs::read(dest.join("d".repeat(120)).join("f".repeat(150))).unwrap(), b"pax long name");
        assert_eq!(fs::read(dest.join("g".repeat(200)).join("gnu-long")).unwrap(), b"gnu long name");
        assert_eq!(fs::read_link(dest.join("long-symlink")).unwrap().as_os_str().len(), 301);
        assert!(m("run/fifo").file_type().is_fifo());
        assert_eq!(m("pax-meta").mtime(), 1_600_000_000);
        assert_eq!(m("pax-meta").mtime_nsec(), 500_000_000, "PAX sub-second mtime");
        let sparse = m("sparse");
        assert_eq!(sparse.len(), 32 << 20);
        assert!(sparse.blocks() * 512 < 1 << 20, "sparse file stays sparse ({} blocks)", sparse.blocks());
        let mut mid = [0u8; 6];
        std::os::unix::fs::FileExt::read_at(&fs::File::open(dest.join("sparse")).unwrap(), &mut mid, 16 << 20).unwrap();
        assert_eq!(&mid, b"middle");
        if xattr(&dest.join("etc"), "user.probe").is_none()
            && rustix::fs::lsetxattr(dest.join("etc"), "user.probe", b"1", rustix::fs::XattrFlags::empty()).is_ok()
        {
            assert_eq!(xattr(&dest.join("with-xattr"), "user.wharf").as_deref(), Some(&b"yes"[..]));
        }
        assert_eq!(
            xattr(&dest.join("with-xattr"), "trusted.overlay.redirect"),
            None,
            "overlay xattrs from a layer are dropped"
        );
        if is_root() {
            assert_eq!(m("bin/su").mode() & 0o7777, 0o4755, "setuid kept after chown");
            assert_eq!((m("home/user/owned").uid(), m("home/user/owned").gid()), (1000, 1001));
            assert_eq!(m("pax-meta").uid(), 3_000_000, "PAX uid");
            assert!(m("dev/null").file_type().is_char_device());
            assert_eq!(m("dev/null").rdev(), rustix::fs::makedev(1, 3));
            assert!(m("dev/loop0").file_type().is_block_device());
        }
    }
}

#[test]
fn rootless_skips_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = Tar::new()
        .device("dev/null", EntryType::Char, 1, 3)
        .device("p", EntryType::Fifo, 0, 0)
        .file("f", b"x")
        .finish();
    let r = unpack(&layer[..], tmp.path(), &UnpackOptions { rootless: true, ..Default::default() }).unwrap();
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].path, "dev/null");
    assert!(!tmp.path().join("dev/null").exists());
    assert!(tmp.path().join("p").exists() && tmp.path().join("f").exists());
}

fn whiteout_layer() -> Vec<u8> {
    Tar::new()
        .file(".wh.gone", b"")
        .file("dir/.wh.old", b"")
        .dir("opaque/", 0o755, 1)
        .file("opaque/.wh..wh..opq", b"")
        .file("opaque/new", b"new")
        .file(".wh..wh.plnk", b"")
        .finish()
}

fn lower_tree(root: &Path) {
    fs::create_dir_all(root.join("dir")).unwrap();
    fs::create_dir_all(root.join("opaque/sub")).unwrap();
    fs::write(root.join("gone"), "x").unwrap();
    fs::write(root.join("dir/old"), "x").unwrap();
    fs::write(root.join("dir/kept"), "x").unwrap();
    fs::write(root.join("opaque/hidden"), "x").unwrap();
}

#[test]
fn whiteouts_overlay_style() {
    if !is_root() {
        eprintln!("skipping whiteouts_overlay_style: needs root (mknod, trusted xattrs)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    unpack(&whiteout_layer()[..], tmp.path(), &opts(WhiteoutStyle::Overlay)).unwrap();
    for wh in ["gone", "dir/old"] {
        let m = fs::symlink_metadata(tmp.path().join(wh)).unwrap();
        assert!(m.file_type().is_char_device() && m.rdev() == 0, "{wh} is an overlay whiteout");
    }
    assert_eq!(xattr(&tmp.path().join("opaque"), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert_eq!(names(tmp.path()), vec!["dir", "gone", "opaque"], "no .wh. files left");
    assert_eq!(names(&tmp.path().join("opaque")), vec!["new"]);
}

#[test]
fn whiteouts_delete_style() {
    let tmp = tempfile::tempdir().unwrap();
    lower_tree(tmp.path());
    unpack(&whiteout_layer()[..], tmp.path(), &opts(WhiteoutStyle::Delete)).unwrap();
    assert_eq!(names(tmp.path()), vec!["dir", "opaque"]);
    assert_eq!(names(&tmp.path().join("dir")), vec!["kept"]);
    assert_eq!(names(&tmp.path().join("opaque")), vec!["new"], "opaque keeps only this layer's entries");
}

/// overlay upper → diff → unpack onto the lower (delete style) gives the merged view.
#[test]
fn overlay_diff_round_trip() {
    if !is_root() {
        eprintln!("skipping overlay_diff_round_trip: needs root (overlay whiteouts)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (lower, upper, applied) = (tmp.path().join("lower"), tmp.path().join("upper"), tmp.path().join("applied"));
    for d in [&lower, &upper, &applied] {
        fs::create_dir(d).unwrap();
    }
    lower_tree(&lower);
    lower_tree(&applied);
    let layer = Tar::new().file("dir/kept", b"changed").file("added", b"a").finish();
    let mut both = whiteout_layer();
    both.truncate(both.len() - 1024); // drop the end-of-archive blocks to append
    both.extend_from_slice(&layer);
    unpack(&both[..], &upper, &opts(WhiteoutStyle::Overlay)).unwrap();

    let source = DiffSource::Overlay { upper: upper.clone(), lowers: vec![lower.clone()] };
    let got = changes(&source).unwrap();
    let want = [
        ("/added", ChangeKind::Added),
        ("/dir", ChangeKind::Modified),
        ("/dir/kept", ChangeKind::Modified),
        ("/dir/old", ChangeKind::Deleted),
        ("/gone", ChangeKind::Deleted),
        ("/opaque", ChangeKind::Modified),
        ("/opaque/new", ChangeKind::Added),
    ];
    assert_eq!(got, want.iter().map(|(p, k)| Change { path: p.to_string(), kind: *k }).collect::<Vec<_>>());

    let mut out = Vec::new();
    diff(&source, &mut out).unwrap();
    let names: Vec<String> = tar::Archive::new(&out[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.contains(&"opaque/.wh..wh..opq".to_string()) && names.contains(&".wh.gone".to_string()), "{names:?}");
    unpack(&out[..], &applied, &opts(WhiteoutStyle::Delete)).unwrap();
    assert_eq!(common::names(&applied), vec!["added", "dir", "opaque"]);
    assert_eq!(fs::read(applied.join("dir/kept")).unwrap(), b"changed");
    assert_eq!(common::names(&applied.join("opaque")), vec!["new"]);
}

/// Native trees: changes are found by comparison, and the diff applied to the lower tree
/// reproduces the upper one exactly.
#[test]
fn tree_diff_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let (lower, upper, applied) = (tmp.path().join("lower"), tmp.path().join("upper"), tmp.path().join("applied"));
    let base = Tar::new()
        .dir("etc/", 0o755, 100)
        .file_owned("etc/passwd", b"root", 0o644, 0, 0, 100)
        .file_owned("etc/group", b"root", 0o644, 0, 0, 100)
        .dir("var/", 0o755, 100)
        .dir("var/cache/", 0o755, 100)
        .file_owned("var/cache/x", b"x", 0o644, 0, 0, 100)
        .file_owned("same", b"s", 0o644, 0, 0, 100)
        .finish();
    for d in [&lower, &upper, &applied] {
        fs::create_dir(d).unwrap();
        unpack(&base[..], d, &opts(WhiteoutStyle::Delete)).unwrap();
    }
    // Changes a container could make.
    fs::write(upper.join("etc/passwd"), "root\nuser").unwrap();
    fs::remove_dir_all(upper.join("var/cache")).unwrap();
    fs::create_dir_all(upper.join("new/deep")).unwrap();
    fs::write(upper.join("new/deep/file"), "n").unwrap();
    fs::hard_link(upper.join("new/deep/file"), upper.join("new/link")).unwrap();
    std::os::unix::fs::symlink("etc/group", upper.join("sym")).unwrap();

    let source = DiffSource::Trees { lower: Some(lower.clone()), upper: upper.clone() };
    let got: Vec<(String, ChangeKind)> = changes(&source).unwrap().into_iter().map(|c| (c.path, c.kind)).collect();
    let want: Vec<(String, ChangeKind)> = [
        ("/etc", ChangeKind::Modified),
        ("/etc/passwd", ChangeKind::Modified),
        ("/new", ChangeKind::Added),
        ("/new/deep", ChangeKind::Added),
        ("/new/deep/file", ChangeKind::Added),
        ("/new/link", ChangeKind::Added),
        ("/sym", ChangeKind::Added),
        ("/var", ChangeKind::Modified),
        ("/var/cache", ChangeKind::Deleted),
    ]
    .iter()
    .map(|(p, k)| (p.to_string(), *k))
    .collect();
    assert_eq!(got, want);

    let mut w = LayerWriter::new(Vec::new(), Compression::Gzip, None).unwrap();
    let stats = diff(&source, &mut w).unwrap();
    assert!(stats.entries >= 9);
    let done = w.finish().unwrap();
    assert_eq!(done.digest.to_string(), sha256(&done.inner));
    let r = unpack(&done.inner[..], &applied, &opts(WhiteoutStyle::Delete)).unwrap();
    assert_eq!(r.diff_id, done.diff_id, "LayerWriter's diff_id equals unpack's");
    assert_eq!(r.compressed.unwrap().0, done.digest);
    let (mut want_tree, mut got_tree) = (tree(&upper), tree(&applied));
    // Directory mtimes are not part of the comparison (tree() leaves them out), and neither is
    // the root's own entry.
    want_tree.remove("");
    got_tree.remove("");
    assert_eq!(got_tree, want_tree);
    let (a, b) =
        (fs::metadata(applied.join("new/link")).unwrap(), fs::metadata(applied.join("new/deep/file")).unwrap());
    assert_eq!(a.ino(), b.ino(), "hard link kept through diff");
}

#[test]
fn zstd_layer_writer_and_plain() {
    for compression in [Compression::Zstd, Compression::None] {
        let tar = Tar::new().file("a", &vec![1u8; 100_000]).finish();
        let mut w = LayerWriter::new(Vec::new(), compression, None).unwrap();
        std::io::Write::write_all(&mut w, &tar).unwrap();
        let done = w.finish().unwrap();
        assert_eq!(done.diff_id.to_string(), sha256(&tar));
        assert_eq!(done.digest.to_string(), sha256(&done.inner));
        let tmp = tempfile::tempdir().unwrap();
        let r = unpack(&done.inner[..], tmp.path(), &UnpackOptions::default()).unwrap();
        assert_eq!(r.compression, compression);
        assert_eq!(r.diff_id, done.diff_id);
    }
}

#[test]
fn parallel_unpacks() {
    let tmp = tempfile::tempdir().unwrap();
    let layers: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let mut t = Tar::new();
            for j in 0..300 {
                t.file(&format!("d{}/f{j}", j % 10), format!("{i}-{j}").repeat(100).as_bytes());
            }
            gzip(&t.finish())
        })
        .collect();
    std::thread::scope(|s| {
        for (i, layer) in layers.iter().enumerate() {
            let dest = tmp.path().join(i.to_string());
            fs::create_dir(&dest).unwrap();
            s.spawn(move || {
                let r = unpack(&layer[..], &dest, &UnpackOptions::default()).unwrap();
                assert_eq!(r.entries, 300);
                assert_eq!(fs::read_to_string(dest.join("d7/f7")).unwrap(), format!("{i}-7").repeat(100));
            });
        }
    });
}

#[test]
fn corrupt_and_truncated_layers_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Tar::new().file("a", &vec![7u8; 200_000]).finish();
    let gz = gzip(&tar);
    let err = unpack(&gz[..gz.len() / 2], tmp.path(), &UnpackOptions::default()).unwrap_err();
    assert_eq!(wharf_types::Classify::kind(&err), wharf_types::ErrorKind::InvalidArgument, "{err}");
    let err = unpack(&b"BZh91AY&SY"[..], tmp.path(), &UnpackOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "unsupported layer compression: bzip2");
    let r = unpack(&[][..], tmp.path(), &UnpackOptions::default()).unwrap();
    assert_eq!(r.entries, 0, "an empty stream is an empty layer");
}

/// Pull in one pass: the blob goes to the content store while it is unpacked and verified.
#[test]
fn tee_into_content_store_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let store = wharf_image::ContentStore::open(&tmp.path().join("content")).unwrap();
    let plain = Tar::new().file("f", b"data").finish();
    let blob = gzip(&plain);
    let digest: wharf_types::Digest = sha256(&blob).parse().unwrap();
    let diff_id: wharf_types::Digest = sha256(&plain).parse().unwrap();
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let mut w = store.writer(Some(&digest), Some(blob.len() as u64)).unwrap();
    let opts = UnpackOptions {
        expected_digest: Some(digest.clone()),
        expected_diff_id: Some(diff_id.clone()),
        ..Default::default()
    };
    unpack(wharf_image::TeeReader::new(&blob[..], &mut w), &dest, &opts).unwrap();
    w.commit().unwrap();
    assert!(store.exists(&digest));
    assert_eq!(fs::read(dest.join("f")).unwrap(), b"data");

    let wrong: wharf_types::Digest = sha256(b"other").parse().unwrap();
    let opts = UnpackOptions { expected_diff_id: Some(wrong.clone()), ..Default::default() };
    let err = unpack(&blob[..], &dest, &opts).unwrap_err();
    assert_eq!(err.to_string(), format!("layer diff_id mismatch: expected {wrong}, got {diff_id}"));
    let opts = UnpackOptions { expected_digest: Some(wrong), ..Default::default() };
    assert!(unpack(&blob[..], &dest, &opts).is_err());
}

/// Layers written by GNU tar (the `tar` on this machine), in GNU and POSIX formats, including
/// every PAX sparse version, unpack to the same tree as the source.
#[test]
fn gnu_tar_archives() {
    if std::process::Command::new("tar").arg("--version").output().is_err() {
        eprintln!("skipping gnu_tar_archives: no tar binary");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("dir/sub")).unwrap();
    fs::write(src.join("dir/file"), "content").unwrap();
    fs::hard_link(src.join("dir/file"), src.join("dir/sub/hard")).unwrap();
    std::os::unix::fs::symlink("../file", src.join("dir/sub/link")).unwrap();
    let long = src.join("l".repeat(120)).join("m".repeat(120));
    fs::create_dir_all(&long).unwrap();
    fs::write(long.join("n".repeat(200)), "long").unwrap();
    let sparse = fs::File::create(src.join("sparse")).unwrap();
    sparse.set_len(20 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"one", 1 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&sparse, b"two", 15 << 20).unwrap();
    drop(sparse);
    let want = tree(&src);
    let formats: [&[&str]; 5] = [
        &["--format=gnu", "--sparse"],
        &["--format=posix", "--sparse"],
        &["--format=posix", "--sparse", "--sparse-version=0.1"],
        &["--format=posix", "--sparse", "--sparse-version=0.0"],
        &["--format=posix", "--xattrs"],
    ];
    for (i, args) in formats.iter().enumerate() {
        let archive = tmp.path().join(format!("{i}.tar"));
        let status = std::process::Command::new("tar")
            .args(*args)
            .arg("-C")
            .arg(&src)
            .arg("-cf")
            .arg(&archive)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        let dest = tmp.path().join(format!("dest{i}"));
        fs::create_dir(&dest).unwrap();
        unpack(fs::File::open(&archive).unwrap(), &dest, &UnpackOptions::default()).unwrap();
        let mut got = tree(&dest);
        got.remove("");
        let mut want = want.clone();
        want.remove("");
        assert_eq!(got, want, "tar {args:?}");
        let m = fs::metadata(dest.join("sparse")).unwrap();
        if args.contains(&"--sparse") {
            assert!(m.blocks() * 512 < 1 << 20, "tar {args:?}: sparse stays sparse ({} blocks)", m.blocks());
        }
    }
}
