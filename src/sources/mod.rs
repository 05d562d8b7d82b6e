//! Evidence sources: each reads one kind of external record and streams evidence into a sink.

pub mod calendar;
pub mod csv;
pub mod stripe;
