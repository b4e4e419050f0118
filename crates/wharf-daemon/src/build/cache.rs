//! The build cache in the daemon's database (`build_cache`: step key → image), so it survives
//! restarts. Each call is one statement, hence atomic: an entry exists fully or not at all.

use std::sync::Arc;

use rusqlite::{OptionalExtension, params};
use wharf_build::{CacheRecord, CacheStore};
use wharf_store::Db;
use wharf_types::{Digest, EngineError};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,           -- the step's cache key (64 hex digits)
    image TEXT NOT NULL,            -- the image the step made
    created INTEGER NOT NULL,       -- Unix seconds
    last_used INTEGER NOT NULL,     -- Unix seconds of the last hit (or of the write)
    usage_count INTEGER NOT NULL DEFAULT 1
) STRICT;
CREATE INDEX IF NOT EXISTS build_cache_by_image ON build_cache(image);";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn db_err(e: rusqlite::Error) -> EngineError {
    EngineError::internal(format!("build cache: {e}"))
}

/// One entry with its use count (for `system df`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub record: CacheRecord,
    pub usage_count: i64,
}

/// The persistent [`CacheStore`].
pub struct SqliteCache {
    db: Arc<Db>,
}

impl SqliteCache {
    pub fn open(db: Arc<Db>) -> Result<Self, EngineError> {
        db.conn().execute_batch(SCHEMA).map_err(db_err)?;
        Ok(Self { db })
    }

    /// Every entry with its use count, oldest first.
    pub fn entries(&self) -> Result<Vec<CacheEntry>, EngineError> {
        let c = self.db.conn();
        let mut s = c
            .prepare_cached("SELECT key, image, created, last_used, usage_count FROM build_cache ORDER BY created, key")
            .map_err(db_err)?;
        let rows = s
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(db_err)?;
        let mut out = Vec::new();
        for row in rows {
            let (key, image, created, last_used, usage_count) = row.map_err(db_err)?;
            let Ok(image) = image.parse::<Digest>() else { continue };
            out.push(CacheEntry {
                record: CacheRecord { key, image, created: created as u64, last_used: last_used as u64 },
                usage_count,
            });
        }
        Ok(out)
    }
}

impl CacheStore for SqliteCache {
    fn get(&self, key: &str) -> Result<Option<Digest>, EngineError> {
        let c = self.db.conn();
        let image: Option<String> = c
            .prepare_cached("SELECT image FROM build_cache WHERE key = ?1")
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .map_err(db_err)?;
        Ok(image.and_then(|i| i.parse().ok()))
    }

    fn put(&self, key: &str, image: &Digest) -> Result<(), EngineError> {
        let t = now();
        self.db
            .conn()
            .execute(
                "INSERT INTO build_cache (key, image, created, last_used, usage_count) VALUES (?1, ?2, ?3, ?3, 1)
                 ON CONFLICT(key) DO UPDATE SET image = excluded.image, last_used = excluded.last_used",
                params![key, image.to_string(), t],
            )
            .map_err(db_err)?;
        Ok(())
    }

    fn touch(&self, key: &str) -> Result<(), EngineError> {
        self.db
            .conn()
            .execute(
                "UPDATE build_cache SET last_used = ?2, usage_count = usage_count + 1 WHERE key = ?1",
                params![key, now()],
            )
            .map_err(db_err)?;
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), EngineError> {
        self.db.conn().execute("DELETE FROM build_cache WHERE key = ?1", [key]).map_err(db_err)?;
        Ok(())
    }

    fn list(&self) -> Result<Vec<CacheRecord>, EngineError> {
        Ok(self.entries()?.into_iter().map(|e| e.record).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64)).parse().unwrap()
    }

    #[test]
    fn persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wharf.db");
        {
            let c = SqliteCache::open(Arc::new(Db::open(&path).unwrap())).unwrap();
            assert_eq!(c.get("k1").unwrap(), None);
            c.put("k1", &d('a')).unwrap();
            c.put("k2", &d('b')).unwrap();
            c.touch("k1").unwrap();
            c.put("k2", &d('c')).unwrap();
            c.remove("nope").unwrap();
        }
        let c = SqliteCache::open(Arc::new(Db::open(&path).unwrap())).unwrap();
        assert_eq!(c.get("k1").unwrap(), Some(d('a')));
        assert_eq!(c.get("k2").unwrap(), Some(d('c')));
        let e = c.entries().unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e.iter().find(|e| e.record.key == "k1").unwrap().usage_count, 2);
        c.remove("k1").unwrap();
        assert_eq!(c.list().unwrap().len(), 1);
    }
}
