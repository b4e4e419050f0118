//! Compressing a layer while computing both of its digests: the `diff_id` (sha256 of the
//! uncompressed tar) and the blob digest (sha256 of the compressed bytes).

use std::io::{self, Write};

use wharf_types::Digest;

use super::Compression;
use crate::hash::{HashWriter, Hasher};

enum Encoder<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
            Encoder::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}

/// A `Write` that takes an uncompressed layer tar (e.g. from [`super::diff()`]) and writes it
/// compressed into `inner` (e.g. a [`crate::ContentWriter`]), hashing both sides.
///
/// ```no_run
/// # use wharf_image::layer::{Compression, LayerWriter, diff};
/// # fn f(store: &wharf_image::ContentStore, source: &wharf_snapshot::DiffSource) -> Result<(), Box<dyn std::error::Error>> {
/// let mut w = LayerWriter::new(store.writer(None, None)?, Compression::Gzip, None)?;
/// diff(source, &mut w)?;
/// let done = w.finish()?;
/// let blob = done.inner.commit()?; // blob.digest == done.digest
/// # Ok(()) }
/// ```
pub struct LayerWriter<W: Write> {
    out: HashWriter<Encoder<HashWriter<W>>>,
    compression: Compression,
}

/// What a [`LayerWriter`] produced.
#[derive(Debug)]
pub struct LayerDigests<W> {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    pub tar_size: u64,
    /// sha256 of the bytes written to `inner` (equal to `diff_id` without compression).
    pub digest: Digest,
    pub size: u64,
    pub compression: Compression,
    pub inner: W,
}

impl<W: Write> LayerWriter<W> {
    /// `level`: gzip 0–9 (default 6), zstd 1–22 (default 3).
    pub fn new(inner: W, compression: Compression, level: Option<u32>) -> io::Result<Self> {
        let sink = HashWriter::new(inner, Hasher::sha256());
        let encoder = match compression {
            Compression::None => Encoder::Plain(sink),
            Compression::Gzip => {
                Encoder::Gzip(flate2::write::GzEncoder::new(sink, flate2::Compression::new(level.unwrap_or(6).min(9))))
            }
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(sink, level.unwrap_or(3) as i32)?),
        };
        Ok(Self { out: HashWriter::new(encoder, Hasher::sha256()), compression })
    }

    /// Flushes the compressor and returns the digests and the inner writer.
    pub fn finish(self) -> io::Result<LayerDigests<W>> {
        let HashWriter { inner: encoder, hasher, count } = self.out;
        let mut sink = match encoder {
            Encoder::Plain(w) => w,
            Encoder::Gzip(w) => w.finish()?,
            Encoder::Zstd(w) => w.finish()?,
        };
        sink.flush()?;
        Ok(LayerDigests {
            diff_id: hasher.finish(),
            tar_size: count,
            digest: sink.hasher.finish(),
            size: sink.count,
            compression: self.compression,
            inner: sink.inner,
        })
    }
}

impl<W: Write> Write for LayerWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A reader that decompresses `inner` (a layer blob of the given compression).
pub fn decompress<'a, R: io::Read + 'a>(inner: R, compression: Compression) -> io::Result<Box<dyn io::Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(inner),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(inner))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(inner)?),
    })
}

/// The compression a stream starts with, from its magic bytes (`None` for anything else).
pub fn detect_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}
