//! libFuzzer on the csv parser: see bodies.rs for what must hold for any input.
#![no_main]

mod bodies;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bodies::csv(data));
