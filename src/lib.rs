//! palisade locks a bare-metal cluster down to an IP whitelist from the
//! operator's laptop, over SSH, with no agent on the nodes.
//!
//! The modules follow the data: [`inventory`] (who is in the fleet) →
//! policy (what every node should admit) → render (the remote script) →
//! transport (SSH fan-out) → observe/diff → [`report`]. [`cmd`] strings the
//! stages together per command; `main.rs` only maps the result to an exit code.

pub mod cli;
pub mod cmd;
pub mod config;
pub mod diff;
pub mod engine;
pub mod input;
pub mod inventory;
pub mod limit;
pub mod net;
pub mod observe;
pub mod policy;
pub mod render;
pub mod report;
pub mod text;
pub mod timing;
pub mod transport;
