//! libFuzzer on the mapping parser: see bodies.rs for what must hold for any input.
#![no_main]

mod bodies;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bodies::mapping(data));
