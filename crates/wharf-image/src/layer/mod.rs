//! Layers: unpack a layer blob into a snapshot directory ([`unpack()`]), make a layer from a
//! snapshot's changes ([`diff()`], [`changes()`]), and compress a tar stream while computing
//! both layer digests ([`LayerWriter`]).
//!
//! Whiteouts are converted both ways: OCI/Docker `.wh.<name>` and `.wh..wh..opq` entries become
//! overlay whiteouts (char device 0:0, `trusted.overlay.opaque=y`) or deletions, depending on the
//! snapshotter's [`WhiteoutStyle`](wharf_snapshot::WhiteoutStyle); overlay whiteouts become
//! `.wh.` entries again in [`diff()`].

mod compress;
mod diff;
mod root;
mod unpack;

pub use compress::{LayerDigests, LayerWriter, decompress, detect_compression};
pub use diff::{Change, ChangeKind, DiffError, DiffStats, changes, diff};

pub use unpack::{Skipped, UnpackError, UnpackOptions, UnpackResult, unpack};

/// A layer's compression, as found from its magic bytes or chosen for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The name stored in the metadata database (`none`, `gzip`, `zstd`).
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// Parses [`Compression::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Compression::None,
            "gzip" => Compression::Gzip,
            "zstd" => Compression::Zstd,
            _ => return None,
        })
    }

    /// The compression a layer media type names (`+gzip`, `.gzip`, `+zstd`), else none.
    pub fn from_media_type(media_type: &str) -> Self {
        if media_type.ends_with("gzip") {
            Compression::Gzip
        } else if media_type.ends_with("zstd") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI media type of a layer with this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// The OCI whiteout prefix and opaque marker.
pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
