//! Delivering frames to taps: the JSON line, the fd (a read-only clone of the camera's buffer,
//! or of the tap's own downscaled copy), through a send function the loop lends (it owns the
//! sockets). What goes where is `TapBook`'s call.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use super::scale;
use super::{Released, TapBook, TapCommand, Via};
use crate::camera::{FrameBuffer, FrameLayout, FrameMeta, PixelFormat, Size};
use crate::control::command::{CmdError, format_err};
use crate::json;
use crate::session::Link;
use crate::sys::shm::{SharedMemory, read_only_clone};

/// A frame the pipeline shows the taps before its buffer moves on.
pub struct Offer<'a> {
    pub buffer: &'a FrameBuffer,
    pub meta: &'a FrameMeta,
    /// Whether one more camera buffer of this eye may be held without starving the camera.
    pub spare: bool,
}

/// Sends one line with an fd to connection `id`; false if nothing went (the frame is skipped).
pub type Send<'a> = dyn FnMut(u64, &[u8], BorrowedFd<'_>) -> bool + 'a;

/// A tap's own buffer for the downscaled copies of one eye.
struct Copy {
    memory: SharedMemory,
    read_only: OwnedFd,
    layout: FrameLayout,
}

#[derive(Default)]
pub struct Taps {
    pub book: TapBook,
    copies: HashMap<(u64, u8), Copy>,
    route: Vec<(u64, Via)>,
}

/// A frame line with its fd, straight to the socket when nothing is queued before it in
/// `link` (the fd travels with the line's first byte); the rest of a partial write is queued.
/// False when nothing went: the tap skips that frame.
pub fn send_line(socket: &UnixStream, link: &mut Link, line: &[u8], fd: BorrowedFd<'_>) -> bool {
    if !link.outbox.is_empty() || link.is_closing() {
        return false;
    }
    match crate::sys::socket::send_with_fd(socket, line, fd) {
        Ok(n) => {
            if n < line.len() {
                link.send(line[n..].to_vec());
            }
            true
        }
        Err(_) => false,
    }
}

/// The line that comes with a frame's fd.
pub fn frame_line(meta: &FrameMeta, layout: &FrameLayout, scaled: bool) -> String {
    let (format, planes) = match layout.format {
        PixelFormat::I420 => ("I420", 3),
        PixelFormat::Nv12 => ("NV12", 2),
        PixelFormat::Bgr888 => ("BGR888", 1),
    };
    let mut line = json::Obj::new()
        .int("eye", meta.eye as u64)
        .int("seq", meta.sequence as u64)
        .int("capture_us", meta.capture_us)
        .str("format", format)
        .int("width", layout.width as u64)
        .int("height", layout.height as u64)
        .raw("stride", &json::array(layout.strides[..planes].iter().map(|v| v.to_string())))
        .raw("offset", &json::array(layout.offsets[..planes].iter().map(|v| v.to_string())))
        .int("size", layout.len() as u64)
        .raw("crop", &json::rect(meta.crop))
        .bool("scaled", scaled)
        .finish();
    line.push('\n');
    line
}

impl Taps {
    /// A frame of `offer.meta.eye` exists: send it to the taps that want it. Returns how many
    /// taps now hold the camera buffer itself (it must not go back to the camera until each
    /// has released it).
    pub fn offer(&mut self, offer: &Offer<'_>, now_us: u64, send: &mut Send<'_>) -> u32 {
        if self.book.is_empty() {
            return 0;
        }
        let (eye, seq) = (offer.meta.eye, offer.meta.sequence);
        let mut route = std::mem::take(&mut self.route);
        self.book.route(eye, seq, &mut route);
        let mut clone: Option<OwnedFd> = None;
        let mut holds = 0;
        for (id, via) in route.drain(..) {
            let sent = match via {
                Via::Buffer if offer.spare => {
                    if clone.is_none() {
                        clone = read_only_clone(offer.buffer.fd()).ok();
                    }
                    let line = frame_line(offer.meta, &offer.buffer.layout, false);
                    clone.as_ref().is_some_and(|fd| send(id, line.as_bytes(), fd.as_fd()))
                }
                Via::Buffer => false,
                Via::Copy(size) => self.copy(id, offer, size).is_some_and(|c| {
                    let line = frame_line(offer.meta, &c.layout, true);
                    send(id, line.as_bytes(), c.read_only.as_fd())
                }),
            };
            if sent {
                let buffer = matches!(via, Via::Buffer).then_some(offer.buffer.index);
                self.book.delivered(id, eye, seq, buffer, now_us);
                holds += buffer.is_some() as u32;
            } else {
                self.book.skipped(id, eye);
            }
        }
        self.route = route;
        holds
    }

    /// The frame downscaled into tap `id`'s copy buffer for that eye (made on first use).
    fn copy(&mut self, id: u64, offer: &Offer<'_>, size: Size) -> Option<&Copy> {
        let key = (id, offer.meta.eye);
        let c = match self.copies.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let layout = FrameLayout::i420(size);
                let memory = SharedMemory::memfd(&format!("pieyes-tap{id}-eye{}", key.1), layout.len()).ok()?;
                let read_only = read_only_clone(memory.as_fd()).ok()?;
                v.insert(Copy { memory, read_only, layout })
            }
        };
        let ok = scale::to_i420(&offer.buffer.layout, offer.buffer.pixels(), size, c.memory.as_mut_slice());
        ok.then_some(&*c)
    }

    /// A tap verb from connection `id`: the reply line, and the holds it ended.
    pub fn command(&mut self, id: u64, cmd: TapCommand, outputs: &[Size]) -> (String, Vec<Released>) {
        let result = match cmd {
            TapCommand::Tap(spec) => self.book.start(id, spec, outputs).map(|r| (r, Vec::new())),
            TapCommand::Release { seq, eye } => {
                self.book.release(id, seq, eye).map(|rel| (format!("ok release seq={seq}"), rel))
            }
            TapCommand::Untap => match self.remove(id) {
                Some(rel) => Ok((format!("ok untap released={}", rel.len()), rel)),
                None => Err(CmdError::new("not-tapping", "this connection is not a tap")),
            },
        };
        result.unwrap_or_else(|e| (format_err(&e), Vec::new()))
    }

    /// The tap on connection `id` ends (untap, or the connection is gone).
    pub fn remove(&mut self, id: u64) -> Option<Vec<Released>> {
        self.copies.retain(|&(tap, _), _| tap != id);
        self.book.remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::Rect;
    use crate::sys::shm::Mapping;

    fn buffer(index: usize) -> FrameBuffer {
        let layout = FrameLayout::i420(Size { w: 64, h: 32 });
        let mut memory = SharedMemory::memfd("t", layout.len()).unwrap();
        memory.as_mut_slice().fill(index as u8 + 1);
        FrameBuffer { index, memory, layout }
    }

    fn meta(eye: u8, sequence: u32) -> FrameMeta {
        FrameMeta { eye, sequence, capture_us: 1234, crop: Rect::new(2, 4, 64, 32) }
    }

    #[test]
    fn a_line_goes_with_its_fd_only_when_nothing_is_queued_before_it() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut link = Link::new("t".into(), 0);
        let mem = SharedMemory::memfd("t", 64).unwrap();
        assert!(send_line(&a, &mut link, b"{\"seq\":1}\n", mem.as_fd()));
        let mut buf = [0u8; 64];
        let (n, fds) = crate::sys::socket::recv_with_fds(&b, &mut buf).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"{\"seq\":1}\n"[..], 1));
        link.send(b"ok release seq=1\n".to_vec());
        assert!(!send_line(&a, &mut link, b"{\"seq\":2}\n", mem.as_fd()), "a reply is queued: skip");
    }

    #[test]
    fn the_line_names_everything_a_reader_needs() {
        let l = frame_line(&meta(1, 9), &FrameLayout::i420(Size { w: 64, h: 32 }), false);
        assert_eq!(
            l,
            "{\"eye\":1,\"seq\":9,\"capture_us\":1234,\"format\":\"I420\",\"width\":64,\"height\":32,\
             \"stride\":[64,32,32],\"offset\":[0,2048,2560],\"size\":3072,\"crop\":[2,4,64,32],\"scaled\":false}\n"
        );
    }

    #[test]
    fn zero_copy_and_scaled_taps_get_read_only_fds_and_holds_are_counted() {
        let mut taps = Taps::default();
        let out = [Size { w: 64, h: 32 }; 2];
        let cmd = |l: &str| super::super::parse(l).unwrap().unwrap();
        assert_eq!(taps.command(1, cmd("tap 0"), &out).0, "ok tap eye=0 every=1");
        taps.command(2, cmd("tap both size 16x16"), &out);
        let b = buffer(3);
        let got: std::cell::RefCell<Vec<(u64, String, Vec<u8>)>> = Default::default();
        let mut send = |id: u64, line: &[u8], fd: BorrowedFd<'_>| {
            assert!(Mapping::new(fd, 16, 0).is_err(), "read-only");
            let m = Mapping::read_only(fd, 16).unwrap();
            got.borrow_mut().push((id, String::from_utf8(line.to_vec()).unwrap(), m.as_slice()[..4].to_vec()));
            true
        };
        let holds = taps.offer(&Offer { buffer: &b, meta: &meta(0, 5), spare: true }, 10, &mut send);
        assert_eq!(holds, 1, "one tap holds the camera buffer, the other its copy");
        {
            let g = got.borrow();
            assert_eq!(g.len(), 2);
            assert!(g[0].1.contains("\"width\":64") && g[0].1.contains("\"scaled\":false"));
            assert!(g[1].1.contains("\"width\":16") && g[1].1.contains("\"scaled\":true"));
            assert_eq!(g[1].2, vec![4; 4], "the copy has the frame's pixels");
        }
        // Held: the next frame is skipped for both; no spare buffer skips the zero-copy tap only.
        got.borrow_mut().clear();
        assert_eq!(taps.offer(&Offer { buffer: &b, meta: &meta(0, 6), spare: true }, 11, &mut send), 0);
        assert!(got.borrow().is_empty());
        assert_eq!(
            taps.command(1, TapCommand::Release { seq: 5, eye: None }, &out),
            ("ok release seq=5".into(), vec![Released { eye: 0, buffer: Some(3) }])
        );
        taps.command(2, TapCommand::Release { seq: 5, eye: Some(0) }, &out);
        assert_eq!(taps.offer(&Offer { buffer: &b, meta: &meta(0, 7), spare: false }, 12, &mut send), 0);
        assert_eq!(got.borrow().len(), 1, "only the copy goes without a spare buffer");
        let (line, rel) = taps.command(2, TapCommand::Untap, &out);
        assert_eq!((line.as_str(), rel.len()), ("ok untap released=1", 1));
        assert!(taps.copies.is_empty());
        assert_eq!(taps.command(2, TapCommand::Untap, &out).0, "err not-tapping this connection is not a tap");
        assert_eq!(taps.book.totals[0].skipped, 3);
    }
}
