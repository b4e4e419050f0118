//! The distribution protocol: a registry **client** (what `docker pull/push/login` need from the
//! daemon) and, separately, a registry **server** (`bins/wharf-registry`).
//!
//! Map:
//! - [`client`]: start at [`client::Client`] (`login`, `repository`, `catalog`) and
//!   [`client::Repository`] (`resolve`, `fetch_manifest`, `fetch_image`, `fetch_blob`,
//!   `blob_exists`, `mount_blob`, `push_blob`, `push_manifest`, `tags`). Submodules:
//!   `config` (endpoints: Docker Hub, mirrors, insecure registries, certs.d), `auth`
//!   (credentials, challenges, tokens), `transport` (HTTP/1.1 + rustls/ring, redirects),
//!   `error` (one [`client::ClientError`], classified). The client keeps nothing on disk; it
//!   reads `<certs_dir>/<host>/` (`*.crt`, `*.cert`, `*.key`).
//! - [`server`]: the OCI distribution spec v1.1 on axum. [`server::route`] parses paths,
//!   `server::ops` holds one function per endpoint, [`server::storage`] owns the directory
//!   layout (documented there), [`server::auth`] does htpasswd and the built-in token service,
//!   [`server::gc`] sweeps unreferenced blobs.
//!
//! Manifest, index and descriptor types live in `wharf_types::oci`; this crate does the I/O.

pub mod client;
pub mod server;
