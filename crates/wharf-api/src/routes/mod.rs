//! Route handlers, one module per resource. Handlers parse, call one backend method, and map the
//! result; nothing else.

pub mod archive;
pub mod build;
pub mod container;
pub mod disk_usage;
pub mod distribution;
pub mod exec;
pub mod image;
pub mod network;
pub mod stubs;
pub mod system;
pub mod volume;
