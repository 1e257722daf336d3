//! The synthetic world both eyes look at: a detailed, non-repeating texture fixed in sensor
//! space (tiles of varying brightness and colour, each with its own ring, a grid, large
//! concentric circles around the sensor centre) and a disc that orbits over it. Eye 1 sees
//! the scene shifted by a small horizontal disparity, as the right eye of a stereo pair does,
//! and, for tests of `calibrate`, optionally misaligned: its picture shifted down and turned as
//! a camera mounted a little off would give it (`Misalign`).
//!
//! Rendering a frame is a nearest-neighbour scale of the crop into the output (index tables
//! built once per frame, then one gather per pixel), so the "sensor" costs little CPU and
//! memory and the pixels still depend on exactly which crop was asked for.

use super::{I420Layout, Rect, Size};

const TILE: u32 = 48;
const DISC_RADIUS: f32 = 60.0;
const ORBIT_RADIUS: f32 = 300.0;
const ORBIT_PERIOD_US: f32 = 4_000_000.0;

/// How eye 1's camera is mounted off eye 0's: its picture shows the scene `dy` sensor pixels
/// lower and turned by `rotation_deg` about the sensor centre (clockwise, its right side lower).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Misalign {
    pub dy: i32,
    pub rotation_deg: f64,
}

impl Misalign {
    pub fn is_none(&self) -> bool {
        self.dy == 0 && self.rotation_deg == 0.0
    }
}

pub struct Scene {
    sensor: Size,
    disparity: u32,
    misalign: Misalign,
    /// Luma texels per row: the sensor plus the disparity margin eye 1 looks into, at half
    /// resolution (one texel per 2×2 sensor pixels: features are at least that wide, and it
    /// keeps the synthetic camera's memory small).
    tw: usize,
    y: Vec<u8>,
    /// Chroma per tile (each tile one colour).
    tiles_x: usize,
    u: Vec<u8>,
    v: Vec<u8>,
}

fn hash(a: u32, b: u32) -> u32 {
    let mut h = a.wrapping_mul(0x9e37_79b1) ^ b.wrapping_mul(0x85eb_ca77);
    h ^= h >> 15;
    h = h.wrapping_mul(0xc2b2_ae3d);
    h ^ (h >> 13)
}

impl Scene {
    /// Build the texture for a sensor of `sensor` pixels (takes a few tens of ms, once).
    pub fn new(sensor: Size, disparity: u32) -> Scene {
        assert!(sensor.w % 2 == 0 && sensor.h % 2 == 0);
        let tw = (sensor.w + disparity).div_ceil(2) as usize;
        let th = (sensor.h / 2) as usize;
        let (cxs, cys) = (sensor.w as f32 / 2.0, sensor.h as f32 / 2.0);
        let mut y = vec![0u8; tw * th];
        for (row, line) in y.chunks_exact_mut(tw).enumerate() {
            let sy = 2 * row as u32 + 1;
            for (col, px) in line.iter_mut().enumerate() {
                let sx = 2 * col as u32 + 1;
                let (tx, ty) = (sx / TILE, sy / TILE);
                let h = hash(tx, ty);
                let mut l = 60 + (h % 140) as i32;
                // A ring of its own in every tile, radius from the hash.
                let (dx, dy) = ((sx % TILE) as i32 - 24, (sy % TILE) as i32 - 24);
                let r2 = dx * dx + dy * dy;
                let rr = 6 + (h >> 8) as i32 % 14;
                if (r2 - rr * rr).abs() < 3 * rr {
                    l = if l > 128 { 30 } else { 225 };
                }
                // Grid lines between tiles.
                if sx % TILE < 2 || sy % TILE < 2 {
                    l = 20;
                }
                // Concentric circles around the sensor centre, every 96 px.
                let d = ((sx as f32 - cxs).powi(2) + (sy as f32 - cys).powi(2)).sqrt();
                if d % 96.0 < 3.0 {
                    l = 240;
                }
                *px = l as u8;
            }
        }
        let tiles_x = (sensor.w + disparity).div_ceil(TILE) as usize;
        let tiles_y = sensor.h.div_ceil(TILE) as usize;
        let (mut u, mut v) = (Vec::with_capacity(tiles_x * tiles_y), Vec::with_capacity(tiles_x * tiles_y));
        for ty in 0..tiles_y {
            for tx in 0..tiles_x {
                let h = hash(tx as u32, ty as u32).rotate_left(11);
                u.push(128 + (h % 61) as u8 - 30);
                v.push(128 + ((h >> 8) % 61) as u8 - 30);
            }
        }
        Scene { sensor, disparity, misalign: Misalign::default(), tw, y, tiles_x, u, v }
    }

    /// Eye 1 sees the scene through a misaligned camera from now on.
    pub fn with_misalign(mut self, m: Misalign) -> Scene {
        self.misalign = m;
        self
    }

    pub fn sensor(&self) -> Size {
        self.sensor
    }

    /// Centre of the orbiting disc in scene coordinates at time `t_us`.
    fn disc_centre(&self, t_us: u64) -> (f32, f32) {
        let a = (t_us as f32 % ORBIT_PERIOD_US) / ORBIT_PERIOD_US * std::f32::consts::TAU;
        (self.sensor.w as f32 / 2.0 + ORBIT_RADIUS * a.cos(), self.sensor.h as f32 / 2.0 + ORBIT_RADIUS * a.sin())
    }

    /// Render what `eye` sees through `crop` (sensor coordinates, inside the sensor) at time
    /// `t_us` into an I420 frame. `xmap` is scratch space reused across frames.
    pub fn render(&self, eye: u8, t_us: u64, crop: Rect, layout: I420Layout, frame: &mut [u8], xmap: &mut Vec<u32>) {
        let (w, h) = (layout.width as usize, layout.height as usize);
        let shift = if eye == 1 { self.disparity } else { 0 };
        let m = if eye == 1 { self.misalign } else { Misalign::default() };
        let (yp, up, vp) = layout.planes_mut(frame);
        let rows = self.y.len() / self.tw;
        // Sensor row `sy` of a misaligned eye shows scene row `sy - dy` (clamped to the scene).
        let scene_row = |sy: i64| (sy - m.dy as i64).clamp(0, self.sensor.h as i64 - 1) as usize;

        xmap.clear();
        xmap.extend((0..w as u64).map(|x| crop.x + shift + (x * crop.w as u64 / w as u64) as u32));
        if m.rotation_deg == 0.0 {
            for (oy, line) in yp.chunks_exact_mut(w).enumerate() {
                let sy = scene_row((crop.y as usize + oy * crop.h as usize / h) as i64) / 2;
                let src = &self.y[sy * self.tw..(sy + 1) * self.tw];
                for (px, &sx) in line.iter_mut().zip(xmap.iter()) {
                    *px = src[sx as usize / 2];
                }
            }
        } else {
            // Turned: each column's rows move by its distance from the centre times tan(angle).
            let t = m.rotation_deg.to_radians().tan();
            let cx = self.sensor.w as f64 / 2.0;
            let tilt: Vec<i64> = xmap.iter().map(|&sx| ((sx as f64 - shift as f64 - cx) * t).round() as i64).collect();
            for (oy, line) in yp.chunks_exact_mut(w).enumerate() {
                let sy = (crop.y as usize + oy * crop.h as usize / h) as i64;
                for ((px, &sx), &dt) in line.iter_mut().zip(xmap.iter()).zip(tilt.iter()) {
                    let ty = (scene_row(sy - dt) / 2).min(rows - 1);
                    *px = self.y[ty * self.tw + sx as usize / 2];
                }
            }
        }
        let cw = w / 2;
        let tile = TILE as usize;
        for (oy, (uline, vline)) in up.chunks_exact_mut(cw).zip(vp.chunks_exact_mut(cw)).enumerate() {
            let row = scene_row((crop.y as usize + 2 * oy * crop.h as usize / h) as i64) / tile * self.tiles_x;
            let (usrc, vsrc) = (&self.u[row..row + self.tiles_x], &self.v[row..row + self.tiles_x]);
            for (ox, (pu, pv)) in uline.iter_mut().zip(vline.iter_mut()).enumerate() {
                let t = xmap[2 * ox] as usize / tile;
                *pu = usrc[t];
                *pv = vsrc[t];
            }
        }

        // The orbiting disc, drawn straight in output space over its bounding box.
        let (dcx, dcy) = self.disc_centre(t_us);
        let sx_scale = w as f32 / crop.w as f32;
        let sy_scale = h as f32 / crop.h as f32;
        let ox = (dcx - shift as f32 - crop.x as f32) * sx_scale;
        let oy = (dcy + m.dy as f32 - crop.y as f32) * sy_scale;
        let (rx, ry) = (DISC_RADIUS * sx_scale, DISC_RADIUS * sy_scale);
        let x0 = (ox - rx).floor().max(0.0) as usize;
        let x1 = ((ox + rx).ceil().max(0.0) as usize).min(w);
        let y0 = (oy - ry).floor().max(0.0) as usize;
        let y1 = ((oy + ry).ceil().max(0.0) as usize).min(h);
        for py in y0..y1 {
            for px in x0..x1 {
                let (nx, ny) = ((px as f32 + 0.5 - ox) / rx, (py as f32 + 0.5 - oy) / ry);
                let d = nx * nx + ny * ny;
                if d <= 1.0 {
                    yp[py * w + px] = if d > 0.8 { 16 } else { 220 };
                    if px % 2 == 0 && py % 2 == 0 {
                        up[py / 2 * cw + px / 2] = 90;
                        vp[py / 2 * cw + px / 2] = 210;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(scene: &Scene, eye: u8, t: u64, crop: Rect, out: Size) -> Vec<u8> {
        let layout = I420Layout::new(out);
        let mut f = vec![0u8; layout.frame_len()];
        scene.render(eye, t, crop, layout, &mut f, &mut Vec::new());
        f
    }

    #[test]
    fn crop_changes_the_picture_and_same_inputs_give_same_pixels() {
        let s = Scene::new(Size { w: 640, h: 360 }, 16);
        let out = Size { w: 160, h: 180 };
        let a = render(&s, 0, 0, Rect::new(0, 0, 320, 360), out);
        let b = render(&s, 0, 0, Rect::new(0, 0, 320, 360), out);
        let c = render(&s, 0, 0, Rect::new(200, 0, 320, 360), out);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn right_eye_sees_the_left_eye_picture_shifted_by_the_disparity() {
        let s = Scene::new(Size { w: 640, h: 360 }, 16);
        let out = Size { w: 320, h: 360 };
        // At scale 1:1, eye 1 with crop x=0 sees what eye 0 sees with crop x=16 (disc aside:
        // render at a time the disc sits far from both crops? it orbits the centre, so compare
        // only the top rows, which the disc never reaches with this sensor).
        let l = render(&s, 0, 0, Rect::new(16, 0, 320, 360), out);
        let r = render(&s, 1, 0, Rect::new(0, 0, 320, 360), out);
        assert_eq!(l[..320 * 10], r[..320 * 10]);
        let r0 = render(&s, 1, 0, Rect::new(16, 0, 320, 360), out);
        assert_ne!(l[..320 * 10], r0[..320 * 10]);
    }

    #[test]
    fn a_misaligned_eye_sees_the_scene_lower_and_turned() {
        let s = Scene::new(Size { w: 640, h: 360 }, 16).with_misalign(Misalign { dy: 10, rotation_deg: 0.0 });
        let out = Size { w: 320, h: 360 };
        // 1:1 scale: eye 1's row r + 10 is eye 0's row r (disparity undone by the crops);
        // rows clear of the disc (top) compared.
        let l = render(&s, 0, 0, Rect::new(16, 0, 320, 360), out);
        let r = render(&s, 1, 0, Rect::new(0, 0, 320, 360), out);
        assert_eq!(l[..320 * 20], r[320 * 10..320 * 30]);
        // Turned clockwise: the right side lower than the left.
        let t = Scene::new(Size { w: 640, h: 360 }, 0).with_misalign(Misalign { dy: 0, rotation_deg: 2.0 });
        let r = render(&t, 1, 0, Rect::new(0, 0, 640, 360), Size { w: 640, h: 360 });
        let l = render(&t, 0, 0, Rect::new(0, 0, 640, 360), Size { w: 640, h: 360 });
        let px = |f: &[u8], x: usize, y: usize| f[y * 640 + x];
        let dy_right = ((320.0f64 + 300.0 - 320.0) * 2f64.to_radians().tan()).round() as usize; // 10
        assert_eq!(px(&r, 620, 40 + dy_right), px(&l, 620, 40));
        assert_eq!(px(&r, 320, 40), px(&l, 320, 40));
    }

    #[test]
    fn the_disc_moves() {
        let s = Scene::new(Size { w: 1280, h: 720 }, 16);
        let out = Size { w: 640, h: 720 };
        let crop = Rect::new(320, 0, 640, 720);
        assert_ne!(render(&s, 0, 0, crop, out), render(&s, 0, 500_000, crop, out));
    }
}
