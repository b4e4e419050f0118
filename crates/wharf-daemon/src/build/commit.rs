//! `wharf-build`'s [`ImageCommitter`] over the image service: each step's image is recorded
//! with its layer in one transaction ([`ImageService::register_image`]); `-t` tags go through
//! the service's tagging (one transaction and a `tag` event each).

use std::sync::Arc;

use async_trait::async_trait;
use wharf_build::{ImageCommitter, NewImage};
use wharf_types::{Digest, EngineError, ImageId, Reference};

use crate::image::ImageService;
use crate::image::register::RegisteredImage;

pub struct DaemonCommitter {
    images: Arc<ImageService>,
}

impl DaemonCommitter {
    pub fn new(images: Arc<ImageService>) -> Self {
        Self { images }
    }
}

#[async_trait]
impl ImageCommitter for DaemonCommitter {
    async fn commit(&self, image: NewImage) -> Result<(), EngineError> {
        let svc = self.images.clone();
        let img = RegisteredImage {
            id: ImageId::new(image.id),
            config_json: image.config_json,
            config: image.config,
            parent: image.parent.map(ImageId::new),
            layer: image.layer.map(|l| (l.diff_id, l.size)),
        };
        crate::image::backend::blocking(move || svc.register_image(img).map(drop)).await
    }

    async fn tag(&self, image: &Digest, reference: &Reference) -> Result<(), EngineError> {
        let svc = self.images.clone();
        let source = image.to_string();
        let repo = reference.name();
        let tag = reference.tag().unwrap_or("latest").to_owned();
        crate::image::backend::blocking(move || svc.tag(&source, &repo, &tag)).await
    }
}
