//! gapfill: reconstruct a database after a disaster from the evidence that survived it.
//!
//! See ARCHITECTURE.md for the map of modules.

pub mod dburl;
pub mod evaluate;
pub mod evidence;
pub mod reference;
pub mod simulate;
pub mod sources;
