//! The content store: immutable blobs (compressed layers, configs, manifests) by digest.
//!
//! Layout under the root:
//!
//! ```text
//! <root>/blobs/<algorithm>/<hex>    committed blobs, read-only, never changed in place
//! <root>/ingest/<hex|new>-<random>  blobs being written; deleted at open (left by a crash)
//! ```
//!
//! A write streams into a unique temp file under `ingest/` while hashing, checks the digest
//! (and size) it was promised, fsyncs, and renames into `blobs/`. Renames are atomic, so
//! concurrent ingests of the same blob are safe: the loser finds the blob there and drops its
//! temp file. One process owns a root: `open` sweeps `ingest/`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt};
use wharf_types::digest::Algorithm;
use wharf_types::{Classify, Digest, ErrorKind};

use crate::hash::{Hasher, random_suffix};

/// Errors of the content store. Messages name the digest and say what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("open content store at {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("content {0} not found")]
    NotFound(Digest),
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch { digest: String, expected: u64, actual: u64 },
    #[error("content {digest} is larger than the limit of {limit} bytes")]
    TooLarge { digest: String, limit: u64 },
    #[error("read content for {digest}")]
    Read {
        digest: String,
        #[source]
        source: io::Error,
    },
    #[error("write content for {digest} to {path}")]
    Write {
        digest: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("open content {digest}")]
    OpenBlob {
        digest: Digest,
        #[source]
        source: io::Error,
    },
    #[error("delete content {digest}")]
    Delete {
        digest: Digest,
        #[source]
        source: io::Error,
    },
    #[error("list content in {path}")]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Classify for ContentError {
    fn kind(&self) -> ErrorKind {
        match self {
            ContentError::NotFound(_) => ErrorKind::NotFound,
            ContentError::DigestMismatch { .. } | ContentError::SizeMismatch { .. } | ContentError::TooLarge { .. } => {
                ErrorKind::InvalidArgument
            }
            _ => ErrorKind::Internal,
        }
    }
}

/// Options of a [`ContentStore`].
#[derive(Debug, Clone, Default)]
pub struct ContentOptions {
    /// Refuse blobs larger than this many bytes (checked while streaming).
    pub max_blob_size: Option<u64>,
}

/// What an ingest stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub digest: Digest,
    pub size: u64,
    /// True when the blob was already there (this ingest wrote nothing, or lost a race).
    pub existed: bool,
}

/// The content store; cheap to share (`Arc`) between threads: every method takes `&self`.
#[derive(Debug, Clone)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
    options: ContentOptions,
}

impl ContentStore {
    /// Opens (creating if needed) the store at `root` and deletes stale ingest temp files.
    pub fn open(root: &Path) -> Result<Self, ContentError> {
        Self::open_with(root, ContentOptions::default())
    }

    pub fn open_with(root: &Path, options: ContentOptions) -> Result<Self, ContentError> {
        let open_err = |source| ContentError::Open { path: root.to_path_buf(), source };
        let blobs = root.join("blobs");
        let ingest = root.join("ingest");
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            fs::create_dir_all(blobs.join(alg.as_str())).map_err(open_err)?;
        }
        fs::create_dir_all(&ingest).map_err(open_err)?;
        for entry in fs::read_dir(&ingest).map_err(open_err)? {
            let path = entry.map_err(open_err)?.path();
            fs::remove_file(&path).or_else(|_| fs::remove_dir_all(&path)).map_err(open_err)?;
        }
        Ok(Self { blobs, ingest, options })
    }

    /// Where the blob `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.algorithm().as_str()).join(digest.hex())
    }

    /// Starts writing a blob. `expected` is the digest it must have (its algorithm is used for
    /// hashing; sha256 otherwise); `expected_size` its size, enforced while writing.
    pub fn writer(&self, expected: Option<&Digest>, expected_size: Option<u64>) -> Result<ContentWriter, ContentError> {
        let hasher = Hasher::new(expected.map_or(Algorithm::Sha256, Digest::algorithm));
        self.new_writer(expected, expected_size, Some(hasher))
    }

    /// [`writer`](Self::writer) for bytes whose digest the caller has already verified (a
    /// registry download hashes what it streams): not hashed again. The size is still
    /// enforced, and `commit` refuses a blob of any other size, so the stored bytes are exactly
    /// the verified ones as long as the caller commits only after the verification succeeded.
    pub fn writer_verified(&self, digest: &Digest, size: u64) -> Result<ContentWriter, ContentError> {
        self.new_writer(Some(digest), Some(size), None)
    }

    fn new_writer(
        &self,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
        hasher: Option<Hasher>,
    ) -> Result<ContentWriter, ContentError> {
        let name = expected.map_or("new", |d| d.hex());
        let temp = self.ingest.join(format!("{name}-{}", random_suffix()));
        let label = expected.map_or_else(|| "new content".to_owned(), ToString::to_string);
        let file = File::options().write(true).create_new(true).open(&temp).map_err(|source| ContentError::Write {
            digest: label.clone(),
            path: temp.clone(),
            source,
        })?;
        Ok(ContentWriter {
            store: self.clone(),
            file: Some(file),
            temp,
            hasher,
            size: 0,
            expected: expected.cloned(),
            expected_size,
            label,
        })
    }

    /// Streams `reader` into the store. When `expected` is given and the blob already exists,
    /// nothing is read.
    pub fn ingest(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<Ingested, ContentError> {
        if let Some(d) = expected
            && let Ok(size) = self.size(d)
        {
            return Ok(Ingested { digest: d.clone(), size, existed: true });
        }
        let mut w = self.writer(expected, expected_size)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ContentError::Read { digest: w.label.clone(), source });
                }
            };
            w.write_checked(&buf[..n])?;
        }
        w.commit()
    }

    /// [`ContentStore::ingest`] from an async reader. The file writes are small and buffered by
    /// the page cache; the final fsync and rename run on the blocking pool.
    pub async fn ingest_async(
        &self,
        mut reader: impl AsyncRead + Unpin,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<Ingested, ContentError> {
        if let Some(d) = expected
            && let Ok(size) = self.size(d)
        {
            return Ok(Ingested { digest: d.clone(), size, existed: true });
        }
        let mut w = self.writer(expected, expected_size)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ContentError::Read { digest: w.label.clone(), source });
                }
            };
            w.write_checked(&buf[..n])?;
        }
        match tokio::task::spawn_blocking(move || w.commit()).await {
            Ok(result) => result,
            Err(e) => Err(ContentError::Read { digest: "content".into(), source: io::Error::other(e) }),
        }
    }

    /// Opens a blob for reading, as a plain file (so servers can `sendfile`/`copy_file_range`).
    pub fn open_blob(&self, digest: &Digest) -> Result<File, ContentError> {
        File::open(self.path(digest)).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ContentError::NotFound(digest.clone()),
            _ => ContentError::OpenBlob { digest: digest.clone(), source },
        })
    }

    pub fn exists(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    pub fn size(&self, digest: &Digest) -> Result<u64, ContentError> {
        fs::metadata(self.path(digest)).map(|m| m.len()).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ContentError::NotFound(digest.clone()),
            _ => ContentError::OpenBlob { digest: digest.clone(), source },
        })
    }

    /// Deletes a blob. Readers that have it open keep reading the old inode.
    pub fn delete(&self, digest: &Digest) -> Result<(), ContentError> {
        fs::remove_file(self.path(digest)).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ContentError::NotFound(digest.clone()),
            _ => ContentError::Delete { digest: digest.clone(), source },
        })
    }

    /// Every blob with its size, for garbage collection. Files with names that are not valid
    /// digests are skipped.
    pub fn list(&self) -> Result<Vec<(Digest, u64)>, ContentError> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.blobs.join(alg.as_str());
            let list_err = |source| ContentError::List { path: dir.clone(), source };
            for entry in fs::read_dir(&dir).map_err(list_err)? {
                let entry = entry.map_err(list_err)?;
                let Ok(digest) = format!("{}:{}", alg.as_str(), entry.file_name().to_string_lossy()).parse::<Digest>()
                else {
                    continue;
                };
                out.push((digest, entry.metadata().map_err(list_err)?.len()));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A blob being written (see [`ContentStore::writer`]). Dropping it without
/// [`commit`](ContentWriter::commit) deletes the temp file.
pub struct ContentWriter {
    store: ContentStore,
    file: Option<File>,
    temp: PathBuf,
    /// `None` for [`ContentStore::writer_verified`].
    hasher: Option<Hasher>,
    size: u64,
    expected: Option<Digest>,
    expected_size: Option<u64>,
    label: String,
}

impl ContentWriter {
    fn write_checked(&mut self, data: &[u8]) -> Result<(), ContentError> {
        let size = self.size + data.len() as u64;
        if let Some(expected) = self.expected_size
            && size > expected
        {
            return Err(ContentError::SizeMismatch { digest: self.label.clone(), expected, actual: size });
        }
        if let Some(limit) = self.store.options.max_blob_size
            && size > limit
        {
            return Err(ContentError::TooLarge { digest: self.label.clone(), limit });
        }
        let file = self.file.as_mut().expect("file present until commit");
        file.write_all(data).map_err(|source| ContentError::Write {
            digest: self.label.clone(),
            path: self.temp.clone(),
            source,
        })?;
        if let Some(h) = &mut self.hasher {
            h.update(data);
        }
        self.size = size;
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Verifies digest and size, makes the blob durable and moves it into place.
    pub fn commit(mut self) -> Result<Ingested, ContentError> {
        let actual = match (&self.hasher, &self.expected) {
            (Some(h), _) => h.clone().finish(),
            (None, Some(verified)) => verified.clone(),
            (None, None) => unreachable!("writer_verified always has a digest"),
        };
        if let Some(expected) = &self.expected
            && *expected != actual
        {
            return Err(ContentError::DigestMismatch { expected: expected.clone(), actual });
        }
        if let Some(expected) = self.expected_size
            && expected != self.size
        {
            return Err(ContentError::SizeMismatch { digest: actual.to_string(), expected, actual: self.size });
        }
        let write_err =
            |path: &Path, source| ContentError::Write { digest: actual.to_string(), path: path.to_path_buf(), source };
        let file = self.file.take().expect("file present until commit");
        file.sync_all().map_err(|e| write_err(&self.temp, e))?;
        drop(file);
        let dest = self.store.path(&actual);
        if dest.exists() {
            // Another ingest got there first; the content is the same by its digest.
            return Ok(Ingested { digest: actual, size: self.size, existed: true });
        }
        // Blobs are immutable: make that visible in their mode too.
        let _ = fs::set_permissions(&self.temp, std::os::unix::fs::PermissionsExt::from_mode(0o444));
        fs::rename(&self.temp, &dest).map_err(|e| write_err(&dest, e))?;
        if let Some(dir) = dest.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(|e| write_err(dir, e))?;
        }
        Ok(Ingested { digest: actual, size: self.size, existed: false })
    }
}

impl Write for ContentWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_checked(buf).map_err(|e| match e {
            ContentError::Write { source, .. } => source,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        })?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ContentWriter {
    fn drop(&mut self) {
        // After a successful commit the temp name no longer exists; otherwise clean up.
        let _ = fs::remove_file(&self.temp);
    }
}

/// A reader that copies everything read through it into a writer: store a blob while
/// unpacking it in the same pass.
///
/// ```no_run
/// # use wharf_image::{ContentStore, TeeReader};
/// # use wharf_image::layer::{unpack, UnpackOptions};
/// # fn f(store: &ContentStore, body: impl std::io::Read, digest: &wharf_types::Digest, size: u64, dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
/// let mut blob = store.writer(Some(digest), Some(size))?;
/// let opts = UnpackOptions { expected_digest: Some(digest.clone()), ..Default::default() };
/// let unpacked = unpack(TeeReader::new(body, &mut blob), dir, &opts)?; // reads to EOF
/// blob.commit()?;
/// # Ok(()) }
/// ```
pub struct TeeReader<R, W> {
    reader: R,
    writer: W,
}

impl<R: Read, W: Write> TeeReader<R, W> {
    pub fn new(reader: R, writer: W) -> Self {
        Self { reader, writer }
    }

    pub fn into_inner(self) -> (R, W) {
        (self.reader, self.writer)
    }
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.writer.write_all(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn sha(data: &[u8]) -> Digest {
        let mut h = Hasher::sha256();
        h.update(data);
        h.finish()
    }

    #[test]
    fn ingest_verify_read_list_delete() {
        let tmp = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(tmp.path()).unwrap();
        let data = b"hello blob".repeat(1000);
        let d = sha(&data);
        let got = cs.ingest(&data[..], Some(&d), Some(data.len() as u64)).unwrap();
        assert_eq!(got, Ingested { digest: d.clone(), size: data.len() as u64, existed: false });
        assert!(cs.exists(&d));
        let mut back = Vec::new();
        cs.open_blob(&d).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(cs.list().unwrap(), vec![(d.clone(), data.len() as u64)]);
        assert!(cs.ingest(&b"x"[..], Some(&d), None).unwrap().existed, "existing blob: nothing read");
        cs.delete(&d).unwrap();
        assert_eq!(cs.delete(&d).unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(cs.open_blob(&d).unwrap_err().kind(), ErrorKind::NotFound);
        // Without an expected digest the computed one is returned.
        assert_eq!(cs.ingest(&b"abc"[..], None, None).unwrap().digest, sha(b"abc"));
        assert_eq!(fs::read_dir(tmp.path().join("ingest")).unwrap().count(), 0, "no temp files left");
    }

    #[test]
    fn mismatches_say_expected_and_got() {
        let tmp = tempfile::tempdir().unwrap();
        let cs = ContentStore::open_with(tmp.path(), ContentOptions { max_blob_size: Some(10) }).unwrap();
        let wrong = sha(b"other");
        let err = cs.ingest(&b"data"[..], Some(&wrong), None).unwrap_err();
        assert_eq!(err.to_string(), format!("digest mismatch: expected {wrong}, got {}", sha(b"data")));
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let err = cs.ingest(&b"data"[..], None, Some(3)).unwrap_err();
        assert!(matches!(err, ContentError::SizeMismatch { expected: 3, actual: 4, .. }), "{err}");
        let err = cs.ingest(&b"data"[..], None, Some(5)).unwrap_err();
        assert!(matches!(err, ContentError::SizeMismatch { expected: 5, actual: 4, .. }), "{err}");
        let err = cs.ingest(&[0u8; 11][..], None, None).unwrap_err();
        assert!(matches!(err, ContentError::TooLarge { limit: 10, .. }), "{err}");
        assert!(cs.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(tmp.path().join("ingest")).unwrap().count(), 0, "failed ingests leave nothing");
    }

    #[test]
    fn verified_writers_check_the_size_only() {
        use std::io::Write as _;
        let tmp = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(tmp.path()).unwrap();
        let d = sha(b"verified elsewhere");
        let mut w = cs.writer_verified(&d, 18).unwrap();
        w.write_all(b"verified elsewhere").unwrap();
        assert_eq!(w.commit().unwrap().digest, d);
        assert_eq!(fs::read(cs.path(&d)).unwrap(), b"verified elsewhere");
        // A short stream or a long one is refused; nothing is stored.
        let other = sha(b"x");
        let mut w = cs.writer_verified(&other, 5).unwrap();
        w.write_all(b"abc").unwrap();
        assert!(matches!(w.commit().unwrap_err(), ContentError::SizeMismatch { expected: 5, actual: 3, .. }));
        let mut w = cs.writer_verified(&other, 2).unwrap();
        assert!(w.write_all(b"abc").is_err());
        drop(w);
        assert!(!cs.exists(&other));
        assert_eq!(fs::read_dir(tmp.path().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn concurrent_ingests_of_one_blob() {
        let tmp = tempfile::tempdir().unwrap();
        let cs = Arc::new(ContentStore::open(tmp.path()).unwrap());
        let data: Arc<Vec<u8>> = Arc::new((0..4_000_000u32).map(|i| (i % 251) as u8).collect());
        let d = sha(&data);
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (cs, data, d) = (Arc::clone(&cs), Arc::clone(&data), d.clone());
                // No expected digest, so every thread really writes and races on the rename.
                std::thread::spawn(move || {
                    let got = cs.ingest(&data[..], None, None).unwrap();
                    assert_eq!(got.digest, d);
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(cs.size(&d).unwrap(), data.len() as u64);
        assert_eq!(fs::read_dir(tmp.path().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn async_ingest() {
        let tmp = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(tmp.path()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let data = vec![42u8; 300_000];
        let got = rt.block_on(cs.ingest_async(&data[..], Some(&sha(&data)), None)).unwrap();
        assert_eq!(got.size, 300_000);
        let mut h = Hasher::new(Algorithm::Sha512);
        h.update(&data);
        let sha512 = h.finish();
        let got = rt.block_on(cs.ingest_async(&data[..], Some(&sha512), None)).unwrap();
        assert!(cs.path(&got.digest).starts_with(tmp.path().join("blobs/sha512")));
    }

    #[test]
    fn crash_leftovers_are_swept_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(tmp.path()).unwrap();
        let mut w = cs.writer(None, None).unwrap();
        w.write_all(b"half").unwrap();
        std::mem::forget(w); // a crash: no commit, no drop
        fs::write(tmp.path().join("ingest/abc-123"), "junk").unwrap();
        assert_eq!(fs::read_dir(tmp.path().join("ingest")).unwrap().count(), 2);
        let cs = ContentStore::open(tmp.path()).unwrap();
        assert_eq!(fs::read_dir(tmp.path().join("ingest")).unwrap().count(), 0);
        assert!(cs.list().unwrap().is_empty());
    }
}
