//! Frame taps: a Unix control connection that says `tap <0|1|both> [every N] [size WxH]` is
//! sent each frame of those eyes as one JSON line with the frame's fd attached (SCM_RIGHTS),
//! and answers `release <seq>` when it is done reading the pixels; `untap` ends it. The idea
//! of handing frames out as buffers that come back with a release is Wayland's `wl_buffer`
//! and PipeWire's buffer pools; ustreamer's memsink is the nearest peer (one shared-memory
//! copy per frame, no release).
//!
//! This module is the bookkeeping without sockets or buffers: who wants which frame, what each
//! tap holds, which frames a tap that holds one is skipped, and when a tap is stuck. `frames`
//! delivers (the line, the fd, the copy for `size`) through a send function the loop lends it;
//! `scale` makes the downscaled copies.

pub mod frames;
pub mod scale;

use std::collections::BTreeMap;

use crate::camera::Size;
use crate::control::command::{CmdError, Target};
use crate::limits::{MAX_TAPS, TAP_HOLD_TIMEOUT_US};

/// `every N` at most.
pub const MAX_EVERY: u32 = 1000;
/// Smallest `size` side.
pub const MIN_SCALED: u32 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapSpec {
    pub eyes: Target,
    /// Frames whose sequence is a multiple of this (both eyes of a synchronised pair alike).
    pub every: u32,
    /// A downscaled I420 copy of this size instead of the camera's buffer.
    pub size: Option<Size>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TapCommand {
    Tap(TapSpec),
    /// Done with frame `seq` (of `eye`, or of every eye that holds that sequence).
    Release {
        seq: u32,
        eye: Option<u8>,
    },
    Untap,
}

fn usage(verb: &str) -> CmdError {
    let u = match verb {
        "tap" => "usage: tap <0|1|both> [every <n>] [size <w>x<h>]",
        "release" => "usage: release <seq> [0|1]",
        _ => "usage: untap",
    };
    CmdError::new("usage", u)
}

fn number(name: &str, s: &str, lo: u32, hi: u32) -> Result<u32, CmdError> {
    let shown: String = s.chars().take(32).collect();
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CmdError::new("bad-number", format!("{name} must be a whole number, not {shown:?}")));
    }
    match s.parse::<u64>() {
        Ok(v) if (lo as u64..=hi as u64).contains(&v) => Ok(v as u32),
        _ => Err(CmdError::new("out-of-range", format!("{name} must be within {lo}..{hi}, not {shown}"))),
    }
}

fn parse_size(s: &str) -> Result<Size, CmdError> {
    let bad = || {
        CmdError::new(
            "bad-size",
            format!("size must be <w>x<h> with even sides, not {:?}", s.chars().take(32).collect::<String>()),
        )
    };
    let (w, h) = s.split_once('x').ok_or_else(bad)?;
    let (w, h) = (number("width", w, MIN_SCALED, 8192)?, number("height", h, MIN_SCALED, 8192)?);
    if w % 2 != 0 || h % 2 != 0 {
        return Err(bad());
    }
    Ok(Size { w, h })
}

/// Whether the line starts with a tap verb, which (without allocating: every line of a flood
/// is asked this).
pub fn verb(line: &str) -> Option<&'static str> {
    match line.split_ascii_whitespace().next()? {
        "tap" => Some("tap"),
        "release" => Some("release"),
        "untap" => Some("untap"),
        _ => None,
    }
}

/// The tap verbs of the Unix control socket (they need a socket that carries fds, so they are
/// not part of `control::command`'s language). `None`: not a tap verb.
pub fn parse(line: &str) -> Option<Result<TapCommand, CmdError>> {
    verb(line)?;
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let (&verb, args) = words.split_first()?;
    Some(match verb {
        "tap" => parse_tap(args),
        "release" => match args {
            [seq] => number("seq", seq, 0, u32::MAX).map(|seq| TapCommand::Release { seq, eye: None }),
            [seq, eye] => number("seq", seq, 0, u32::MAX).and_then(|seq| match *eye {
                "0" | "1" => Ok(TapCommand::Release { seq, eye: Some(eye.parse().expect("digit")) }),
                _ => Err(CmdError::new("bad-eye", format!("eye must be 0 or 1, not {eye:?}"))),
            }),
            _ => Err(usage(verb)),
        },
        "untap" if args.is_empty() => Ok(TapCommand::Untap),
        "untap" => Err(usage(verb)),
        _ => return None,
    })
}

fn parse_tap(args: &[&str]) -> Result<TapCommand, CmdError> {
    let Some((&eyes, mut rest)) = args.split_first() else {
        return Err(usage("tap"));
    };
    let eyes = match eyes {
        "0" => Target::Eye(0),
        "1" => Target::Eye(1),
        "both" => Target::Both,
        _ => return Err(CmdError::new("bad-eye", format!("eye must be 0, 1 or both, not {:?}", eyes))),
    };
    let mut spec = TapSpec { eyes, every: 1, size: None };
    let (mut every_seen, mut size_seen) = (false, false);
    while let [key, value, more @ ..] = rest {
        match *key {
            "every" if !every_seen => spec.every = number("every", value, 1, MAX_EVERY)?,
            "size" if !size_seen => spec.size = Some(parse_size(value)?),
            _ => return Err(usage("tap")),
        }
        every_seen |= *key == "every";
        size_seen |= *key == "size";
        rest = more;
    }
    if !rest.is_empty() {
        return Err(usage("tap"));
    }
    Ok(TapCommand::Tap(spec))
}

/// A frame a tap has been sent and not released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold {
    pub seq: u32,
    /// The camera buffer it is (zero-copy), or `None` for the tap's own downscaled copy.
    pub buffer: Option<usize>,
    pub since_us: u64,
}

/// A hold that ended: the camera buffer may go back to the camera if nobody else holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Released {
    pub eye: u8,
    pub buffer: Option<usize>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    /// Frames the tap wanted and did not get: it held that eye's last one, the connection had
    /// replies queued, the kernel's buffer was full, or no spare camera buffer was left.
    pub skipped: u64,
}

pub struct Tap {
    pub spec: TapSpec,
    pub held: [Option<Hold>; 2],
    pub counts: [Counts; 2],
}

/// How a frame reaches a tap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The camera's buffer itself.
    Buffer,
    /// A downscaled copy of this size, in the tap's own buffer.
    Copy(Size),
}

/// Every tap, by connection id.
#[derive(Default)]
pub struct TapBook {
    taps: BTreeMap<u64, Tap>,
    /// Of taps gone too, per eye (for `/metrics`' counters).
    pub totals: [Counts; 2],
}

impl TapBook {
    pub fn is_empty(&self) -> bool {
        self.taps.is_empty()
    }

    pub fn is_tap(&self, id: u64) -> bool {
        self.taps.contains_key(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &Tap)> {
        self.taps.iter().map(|(&id, t)| (id, t))
    }

    /// `tap …` on connection `id`; `outputs` are the eyes' frame sizes. The reply line.
    pub fn start(&mut self, id: u64, spec: TapSpec, outputs: &[Size]) -> Result<String, CmdError> {
        if self.taps.contains_key(&id) {
            return Err(CmdError::new("already-tapping", "this connection is a tap already; untap first"));
        }
        if self.taps.len() >= MAX_TAPS {
            return Err(CmdError::new("busy", format!("{MAX_TAPS} taps at most")));
        }
        for &e in spec.eyes.eyes() {
            let Some(out) = outputs.get(e as usize) else {
                return Err(CmdError::new("bad-eye", format!("there is no eye {e}")));
            };
            if let Some(s) = spec.size
                && (s.w > out.w || s.h > out.h)
            {
                return Err(CmdError::new("out-of-range", format!("size {s} is larger than the frames ({out})")));
            }
        }
        self.taps.insert(id, Tap { spec, held: [None; 2], counts: [Counts::default(); 2] });
        let eyes = match spec.eyes {
            Target::Both => "both".to_string(),
            Target::Eye(e) => e.to_string(),
        };
        let size = spec.size.map_or(String::new(), |s| format!(" size={s}"));
        Ok(format!("ok tap eye={eyes} every={}{size}", spec.every))
    }

    /// Frame `seq` of `eye` exists: the taps it should go to, into `out`. Taps that want it
    /// but still hold that eye's last frame are skipped (and counted) here.
    pub fn route(&mut self, eye: u8, seq: u32, out: &mut Vec<(u64, Via)>) {
        for (&id, t) in &mut self.taps {
            if !t.spec.eyes.eyes().contains(&eye) || seq % t.spec.every != 0 {
                continue;
            }
            if t.held[eye as usize].is_some() {
                t.counts[eye as usize].skipped += 1;
                self.totals[eye as usize].skipped += 1;
                continue;
            }
            out.push((id, t.spec.size.map_or(Via::Buffer, Via::Copy)));
        }
    }

    /// A routed frame went out: the tap holds it until it releases it.
    pub fn delivered(&mut self, id: u64, eye: u8, seq: u32, buffer: Option<usize>, now_us: u64) {
        if let Some(t) = self.taps.get_mut(&id) {
            t.held[eye as usize] = Some(Hold { seq, buffer, since_us: now_us });
            t.counts[eye as usize].sent += 1;
            self.totals[eye as usize].sent += 1;
        }
    }

    /// A routed frame could not go out.
    pub fn skipped(&mut self, id: u64, eye: u8) {
        if let Some(t) = self.taps.get_mut(&id) {
            t.counts[eye as usize].skipped += 1;
            self.totals[eye as usize].skipped += 1;
        }
    }

    /// `release <seq> [eye]`: the holds it ends (both eyes' when they carry that sequence and
    /// no eye is named).
    pub fn release(&mut self, id: u64, seq: u32, eye: Option<u8>) -> Result<Vec<Released>, CmdError> {
        let t = self.taps.get_mut(&id).ok_or_else(|| CmdError::new("not-tapping", "this connection is not a tap"))?;
        let mut out = Vec::new();
        for (e, h) in t.held.iter_mut().enumerate() {
            if eye.is_none_or(|x| x as usize == e) && h.is_some_and(|h| h.seq == seq) {
                out.push(Released { eye: e as u8, buffer: h.take().and_then(|h| h.buffer) });
            }
        }
        if out.is_empty() {
            return Err(CmdError::new(
                "not-held",
                format!("frame {seq} is not held (released already, or never sent)"),
            ));
        }
        Ok(out)
    }

    /// `untap`, or the connection is gone: every hold it had ends. `None`: it was no tap.
    pub fn remove(&mut self, id: u64) -> Option<Vec<Released>> {
        let t = self.taps.remove(&id)?;
        Some(
            t.held
                .iter()
                .enumerate()
                .filter_map(|(e, h)| h.map(|h| Released { eye: e as u8, buffer: h.buffer }))
                .collect(),
        )
    }

    /// Taps that have held a frame longer than the limit: to be disconnected.
    pub fn stuck(&self, now_us: u64) -> Vec<u64> {
        self.taps
            .iter()
            .filter(|(_, t)| t.held.iter().flatten().any(|h| now_us.saturating_sub(h.since_us) > TAP_HOLD_TIMEOUT_US))
            .map(|(&id, _)| id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &[Size] = &[Size { w: 320, h: 240 }, Size { w: 320, h: 240 }];

    fn spec(line: &str) -> TapSpec {
        match parse(line) {
            Some(Ok(TapCommand::Tap(s))) => s,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn routed(b: &mut TapBook, eye: u8, seq: u32) -> Vec<(u64, Via)> {
        let mut out = Vec::new();
        b.route(eye, seq, &mut out);
        out
    }

    #[test]
    fn parses_the_verbs_and_refuses_bad_input_with_a_code() {
        assert_eq!(spec("tap both"), TapSpec { eyes: Target::Both, every: 1, size: None });
        assert_eq!(
            spec("tap 1 size 160x120 every 3"),
            TapSpec { eyes: Target::Eye(1), every: 3, size: Some(Size { w: 160, h: 120 }) }
        );
        assert_eq!(parse("release 42"), Some(Ok(TapCommand::Release { seq: 42, eye: None })));
        assert_eq!(parse("release 4294967295 1"), Some(Ok(TapCommand::Release { seq: u32::MAX, eye: Some(1) })));
        assert_eq!(parse("untap"), Some(Ok(TapCommand::Untap)));
        assert_eq!(parse("status"), None);
        assert_eq!((verb("  release 5"), verb("tapping"), verb("")), (Some("release"), None, None));
        assert_eq!(parse(""), None);
        let code = |l: &str| parse(l).unwrap().unwrap_err().code;
        assert_eq!(code("tap"), "usage");
        assert_eq!(code("tap 2"), "bad-eye");
        assert_eq!(code("tap both every"), "usage");
        assert_eq!(code("tap both every 0"), "out-of-range");
        assert_eq!(code("tap both every 1001"), "out-of-range");
        assert_eq!(code("tap both every -1"), "bad-number");
        assert_eq!(code("tap both every 2 every 3"), "usage");
        assert_eq!(code("tap both size 161x120"), "bad-size");
        assert_eq!(code("tap both size 160"), "bad-size");
        assert_eq!(code("tap both size 8x8"), "out-of-range");
        assert_eq!(code("tap both colour red"), "usage");
        assert_eq!(code("release"), "usage");
        assert_eq!(code("release x"), "bad-number");
        assert_eq!(code("release 99999999999"), "bad-number");
        assert_eq!(code("release 1 2"), "bad-eye");
        assert_eq!(code("untap now"), "usage");
    }

    #[test]
    fn frames_go_to_the_taps_that_want_them_and_a_held_eye_is_skipped() {
        let mut b = TapBook::default();
        assert_eq!(b.start(7, spec("tap both"), OUT).unwrap(), "ok tap eye=both every=1");
        b.start(8, spec("tap 1 every 2 size 32x24"), OUT).unwrap();
        assert_eq!(routed(&mut b, 0, 10), vec![(7, Via::Buffer)]);
        b.delivered(7, 0, 10, Some(3), 0);
        assert_eq!(routed(&mut b, 1, 10), vec![(7, Via::Buffer), (8, Via::Copy(Size { w: 32, h: 24 }))]);
        b.delivered(7, 1, 10, Some(1), 0);
        b.skipped(8, 1);
        assert_eq!(routed(&mut b, 1, 11), vec![], "7 holds eye 1; 8 wants even frames");
        assert_eq!(routed(&mut b, 0, 12), vec![], "7 still holds eye 0");
        assert_eq!(routed(&mut b, 1, 12), vec![(8, Via::Copy(Size { w: 32, h: 24 }))]);
        let t = b.taps.get(&7).unwrap();
        assert_eq!((t.counts[0], t.counts[1]), (Counts { sent: 1, skipped: 1 }, Counts { sent: 1, skipped: 2 }));
        assert_eq!(b.taps[&8].counts[1], Counts { sent: 0, skipped: 1 });
        // Releasing the pair frees both buffers; the next frames flow again.
        assert_eq!(
            b.release(7, 10, None).unwrap(),
            vec![Released { eye: 0, buffer: Some(3) }, Released { eye: 1, buffer: Some(1) }]
        );
        assert_eq!(routed(&mut b, 0, 13), vec![(7, Via::Buffer)]);
        assert_eq!(b.totals[0], Counts { sent: 1, skipped: 1 });
    }

    #[test]
    fn release_of_one_eye_and_errors() {
        let mut b = TapBook::default();
        assert_eq!(b.release(1, 5, None).unwrap_err().code, "not-tapping");
        b.start(1, spec("tap both size 32x24"), OUT).unwrap();
        b.delivered(1, 0, 5, None, 0);
        b.delivered(1, 1, 5, None, 0);
        assert_eq!(b.release(1, 5, Some(1)).unwrap(), vec![Released { eye: 1, buffer: None }]);
        assert_eq!(b.release(1, 5, Some(1)).unwrap_err().code, "not-held");
        assert_eq!(b.release(1, 6, None).unwrap_err().code, "not-held");
        assert_eq!(b.remove(1), Some(vec![Released { eye: 0, buffer: None }]));
        assert_eq!(b.remove(1), None);
    }

    #[test]
    fn start_checks_the_budget_the_eyes_and_the_size() {
        let mut b = TapBook::default();
        assert_eq!(b.start(1, spec("tap both size 640x480"), OUT).unwrap_err().code, "out-of-range");
        assert_eq!(b.start(1, spec("tap 1"), &OUT[..1]).unwrap_err().code, "bad-eye");
        for id in 0..MAX_TAPS as u64 {
            b.start(id, spec("tap 0"), OUT).unwrap();
        }
        assert_eq!(b.start(0, spec("tap 0"), OUT).unwrap_err().code, "already-tapping");
        assert_eq!(b.start(99, spec("tap 0"), OUT).unwrap_err().code, "busy");
        b.remove(0);
        assert!(b.start(99, spec("tap 0"), OUT).is_ok());
    }

    #[test]
    fn a_tap_holding_a_frame_too_long_is_stuck() {
        let mut b = TapBook::default();
        b.start(1, spec("tap both"), OUT).unwrap();
        b.start(2, spec("tap both"), OUT).unwrap();
        b.delivered(1, 0, 1, Some(0), 1_000);
        b.delivered(2, 1, 1, Some(1), 1_000);
        b.release(2, 1, None).unwrap();
        assert!(b.stuck(1_000 + TAP_HOLD_TIMEOUT_US).is_empty());
        assert_eq!(b.stuck(1_001 + TAP_HOLD_TIMEOUT_US), vec![1], "2 released in time");
    }

    #[test]
    fn every_n_picks_the_same_sequences_on_both_eyes() {
        let mut b = TapBook::default();
        b.start(1, spec("tap both every 3"), OUT).unwrap();
        let picked: Vec<u32> = (0..10)
            .filter(|&s| {
                let got = !routed(&mut b, 0, s).is_empty();
                assert_eq!(got, !routed(&mut b, 1, s).is_empty());
                got
            })
            .collect();
        assert_eq!(picked, vec![0, 3, 6, 9]);
    }
}
