//! Replies to commands, typed, with one formatter (`Display`): what a controller (the robot's,
//! `pieyes ctl`, the viewer) reads back. The grammar is in README.md, "Replies and events":
//! `ok` or `err <code> <message>`, then `key=value` fields (values per `text::value`, numbers
//! per `text::num`), or one JSON object for `status` and `watch`.

use std::fmt;

use super::command::CmdError;
use super::text::{num, value};
use crate::camera::{Flip, Rect};
use crate::eyes::geometry::Pose;
use crate::json;

/// One eye's part of a movement or crop reply.
#[derive(Clone, Debug, PartialEq)]
pub struct EyeMove {
    pub eye: u8,
    /// The sequence this eye's change starts at, when it differs from the reply's `seq`
    /// (free-running cameras number their frames apart).
    pub own_seq: Option<u32>,
    /// The crop the eye will have once the move is done.
    pub crop: Rect,
    /// The commanded gaze (`look`, `move`, `zoom`, `verge`), absent for a raw `crop`.
    pub view: Option<Pose>,
    /// The crop met the sensor's edge: the eye looks less far than the numbers say.
    pub clamped: bool,
}

/// The commanded state: what `watch` starts with and every `event state` carries.
#[derive(Clone, Debug, PartialEq)]
pub struct StateView {
    pub paused: bool,
    pub token_required: bool,
    pub fps: u32,
    pub verge: f64,
    pub eyes: Vec<EyeState>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EyeState {
    pub eye: u8,
    pub pose: Pose,
    pub offset: (i32, i32),
    pub flip: Flip,
    pub bitrate: u32,
    pub crop: Rect,
    pub raw_crop: bool,
    pub max_zoom: f64,
}

impl StateView {
    pub fn to_json(&self) -> String {
        let eyes = self.eyes.iter().map(|e| {
            json::Obj::new()
                .int("eye", e.eye as u64)
                .num("x", e.pose.x)
                .num("y", e.pose.y)
                .num("zoom", e.pose.zoom)
                .raw("offset", &json::array([e.offset.0, e.offset.1].map(|v| v.to_string())))
                .str("flip", e.flip.name())
                .int("bitrate", e.bitrate as u64)
                .raw("crop", &json::rect(e.crop))
                .bool("raw_crop", e.raw_crop)
                .num("max_zoom", e.max_zoom)
                .finish()
        });
        json::Obj::new()
            .bool("paused", self.paused)
            .bool("token_required", self.token_required)
            .int("fps", self.fps as u64)
            .num("verge", self.verge)
            .raw("eyes", &json::array(eyes))
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `ok {json}`: the status report.
    Status(String),
    /// `ok <verbs>`.
    Help(String),
    /// `ok clock=<µs>`: the daemon's CLOCK_MONOTONIC.
    Clock(u64),
    Keyframe,
    /// `look`, `move`, `zoom`, `verge`: `ok seq=S [until=E] cropN=… viewN=x,y,zoom … verge=V
    /// [clamped=N[,M]]`.
    Moved {
        seq: u32,
        until: Option<u32>,
        eyes: Vec<EyeMove>,
        verge: f64,
    },
    /// `crop`: `ok seq=S cropN=…`.
    Cropped {
        seq: u32,
        eyes: Vec<EyeMove>,
    },
    /// `offset`: `ok seq=S cropN=… offsetN=dx,dy`.
    Offset {
        seq: u32,
        eye: u8,
        crop: Rect,
        offset: (i32, i32),
    },
    Flipped(Flip),
    Paused,
    Resumed,
    Fps(u32),
    Bitrate(u32),
    Saved {
        path: String,
    },
    /// `calibrate`: `ok calibrate eye=1 offset=dx,dy dy=D rotation=R confidence=C`.
    Calibration(crate::calibrate::Proposal),
    /// `calibrate apply`: `ok calibrate applied eye=1 seq=S crop1=… offset=dx,dy path=P
    /// [clamped=1]`, once the state file is written.
    CalibrationApplied {
        seq: u32,
        crop: Rect,
        offset: (i32, i32),
        clamped: bool,
        path: String,
    },
    /// `ok watching {state}`: events follow on this connection.
    Watching(StateView),
    /// `auth`: this connection may steer now.
    Steering {
        token_required: bool,
    },
    Err(CmdError),
}

impl Reply {
    pub fn is_ok(&self) -> bool {
        !matches!(self, Reply::Err(_))
    }
}

fn pose_text(p: Pose) -> String {
    format!("{},{},{}", num(p.x), num(p.y), num(p.zoom))
}

/// `seq=S`, `until=E` and each eye's ` [seqN=S] cropN=… [viewN=…]`.
fn write_moves(f: &mut fmt::Formatter<'_>, seq: u32, until: Option<u32>, eyes: &[EyeMove]) -> fmt::Result {
    write!(f, "ok seq={seq}")?;
    if let Some(u) = until {
        write!(f, " until={u}")?;
    }
    for m in eyes {
        if let Some(s) = m.own_seq {
            write!(f, " seq{}={s}", m.eye)?;
        }
        write!(f, " crop{}={}", m.eye, m.crop)?;
        if let Some(v) = m.view {
            write!(f, " view{}={}", m.eye, pose_text(v))?;
        }
    }
    Ok(())
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Status(json) => write!(f, "ok {json}"),
            Reply::Help(text) => write!(f, "ok {text}"),
            Reply::Clock(us) => write!(f, "ok clock={us}"),
            Reply::Keyframe => f.write_str("ok keyframe"),
            Reply::Moved { seq, until, eyes, verge } => {
                write_moves(f, *seq, *until, eyes)?;
                write!(f, " verge={}", num(*verge))?;
                let clamped: Vec<String> = eyes.iter().filter(|m| m.clamped).map(|m| m.eye.to_string()).collect();
                if !clamped.is_empty() {
                    write!(f, " clamped={}", clamped.join(","))?;
                }
                Ok(())
            }
            Reply::Cropped { seq, eyes } => write_moves(f, *seq, None, eyes),
            Reply::Offset { seq, eye, crop, offset } => {
                write!(f, "ok seq={seq} crop{eye}={crop} offset{eye}={},{}", offset.0, offset.1)
            }
            Reply::Flipped(flip) => write!(f, "ok flip={}", flip.name()),
            Reply::Paused => f.write_str("ok paused"),
            Reply::Resumed => f.write_str("ok resumed"),
            Reply::Fps(fps) => write!(f, "ok fps={fps}"),
            Reply::Bitrate(bps) => write!(f, "ok bitrate={bps}"),
            Reply::Saved { path } => write!(f, "ok saved path={}", value(path)),
            Reply::Calibration(p) => write!(
                f,
                "ok calibrate eye=1 offset={},{} dy={} rotation={} confidence={}",
                p.offset.0,
                p.offset.1,
                num(p.dy),
                num(p.rotation_deg),
                num(p.confidence)
            ),
            Reply::CalibrationApplied { seq, crop, offset, clamped, path } => {
                write!(
                    f,
                    "ok calibrate applied eye=1 seq={seq} crop1={crop} offset={},{} path={}",
                    offset.0,
                    offset.1,
                    value(path)
                )?;
                if *clamped {
                    f.write_str(" clamped=1")?;
                }
                Ok(())
            }
            Reply::Watching(state) => write!(f, "ok watching {}", state.to_json()),
            Reply::Steering { token_required: true } => f.write_str("ok steering"),
            Reply::Steering { token_required: false } => f.write_str("ok steering (no token is required)"),
            Reply::Err(e) => write!(f, "{}", super::command::format_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(eye: u8, own_seq: Option<u32>, view: Option<Pose>, clamped: bool) -> EyeMove {
        EyeMove { eye, own_seq, crop: Rect::new(576, 0, 1152, 1296), view, clamped }
    }

    #[test]
    fn movement_replies_name_every_eye_and_what_was_clamped() {
        let p = Pose { x: 0.5, y: -0.25, zoom: 2.0, verge: 0.1 };
        let r = Reply::Moved {
            seq: 40,
            until: Some(48),
            eyes: vec![mv(0, None, Some(p), false), mv(1, Some(41), Some(p), true)],
            verge: 0.1,
        };
        assert_eq!(
            r.to_string(),
            "ok seq=40 until=48 crop0=576,0,1152,1296 view0=0.5,-0.25,2 seq1=41 crop1=576,0,1152,1296 view1=0.5,-0.25,2 verge=0.1 clamped=1"
        );
        let c = Reply::Cropped { seq: 7, eyes: vec![mv(0, None, None, false)] };
        assert_eq!(c.to_string(), "ok seq=7 crop0=576,0,1152,1296");
    }

    #[test]
    fn a_path_with_a_space_survives_and_errors_are_one_line() {
        assert_eq!(
            Reply::Saved { path: "/tmp/my robot/state.conf".into() }.to_string(),
            r#"ok saved path="/tmp/my robot/state.conf""#
        );
        assert_eq!(Reply::Saved { path: "/tmp/s.conf".into() }.to_string(), "ok saved path=/tmp/s.conf");
        assert_eq!(Reply::Err(CmdError::new("usage", "usage: x\ny")).to_string(), "err usage usage: x y");
        assert!(!Reply::Err(CmdError::new("x", "")).is_ok() && Reply::Paused.is_ok());
    }

    #[test]
    fn calibration_replies_carry_the_proposal() {
        let p = crate::calibrate::Proposal { offset: (-2, 31), dy: 30.9996, rotation_deg: -0.1234, confidence: 0.5 };
        assert_eq!(
            Reply::Calibration(p).to_string(),
            "ok calibrate eye=1 offset=-2,31 dy=31 rotation=-0.123 confidence=0.5"
        );
        let a = Reply::CalibrationApplied {
            seq: 9,
            crop: Rect::new(1, 2, 3, 4),
            offset: (0, 31),
            clamped: true,
            path: "/tmp/s.conf".into(),
        };
        assert_eq!(
            a.to_string(),
            "ok calibrate applied eye=1 seq=9 crop1=1,2,3,4 offset=0,31 path=/tmp/s.conf clamped=1"
        );
    }

    #[test]
    fn state_json_uses_the_one_number_format() {
        let s = StateView {
            paused: false,
            token_required: true,
            fps: 30,
            verge: 0.05,
            eyes: vec![EyeState {
                eye: 0,
                pose: Pose { x: 0.75, y: 0.0, zoom: 2.5, verge: 0.05 },
                offset: (3, -4),
                flip: Flip::H,
                bitrate: 3_000_000,
                crop: Rect::new(1, 2, 3, 4),
                raw_crop: false,
                max_zoom: 8.0,
            }],
        };
        assert_eq!(
            s.to_json(),
            r#"{"paused":false,"token_required":true,"fps":30,"verge":0.05,"eyes":[{"eye":0,"x":0.75,"y":0,"zoom":2.5,"offset":[3,-4],"flip":"h","bitrate":3000000,"crop":[1,2,3,4],"raw_crop":false,"max_zoom":8}]}"#
        );
    }
}
