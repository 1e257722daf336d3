//! Stereo pairing: which frame of eye 1 was captured together with which frame of eye 0, and
//! how far apart. Two free-running cameras (no hardware sync) start exposures at unrelated
//! moments; pairing by capture timestamp (libcamera's `SensorTimestamp`, CLOCK_MONOTONIC) is
//! what remains. Sans-IO: fed with (eye, sequence, capture time) of every good frame, in the
//! order each eye delivers them (the two eyes may interleave in any order).
//!
//! A frame pairs with the other eye's frame nearest in time if that is within half a frame
//! period; frames that cannot pair any more (the other eye has moved past them) count as
//! unpaired. Greedy is exact here: frames of one eye arrive in capture order, so once a frame
//! is matched within half a period no later frame of the same eye can be nearer.

use std::collections::VecDeque;

use crate::histogram::Histogram;

/// Frames of one eye kept waiting for the other eye (a few frame times of completion jitter).
const WINDOW: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    pub sequence: [u32; 2],
    pub capture_us: [u64; 2],
    /// capture time of eye 1 minus that of eye 0, µs.
    pub skew_us: i64,
}

#[derive(Clone, Debug)]
pub struct Pairing {
    tolerance_us: u64,
    pending: [VecDeque<(u32, u64)>; 2],
    pub pairs: u64,
    /// Frames of each eye that found no partner.
    pub unpaired: [u64; 2],
    /// |skew| of every pair, µs.
    pub skew: Histogram,
    pub last: Option<Pair>,
}

impl Pairing {
    /// `period_us`: the nominal frame period; frames pair within half of it.
    pub fn new(period_us: u64) -> Pairing {
        Pairing {
            tolerance_us: period_us / 2,
            pending: [VecDeque::new(), VecDeque::new()],
            pairs: 0,
            unpaired: [0, 0],
            skew: Histogram::new(),
            last: None,
        }
    }

    pub fn set_period(&mut self, period_us: u64) {
        self.tolerance_us = period_us / 2;
    }

    /// A good frame of `eye` (0 or 1). Returns the pair it completes, if any.
    pub fn push(&mut self, eye: u8, sequence: u32, capture_us: u64) -> Option<Pair> {
        let (me, other) = if eye == 0 { (0, 1) } else { (1, 0) };
        let dist = |t: u64| t.abs_diff(capture_us);
        let best =
            self.pending[other].iter().enumerate().min_by_key(|(_, (_, t))| dist(*t)).map(|(i, &(s, t))| (i, s, t));
        if let Some((i, seq_o, t_o)) = best.filter(|&(_, _, t)| dist(t) <= self.tolerance_us) {
            // Everything of the other eye before the partner is now past pairing, and so is
            // everything of this eye still waiting (its best partner would have been this one).
            self.unpaired[other] += i as u64;
            self.pending[other].drain(..=i);
            self.unpaired[me] += self.pending[me].len() as u64;
            self.pending[me].clear();
            let (mut seq, mut t) = ([0; 2], [0; 2]);
            (seq[me], t[me], seq[other], t[other]) = (sequence, capture_us, seq_o, t_o);
            let pair = Pair { sequence: seq, capture_us: t, skew_us: t[1] as i64 - t[0] as i64 };
            self.pairs += 1;
            self.skew.record(pair.skew_us.unsigned_abs());
            self.last = Some(pair);
            return Some(pair);
        }
        // The other eye's frames older than this one by more than the tolerance can only get
        // further from this eye's later frames: they stay unpaired.
        let stale = self.pending[other].iter().take_while(|(_, t)| t + self.tolerance_us < capture_us).count();
        self.unpaired[other] += stale as u64;
        self.pending[other].drain(..stale);
        self.pending[me].push_back((sequence, capture_us));
        if self.pending[me].len() > WINDOW {
            self.pending[me].pop_front();
            self.unpaired[me] += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 33_333;

    #[test]
    fn simultaneous_frames_pair_with_zero_skew() {
        let mut p = Pairing::new(P);
        for i in 0..10u32 {
            let t = 1_000_000 + i as u64 * P;
            assert_eq!(p.push(0, i, t), None);
            let pair = p.push(1, i, t).expect("pairs");
            assert_eq!((pair.sequence, pair.skew_us), ([i, i], 0));
        }
        assert_eq!((p.pairs, p.unpaired), (10, [0, 0]));
        assert_eq!(p.skew.max(), 0);
    }

    #[test]
    fn offset_cameras_pair_by_time_not_by_sequence_and_in_any_arrival_order() {
        let mut p = Pairing::new(P);
        // Eye 1 started 3 frames later and exposes 5 ms after eye 0; its completions arrive
        // in bursts, before or after eye 0's.
        let t0 = |i: u64| 10_000_000 + i * P;
        let t1 = |j: u64| 10_000_000 + (j + 3) * P + 5_000;
        let mut got = Vec::new();
        for k in 0..6u64 {
            got.extend(p.push(1, k as u32, t1(k)));
            got.extend(p.push(0, (k + 3) as u32, t0(k + 3)));
        }
        assert_eq!(got.len(), 6);
        for (k, pair) in got.iter().enumerate() {
            assert_eq!(pair.sequence, [k as u32 + 3, k as u32]);
            assert_eq!(pair.skew_us, 5_000);
        }
        assert_eq!(p.last.unwrap().skew_us, 5_000);
    }

    #[test]
    fn frames_without_a_partner_are_counted_once() {
        let mut p = Pairing::new(P);
        // Eye 1 drops every other frame: half of eye 0's frames find nobody.
        for i in 0..20u32 {
            let t = 5_000_000 + i as u64 * P;
            p.push(0, i, t);
            if i % 2 == 0 {
                assert!(p.push(1, i, t + 1_000).is_some());
            }
        }
        assert_eq!(p.pairs, 10);
        assert_eq!(p.unpaired[0], 9, "odd frames 1..=17; 19 may still find a partner");
        // Eye 1's next frame is two periods later: 19 is out of reach now, and counted once.
        assert_eq!(p.push(1, 22, 5_000_000 + 22 * P), None);
        assert_eq!(p.unpaired, [10, 0]);
    }

    #[test]
    fn frames_further_apart_than_half_a_period_never_pair() {
        let mut p = Pairing::new(P);
        p.push(0, 0, 1_000_000);
        assert_eq!(p.push(1, 0, 1_000_000 + P / 2 + 1), None);
        assert_eq!(p.pairs, 0);
        // A long silence of one eye does not keep frames forever.
        for i in 1..=(WINDOW as u32 + 4) {
            p.push(0, i, 3_000_000 + i as u64 * P);
        }
        assert!(p.pending[0].len() <= WINDOW);
        assert_eq!(p.unpaired[1], 1);
        assert!(p.unpaired[0] >= 4);
    }
}
