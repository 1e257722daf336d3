//! How the two eyes' frames line up in time (`--sync auto|off`, `status.stereo.sync`).
//!
//! Raspberry Pi's libcamera (since v0.4.0+rpt20250213; upstream 0.5.2 has the same controls)
//! can synchronise cameras: `rpi::SyncMode` makes one camera the server and the others clients,
//! which adjust their frame timing to the server's; each reports `rpi::SyncReady` true from the
//! first frame they agree to be synchronised on (rpicam-vid `--sync` uses it the same way).
//! When both cameras offer `SyncMode` and `--sync` is `auto`, eye 0 is the server and eye 1 the
//! client, and frames before `SyncReady` are dropped quietly (as startup frames). Otherwise the
//! sensors run free and the frames are paired by `SensorTimestamp` in software.

/// `--sync`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncChoice {
    #[default]
    Auto,
    Off,
}

impl SyncChoice {
    pub fn parse(v: &str) -> Result<SyncChoice, String> {
        match v {
            "auto" => Ok(SyncChoice::Auto),
            "off" => Ok(SyncChoice::Off),
            _ => Err(format!("--sync: expected auto or off, got {v:?}")),
        }
    }
}

/// A camera's part in the sync (the values of `rpi::SyncMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Server = 1,
    Client = 2,
}

/// What the eyes do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// `rpi::SyncMode`: eye `i` takes `roles[i]`.
    Hardware { roles: Vec<Role> },
    /// Free-running sensors, paired by timestamp; why.
    Software(String),
}

/// Frames the server waits before it declares the cameras synchronised (`rpi::SyncFrames`;
/// rpicam-apps' default is 100, a few seconds; two cameras on one Pi agree much sooner).
pub const SYNC_FRAMES: i32 = 30;

pub fn plan(choice: SyncChoice, offers: &[bool]) -> Plan {
    if choice == SyncChoice::Off {
        return Plan::Software("--sync off".into());
    }
    match offers {
        [_] => Plan::Software("one eye".into()),
        [true, true] => Plan::Hardware { roles: vec![Role::Server, Role::Client] },
        [false, false] => Plan::Software("neither camera has rpi::SyncMode".into()),
        [a, _] => Plan::Software(format!("eye {} has no rpi::SyncMode", if *a { 1 } else { 0 })),
        _ => Plan::Software("no cameras".into()),
    }
}

/// `status.stereo.sync`.
pub fn describe(plan: &Plan) -> String {
    match plan {
        Plan::Hardware { .. } => "rpi::SyncMode (eye 0 server, eye 1 client; frames from SyncReady on)".into(),
        Plan::Software(why) => format!("none (software pairing by timestamp: {why})"),
    }
}

/// Frames a synchronising camera holds back before giving up on `SyncReady` (the cameras then
/// stream unsynchronised rather than not at all).
pub const READY_PATIENCE: u32 = 150;

/// Holds a synchronising camera's frames back until `SyncReady`.
#[derive(Debug, Default)]
pub struct ReadyGate {
    active: bool,
    open: bool,
    waited: u32,
}

/// What to do with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    Pass,
    /// Not synchronised yet: drop it quietly.
    Hold,
    /// `SyncReady` never came: pass from now on (say so once).
    GaveUp,
}

impl ReadyGate {
    /// A gate for a camera that synchronises (`active`), else one that always passes.
    pub fn new(active: bool) -> ReadyGate {
        ReadyGate { active, open: !active, waited: 0 }
    }

    /// The camera (re)started: wait for `SyncReady` again.
    pub fn restart(&mut self) {
        self.open = !self.active;
        self.waited = 0;
    }

    /// A frame with its `SyncReady` (`None`: the metadata did not carry it).
    pub fn frame(&mut self, ready: Option<bool>) -> Gate {
        if self.open {
            return Gate::Pass;
        }
        if ready == Some(true) {
            self.open = true;
            return Gate::Pass;
        }
        self.waited += 1;
        if self.waited > READY_PATIENCE {
            self.open = true;
            return Gate::GaveUp;
        }
        Gate::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_sync_only_when_both_cameras_offer_it() {
        assert_eq!(plan(SyncChoice::Auto, &[true, true]), Plan::Hardware { roles: vec![Role::Server, Role::Client] });
        let p = plan(SyncChoice::Auto, &[true, false]);
        assert_eq!(p, Plan::Software("eye 1 has no rpi::SyncMode".into()));
        assert_eq!(describe(&p), "none (software pairing by timestamp: eye 1 has no rpi::SyncMode)");
        assert_eq!(plan(SyncChoice::Auto, &[false, false]), Plan::Software("neither camera has rpi::SyncMode".into()));
        assert_eq!(plan(SyncChoice::Off, &[true, true]), Plan::Software("--sync off".into()));
        assert_eq!(plan(SyncChoice::Auto, &[true]), Plan::Software("one eye".into()));
        assert!(describe(&plan(SyncChoice::Auto, &[true, true])).starts_with("rpi::SyncMode"));
        assert_eq!(SyncChoice::parse("auto"), Ok(SyncChoice::Auto));
        assert!(SyncChoice::parse("on").is_err());
        assert_eq!((Role::Server as i32, Role::Client as i32), (1, 2), "rpi::SyncModeServer, SyncModeClient");
    }

    #[test]
    fn frames_wait_for_sync_ready_but_not_for_ever() {
        let mut g = ReadyGate::new(true);
        assert_eq!(g.frame(None), Gate::Hold, "a client before the server's first message");
        assert_eq!(g.frame(Some(false)), Gate::Hold);
        assert_eq!(g.frame(Some(true)), Gate::Pass);
        assert_eq!(g.frame(Some(false)), Gate::Pass, "ready stays ready");
        g.restart();
        assert_eq!(g.frame(Some(false)), Gate::Hold);
        for _ in 1..READY_PATIENCE {
            assert_eq!(g.frame(Some(false)), Gate::Hold);
        }
        assert_eq!(g.frame(Some(false)), Gate::GaveUp);
        assert_eq!(g.frame(Some(false)), Gate::Pass);
        let mut free = ReadyGate::new(false);
        assert_eq!(free.frame(None), Gate::Pass);
    }
}
