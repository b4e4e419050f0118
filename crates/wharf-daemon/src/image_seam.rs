//! The seam between containers and the image service. Until the image service (its own
//! branch) is merged, the daemon opens the snapshotter where that service keeps it and
//! resolves no image names — so `create` answers Docker's `No such image` honestly.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use wharf_snapshot::Snapshotter;
use wharf_types::EngineError;

use crate::container::{ImageProvider, ResolvedImage};

pub struct SnapshotterOnly {
    snapshotter: Arc<dyn Snapshotter>,
}

impl SnapshotterOnly {
    pub fn open(data_root: &Path) -> Result<Self, EngineError> {
        let snapshotter: Arc<dyn Snapshotter> = if wharf_snapshot::overlay_supported() {
            Arc::new(
                wharf_snapshot::OverlaySnapshotter::open(&data_root.join("snapshots/overlay"))
                    .map_err(|e| EngineError::from_classified(&e))?,
            )
        } else {
            Arc::new(
                wharf_snapshot::NativeSnapshotter::open(&data_root.join("snapshots/native"))
                    .map_err(|e| EngineError::from_classified(&e))?,
            )
        };
        Ok(Self { snapshotter })
    }
}

#[async_trait]
impl ImageProvider for SnapshotterOnly {
    async fn resolve_image(&self, name: &str) -> Result<ResolvedImage, EngineError> {
        let shown = wharf_types::Reference::parse_normalized(name)
            .map(|r| r.with_default_tag().familiar())
            .unwrap_or_else(|_| name.to_owned());
        Err(EngineError::not_found(format!("No such image: {shown}")))
    }

    fn snapshotter(&self) -> Arc<dyn Snapshotter> {
        self.snapshotter.clone()
    }
}
