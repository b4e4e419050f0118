//! Runs generated specs with runc.
