//! x
pub mod server;
