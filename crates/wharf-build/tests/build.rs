//! End-to-end builds through the real overlay snapshotter, content store and a chroot runner.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Env, context_tar, opts};
use tokio_util::sync::CancellationToken;
use wharf_build::{BuildEvent, BuildOptions, CacheStore};
use wharf_types::Reference;

#[tokio::test]
async fn legacy_output_history_and_config() {
    require_root!();
    let env = Env::new();
    let df = "FROM busybox\nARG A=default\nENV E=1\nCOPY f.txt /f.txt\nRUN echo \"arg is $A\" && cat /f.txt\nCMD [\"cat\", \"/f.txt\"]\nEXPOSE 80 53/udp\n";
    let mut o = opts();
    o.build_args = BTreeMap::from([("A".into(), Some("1".into())), ("NOPE".into(), Some("x".into()))]);
    o.labels = BTreeMap::from([("l".into(), "1".into())]);
    o.tags = vec![Reference::parse_normalized("spy/built:v1").unwrap()];
    let out = env.build(&[("Dockerfile", df), ("f.txt", "hello\n")], o).await;
    let id = out.ok();
    let text = out.text();
    let expected_start = "Step 1/8 : FROM busybox\n ---> ";
    assert!(text.starts_with(expected_start), "{text}");
    for needle in [
        "Step 2/8 : ARG A=default\n ---> Running in ",
        "Step 4/8 : COPY f.txt /f.txt\n ---> ",
        "Step 5/8 : RUN echo \"arg is $A\" && cat /f.txt\n ---> Running in ",
        "arg is 1\nhello\n",
        "Removing intermediate container ",
        "Step 8/8 : LABEL l=1\n",
        "[Warning] One or more build-args [NOPE] were not consumed\n",
        &format!("Successfully built {}\n", id.short()),
        "Successfully tagged spy/built:v1\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    // COPY prints no "Running in".
    let copy_part = text.split("Step 4/8").nth(1).unwrap().split("Step 5/8").next().unwrap();
    assert!(!copy_part.contains("Running in"), "{copy_part}");
    // The aux ID of the stage comes before "Successfully built".
    let aux = out.events.iter().position(|e| matches!(e, BuildEvent::StageImage { .. })).unwrap();
    let built = out.events.iter().position(|e| matches!(e, BuildEvent::Built { .. })).unwrap();
    assert!(aux < built);

    let img = env.image(&id);
    let cfg = img.config.config.clone().unwrap();
    assert_eq!(cfg.cmd, Some(vec!["cat".into(), "/f.txt".into()]));
    assert_eq!(cfg.labels.unwrap()["l"], "1");
    assert!(cfg.env.unwrap().contains(&"E=1".to_string()));
    let ports: Vec<&String> = cfg.exposed_ports.as_ref().unwrap().keys().collect();
    assert_eq!(ports, vec!["53/udp", "80/tcp"]);
    let h: Vec<(String, bool)> =
        img.config.history.iter().map(|h| (h.created_by.clone().unwrap(), h.empty_layer)).collect();
    assert_eq!(h[2], ("/bin/sh -c #(nop)  ARG A=default".into(), true));
    assert_eq!(h[3], ("/bin/sh -c #(nop)  ENV E=1".into(), true));
    assert!(h[4].0.starts_with("/bin/sh -c #(nop) COPY file:") && h[4].0.ends_with(" in /f.txt "), "{}", h[4].0);
    assert!(!h[4].1);
    assert_eq!(h[5].0, "|1 A=1 /bin/sh -c echo \"arg is $A\" && cat /f.txt");
    assert_eq!(h[6], ("/bin/sh -c #(nop)  CMD [\"cat\" \"/f.txt\"]".into(), true));
    assert_eq!(h[7], ("/bin/sh -c #(nop)  EXPOSE 53/udp 80".into(), true));
    assert_eq!(h[8], ("/bin/sh -c #(nop)  LABEL l=1".into(), true));
    // busybox layer + COPY; the RUN changed nothing → no layer.
    assert_eq!(img.config.rootfs.diff_ids.len(), 2);
    assert!(h[5].1, "a RUN that changes nothing makes no layer");
    assert_eq!(env.read(&id, "/f.txt").as_deref(), Some("hello\n"));
    assert_eq!(env.stat(&id, "/f.txt"), Some((0o644, 0, 0, false)));
    // Tagged.
    assert_eq!(env.images.tags.lock().unwrap()["spy/built:v1"], id);
    env.assert_clean();
}

#[tokio::test]
async fn failing_run_reports_code() {
    require_root!();
    let env = Env::new();
    let out = env.build(&[("Dockerfile", "FROM busybox\nRUN echo before; exit 3\n")], opts()).await;
    let err = out.result.as_ref().unwrap_err();
    assert_eq!(err.to_string(), "The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3");
    assert_eq!(err.code(), Some(3));
    assert_eq!(
        err.legacy_message().to_json(),
        r#"{"errorDetail":{"code":3,"message":"The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3"},"error":"The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3"}"#
    );
    assert!(out.text().contains("before\n"));
    // Nothing cached for the failed step: the rebuild runs it again.
    let again = env.build(&[("Dockerfile", "FROM busybox\nRUN echo before; exit 3\n")], opts()).await;
    assert!(again.text().contains("before\n"));
    env.assert_clean();
}

#[tokio::test]
async fn cache_hits_and_partial_invalidation() {
    require_root!();
    let env = Env::new();
    let df = "FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /a.copy\nCOPY b.txt /b.txt\nRUN cat /b.txt > /b.copy\n";
    let first = env.build(&[("Dockerfile", df), ("a.txt", "A"), ("b.txt", "B")], opts()).await;
    let id1 = first.ok();
    assert_eq!(first.cache_hits(), 0);
    let commits = *env.images.commits.lock().unwrap();
    // Same context: every step from the cache, same image, nothing run or committed.
    let runs = env.runner.runs.lock().unwrap().len();
    let second = env.build(&[("Dockerfile", df), ("a.txt", "A"), ("b.txt", "B")], opts()).await;
    assert_eq!(second.ok(), id1);
    assert_eq!(second.cache_hits(), 4);
    assert_eq!(env.runner.runs.lock().unwrap().len(), runs);
    assert_eq!(*env.images.commits.lock().unwrap(), commits);
    // mtime is not part of the hash: a fresh tar with other mtimes hits too (context_tar is
    // deterministic, so change a late file instead): only the steps from COPY b.txt rebuild.
    let third = env.build(&[("Dockerfile", df), ("a.txt", "A"), ("b.txt", "B2")], opts()).await;
    let id3 = third.ok();
    assert_ne!(id3, id1);
    assert_eq!(third.cache_hits(), 2, "{}", third.text());
    assert_eq!(env.runner.runs.lock().unwrap().len(), runs + 1);
    assert_eq!(env.read(&id3, "/b.copy").as_deref(), Some("B2"));
    assert_eq!(env.read(&id3, "/a.copy").as_deref(), Some("A"));
    // --no-cache runs everything.
    let mut o = opts();
    o.no_cache = true;
    let fourth = env.build(&[("Dockerfile", df), ("a.txt", "A"), ("b.txt", "B2")], o).await;
    fourth.ok();
    assert_eq!(fourth.cache_hits(), 0);
    env.assert_clean();
}

#[tokio::test]
async fn build_args_are_part_of_the_key() {
    require_root!();
    let env = Env::new();
    let df = "FROM busybox\nARG V=1\nRUN echo v=$V > /v\n";
    let b = |v: &str| {
        let mut o = opts();
        o.build_args = BTreeMap::from([("V".into(), Some(v.into()))]);
        o
    };
    let a = env.build(&[("Dockerfile", df)], b("a")).await;
    let ida = a.ok();
    assert_eq!(env.read(&ida, "/v").as_deref(), Some("v=a\n"));
    let bb = env.build(&[("Dockerfile", df)], b("b")).await;
    let idb = bb.ok();
    assert_ne!(ida, idb);
    assert_eq!(env.read(&idb, "/v").as_deref(), Some("v=b\n"));
    let again = env.build(&[("Dockerfile", df)], b("a")).await;
    assert_eq!(again.ok(), ida);
    assert_eq!(again.cache_hits(), 2);
    env.assert_clean();
}

#[tokio::test]
async fn cache_survives_a_restart() {
    require_root!();
    let dir = tempfile::Builder::new().prefix("wharf-test-build-cache-").tempdir().unwrap();
    let file = dir.path().join("cache.json");
    let mut env = Env::with_cache(Some(&file));
    let df = "FROM busybox\nRUN echo hi > /x\n";
    let id = env.build(&[("Dockerfile", df)], opts()).await.ok();
    let reopened: std::sync::Arc<dyn CacheStore> =
        std::sync::Arc::new(wharf_build::FileCacheStore::open(&file).unwrap());
    assert_eq!(reopened.list().unwrap().len(), 1);
    env.restart_with_cache(reopened);
    let again = env.build(&[("Dockerfile", df)], opts()).await;
    assert_eq!(again.ok(), id);
    assert_eq!(again.cache_hits(), 1);
    // Prune drops the entries.
    let r = env.builder.prune(true, None).unwrap();
    assert_eq!(r.cache_entries, 1);
    assert!(env.cache.list().unwrap().is_empty());
}

#[tokio::test]
async fn cancellation_leaves_no_cache_entry() {
    require_root!();
    let env = Env::new();
    let df = "FROM busybox\nENV A=1\nRUN sleep 30\n";
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        c2.cancel();
    });
    let start = Instant::now();
    let out = env.build_tar(context_tar(&[("Dockerfile", df)]), opts(), cancel).await;
    assert_eq!(out.err(), "Build cancelled");
    assert!(start.elapsed() < Duration::from_secs(10));
    // Only the ENV step is cached; the RUN left no entry, no snapshot, no mount.
    assert_eq!(env.cache.list().unwrap().len(), 1);
    env.assert_clean();
}

#[tokio::test]
async fn multi_stage_copy_from_target_and_parallel_stages() {
    require_root!();
    let env = Env::new();
    let df = "\
FROM busybox AS a
RUN sleep 1 && echo A > /a
FROM busybox AS b
RUN sleep 1 && echo B > /b
FROM busybox AS broken
RUN exit 1
FROM scratch
COPY --from=a /a /out/a
COPY --from=1 /b /out/
COPY --from=a /bin/busybox /bin/busybox
";
    let mut o = opts();
    o.parallelism = 2;
    let t = Instant::now();
    let out = env.build(&[("Dockerfile", df)], o).await;
    let id = out.ok();
    let took = t.elapsed();
    // Two 1 s stages in parallel, the broken one never built.
    assert!(took < Duration::from_millis(1900), "took {took:?}\n{}", out.text());
    assert!(!out.text().contains("exit 1"), "{}", out.text());
    assert_eq!(env.read(&id, "/out/a").as_deref(), Some("A\n"));
    assert_eq!(env.read(&id, "/out/b").as_deref(), Some("B\n"));
    // Output reads sequentially: stage a's steps, then b's, then the last.
    let text = out.text();
    let pa = text.find("echo A").unwrap();
    let pb = text.find("echo B").unwrap();
    let pc = text.find("COPY --from=a /a").unwrap();
    assert!(pa < pb && pb < pc, "{text}");
    // Steps counted over the built stages only: 2 + 2 + 4.
    assert!(text.contains("Step 8/8 : COPY --from=a /bin/busybox"), "{text}");
    // One aux ID per built stage.
    let aux = out.events.iter().filter(|e| matches!(e, BuildEvent::StageImage { .. })).count();
    assert_eq!(aux, 3);
    // --target picks a stage.
    let mut o = opts();
    o.target = Some("b".into());
    let tb = env.build(&[("Dockerfile", df)], o).await;
    let idb = tb.ok();
    assert_eq!(env.read(&idb, "/b").as_deref(), Some("B\n"));
    assert!(tb.text().contains("Step 2/2"), "{}", tb.text());
    env.assert_clean();
}

#[tokio::test]
async fn onbuild_triggers_run_in_the_child() {
    require_root!();
    let env = Env::new();
    let base = "FROM busybox\nONBUILD RUN echo triggered > /t\nONBUILD COPY x.txt /x.txt\n";
    let mut o = opts();
    o.tags = vec![Reference::parse_normalized("onbase").unwrap()];
    let bid = env.build(&[("Dockerfile", base)], o).await.ok();
    assert_eq!(
        env.image(&bid).config.config.unwrap().on_build.unwrap(),
        vec!["RUN echo triggered > /t", "COPY x.txt /x.txt"]
    );
    let child = env.build(&[("Dockerfile", "FROM onbase\nRUN cat /t /x.txt\n"), ("x.txt", "X\n")], opts()).await;
    let id = child.ok();
    let text = child.text();
    assert!(text.contains("# Executing 2 build triggers\n"), "{text}");
    assert!(text.contains("triggered\nX\n"), "{text}");
    assert_eq!(env.read(&id, "/t").as_deref(), Some("triggered\n"));
    // Triggers are not inherited further.
    assert!(env.image(&id).config.config.unwrap().on_build.is_none());
    // ONBUILD in a stage used as a base within the same Dockerfile.
    let df = "FROM busybox AS base\nONBUILD RUN echo s > /s\nFROM base\nRUN cat /s\n";
    let out = env.build(&[("Dockerfile", df)], opts()).await;
    let id = out.ok();
    assert_eq!(env.read(&id, "/s").as_deref(), Some("s\n"));
    env.assert_clean();
}

#[tokio::test]
async fn heredocs_and_shell() {
    require_root!();
    let env = Env::new();
    let df = "\
FROM busybox
RUN <<EOF
echo one > /h1
echo two >> /h1
EOF
RUN <<EOF
#!/bin/sh
echo script $0 > /h2
EOF
RUN cat <<A > /h3
inline
A
COPY <<EOF /etc/motd
hello $HOME
EOF
SHELL [\"/bin/sh\", \"-c\", \"-e\"]
RUN echo shell > /h4
";
    let out = env.build(&[("Dockerfile", df)], opts()).await;
    let id = out.ok();
    assert_eq!(env.read(&id, "/h1").as_deref(), Some("one\ntwo\n"));
    assert!(env.read(&id, "/h2").unwrap().starts_with("script /dev/pipes/EOF"));
    assert_eq!(env.read(&id, "/h3").as_deref(), Some("inline\n"));
    assert_eq!(env.read(&id, "/etc/motd").as_deref(), Some("hello \n"));
    assert_eq!(env.read(&id, "/h4").as_deref(), Some("shell\n"));
    // The heredoc script's mount point left no trace.
    assert_eq!(env.stat(&id, "/dev/pipes"), None);
    let img = env.image(&id);
    let last = img.config.history.last().unwrap().created_by.clone().unwrap();
    assert_eq!(last, "/bin/sh -c -e echo shell > /h4");
    env.assert_clean();
}

#[tokio::test]
async fn run_mount_cache_persists_between_builds() {
    require_root!();
    let env = Env::new();
    let df =
        "FROM busybox\nARG N\nRUN --mount=type=cache,target=/cache echo $N >> /cache/log && cat /cache/log > /seen\n";
    let b = |n: &str| {
        let mut o = opts();
        o.build_args = BTreeMap::from([("N".into(), Some(n.into()))]);
        o
    };
    let id1 = env.build(&[("Dockerfile", df)], b("1")).await.ok();
    assert_eq!(env.read(&id1, "/seen").as_deref(), Some("1\n"));
    let id2 = env.build(&[("Dockerfile", df)], b("2")).await.ok();
    assert_eq!(env.read(&id2, "/seen").as_deref(), Some("1\n2\n"));
    // The cache directory is not in the image, nor its mount point.
    assert_eq!(env.stat(&id2, "/cache"), None);
    // Other mount types.
    let df = "\
FROM busybox
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ls /scratch > /tmpfs-seen
RUN --mount=type=bind,source=data,target=/data cat /data/d.txt > /bind-seen
RUN --mount=type=secret,id=tok cat /run/secrets/tok > /secret-seen
RUN --network=none cat /proc/net/dev | wc -l > /net-lines
";
    let mut o = opts();
    o.secrets.insert("tok".into(), b"s3cret".to_vec());
    let out = env.build(&[("Dockerfile", df), ("data/", ""), ("data/d.txt", "D")], o).await;
    let id = out.ok();
    assert_eq!(env.read(&id, "/tmpfs-seen").as_deref(), Some("x\n"));
    assert_eq!(env.read(&id, "/bind-seen").as_deref(), Some("D"));
    assert_eq!(env.read(&id, "/secret-seen").as_deref(), Some("s3cret"));
    // loopback only: 2 header lines + lo.
    assert_eq!(env.read(&id, "/net-lines").as_deref(), Some("3\n"));
    assert_eq!(env.stat(&id, "/scratch"), None);
    assert_eq!(env.stat(&id, "/data"), None);
    assert_eq!(env.stat(&id, "/run/secrets"), None);
    env.assert_clean();
}

#[tokio::test]
async fn cache_from_restores_steps_from_history() {
    require_root!();
    let mut env = Env::new();
    let df = "FROM busybox\nENV A=1\nRUN echo x > /x\nCMD [\"sh\"]\n";
    let mut o = opts();
    o.tags = vec![Reference::parse_normalized("cached:1").unwrap()];
    let id = env.build(&[("Dockerfile", df)], o).await.ok();
    // A new daemon with an empty cache: --cache-from the image satisfies every step.
    env.restart_with_cache(std::sync::Arc::new(wharf_build::MemoryCacheStore::default()));
    let runs = env.runner.runs.lock().unwrap().len();
    let mut o = opts();
    o.cache_from = vec!["cached:1".into()];
    let out = env.build(&[("Dockerfile", df)], o).await;
    let id2 = out.ok();
    assert_eq!(out.cache_hits(), 3, "{}", out.text());
    assert_eq!(env.runner.runs.lock().unwrap().len(), runs);
    assert_eq!(id2, id, "the last step is the cache-from image itself");
    env.assert_clean();
}

#[tokio::test]
async fn intermediate_containers_follow_rm_and_forcerm() {
    require_root!();
    let env = Env::new();
    let df = "FROM busybox\nENV A=1\nRUN echo x > /x.txt && rm /etc/motd; true\nWORKDIR /new/dir\n";
    let ctx = [("Dockerfile", df)];
    let containers = |out: &common::Outcome| -> Vec<String> {
        out.text().lines().filter_map(|l| l.strip_prefix(" ---> Running in ")).map(str::to_owned).collect()
    };
    // rm (the default): nothing is kept.
    let out = env.build(&ctx, opts()).await;
    out.ok();
    assert_eq!(out.text().matches("Removing intermediate container").count(), 3, "{}", out.text());
    assert!(env.runner.kept.lock().unwrap().is_empty());
    // rm=false: every step's container, the RUN's with its changes and exit code.
    let mut o = opts();
    o.remove = false;
    o.no_cache = true;
    let out = env.build(&ctx, o).await;
    out.ok();
    assert!(!out.text().contains("Removing intermediate container"), "{}", out.text());
    let kept = std::mem::take(&mut *env.runner.kept.lock().unwrap());
    let ids: Vec<String> = kept.iter().map(|(k, _)| k.id.short().to_owned()).collect();
    assert_eq!(ids, containers(&out));
    let (env_step, _) = &kept[0];
    assert_eq!(env_step.exit_code, None);
    assert_eq!(env_step.config.cmd.as_ref().unwrap(), &["/bin/sh", "-c", "#(nop) ", "ENV A=1"]);
    let (run_step, paths) = &kept[1];
    assert_eq!(run_step.exit_code, Some(0));
    assert_eq!(run_step.config.cmd.as_ref().unwrap()[2], "echo x > /x.txt && rm /etc/motd; true");
    assert!(paths.contains(&"x.txt".to_owned()), "{paths:?}");
    assert!(run_step.changes.as_ref().is_some_and(|p| !p.exists()), "the tar is removed once handed over");
    let (workdir_step, paths) = &kept[2];
    assert_eq!(workdir_step.exit_code, None);
    assert_eq!(workdir_step.config.working_dir.as_deref(), Some("/new/dir"));
    assert_eq!(paths, &["new/", "new/dir/"]);
    // A failing step: its container stays with rm, goes with forcerm.
    let failing = [("Dockerfile", "FROM busybox\nRUN exit 4\n")];
    let out = env.build(&failing, opts()).await;
    assert_eq!(out.err(), "The command '/bin/sh -c exit 4' returned a non-zero code: 4");
    let kept = std::mem::take(&mut *env.runner.kept.lock().unwrap());
    assert_eq!(kept.iter().map(|(k, _)| k.exit_code).collect::<Vec<_>>(), [Some(4)]);
    assert!(!out.text().contains("Removing intermediate container"), "{}", out.text());
    // A process that cannot start leaves a container that never ran.
    let out = env.build(&[("Dockerfile", "FROM busybox\nRUN [\"nosuch\"]\n")], opts()).await;
    assert!(out.err().contains("executable file not found"), "{}", out.err());
    let kept = std::mem::take(&mut *env.runner.kept.lock().unwrap());
    assert_eq!(kept.iter().map(|(k, p)| (k.exit_code, p.len())).collect::<Vec<_>>(), [(None, 0)]);
    let mut o = opts();
    o.force_remove = true;
    let out = env.build(&failing, o).await;
    out.err();
    assert!(env.runner.kept.lock().unwrap().is_empty());
    assert!(out.text().contains("Removing intermediate container"), "{}", out.text());
    env.assert_clean();
}

#[tokio::test]
async fn pull_and_unknown_images() {
    require_root!();
    let env = Env::new();
    let mut o = opts();
    o.pull = true;
    let out = env.build(&[("Dockerfile", "FROM busybox\n")], o).await;
    out.ok();
    assert!(out.text().is_empty() || out.events.iter().any(|e| matches!(e, BuildEvent::Progress(_))));
    assert_eq!(env.images.resolves.lock().unwrap().last().unwrap().1, wharf_build::PullPolicy::Always);
    let out = env.build(&[("Dockerfile", "FROM nosuch\n")], opts()).await;
    assert_eq!(out.err(), "pull access denied for nosuch, repository does not exist or may require 'docker login'");
    let out = env.build(&[("Dockerfile", "FROM scratch\n")], opts()).await;
    assert_eq!(out.err(), "No image was generated. Is your Dockerfile empty?");
    assert!(out.text().starts_with("Step 1/1 : FROM scratch\n ---> \n"), "{}", out.text());
}

#[tokio::test]
async fn user_workdir_and_metadata() {
    require_root!();
    let env = Env::new();
    let df = "\
FROM busybox
WORKDIR /app
WORKDIR sub
RUN pwd > /pwd
USER app
RUN id -u > /tmp/uid
USER root
VOLUME /data
STOPSIGNAL SIGKILL
HEALTHCHECK --interval=30s CMD true
ENTRYPOINT [\"/bin/sh\"]
MAINTAINER me
";
    let out = env.build(&[("Dockerfile", df)], opts()).await;
    let id = out.ok();
    assert_eq!(env.read(&id, "/pwd").as_deref(), Some("/app/sub\n"));
    assert_eq!(env.read(&id, "/tmp/uid").as_deref(), Some("1000\n"));
    assert_eq!(env.stat(&id, "/app/sub").map(|s| s.3), Some(true));
    let img = env.image(&id);
    let c = img.config.config.clone().unwrap();
    assert_eq!(c.working_dir.as_deref(), Some("/app/sub"));
    assert_eq!(c.stop_signal.as_deref(), Some("SIGKILL"));
    assert_eq!(c.entrypoint, Some(vec!["/bin/sh".into()]));
    assert_eq!(c.cmd, None, "ENTRYPOINT resets an inherited CMD");
    assert_eq!(c.healthcheck.unwrap().interval, 30_000_000_000);
    assert!(c.volumes.unwrap().contains_key("/data"));
    assert_eq!(img.config.author.as_deref(), Some("me"));
    let by: Vec<String> = img.config.history.iter().map(|h| h.created_by.clone().unwrap()).collect();
    assert!(by.contains(&"/bin/sh -c #(nop) WORKDIR /app".to_string()), "{by:?}");
    assert!(by.contains(&"/bin/sh -c #(nop)  HEALTHCHECK &{Test:[CMD-SHELL true] Interval:30s Timeout:0s StartPeriod:0s StartInterval:0s Retries:0}".to_string()), "{by:?}");
    assert!(by.contains(&"/bin/sh -c #(nop)  VOLUME [/data]".to_string()), "{by:?}");
    let out = env.build(&[("Dockerfile", "FROM busybox\nSTOPSIGNAL SIGNOPE\n")], opts()).await;
    assert_eq!(out.err(), "Invalid signal: SIGNOPE");
    env.assert_clean();
}

#[tokio::test]
async fn options_default_is_docker_default() {
    let o = BuildOptions::default();
    assert!(o.remove && !o.force_remove && !o.no_cache);
}

#[tokio::test]
async fn build_args_in_from_and_platform() {
    require_root!();
    let env = Env::new();
    let df = "ARG BASE=nosuch\nFROM --platform=linux/arm64 $BASE AS x\nRUN true\n";
    let mut o = opts();
    o.build_args = BTreeMap::from([("BASE".into(), Some("busybox".into()))]);
    let out = env.build(&[("Dockerfile", df)], o).await;
    let id = out.ok();
    assert!(
        out.text().starts_with("Step 1/3 : ARG BASE=nosuch\nStep 2/3 : FROM --platform=linux/arm64 $BASE AS x\n"),
        "{}",
        out.text()
    );
    assert!(!out.text().contains("not consumed"));
    assert_eq!(env.images.resolves.lock().unwrap()[0].0, "busybox");
    assert!(env.image(&id).config.history.len() > 2);
    // A scratch stage takes its os/architecture from the platform.
    let mut o = opts();
    o.platform = Some(wharf_types::Platform::parse("linux/arm64").unwrap());
    let out = env.build(&[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "x")], o).await;
    let img = env.image(&out.ok());
    assert_eq!(img.config.architecture, "arm64");
    assert_eq!(img.config.rootfs.diff_ids.len(), 1);
    env.assert_clean();
}

#[tokio::test]
async fn bare_dockerfile_body_and_compressed_context() {
    require_root!();
    let env = Env::new();
    let out = env.build_tar(b"FROM busybox\nRUN echo bare > /b\n".to_vec(), opts(), CancellationToken::new()).await;
    assert_eq!(env.read(&out.ok(), "/b").as_deref(), Some("bare\n"));
    let tar = context_tar(&[("Dockerfile", "FROM busybox\nCOPY a /a\n"), ("a", "A")]);
    let out = env.build_tar(common::gzip(&tar), opts(), CancellationToken::new()).await;
    assert_eq!(env.read(&out.ok(), "/a").as_deref(), Some("A"));
    let out =
        env.build_tar(context_tar(&[("Dockerfile", "FROM busybox\nFORM x\n")]), opts(), CancellationToken::new()).await;
    assert_eq!(out.err(), "dockerfile parse error on line 2: unknown instruction: FORM (did you mean FROM?)");
}
