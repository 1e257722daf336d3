//! Every command on the controller, against a plant of plain numbers.

use super::*;
use crate::camera::{CameraInfo, Size};
use crate::control::command::parse;
use crate::stats::EyeStats;

/// Two eyes whose next sequences the test sets; `measured` has empty statistics.
struct FakePlant {
    next: [u32; 2],
    info: CameraInfo,
    stats: EyeStats,
}

impl FakePlant {
    fn new() -> FakePlant {
        FakePlant {
            next: [100, 100],
            info: CameraInfo {
                id: "fake".into(),
                sensor: Rect::new(0, 0, 2304, 1296),
                output: Size { w: 960, h: 1080 },
                min_crop: Size { w: 64, h: 64 },
                fps: 30,
                crop_supported: true,
                sensor_mode: None,
            },
            stats: EyeStats::default(),
        }
    }
}

impl Plant for FakePlant {
    fn next_sequence(&self, eye: u8) -> u32 {
        self.next[eye as usize]
    }
    fn measured(&self) -> report::Measured<'_> {
        let eye = || report::EyeMeasured {
            info: &self.info,
            encoder: "fake",
            encoder_cpu: None,
            encoder_threads: 1,
            codec: Some("avc1.42C020"),
            stats: &self.stats,
            camera_state: "ok".into(),
            encoder_state: "ok".into(),
            camera_starved: 0,
        };
        report::Measured {
            eyes: vec![eye(), eye()],
            viewers: vec![],
            clients: 3,
            refused: 0,
            taps: None,
            started_us: 0,
        }
    }
}

fn geometry() -> Geometry {
    Geometry::new(Rect::new(0, 0, 2304, 1296), Size { w: 960, h: 1080 }, 8.0, Size { w: 64, h: 64 })
}

fn encoder() -> EncoderConfig {
    EncoderConfig { width: 960, height: 1080, fps: 30, bitrate_bps: 3_000_000, gop_frames: 60 }
}

fn setup(shared_clock: bool, token: Option<&str>) -> Setup {
    Setup {
        eyes: vec![(geometry(), encoder()), (geometry(), encoder())],
        fps: 30,
        gop_seconds: 2.0,
        state_path: "/tmp/pieyes test/state.conf".into(),
        token: token.map(str::to_string),
        token_scope: crate::access::TokenScope::Steer,
        shared_clock,
        sync: "test".into(),
        https: true,
    }
}

fn controller() -> Controller {
    Controller::new(setup(true, None), &SavedState::defaults(30, 3_000_000))
}

fn run(c: &mut Controller, p: &FakePlant, line: &str) -> Reply {
    match c.execute(parse(line).unwrap(), None, 1_000, p) {
        Outcome::Reply(r) => r,
        Outcome::Pending(t) => panic!("{line}: pending {t}"),
    }
}

fn text(c: &mut Controller, p: &FakePlant, line: &str) -> String {
    run(c, p, line).to_string()
}

fn field<'a>(reply: &'a str, key: &str) -> &'a str {
    reply.split(' ').find_map(|w| w.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("no {key} in {reply}"))
}

fn events(c: &mut Controller) -> Vec<String> {
    c.drain_events().map(|e| e.to_string()).collect()
}

fn frame(c: &mut Controller, eye: u8, seq: u32) -> Rect {
    let crop = c.crop_for(eye, seq);
    c.frame_captured(&FrameMeta { eye, sequence: seq, capture_us: 1_000_000 + seq as u64 * 33_333, crop });
    crop
}

#[test]
fn queries_answer_without_changing_anything() {
    let (mut c, p) = (controller(), FakePlant::new());
    assert_eq!(text(&mut c, &p, "clock"), "ok clock=1000");
    assert!(text(&mut c, &p, "help").starts_with("ok look <0|1|both>"));
    let status = text(&mut c, &p, "status");
    assert!(status.starts_with("ok {\"version\""), "{status}");
    assert!(status.contains("\"clients\":3") && status.contains("\"fps_target\":30"), "{status}");
    assert!(text(&mut c, &p, "watch").starts_with("ok watching {\"paused\":false"));
    assert_eq!(text(&mut c, &p, "keyframe"), "ok keyframe");
    assert!(events(&mut c).is_empty(), "no state change, no event");
    assert!(c.take_actions().is_empty());
    assert!(c.take_keyframe(0, 0) && c.take_keyframe(1, 0), "keyframe asked both eyes");
}

#[test]
fn look_lands_on_the_next_sequence_in_both_eyes() {
    let (mut c, mut p) = (controller(), FakePlant::new());
    p.next = [100, 103];
    let r = text(&mut c, &p, "look both 0.5 -0.5");
    assert!(r.starts_with("ok seq=103 crop0="), "the later of the two: {r}");
    assert!(!r.contains("until=") && !r.contains("seq1="), "{r}");
    assert_eq!(field(&r, "view0"), "0.5,-0.5,1");
    let crop0 = field(&r, "crop0").to_string();
    assert_ne!(frame(&mut c, 0, 102).to_string(), crop0, "before its sequence: the old crop");
    assert_eq!(frame(&mut c, 0, 103).to_string(), crop0);
    let ev = events(&mut c);
    assert!(ev[0].starts_with("event state {"), "{ev:?}");
    assert!(ev.iter().any(|e| e == &format!("event arrived eye=0 seq=103 crop={crop0}")), "{ev:?}");
}

#[test]
fn free_running_eyes_start_on_their_own_sequences() {
    let mut c = Controller::new(setup(false, None), &SavedState::defaults(30, 3_000_000));
    let mut p = FakePlant::new();
    p.next = [100, 7];
    let r = text(&mut c, &p, "zoom both 2");
    assert!(r.starts_with("ok seq=100 ") && r.contains(" seq1=7 crop1="), "{r}");
}

#[test]
fn a_glide_ends_exactly_at_until_with_one_arrived_event() {
    let (mut c, p) = (controller(), FakePlant::new());
    let r = text(&mut c, &p, "look 0 1 0 over 3000");
    assert_eq!(field(&r, "until"), "189", "90 frames from 100: {r}");
    let target = field(&r, "crop0").to_string();
    let mut crops = Vec::new();
    for s in 100..=189 {
        crops.push(frame(&mut c, 0, s));
    }
    assert_eq!(crops.last().unwrap().to_string(), target);
    let ev = events(&mut c);
    let arrived: Vec<&String> = ev.iter().filter(|e| e.starts_with("event arrived")).collect();
    assert_eq!(arrived, [&format!("event arrived eye=0 seq=189 crop={target}")], "exactly one, at until");
    frame(&mut c, 0, 190);
    assert!(!events(&mut c).iter().any(|e| e.starts_with("event arrived")), "once");
}

#[test]
fn a_skipped_until_frame_still_arrives_on_the_next_one() {
    let (mut c, p) = (controller(), FakePlant::new());
    let r = text(&mut c, &p, "look 0 0.5 0 over 100");
    assert_eq!(field(&r, "until"), "102");
    for s in [100, 101, 103] {
        frame(&mut c, 0, s);
    }
    assert!(events(&mut c).iter().any(|e| e.starts_with("event arrived eye=0 seq=103 ")));
}

#[test]
fn move_is_relative_and_clamped() {
    let (mut c, p) = (controller(), FakePlant::new());
    text(&mut c, &p, "look 1 0.5 0");
    let r = text(&mut c, &p, "move 1 0.75 -2");
    assert_eq!(field(&r, "view1"), "1,-1,1", "clamped to the reachable range: {r}");
}

#[test]
fn vergence_is_one_value_that_a_raw_crop_does_not_change() {
    let (mut c, p) = (controller(), FakePlant::new());
    let r = text(&mut c, &p, "verge 0.1");
    assert_eq!(field(&r, "verge"), "0.1");
    let eye1_verged = field(&r, "crop1").to_string();
    text(&mut c, &p, "crop 0 100 100 640 720");
    let state = c.state_view();
    assert_eq!(state.verge, 0.1, "the pair's vergence stands");
    assert!(state.eyes[0].raw_crop);
    assert_eq!(state.eyes[1].crop.to_string(), eye1_verged, "eye 1 keeps its verged crop");
    let r = text(&mut c, &p, "look 1 0 0");
    assert_eq!(field(&r, "verge"), "0.1", "{r}");
    assert_eq!(c.saved_state().vergence, 0.1);
    assert_eq!(
        state_file::parse(&state_file::format(&c.saved_state()), SavedState::defaults(30, 1)).unwrap().vergence,
        0.1
    );
}

#[test]
fn a_clamp_at_the_sensor_edge_is_in_the_reply() {
    let (mut c, p) = (controller(), FakePlant::new());
    let r = text(&mut c, &p, "look both 1 0");
    assert!(!r.contains("clamped"), "{r}");
    let r = text(&mut c, &p, "verge 0.1");
    assert_eq!(field(&r, "clamped"), "0", "eye 0 turned right past the edge: {r}");
}

#[test]
fn offset_and_crop() {
    let (mut c, p) = (controller(), FakePlant::new());
    let r = text(&mut c, &p, "offset 1 10 -4");
    assert!(r.starts_with("ok seq=100 crop1=") && r.ends_with(" offset1=10,-4"), "{r}");
    let r = text(&mut c, &p, "crop both 3 5 640 720");
    assert_eq!(r, "ok seq=100 crop0=2,4,640,720 crop1=2,4,640,720", "even-aligned as applied");
    assert_eq!(text(&mut c, &p, "crop 0 0 0 60000 64"), "ok seq=100 crop0=0,0,2304,64");
}

#[test]
fn flip_pause_resume_fps_bitrate_become_actions_and_events() {
    let (mut c, p) = (controller(), FakePlant::new());
    assert_eq!(text(&mut c, &p, "flip 1 hv"), "ok flip=hv");
    assert_eq!(c.take_actions(), vec![Action::SetFlip { eye: 1, flip: Flip::HV }]);
    assert!(events(&mut c).contains(&"event flip eye=1 flip=hv".to_string()));
    assert!(c.take_keyframe(1, 0) && !c.take_keyframe(0, 0), "the flipped eye's viewers get an IDR");

    assert_eq!(text(&mut c, &p, "pause"), "ok paused");
    assert!(c.paused());
    assert_eq!(c.take_actions(), vec![Action::Capture { paused: true }]);
    assert_eq!(text(&mut c, &p, "pause"), "ok paused");
    assert!(c.take_actions().is_empty(), "pausing twice does nothing more");
    assert_eq!(text(&mut c, &p, "resume"), "ok resumed");
    assert_eq!(c.take_actions(), vec![Action::Capture { paused: false }]);
    let ev = events(&mut c);
    assert!(ev.contains(&"event pause".to_string()) && ev.contains(&"event resume".to_string()));

    assert_eq!(text(&mut c, &p, "fps 15"), "ok fps=15");
    let a = c.take_actions();
    assert_eq!(a[0], Action::SetFps(15));
    assert!(matches!(a[1], Action::ConfigureEncoder { eye: 0, config } if config.fps == 15 && config.gop_frames == 30));
    assert_eq!(c.fps(), 15);
    assert!(report::hello_json(&c, 0, &p.info, None).contains("\"fps\":15"), "the hello follows `fps`");
    assert!(report::hello_json(&c, 0, &p.info, None).contains("\"https\":true"));
    let plain = Controller::new(Setup { https: false, ..setup(true, None) }, &SavedState::defaults(30, 3_000_000));
    assert!(report::hello_json(&plain, 0, &p.info, None).contains("\"https\":false"), "--tls off: no https offer");

    assert_eq!(text(&mut c, &p, "bitrate 0 1000000"), "ok bitrate=1000000");
    assert!(
        matches!(c.take_actions()[..], [Action::ConfigureEncoder { eye: 0, config }] if config.bitrate_bps == 1_000_000)
    );
    assert_eq!(c.encoder_config(1).bitrate_bps, 3_000_000);
}

#[test]
fn save_is_a_job_whose_reply_follows_the_write() {
    let (mut c, p) = (controller(), FakePlant::new());
    text(&mut c, &p, "look 0 0.25 0");
    events(&mut c);
    let Outcome::Pending(ticket) = c.execute(Command::Save, None, 0, &p) else { panic!() };
    let Some(Action::Save(job)) = c.take_actions().pop() else { panic!() };
    assert_eq!(job.ticket, ticket);
    assert!(job.contents.contains("eye0.look = 0.25 0"), "{}", job.contents);
    assert!(events(&mut c).is_empty(), "nothing is announced before the write");
    let r = c.save_finished(ticket, Ok(()));
    assert_eq!(r.to_string(), r#"ok saved path="/tmp/pieyes test/state.conf""#);
    assert_eq!(events(&mut c), [r#"event saved path="/tmp/pieyes test/state.conf""#]);
    let r = c.save_finished(ticket, Err("No space left on device".into()));
    assert!(r.to_string().starts_with("err save-failed /tmp/pieyes test/state.conf: No space"), "{r}");
    assert!(events(&mut c).is_empty());
}

#[test]
fn a_calibration_whose_save_fails_says_it_is_applied_but_not_saved() {
    let (mut c, p) = (controller(), FakePlant::new());
    let m = crate::calibrate::grab::Measurement {
        dy: 24.0,
        rotation_deg: 0.0,
        confidence: 0.9,
        crops: [Rect::new(384, 108, 384, 432); 2],
    };
    assert!(matches!(c.calibration_finished(1, &Ok(m)), Reply::Calibration(_)));
    let Outcome::Pending(ticket) = c.execute(Command::Calibrate { apply: true }, None, 0, &p) else { panic!() };
    let r = c.save_finished(ticket, Err("No space left on device".into()));
    assert!(r.to_string().starts_with("err save-failed eye 1 offset 0,24 applied but not saved: "), "{r}");
}

#[test]
fn auth_checks_the_token() {
    let p = FakePlant::new();
    let mut c = Controller::new(setup(true, Some("s3cret-token")), &SavedState::defaults(30, 3_000_000));
    assert_eq!(run(&mut c, &p, "auth nope"), Reply::Err(CmdError::new("forbidden", "wrong token")));
    assert_eq!(run(&mut c, &p, "auth s3cret-token"), Reply::Steering { token_required: true });
    assert_eq!(text(&mut controller(), &p, "auth x"), "ok steering (no token is required)");
}

#[test]
fn wrong_tokens_from_one_address_back_off() {
    let p = FakePlant::new();
    let mut c = Controller::new(setup(true, Some("s3cret-token")), &SavedState::defaults(30, 3_000_000));
    let from = Some("10.1.2.3".parse().unwrap());
    let auth = |c: &mut Controller, t: &str, now| match c.execute(Command::Auth(t.into()), from, now, &p) {
        Outcome::Reply(r) => r.to_string(),
        o => panic!("{o:?}"),
    };
    assert_eq!(auth(&mut c, "guess-1", 0), "err forbidden wrong token");
    let r = auth(&mut c, "s3cret-token", 1_000);
    assert!(
        r.starts_with("err forbidden too many wrong tokens from your address: wait"),
        "even the right one waits: {r}"
    );
    assert_eq!(auth(&mut c, "s3cret-token", 200_000), "ok steering");
    assert_eq!(
        c.execute(Command::Auth("x".into()), None, 200_001, &p),
        Outcome::Reply(Reply::Err(CmdError::new("forbidden", "wrong token")))
    );
}

#[test]
fn the_view_scope_asks_for_the_token_to_watch() {
    let mut s = setup(true, Some("s3cret-token"));
    s.token_scope = crate::access::TokenScope::View;
    let mut c = Controller::new(s, &SavedState::defaults(30, 3_000_000));
    assert!(!c.may_view(None, None, 0));
    assert!(!c.may_view(Some("wrong"), None, 0));
    assert!(c.may_view(Some("s3cret-token"), None, 0));
    assert!(controller().may_view(None, None, 0), "the steer scope lets anyone watch");
}

#[test]
fn one_eye_rigs_refuse_the_other_eye() {
    let p = FakePlant::new();
    let mut s = setup(true, None);
    s.eyes.truncate(1);
    let mut c = Controller::new(s, &SavedState::defaults(30, 3_000_000));
    assert_eq!(run(&mut c, &p, "look 1 0 0"), Reply::Err(CmdError::new("no-eye", "that eye has no camera")));
    assert!(matches!(run(&mut c, &p, "verge 0.1"), Reply::Err(_)));
    assert!(run(&mut c, &p, "look 0 0.2 0").is_ok());
}

#[test]
fn saved_state_is_restored_flips_as_actions() {
    let mut saved = SavedState::defaults(25, 2_000_000);
    saved.eyes[1].flip = Flip::H;
    saved.eyes[0].offset = (4, -2);
    saved.vergence = 0.05;
    saved.eyes[0].pose = Pose { x: 0.5, y: 0.0, zoom: 2.0, verge: 0.0 };
    let mut s = setup(true, None);
    s.fps = 25;
    let mut c = Controller::new(s, &saved);
    assert_eq!(c.take_actions(), vec![Action::SetFlip { eye: 1, flip: Flip::H }]);
    let st = c.state_view();
    assert_eq!((st.fps, st.verge, st.eyes[0].offset, st.eyes[0].pose.zoom), (25, 0.05, (4, -2), 2.0));
    assert_eq!(c.encoder_config(0).bitrate_bps, 2_000_000);
    assert_eq!(c.saved_state(), saved, "what was loaded is what would be saved");
}

#[test]
fn frame_thinning_and_crop_events_per_frame() {
    let (mut c, _) = (controller(), FakePlant::new());
    frame(&mut c, 0, 1);
    assert_eq!(events(&mut c).len(), 1, "the first frame announces its crop");
    frame(&mut c, 0, 2);
    assert!(events(&mut c).is_empty(), "an unchanged crop is not news");
    let meta = |seq: u32, t: u64| FrameMeta { eye: 1, sequence: seq, capture_us: t, crop: Rect::default() };
    assert!(c.frame_captured(&meta(1, 1_033_000)));
    assert!(!c.frame_captured(&meta(2, 1_038_000)), "5 ms later at 30 fps: thinned");
    assert!(c.frame_captured(&meta(3, 1_066_000)));
    assert_eq!(c.pairing().pairs, 2, "each eye-0 frame pairs with the eye-1 frame nearest in time");
}
