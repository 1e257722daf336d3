//! Parsing commands and formatting replies. Pure: a line in, a `Command` or an error out.
//! Every verb is a row of `VERBS` (name, arguments, whether it takes `over <ms>`, summary),
//! which also makes `help`, so a new verb is one row plus one match arm.

use crate::camera::{Flip, Rect};

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
    /// Absolute gaze, −1…1 across the reachable range at the current zoom.
    Look {
        target: Target,
        x: f64,
        y: f64,
        over_ms: u32,
    },
    /// Relative gaze, same units.
    Move {
        target: Target,
        dx: f64,
        dy: f64,
        over_ms: u32,
    },
    Zoom {
        target: Target,
        zoom: f64,
        over_ms: u32,
    },
    /// Vergence: both eyes turn by ±d × half the sensor width in opposite directions.
    Verge {
        d: f64,
        over_ms: u32,
    },
    /// Calibration offset of one eye, sensor pixels.
    Offset {
        eye: u8,
        dx: i32,
        dy: i32,
    },
    Crop {
        target: Target,
        rect: Rect,
    },
    Flip {
        target: Target,
        flip: Flip,
    },
    Pause,
    Resume,
    Fps(u32),
    Bitrate {
        target: Target,
        bps: u32,
    },
    Keyframe,
    Save,
    /// Estimate eye 1's vertical misalignment from a stereo pair; with `apply`, set the last
    /// estimate as eye 1's offset and save.
    Calibrate {
        apply: bool,
    },
    Watch,
    /// Time sync for viewers: replies with the daemon's CLOCK_MONOTONIC in µs.
    Clock,
    Help,
    /// Unlock steering on a `/control` connection when the daemon runs with `--token`.
    Auth(String),
}

impl Command {
    /// Whether the command changes what the eyes do (and so needs steering rights).
    pub fn is_steering(&self) -> bool {
        !matches!(self, Command::Status | Command::Clock | Command::Help | Command::Watch | Command::Auth(_))
    }
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

/// (verb, arguments, takes `over <ms>`, summary)
pub const VERBS: &[(&str, &str, bool, &str)] = &[
    ("look", "<0|1|both> <x> <y>", true, "absolute gaze, -1..1 across the reachable range at the current zoom"),
    ("move", "<0|1|both> <dx> <dy>", true, "relative gaze, same units"),
    ("zoom", "<0|1|both> <z>", true, "zoom factor, 1 = whole view, up to the maximum zoom"),
    ("verge", "<d>", true, "vergence: eyes turn by ±d × half the sensor width, converging for d > 0"),
    ("offset", "<0|1> <dx> <dy>", false, "calibration offset of one eye in sensor pixels"),
    ("crop", "<0|1|both> <x> <y> <w> <h>", false, "raw sensor crop"),
    ("flip", "<0|1|both> <none|h|v|hv>", false, "mirror the picture (the camera is reconfigured, viewers get an IDR)"),
    ("pause", "", false, "stop capturing; viewers stay connected"),
    ("resume", "", false, "capture again"),
    ("fps", "<n>", false, "frames per second of both cameras, 1..120"),
    ("bitrate", "<0|1|both> <bps>", false, "H.264 bitrate"),
    ("keyframe", "", false, "both encoders send an IDR next"),
    ("save", "", false, "write calibration and the current view as the start-up defaults"),
    ("calibrate", "[apply]", false, "estimate eye 1's vertical offset from the pictures; apply: set it and save"),
    ("status", "", false, "one line of JSON"),
    ("watch", "", false, "from now on also send an event line for every state change"),
    ("clock", "", false, "the daemon's monotonic clock in µs"),
    ("auth", "<token>", false, "unlock steering on a browser connection when pieyes runs with --token"),
    ("help", "", false, "this list"),
];

/// Longest line accepted, bytes (without the newline).
pub const MAX_LINE: usize = 4096;
/// Longest pursuit, ms.
pub const MAX_OVER_MS: u32 = 60_000;
/// Numbers beyond this magnitude are refused as nonsense rather than clamped.
const MAX_MAGNITUDE: f64 = 1e6;

pub fn help_text() -> String {
    VERBS
        .iter()
        .map(|(v, a, timed, _)| {
            let mut s = v.to_string();
            if !a.is_empty() {
                s = format!("{s} {a}");
            }
            if *timed {
                s.push_str(" [over <ms>]");
            }
            s
        })
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

fn parse_eye(s: &str) -> Result<u8, CmdError> {
    match s {
        "0" => Ok(0),
        "1" => Ok(1),
        _ => Err(CmdError::new("bad-eye", format!("eye must be 0 or 1, not {:?}", clip(s)))),
    }
}

fn parse_u32(name: &str, s: &str, lo: u32, hi: u32) -> Result<u32, CmdError> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CmdError::new("bad-number", format!("{name} must be a whole number, not {:?}", clip(s))));
    }
    let v: u32 = s.parse().expect("checked digits");
    if v < lo || v > hi {
        return Err(CmdError::new("out-of-range", format!("{name} must be within {lo}..{hi}, not {v}")));
    }
    Ok(v)
}

fn parse_i32(name: &str, s: &str, limit: i32) -> Result<i32, CmdError> {
    let digits = s.strip_prefix('-').or_else(|| s.strip_prefix('+')).unwrap_or(s);
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CmdError::new("bad-number", format!("{name} must be a whole number, not {:?}", clip(s))));
    }
    let v: i32 = s.parse().expect("checked digits");
    if v.abs() > limit {
        return Err(CmdError::new("out-of-range", format!("{name} must be within ±{limit}, not {v}")));
    }
    Ok(v)
}

/// A finite decimal number of sane size (NaN, infinities and 1e300 are refused, not clamped).
fn parse_f64(name: &str, s: &str) -> Result<f64, CmdError> {
    let ok_chars = s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    match s.parse::<f64>() {
        Ok(v) if ok_chars && v.is_finite() && v.abs() <= MAX_MAGNITUDE => Ok(v),
        _ => Err(CmdError::new("bad-number", format!("{name} must be a finite number, not {:?}", clip(s)))),
    }
}

/// Keep echoed user input short in replies and logs.
fn clip(s: &str) -> String {
    s.chars().take(32).collect()
}

pub fn parse(line: &str) -> Result<Command, CmdError> {
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let Some((&verb, mut args)) = words.split_first() else {
        return Err(CmdError::new("empty", "empty command; try help"));
    };
    let Some(&(_, usage, timed, _)) = VERBS.iter().find(|(v, _, _, _)| *v == verb) else {
        return Err(CmdError::new("unknown-command", format!("unknown command {:?}; try help", clip(verb))));
    };
    if verb == "calibrate" {
        return match args {
            [] => Ok(Command::Calibrate { apply: false }),
            ["apply"] => Ok(Command::Calibrate { apply: true }),
            _ => Err(CmdError::new("usage", "usage: calibrate [apply]")),
        };
    }
    let mut over_ms = 0;
    if timed && args.len() >= 2 && args[args.len() - 2] == "over" {
        let ms = args[args.len() - 1];
        over_ms = parse_u32("over", ms.strip_suffix("ms").unwrap_or(ms), 0, MAX_OVER_MS)?;
        args = &args[..args.len() - 2];
    }
    let arity = if usage.is_empty() { 0 } else { usage.split(' ').count() };
    if args.len() != arity {
        let over = if timed { " [over <ms>]" } else { "" };
        return Err(CmdError::new("usage", format!("usage: {verb} {usage}{over}").trim_end().to_string()));
    }
    Ok(match verb {
        "status" => Command::Status,
        "keyframe" => Command::Keyframe,
        "clock" => Command::Clock,
        "help" => Command::Help,
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "save" => Command::Save,
        "watch" => Command::Watch,
        "look" => Command::Look {
            target: parse_target(args[0])?,
            x: parse_f64("x", args[1])?,
            y: parse_f64("y", args[2])?,
            over_ms,
        },
        "move" => Command::Move {
            target: parse_target(args[0])?,
            dx: parse_f64("dx", args[1])?,
            dy: parse_f64("dy", args[2])?,
            over_ms,
        },
        "zoom" => Command::Zoom { target: parse_target(args[0])?, zoom: parse_f64("z", args[1])?, over_ms },
        "verge" => Command::Verge { d: parse_f64("d", args[0])?, over_ms },
        "offset" => Command::Offset {
            eye: parse_eye(args[0])?,
            dx: parse_i32("dx", args[1], 10_000)?,
            dy: parse_i32("dy", args[2], 10_000)?,
        },
        "crop" => {
            let target = parse_target(args[0])?;
            let v: Vec<u32> = ["x", "y", "w", "h"]
                .iter()
                .zip(&args[1..])
                .map(|(n, s)| parse_u32(n, s, 0, 65_535))
                .collect::<Result<_, _>>()?;
            if v[2] == 0 || v[3] == 0 {
                return Err(CmdError::new("bad-number", "crop width and height must be positive"));
            }
            Command::Crop { target, rect: Rect::new(v[0], v[1], v[2], v[3]) }
        }
        "flip" => Command::Flip {
            target: parse_target(args[0])?,
            flip: Flip::parse(args[1]).ok_or_else(|| {
                CmdError::new("bad-flip", format!("flip must be none, h, v or hv, not {:?}", clip(args[1])))
            })?,
        },
        "fps" => Command::Fps(parse_u32("fps", args[0], 1, 120)?),
        "auth" if args[0].len() > 256 => return Err(CmdError::new("bad-token", "tokens are at most 256 bytes")),
        "auth" => Command::Auth(args[0].to_string()),
        "bitrate" => {
            Command::Bitrate { target: parse_target(args[0])?, bps: parse_u32("bps", args[1], 50_000, 50_000_000)? }
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
        for (l, c) in [
            ("clock", Command::Clock),
            ("help", Command::Help),
            ("pause", Command::Pause),
            ("resume", Command::Resume),
            ("save", Command::Save),
            ("watch", Command::Watch),
            ("fps 25", Command::Fps(25)),
            ("calibrate", Command::Calibrate { apply: false }),
            ("calibrate  apply", Command::Calibrate { apply: true }),
            ("auth s3cret", Command::Auth("s3cret".into())),
        ] {
            assert_eq!(parse(l), Ok(c));
        }
        assert_eq!(
            parse("crop both 10 20 960 1080"),
            Ok(Command::Crop { target: Target::Both, rect: Rect::new(10, 20, 960, 1080) })
        );
        assert_eq!(parse("look 0 0.5 -1"), Ok(Command::Look { target: Target::Eye(0), x: 0.5, y: -1.0, over_ms: 0 }));
        assert_eq!(
            parse("move both -0.1 0 over 300ms"),
            Ok(Command::Move { target: Target::Both, dx: -0.1, dy: 0.0, over_ms: 300 })
        );
        assert_eq!(
            parse("zoom 1 2.5 over 1000"),
            Ok(Command::Zoom { target: Target::Eye(1), zoom: 2.5, over_ms: 1000 })
        );
        assert_eq!(parse("verge 0.02"), Ok(Command::Verge { d: 0.02, over_ms: 0 }));
        assert_eq!(parse("offset 1 -12 +4"), Ok(Command::Offset { eye: 1, dx: -12, dy: 4 }));
        assert_eq!(parse("flip both hv"), Ok(Command::Flip { target: Target::Both, flip: Flip::HV }));
        assert_eq!(parse("bitrate 0 2000000"), Ok(Command::Bitrate { target: Target::Eye(0), bps: 2_000_000 }));
    }

    #[test]
    fn malformed_input_gets_a_coded_error() {
        let code = |l: &str| parse(l).unwrap_err().code;
        assert_eq!(code(""), "empty");
        assert_eq!(code("   "), "empty");
        assert_eq!(code("fly away"), "unknown-command");
        assert_eq!(code("crop 0 1 2 3"), "usage");
        assert_eq!(code("status now"), "usage");
        assert_eq!(code("look 0 1"), "usage");
        assert_eq!(code("look 0 1 2 over"), "usage");
        assert_eq!(code("offset both 1 1"), "bad-eye");
        assert_eq!(code("crop 2 0 0 64 64"), "bad-eye");
        assert_eq!(code("crop 0 -1 0 64 64"), "bad-number");
        assert_eq!(code("crop 0 0 0 64 NaN"), "bad-number");
        assert_eq!(code("crop 0 0 0 99999999999 64"), "bad-number");
        assert_eq!(code("crop 0 0 0 0 64"), "bad-number");
        assert_eq!(code("look 0 NaN 0"), "bad-number");
        assert_eq!(code("look 0 inf 0"), "bad-number");
        assert_eq!(code("look 0 1e300 0"), "bad-number");
        assert_eq!(code("look 0 0x10 0"), "bad-number");
        assert_eq!(code("zoom 0 2 over 70000"), "out-of-range");
        assert_eq!(code("look 0 0 0 over -5"), "bad-number");
        assert_eq!(code("fps 0"), "out-of-range");
        assert_eq!(code("fps 500"), "out-of-range");
        assert_eq!(code("bitrate both 10"), "out-of-range");
        assert_eq!(code("flip 0 sideways"), "bad-flip");
        assert_eq!(code("offset 0 99999 0"), "out-of-range");
        assert_eq!(code("auth"), "usage");
        assert_eq!(code("calibrate now"), "usage");
        assert_eq!(code("calibrate apply 1"), "usage");
        assert_eq!(code(&format!("auth {}", "x".repeat(300))), "bad-token");
        assert_eq!(code("\u{0}\u{1}binary"), "unknown-command");
    }

    #[test]
    fn steering_commands_are_told_apart_from_looking_ones() {
        for l in ["status", "clock", "help", "watch", "auth x"] {
            assert!(!parse(l).unwrap().is_steering(), "{l}");
        }
        for l in [
            "look 0 0 0",
            "crop 0 0 0 64 64",
            "save",
            "calibrate",
            "calibrate apply",
            "pause",
            "fps 10",
            "keyframe",
            "flip 0 h",
            "offset 1 1 1",
        ] {
            assert!(parse(l).unwrap().is_steering(), "{l}");
        }
    }

    #[test]
    fn errors_format_on_one_line_and_help_lists_every_verb() {
        let e = CmdError::new("x", "a\nb\rc");
        assert_eq!(format_err(&e), "err x a b c");
        let h = help_text();
        for (v, _, _, _) in VERBS {
            assert!(h.contains(v));
        }
        assert!(h.contains("look <0|1|both> <x> <y> [over <ms>]"));
        assert!(!h.contains('\n'));
    }
}
