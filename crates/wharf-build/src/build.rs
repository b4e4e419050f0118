//! The entry point: [`Builder::build`] takes a context body and [`BuildOptions`], runs the
//! stages the target needs as a DAG (independent stages in parallel, bounded), and reports
//! [`BuildEvent`]s in Docker's order.
//!
//! Order of a build:
//! 1. the body becomes a [`BuildContext`] (extracted, Dockerfile read, `.dockerignore` applied);
//! 2. the Dockerfile is parsed, global ARGs evaluated, the stage graph built and pruned to what
//!    `--target` needs; `labels` become LABEL steps at the end of the target stage; steps are
//!    numbered over the stages that will be built (`Step N/M`);
//! 3. `--cache-from` images are resolved (local only);
//! 4. every needed stage runs in its own task once its base stage and the stages it copies or
//!    mounts from are done (`stage`); events of a stage are held back until the stages
//!    before it have finished, so the output reads as a sequential build;
//! 5. unused build args are warned about, the result is tagged.
//!
//! Failure or cancellation stops every stage (their containers are killed through the
//! runner's cancellation token), removes their snapshots and writes no cache entry for the
//! unfinished steps.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncRead;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use wharf_dockerfile::{
    BaseRef, Dockerfile, GlobalArgs, Instruction, InstructionKind, KeyValue, ParseError, StageGraph, unused_build_args,
};
use wharf_image::ContentStore;
use wharf_snapshot::Snapshotter;
use wharf_types::{Classify, Digest, EngineError, ErrorKind, Platform, Reference};

use crate::backend::{
    BaseImage, CacheStore, ContainerRunner, HostOptions, ImageCommitter, ImageSource, PullPolicy, Secrets,
};
use crate::cache::CacheFrom;
use crate::context::{BuildContext, ContextError};
use crate::event::{BuildEvent, LegacyMessage, render_error};
use crate::layer::Layers;
use crate::stage;

/// Where events go. Unbounded: a build never waits for its reader.
pub type EventSink = mpsc::UnboundedSender<BuildEvent>;

/// The options of one build (the `/build` query parameters, parsed by the daemon).
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `dockerfile`: the Dockerfile's path inside the context (empty: `Dockerfile`).
    pub dockerfile: String,
    /// `t`: tags for the result.
    pub tags: Vec<Reference>,
    /// `buildargs`; a `None` value (JSON null) counts as not given.
    pub build_args: BTreeMap<String, Option<String>>,
    /// `labels`: applied as LABEL steps at the end of the target stage, sorted by key.
    pub labels: BTreeMap<String, String>,
    /// `target`: the stage to build (default the last).
    pub target: Option<String>,
    /// `platform`: default for FROM lines without `--platform` (default the host's).
    pub platform: Option<Platform>,
    /// `nocache`.
    pub no_cache: bool,
    /// `pull`: always pull base images.
    pub pull: bool,
    /// `cachefrom`: local images whose history may satisfy steps.
    pub cache_from: Vec<String>,
    /// `networkmode` for RUN steps (`default` when empty).
    pub network_mode: String,
    /// `rm` (default true) and `forcerm`.
    pub remove: bool,
    pub force_remove: bool,
    /// Passed through to the runner.
    pub host: HostOptions,
    /// For `RUN --mount=type=secret`.
    pub secrets: Secrets,
    /// Allow `RUN --security=insecure`.
    pub allow_insecure: bool,
    /// How many stages may run at once (0: the number of CPUs, at most 4).
    pub parallelism: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            dockerfile: String::new(),
            tags: Vec::new(),
            build_args: BTreeMap::new(),
            labels: BTreeMap::new(),
            target: None,
            platform: None,
            no_cache: false,
            pull: false,
            cache_from: Vec::new(),
            network_mode: String::new(),
            remove: true,
            force_remove: false,
            host: HostOptions::default(),
            secrets: Secrets::new(),
            allow_insecure: false,
            parallelism: 0,
        }
    }
}

/// What a successful build made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildResult {
    /// The target stage's image.
    pub image: Digest,
    /// Every built stage's image, by stage index (stages that made no image are absent).
    pub stages: BTreeMap<usize, Digest>,
    /// Steps satisfied from the cache / executed.
    pub cached_steps: usize,
    pub executed_steps: usize,
}

/// Why a build failed. `Display` is the message Docker users see; [`BuildError::code`] is the
/// exit code the CLI uses (a failed RUN's).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{}", context_message(.0))]
    Context(#[from] ContextError),
    #[error("{0}")]
    Parse(ParseError),
    /// A step failed, with Docker's message (`COPY failed: …`, `The command '…' returned a
    /// non-zero code: 3`).
    #[error("{message}")]
    Step { message: String, code: Option<i32>, kind: ErrorKind },
    #[error("Build cancelled")]
    Cancelled,
    #[error("No image was generated. Is your Dockerfile empty?")]
    NoImage,
    #[error("set up builder directory {path}")]
    Setup {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Backend(EngineError),
    /// Internal: a stage this one needed failed (the first error is reported instead).
    #[error("a stage this one depends on failed")]
    DependencyFailed,
}

fn context_message(e: &ContextError) -> String {
    EngineError::from_classified(e).message
}

impl Classify for BuildError {
    fn kind(&self) -> ErrorKind {
        match self {
            BuildError::Context(e) => e.kind(),
            BuildError::Parse(_) => ErrorKind::InvalidArgument,
            BuildError::Step { kind, .. } => *kind,
            BuildError::Cancelled | BuildError::DependencyFailed => ErrorKind::Cancelled,
            BuildError::NoImage => ErrorKind::InvalidArgument,
            BuildError::Setup { .. } => ErrorKind::Internal,
            BuildError::Backend(e) => e.kind,
        }
    }
}

impl BuildError {
    /// The exit code the CLI should use (`errorDetail.code`): a failed RUN's.
    pub fn code(&self) -> Option<i32> {
        match self {
            BuildError::Step { code, .. } => *code,
            _ => None,
        }
    }

    /// The stream object that reports this error.
    pub fn legacy_message(&self) -> LegacyMessage {
        render_error(&self.to_string(), self.code())
    }

    pub(crate) fn step(message: impl Into<String>, kind: ErrorKind) -> Self {
        BuildError::Step { message: message.into(), code: None, kind }
    }

    pub(crate) fn from_err<E: Classify + std::error::Error>(e: &E) -> Self {
        let m = EngineError::from_classified(e);
        BuildError::Step { message: m.message, code: None, kind: m.kind }
    }
}

/// What the builder is given to work with.
pub struct BuilderDeps {
    /// The builder's own directory (mount points, temp contexts and downloads, cache mounts).
    pub root: PathBuf,
    pub snapshotter: Arc<dyn Snapshotter>,
    pub content: ContentStore,
    pub images: Arc<dyn ImageSource>,
    pub committer: Arc<dyn ImageCommitter>,
    pub runner: Arc<dyn ContainerRunner>,
    pub cache: Arc<dyn CacheStore>,
}

pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) layers: Arc<Layers>,
    pub(crate) images: Arc<dyn ImageSource>,
    pub(crate) committer: Arc<dyn ImageCommitter>,
    pub(crate) runner: Arc<dyn ContainerRunner>,
    pub(crate) cache: Arc<dyn CacheStore>,
    /// `type=cache,sharing=locked` mounts: one lock per cache id.
    pub(crate) cache_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Hashes of `COPY --from` sources by (image ID, path): images never change.
    pub(crate) from_hashes: Mutex<HashMap<(Digest, String), String>>,
}

impl Inner {
    pub(crate) fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
    pub(crate) fn cache_mounts(&self) -> PathBuf {
        self.root.join("cache-mounts")
    }
}

/// What [`Builder::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub cache_entries: usize,
    pub cache_mounts: usize,
}

/// Runs builds. Cheap to clone; builds may run concurrently.
#[derive(Clone)]
pub struct Builder {
    inner: Arc<Inner>,
}

impl Builder {
    /// A builder over `deps`. Creates its directories under `deps.root` and clears what a
    /// previous process left there (temp files, mount points).
    pub fn new(deps: BuilderDeps) -> Result<Self, BuildError> {
        let setup = |path: PathBuf| move |source| BuildError::Setup { path: path.clone(), source };
        let mnt = deps.root.join("mnt");
        for d in [&deps.root, &mnt, &deps.root.join("cache-mounts")] {
            std::fs::create_dir_all(d).map_err(setup(d.clone()))?;
        }
        if let Ok(rd) = std::fs::read_dir(&mnt) {
            for e in rd.flatten() {
                let _ = wharf_snapshot::unmount(&e.path());
                let _ = std::fs::remove_dir(e.path());
            }
        }
        let tmp = deps.root.join("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(setup(tmp.clone()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                layers: Arc::new(Layers { snapshotter: deps.snapshotter, content: deps.content, mnt }),
                root: deps.root,
                images: deps.images,
                committer: deps.committer,
                runner: deps.runner,
                cache: deps.cache,
                cache_locks: Mutex::new(HashMap::new()),
                from_hashes: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Reads a context body (tar, compressed tar, or a bare Dockerfile) and builds it.
    pub async fn build<R: AsyncRead + Send + Unpin>(
        &self,
        mut body: R,
        options: BuildOptions,
        events: EventSink,
        cancel: CancellationToken,
    ) -> Result<BuildResult, BuildError> {
        let tmp = self.inner.tmp();
        // Spool the body to a temp file (contexts can be large), then extract off the runtime.
        let spool = tempfile::tempfile_in(&tmp).map_err(|source| ContextError::Read { source })?;
        let mut file = tokio::fs::File::from_std(spool);
        tokio::select! {
            r = tokio::io::copy(&mut body, &mut file) => {
                r.map_err(|source| ContextError::Read { source })?;
            }
            _ = cancel.cancelled() => return Err(BuildError::Cancelled),
        }
        let spool = file.into_std().await;
        let name = options.dockerfile.clone();
        let ctx = tokio::task::spawn_blocking(move || BuildContext::from_spooled(spool, &tmp, &name))
            .await
            .map_err(|e| BuildError::step(e.to_string(), ErrorKind::Internal))??;
        self.build_context(ctx, options, events, cancel).await
    }

    /// Builds the context at `remote` (a git repository or an http(s) URL; see
    /// [`crate::remote`]) instead of a request body.
    pub async fn build_remote(
        &self,
        remote: &str,
        options: BuildOptions,
        events: EventSink,
        cancel: CancellationToken,
    ) -> Result<BuildResult, BuildError> {
        let (tmp, remote, name, c) = (self.inner.tmp(), remote.to_string(), options.dockerfile.clone(), cancel.clone());
        let ctx = tokio::task::spawn_blocking(move || crate::remote::context(&remote, &tmp, &name, &c))
            .await
            .map_err(|e| BuildError::step(e.to_string(), ErrorKind::Internal))?
            .map_err(|e| match e {
                crate::remote::RemoteError::Context(c) => BuildError::Context(c),
                crate::remote::RemoteError::Cancelled => BuildError::Cancelled,
                e => BuildError::step(e.to_string(), e.kind()),
            })?;
        self.build_context(ctx, options, events, cancel).await
    }

    /// Builds an already extracted context.
    pub async fn build_context(
        &self,
        ctx: BuildContext,
        options: BuildOptions,
        events: EventSink,
        cancel: CancellationToken,
    ) -> Result<BuildResult, BuildError> {
        let run = prepare(self.inner.clone(), ctx, options, events, cancel).await?;
        execute(run).await
    }

    /// Drops build cache entries: all of them with `all`, else those not used since
    /// `older_than` (seconds since the epoch). With `all`, `RUN --mount=type=cache`
    /// directories are removed too. Images the entries pointed at are the daemon's to collect.
    pub fn prune(&self, all: bool, older_than: Option<u64>) -> Result<PruneReport, BuildError> {
        let mut report = PruneReport::default();
        let cache = &self.inner.cache;
        for r in cache.list().map_err(BuildError::Backend)? {
            if all || older_than.is_some_and(|t| r.last_used < t) {
                cache.remove(&r.key).map_err(BuildError::Backend)?;
                report.cache_entries += 1;
            }
        }
        if all {
            let dir = self.inner.cache_mounts();
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    if std::fs::remove_dir_all(e.path()).is_ok() {
                        report.cache_mounts += 1;
                    }
                }
            }
        }
        Ok(report)
    }
}

/// Events of stages, released in stage order.
pub(crate) struct Emitter {
    sink: EventSink,
    state: Mutex<EmitState>,
}

struct EmitState {
    /// Stage indices in display order.
    order: Vec<usize>,
    head: usize,
    buffers: HashMap<usize, Vec<BuildEvent>>,
    done: HashSet<usize>,
}

impl Emitter {
    fn new(sink: EventSink, order: Vec<usize>) -> Self {
        Self { sink, state: Mutex::new(EmitState { order, head: 0, buffers: HashMap::new(), done: HashSet::new() }) }
    }

    /// Sends now when `stage` is the one being shown (or `None`: not a stage's event),
    /// buffers otherwise.
    pub(crate) fn emit(&self, stage: Option<usize>, ev: BuildEvent) {
        let mut st = self.state.lock().expect("emitter");
        match stage {
            Some(s) if st.order.get(st.head) != Some(&s) => {
                st.buffers.entry(s).or_default().push(ev);
            }
            _ => {
                let _ = self.sink.send(ev);
            }
        }
    }

    /// A stage is done: release the next stages' buffered events.
    pub(crate) fn finish(&self, stage: usize) {
        let mut st = self.state.lock().expect("emitter");
        st.done.insert(stage);
        while let Some(&cur) = st.order.get(st.head) {
            if !st.done.contains(&cur) {
                break;
            }
            st.head += 1;
            if let Some(&next) = st.order.get(st.head) {
                for ev in st.buffers.remove(&next).unwrap_or_default() {
                    let _ = self.sink.send(ev);
                }
            }
        }
    }

    /// After a failure: everything held back, in stage order.
    fn flush_all(&self) {
        let mut st = self.state.lock().expect("emitter");
        let order = st.order.clone();
        for s in order.iter().skip(st.head) {
            for ev in st.buffers.remove(s).unwrap_or_default() {
                let _ = self.sink.send(ev);
            }
        }
        st.head = order.len();
    }
}

/// Per-stage result, shared with the stages that wait for it.
#[derive(Debug, Clone)]
pub(crate) struct StageOut {
    pub(crate) image: Option<BaseImage>,
    pub(crate) platform: Platform,
}

/// Everything one build shares between its stage tasks.
pub(crate) struct BuildRun {
    pub(crate) inner: Arc<Inner>,
    pub(crate) ctx: BuildContext,
    pub(crate) df: Dockerfile,
    pub(crate) graph: StageGraph,
    pub(crate) globals: GlobalArgs,
    pub(crate) build_args: BTreeMap<String, String>,
    pub(crate) opts: BuildOptions,
    pub(crate) emitter: Emitter,
    pub(crate) cancel: CancellationToken,
    /// `None` pending, `Some(None)` failed, `Some(Some(out))` done.
    pub(crate) results: Vec<watch::Sender<Option<Option<StageOut>>>>,
    /// First step number of each needed stage.
    pub(crate) first_step: HashMap<usize, usize>,
    pub(crate) total_steps: usize,
    pub(crate) target: usize,
    /// LABEL steps from `labels`, appended to the target stage.
    pub(crate) label_steps: Vec<Instruction>,
    pub(crate) cache_from: tokio::sync::Mutex<CacheFrom>,
    /// ARG names declared by the built stages (for the unused-build-args warning).
    pub(crate) declared: Mutex<BTreeSet<String>>,
    pub(crate) stats: Mutex<(usize, usize)>,
    pub(crate) default_platform: Platform,
    sem: Semaphore,
}

fn parse_err(e: ParseError, dockerfile: &str) -> BuildError {
    match e {
        ParseError::Directive { .. } | ParseError::Heredoc { .. } => {
            BuildError::step(format!("failed to parse {dockerfile}: {e}"), ErrorKind::InvalidArgument)
        }
        e => BuildError::Parse(e),
    }
}

async fn prepare(
    inner: Arc<Inner>,
    ctx: BuildContext,
    opts: BuildOptions,
    events: EventSink,
    cancel: CancellationToken,
) -> Result<Arc<BuildRun>, BuildError> {
    let df = wharf_dockerfile::parse(ctx.dockerfile()).map_err(|e| parse_err(e, ctx.dockerfile_name()))?;
    let build_args: BTreeMap<String, String> =
        opts.build_args.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect();
    let lex = df.lexer();
    let globals =
        GlobalArgs::evaluate(&df.global_args, &build_args, &BTreeMap::new(), &lex).map_err(BuildError::Parse)?;
    let graph = df.graph(&globals).map_err(BuildError::Parse)?;
    let target = df.target_stage(opts.target.as_deref()).map_err(BuildError::Parse)?;
    let needed = graph.needed_for(target);
    let label_steps: Vec<Instruction> = opts
        .labels
        .iter()
        .map(|(k, v)| Instruction {
            line: 0,
            end_line: 0,
            original: format!("LABEL {k}={v}"),
            kind: InstructionKind::Label(vec![KeyValue { key: k.clone(), value: v.clone(), legacy: false }]),
        })
        .collect();
    let mut first_step = HashMap::new();
    let mut n = df.global_args.len() + 1;
    for &s in &needed {
        first_step.insert(s, n);
        n += 1 + df.stages[s].instructions.len();
        if s == target {
            n += label_steps.len();
        }
    }
    let total_steps = n - 1;
    let default_platform = opts.platform.clone().unwrap_or_else(Platform::host);
    // --cache-from images: local only.
    let mut sources = Vec::new();
    for r in &opts.cache_from {
        let progress: crate::backend::ProgressFn = Arc::new(|_| {});
        match inner.images.resolve(r, &default_platform, PullPolicy::Never, progress).await {
            Ok(img) => sources.push(img),
            Err(e) => tracing::debug!("cache-from {r} skipped: {e}"),
        }
    }
    let parallelism = match opts.parallelism {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 4),
        n => n,
    };
    let results = (0..df.stages.len()).map(|_| watch::channel(None).0).collect();
    let mut declared = globals.declared.clone();
    declared.extend(
        needed
            .iter()
            .flat_map(|&s| {
                df.stages[s].instructions.iter().filter_map(|i| match &i.kind {
                    InstructionKind::Arg(d) => Some(d.iter().map(|d| d.name.clone()).collect::<Vec<_>>()),
                    _ => None,
                })
            })
            .flatten(),
    );
    Ok(Arc::new(BuildRun {
        emitter: Emitter::new(events, needed.clone()),
        inner,
        ctx,
        graph,
        globals,
        build_args,
        cancel: cancel.child_token(),
        results,
        first_step,
        total_steps,
        target,
        label_steps,
        cache_from: tokio::sync::Mutex::new(CacheFrom::new(sources)),
        declared: Mutex::new(declared),
        stats: Mutex::new((0, 0)),
        default_platform,
        sem: Semaphore::new(parallelism),
        df,
        opts,
    }))
}

impl BuildRun {
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Waits for stage `s` to finish; `DependencyFailed` when it failed.
    pub(crate) async fn stage_result(&self, s: usize) -> Result<StageOut, BuildError> {
        if !self.first_step.contains_key(&s) {
            // Only reachable through an ONBUILD trigger of an image naming a stage of this
            // Dockerfile that the target does not need.
            return Err(BuildError::step(
                format!("stage {} is not built for this target", self.df.stages[s].display_name()),
                ErrorKind::InvalidArgument,
            ));
        }
        let mut rx = self.results[s].subscribe();
        let v = rx.wait_for(|v| v.is_some()).await.map_err(|_| BuildError::DependencyFailed)?;
        match v.as_ref() {
            Some(Some(out)) => Ok(out.clone()),
            _ => Err(BuildError::DependencyFailed),
        }
    }
}

async fn execute(run: Arc<BuildRun>) -> Result<BuildResult, BuildError> {
    // Global ARGs print their step lines only.
    for (i, inst) in run.df.global_args.iter().enumerate() {
        run.emitter.emit(None, BuildEvent::Step { number: i + 1, total: run.total_steps, text: inst.original.clone() });
    }
    let needed = run.graph.needed_for(run.target);
    let mut tasks = tokio::task::JoinSet::new();
    for &s in &needed {
        let run = run.clone();
        tasks.spawn(async move {
            let r = run_one(&run, s).await;
            (s, r)
        });
    }
    let mut first: Option<BuildError> = None;
    let mut cancelled = false;
    let mut outs: BTreeMap<usize, StageOut> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (s, r) = match joined {
            Ok(v) => v,
            Err(e) => {
                first.get_or_insert(BuildError::step(e.to_string(), ErrorKind::Internal));
                run.cancel.cancel();
                continue;
            }
        };
        match r {
            Ok(out) => {
                outs.insert(s, out);
            }
            Err(BuildError::DependencyFailed) => {}
            Err(BuildError::Cancelled) => cancelled = true,
            Err(e) => {
                if first.is_none() {
                    first = Some(e);
                }
                run.cancel.cancel();
            }
        }
    }
    if let Some(e) = first {
        run.emitter.flush_all();
        return Err(e);
    }
    if cancelled || run.is_cancelled() {
        run.emitter.flush_all();
        return Err(BuildError::Cancelled);
    }
    let declared = run.declared.lock().expect("declared").clone();
    let unused = unused_build_args(&run.build_args, &declared);
    if !unused.is_empty() {
        run.emitter.emit(
            None,
            BuildEvent::Warning { message: format!("One or more build-args [{}] were not consumed", unused.join(" ")) },
        );
    }
    let Some(image) = outs.get(&run.target).and_then(|o| o.image.as_ref()).map(|i| i.id.clone()) else {
        return Err(BuildError::NoImage);
    };
    run.emitter.emit(None, BuildEvent::Built { image: image.clone() });
    for t in &run.opts.tags {
        run.inner.committer.tag(&image, t).await.map_err(BuildError::Backend)?;
        run.emitter.emit(None, BuildEvent::Tagged { reference: t.clone() });
    }
    let (cached, executed) = *run.stats.lock().expect("stats");
    Ok(BuildResult {
        image,
        stages: outs.into_iter().filter_map(|(s, o)| o.image.map(|i| (s, i.id))).collect(),
        cached_steps: cached,
        executed_steps: executed,
    })
}

/// Runs one stage once its dependencies are done; publishes its result either way.
async fn run_one(run: &Arc<BuildRun>, s: usize) -> Result<StageOut, BuildError> {
    let r = async {
        let node = &run.graph.stages[s];
        if let BaseRef::Stage(b) = node.base {
            run.stage_result(b).await?;
        }
        for &d in &node.deps {
            run.stage_result(d).await?;
        }
        let _permit = tokio::select! {
            p = run.sem.acquire() => p.map_err(|_| BuildError::Cancelled)?,
            _ = run.cancel.cancelled() => return Err(BuildError::Cancelled),
        };
        stage::run_stage(run, s).await
    }
    .await;
    run.results[s].send_replace(Some(r.as_ref().ok().cloned()));
    run.emitter.finish(s);
    r
}
