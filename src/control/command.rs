//! Parsing commands and formatting replies. Pure: a line in, a `Command` or an error out.
//! Every verb is a row of `VERBS` (name, arguments, summary), which also makes `help`, so a
//! new verb is one row plus one match arm.

use crate::camera::Rect;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Eye(u8),
    Both,
}

impl Target {
    pub fn eyes(self) -> &'static [u8] {
        match self {
            Target::Eye(0) => &[0],
            Target::Eye(_) => &[1],
            Target::Both => &[0, 1],
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Status,
    Crop {
        target: Target,
        rect: Rect,
    },
    Keyframe,
    /// Time sync for viewers: replies with the daemon's CLOCK_MONOTONIC in µs.
    Clock,
    Help,
}

/// `err <code> <message>`: `code` is a stable word a program can match on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdError {
    pub code: &'static str,
    pub message: String,
}

impl CmdError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        CmdError { code, message: message.into() }
    }
}

pub const VERBS: &[(&str, &str, &str)] = &[
    ("status", "", "one line of JSON: per eye fps, bitrate, frames, drops, viewers, crop"),
    (
        "crop",
        "<0|1|both> <x> <y> <w> <h>",
        "set the sensor crop; reply names the applied crop and the frame it lands on",
    ),
    ("keyframe", "", "ask both encoders for an IDR on the next frame"),
    ("clock", "", "the daemon's monotonic clock in µs (for latency measurement)"),
    ("help", "", "this list"),
];

/// Longest line accepted, bytes (without the newline).
pub const MAX_LINE: usize = 4096;

pub fn help_text() -> String {
    VERBS
        .iter()
        .map(|(v, a, _)| if a.is_empty() { v.to_string() } else { format!("{v} {a}") })
        .collect::<Vec<_>>()
        .join("; ")
}

fn parse_target(s: &str) -> Result<Target, CmdError> {
    match s {
        "0" => Ok(Target::Eye(0)),
        "1" => Ok(Target::Eye(1)),
        "both" => Ok(Target::Both),
        _ => Err(CmdError::new("bad-eye", format!("eye must be 0, 1 or both, not {:?}", clip(s)))),
    }
}

fn parse_u32(name: &str, s: &str) -> Result<u32, CmdError> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CmdError::new("bad-number", format!("{name} must be a whole number of pixels, not {:?}", clip(s))));
    }
    Ok(s.parse().expect("checked digits"))
}

/// Keep echoed user input short in replies and logs.
fn clip(s: &str) -> String {
    s.chars().take(32).collect()
}

pub fn parse(line: &str) -> Result<Command, CmdError> {
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let Some((&verb, args)) = words.split_first() else {
        return Err(CmdError::new("empty", "empty command; try help"));
    };
    let Some(&(_, usage, _)) = VERBS.iter().find(|(v, _, _)| *v == verb) else {
        return Err(CmdError::new("unknown-command", format!("unknown command {:?}; try help", clip(verb))));
    };
    let arity = if usage.is_empty() { 0 } else { usage.split(' ').count() };
    if args.len() != arity {
        return Err(CmdError::new("usage", format!("usage: {verb} {usage}").trim_end().to_string()));
    }
    Ok(match verb {
        "status" => Command::Status,
        "keyframe" => Command::Keyframe,
        "clock" => Command::Clock,
        "help" => Command::Help,
        "crop" => {
            let target = parse_target(args[0])?;
            let v: Vec<u32> =
                ["x", "y", "w", "h"].iter().zip(&args[1..]).map(|(n, s)| parse_u32(n, s)).collect::<Result<_, _>>()?;
            if v[2] == 0 || v[3] == 0 {
                return Err(CmdError::new("bad-number", "crop width and height must be positive"));
            }
            Command::Crop { target, rect: Rect::new(v[0], v[1], v[2], v[3]) }
        }
        _ => unreachable!("every verb in VERBS is handled"),
    })
}

/// `err <code> <message>` on one line.
pub fn format_err(e: &CmdError) -> String {
    format!("err {} {}", e.code, one_line(&e.message))
}

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_verb() {
        assert_eq!(parse("status"), Ok(Command::Status));
        assert_eq!(parse("  keyframe  "), Ok(Command::Keyframe));
        assert_eq!(parse("clock"), Ok(Command::Clock));
        assert_eq!(parse("help"), Ok(Command::Help));
        assert_eq!(
            parse("crop both 10 20 960 1080"),
            Ok(Command::Crop { target: Target::Both, rect: Rect::new(10, 20, 960, 1080) })
        );
        assert_eq!(
            parse("crop 1 0 0 64 64"),
            Ok(Command::Crop { target: Target::Eye(1), rect: Rect::new(0, 0, 64, 64) })
        );
    }

    #[test]
    fn malformed_input_gets_a_coded_error() {
        let code = |l: &str| parse(l).unwrap_err().code;
        assert_eq!(code(""), "empty");
        assert_eq!(code("   "), "empty");
        assert_eq!(code("fly away"), "unknown-command");
        assert_eq!(code("crop 0 1 2 3"), "usage");
        assert_eq!(code("status now"), "usage");
        assert_eq!(code("crop 2 0 0 64 64"), "bad-eye");
        assert_eq!(code("crop 0 -1 0 64 64"), "bad-number");
        assert_eq!(code("crop 0 0 0 64 NaN"), "bad-number");
        assert_eq!(code("crop 0 0 0 99999999999 64"), "bad-number");
        assert_eq!(code("crop 0 0 0 0 64"), "bad-number");
        assert_eq!(code("\u{0}\u{1}binary"), "unknown-command");
    }

    #[test]
    fn errors_format_on_one_line_and_help_lists_every_verb() {
        let e = CmdError::new("x", "a\nb\rc");
        assert_eq!(format_err(&e), "err x a b c");
        let h = help_text();
        for (v, _, _) in VERBS {
            assert!(h.contains(v));
        }
        assert!(!h.contains('\n'));
    }
}
