//! Who holds what inside a memory-to-memory encoder, without a single ioctl: which OUTPUT
//! buffer (slot) holds which frame, which frames have their encoded result, and which may go
//! back to the camera. A frame is handed back exactly once: when its result is in *and* the
//! device has returned its OUTPUT buffer (until then the device may still read the camera's
//! memory), or by [`Ledger::abort`] after STREAMOFF, which returns every buffer at once.
//!
//! Frames are matched to results by key: the encoder stamps each OUTPUT buffer with its key as
//! timestamp and the driver copies it onto the CAPTURE buffer made from it.

use std::collections::VecDeque;

struct Entry<T, R> {
    key: u64,
    /// The OUTPUT buffer holding the frame; None once the device returned it.
    slot: Option<usize>,
    item: T,
    result: Option<Result<R, String>>,
}

/// What [`Ledger::complete`] found for a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matched {
    /// The frame; `skipped` older frames got no picture and were failed.
    Frame { skipped: usize },
    /// No frame waits under this key (a stray buffer, or one already complete).
    Unknown,
}

pub const NO_PICTURE: &str = "the encoder produced no picture for this frame";

pub struct Ledger<T, R> {
    slots: Vec<Option<u64>>,
    frames: VecDeque<Entry<T, R>>,
    next_key: u64,
}

impl<T, R> Ledger<T, R> {
    pub fn new(slots: usize) -> Self {
        Ledger { slots: vec![None; slots], frames: VecDeque::new(), next_key: 1 }
    }

    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Set the number of OUTPUT buffers; only while the device holds none of them.
    pub fn set_slot_count(&mut self, n: usize) -> bool {
        if self.busy_slots() > 0 {
            return false;
        }
        self.slots = vec![None; n];
        true
    }

    /// Frames not yet handed back.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// OUTPUT buffers the device holds.
    pub fn busy_slots(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// A free OUTPUT buffer, `preferred` if it is free (a camera buffer keeps its V4L2 buffer,
    /// so the driver's dma-buf import is cached), else the first free one.
    pub fn free_slot(&self, preferred: usize) -> Option<usize> {
        if self.slots.get(preferred) == Some(&None) {
            return Some(preferred);
        }
        self.slots.iter().position(Option::is_none)
    }

    /// The key the next admitted frame will get (stamp it on the OUTPUT buffer).
    pub fn next_key(&self) -> u64 {
        self.next_key
    }

    /// A frame was queued in `slot`. Gives the item back if the slot is not free.
    pub fn admit(&mut self, slot: usize, item: T) -> Result<u64, T> {
        match self.slots.get_mut(slot) {
            Some(s @ None) => {
                let key = self.next_key;
                self.next_key += 1;
                *s = Some(key);
                self.frames.push_back(Entry { key, slot: Some(slot), item, result: None });
                Ok(key)
            }
            _ => Err(item),
        }
    }

    /// DQBUF(OUTPUT) gave `slot` back. False when the slot held nothing.
    pub fn output_returned(&mut self, slot: usize) -> bool {
        let Some(key) = self.slots.get_mut(slot).and_then(Option::take) else {
            return false;
        };
        if let Some(e) = self.frames.iter_mut().find(|e| e.key == key) {
            e.slot = None;
        }
        true
    }

    /// The result for the frame stamped `key`. Older frames still without one never get one
    /// (encoders emit in order): they fail with [`NO_PICTURE`].
    pub fn complete(&mut self, key: u64, result: Result<R, String>) -> Matched {
        let Some(pos) = self.frames.iter().position(|e| e.key == key && e.result.is_none()) else {
            return Matched::Unknown;
        };
        let mut skipped = 0;
        for e in self.frames.iter_mut().take(pos).filter(|e| e.result.is_none()) {
            e.result = Some(Err(NO_PICTURE.into()));
            skipped += 1;
        }
        self.frames[pos].result = Some(result);
        Matched::Frame { skipped }
    }

    /// The oldest frame, if it is finished: result in and OUTPUT buffer back. In queue order.
    pub fn take_ready(&mut self) -> Option<(T, Result<R, String>)> {
        let front = self.frames.front()?;
        if front.result.is_none() || front.slot.is_some() {
            return None;
        }
        let e = self.frames.pop_front()?;
        Some((e.item, e.result.expect("checked above")))
    }

    /// Some result waits only for its OUTPUT buffer to come back (poll for POLLOUT).
    pub fn waiting_for_output(&self) -> bool {
        self.frames.iter().any(|e| e.result.is_some() && e.slot.is_some())
    }

    /// After STREAMOFF the device holds nothing: every frame comes back, with its result if it
    /// had one, else failed with `reason`.
    pub fn abort(&mut self, reason: &str) -> Vec<(T, Result<R, String>)> {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.frames.drain(..).map(|e| (e.item, e.result.unwrap_or_else(|| Err(reason.to_string())))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_goes_back_only_with_its_result_and_its_output_buffer() {
        let mut l: Ledger<&str, u32> = Ledger::new(2);
        let k = l.admit(0, "a").unwrap();
        assert!(l.take_ready().is_none());
        assert_eq!(l.complete(k, Ok(7)), Matched::Frame { skipped: 0 });
        assert!(l.waiting_for_output(), "the device may still read the camera buffer");
        assert!(l.take_ready().is_none());
        assert!(l.output_returned(0));
        assert!(!l.waiting_for_output());
        assert_eq!(l.take_ready(), Some(("a", Ok(7))));
        assert!(l.is_empty() && l.take_ready().is_none());
        // The other order works the same.
        let k = l.admit(1, "b").unwrap();
        assert!(l.output_returned(1));
        assert!(l.take_ready().is_none());
        l.complete(k, Ok(8));
        assert_eq!(l.take_ready(), Some(("b", Ok(8))));
    }

    #[test]
    fn slots_are_reused_preferably_by_camera_index_and_never_doubly_booked() {
        let mut l: Ledger<u32, ()> = Ledger::new(3);
        assert_eq!(l.free_slot(1), Some(1));
        l.admit(1, 10).unwrap();
        assert_eq!(l.free_slot(1), Some(0));
        assert_eq!(l.admit(1, 11), Err(11), "slot 1 is busy: the item comes back");
        assert_eq!(l.admit(7, 12), Err(12), "no such slot");
        l.admit(0, 13).unwrap();
        l.admit(2, 14).unwrap();
        assert_eq!(l.free_slot(0), None);
        assert_eq!(l.busy_slots(), 3);
        assert!(!l.set_slot_count(8), "cannot resize while the device holds buffers");
        assert!(!l.output_returned(9));
    }

    #[test]
    fn a_result_for_a_later_frame_fails_the_older_ones_that_got_none() {
        let mut l: Ledger<u32, u32> = Ledger::new(4);
        let keys: Vec<u64> = (0..3).map(|i| l.admit(i as usize, i).unwrap()).collect();
        (0..3).for_each(|s| assert!(l.output_returned(s)));
        assert_eq!(l.complete(keys[2], Ok(2)), Matched::Frame { skipped: 2 });
        assert_eq!(l.complete(keys[0], Ok(0)), Matched::Unknown, "already failed");
        assert_eq!(l.complete(999, Ok(0)), Matched::Unknown);
        let out: Vec<_> = std::iter::from_fn(|| l.take_ready()).collect();
        assert_eq!(out, vec![(0, Err(NO_PICTURE.into())), (1, Err(NO_PICTURE.into())), (2, Ok(2))]);
    }

    #[test]
    fn abort_returns_everything_with_what_is_known() {
        let mut l: Ledger<u32, u32> = Ledger::new(2);
        let k0 = l.admit(0, 0).unwrap();
        l.admit(1, 1).unwrap();
        l.complete(k0, Ok(5));
        let out = l.abort("stream restarted");
        assert_eq!(out, vec![(0, Ok(5)), (1, Err("stream restarted".into()))]);
        assert_eq!((l.len(), l.busy_slots()), (0, 0));
        assert!(l.set_slot_count(4));
        assert_eq!(l.slot_count(), 4);
        // Keys keep counting across a restart: a late buffer of the old stream matches nothing.
        assert!(l.admit(0, 9).unwrap() > k0 + 1);
    }

    /// A random walk through everything a driver can do (complete in order, return OUTPUT
    /// buffers early or late, drop a frame, restart the stream with a new buffer count): every
    /// item goes back exactly once and nothing is left behind.
    #[test]
    fn every_frame_is_returned_exactly_once_whatever_the_driver_does() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut l: Ledger<u32, u32> = Ledger::new(4);
        let mut returned = vec![0u32; 5000];
        let mut next_item = 0u32;
        // What the fake device holds: (slot, key) of frames not yet encoded, in order.
        let mut in_device: VecDeque<(usize, u64)> = VecDeque::new();
        let mut encoded: Vec<usize> = Vec::new(); // slots encoded but not yet dequeued
        for _ in 0..20_000 {
            match rnd(10) {
                0..=2 if (next_item as usize) < returned.len() => {
                    if let Some(slot) = l.free_slot(rnd(6) as usize) {
                        let key = l.admit(slot, next_item).unwrap();
                        next_item += 1;
                        in_device.push_back((slot, key));
                    }
                }
                3..=4 => {
                    if let Some((slot, key)) = in_device.pop_front() {
                        if rnd(20) != 0 {
                            l.complete(key, Ok(key as u32));
                        } // else: the encoder dropped it; a later result fails it
                        encoded.push(slot);
                    }
                }
                5..=6 if !encoded.is_empty() => {
                    let slot = encoded.remove(rnd(encoded.len() as u64) as usize);
                    assert!(l.output_returned(slot));
                }
                7 if rnd(50) == 0 => {
                    for (item, _) in l.abort("restart") {
                        returned[item as usize] += 1;
                    }
                    in_device.clear();
                    encoded.clear();
                    assert!(l.set_slot_count(2 + rnd(6) as usize));
                }
                _ => {}
            }
            while let Some((item, _)) = l.take_ready() {
                returned[item as usize] += 1;
            }
            assert_eq!(l.busy_slots(), in_device.len() + encoded.len());
        }
        for (item, _) in l.abort("stop") {
            returned[item as usize] += 1;
        }
        assert!(next_item > 1000, "the walk queued {next_item} frames");
        assert!(returned[..next_item as usize].iter().all(|&n| n == 1), "every frame exactly once");
        assert_eq!((l.len(), l.busy_slots()), (0, 0));
    }
}
