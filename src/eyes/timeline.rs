//! One eye's movement plan, keyed by frame sequence. A command never changes "the current
//! crop": it schedules a segment from a given sequence on — hold a pose (a saccade: the next
//! frame is already there), glide to a pose over N frames (smooth pursuit, eased), or hold a
//! raw crop. The loop asks for the aim of each sequence as it requests it. Keying by sequence
//! is what lets a command for both eyes land on the same capture tick in both, however their
//! request queues interleave, and keeping the commanded plan here (not reading back the
//! camera's crop) is what keeps fast command streams from losing updates.

use super::geometry::{Geometry, Pose, ease};
use crate::camera::Rect;

/// `a` is at or after `b` in wrapping sequence order.
pub fn seq_at_or_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Aim {
    Pose(Pose),
    /// A raw sensor crop (the `crop` command), used as given.
    Raw(Rect),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Segment {
    Hold(Aim),
    /// From `from` to `to` over `frames` frames: the first frame of the segment has moved
    /// 1/frames of the way, the last one is exactly at `to`.
    Glide {
        from: Pose,
        to: Pose,
        frames: u32,
    },
}

impl Segment {
    fn at(&self, offset: u32) -> Aim {
        match *self {
            Segment::Hold(a) => a,
            Segment::Glide { from, to, frames } => {
                let t = (offset as f64 + 1.0) / frames.max(1) as f64;
                Aim::Pose(Pose::lerp(from, to, ease(t)))
            }
        }
    }

    fn end(&self) -> Aim {
        match *self {
            Segment::Hold(a) => a,
            Segment::Glide { to, .. } => Aim::Pose(to),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Timeline {
    /// Segments by start sequence, in order; never empty.
    entries: Vec<(u32, Segment)>,
}

impl Timeline {
    pub fn new(initial: Aim) -> Self {
        Timeline { entries: vec![(0, Segment::Hold(initial))] }
    }

    /// From `seq` on, follow `seg` (anything planned at or after `seq` is replaced).
    pub fn set_from(&mut self, seq: u32, seg: Segment) {
        let first = self.entries[0];
        self.entries.retain(|&(s, _)| !seq_at_or_after(s, seq));
        if self.entries.is_empty() {
            // Everything was in the future: keep the oldest as the base for earlier frames.
            self.entries.push((seq.wrapping_sub(1), Segment::Hold(first.1.end())));
        }
        self.entries.push((seq, seg));
    }

    fn index_at(&self, seq: u32) -> usize {
        self.entries.iter().rposition(|&(s, _)| seq_at_or_after(seq, s)).unwrap_or(0)
    }

    /// Where to aim for frame `seq`, without forgetting anything.
    pub fn peek(&self, seq: u32) -> Aim {
        let i = self.index_at(seq);
        let (start, seg) = self.entries[i];
        seg.at(seq.wrapping_sub(start))
    }

    /// Where to aim for frame `seq`; segments before the one in force are dropped (the loop
    /// asks in increasing sequence order).
    pub fn at(&mut self, seq: u32) -> Aim {
        let i = self.index_at(seq);
        self.entries.drain(..i);
        self.peek(seq)
    }

    /// Where the eye ends up once everything planned has happened: the commanded aim.
    pub fn target(&self) -> Aim {
        self.entries.last().expect("never empty").1.end()
    }

    /// The commanded aim as a pose (a raw crop is described by its nearest pose).
    pub fn target_pose(&self, g: &Geometry, flip: crate::camera::Flip) -> Pose {
        match self.target() {
            Aim::Pose(p) => p,
            Aim::Raw(r) => g.pose_of(r, flip),
        }
    }

    /// Plan a move to `to` starting at `seq`: a saccade if `frames` ≤ 1, else an eased glide
    /// from wherever the eye is planned to be at `seq`.
    pub fn move_to(&mut self, seq: u32, to: Pose, frames: u32, g: &Geometry, flip: crate::camera::Flip) {
        if frames <= 1 {
            return self.set_from(seq, Segment::Hold(Aim::Pose(to)));
        }
        let from = match self.peek(seq.wrapping_sub(1)) {
            Aim::Pose(p) => p,
            Aim::Raw(r) => g.pose_of(r, flip),
        };
        self.set_from(seq, Segment::Glide { from, to, frames });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{Flip, Size};

    fn p(x: f64) -> Pose {
        Pose { x, ..Pose::default() }
    }

    fn x_of(a: Aim) -> f64 {
        match a {
            Aim::Pose(p) => p.x,
            Aim::Raw(_) => f64::NAN,
        }
    }

    fn g() -> Geometry {
        Geometry::new(Rect::new(0, 0, 640, 360), Size { w: 320, h: 360 }, 8.0, Size { w: 64, h: 64 })
    }

    #[test]
    fn a_saccade_lands_on_its_sequence() {
        let mut t = Timeline::new(Aim::Pose(p(0.0)));
        t.move_to(10, p(0.5), 0, &g(), Flip::None);
        assert_eq!(x_of(t.at(9)), 0.0);
        assert_eq!(x_of(t.at(10)), 0.5);
        assert_eq!(x_of(t.target()), 0.5);
    }

    #[test]
    fn a_glide_eases_through_intermediate_frames_and_ends_exactly() {
        let mut t = Timeline::new(Aim::Pose(p(-1.0)));
        t.move_to(100, p(1.0), 9, &g(), Flip::None);
        let xs: Vec<f64> = (99..=110).map(|s| x_of(t.at(s))).collect();
        assert_eq!(xs[0], -1.0, "before the start");
        for w in xs[1..10].windows(2) {
            assert!(w[1] > w[0], "moves every frame: {xs:?}");
        }
        assert!(xs[1] > -1.0 && xs[1] < -0.9, "starts gently");
        assert_eq!(xs[9], 1.0, "frame 108 = start + 8 is the ninth and last: exactly the target");
        assert_eq!(xs[11], 1.0);
    }

    #[test]
    fn retargeting_mid_glide_starts_from_where_the_eye_is_planned_to_be() {
        let mut t = Timeline::new(Aim::Pose(p(0.0)));
        t.move_to(0, p(1.0), 10, &g(), Flip::None);
        let mid = x_of(t.peek(4));
        t.move_to(5, p(0.0), 10, &g(), Flip::None);
        assert_eq!(x_of(t.at(4)), mid, "frames before the new start keep the old plan");
        let next = x_of(t.at(5));
        assert!((next - mid).abs() < 0.1, "no jump: {mid} → {next}");
        assert_eq!(x_of(t.at(14)), 0.0);
    }

    #[test]
    fn a_command_for_an_earlier_sequence_replaces_the_later_plan_and_wrapping_works() {
        let mut t = Timeline::new(Aim::Pose(p(0.0)));
        t.set_from(u32::MAX - 1, Segment::Hold(Aim::Pose(p(0.2))));
        t.set_from(3, Segment::Hold(Aim::Pose(p(0.4))));
        t.set_from(1, Segment::Hold(Aim::Raw(Rect::new(0, 0, 64, 64))));
        assert_eq!(x_of(t.at(u32::MAX - 2)), 0.0);
        assert_eq!(x_of(t.at(u32::MAX)), 0.2);
        assert_eq!(t.at(1), Aim::Raw(Rect::new(0, 0, 64, 64)));
        assert_eq!(t.at(5), Aim::Raw(Rect::new(0, 0, 64, 64)), "the plan for 3 was replaced");
    }

    #[test]
    fn gliding_from_a_raw_crop_starts_at_its_pose() {
        let g = g();
        let mut t = Timeline::new(Aim::Raw(Rect::new(0, 0, 160, 180)));
        t.move_to(1, p(0.0), 4, &g, Flip::None);
        match t.at(1) {
            Aim::Pose(q) => assert!(q.x < -0.5, "starts near the left edge where the raw crop was: {q:?}"),
            a => panic!("{a:?}"),
        }
    }
}
