//! Garbage collection: mark every blob referenced from any manifest revision of any repository,
//! then sweep the blobs nobody references.
//!
//! Safety against a running server: `gc` holds the storage's gc lock exclusively for the whole
//! mark and sweep, and the server takes it shared while it commits an upload or validates and
//! writes a manifest. So a manifest is either written before the mark (and its blobs are marked)
//! or after the sweep (and its validation sees any deleted blob missing, answering
//! `MANIFEST_BLOB_UNKNOWN`). On top of that, blobs committed less than `grace` before the gc
//! started are kept, so a push whose layers are in but whose manifest is not yet is not broken.
//! Uploads in progress live in `_uploads` and are not touched, except those idle for
//! `upload_max_age`.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use wharf_types::Digest;
use wharf_types::oci::Manifest;

use super::storage::{self, StorageError, list_names};

/// Options of one gc run.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Keep unreferenced blobs modified less than this long before the gc started.
    pub grace: Duration,
    /// Remove uploads idle for longer than this.
    pub upload_max_age: Duration,
    /// Report only; delete nothing.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self { grace: Duration::from_secs(3600), upload_max_age: Duration::from_secs(7 * 24 * 3600), dry_run: false }
    }
}

/// What a gc run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub manifests: usize,
    pub marked: usize,
    pub deleted: Vec<Digest>,
    pub bytes_freed: u64,
    pub kept_recent: usize,
    pub uploads_removed: usize,
}

/// Runs a gc over the storage at `root`. Blocking: call from a thread, not an async task.
pub fn collect(root: &Path, opts: &GcOptions) -> Result<GcReport, StorageError> {
    let start = SystemTime::now();
    let _lock = storage::gc_lock(root, true)?;
    let mut report = GcReport::default();
    let mut marked: HashSet<Digest> = HashSet::new();

    // Mark.
    let repos_root = root.join("repositories");
    let mut repos = Vec::new();
    find_repos(&repos_root, &mut repos)?;
    for repo in &repos {
        let revs = repo.join("_manifests/revisions/sha256");
        for hex in list_names(&revs)? {
            let Ok(d) = Digest::sha256_hex(&hex) else {
                continue;
            };
            report.manifests += 1;
            let path = storage::blob_path(root, &d);
            let media_type = fs::read_to_string(revs.join(&hex)).unwrap_or_default();
            if let Ok(bytes) = fs::read(&path)
                && let Ok((_, m)) = Manifest::parse(Some(&media_type), &bytes)
            {
                for r in m.references() {
                    marked.insert(r.digest.clone());
                }
            }
            marked.insert(d);
        }
    }
    report.marked = marked.len();

    // Sweep.
    let cutoff = start.checked_sub(opts.grace).unwrap_or(SystemTime::UNIX_EPOCH);
    let blobs = root.join("blobs/sha256");
    for prefix in list_names(&blobs)? {
        let dir = blobs.join(&prefix);
        for hex in list_names(&dir)? {
            let Ok(d) = Digest::sha256_hex(&hex) else {
                continue;
            };
            if marked.contains(&d) {
                continue;
            }
            let p = dir.join(&hex);
            let Ok(meta) = fs::metadata(&p) else { continue };
            if meta.modified().map(|m| m >= cutoff).unwrap_or(true) {
                report.kept_recent += 1;
                continue;
            }
            if !opts.dry_run {
                fs::remove_file(&p).map_err(|source| StorageError::Remove { path: p.clone(), source })?;
            }
            report.bytes_freed += meta.len();
            report.deleted.push(d);
        }
    }
    // Links to blobs that are gone.
    if !opts.dry_run {
        let gone: HashSet<&str> = report.deleted.iter().map(|d| d.hex()).collect();
        for repo in &repos {
            let layers = repo.join("_layers/sha256");
            for hex in list_names(&layers)? {
                if gone.contains(hex.as_str()) {
                    let _ = fs::remove_file(layers.join(&hex));
                }
            }
        }
    }

    // Stale uploads.
    let uploads = root.join("_uploads");
    let upload_cutoff = start.checked_sub(opts.upload_max_age).unwrap_or(SystemTime::UNIX_EPOCH);
    for id in list_names(&uploads)? {
        let dir = uploads.join(&id);
        let idle = fs::metadata(dir.join("data"))
            .or_else(|_| fs::metadata(&dir))
            .and_then(|m| m.modified())
            .map(|m| m < upload_cutoff)
            .unwrap_or(false);
        if idle {
            if !opts.dry_run {
                let _ = fs::remove_dir_all(&dir);
            }
            report.uploads_removed += 1;
        }
    }
    Ok(report)
}

fn find_repos(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), StorageError> {
    let names = list_names(dir)?;
    if names.iter().any(|n| n == "_manifests" || n == "_layers") {
        out.push(dir.to_owned());
    }
    for name in names {
        let p = dir.join(&name);
        if !name.starts_with('_') && p.is_dir() {
            find_repos(&p, out)?;
        }
    }
    Ok(())
}
