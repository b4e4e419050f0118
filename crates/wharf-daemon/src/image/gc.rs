//! Garbage collection of image data, and the leases that keep work in progress safe from it.
//!
//! Order of every change (see DESIGN.md §3): blobs and snapshots are made first, the metadata
//! transaction that references them commits last. So after a crash the database is consistent
//! and only *unreferenced* files can be left over; [`ImageService::gc`] removes them. It runs at
//! start-up and after `rmi`/`prune`.
//!
//! What is alive:
//! - layer rows reachable (through `parent`) from an image's top layer, from a `gc_refs`
//!   snapshot, from a lease, or from the parent of any snapshot that is not ours (a container's
//!   writable layer keeps its image's layers even after a forced `rmi`);
//! - blobs that are an image's config, hold a live layer's diff ID, are a `gc_refs` blob, or
//!   are leased. "Hold a diff ID" covers every blob of the layer: the one it came in as and
//!   the gzip blob a push made of a plain tar (see [`super::push`]), so that one is reused
//!   while the layer lives and goes with it (its `blob_sources` rows with its blob row).
//!
//! Everything else of ours goes: layer and blob rows first (one transaction), then committed
//! `sha256:` snapshots without a live layer, `wharf-tmp-` snapshots nobody leases, and content
//! blobs without a live row. Snapshots with other names (containers') are never touched.
//!
//! Leases: an operation in progress names the blobs and snapshots it is creating in a
//! [`Lease`] *before* creating them, and drops the lease only after its metadata commit. GC
//! holds the lease table's lock for its whole pass, so a name is either leased or already
//! committed when GC looks.
//!
//! Holds: an operation that cannot name what it will create in advance (a build: the builder
//! writes a step's layer blob and commits its snapshot before the image that references them
//! is recorded) takes a [`GcHold`]. While any hold is alive GC passes are deferred; the pass
//! runs when the last hold is dropped.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use wharf_image::{ContentError, ContentWriter, Ingested};
use wharf_snapshot::Kind;

use super::store;
use super::{ImageError, ImageService};

/// Prefix of the keys of snapshots being built (unpacks in progress).
pub(crate) const TMP_PREFIX: &str = "wharf-tmp-";

/// Names (blob digests, snapshot names) that operations in progress hold.
#[derive(Default)]
pub(crate) struct Leases {
    held: Mutex<HashMap<String, usize>>,
    /// Live [`GcHold`]s, and whether a GC pass was deferred because of them.
    holds: Mutex<(usize, bool)>,
}

impl Leases {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn lease(&self) -> Lease<'_> {
        Lease { leases: self, names: Mutex::new(Vec::new()) }
    }
}

/// What one operation holds; released on drop.
pub(crate) struct Lease<'a> {
    leases: &'a Leases,
    names: Mutex<Vec<String>>,
}

impl Lease<'_> {
    /// Protects `name` from GC until this lease is dropped.
    pub(crate) fn add(&self, name: &str) {
        *self.leases.lock().entry(name.to_owned()).or_default() += 1;
        self.names.lock().unwrap_or_else(|p| p.into_inner()).push(name.to_owned());
    }

    /// Commits a content-store write and leases the blob in one step, so that GC never sees
    /// the new blob unprotected.
    pub(crate) fn commit_blob(&self, w: ContentWriter) -> Result<Ingested, ContentError> {
        let mut table = self.leases.lock();
        let done = w.commit()?;
        *table.entry(done.digest.to_string()).or_default() += 1;
        drop(table);
        self.names.lock().unwrap_or_else(|p| p.into_inner()).push(done.digest.to_string());
        Ok(done)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.names.lock().unwrap_or_else(|p| p.into_inner()));
        let mut table = self.leases.lock();
        for n in names {
            if let Some(c) = table.get_mut(&n) {
                *c -= 1;
                if *c == 0 {
                    table.remove(&n);
                }
            }
        }
    }
}

/// Defers GC passes while alive (see the module doc); the deferred pass runs on drop of the
/// last hold, on the blocking pool when there is a runtime.
pub struct GcHold {
    svc: std::sync::Arc<ImageService>,
}

impl Drop for GcHold {
    fn drop(&mut self) {
        let run = {
            let mut h = self.svc.leases.holds.lock().unwrap_or_else(|p| p.into_inner());
            h.0 -= 1;
            let run = h.0 == 0 && h.1;
            if run {
                h.1 = false;
            }
            run
        };
        if !run {
            return;
        }
        let svc = self.svc.clone();
        let pass = move || {
            if let Err(e) = svc.gc() {
                tracing::warn!(error = %e, "deferred image gc failed");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(pass)),
            Err(_) => pass(),
        }
    }
}

/// What a GC pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub layers: usize,
    pub snapshots: usize,
    pub blobs: usize,
    pub blob_bytes: u64,
}

fn ours(name: &str) -> bool {
    name.starts_with("sha256:") || name.starts_with(TMP_PREFIX)
}

impl ImageService {
    /// Defers GC until the returned hold (and every other) is dropped: for work whose new
    /// blobs and snapshots are recorded only later (builds).
    /// Blocks while a pass runs (the hold then starts after it).
    pub fn hold_gc(self: &std::sync::Arc<Self>) -> GcHold {
        let _pass = self.leases.lock();
        self.leases.holds.lock().unwrap_or_else(|p| p.into_inner()).0 += 1;
        GcHold { svc: self.clone() }
    }

    /// Removes unreferenced layers, snapshots and blobs (see the module doc). Deferred (an
    /// empty report) while a [`GcHold`] is alive.
    pub fn gc(&self) -> Result<GcReport, ImageError> {
        let leased_guard = self.leases.lock();
        {
            let mut h = self.leases.holds.lock().unwrap_or_else(|p| p.into_inner());
            if h.0 > 0 {
                h.1 = true;
                return Ok(GcReport::default());
            }
        }
        let leased: HashSet<&str> = leased_guard.keys().map(String::as_str).collect();
        let mut report = GcReport::default();
        let snapshots =
            self.snapshotter.list().map_err(|source| ImageError::Snapshot { op: "list snapshots", source })?;
        let (live_snapshots, live_blobs) = self.db.transaction(|tx| {
            let layers = store::layers_all(tx)?;
            let by_chain: HashMap<String, &store::LayerRow> =
                layers.iter().map(|l| (l.chain_id.to_string(), l)).collect();
            let mut roots: Vec<String> = Vec::new();
            for img in store::images_all(tx)? {
                roots.extend(img.top_layer.map(|d| d.to_string()));
            }
            let gc_refs = store::gc_refs_all(tx)?;
            for (kind, target) in &gc_refs {
                if kind == "snapshot" {
                    roots.push(target.clone());
                }
            }
            roots.extend(leased.iter().map(|s| (*s).to_owned()));
            for s in &snapshots {
                if !ours(&s.name)
                    && let Some(p) = &s.parent
                {
                    roots.push(p.clone());
                }
            }
            let mut live: HashSet<String> = HashSet::new();
            for root in roots {
                let mut cur = Some(root);
                while let Some(c) = cur {
                    if !live.insert(c.clone()) {
                        break;
                    }
                    cur = by_chain.get(&c).and_then(|l| l.parent.as_ref().map(ToString::to_string));
                }
            }
            let mut live_diff_ids: HashSet<String> = HashSet::new();
            let mut live_snapshots: HashSet<String> = HashSet::new();
            let dead: Vec<&store::LayerRow> = layers
                .iter()
                .filter(|l| {
                    let alive = live.contains(&l.chain_id.to_string());
                    if alive {
                        live_diff_ids.insert(l.diff_id.to_string());
                        live_snapshots.insert(l.snapshot.clone());
                    }
                    !alive
                })
                .collect();
            // Children before parents: `layers.parent` is a foreign key.
            let depth = |l: &store::LayerRow| {
                let mut d = 0;
                let mut cur = l.parent.as_ref();
                while let Some(p) = cur {
                    d += 1;
                    cur = by_chain.get(&p.to_string()).and_then(|l| l.parent.as_ref());
                }
                d
            };
            let mut dead = dead;
            dead.sort_by_key(|l| std::cmp::Reverse(depth(l)));
            for l in &dead {
                store::layer_delete(tx, &l.chain_id)?;
            }
            report.layers = dead.len();
            let mut live_blobs: HashSet<String> = leased.iter().map(|s| (*s).to_owned()).collect();
            for img in store::images_all(tx)? {
                live_blobs.insert(img.id.to_string());
            }
            for (diff_id, blob) in store::layer_blobs_all(tx)? {
                if live_diff_ids.contains(&diff_id.to_string()) {
                    live_blobs.insert(blob.to_string());
                }
            }
            for (kind, target) in &gc_refs {
                if kind == "blob" {
                    live_blobs.insert(target.clone());
                }
            }
            for b in store::blobs_all(tx)? {
                if !live_blobs.contains(&b.digest.to_string()) {
                    store::blob_delete(tx, &b.digest)?;
                }
            }
            // Snapshots leased by an operation in progress are alive too.
            live_snapshots.extend(leased.iter().map(|s| (*s).to_owned()));
            Ok::<_, ImageError>((live_snapshots, live_blobs))
        })?;
        // Files: snapshots (children before parents), then blobs.
        let mut doomed: Vec<String> = snapshots
            .iter()
            .filter(|s| ours(&s.name) && !live_snapshots.contains(&s.name))
            .filter(|s| s.kind == Kind::Committed || s.name.starts_with(TMP_PREFIX))
            .map(|s| s.name.clone())
            .collect();
        while !doomed.is_empty() {
            let before = doomed.len();
            let mut left = Vec::new();
            for name in doomed {
                match self.snapshotter.remove(&name) {
                    Ok(()) => report.snapshots += 1,
                    Err(wharf_snapshot::SnapshotError::HasChildren { .. }) => left.push(name),
                    Err(e) => {
                        tracing::warn!(snapshot = %name, error = %e, "gc: cannot remove snapshot")
                    }
                }
            }
            if left.len() == before {
                // Kept alive by snapshots that are not ours; the next pass will see.
                break;
            }
            doomed = left;
        }
        let blobs = self.content.list().map_err(ImageError::Content)?;
        for (digest, size) in blobs {
            if live_blobs.contains(&digest.to_string()) {
                continue;
            }
            match self.content.delete(&digest) {
                Ok(()) => {
                    report.blobs += 1;
                    report.blob_bytes += size;
                }
                Err(e) => tracing::warn!(%digest, error = %e, "gc: cannot remove blob"),
            }
        }
        drop(leased_guard);
        if report != GcReport::default() {
            tracing::info!(
                layers = report.layers,
                snapshots = report.snapshots,
                blobs = report.blobs,
                bytes = report.blob_bytes,
                "image gc"
            );
        }
        Ok(report)
    }

    /// The names operations in progress hold. Never call this while holding the database
    /// connection (see [`ImageService::gc`] for the lock order: leases, then database).
    pub(crate) fn leased_names(&self) -> HashSet<String> {
        self.leases.lock().keys().cloned().collect()
    }
}

/// What a `gc_refs` row keeps alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcRefKind {
    Blob,
    Snapshot,
}

impl GcRefKind {
    fn as_str(self) -> &'static str {
        match self {
            GcRefKind::Blob => "blob",
            GcRefKind::Snapshot => "snapshot",
        }
    }
}

impl ImageService {
    /// Keeps a blob or a snapshot (and the layers under it) alive for `owner` (`pull:<id>`,
    /// `build:<id>`, …) across restarts, until [`ImageService::release`]. For work that spans
    /// more than one transaction.
    pub fn hold(&self, owner: &str, kind: GcRefKind, target: &str) -> Result<(), wharf_types::EngineError> {
        self.db
            .conn()
            .execute(
                "INSERT OR IGNORE INTO gc_refs (owner, kind, target) VALUES (?1, ?2, ?3)",
                [owner, kind.as_str(), target],
            )
            .map_err(|e| ImageError::Db(e).into())
            .map(|_| ())
    }

    /// Drops everything `owner` holds; the next GC pass removes what nothing else needs.
    pub fn release(&self, owner: &str) -> Result<(), wharf_types::EngineError> {
        self.db
            .conn()
            .execute("DELETE FROM gc_refs WHERE owner = ?1", [owner])
            .map_err(|e| ImageError::Db(e).into())
            .map(|_| ())
    }
}
