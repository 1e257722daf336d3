//! Request bookkeeping of a real camera, without the camera: which of the pool's buffers (the
//! *tickets* 0..n) is where, so that every buffer the daemon hands in comes back exactly once,
//! across restarts (a new frame rate), a camera that vanishes and a reopen with new buffers.
//!
//! A ticket is in one place at a time:
//! - `Daemon`: the daemon holds its [`FrameBuffer`] (free, or inside the encoder);
//! - `Camera`: queued in the running camera with this session's request `R`;
//! - `Parked`: handed in by the daemon while no session runs (restarting, or the camera is gone):
//!   queued as soon as one does, with the sequence and controls promised when it was handed in;
//! - `Unissued`: not yet given out by [`RequestBook::take_buffers`].
//!
//! A reopened camera comes with new buffers. Tickets the book holds switch at once; a ticket the
//! daemon holds is switched when it comes back: its stale buffer is dropped and the session's
//! buffer for that index goes to the camera instead. `R` (libcamera's Request) is only ever
//! given back to the caller when its session has ended: libcamera 0.4's vimc handler still
//! touches a request after completing it, so dropping one while its camera runs is a
//! use-after-free.

use super::{Controls, FrameBuffer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Daemon,
    Camera,
    Parked,
    Unissued,
}

struct Slot<R> {
    place: Place,
    /// The buffer while the book holds the ticket; while the daemon does, the current session's
    /// replacement for the stale one it holds (if any).
    buffer: Option<FrameBuffer>,
    /// Identity (mapping address) of the current session's buffer for this ticket.
    current: usize,
    /// This session's request for the ticket, while it is not inside the camera.
    request: Option<R>,
    sequence: u32,
    controls: Option<Controls>,
}

/// A request to queue in the camera now.
#[derive(Debug)]
pub struct Submit<R> {
    pub index: usize,
    pub request: R,
    pub sequence: u32,
    pub controls: Controls,
}

#[derive(Debug)]
pub enum Queued<R> {
    /// Queue this in the camera (then report failure with [`RequestBook::submit_failed`]).
    Submit(Submit<R>),
    /// No session runs: held until one does.
    Parked { sequence: u32 },
}

/// A ticket on its way back to the daemon.
pub struct Returned {
    pub buffer: FrameBuffer,
    pub sequence: u32,
    pub controls: Controls,
}

fn identity(b: &FrameBuffer) -> usize {
    b.memory.as_slice().as_ptr() as usize
}

pub struct RequestBook<R> {
    slots: Vec<Slot<R>>,
    running: bool,
    next_sequence: u32,
    /// Stale buffers (from an earlier session) swapped on their way in.
    pub swapped: u64,
    /// Requests that never came back from a stopped camera (they stay with libcamera).
    pub lost: u64,
}

impl<R> Default for RequestBook<R> {
    fn default() -> Self {
        RequestBook { slots: Vec::new(), running: false, next_sequence: 0, swapped: 0, lost: 0 }
    }
}

impl<R> RequestBook<R> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn tickets(&self) -> usize {
        self.slots.len()
    }

    pub fn running(&self) -> bool {
        self.running
    }

    /// Tickets the daemon has handed in and not got back (queued in the camera or parked).
    pub fn queued(&self) -> usize {
        self.slots.iter().filter(|s| matches!(s.place, Place::Camera | Place::Parked)).count()
    }

    pub fn in_camera(&self) -> usize {
        self.slots.iter().filter(|s| s.place == Place::Camera).count()
    }

    pub fn next_sequence(&self) -> u32 {
        self.next_sequence
    }

    pub fn place(&self, index: usize) -> Option<Place> {
        self.slots.get(index).map(|s| s.place)
    }

    /// A session starts with `buffers[i]` (index i) and `requests[i]`. The first session fixes
    /// the number of tickets; a later one must bring at least as many (extras are returned).
    /// Returns the parked tickets to queue now, oldest promise first.
    #[allow(clippy::type_complexity)]
    pub fn start_session(
        &mut self,
        buffers: Vec<FrameBuffer>,
        requests: Vec<R>,
    ) -> Result<(Vec<Submit<R>>, Vec<R>), (String, Vec<R>)> {
        if buffers.len() != requests.len() || buffers.iter().enumerate().any(|(i, b)| b.index != i) {
            return Err(("buffers and requests do not line up".into(), requests));
        }
        if self.running {
            return Err(("a session is already running".into(), requests));
        }
        let first = self.slots.is_empty();
        if !first && buffers.len() < self.slots.len() {
            return Err((
                format!("the camera now gives {} buffers, it gave {}", buffers.len(), self.slots.len()),
                requests,
            ));
        }
        let n = if first { buffers.len() } else { self.slots.len() };
        let mut extra = Vec::new();
        for (i, (buffer, request)) in buffers.into_iter().zip(requests).enumerate() {
            if i >= n {
                extra.push(request);
                continue;
            }
            let current = identity(&buffer);
            if first {
                self.slots.push(Slot {
                    place: Place::Unissued,
                    buffer: Some(buffer),
                    current,
                    request: Some(request),
                    sequence: 0,
                    controls: None,
                });
                continue;
            }
            let s = &mut self.slots[i];
            debug_assert!(s.place != Place::Camera, "end_session leaves nothing in the camera");
            // Daemon: the replacement waits for the stale copy; otherwise the old buffer goes.
            s.buffer = Some(buffer);
            s.current = current;
            s.request = Some(request);
        }
        self.running = true;
        Ok((self.submit_parked(), extra))
    }

    fn submit(&mut self, index: usize) -> Submit<R> {
        let s = &mut self.slots[index];
        s.place = Place::Camera;
        Submit {
            index,
            request: s.request.take().expect("an idle request for every ticket of a running session"),
            sequence: s.sequence,
            controls: s.controls.expect("controls promised when handed in"),
        }
    }

    /// The buffers, once, to the daemon.
    pub fn take_buffers(&mut self) -> Vec<FrameBuffer> {
        let mut out = Vec::new();
        for s in self.slots.iter_mut().filter(|s| s.place == Place::Unissued) {
            s.place = Place::Daemon;
            out.extend(s.buffer.take());
        }
        out
    }

    /// The daemon hands in a ticket with its controls. On error the buffer comes back.
    pub fn queue(&mut self, buffer: FrameBuffer, controls: Controls) -> Result<Queued<R>, (FrameBuffer, String)> {
        let i = buffer.index;
        let Some(s) = self.slots.get_mut(i) else {
            return Err((buffer, format!("buffer {i} is not one of this camera's")));
        };
        if s.place != Place::Daemon {
            return Err((buffer, format!("buffer {i} is already queued")));
        }
        if identity(&buffer) != s.current {
            // From an earlier session: its replacement goes in, the stale mapping goes away.
            let Some(fresh) = s.buffer.take() else {
                return Err((buffer, format!("buffer {i} is stale and has no replacement")));
            };
            drop(buffer);
            s.buffer = Some(fresh);
            self.swapped += 1;
        } else {
            s.buffer = Some(buffer);
        }
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        s.sequence = sequence;
        s.controls = Some(controls);
        if self.running && s.request.is_some() {
            Ok(Queued::Submit(self.submit(i)))
        } else {
            s.place = Place::Parked;
            Ok(Queued::Parked { sequence })
        }
    }

    /// The camera refused a submitted request: the ticket goes back to the daemon.
    pub fn submit_failed(&mut self, index: usize, request: R) -> Returned {
        let s = &mut self.slots[index];
        assert_eq!(s.place, Place::Camera, "only a submitted ticket can fail to submit");
        s.request = Some(request);
        self.give_back(index)
    }

    /// The camera refused a submitted request and kept it (the crate does): the ticket goes back
    /// to the daemon without a request, so the session must end (its ticket cannot go in again).
    pub fn submit_lost(&mut self, index: usize) -> Returned {
        assert_eq!(self.slots[index].place, Place::Camera, "only a submitted ticket can be refused");
        self.lost += 1;
        self.give_back(index)
    }

    fn give_back(&mut self, index: usize) -> Returned {
        let s = &mut self.slots[index];
        s.place = Place::Daemon;
        Returned {
            buffer: s.buffer.take().expect("the book holds the buffer of a ticket it holds"),
            sequence: s.sequence,
            controls: s.controls.expect("set when handed in"),
        }
    }

    /// A request came back from the camera. `None` (and the request kept) if it was not
    /// expected there: a bookkeeping error the caller logs.
    pub fn complete(&mut self, index: usize, request: R) -> Result<Returned, R> {
        match self.slots.get_mut(index) {
            Some(s) if s.place == Place::Camera && s.request.is_none() => {
                s.request = Some(request);
                Ok(self.give_back(index))
            }
            _ => Err(request),
        }
    }

    /// A request came back cancelled because the camera is being stopped on purpose: the
    /// ticket is parked and goes in again, with its promise, when the next session starts.
    pub fn cancelled(&mut self, index: usize, request: R) -> Result<(), R> {
        match self.slots.get_mut(index) {
            Some(s) if s.place == Place::Camera && s.request.is_none() => {
                s.request = Some(request);
                s.place = Place::Parked;
                Ok(())
            }
            _ => Err(request),
        }
    }

    /// The session is over (the camera was stopped and its cancellations collected). Returns
    /// its requests for the caller to drop; a ticket whose request never came back is parked
    /// (its buffer is ours; the request stays lost inside libcamera).
    pub fn end_session(&mut self) -> Vec<R> {
        self.running = false;
        let mut out = Vec::new();
        for s in &mut self.slots {
            if s.place == Place::Camera {
                s.place = Place::Parked;
                self.lost += 1;
            }
            out.extend(s.request.take());
        }
        out
    }

    /// The camera is being restarted with the same buffers and requests (a new frame rate):
    /// call after stopping it and collecting its cancellations. False if a request is still
    /// inside the camera (then only [`RequestBook::end_session`] is safe).
    pub fn suspend(&mut self) -> bool {
        if self.in_camera() > 0 {
            return false;
        }
        self.running = false;
        true
    }

    /// The camera runs again after [`RequestBook::suspend`]: the parked tickets to queue now,
    /// oldest promise first.
    pub fn resume(&mut self) -> Vec<Submit<R>> {
        self.running = true;
        self.submit_parked()
    }

    fn submit_parked(&mut self) -> Vec<Submit<R>> {
        let mut parked: Vec<usize> = (0..self.slots.len()).filter(|&i| self.slots[i].place == Place::Parked).collect();
        parked.sort_by_key(|&i| self.slots[i].sequence.wrapping_sub(self.next_sequence) as i32);
        parked.into_iter().map(|i| self.submit(i)).collect()
    }

    /// Give every parked ticket back to the daemon (to be reported as failed frames: the
    /// camera is gone and nobody knows when it returns).
    pub fn return_parked(&mut self) -> Vec<Returned> {
        let parked: Vec<usize> = (0..self.slots.len()).filter(|&i| self.slots[i].place == Place::Parked).collect();
        parked.into_iter().map(|i| self.give_back(i)).collect()
    }

    /// Check the invariants (tests, and a debug log on the device).
    pub fn audit(&self) -> Result<(), String> {
        for (i, s) in self.slots.iter().enumerate() {
            let ok = match s.place {
                Place::Daemon => true, // a replacement may wait for the stale copy
                Place::Camera => s.buffer.is_some() && s.request.is_none(),
                Place::Parked | Place::Unissued => s.buffer.is_some(),
            };
            if !ok || (self.running && s.place != Place::Camera && s.request.is_none()) {
                return Err(format!("ticket {i} inconsistent in place {:?}", s.place));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{FrameLayout, Rect, Size};
    use crate::sys::shm::SharedMemory;

    /// A libcamera request stand-in: which session and ticket it belongs to.
    #[derive(Debug, PartialEq)]
    struct Req {
        session: u32,
        index: usize,
    }

    fn pool(n: usize) -> Vec<FrameBuffer> {
        let layout = FrameLayout::i420(Size { w: 4, h: 2 });
        (0..n).map(|index| FrameBuffer { index, memory: SharedMemory::memfd("t", 4096).unwrap(), layout }).collect()
    }

    fn reqs(session: u32, n: usize) -> Vec<Req> {
        (0..n).map(|index| Req { session, index }).collect()
    }

    fn c(x: u32) -> Controls {
        Controls { crop: Rect::new(x, 0, 2, 2) }
    }

    /// Hands in a buffer and expects it to go straight to the camera.
    fn submit(book: &mut RequestBook<Req>, b: FrameBuffer, x: u32) -> Submit<Req> {
        match book.queue(b, c(x)) {
            Ok(Queued::Submit(s)) => s,
            other => panic!("expected a submit, got {:?}", other.map_err(|e| e.1)),
        }
    }

    #[test]
    fn every_buffer_circulates_and_comes_back_exactly_once() {
        let mut book = RequestBook::new();
        let (now, extra) = book.start_session(pool(4), reqs(1, 4)).ok().unwrap();
        assert!(now.is_empty() && extra.is_empty());
        let mut free = book.take_buffers();
        assert_eq!(free.len(), 4);
        assert!(book.take_buffers().is_empty(), "handed out once");
        let mut camera = std::collections::VecDeque::new();
        let mut seen = [0u32; 4];
        for round in 0..50u32 {
            while book.queued() < 3 {
                let Some(b) = free.pop() else { break };
                let s = submit(&mut book, b, round);
                assert_eq!(s.request.index, s.index);
                camera.push_back(s);
            }
            let s = camera.pop_front().unwrap();
            let back = book.complete(s.index, s.request).ok().unwrap();
            assert_eq!(back.buffer.index, s.index);
            assert_eq!(back.sequence, s.sequence);
            seen[s.index] += 1;
            free.push(back.buffer);
            book.audit().unwrap();
        }
        assert_eq!(seen.iter().sum::<u32>(), 50);
        assert_eq!(book.queued() + free.len(), 4);
    }

    #[test]
    fn sequences_are_promised_in_queue_order() {
        let mut book = RequestBook::new();
        book.start_session(pool(3), reqs(1, 3)).ok().unwrap();
        let free = book.take_buffers();
        assert_eq!(book.next_sequence(), 0);
        let seqs: Vec<u32> = free.into_iter().map(|b| submit(&mut book, b, 0).sequence).collect();
        assert_eq!(seqs, [0, 1, 2]);
        assert_eq!(book.next_sequence(), 3);
    }

    #[test]
    fn a_restart_requeues_what_was_in_the_camera_with_its_promise() {
        let mut book = RequestBook::new();
        book.start_session(pool(4), reqs(1, 4)).ok().unwrap();
        let mut free = book.take_buffers();
        let in_cam: Vec<Submit<Req>> = (0..3).map(|x| submit(&mut book, free.pop().unwrap(), x)).collect();
        let promised: Vec<(usize, u32, Controls)> = in_cam.iter().map(|s| (s.index, s.sequence, s.controls)).collect();
        // stop(): libcamera cancels everything queued, through the completion callback.
        for s in in_cam {
            book.cancelled(s.index, s.request).unwrap();
        }
        assert!(book.suspend());
        // While restarting, the daemon hands in its last free buffer: parked.
        let last = free.pop().unwrap();
        let last_index = last.index;
        assert!(matches!(book.queue(last, c(9)), Ok(Queued::Parked { sequence: 3 })));
        assert_eq!(book.queued(), 4, "the daemon sees everything still queued");
        book.audit().unwrap();
        let again = book.resume();
        let got: Vec<(usize, u32, Controls)> = again.iter().map(|s| (s.index, s.sequence, s.controls)).collect();
        let mut want = promised.clone();
        want.push((last_index, 3, c(9)));
        assert_eq!(got, want, "same tickets, same sequences and crops, in order");
        book.audit().unwrap();
        for s in again {
            free.push(book.complete(s.index, s.request).ok().unwrap().buffer);
        }
        assert_eq!((free.len(), book.queued()), (4, 0));
        let mut idx: Vec<usize> = free.iter().map(|b| b.index).collect();
        idx.sort();
        assert_eq!(idx, [0, 1, 2, 3], "each buffer exactly once");
    }

    #[test]
    fn a_reopened_camera_swaps_buffers_without_losing_any() {
        let mut book = RequestBook::new();
        book.start_session(pool(4), reqs(1, 4)).ok().unwrap();
        let mut free = book.take_buffers();
        let old_ids: Vec<usize> = free.iter().map(identity).collect();
        // Two in the camera, one in the "encoder", one free.
        let in_cam: Vec<Submit<Req>> = (0..2).map(|x| submit(&mut book, free.pop().unwrap(), x)).collect();
        let at_encoder = free.pop().unwrap();
        // The camera vanishes: stop() fails, nothing comes back; the session ends anyway.
        assert!(!book.suspend(), "requests still inside: a restart is not safe");
        let dead = book.end_session();
        assert_eq!(dead.len(), 2, "the two idle requests; the two inside are lost");
        assert_eq!(book.lost, 2);
        drop(in_cam); // (libcamera keeps those; the test just forgets them)
        let failed = book.return_parked();
        assert_eq!(failed.len(), 2, "reported to the daemon as failed frames");
        free.extend(failed.into_iter().map(|r| r.buffer));
        // While the camera is gone the daemon keeps handing buffers in: parked.
        for x in 0..3 {
            assert!(matches!(book.queue(free.pop().unwrap(), c(x)), Ok(Queued::Parked { .. })));
        }
        book.audit().unwrap();
        // Reopened with new buffers.
        let new_pool = pool(4);
        let new_ids: Vec<usize> = new_pool.iter().map(identity).collect();
        let (now, extra) = book.start_session(new_pool, reqs(2, 4)).ok().unwrap();
        assert!(extra.is_empty());
        assert_eq!(now.len(), 3, "the parked ones go in at once");
        assert!(now.iter().all(|s| s.request.session == 2));
        book.audit().unwrap();
        let mut back: Vec<FrameBuffer> = Vec::new();
        for s in now {
            back.push(book.complete(s.index, s.request).ok().unwrap().buffer);
        }
        // The encoder's buffer is from the old session: swapped on the way in.
        let s = submit(&mut book, at_encoder, 7);
        assert_eq!(book.swapped, 1);
        back.push(book.complete(s.index, s.request).ok().unwrap().buffer);
        assert_eq!(back.len(), 4);
        for b in &back {
            assert_eq!(identity(b), new_ids[b.index], "only the new session's buffers circulate");
            assert!(!old_ids.contains(&identity(b)));
        }
        assert_eq!(book.queued(), 0);
    }

    #[test]
    fn misuse_is_refused_and_the_buffer_comes_back() {
        let mut book = RequestBook::new();
        book.start_session(pool(2), reqs(1, 2)).ok().unwrap();
        let mut free = book.take_buffers();
        let b = free.pop().unwrap();
        let idx = b.index;
        let s = submit(&mut book, b, 0);
        // The same index again (a second buffer claiming to be it) is refused.
        let other = FrameBuffer { index: idx, ..free.pop().unwrap() };
        let (back, why) = book.queue(other, c(0)).err().unwrap();
        assert!(why.contains("already queued"), "{why}");
        assert_eq!(back.index, idx);
        // A request the book did not hand out is not taken.
        assert_eq!(book.complete(1 - idx, Req { session: 1, index: 1 - idx }).err().unwrap().index, 1 - idx);
        // A refused submit gives the ticket back.
        let r = book.submit_failed(s.index, s.request);
        assert_eq!(r.buffer.index, idx);
        assert_eq!(book.queued(), 0);
        // A later session with fewer buffers is refused.
        book.end_session();
        assert!(book.start_session(pool(1), reqs(2, 1)).is_err());
    }
}
