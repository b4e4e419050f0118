//! `wharf-api`'s `ImageBackend` over the [`ImageService`]: each method runs the blocking
//! service call on the blocking pool and translates the result to wire types. Request bodies
//! reach the service as a blocking [`Read`]; `save` streams back through a channel.

use std::io::{self, Read, Write};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::runtime::Handle;
use wharf_api::backend::{
    AuthRequest, AuthResponse, ByteStream, ImageBackend, ImageImportOptions, ImageInspectData, ImageListOptions,
    ImagePullOptions, ImagePushOptions, ImageSearchOptions,
};
use wharf_api::models::{
    DriverData, HealthConfig, ImageConfig as WireConfig, ImageDeleteResponseItem, ImageHistoryResponseItem,
    ImageInspect, ImageInspectMetadata, ImageInspectRootFs, ImagePruneResponse, ImageSummary as WireSummary,
    ImagesDiskUsage,
};
use wharf_api::stream::{JsonMessage, ProgressSender};
use wharf_registry::client::{AuthConfig, ClientError, manifest_ref};
use wharf_types::image::RuntimeConfig;
use wharf_types::{Classify, EngineError, Filters, Platform};

use super::delete::DeleteRecord;
use super::import::ImportOptions;
use super::layer::Progress;
use super::query::{self, ImageSummary, InspectData, ListOptions, rfc3339_nano};
use super::{ImageError, ImageService};
use crate::Daemon;

/// Runs a blocking service call on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, EngineError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(EngineError::from),
        Err(e) => Err(EngineError::internal(format!("image operation failed: {e}"))),
    }
}

/// A request body as a blocking reader (used on a blocking-pool thread).
struct BodyReader {
    stream: ByteStream,
    handle: Handle,
    buf: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) => self.buf = b,
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}

/// A blocking writer feeding a response body.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

fn summary_wire(s: ImageSummary) -> WireSummary {
    WireSummary {
        id: s.id.to_string(),
        parent_id: s.parent.map(|p| p.to_string()).unwrap_or_default(),
        repo_tags: s.repo_tags,
        repo_digests: s.repo_digests,
        created: s.created,
        size: s.size,
        shared_size: s.shared_size,
        labels: s.labels.into_iter().collect(),
        containers: s.containers,
        manifests: None,
        descriptor: None,
    }
}

fn config_wire(c: &RuntimeConfig) -> WireConfig {
    WireConfig {
        user: c.user.clone().filter(|u| !u.is_empty()),
        exposed_ports: c.exposed_ports.as_ref().map(|m| m.keys().cloned().collect()),
        env: c.env.clone(),
        cmd: c.cmd.clone(),
        healthcheck: c.healthcheck.as_ref().map(|h| HealthConfig {
            test: (!h.test.is_empty()).then(|| h.test.clone()),
            interval: (h.interval != 0).then_some(h.interval),
            timeout: (h.timeout != 0).then_some(h.timeout),
            retries: (h.retries != 0).then_some(h.retries),
            start_period: (h.start_period != 0).then_some(h.start_period),
            start_interval: (h.start_interval != 0).then_some(h.start_interval),
        }),
        args_escaped: c.args_escaped.filter(|a| *a),
        volumes: c.volumes.as_ref().map(|m| m.keys().cloned().collect()),
        working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        entrypoint: c.entrypoint.clone(),
        on_build: c.on_build.clone().filter(|o| !o.is_empty()),
        labels: c.labels.as_ref().map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        stop_signal: c.stop_signal.clone().filter(|s| !s.is_empty()),
        shell: c.shell.clone(),
    }
}

fn inspect_wire(d: InspectData, driver: &str) -> ImageInspectData {
    let c = &d.config;
    let extra_str = |k: &str| c.extra.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let mut comment = extra_str("comment");
    if comment.is_empty()
        && let Some(h) = c.history.last()
    {
        comment = h.comment.clone().unwrap_or_default();
    }
    let inspect = ImageInspect {
        id: Some(d.row.id.to_string()),
        repo_tags: Some(d.repo_tags),
        repo_digests: Some(d.repo_digests),
        comment: Some(comment),
        created: c.created.as_deref().and_then(query::parse_time).map(rfc3339_nano),
        author: Some(c.author.clone().unwrap_or_default()),
        config: Some(config_wire(&c.config.clone().unwrap_or_default())),
        architecture: Some(c.architecture.clone()),
        variant: c.variant.clone(),
        os: Some(c.os.clone()),
        os_version: c.os_version.clone(),
        size: Some(d.row.size),
        graph_driver: Some(DriverData { name: driver.to_owned(), data: d.driver_data.into_iter().collect() }),
        root_fs: Some(ImageInspectRootFs {
            typ: if c.rootfs.kind.is_empty() { "layers".to_owned() } else { c.rootfs.kind.clone() },
            layers: (!c.rootfs.diff_ids.is_empty())
                .then(|| c.rootfs.diff_ids.iter().map(ToString::to_string).collect()),
        }),
        metadata: Some(ImageInspectMetadata {
            last_tag_time: Some(
                d.row.last_tag_time.map(rfc3339_nano).unwrap_or_else(|| "0001-01-01T00:00:00Z".to_owned()),
            ),
        }),
        ..Default::default()
    };
    ImageInspectData {
        inspect,
        parent: d.row.parent.map(|p| p.to_string()).unwrap_or_default(),
        docker_version: extra_str("docker_version"),
        container: extra_str("container"),
        container_config: c.extra.get("container_config").cloned(),
    }
}

fn records_wire(records: Vec<DeleteRecord>) -> Vec<ImageDeleteResponseItem> {
    records
        .into_iter()
        .map(|r| match r {
            DeleteRecord::Untagged(u) => ImageDeleteResponseItem { untagged: Some(u), deleted: None },
            DeleteRecord::Deleted(d) => ImageDeleteResponseItem { untagged: None, deleted: Some(d) },
        })
        .collect()
}

impl Daemon {
    fn image_service(&self) -> Arc<ImageService> {
        self.images.clone()
    }

    /// The image part of `/system/df`, with its items.
    pub(crate) async fn images_disk_usage(&self) -> Result<ImagesDiskUsage, EngineError> {
        let svc = self.image_service();
        let u = blocking(move || svc.disk_usage()).await?;
        Ok(ImagesDiskUsage {
            active_count: Some(u.active_count),
            total_count: Some(u.total_count),
            reclaimable: Some(u.reclaimable),
            total_size: Some(u.total_size),
            items: Some(
                u.items.into_iter().map(|s| serde_json::to_value(summary_wire(s)).unwrap_or_default()).collect(),
            ),
        })
    }
}

#[async_trait]
impl ImageBackend for Daemon {
    async fn list(&self, opts: ImageListOptions) -> Result<Vec<WireSummary>, EngineError> {
        let svc = self.image_service();
        let list = blocking(move || {
            svc.list(&ListOptions { all: opts.all, filters: opts.filters, shared_size: opts.shared_size })
        })
        .await?;
        Ok(list.into_iter().map(summary_wire).collect())
    }

    async fn inspect(&self, name: &str) -> Result<ImageInspectData, EngineError> {
        let svc = self.image_service();
        let name = name.to_owned();
        let driver = svc.driver().docker_name();
        let data = blocking(move || svc.inspect(&name)).await?;
        Ok(inspect_wire(data, driver))
    }

    async fn history(&self, name: &str) -> Result<Vec<ImageHistoryResponseItem>, EngineError> {
        let svc = self.image_service();
        let name = name.to_owned();
        let items = blocking(move || svc.history(&name)).await?;
        Ok(items
            .into_iter()
            .map(|h| ImageHistoryResponseItem {
                id: h.id,
                created: h.created,
                created_by: h.created_by,
                tags: h.tags,
                size: h.size,
                comment: h.comment,
            })
            .collect())
    }

    async fn tag(&self, name: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        let svc = self.image_service();
        let (name, repo, tag) = (name.to_owned(), repo.to_owned(), tag.to_owned());
        blocking(move || svc.tag(&name, &repo, &tag)).await
    }

    async fn delete(
        &self,
        name: &str,
        force: bool,
        noprune: bool,
    ) -> Result<Vec<ImageDeleteResponseItem>, EngineError> {
        let svc = self.image_service();
        let name = name.to_owned();
        let records = blocking(move || svc.delete(&name, force, !noprune)).await?;
        Ok(records_wire(records))
    }

    async fn prune(&self, filters: Filters) -> Result<ImagePruneResponse, EngineError> {
        let svc = self.image_service();
        let (records, reclaimed) = blocking(move || svc.prune(&filters)).await?;
        Ok(ImagePruneResponse {
            images_deleted: (!records.is_empty()).then(|| records_wire(records)),
            space_reclaimed: Some(reclaimed as i64),
        })
    }

    async fn import(
        &self,
        body: ByteStream,
        opts: ImageImportOptions,
        progress: ProgressSender,
    ) -> Result<(), EngineError> {
        let platform =
            opts.platform.as_deref().map(Platform::parse).transpose().map_err(|e| EngineError::from_classified(&e))?;
        let svc = self.image_service();
        let reader = BodyReader { stream: body, handle: Handle::current(), buf: Bytes::new() };
        let id = blocking(move || {
            svc.import(
                Box::new(reader),
                ImportOptions {
                    repo: opts.repo,
                    tag: opts.tag,
                    message: opts.message,
                    changes: opts.changes,
                    platform,
                    source: "-".to_owned(),
                },
            )
        })
        .await?;
        progress.send(JsonMessage::status(id.to_string()));
        Ok(())
    }

    async fn pull(&self, opts: ImagePullOptions, progress: ProgressSender) -> Result<(), EngineError> {
        let reference = super::pull::pull_reference(&opts.from_image, &opts.tag)?;
        let platform =
            opts.platform.as_deref().map(Platform::parse).transpose().map_err(|e| EngineError::from_classified(&e))?;
        let creds = decode_auth(opts.registry_auth.as_deref())?;
        let registry = self.registry_client();
        let max_concurrent_downloads = registry.max_concurrent_downloads();
        let req = super::pull::PullRequest { reference, creds, platform, max_concurrent_downloads };
        super::pull::pull(self.image_service(), registry.get(), req, progress).await
    }

    async fn push(&self, opts: ImagePushOptions, progress: ProgressSender) -> Result<(), EngineError> {
        let reference = wharf_types::Reference::parse_normalized(&opts.name)
            .map_err(|e| EngineError::invalid(format!("invalid reference format: {e}: {}", opts.name)))?;
        if reference.digest().is_some() {
            return Err(EngineError::invalid(format!("cannot push a digest reference: {}", opts.name)));
        }
        let creds = decode_auth(opts.registry_auth.as_deref())?;
        let req = super::push::PushRequest { reference, tag: opts.tag, creds };
        super::push::push(self.image_service(), self.registry(), req, progress).await
    }

    async fn auth(&self, req: AuthRequest) -> Result<AuthResponse, EngineError> {
        let creds = AuthConfig {
            username: req.username,
            password: req.password,
            auth: req.auth,
            email: req.email,
            serveraddress: req.serveraddress.clone(),
            identitytoken: req.identitytoken,
            registrytoken: req.registrytoken,
        };
        let out = self.registry().login(&req.serveraddress, &creds).await.map_err(|e| match e {
            e @ ClientError::LoginFailed { .. } => EngineError::unauthorized(e.to_string()),
            e => EngineError::from_classified(&e),
        })?;
        Ok(AuthResponse { status: out.status, identity_token: out.identity_token.unwrap_or_default() })
    }

    async fn distribution(&self, name: &str, registry_auth: Option<String>) -> Result<serde_json::Value, EngineError> {
        let reference = wharf_types::Reference::parse_normalized(name)
            .map_err(|e| EngineError::invalid(format!("invalid reference format: {e}: {name}")))?
            .with_default_tag();
        let creds = decode_auth(registry_auth.as_deref())?;
        let err = |e: ClientError| super::pull::pull_error(&reference, e);
        let repo =
            self.registry().repository(&reference, &creds, wharf_registry::client::Access::Pull).await.map_err(err)?;
        let top = repo.fetch_manifest(&manifest_ref(&reference)).await.map_err(err)?;
        let mut platforms = Vec::new();
        match &top.manifest {
            wharf_types::oci::Manifest::Index(index) => {
                for m in &index.manifests {
                    if let Some(p) = &m.platform {
                        platforms.push(serde_json::to_value(p).unwrap_or_default());
                    }
                }
            }
            wharf_types::oci::Manifest::Image(m) => {
                // The platform is in the config.
                if let Ok(bytes) = repo.fetch_blob_bytes(&m.config, 16 << 20).await
                    && let Ok(c) = serde_json::from_slice::<wharf_types::image::ImageConfig>(&bytes)
                {
                    let mut p = serde_json::json!({"architecture": c.architecture, "os": c.os});
                    if let Some(v) = &c.variant {
                        p["variant"] = serde_json::json!(v);
                    }
                    platforms.push(p);
                }
            }
        }
        let d = &top.descriptor;
        Ok(serde_json::json!({
            "Descriptor": {"mediaType": d.media_type, "digest": d.digest.to_string(), "size": d.size},
            "Platforms": platforms,
        }))
    }

    async fn search(&self, opts: ImageSearchOptions) -> Result<Vec<serde_json::Value>, EngineError> {
        // moby's registry service: the filters it accepts, the limit's range, the index the
        // term names (its first component when that is a host, else Docker Hub's).
        opts.filters.validate(&["is-automated", "is-official", "stars"])?;
        let automated = opts.filters.bool_value("is-automated")?;
        let official = opts.filters.bool_value("is-official")?;
        let mut min_stars = None;
        for v in opts.filters.get("stars") {
            let n: i64 = v.parse().map_err(|_| {
                EngineError::invalid(format!("invalid filter 'stars={v}': strconv.Atoi: parsing {v:?}: invalid syntax"))
            })?;
            min_stars = Some(min_stars.map_or(n, |m: i64| m.max(n)));
        }
        let limit = opts.limit.unwrap_or(25);
        if !(1..=100).contains(&limit) {
            return Err(EngineError::invalid(format!("limit {limit} is outside the range of [1, 100]")));
        }
        let (index, term) = wharf_types::reference::split_search_term(&opts.term);
        let creds = decode_auth(opts.registry_auth.as_deref())?;
        let found = self
            .registry()
            .search(index, term, limit, &creds)
            .await
            .map_err(|e| EngineError::new(e.kind(), e.to_string()))?;
        Ok(found
            .results
            .into_iter()
            .filter(|r| automated.is_none_or(|a| a == r.is_automated))
            .filter(|r| official.is_none_or(|o| o == r.is_official))
            .filter(|r| min_stars.is_none_or(|m| r.star_count >= m))
            .map(|r| serde_json::to_value(r).expect("plain struct"))
            .collect())
    }

    async fn load(&self, body: ByteStream, quiet: bool, progress: ProgressSender) -> Result<(), EngineError> {
        let svc = self.image_service();
        let mut reader = BodyReader { stream: body, handle: Handle::current(), buf: Bytes::new() };
        blocking(move || {
            let report = |p: Progress| match p {
                Progress::Bytes { id, action, current, total } => {
                    progress.send(JsonMessage::progress(id, action, current, total))
                }
                Progress::Line(line) => progress.send(JsonMessage::stream(format!("{line}\n"))),
            };
            svc.load(&mut reader, quiet, &report)
        })
        .await
    }

    async fn save(&self, names: Vec<String>) -> Result<ByteStream, EngineError> {
        let svc = self.image_service();
        let plan = {
            let svc = svc.clone();
            blocking(move || svc.save_plan(&names)).await?
        };
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::task::spawn_blocking(move || {
            let mut w = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
            let result = svc.write_save(&plan, &mut w).and_then(|()| {
                w.flush().map_err(|source| ImageError::Io { op: "send archive", path: "<response>".into(), source })
            });
            if let Err(e) = result {
                let e = EngineError::from(e);
                tracing::warn!(error = %e, "save failed while streaming");
                let _ = tx.blocking_send(Err(io::Error::other(e.message)));
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }
}

/// Decodes `X-Registry-Auth` (missing or empty: no credentials).
fn decode_auth(header: Option<&str>) -> Result<AuthConfig, EngineError> {
    match header {
        None => Ok(AuthConfig::default()),
        Some(h) => AuthConfig::from_header(h)
            .ok_or_else(|| EngineError::invalid("invalid X-Registry-Auth header: not base64-encoded JSON")),
    }
}
