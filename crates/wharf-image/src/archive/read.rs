//! Reading an image archive in one pass, entries in any order: [`read`] spools the files (small
//! ones in memory, large ones into the content store by digest), then
//! [`SpooledArchive::images`] interprets `manifest.json` or `index.json`.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read};
use std::sync::Arc;

use wharf_types::{Digest, Platform};

use super::ArchiveError;
use crate::content::{ContentError, ContentStore, ContentWriter, Ingested};
use crate::hash::{Hasher, sha256_digest};
use crate::layer::{Compression, decompress, detect_compression};
use crate::oci::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, ArchiveManifestItem, Descriptor, Index, Manifest, is_index, is_manifest,
};

/// Limits of [`read`].
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Files up to this size are kept in memory (configs, manifests, small layers).
    pub memory_per_file: u64,
    /// Bytes kept in memory in all; beyond it every file goes to the content store.
    pub memory_total: u64,
    /// The largest JSON document (config, manifest, index) accepted.
    pub max_document: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self { memory_per_file: 4 << 20, memory_total: 256 << 20, max_document: 64 << 20 }
    }
}

/// Where the bytes of one archive file are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spooled {
    Memory(Arc<Vec<u8>>),
    /// In the content store (verified against the name when it was `blobs/<alg>/<hex>`).
    Blob {
        digest: Digest,
        size: u64,
    },
}

impl Spooled {
    pub fn size(&self) -> u64 {
        match self {
            Spooled::Memory(b) => b.len() as u64,
            Spooled::Blob { size, .. } => *size,
        }
    }
}

#[derive(Debug, Clone)]
enum Link {
    Symbolic(String),
    Hard(String),
}

/// The files of an archive after [`read`].
#[derive(Debug, Default)]
pub struct SpooledArchive {
    files: BTreeMap<String, Spooled>,
    links: BTreeMap<String, Link>,
    /// Blobs this read added to the content store (not there before).
    pub ingested: Vec<Digest>,
}

/// The archive's format, as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// Has `manifest.json` (docker save, any version).
    DockerArchive,
    /// An OCI image layout without `manifest.json` (skopeo, buildx `type=oci`).
    OciLayout,
}

/// One image found in an archive.
#[derive(Debug, Clone)]
pub struct ArchiveImage {
    /// The config as stored (its sha256 is the image ID).
    pub config: Vec<u8>,
    pub config_digest: Digest,
    /// Names it is to be tagged with, as written (`busybox:latest`,
    /// `docker.io/library/busybox:latest`); empty for an untagged image.
    pub names: Vec<String>,
    /// The layers, bottom first.
    pub layers: Vec<ArchiveLayer>,
}

/// One layer of an [`ArchiveImage`].
#[derive(Debug, Clone)]
pub struct ArchiveLayer {
    /// The path in the archive (for messages).
    pub path: String,
    pub source: Spooled,
    /// The compression the manifest declares (OCI layouts); docker-archives leave it to the
    /// magic bytes.
    pub media_type: Option<String>,
}

/// Cleans an entry name (no leading `/` or `./`, no `.` or empty components); `None` when a
/// `..` climbs above the root.
fn normalize(raw: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

fn io_read(source: io::Error) -> ArchiveError {
    ArchiveError::Read { source }
}

/// The digest a path names: `blobs/<alg>/<hex>`.
fn digest_of_path(path: &str) -> Option<Digest> {
    let rest = path.strip_prefix("blobs/")?;
    let (alg, hex) = rest.split_once('/')?;
    format!("{alg}:{hex}").parse().ok()
}

/// Reads the archive tar from `reader` to its end, spooling every regular file. `commit` makes
/// a content-store write durable (the caller wraps it to protect the new blob from garbage
/// collection). On error, the blobs this call stored are listed in nothing: the caller's GC
/// removes them.
pub fn read<R: Read>(
    reader: R,
    store: &ContentStore,
    commit: &mut dyn FnMut(ContentWriter) -> Result<Ingested, ContentError>,
    opts: &ReadOptions,
) -> Result<SpooledArchive, ArchiveError> {
    let mut reader = io::BufReader::with_capacity(256 * 1024, reader);
    let head = io::BufRead::fill_buf(&mut reader).map_err(io_read)?;
    if head.starts_with(b"BZh") {
        return Err(ArchiveError::UnsupportedCompression("bzip2"));
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(ArchiveError::UnsupportedCompression("xz"));
    }
    let compression = detect_compression(head);
    let stream = decompress(reader, compression).map_err(io_read)?;
    let mut archive = tar::Archive::new(stream);
    let mut out = SpooledArchive::default();
    let mut in_memory: u64 = 0;
    let mut buf = vec![0u8; 256 * 1024];
    for entry in archive.entries().map_err(io_read)? {
        let mut entry = entry.map_err(io_read)?;
        let raw = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| ArchiveError::Invalid("an entry name is not valid UTF-8".to_owned()))?;
        let path = normalize(&raw).ok_or_else(|| ArchiveError::PathEscapes { path: raw.clone() })?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            let link = if kind.is_symlink() {
                Link::Symbolic(target)
            } else {
                let t = normalize(&target).ok_or(ArchiveError::PathEscapes { path: target })?;
                Link::Hard(t)
            };
            out.files.remove(&path);
            out.links.insert(path, link);
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) || path.is_empty() {
            continue;
        }
        let size = entry.size();
        let expected = digest_of_path(&path);
        out.links.remove(&path);
        let spooled = if size <= opts.memory_per_file && in_memory + size <= opts.memory_total {
            let mut data = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut data).map_err(io_read)?;
            if let Some(expected) = &expected {
                let mut h = Hasher::new(expected.algorithm());
                h.update(&data);
                let actual = h.finish();
                if actual != *expected {
                    return Err(ArchiveError::DigestMismatch { path, expected: expected.clone(), actual });
                }
            }
            in_memory += size;
            Spooled::Memory(Arc::new(data))
        } else {
            let mut w = store.writer(expected.as_ref(), Some(size)).map_err(ArchiveError::Content)?;
            loop {
                let n = match entry.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_read(e)),
                };
                io::Write::write_all(&mut w, &buf[..n]).map_err(|e| {
                    match e.into_inner().and_then(|i| i.downcast::<ContentError>().ok()) {
                        Some(c) => ArchiveError::Content(*c),
                        None => ArchiveError::Invalid(format!("store {path}")),
                    }
                })?;
            }
            let done = commit(w).map_err(|e| match e {
                ContentError::DigestMismatch { expected, actual } => {
                    ArchiveError::DigestMismatch { path: path.clone(), expected, actual }
                }
                other => ArchiveError::Content(other),
            })?;
            if !done.existed {
                out.ingested.push(done.digest.clone());
            }
            Spooled::Blob { digest: done.digest, size: done.size }
        };
        out.files.insert(path, spooled);
    }
    // Whatever follows the end-of-archive blocks is not ours to judge, but the compressed
    // stream must be read to its end so a truncated upload is noticed.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(io_read)?;
    if out.files.is_empty() && out.links.is_empty() {
        return Err(ArchiveError::Invalid("the archive is empty".to_owned()));
    }
    Ok(out)
}

fn components(path: &str) -> VecDeque<String> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".").map(str::to_owned).collect()
}

impl SpooledArchive {
    /// Resolves `path` as the archive root were `/`: symlinks are followed but never leave the
    /// root (a `..` at the root stays there), hard links lead to their target.
    fn resolve(&self, path: &str) -> Option<String> {
        let mut hops = 0;
        let mut pending = components(path);
        let mut resolved: Vec<String> = Vec::new();
        while let Some(c) = pending.pop_front() {
            if c == ".." {
                resolved.pop();
                continue;
            }
            resolved.push(c);
            let current = resolved.join("/");
            if let Some(Link::Symbolic(target)) = self.links.get(&current) {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                resolved.pop();
                if target.starts_with('/') {
                    resolved.clear();
                }
                let mut next = components(target);
                next.extend(pending);
                pending = next;
            }
        }
        let p = resolved.join("/");
        match self.links.get(&p) {
            Some(Link::Hard(t)) => Some(t.clone()),
            _ => Some(p),
        }
    }

    /// The file at `path`, following links inside the archive.
    pub fn get(&self, path: &str) -> Option<&Spooled> {
        self.files.get(&self.resolve(path)?)
    }

    /// Whether the archive has this file.
    pub fn contains(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// A small file's bytes (a JSON document).
    pub fn read_document(&self, path: &str, store: &ContentStore, limit: u64) -> Result<Vec<u8>, ArchiveError> {
        let spooled = self.get(path).ok_or_else(|| ArchiveError::Invalid(format!("missing file {path:?}")))?;
        if spooled.size() > limit {
            return Err(ArchiveError::Invalid(format!("{path} is larger than {limit} bytes")));
        }
        match spooled {
            Spooled::Memory(b) => Ok(b.to_vec()),
            Spooled::Blob { digest, .. } => {
                let mut data = Vec::new();
                store.open_blob(digest).map_err(ArchiveError::Content)?.read_to_end(&mut data).map_err(io_read)?;
                Ok(data)
            }
        }
    }

    /// The images the archive holds: from `manifest.json` when there is one, else from the OCI
    /// layout's `index.json` (the manifests for `platform`, through nested indexes).
    pub fn images(
        &self,
        store: &ContentStore,
        platform: &Platform,
        opts: &ReadOptions,
    ) -> Result<(ArchiveFormat, Vec<ArchiveImage>), ArchiveError> {
        if self.contains("manifest.json") {
            return Ok((ArchiveFormat::DockerArchive, self.docker_images(store, opts)?));
        }
        if self.contains("index.json") {
            return Ok((ArchiveFormat::OciLayout, self.oci_images(store, platform, opts)?));
        }
        Err(ArchiveError::Invalid("does not contain a manifest.json".to_owned()))
    }

    fn docker_images(&self, store: &ContentStore, opts: &ReadOptions) -> Result<Vec<ArchiveImage>, ArchiveError> {
        let bytes = self.read_document("manifest.json", store, opts.max_document)?;
        let items: Option<Vec<ArchiveManifestItem>> = serde_json::from_slice(&bytes)
            .map_err(|source| ArchiveError::Json { file: "manifest.json".to_owned(), source })?;
        let items = items
            .ok_or_else(|| ArchiveError::Invalid("invalid manifest, manifest cannot be null (but can be [])".into()))?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let config = self.read_document(&item.config, store, opts.max_document).map_err(|_| {
                ArchiveError::Invalid(format!("config {:?} listed in manifest.json is missing", item.config))
            })?;
            let layers = item
                .layers
                .iter()
                .map(|p| {
                    let source = self.get(p).cloned().ok_or_else(|| {
                        ArchiveError::Invalid(format!("layer {p:?} listed in manifest.json is missing"))
                    })?;
                    Ok(ArchiveLayer { path: p.clone(), source, media_type: None })
                })
                .collect::<Result<Vec<_>, ArchiveError>>()?;
            out.push(ArchiveImage {
                config_digest: sha256_digest(&config),
                config,
                names: item.repo_tags.unwrap_or_default(),
                layers,
            });
        }
        Ok(out)
    }

    fn blob_document(
        &self,
        desc: &Descriptor,
        store: &ContentStore,
        opts: &ReadOptions,
    ) -> Result<Vec<u8>, ArchiveError> {
        let path = blob_path(&desc.digest);
        if !self.contains(&path) {
            return Err(ArchiveError::Invalid(format!("missing blob {}", desc.digest)));
        }
        let data = self.read_document(&path, store, opts.max_document)?;
        if data.len() as i64 != desc.size {
            return Err(ArchiveError::Invalid(format!(
                "blob {} has {} bytes, its descriptor says {}",
                desc.digest,
                data.len(),
                desc.size
            )));
        }
        Ok(data)
    }

    fn oci_images(
        &self,
        store: &ContentStore,
        platform: &Platform,
        opts: &ReadOptions,
    ) -> Result<Vec<ArchiveImage>, ArchiveError> {
        let bytes = self.read_document("index.json", store, opts.max_document)?;
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|source| ArchiveError::Json { file: "index.json".to_owned(), source })?;
        let mut out: Vec<ArchiveImage> = Vec::new();
        for desc in &index.manifests {
            if !platform_matches(desc, platform) {
                continue;
            }
            let names = names_of(desc);
            if let Some(mut image) = self.resolve_descriptor(desc, store, platform, opts, 0)? {
                match out.iter_mut().find(|i| i.config_digest == image.config_digest) {
                    Some(existing) => existing.names.extend(names),
                    None => {
                        image.names = names;
                        out.push(image);
                    }
                }
            }
        }
        if out.is_empty() && !index.manifests.is_empty() {
            return Err(ArchiveError::Invalid(format!("no image in index.json matches platform {platform}")));
        }
        Ok(out)
    }

    fn resolve_descriptor(
        &self,
        desc: &Descriptor,
        store: &ContentStore,
        platform: &Platform,
        opts: &ReadOptions,
        depth: usize,
    ) -> Result<Option<ArchiveImage>, ArchiveError> {
        if depth > 4 {
            return Err(ArchiveError::Invalid("indexes nested too deeply".to_owned()));
        }
        let data = self.blob_document(desc, store, opts)?;
        let media_type = if desc.media_type.is_empty() {
            // Sniff: a document with `manifests` is an index.
            let v: serde_json::Value = serde_json::from_slice(&data)
                .map_err(|source| ArchiveError::Json { file: blob_path(&desc.digest), source })?;
            v.get("mediaType").and_then(|m| m.as_str()).map(str::to_owned).unwrap_or_else(|| {
                if v.get("manifests").is_some() {
                    crate::oci::MEDIA_TYPE_OCI_INDEX.to_owned()
                } else {
                    crate::oci::MEDIA_TYPE_OCI_MANIFEST.to_owned()
                }
            })
        } else {
            desc.media_type.clone()
        };
        if is_index(&media_type) {
            let index: Index = serde_json::from_slice(&data)
                .map_err(|source| ArchiveError::Json { file: blob_path(&desc.digest), source })?;
            // The first manifest for the platform, as containerd's default matcher picks.
            for child in &index.manifests {
                if is_manifest(&child.media_type) && platform_matches(child, platform) {
                    return self.resolve_descriptor(child, store, platform, opts, depth + 1);
                }
            }
            for child in &index.manifests {
                if is_index(&child.media_type)
                    && platform_matches(child, platform)
                    && let Some(found) = self.resolve_descriptor(child, store, platform, opts, depth + 1)?
                {
                    return Ok(Some(found));
                }
            }
            return Ok(None);
        }
        if !is_manifest(&media_type) {
            return Ok(None);
        }
        let manifest: Manifest = serde_json::from_slice(&data)
            .map_err(|source| ArchiveError::Json { file: blob_path(&desc.digest), source })?;
        let config = self.blob_document(&manifest.config, store, opts)?;
        let layers = manifest
            .layers
            .iter()
            .map(|l| {
                let path = blob_path(&l.digest);
                let source = self
                    .get(&path)
                    .cloned()
                    .ok_or_else(|| ArchiveError::Invalid(format!("missing blob {}", l.digest)))?;
                if source.size() as i64 != l.size {
                    return Err(ArchiveError::Invalid(format!(
                        "blob {} has {} bytes, its descriptor says {}",
                        l.digest,
                        source.size(),
                        l.size
                    )));
                }
                Ok(ArchiveLayer { path, source, media_type: Some(l.media_type.clone()) })
            })
            .collect::<Result<Vec<_>, ArchiveError>>()?;
        Ok(Some(ArchiveImage { config_digest: manifest.config.digest.clone(), config, names: Vec::new(), layers }))
    }
}

/// Where a blob lives in an OCI layout.
pub fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex())
}

fn platform_matches(desc: &Descriptor, want: &Platform) -> bool {
    match &desc.platform {
        None => true,
        Some(p) => {
            let have = Platform { os: p.os.clone(), architecture: p.architecture.clone(), variant: p.variant.clone() };
            // Normalise aliases (x86_64, aarch64) the way the platform parser does.
            let have = Platform::parse(&have.to_string()).unwrap_or(have);
            have.matches(want)
        }
    }
}

/// The names an index entry asks for: containerd's full-name annotation, else an OCI ref name
/// that is a whole reference (`busybox:latest`, `a/b`), not a bare tag.
fn names_of(desc: &Descriptor) -> Vec<String> {
    if let Some(n) = desc.annotation(ANNOTATION_IMAGE_NAME) {
        return vec![n.to_owned()];
    }
    match desc.annotation(ANNOTATION_REF_NAME) {
        Some(n) if n.contains(':') || n.contains('/') => vec![n.to_owned()],
        _ => Vec::new(),
    }
}

/// The compression of a layer: the media type's when it names one, else the magic bytes'.
pub fn layer_compression(media_type: Option<&str>, head: &[u8]) -> Compression {
    match media_type.map(Compression::from_media_type) {
        Some(c) if c != Compression::None => c,
        _ => detect_compression(head),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])], links: &[(&str, &str, bool)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // set_path refuses `..`; write the raw name to test hostile archives.
            let name = h.as_old_mut().name.as_mut();
            name[..p.len()].copy_from_slice(p.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        for (p, target, symlink) in links {
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_entry_type(if *symlink { tar::EntryType::Symlink } else { tar::EntryType::Link });
            b.append_link(&mut h, p, target).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn read_all(data: &[u8], store: &ContentStore) -> Result<SpooledArchive, ArchiveError> {
        read(data, store, &mut |w| w.commit(), &ReadOptions { memory_per_file: 8, ..Default::default() })
    }

    #[test]
    fn small_files_in_memory_large_in_store_links_resolved_in_scope() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ContentStore::open(tmp.path()).unwrap();
        let big = b"0123456789abcdef".to_vec();
        let tar = tar_of(
            &[("./a/small", b"hi"), ("b/big", &big)],
            &[
                ("c/link", "../a/small", true),
                ("escape", "../../../b/big", true),
                ("abs", "/a/small", true),
                ("hard", "b/big", false),
            ],
        );
        let a = read_all(&tar, &store).unwrap();
        assert!(matches!(a.get("a/small"), Some(Spooled::Memory(b)) if b.as_slice() == b"hi"));
        assert!(matches!(a.get("b/big"), Some(Spooled::Blob { size: 16, .. })));
        assert_eq!(a.ingested, vec![sha256_digest(&big)]);
        assert_eq!(a.get("c/link"), a.get("a/small"));
        assert_eq!(a.get("abs"), a.get("a/small"));
        // `..` at the root stays at the root.
        assert_eq!(a.get("escape"), a.get("b/big"));
        assert_eq!(a.get("hard"), a.get("b/big"));
        assert!(a.get("nope").is_none());
    }

    #[test]
    fn hostile_entries_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ContentStore::open(tmp.path()).unwrap();
        let err = read_all(&tar_of(&[("../x", b"1")], &[]), &store).unwrap_err();
        assert!(matches!(err, ArchiveError::PathEscapes { .. }), "{err}");
        let wrong = format!("blobs/sha256/{}", "0".repeat(64));
        let err = read_all(&tar_of(&[(&wrong, b"1")], &[]), &store).unwrap_err();
        assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{err}");
        let err = read_all(&tar_of(&[(&wrong, b"0123456789")], &[]), &store).unwrap_err();
        assert!(matches!(err, ArchiveError::DigestMismatch { .. }), "{err}");
        assert!(store.list().unwrap().is_empty(), "nothing stored");
        let err = read_all(b"not a tar at all, just text that is long enough", &store);
        assert!(err.is_err());
    }

    #[test]
    fn docker_archive_needs_a_manifest() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ContentStore::open(tmp.path()).unwrap();
        let a = read_all(&tar_of(&[("x", b"1")], &[]), &store).unwrap();
        let host = Platform::host();
        let err = a.images(&store, &host, &ReadOptions::default()).unwrap_err();
        assert_eq!(err.to_string(), "invalid archive: does not contain a manifest.json");
        let a = read_all(&tar_of(&[("manifest.json", b"{bad")], &[]), &store).unwrap();
        let err = a.images(&store, &host, &ReadOptions::default()).unwrap_err();
        assert!(matches!(err, ArchiveError::Json { .. }), "{err}");
        let a = read_all(
            &tar_of(&[("manifest.json", br#"[{"Config":"c.json","RepoTags":["a:b"],"Layers":["l/layer.tar"]}]"#)], &[]),
            &store,
        )
        .unwrap();
        let err = a.images(&store, &host, &ReadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("c.json"), "{err}");
    }
}
