//! Images: content by digest, and layers between blobs and snapshots.
//!
//! Map:
//! - [`content`]: the content store — blobs at `<root>/blobs/<alg>/<hex>`, written through
//!   `<root>/ingest/` (stream, hash, verify, fsync, rename). Start at [`ContentStore`].
//! - [`layer`]: [`layer::unpack()`] (blob → snapshot directory, one streaming pass, confined to
//!   the destination), [`layer::diff()`] / [`layer::changes()`] (snapshot → layer tar / `docker
//!   diff`), [`layer::LayerWriter`] (tar → gzip/zstd with both digests).
//!
//! Reads and writes on disk: the content store root given to [`ContentStore::open`], and the
//! directories handed to `unpack`/`diff` (which come from a `wharf_snapshot::Snapshotter`).
//! Image/manifest handling, import/export and the metadata database live elsewhere (the
//! daemon); these modules only move bytes.

pub mod content;
mod hash;
pub mod layer;

pub use content::{ContentError, ContentOptions, ContentStore, ContentWriter, Ingested, TeeReader};
