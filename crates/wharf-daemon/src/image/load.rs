//! `docker load`: the archive is spooled ([`wharf_image::archive::read`]), every image in it
//! checked (config, platform, layer count, names) before anything is unpacked, the new layers
//! unpacked and verified against their diff IDs, and then one transaction records every image,
//! layer, blob and tag of the archive. A failure or a crash before that commit leaves only
//! unreferenced files, which GC removes.

use std::collections::HashMap;
use std::io::{Read, Write};

use wharf_image::archive::{self, ArchiveImage, ReadOptions, Spooled};
use wharf_image::layer::{Compression, detect_compression};
use wharf_types::image::{ImageConfig, chain_ids};
use wharf_types::{Digest, ImageId, Platform, Reference};

use super::layer::{BlobLayer, Progress, ProgressFn};
use super::store::{self, BlobRow, LayerRow, now_nanos};
use super::{ImageError, ImageService};

/// One image of the archive, checked.
struct Checked {
    id: ImageId,
    config: ImageConfig,
    config_bytes: Vec<u8>,
    names: Vec<Reference>,
    chains: Vec<Digest>,
    /// Blob, its size and compression, per layer.
    blobs: Vec<(Digest, u64, Compression)>,
}

impl ImageService {
    /// Loads every image of the archive read from `body`. `progress` gets `Loading layer`
    /// progress (unless `quiet`) and the `Loaded image: …` lines.
    pub fn load(&self, body: &mut dyn Read, quiet: bool, progress: ProgressFn<'_>) -> Result<(), ImageError> {
        let result = self.load_inner(body, quiet, progress);
        if result.is_err() {
            // What the failed load stored is no longer leased: remove it now.
            let _ = self.gc();
        }
        result
    }

    fn load_inner(&self, body: &mut dyn Read, quiet: bool, progress: ProgressFn<'_>) -> Result<(), ImageError> {
        let lease = self.leases.lease();
        let started = std::time::Instant::now();
        let opts = ReadOptions::default();
        let spooled = archive::read::read(body, &self.content, &mut |w| lease.commit_blob(w), &opts)?;
        let (_, images) = spooled.images(&self.content, &Platform::host(), &opts)?;
        let mut checked = Vec::with_capacity(images.len());
        for image in &images {
            checked.push(self.check(image, &lease)?);
        }
        // Layers to unpack, each once, in an order where parents come first.
        let mut jobs: Vec<BlobLayer> = Vec::new();
        for c in &checked {
            for (i, chain) in c.chains.iter().enumerate() {
                if jobs.iter().any(|j| &j.chain == chain) {
                    continue;
                }
                let (blob, size, _) = &c.blobs[i];
                jobs.push(BlobLayer {
                    chain: chain.clone(),
                    parent: (i > 0).then(|| c.chains[i - 1].clone()),
                    diff_id: c.config.rootfs.diff_ids[i].clone(),
                    blob: blob.clone(),
                    blob_size: *size,
                });
            }
        }
        let layer_progress = |p: Progress| {
            if !quiet {
                progress(p)
            }
        };
        let spooled_at = started.elapsed();
        let new_rows = self.unpack_blobs(&lease, &jobs, Some(&layer_progress))?;
        let unpacked_at = started.elapsed();
        let mut rows: HashMap<Digest, LayerRow> = new_rows.into_iter().map(|r| (r.chain_id.clone(), r)).collect();
        {
            let c = self.db.conn();
            for j in &jobs {
                if !rows.contains_key(&j.chain) {
                    let row = store::layer_get(&c, &j.chain)?
                        .ok_or_else(|| ImageError::Invalid(format!("layer {} vanished during load", j.chain)))?;
                    rows.insert(j.chain.clone(), row);
                }
            }
        }
        self.sync_storage();
        let synced_at = started.elapsed();
        let now = now_nanos();
        let mut image_rows = Vec::new();
        for c in &checked {
            let layers: Vec<LayerRow> = c.chains.iter().map(|ch| rows[ch].clone()).collect();
            image_rows.push(self.image_row(&c.id, &c.config, &layers, None)?);
        }
        let moved = self.db.transaction(|tx| {
            let mut moved = Vec::new();
            for (c, row) in checked.iter().zip(&image_rows) {
                store::blob_insert(
                    tx,
                    &BlobRow {
                        digest: c.id.digest().clone(),
                        size: c.config_bytes.len() as i64,
                        media_type: wharf_image::oci::MEDIA_TYPE_OCI_CONFIG.to_owned(),
                    },
                    now,
                )?;
                for (i, chain) in c.chains.iter().enumerate() {
                    let (blob, size, compression) = &c.blobs[i];
                    store::blob_insert(
                        tx,
                        &BlobRow {
                            digest: blob.clone(),
                            size: *size as i64,
                            media_type: compression.oci_media_type().to_owned(),
                        },
                        now,
                    )?;
                    store::layer_insert(tx, &rows[chain], now)?;
                    store::layer_blob_insert(tx, &c.config.rootfs.diff_ids[i], blob, *compression)?;
                }
                store::image_insert(tx, row)?;
                for name in &c.names {
                    if let Some(old) = store::ref_put(tx, name, &c.id, now)? {
                        moved.push((name.familiar(), old));
                    }
                }
            }
            Ok::<_, ImageError>(moved)
        })?;
        drop(lease);
        tracing::debug!(
            images = checked.len(),
            layers = jobs.len(),
            spool_ms = spooled_at.as_millis() as u64,
            unpack_ms = (unpacked_at - spooled_at).as_millis() as u64,
            sync_ms = (synced_at - unpacked_at).as_millis() as u64,
            commit_ms = (started.elapsed() - synced_at).as_millis() as u64,
            "load"
        );
        for (name, old) in &moved {
            progress(Progress::Line(format!(
                "The image {name} already exists, renaming the old one with ID {old} to empty string"
            )));
        }
        for c in &checked {
            for name in &c.names {
                progress(Progress::Line(format!("Loaded image: {}", name.familiar())));
            }
            if c.names.is_empty() {
                progress(Progress::Line(format!("Loaded image ID: {}", c.id)));
            }
            self.event("load", &c.id, &c.id.to_string());
        }
        if !spooled.ingested.is_empty() {
            // Files of the archive that were not layers (legacy per-layer configs, …).
            self.gc()?;
        }
        Ok(())
    }

    /// Validates one image of the archive and makes sure each of its layers is a blob in the
    /// content store.
    fn check(&self, image: &ArchiveImage, lease: &super::gc::Lease<'_>) -> Result<Checked, ImageError> {
        let config_digest = wharf_image::sha256_digest(&image.config);
        if config_digest != image.config_digest {
            return Err(ImageError::Invalid(format!(
                "invalid archive: config {} has digest {config_digest}",
                image.config_digest
            )));
        }
        let config: ImageConfig = serde_json::from_slice(&image.config)
            .map_err(|source| ImageError::Config { id: config_digest.to_string(), source })?;
        if !config.os.is_empty() && config.os != "linux" {
            return Err(ImageError::Invalid(format!("cannot load {} image on linux", config.os)));
        }
        let diff_ids = &config.rootfs.diff_ids;
        if image.layers.len() != diff_ids.len() {
            return Err(ImageError::Invalid(format!(
                "invalid manifest, layers length mismatch: expected {}, got {}",
                image.layers.len(),
                diff_ids.len()
            )));
        }
        let mut names = Vec::new();
        for n in &image.names {
            let r =
                Reference::parse_normalized(n).map_err(|e| ImageError::Invalid(format!("invalid tag {n:?}: {e}")))?;
            if r.digest().is_some() && r.tag().is_none() {
                continue;
            }
            names.push(r.with_default_tag());
        }
        // The config goes into the content store now; its row is written with the image's.
        let id = ImageId::new(config_digest.clone());
        lease.add(&config_digest.to_string());
        if !self.content.exists(&config_digest) {
            self.store_bytes(lease, &image.config, Some(&config_digest))?;
        }
        let mut blobs = Vec::with_capacity(image.layers.len());
        for l in &image.layers {
            let (digest, size) = match &l.source {
                Spooled::Blob { digest, size } => {
                    lease.add(&digest.to_string());
                    (digest.clone(), *size)
                }
                Spooled::Memory(bytes) => {
                    let done = self.store_bytes(lease, bytes, None)?;
                    (done.digest, done.size)
                }
            };
            let head = {
                let mut f = self.content.open_blob(&digest).map_err(ImageError::Content)?;
                let mut head = [0u8; 8];
                let n = f.read(&mut head).unwrap_or(0);
                head[..n].to_vec()
            };
            let compression = match l.media_type.as_deref() {
                Some(m) if Compression::from_media_type(m) != Compression::None => Compression::from_media_type(m),
                _ => detect_compression(&head),
            };
            blobs.push((digest, size, compression));
        }
        Ok(Checked { id, chains: chain_ids(diff_ids), config, config_bytes: image.config.clone(), names, blobs })
    }

    /// Stores `bytes` as a blob under the lease.
    pub(crate) fn store_bytes(
        &self,
        lease: &super::gc::Lease<'_>,
        bytes: &[u8],
        expected: Option<&Digest>,
    ) -> Result<wharf_image::Ingested, ImageError> {
        let mut w = self.content.writer(expected, Some(bytes.len() as u64)).map_err(ImageError::Content)?;
        w.write_all(bytes).map_err(|source| ImageError::Io {
            op: "store blob",
            path: "<content store>".into(),
            source,
        })?;
        lease.commit_blob(w).map_err(ImageError::Content)
    }
}
