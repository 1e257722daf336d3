//! The control socket's input path: `control::line::LineReader` fed arbitrary chunks, and
//! `control::command::parse` on every line it yields.
//!
//! Input: one configuration byte, then the stream. Configuration bit 6 picks the line limit
//! (`MAX_LINE`, or 1-64 bytes from bits 0-5 so that over-long lines are easy to reach); bit 7
//! and the low bits seed the chunking. Properties:
//! - the lines are the same whether the stream arrives at once or in arbitrary chunks;
//! - a text line is within the limit and holds no newline;
//! - after draining, the reader holds at most the limit plus a '\r': a peer that never sends a
//!   newline cannot make it buffer more;
//! - `parse` never panics, ignores surrounding whitespace, and its error replies are one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pieyes::control::command::{MAX_LINE, format_err, parse};
use pieyes::control::line::{Line, LineReader};

fn drain(r: &mut LineReader, max: usize, out: &mut Vec<Line>) {
    while let Some(l) = r.next_line() {
        if let Line::Text(t) = &l {
            assert!(t.len() <= max && !t.contains('\n'), "{t:?} (limit {max})");
        }
        out.push(l);
    }
    assert!(r.buffered() <= max + 1, "{} bytes buffered with limit {max}", r.buffered());
}

fn check_command(line: &str) {
    let r = parse(line);
    if let Err(e) = &r {
        let s = format_err(e);
        assert!(s.starts_with("err ") && !s.contains(['\n', '\r']), "{s:?}");
        assert!(!e.code.is_empty() && !e.code.contains(char::is_whitespace), "{:?}", e.code);
    }
    assert_eq!(parse(&format!(" \t{line}\t ")), r, "surrounding whitespace changed {line:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, stream)) = data.split_first() else { return };
    let max = if cfg & 0x40 != 0 { MAX_LINE } else { (cfg & 0x3f) as usize + 1 };

    let mut whole = LineReader::new(max);
    whole.push(stream);
    let mut at_once = Vec::new();
    drain(&mut whole, max, &mut at_once);

    let mut chunked = LineReader::new(max);
    let mut in_chunks = Vec::new();
    let mut seed = u32::from(cfg) << 8 | 0x2545;
    let mut at = 0;
    while at < stream.len() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = 1 + (seed as usize % 97).min(stream.len() - at - 1);
        chunked.push(&stream[at..at + n]);
        drain(&mut chunked, max, &mut in_chunks);
        at += n;
    }
    assert_eq!(at_once, in_chunks, "chunking changed the lines");

    for l in &at_once {
        if let Line::Text(t) = l {
            check_command(t);
        }
    }
});
