//! The image tables (schema in `wharf-store`'s migration 2) as typed rows and queries. Every
//! function takes a connection or a transaction from the caller: which changes go into one
//! transaction is the caller's decision (one per user-visible change).

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Row, params};
use wharf_image::layer::Compression;
use wharf_types::{Digest, ImageId, Reference};

/// Unix time in nanoseconds.
pub(crate) fn now_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

fn digest(s: String) -> rusqlite::Result<Digest> {
    s.parse().map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

fn opt_digest(s: Option<String>) -> rusqlite::Result<Option<Digest>> {
    s.map(digest).transpose()
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ImageRow {
    pub id: ImageId,
    /// The config's `created`, Unix nanoseconds.
    pub created: Option<i64>,
    pub size: i64,
    pub parent: Option<ImageId>,
    /// Chain ID of the top layer (also its snapshot name).
    pub top_layer: Option<Digest>,
    pub labels: BTreeMap<String, String>,
    pub os: String,
    pub architecture: String,
    pub added: i64,
    pub last_tag_time: Option<i64>,
}

const IMAGE_COLS: &str = "id, created, size, parent, top_layer, labels, os, architecture, added, last_tag_time";

fn image_row(r: &Row<'_>) -> rusqlite::Result<ImageRow> {
    let labels: String = r.get(5)?;
    Ok(ImageRow {
        id: ImageId::new(digest(r.get(0)?)?),
        created: r.get(1)?,
        size: r.get(2)?,
        parent: opt_digest(r.get(3)?)?.map(ImageId::new),
        top_layer: opt_digest(r.get(4)?)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        os: r.get(6)?,
        architecture: r.get(7)?,
        added: r.get(8)?,
        last_tag_time: r.get(9)?,
    })
}

pub(crate) fn images_all(c: &Connection) -> rusqlite::Result<Vec<ImageRow>> {
    let mut s = c.prepare_cached(&format!("SELECT {IMAGE_COLS} FROM images"))?;
    s.query_map([], image_row)?.collect()
}

pub(crate) fn image_count(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT count(*) FROM images", [], |r| r.get(0))
}

pub(crate) fn image_get(c: &Connection, id: &ImageId) -> rusqlite::Result<Option<ImageRow>> {
    let mut s = c.prepare_cached(&format!("SELECT {IMAGE_COLS} FROM images WHERE id = ?1"))?;
    s.query_row([id.to_string()], image_row).optional()
}

/// Images whose ID starts with `sha256:<hex_prefix>`.
pub(crate) fn image_ids_with_prefix(c: &Connection, hex_prefix: &str) -> rusqlite::Result<Vec<ImageId>> {
    let mut s = c.prepare_cached("SELECT id FROM images WHERE substr(id, 1, ?2) = ?1")?;
    let prefix = format!("sha256:{hex_prefix}");
    let len = prefix.len() as i64;
    s.query_map(params![prefix, len], |r| Ok(ImageId::new(digest(r.get(0)?)?)))?.collect()
}

pub(crate) fn image_insert(c: &Connection, i: &ImageRow) -> rusqlite::Result<bool> {
    let n = c.execute(
        &format!("INSERT OR IGNORE INTO images ({IMAGE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        params![
            i.id.to_string(),
            i.created,
            i.size,
            i.parent.as_ref().map(ToString::to_string),
            i.top_layer.as_ref().map(ToString::to_string),
            serde_json::to_string(&i.labels).unwrap_or_else(|_| "{}".into()),
            i.os,
            i.architecture,
            i.added,
            i.last_tag_time,
        ],
    )?;
    Ok(n == 1)
}

pub(crate) fn image_delete(c: &Connection, id: &ImageId) -> rusqlite::Result<()> {
    c.execute("DELETE FROM image_refs WHERE image_id = ?1", [id.to_string()])?;
    c.execute("DELETE FROM images WHERE id = ?1", [id.to_string()])?;
    Ok(())
}

pub(crate) fn image_children(c: &Connection, id: &ImageId) -> rusqlite::Result<Vec<ImageId>> {
    let mut s = c.prepare_cached("SELECT id FROM images WHERE parent = ?1")?;
    s.query_map([id.to_string()], |r| Ok(ImageId::new(digest(r.get(0)?)?)))?.collect()
}

pub(crate) fn set_last_tag_time(c: &Connection, id: &ImageId, t: i64) -> rusqlite::Result<()> {
    c.execute("UPDATE images SET last_tag_time = ?2 WHERE id = ?1", params![id.to_string(), t])?;
    Ok(())
}

/// All references with their images, oldest first.
pub(crate) fn refs_all(c: &Connection) -> rusqlite::Result<Vec<(Reference, ImageId)>> {
    let mut s = c.prepare_cached("SELECT name, image_id FROM image_refs ORDER BY created, name")?;
    let rows = s.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (name, id) = row?;
        // Only names we stored are here; a row that no longer parses is skipped, not fatal.
        if let Ok(reference) = Reference::parse_normalized(&name) {
            out.push((reference, ImageId::new(digest(id)?)));
        }
    }
    Ok(out)
}

pub(crate) fn refs_of(c: &Connection, id: &ImageId) -> rusqlite::Result<Vec<Reference>> {
    let mut s = c.prepare_cached("SELECT name FROM image_refs WHERE image_id = ?1 ORDER BY created, name")?;
    let names = s.query_map([id.to_string()], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for n in names {
        if let Ok(r) = Reference::parse_normalized(&n?) {
            out.push(r);
        }
    }
    Ok(out)
}

pub(crate) fn ref_get(c: &Connection, r: &Reference) -> rusqlite::Result<Option<ImageId>> {
    let mut s = c.prepare_cached("SELECT image_id FROM image_refs WHERE name = ?1")?;
    s.query_row([r.to_string()], |r| r.get::<_, String>(0)).optional()?.map(|d| digest(d).map(ImageId::new)).transpose()
}

/// Points `r` at `id`; returns the image it pointed at before, if another.
pub(crate) fn ref_put(c: &Connection, r: &Reference, id: &ImageId, now: i64) -> rusqlite::Result<Option<ImageId>> {
    let previous = ref_get(c, r)?;
    c.execute(
        "INSERT INTO image_refs (name, repo, tag, digest, image_id, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, created = excluded.created",
        params![r.to_string(), r.name(), r.tag(), r.digest().map(ToString::to_string), id.to_string(), now],
    )?;
    Ok(previous.filter(|p| p != id))
}

pub(crate) fn ref_delete(c: &Connection, r: &Reference) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM image_refs WHERE name = ?1", [r.to_string()])? == 1)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LayerRow {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    pub size: i64,
    pub tar_size: i64,
    pub snapshot: String,
}

fn layer_row(r: &Row<'_>) -> rusqlite::Result<LayerRow> {
    Ok(LayerRow {
        chain_id: digest(r.get(0)?)?,
        diff_id: digest(r.get(1)?)?,
        parent: opt_digest(r.get(2)?)?,
        size: r.get(3)?,
        tar_size: r.get(4)?,
        snapshot: r.get(5)?,
    })
}

const LAYER_COLS: &str = "chain_id, diff_id, parent, size, tar_size, snapshot";

pub(crate) fn layer_get(c: &Connection, chain: &Digest) -> rusqlite::Result<Option<LayerRow>> {
    let mut s = c.prepare_cached(&format!("SELECT {LAYER_COLS} FROM layers WHERE chain_id = ?1"))?;
    s.query_row([chain.to_string()], layer_row).optional()
}

pub(crate) fn layers_all(c: &Connection) -> rusqlite::Result<Vec<LayerRow>> {
    let mut s = c.prepare_cached(&format!("SELECT {LAYER_COLS} FROM layers"))?;
    s.query_map([], layer_row)?.collect()
}

pub(crate) fn layer_insert(c: &Connection, l: &LayerRow, now: i64) -> rusqlite::Result<()> {
    c.execute(
        &format!("INSERT OR IGNORE INTO layers ({LAYER_COLS}, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
        params![
            l.chain_id.to_string(),
            l.diff_id.to_string(),
            l.parent.as_ref().map(ToString::to_string),
            l.size,
            l.tar_size,
            l.snapshot,
            now
        ],
    )?;
    Ok(())
}

pub(crate) fn layer_delete(c: &Connection, chain: &Digest) -> rusqlite::Result<()> {
    c.execute("DELETE FROM layers WHERE chain_id = ?1", [chain.to_string()])?;
    Ok(())
}

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlobRow {
    pub digest: Digest,
    pub size: i64,
    pub media_type: String,
}

pub(crate) fn blob_insert(c: &Connection, b: &BlobRow, now: i64) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO blobs (digest, size, media_type, created) VALUES (?1, ?2, ?3, ?4)",
        params![b.digest.to_string(), b.size, b.media_type, now],
    )?;
    Ok(())
}

pub(crate) fn blobs_all(c: &Connection) -> rusqlite::Result<Vec<BlobRow>> {
    let mut s = c.prepare_cached("SELECT digest, size, media_type FROM blobs")?;
    s.query_map([], |r| Ok(BlobRow { digest: digest(r.get(0)?)?, size: r.get(1)?, media_type: r.get(2)? }))?.collect()
}

pub(crate) fn blob_delete(c: &Connection, d: &Digest) -> rusqlite::Result<()> {
    c.execute("DELETE FROM blobs WHERE digest = ?1", [d.to_string()])?;
    Ok(())
}

pub(crate) fn layer_blob_insert(
    c: &Connection,
    diff_id: &Digest,
    blob: &Digest,
    compression: Compression,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO layer_blobs (diff_id, digest, compression) VALUES (?1, ?2, ?3)",
        params![diff_id.to_string(), blob.to_string(), compression.as_str()],
    )?;
    Ok(())
}

/// The blobs holding a layer, uncompressed ones first.
pub(crate) fn layer_blobs(c: &Connection, diff_id: &Digest) -> rusqlite::Result<Vec<(Digest, Compression)>> {
    let mut s = c.prepare_cached(
        "SELECT digest, compression FROM layer_blobs WHERE diff_id = ?1
         ORDER BY compression = 'none' DESC, digest",
    )?;
    s.query_map([diff_id.to_string()], |r| {
        let comp: String = r.get(1)?;
        Ok((digest(r.get(0)?)?, Compression::parse(&comp).unwrap_or(Compression::None)))
    })?
    .collect()
}

/// `(diff_id, blob)` of every layer blob.
pub(crate) fn layer_blobs_all(c: &Connection) -> rusqlite::Result<Vec<(Digest, Digest)>> {
    let mut s = c.prepare_cached("SELECT diff_id, digest FROM layer_blobs")?;
    s.query_map([], |r| Ok((digest(r.get(0)?)?, digest(r.get(1)?)?)))?.collect()
}

/// Records that repository `repository` of registry `registry` holds blob `digest` (migration
/// 3). A no-op for a blob without a row: sources live and die with their blob.
pub(crate) fn blob_source_add(
    c: &Connection,
    digest: &Digest,
    registry: &str,
    repository: &str,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO blob_sources (digest, registry, repository)
         SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM blobs WHERE digest = ?1)",
        params![digest.to_string(), registry, repository],
    )?;
    Ok(())
}

/// The repositories of `registry` known to hold `digest`.
pub(crate) fn blob_sources(c: &Connection, digest: &Digest, registry: &str) -> rusqlite::Result<Vec<String>> {
    let mut s = c.prepare_cached(
        "SELECT repository FROM blob_sources WHERE digest = ?1 AND registry = ?2 ORDER BY repository",
    )?;
    s.query_map(params![digest.to_string(), registry], |r| r.get(0))?.collect()
}

/// GC roots held by other services: `(kind, target)`.
pub(crate) fn gc_refs_all(c: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut s = c.prepare_cached("SELECT kind, target FROM gc_refs")?;
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_store::Db;

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64)).parse().unwrap()
    }

    #[test]
    fn rows_round_trip_and_refs_move() {
        let db = Db::open_in_memory().unwrap();
        let c = db.conn();
        let layer = LayerRow {
            chain_id: d('a'),
            diff_id: d('a'),
            parent: None,
            size: 10,
            tar_size: 20,
            snapshot: d('a').to_string(),
        };
        layer_insert(&c, &layer, 1).unwrap();
        assert_eq!(layer_get(&c, &d('a')).unwrap(), Some(layer));
        let img = ImageRow {
            id: ImageId::new(d('b')),
            created: Some(5),
            size: 10,
            parent: None,
            top_layer: Some(d('a')),
            labels: [("x".to_owned(), "y".to_owned())].into(),
            os: "linux".into(),
            architecture: "amd64".into(),
            added: 1,
            last_tag_time: None,
        };
        assert!(image_insert(&c, &img).unwrap());
        assert!(!image_insert(&c, &img).unwrap(), "second insert is a no-op");
        assert_eq!(image_get(&c, &img.id).unwrap(), Some(img.clone()));
        assert_eq!(image_ids_with_prefix(&c, "bbb").unwrap(), vec![img.id.clone()]);
        assert!(image_ids_with_prefix(&c, "bc").unwrap().is_empty());
        let r = Reference::parse_normalized("busybox").unwrap().with_default_tag();
        assert_eq!(ref_put(&c, &r, &img.id, 1).unwrap(), None);
        assert_eq!(ref_get(&c, &r).unwrap(), Some(img.id.clone()));
        assert_eq!(refs_of(&c, &img.id).unwrap(), vec![r.clone()]);
        // A second image takes the tag over.
        let other = ImageRow { id: ImageId::new(d('c')), ..img.clone() };
        image_insert(&c, &other).unwrap();
        assert_eq!(ref_put(&c, &r, &other.id, 2).unwrap(), Some(img.id.clone()));
        assert!(refs_of(&c, &img.id).unwrap().is_empty());
        // Foreign keys hold: a layer in use cannot go.
        assert!(layer_delete(&c, &d('a')).is_err());
        image_delete(&c, &img.id).unwrap();
        image_delete(&c, &other.id).unwrap();
        layer_delete(&c, &d('a')).unwrap();
        assert_eq!(image_count(&c).unwrap(), 0);
    }

    #[test]
    fn blob_sources_live_with_their_blob() {
        let db = Db::open_in_memory().unwrap();
        let c = db.conn();
        // No blob row: nothing to remember.
        blob_source_add(&c, &d('a'), "127.0.0.1:5000", "x/y").unwrap();
        assert!(blob_sources(&c, &d('a'), "127.0.0.1:5000").unwrap().is_empty());
        let blob = BlobRow { digest: d('a'), size: 3, media_type: Compression::Gzip.oci_media_type().into() };
        blob_insert(&c, &blob, 1).unwrap();
        layer_blob_insert(&c, &d('b'), &d('a'), Compression::Gzip).unwrap();
        for repo in ["x/y", "a/b", "x/y"] {
            blob_source_add(&c, &d('a'), "127.0.0.1:5000", repo).unwrap();
        }
        blob_source_add(&c, &d('a'), "docker.io", "library/z").unwrap();
        assert_eq!(blob_sources(&c, &d('a'), "127.0.0.1:5000").unwrap(), vec!["a/b", "x/y"]);
        assert_eq!(layer_blobs(&c, &d('b')).unwrap(), vec![(d('a'), Compression::Gzip)]);
        blob_delete(&c, &d('a')).unwrap();
        assert!(blob_sources(&c, &d('a'), "docker.io").unwrap().is_empty());
        assert!(layer_blobs(&c, &d('b')).unwrap().is_empty());
    }
}
