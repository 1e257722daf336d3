//! `pieyes --list-cameras`, shaped like `rpicam-hello --list-cameras`: per camera its index in
//! the eye order, model, id, sensor modes (size, bit depth, fastest rate, crop) and which eye it
//! would be with the options given. Pure formatting; the backend describes the cameras.

use super::modes::SensorMode;
use super::select::Listed;
use super::{Rect, Size};

/// One camera as `--list-cameras` shows it.
#[derive(Clone, Debug)]
pub struct Described {
    pub listed: Listed,
    /// The pixel array's active area (what a full-field mode covers).
    pub active_area: Option<Rect>,
    pub modes: Vec<SensorMode>,
    /// Why its modes could not be read (busy: the pieyes service holds it).
    pub note: Option<String>,
}

/// The listing. `order`: the cameras that get an index, in index order (libcamera's: the eye
/// order, [`eye_order`]); `eyes`: the camera ids eye 0 (and 1) would get with the options given,
/// or why those options fail; `output`/`fps` say which mode each eye would run in.
pub fn format(
    header: &str,
    cams: &[Described],
    order: &[Listed],
    eyes: &Result<Vec<String>, String>,
    output: Size,
    fps: u32,
) -> String {
    let mut s = format!("{header}\n");
    if cams.is_empty() {
        s.push_str("No cameras available!\n");
        return s;
    }
    let index = |id: &str| order.iter().position(|c| c.id == id);
    let mut sorted: Vec<&Described> = cams.iter().collect();
    sorted.sort_by_key(|c| index(&c.listed.id).unwrap_or(usize::MAX));
    for c in sorted {
        let idx = index(&c.listed.id).map_or("-".to_string(), |i| i.to_string());
        let model = c.listed.model.as_deref().unwrap_or("(no model)");
        let area = c.active_area.map_or(String::new(), |a| format!(" [{}x{}]", a.w, a.h));
        let eye = match eyes {
            Ok(ids) => match ids.iter().position(|id| *id == c.listed.id) {
                Some(e) => format!("eye {e}"),
                None if c.listed.is_usb() => "no eye (USB: name it in --cameras to use it)".to_string(),
                None => "no eye".to_string(),
            },
            Err(_) => "no eye".to_string(),
        };
        s.push_str(&format!("{idx} : {model}{area} ({}) -> {eye}\n", c.listed.id));
        if let Some(n) = &c.note {
            s.push_str(&format!("    {n}\n"));
        }
        if c.modes.is_empty() && c.note.is_none() {
            s.push_str("    Modes: none listed (no raw stream): libcamera chooses from the output size\n");
        }
        let chosen = super::modes::choose(&c.modes, output, fps, None).ok().flatten().map(|(i, _)| i);
        for (i, m) in c.modes.iter().enumerate() {
            let label = if i == 0 { "    Modes: " } else { "           " };
            let mark = if Some(i) == chosen { format!("  <- at {output} {fps} fps") } else { String::new() };
            s.push_str(&format!(
                "{label}'{}' : {} [{:.2} fps - ({}, {})/{}x{} crop]{mark}\n",
                m.format, m.size, m.max_fps, m.crop.x, m.crop.y, m.crop.w, m.crop.h
            ));
        }
    }
    if let Err(e) = eyes {
        s.push_str(&format!("eyes: {e}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::select::eye_order;

    fn imx708(id: &str) -> Described {
        Described {
            listed: Listed::new(id, Some("imx708")),
            active_area: Some(Rect::new(16, 24, 4608, 2592)),
            modes: vec![
                SensorMode {
                    format: "SRGGB10_CSI2P".into(),
                    bit_depth: 10,
                    size: Size { w: 1536, h: 864 },
                    crop: Rect::new(768, 432, 3072, 1728),
                    max_fps: 120.13,
                },
                SensorMode {
                    format: "SRGGB10_CSI2P".into(),
                    bit_depth: 10,
                    size: Size { w: 2304, h: 1296 },
                    crop: Rect::new(0, 0, 4608, 2592),
                    max_fps: 56.03,
                },
            ],
            note: None,
        }
    }

    #[test]
    fn lists_in_eye_order_with_modes_and_eyes() {
        let cam1 = "/base/axi/pcie@1000120000/rp1/i2c@80000/imx708@1a";
        let cam0 = "/base/axi/pcie@1000120000/rp1/i2c@88000/imx708@1a";
        let usb = Described {
            listed: Listed::new("/base/axi/pcie@1000120000/rp1/usb@200000/usb-1/1-1:1.0-046d:0825", Some("UVC Camera")),
            active_area: None,
            modes: vec![],
            note: None,
        };
        let cams = vec![usb, imx708(cam1), imx708(cam0)];
        let order = eye_order(&cams.iter().map(|c| c.listed.clone()).collect::<Vec<_>>());
        let out = format(
            "Available cameras",
            &cams,
            &order,
            &Ok(vec![cam0.to_string(), cam1.to_string()]),
            Size { w: 1280, h: 720 },
            30,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], format!("0 : imx708 [4608x2592] ({cam0}) -> eye 0"));
        assert_eq!(lines[2], "    Modes: 'SRGGB10_CSI2P' : 1536x864 [120.13 fps - (768, 432)/3072x1728 crop]");
        assert_eq!(
            lines[3],
            "           'SRGGB10_CSI2P' : 2304x1296 [56.03 fps - (0, 0)/4608x2592 crop]  <- at 1280x720 30 fps"
        );
        assert_eq!(lines[4], format!("1 : imx708 [4608x2592] ({cam1}) -> eye 1"));
        assert!(
            lines[7].starts_with("- : UVC Camera (")
                && lines[7].ends_with("no eye (USB: name it in --cameras to use it)")
        );
        assert!(lines[8].contains("no raw stream"));
        let err =
            format("h", &cams, &order, &Err("libcamera found only one camera".into()), Size { w: 1280, h: 720 }, 30);
        assert!(err.ends_with("eyes: libcamera found only one camera\n"), "{err}");
        assert_eq!(format("h", &[], &[], &Ok(vec![]), Size { w: 2, h: 2 }, 30), "h\nNo cameras available!\n");
    }
}
