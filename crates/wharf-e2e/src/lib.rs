//! End-to-end tests live in `tests/`; see `wharf-testkit` for the fixtures.
