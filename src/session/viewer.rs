//! A video viewer (`/cam0`, `/cam1`): after its hello it receives every access unit of its eye
//! as a binary message, under the fan-out policy (`stream::fanout`: start at a keyframe, skip
//! to the next one when behind, dropped when stuck). It may say one thing: `keyframe`, when
//! its decoder lost its place (RTCP's picture loss, in spirit). Health changes of its eye
//! reach it as `status` text messages. Nothing is queued for it once a close was sent or
//! received.

use crate::controller::report::ViewerMeasured;
use std::sync::Arc;

use super::websocket::{Message, WsEndpoint};
use super::{Ask, Expired, Link};
use crate::histogram::Histogram;
use crate::limits::MAX_WS_MESSAGE;
use crate::stream::fanout::{Limits, Offer, Subscriber};
use crate::stream::wire::Packet;

pub struct ViewerSession {
    pub eye: u8,
    ws: WsEndpoint,
    sub: Subscriber,
    /// Encoded → last byte written, per packet, µs.
    pub encoded_to_sent: Histogram,
}

impl ViewerSession {
    /// `accept`: the 101 response; `hello`: the first message (what the stream is).
    pub fn new(eye: u8, link: Link, accept: Vec<u8>, hello: &str, limits: Limits, ping_us: u64, now_us: u64) -> Self {
        let mut ws = WsEndpoint::new(link, accept, MAX_WS_MESSAGE, ping_us, now_us);
        ws.send_text(hello);
        ViewerSession { eye, ws, sub: Subscriber::new(limits, now_us), encoded_to_sent: Histogram::new() }
    }

    pub fn link(&self) -> &Link {
        &self.ws.link
    }

    pub fn link_mut(&mut self) -> &mut Link {
        &mut self.ws.link
    }

    pub fn endpoint_mut(&mut self) -> &mut WsEndpoint {
        &mut self.ws
    }

    pub fn handle_input(&mut self, data: &[u8]) {
        self.ws.handle_input(data);
    }

    pub fn wants_input(&self) -> bool {
        self.ws.wants_input()
    }

    pub fn poll(&mut self, now_us: u64) -> Option<Ask> {
        loop {
            match self.ws.next_message(now_us)? {
                Message::Text(t) if t.trim() == "keyframe" => return Some(Ask::Keyframe),
                _ => {} // viewers have nothing else to say
            }
        }
    }

    /// Offer one access unit of this eye (see `stream::fanout`). A closing viewer takes none.
    pub fn offer(&mut self, p: &Arc<Packet>, now_us: u64) -> Offer {
        if !self.ws.may_send() {
            return Offer::Dropped { want_keyframe: false };
        }
        self.sub.offer(&mut self.ws.link.outbox, p, now_us)
    }

    /// Frames not delivered to this viewer (skipped to a keyframe).
    /// What `status` and `/metrics` show of this viewer.
    pub fn measured(&self) -> ViewerMeasured<'_> {
        ViewerMeasured {
            eye: self.eye,
            peer: &self.link().peer,
            dropped: self.dropped(),
            encoded_to_sent: &self.encoded_to_sent,
        }
    }

    pub fn dropped(&self) -> u64 {
        self.sub.dropped
    }

    pub fn queued(&self) -> u64 {
        self.sub.queued
    }

    /// A `status` message (the eye's health); false once the viewer is closing.
    pub fn send_text(&mut self, msg: &str) -> bool {
        self.ws.send_text(msg)
    }

    pub fn sent(&mut self, n: usize, now_us: u64, mut packet_sent: impl FnMut(&Packet)) {
        if n > 0 {
            self.sub.progressed(now_us);
        }
        let hist = &mut self.encoded_to_sent;
        self.ws.link.outbox.advance(n, |p| {
            hist.record(now_us.saturating_sub(p.encoded_us));
            packet_sent(p)
        });
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        [self.ws.poll_timeout(), self.sub.stuck_at(&self.ws.link.outbox)].into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now_us: u64) -> Option<Expired> {
        if self.sub.is_stuck(&self.ws.link.outbox, now_us) {
            return Some("stuck: no progress writing video");
        }
        self.ws.handle_timeout(now_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{FrameMeta, Rect};
    use crate::encoder::AccessUnit;
    use crate::ws::frame::{Opcode, close_payload, encode_masked};

    const M: [u8; 4] = [7, 7, 7, 7];
    const L: Limits = Limits { max_queued_frames: 3, max_queued_bytes: 1 << 20, stuck_us: 10_000 };

    fn packet(seq: u32, keyframe: bool) -> Arc<Packet> {
        let mut data = vec![0u8; 42 + 10];
        data[42] = 1;
        let meta = FrameMeta { eye: 0, sequence: seq, capture_us: 0, crop: Rect::default() };
        Arc::new(Packet::new(AccessUnit { data, headroom: 42, keyframe }, meta, 0))
    }

    fn viewer() -> ViewerSession {
        ViewerSession::new(0, Link::new("v".into(), 0), b"101".to_vec(), "{\"type\":\"hello\"}", L, 1_000_000, 0)
    }

    #[test]
    fn a_viewer_asks_for_keyframes_and_says_nothing_else() {
        let mut v = viewer();
        let mut input = encode_masked(true, Opcode::Text, b"hello?", M);
        input.extend(encode_masked(true, Opcode::Text, b"keyframe", M));
        input.extend(encode_masked(true, Opcode::Binary, b"\x00", M));
        v.handle_input(&input);
        assert_eq!(v.poll(0), Some(Ask::Keyframe));
        assert_eq!(v.poll(0), None);
    }

    #[test]
    fn a_viewer_that_sent_a_close_gets_no_more_video_or_status() {
        let mut v = viewer();
        assert_eq!(v.offer(&packet(1, true), 0), Offer::Queued);
        let before = v.link().outbox.pending_bytes();
        v.handle_input(&encode_masked(true, Opcode::Close, &close_payload(1001, "bye"), M));
        assert_eq!(v.poll(1), None);
        assert_eq!(v.offer(&packet(2, true), 1), Offer::Dropped { want_keyframe: false });
        assert!(!v.send_text("{\"type\":\"status\"}"));
        let close_reply = 2 + 2; // header + code
        assert_eq!(v.link().outbox.pending_bytes(), before + close_reply, "only our close reply was added");
    }

    #[test]
    fn a_stalled_viewer_is_dropped_after_the_stuck_time() {
        let mut v = viewer();
        v.offer(&packet(1, true), 100);
        assert_eq!(v.poll_timeout(), Some(10_000), "nothing written since it joined at 0 (its hello waits)");
        assert_eq!(v.handle_timeout(10_000), None);
        assert_eq!(v.handle_timeout(10_001), Some("stuck: no progress writing video"));
        let mut v = viewer();
        v.offer(&packet(1, true), 100);
        let n = v.link().outbox.pending_bytes();
        let mut sent = 0;
        v.sent(n, 5_000, |_| sent += 1);
        assert_eq!(sent, 1);
        assert_eq!(v.encoded_to_sent.count(), 1);
        assert_eq!(v.handle_timeout(20_000), None, "everything was written: not stuck");
    }
}
