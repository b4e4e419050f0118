//! `/system/df`: each service's part of the disk usage. Images, volumes and the build cache
//! are real; containers report an empty list until their service fills it in.

use wharf_api::backend::DiskUsageOptions;
use wharf_api::models::{ContainersDiskUsage, SystemDataUsageResponse};
use wharf_types::EngineError;

use crate::Daemon;

impl Daemon {
    /// The usage of the object types asked for, each with its items.
    pub async fn system_disk_usage(&self, opts: DiskUsageOptions) -> Result<SystemDataUsageResponse, EngineError> {
        let image_usage = if opts.images { Some(self.images_disk_usage().await?) } else { None };
        let volume_usage = if opts.volumes { Some(self.volumes().disk_usage().await) } else { None };
        let build_cache_usage = if opts.build_cache { Some(self.builds().disk_usage().await?) } else { None };
        Ok(SystemDataUsageResponse {
            image_usage,
            container_usage: opts.containers.then(|| ContainersDiskUsage {
                active_count: Some(0),
                total_count: Some(0),
                reclaimable: Some(0),
                total_size: Some(0),
                items: Some(Vec::new()),
            }),
            volume_usage,
            build_cache_usage,
        })
    }

    /// `/info` `Images`.
    pub(crate) async fn image_count(&self) -> Result<i64, EngineError> {
        let svc = self.images().clone();
        crate::image::backend::blocking(move || svc.count()).await
    }
}
