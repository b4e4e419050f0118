//! Tar archives as the builder meets them: the build context body and `ADD` of a local archive.
//! Compression is found from magic bytes (gzip, bzip2, xz, zstd, or none), and a stream is a
//! tar when its first 512-byte block is a valid tar header. Extraction goes through
//! `wharf_image::layer::unpack`, which confines every entry to the destination (`..` that
//! climbs out is refused, symlinks are resolved inside it).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use wharf_image::layer::{UnpackError, UnpackOptions, unpack};
use wharf_snapshot::WhiteoutStyle;
use wharf_types::{Classify, ErrorKind};

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("read archive {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("decompress {path}: {message}")]
    Decompress { path: PathBuf, message: String },
    #[error("extract archive into {dest}")]
    Extract {
        dest: PathBuf,
        #[source]
        source: UnpackError,
    },
}

impl Classify for ArchiveError {
    fn kind(&self) -> ErrorKind {
        match self {
            ArchiveError::Decompress { .. } => ErrorKind::InvalidArgument,
            ArchiveError::Extract { source, .. } => source.kind(),
            ArchiveError::Read { .. } => ErrorKind::Internal,
        }
    }
}

/// Compression of a stream, by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// The compression the first bytes of a stream announce.
pub fn detect(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Compression::Gzip
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Whether `block` (the first 512 bytes of a stream) is a tar header: its checksum matches.
pub fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    let field = &block[148..156];
    let text: String = field.iter().take_while(|b| **b != 0 && **b != b' ').map(|b| *b as char).collect();
    let Ok(stored) = u32::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let sum: u32 =
        block[..512].iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { u32::from(*b) }).sum();
    sum == stored && block[..100].iter().any(|b| *b != 0)
}

/// Decompresses `file` at `path` (any of the supported compressions) into a plain reader.
/// xz is decompressed into an anonymous temp file in `tmp` first (its decoder only writes).
pub fn decompressed(mut file: File, path: &Path, tmp: &Path) -> Result<Box<dyn Read + Send>, ArchiveError> {
    let read_err = |source| ArchiveError::Read { path: path.to_path_buf(), source };
    let mut head = [0u8; 8];
    let n = read_up_to(&mut file, &mut head).map_err(read_err)?;
    file.seek(SeekFrom::Start(0)).map_err(read_err)?;
    Ok(match detect(&head[..n]) {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(BufReader::new(file))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(file).map_err(read_err)?),
        Compression::Xz => {
            let mut out = tempfile::tempfile_in(tmp).map_err(read_err)?;
            lzma_rs::xz_decompress(&mut BufReader::new(file), &mut out)
                .map_err(|e| ArchiveError::Decompress { path: path.to_path_buf(), message: e.to_string() })?;
            out.seek(SeekFrom::Start(0)).map_err(read_err)?;
            Box::new(out)
        }
    })
}

/// Reads until `buf` is full or the stream ends; returns the count.
pub(crate) fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A tar stream that may stop right after its last entry's data, without the padding to the
/// 512-byte block and the two zero blocks that end an archive: at such an EOF it supplies them.
///
/// The docker CLI sends such bodies: `docker build -f /outside/Dockerfile ctx` rewrites the
/// context through moby's `ReplaceFileTarWrapper`, which closes its pipe before the tar writer
/// and so never writes the end of the archive; moby's daemon accepts them. The reader follows
/// the entry headers, so a stream cut anywhere else (inside a header or an entry's data) still
/// ends early and is still an error.
pub struct LenientEnd<R> {
    inner: R,
    pos: u64,
    /// Where the next header starts, and where the current entry's data ends.
    next_header: u64,
    data_end: u64,
    header: Vec<u8>,
    /// False once the end blocks were seen or a header could not be read.
    tracking: bool,
    /// Zero bytes still to supply once `inner` ended.
    tail: Option<u64>,
}

impl<R: Read> LenientEnd<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, pos: 0, next_header: 0, data_end: 0, header: Vec::with_capacity(512), tracking: true, tail: None }
    }

    fn observe(&mut self, chunk: &[u8]) {
        let start = self.pos;
        let end = start + chunk.len() as u64;
        while self.tracking {
            let want_from = self.next_header + self.header.len() as u64;
            let want_to = self.next_header + 512;
            if want_from >= end {
                break;
            }
            let from = want_from.max(start);
            if from > want_from {
                // Bytes of the header were skipped: cannot happen while reading sequentially.
                self.tracking = false;
                break;
            }
            let to = want_to.min(end);
            self.header.extend_from_slice(&chunk[(from - start) as usize..(to - start) as usize]);
            if self.header.len() < 512 {
                break;
            }
            if self.header.iter().all(|b| *b == 0) {
                self.tracking = false;
                break;
            }
            match entry_size(&self.header) {
                Some(size) => {
                    self.data_end = self.next_header + 512 + size;
                    self.next_header = self.data_end.div_ceil(512) * 512;
                    self.header.clear();
                }
                None => self.tracking = false,
            }
        }
        self.pos = end;
    }

    /// The zeros to supply at EOF: the missing padding and end blocks when the stream stopped
    /// at an entry boundary, else none.
    fn missing_end(&self) -> u64 {
        if !self.tracking || !self.header.is_empty() {
            return 0;
        }
        if self.pos == self.next_header {
            return 1024;
        }
        if self.pos >= self.data_end && self.pos < self.next_header {
            return self.next_header - self.pos + 1024;
        }
        0
    }
}

/// The size field of a tar header (octal, or base-256 when its high bit is set).
fn entry_size(header: &[u8]) -> Option<u64> {
    let field = &header[124..136];
    if field[0] & 0x80 != 0 {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let text: String = field.iter().map(|b| *b as char).filter(|c| *c != '\0').collect();
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

impl<R: Read> Read for LenientEnd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tail.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.observe(&buf[..n]);
                return Ok(n);
            }
            self.tail = Some(self.missing_end());
        }
        let left = self.tail.as_mut().expect("set above");
        let n = (*left).min(buf.len() as u64) as usize;
        buf[..n].fill(0);
        *left -= n as u64;
        Ok(n)
    }
}

/// Whether the file at `path` is a (possibly compressed) tar archive, as Docker's
/// `IsArchivePath` decides for `ADD`.
pub fn is_archive(path: &Path, tmp: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    let Ok(mut r) = decompressed(f, path, tmp) else {
        return false;
    };
    let mut block = [0u8; 512];
    matches!(read_up_to(&mut r, &mut block), Ok(512)) && is_tar_header(&block)
}

/// Extracts a plain tar stream into `dest` (which exists), confined to it. Owners in the
/// archive are kept (as root); without privileges they are ignored.
pub fn extract(reader: impl Read, dest: &Path) -> Result<(), ArchiveError> {
    let opts = UnpackOptions {
        whiteouts: WhiteoutStyle::Delete,
        rootless: !rustix::process::geteuid().is_root(),
        ..UnpackOptions::default()
    };
    unpack(reader, dest, &opts).map(|_| ()).map_err(|source| ArchiveError::Extract { dest: dest.to_path_buf(), source })
}

/// Extracts the archive file at `path` (any compression) into `dest`.
pub fn extract_file(path: &Path, dest: &Path, tmp: &Path) -> Result<(), ArchiveError> {
    let f = File::open(path).map_err(|source| ArchiveError::Read { path: path.to_path_buf(), source })?;
    let r = decompressed(f, path, tmp)?;
    extract(r, dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_with(name: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn detects_tars_in_every_compression() {
        let d = tempfile::tempdir().unwrap();
        let t = tar_with("hello.txt", b"hi");
        assert!(is_tar_header(&t[..512]));
        assert!(!is_tar_header(b"FROM busybox\n"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&t).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&t).unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &t[..], &mut xz).unwrap();
        let zs = zstd::encode_all(&t[..], 1).unwrap();
        for (name, bytes, c) in [
            ("a.tar", t.clone(), Compression::None),
            ("a.tgz", gz.finish().unwrap(), Compression::Gzip),
            ("a.tbz", bz.finish().unwrap(), Compression::Bzip2),
            ("a.txz", xz, Compression::Xz),
            ("a.tzst", zs, Compression::Zstd),
        ] {
            assert_eq!(detect(&bytes), c, "{name}");
            let p = d.path().join(name);
            std::fs::write(&p, &bytes).unwrap();
            assert!(is_archive(&p, d.path()), "{name}");
            let out = d.path().join(format!("{name}.out"));
            std::fs::create_dir(&out).unwrap();
            extract_file(&p, &out, d.path()).unwrap();
            assert_eq!(std::fs::read(out.join("hello.txt")).unwrap(), b"hi");
        }
        let p = d.path().join("plain.txt");
        std::fs::write(&p, "not an archive").unwrap();
        assert!(!is_archive(&p, d.path()));
    }

    #[test]
    fn archives_without_their_end_blocks_are_read() {
        let d = tempfile::tempdir().unwrap();
        let mut t = tar_with("a.txt", b"first");
        t.truncate(1024);
        t.extend_from_slice(&tar_with("b.txt", b"last one")[..512 + 8]);
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        extract(LenientEnd::new(&t[..]), &out).unwrap();
        assert_eq!(std::fs::read(out.join("b.txt")).unwrap(), b"last one");
        // At a block boundary, without the end blocks.
        let out = d.path().join("boundary");
        std::fs::create_dir(&out).unwrap();
        extract(LenientEnd::new(&t[..1024]), &out).unwrap();
        assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"first");
        // Cut inside an entry's data or inside a header: still an error.
        let whole = tar_with("c.txt", &[7u8; 2000]);
        for cut in [512 + 600, 512 + 1990, 300] {
            let out = d.path().join(format!("cut{cut}"));
            std::fs::create_dir(&out).unwrap();
            assert!(extract(LenientEnd::new(&whole[..cut]), &out).is_err(), "cut at {cut}");
        }
        // A whole archive reads the same through it, one byte at a time too.
        let out = d.path().join("whole");
        std::fs::create_dir(&out).unwrap();
        let mut r = LenientEnd::new(&whole[..]);
        let mut all = Vec::new();
        let mut byte = [0u8; 1];
        while r.read(&mut byte).unwrap() == 1 {
            all.push(byte[0]);
        }
        assert_eq!(all, whole);
    }
}
