//! palisade locks a bare-metal cluster down to an IP whitelist from the
//! operator's laptop, over SSH, with no agent on the nodes.
//!
//! The modules follow the data: `inventory` (who is in the fleet) →
//! policy (what every node should admit) → render (the remote script) →
//! transport (SSH fan-out) → observe/diff → `report`. `cmd` strings the
//! stages together per command; `main.rs` only maps the result to an exit code.
//!
//! The library exists for the `palisade` binary and its tests (the
//! integration tests under `tests/` and the fuzz targets under `fuzz/`); it
//! is not a stable API and may change in any release. Its modules are
//! private, so that rustc reports what nothing uses and no caller skips a
//! constructor's checks; the few items the binary and the tests need are
//! re-exported below, and that is the whole surface. Inside a module, an
//! item is `pub(crate)` (a bare `pub` there is an `unreachable_pub` warning,
//! which CI refuses) unless this surface needs it.

mod cli;
mod cmd;
mod config;
mod diff;
mod engine;
mod input;
mod inventory;
mod limit;
mod net;
mod observe;
mod policy;
mod render;
mod report;
mod text;
mod timing;
mod transport;

// What `main.rs` needs: the command line, the run, and how it prints.
pub use cli::Cli;
pub use cmd::run;
pub use report::EXIT_USAGE;
pub use report::colour::{Stream, enabled as colour_enabled};
pub use report::progress::LogWriter;
pub use report::terminal::{escape, escape_lines};

// The inventory readers, which `tests/inventory.rs` and the fuzz targets
// `state` and `static` feed whole documents.
pub use inventory::{Inventory, RoleRules, parse_static, parse_terraform, survey_terraform};
pub use report::inventory::{census, survey_json};

// The values of flags and config that the fuzz targets `config`, `jump` and
// `net` round-trip.
pub use config::Config;
pub use net::{ChainName, IfName, Net, Port, SetName};
pub use policy::{Nodes, Opening};
pub use transport::BastionPath;

/// What a node prints back, as the controller reads it: the fuzz target
/// `observe` feeds these parsers hostile text.
pub mod node {
    pub use crate::engine::protocol::{Made, Order, aborted, fate, made, settled};
    pub use crate::observe::firewall::{controller_address, parse};
}
