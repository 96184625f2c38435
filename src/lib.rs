//! bkc compiles one KDL backup topology into per-host systemd units and job specs.
//!
//! The pipeline, one module per stage:
//! `syntax` (KDL -> AST with spans) -> `analyze` (AST -> validated [`topology::Topology`])
//! -> `emit` (Topology -> per-host artifacts). `spec` is the contract with the runner, and
//! `runner` is what `bkc-run` executes on each host; it depends on `spec` and nothing else here.

pub mod analyze;
pub mod deploy;
pub mod diag;
pub mod emit;
pub mod fmt;
pub mod graph;
pub mod import;
mod parallel;
pub mod runner;
pub mod schedule;
pub mod simulate;
pub mod spec;
pub mod syntax;
pub mod topology;
