//! Every format that two programs share, or that a program shares with its users' scripts.
//!
//! `bkc` writes job specs and `bkc-run` reads them; `bkc-run` writes its state file and event
//! lines and `bkc status` (and anyone's monitoring) reads them. Each format is a public, versioned
//! type here and is read and written through that type everywhere, so a change to one shows in
//! this crate's diff. docs/CONTRACTS.md says where users find them.

pub mod spec;
