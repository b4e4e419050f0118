//! Images made elsewhere in the daemon from layers that already exist on disk (the builder's
//! steps): [`ImageService::register_image`] records the config blob, the new layer and the
//! image in one transaction.
//!
//! The caller has already written the layer's uncompressed tar into the content store (its
//! digest is its diff ID) and committed its snapshot under its chain ID, and holds a
//! [`super::GcHold`] so GC cannot remove them before this records them.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use wharf_image::layer::Compression;
use wharf_types::image::{ImageConfig, chain_ids};
use wharf_types::{Digest, ImageId};

use super::store::{self, BlobRow, LayerRow, now_nanos};
use super::{ImageError, ImageService};

/// An image to record (see the module doc).
#[derive(Debug, Clone)]
pub struct RegisteredImage {
    /// sha256 of `config_json`.
    pub id: ImageId,
    /// The config as it must be stored.
    pub config_json: Vec<u8>,
    pub config: ImageConfig,
    /// The image it was made from (`docker history`, `images -a`).
    pub parent: Option<ImageId>,
    /// The new top layer, when the image adds one: diff ID and tar size. Every other layer of
    /// `config.rootfs` must already be recorded.
    pub layer: Option<(Digest, u64)>,
}

impl ImageService {
    /// Records `img` (idempotent: an image that exists is a success). Returns whether it was
    /// new. No event: images made by a build step are announced by the build's tags.
    pub fn register_image(&self, img: RegisteredImage) -> Result<bool, ImageError> {
        if store::image_get(&self.db.conn(), &img.id)?.is_some() {
            return Ok(false);
        }
        let diff_ids = &img.config.rootfs.diff_ids;
        let chains = chain_ids(diff_ids);
        let new_layer = match &img.layer {
            Some((diff_id, tar_size)) => {
                if diff_ids.last() != Some(diff_id) {
                    return Err(ImageError::Invalid(format!(
                        "image {}: its new layer {diff_id} is not its top layer",
                        img.id
                    )));
                }
                Some((diff_id.clone(), *tar_size))
            }
            None => None,
        };
        let known = chains.len() - usize::from(new_layer.is_some());
        let mut layers: Vec<LayerRow> = Vec::with_capacity(chains.len());
        {
            let c = self.db.conn();
            for chain in &chains[..known] {
                let row = store::layer_get(&c, chain)?
                    .ok_or_else(|| ImageError::Invalid(format!("layer {chain} of image {} is missing", img.id)))?;
                layers.push(row);
            }
        }
        let lease = self.leases.lease();
        let mut new_rows = None;
        if let Some((diff_id, tar_size)) = new_layer {
            let chain = chains.last().expect("a new layer has a chain ID").clone();
            let existing = store::layer_get(&self.db.conn(), &chain)?;
            let row = match existing {
                Some(row) => row,
                None => {
                    if !self.content.exists(&diff_id) {
                        return Err(ImageError::Invalid(format!("the blob of layer {diff_id} is missing")));
                    }
                    let name = chain.to_string();
                    lease.add(&name);
                    let size = self
                        .snapshotter
                        .usage(&name)
                        .map_err(|source| ImageError::Snapshot { op: "measure a layer snapshot", source })?
                        .size;
                    let row = LayerRow {
                        chain_id: chain.clone(),
                        diff_id: diff_id.clone(),
                        parent: layers.last().map(|l| l.chain_id.clone()),
                        size: size as i64,
                        tar_size: tar_size as i64,
                        snapshot: name,
                    };
                    let blob = BlobRow {
                        digest: diff_id.clone(),
                        size: tar_size as i64,
                        media_type: Compression::None.oci_media_type().to_owned(),
                    };
                    new_rows = Some((row.clone(), blob));
                    row
                }
            };
            layers.push(row);
        }
        let config_digest = img.id.digest().clone();
        if !self.content.exists(&config_digest) {
            let mut w = self
                .content
                .writer(Some(&config_digest), Some(img.config_json.len() as u64))
                .map_err(ImageError::Content)?;
            w.write_all(&img.config_json).map_err(|source| ImageError::Io {
                op: "write image config",
                path: "<content store>".into(),
                source,
            })?;
            lease.commit_blob(w).map_err(ImageError::Content)?;
        } else {
            lease.add(&config_digest.to_string());
        }
        let row = self.image_row(&img.id, &img.config, &layers, img.parent.clone())?;
        self.sync_storage();
        let now = now_nanos();
        let inserted = self.db.transaction(|tx| {
            store::blob_insert(
                tx,
                &BlobRow {
                    digest: config_digest.clone(),
                    size: img.config_json.len() as i64,
                    media_type: wharf_image::oci::MEDIA_TYPE_OCI_CONFIG.to_owned(),
                },
                now,
            )?;
            if let Some((layer, blob)) = &new_rows {
                store::blob_insert(tx, blob, now)?;
                store::layer_insert(tx, layer, now)?;
                store::layer_blob_insert(tx, &layer.diff_id, &blob.digest, Compression::None)?;
            }
            Ok::<_, ImageError>(store::image_insert(tx, &row)?)
        })?;
        drop(lease);
        Ok(inserted)
    }

    /// The content store (the builder writes its layers there).
    pub fn content(&self) -> wharf_image::ContentStore {
        self.content.clone()
    }

    /// Images something keeps: referenced ones (tags, digests), those containers use, and all
    /// their ancestors (`parent` chains, a build's intermediate images). The rest are what a
    /// build-cache prune may delete.
    pub fn kept_images(&self) -> Result<HashSet<ImageId>, ImageError> {
        let users = self.users();
        let c = self.db.conn();
        let parents: HashMap<ImageId, Option<ImageId>> =
            store::images_all(&c)?.into_iter().map(|r| (r.id, r.parent)).collect();
        let mut roots: Vec<ImageId> = store::refs_all(&c)?.into_iter().map(|(_, id)| id).collect();
        roots.extend(users.into_iter().map(|u| u.image));
        let mut kept = HashSet::new();
        for root in roots {
            let mut cur = Some(root);
            while let Some(id) = cur {
                if !kept.insert(id.clone()) {
                    break;
                }
                cur = parents.get(&id).cloned().flatten();
            }
        }
        Ok(kept)
    }

    /// The untagged ancestors of `id` (itself first) up to the first kept one, with their own
    /// layer sizes: what deleting `id` with its parents pruned can reclaim.
    pub fn prunable_chain(&self, id: &ImageId, kept: &HashSet<ImageId>) -> Result<Vec<(ImageId, i64)>, ImageError> {
        let mut out = Vec::new();
        let mut cur = Some(id.clone());
        while let Some(i) = cur {
            if kept.contains(&i) {
                break;
            }
            let parent = store::image_get(&self.db.conn(), &i)?.and_then(|r| r.parent);
            out.push((i.clone(), self.own_layer_size(&i)?));
            cur = parent;
        }
        Ok(out)
    }

    /// The size of an image's own top layer (0 when it adds none or has no layers), as the
    /// build cache reports its entries.
    pub fn own_layer_size(&self, id: &ImageId) -> Result<i64, ImageError> {
        let c = self.db.conn();
        let Some(row) = store::image_get(&c, id)? else { return Ok(0) };
        let Some(top) = row.top_layer else { return Ok(0) };
        let parent_top = match &row.parent {
            Some(p) => store::image_get(&c, p)?.and_then(|p| p.top_layer),
            None => None,
        };
        if parent_top.as_ref() == Some(&top) {
            return Ok(0);
        }
        Ok(store::layer_get(&c, &top)?.map(|l| l.size).unwrap_or(0))
    }
}
