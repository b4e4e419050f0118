//! The metadata database. One SQLite file in WAL mode; the schema version lives in
//! `PRAGMA user_version` and [`MIGRATIONS`] brings any older database up to date inside one
//! transaction each, so a crash mid-migration leaves the previous version intact.
//!
//! Callers hold the connection briefly (statements take microseconds); long work happens
//! outside the lock.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, Transaction};
use wharf_types::{Classify, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("open database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {path} has schema version {found}, newer than this wharfd understands ({known}); upgrade wharfd")]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("migrate database to version {version}")]
    Migrate {
        version: i64,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database query")]
    Query(#[from] rusqlite::Error),
}

impl Classify for DbError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// Schema migrations, in order; entry `i` takes the database from version `i` to `i + 1`.
/// Never edit a released entry: append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: daemon metadata (engine ID and other singletons).
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;",
    // 2: images (the daemon's `image` module reads and writes these tables).
    IMAGES_SCHEMA,
    // 3: where layer blobs are known to exist in registries (push: `Layer already exists`,
    // cross-repository mounts).
    BLOB_SOURCES_SCHEMA,
];

/// Images, their references, layers, and the blobs that hold them. Times are Unix nanoseconds.
/// Layers are named by chain ID; the committed snapshot of a layer has the same name. A layer
/// row exists while an image (or a snapshot built on it, such as a container's) needs it; blob
/// rows exist while a layer, an image or a `gc_refs` row needs them. What is on disk but has no
/// row is garbage: the daemon's GC deletes it (see `wharf-daemon/src/image/gc.rs`). A layer may
/// have several `layer_blobs`: the one it came in as, and the gzip blob a push made of an
/// uncompressed one (kept, so that later pushes do not compress again).
const IMAGES_SCHEMA: &str = "
CREATE TABLE layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    parent TEXT REFERENCES layers(chain_id),
    size INTEGER NOT NULL,          -- bytes of file content (Docker's layer size)
    tar_size INTEGER NOT NULL,      -- bytes of the uncompressed tar (what the diff ID hashes)
    snapshot TEXT NOT NULL UNIQUE,  -- the committed snapshot
    created INTEGER NOT NULL
) STRICT;
CREATE INDEX layers_by_parent ON layers(parent);
CREATE TABLE images (
    id TEXT PRIMARY KEY,            -- the config digest
    created INTEGER,                -- the config's `created`; NULL when it has none
    size INTEGER NOT NULL,          -- sum of the layers' sizes
    parent TEXT,                    -- the image it was committed/built on (local only)
    top_layer TEXT REFERENCES layers(chain_id),  -- NULL for an image without layers
    labels TEXT NOT NULL DEFAULT '{}',           -- config labels (JSON), for filters
    os TEXT NOT NULL DEFAULT '',
    architecture TEXT NOT NULL DEFAULT '',
    added INTEGER NOT NULL,         -- when it was stored here
    last_tag_time INTEGER           -- Metadata.LastTagTime
) STRICT;
CREATE INDEX images_by_parent ON images(parent);
CREATE TABLE image_refs (
    name TEXT PRIMARY KEY,          -- normalised: docker.io/library/busybox:latest, x@sha256:…
    repo TEXT NOT NULL,             -- docker.io/library/busybox
    tag TEXT,                       -- set for tags
    digest TEXT,                    -- set for repo digests (a manifest digest)
    image_id TEXT NOT NULL REFERENCES images(id),
    created INTEGER NOT NULL
) STRICT;
CREATE INDEX image_refs_by_image ON image_refs(image_id);
CREATE TABLE blobs (
    digest TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    created INTEGER NOT NULL
) STRICT;
CREATE TABLE layer_blobs (          -- blobs whose content is a layer (as received: compressed or not)
    diff_id TEXT NOT NULL,
    digest TEXT NOT NULL REFERENCES blobs(digest) ON DELETE CASCADE,
    compression TEXT NOT NULL,      -- none | gzip | zstd
    PRIMARY KEY (diff_id, digest)
) STRICT;
CREATE TABLE gc_refs (              -- extra GC roots other services hold (pulls, builds, containers)
    owner TEXT NOT NULL,            -- e.g. `container:<id>`, `build:<id>`
    kind TEXT NOT NULL CHECK (kind IN ('blob', 'snapshot')),
    target TEXT NOT NULL,           -- a blob digest or a snapshot name
    PRIMARY KEY (owner, kind, target)
) STRICT;
";

/// Registry repositories known to hold a blob (Docker's "v2 metadata"): recorded when a push
/// finds, mounts or uploads it (and by pulls), so a later push to another repository of the
/// same registry can mount it instead of uploading. A row lives as long as its blob row.
const BLOB_SOURCES_SCHEMA: &str = "
CREATE TABLE blob_sources (
    digest TEXT NOT NULL REFERENCES blobs(digest) ON DELETE CASCADE,
    registry TEXT NOT NULL,         -- the reference's domain: 127.0.0.1:5000, docker.io
    repository TEXT NOT NULL,       -- the path on that registry: library/busybox
    PRIMARY KEY (digest, registry, repository)
) STRICT;
";

/// The database handle shared by the daemon's services.
#[derive(Debug)]
pub struct Db {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Db {
    /// Opens (creating if needed) the database at `path` and migrates it to the newest schema.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let open_err = |source| DbError::Open { path: path.to_owned(), source };
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
        migrate(&mut conn, path)?;
        Ok(Self { conn: Mutex::new(conn), path: path.to_owned() })
    }

    /// An in-memory database (tests).
    pub fn open_in_memory() -> Result<Self, DbError> {
        let path = PathBuf::from(":memory:");
        let mut conn = Connection::open_in_memory().map_err(|source| DbError::Open { path: path.clone(), source })?;
        migrate(&mut conn, &path)?;
        Ok(Self { conn: Mutex::new(conn), path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for a short read or a single statement.
    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one transaction: all of its changes become visible together, or none do.
    pub fn transaction<T, E: From<rusqlite::Error>>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Reads a `meta` value.
    pub fn meta_get(&self, key: &str) -> Result<Option<String>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?;
        let mut rows = stmt.query([key])?;
        Ok(match rows.next()? {
            Some(row) => Some(row.get(0)?),
            None => None,
        })
    }

    /// Writes a `meta` value.
    pub fn meta_set(&self, key: &str, value: &str) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    let known = MIGRATIONS.len() as i64;
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > known {
        return Err(DbError::TooNew { path: path.to_owned(), found: current, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i64 + 1;
        let tx = conn.transaction().map_err(|source| DbError::Migrate { version, source })?;
        tx.execute_batch(sql).map_err(|source| DbError::Migrate { version, source })?;
        tx.pragma_update(None, "user_version", version).map_err(|source| DbError::Migrate { version, source })?;
        tx.commit().map_err(|source| DbError::Migrate { version, source })?;
        tracing::debug!(version, "database migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wharf.db");
        {
            let db = Db::open(&p).unwrap();
            db.meta_set("engine-id", "abc").unwrap();
        }
        let db = Db::open(&p).unwrap();
        assert_eq!(db.meta_get("engine-id").unwrap().as_deref(), Some("abc"));
        let v: i64 = db.conn().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wharf.db");
        drop(Db::open(&p).unwrap());
        Connection::open(&p).unwrap().pragma_update(None, "user_version", 999).unwrap();
        let err = Db::open(&p).unwrap_err();
        assert!(matches!(err, DbError::TooNew { found: 999, .. }), "{err}");
    }

    #[test]
    fn failed_transaction_changes_nothing() {
        let db = Db::open_in_memory().unwrap();
        let r: Result<(), DbError> = db.transaction(|tx| {
            tx.execute("INSERT INTO meta VALUES ('a','1')", [])?;
            Err(DbError::Query(rusqlite::Error::InvalidQuery))
        });
        assert!(r.is_err());
        assert_eq!(db.meta_get("a").unwrap(), None);
    }
}
