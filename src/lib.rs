//! gapfill: reconstruct a database after a disaster from the evidence that survived it.
//!
//! See ARCHITECTURE.md for the map of modules.

pub mod apply;
pub mod baseline;
pub mod config;
pub mod dburl;
pub mod drift;
pub mod evaluate;
pub mod evidence;
pub mod files;
pub mod mapping;
pub mod matching;
pub mod money;
pub mod pipeline;
pub mod plan;
pub mod reference;
pub mod schema;
pub mod simulate;
pub mod sources;
