//! The saved-state parser (`control::state_file::parse`): whatever a disk or a person left in
//! the file. Properties: it never panics; what it accepts is within the documented ranges;
//! and what it accepts survives a format → parse round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pieyes::control::state_file::{SavedState, format, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let base = SavedState::defaults(30, 3_000_000);
    let Ok(s) = parse(text, base) else { return };
    assert!((1..=120).contains(&s.fps));
    assert!((-1.0..=1.0).contains(&s.vergence));
    for e in &s.eyes {
        assert!((-1.0..=1.0).contains(&e.pose.x) && (-1.0..=1.0).contains(&e.pose.y), "{e:?}");
        assert!((1.0..=64.0).contains(&e.pose.zoom), "{e:?}");
        assert!(e.offset.0.abs() <= 10_000 && e.offset.1.abs() <= 10_000);
        assert!((50_000..=50_000_000).contains(&e.bitrate));
    }
    let again = parse(&format(&s), base).expect("a formatted state parses");
    assert_eq!(again, s, "round trip");
});
