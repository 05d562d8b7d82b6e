pub mod csv;
pub mod stripe;
