//! `docker import`: one layer from a tarball (plain, gzip or zstd), a config from `--change`
//! instructions, history with the message.

use std::io::Read;

use wharf_types::image::{History, RuntimeConfig};
use wharf_types::{ImageId, Platform, Reference};

use super::changes::apply_changes;
use super::layer::{LayerSource, NewImage};
use super::{ImageError, ImageService};

/// What `POST /images/create?fromSrc=-` carries besides the body.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `repo` (may hold a tag) and `tag`; both empty for an untagged image.
    pub repo: String,
    pub tag: String,
    /// `message`; Docker's default is `Imported from <src>`.
    pub message: String,
    pub changes: Vec<String>,
    pub platform: Option<Platform>,
    /// `fromSrc`, for the default message.
    pub source: String,
}

/// moby's `RepoTagReference`: `repo` normalised, `tag` (or `latest`) added.
pub fn repo_tag_reference(repo: &str, tag: &str) -> Result<Option<Reference>, ImageError> {
    if repo.is_empty() {
        return Ok(None);
    }
    let r = Reference::parse_normalized(repo)?;
    if r.digest().is_some() {
        return Err(ImageError::Invalid("cannot import digest reference".into()));
    }
    Ok(Some(if tag.is_empty() { r.with_default_tag() } else { r.with_tag(tag)? }))
}

impl ImageService {
    /// Imports the layer tar read from `body`; returns the new image's ID.
    pub fn import(&self, body: Box<dyn Read + Send>, opts: ImportOptions) -> Result<ImageId, ImageError> {
        let tag = repo_tag_reference(&opts.repo, &opts.tag)?;
        let platform = opts.platform.clone().unwrap_or_else(Platform::host);
        if platform.os != "linux" {
            return Err(ImageError::Invalid(format!("operating system is not supported: {}", platform.os)));
        }
        let mut config = RuntimeConfig::default();
        apply_changes(&mut config, &opts.changes)?;
        let comment =
            if opts.message.is_empty() { format!("Imported from {}", opts.source) } else { opts.message.clone() };
        let created = self.create_image_inner(NewImage {
            base: None,
            layer: Some(LayerSource::Tar(body)),
            config,
            history: History { comment: Some(comment.clone()), ..Default::default() },
            created: None,
            author: None,
            comment: Some(comment),
            platform: Some(platform),
            parent: None,
            tag,
        });
        let id = match created {
            Ok(id) => id,
            Err(e) => {
                // Whatever was stored before the failure is no longer leased.
                let _ = self.gc();
                return Err(e);
            }
        };
        self.event("import", &id, &id.to_string());
        Ok(id)
    }
}
