//! Tag, untag, delete (`rmi`) and prune, with moby's rules (`daemon/images/image_delete.go`):
//!
//! - removing a *reference* untags it; the image goes too when that was its last reference
//!   and nothing else needs it;
//! - removing by *ID* removes every reference when they are all in one repository (at most one
//!   tag), else it is a conflict;
//! - hard conflicts (child images, running containers) can never be forced; soft ones (other
//!   references, stopped containers) can with `force`;
//! - after a delete, the parent chain of local images is pruned quietly unless `noprune`.
//!
//! A whole `rmi` is one transaction; events are published after it commits, and a GC pass
//! then removes the layers and blobs nothing needs any more.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use rusqlite::Connection;
use wharf_types::{Digest, Filters, ImageId, Reference};

use super::query::parse_filter_time;
use super::store::{self, LayerRow, now_nanos};
use super::{ImageError, ImageService, ImageUser};

/// One line of an `rmi` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteRecord {
    /// A reference removed (`busybox:latest`).
    Untagged(String),
    /// An image (`sha256:<id>`) or a layer (`sha256:<chain id>`) removed.
    Deleted(String),
}

const CONFLICT_CHILD: u8 = 1;
const CONFLICT_RUNNING: u8 = 2;
const CONFLICT_REFERENCE: u8 = 4;
const CONFLICT_STOPPED: u8 = 8;
const CONFLICT_HARD: u8 = CONFLICT_CHILD | CONFLICT_RUNNING;
const CONFLICT_SOFT: u8 = CONFLICT_REFERENCE | CONFLICT_STOPPED;

struct Conflict {
    hard: bool,
    used: bool,
    id: ImageId,
    message: String,
}

impl Conflict {
    fn into_error(self) -> ImageError {
        ImageError::Conflict(format!(
            "conflict: unable to delete {} ({}) - {}",
            self.id.short(),
            if self.hard { "cannot be forced" } else { "must be forced" },
            self.message
        ))
    }
}

/// All references are in one repository, with at most one tag (moby's `isSingleReference`).
fn is_single_reference(refs: &[Reference]) -> bool {
    if refs.len() <= 1 {
        return refs.len() == 1;
    }
    let mut single: Option<&Reference> = None;
    let mut canonical: HashSet<String> = HashSet::new();
    for r in refs {
        if r.digest().is_some() {
            canonical.insert(r.name());
        } else if single.is_none() {
            single = Some(r);
        } else {
            return false;
        }
    }
    let single = single.unwrap_or(&refs[0]);
    canonical.len() == 1 && canonical.contains(&single.name())
}

/// Whether `given` is (a prefix of) the ID, with or without `sha256:`.
fn is_id_prefix(id: &ImageId, given: &str) -> bool {
    let full = id.to_string();
    !given.is_empty() && (full.starts_with(given) || id.hex().starts_with(given))
}

/// What one delete does, collected inside the transaction and published after it.
#[derive(Default)]
struct Outcome {
    records: Vec<DeleteRecord>,
    events: Vec<(&'static str, ImageId, String)>,
    deleted: Vec<ImageId>,
}

struct Ctx<'a> {
    users: &'a [ImageUser],
    /// Layers something other than images keeps (container snapshots, leases), read before
    /// the transaction: GC takes the lease table's lock before the database's, so nothing
    /// may take them the other way round.
    pinned: &'a HashSet<String>,
}

impl ImageService {
    /// `POST /images/{name}/tag?repo=&tag=`.
    pub fn tag(&self, source: &str, repo: &str, tag: &str) -> Result<(), ImageError> {
        if repo.is_empty() {
            return Err(ImageError::Invalid("repository name must have at least one component".into()));
        }
        let r = Reference::parse_normalized(repo)?;
        if r.digest().is_some() {
            return Err(ImageError::Invalid("cannot import digest reference".into()));
        }
        let r = if tag.is_empty() { r.with_default_tag() } else { r.with_tag(tag)? };
        if r.familiar_name() == "sha256" {
            return Err(ImageError::Invalid(
                "refusing to create an ambiguous tag using digest algorithm as name".into(),
            ));
        }
        let (img, _) = self.lookup(source)?;
        let now = now_nanos();
        self.db.transaction(|tx| {
            store::ref_put(tx, &r, &img.id, now)?;
            store::set_last_tag_time(tx, &img.id, now)?;
            Ok::<_, ImageError>(())
        })?;
        self.event("tag", &img.id, &r.familiar());
        Ok(())
    }

    /// Snapshot names kept alive by something other than images (container layers' parents).
    fn pinned_layers(&self) -> HashSet<String> {
        let mut pinned = HashSet::new();
        if let Ok(list) = self.snapshotter.list() {
            for s in list {
                if !s.name.starts_with("sha256:")
                    && !s.name.starts_with(super::gc::TMP_PREFIX)
                    && let Some(p) = s.parent
                {
                    pinned.insert(p);
                }
            }
        }
        pinned
    }

    /// `DELETE /images/{name}?force&noprune`.
    pub fn delete(&self, name: &str, force: bool, prune: bool) -> Result<Vec<DeleteRecord>, ImageError> {
        let records = self.delete_no_gc(name, force, prune)?;
        self.gc()?;
        Ok(records)
    }

    fn delete_no_gc(&self, name: &str, force: bool, prune: bool) -> Result<Vec<DeleteRecord>, ImageError> {
        if name.trim().is_empty() {
            return Err(ImageError::Invalid("image name cannot be blank".into()));
        }
        let (img, _) = self.lookup(name)?;
        let users = self.users();
        let mut pinned = self.pinned_layers();
        pinned.extend(self.leased_names());
        let ctx = Ctx { users: &users, pinned: &pinned };
        let outcome = self.db.transaction(|tx| {
            let mut out = Outcome::default();
            self.delete_tx(tx, &ctx, &img.id, name, force, prune, &mut out)?;
            Ok::<_, ImageError>(out)
        })?;
        // Events read the image's labels from its config, still in the store until GC.
        for (action, id, ref_name) in &outcome.events {
            self.event(action, id, ref_name);
        }
        let mut cache = self.configs.lock().unwrap_or_else(|p| p.into_inner());
        for id in &outcome.deleted {
            cache.remove(id);
        }
        Ok(outcome.records)
    }

    #[allow(clippy::too_many_arguments)]
    fn delete_tx(
        &self,
        tx: &Connection,
        ctx: &Ctx<'_>,
        id: &ImageId,
        name: &str,
        force: bool,
        prune: bool,
        out: &mut Outcome,
    ) -> Result<(), ImageError> {
        let mut repo_refs = store::refs_of(tx, id)?;
        let mut removed_repo_ref = false;
        if !is_id_prefix(id, name) {
            if !force
                && is_single_reference(&repo_refs)
                && let Some(u) = ctx.users.iter().find(|u| &u.image == id)
            {
                return Err(ImageError::Conflict(format!(
                    "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                    u.container.short(),
                    id.short()
                )));
            }
            let parsed = Reference::parse_normalized(name)?.with_default_tag();
            store::ref_delete(tx, &parsed)?;
            out.records.push(DeleteRecord::Untagged(parsed.familiar()));
            out.events.push(("untag", id.clone(), id.to_string()));
            repo_refs = store::refs_of(tx, id)?;
            if parsed.digest().is_none() {
                let same_repo_tag = repo_refs.iter().any(|r| r.digest().is_none() && r.name() == parsed.name());
                if !same_repo_tag {
                    let mut remaining = Vec::new();
                    for r in repo_refs {
                        if r.digest().is_some() && r.name() == parsed.name() {
                            store::ref_delete(tx, &r)?;
                            out.records.push(DeleteRecord::Untagged(r.familiar()));
                        } else {
                            remaining.push(r);
                        }
                    }
                    repo_refs = remaining;
                }
            }
            if !repo_refs.is_empty() {
                return Ok(());
            }
            removed_repo_ref = true;
        } else if is_single_reference(&repo_refs) {
            let mut mask = CONFLICT_HARD;
            if !force {
                mask |= CONFLICT_SOFT & !CONFLICT_REFERENCE;
            }
            if let Some(c) = self.check_conflict(tx, ctx, id, mask)? {
                return Err(c.into_error());
            }
            for r in &repo_refs {
                store::ref_delete(tx, r)?;
                out.events.push(("untag", id.clone(), id.to_string()));
                out.records.push(DeleteRecord::Untagged(r.familiar()));
            }
        }
        self.delete_helper(tx, ctx, id, force, prune, removed_repo_ref, out)
    }

    fn check_conflict(
        &self,
        tx: &Connection,
        ctx: &Ctx<'_>,
        id: &ImageId,
        mask: u8,
    ) -> Result<Option<Conflict>, ImageError> {
        let conflict = |hard: bool, used: bool, message: String| Some(Conflict { hard, used, id: id.clone(), message });
        if mask & CONFLICT_CHILD != 0 && !store::image_children(tx, id)?.is_empty() {
            return Ok(conflict(true, false, "image has dependent child images".into()));
        }
        if mask & CONFLICT_RUNNING != 0
            && let Some(u) = ctx.users.iter().find(|u| &u.image == id && u.running)
        {
            return Ok(conflict(
                true,
                true,
                format!("image is being used by running container {}", u.container.short()),
            ));
        }
        if mask & CONFLICT_REFERENCE != 0 && !store::refs_of(tx, id)?.is_empty() {
            return Ok(conflict(false, false, "image is referenced in multiple repositories".into()));
        }
        if mask & CONFLICT_STOPPED != 0
            && let Some(u) = ctx.users.iter().find(|u| &u.image == id && !u.running)
        {
            return Ok(conflict(
                false,
                true,
                format!("image is being used by stopped container {}", u.container.short()),
            ));
        }
        Ok(None)
    }

    #[allow(clippy::too_many_arguments)]
    fn delete_helper(
        &self,
        tx: &Connection,
        ctx: &Ctx<'_>,
        id: &ImageId,
        force: bool,
        prune: bool,
        quiet: bool,
        out: &mut Outcome,
    ) -> Result<(), ImageError> {
        let mut mask = CONFLICT_HARD;
        if !force {
            mask |= CONFLICT_SOFT;
        }
        if let Some(c) = self.check_conflict(tx, ctx, id, mask)? {
            let dangling = store::refs_of(tx, id)?.is_empty() && store::image_children(tx, id)?.is_empty();
            if quiet && (!dangling || c.used) {
                return Ok(());
            }
            return Err(c.into_error());
        }
        let Some(row) = store::image_get(tx, id)? else {
            return Ok(());
        };
        for r in store::refs_of(tx, id)? {
            store::ref_delete(tx, &r)?;
            out.events.push(("untag", id.clone(), id.to_string()));
            out.records.push(DeleteRecord::Untagged(r.familiar()));
        }
        let freed = self.layers_freed_by(tx, ctx, id)?;
        store::image_delete(tx, id)?;
        out.events.push(("delete", id.clone(), id.to_string()));
        out.deleted.push(id.clone());
        out.records.push(DeleteRecord::Deleted(id.to_string()));
        for l in freed {
            out.records.push(DeleteRecord::Deleted(l.chain_id.to_string()));
        }
        match row.parent {
            Some(parent) if prune && store::image_get(tx, &parent)?.is_some() => {
                self.delete_helper(tx, ctx, &parent, false, true, true, out)
            }
            _ => Ok(()),
        }
    }

    /// The layers of `id` (top first) that nothing else needs once `id` is gone.
    fn layers_freed_by(&self, tx: &Connection, ctx: &Ctx<'_>, id: &ImageId) -> Result<Vec<LayerRow>, ImageError> {
        let images = store::images_all(tx)?;
        let layers = store::layers_all(tx)?;
        let by_chain: HashMap<&Digest, &LayerRow> = layers.iter().map(|l| (&l.chain_id, l)).collect();
        let walk = |top: Option<&Digest>| {
            let mut v: Vec<&LayerRow> = Vec::new();
            let mut cur = top;
            while let Some(c) = cur {
                match by_chain.get(c) {
                    Some(l) => {
                        v.push(l);
                        cur = l.parent.as_ref();
                    }
                    None => break,
                }
            }
            v
        };
        let mut kept: HashSet<&Digest> = HashSet::new();
        let mut mine = Vec::new();
        for img in &images {
            if &img.id == id {
                mine = walk(img.top_layer.as_ref());
            } else {
                kept.extend(walk(img.top_layer.as_ref()).iter().map(|l| &l.chain_id));
            }
        }
        for p in ctx.pinned {
            if let Ok(d) = p.parse::<Digest>()
                && let Some(l) = by_chain.get(&d)
            {
                kept.extend(walk(Some(&l.chain_id)).iter().map(|l| &l.chain_id));
            }
        }
        let mut freed = Vec::new();
        for l in mine {
            if kept.contains(&l.chain_id) || ctx.pinned.contains(&l.chain_id.to_string()) {
                break;
            }
            freed.push(l.clone());
        }
        Ok(freed)
    }

    /// `POST /images/prune`: dangling images (or, with `dangling=false`, every image no
    /// container uses), filtered by `until` and labels. Returns the records and the bytes of
    /// layers removed.
    pub fn prune(&self, filters: &Filters) -> Result<(Vec<DeleteRecord>, u64), ImageError> {
        if self.prune_running.swap(true, Ordering::SeqCst) {
            return Err(ImageError::Conflict("a prune operation is already running".into()));
        }
        let result = self.prune_inner(filters);
        self.prune_running.store(false, Ordering::SeqCst);
        let (records, reclaimed) = result?;
        self.gc()?;
        self.events.publish(wharf_types::Event::now(
            wharf_types::EventType::Image,
            "prune",
            "",
            [("reclaimed".to_owned(), reclaimed.to_string())].into(),
        ));
        Ok((records, reclaimed))
    }

    fn prune_inner(&self, filters: &Filters) -> Result<(Vec<DeleteRecord>, u64), ImageError> {
        filters.validate(&["dangling", "label", "label!", "until"]).map_err(|e| ImageError::Invalid(e.message))?;
        let dangling_only = filters.bool_value("dangling").map_err(|e| ImageError::Invalid(e.message))?.unwrap_or(true);
        let untils: Vec<&str> = filters.get("until").collect();
        if untils.len() > 1 {
            return Err(ImageError::Invalid("more than one until filter specified".into()));
        }
        let until = untils.first().map(|u| parse_filter_time(u, now_nanos())).transpose()?;
        let (images, layers) = {
            let c = self.db.conn();
            (store::images_all(&c)?, store::layers_all(&c)?)
        };
        let sizes: HashMap<String, i64> = layers.iter().map(|l| (l.chain_id.to_string(), l.size)).collect();
        let parents: HashSet<ImageId> = images.iter().filter_map(|i| i.parent.clone()).collect();
        let mut records = Vec::new();
        for img in &images {
            let refs = store::refs_of(&self.db.conn(), &img.id)?;
            let has_children = parents.contains(&img.id);
            if dangling_only && has_children {
                continue;
            }
            if refs.is_empty() && has_children {
                continue;
            }
            if let Some(u) = until
                && img.created.is_none_or(|c| c > u)
            {
                continue;
            }
            let has = |spec: &str| match spec.split_once('=') {
                Some((k, v)) => img.labels.get(k).is_some_and(|x| x == v),
                None => img.labels.contains_key(spec),
            };
            if !filters.get("label").all(has) || filters.get("label!").any(has) {
                continue;
            }
            let targets: Vec<String> = if refs.is_empty() {
                vec![img.id.hex().to_owned()]
            } else {
                let should = !dangling_only || !refs.iter().any(|r| r.digest().is_none());
                if !should {
                    continue;
                }
                refs.iter().map(ToString::to_string).collect()
            };
            for t in targets {
                match self.delete_no_gc(&t, false, true) {
                    Ok(r) => records.extend(r),
                    Err(ImageError::Conflict(_) | ImageError::NoSuchImage(_)) => {}
                    Err(e) => tracing::warn!(image = %t, error = %e, "prune: cannot delete image"),
                }
            }
        }
        let reclaimed = records
            .iter()
            .filter_map(|r| match r {
                DeleteRecord::Deleted(d) => sizes.get(d),
                _ => None,
            })
            .sum::<i64>()
            .max(0) as u64;
        Ok((records, reclaimed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        Reference::parse_normalized(s).unwrap().with_default_tag()
    }

    #[test]
    fn single_reference_rules() {
        let d = format!("sha256:{}", "1".repeat(64));
        assert!(!is_single_reference(&[]));
        assert!(is_single_reference(&[r("a")]));
        assert!(!is_single_reference(&[r("a"), r("b")]));
        assert!(!is_single_reference(&[r("a:1"), r("a:2")]));
        assert!(is_single_reference(&[r("a:1"), r(&format!("a@{d}"))]));
        assert!(!is_single_reference(&[r("a:1"), r(&format!("b@{d}"))]));
    }

    #[test]
    fn id_prefixes() {
        let id: ImageId = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        assert!(is_id_prefix(&id, "abab"));
        assert!(is_id_prefix(&id, "sha256:abab"));
        assert!(!is_id_prefix(&id, "busybox"));
        assert!(!is_id_prefix(&id, ""));
    }
}
