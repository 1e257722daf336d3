//! `watch` events, typed, with one formatter: `event <kind> key=value …` (or `event state
//! {json}`). Sent to every connection that asked with `watch`, in the order they happen.

use std::fmt;

use super::reply::StateView;
use super::text::value;
use crate::camera::{Flip, Rect};

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The commanded state changed (after every command that changes it).
    State(StateView),
    /// An eye's applied crop changed, from frame `seq` on.
    Crop {
        eye: u8,
        seq: u32,
        crop: Rect,
    },
    /// The first frame at or after a move's last sequence (`until`, or `seq` for a saccade)
    /// was captured: the eye is where it was sent. Exactly one per move that was not
    /// overtaken by another.
    Arrived {
        eye: u8,
        seq: u32,
        crop: Rect,
    },
    Flip {
        eye: u8,
        flip: Flip,
    },
    Pause,
    Resume,
    Saved {
        path: String,
    },
    Viewer {
        eye: u8,
        joined: bool,
        viewers: usize,
    },
    Health {
        eye: u8,
        camera: String,
        encoder: String,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::State(s) => write!(f, "event state {}", s.to_json()),
            Event::Crop { eye, seq, crop } => write!(f, "event crop eye={eye} seq={seq} crop={crop}"),
            Event::Arrived { eye, seq, crop } => write!(f, "event arrived eye={eye} seq={seq} crop={crop}"),
            Event::Flip { eye, flip } => write!(f, "event flip eye={eye} flip={}", flip.name()),
            Event::Pause => f.write_str("event pause"),
            Event::Resume => f.write_str("event resume"),
            Event::Saved { path } => write!(f, "event saved path={}", value(path)),
            Event::Viewer { eye, joined, viewers } => {
                write!(f, "event viewer eye={eye} {} viewers={viewers}", if *joined { "joined" } else { "left" })
            }
            Event::Health { eye, camera, encoder } => {
                write!(f, "event health eye={eye} camera={} encoder={}", value(camera), value(encoder))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_format_on_one_line_with_quoted_values_where_needed() {
        assert_eq!(
            Event::Crop { eye: 1, seq: 9, crop: Rect::new(2, 4, 6, 8) }.to_string(),
            "event crop eye=1 seq=9 crop=2,4,6,8"
        );
        assert_eq!(
            Event::Arrived { eye: 0, seq: 12, crop: Rect::new(2, 4, 6, 8) }.to_string(),
            "event arrived eye=0 seq=12 crop=2,4,6,8"
        );
        assert_eq!(
            Event::Viewer { eye: 0, joined: false, viewers: 2 }.to_string(),
            "event viewer eye=0 left viewers=2"
        );
        assert_eq!(
            Event::Health { eye: 1, camera: "stalled".into(), encoder: "failing: out of\nmemory".into() }.to_string(),
            r#"event health eye=1 camera=stalled encoder="failing: out of\nmemory""#
        );
        assert_eq!(Event::Saved { path: "/a b/c".into() }.to_string(), r#"event saved path="/a b/c""#);
        assert_eq!(Event::Flip { eye: 0, flip: Flip::HV }.to_string(), "event flip eye=0 flip=hv");
        assert!(!Event::Pause.to_string().contains('\n'));
    }
}
