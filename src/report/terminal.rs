//! The one way text reaches a terminal: see [`crate::text`], which every
//! stage that words a message (inventory's errors as well as reports) uses.

pub use crate::text::{escape, escape_lines};
