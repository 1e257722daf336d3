//! The crop timeline of one eye, keyed by frame sequence. A command does not change "the
//! current crop" but schedules a crop from a given sequence on; the loop asks for the crop of
//! the sequence it is about to request. Keying by sequence is what lets a command for both
//! eyes land on the same capture tick in both, however the two request queues interleave.

use crate::camera::Rect;

/// `a` is at or after `b` in wrapping sequence order.
pub fn seq_at_or_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

#[derive(Clone, Debug)]
pub struct CropSchedule {
    /// The crop in force before every pending change.
    base: Rect,
    /// Future changes, in sequence order.
    pending: Vec<(u32, Rect)>,
}

impl CropSchedule {
    pub fn new(initial: Rect) -> Self {
        CropSchedule { base: initial, pending: Vec::new() }
    }

    /// From `seq` on, use `crop` (replacing anything scheduled at or after `seq`).
    pub fn set_from(&mut self, seq: u32, crop: Rect) {
        self.pending.retain(|&(s, _)| !seq_at_or_after(s, seq));
        self.pending.push((seq, crop));
    }

    /// The crop for frame `seq`; changes at or before `seq` become the base (the loop asks in
    /// increasing sequence order).
    pub fn crop_for(&mut self, seq: u32) -> Rect {
        while let Some(&(s, c)) = self.pending.first() {
            if !seq_at_or_after(seq, s) {
                break;
            }
            self.base = c;
            self.pending.remove(0);
        }
        self.base
    }

    /// The crop that will be in force once everything scheduled has happened.
    pub fn latest(&self) -> Rect {
        self.pending.last().map_or(self.base, |&(_, c)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Rect = Rect::new(0, 0, 100, 100);
    const B: Rect = Rect::new(10, 0, 100, 100);
    const C: Rect = Rect::new(20, 0, 100, 100);

    #[test]
    fn changes_take_effect_on_their_sequence() {
        let mut s = CropSchedule::new(A);
        s.set_from(5, B);
        assert_eq!(s.latest(), B);
        assert_eq!(s.crop_for(4), A);
        assert_eq!(s.crop_for(5), B);
        assert_eq!(s.crop_for(6), B);
    }

    #[test]
    fn a_later_command_for_an_earlier_sequence_replaces_what_follows() {
        let mut s = CropSchedule::new(A);
        s.set_from(10, B);
        s.set_from(8, C);
        assert_eq!(s.crop_for(9), C);
        assert_eq!(s.crop_for(10), C);
    }

    #[test]
    fn sequence_order_survives_wrapping() {
        assert!(seq_at_or_after(2, u32::MAX - 1));
        assert!(!seq_at_or_after(u32::MAX - 1, 2));
        let mut s = CropSchedule::new(A);
        s.set_from(1, B);
        assert_eq!(s.crop_for(u32::MAX), A);
        assert_eq!(s.crop_for(1), B);
    }
}
