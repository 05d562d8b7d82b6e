//! The calendar pre-pass and parser on arbitrary bytes: no input may panic, and every VEVENT the
//! pre-pass finds is accounted for.
#![no_main]

use gapfill::evidence::{Collected, Window};
use gapfill::sources::calendar::{self, prepass, CalendarRules};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = prepass::parse(data);
    let found = parsed.events().count();
    // A window around the simulator's dates, so that series are expanded and bounded.
    let window = Window {
        since: "2026-01-01T00:00:00Z".parse().ok(),
        until: "2026-12-01T00:00:00Z".parse().ok(),
    };
    let mut out = Collected::default();
    let stats = calendar::read_bytes("fuzz.ics", data, &CalendarRules::default(), &window, &mut out);
    assert_eq!(stats.vevents, found);
    // Without a window too: open-ended series are cut at the occurrence limit.
    let mut open = Collected::default();
    calendar::read_bytes("fuzz.ics", data, &CalendarRules::default(), &Window::default(), &mut open);
});
