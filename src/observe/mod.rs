//! What a node has now, read with one script per host and turned into typed
//! facts by pure parsers (pyinfra's "facts").

pub mod firewall;
pub mod nft;
pub mod probe;
