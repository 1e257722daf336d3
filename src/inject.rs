//! Fault injection for tests (`--inject`): make the synthetic camera stall or fail, the
//! encoder fail or hang, or `save` meet a full or slow disk, for a window of time, so each fault and
//! the recovery from it can be caused on purpose. Spec: `KIND[=EYE]@START[+DURATION]`, times
//! in seconds after start-up, comma-separated, e.g. `camera-stall=0@5+3,state-full@2+1`.

use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    CameraStall,
    CameraError,
    EncoderError,
    EncoderHang,
    StateFull,
    /// `save` takes until the end of the window (a slow SD card).
    StateSlow,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fault {
    pub kind: Kind,
    /// None: every eye.
    pub eye: Option<u8>,
    pub start_us: u64,
    pub end_us: u64,
}

/// The faults of a run, and the time they count from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    pub list: Vec<Fault>,
    pub origin_us: u64,
}

pub type SharedFaults = Arc<Faults>;

impl Faults {
    pub fn parse(spec: &str) -> Result<Vec<Fault>, String> {
        spec.split(',').filter(|s| !s.trim().is_empty()).map(|item| parse_one(item.trim())).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether a fault of `kind` is in force for `eye` at `now_us`; if so, until when.
    pub fn active(&self, kind: Kind, eye: u8, now_us: u64) -> Option<u64> {
        let t = now_us.saturating_sub(self.origin_us);
        self.list
            .iter()
            .find(|f| f.kind == kind && f.eye.is_none_or(|e| e == eye) && t >= f.start_us && t < f.end_us)
            .map(|f| self.origin_us + f.end_us)
    }
}

fn seconds(s: &str) -> Result<u64, String> {
    match s.trim_end_matches('s').parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=86_400.0).contains(&v) => Ok((v * 1e6) as u64),
        _ => Err(format!("--inject: bad time {s:?}")),
    }
}

fn parse_one(item: &str) -> Result<Fault, String> {
    let (what, when) = item.split_once('@').ok_or(format!("--inject: {item:?} needs @START"))?;
    let (name, eye) = match what.split_once('=') {
        Some((n, e)) => (n, Some(e.parse::<u8>().map_err(|_| format!("--inject: bad eye in {item:?}"))?)),
        None => (what, None),
    };
    let kind = match name {
        "camera-stall" => Kind::CameraStall,
        "camera-error" => Kind::CameraError,
        "encoder-error" => Kind::EncoderError,
        "encoder-hang" => Kind::EncoderHang,
        "state-full" => Kind::StateFull,
        "state-slow" => Kind::StateSlow,
        _ => {
            return Err(format!(
                "--inject: unknown fault {name:?} (camera-stall, camera-error, encoder-error, encoder-hang, state-full, state-slow)"
            ));
        }
    };
    let (start, dur) = match when.split_once('+') {
        Some((s, d)) => (seconds(s)?, seconds(d)?),
        None => (seconds(when)?, u64::MAX / 4),
    };
    Ok(Fault { kind, eye, start_us: start, end_us: start.saturating_add(dur) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_answers_by_time_and_eye() {
        let f = Faults { list: Faults::parse("camera-stall=1@2+1.5, encoder-error@3").unwrap(), origin_us: 1_000 };
        assert_eq!(f.active(Kind::CameraStall, 1, 1_000 + 2_500_000), Some(1_000 + 3_500_000));
        assert_eq!(f.active(Kind::CameraStall, 0, 1_000 + 2_500_000), None, "other eye");
        assert_eq!(f.active(Kind::CameraStall, 1, 1_000 + 3_600_000), None, "over");
        assert!(f.active(Kind::EncoderError, 0, 1_000 + 100_000_000).is_some(), "no duration: for good");
        assert!(f.active(Kind::EncoderError, 1, 1_000 + 2_000_000).is_none(), "not yet");
        for bad in ["camera-stall", "lava@1", "camera-stall=x@1", "camera-stall@-1", "state-full@nan"] {
            assert!(Faults::parse(bad).is_err(), "{bad}");
        }
        assert!(Faults::parse("").unwrap().is_empty());
    }
}
