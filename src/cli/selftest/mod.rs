//! `pieyes selftest …`: drive real kernel interfaces end to end and check what the kernel
//! answers, not what the code hoped. Runs in the test VM (vicodec's FWHT encoder, dma-bufs from
//! `/dev/dma_heap/system`) and on a Raspberry Pi 4 (bcm2835-codec, H.264) alike.
//!
//! - `selftest v4l2`: the V4L2 encoder module through a poll loop shaped like the daemon's
//!   (`completion_fd` + `interest`, at most two frames inside): ≥ 100 frames, a forced
//!   keyframe, a resolution change with frames inside (stream restart), a stop with frames
//!   inside (drain), every frame buffer back exactly once, the device holding nothing.
//! - `selftest dmabuf`: the software encoder reading dma-bufs in place between
//!   DMA_BUF_IOCTL_SYNC START/END, and memfds without (ENOTTY, once).
//!
//! One `check <name>: ok|FAIL <detail>` line per named check on stdout (each is a function in
//! `v4l2` / `dmabuf`), then a summary; exit 1 on any FAIL, 2 when it cannot run at all.

mod dmabuf;
mod frames;
mod v4l2;

use crate::camera::Size;

pub const USAGE: &str = "\
usage:
  pieyes selftest v4l2 [--codec h264|fwht] [--device PATH] [--frames N] [--size WxH]
                       [--resize WxH|none] [--resize-frames N] [--format i420|nv12]
                       [--source heap|memfd] [--heap PATH] [--memory auto|dmabuf|mmap]
                       [--expect-memory dmabuf|mmap] [--gop N] [--force-key-at N]
  pieyes selftest dmabuf [--heap PATH] [--frames N]
--heap defaults to /dev/dma_heap/linux,cma if present (a Pi), else /dev/dma_heap/system.
";

/// The verdicts so far.
#[derive(Default)]
struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    fn check(&mut self, name: &str, ok: bool, detail: impl std::fmt::Display) -> bool {
        if ok {
            self.passed += 1;
            println!("check {name}: ok {detail}");
        } else {
            self.failed += 1;
            println!("check {name}: FAIL {detail}");
        }
        ok
    }
    fn finish(&self, what: &str) -> i32 {
        println!("selftest {what}: {} checks passed, {} failed", self.passed, self.failed);
        if self.failed == 0 { 0 } else { 1 }
    }
}

/// `--key value` pairs.
struct Args(Vec<(String, String)>);

impl Args {
    fn parse(args: &[String]) -> Result<Args, String> {
        let mut v = Vec::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let key = k.strip_prefix("--").ok_or_else(|| format!("unexpected {k:?}"))?;
            let val = it.next().ok_or_else(|| format!("{k} needs a value"))?;
            v.push((key.to_string(), val.clone()));
        }
        Ok(Args(v))
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
    fn num(&self, k: &str, default: u32) -> Result<u32, String> {
        self.get(k).map_or(Ok(default), |v| v.parse().map_err(|_| format!("--{k}: not a number: {v:?}")))
    }
    fn size(&self, k: &str, default: Option<Size>) -> Result<Option<Size>, String> {
        match self.get(k) {
            None => Ok(default),
            Some("none") => Ok(None),
            Some(v) => {
                let (w, h) = v.split_once('x').ok_or_else(|| format!("--{k}: expected WxH"))?;
                let s = Size { w: w.parse().map_err(|_| "bad width")?, h: h.parse().map_err(|_| "bad height")? };
                if s.w % 2 != 0 || s.h % 2 != 0 || s.w < 16 || s.h < 16 {
                    return Err(format!("--{k}: {v} must be even and at least 16x16"));
                }
                Ok(Some(s))
            }
        }
    }
    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        match self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(format!("unknown option --{k}")),
            None => Ok(()),
        }
    }
}

pub fn main(args: &[String]) -> i32 {
    let r = match args.first().map(String::as_str) {
        Some("v4l2") => Args::parse(&args[1..]).and_then(|a| v4l2::run(&a)),
        Some("dmabuf") => Args::parse(&args[1..]).and_then(|a| dmabuf::run(&a)),
        _ => Err("which selftest? v4l2 or dmabuf".into()),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pieyes selftest: {e}\n{USAGE}");
            2
        }
    }
}
