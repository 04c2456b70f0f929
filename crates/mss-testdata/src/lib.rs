//! Test data for mss, read from the repository's `testdata/` folder, and the one loader
//! that every crate's tests use for it.
//!
//! Only tests depend on this crate (as a dev-dependency). The data lives in the tree, so a
//! fresh clone runs every test; a missing or damaged file fails the test that wanted it
//! with the path it looked at, never a silent skip.

pub mod torture;
