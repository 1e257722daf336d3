//! Which sensor mode a camera runs in. libcamera picks a mode from the output size alone, and at
//! some sizes that is a cropped mode (imx708 at 1280x720 gets 1536x864 read from the central
//! 3072x1728; imx219 at 1920x1080 gets its cropped 1080p mode): the pan/tilt range would shrink
//! without a word. rpicam-apps and picamera2 choose the mode themselves and ask for it with a raw
//! stream and a sensor configuration; pieyes does the same, choosing for the widest field of
//! view at the frame rate asked (`--sensor-mode WxH` chooses by hand). Pure: the backend lists
//! the modes (a raw stream's sizes, each configured once for its crop and fastest rate).

use super::{Rect, Size, full_view};

/// One sensor mode, as the camera reports it once configured for it.
#[derive(Clone, Debug, PartialEq)]
pub struct SensorMode {
    /// The raw format (`SRGGB10_CSI2P`…), for display.
    pub format: String,
    pub bit_depth: u32,
    /// What the sensor reads out.
    pub size: Size,
    /// The part of the pixel array it covers (the `ScalerCrop` maximum in this mode).
    pub crop: Rect,
    /// The fastest frame rate in this mode (from `FrameDurationLimits`' minimum).
    pub max_fps: f64,
}

impl std::fmt::Display for SensorMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}-bit {:.2} fps, crop {}", self.size, self.bit_depth, self.max_fps, self.crop)
    }
}

/// Parse `--sensor-mode WxH`.
pub fn parse(v: &str) -> Result<Size, String> {
    let (w, h) = v.split_once('x').ok_or_else(|| format!("--sensor-mode: expected WxH (e.g. 2304x1296), got {v:?}"))?;
    match (w.parse::<u32>(), h.parse::<u32>()) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok(Size { w, h }),
        _ => Err(format!("--sensor-mode: expected WxH (e.g. 2304x1296), got {v:?}")),
    }
}

fn area(r: Rect) -> u64 {
    r.w as u64 * r.h as u64
}

/// The part of the sensor a frame of `output`'s shape shows in `mode`: its field of view.
fn view(mode: &SensorMode, output: Size) -> u64 {
    if mode.crop.w == 0 || mode.crop.h == 0 {
        return 0;
    }
    area(full_view(mode.crop, output))
}

/// Whether a rectangle can hold a crop (the Pi reports 0x0 for what it does not know yet).
fn usable(r: &Rect) -> bool {
    r.w >= 2 && r.h >= 2
}

/// The area crops live in, and whether the camera crops at all, from what the camera says once
/// it is configured: its `ScalerCropMaximum` property, else the `ScalerCrop` control's maximum
/// (the Pi pipeline reports the property as 0x0 until `configure()`, and rpicam-apps reads the
/// control), else the pixel array's active area (a camera that ignores crops shows all of it),
/// else the output. Never an empty area (a 0x0 sensor made the crop maths panic at start-up).
pub fn crop_area(
    crop_max: Option<Rect>,
    control_max: Option<Rect>,
    active: Option<Rect>,
    output: Size,
) -> (Rect, bool) {
    if let Some(r) = crop_max.into_iter().chain(control_max).find(usable) {
        return (r, true);
    }
    (active.filter(usable).unwrap_or(Rect::new(0, 0, output.w.max(2), output.h.max(2))), false)
}

/// Why a mode was chosen (for the log and `status`).
#[derive(Clone, Debug, PartialEq)]
pub enum Why {
    /// `--sensor-mode` named it.
    Asked,
    /// The widest field of view among the modes that reach the frame rate.
    WidestAtFps,
    /// No mode reaches the frame rate: the fastest one.
    Fastest,
}

/// The mode for `output` at `fps`: `forced` (`--sensor-mode`) when given, else the one whose
/// field of view for `output`'s shape is widest among those that reach `fps`; between equals,
/// the smallest readout that still has `output`'s pixels (less bandwidth, faster readout), else
/// the largest. `None` when the camera lists no modes (no raw stream: vimc, virtual, UVC).
pub fn choose(
    modes: &[SensorMode],
    output: Size,
    fps: u32,
    forced: Option<Size>,
) -> Result<Option<(usize, Why)>, String> {
    if let Some(want) = forced {
        if modes.is_empty() {
            return Err(format!("--sensor-mode {want}: this camera lists no sensor modes"));
        }
        return match modes.iter().position(|m| m.size == want) {
            Some(i) => Ok(Some((i, Why::Asked))),
            None => Err(format!(
                "--sensor-mode {want}: the camera has {}",
                modes.iter().map(|m| m.size.to_string()).collect::<Vec<_>>().join(", ")
            )),
        };
    }
    if modes.is_empty() {
        return Ok(None);
    }
    let covers = |m: &SensorMode| m.size.w >= output.w && m.size.h >= output.h;
    let pixels = |m: &SensorMode| m.size.w as u64 * m.size.h as u64;
    // Rates are measured in floating point (30 fps may read 30.0001 or 29.9999).
    let fast: Vec<usize> = (0..modes.len()).filter(|&i| modes[i].max_fps + 0.01 >= fps as f64).collect();
    if fast.is_empty() {
        let i = (0..modes.len())
            .max_by(|&a, &b| {
                modes[a]
                    .max_fps
                    .total_cmp(&modes[b].max_fps)
                    .then(view(&modes[a], output).cmp(&view(&modes[b], output)))
            })
            .expect("not empty");
        return Ok(Some((i, Why::Fastest)));
    }
    let best = fast
        .into_iter()
        .max_by(|&a, &b| {
            let (ma, mb) = (&modes[a], &modes[b]);
            view(ma, output)
                .cmp(&view(mb, output))
                .then(covers(ma).cmp(&covers(mb)))
                .then_with(|| if covers(ma) { pixels(mb).cmp(&pixels(ma)) } else { pixels(ma).cmp(&pixels(mb)) })
        })
        .expect("not empty");
    Ok(Some((best, Why::WidestAtFps)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(w: u32, h: u32, crop: Rect, fps: f64) -> SensorMode {
        SensorMode { format: "SRGGB10_CSI2P".into(), bit_depth: 10, size: Size { w, h }, crop, max_fps: fps }
    }

    /// Camera Module 3 (imx708) as `rpicam-hello --list-cameras` shows it on a Pi 5.
    fn imx708() -> Vec<SensorMode> {
        vec![
            mode(1536, 864, Rect::new(768, 432, 3072, 1728), 120.13),
            mode(2304, 1296, Rect::new(0, 0, 4608, 2592), 56.03),
            mode(4608, 2592, Rect::new(0, 0, 4608, 2592), 14.35),
        ]
    }

    /// Camera Module 2 (imx219).
    fn imx219() -> Vec<SensorMode> {
        vec![
            mode(640, 480, Rect::new(1000, 752, 1280, 960), 206.65),
            mode(1640, 1232, Rect::new(0, 0, 3280, 2464), 41.85),
            mode(1920, 1080, Rect::new(680, 692, 1920, 1080), 47.57),
            mode(3280, 2464, Rect::new(0, 0, 3280, 2464), 21.19),
        ]
    }

    const P720: Size = Size { w: 1280, h: 720 };

    #[test]
    fn the_full_field_mode_where_libcamera_would_crop() {
        // libcamera alone gives imx708 at 1280x720 the cropped 1536x864 mode.
        let m = imx708();
        let (i, why) = choose(&m, P720, 30, None).unwrap().unwrap();
        assert_eq!((m[i].size, why), (Size { w: 2304, h: 1296 }, Why::WidestAtFps));
        // imx219 at 1080p: the binned full-field 1640x1232 mode, not the cropped 1920x1080.
        let m = imx219();
        let (i, _) = choose(&m, Size { w: 1920, h: 1080 }, 30, None).unwrap().unwrap();
        assert_eq!(m[i].size, Size { w: 1640, h: 1232 });
    }

    #[test]
    fn the_frame_rate_comes_first() {
        let m = imx708();
        let (i, _) = choose(&m, P720, 100, None).unwrap().unwrap();
        assert_eq!(m[i].size, Size { w: 1536, h: 864 }, "only the cropped mode reaches 100 fps");
        let (i, why) = choose(&m, P720, 200, None).unwrap().unwrap();
        assert_eq!((m[i].size, why), (Size { w: 1536, h: 864 }, Why::Fastest));
        let (i, _) = choose(&m, Size { w: 960, h: 1080 }, 10, None).unwrap().unwrap();
        assert_eq!(
            m[i].size,
            Size { w: 2304, h: 1296 },
            "of two full-field modes, the smaller one that covers the output"
        );
        let (i, _) = choose(&m, Size { w: 3840, h: 2160 }, 10, None).unwrap().unwrap();
        assert_eq!(
            m[i].size,
            Size { w: 4608, h: 2592 },
            "an output larger than the binned mode wants the full readout"
        );
    }

    #[test]
    fn by_hand_and_without_modes() {
        let m = imx219();
        assert_eq!(choose(&m, P720, 30, Some(Size { w: 1920, h: 1080 })).unwrap(), Some((2, Why::Asked)));
        let e = choose(&m, P720, 30, Some(Size { w: 1, h: 1 })).unwrap_err();
        assert!(e.contains("640x480, 1640x1232"), "{e}");
        assert_eq!(choose(&[], P720, 30, None).unwrap(), None);
        assert!(choose(&[], P720, 30, Some(P720)).unwrap_err().contains("no sensor modes"));
        assert_eq!(parse("2304x1296"), Ok(Size { w: 2304, h: 1296 }));
        for bad in ["2304", "0x5", "axb", "12x"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_crop_area_is_read_after_configure_and_never_empty() {
        let out = Size { w: 960, h: 1080 };
        let full = Rect::new(0, 0, 4608, 2592);
        // The Pi before configure(): ScalerCropMaximum is 0x0 (the old code took it as the sensor).
        assert_eq!(crop_area(Some(Rect::default()), Some(full), None, out), (full, true));
        assert_eq!(crop_area(Some(full), None, None, out), (full, true));
        // vimc / virtual: no crop controls at all.
        let active = Rect::new(0, 0, 1920, 1080);
        assert_eq!(crop_area(None, None, Some(active), out), (active, false));
        assert_eq!(
            crop_area(Some(Rect::default()), Some(Rect::default()), Some(Rect::default()), out),
            (Rect::new(0, 0, 960, 1080), false)
        );
        // What the eyes do with it: a crop, where a 0x0 area panicked (`clamp(2, 0)`).
        for (area, _) in
            [crop_area(Some(Rect::default()), None, None, out), crop_area(None, None, None, Size { w: 0, h: 0 })]
        {
            assert!(area.w >= 2 && area.h >= 2);
            let g = crate::eyes::geometry::Geometry::new(area, out, 4.0, Size { w: 64, h: 64 });
            let c = g.crop(0, crate::eyes::geometry::Pose::default(), (0, 0), super::super::Flip::None);
            assert!(c.right() <= area.right() && c.bottom() <= area.bottom(), "{c} within {area}");
        }
    }

    #[test]
    fn a_zero_crop_is_no_field_of_view_not_a_panic() {
        let m = vec![mode(640, 480, Rect::default(), 30.0), mode(320, 240, Rect::new(0, 0, 640, 480), 30.0)];
        let (i, _) = choose(&m, P720, 30, None).unwrap().unwrap();
        assert_eq!(i, 1);
    }
}
