//! Vertical alignment of a stereo pair from its pictures, sans-IO: two luma planes in, how far
//! eye 1's picture sits below eye 0's (and how much it is turned) out, with a confidence.
//!
//! Two eyes looking the same way see the same rows: horizontal disparity moves things along a
//! row, never across rows. So each eye's picture is reduced to *row profiles* (the mean luma of
//! every row, per vertical strip), high-passed so that a brighter or darker camera does not
//! matter, and eye 1's profile is slid against eye 0's: the shift with the highest normalised
//! cross-correlation is the vertical misalignment, refined below a row by a parabola through
//! the peak. The same done per strip gives a shift per strip; a line through them is the
//! rotation. This is the projection-based registration of image stabilisers (row/column
//! profiles, e.g. Ratakonda 1998, "Real-time digital video stabilization for multi-media
//! applications") applied to the two eyes instead of two frames.

/// A luma plane, possibly downscaled: `height` rows of `width` bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Luma {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Luma {
    /// A plane of `width`×`height` pixels (`stride` bytes per row), every row kept and every
    /// `fx`-th pixel along a row. Vertical resolution is what the estimate needs; along a row
    /// only means are taken, for which a sample of the pixels does (and it keeps the copy, done
    /// on the loop, to a quarter of the plane's reads).
    pub fn from_plane(plane: &[u8], stride: usize, width: usize, height: usize, fx: usize) -> Luma {
        let fx = fx.max(1);
        let w = width / fx;
        let mut data = Vec::with_capacity(w * height);
        for row in plane.chunks(stride).take(height) {
            data.extend(row[..w * fx].iter().step_by(fx));
        }
        Luma { width: w, height: data.len() / w.max(1), data }
    }

    fn row(&self, y: usize) -> &[u8] {
        &self.data[y * self.width..(y + 1) * self.width]
    }
}

/// What the pictures say.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// How far eye 1's picture sits below eye 0's, in rows of the planes given (positive: a
    /// thing eye 0 shows at row r, eye 1 shows at row r + shift).
    pub shift_rows: f64,
    /// How far eye 1's picture is turned against eye 0's, degrees, positive clockwise as seen
    /// (its right side lower).
    pub rotation_deg: f64,
    /// 0…1: the correlation peak's height above the best candidate elsewhere. Near 0, the
    /// pictures do not say (a blank wall, a repeating pattern, eyes seeing different things).
    pub confidence: f64,
}

/// Vertical strips for the rotation.
const STRIPS: usize = 8;
/// High-pass window of the row profiles, rows (each side).
const DETREND: usize = 12;
/// Shifts searched per strip around the overall one, rows.
const STRIP_SEARCH: i64 = 12;

/// Estimate how eye 1's picture `b` sits against eye 0's `a` (same size). `pixel_aspect`: the
/// width of one column over the height of one row, in sensor pixels (a downscaled column is
/// wider), for the rotation. Shifts up to an eighth of the height are searched. None: the
/// planes differ in size or are too small to say anything.
pub fn estimate(a: &Luma, b: &Luma, pixel_aspect: f64) -> Option<Estimate> {
    if a.width != b.width || a.height != b.height || a.height < 64 || a.width < 4 * STRIPS {
        return None;
    }
    let (w, h) = (a.width, a.height);
    let max_shift = (h / 8) as i64;
    // Rows near the top and bottom are left out of the comparison: eye 1's shifted rows
    // enter and leave there, and overlays (the synthetic camera's stamp) live there.
    let margin = max_shift as usize + STRIP_SEARCH as usize + h / 20;
    let strip_w = w / STRIPS;
    let profiles = |l: &Luma| -> Vec<Vec<f64>> {
        (0..STRIPS)
            .map(|s| {
                let p: Vec<f64> = (0..h)
                    .map(|y| {
                        let cols = &l.row(y)[s * strip_w..(s + 1) * strip_w];
                        cols.iter().map(|&v| v as f64).sum::<f64>() / strip_w as f64
                    })
                    .collect();
                high_pass(&p)
            })
            .collect()
    };
    let (pa, pb) = (profiles(a), profiles(b));
    // The strips' correlations averaged: each strip keeps the brightness pattern of its own
    // part of the scene, which one whole-width profile would average away, leaving repeating
    // structure (a tiled floor, a grid) to decide.
    let curve: Vec<f64> = (-max_shift..=max_shift)
        .map(|d| (0..STRIPS).map(|s| ncc(&pa[s], &pb[s], margin, d)).sum::<f64>() / STRIPS as f64)
        .collect();
    let (best, peak) = argmax(&curve)?;
    // The best candidate away from the peak's own slope.
    let elsewhere =
        curve.iter().enumerate().filter(|(i, _)| i.abs_diff(best) > 3).map(|(_, &v)| v).fold(0.0f64, f64::max);
    let confidence = (peak - elsewhere).clamp(0.0, 1.0);
    let d0 = best as i64 - max_shift;
    let shift_rows = d0 as f64 + vertex(&curve, best);

    // Per strip, the shift near the overall one; a weighted line through them is the tilt.
    let mut fit = (0.0, 0.0, 0.0, 0.0, 0.0); // Σw, Σwx, Σwy, Σwxx, Σwxy
    let mut strips = 0;
    for s in 0..STRIPS {
        let shifts: Vec<i64> = (d0 - STRIP_SEARCH..=d0 + STRIP_SEARCH).collect();
        let c: Vec<f64> = shifts.iter().map(|&d| ncc(&pa[s], &pb[s], margin, d)).collect();
        let Some((i, p)) = argmax(&c) else { continue };
        if p <= 0.2 || i == 0 || i == c.len() - 1 {
            continue; // no peak inside the window: this strip does not say
        }
        let y = shifts[i] as f64 + vertex(&c, i);
        let x = (s as f64 + 0.5) * strip_w as f64 - w as f64 / 2.0;
        strips += 1;
        fit.0 += p;
        fit.1 += p * x;
        fit.2 += p * y;
        fit.3 += p * x * x;
        fit.4 += p * x * y;
    }
    let den = fit.0 * fit.3 - fit.1 * fit.1;
    let (mut slope, mut shift_rows) = (0.0, shift_rows);
    if strips >= 3 && den.abs() > 1e-9 {
        // A turned picture smears the whole-width profile; the line through the strips, at
        // the centre, is the shift there.
        slope = (fit.0 * fit.4 - fit.1 * fit.2) / den;
        shift_rows = (fit.2 - slope * fit.1) / fit.0;
    }
    let rotation_deg = (slope / pixel_aspect.max(1e-9)).atan().to_degrees();
    Some(Estimate { shift_rows, rotation_deg, confidence })
}

/// The profile minus its running mean over ±DETREND rows (a box filter by prefix sums).
fn high_pass(p: &[f64]) -> Vec<f64> {
    let mut prefix = Vec::with_capacity(p.len() + 1);
    prefix.push(0.0);
    for v in p {
        prefix.push(prefix.last().unwrap() + v);
    }
    (0..p.len())
        .map(|y| {
            let lo = y.saturating_sub(DETREND);
            let hi = (y + DETREND + 1).min(p.len());
            p[y] - (prefix[hi] - prefix[lo]) / (hi - lo) as f64
        })
        .collect()
}

/// Normalised cross-correlation of `a[y]` with `b[y + d]` over `y` in `margin..len - margin`.
fn ncc(a: &[f64], b: &[f64], margin: usize, d: i64) -> f64 {
    let n = a.len();
    let (mut sab, mut saa, mut sbb, mut sa, mut sb, mut k) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (y, &va) in a.iter().enumerate().take(n.saturating_sub(margin)).skip(margin) {
        let Some(&vb) = usize::try_from(y as i64 + d).ok().and_then(|j| b.get(j)) else { continue };
        sab += va * vb;
        saa += va * va;
        sbb += vb * vb;
        sa += va;
        sb += vb;
        k += 1.0;
    }
    if k < 2.0 {
        return 0.0;
    }
    let cov = sab - sa * sb / k;
    let var = (saa - sa * sa / k) * (sbb - sb * sb / k);
    if var <= 1e-12 { 0.0 } else { cov / var.sqrt() }
}

fn argmax(v: &[f64]) -> Option<(usize, f64)> {
    v.iter().copied().enumerate().fold(None, |best, (i, x)| match best {
        Some((_, b)) if b >= x => best,
        _ => Some((i, x)),
    })
}

/// Sub-sample offset of the peak at `i` from a parabola through its neighbours (−0.5…0.5).
fn vertex(v: &[f64], i: usize) -> f64 {
    if i == 0 || i + 1 >= v.len() {
        return 0.0;
    }
    let (l, c, r) = (v[i - 1], v[i], v[i + 1]);
    let den = l - 2.0 * c + r;
    if den.abs() < 1e-12 { 0.0 } else { (0.5 * (l - r) / den).clamp(-0.5, 0.5) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(a: u32, b: u32) -> u32 {
        let mut h = a.wrapping_mul(0x9e37_79b1) ^ b.wrapping_mul(0x85eb_ca77);
        h ^= h >> 15;
        h = h.wrapping_mul(0xc2b2_ae3d);
        h ^ (h >> 13)
    }

    /// A textured world: blobs of brightness on a 12-pixel lattice, bilinearly smooth, so a
    /// fractional position has a well-defined value.
    fn world(x: f64, y: f64) -> f64 {
        let (gx, gy) = (x / 12.0, y / 12.0);
        let (ix, iy) = (gx.floor(), gy.floor());
        let (fx, fy) = (gx - ix, gy - iy);
        let v = |i: f64, j: f64| (hash((i + 1000.0) as u32, (j + 1000.0) as u32) % 200) as f64;
        let top = v(ix, iy) * (1.0 - fx) + v(ix + 1.0, iy) * fx;
        let bottom = v(ix, iy + 1.0) * (1.0 - fx) + v(ix + 1.0, iy + 1.0) * fx;
        top * (1.0 - fy) + bottom * fy
    }

    /// The world as eye 1 would see it: `dy` rows lower, `dx` columns right (disparity),
    /// turned by `deg` about the centre, `gain` brighter.
    fn picture(w: usize, h: usize, dx: f64, dy: f64, deg: f64, gain: f64) -> Luma {
        let (s, c) = deg.to_radians().sin_cos();
        let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                // Undo the turn and the shift: which world point lands on (x, y).
                let (px, py) = (x as f64 - cx - dx, y as f64 - cy - dy);
                let (wx, wy) = (c * px + s * py, -s * px + c * py);
                data.push((world(wx + cx + 500.0, wy + cy + 500.0) * gain + 20.0).min(255.0) as u8);
            }
        }
        Luma { width: w, height: h, data }
    }

    #[test]
    fn finds_a_known_vertical_shift_to_a_fraction_of_a_row_despite_disparity_and_gain() {
        let a = picture(240, 270, 0.0, 0.0, 0.0, 1.0);
        for dy in [0.0, 7.0, -12.0, 3.5, 25.0, -30.25] {
            let b = picture(240, 270, 6.0, dy, 0.0, 0.8);
            let e = estimate(&a, &b, 1.0).unwrap();
            assert!((e.shift_rows - dy).abs() < 0.35, "dy {dy}: {e:?}");
            assert!(e.confidence > 0.15, "dy {dy}: {e:?}");
            assert!(e.rotation_deg.abs() < 0.3, "dy {dy}: {e:?}");
        }
    }

    #[test]
    fn finds_a_small_rotation() {
        let a = picture(320, 270, 0.0, 0.0, 0.0, 1.0);
        for deg in [1.0, -1.5, 0.5] {
            let b = picture(320, 270, 0.0, 5.0, deg, 1.0);
            let e = estimate(&a, &b, 1.0).unwrap();
            assert!((e.rotation_deg - deg).abs() < 0.25, "{deg}°: {e:?}");
            assert!((e.shift_rows - 5.0).abs() < 0.6, "{deg}°: {e:?}");
        }
        // Columns twice as wide as rows are high (a downscaled plane): the same pixel tilt
        // is half the angle.
        let b = picture(320, 270, 0.0, 0.0, 1.0, 1.0);
        let e = estimate(&a, &b, 2.0).unwrap();
        assert!((e.rotation_deg - 0.5).abs() < 0.15, "{e:?}");
    }

    #[test]
    fn a_blank_or_unrelated_picture_has_no_confidence() {
        let a = picture(240, 270, 0.0, 0.0, 0.0, 1.0);
        let blank = Luma { width: 240, height: 270, data: vec![128; 240 * 270] };
        assert!(estimate(&a, &blank, 1.0).unwrap().confidence < 0.05);
        let other =
            Luma { data: picture(240, 270, 0.0, 0.0, 0.0, 1.0).data.iter().rev().copied().collect(), ..a.clone() };
        assert!(estimate(&a, &other, 1.0).unwrap().confidence < 0.3);
        assert_eq!(estimate(&a, &Luma { width: 10, height: 10, data: vec![0; 100] }, 1.0), None);
    }

    #[test]
    fn a_plane_is_sampled_along_its_rows_only() {
        // 8×2 pixels in rows of stride 10.
        let plane: Vec<u8> = (0..20).map(|i| i as u8 * 10).collect();
        let l = Luma::from_plane(&plane, 10, 8, 2, 4);
        assert_eq!((l.width, l.height), (2, 2));
        assert_eq!(l.data, vec![0, 40, 100, 140]);
    }
}
