//! A new container's mounts: the volume service registers `--volumes-from`, `-v` and `--mount`
//! (creating named volumes), then — with the container's root filesystem mounted for a moment —
//! adds anonymous volumes for the image's `VOLUME`s and copies image content into new volumes,
//! as Docker does at create.

use wharf_api::models::{ContainerConfig, HostConfig};
use wharf_types::{ContainerId, EngineError};

use super::{ContainerService, internal};
use crate::volume::mountpoint::{MountPoint, MountType};

impl ContainerService {
    /// The mount points of a container being created, its volumes referenced. On error nothing
    /// stays referenced and the anonymous volumes made for it are gone.
    pub(crate) async fn create_mounts(
        &self,
        id: &ContainerId,
        hc: &HostConfig,
        config: &ContainerConfig,
        rw_layer: &str,
    ) -> Result<Vec<MountPoint>, EngineError> {
        let volumes = self.ctx.volumes.clone();
        let lend = |key: &str| -> Result<Vec<MountPoint>, EngineError> { Ok(self.lookup(key)?.record().mount_points) };
        // A 404 from create makes the docker CLI pull the image: a missing volume driver (the
        // only NotFound here) is a bad request for the container.
        let not_found_is_invalid = |e: EngineError| match e.kind {
            wharf_types::ErrorKind::NotFound => EngineError::invalid(e.message),
            _ => e,
        };
        let mut points = volumes.register_mounts(id.as_str(), hc, &lend).map_err(not_found_is_invalid)?;
        let config_volumes = config.volumes.clone().unwrap_or_default();
        let needs_root =
            !config_volumes.is_empty() || points.iter().any(|p| p.kind == MountType::Volume && p.copy_data);
        if !needs_root {
            return Ok(points);
        }
        let rootfs = self.ctx.paths.run_dir(id).join("rootfs");
        let snapshotter = self.ctx.images.snapshotter();
        let (key, cid) = (rw_layer.to_owned(), id.to_string());
        let driver = hc.volume_driver.clone().unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            let res = (|| -> Result<(), EngineError> {
                std::fs::create_dir_all(&rootfs).map_err(internal)?;
                let mounts = snapshotter.mounts(&key).map_err(|e| EngineError::from_classified(&e))?;
                wharf_snapshot::mount_all(&mounts, &rootfs).map_err(|e| EngineError::from_classified(&e))?;
                let res = volumes
                    .add_anonymous(&cid, &mut points, &config_volumes, &driver, &rootfs)
                    .and_then(|()| volumes.copy_up(&points, &rootfs));
                if let Err(e) = wharf_snapshot::unmount(&rootfs) {
                    tracing::warn!(error = %e, "unmounting a container's root after copy-up failed");
                }
                res
            })();
            let _ = std::fs::remove_dir(&rootfs);
            if let Some(run_dir) = rootfs.parent() {
                let _ = std::fs::remove_dir(run_dir);
            }
            if res.is_err() {
                volumes.forget(&cid, &points, true);
            }
            res.map(|()| points)
        })
        .await
        .map_err(internal)?
    }
}
