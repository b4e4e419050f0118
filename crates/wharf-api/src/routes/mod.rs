//! Route handlers, one module per resource. Handlers parse, call one backend method, and map the
//! result; nothing else.

pub mod container;
pub mod network;
pub mod stubs;
pub mod system;
