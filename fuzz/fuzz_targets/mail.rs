//! Any bytes as an mail archive: the mbox splitter, MIME decoding, schema.org extraction and
//! the car-rental mapping's rules must never panic, and must account for every message.
#![no_main]

use std::sync::LazyLock;

use gapfill::evidence::{Collected, Window};
use gapfill::sources::mail::{self, MailRules, Mbox, MboxItem};
use libfuzzer_sys::fuzz_target;

static RULES: LazyLock<MailRules> = LazyLock::new(|| {
    gapfill::mapping::Mapping::parse(
        std::path::Path::new("mappings/car-rental.toml"),
        include_str!("../../mappings/car-rental.toml"),
    )
    .expect("the reference mapping parses")
    .mapping
    .sources
    .mail
});

fuzz_target!(|data: &[u8]| {
    let messages = Mbox::new(data)
        .filter(|i| matches!(i, MboxItem::Message(_)))
        .count() as u64;
    let mut got = Collected::default();
    let stats = mail::read_stream(data, "fuzz.mbox", &RULES, &Window::default(), &mut got);
    let accounted = (got.evidence.len() + got.skipped.len()) as u64;
    assert!(accounted >= stats.messages, "{stats:?}");
    if stats.messages > 1 {
        assert_eq!(stats.messages, messages);
    }
});
