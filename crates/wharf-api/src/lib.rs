//! The Docker Engine API (1.53, minimum 1.24) as an HTTP adapter over the engine.
//!
//! Map — start at [`server::serve`] and [`router::build`]:
//! - [`server`]: accept loops for unix and TCP listeners (HTTP/1.1 with upgrades for hijacked
//!   streams), graceful shutdown.
//! - [`router`]: the version prefix (`/v1.53/…` and unversioned), the headers every response
//!   carries, the route table, the JSON 404 fallback.
//! - [`version`]: [`ApiVersion`] and the supported range; handlers read the request's version
//!   to shape responses.
//! - [`error`]: [`ApiError`] and [`error::status_for`], the one function mapping error kinds to
//!   HTTP status codes.
//! - [`backend`]: the narrow per-resource traits the daemon implements. Handlers only parse,
//!   call one backend method, and map the result.
//! - [`routes`]: one module per resource, named as in the daemon.
//! - [`hijack`]: hijacked attach/exec connections: framing, half-close, detach keys.
//! - [`query`]: query-string helpers (Docker's booleans, repeated keys, filters).
//! - [`stream`]: codecs for streamed responses (JSON lines).
//!
//! Wire types are `bollard_stubs::models`, re-exported as [`models`], generated from Docker's own
//! OpenAPI description; our own types only fill gaps (e.g. version-shaped event fields).

pub mod backend;
pub mod error;
#[cfg(test)]
pub(crate) mod fakes;
pub mod hijack;
pub mod query;
pub mod router;
pub mod routes;
pub mod server;
pub mod stream;
pub mod version;

pub use backend::Backends;
pub use bollard_stubs::models;
pub use error::ApiError;
pub use version::ApiVersion;
