//! Images: content by digest, and layers between blobs and snapshots.
//!
//! Map:
//! - [`content`]: the content store — blobs at `<root>/blobs/<alg>/<hex>`, written through
//!   `<root>/ingest/` (stream, hash, verify, fsync, rename). Start at [`ContentStore`].
//! - [`layer`]: [`layer::unpack()`] (blob → snapshot directory, one streaming pass, confined to
//!   the destination), [`layer::diff()`] / [`layer::changes()`] (snapshot → layer tar / `docker
//!   diff`), [`layer::LayerWriter`] (tar → gzip/zstd with both digests).
//! - [`oci`]: OCI/Docker media types, descriptors, manifests, indexes, `manifest.json` items.
//! - [`archive`]: image archives — [`archive::read`] spools a `docker save`/OCI-layout tar
//!   (entries in any order, nothing written by path) and finds its images;
//!   [`archive::write_archive`] writes what `docker save` writes.
//!
//! Reads and writes on disk: the content store root given to [`ContentStore::open`], and the
//! directories handed to `unpack`/`diff` (which come from a `wharf_snapshot::Snapshotter`).
//! The metadata database and the orchestration of import/load/save live in the daemon; these
//! modules only move and check bytes.

pub mod archive;
pub mod content;
mod hash;
pub mod layer;
pub mod oci;

pub use content::{ContentError, ContentOptions, ContentStore, ContentWriter, Ingested, TeeReader};
pub use hash::sha256_digest;
