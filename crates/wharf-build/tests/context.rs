//! The build context: bodies in every form, hostile tars, `.dockerignore`, Dockerfile lookup.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;

use common::{context_tar, gzip};
use wharf_build::BuildContext;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("wharf-test-build-ctx-").tempdir().unwrap()
}

fn ctx(tar: &[u8], dockerfile: &str) -> Result<(tempfile::TempDir, BuildContext), String> {
    let t = tmp();
    let c = BuildContext::from_reader(tar, t.path(), dockerfile)
        .map_err(|e| wharf_types::EngineError::from_classified(&e).message)?;
    Ok((t, c))
}

fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &e.path(), out);
            } else {
                out.push(rel);
            }
        }
    }
    walk(root, root, &mut out);
    out.sort();
    out
}

/// A tar entry with a raw name (the tar crate refuses `..`).
fn raw_entry(name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    {
        let g = h.as_gnu_mut().unwrap();
        g.name[..name.len()].copy_from_slice(name.as_bytes());
        g.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn raw_tar(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut t: Vec<u8> = entries.concat();
    t.extend_from_slice(&[0u8; 1024]);
    t
}

#[test]
fn every_compression_and_a_bare_dockerfile() {
    let plain = context_tar(&[("Dockerfile", "FROM busybox\n"), ("a.txt", "A")]);
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&plain).unwrap();
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &plain[..], &mut xz).unwrap();
    for body in [plain.clone(), gzip(&plain), bz.finish().unwrap(), xz, zstd::encode_all(&plain[..], 1).unwrap()] {
        let (_t, c) = ctx(&body, "").unwrap();
        assert_eq!(c.dockerfile(), "FROM busybox\n");
        assert_eq!(fs::read_to_string(c.root().join("a.txt")).unwrap(), "A");
        assert!(c.has_files());
    }
    // Not a tar: the body is the Dockerfile (gzip'ed too).
    let (_t, c) = ctx(b"FROM busybox\nRUN true\n", "").unwrap();
    assert_eq!(c.dockerfile(), "FROM busybox\nRUN true\n");
    assert!(!c.has_files());
    let (_t, c) = ctx(&gzip(b"FROM scratch\n"), "").unwrap();
    assert_eq!(c.dockerfile(), "FROM scratch\n");
    // What the CLI sends for `docker build - < Dockerfile`.
    let (_t, c) = ctx(&wharf_build::context::single_file_tar("Dockerfile", b"FROM x\n"), "").unwrap();
    assert_eq!(c.dockerfile(), "FROM x\n");
}

#[test]
fn hostile_tars_cannot_escape() {
    let outside = tmp();
    // `..` climbing out: refused.
    let t = raw_tar(&[
        raw_entry("Dockerfile", tar::EntryType::Regular, "", b"FROM x\n"),
        raw_entry("../../../../../../tmp/evil", tar::EntryType::Regular, "", b"x"),
    ]);
    let e = ctx(&t, "").unwrap_err();
    assert!(e.contains("points outside the root"), "{e}");
    // A hard link to a host file: refused.
    let t = raw_tar(&[
        raw_entry("Dockerfile", tar::EntryType::Regular, "", b"FROM x\n"),
        raw_entry("pw", tar::EntryType::Link, "../../../../../../etc/passwd", b""),
    ]);
    assert!(ctx(&t, "").is_err());
    // A symlink out, then a file through it: never written outside (the extraction resolves
    // the link inside the context, where the directory does not exist, and fails).
    let target = outside.path().join("victim");
    let link_target = target.parent().unwrap().to_string_lossy().into_owned();
    let t = raw_tar(&[
        raw_entry("Dockerfile", tar::EntryType::Regular, "", b"FROM x\n"),
        raw_entry("out", tar::EntryType::Symlink, &link_target, b""),
        raw_entry("out/victim", tar::EntryType::Regular, "", b"pwned"),
    ]);
    let _ = ctx(&t, "");
    assert!(!target.exists(), "wrote outside the context");
    // Symlinks pointing out are kept as they are, and resolve inside the context; absolute
    // names are made relative.
    let t = raw_tar(&[
        raw_entry("Dockerfile", tar::EntryType::Regular, "", b"FROM x\n"),
        raw_entry("out", tar::EntryType::Symlink, &link_target, b""),
        raw_entry("up", tar::EntryType::Symlink, "../../../..", b""),
        raw_entry("/abs.txt", tar::EntryType::Regular, "", b"abs"),
    ]);
    let (_t, c) = ctx(&t, "").unwrap();
    assert_eq!(fs::read_to_string(c.root().join("abs.txt")).unwrap(), "abs");
    assert_eq!(c.resolve("out/victim").unwrap(), c.root().join(link_target.trim_start_matches('/')).join("victim"));
    assert_eq!(c.resolve("up/etc/passwd").unwrap(), c.root().join("etc/passwd"));
    assert_eq!(c.resolve("../x").unwrap_err().to_string(), "forbidden path outside the build context: ../x ()");
}

#[test]
fn dockerfile_lookup_and_errors() {
    let t = context_tar(&[("a.txt", "A")]);
    assert_eq!(ctx(&t, "").unwrap_err(), "Cannot locate specified Dockerfile: Dockerfile");
    let t = context_tar(&[("dockerfile", "FROM lower\n")]);
    let (_t, c) = ctx(&t, "").unwrap();
    assert_eq!(c.dockerfile(), "FROM lower\n");
    assert_eq!(c.dockerfile_name(), "dockerfile");
    let t = context_tar(&[("Dockerfile", "")]);
    assert_eq!(ctx(&t, "").unwrap_err(), "the Dockerfile (Dockerfile) cannot be empty");
    let t = context_tar(&[("Dockerfile", "FROM x\n")]);
    assert_eq!(
        ctx(&t, "../../Dockerfile").unwrap_err(),
        "forbidden path outside the build context: ../../Dockerfile ()"
    );
    // A Dockerfile symlinked out of the context resolves inside it (and is missing).
    let t = context_tar(&[("Dockerfile", "->/etc/passwd")]);
    assert_eq!(ctx(&t, "").unwrap_err(), "Cannot locate specified Dockerfile: Dockerfile");
    let t = context_tar(&[("build/", ""), ("build/app.Dockerfile", "FROM app\n")]);
    let (_t, c) = ctx(&t, "build/app.Dockerfile").unwrap();
    assert_eq!(c.dockerfile(), "FROM app\n");
}

#[test]
fn dockerignore_is_applied() {
    let t = context_tar(&[
        ("Dockerfile", "FROM x\n"),
        (".dockerignore", "*.log\n!keep.log\nsecret\n**/*.tmp\nDockerfile\n.dockerignore\n"),
        ("a.log", "x"),
        ("keep.log", "k"),
        ("secret/", ""),
        ("secret/key", "k"),
        ("src/", ""),
        ("src/main.c", "c"),
        ("src/deep/", ""),
        ("src/deep/x.tmp", "t"),
    ]);
    let (_t, c) = ctx(&t, "").unwrap();
    // The Dockerfile was read before it was removed.
    assert_eq!(c.dockerfile(), "FROM x\n");
    assert_eq!(files(c.root()), vec!["keep.log", "src/", "src/deep/", "src/main.c"]);
    // `-f -`: the CLI adds .dockerfile.<hex> and lists it in .dockerignore.
    let t = context_tar(&[
        (".dockerfile.2c5b91dd9362430a896f", "FROM stdin\n"),
        (".dockerignore", ".dockerignore\n.dockerfile.2c5b91dd9362430a896f\n"),
        ("f", "F"),
    ]);
    let (_t, c) = ctx(&t, ".dockerfile.2c5b91dd9362430a896f").unwrap();
    assert_eq!(c.dockerfile(), "FROM stdin\n");
    assert_eq!(files(c.root()), vec!["f"]);
    // <Dockerfile>.dockerignore wins over .dockerignore.
    let t = context_tar(&[
        ("app.Dockerfile", "FROM x\n"),
        ("app.Dockerfile.dockerignore", "b\n"),
        (".dockerignore", "a\n"),
        ("a", "A"),
        ("b", "B"),
    ]);
    let (_t, c) = ctx(&t, "app.Dockerfile").unwrap();
    let f = files(c.root());
    assert!(f.contains(&"a".to_string()) && !f.contains(&"b".to_string()), "{f:?}");
    // Re-including inside an excluded directory keeps that file.
    let t = context_tar(&[
        ("Dockerfile", "FROM x\n"),
        (".dockerignore", "docs\n!docs/README.md\n"),
        ("docs/", ""),
        ("docs/README.md", "r"),
        ("docs/other.md", "o"),
    ]);
    let (_t, c) = ctx(&t, "").unwrap();
    let f = files(c.root());
    assert!(f.contains(&"docs/README.md".to_string()), "{f:?}");
    assert!(!f.contains(&"docs/other.md".to_string()), "{f:?}");
}
