//! Crop geometry: where an eye looks → which sensor rectangle is cropped (libcamera's
//! `ScalerCrop`). Pure functions; the rules:
//!
//! - zoom 1 is the largest crop with the output's aspect ratio (the whole view); zoom z is that
//!   size divided by z, never smaller than the minimum crop (max zoom, default 8×, and the
//!   camera's own floor);
//! - gaze x, y ∈ [-1, 1] spans the reachable range at the current zoom: −1 puts the crop
//!   against the left/top edge of the active area, +1 against the right/bottom, 0 centres it;
//! - vergence d ∈ [-1, 1] turns the eyes in opposite directions by d × half the sensor width
//!   (eye 0 to the right, eye 1 to the left for d > 0: converging on something near);
//! - the eye's calibration offset (sensor pixels) is added last; the result is clamped into
//!   the active area and aligned to even pixels. What comes out is what is applied;
//! - directions are the picture's: when the picture is flipped, the crop moves the other way
//!   on the sensor, so "right" is still right for whoever watches.

use crate::camera::{Flip, Rect, Size, full_view};

pub const DEFAULT_MAX_ZOOM: f64 = 8.0;

/// Where an eye looks, in the control language's units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pose {
    pub x: f64,
    pub y: f64,
    pub zoom: f64,
    pub verge: f64,
}

impl Default for Pose {
    fn default() -> Self {
        Pose { x: 0.0, y: 0.0, zoom: 1.0, verge: 0.0 }
    }
}

impl Pose {
    /// Linear blend, `t` ∈ [0, 1]; zoom is blended in log space so a zoom feels even.
    pub fn lerp(a: Pose, b: Pose, t: f64) -> Pose {
        if t >= 1.0 {
            return b; // exactly the target at the end, whatever the floating point says
        }
        let l = |u: f64, v: f64| u + (v - u) * t;
        Pose {
            x: l(a.x, b.x),
            y: l(a.y, b.y),
            zoom: (a.zoom.ln() + (b.zoom.ln() - a.zoom.ln()) * t).exp(),
            verge: l(a.verge, b.verge),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geometry {
    /// The active area crops live in (`ScalerCropMaximum`).
    pub sensor: Rect,
    pub output: Size,
    pub max_zoom: f64,
    /// The camera's smallest crop.
    pub min_crop: Size,
}

fn even(v: f64) -> i64 {
    (v / 2.0).round() as i64 * 2
}

/// The largest rectangle of even corners and sizes inside `r`. Every crop is even-aligned, so a
/// camera reporting an odd active area (x, y or a size) would otherwise have its full-axis crop
/// reach a pixel past it, or leave `crop` an empty range to clamp into.
fn even_inside(r: Rect) -> Rect {
    let (x, y) = ((r.x + 1) & !1, (r.y + 1) & !1);
    let w = r.w.saturating_sub(x - r.x) & !1;
    let h = r.h.saturating_sub(y - r.y) & !1;
    Rect::new(x, y, w.max(2), h.max(2))
}

impl Geometry {
    pub fn new(sensor: Rect, output: Size, max_zoom: f64, min_crop: Size) -> Geometry {
        Geometry { sensor: even_inside(sensor), output, max_zoom: max_zoom.max(1.0), min_crop }
    }

    /// The crop at zoom 1.
    pub fn full(&self) -> Rect {
        full_view(self.sensor, self.output)
    }

    /// The largest zoom honoured: `max_zoom`, or less where the camera's minimum crop says so.
    pub fn zoom_limit(&self) -> f64 {
        let f = self.full();
        let by_cam = (f.w as f64 / self.min_crop.w.max(2) as f64).min(f.h as f64 / self.min_crop.h.max(2) as f64);
        self.max_zoom.min(by_cam).max(1.0)
    }

    /// Bring a pose within limits (gaze and vergence to [-1, 1], zoom to [1, zoom_limit]).
    pub fn clamp(&self, p: Pose) -> Pose {
        Pose {
            x: p.x.clamp(-1.0, 1.0),
            y: p.y.clamp(-1.0, 1.0),
            zoom: p.zoom.clamp(1.0, self.zoom_limit()),
            verge: p.verge.clamp(-1.0, 1.0),
        }
    }

    /// The crop for `eye` (0 or 1) looking with `pose`, after its calibration `offset`.
    pub fn crop(&self, eye: u8, pose: Pose, offset: (i32, i32), flip: Flip) -> Rect {
        self.crop_at_edge(eye, pose, offset, flip).0
    }

    /// `crop`, and whether the sensor's edge stopped it: vergence or an offset pushed the crop
    /// past the active area, so the eye looks less far than the pose says.
    pub fn crop_at_edge(&self, eye: u8, pose: Pose, offset: (i32, i32), flip: Flip) -> (Rect, bool) {
        let p = self.clamp(pose);
        let full = self.full();
        let (s, aspect) = (self.sensor, self.output.w as f64 / self.output.h as f64);
        // Size: height from the zoom, width from the aspect, both even and inside the sensor.
        let h = even(full.h as f64 / p.zoom).clamp(2, s.h as i64);
        let w = even(h as f64 * aspect).clamp(2, s.w as i64);
        let (w, h) =
            (w.max(even(self.min_crop.w as f64).min(s.w as i64)), h.max(even(self.min_crop.h as f64).min(s.h as i64)));
        // Centre: gaze across the reachable range, vergence, then the calibration offset.
        let (sx, sy, sw, sh) = (s.x as f64, s.y as f64, s.w as f64, s.h as f64);
        let side = if eye == 0 { 1.0 } else { -1.0 };
        let (hs, vs) = (if flip.h() { -1.0 } else { 1.0 }, if flip.v() { -1.0 } else { 1.0 });
        let cx = sx + sw / 2.0 + hs * (p.x * (sw - w as f64) / 2.0 + side * p.verge * sw / 2.0 + offset.0 as f64);
        let cy = sy + sh / 2.0 + vs * (p.y * (sh - h as f64) / 2.0 + offset.1 as f64);
        let (want_x, want_y) = (even(cx - w as f64 / 2.0), even(cy - h as f64 / 2.0));
        let x = want_x.clamp(s.x as i64, (s.x as i64 + s.w as i64 - w) & !1);
        let y = want_y.clamp(s.y as i64, (s.y as i64 + s.h as i64 - h) & !1);
        // Rounding to even pixels may move an edge crop by one pixel; that is not a clamp.
        let clamped = (want_x - x).abs() > 1 || (want_y - y).abs() > 1;
        (Rect::new(x as u32, y as u32, w as u32, h as u32), clamped)
    }

    /// The pose that best describes a raw crop (for `crop`, so later relative moves start
    /// from where the eye really looks). Vergence and offset are taken as zero.
    pub fn pose_of(&self, r: Rect, flip: Flip) -> Pose {
        let full = self.full();
        let zoom = (full.h as f64 / r.h.max(1) as f64).clamp(1.0, self.zoom_limit());
        let s = self.sensor;
        let range = |size: u32, span: u32| (span as f64 - size as f64) / 2.0;
        let norm = |c: f64, mid: f64, half: f64| if half > 0.5 { ((c - mid) / half).clamp(-1.0, 1.0) } else { 0.0 };
        let (hs, vs) = (if flip.h() { -1.0 } else { 1.0 }, if flip.v() { -1.0 } else { 1.0 });
        Pose {
            x: hs * norm(r.x as f64 + r.w as f64 / 2.0, s.x as f64 + s.w as f64 / 2.0, range(r.w, s.w)),
            y: vs * norm(r.y as f64 + r.h as f64 / 2.0, s.y as f64 + s.h as f64 / 2.0, range(r.h, s.h)),
            zoom,
            verge: 0.0,
        }
    }
}

/// Ease in and out (smoothstep): starts and ends at rest, exactly 0 at 0 and 1 at 1.
pub fn ease(t: f64) -> f64 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g() -> Geometry {
        Geometry::new(Rect::new(0, 0, 2304, 1296), Size { w: 960, h: 1080 }, 8.0, Size { w: 64, h: 64 })
    }

    fn pose(x: f64, y: f64, zoom: f64) -> Pose {
        Pose { x, y, zoom, verge: 0.0 }
    }

    fn inside(r: Rect, s: Rect) -> bool {
        r.x >= s.x && r.y >= s.y && r.right() <= s.right() && r.bottom() <= s.bottom()
    }

    #[test]
    fn vergence_past_the_edge_is_reported_as_clamped() {
        let g = g();
        let right = Pose { x: 1.0, ..Pose::default() };
        assert!(!g.crop_at_edge(0, right, (0, 0), Flip::None).1, "against the edge by gaze alone: not clamped");
        let (c, clamped) = g.crop_at_edge(0, Pose { verge: 0.1, ..right }, (0, 0), Flip::None);
        assert!(clamped && c.right() == 2304, "{c:?}");
        assert!(!g.crop_at_edge(1, Pose { verge: 0.1, ..right }, (0, 0), Flip::None).1, "eye 1 turns inwards");
        assert!(!g.crop_at_edge(0, Pose { verge: 0.1, ..Pose::default() }, (0, 0), Flip::None).1);
    }

    #[test]
    fn zoom_one_centred_is_the_full_view() {
        assert_eq!(g().crop(0, Pose::default(), (0, 0), Flip::None), Rect::new(576, 0, 1152, 1296));
    }

    #[test]
    fn aspect_is_kept_at_every_zoom_and_everything_is_even_and_inside() {
        let g = g();
        for zi in 0..=70 {
            let z = 1.0 + zi as f64 * 0.1;
            for (x, y) in [(-1.0, -1.0), (0.0, 0.0), (1.0, 1.0), (0.37, -0.81)] {
                for eye in 0..2 {
                    let r = g.crop(eye, pose(x, y, z), (0, 0), Flip::None);
                    assert!(inside(r, g.sensor), "{r:?}");
                    assert!(r.x % 2 == 0 && r.y % 2 == 0 && r.w % 2 == 0 && r.h % 2 == 0, "{r:?}");
                    let err = (r.w as f64 / r.h as f64 - 960.0 / 1080.0).abs();
                    assert!(err < 2.0 / r.h as f64, "aspect off at zoom {z}: {r:?}");
                }
            }
        }
    }

    #[test]
    fn an_odd_active_area_gives_even_crops_inside_it() {
        // A camera could report its area at odd coordinates or sizes (a Pi's sensors do not).
        let area = Rect::new(1, 3, 2305, 1297);
        let g = Geometry::new(area, Size { w: 960, h: 1080 }, 8.0, Size { w: 64, h: 64 });
        for zi in 0..=20 {
            let z = 1.0 + zi as f64 * 0.35;
            for (x, y) in [(-1.0, -1.0), (0.0, 0.0), (1.0, 1.0)] {
                for off in [(0, 0), (-9999, 9999)] {
                    let r = g.crop(1, pose(x, y, z), off, Flip::None);
                    assert!(inside(r, area), "{r:?} outside {area:?}");
                    assert!(r.x % 2 == 0 && r.y % 2 == 0 && r.w % 2 == 0 && r.h % 2 == 0, "{r:?}");
                }
            }
        }
        assert!(inside(g.full(), area), "{:?}", g.full());
    }

    #[test]
    fn gaze_reaches_every_edge_exactly() {
        let g = g();
        let r = g.crop(0, pose(-1.0, -1.0, 4.0), (0, 0), Flip::None);
        assert_eq!((r.x, r.y), (0, 0));
        let r = g.crop(0, pose(1.0, 1.0, 4.0), (0, 0), Flip::None);
        assert_eq!((r.right(), r.bottom()), (2304, 1296));
        // At zoom 1 the crop is full height: no vertical range, y does nothing.
        assert_eq!(g.crop(0, pose(0.0, 1.0, 1.0), (0, 0), Flip::None).y, 0);
        // Past the edge is clamped, not wrapped.
        assert_eq!(
            g.crop(0, pose(7.0, -9.0, 4.0), (0, 0), Flip::None),
            g.crop(0, pose(1.0, -1.0, 4.0), (0, 0), Flip::None)
        );
    }

    #[test]
    fn maximum_zoom_and_the_camera_floor() {
        let g = g();
        let r = g.crop(0, pose(0.0, 0.0, 100.0), (0, 0), Flip::None);
        assert_eq!(r.h, 162, "1296 / 8");
        assert_eq!(g.clamp(pose(0.0, 0.0, 100.0)).zoom, 8.0);
        let tight = Geometry::new(Rect::new(0, 0, 640, 360), Size { w: 320, h: 360 }, 8.0, Size { w: 64, h: 90 });
        assert_eq!(tight.zoom_limit(), 4.0, "a 360 px tall view with a 90 px floor zooms 4× at most");
        assert!(tight.crop(0, pose(0.0, 0.0, 8.0), (0, 0), Flip::None).h >= 90);
        assert_eq!(g.clamp(pose(0.0, 0.0, 0.1)).zoom, 1.0);
    }

    #[test]
    fn offsets_shift_and_are_clamped_at_the_edges() {
        let g = g();
        let base = g.crop(1, pose(0.0, 0.0, 2.0), (0, 0), Flip::None);
        let moved = g.crop(1, pose(0.0, 0.0, 2.0), (10, -6), Flip::None);
        assert_eq!((moved.x, moved.y), (base.x + 10, base.y - 6));
        let edge = g.crop(1, pose(1.0, 1.0, 2.0), (500, 500), Flip::None);
        assert_eq!((edge.right(), edge.bottom()), (2304, 1296));
    }

    #[test]
    fn vergence_turns_the_eyes_in_opposite_directions() {
        let g = g();
        let p = Pose { verge: 0.1, ..pose(0.0, 0.0, 2.0) };
        let (l, r) = (g.crop(0, p, (0, 0), Flip::None), g.crop(1, p, (0, 0), Flip::None));
        let c = g.crop(0, pose(0.0, 0.0, 2.0), (0, 0), Flip::None);
        assert_eq!(l.x as i64 - c.x as i64, 116, "0.1 × 1152 ≈ 115 → even 116");
        assert_eq!(c.x as i64 - r.x as i64, 116);
        assert_eq!((l.y, r.y), (c.y, c.y));
    }

    #[test]
    fn flips_keep_directions_in_picture_terms() {
        let g = g();
        let right = pose(1.0, 0.0, 2.0);
        assert_eq!(g.crop(0, right, (0, 0), Flip::H).x, 0, "picture flipped: looking right crops the sensor's left");
        assert_eq!(g.crop(0, right, (0, 0), Flip::None).right(), 2304);
        let down = pose(0.0, 1.0, 2.0);
        assert_eq!(g.crop(0, down, (0, 0), Flip::V).y, 0);
        let q = g.pose_of(g.crop(0, right, (0, 0), Flip::HV), Flip::HV);
        assert!((q.x - 1.0).abs() < 0.01, "{q:?}");
    }

    #[test]
    fn pose_of_inverts_crop() {
        let g = g();
        for p in [pose(0.5, -0.25, 2.0), pose(-1.0, 1.0, 3.0), pose(0.0, 0.0, 1.0)] {
            let q = g.pose_of(g.crop(0, p, (0, 0), Flip::None), Flip::None);
            assert!((q.x - p.x).abs() < 0.01 && (q.zoom - p.zoom).abs() < 0.02, "{p:?} → {q:?}");
            if p.zoom > 1.0 {
                assert!((q.y - p.y).abs() < 0.01);
            }
        }
    }

    #[test]
    fn easing_and_interpolation_end_exactly_at_the_target() {
        assert_eq!(ease(0.0), 0.0);
        assert_eq!(ease(1.0), 1.0);
        assert!(ease(0.5) == 0.5 && ease(0.1) < 0.1 && ease(0.9) > 0.9);
        let (a, b) = (pose(-1.0, 0.5, 1.0), pose(1.0, -0.5, 4.0));
        assert_eq!(Pose::lerp(a, b, 1.0), b);
        assert_eq!(Pose::lerp(a, b, 0.0), a);
        assert!((Pose::lerp(a, b, 0.5).zoom - 2.0).abs() < 1e-9, "zoom halfway in log space");
    }
}
