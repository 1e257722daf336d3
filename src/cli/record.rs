//! `pieyes record`: save what a viewer of one eye receives, as a raw H.264 Annex-B file that
//! ffmpeg/ffprobe read, and print one JSON line about it (frames, keyframes, sequences, capture
//! times, the crops the wire headers carried). For tests on machines with nothing but pieyes.
//!
//! `pieyes record [--addr HOST:PORT] --eye N --seconds S --out FILE`

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::ws_client::WsClient;
use crate::camera::Rect;
use crate::json;

#[derive(Clone, Debug, PartialEq)]
pub struct RecordArgs {
    pub addr: SocketAddr,
    pub eye: u8,
    pub seconds: f64,
    pub out: PathBuf,
}

pub const USAGE: &str = "pieyes record [--addr HOST:PORT] --eye N --seconds S --out FILE";

/// Parse what follows `record`.
pub fn parse(args: &[String]) -> Result<RecordArgs, String> {
    let (mut addr, mut eye, mut seconds, mut out) = ("127.0.0.1:8000".to_string(), None, None, None);
    let mut i = 0;
    while i < args.len() {
        let (flag, inline) = match args[i].split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (args[i].clone(), None),
        };
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                args.get(i).cloned().ok_or(format!("record: {flag} needs a value ({USAGE})"))?
            }
        };
        match flag.as_str() {
            "--addr" => addr = value,
            "--eye" => eye = Some(value.parse::<u8>().ok().filter(|e| *e < 2).ok_or("record: --eye is 0 or 1")?),
            "--seconds" => {
                seconds = Some(
                    value
                        .parse::<f64>()
                        .ok()
                        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
                        .ok_or("record: --seconds must be a positive number")?,
                )
            }
            "--out" => out = Some(PathBuf::from(value)),
            _ => return Err(format!("record: unknown option {flag:?} ({USAGE})")),
        }
        i += 1;
    }
    Ok(RecordArgs {
        addr: addr.parse().map_err(|_| format!("record: --addr: expected HOST:PORT, got {addr:?}"))?,
        eye: eye.ok_or(format!("record: --eye is required ({USAGE})"))?,
        seconds: seconds.ok_or(format!("record: --seconds is required ({USAGE})"))?,
        out: out.ok_or(format!("record: --out is required ({USAGE})"))?,
    })
}

#[derive(Default)]
struct Summary {
    frames: u64,
    keyframes: u64,
    bytes: u64,
    first_seq: Option<u32>,
    last_seq: u32,
    /// Frames whose sequence did not follow the previous one.
    seq_gaps: u64,
    first_capture_us: u64,
    last_capture_us: u64,
    crops: Vec<Rect>,
}

/// `pieyes record …`; the exit status (0: something was recorded, 2: a usage mistake).
pub fn main(args: &[String]) -> i32 {
    match parse(args) {
        Ok(a) => run(&a),
        Err(e) => {
            eprintln!("pieyes {e}");
            2
        }
    }
}

/// Record as `a` says; the exit status (0: something was recorded).
pub fn run(a: &RecordArgs) -> i32 {
    match record(a) {
        Ok(s) if s.frames > 0 => {
            println!("{}", summary_json(a, &s));
            0
        }
        Ok(s) => {
            println!("{}", summary_json(a, &s));
            eprintln!("pieyes record: no frames from eye {}", a.eye);
            1
        }
        Err(e) => {
            eprintln!("pieyes record: {e}");
            1
        }
    }
}

fn record(a: &RecordArgs) -> Result<Summary, String> {
    let mut ws = WsClient::connect(a.addr, &format!("/cam{}", a.eye), "")
        .map_err(|e| format!("cannot connect to ws://{}/cam{}: {e}", a.addr, a.eye))?;
    let file = std::fs::File::create(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let mut file = std::io::BufWriter::new(file);
    let mut s = Summary::default();
    let mut deadline: Option<Instant> = None;
    while deadline.is_none_or(|d| Instant::now() < d) {
        let Some((h, payload)) = ws.next_unit().map_err(|e| format!("eye {}: {e}", a.eye))? else {
            return Err(format!("eye {}: the daemon closed the stream after {} frames", a.eye, s.frames));
        };
        deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs_f64(a.seconds));
        file.write_all(&payload).map_err(|e| format!("{}: {e}", a.out.display()))?;
        if let Some(_first) = s.first_seq {
            if h.sequence != s.last_seq.wrapping_add(1) {
                s.seq_gaps += 1;
            }
        } else {
            s.first_seq = Some(h.sequence);
            s.first_capture_us = h.capture_us;
        }
        s.last_seq = h.sequence;
        s.last_capture_us = h.capture_us;
        s.frames += 1;
        s.keyframes += h.keyframe as u64;
        s.bytes += payload.len() as u64;
        if !s.crops.contains(&h.crop) && s.crops.len() < 32 {
            s.crops.push(h.crop);
        }
    }
    file.flush().map_err(|e| format!("{}: {e}", a.out.display()))?;
    Ok(s)
}

fn summary_json(a: &RecordArgs, s: &Summary) -> String {
    let rect = |r: &Rect| json::array([r.x, r.y, r.w, r.h].map(|v| v.to_string()));
    json::Obj::new()
        .int("eye", a.eye as u64)
        .str("out", &a.out.display().to_string())
        .num("seconds", a.seconds)
        .int("frames", s.frames)
        .int("keyframes", s.keyframes)
        .int("bytes", s.bytes)
        .raw("first_seq", &s.first_seq.map_or("null".into(), |v| v.to_string()))
        .int("last_seq", s.last_seq as u64)
        .int("seq_gaps", s.seq_gaps)
        .int("first_capture_us", s.first_capture_us)
        .int("last_capture_us", s.last_capture_us)
        .num("capture_span_s", s.last_capture_us.saturating_sub(s.first_capture_us) as f64 / 1e6)
        .raw("crops", &json::array(s.crops.iter().map(rect)))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_flags_and_refuses_nonsense() {
        let a = parse(&args("--eye 1 --seconds=2.5 --out /tmp/x.h264 --addr 127.0.0.1:9")).unwrap();
        assert_eq!((a.eye, a.seconds, a.addr.port()), (1, 2.5, 9));
        assert_eq!(parse(&args("--eye 0 --seconds 1 --out f")).unwrap().addr.port(), 8000);
        for bad in
            ["--eye 2 --seconds 1 --out f", "--eye 0 --seconds 0 --out f", "--eye 0 --out f", "--seconds 1", "--eye"]
        {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }
}
