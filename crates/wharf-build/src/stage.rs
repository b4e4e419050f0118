//! One stage: FROM, ONBUILD triggers, then every instruction with Docker's legacy semantics.
//!
//! Each step either changes only the config (ENV, LABEL, CMD, …: an image with an
//! `empty_layer` history entry) or the filesystem (WORKDIR, COPY, ADD, RUN: a writable
//! snapshot, diffed into a layer; a step that changed nothing makes no layer). Every step makes
//! an image whose history entry is the legacy builder's (`/bin/sh -c #(nop)  ENV A=1`,
//! `/bin/sh -c #(nop) COPY file:<hash> in /dst `, `|1 A=1 /bin/sh -c make`), probes the cache
//! first ([`crate::cache`]) and records itself in the cache once committed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};
use wharf_dockerfile::{
    BaseRef, HeredocScript, Instruction, InstructionKind, MountKind, Network, Recording, RunMount, Security, StageArgs,
};
use wharf_types::image::{HealthConfig, History, ImageConfig, RuntimeConfig};
use wharf_types::{ContainerId, Digest, EngineError, ErrorKind, Platform};

use crate::backend::{
    BaseImage, ExtraMount, KeptContainer, MountSource, NetworkMode, NewImage, NewLayer, OutputSink, OutputStream,
    ProgressFn, PullPolicy, RunSpec,
};
use crate::build::{BuildError, BuildRun, StageOut};
use crate::cache::{CacheFromHit, step_key};
use crate::copy::{self, CopyPlan, CopySource, SourceRoot};
use crate::event::BuildEvent;
use crate::fsutil;
use crate::layer::{View, top_snapshot};
use crate::mountpoints::MountPoints;
use wharf_types::gostr::quote as go_quote;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Something kept alive until a step ends (views, temp dirs, cache-mount locks).
type Keep = Box<dyn std::any::Any + Send>;

struct Stage<'a> {
    run: &'a Arc<BuildRun>,
    idx: usize,
    image: Option<BaseImage>,
    config: ImageConfig,
    rc: RuntimeConfig,
    cmd_set: bool,
    maintainer: Option<String>,
    platform: Platform,
    args: StageArgs<'a>,
    step_no: usize,
}

fn blocking_err(e: tokio::task::JoinError) -> BuildError {
    BuildError::step(format!("build step task failed: {e}"), ErrorKind::Internal)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BuildError> + Send + 'static,
) -> Result<T, BuildError> {
    tokio::task::spawn_blocking(f).await.map_err(blocking_err)?
}

/// Go's `fmt.Sprintf("%q", []string{…})`: `["a" "b"]`.
fn go_quote_list(v: &[String]) -> String {
    format!("[{}]", v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(" "))
}

/// Go's `time.Duration.String()`.
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let s = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        trim_frac(u as f64 / 1e3, "µs")
    } else if u < 1_000_000_000 {
        trim_frac(u as f64 / 1e6, "ms")
    } else {
        let total = u as f64 / 1e9;
        let h = u / 3_600_000_000_000;
        let m = (u / 60_000_000_000) % 60;
        let secs = total - (h * 3600 + m * 60) as f64;
        let sec = trim_frac(secs, "s");
        match (h, m) {
            (0, 0) => sec,
            (0, m) => format!("{m}m{sec}"),
            (h, m) => format!("{h}h{m}m{sec}"),
        }
    };
    if neg { format!("-{s}") } else { s }
}

fn trim_frac(v: f64, unit: &str) -> String {
    let t = format!("{v:.9}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    format!("{t}{unit}")
}

/// RFC 3339 with nanoseconds, UTC.
pub(crate) fn rfc3339_now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Docker's `normalizeWorkdir`.
fn normalize_workdir(current: &str, requested: &str) -> String {
    if requested.starts_with('/') {
        fsutil::clean(requested)
    } else {
        fsutil::clean(&format!("/{current}/{requested}"))
    }
}

fn valid_signal(s: &str) -> bool {
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE", "POLL",
        "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1",
        "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    if let Ok(n) = s.parse::<u32>() {
        return n > 0 && n < 65;
    }
    let u = s.to_ascii_uppercase();
    let name = u.strip_prefix("SIG").unwrap_or(&u);
    if let Some(rt) = name.strip_prefix("RTMIN") {
        return rt.is_empty() || rt.strip_prefix('+').is_some_and(|n| n.parse::<u32>().is_ok());
    }
    if let Some(rt) = name.strip_prefix("RTMAX") {
        return rt.is_empty() || rt.strip_prefix('-').is_some_and(|n| n.parse::<u32>().is_ok());
    }
    NAMES.contains(&name)
}

/// Forwards RUN output into the stage's events.
struct StageSink {
    run: Arc<BuildRun>,
    idx: usize,
}

impl OutputSink for StageSink {
    fn write(&self, _stream: OutputStream, data: &[u8]) {
        self.run.emitter.emit(Some(self.idx), BuildEvent::Output { data: data.to_vec() });
    }
}

/// What a step decided to do.
enum Outcome {
    /// Satisfied by the cache.
    Hit,
    /// Executed.
    Done,
}

pub(crate) async fn run_stage(run: &Arc<BuildRun>, idx: usize) -> Result<StageOut, BuildError> {
    let node = &run.graph.stages[idx];
    let platform = match &node.platform {
        Some(p) => Platform::parse(p).map_err(|e| BuildError::from_err(&e))?,
        None => run.default_platform.clone(),
    };
    let mut st = Stage {
        run,
        idx,
        image: None,
        config: ImageConfig::default(),
        rc: RuntimeConfig::default(),
        cmd_set: false,
        maintainer: None,
        platform,
        args: StageArgs::new(&run.globals, &run.build_args),
        step_no: run.first_step[&idx],
    };
    st.from().await?;
    let insts = run.df.stages[idx].instructions.clone();
    for inst in &insts {
        st.step(inst, true, true).await?;
    }
    if idx == run.target {
        for inst in run.label_steps.clone() {
            st.step(&inst, true, false).await?;
        }
    }
    if let Some(img) = &st.image {
        st.emit(BuildEvent::StageImage { image: img.id.clone() });
    }
    Ok(StageOut { image: st.image, platform: st.platform })
}

impl<'a> Stage<'a> {
    fn emit(&self, ev: BuildEvent) {
        self.run.emitter.emit(Some(self.idx), ev);
    }

    fn check_cancel(&self) -> Result<(), BuildError> {
        if self.run.is_cancelled() { Err(BuildError::Cancelled) } else { Ok(()) }
    }

    fn shell(&self) -> Vec<String> {
        match &self.rc.shell {
            Some(s) if !s.is_empty() => s.clone(),
            _ => vec!["/bin/sh".into(), "-c".into()],
        }
    }

    fn env(&self) -> Vec<String> {
        self.rc.env.clone().unwrap_or_default()
    }

    fn parent_diff_ids(&self) -> Vec<Digest> {
        self.config.rootfs.diff_ids.clone()
    }

    fn top(&self) -> Option<String> {
        top_snapshot(&self.config.rootfs.diff_ids)
    }

    fn progress(&self) -> ProgressFn {
        let run = self.run.clone();
        let idx = self.idx;
        Arc::new(move |v| run.emitter.emit(Some(idx), BuildEvent::Progress(v)))
    }

    fn pull_policy(&self) -> PullPolicy {
        if self.run.opts.pull { PullPolicy::Always } else { PullPolicy::Missing }
    }

    /// FROM: the base image (or scratch, or an earlier stage), then ONBUILD triggers.
    async fn from(&mut self) -> Result<(), BuildError> {
        let run = self.run;
        let stage = &run.df.stages[self.idx];
        self.emit(BuildEvent::Step { number: self.step_no, total: run.total_steps, text: stage.original.clone() });
        self.step_no += 1;
        self.check_cancel()?;
        let base: Option<BaseImage> = match &run.graph.stages[self.idx].base {
            BaseRef::Scratch => None,
            BaseRef::Stage(b) => {
                let out = run.stage_result(*b).await?;
                if run.graph.stages[self.idx].platform.is_none() {
                    self.platform = out.platform;
                }
                out.image
            }
            BaseRef::Image(name) => Some(
                run.inner
                    .images
                    .resolve(name, &self.platform, self.pull_policy(), self.progress())
                    .await
                    .map_err(BuildError::Backend)?,
            ),
        };
        match base {
            Some(img) => {
                self.config = img.config.clone();
                self.rc = img.config.config.clone().unwrap_or_default();
                self.image = Some(img);
            }
            None => {
                self.config = ImageConfig {
                    architecture: self.platform.architecture.clone(),
                    os: self.platform.os.clone(),
                    variant: self.platform.variant.clone(),
                    ..ImageConfig::default()
                };
                self.rc = RuntimeConfig::default();
                self.image = None;
            }
        }
        for k in ["OpenStdin", "StdinOnce", "AttachStdin", "Image"] {
            self.rc.extra.remove(k);
        }
        let mut env = self.env();
        if !env.iter().any(|e| e.split('=').next() == Some("PATH")) {
            env.push(format!("PATH={DEFAULT_PATH}"));
            self.rc.env = Some(env);
        }
        let triggers = self.rc.on_build.take().unwrap_or_default();
        if !triggers.is_empty() {
            self.emit(BuildEvent::Triggers { count: triggers.len() });
            for t in &triggers {
                let df = wharf_dockerfile::parse(&format!("FROM scratch\n{t}"))
                    .map_err(|e| BuildError::step(e.message().to_string(), ErrorKind::InvalidArgument))?;
                let insts = &df.stages[0].instructions;
                if insts.len() != 1 {
                    return Err(BuildError::step(
                        "onbuild trigger should be a single expression",
                        ErrorKind::InvalidArgument,
                    ));
                }
                if let InstructionKind::Arg(d) = &insts[0].kind {
                    self.run.declared.lock().expect("declared").extend(d.iter().map(|d| d.name.clone()));
                }
                Box::pin(self.step(&insts[0], false, true)).await?;
            }
        }
        self.emit(BuildEvent::StepImage { image: self.image.as_ref().map(|i| i.id.clone()) });
        Ok(())
    }

    /// One instruction. `show`: print `Step N/M` and ` ---> id` (not for ONBUILD triggers).
    async fn step(&mut self, inst: &Instruction, show: bool, expand: bool) -> Result<(), BuildError> {
        self.check_cancel()?;
        if show {
            self.emit(BuildEvent::Step {
                number: self.step_no,
                total: self.run.total_steps,
                text: inst.original.clone(),
            });
            self.step_no += 1;
        }
        let lex = self.run.df.lexer();
        let env = self.env();
        let mut used = BTreeMap::new();
        let inst = match &inst.kind {
            InstructionKind::Arg(decls) => {
                self.args
                    .declare_all(decls, &lex, &env)
                    .map_err(|e| BuildError::step(e.to_string(), ErrorKind::InvalidArgument))?;
                for d in decls {
                    if let Some(v) = self.args.get(&d.name) {
                        used.insert(d.name.clone(), v.to_string());
                    }
                }
                inst.clone()
            }
            InstructionKind::Onbuild(_) => inst.clone(),
            _ if !expand => inst.clone(),
            _ => {
                let scope = self.args.env(&env);
                let rec = Recording::new(&scope);
                let x =
                    inst.expand(&lex, &rec).map_err(|e| BuildError::step(e.to_string(), ErrorKind::InvalidArgument))?;
                for name in rec.used() {
                    if !env.iter().any(|e| e.split('=').next() == Some(name.as_str()))
                        && let Some(v) = self.args.get(&name)
                    {
                        used.insert(name, v.to_string());
                    }
                }
                x
            }
        };
        let outcome = self.dispatch(&inst, used).await?;
        {
            let mut s = self.run.stats.lock().expect("stats");
            match outcome {
                Outcome::Hit => s.0 += 1,
                Outcome::Done => s.1 += 1,
            }
        }
        if show {
            self.emit(BuildEvent::StepImage { image: self.image.as_ref().map(|i| i.id.clone()) });
        }
        Ok(())
    }

    async fn dispatch(&mut self, inst: &Instruction, used: BTreeMap<String, String>) -> Result<Outcome, BuildError> {
        let two_arg = |s: &Self, comment: String| {
            let mut c = s.shell();
            c.push("#(nop) ".into());
            c.push(comment);
            c
        };
        match &inst.kind {
            InstructionKind::Env(kvs) => {
                let mut env = self.env();
                let mut msg = String::from("ENV");
                for kv in kvs {
                    let nv = format!("{}={}", kv.key, kv.value);
                    msg.push(' ');
                    msg.push_str(&nv);
                    match env.iter_mut().find(|e| e.split('=').next() == Some(kv.key.as_str())) {
                        Some(e) => *e = nv,
                        None => env.push(nv),
                    }
                }
                self.rc.env = Some(env);
                let cmd = two_arg(self, msg);
                self.meta(cmd, used).await
            }
            InstructionKind::Maintainer(m) => {
                self.maintainer = Some(m.clone());
                let cmd = two_arg(self, format!("MAINTAINER {m}"));
                self.meta(cmd, used).await
            }
            InstructionKind::Label(kvs) => {
                let labels = self.rc.labels.get_or_insert_with(BTreeMap::new);
                let mut msg = String::from("LABEL");
                for kv in kvs {
                    labels.insert(kv.key.clone(), kv.value.clone());
                    msg.push_str(&format!(" {}={}", kv.key, kv.value));
                }
                let cmd = two_arg(self, msg);
                self.meta(cmd, used).await
            }
            InstructionKind::Onbuild(o) => {
                self.rc.on_build.get_or_insert_with(Vec::new).push(o.expression.clone());
                let cmd = two_arg(self, format!("ONBUILD {}", o.expression));
                self.meta(cmd, used).await
            }
            InstructionKind::Cmd(c) => {
                let cmd = self.resolve_cmdline(&c.args, c.prepend_shell);
                self.rc.cmd = Some(cmd.clone());
                self.rc.args_escaped = None;
                if !c.args.is_empty() {
                    self.cmd_set = true;
                }
                let nop = two_arg(self, format!("CMD {}", go_quote_list(&cmd)));
                self.meta(nop, used).await
            }
            InstructionKind::Entrypoint(c) => {
                let ep = self.resolve_cmdline(&c.args, c.prepend_shell);
                self.rc.entrypoint = Some(ep.clone());
                self.rc.args_escaped = None;
                if !self.cmd_set {
                    self.rc.cmd = None;
                }
                let nop = two_arg(self, format!("ENTRYPOINT {}", go_quote_list(&ep)));
                self.meta(nop, used).await
            }
            InstructionKind::Healthcheck(h) => {
                let hc = match h {
                    wharf_dockerfile::Healthcheck::None => {
                        HealthConfig { test: vec!["NONE".into()], ..HealthConfig::default() }
                    }
                    wharf_dockerfile::Healthcheck::Check(c) => HealthConfig {
                        test: c.test.clone(),
                        interval: c.interval.as_nanos() as i64,
                        timeout: c.timeout.as_nanos() as i64,
                        start_period: c.start_period.as_nanos() as i64,
                        start_interval: c.start_interval.as_nanos() as i64,
                        retries: i64::from(c.retries),
                    },
                };
                let desc = format!(
                    "HEALTHCHECK &{{Test:[{}] Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
                    hc.test.join(" "),
                    go_duration(hc.interval),
                    go_duration(hc.timeout),
                    go_duration(hc.start_period),
                    go_duration(hc.start_interval),
                    hc.retries
                );
                self.rc.healthcheck = Some(hc);
                let cmd = two_arg(self, desc);
                self.meta(cmd, used).await
            }
            InstructionKind::Expose(ports) => {
                let map = self.rc.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in ports {
                    let spec = wharf_dockerfile::parse_port_spec(p)
                        .map_err(|m| BuildError::step(m, ErrorKind::InvalidArgument))?;
                    for k in spec.keys() {
                        map.insert(k, serde_json::json!({}));
                    }
                }
                let cmd = two_arg(self, format!("EXPOSE {}", ports.join(" ")));
                self.meta(cmd, used).await
            }
            InstructionKind::User(u) => {
                self.rc.user = Some(u.clone());
                let cmd = two_arg(self, format!("USER {u}"));
                self.meta(cmd, used).await
            }
            InstructionKind::Volume(v) => {
                let map = self.rc.volumes.get_or_insert_with(BTreeMap::new);
                for p in v {
                    if p.is_empty() {
                        return Err(BuildError::step(
                            "VOLUME specified can not be an empty string",
                            ErrorKind::InvalidArgument,
                        ));
                    }
                    map.insert(p.clone(), serde_json::json!({}));
                }
                let cmd = two_arg(self, format!("VOLUME [{}]", v.join(" ")));
                self.meta(cmd, used).await
            }
            InstructionKind::StopSignal(s) => {
                if !valid_signal(s) {
                    return Err(BuildError::step(format!("Invalid signal: {s}"), ErrorKind::InvalidArgument));
                }
                self.rc.stop_signal = Some(s.clone());
                let cmd = two_arg(self, format!("STOPSIGNAL {s}"));
                self.meta(cmd, used).await
            }
            InstructionKind::Arg(decls) => {
                let mut msg = String::from("ARG ");
                let parts: Vec<String> = decls
                    .iter()
                    .map(|d| match &d.default {
                        Some(v) => format!("{}={v}", d.name),
                        None => d.name.clone(),
                    })
                    .collect();
                msg.push_str(&parts.join(" "));
                let cmd = two_arg(self, msg);
                self.meta(cmd, used).await
            }
            InstructionKind::Shell(s) => {
                self.rc.shell = Some(s.clone());
                let cmd = two_arg(self, format!("SHELL [{}]", s.join(" ")));
                self.meta(cmd, used).await
            }
            InstructionKind::Workdir(p) => self.workdir(p, used).await,
            InstructionKind::Copy(c) => {
                let spec = CopySpec {
                    cmd: "COPY",
                    sources: c.sources.clone(),
                    inline: c.inline.clone(),
                    dest: c.dest.clone(),
                    from: c.from.clone(),
                    chown: c.chown.clone(),
                    chmod: c.chmod.clone(),
                    parents: c.parents,
                    excludes: c.excludes.clone(),
                    checksum: None,
                    unpack: false,
                };
                self.copy(spec, used).await
            }
            InstructionKind::Add(a) => {
                let spec = CopySpec {
                    cmd: "ADD",
                    sources: a.sources.clone(),
                    inline: a.inline.clone(),
                    dest: a.dest.clone(),
                    from: None,
                    chown: a.chown.clone(),
                    chmod: a.chmod.clone(),
                    parents: false,
                    excludes: a.excludes.clone(),
                    checksum: a.checksum.clone(),
                    unpack: a.unpack.unwrap_or(true),
                };
                self.copy(spec, used).await
            }
            InstructionKind::Run(r) => self.run_step(r, used).await,
        }
    }

    /// Docker's `resolveCmdLine`: shell form gets the SHELL prepended.
    fn resolve_cmdline(&self, args: &[String], prepend_shell: bool) -> Vec<String> {
        if prepend_shell && !args.is_empty() {
            let mut v = self.shell();
            v.extend(args.iter().cloned());
            v
        } else {
            args.to_vec()
        }
    }

    fn key(&self, cmd: &[String], used: &BTreeMap<String, String>, extra: &serde_json::Value) -> String {
        step_key(self.image.as_ref().map(|i| &i.id), &self.platform, &self.rc, cmd, used, extra)
    }

    /// Looks the step up in the cache and in `--cache-from`. On a hit the stage moves to the
    /// cached image.
    async fn probe(&mut self, key: &str, created_by: &str) -> Result<bool, BuildError> {
        if self.run.opts.no_cache {
            return Ok(false);
        }
        let inner = &self.run.inner;
        if let Some(id) = inner.cache.get(key).map_err(BuildError::Backend)? {
            let found = inner.images.get(&id).await.map_err(BuildError::Backend)?;
            let outside = {
                let cf = self.run.cache_from.lock().await;
                found.as_ref().is_some_and(|img| !cf.is_empty() && !cf.contains(&img.config))
            };
            match found {
                // With `--cache-from`, only images of the sources' histories (Docker's rule).
                Some(_) if outside => {}
                Some(img) if self.layers_present(&img) => {
                    let _ = inner.cache.touch(key);
                    self.adopt(img);
                    self.emit(BuildEvent::UsingCache);
                    return Ok(true);
                }
                _ => {
                    let _ = inner.cache.remove(key);
                }
            }
        }
        let mut cf = self.run.cache_from.lock().await;
        if cf.is_empty() {
            return Ok(false);
        }
        let parent = self.image.as_ref().map(|i| &i.config);
        let Some(hit) = cf.probe(parent, created_by) else {
            return Ok(false);
        };
        drop(cf);
        match hit {
            CacheFromHit::Image(img) => self.adopt(img),
            CacheFromHit::Restore { history, diff_ids } => {
                let mut cfg = self.config.clone();
                cfg.config = Some(self.rc.clone());
                cfg.created = history.last().and_then(|h| h.created.clone());
                cfg.history = history;
                cfg.rootfs.diff_ids = diff_ids;
                self.commit_config(cfg, None).await?;
            }
        }
        // Docker links the image to its parent here, so later builds find it in their local
        // cache; ours is keyed by step.
        let id = self.image.as_ref().expect("a cache hit sets the image").id.clone();
        inner.cache.put(key, &id).map_err(BuildError::Backend)?;
        self.emit(BuildEvent::UsingCache);
        Ok(true)
    }

    fn layers_present(&self, img: &BaseImage) -> bool {
        match top_snapshot(&img.config.rootfs.diff_ids) {
            None => true,
            Some(s) => self.run.inner.layers.snapshotter.stat(&s).is_ok(),
        }
    }

    fn adopt(&mut self, img: BaseImage) {
        self.config = img.config.clone();
        self.image = Some(img);
    }

    /// Commits `cfg` as a new image on the current one.
    async fn commit_config(&mut self, mut cfg: ImageConfig, layer: Option<NewLayer>) -> Result<(), BuildError> {
        for k in ["container", "container_config", "docker_version"] {
            cfg.extra.remove(k);
        }
        let json = serde_json::to_vec(&cfg).map_err(|e| BuildError::step(e.to_string(), ErrorKind::Internal))?;
        let id = Digest::sha256_bytes(&Sha256::digest(&json).into());
        self.run
            .inner
            .committer
            .commit(NewImage {
                id: id.clone(),
                config_json: json,
                config: cfg.clone(),
                parent: self.image.as_ref().map(|i| i.id.clone()),
                layer,
            })
            .await
            .map_err(BuildError::Backend)?;
        self.config = cfg.clone();
        self.image = Some(BaseImage { id, config: cfg });
        Ok(())
    }

    /// Makes the step's image (history entry `created_by`; a layer or an empty-layer entry)
    /// and records it in the cache under `key`.
    async fn make_image(&mut self, created_by: String, layer: Option<NewLayer>, key: &str) -> Result<(), BuildError> {
        let mut cfg = self.config.clone();
        let created = rfc3339_now();
        cfg.config = Some(self.rc.clone());
        cfg.created = Some(created.clone());
        cfg.author = self.maintainer.clone();
        cfg.history.push(History {
            created: Some(created),
            created_by: Some(created_by),
            author: self.maintainer.clone(),
            comment: None,
            empty_layer: layer.is_none(),
        });
        if let Some(l) = &layer {
            cfg.rootfs.diff_ids.push(l.diff_id.clone());
        }
        self.commit_config(cfg, layer).await?;
        // Written after the commit, so an entry never names a half-made image. With
        // `--no-cache` too: the next build may use what this one made, as in Docker.
        let id = self.image.as_ref().expect("just committed").id.clone();
        self.run.inner.cache.put(key, &id).map_err(BuildError::Backend)?;
        Ok(())
    }

    fn container_id(&self) -> ContainerId {
        ContainerId::random()
    }

    /// Whether the step's container stays when the step is over, as in Docker's `dispatch`:
    /// `forcerm` removes it always, `rm` (the default) when the step succeeded. A step on
    /// `scratch` has no image to make a container of.
    fn keeps_container(&self, succeeded: bool) -> bool {
        let o = &self.run.opts;
        let removed = o.force_remove || (o.remove && succeeded);
        !removed && self.image.is_some()
    }

    /// Hands a step's container to the runner to keep; `file` (the changes' tar) is removed
    /// afterwards.
    async fn keep_container(&self, kept: KeptContainer, file: Option<PathBuf>) -> Result<(), BuildError> {
        let r = self.run.inner.runner.keep(kept).await;
        if let Some(p) = file {
            let _ = std::fs::remove_file(p);
        }
        r.map_err(BuildError::Backend)
    }

    /// The container of a metadata step (never started, no changes) with `cmd` as its
    /// command, on the image the step started from; the config is the step's result. WORKDIR
    /// adds its directory as the changes.
    fn meta_container(&self, id: &ContainerId, parent: Digest, cmd: Vec<String>) -> KeptContainer {
        KeptContainer {
            id: id.clone(),
            image: parent,
            config: RuntimeConfig { cmd: Some(cmd), ..self.rc.clone() },
            exit_code: None,
            changes: None,
            network: NetworkMode::Default(self.run.opts.network_mode.clone()),
        }
    }

    /// A metadata-only step: probe, else an image without a layer.
    async fn meta(&mut self, cmd: Vec<String>, used: BTreeMap<String, String>) -> Result<Outcome, BuildError> {
        let created_by = cmd.join(" ");
        let key = self.key(&cmd, &used, &serde_json::Value::Null);
        if self.probe(&key, &created_by).await? {
            return Ok(Outcome::Hit);
        }
        let id = self.container_id();
        self.emit(BuildEvent::RunningIn { container: id.clone() });
        let kept = self.keeps_container(true).then(|| self.image.as_ref().map(|i| i.id.clone())).flatten();
        self.make_image(created_by, None, &key).await?;
        match kept {
            Some(parent) => self.keep_container(self.meta_container(&id, parent, cmd), None).await?,
            None => self.emit(BuildEvent::RemovingContainer { container: id }),
        }
        Ok(Outcome::Done)
    }

    async fn workdir(&mut self, p: &str, used: BTreeMap<String, String>) -> Result<Outcome, BuildError> {
        if p.is_empty() {
            return Err(BuildError::step("cannot normalize nothing", ErrorKind::InvalidArgument));
        }
        let current = self.rc.working_dir.clone().unwrap_or_default();
        let wd = normalize_workdir(&current, p);
        self.rc.working_dir = Some(wd.clone());
        let mut cmd = self.shell();
        cmd.push(format!("#(nop) WORKDIR {wd}"));
        let created_by = cmd.join(" ");
        let key = self.key(&cmd, &used, &serde_json::Value::Null);
        if self.probe(&key, &created_by).await? {
            return Ok(Outcome::Hit);
        }
        let id = self.container_id();
        self.emit(BuildEvent::RunningIn { container: id.clone() });
        let layers = self.run.inner.layers.clone();
        let top = self.top();
        let parents = self.parent_diff_ids();
        let kept = self.keeps_container(true).then(|| self.image.as_ref().map(|i| i.id.clone())).flatten();
        // A kept WORKDIR container holds the directory, as Docker's does.
        let changes = kept.is_some().then(|| self.run.inner.tmp().join(format!("kept-{id}.tar")));
        let changes_file = changes.clone();
        let (layer, changed) = blocking(move || {
            let mut rw = layers.prepare_rw(top.as_deref()).map_err(|e| BuildError::from_err(&e))?;
            fsutil::resolve_in_scope(rw.root(), &wd)
                .and_then(|p| fsutil::mkdir_all(&p, None))
                .map_err(|e| BuildError::step(format!("mkdir {wd}: {e}"), ErrorKind::Internal))?;
            let changed = match &changes_file {
                Some(p) => rw.changes_to(p).map_err(|e| BuildError::from_err(&e))?,
                None => false,
            };
            rw.finish(&parents).map(|l| (l, changed)).map_err(|e| BuildError::from_err(&e))
        })
        .await?;
        self.make_image(created_by, layer, &key).await?;
        match kept {
            Some(parent) => {
                let container = KeptContainer {
                    changes: changes.clone().filter(|_| changed),
                    ..self.meta_container(&id, parent, cmd)
                };
                self.keep_container(container, changes).await?;
            }
            None => self.emit(BuildEvent::RemovingContainer { container: id }),
        }
        Ok(Outcome::Done)
    }
}

/// A COPY or ADD after expansion.
struct CopySpec {
    cmd: &'static str,
    sources: Vec<String>,
    inline: Vec<wharf_dockerfile::InlineSource>,
    dest: String,
    from: Option<String>,
    chown: Option<String>,
    chmod: Option<String>,
    parents: bool,
    excludes: Vec<String>,
    checksum: Option<String>,
    unpack: bool,
}

impl Stage<'_> {
    /// The image a `--from` / `from=` names: an earlier stage's result or an image.
    async fn image_for_from(&self, from: &str) -> Result<Option<BaseImage>, BuildError> {
        let run = self.run;
        let lower = from.to_lowercase();
        let stage = run
            .df
            .stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .map(|s| s.index)
            .or_else(|| from.parse::<usize>().ok().filter(|i| *i < run.df.stages.len()));
        match stage {
            Some(i) => Ok(run.stage_result(i).await?.image),
            None => {
                Ok(Some(
                    run.inner.images.resolve(from, &self.platform, self.pull_policy(), self.progress()).await.map_err(
                        |e| BuildError::step(format!("invalid from flag value {from}: {}", e.message), e.kind),
                    )?,
                ))
            }
        }
    }

    async fn copy(&mut self, spec: CopySpec, used: BTreeMap<String, String>) -> Result<Outcome, BuildError> {
        let cmd_name = spec.cmd;
        let wrap = move |e: copy::CopyError| {
            let m = EngineError::from_classified(&e);
            BuildError::step(format!("{cmd_name} failed: {}", m.message), m.kind)
        };
        let chmod = spec.chmod.as_deref().map(copy::parse_chmod).transpose().map_err(wrap)?;
        let excludes = copy::excludes(&spec.excludes).map_err(wrap)?;
        let tmp = self.run.inner.tmp();
        let mut keep: Vec<Keep> = Vec::new();
        let mut sources: Vec<CopySource> = Vec::new();
        let mut default_owner = Some((0, 0));
        // Sources from another stage or image.
        let view: Option<Arc<View>> = match &spec.from {
            Some(f) => {
                let img = self.image_for_from(f).await?;
                default_owner = None;
                let layers = self.run.inner.layers.clone();
                let top = img.as_ref().and_then(|i| top_snapshot(&i.config.rootfs.diff_ids));
                let v = blocking(move || layers.view(top.as_deref()).map_err(|e| BuildError::from_err(&e))).await?;
                let v = Arc::new(v);
                let vv = v.clone();
                let srcs = spec.sources.clone();
                let memo_id = img.map(|i| i.id);
                let run = self.run.clone();
                let ex = excludes.clone();
                let parents = spec.parents;
                let found =
                    blocking(move || collect_memo(&run, memo_id, vv.root(), &srcs, ex.as_ref(), parents).map_err(wrap))
                        .await?;
                sources.extend(found);
                Some(v)
            }
            None => None,
        };
        if spec.from.is_none() {
            let (urls, local): (Vec<String>, Vec<String>) =
                spec.sources.iter().cloned().partition(|s| crate::fetch::is_url(s) || crate::fetch::is_git_url(s));
            if spec.checksum.is_some() && urls.is_empty() {
                return Err(wrap(copy::CopyError::ChecksumLocal));
            }
            for u in &urls {
                if spec.cmd == "COPY" {
                    return Err(wrap(copy::CopyError::UrlForCopy));
                }
                if crate::fetch::is_git_url(u) {
                    return Err(wrap(copy::CopyError::Git(u.clone())));
                }
                let dir = tempfile::Builder::new()
                    .prefix("wharf-build-download-")
                    .tempdir_in(&tmp)
                    .map_err(|e| BuildError::step(e.to_string(), ErrorKind::Internal))?;
                let (u2, d2, sum, cancel) =
                    (u.clone(), dir.path().to_path_buf(), spec.checksum.clone(), self.run.cancel.clone());
                // Docker's progress messages (a terminal draws the bar; others skip them).
                let emit = self.progress();
                let progress = move |current: u64, total: Option<u64>| {
                    let mut detail = serde_json::json!({ "current": current });
                    if let Some(t) = total {
                        detail["total"] = t.into();
                    }
                    emit(serde_json::json!({ "status": "Downloading", "progressDetail": detail }));
                };
                let download = blocking(move || {
                    crate::fetch::download(&u2, &d2, sum.as_deref(), &cancel, &progress).map_err(|e| match e {
                        crate::fetch::FetchError::Cancelled => BuildError::Cancelled,
                        e => wrap(e.into()),
                    })
                });
                let dl = tokio::select! {
                    dl = download => dl?,
                    // A stalled server must not hold a cancelled build: stop waiting here; the
                    // download sees the cancellation at its next read and ends by itself.
                    _ = self.run.cancel.cancelled() => return Err(BuildError::Cancelled),
                };
                // And the blank line the legacy builder prints after every download.
                self.run.emitter.emit(Some(self.idx), BuildEvent::Output { data: b"\n".to_vec() });
                let name = match &dl.filename {
                    Some(n) => n.clone(),
                    None if spec.dest.ends_with('/') => {
                        return Err(wrap(copy::CopyError::Unnamed(u.clone())));
                    }
                    None => "__unnamed__".to_string(),
                };
                sources.push(copy::downloaded(&dl.path, &name).map_err(wrap)?);
                keep.push(Box::new(dir));
            }
            if !local.is_empty() {
                let run = self.run.clone();
                let ex = excludes.clone();
                let parents = spec.parents;
                let has_files = self.run.ctx.has_files();
                let found = blocking(move || {
                    if !has_files {
                        return Err(wrap(copy::CopyError::NotInContext(local[0].clone())));
                    }
                    copy::collect(&SourceRoot::Context(&run.ctx), &local, ex.as_ref(), parents).map_err(wrap)
                })
                .await?;
                sources.extend(found);
            }
        }
        // Heredoc sources.
        if !spec.inline.is_empty() {
            let dir = tempfile::Builder::new()
                .prefix("wharf-build-heredoc-")
                .tempdir_in(&tmp)
                .map_err(|e| BuildError::step(e.to_string(), ErrorKind::Internal))?;
            for h in &spec.inline {
                let p = dir.path().join(&h.name);
                std::fs::write(&p, &h.content).map_err(|e| BuildError::step(e.to_string(), ErrorKind::Internal))?;
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644));
                let mut s = copy::collect(&SourceRoot::Dir(dir.path()), std::slice::from_ref(&h.name), None, false)
                    .map_err(wrap)?;
                sources.append(&mut s);
            }
            keep.push(Box::new(dir));
        }
        copy::check_dest(spec.cmd, sources.len(), &spec.dest)
            .map_err(|e| BuildError::step(EngineError::from_classified(&e).message, ErrorKind::InvalidArgument))?;
        let hashes: Vec<String> = sources.iter().map(|s| s.hash.clone()).collect();
        let src_hash = crate::hash::combine(&hashes);
        let chown_comment = spec.chown.as_ref().map(|c| format!("--chown={c} ")).unwrap_or_default();
        let mut cmd = self.shell();
        cmd.push(format!("#(nop) {} {chown_comment}{src_hash} in {} ", spec.cmd, spec.dest));
        let created_by = cmd.join(" ");
        let extra = serde_json::json!({
            "chmod": spec.chmod,
            "parents": spec.parents,
            "excludes": spec.excludes,
            "unpack": spec.unpack,
        });
        let key = self.key(&cmd, &used, &extra);
        if self.probe(&key, &created_by).await? {
            return Ok(Outcome::Hit);
        }
        let layers = self.run.inner.layers.clone();
        let top = self.top();
        let parents = self.parent_diff_ids();
        let workdir = self.rc.working_dir.clone().unwrap_or_default();
        let cmd_name = spec.cmd;
        let layer = blocking(move || {
            let rw = layers.prepare_rw(top.as_deref()).map_err(|e| BuildError::from_err(&e))?;
            let plan = CopyPlan {
                dest: &spec.dest,
                workdir: &workdir,
                chown: spec.chown.as_deref(),
                default_owner,
                chmod,
                decompress: cmd_name == "ADD" && spec.unpack,
                exclude: excludes.as_ref(),
                tmp: &tmp,
            };
            copy::perform(rw.root(), &sources, &plan).map_err(|e| BuildError::from_err(&e))?;
            drop(keep);
            drop(view);
            rw.finish(&parents).map_err(|e| BuildError::from_err(&e))
        })
        .await?;
        self.make_image(created_by, layer, &key).await?;
        Ok(Outcome::Done)
    }
}

/// `collect` for a stage/image filesystem, memoising hashes by (image ID, path).
fn collect_memo(
    run: &BuildRun,
    image: Option<Digest>,
    root: &std::path::Path,
    sources: &[String],
    exclude: Option<&wharf_dockerfile::ignore::PatternMatcher>,
    parents: bool,
) -> Result<Vec<CopySource>, copy::CopyError> {
    let memo_ok = exclude.is_none() && image.is_some() && sources.iter().all(|s| !fsutil::contains_wildcards(s));
    if memo_ok {
        let id = image.clone().expect("checked");
        let memo = run.inner.from_hashes.lock().expect("memo");
        let hits: Option<Vec<String>> = sources.iter().map(|s| memo.get(&(id.clone(), s.clone())).cloned()).collect();
        drop(memo);
        if let Some(hits) = hits {
            // Hashes known: still resolve paths (cheap), reuse the hashes.
            let mut out = copy::collect_unhashed(root, sources, parents)?;
            for (o, h) in out.iter_mut().zip(hits) {
                o.hash = h;
            }
            return Ok(out);
        }
    }
    let out = copy::collect(&SourceRoot::Dir(root), sources, exclude, parents)?;
    if memo_ok && out.len() == sources.len() {
        let id = image.expect("checked");
        let mut memo = run.inner.from_hashes.lock().expect("memo");
        for (s, o) in sources.iter().zip(&out) {
            memo.insert((id.clone(), s.clone()), o.hash.clone());
        }
    }
    Ok(out)
}

impl Stage<'_> {
    async fn run_step(
        &mut self,
        r: &wharf_dockerfile::Run,
        _used: BTreeMap<String, String>,
    ) -> Result<Outcome, BuildError> {
        let run = self.run.clone();
        if !r.devices.is_empty() {
            return Err(BuildError::step("the --device option is not supported", ErrorKind::NotImplemented));
        }
        let privileged = match r.security {
            Security::Insecure if !run.opts.allow_insecure => {
                return Err(BuildError::step("security.insecure is not allowed", ErrorKind::Forbidden));
            }
            Security::Insecure => true,
            Security::Sandbox => false,
        };
        let env = self.env();
        let tmp = run.inner.tmp();
        let mut keep: Vec<Keep> = Vec::new();
        let mut mounts: Vec<ExtraMount> = Vec::new();
        let mut key_mounts = Vec::new();
        // The command.
        let cmd: Vec<String> = match r.command.heredoc_script() {
            Some(HeredocScript::File { name, content }) => {
                let dir = tempfile::Builder::new()
                    .prefix("wharf-build-heredoc-")
                    .tempdir_in(&tmp)
                    .map_err(|e| BuildError::step(e.to_string(), ErrorKind::Internal))?;
                let p = dir.path().join(&name);
                std::fs::write(&p, &content).map_err(|e| BuildError::step(e.to_string(), ErrorKind::Internal))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| BuildError::step(e.to_string(), ErrorKind::Internal))?;
                keep.push(Box::new(dir));
                let target = format!("/dev/pipes/{name}");
                mounts.push(ExtraMount {
                    target: target.clone(),
                    source: MountSource::Bind { source: p, read_only: true },
                });
                key_mounts.push(serde_json::json!({"heredoc": name, "content": content}));
                vec![target]
            }
            Some(HeredocScript::Command(text)) => {
                let mut c = self.shell();
                c.push(text);
                c
            }
            None => self.resolve_cmdline(&r.command.args, r.command.prepend_shell),
        };
        if cmd.is_empty() {
            return Err(BuildError::step("RUN requires at least one argument", ErrorKind::InvalidArgument));
        }
        let mut run_env = env.clone();
        run_env.extend(self.args.run_env(&env));
        let mut save_cmd = self.args.cache_key_prefix(&env);
        save_cmd.extend(cmd.iter().cloned());
        // RUN --mount.
        for m in &r.mounts {
            let (em, k, extra_env) = self.resolve_mount(m, &mut keep).await?;
            if let Some(em) = em {
                mounts.push(em);
            }
            if let Some(e) = extra_env {
                run_env.push(e);
            }
            key_mounts.push(k);
        }
        let network = match r.network {
            Network::Default => NetworkMode::Default(run.opts.network_mode.clone()),
            Network::None => NetworkMode::None,
            Network::Host => NetworkMode::Host,
        };
        let extra = serde_json::json!({
            "mounts": key_mounts,
            "network": format!("{:?}", r.network),
            "privileged": privileged,
        });
        let created_by = save_cmd.join(" ");
        let key = self.key(&save_cmd, &BTreeMap::new(), &extra);
        if self.probe(&key, &created_by).await? {
            return Ok(Outcome::Hit);
        }
        // Execute.
        let id = self.container_id();
        self.emit(BuildEvent::RunningIn { container: id.clone() });
        let layers = run.inner.layers.clone();
        let top = self.top();
        let rw = blocking(move || layers.prepare_rw(top.as_deref()).map_err(|e| BuildError::from_err(&e))).await?;
        let workdir = self.rc.working_dir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into());
        let root = rw.root().to_path_buf();
        let targets: Vec<(String, bool)> = mounts
            .iter()
            .map(|m| {
                let dir = match &m.source {
                    MountSource::Bind { source, .. } => source.is_dir(),
                    MountSource::Tmpfs { .. } => true,
                };
                (m.target.clone(), dir)
            })
            .collect();
        let wd = workdir.clone();
        let mp = blocking(move || {
            let full = fsutil::resolve_in_scope(&root, &wd)
                .and_then(|p| fsutil::mkdir_all(&p, None))
                .map_err(|e| BuildError::step(format!("mkdir {wd}: {e}"), ErrorKind::Internal));
            full?;
            let mut mp = MountPoints::new(&root);
            for (t, dir) in &targets {
                let r = if *dir { mp.ensure_dir(t) } else { mp.ensure_file(t) };
                r.map_err(|e| BuildError::step(format!("create mount point {t}: {e}"), ErrorKind::Internal))?;
            }
            Ok(mp)
        })
        .await?;
        let spec = RunSpec {
            id: id.clone(),
            rootfs: rw.root().to_path_buf(),
            rootfs_mounts: rw.mounts.clone(),
            snapshot_key: rw.key.clone(),
            args: cmd.clone(),
            env: run_env.clone(),
            user: self.rc.user.clone().unwrap_or_default(),
            workdir,
            network: network.clone(),
            mounts,
            privileged,
            host: run.opts.host.clone(),
        };
        let sink: Arc<dyn OutputSink> = Arc::new(StageSink { run: run.clone(), idx: self.idx });
        let result = run.inner.runner.run(spec, sink, run.cancel.child_token()).await;
        let parents = self.parent_diff_ids();
        // A process that could not start leaves a container too (never started), as in Docker.
        let start_failed = result.as_ref().is_err_and(|e| e.kind != ErrorKind::Cancelled);
        let keep_container = match &result {
            Ok(code) => self.keeps_container(*code == 0),
            Err(_) => start_failed && !run.is_cancelled() && self.keeps_container(false),
        };
        let changes = (keep_container && !start_failed).then(|| run.inner.tmp().join(format!("kept-{id}.tar")));
        // Clean up mount points and make the layer (or drop the snapshot) off the runtime.
        let changes_file = changes.clone();
        let finished = blocking(move || {
            let mut mp = mp;
            mp.cleanup();
            drop(keep);
            let mut rw = rw;
            let changed = match &changes_file {
                Some(p) => rw.changes_to(p).map_err(|e| BuildError::from_err(&e))?,
                None => false,
            };
            match result {
                Ok(0) => rw.finish(&parents).map(|l| (0, l, changed)).map_err(|e| BuildError::from_err(&e)),
                Ok(code) => Ok((code, None, changed)),
                Err(e) => Err(BuildError::Backend(e)),
            }
        })
        .await;
        let kept = |exit_code: Option<i32>, changed: bool| KeptContainer {
            id: id.clone(),
            image: self.image.as_ref().map(|i| i.id.clone()).expect("kept containers have an image"),
            config: RuntimeConfig {
                cmd: Some(cmd.clone()),
                entrypoint: Some(vec![String::new()]),
                env: Some(run_env.clone()),
                ..self.rc.clone()
            },
            exit_code,
            changes: changes.clone().filter(|_| changed),
            network: network.clone(),
        };
        // A failed step's container, kept or removed; the step's error is the one to report.
        let failed = async |exit_code: Option<i32>, changed: bool| {
            if keep_container {
                if let Err(e) = self.keep_container(kept(exit_code, changed), changes.clone()).await {
                    tracing::warn!(container = %id, error = %e, "keeping the failed step's container failed");
                }
            } else {
                if let Some(p) = &changes {
                    let _ = std::fs::remove_file(p);
                }
                self.emit(BuildEvent::RemovingContainer { container: id.clone() });
            }
        };
        let layer = match finished {
            Err(_) if run.is_cancelled() => return Err(BuildError::Cancelled),
            Err(BuildError::Backend(e)) if e.kind == ErrorKind::Cancelled => {
                return Err(BuildError::Cancelled);
            }
            Err(e) => {
                if start_failed {
                    failed(None, false).await;
                } else if let Some(p) = &changes {
                    let _ = std::fs::remove_file(p);
                }
                return Err(e);
            }
            Ok((0, l, changed)) => {
                if keep_container {
                    self.keep_container(kept(Some(0), changed), changes.clone()).await?;
                }
                l
            }
            Ok((code, _, changed)) => {
                if run.is_cancelled() {
                    return Err(BuildError::Cancelled);
                }
                failed(Some(code), changed).await;
                return Err(BuildError::Step {
                    message: format!("The command '{}' returned a non-zero code: {code}", cmd.join(" ")),
                    code: Some(code),
                    kind: ErrorKind::Internal,
                });
            }
        };
        self.check_cancel()?;
        if !keep_container {
            self.emit(BuildEvent::RemovingContainer { container: id });
        }
        self.make_image(created_by, layer, &key).await?;
        Ok(Outcome::Done)
    }

    /// One `RUN --mount`: the mount to make, its part of the cache key, and an env entry
    /// (secrets with `env=`).
    async fn resolve_mount(
        &self,
        m: &RunMount,
        keep: &mut Vec<Keep>,
    ) -> Result<(Option<ExtraMount>, serde_json::Value, Option<String>), BuildError> {
        let run = self.run;
        let inv = |msg: String| BuildError::step(msg, ErrorKind::InvalidArgument);
        let internal = |e: std::io::Error| BuildError::step(e.to_string(), ErrorKind::Internal);
        let workdir = self.rc.working_dir.clone().unwrap_or_else(|| "/".into());
        let abs_target = |t: &str| {
            if t.starts_with('/') { fsutil::clean(t) } else { fsutil::clean(&format!("/{workdir}/{t}")) }
        };
        match m.kind {
            MountKind::Bind => {
                let target = abs_target(m.target.as_deref().ok_or_else(|| inv("mount target is required".into()))?);
                let src = m.source.clone().unwrap_or_else(|| "/".into());
                let (root, hash, view): (PathBuf, String, Option<View>) = match &m.from {
                    Some(f) => {
                        let img = self.image_for_from(f).await?;
                        let layers = run.inner.layers.clone();
                        let top = img.as_ref().and_then(|i| top_snapshot(&i.config.rootfs.diff_ids));
                        let v =
                            blocking(move || layers.view(top.as_deref()).map_err(|e| BuildError::from_err(&e))).await?;
                        let id = img.map(|i| i.id.to_string()).unwrap_or_default();
                        (v.root().to_path_buf(), format!("image:{id}"), Some(v))
                    }
                    None => {
                        let full = run.ctx.resolve(&src).map_err(|e| inv(e.to_string()))?;
                        let h = crate::context::context_hash(&run.ctx, &full)
                            .map_err(|e| inv(format!("failed to compute cache key: {src}: {e}")))?;
                        (run.ctx.root().to_path_buf(), h, None)
                    }
                };
                if !fsutil::lexically_inside(&src) {
                    return Err(inv(format!("forbidden path outside the build context: {src} ()")));
                }
                let full = fsutil::resolve_in_scope(&root, &src).map_err(internal)?;
                if !full.exists() {
                    return Err(inv(format!(
                        "failed to compute cache key: \"/{}\" not found",
                        src.trim_start_matches('/')
                    )));
                }
                let source = if m.read_only {
                    full
                } else {
                    // rw binds get a private copy; changes are discarded.
                    let dir = tempfile::Builder::new()
                        .prefix("wharf-build-bind-")
                        .tempdir_in(run.inner.tmp())
                        .map_err(internal)?;
                    let dst = dir.path().join("src");
                    fsutil::copy_entry(&full, &dst, None, None, &|_| false).map_err(internal)?;
                    keep.push(Box::new(dir));
                    dst.clone()
                };
                if let Some(v) = view {
                    keep.push(Box::new(v));
                }
                Ok((
                    Some(ExtraMount {
                        target: target.clone(),
                        source: MountSource::Bind { source, read_only: m.read_only },
                    }),
                    serde_json::json!({"type": "bind", "target": target, "source": src, "hash": hash, "ro": m.read_only}),
                    None,
                ))
            }
            MountKind::Cache => {
                let target = abs_target(m.target.as_deref().ok_or_else(|| inv("mount target is required".into()))?);
                let id = m.id.clone().filter(|i| !i.is_empty()).unwrap_or_else(|| target.clone());
                let dir = run.inner.cache_mounts().join(&crate::hash::sha256_hex(id.as_bytes())[..32]);
                if !dir.exists() {
                    std::fs::create_dir_all(&dir).map_err(internal)?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(m.mode.unwrap_or(0o755)))
                        .map_err(internal)?;
                    std::os::unix::fs::chown(&dir, Some(m.uid.unwrap_or(0)), Some(m.gid.unwrap_or(0)))
                        .map_err(internal)?;
                }
                if !matches!(m.sharing, Some(wharf_dockerfile::Sharing::Shared) | None) {
                    let lock =
                        run.inner.cache_locks.lock().expect("cache locks").entry(id.clone()).or_default().clone();
                    let guard = lock.lock_owned().await;
                    keep.push(Box::new(guard));
                }
                Ok((
                    Some(ExtraMount {
                        target: target.clone(),
                        source: MountSource::Bind { source: dir, read_only: m.read_only },
                    }),
                    serde_json::json!({"type": "cache", "target": target, "id": id, "ro": m.read_only}),
                    None,
                ))
            }
            MountKind::Tmpfs => {
                let target = abs_target(m.target.as_deref().ok_or_else(|| inv("mount target is required".into()))?);
                Ok((
                    Some(ExtraMount {
                        target: target.clone(),
                        source: MountSource::Tmpfs { size: m.size_limit.map(|s| s as u64) },
                    }),
                    serde_json::json!({"type": "tmpfs", "target": target, "size": m.size_limit}),
                    None,
                ))
            }
            MountKind::Secret => {
                let id =
                    m.id.clone()
                        .or_else(|| m.target.as_deref().and_then(|t| t.rsplit('/').next()).map(str::to_string))
                        .ok_or_else(|| inv("secret ID missing from mount options".into()))?;
                let target = m.target.as_deref().map(abs_target).unwrap_or_else(|| format!("/run/secrets/{id}"));
                let key = serde_json::json!({"type": "secret", "id": id, "target": target, "env": m.env});
                let Some(data) = run.opts.secrets.get(&id) else {
                    if m.required {
                        return Err(inv(format!("secret {id}: not found")));
                    }
                    return Ok((None, key, None));
                };
                let env = m.env.as_ref().map(|e| format!("{e}={}", String::from_utf8_lossy(data)));
                if m.env.is_some() && m.target.is_none() {
                    return Ok((None, key, env));
                }
                let dir = tempfile::Builder::new()
                    .prefix("wharf-build-secret-")
                    .tempdir_in(run.inner.tmp())
                    .map_err(internal)?;
                let p = dir.path().join("secret");
                std::fs::write(&p, data).map_err(internal)?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m.mode.unwrap_or(0o400)))
                    .map_err(internal)?;
                std::os::unix::fs::chown(&p, Some(m.uid.unwrap_or(0)), Some(m.gid.unwrap_or(0))).map_err(internal)?;
                keep.push(Box::new(dir));
                Ok((Some(ExtraMount { target, source: MountSource::Bind { source: p, read_only: true } }), key, env))
            }
            MountKind::Ssh => Err(BuildError::step(
                "RUN --mount=type=ssh is not supported: the legacy builder API has no SSH agent forwarding",
                ErrorKind::NotImplemented,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats() {
        assert_eq!(go_quote_list(&["sh".into()]), "[\"sh\"]");
        assert_eq!(
            go_quote_list(&["/bin/sh".into(), "-c".into(), "echo \"hi\"\n".into()]),
            "[\"/bin/sh\" \"-c\" \"echo \\\"hi\\\"\\n\"]"
        );
        assert_eq!(go_duration(30_000_000_000), "30s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(500_000_000), "500ms");
        assert_eq!(go_duration(0), "0s");
    }

    #[test]
    fn workdirs_and_signals() {
        assert_eq!(normalize_workdir("", "app"), "/app");
        assert_eq!(normalize_workdir("/app", "sub/../x"), "/app/x");
        assert_eq!(normalize_workdir("/app", "/abs//y/"), "/abs/y");
        assert!(valid_signal("SIGKILL"));
        assert!(valid_signal("term"));
        assert!(valid_signal("9"));
        assert!(valid_signal("SIGRTMIN+3"));
        assert!(!valid_signal("SIGNOPE"));
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = rfc3339_now();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.ends_with('Z'));
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], "T");
    }
}
