//! Build cache keys and `--cache-from`.
//!
//! A step's key ([`step_key`]) is the sha256 of a canonical JSON document holding what the
//! legacy builder compares when it probes its cache — the parent image ID and the step's
//! container config (ENV, LABELs, USER, WORKDIR, …, with `Cmd` set to the step's command:
//! `#(nop) COPY file:<content hash> in /dst ` for COPY, `|N K=V… /bin/sh -c <cmd>` for RUN with
//! build args) — plus the platform, the build-arg values the step used, and step-specific
//! extras (RUN mounts and network, bind-mount source hashes). Editing a file changes only the
//! keys of the COPY that reads it and of the steps after it (their parent changes).
//!
//! `--cache-from` ([`CacheFrom`]) reuses history: an image whose history and layers start with
//! the current image's and whose next history entry was created by the same command satisfies
//! the step, as Docker's `imageCache.GetCache` does. The `created_by` strings carry what makes
//! a step what it is (`COPY file:<content hash> in /dst `), so an image saved on one machine and
//! loaded on another satisfies the same steps there. As in Docker, with `--cache-from` a hit of
//! the local cache counts only when its image is part of a source's history.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use wharf_types::image::{History, ImageConfig, RuntimeConfig};
use wharf_types::{Digest, EngineError, Platform};

use crate::backend::{BaseImage, CacheRecord, CacheStore};
use crate::hash::sha256_hex;

#[derive(Serialize)]
struct KeyDoc<'a> {
    v: u32,
    parent: Option<&'a Digest>,
    platform: String,
    config: &'a RuntimeConfig,
    cmd: &'a [String],
    args: &'a BTreeMap<String, String>,
    extra: &'a serde_json::Value,
}

/// The cache key of a step (64 hex digits).
pub fn step_key(
    parent: Option<&Digest>,
    platform: &Platform,
    config: &RuntimeConfig,
    cmd: &[String],
    used_args: &BTreeMap<String, String>,
    extra: &serde_json::Value,
) -> String {
    let doc = KeyDoc { v: 1, parent, platform: platform.to_string(), config, cmd, args: used_args, extra };
    sha256_hex(serde_json::to_string(&doc).expect("key documents serialise").as_bytes())
}

/// What `--cache-from` found for a step.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheFromHit {
    /// The source image itself is the step's result.
    Image(BaseImage),
    /// A new image must be made from the source's first `history` entries and `layers`
    /// diff IDs (the step's own config on top).
    Restore { history: Vec<History>, diff_ids: Vec<Digest> },
}

/// The `--cache-from` images of a build.
#[derive(Debug, Clone, Default)]
pub struct CacheFrom {
    sources: Vec<BaseImage>,
}

fn non_empty_layers(h: &[History]) -> usize {
    h.iter().filter(|e| !e.empty_layer).count()
}

impl CacheFrom {
    pub fn new(sources: Vec<BaseImage>) -> Self {
        Self { sources }
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Whether `image` is part of a source's history: its history and layers start the
    /// source's. With `--cache-from`, Docker accepts a hit of its local cache only for such
    /// an image (an ancestor of a source); we compare histories where Docker follows parent
    /// links, which loaded images do not have.
    pub fn contains(&self, image: &ImageConfig) -> bool {
        self.sources.iter().any(|s| {
            let t = &s.config;
            t.history.len() >= image.history.len()
                && t.rootfs.diff_ids.len() >= image.rootfs.diff_ids.len()
                && t.history[..image.history.len()] == image.history[..]
                && t.rootfs.diff_ids[..image.rootfs.diff_ids.len()] == image.rootfs.diff_ids[..]
        })
    }

    /// Looks for a source that continues `parent` (the current image, `None` at the start of
    /// a scratch stage) with a history entry created by `created_by`. On a hit the search is
    /// narrowed to that source, as Docker does.
    pub fn probe(&mut self, parent: Option<&ImageConfig>, created_by: &str) -> Option<CacheFromHit> {
        let empty = ImageConfig::default();
        let p = parent.unwrap_or(&empty);
        let len = p.history.len();
        for target in &self.sources {
            let t = &target.config;
            if t.history.len() <= len || p.rootfs.diff_ids.len() > t.rootfs.diff_ids.len() {
                continue;
            }
            if t.history[..len] != p.history[..]
                || t.rootfs.diff_ids[..p.rootfs.diff_ids.len()] != p.rootfs.diff_ids[..]
            {
                continue;
            }
            if t.history[len].created_by.as_deref() != Some(created_by) {
                continue;
            }
            let hit = if t.history.len() - 1 == len {
                CacheFromHit::Image(target.clone())
            } else {
                let history = t.history[..=len].to_vec();
                let n = non_empty_layers(&history);
                if n > t.rootfs.diff_ids.len() {
                    continue;
                }
                CacheFromHit::Restore { diff_ids: t.rootfs.diff_ids[..n].to_vec(), history }
            };
            self.sources = vec![target.clone()];
            return Some(hit);
        }
        None
    }
}

/// A [`CacheStore`] in memory (tests, one-shot tools).
#[derive(Debug, Default)]
pub struct MemoryCacheStore {
    entries: Mutex<BTreeMap<String, CacheRecord>>,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl CacheStore for MemoryCacheStore {
    fn get(&self, key: &str) -> Result<Option<Digest>, EngineError> {
        Ok(self.entries.lock().expect("cache").get(key).map(|r| r.image.clone()))
    }
    fn put(&self, key: &str, image: &Digest) -> Result<(), EngineError> {
        let t = now();
        self.entries.lock().expect("cache").insert(
            key.to_string(),
            CacheRecord { key: key.to_string(), image: image.clone(), created: t, last_used: t },
        );
        Ok(())
    }
    fn touch(&self, key: &str) -> Result<(), EngineError> {
        if let Some(r) = self.entries.lock().expect("cache").get_mut(key) {
            r.last_used = now();
        }
        Ok(())
    }
    fn remove(&self, key: &str) -> Result<(), EngineError> {
        self.entries.lock().expect("cache").remove(key);
        Ok(())
    }
    fn list(&self) -> Result<Vec<CacheRecord>, EngineError> {
        Ok(self.entries.lock().expect("cache").values().cloned().collect())
    }
}

/// A [`CacheStore`] persisted in one JSON file, rewritten atomically on every change (temp
/// file, fsync, rename): a reference implementation of the persistence contract for tools and
/// tests; the daemon keeps its cache in its database instead.
#[derive(Debug)]
pub struct FileCacheStore {
    path: PathBuf,
    mem: MemoryCacheStore,
}

#[derive(Serialize, serde::Deserialize)]
struct FileRecord {
    key: String,
    image: Digest,
    created: u64,
    last_used: u64,
}

impl FileCacheStore {
    /// Opens (or starts) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, EngineError> {
        let mem = MemoryCacheStore::default();
        match std::fs::read(path) {
            Ok(b) => {
                let recs: Vec<FileRecord> = serde_json::from_slice(&b)
                    .map_err(|e| EngineError::internal(format!("read build cache {}: {e}", path.display())))?;
                let mut m = mem.entries.lock().expect("cache");
                for r in recs {
                    m.insert(
                        r.key.clone(),
                        CacheRecord { key: r.key, image: r.image, created: r.created, last_used: r.last_used },
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(EngineError::internal(format!("read build cache {}: {e}", path.display())));
            }
        }
        Ok(Self { path: path.to_path_buf(), mem })
    }

    fn save(&self) -> Result<(), EngineError> {
        let recs: Vec<FileRecord> = self
            .mem
            .list()?
            .into_iter()
            .map(|r| FileRecord { key: r.key, image: r.image, created: r.created, last_used: r.last_used })
            .collect();
        let json = serde_json::to_vec(&recs).expect("records serialise");
        wharf_store::write_atomic(&self.path, &json, 0o600)
            .map_err(|e| EngineError::internal(format!("write build cache {}: {e}", self.path.display())))
    }
}

impl CacheStore for FileCacheStore {
    fn get(&self, key: &str) -> Result<Option<Digest>, EngineError> {
        self.mem.get(key)
    }
    fn put(&self, key: &str, image: &Digest) -> Result<(), EngineError> {
        self.mem.put(key, image)?;
        self.save()
    }
    fn touch(&self, key: &str) -> Result<(), EngineError> {
        self.mem.touch(key)
    }
    fn remove(&self, key: &str) -> Result<(), EngineError> {
        self.mem.remove(key)?;
        self.save()
    }
    fn list(&self) -> Result<Vec<CacheRecord>, EngineError> {
        self.mem.list()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64)).parse().unwrap()
    }

    fn h(by: &str, empty: bool) -> History {
        History { created_by: Some(by.into()), empty_layer: empty, ..History::default() }
    }

    #[test]
    fn keys_change_with_each_input() {
        let p = Platform::host();
        let cfg = RuntimeConfig::default();
        let none = BTreeMap::new();
        let x = serde_json::Value::Null;
        let base = step_key(Some(&d('a')), &p, &cfg, &["a".into()], &none, &x);
        assert_eq!(base, step_key(Some(&d('a')), &p, &cfg, &["a".into()], &none, &x));
        assert_ne!(base, step_key(Some(&d('b')), &p, &cfg, &["a".into()], &none, &x));
        assert_ne!(base, step_key(Some(&d('a')), &p, &cfg, &["b".into()], &none, &x));
        let args = BTreeMap::from([("A".to_string(), "1".to_string())]);
        assert_ne!(base, step_key(Some(&d('a')), &p, &cfg, &["a".into()], &args, &x));
        let env = RuntimeConfig { env: Some(vec!["X=1".into()]), ..RuntimeConfig::default() };
        assert_ne!(base, step_key(Some(&d('a')), &p, &env, &["a".into()], &none, &x));
    }

    #[test]
    fn cache_from_follows_history() {
        let mut target =
            ImageConfig { history: vec![h("base", false), h("ENV", true), h("COPY", false)], ..ImageConfig::default() };
        target.rootfs.diff_ids = vec![d('1'), d('2')];
        let mut parent = ImageConfig { history: vec![h("base", false)], ..ImageConfig::default() };
        parent.rootfs.diff_ids = vec![d('1')];
        let img = BaseImage { id: d('f'), config: target };
        let mut cf = CacheFrom::new(vec![img.clone()]);
        assert_eq!(cf.probe(Some(&parent), "RUN"), None);
        let hit = cf.probe(Some(&parent), "ENV").unwrap();
        assert_eq!(
            hit,
            CacheFromHit::Restore { history: vec![h("base", false), h("ENV", true)], diff_ids: vec![d('1')] }
        );
        let mut p2 = parent.clone();
        p2.history.push(h("ENV", true));
        assert_eq!(cf.probe(Some(&p2), "COPY"), Some(CacheFromHit::Image(img)));
        assert!(cf.contains(&parent) && cf.contains(&p2));
        let mut other = p2.clone();
        other.history[1].created = Some("another build".into());
        assert!(!cf.contains(&other), "a local image made by another build is not the source's");
    }
}
