//! Which cameras become the eyes: `--camera auto|libcamera|synthetic`, `--cameras A,B` (index,
//! id or model), `--mono`. Pure decisions over the list libcamera enumerated, so every rule is a
//! unit test; `backends` does the opening.
//!
//! Eye order is rpicam-apps' camera order, so `pieyes --list-cameras`, `rpicam-hello
//! --list-cameras` and the eyes agree: USB (UVC) cameras are left out (a webcam plugged in
//! never takes an eye), the rest are sorted by id, highest first. libcamera's own list order
//! is whatever order the pipeline handlers matched in, which can change from boot to boot; on a
//! Pi 5 the descending id order puts CAM0 (`…/i2c@88000/…`) before CAM1 (`…/i2c@80000/…`).

use crate::config::CameraChoice;

/// One camera as libcamera lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// libcamera's camera id (a device-tree path on a Pi, `platform/vimc.0 Sensor B`, …).
    pub id: String,
    /// The `Model` property (`imx708`, `imx219_noir`…), when the camera has one.
    pub model: Option<String>,
}

impl Listed {
    pub fn new(id: &str, model: Option<&str>) -> Listed {
        Listed { id: id.to_string(), model: model.map(str::to_string) }
    }

    /// A USB camera: its id is a path through a USB bus (what rpicam-apps and picamera2 test).
    pub fn is_usb(&self) -> bool {
        self.id.contains("/usb")
    }
}

/// The eye order: USB cameras dropped, the rest by id, highest first (rpicam-apps' order).
pub fn eye_order(listed: &[Listed]) -> Vec<Listed> {
    let mut v: Vec<Listed> = listed.iter().filter(|c| !c.is_usb()).cloned().collect();
    v.sort_by(|a, b| b.id.cmp(&a.id));
    v
}

/// What libcamera had to offer: `None` when this build has no libcamera support, else the
/// enumeration (in libcamera's order) or why libcamera could not start.
pub type Found = Option<Result<Vec<Listed>, String>>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The synthetic stereo camera; `fallback` says why `auto` ended up here (for the log).
    Synthetic { fallback: Option<String> },
    /// These libcamera cameras, eye 0 first.
    Libcamera { ids: Vec<String> },
}

pub fn choose(choice: CameraChoice, found: Found, wanted: &[String], mono: bool) -> Result<Backend, String> {
    let found = found.map(|r| r.map(|listed| (eye_order(&listed), listed)));
    match (choice, found) {
        (CameraChoice::Synthetic, _) => Ok(Backend::Synthetic { fallback: None }),
        (CameraChoice::Libcamera, None) => {
            Err("--camera libcamera: this build has no libcamera support (build with --features libcamera)".into())
        }
        (CameraChoice::Libcamera, Some(Err(e))) => Err(format!("--camera libcamera: {e}")),
        (CameraChoice::Libcamera, Some(Ok((eyes, all)))) => {
            if all.is_empty() {
                return Err("--camera libcamera: libcamera found no cameras".into());
            }
            Ok(Backend::Libcamera { ids: pick(&eyes, &all, wanted, mono)? })
        }
        (CameraChoice::Auto, None) => {
            Ok(Backend::Synthetic { fallback: Some("this build has no libcamera support".into()) })
        }
        (CameraChoice::Auto, Some(Err(e))) => {
            Ok(Backend::Synthetic { fallback: Some(format!("libcamera could not start ({e})")) })
        }
        (CameraChoice::Auto, Some(Ok((eyes, all)))) if eyes.is_empty() && wanted.is_empty() => {
            let why = if all.is_empty() {
                "libcamera found no cameras".to_string()
            } else {
                format!("libcamera found only USB cameras ({}), which never become eyes by themselves", ids(&all))
            };
            Ok(Backend::Synthetic { fallback: Some(why) })
        }
        // Real cameras exist: a mismatch (one camera, no --mono) is an error, not a silent
        // switch to the synthetic camera.
        (CameraChoice::Auto, Some(Ok((eyes, all)))) => Ok(Backend::Libcamera { ids: pick(&eyes, &all, wanted, mono)? }),
    }
}

fn ids(listed: &[Listed]) -> String {
    listed.iter().map(|c| format!("{:?}", c.id)).collect::<Vec<_>>().join(", ")
}

/// `0="…" (imx708), 1="…"`: the eye order, as errors show it.
fn listing(eyes: &[Listed]) -> String {
    eyes.iter()
        .enumerate()
        .map(|(i, c)| match &c.model {
            Some(m) => format!("{i}={:?} ({m})", c.id),
            None => format!("{i}={:?}", c.id),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One entry of `--cameras`: an index into the eye order (what `--list-cameras` numbers), an
/// exact id, a model (`imx708`), or a part of exactly one id (`vimc`, `Virtual1`). A USB camera
/// has no index but can be named by its id or model.
fn resolve(eyes: &[Listed], all: &[Listed], want: &str) -> Result<String, String> {
    if let Ok(i) = want.parse::<usize>() {
        return eyes
            .get(i)
            .map(|c| c.id.clone())
            .ok_or_else(|| format!("--cameras: no camera {i} (found {})", listing(eyes)));
    }
    if let Some(c) = all.iter().find(|c| c.id == want) {
        return Ok(c.id.clone());
    }
    let by_model: Vec<&Listed> = all.iter().filter(|c| c.model.as_deref() == Some(want)).collect();
    let matches: Vec<&Listed> =
        if by_model.is_empty() { all.iter().filter(|c| c.id.contains(want)).collect() } else { by_model };
    match matches.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(format!("--cameras: no camera matches {want:?} (found {})", listing(eyes))),
        _ => Err(format!(
            "--cameras: {want:?} matches several cameras ({}); give an index or the full id",
            listing(&matches.into_iter().cloned().collect::<Vec<_>>())
        )),
    }
}

/// The cameras for eye 0 (and eye 1 unless `mono`): the first of the eye order, or `wanted`.
pub fn pick(eyes: &[Listed], all: &[Listed], wanted: &[String], mono: bool) -> Result<Vec<String>, String> {
    let need = if mono { 1 } else { 2 };
    let chosen = if wanted.is_empty() {
        if eyes.len() < need {
            return Err(format!(
                "libcamera found only one camera ({}); pass --mono to run a single eye, or --camera synthetic",
                listing(eyes)
            ));
        }
        eyes[..need].iter().map(|c| c.id.clone()).collect()
    } else {
        if wanted.len() != need {
            return Err(if mono {
                format!("--mono takes one camera, --cameras names {}", wanted.len())
            } else {
                "--cameras names one camera: pass --mono for a single eye, or name two".to_string()
            });
        }
        wanted.iter().map(|w| resolve(eyes, all, w)).collect::<Result<Vec<_>, _>>()?
    };
    if chosen.len() == 2 && chosen[0] == chosen[1] {
        return Err(format!("--cameras: both eyes would be the same camera ({:?})", chosen[0]));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn listed(v: &[&str]) -> Vec<Listed> {
        v.iter().map(|s| Listed::new(s, None)).collect()
    }

    /// The VM's cameras, in libcamera 0.4's order; eye order sorts them by id, highest first.
    const THREE: &[&str] = &["platform/vimc.0 Sensor B", "Virtual0", "Virtual1"];

    /// A Pi 5 with two imx708 and a UVC webcam, listed in an order that is not the eye order
    /// (libcamera lists in pipeline-handler match order, which varies).
    fn pi5_with_webcam() -> Vec<Listed> {
        vec![
            Listed::new("/base/axi/pcie@1000120000/rp1/usb@200000/usb-1/1-1:1.0-046d:0825", Some("UVC Camera")),
            Listed::new("/base/axi/pcie@1000120000/rp1/i2c@80000/imx708@1a", Some("imx708")),
            Listed::new("/base/axi/pcie@1000120000/rp1/i2c@88000/imx708@1a", Some("imx708_wide")),
        ]
    }

    #[test]
    fn eye_order_drops_usb_and_sorts_by_id_like_rpicam_apps() {
        let eyes = eye_order(&pi5_with_webcam());
        let got: Vec<&str> = eyes.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            got,
            ["/base/axi/pcie@1000120000/rp1/i2c@88000/imx708@1a", "/base/axi/pcie@1000120000/rp1/i2c@80000/imx708@1a"],
            "CAM0 (i2c@88000) is eye 0, CAM1 eye 1, the webcam is no eye"
        );
        // The same cameras in any other listing order give the same eyes.
        let mut rev = pi5_with_webcam();
        rev.reverse();
        assert_eq!(eye_order(&rev), eyes);
        assert_eq!(
            choose(CameraChoice::Auto, Some(Ok(pi5_with_webcam())), &[], false),
            Ok(Backend::Libcamera { ids: got.iter().map(|s| s.to_string()).collect() })
        );
    }

    #[test]
    fn a_usb_camera_alone_is_no_eye_unless_named() {
        let webcam = vec![pi5_with_webcam().remove(0)];
        match choose(CameraChoice::Auto, Some(Ok(webcam.clone())), &[], true) {
            Ok(Backend::Synthetic { fallback: Some(why) }) => assert!(why.contains("only USB"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            choose(CameraChoice::Auto, Some(Ok(webcam.clone())), &ids(&["UVC Camera"]), true),
            Ok(Backend::Libcamera { ids: vec![webcam[0].id.clone()] })
        );
    }

    #[test]
    fn cameras_by_model() {
        let all = pi5_with_webcam();
        let eyes = eye_order(&all);
        assert_eq!(pick(&eyes, &all, &ids(&["imx708", "imx708_wide"]), false), Ok(ids(&[&all[1].id, &all[2].id])));
        assert_eq!(pick(&eyes, &all, &ids(&["1", "0"]), false), Ok(ids(&[&all[1].id, &all[2].id])));
        let two_same = vec![
            Listed::new("/a/i2c@80000/imx219@10", Some("imx219")),
            Listed::new("/a/i2c@88000/imx219@10", Some("imx219")),
        ];
        let e = pick(&eye_order(&two_same), &two_same, &ids(&["imx219"]), true).unwrap_err();
        assert!(e.contains("several") && e.contains("index"), "{e}");
    }

    #[test]
    fn synthetic_is_synthetic_whatever_libcamera_says() {
        for found in [None, Some(Ok(listed(THREE))), Some(Err("x".into()))] {
            assert_eq!(choose(CameraChoice::Synthetic, found, &[], false), Ok(Backend::Synthetic { fallback: None }));
        }
    }

    #[test]
    fn auto_falls_back_to_synthetic_only_when_there_is_no_real_camera() {
        let fb = |found: Found| match choose(CameraChoice::Auto, found, &[], false) {
            Ok(Backend::Synthetic { fallback: Some(why) }) => why,
            other => panic!("{other:?}"),
        };
        assert!(fb(None).contains("no libcamera support"));
        assert!(fb(Some(Ok(vec![]))).contains("found no cameras"));
        assert!(fb(Some(Err("no /dev/media".into()))).contains("no /dev/media"));
        assert_eq!(
            choose(CameraChoice::Auto, Some(Ok(listed(THREE))), &[], false),
            Ok(Backend::Libcamera { ids: ids(&[THREE[0], "Virtual1"]) }),
            "the first two of the eye order by default"
        );
    }

    #[test]
    fn one_camera_without_mono_is_an_error_not_a_fallback() {
        for choice in [CameraChoice::Auto, CameraChoice::Libcamera] {
            let e = choose(choice, Some(Ok(listed(&["imx708"]))), &[], false).unwrap_err();
            assert!(e.contains("only one camera") && e.contains("--mono"), "{e}");
        }
        assert_eq!(
            choose(CameraChoice::Auto, Some(Ok(listed(&["imx708"]))), &[], true),
            Ok(Backend::Libcamera { ids: ids(&["imx708"]) })
        );
    }

    #[test]
    fn libcamera_demanded_but_missing_is_an_error() {
        assert!(choose(CameraChoice::Libcamera, None, &[], false).unwrap_err().contains("--features libcamera"));
        assert!(choose(CameraChoice::Libcamera, Some(Ok(vec![])), &[], false).unwrap_err().contains("no cameras"));
        assert!(choose(CameraChoice::Libcamera, Some(Err("boom".into())), &[], false).unwrap_err().contains("boom"));
    }

    #[test]
    fn cameras_by_index_id_or_unique_part() {
        let all = listed(THREE);
        let eyes = eye_order(&all);
        assert_eq!(pick(&eyes, &all, &ids(&["2", "0"]), false), Ok(ids(&["Virtual0", THREE[0]])));
        assert_eq!(pick(&eyes, &all, &ids(&["Virtual0", "vimc"]), false), Ok(ids(&["Virtual0", THREE[0]])));
        assert_eq!(pick(&eyes, &all, &ids(&["Virtual1"]), true), Ok(ids(&["Virtual1"])));
        assert_eq!(pick(&eyes, &all, &[], true), Ok(ids(&[THREE[0]])));
        for (bad, mono, says) in [
            (&["Virtual"][..], true, "several"),
            (&["3"][..], true, "no camera 3"),
            (&["usb"][..], true, "no camera matches"),
            (&["0", "0"][..], false, "same camera"),
            (&["Virtual0", "0"][..], true, "--mono takes one"),
            (&["Virtual0"][..], false, "--mono"),
        ] {
            let e = pick(&eyes, &all, &ids(bad), mono).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}
