//! Layer unpack: one streaming pass from a (compressed) layer blob to files in a directory.
//!
//! ```text
//! reader ─ sha256 (compressed digest) ─ gzip|zstd|plain (by magic) ─ sha256 (diff_id) ─ tar ─ files
//! ```
//!
//! Formats: ustar, GNU (long names and links, old-style sparse files), PAX (long names, xattrs as
//! `SCHILY.xattr.*`, sub-second times, large uid/gid, sparse files in GNU's 0.0, 0.1 and 1.0
//! forms); gzip (multi-member), zstd (multi-frame) or uncompressed, found by magic bytes.
//!
//! Security model: every path is resolved inside the destination ([`super::root::Root`]), as
//! if the destination were `/`:
//! - entry names are cleaned lexically; a leading `/` is stripped (neutralised); a `..` that
//!   would climb above the root rejects the layer ([`UnpackError::PathEscapes`]);
//! - symlinks in the layer are created as they are, but lookups through them stay inside the
//!   destination: `a -> /etc` then `a/passwd` writes `<dest>/etc/passwd`;
//! - the final component is never followed: an entry replaces a symlink, it does not write
//!   through it;
//! - hard link targets are cleaned and resolved the same way (escaping ones reject the layer);
//!   a hard link to a symlink links the symlink itself (`linkat` without `AT_SYMLINK_FOLLOW`);
//! - in rootless mode device nodes are skipped and reported in [`UnpackResult::skipped`];
//! - `trusted.overlay.*` / `user.overlay.*` xattrs in a layer are dropped: only whiteouts may
//!   create overlay metadata.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Chain, Cursor, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;
use wharf_snapshot::WhiteoutStyle;
use wharf_types::{Classify, Digest, ErrorKind};

use super::Compression;
use super::root::{Root, list_dir, os, remove_all_at, split_parent};
use crate::hash::{HashReader, Hasher};

/// Errors of [`unpack`].
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("open unpack destination {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("read layer")]
    Read {
        #[source]
        source: io::Error,
    },
    #[error("unsupported layer compression: {0}")]
    UnsupportedCompression(&'static str),
    #[error("layer {what} mismatch: expected {expected}, got {actual}")]
    DigestMismatch { what: &'static str, expected: Digest, actual: Digest },
    #[error("layer entry {path:?} points outside the root")]
    PathEscapes { path: String },
    #[error("invalid layer entry {path:?}: {reason}")]
    InvalidEntry { path: String, reason: &'static str },
    #[error("unpack {path:?}: {op}")]
    Extract {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl Classify for UnpackError {
    fn kind(&self) -> ErrorKind {
        match self {
            UnpackError::Read { .. }
            | UnpackError::UnsupportedCompression(_)
            | UnpackError::DigestMismatch { .. }
            | UnpackError::PathEscapes { .. }
            | UnpackError::InvalidEntry { .. } => ErrorKind::InvalidArgument,
            UnpackError::Open { .. } | UnpackError::Extract { .. } => ErrorKind::Internal,
        }
    }
}

/// How to unpack.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// How whiteouts are written: [`WhiteoutStyle::Overlay`] into an empty overlay upper dir,
    /// [`WhiteoutStyle::Delete`] into a full copy of the parent (native snapshotter). Take it
    /// from `Snapshotter::whiteouts()`.
    pub whiteouts: WhiteoutStyle,
    /// Running without privileges: device nodes are skipped (reported), and failures to chown
    /// or to set `trusted.*`/`security.*` xattrs are ignored.
    pub rootless: bool,
    /// `syncfs` the destination's filesystem at the end.
    pub sync: bool,
    /// The digest the blob must have (the layer descriptor's digest): checked after the pass,
    /// over the bytes as read (compressed or not). On mismatch the destination holds an
    /// unverified layer: the caller removes the snapshot.
    pub expected_digest: Option<Digest>,
    /// The diff_id the layer must have (from the image config's `rootfs.diff_ids`).
    pub expected_diff_id: Option<Digest>,
    /// Resolve paths in userspace even when `openat2` is there (for tests of that path).
    #[doc(hidden)]
    pub force_userspace_resolve: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        Self {
            whiteouts: WhiteoutStyle::Overlay,
            rootless: false,
            sync: false,
            expected_digest: None,
            expected_diff_id: None,
            force_userspace_resolve: false,
        }
    }
}

/// What [`unpack`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackResult {
    /// sha256 of the uncompressed tar stream (the OCI `diff_id`).
    pub diff_id: Digest,
    /// The compression found from the magic bytes.
    pub compression: Compression,
    /// Digest and size of the stream as read, when it was compressed (for a plain tar it is the
    /// diff_id and the uncompressed size).
    pub compressed: Option<(Digest, u64)>,
    /// Size of the uncompressed tar stream.
    pub tar_size: u64,
    /// Bytes of regular-file content written.
    pub unpacked_size: u64,
    /// Entries processed (including whiteouts).
    pub entries: u64,
    /// Entries that were neutralised instead of extracted, with the reason.
    pub skipped: Vec<Skipped>,
}

/// An entry that was not extracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: String,
    pub reason: &'static str,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const BUF_SIZE: usize = 256 * 1024;

fn detect(head: &[u8]) -> Result<Compression, UnpackError> {
    Ok(if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else if head.starts_with(b"BZh") {
        return Err(UnpackError::UnsupportedCompression("bzip2"));
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(UnpackError::UnsupportedCompression("xz"));
    } else {
        Compression::None
    })
}

type Raw<R> = BufReader<Chain<Cursor<Vec<u8>>, HashReader<R>>>;

/// The decompressor, kept as an enum so the raw reader can be taken back to drain it.
enum Decoder<R: Read> {
    Plain(Raw<R>),
    Gzip(flate2::bufread::MultiGzDecoder<Raw<R>>),
    Zstd(zstd::stream::read::Decoder<'static, Raw<R>>),
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

impl<R: Read> Decoder<R> {
    fn into_raw(self) -> Raw<R> {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(r) => r.into_inner(),
            Decoder::Zstd(r) => r.finish(),
        }
    }
}

/// Unpacks the layer read from `reader` into `dest` in one streaming pass, and returns its
/// digests. Safe to call from several threads at once on different destinations. On error
/// `dest` holds a partial layer: the caller removes the snapshot.
pub fn unpack<R: Read>(reader: R, dest: &Path, opts: &UnpackOptions) -> Result<UnpackResult, UnpackError> {
    let read_err = |source| UnpackError::Read { source };
    let mut raw = HashReader::new(reader, Hasher::sha256());
    let mut head = Vec::with_capacity(8);
    (&mut raw).take(6).read_to_end(&mut head).map_err(read_err)?;
    let compression = detect(&head)?;
    let buffered = BufReader::with_capacity(BUF_SIZE, Cursor::new(head).chain(raw));
    let decoder = match compression {
        Compression::None => Decoder::Plain(buffered),
        Compression::Gzip => Decoder::Gzip(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(buffered).map_err(read_err)?),
    };
    let mut archive = tar::Archive::new(HashReader::new(decoder, Hasher::sha256()));
    let mut ex = Extractor::new(dest, opts)?;
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        ex.entry(&mut entry)?;
    }
    ex.finish()?;
    // The diff_id covers the whole stream: the end-of-archive blocks and any padding after.
    let mut tar_stream = archive.into_inner();
    io::copy(&mut tar_stream, &mut io::sink()).map_err(read_err)?;
    let diff_id = tar_stream.hasher.finish();
    let tar_size = tar_stream.count;
    let mut rest = tar_stream.inner.into_raw();
    io::copy(&mut rest, &mut io::sink()).map_err(read_err)?;
    let (_, raw) = rest.into_inner().into_inner();
    let blob_digest = raw.hasher.finish();
    if let Some(expected) = &opts.expected_digest {
        // Only sha256 is computed while streaming; other algorithms are the caller's to check.
        let comparable = expected.algorithm() == blob_digest.algorithm();
        if comparable && *expected != blob_digest {
            return Err(UnpackError::DigestMismatch {
                what: "digest",
                expected: expected.clone(),
                actual: blob_digest,
            });
        }
    }
    if let Some(expected) = &opts.expected_diff_id
        && *expected != diff_id
    {
        return Err(UnpackError::DigestMismatch { what: "diff_id", expected: expected.clone(), actual: diff_id });
    }
    let compressed = (compression != Compression::None).then_some((blob_digest, raw.count));
    if opts.sync {
        let fd = ex.root.fd();
        rustix::fs::syncfs(fd).map_err(|e| err(b"", "syncfs")(e.into()))?;
    }
    Ok(UnpackResult {
        diff_id,
        compression,
        compressed,
        tar_size,
        unpacked_size: ex.unpacked,
        entries: ex.entries,
        skipped: ex.skipped,
    })
}

/// Cleans an entry name: drops empty and `.` components and a leading `/`, applies `..`
/// lexically. `None` when `..` climbs above the root.
pub(crate) fn normalize(raw: &[u8]) -> Option<Vec<u8>> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join(&b'/'))
}

fn show(rel: &[u8]) -> String {
    String::from_utf8_lossy(rel).into_owned()
}

/// Metadata of one entry, with PAX overrides applied.
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    atime: Timespec,
    mtime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// PAX sparse records (`GNU.sparse.*`), when the entry is a sparse file in PAX form.
    sparse: Option<PaxSparse>,
}

/// A sparse file in one of GNU tar's PAX forms: 0.0 (`GNU.sparse.offset`/`numbytes` pairs),
/// 0.1 (`GNU.sparse.map`) or 1.0 (the map at the start of the data; `tar --format=posix
/// --sparse`). The entry's data holds only the data segments.
#[derive(Default)]
struct PaxSparse {
    major: Option<u64>,
    minor: Option<u64>,
    name: Option<Vec<u8>>,
    realsize: Option<u64>,
    /// offset, length, offset, length, … (0.0 and 0.1)
    map: Vec<u64>,
}

/// More map entries than this is not a file, it is an attack on memory.
const MAX_SPARSE_SEGMENTS: u64 = 1 << 20;

fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nsec: i64 = if digits.is_empty() { 0 } else { format!("{digits:0<9}").parse().ok()? };
    let nsec = if sec < 0 && nsec > 0 { -nsec } else { nsec };
    Some(Timespec { tv_sec: sec, tv_nsec: nsec as _ })
}

const PAX_XATTR: &str = "SCHILY.xattr.";

fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let h = entry.header();
    let mtime = Timespec { tv_sec: h.mtime().unwrap_or(0) as i64, tv_nsec: 0 };
    let mut meta = Meta {
        mode: h.mode().unwrap_or(0o644) & 0o7777,
        uid: h.uid().unwrap_or(0),
        gid: h.gid().unwrap_or(0),
        atime: mtime,
        mtime,
        xattrs: Vec::new(),
        sparse: None,
    };
    let mut atime = None;
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let (key, value) = (ext.key_bytes(), ext.value_bytes());
            let num = || std::str::from_utf8(value).ok().and_then(|v| v.parse::<u64>().ok());
            match key {
                b"mtime" => meta.mtime = parse_pax_time(value).unwrap_or(meta.mtime),
                b"atime" => atime = parse_pax_time(value),
                b"uid" => meta.uid = num().unwrap_or(meta.uid),
                b"gid" => meta.gid = num().unwrap_or(meta.gid),
                k if k.starts_with(b"GNU.sparse.") => {
                    let sp = meta.sparse.get_or_insert_with(PaxSparse::default);
                    match &k[b"GNU.sparse.".len()..] {
                        b"major" => sp.major = num(),
                        b"minor" => sp.minor = num(),
                        b"name" => sp.name = Some(value.to_vec()),
                        b"realsize" | b"size" => sp.realsize = num(),
                        b"offset" | b"numbytes" => sp.map.extend(num()),
                        b"map" => sp.map.extend(
                            std::str::from_utf8(value).unwrap_or("").split(',').filter_map(|n| n.parse::<u64>().ok()),
                        ),
                        _ => {}
                    }
                }
                k if k.starts_with(PAX_XATTR.as_bytes()) => {
                    let name = &k[PAX_XATTR.len()..];
                    if !name.is_empty() && !is_overlay_xattr(name) {
                        meta.xattrs.push((name.to_vec(), value.to_vec()));
                    }
                }
                _ => {}
            }
        }
    }
    meta.atime = atime.unwrap_or(meta.mtime);
    Ok(meta)
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads one newline-terminated decimal number of a PAX 1.0 sparse map.
fn read_map_number(data: &mut impl Read, consumed: &mut u64) -> io::Result<u64> {
    let mut n: u64 = 0;
    let mut digits = 0;
    loop {
        let mut b = [0u8; 1];
        data.read_exact(&mut b)?;
        *consumed += 1;
        match b[0] {
            b'\n' if digits > 0 => return Ok(n),
            d @ b'0'..=b'9' if digits < 20 => {
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(d - b'0')))
                    .ok_or_else(|| invalid("sparse map number overflows"))?;
                digits += 1;
            }
            _ => return Err(invalid("malformed sparse map")),
        }
    }
}

/// Writes the data segments of a PAX sparse entry at their offsets; the rest stays holes.
fn copy_pax_sparse(data: &mut impl Read, file: &mut File, sp: &PaxSparse, buf: &mut [u8]) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut map = sp.map.clone();
    match (sp.major, sp.minor) {
        (Some(1), Some(0)) => {
            let mut consumed = 0u64;
            let count = read_map_number(data, &mut consumed)?;
            if count > MAX_SPARSE_SEGMENTS {
                return Err(invalid("too many sparse segments"));
            }
            for _ in 0..count * 2 {
                map.push(read_map_number(data, &mut consumed)?);
            }
            let pad = (512 - consumed % 512) % 512;
            io::copy(&mut data.take(pad), &mut io::sink())?;
        }
        (None | Some(0), _) => {}
        _ => return Err(invalid("unknown PAX sparse format version")),
    }
    if !map.len().is_multiple_of(2) || map.len() as u64 > 2 * MAX_SPARSE_SEGMENTS {
        return Err(invalid("malformed sparse map"));
    }
    let mut written = 0u64;
    for seg in map.chunks(2) {
        let (mut off, mut left) = (seg[0], seg[1]);
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            data.read_exact(&mut buf[..want])?;
            file.write_all_at(&buf[..want], off)?;
            off += want as u64;
            left -= want as u64;
            written += want as u64;
        }
    }
    let size = sp.realsize.unwrap_or(0).max(map.chunks(2).map(|s| s[0].saturating_add(s[1])).max().unwrap_or(0));
    file.set_len(size)?;
    Ok(written)
}

struct Extractor<'o> {
    root: Root,
    opts: &'o UnpackOptions,
    /// Directories whose mode and times are set after their contents.
    dirs: Vec<(Vec<u8>, u32, Timestamps)>,
    dir_index: HashMap<Vec<u8>, usize>,
    /// Paths this layer created (for opaque directories of the delete style).
    created: HashSet<Vec<u8>>,
    buf: Vec<u8>,
    unpacked: u64,
    entries: u64,
    skipped: Vec<Skipped>,
}

fn err<'a>(rel: &'a [u8], op: &'static str) -> impl FnOnce(io::Error) -> UnpackError + use<'a> {
    move |source| UnpackError::Extract { path: show(rel), op, source }
}

fn errno(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw_os_error)
}

impl<'o> Extractor<'o> {
    fn new(dest: &Path, opts: &'o UnpackOptions) -> Result<Self, UnpackError> {
        let root = Root::open(dest, opts.force_userspace_resolve)
            .map_err(|source| UnpackError::Open { path: dest.to_path_buf(), source })?;
        Ok(Self {
            root,
            opts,
            dirs: Vec::new(),
            dir_index: HashMap::new(),
            created: HashSet::new(),
            buf: vec![0u8; BUF_SIZE],
            unpacked: 0,
            entries: 0,
            skipped: Vec::new(),
        })
    }

    fn skip(&mut self, rel: &[u8], reason: &'static str) {
        self.skipped.push(Skipped { path: show(rel), reason });
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        self.entries += 1;
        let etype = entry.header().entry_type();
        if matches!(
            etype,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let meta = read_meta(entry).map_err(|source| UnpackError::Read { source })?;
        // A PAX sparse file's real name is in its records; the header has a placeholder.
        let raw_path = match meta.sparse.as_ref().and_then(|s| s.name.clone()) {
            Some(name) => name,
            None => entry.path_bytes().into_owned(),
        };
        let rel = normalize(&raw_path).ok_or_else(|| UnpackError::PathEscapes { path: show(&raw_path) })?;
        let (parent, name) = split_parent(&rel);
        if let Some(target) = name.strip_prefix(b".wh.") {
            return self.whiteout(&rel, parent, target);
        }
        if self.opts.whiteouts == WhiteoutStyle::Delete {
            self.created.insert(rel.clone());
        }
        if rel.is_empty() {
            return match etype {
                EntryType::Directory => self.root_dir(meta),
                _ => Err(UnpackError::InvalidEntry {
                    path: show(&raw_path),
                    reason: "a non-directory entry names the root",
                }),
            };
        }
        match etype {
            EntryType::Directory => self.dir(&rel, parent, name, meta),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let sparse = etype == EntryType::GNUSparse;
                self.file(&rel, parent, name, meta, entry, sparse)
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                if target.is_empty() {
                    return Err(UnpackError::InvalidEntry { path: show(&rel), reason: "symlink without a target" });
                }
                self.symlink(&rel, parent, name, &target, meta)
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                self.hardlink(&rel, parent, name, &target)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let h = entry.header();
                let dev = rustix::fs::makedev(
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                );
                let kind = match etype {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if self.opts.rootless && kind != FileType::Fifo {
                    self.skip(&rel, "device node in rootless mode");
                    return Ok(());
                }
                self.node(&rel, parent, name, kind, dev, meta)
            }
            _ => {
                self.skip(&rel, "unsupported entry type");
                Ok(())
            }
        }
    }

    /// Removes whatever is at `parent/name` unless it is a directory and `keep_dir`. Returns
    /// true when a directory was kept.
    fn clear(&mut self, rel: &[u8], parent: &[u8], name: &[u8], keep_dir: bool) -> Result<bool, UnpackError> {
        let p = self.root.dir(parent, true).map_err(err(rel, "open parent directory"))?;
        let st = match rustix::fs::statat(p, os(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(err(rel, "stat existing")(e.into())),
        };
        if keep_dir && FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            return Ok(true);
        }
        remove_all_at(p, name).map_err(err(rel, "remove existing"))?;
        self.root.invalidate();
        Ok(false)
    }

    /// Runs `create` in the parent directory; when the name exists, clears it and retries once.
    fn create_at(
        &mut self,
        rel: &[u8],
        parent: &[u8],
        name: &[u8],
        op: &'static str,
        create: impl Fn(BorrowedFd<'_>) -> Result<(), Errno>,
    ) -> Result<(), UnpackError> {
        let p = self.root.dir(parent, true).map_err(err(rel, "open parent directory"))?;
        match create(p) {
            Ok(()) => return Ok(()),
            Err(Errno::EXIST) => {}
            Err(e) => return Err(err(rel, op)(e.into())),
        }
        self.clear(rel, parent, name, false)?;
        let p = self.root.dir(parent, true).map_err(err(rel, "open parent directory"))?;
        create(p).map_err(|e| err(rel, op)(e.into()))
    }

    fn chown_ok(&self, r: Result<(), Errno>, rel: &[u8]) -> Result<(), UnpackError> {
        match r {
            Err(Errno::PERM | Errno::INVAL) if self.opts.rootless => Ok(()),
            other => other.map_err(|e| err(rel, "chown")(e.into())),
        }
    }

    fn xattr_ok(&mut self, r: Result<(), Errno>, rel: &[u8], name: &[u8]) -> Result<(), UnpackError> {
        match r {
            Ok(()) => Ok(()),
            Err(Errno::NOTSUP) => {
                self.skip(rel, "xattr not supported by the destination filesystem");
                Ok(())
            }
            Err(Errno::PERM | Errno::ACCESS) if self.opts.rootless && !name.starts_with(b"user.") => Ok(()),
            Err(e) => Err(err(rel, "set xattr")(e.into())),
        }
    }

    fn ids(meta: &Meta) -> (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>) {
        (Some(rustix::fs::Uid::from_raw(meta.uid as u32)), Some(rustix::fs::Gid::from_raw(meta.gid as u32)))
    }

    /// Owner, mode, xattrs and times through an open fd (regular files).
    fn apply_fd(
        &mut self,
        rel: &[u8],
        fd: BorrowedFd<'_>,
        meta: &Meta,
        mode_and_times: bool,
    ) -> Result<(), UnpackError> {
        let (uid, gid) = Self::ids(meta);
        self.chown_ok(rustix::fs::fchown(fd, uid, gid), rel)?;
        if mode_and_times {
            rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(|e| err(rel, "chmod")(e.into()))?;
        }
        for (name, value) in &meta.xattrs {
            let r = rustix::fs::fsetxattr(fd, os(name), value, XattrFlags::empty());
            self.xattr_ok(r, rel, name)?;
        }
        if mode_and_times {
            let times = Timestamps { last_access: meta.atime, last_modification: meta.mtime };
            rustix::fs::futimens(fd, &times).map_err(|e| err(rel, "set times")(e.into()))?;
        }
        Ok(())
    }

    /// Owner, mode (unless a symlink), xattrs and times by name in the parent (symlinks and
    /// device nodes, which cannot be opened for this).
    fn apply_at(
        &mut self,
        rel: &[u8],
        parent: &[u8],
        name: &[u8],
        meta: &Meta,
        symlink: bool,
    ) -> Result<(), UnpackError> {
        let p = self.root.dir(parent, true).map_err(err(rel, "open parent directory"))?;
        let (uid, gid) = Self::ids(meta);
        let chown = rustix::fs::chownat(p, os(name), uid, gid, AtFlags::SYMLINK_NOFOLLOW);
        let chmod = if symlink {
            Ok(())
        } else {
            rustix::fs::chmodat(p, os(name), Mode::from_raw_mode(meta.mode), AtFlags::empty())
        };
        let times = Timestamps { last_access: meta.atime, last_modification: meta.mtime };
        let utimes = rustix::fs::utimensat(p, os(name), &times, AtFlags::SYMLINK_NOFOLLOW);
        // xattrs by path through the parent's fd (lsetxattr does not follow the final link).
        let proc_path = {
            let mut v = format!("/proc/self/fd/{}/", std::os::fd::AsRawFd::as_raw_fd(&p)).into_bytes();
            v.extend_from_slice(name);
            v
        };
        let xattr_results: Vec<_> = meta
            .xattrs
            .iter()
            .map(|(n, v)| (n.clone(), rustix::fs::lsetxattr(os(&proc_path), os(n), v, XattrFlags::empty())))
            .collect();
        self.chown_ok(chown, rel)?;
        chmod.map_err(|e| err(rel, "chmod")(e.into()))?;
        for (n, r) in xattr_results {
            self.xattr_ok(r, rel, &n)?;
        }
        utimes.map_err(|e| err(rel, "set times")(e.into()))
    }

    fn root_dir(&mut self, meta: Meta) -> Result<(), UnpackError> {
        let fd = self.root.resolve(b"", OFlags::RDONLY | OFlags::DIRECTORY).map_err(err(b"", "open root"))?;
        self.apply_fd(b"", fd.as_fd(), &meta, false)?;
        self.defer_dir(b"", &meta);
        Ok(())
    }

    /// Records a directory's mode and times for [`Extractor::finish`]; a repeated entry for the
    /// same directory replaces the earlier values.
    fn defer_dir(&mut self, rel: &[u8], meta: &Meta) {
        let value = (meta.mode, Timestamps { last_access: meta.atime, last_modification: meta.mtime });
        match self.dir_index.get(rel) {
            Some(&i) => (self.dirs[i].1, self.dirs[i].2) = value,
            None => {
                self.dir_index.insert(rel.to_vec(), self.dirs.len());
                self.dirs.push((rel.to_vec(), value.0, value.1));
            }
        }
    }

    fn dir(&mut self, rel: &[u8], parent: &[u8], name: &[u8], meta: Meta) -> Result<(), UnpackError> {
        let p = self.root.dir(parent, true).map_err(err(rel, "open parent directory"))?;
        match rustix::fs::mkdirat(p, os(name), Mode::from_raw_mode(0o755)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                if !self.clear(rel, parent, name, true)? {
                    let p = self.root.dir(parent, true).map_err(err(rel, "open parent directory"))?;
                    rustix::fs::mkdirat(p, os(name), Mode::from_raw_mode(0o755))
                        .map_err(|e| err(rel, "mkdir")(e.into()))?;
                }
            }
            Err(e) => return Err(err(rel, "mkdir")(e.into())),
        }
        let p = self.root.dir(parent, true).map_err(err(rel, "open parent directory"))?;
        let fd = rustix::fs::openat(
            p,
            os(name),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(rel, "open directory")(e.into()))?;
        self.apply_fd(rel, fd.as_fd(), &meta, false)?;
        self.defer_dir(rel, &meta);
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        rel: &[u8],
        parent: &[u8],
        name: &[u8],
        meta: Meta,
        data: &mut tar::Entry<'_, R>,
        sparse: bool,
    ) -> Result<(), UnpackError> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let open = |p: BorrowedFd<'_>| rustix::fs::openat(p, os(name), flags, Mode::from_raw_mode(0o600));
        let p = self.root.dir(parent, true).map_err(err(rel, "open parent directory"))?;
        let fd: OwnedFd = match open(p) {
            Ok(fd) => fd,
            Err(Errno::EXIST) => {
                self.clear(rel, parent, name, false)?;
                let p = self.root.dir(parent, true).map_err(err(rel, "open parent directory"))?;
                open(p).map_err(|e| err(rel, "create file")(e.into()))?
            }
            Err(e) => return Err(err(rel, "create file")(e.into())),
        };
        let mut file = File::from(fd);
        let copied = match &meta.sparse {
            Some(sp) => copy_pax_sparse(data, &mut file, sp, &mut self.buf),
            None => self.copy_data(data, &mut file, sparse),
        };
        let written = copied.map_err(|source| {
            // A short or corrupt stream is a read error; anything else a write error.
            if source.kind() == io::ErrorKind::UnexpectedEof || source.kind() == io::ErrorKind::InvalidData {
                UnpackError::Read { source }
            } else {
                err(rel, "write file")(source)
            }
        })?;
        self.unpacked += written;
        self.apply_fd(rel, file.as_fd(), &meta, true)
    }

    /// Copies entry data into `file`. For sparse entries, all-zero blocks become holes.
    fn copy_data(&mut self, data: &mut impl Read, file: &mut File, sparse: bool) -> io::Result<u64> {
        let mut total = 0u64;
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let chunk = &self.buf[..n];
            if sparse {
                use std::os::unix::fs::FileExt;
                for (i, block) in chunk.chunks(4096).enumerate() {
                    if block.iter().any(|b| *b != 0) {
                        file.write_all_at(block, total + (i * 4096) as u64)?;
                    }
                }
            } else {
                file.write_all(chunk)?;
            }
            total += n as u64;
        }
        if sparse {
            file.set_len(total)?;
        }
        Ok(total)
    }

    fn symlink(
        &mut self,
        rel: &[u8],
        parent: &[u8],
        name: &[u8],
        target: &[u8],
        meta: Meta,
    ) -> Result<(), UnpackError> {
        self.create_at(rel, parent, name, "symlink", |p| rustix::fs::symlinkat(os(target), p, os(name)))?;
        self.apply_at(rel, parent, name, &meta, true)
    }

    fn hardlink(&mut self, rel: &[u8], parent: &[u8], name: &[u8], target: &[u8]) -> Result<(), UnpackError> {
        let target_rel = normalize(target).ok_or_else(|| UnpackError::PathEscapes { path: show(target) })?;
        if target_rel.is_empty() {
            return Err(UnpackError::InvalidEntry { path: show(rel), reason: "hard link to the root" });
        }
        if target_rel == rel {
            return Ok(());
        }
        let (tparent, tname) = split_parent(&target_rel);
        let tp = self
            .root
            .resolve(tparent, OFlags::PATH | OFlags::DIRECTORY)
            .map_err(|e| err(rel, "resolve hard link target")(e))?;
        let tname = tname.to_vec();
        let link = |p: BorrowedFd<'_>| rustix::fs::linkat(&tp, os(&tname), p, os(name), AtFlags::empty());
        match self.create_at(rel, parent, name, "hard link", link) {
            Err(UnpackError::Extract { source, .. }) if source.raw_os_error() == Some(Errno::PERM.raw_os_error()) => {
                Err(UnpackError::InvalidEntry { path: show(rel), reason: "hard link to a directory" })
            }
            other => other,
        }
    }

    fn node(
        &mut self,
        rel: &[u8],
        parent: &[u8],
        name: &[u8],
        kind: FileType,
        dev: u64,
        meta: Meta,
    ) -> Result<(), UnpackError> {
        let mode = Mode::from_raw_mode(meta.mode);
        self.create_at(rel, parent, name, "mknod", |p| rustix::fs::mknodat(p, os(name), kind, mode, dev))?;
        self.apply_at(rel, parent, name, &meta, false)
    }

    fn whiteout(&mut self, rel: &[u8], parent: &[u8], target: &[u8]) -> Result<(), UnpackError> {
        if target == b".wh..opq" {
            return self.opaque(parent);
        }
        if target.starts_with(b".wh.") {
            // Other `.wh..wh.` names are aufs bookkeeping (hard-link dirs); never content.
            self.skip(rel, "aufs metadata");
            return Ok(());
        }
        if target.is_empty() || target == b"." || target == b".." {
            return Err(UnpackError::InvalidEntry { path: show(rel), reason: "whiteout of no name" });
        }
        let mut target_rel = parent.to_vec();
        if !target_rel.is_empty() {
            target_rel.push(b'/');
        }
        target_rel.extend_from_slice(target);
        match self.opts.whiteouts {
            WhiteoutStyle::Overlay => {
                self.clear(rel, parent, target, false)?;
                let p = self.root.dir(parent, true).map_err(err(rel, "open parent directory"))?;
                rustix::fs::mknodat(p, os(target), FileType::CharacterDevice, Mode::empty(), 0)
                    .map_err(|e| err(rel, "create whiteout device")(e.into()))
            }
            WhiteoutStyle::Delete => {
                // Whiteouts hide lower layers only: what this layer made stays.
                if self.created.contains(&target_rel) {
                    return Ok(());
                }
                let p = match self.root.dir(parent, false) {
                    Ok(p) => p,
                    Err(e) if matches!(errno(&e), Some(Errno::NOENT | Errno::NOTDIR)) => {
                        return Ok(());
                    }
                    Err(e) => return Err(err(rel, "open parent directory")(e)),
                };
                remove_all_at(p, target).map_err(err(rel, "apply whiteout"))?;
                self.root.invalidate();
                Ok(())
            }
        }
    }

    fn opaque(&mut self, dir: &[u8]) -> Result<(), UnpackError> {
        self.root.dir(dir, true).map_err(err(dir, "create opaque directory"))?;
        let fd =
            self.root.resolve(dir, OFlags::RDONLY | OFlags::DIRECTORY).map_err(err(dir, "open opaque directory"))?;
        match self.opts.whiteouts {
            WhiteoutStyle::Overlay => rustix::fs::fsetxattr(&fd, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                .map_err(|e| err(dir, "mark directory opaque")(e.into())),
            WhiteoutStyle::Delete => {
                for child in list_dir(fd.as_fd()).map_err(err(dir, "list opaque directory"))? {
                    let mut child_rel = dir.to_vec();
                    if !child_rel.is_empty() {
                        child_rel.push(b'/');
                    }
                    child_rel.extend_from_slice(&child);
                    if !self.created.contains(&child_rel) {
                        remove_all_at(fd.as_fd(), &child).map_err(err(&child_rel, "apply opaque whiteout"))?;
                    }
                }
                self.root.invalidate();
                Ok(())
            }
        }
    }

    /// Directory modes and times, deepest last-listed first, after all contents are written.
    fn finish(&mut self) -> Result<(), UnpackError> {
        let dirs = std::mem::take(&mut self.dirs);
        for (rel, mode, times) in dirs.iter().rev() {
            let fd = match self.root.resolve(rel, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW) {
                Ok(fd) => fd,
                // Replaced by a later entry (or whited out): nothing to fix up.
                Err(e) if matches!(errno(&e), Some(Errno::NOENT | Errno::NOTDIR | Errno::LOOP)) => {
                    continue;
                }
                Err(e) => return Err(err(rel, "open directory")(e)),
            };
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(*mode)).map_err(|e| err(rel, "chmod")(e.into()))?;
            rustix::fs::futimens(&fd, times).map_err(|e| err(rel, "set times")(e.into()))?;
        }
        Ok(())
    }
}
