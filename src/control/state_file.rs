//! The saved defaults: calibration offsets and the view to start with, as a small text file of
//! `key = value` lines. Parsing is strict (a typo is an error, not a silent default) and
//! saving is atomic (temp file, fsync, rename, fsync of the directory), so what the user saved
//! is either the old file or the new one, never half of either.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::text::num;
use crate::camera::Flip;
use crate::eyes::geometry::Pose;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SavedEye {
    pub offset: (i32, i32),
    /// Gaze and zoom (`verge` unused: vergence is shared).
    pub pose: Pose,
    pub flip: Flip,
    pub bitrate: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SavedState {
    pub eyes: [SavedEye; 2],
    pub vergence: f64,
    pub fps: u32,
}

impl SavedState {
    pub fn defaults(fps: u32, bitrate: u32) -> SavedState {
        let eye = SavedEye { offset: (0, 0), pose: Pose::default(), flip: Flip::None, bitrate };
        SavedState { eyes: [eye; 2], vergence: 0.0, fps }
    }
}

pub const VERSION: u32 = 1;

pub fn format(s: &SavedState) -> String {
    let mut out = format!(
        "# pieyes state, written by `save`; edit with care\nversion = {VERSION}\nfps = {}\nvergence = {}\n",
        s.fps,
        num(s.vergence)
    );
    for (i, e) in s.eyes.iter().enumerate() {
        out.push_str(&format!(
            "eye{i}.offset = {} {}\neye{i}.look = {} {}\neye{i}.zoom = {}\neye{i}.flip = {}\neye{i}.bitrate = {}\n",
            e.offset.0,
            e.offset.1,
            num(e.pose.x),
            num(e.pose.y),
            num(e.pose.zoom),
            e.flip.name(),
            e.bitrate
        ));
    }
    out
}

fn number(key: &str, v: &str, lo: f64, hi: f64) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= lo && x <= hi => Ok(x),
        _ => Err(format!("{key}: {v:?} is not a number within {lo}..{hi}")),
    }
}

fn int<T: std::str::FromStr + PartialOrd + std::fmt::Display>(key: &str, v: &str, lo: T, hi: T) -> Result<T, String> {
    match v.parse::<T>() {
        Ok(x) if x >= lo && x <= hi => Ok(x),
        _ => Err(format!("{key}: {v:?} is not a whole number within {lo}..{hi}")),
    }
}

fn pair<'a>(key: &str, v: &'a str) -> Result<(&'a str, &'a str), String> {
    let mut it = v.split_ascii_whitespace();
    match (it.next(), it.next(), it.next()) {
        (Some(a), Some(b), None) => Ok((a, b)),
        _ => Err(format!("{key}: expected two values, got {v:?}")),
    }
}

/// Parse a state file. `base` supplies what the file may leave out (fps, bitrate).
pub fn parse(text: &str, base: SavedState) -> Result<SavedState, String> {
    let mut s = base;
    let mut seen: Vec<String> = Vec::new();
    let mut version = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |e: String| format!("line {}: {e}", n + 1);
        let (key, value) =
            line.split_once('=').ok_or_else(|| at(format!("expected key = value, got {:?}", clip(line))))?;
        let (key, value) = (key.trim(), value.trim());
        if seen.iter().any(|k| k == key) {
            return Err(at(format!("{key} is set twice")));
        }
        seen.push(key.to_string());
        let eye_key = key.strip_prefix("eye0.").map(|k| (0, k)).or_else(|| key.strip_prefix("eye1.").map(|k| (1, k)));
        match (key, eye_key) {
            ("version", _) => version = Some(int(key, value, 0u32, u32::MAX).map_err(at)?),
            ("fps", _) => s.fps = int(key, value, 1u32, 120).map_err(at)?,
            ("vergence", _) => s.vergence = number(key, value, -1.0, 1.0).map_err(at)?,
            (_, Some((i, "offset"))) => {
                let (a, b) = pair(key, value).map_err(at)?;
                s.eyes[i].offset =
                    (int(key, a, -10_000, 10_000).map_err(at)?, int(key, b, -10_000, 10_000).map_err(at)?);
            }
            (_, Some((i, "look"))) => {
                let (a, b) = pair(key, value).map_err(at)?;
                s.eyes[i].pose.x = number(key, a, -1.0, 1.0).map_err(at)?;
                s.eyes[i].pose.y = number(key, b, -1.0, 1.0).map_err(at)?;
            }
            (_, Some((i, "zoom"))) => s.eyes[i].pose.zoom = number(key, value, 1.0, 64.0).map_err(at)?,
            (_, Some((i, "flip"))) => {
                s.eyes[i].flip =
                    Flip::parse(value).ok_or_else(|| at(format!("{key}: {value:?} is not none, h, v or hv")))?
            }
            (_, Some((i, "bitrate"))) => s.eyes[i].bitrate = int(key, value, 50_000u32, 50_000_000).map_err(at)?,
            _ => return Err(at(format!("unknown key {:?}", clip(key)))),
        }
    }
    match version {
        Some(VERSION) => Ok(s),
        Some(v) => Err(format!("version {v} is not one this pieyes understands ({VERSION})")),
        None => Err("no version line: not a pieyes state file".into()),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

pub enum Loaded {
    Missing,
    State(SavedState),
    /// The file exists but cannot be used; the message says why. It is left untouched.
    Unusable(String),
}

/// The largest state file read: a few hundred bytes is usual.
const MAX_STATE_FILE: u64 = 64 * 1024;

pub fn load(path: &Path, base: SavedState) -> Loaded {
    // Only a regular file is read, and no more of it than the limit: a FIFO would block the
    // start-up for ever, and /dev/zero would fill the memory.
    let read = || -> std::io::Result<Vec<u8>> {
        if !std::fs::metadata(path)?.is_file() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::fs::File::open(path)?, MAX_STATE_FILE + 1),
            &mut bytes,
        )?;
        Ok(bytes)
    };
    match read() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Loaded::Missing,
        Err(e) => Loaded::Unusable(format!("cannot read: {e}")),
        Ok(bytes) if bytes.len() as u64 > MAX_STATE_FILE => Loaded::Unusable("larger than 64 KiB".into()),
        Ok(bytes) => match String::from_utf8(bytes) {
            Err(_) => Loaded::Unusable("not UTF-8 text".into()),
            Ok(text) => match parse(&text, base) {
                Ok(s) => Loaded::State(s),
                Err(e) => Loaded::Unusable(e),
            },
        },
    }
}

/// Write `contents` to `path` atomically: a temp file in the same directory, fsync, rename
/// over the old file, fsync the directory. On any error the old file is as it was. The temp
/// file is created new (`O_EXCL`) and never through a symlink (`O_NOFOLLOW`): something
/// planted at its name makes the save fail with a clear error instead of writing elsewhere.
pub fn save_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    save_atomic_mode(path, contents, 0o644)
}

/// `save_atomic` with the file's permission bits (0600 for a private key: never readable by
/// others, not even for a moment).
pub fn save_atomic_mode(path: &Path, contents: &str, mode: u32) -> std::io::Result<()> {
    save_atomic_bytes(path, contents.as_bytes(), mode)
}

fn save_atomic_bytes(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Directories made here are entries in their parents: those are synced too, or the first
    // save into a new state directory could vanish with it on a power cut.
    let missing: Vec<PathBuf> =
        dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).map(Path::to_path_buf).collect();
    std::fs::create_dir_all(&dir)?;
    for made in &missing {
        if let Some(parent) = made.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    let name = path.file_name().ok_or(std::io::ErrorKind::InvalidInput)?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let create = || {
        std::fs::OpenOptions::new().write(true).create_new(true).custom_flags(libc::O_NOFOLLOW).mode(mode).open(&tmp)
    };
    let mut f = match create() {
        Ok(f) => f,
        // A plain file at our name is a crash's leftover: saves are one at a time and the name
        // carries this process' id, so it belongs to a dead process that had the same id (a
        // Pi boots its services in the same order, often to the same ids). Without this every
        // save would fail until someone removed it. Anything else there (a symlink, a
        // directory) is not ours to remove: the save fails and it is left for the user to see.
        Err(e)
            if e.kind() == std::io::ErrorKind::AlreadyExists
                && std::fs::symlink_metadata(&tmp).is_ok_and(|m| m.file_type().is_file()) =>
        {
            std::fs::remove_file(&tmp)?;
            crate::warn!("removed {}, a temp file left by a crash", tmp.display());
            create()?
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(std::io::Error::new(
                e.kind(),
                format!("{} already exists and is not a plain file; remove it to save", tmp.display()),
            ));
        }
        Err(e) => return Err(e),
    };
    let result = (|| {
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp); // ours: created new just above
    }
    result
}

/// A copy of an unusable state file beside it (`state.conf.bad`), so what the user had in it (a
/// hand edit with one typo still holds their calibration) outlives the next save.
fn keep_a_copy(path: &Path) -> std::io::Result<PathBuf> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() || meta.len() > MAX_STATE_FILE * 16 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file of a sensible size"));
    }
    let mut name = path.file_name().ok_or(std::io::ErrorKind::InvalidInput)?.to_os_string();
    name.push(".bad");
    let copy = path.with_file_name(name);
    save_atomic_bytes(&copy, &std::fs::read(path)?, 0o600)?;
    Ok(copy)
}

/// Where the state lives unless `--state` says otherwise: systemd's StateDirectory, else the
/// XDG state dir, else ~/.local/state, else /var/lib.
pub fn default_path() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = env("STATE_DIRECTORY") {
        return d.join("state.conf");
    }
    if let Some(d) = env("XDG_STATE_HOME") {
        return d.join("pieyes/state.conf");
    }
    if let Some(h) = env("HOME") {
        return h.join(".local/state/pieyes/state.conf");
    }
    PathBuf::from("/var/lib/pieyes/state.conf")
}

/// The saved defaults, with the flags given on the command line winning over them.
pub fn load_with_flags(cfg: &crate::config::Config) -> SavedState {
    let base = SavedState::defaults(cfg.fps, cfg.bitrate);
    let mut saved = match load(&cfg.state, base) {
        Loaded::Missing => {
            crate::info!("no saved state at {}: starting with defaults", cfg.state.display());
            base
        }
        Loaded::State(s) => {
            crate::info!("restored saved state from {}", cfg.state.display());
            s
        }
        Loaded::Unusable(why) => {
            match keep_a_copy(&cfg.state) {
                Ok(copy) => crate::error!(
                    "state file {} is unusable ({why}): starting with defaults; a copy is kept as {} (the next save replaces the file)",
                    cfg.state.display(),
                    copy.display()
                ),
                Err(e) => crate::error!(
                    "state file {} is unusable ({why}): starting with defaults; the file is left as it is until the next save (no copy kept: {e})",
                    cfg.state.display()
                ),
            }
            base
        }
    };
    if cfg.is_explicit("--fps") {
        saved.fps = cfg.fps;
    }
    if cfg.is_explicit("--bitrate") {
        saved.eyes.iter_mut().for_each(|e| e.bitrate = cfg.bitrate);
    }
    saved
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty directory of its own for one test.
    fn fresh_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pieyes-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The temp file this process saves `dir/state.conf` through.
    fn our_temp(dir: &Path) -> PathBuf {
        dir.join(format!(".state.conf.tmp-{}", std::process::id()))
    }

    fn sample() -> SavedState {
        let mut s = SavedState::defaults(25, 2_500_000);
        s.vergence = 0.05;
        s.eyes[0].offset = (4, -2);
        s.eyes[1].pose = Pose { x: 0.25, y: -0.5, zoom: 2.5, verge: 0.0 };
        s.eyes[1].flip = Flip::HV;
        s.eyes[1].bitrate = 4_000_000;
        s
    }

    #[test]
    fn round_trip() {
        let s = sample();
        assert_eq!(parse(&format(&s), SavedState::defaults(30, 3_000_000)), Ok(s));
    }

    #[test]
    fn strictness() {
        let base = SavedState::defaults(30, 3_000_000);
        let good = format(&sample());
        let err = |t: &str| parse(t, base).unwrap_err();
        assert!(err("").contains("no version"));
        assert!(err("version = 2\n").contains("version 2"));
        assert!(err(&format!("{good}eye0.zoom = 3\n")).contains("set twice"));
        assert!(err(&good.replace("eye1.flip = hv", "eye1.flip = sideways")).contains("eye1.flip"));
        assert!(err(&good.replace("fps = 25", "fps = NaN")).contains("line 3"));
        assert!(err(&good.replace("vergence = 0.05", "vergence = inf")).contains("vergence"));
        assert!(err(&format!("{good}colour = blue\n")).contains("unknown key"));
        assert!(err(&format!("{good}garbage\n")).contains("key = value"));
        assert!(err(&good.replace("eye0.offset = 4 -2", "eye0.offset = 4")).contains("two values"));
        // Comments and blank lines are fine; missing keys keep the base.
        let partial = parse("# hi\n\nversion = 1\neye0.zoom = 2\n", base).unwrap();
        assert_eq!((partial.eyes[0].pose.zoom, partial.fps), (2.0, 30));
    }

    #[test]
    fn atomic_save_and_load() {
        let dir = std::env::temp_dir().join(format!("pieyes-state-{}", std::process::id()));
        let path = dir.join("sub/state.conf");
        let base = SavedState::defaults(30, 3_000_000);
        assert!(matches!(load(&path, base), Loaded::Missing));
        save_atomic(&path, &format(&sample())).unwrap();
        assert!(matches!(load(&path, base), Loaded::State(s) if s == sample()));
        std::fs::write(&path, "version = 1\nfps = many\n").unwrap();
        assert!(matches!(load(&path, base), Loaded::Unusable(m) if m.contains("fps")));
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(load(&path, base), Loaded::Unusable(_)));
        // Not a regular file: refused at once, never read (a FIFO would block, /dev/zero fill).
        assert!(matches!(load(Path::new("/dev/zero"), base), Loaded::Unusable(m) if m.contains("regular")));
        assert!(matches!(load(path.parent().unwrap(), base), Loaded::Unusable(m) if m.contains("regular")));
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_save_leaves_the_old_file() {
        let dir = fresh_dir("ro");
        let path = dir.join("state.conf");
        std::fs::write(&path, "old").unwrap();
        // A directory where the temp file would go makes the write fail.
        let tmp = our_temp(&dir);
        std::fs::create_dir_all(&tmp).unwrap();
        assert!(save_atomic(&path, "new").is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unusable_file_is_copied_aside() {
        let dir = fresh_dir("bad");
        let path = dir.join("state.conf");
        std::fs::write(&path, b"version = 1\neye1.offset = 0,24\nfps = many\n\xff").unwrap();
        let copy = keep_a_copy(&path).unwrap();
        assert_eq!(copy, dir.join("state.conf.bad"));
        assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&path).unwrap(), "the same bytes");
        assert!(keep_a_copy(&dir).is_err(), "only a regular file");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_temp_file_left_by_a_crash_does_not_stop_saves() {
        let dir = fresh_dir("stale");
        let path = dir.join("state.conf");
        std::fs::write(&path, "old").unwrap();
        // Into a directory that does not exist yet: made (and its parents synced) on the way.
        let nested = dir.join("new/deeper/state.conf");
        save_atomic(&nested, "first").unwrap();
        assert_eq!(std::fs::read_to_string(&nested).unwrap(), "first");
        // What a power cut between create and rename leaves, found by a process with the same id.
        let tmp = our_temp(&dir);
        std::fs::write(&tmp, "half a sa").unwrap();
        save_atomic(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert!(!tmp.exists(), "the leftover is gone");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_symlink_planted_at_the_temp_name_is_refused() {
        let dir = fresh_dir("link");
        let path = dir.join("state.conf");
        let victim = dir.join("victim");
        std::fs::write(&path, "old").unwrap();
        std::fs::write(&victim, "precious").unwrap();
        let tmp = our_temp(&dir);
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        let e = save_atomic(&path, "new").unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "the link's target is untouched");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert!(std::fs::symlink_metadata(&tmp).unwrap().file_type().is_symlink(), "and left for the user to see");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
