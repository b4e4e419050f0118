//! Fake backends for route tests (STYLE 6: every route can be tested against a fake backend).
//! The system fake answers with empty documents; the container fake knows no containers; the
//! volume fake knows none either but echoes what it is asked to create and prune.

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use wharf_types::{EngineError, Filters};

use crate::backend::*;
use crate::models::*;

pub struct FakeSystem;

#[async_trait]
impl SystemBackend for FakeSystem {
    async fn info(&self) -> Result<SystemInfo, EngineError> {
        Ok(Default::default())
    }
    async fn version(&self) -> Result<SystemVersion, EngineError> {
        Ok(Default::default())
    }
    fn events(&self, _: Option<i64>, _: Option<i64>, _: Filters) -> Result<EventStream, EngineError> {
        Ok(Box::pin(futures_util::stream::empty()))
    }
}

pub struct NoContainers;

fn none(id: &str) -> EngineError {
    EngineError::not_found(format!("No such container: {id}"))
}

#[async_trait]
impl ContainerBackend for NoContainers {
    async fn create(&self, _: Option<String>, b: ContainerCreateBody) -> Result<ContainerCreateResponse, EngineError> {
        Err(EngineError::not_found(format!("No such image: {}", b.image.unwrap_or_default())))
    }
    async fn inspect(&self, id: &str, _: bool) -> Result<ContainerInspectResponse, EngineError> {
        Err(none(id))
    }
    async fn list(&self, _: ListOptions) -> Result<Vec<ContainerSummary>, EngineError> {
        Ok(vec![])
    }
    async fn start(&self, id: &str) -> Result<(), EngineError> {
        Err(none(id))
    }
    async fn stop(&self, id: &str, _: Option<i64>, _: Option<String>) -> Result<(), EngineError> {
        Err(none(id))
    }
    async fn restart(&self, id: &str, _: Option<i64>, _: Option<String>) -> Result<(), EngineError> {
        Err(none(id))
    }
    async fn kill(&self, id: &str, _: Option<String>) -> Result<(), EngineError> {
        Err(none(id))
    }
    async fn wait(&self, id: &str, _: WaitCondition) -> Result<BoxFuture<'static, WaitOutcome>, EngineError> {
        Err(none(id))
    }
    async fn remove(&self, id: &str, _: bool, _: bool, _: bool) -> Result<(), EngineError> {
        Err(none(id))
    }
    async fn rename(&self, id: &str, _: &str) -> Result<(), EngineError> {
        Err(none(id))
    }
    async fn pause(&self, id: &str) -> Result<(), EngineError> {
        Err(none(id))
    }
    async fn unpause(&self, id: &str) -> Result<(), EngineError> {
        Err(none(id))
    }
    async fn top(&self, id: &str, _: Option<String>) -> Result<ContainerTopResponse, EngineError> {
        Err(none(id))
    }
    async fn logs(&self, id: &str, _: LogsOptions) -> Result<Logs, EngineError> {
        Err(none(id))
    }
    async fn attach(&self, id: &str, _: AttachOptions) -> Result<AttachSession, EngineError> {
        Err(none(id))
    }
    async fn resize(&self, id: &str, _: u16, _: u16) -> Result<(), EngineError> {
        Err(none(id))
    }
    async fn prune(&self, _: Filters) -> Result<ContainerPruneResponse, EngineError> {
        Ok(ContainerPruneResponse { containers_deleted: Some(vec![]), space_reclaimed: Some(0) })
    }
    async fn stats(
        &self,
        id: &str,
        _: bool,
        _: bool,
    ) -> Result<futures_util::stream::BoxStream<'static, serde_json::Value>, EngineError> {
        Err(none(id))
    }
    async fn archive_stat(&self, id: &str, _: &str) -> Result<PathStat, EngineError> {
        Err(none(id))
    }
    /// Knows the container `x` but none of its files.
    async fn archive_get(&self, id: &str, path: &str) -> Result<PathArchive, EngineError> {
        if id != "x" {
            return Err(none(id));
        }
        Err(EngineError::not_found(format!("Could not find the file {path} in container {id}")))
    }
    async fn archive_put(&self, id: &str, _: ExtractOptions, _: ByteStream) -> Result<(), EngineError> {
        Err(none(id))
    }
    async fn export(&self, id: &str) -> Result<ByteStream, EngineError> {
        Err(none(id))
    }
    /// Nothing changed in any container.
    async fn changes(&self, _: &str) -> Result<Vec<FilesystemChange>, EngineError> {
        Ok(Vec::new())
    }
    async fn update(&self, id: &str, _: ContainerUpdateBody) -> Result<ContainerUpdateResponse, EngineError> {
        Err(none(id))
    }
    /// Echoes what the route parsed as the "ID": container, repo, pause, changes, config Cmd.
    async fn commit(&self, o: CommitOptions) -> Result<String, EngineError> {
        let cmd = o.config.and_then(|c| c.cmd).unwrap_or_default().join(" ");
        Ok(format!("{} {} {} {} {}", o.container, o.repo, o.pause, o.changes.join("|"), cmd).trim_end().to_owned())
    }
}

#[async_trait]
impl ExecBackend for NoContainers {
    async fn create(&self, container: &str, _: ExecConfig) -> Result<String, EngineError> {
        Err(none(container))
    }
    async fn start(
        &self,
        id: &str,
        _: bool,
        _: Option<bool>,
        _: Option<[u16; 2]>,
    ) -> Result<Option<AttachSession>, EngineError> {
        Err(EngineError::not_found(format!("No such exec instance: {id}")))
    }
    async fn resize(&self, id: &str, _: u16, _: u16) -> Result<(), EngineError> {
        Err(EngineError::not_found(format!("No such exec instance: {id}")))
    }
    async fn inspect(&self, id: &str) -> Result<ExecInspectResponse, EngineError> {
        Err(EngineError::not_found(format!("No such exec instance: {id}")))
    }
}

pub struct NoImages;

#[async_trait]
impl ImageBackend for NoImages {
    async fn list(
        &self,
        _: crate::backend::ImageListOptions,
    ) -> Result<Vec<crate::models::ImageSummary>, wharf_types::EngineError> {
        Ok(Vec::new())
    }
    async fn inspect(&self, name: &str) -> Result<crate::backend::ImageInspectData, wharf_types::EngineError> {
        Err(wharf_types::EngineError::not_found(format!("No such image: {name}")))
    }
    async fn history(&self, _: &str) -> Result<Vec<crate::models::ImageHistoryResponseItem>, wharf_types::EngineError> {
        Ok(Vec::new())
    }
    async fn tag(&self, _: &str, _: &str, _: &str) -> Result<(), wharf_types::EngineError> {
        Ok(())
    }
    async fn delete(
        &self,
        _: &str,
        _: bool,
        _: bool,
    ) -> Result<Vec<crate::models::ImageDeleteResponseItem>, wharf_types::EngineError> {
        Ok(Vec::new())
    }
    async fn prune(
        &self,
        _: wharf_types::Filters,
    ) -> Result<crate::models::ImagePruneResponse, wharf_types::EngineError> {
        Ok(Default::default())
    }
    async fn import(
        &self,
        _: crate::backend::ByteStream,
        _: crate::backend::ImageImportOptions,
        _: crate::stream::ProgressSender,
    ) -> Result<(), wharf_types::EngineError> {
        Ok(())
    }
    async fn load(
        &self,
        _: crate::backend::ByteStream,
        _: bool,
        _: crate::stream::ProgressSender,
    ) -> Result<(), wharf_types::EngineError> {
        Ok(())
    }
    async fn save(&self, _: Vec<String>) -> Result<crate::backend::ByteStream, wharf_types::EngineError> {
        Ok(Box::pin(futures_util::stream::empty()))
    }
}

pub struct NoVolumes;

#[async_trait]
impl VolumeBackend for NoVolumes {
    async fn create(&self, req: VolumeCreateRequest) -> Result<Volume, EngineError> {
        Ok(Volume {
            name: req.name.unwrap_or_else(|| "0".repeat(64)),
            driver: "local".into(),
            mountpoint: "/var/lib/wharf/volumes/x/_data".into(),
            labels: req.labels.unwrap_or_default(),
            options: req.driver_opts.unwrap_or_default(),
            scope: Some(VolumeScopeEnum::LOCAL),
            ..Default::default()
        })
    }
    async fn list(&self, _: Filters) -> Result<VolumeListResponse, EngineError> {
        Ok(VolumeListResponse { volumes: Some(vec![]), warnings: None })
    }
    async fn inspect(&self, name: &str) -> Result<Volume, EngineError> {
        Err(EngineError::not_found(format!("get {name}: no such volume")))
    }
    async fn remove(&self, name: &str, force: bool) -> Result<(), EngineError> {
        if force { Ok(()) } else { Err(EngineError::not_found(format!("get {name}: no such volume"))) }
    }
    /// Reports the `all` filter it was given as the deleted list, so tests see what the route
    /// passed on.
    async fn prune(&self, filters: Filters) -> Result<VolumePruneResponse, EngineError> {
        let deleted = filters.get("all").map(|v| format!("all={v}")).collect();
        Ok(VolumePruneResponse { volumes_deleted: Some(deleted), space_reclaimed: Some(0) })
    }
}

/// Builds nothing: every build fails with a step error after one message (or before any,
/// for a context named `early`), and prune reports what it was asked.
pub struct NoBuilds;

#[async_trait]
impl BuildBackend for NoBuilds {
    async fn build(
        &self,
        _: ByteStream,
        req: BuildRequest,
        progress: crate::stream::ProgressSender,
        _: tokio_util::sync::CancellationToken,
    ) -> Result<String, BuildFailure> {
        if req.dockerfile == "early" {
            return Err(EngineError::invalid("dockerfile parse error on line 1: unknown instruction: NOPE").into());
        }
        progress.send(crate::stream::JsonMessage::stream("Step 1/2 : FROM busybox"));
        progress.send(crate::stream::JsonMessage {
            aux: Some(serde_json::json!({"ID": "sha256:aaaa"})),
            ..Default::default()
        });
        if req.dockerfile == "ok" {
            return Ok("sha256:aaaa".into());
        }
        Err(BuildFailure {
            error: EngineError::internal("The command '/bin/sh -c exit 3' returned a non-zero code: 3"),
            code: Some(3),
        })
    }
    async fn prune(&self, opts: BuildPruneOptions) -> Result<BuildPruneResponse, EngineError> {
        Ok(BuildPruneResponse {
            caches_deleted: Some(vec![format!("all={} keep={}", opts.all, opts.keep_storage)]),
            space_reclaimed: Some(0),
        })
    }
}

/// Knows only the predefined networks, which cannot be removed; records nothing.
pub struct FakeNetworks;

fn predefined(id: &str) -> Option<NetworkInspect> {
    ["bridge", "host", "none"].contains(&id).then(|| NetworkInspect {
        name: Some(id.to_owned()),
        id: Some(format!("{:0>64}", id.len())),
        ..Default::default()
    })
}

fn no_network(id: &str) -> EngineError {
    EngineError::not_found(format!("network {id} not found"))
}

#[async_trait]
impl NetworkBackend for FakeNetworks {
    async fn list(&self, f: Filters) -> Result<Vec<NetworkInspect>, EngineError> {
        f.validate(&["driver", "id", "label", "name", "scope", "type", "dangling"])?;
        Ok(["bridge", "host", "none"].iter().filter_map(|n| predefined(n)).collect())
    }
    async fn inspect(&self, id: &str, _: bool, _: Option<String>) -> Result<NetworkInspect, EngineError> {
        predefined(id).ok_or_else(|| no_network(id))
    }
    async fn create(&self, req: NetworkCreateRequest) -> Result<NetworkCreateResponse, EngineError> {
        if predefined(&req.name).is_some() {
            return Err(EngineError::conflict(format!("network with name {} already exists", req.name)));
        }
        Ok(NetworkCreateResponse { id: "f".repeat(64), warning: String::new() })
    }
    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        match predefined(id) {
            Some(_) => Err(EngineError::forbidden(format!("{id} is a pre-defined network and cannot be removed"))),
            None => Err(no_network(id)),
        }
    }
    async fn connect(&self, id: &str, req: NetworkConnectRequest) -> Result<(), EngineError> {
        predefined(id).ok_or_else(|| no_network(id))?;
        Err(none(&req.container))
    }
    async fn disconnect(&self, id: &str, req: NetworkDisconnectRequest) -> Result<(), EngineError> {
        predefined(id).ok_or_else(|| no_network(id))?;
        Err(none(&req.container))
    }
    async fn prune(&self, _: Filters) -> Result<NetworkPruneResponse, EngineError> {
        Ok(NetworkPruneResponse { networks_deleted: Some(vec![]) })
    }
}

/// An app over the fakes.
pub fn app() -> crate::router::App {
    crate::router::build(
        Backends {
            system: std::sync::Arc::new(FakeSystem),
            images: std::sync::Arc::new(NoImages),
            containers: std::sync::Arc::new(NoContainers),
            execs: std::sync::Arc::new(NoContainers),
            volumes: std::sync::Arc::new(NoVolumes),
            builds: std::sync::Arc::new(NoBuilds),
            networks: std::sync::Arc::new(FakeNetworks),
        },
        tokio_util::sync::CancellationToken::new(),
    )
}

/// Serves one request through the whole app (prefix, routes, headers).
pub async fn call(method: &str, uri: &str, body: &str) -> (u16, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(http_body_util::Full::new(bytes::Bytes::from(body.to_owned())))
        .unwrap();
    let resp = app().handle(req).await;
    let status = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}
