//! Every format that two programs share, or that a program shares with its users' scripts.
//!
//! `bkc` writes job specs and `bkc-run` reads them; `bkc-run` writes its state file, event lines,
//! metrics and lock-file holder lines, which `bkc status`, other runners and anyone's monitoring
//! read; `bkc` writes a manifest to every host and saved plans for itself, and a serve file for
//! every job on every host the job reaches, which `bkc-run serve` reads. Each format is a
//! public, versioned type here, read and written through that type everywhere, so a change to
//! one shows in this crate's diff and in its JSON Schema under docs/schemas/. docs/CONTRACTS.md
//! says where users find them.

pub mod event;
pub mod fresh;
pub mod lockfile;
pub mod manifest;
pub mod metrics;
mod mode;
pub mod names;
pub mod plan;
pub mod serve;
pub mod snapshots;
pub mod spec;
pub mod state;
pub mod verify;

pub use mode::{Mode, ModeError};
