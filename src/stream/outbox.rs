//! What one connection still has to send: shared video packets (the same allocation for every
//! viewer) and small owned frames (hello, pong, close), in order, with a cursor into the first.
//! The loop asks for I/O slices, writes them with one `sendmsg`, and reports how far it got.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;

use super::wire::Packet;

pub enum Chunk {
    Video(Arc<Packet>),
    Bytes(Vec<u8>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Video(p) => p.bytes(),
            Chunk::Bytes(b) => b,
        }
    }
}

/// Most slices handed to one `sendmsg`.
pub const MAX_SLICES: usize = 16;

#[derive(Default)]
pub struct Outbox {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    offset: usize,
    pending_bytes: usize,
    video_frames: usize,
}

impl Outbox {
    pub fn push_bytes(&mut self, b: Vec<u8>) {
        if !b.is_empty() {
            self.pending_bytes += b.len();
            self.chunks.push_back(Chunk::Bytes(b));
        }
    }

    pub fn push_video(&mut self, p: Arc<Packet>) {
        self.pending_bytes += p.len();
        self.video_frames += 1;
        self.chunks.push_back(Chunk::Video(p));
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Video packets queued, including one partly written.
    pub fn video_frames(&self) -> usize {
        self.video_frames
    }

    /// Fill `out` with slices of what is pending; returns how many were filled.
    pub fn slices<'a>(&'a self, out: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
        let mut n = 0;
        for (i, c) in self.chunks.iter().take(MAX_SLICES).enumerate() {
            let b = c.bytes();
            out[i] = IoSlice::new(if i == 0 { &b[self.offset..] } else { b });
            n += 1;
        }
        n
    }

    /// Record that `n` bytes were written; `sent` sees each video packet whose last byte went.
    pub fn advance(&mut self, mut n: usize, mut sent: impl FnMut(&Packet)) {
        self.pending_bytes -= n.min(self.pending_bytes);
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.bytes().len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.offset = 0;
            if let Some(Chunk::Video(p)) = self.chunks.pop_front() {
                self.video_frames -= 1;
                sent(&p);
            }
        }
    }

    /// Everything pending as one byte string, marked as written (tests read what a session
    /// queued this way).
    #[cfg(test)]
    pub fn drain_to_vec(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while !self.is_empty() {
            let mut s = [IoSlice::new(&[]); MAX_SLICES];
            let n = self.slices(&mut s);
            let chunk: Vec<u8> = s[..n].iter().flat_map(|x| x.iter().copied()).collect();
            out.extend_from_slice(&chunk);
            self.advance(chunk.len(), |_| {});
        }
        out
    }

    /// Forget video packets not yet started (a partly written one must finish, or the byte
    /// stream breaks); owned frames stay. Returns how many packets were dropped.
    pub fn drop_unstarted_video(&mut self) -> usize {
        let keep_front = self.offset > 0;
        let before = self.video_frames;
        let mut i = 0;
        self.chunks.retain(|c| {
            let keep = (i == 0 && keep_front) || matches!(c, Chunk::Bytes(_));
            i += 1;
            keep
        });
        self.video_frames = self.chunks.iter().filter(|c| matches!(c, Chunk::Video(_))).count();
        self.pending_bytes = self.chunks.iter().map(|c| c.bytes().len()).sum::<usize>() - self.offset;
        before - self.video_frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{FrameMeta, Rect};
    use crate::encoder::AccessUnit;

    pub(crate) fn packet(seq: u32, keyframe: bool, n: usize) -> Arc<Packet> {
        let mut data = vec![0u8; 42];
        data.extend(std::iter::repeat_n(seq as u8, n));
        let meta = FrameMeta { eye: 0, sequence: seq, capture_us: 0, crop: Rect::default() };
        Arc::new(Packet::new(AccessUnit { data, headroom: 42, keyframe }, meta, 0))
    }

    fn flatten(o: &Outbox) -> Vec<u8> {
        let mut s = [IoSlice::new(&[]); MAX_SLICES];
        let n = o.slices(&mut s);
        s[..n].iter().flat_map(|x| x.iter().copied()).collect()
    }

    #[test]
    fn partial_writes_resume_mid_chunk() {
        let mut o = Outbox::default();
        o.push_bytes(b"hello".to_vec());
        let p = packet(1, true, 100);
        o.push_video(p.clone());
        let all = flatten(&o);
        assert_eq!(all.len(), 5 + p.len());
        o.advance(3, |_| {});
        assert_eq!(flatten(&o), all[3..]);
        o.advance(10, |_| {});
        assert_eq!(flatten(&o), all[13..]);
        assert_eq!(o.video_frames(), 1);
        let mut sent = Vec::new();
        o.advance(all.len() - 13, |p| sent.push(p.meta.sequence));
        assert_eq!(sent, vec![1], "the packet is reported once its last byte is written");
        assert!(o.is_empty());
        assert_eq!((o.pending_bytes(), o.video_frames()), (0, 0));
    }

    #[test]
    fn dropping_keeps_the_started_packet_and_control_frames() {
        let mut o = Outbox::default();
        o.push_video(packet(1, false, 50));
        o.push_video(packet(2, false, 50));
        o.push_bytes(b"pong".to_vec());
        o.push_video(packet(3, false, 50));
        o.advance(10, |_| {});
        assert_eq!(o.drop_unstarted_video(), 2);
        assert_eq!(o.video_frames(), 1);
        let rest = flatten(&o);
        assert_eq!(rest.len(), o.pending_bytes());
        assert!(rest.ends_with(b"pong"));
        let mut fresh = Outbox::default();
        fresh.push_video(packet(4, false, 50));
        assert_eq!(fresh.drop_unstarted_video(), 1);
        assert!(fresh.is_empty() && fresh.pending_bytes() == 0);
    }
}
