//! Image archives: what `docker save` writes and `docker load` reads.
//!
//! One tar holds both formats Docker 25+ writes:
//!
//! ```text
//! blobs/sha256/<hex>   configs, manifests and layers (layers uncompressed, named by diff ID)
//! index.json           OCI image layout index: one manifest per tag (annotated with the name)
//! oci-layout           {"imageLayoutVersion": "1.0.0"}
//! manifest.json        docker-archive: [{"Config": path, "RepoTags": [...], "Layers": [paths]}]
//! repositories         legacy: {"busybox": {"latest": "<top layer hex>"}}
//! ```
//!
//! [`read`] accepts that, older docker-archives (`<id>.json` configs, `<v1 id>/layer.tar`
//! layers, symlinked duplicates) and plain OCI layouts (`index.json`, no `manifest.json`, as
//! skopeo writes), in any entry order, optionally gzip- or zstd-compressed. Nothing from the
//! archive is written to disk by path: small files stay in memory, large ones go into the
//! content store by digest, so a hostile archive cannot write outside the store.
//! [`write`] produces the format above.

pub mod read;
pub mod write;

use std::io;

use wharf_types::{Classify, Digest, ErrorKind};

use crate::content::ContentError;

pub use read::{ArchiveFormat, ArchiveImage, ArchiveLayer, ReadOptions, Spooled, SpooledArchive};
pub use write::{SaveImage, SaveLayer, SaveTag, write_archive};

/// Errors reading or writing image archives. Messages start as Docker's do
/// (`invalid archive: …`) where the archive is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("invalid archive: read tar stream")]
    Read {
        #[source]
        source: io::Error,
    },
    #[error("invalid archive: unsupported compression {0}")]
    UnsupportedCompression(&'static str),
    #[error("invalid archive: entry {path:?} points outside the archive")]
    PathEscapes { path: String },
    #[error("invalid archive: {0}")]
    Invalid(String),
    #[error("invalid archive: failed to decode {file}")]
    Json {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid archive: {path}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { path: String, expected: Digest, actual: Digest },
    #[error("store archive content")]
    Content(#[source] ContentError),
    #[error("write archive")]
    Write {
        #[source]
        source: io::Error,
    },
    #[error("stored layer {diff_id} is corrupt: {reason}")]
    LayerCorrupt { diff_id: Digest, reason: String },
}

impl Classify for ArchiveError {
    fn kind(&self) -> ErrorKind {
        match self {
            ArchiveError::Content(e) => match e {
                // A blob in the archive that is not what its name says.
                ContentError::DigestMismatch { .. } | ContentError::SizeMismatch { .. } => ErrorKind::InvalidArgument,
                other => other.kind(),
            },
            ArchiveError::Write { .. } | ArchiveError::LayerCorrupt { .. } => ErrorKind::Internal,
            _ => ErrorKind::InvalidArgument,
        }
    }
}
