//! Shared fixtures for the benchmarks.

pub mod envoy;
pub mod policies;
pub mod report;
pub mod soak;
