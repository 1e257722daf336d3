//! The fan-out policy for one viewer of one eye. A viewer starts by waiting for a keyframe (it
//! cannot decode anything else); while it keeps up it gets every access unit; when its queue
//! passes the limit it loses the unsent frames and waits for the next keyframe (the drops are
//! counted) and asks for one, once (a joining viewer asks as it joins; a request stands until a
//! keyframe comes out: `keyframe::KeyframeGate`); when it makes no progress at all for
//! `stuck_us` it is to be disconnected. Nothing
//! a slow viewer does reaches the others or the cameras: they only ever append to its queue.

use std::sync::Arc;

use super::outbox::Outbox;
use super::wire::Packet;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Unsent frames a viewer may have queued before it is skipped to the next keyframe.
    pub max_queued_frames: usize,
    /// Unsent bytes likewise (a few keyframes' worth).
    pub max_queued_bytes: usize,
    /// No byte written for this long while data waits: disconnect.
    pub stuck_us: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_queued_frames: 12, max_queued_bytes: 4 << 20, stuck_us: 10_000_000 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// Not queued; `want_keyframe` (on the frame that skipped the viewer) asks the encoder for
    /// an IDR so the viewer can resume.
    Dropped {
        want_keyframe: bool,
    },
}

#[derive(Debug)]
pub struct Subscriber {
    waiting_keyframe: bool,
    /// Has received its first keyframe; frames passed over before that are not drops.
    started: bool,
    pub dropped: u64,
    pub queued: u64,
    last_progress_us: u64,
    limits: Limits,
}

impl Subscriber {
    pub fn new(limits: Limits, now_us: u64) -> Self {
        Subscriber { waiting_keyframe: true, started: false, dropped: 0, queued: 0, last_progress_us: now_us, limits }
    }

    pub fn waiting_keyframe(&self) -> bool {
        self.waiting_keyframe
    }

    pub fn offer(&mut self, outbox: &mut Outbox, pkt: &Arc<Packet>, now_us: u64) -> Offer {
        if outbox.is_empty() {
            // Nothing was waiting, so nothing was stalled until now.
            self.last_progress_us = now_us;
        }
        let over = outbox.video_frames() >= self.limits.max_queued_frames
            || outbox.pending_bytes() + pkt.len() > self.limits.max_queued_bytes;
        let skipped = over && !self.waiting_keyframe;
        if skipped {
            self.dropped += outbox.drop_unstarted_video() as u64;
            self.waiting_keyframe = true;
        }
        if self.waiting_keyframe {
            if pkt.keyframe && outbox.video_frames() < self.limits.max_queued_frames {
                self.waiting_keyframe = false;
                self.started = true;
            } else {
                self.dropped += self.started as u64;
                return Offer::Dropped { want_keyframe: skipped };
            }
        }
        outbox.push_video(pkt.clone());
        self.queued += 1;
        Offer::Queued
    }

    /// Call after a write that moved at least one byte.
    pub fn progressed(&mut self, now_us: u64) {
        self.last_progress_us = now_us;
    }

    pub fn is_stuck(&self, outbox: &Outbox, now_us: u64) -> bool {
        self.stuck_at(outbox).is_some_and(|t| now_us > t)
    }

    /// When the viewer counts as stuck if nothing more is written (None: nothing waits).
    pub fn stuck_at(&self, outbox: &Outbox) -> Option<u64> {
        (!outbox.is_empty()).then_some(self.last_progress_us + self.limits.stuck_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{FrameMeta, Rect};
    use crate::encoder::AccessUnit;

    fn packet(seq: u32, keyframe: bool) -> Arc<Packet> {
        let mut data = vec![0u8; 42 + 100];
        data[42] = seq as u8;
        let meta = FrameMeta { eye: 0, sequence: seq, capture_us: 0, crop: Rect::default() };
        Arc::new(Packet::new(AccessUnit { data, headroom: 42, keyframe }, meta, 0))
    }

    const L: Limits = Limits { max_queued_frames: 3, max_queued_bytes: 1 << 20, stuck_us: 1000 };

    #[test]
    fn a_new_viewer_starts_at_a_keyframe() {
        let mut o = Outbox::default();
        let mut s = Subscriber::new(L, 0);
        // Not a request per frame passed over: the viewer asked once, as it joined.
        assert_eq!(s.offer(&mut o, &packet(1, false), 0), Offer::Dropped { want_keyframe: false });
        assert_eq!(s.offer(&mut o, &packet(2, true), 0), Offer::Queued);
        assert_eq!(s.offer(&mut o, &packet(3, false), 0), Offer::Queued);
        assert_eq!(o.video_frames(), 2);
        assert_eq!(s.dropped, 0, "frames before the first keyframe are not drops");
    }

    #[test]
    fn a_viewer_that_keeps_up_gets_everything() {
        let mut o = Outbox::default();
        let mut s = Subscriber::new(L, 0);
        for seq in 0..100 {
            assert_eq!(s.offer(&mut o, &packet(seq, seq % 30 == 0), seq as u64), Offer::Queued);
            o.advance(o.pending_bytes(), |_| {});
            s.progressed(seq as u64);
        }
        assert_eq!((s.dropped, s.queued), (0, 100));
    }

    #[test]
    fn a_slow_viewer_skips_to_the_next_keyframe_then_a_stalled_one_is_stuck() {
        let mut o = Outbox::default();
        let mut s = Subscriber::new(L, 0);
        s.offer(&mut o, &packet(0, true), 0);
        s.offer(&mut o, &packet(1, false), 10);
        s.offer(&mut o, &packet(2, false), 20);
        o.advance(5, |_| {}); // packet 0 partly written: it must finish
        s.progressed(20);
        assert_eq!(s.offer(&mut o, &packet(3, false), 30), Offer::Dropped { want_keyframe: true });
        assert_eq!(s.dropped, 3, "packets 1, 2 and 3");
        assert_eq!(o.video_frames(), 1);
        assert_eq!(s.offer(&mut o, &packet(4, false), 40), Offer::Dropped { want_keyframe: false }, "asked once");
        assert_eq!(s.offer(&mut o, &packet(5, true), 50), Offer::Queued);
        assert!(!s.waiting_keyframe());
        assert!(!s.is_stuck(&o, 1000));
        assert!(s.is_stuck(&o, 1021));
        o.advance(o.pending_bytes(), |_| {});
        assert!(!s.is_stuck(&o, 5000), "an empty queue is never stuck");
    }
}
