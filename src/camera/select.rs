//! Which cameras become the eyes: `--camera auto|libcamera|synthetic`, `--cameras A,B` (index
//! or id), `--mono`. Pure decisions over the list libcamera enumerated, so every rule is a unit
//! test; `daemon::setup` does the opening.

use crate::config::CameraChoice;

/// What libcamera had to offer: `None` when this build has no libcamera support, else the
/// enumeration (camera ids in libcamera's order) or why libcamera could not start.
pub type Found = Option<Result<Vec<String>, String>>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The synthetic stereo camera; `fallback` says why `auto` ended up here (for the log).
    Synthetic { fallback: Option<String> },
    /// These libcamera cameras, eye 0 first.
    Libcamera { ids: Vec<String> },
}

pub fn choose(choice: CameraChoice, found: Found, wanted: &[String], mono: bool) -> Result<Backend, String> {
    match (choice, found) {
        (CameraChoice::Synthetic, _) => Ok(Backend::Synthetic { fallback: None }),
        (CameraChoice::Libcamera, None) => {
            Err("--camera libcamera: this build has no libcamera support (build with --features libcamera)".into())
        }
        (CameraChoice::Libcamera, Some(Err(e))) => Err(format!("--camera libcamera: {e}")),
        (CameraChoice::Libcamera, Some(Ok(ids))) => {
            if ids.is_empty() {
                return Err("--camera libcamera: libcamera found no cameras".into());
            }
            Ok(Backend::Libcamera { ids: pick(&ids, wanted, mono)? })
        }
        (CameraChoice::Auto, None) => {
            Ok(Backend::Synthetic { fallback: Some("this build has no libcamera support".into()) })
        }
        (CameraChoice::Auto, Some(Err(e))) => {
            Ok(Backend::Synthetic { fallback: Some(format!("libcamera could not start ({e})")) })
        }
        (CameraChoice::Auto, Some(Ok(ids))) if ids.is_empty() => {
            Ok(Backend::Synthetic { fallback: Some("libcamera found no cameras".into()) })
        }
        // Real cameras exist: a mismatch (one camera, no --mono) is an error, not a silent
        // switch to the synthetic camera.
        (CameraChoice::Auto, Some(Ok(ids))) => Ok(Backend::Libcamera { ids: pick(&ids, wanted, mono)? }),
    }
}

fn listing(ids: &[String]) -> String {
    ids.iter().enumerate().map(|(i, id)| format!("{i}={id:?}")).collect::<Vec<_>>().join(", ")
}

/// One entry of `--cameras`: an index into libcamera's list, an exact id, or a part of exactly
/// one id (`vimc`, `Virtual1`).
fn resolve(ids: &[String], want: &str) -> Result<String, String> {
    if let Ok(i) = want.parse::<usize>() {
        return ids.get(i).cloned().ok_or_else(|| format!("--cameras: no camera {i} (found {})", listing(ids)));
    }
    if let Some(id) = ids.iter().find(|id| *id == want) {
        return Ok(id.clone());
    }
    let matches: Vec<&String> = ids.iter().filter(|id| id.contains(want)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!("--cameras: no camera matches {want:?} (found {})", listing(ids))),
        _ => {
            Err(format!("--cameras: {want:?} matches several cameras ({}); give the full id or an index", listing(ids)))
        }
    }
}

/// The cameras for eye 0 (and eye 1 unless `mono`).
pub fn pick(ids: &[String], wanted: &[String], mono: bool) -> Result<Vec<String>, String> {
    let need = if mono { 1 } else { 2 };
    let chosen = if wanted.is_empty() {
        if ids.len() < need {
            return Err(format!(
                "libcamera found only one camera ({}); pass --mono to run a single eye, or --camera synthetic",
                listing(ids)
            ));
        }
        ids[..need].to_vec()
    } else {
        if wanted.len() != need {
            return Err(if mono {
                format!("--mono takes one camera, --cameras names {}", wanted.len())
            } else {
                "--cameras names one camera: pass --mono for a single eye, or name two".to_string()
            });
        }
        wanted.iter().map(|w| resolve(ids, w)).collect::<Result<Vec<_>, _>>()?
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

    const THREE: &[&str] = &["platform/vimc.0 Sensor B", "Virtual0", "Virtual1"];

    #[test]
    fn synthetic_is_synthetic_whatever_libcamera_says() {
        for found in [None, Some(Ok(ids(THREE))), Some(Err("x".into()))] {
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
            choose(CameraChoice::Auto, Some(Ok(ids(THREE))), &[], false),
            Ok(Backend::Libcamera { ids: ids(&THREE[..2]) }),
            "the first two by default"
        );
    }

    #[test]
    fn one_camera_without_mono_is_an_error_not_a_fallback() {
        for choice in [CameraChoice::Auto, CameraChoice::Libcamera] {
            let e = choose(choice, Some(Ok(ids(&["imx708"]))), &[], false).unwrap_err();
            assert!(e.contains("only one camera") && e.contains("--mono"), "{e}");
        }
        assert_eq!(
            choose(CameraChoice::Auto, Some(Ok(ids(&["imx708"]))), &[], true),
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
        let all = ids(THREE);
        assert_eq!(pick(&all, &ids(&["2", "0"]), false), Ok(ids(&["Virtual1", THREE[0]])));
        assert_eq!(pick(&all, &ids(&["Virtual0", "vimc"]), false), Ok(ids(&["Virtual0", THREE[0]])));
        assert_eq!(pick(&all, &ids(&["Virtual1"]), true), Ok(ids(&["Virtual1"])));
        assert_eq!(pick(&all, &[], true), Ok(ids(&[THREE[0]])));
        for (bad, mono, says) in [
            (&["Virtual"][..], true, "several"),
            (&["3"][..], true, "no camera 3"),
            (&["usb"][..], true, "no camera matches"),
            (&["0", "0"][..], false, "same camera"),
            (&["Virtual0", "0"][..], true, "--mono takes one"),
            (&["Virtual0"][..], false, "--mono"),
        ] {
            let e = pick(&all, &ids(bad), mono).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}
