//! Writing the archive `docker save` (25+) writes: an OCI layout plus `manifest.json` and
//! `repositories`, layers uncompressed and named by diff ID so that loading reproduces the
//! image ID. Layers whose stored blob is compressed are decompressed on the fly (the tar header
//! needs the size up front: it is the layer's recorded `tar_size`) and checked against their
//! diff ID as they stream.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde_json::json;
use wharf_types::Digest;

use super::ArchiveError;
use super::read::blob_path;
use crate::content::ContentStore;
use crate::hash::{Hasher, sha256_digest};
use crate::layer::{Compression, decompress};
use crate::oci::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, ArchiveManifestItem, Descriptor, Index, MEDIA_TYPE_OCI_CONFIG,
    MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_LAYER, MEDIA_TYPE_OCI_MANIFEST, Manifest, OCI_LAYOUT,
};

/// One tag an image is saved under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveTag {
    /// `busybox:latest` (what `manifest.json` lists).
    pub familiar: String,
    /// `busybox` (the key of `repositories`).
    pub familiar_name: String,
    /// `docker.io/library/busybox:latest` (index annotation).
    pub full: String,
    /// `latest`.
    pub tag: String,
}

/// One layer to save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveLayer {
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub tar_size: u64,
    /// The stored blob holding it, and that blob's compression.
    pub blob: Digest,
    pub compression: Compression,
}

/// One image to save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveImage {
    /// The config bytes as stored (their digest is the image ID).
    pub config: Vec<u8>,
    pub tags: Vec<SaveTag>,
    pub layers: Vec<SaveLayer>,
}

fn werr(source: io::Error) -> ArchiveError {
    ArchiveError::Write { source }
}

fn header(path: &str, size: u64, dir: bool) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(if dir { tar::EntryType::Directory } else { tar::EntryType::Regular });
    // Every path here is short ASCII (`blobs/sha256/<64 hex>` is 77 bytes).
    let _ = h.set_path(path);
    h.set_cksum();
    h
}

enum Blob<'a> {
    Bytes(Vec<u8>),
    Layer(&'a SaveLayer),
}

/// Writes `images` as one archive to `out` and returns it. Layers shared by several images are
/// written once.
pub fn write_archive<W: Write>(out: W, images: &[SaveImage], store: &ContentStore) -> Result<W, ArchiveError> {
    let mut blobs: BTreeMap<String, (Digest, Blob<'_>)> = BTreeMap::new();
    let mut index_manifests = Vec::new();
    let mut docker_manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for image in images {
        let config_digest = sha256_digest(&image.config);
        let layers: Vec<Descriptor> =
            image.layers.iter().map(|l| Descriptor::new(MEDIA_TYPE_OCI_LAYER, l.diff_id.clone(), l.tar_size)).collect();
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_OCI_MANIFEST.to_owned()),
            config: Descriptor::new(MEDIA_TYPE_OCI_CONFIG, config_digest.clone(), image.config.len() as u64),
            layers,
            annotations: None,
            extra: Default::default(),
        };
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| werr(io::Error::other(e)))?;
        let manifest_digest = sha256_digest(&manifest_bytes);
        let untagged = Descriptor::new(MEDIA_TYPE_OCI_MANIFEST, manifest_digest.clone(), manifest_bytes.len() as u64);
        for t in &image.tags {
            let mut d = untagged.clone();
            d.annotations = Some(
                [(ANNOTATION_IMAGE_NAME.to_owned(), t.full.clone()), (ANNOTATION_REF_NAME.to_owned(), t.tag.clone())]
                    .into(),
            );
            index_manifests.push(d);
            if let Some(top) = image.layers.last() {
                repositories
                    .entry(t.familiar_name.clone())
                    .or_default()
                    .insert(t.tag.clone(), top.diff_id.hex().to_owned());
            }
        }
        if image.tags.is_empty() {
            index_manifests.push(untagged);
        }
        docker_manifest.push(ArchiveManifestItem {
            config: blob_path(&config_digest),
            repo_tags: (!image.tags.is_empty()).then(|| image.tags.iter().map(|t| t.familiar.clone()).collect()),
            layers: image.layers.iter().map(|l| blob_path(&l.diff_id)).collect(),
            parent: None,
            layer_sources: None,
        });
        blobs.insert(blob_path(&manifest_digest), (manifest_digest, Blob::Bytes(manifest_bytes)));
        blobs.insert(blob_path(&config_digest), (config_digest, Blob::Bytes(image.config.clone())));
        for l in &image.layers {
            blobs.entry(blob_path(&l.diff_id)).or_insert_with(|| (l.diff_id.clone(), Blob::Layer(l)));
        }
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_INDEX.to_owned()),
        manifests: index_manifests,
        annotations: None,
        extra: Default::default(),
    };
    let mut tar = tar::Builder::new(out);
    let mut dirs: Vec<String> = vec!["blobs/".to_owned()];
    for (digest, _) in blobs.values() {
        let d = format!("blobs/{}/", digest.algorithm().as_str());
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    for d in &dirs {
        tar.append(&header(d, 0, true), io::empty()).map_err(werr)?;
    }
    for (path, (_, blob)) in &blobs {
        match blob {
            Blob::Bytes(b) => tar.append(&header(path, b.len() as u64, false), b.as_slice()).map_err(werr)?,
            Blob::Layer(l) => append_layer(&mut tar, path, l, store)?,
        }
    }
    let mut docs: Vec<(&str, Vec<u8>)> = vec![
        ("index.json", json_bytes(&index)?),
        ("manifest.json", {
            let mut v = json_bytes(&docker_manifest)?;
            v.push(b'\n');
            v
        }),
        ("oci-layout", OCI_LAYOUT.as_bytes().to_vec()),
    ];
    if !repositories.is_empty() {
        let mut v = json_bytes(&json!(repositories))?;
        v.push(b'\n');
        docs.push(("repositories", v));
    }
    for (path, data) in docs {
        tar.append(&header(path, data.len() as u64, false), data.as_slice()).map_err(werr)?;
    }
    tar.into_inner().map_err(werr)
}

fn json_bytes<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ArchiveError> {
    serde_json::to_vec(v).map_err(|e| werr(io::Error::other(e)))
}

/// A reader that checks, at its end, that what passed through is `tar_size` bytes hashing to
/// `diff_id`; the tar builder copies exactly the header's size from it.
struct Verified<R> {
    inner: R,
    hasher: Option<Hasher>,
    count: u64,
    expected: (Digest, u64),
}

impl<R: io::Read> io::Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.expected.1 - self.count;
        if left == 0 {
            if let Some(h) = self.hasher.take() {
                // One more byte would mean the stored layer is longer than recorded.
                let mut probe = [0u8; 1];
                let extra = self.inner.read(&mut probe)?;
                let actual = h.finish();
                if extra != 0 || actual != self.expected.0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("layer content hashes to {actual}, not {}", self.expected.0),
                    ));
                }
            }
            return Ok(0);
        }
        let cap = buf.len().min(left as usize);
        let n = self.inner.read(&mut buf[..cap])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("layer {} is shorter than recorded", self.expected.0),
            ));
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
}

fn append_layer<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    layer: &SaveLayer,
    store: &ContentStore,
) -> Result<(), ArchiveError> {
    let file = store.open_blob(&layer.blob).map_err(ArchiveError::Content)?;
    let plain = decompress(io::BufReader::with_capacity(256 * 1024, file), layer.compression).map_err(werr)?;
    let mut reader = Verified {
        inner: plain,
        hasher: Some(Hasher::sha256()),
        count: 0,
        expected: (layer.diff_id.clone(), layer.tar_size),
    };
    // `append` copies to the reader's end, where `Verified` checks length and digest.
    tar.append(&header(path, layer.tar_size, false), &mut reader).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
            ArchiveError::LayerCorrupt { diff_id: layer.diff_id.clone(), reason: e.to_string() }
        }
        _ => werr(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::read::{ReadOptions, read};
    use wharf_types::Platform;

    fn layer_tar(name: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn saved_archive_reads_back_with_the_same_layers() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ContentStore::open(tmp.path()).unwrap();
        let plain = layer_tar("a", b"hello");
        let diff_id = sha256_digest(&plain);
        // One layer stored uncompressed, one gzip-compressed.
        let plain_blob = store.ingest(&plain[..], None, None).unwrap();
        let plain2 = layer_tar("b", b"world");
        let diff2 = sha256_digest(&plain2);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain2).unwrap();
        let gz = gz.finish().unwrap();
        let gz_blob = store.ingest(&gz[..], None, None).unwrap();
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}","{diff2}"]}}}}"#
        )
        .into_bytes();
        let image = SaveImage {
            config: config.clone(),
            tags: vec![SaveTag {
                familiar: "busybox:latest".into(),
                familiar_name: "busybox".into(),
                full: "docker.io/library/busybox:latest".into(),
                tag: "latest".into(),
            }],
            layers: vec![
                SaveLayer {
                    diff_id: diff_id.clone(),
                    tar_size: plain.len() as u64,
                    blob: plain_blob.digest,
                    compression: Compression::None,
                },
                SaveLayer {
                    diff_id: diff2.clone(),
                    tar_size: plain2.len() as u64,
                    blob: gz_blob.digest,
                    compression: Compression::Gzip,
                },
            ],
        };
        let out = write_archive(Vec::new(), &[image], &store).unwrap();
        let tmp2 = tempfile::tempdir().unwrap();
        let store2 = ContentStore::open(tmp2.path()).unwrap();
        let spooled = read(&out[..], &store2, &mut |w| w.commit(), &ReadOptions::default()).unwrap();
        let (format, images) = spooled.images(&store2, &Platform::host(), &ReadOptions::default()).unwrap();
        assert_eq!(format, crate::archive::ArchiveFormat::DockerArchive);
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].config, config);
        assert_eq!(images[0].names, vec!["busybox:latest".to_owned()]);
        assert_eq!(images[0].layers.len(), 2);
        match &images[0].layers[1].source {
            crate::archive::Spooled::Memory(b) => assert_eq!(sha256_digest(b), diff2),
            other => panic!("{other:?}"),
        }
        // The OCI half reads the same.
        let names: Vec<String> = {
            let idx = spooled.read_document("index.json", &store2, 1 << 20).unwrap();
            let idx: Index = serde_json::from_slice(&idx).unwrap();
            idx.manifests.iter().filter_map(|d| d.annotation(ANNOTATION_IMAGE_NAME).map(str::to_owned)).collect()
        };
        assert_eq!(names, vec!["docker.io/library/busybox:latest".to_owned()]);
    }

    #[test]
    fn a_corrupt_stored_layer_fails_the_save() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ContentStore::open(tmp.path()).unwrap();
        let plain = layer_tar("a", b"hello");
        let blob = store.ingest(&plain[..], None, None).unwrap();
        let image = SaveImage {
            config: b"{}".to_vec(),
            tags: vec![],
            layers: vec![SaveLayer {
                diff_id: sha256_digest(b"something else"),
                tar_size: plain.len() as u64,
                blob: blob.digest,
                compression: Compression::None,
            }],
        };
        let err = write_archive(Vec::new(), &[image], &store).unwrap_err();
        assert!(matches!(err, ArchiveError::LayerCorrupt { .. }), "{err}");
    }
}
