//! Throwaway probe of the `libcamera` crate 0.4.0 against trixie's libcamera 0.4 in the test VM.
//!
//! Usage: pieyes-vm-probe FRAMES [CAMERA_ID_SUBSTRING...]
//! Lists every camera with its properties, then captures FRAMES frames from each selected camera
//! (all of them at once), asking for YUV420 1920x1080 with StreamRole::VideoRecording. From the
//! 4th completed request on it sets ScalerCrop (half of ScalerCropMaximum, centred) on every
//! re-queued request and reports what comes back in the metadata and whether the pixels changed.
//! Prints one line per frame and a `probe-summary:` line per camera; exits 1 if a camera failed.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libcamera::{
    camera::{ActiveCamera, CameraConfigurationStatus},
    camera_manager::CameraManager,
    controls,
    framebuffer::AsFrameBuffer,
    framebuffer_allocator::{FrameBuffer, FrameBufferAllocator},
    framebuffer_map::MemoryMappedFrameBuffer,
    geometry::{Rectangle, Size},
    pixel_format::PixelFormat,
    properties,
    request::{ReuseFlag, RequestStatus},
    stream::{Stream, StreamRole},
};

/// DRM_FORMAT_YUV420 == libcamera::formats::YUV420 ('YU12').
const YUV420: PixelFormat = PixelFormat::new(u32::from_le_bytes(*b"YU12"), 0);

type Mapped = MemoryMappedFrameBuffer<FrameBuffer>;

fn fourcc(p: PixelFormat) -> String {
    p.fourcc().to_le_bytes().iter().map(|&b| b as char).collect()
}

fn rect(r: &Rectangle) -> String {
    format!("({},{})/{}x{}", r.x, r.y, r.width, r.height)
}

fn same(a: &Rectangle, b: &Rectangle) -> bool {
    // geometry::Rectangle has no PartialEq in 0.4.0.
    (a.x, a.y, a.width, a.height) == (b.x, b.y, b.width, b.height)
}

fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64
}

/// Cheap content fingerprint of a plane: FNV-1a over every 64th byte.
fn fingerprint(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data.iter().step_by(64) {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

struct CamState {
    id: String,
    stream: Stream,
    crop_max: Option<Rectangle>,
    crop_base: &'static str,
    crop_accepted: Option<bool>,
    frame_md_missing: u32,
    crop_req: Option<Rectangle>,
    done: u32,
    last_seq: Option<u32>,
    last_ts: Option<u64>,
    seq_ok: bool,
    ts_ok: bool,
    crop_seen: Vec<Rectangle>,
    crop_honoured: bool,
    fp_before: Option<u64>,
    fp_after: Option<u64>,
    failed: Option<String>,
}

fn main() {
    // All libcamera objects live in run() and are dropped, in order, before the process exits:
    // std::process::exit() with a live CameraManager lets libcamera's static destructors race its
    // threads (seen: segfault in libcamera.so 0.4.0 at exit).
    let code = run();
    std::process::exit(code);
}

fn run() -> i32 {
    let mut args = std::env::args().skip(1);
    let frames: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let wanted: Vec<String> = args.collect();

    let mgr = CameraManager::new().expect("CameraManager::new");
    println!("libcamera version: {}", mgr.version());
    let list = mgr.cameras();
    println!("cameras: {}", list.len());

    // Camera<'_> borrows the CameraList; keep them alive for the ActiveCameras that borrow them.
    let mut cams = Vec::new();
    for i in 0..list.len() {
        let cam = list.get(i).unwrap();
        let p = cam.properties();
        println!("camera[{i}] id={}", cam.id());
        println!("  Model: {:?}", p.get::<properties::Model>().map(|m| m.0));
        println!("  Location: {:?}", p.get::<properties::Location>());
        println!("  PixelArraySize: {:?}", p.get::<properties::PixelArraySize>().map(|s| s.0));
        println!(
            "  PixelArrayActiveAreas: {:?}",
            p.get::<properties::PixelArrayActiveAreas>().map(|a| a.iter().map(rect).collect::<Vec<_>>())
        );
        println!("  ScalerCropMaximum: {:?}", p.get::<properties::ScalerCropMaximum>().map(|r| rect(&r)));
        println!("  all properties: {:?}", p);
        let selected = if wanted.is_empty() { true } else { wanted.iter().any(|w| cam.id().contains(w.as_str())) };
        if selected {
            cams.push(cam);
        }
    }
    if cams.is_empty() {
        eprintln!("no camera matches {:?}", wanted);
        return 1;
    }

    let (tx, rx) = mpsc::channel();
    let mut active: Vec<ActiveCamera<'_>> = Vec::new();
    let mut states: Vec<CamState> = Vec::new();
    let mut allocators = Vec::new();
    let mut pending = Vec::new();

    for (ci, cam) in cams.iter().enumerate() {
        let id = cam.id().to_string();
        let mut ac = cam.acquire().expect("acquire");
        let mut cfgs = ac.generate_configuration(&[StreamRole::VideoRecording]).expect("generate_configuration");
        {
            let mut sc = cfgs.get_mut(0).unwrap();
            println!("[{id}] default config: {:?} {:?}", fourcc(sc.get_pixel_format()), sc.get_size());
            let fmts = sc.formats();
            let pfs: Vec<String> = fmts.pixel_formats().into_iter().map(fourcc).collect();
            println!("[{id}] supported pixel formats: {:?}", pfs);
            sc.set_pixel_format(YUV420);
            sc.set_size(Size { width: 1920, height: 1080 });
            sc.set_buffer_count(4);
        }
        match cfgs.validate() {
            CameraConfigurationStatus::Valid => println!("[{id}] config valid"),
            CameraConfigurationStatus::Adjusted => println!("[{id}] config ADJUSTED"),
            CameraConfigurationStatus::Invalid => panic!("[{id}] config invalid"),
        }
        {
            let sc = cfgs.get(0).unwrap();
            println!(
                "[{id}] final config: {} {:?} stride={} frame_size={} buffers={}",
                fourcc(sc.get_pixel_format()),
                sc.get_size(),
                sc.get_stride(),
                sc.get_frame_size(),
                sc.get_buffer_count()
            );
        }
        ac.configure(&mut cfgs).expect("configure");
        let stream = cfgs.get(0).unwrap().stream().expect("stream");

        let mut alloc = FrameBufferAllocator::new(&ac);
        let bufs = alloc.alloc(&stream).expect("alloc");
        println!("[{id}] allocated {} buffers", bufs.len());
        let mut reqs = Vec::new();
        for (bi, buf) in bufs.into_iter().enumerate() {
            // dmabuf planes: fd, offset, length (what a V4L2 M2M encoder would import).
            let planes: Vec<String> = buf
                .planes()
                .into_iter()
                .map(|p| {
                    let size = unsafe { libc::lseek(p.fd(), 0, libc::SEEK_END) };
                    format!("fd={} off={:?} len={} fdsize={}", p.fd(), p.offset(), p.len(), size)
                })
                .collect();
            println!("[{id}] buffer {bi}: {}", planes.join("; "));
            let mapped = MemoryMappedFrameBuffer::new(buf).expect("mmap");
            let mut req = ac.create_request(Some(((ci as u64) << 32) | bi as u64)).expect("create_request");
            req.add_buffer(&stream, mapped).expect("add_buffer");
            reqs.push(req);
        }
        let txc = tx.clone();
        // Runs on libcamera's thread: hand the request over to the main loop.
        ac.on_request_completed(move |req| {
            let _ = txc.send((ci, req, monotonic_ns()));
        });
        // ScalerCrop is bounded by ScalerCropMaximum; without it fall back to the active area so
        // that we still see what the pipeline does with a crop it does not advertise.
        let props = ac.properties();
        let (crop_max, crop_base) = match props.get::<properties::ScalerCropMaximum>() {
            Ok(r) => (Some(r.0), "ScalerCropMaximum"),
            Err(_) => match props.get::<properties::PixelArrayActiveAreas>() {
                Ok(a) if !a.is_empty() => (Some(a[0]), "PixelArrayActiveAreas[0]"),
                _ => (None, "none"),
            },
        };
        states.push(CamState {
            id,
            stream,
            crop_max,
            crop_base,
            crop_accepted: None,
            frame_md_missing: 0,
            crop_req: None,
            done: 0,
            last_seq: None,
            last_ts: None,
            seq_ok: true,
            ts_ok: true,
            crop_seen: Vec::new(),
            crop_honoured: false,
            fp_before: None,
            fp_after: None,
            failed: None,
        });
        allocators.push(alloc);
        pending.push(reqs);
        active.push(ac);
    }

    for (ci, ac) in active.iter_mut().enumerate() {
        ac.start(None).expect("start");
        for req in pending[ci].drain(..) {
            ac.queue_request(req).expect("queue_request");
        }
    }

    // Completed requests we stop re-queuing are parked here until the cameras are stopped:
    // libcamera 0.4's vimc handler calls request->sequence() *after* completeRequest() (in
    // imageBufferReady), so destroying a Request as soon as it completes is a use-after-free
    // (seen: segfault in Request::sequence() on libcamera's thread).
    let mut retired = Vec::new();
    let t0 = Instant::now();
    let mut first_ts: HashMap<usize, i64> = HashMap::new();
    while states.iter().any(|s| s.done < frames && s.failed.is_none()) {
        let (ci, mut req, recv_ns) = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(x) => x,
            Err(_) => {
                for s in states.iter_mut().filter(|s| s.done < frames) {
                    s.failed = Some(format!("timeout after {} frames", s.done));
                }
                break;
            }
        };
        let st = &mut states[ci];
        if st.done >= frames {
            retired.push(req); // extra completions after we had enough
            continue;
        }
        if req.status() != RequestStatus::Complete {
            st.failed = Some(format!("request status {:?}", req.status()));
            retired.push(req);
            continue;
        }
        let md = req.metadata();
        let sensor_ts = md.get::<controls::SensorTimestamp>().ok().map(|t| t.0);
        let crop_md = md.get::<controls::ScalerCrop>().ok().map(|c| c.0);
        let md_dump = format!("{:?}", md);
        let buf: &Mapped = req.buffer(&st.stream).expect("buffer");
        // FrameMetadata (buffer sequence/timestamp/bytesused) is None when the pipeline never
        // filled it in (status left at the crate's u32::MAX marker): the virtual pipeline in 0.4.0.
        let (seq, ts, used) = match buf.metadata() {
            Some(fmd) => {
                let used: Vec<u32> = fmd.planes().into_iter().map(|p| p.bytes_used).collect();
                (fmd.sequence(), fmd.timestamp(), used)
            }
            None => {
                st.frame_md_missing += 1;
                (req.sequence(), sensor_ts.unwrap_or(0) as u64, Vec::new())
            }
        };
        let fp = fingerprint(buf.data()[0]);
        if let Some(prev) = st.last_seq {
            if seq != prev + 1 {
                st.seq_ok = false;
            }
        }
        if let Some(prev) = st.last_ts {
            if ts <= prev {
                st.ts_ok = false;
            }
        }
        st.last_seq = Some(seq);
        st.last_ts = Some(ts);
        let t_first = *first_ts.entry(ci).or_insert(ts as i64);
        if let Some(c) = crop_md {
            st.crop_seen.push(c);
            if let Some(r) = st.crop_req {
                if same(&c, &r) {
                    st.crop_honoured = true;
                }
            }
        }
        if st.crop_req.is_none() {
            st.fp_before = Some(fp);
        } else {
            st.fp_after = Some(fp);
        }
        println!(
            "[{}] frame {:2} req_seq={} cookie={:#x} buf_seq={} ts={} (+{:.1} ms) SensorTimestamp={:?} \
             completed_at-ts={:.1} ms bytesused={:?} ScalerCrop={:?} y_fp={:016x} metadata={}",
            st.id,
            st.done,
            req.sequence(),
            req.cookie(),
            seq,
            ts,
            (ts as i64 - t_first) as f64 / 1e6,
            sensor_ts,
            (recv_ns - ts as i64) as f64 / 1e6,
            used,
            crop_md.map(|c| rect(&c)),
            fp,
            md_dump
        );
        st.done += 1;
        if st.done >= frames {
            retired.push(req);
            continue;
        }
        // Re-queue the same request and buffer; from the 4th frame on ask for a centred half crop.
        req.reuse(ReuseFlag::REUSE_BUFFERS);
        if st.done >= 3 {
            if let Some(m) = st.crop_max {
                let r = Rectangle {
                    x: m.x + (m.width / 4) as i32,
                    y: m.y + (m.height / 4) as i32,
                    width: m.width / 2,
                    height: m.height / 2,
                };
                // set() cannot report a rejected control (libcamera API): read it back.
                req.controls_mut().set(controls::ScalerCrop(r)).expect("set ScalerCrop");
                let back = req.controls().get::<controls::ScalerCrop>().ok().map(|c| c.0);
                st.crop_accepted = Some(back.is_some_and(|b| same(&b, &r)));
                st.crop_req = Some(r);
            }
        }
        if let Err(e) = active[ci].queue_request(req) {
            st.failed = Some(format!("queue_request: {e}"));
        }
    }
    let elapsed = t0.elapsed();
    for ac in active.iter_mut() {
        let _ = ac.stop();
    }
    // stop() cancels the still-queued requests through the completion callback: collect and drop
    // them before the cameras, then tear down in reverse order of creation.
    std::thread::sleep(Duration::from_millis(100));
    let cancelled = rx.try_iter().count();
    println!("cancelled requests after stop: {cancelled}");
    drop(retired);

    let mut bad = 0;
    for st in &states {
        let ok = st.failed.is_none() && st.done >= frames;
        if !ok {
            bad += 1;
        }
        println!(
            "probe-summary: camera={} ok={} frames={} fps={:.2} seq_consecutive={} ts_increasing={} \
             crop_base={} crop_base_rect={:?} crop_accepted_by_request_list={:?} frame_metadata_missing={} scaler_crop_requested={:?} scaler_crop_in_metadata={:?} \
             crop_honoured_in_metadata={} pixels_changed_after_crop={} error={:?}",
            st.id,
            ok,
            st.done,
            st.done as f64 / elapsed.as_secs_f64(),
            st.seq_ok,
            st.ts_ok,
            st.crop_base,
            st.crop_max.map(|r| rect(&r)),
            st.crop_accepted,
            st.frame_md_missing,
            st.crop_req.map(|r| rect(&r)),
            st.crop_seen.iter().map(rect).collect::<std::collections::BTreeSet<_>>(),
            st.crop_honoured,
            match (st.fp_before, st.fp_after) {
                (Some(a), Some(b)) => (a != b).to_string(),
                _ => "n/a".to_string(),
            },
            st.failed
        );
    }
    drop(active);
    drop(allocators);
    drop(cams);
    drop(list);
    drop(mgr);
    if bad == 0 { 0 } else { 1 }
}
