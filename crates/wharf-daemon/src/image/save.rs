//! `docker save`: names → images and tags (moby's rules: a bare name saves every tag of the
//! repository, an ID saves the image untagged), then the archive
//! ([`wharf_image::archive::write_archive`]) streamed to the client.

use std::io::Write;

use wharf_image::archive::{SaveImage, SaveLayer, SaveTag, write_archive};
use wharf_types::{ImageId, Reference};

use super::store;
use super::{ImageError, ImageService};

/// What will be saved: checked before the response starts, so a bad name is a 404.
#[derive(Debug, Clone)]
pub struct SavePlan {
    images: Vec<(ImageId, Vec<Reference>)>,
}

impl ImageService {
    /// Resolves the names of `GET /images/get?names=…`.
    pub fn save_plan(&self, names: &[String]) -> Result<SavePlan, ImageError> {
        let mut images: Vec<(ImageId, Vec<Reference>)> = Vec::new();
        let mut add = |id: ImageId, r: Option<Reference>| {
            let entry = match images.iter_mut().position(|(i, _)| *i == id) {
                Some(p) => &mut images[p].1,
                None => {
                    images.push((id, Vec::new()));
                    &mut images.last_mut().expect("just pushed").1
                }
            };
            if let Some(r) = r
                && r.tag().is_some()
                && r.digest().is_none()
                && !entry.contains(&r)
            {
                entry.push(r);
            }
        };
        for name in names {
            let looks_like_id = name.starts_with("sha256:") || wharf_types::id::is_full_hex_id(name);
            if looks_like_id {
                add(self.lookup(name)?.0.id, None);
                continue;
            }
            let r = Reference::parse_normalized(name)?;
            if r.tag().is_none() && r.digest().is_none() {
                let refs = store::refs_all(&self.db.conn())?;
                let mut found = false;
                for (stored, id) in refs {
                    if stored.name() == r.name() && stored.digest().is_none() {
                        add(id, Some(stored));
                        found = true;
                    }
                }
                if !found {
                    add(self.lookup(name)?.0.id, None);
                }
                continue;
            }
            let (row, _) = self.lookup(name)?;
            add(row.id, Some(r.with_default_tag()));
        }
        Ok(SavePlan { images })
    }

    /// Writes the archive of `plan` to `out`.
    pub fn write_save(&self, plan: &SavePlan, out: &mut dyn Write) -> Result<(), ImageError> {
        let lease = self.leases.lease();
        let mut images = Vec::with_capacity(plan.images.len());
        for (id, refs) in &plan.images {
            lease.add(&id.to_string());
            let row = store::image_get(&self.db.conn(), id)?.ok_or_else(|| ImageError::NoSuchImage(id.to_string()))?;
            if let Some(top) = &row.top_layer {
                lease.add(&top.to_string());
            }
            let config = self.config_bytes(id)?;
            let c = self.db.conn();
            let chain = self.layer_chain(&c, row.top_layer.as_ref())?;
            let mut layers = Vec::with_capacity(chain.len());
            for l in &chain {
                let (blob, compression) = store::layer_blobs(&c, &l.diff_id)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| ImageError::Invalid(format!("layer {} has no stored blob to export", l.diff_id)))?;
                layers.push(SaveLayer { diff_id: l.diff_id.clone(), tar_size: l.tar_size as u64, blob, compression });
            }
            drop(c);
            // Leases only once the connection is released (lock order: leases, database).
            for l in &layers {
                lease.add(&l.blob.to_string());
            }
            images.push(SaveImage {
                config,
                tags: refs
                    .iter()
                    .map(|r| SaveTag {
                        familiar: r.familiar(),
                        familiar_name: r.familiar_name(),
                        full: r.to_string(),
                        tag: r.tag().unwrap_or("latest").to_owned(),
                    })
                    .collect(),
                layers,
            });
            self.event("save", id, &id.to_string());
        }
        write_archive(out, &images, &self.content)?;
        Ok(())
    }
}
