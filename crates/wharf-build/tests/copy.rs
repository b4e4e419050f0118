//! COPY/ADD semantics against Docker's documented behaviour.

mod common;

use std::io::{Read, Write};

use common::{Env, opts};

const FILES: &[(&str, &str)] = &[
    ("f.txt", "F"),
    ("g.txt", "G"),
    ("run.sh", "#!/bin/sh\n"),
    ("ln.txt", "->f.txt"),
    ("dir/", ""),
    ("dir/a.txt", "a"),
    ("dir/x.log", "log"),
    ("dir/sub/", ""),
    ("dir/sub/b.txt", "b"),
    ("dir/link", "->a.txt"),
];

fn ctx(df: &str) -> Vec<(&str, &str)> {
    let mut v: Vec<(&str, &str)> = FILES.to_vec();
    v.push(("Dockerfile", df));
    v
}

#[tokio::test]
async fn copy_matrix() {
    require_root!();
    let env = Env::new();
    let df = "\
FROM busybox
COPY f.txt /d1/
COPY f.txt /d2
COPY dir /d3
COPY dir /d4/
COPY f.txt g.txt /d5/
COPY *.txt /d7/
COPY dir/*.txt /d8/
RUN mkdir /exist
COPY f.txt /exist
COPY ln.txt /d9/
COPY run.sh /d10/
COPY --chown=app:staff dir /d11/
COPY --chown=1234 f.txt /d12/new/
COPY --chmod=0700 f.txt /d13/
COPY --exclude=*.log dir /d14/
COPY --parents dir/sub/b.txt /d15/
COPY ./dir/../g.txt /d16/
WORKDIR /w
COPY f.txt rel/
COPY g.txt .
";
    let out = env.build(&ctx(df), opts()).await;
    let id = out.ok();
    let r = |p: &str| env.read(&id, p);
    let st = |p: &str| env.stat(&id, p);
    // A file into a directory (trailing slash) / as a file.
    assert_eq!(r("/d1/f.txt").as_deref(), Some("F"));
    assert_eq!(st("/d2").map(|s| s.3), Some(false));
    assert_eq!(r("/d2").as_deref(), Some("F"));
    // A directory's contents, not the directory itself.
    for d in ["/d3", "/d4"] {
        assert_eq!(r(&format!("{d}/a.txt")).as_deref(), Some("a"));
        assert_eq!(r(&format!("{d}/sub/b.txt")).as_deref(), Some("b"));
        assert_eq!(st(&format!("{d}/dir")), None);
        // Symlinks inside a directory stay symlinks.
        let link = env.with_fs(&id, |root| std::fs::read_link(root.join(&d[1..]).join("link")).ok());
        assert_eq!(link, Some("a.txt".into()));
    }
    assert_eq!(r("/d5/f.txt").as_deref(), Some("F"));
    assert_eq!(r("/d5/g.txt").as_deref(), Some("G"));
    // Wildcards: top level only for `*.txt` (the symlink ln.txt matches too).
    assert_eq!(r("/d7/f.txt").as_deref(), Some("F"));
    assert_eq!(r("/d7/g.txt").as_deref(), Some("G"));
    assert_eq!(r("/d7/ln.txt").as_deref(), Some("F"));
    assert_eq!(st("/d7/a.txt"), None);
    assert_eq!(r("/d8/a.txt").as_deref(), Some("a"));
    assert_eq!(st("/d8/x.log"), None);
    // An existing directory is a directory destination even without a slash.
    assert_eq!(r("/exist/f.txt").as_deref(), Some("F"));
    // A symlink source is followed and named after the link.
    assert_eq!(st("/d9/ln.txt").map(|s| s.3), Some(false));
    assert_eq!(r("/d9/ln.txt").as_deref(), Some("F"));
    // Modes are kept, owners become root.
    assert_eq!(st("/d10/run.sh"), Some((0o755, 0, 0, false)));
    assert_eq!(st("/d1/f.txt"), Some((0o644, 0, 0, false)));
    // --chown with names from the image's /etc/passwd and /etc/group; the created
    // destination directory too.
    assert_eq!(st("/d11/a.txt").map(|s| (s.1, s.2)), Some((1000, 50)));
    assert_eq!(st("/d11/sub").map(|s| (s.1, s.2)), Some((1000, 50)));
    assert_eq!(st("/d11").map(|s| (s.1, s.2)), Some((1000, 50)));
    assert_eq!(st("/d12/new/f.txt").map(|s| (s.1, s.2)), Some((1234, 1234)));
    assert_eq!(st("/d12/new").map(|s| (s.1, s.2)), Some((1234, 1234)));
    assert_eq!(st("/d13/f.txt").map(|s| s.0), Some(0o700));
    assert_eq!(st("/d14/x.log"), None);
    assert_eq!(r("/d14/a.txt").as_deref(), Some("a"));
    assert_eq!(r("/d15/dir/sub/b.txt").as_deref(), Some("b"));
    assert_eq!(r("/d16/g.txt").as_deref(), Some("G"));
    // Relative destinations are relative to WORKDIR.
    assert_eq!(r("/w/rel/f.txt").as_deref(), Some("F"));
    assert_eq!(r("/w/g.txt").as_deref(), Some("G"));
    env.assert_clean();
}

#[tokio::test]
async fn copy_errors_read_like_docker() {
    require_root!();
    let env = Env::new();
    let cases: &[(&str, &str)] = &[
        (
            "COPY nope.txt /",
            "COPY failed: file not found in build context or excluded by .dockerignore: stat nope.txt: file does not exist",
        ),
        (
            "COPY f.txt g.txt /d6",
            "When using COPY with more than one source file, the destination must be a directory and end with a /",
        ),
        (
            "COPY *.txt /d6",
            "When using COPY with more than one source file, the destination must be a directory and end with a /",
        ),
        ("COPY ../f.txt /", "COPY failed: forbidden path outside the build context: ../f.txt ()"),
        ("COPY dir/../../f.txt /", "COPY failed: forbidden path outside the build context: dir/../../f.txt ()"),
        ("COPY *.nothing /", "COPY failed: no source files were specified"),
        ("COPY http://127.0.0.1:1/x /", "COPY failed: source can't be a URL for COPY"),
        (
            "COPY --chown=nobody f.txt /",
            "unable to convert uid/gid chown string to host mapping: can't find uid for user nobody: no such user: nobody",
        ),
        ("COPY --chmod=99 f.txt /", "COPY failed: invalid chmod parameter: 99"),
        (
            "COPY --from=nosuchimage /x /",
            "invalid from flag value nosuchimage: pull access denied for nosuchimage, repository does not exist or may require 'docker login'",
        ),
        (
            "ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 f.txt /",
            "ADD failed: checksum can't be specified for non-HTTP(S) sources",
        ),
    ];
    for (line, want) in cases {
        let out = env.build(&ctx(&format!("FROM busybox\n{line}\n")), opts()).await;
        assert_eq!(&out.err(), want, "for {line}");
    }
    // Symlinks that point out of the context resolve inside it.
    let out = env.build(&[("Dockerfile", "FROM busybox\nCOPY evil /\n"), ("evil", "->/etc/passwd")], opts()).await;
    assert_eq!(
        out.err(),
        "COPY failed: file not found in build context or excluded by .dockerignore: stat evil: file does not exist"
    );
    let out = env
        .build(&[("Dockerfile", "FROM busybox\nCOPY up/etc/passwd /\n"), ("up", "->../../../../../..")], opts())
        .await;
    assert!(out.err().contains("file not found in build context"), "{}", out.err());
    // .dockerignore'd files are not there.
    let out = env
        .build(
            &[
                ("Dockerfile", "FROM busybox\nCOPY secret.txt /\n"),
                (".dockerignore", "secret.txt\n"),
                ("secret.txt", "s"),
            ],
            opts(),
        )
        .await;
    assert_eq!(
        out.err(),
        "COPY failed: file not found in build context or excluded by .dockerignore: stat secret.txt: file does not exist"
    );
    env.assert_clean();
}

#[tokio::test]
async fn copy_from_stage_keeps_owners() {
    require_root!();
    let env = Env::new();
    let df = "\
FROM busybox AS b
RUN mkdir -p /out && echo hi > /out/f && chown 1000:50 /out/f && chmod 600 /out/f
FROM busybox
COPY --from=b /out /o1/
COPY --from=b --chown=0:0 /out/f /o2/
COPY --from=b /nope /x
";
    let out = env.build(&[("Dockerfile", &df.replace("COPY --from=b /nope /x\n", ""))], opts()).await;
    let id = out.ok();
    assert_eq!(env.stat(&id, "/o1/f"), Some((0o600, 1000, 50, false)));
    assert_eq!(env.stat(&id, "/o2/f"), Some((0o600, 0, 0, false)));
    let out = env.build(&[("Dockerfile", df)], opts()).await;
    assert_eq!(out.err(), "COPY failed: stat nope: file does not exist");
    // A rebuild hits the cache for COPY --from (hash of the stage's files).
    let again = env.build(&[("Dockerfile", &df.replace("COPY --from=b /nope /x\n", ""))], opts()).await;
    assert_eq!(again.ok(), id);
    env.assert_clean();
}

fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    common::context_tar(files)
}

/// A one-shot HTTP server on 127.0.0.1 serving `body` for any path; returns the port.
fn serve(body: Vec<u8>, requests: usize) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for _ in 0..requests {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    port
}

#[tokio::test]
async fn add_extracts_archives_and_fetches_urls() {
    require_root!();
    let env = Env::new();
    let inner = tar_of(&[("top/", ""), ("top/in.txt", "inside")]);
    let gz = common::gzip(&inner);
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&inner).unwrap();
    let bz = bz.finish().unwrap();
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &inner[..], &mut xz).unwrap();
    let port = serve(gz.clone(), 4);
    let sum = format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&gz)));
    let df = format!(
        "FROM busybox\n\
ADD a.tar.gz /x1/\n\
ADD a.tar.bz2 /x2\n\
ADD a.tar.xz /x3/\n\
ADD a.tar /x4/\n\
ADD plain.txt /x5/\n\
ADD http://127.0.0.1:{port}/dl/remote.tar.gz /x6/\n\
ADD --checksum={sum} http://127.0.0.1:{port}/dl/remote.tar.gz /x7/\n"
    );
    // Build the context tar by hand: binary members.
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("Dockerfile", df.as_bytes().to_vec()),
        ("a.tar.gz", gz.clone()),
        ("a.tar.bz2", bz),
        ("a.tar.xz", xz),
        ("a.tar", inner.clone()),
        ("plain.txt", b"plain".to_vec()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let out = env.build_tar(tar.clone(), opts(), tokio_util::sync::CancellationToken::new()).await;
    let id = out.ok();
    for d in ["/x1", "/x2", "/x3", "/x4"] {
        assert_eq!(env.read(&id, &format!("{d}/top/in.txt")).as_deref(), Some("inside"), "{d}");
    }
    assert_eq!(env.read(&id, "/x5/plain.txt").as_deref(), Some("plain"));
    // Downloads are not extracted.
    assert_eq!(env.stat(&id, "/x6/remote.tar.gz").map(|s| s.3), Some(false));
    assert_eq!(env.stat(&id, "/x7/remote.tar.gz").map(|s| (s.0, s.3)), Some((0o600, false)));
    let img = env.image(&id);
    assert!(img.config.history.iter().any(|h| h.created_by.as_deref().unwrap_or("").contains("ADD file:")),);
    // A wrong checksum fails the step.
    let port = serve(gz, 1);
    let bad = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let df = format!("FROM busybox\nADD --checksum={bad} http://127.0.0.1:{port}/f /f\n");
    let out = env.build(&[("Dockerfile", &df)], opts()).await;
    let e = out.err();
    assert!(e.starts_with("ADD failed: digest mismatch sha256:"), "{e}");
    assert!(e.ends_with(bad), "{e}");
    env.assert_clean();
}

#[tokio::test]
async fn a_stalled_download_does_not_hold_a_cancelled_build() {
    require_root!();
    let env = Env::new();
    // Headers, then silence with the connection open.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
        let _ = sent_tx.send(());
        // Hold the connection until the test is over.
        let _ = done_rx.recv();
    });
    let df = format!("FROM busybox\nADD http://127.0.0.1:{port}/big /big\n");
    let cancel = tokio_util::sync::CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        let _ = sent_rx.await;
        // Most likely the download waits for the body by now (either way, the build must stop).
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        c2.cancel();
    });
    let build = env.build_tar(common::context_tar(&[("Dockerfile", &df)]), opts(), cancel);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), build).await.expect("the build stopped");
    assert_eq!(out.err(), "Build cancelled");
    drop(done_tx);
    env.assert_clean();
}
