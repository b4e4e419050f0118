//! Filesystem storage of the registry server.
//!
//! ```text
//! <root>/blobs/sha256/<hh>/<hex>                          blob bytes (configs, layers, manifests)
//! <root>/repositories/<name>/_layers/sha256/<hex>         link: the blob belongs to the repository
//! <root>/repositories/<name>/_manifests/revisions/sha256/<hex>   link: a manifest; holds its media type
//! <root>/repositories/<name>/_manifests/tags/<tag>        the tag's manifest digest
//! <root>/repositories/<name>/_referrers/sha256/<subject-hex>/<hex>.json   a referrer's descriptor
//! <root>/_uploads/<uuid>/{repo,data}                      uploads in progress
//! <root>/_tmp/                                            temp files of atomic writes
//! <root>/_gc.lock                                         taken shared by commits, exclusive by `gc`
//! ```
//!
//! Every file is written to `_tmp` (or `_uploads`), fsynced and renamed in, so a crash leaves a
//! file whole or absent. Blobs are immutable once renamed in; a blob is served from a repository
//! only when that repository links it, which is what cross-repository mounts create.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use wharf_types::oci::Descriptor;
use wharf_types::{Classify, Digest, ErrorKind};

use super::name::RepoName;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("create storage directory {path}")]
    Init {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("remove {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("take the gc lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob upload unknown to registry: {0}")]
    UploadUnknown(String),
    #[error("storage task failed")]
    Join(#[source] tokio::task::JoinError),
}

impl Classify for StorageError {
    fn kind(&self) -> ErrorKind {
        match self {
            StorageError::UploadUnknown(_) => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        }
    }
}

type Result<T> = std::result::Result<T, StorageError>;

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Read { path: path.to_owned(), source }
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Write { path: path.to_owned(), source }
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(StorageError::Join)?
}

/// The registry's on-disk state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
}

/// A held gc lock (shared for commits, exclusive for gc); released on drop.
#[derive(Debug)]
pub struct GcLock(#[allow(dead_code)] File);

impl Storage {
    /// Opens (creating) a storage root.
    pub fn open(root: &Path) -> Result<Self> {
        for d in ["blobs/sha256", "repositories", "_uploads", "_tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|source| StorageError::Init { path: p, source })?;
        }
        Ok(Self { root: root.to_owned() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        blob_path(&self.root, d)
    }

    fn repo_dir(&self, repo: &RepoName) -> PathBuf {
        self.root.join("repositories").join(repo.as_str())
    }

    fn layer_link(&self, repo: &RepoName, d: &Digest) -> PathBuf {
        self.repo_dir(repo).join("_layers").join(d.algorithm().as_str()).join(d.hex())
    }

    fn revision_link(&self, repo: &RepoName, d: &Digest) -> PathBuf {
        self.repo_dir(repo).join("_manifests/revisions").join(d.algorithm().as_str()).join(d.hex())
    }

    fn tag_path(&self, repo: &RepoName, tag: &str) -> PathBuf {
        self.repo_dir(repo).join("_manifests/tags").join(tag)
    }

    fn referrers_dir(&self, repo: &RepoName, subject: &Digest) -> PathBuf {
        self.repo_dir(repo).join("_referrers").join(subject.algorithm().as_str()).join(subject.hex())
    }

    /// Takes the gc lock shared (commits) or exclusive (gc), waiting for it.
    pub async fn gc_lock(&self, exclusive: bool) -> Result<GcLock> {
        let root = self.root.clone();
        blocking(move || gc_lock(&root, exclusive)).await
    }

    /// The size of a blob that exists and is linked into `repo`.
    pub async fn blob_size(&self, repo: &RepoName, d: &Digest) -> Result<Option<u64>> {
        if !exists(&self.layer_link(repo, d)).await? {
            return Ok(None);
        }
        self.global_blob_size(d).await
    }

    /// The size of a blob in the store, whatever repository links it.
    pub async fn global_blob_size(&self, d: &Digest) -> Result<Option<u64>> {
        let p = self.blob_path(d);
        match tokio::fs::metadata(&p).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(read_err(&p)(e)),
        }
    }

    /// Links an existing blob into `repo` (after an upload, or a cross-repository mount). The
    /// blob's mtime is refreshed: a mounted blob is about to be referenced, so gc's grace period
    /// must start again.
    pub async fn link_blob(&self, repo: &RepoName, d: &Digest) -> Result<()> {
        let link = self.layer_link(repo, d);
        let blob = self.blob_path(d);
        let tmp = self.root.join("_tmp");
        blocking(move || {
            write_atomic(&tmp, &link, b"")?;
            touch(&blob);
            Ok(())
        })
        .await
    }

    /// Removes `repo`'s link to a blob. The bytes go at the next gc.
    pub async fn unlink_blob(&self, repo: &RepoName, d: &Digest) -> Result<bool> {
        remove_if_exists(&self.layer_link(repo, d)).await
    }

    // ---- uploads ----

    fn upload_dir(&self, id: &str) -> PathBuf {
        self.root.join("_uploads").join(id)
    }

    pub fn upload_data(&self, id: &str) -> PathBuf {
        self.upload_dir(id).join("data")
    }

    /// Starts an upload for `repo`; returns its id.
    pub async fn create_upload(&self, repo: &RepoName) -> Result<String> {
        let id = new_upload_id();
        let dir = self.upload_dir(&id);
        tokio::fs::create_dir_all(&dir).await.map_err(write_err(&dir))?;
        let data = dir.join("data");
        tokio::fs::File::create(&data).await.map_err(write_err(&data))?;
        let repo_file = dir.join("repo");
        tokio::fs::write(&repo_file, repo.as_str()).await.map_err(write_err(&repo_file))?;
        Ok(id)
    }

    /// The current size of an upload that belongs to `repo`.
    pub async fn upload_size(&self, repo: &RepoName, id: &str) -> Result<u64> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(StorageError::UploadUnknown(id.to_owned()));
        }
        let dir = self.upload_dir(id);
        match tokio::fs::read_to_string(dir.join("repo")).await {
            Ok(owner) if owner == repo.as_str() => {}
            _ => return Err(StorageError::UploadUnknown(id.to_owned())),
        }
        let data = dir.join("data");
        tokio::fs::metadata(&data).await.map(|m| m.len()).map_err(|_| StorageError::UploadUnknown(id.to_owned()))
    }

    /// Moves a finished upload into the blob store (or drops it when the blob is already there),
    /// then links it into `repo`. The blob's mtime is set to now so a concurrent `gc` that
    /// started earlier keeps it.
    pub async fn commit_upload(&self, repo: &RepoName, id: &str, d: &Digest) -> Result<()> {
        let _lock = self.gc_lock(false).await?;
        let dir = self.upload_dir(id);
        let target = self.blob_path(d);
        blocking(move || {
            let data = dir.join("data");
            let f = File::open(&data).map_err(read_err(&data))?;
            f.sync_all().map_err(write_err(&data))?;
            drop(f);
            let parent = target.parent().expect("blob path has a parent");
            fs::create_dir_all(parent).map_err(write_err(parent))?;
            if !target.exists() {
                fs::rename(&data, &target).map_err(write_err(&target))?;
                sync_dir(parent);
            }
            touch(&target);
            fs::remove_dir_all(&dir).map_err(|source| StorageError::Remove { path: dir, source })
        })
        .await?;
        self.link_blob(repo, d).await
    }

    pub async fn delete_upload(&self, id: &str) -> Result<()> {
        let dir = self.upload_dir(id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StorageError::Remove { path: dir, source }),
        }
    }

    // ---- manifests ----

    /// Stores a manifest (already validated) under its digest, links it into `repo`, points
    /// `tag` at it and records it as a referrer of its subject.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        media_type: &str,
        body: bytes::Bytes,
        tag: Option<&str>,
        referrer_of: Option<(Digest, Descriptor)>,
    ) -> Result<()> {
        let tmp = self.root.join("_tmp");
        let blob = self.blob_path(digest);
        let rev = self.revision_link(repo, digest);
        let tag_file = tag.map(|t| self.tag_path(repo, t));
        let referrer = referrer_of
            .map(|(subject, desc)| (self.referrers_dir(repo, &subject).join(format!("{}.json", digest.hex())), desc));
        let mt = media_type.to_owned();
        let digest_s = digest.to_string();
        let layers_dir = self.repo_dir(repo).join("_layers");
        blocking(move || {
            fs::create_dir_all(&layers_dir).map_err(write_err(&layers_dir))?;
            if !blob.exists() {
                write_atomic(&tmp, &blob, &body)?;
            }
            touch(&blob);
            write_atomic(&tmp, &rev, mt.as_bytes())?;
            if let Some((path, desc)) = referrer {
                let json = serde_json::to_vec(&desc).expect("descriptor serialises");
                write_atomic(&tmp, &path, &json)?;
            }
            if let Some(t) = tag_file {
                write_atomic(&tmp, &t, digest_s.as_bytes())?;
            }
            Ok(())
        })
        .await
    }

    /// The digest a tag points at.
    pub async fn resolve_tag(&self, repo: &RepoName, tag: &str) -> Result<Option<Digest>> {
        let p = self.tag_path(repo, tag);
        match tokio::fs::read_to_string(&p).await {
            Ok(s) => Ok(s.trim().parse().ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(read_err(&p)(e)),
        }
    }

    /// The media type of a manifest linked into `repo`.
    pub async fn manifest_media_type(&self, repo: &RepoName, d: &Digest) -> Result<Option<String>> {
        let p = self.revision_link(repo, d);
        match tokio::fs::read_to_string(&p).await {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(read_err(&p)(e)),
        }
    }

    /// A manifest's media type and bytes.
    pub async fn get_manifest(&self, repo: &RepoName, d: &Digest) -> Result<Option<(String, bytes::Bytes)>> {
        let Some(mt) = self.manifest_media_type(repo, d).await? else {
            return Ok(None);
        };
        let p = self.blob_path(d);
        match tokio::fs::read(&p).await {
            Ok(b) => Ok(Some((mt, b.into()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(read_err(&p)(e)),
        }
    }

    /// Removes a manifest revision from `repo`, with every tag pointing at it and its referrer
    /// entry. Returns false when it was not there.
    pub async fn delete_manifest(&self, repo: &RepoName, d: &Digest, subject: Option<&Digest>) -> Result<bool> {
        if !remove_if_exists(&self.revision_link(repo, d)).await? {
            return Ok(false);
        }
        for tag in self.tags(repo).await?.unwrap_or_default() {
            if self.resolve_tag(repo, &tag).await?.as_ref() == Some(d) {
                remove_if_exists(&self.tag_path(repo, &tag)).await?;
            }
        }
        if let Some(s) = subject {
            let p = self.referrers_dir(repo, s).join(format!("{}.json", d.hex()));
            remove_if_exists(&p).await?;
        }
        Ok(true)
    }

    pub async fn delete_tag(&self, repo: &RepoName, tag: &str) -> Result<bool> {
        remove_if_exists(&self.tag_path(repo, tag)).await
    }

    /// The repository's tags, sorted; `None` when the repository has no manifests at all.
    pub async fn tags(&self, repo: &RepoName) -> Result<Option<Vec<String>>> {
        let manifests = self.repo_dir(repo).join("_manifests");
        let dir = manifests.join("tags");
        blocking(move || {
            if !manifests.exists() {
                return Ok(None);
            }
            let mut tags = list_names(&dir)?;
            tags.sort();
            Ok(Some(tags))
        })
        .await
    }

    /// Every repository name, sorted.
    pub async fn repositories(&self) -> Result<Vec<String>> {
        let base = self.root.join("repositories");
        blocking(move || {
            let mut out = Vec::new();
            walk_repositories(&base, &base, &mut out)?;
            out.sort();
            Ok(out)
        })
        .await
    }

    /// The descriptors of the manifests in `repo` whose subject is `subject`.
    pub async fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Descriptor>> {
        let dir = self.referrers_dir(repo, subject);
        blocking(move || {
            let mut out = Vec::new();
            for name in list_names(&dir)? {
                let p = dir.join(&name);
                let bytes = fs::read(&p).map_err(read_err(&p))?;
                if let Ok(d) = serde_json::from_slice::<Descriptor>(&bytes) {
                    out.push(d);
                }
            }
            out.sort_by(|a, b| a.digest.cmp(&b.digest));
            Ok(out)
        })
        .await
    }
}

pub(crate) fn blob_path(root: &Path, d: &Digest) -> PathBuf {
    root.join("blobs").join(d.algorithm().as_str()).join(&d.hex()[..2]).join(d.hex())
}

pub(crate) fn gc_lock(root: &Path, exclusive: bool) -> Result<GcLock> {
    let path = root.join("_gc.lock");
    let lock_err = |source| StorageError::Lock { path: path.clone(), source };
    let f = File::options().create(true).truncate(false).write(true).open(&path).map_err(lock_err)?;
    if exclusive {
        f.lock().map_err(lock_err)?;
    } else {
        f.lock_shared().map_err(lock_err)?;
    }
    Ok(GcLock(f))
}

fn walk_repositories(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(read_err(dir)(e)),
    };
    let mut is_repo = false;
    for entry in entries {
        let entry = entry.map_err(read_err(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "_manifests" || name == "_layers" {
            is_repo = true;
        } else if !name.starts_with('_') && entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            walk_repositories(base, &entry.path(), out)?;
        }
    }
    if is_repo && let Ok(rel) = dir.strip_prefix(base) {
        out.push(rel.to_string_lossy().into_owned());
    }
    Ok(())
}

pub(crate) fn list_names(dir: &Path) -> Result<Vec<String>> {
    match fs::read_dir(dir) {
        Ok(entries) => {
            entries.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()).map_err(read_err(dir))).collect()
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(read_err(dir)(e)),
    }
}

async fn exists(p: &Path) -> Result<bool> {
    tokio::fs::try_exists(p).await.map_err(read_err(p))
}

async fn remove_if_exists(p: &Path) -> Result<bool> {
    match tokio::fs::remove_file(p).await {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StorageError::Remove { path: p.to_owned(), source }),
    }
}

/// Writes `contents` to `path` through a temp file in `tmp_dir`: write, fsync, rename, fsync the
/// directory.
pub(crate) fn write_atomic(tmp_dir: &Path, path: &Path, contents: &[u8]) -> Result<()> {
    let parent = path.parent().expect("storage paths have parents");
    fs::create_dir_all(parent).map_err(write_err(parent))?;
    let tmp = tmp_dir.join(new_upload_id());
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(write_err(path)(e));
    }
    sync_dir(parent);
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Marks a blob as just committed, for gc's grace period (a rename keeps the old mtime).
fn touch(p: &Path) {
    if let Ok(f) = File::options().write(true).open(p) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// A random id: 32 hex digits, shaped as a UUID.
pub(crate) fn new_upload_id() -> String {
    let h = wharf_types::random_hex_id();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
