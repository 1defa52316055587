//! What a node has now, read with one script per host and turned into typed
//! facts by pure parsers (pyinfra's "facts").

pub(crate) mod firewall;
pub(crate) mod nft;
pub(crate) mod probe;
