//! `calibrate`: automatic vertical alignment of the two eyes.
//!
//! - `estimate` (sans-IO): how far eye 1's picture sits below eye 0's, from two luma planes;
//! - `grab`: copying a stereo pair's luma out of the camera buffers on the loop and pairing
//!   the eyes' frames by capture time; `measure` turns an estimate into sensor pixels;
//! - `worker`: the estimate on a thread of its own, answering through an eventfd;
//! - `propose` (here): the offset for eye 1 that would align the pair, which the controller
//!   replies with and `calibrate apply` sets (the `offset` command's state) and saves.

pub mod estimate;
pub mod grab;
pub mod worker;

use grab::Measurement;

/// `calibrate apply` refuses estimates less sure than this.
pub const MIN_CONFIDENCE: f64 = 0.05;

/// What `calibrate` proposes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Proposal {
    /// Eye 1's calibration offset that aligns it with eye 0, sensor pixels (its `dx` is kept).
    pub offset: (i32, i32),
    /// How far eye 1's picture sat below eye 0's when measured, sensor pixels (0: aligned).
    pub dy: f64,
    /// How far it is turned, degrees clockwise (reported; an offset cannot undo it).
    pub rotation_deg: f64,
    pub confidence: f64,
}

/// The offset for eye 1 from a measurement, the eyes' current offsets, and whether the
/// pictures are flipped vertically (offsets and crops then run opposite ways).
///
/// With both eyes looking the same way, eye 1's crop sits `offset1 − offset0` (picture
/// direction) from eye 0's; the misalignment of the mounts is what the pictures still show
/// plus that difference, read from the crops the two frames were really captured with. So
/// the proposal stays right when the previous offset met the sensor's edge, and running
/// `calibrate` again after applying it proposes the same offset.
pub fn propose(m: &Measurement, offsets: [(i32, i32); 2], flip_v: bool) -> Proposal {
    let vs = if flip_v { -1.0 } else { 1.0 };
    let crops_apart = vs * (m.crops[1].y as f64 - m.crops[0].y as f64);
    let dy1 = offsets[0].1 as f64 + crops_apart + m.dy;
    Proposal {
        offset: (offsets[1].0, dy1.round() as i32),
        dy: m.dy,
        rotation_deg: m.rotation_deg,
        confidence: m.confidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::Rect;

    fn m(dy: f64, y0: u32, y1: u32) -> Measurement {
        Measurement {
            dy,
            rotation_deg: 0.0,
            confidence: 0.8,
            crops: [Rect::new(0, y0, 100, 100), Rect::new(0, y1, 100, 100)],
        }
    }

    #[test]
    fn the_proposal_adds_what_the_pictures_show_to_where_the_crops_were() {
        // Eye 1 mounted 30 px low, no offsets yet: propose 30.
        assert_eq!(propose(&m(30.2, 100, 100), [(0, 0), (5, 0)], false).offset, (5, 30));
        // Applied: eye 1's crop 30 lower, the pictures agree: still 30.
        assert_eq!(propose(&m(0.1, 100, 130), [(0, 0), (5, 30)], false).offset, (5, 30));
        // The crop met the sensor's edge (only 10 of the 30 applied): still 30, not 60.
        assert_eq!(propose(&m(20.0, 100, 110), [(0, 0), (5, 30)], false).offset, (5, 30));
        // Eye 0 has an offset of its own: eye 1's is relative to it.
        assert_eq!(propose(&m(30.0, 104, 104), [(0, 4), (0, 4)], false).offset, (0, 34));
        // Flipped pictures: crops run the other way on the sensor.
        assert_eq!(propose(&m(0.0, 100, 70), [(0, 0), (0, 30)], true).offset, (0, 30));
    }
}
