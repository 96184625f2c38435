//! bkc compiles one KDL backup topology into per-host systemd units and job specs.
//!
//! The pipeline, one module per stage:
//! `syntax` (KDL -> AST with spans) -> `analyze` (AST -> validated [`topology::Topology`])
//! -> `emit` (Topology -> per-host artifacts). The job spec, the contract with the runner, lives
//! in the `bkc-contract` crate with every other shared format; `bkc-run` is its own crate
//! (crates/runner), which depends on that crate and nothing of this one.

pub mod analyze;
pub mod deploy;
pub mod diag;
pub mod emit;
pub mod fmt;
pub mod graph;
pub mod import;
mod parallel;
pub mod printable;
pub mod report;
pub mod schedule;
pub mod simulate;
// The compiler writes job specs as `crate::spec`, the path it had before the contract crate.
pub use bkc_contract::serve;
pub use bkc_contract::spec;
pub mod syntax;
pub mod topology;
