//! Spec-level tests: generated documents against what Docker writes.
