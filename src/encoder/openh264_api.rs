//! OpenH264 through its C API (`openh264-sys2`), for the settings the `openh264` crate's safe
//! wrapper does not reach: slices encoded in parallel (`SM_FIXEDSLCNUM_SLICE` with
//! `iMultipleThreadIdc`), the IDR's share of the bit budget (`iIdrBitrateRatio`), the number of
//! reference pictures, and a target bitrate changed between frames without a new IDR.
//!
//! Every `unsafe` block here is a call into OpenH264's vtable on the encoder this value owns;
//! the pointers handed over live for the duration of the call.
//!
//! OpenH264's slice threads are one pool per process (`CWelsThreadPool`, a refcounted singleton
//! sized by the first encoder that initialises it): both eyes' slices run on the same threads,
//! which inherit the CPU affinity and nice value of the thread that first initialised an encoder.

use std::ptr::null_mut;

use openh264::formats::YUVSource;
use openh264_sys2 as sys;

/// OpenH264's own limit on slice threads (`MAX_THREADS_NUM`, wels_const.h).
pub const MAX_THREADS: u16 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_bps: u32,
    pub gop_frames: u32,
    /// Slices per picture, each encoded by a thread of OpenH264's pool; 1: one slice, no pool.
    pub threads: u16,
    /// An IDR's bit target, in percent of a mean frame's (OpenH264's default: 400).
    pub idr_percent: u32,
    /// H.264's in-loop deblocking filter (`--deblock`).
    pub deblock: bool,
    /// Each IDR's QP chosen to meet its budget (`--keyframe-size small`).
    pub small_idr: bool,
}

/// pieyes' option in its copy of OpenH264 (`third_party/`): an IDR's QP from its budget
/// (`ratectl.cpp`, `RcCalculateIdrQp`), the option after `ENCODER_OPTION_BITS_VARY_PERCENTAGE`.
const ENCODER_OPTION_PIEYES_SMALL_IDR: sys::ENCODER_OPTION = sys::ENCODER_OPTION_BITS_VARY_PERCENTAGE + 1;
/// pieyes' option: OpenH264 copies each input into one picture of its own instead of two in
/// turn, and analyses it against the reference picture instead of the last input
/// (`wels_preprocess.cpp`): one 960x1080 picture (1.7 MB) less resident per encoder.
const ENCODER_OPTION_PIEYES_ONE_SOURCE_PICTURE: sys::ENCODER_OPTION = sys::ENCODER_OPTION_BITS_VARY_PERCENTAGE + 2;

pub struct Wels {
    enc: *mut sys::ISVCEncoder,
    vtbl: sys::ISVCEncoderVtbl,
    initialised: bool,
    info: Box<sys::SFrameBSInfo>,
    settings: Settings,
    frame: u64,
}

// SAFETY: the encoder is used by one thread at a time (it moves with its owner, never shared);
// OpenH264 keeps no thread-local state tied to the creating thread.
#[allow(unsafe_code)]
unsafe impl Send for Wels {}

fn check(what: &str, rc: std::os::raw::c_int) -> Result<(), String> {
    if rc == sys::cmResultSuccess as std::os::raw::c_int { Ok(()) } else { Err(format!("openh264 {what}: error {rc}")) }
}

/// The encoder parameters: OpenH264's defaults, then pieyes' low-latency choices.
fn params(defaults: sys::SEncParamExt, s: &Settings) -> sys::SEncParamExt {
    let mut p = defaults;
    let (w, h) = (s.width as i32, s.height as i32);
    let bps = s.bitrate_bps.min(i32::MAX as u32) as i32;
    p.iUsageType = sys::CAMERA_VIDEO_REAL_TIME;
    p.iPicWidth = w;
    p.iPicHeight = h;
    p.fMaxFrameRate = s.fps as f32;
    // Bitrate mode without frame skipping: every frame carries a stamp and a crop, a skipped one
    // would be a hole in the stream. The bound on frame sizes is the IDR's target below, and
    // the long-run average is held by `rate::RateGuard` moving this target.
    p.iRCMode = sys::RC_BITRATE_MODE;
    p.bEnableFrameSkip = false;
    p.iTargetBitrate = bps;
    p.iMaxBitrate = sys::UNSPECIFIED_BIT_RATE as i32;
    p.iIdrBitrateRatio = s.idr_percent as i32;
    if s.small_idr {
        // The whole QP range (OpenH264's default stops at 42): an IDR meets its budget only
        // if its QP may go that high, and so does a P-frame in a burst of motion.
        p.iMinQp = 12;
        p.iMaxQp = 51;
    }
    p.uiIntraPeriod = s.gop_frames;
    p.eSpsPpsIdStrategy = sys::CONSTANT_ID;
    p.iComplexityMode = sys::LOW_COMPLEXITY;
    // One reference picture and one temporal layer: Constrained Baseline, no reordering, and
    // the fewest reconstructed pictures OpenH264 keeps (1 + iNumRefFrame).
    p.iTemporalLayerNum = 1;
    p.iSpatialLayerNum = 1;
    p.iNumRefFrame = 1;
    p.bEnableLongTermReference = false;
    p.iLTRRefNum = 0;
    // Background detection lets the encoder skip "static" macroblocks; the stamp's cells change
    // every frame and must never be skipped. Scene-change detection would turn a fast eye
    // movement into an unplanned IDR. Adaptive quantisation and denoise are per-frame analysis
    // passes this latency budget does without.
    p.bEnableBackgroundDetection = false;
    p.bEnableSceneChangeDetect = false;
    p.bEnableAdaptiveQuant = false;
    p.bEnableDenoise = false;
    p.iEntropyCodingModeFlag = 0;
    // Deblocking smooths block edges in the reconstructed pictures, the encoder's and the
    // decoder's; off (1) saves about a quarter of OpenH264's CPU per frame and a third of a
    // software decoder's (README, Deblocking). On, OpenH264 itself makes it 2 (not across
    // slice edges) when threaded.
    p.iLoopFilterDisableIdc = if s.deblock { 0 } else { 1 };
    p.iMultipleThreadIdc = s.threads.clamp(1, MAX_THREADS);
    // Threaded: fixed slice boundaries, the same picture always cut the same way. One slice:
    // load balancing does nothing but size OpenH264's bitstream buffers (`RequestMemorySvc`):
    // with it a slice's buffer is one raw frame's size, without it two, and the output buffer
    // OpenH264 zeroes at start (so it stays resident) is 1.5 MB smaller per 960x1080 eye.
    p.bUseLoadBalancing = s.threads <= 1;
    let layer = &mut p.sSpatialLayers[0];
    layer.iVideoWidth = w;
    layer.iVideoHeight = h;
    layer.fFrameRate = s.fps as f32;
    layer.iSpatialBitrate = bps;
    layer.iMaxSpatialBitrate = sys::UNSPECIFIED_BIT_RATE as i32;
    layer.uiProfileIdc = sys::PRO_BASELINE;
    if s.threads > 1 {
        layer.sSliceArgument.uiSliceMode = sys::SM_FIXEDSLCNUM_SLICE;
        layer.sSliceArgument.uiSliceNum = s.threads.clamp(1, MAX_THREADS) as u32;
    } else {
        layer.sSliceArgument.uiSliceMode = sys::SM_SINGLE_SLICE;
        layer.sSliceArgument.uiSliceNum = 1;
    }
    p
}

#[allow(unsafe_code)] // FFI: OpenH264's C API, each call commented
impl Wels {
    pub fn new(s: &Settings) -> Result<Wels, String> {
        let mut enc: *mut sys::ISVCEncoder = null_mut();
        // SAFETY: WelsCreateSVCEncoder writes a new encoder's pointer into `enc`, or fails.
        let rc = unsafe { sys::source::APILoader::WelsCreateSVCEncoder(&raw mut enc) };
        if rc != 0 || enc.is_null() {
            return Err(format!("openh264: cannot create an encoder ({rc})"));
        }
        // SAFETY: a created encoder points at its vtable pointer, valid until it is destroyed.
        let vtbl = unsafe { **enc };
        // From here on Drop destroys `enc`.
        let mut w = Wels { enc, vtbl, initialised: false, info: Box::default(), settings: *s, frame: 0 };
        // OpenH264 prints to stderr, in its own format, that its bitrate control "needs" frame
        // skipping, which pieyes leaves off on purpose: only its errors stay on.
        let mut level: std::os::raw::c_int = sys::WELS_LOG_ERROR as _;
        w.set_option(sys::ENCODER_OPTION_TRACE_LEVEL, (&raw mut level).cast())?;
        let mut p = sys::SEncParamExt::default();
        let get = w.vtbl.GetDefaultParams.ok_or("openh264: no GetDefaultParams")?;
        // SAFETY: GetDefaultParams fills the SEncParamExt it is given.
        check("GetDefaultParams", unsafe { get(w.enc, &raw mut p) })?;
        let p = params(p, s);
        let init = w.vtbl.InitializeExt.ok_or("openh264: no InitializeExt")?;
        // SAFETY: InitializeExt reads `p` during the call (it keeps a copy).
        check("InitializeExt", unsafe { init(w.enc, &raw const p) })?;
        w.initialised = true;
        let mut format: std::os::raw::c_int = sys::videoFormatI420 as _;
        w.set_option(sys::ENCODER_OPTION_DATAFORMAT, (&raw mut format).cast())?;
        let mut on: std::os::raw::c_int = 1;
        w.set_option(ENCODER_OPTION_PIEYES_ONE_SOURCE_PICTURE, (&raw mut on).cast())?;
        if s.small_idr {
            w.set_option(ENCODER_OPTION_PIEYES_SMALL_IDR, (&raw mut on).cast())?;
        }
        Ok(w)
    }

    fn set_option(&mut self, option: sys::ENCODER_OPTION, value: *mut std::ffi::c_void) -> Result<(), String> {
        let f = self.vtbl.SetOption.ok_or("openh264: no SetOption")?;
        // SAFETY: every caller passes a pointer to the type OpenH264 reads for `option`; it is
        // read during the call only.
        check("SetOption", unsafe { f(self.enc, option, value) })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Move OpenH264's target bitrate (from the next frame on, without an IDR).
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), String> {
        let mut info =
            sys::SBitrateInfo { iLayer: sys::SPATIAL_LAYER_ALL, iBitrate: bps.clamp(1, i32::MAX as u32) as i32 };
        self.set_option(sys::ENCODER_OPTION_BITRATE, (&raw mut info).cast())
    }

    /// Encode one picture, appending its NAL units (Annex-B) to `out`; true when it is an IDR.
    pub fn encode(&mut self, pic: &impl YUVSource, force_idr: bool, out: &mut Vec<u8>) -> Result<bool, String> {
        if force_idr {
            let f = self.vtbl.ForceIntraFrame.ok_or("openh264: no ForceIntraFrame")?;
            // SAFETY: ForceIntraFrame only sets a flag in the encoder.
            unsafe { f(self.enc, true) };
        }
        let (w, h) = pic.dimensions_i32();
        let (ys, us, vs) = pic.strides_i32();
        let (y, u, v) = (pic.y(), pic.u(), pic.v());
        let need = |len: usize, stride: i32, rows: i32, cols: i32| {
            rows > 0 && len >= (stride as usize) * (rows as usize - 1) + cols as usize
        };
        if !(need(y.len(), ys, h, w)
            && need(u.len(), us, (h + 1) / 2, (w + 1) / 2)
            && need(v.len(), vs, (h + 1) / 2, (w + 1) / 2))
        {
            return Err("openh264: picture planes smaller than their size and strides".into());
        }
        let src = sys::SSourcePicture {
            iColorFormat: sys::videoFormatI420 as _,
            iStride: [ys, us, vs, 0],
            // OpenH264 reads the planes only (its API has no const pointers).
            pData: [y.as_ptr().cast_mut(), u.as_ptr().cast_mut(), v.as_ptr().cast_mut(), null_mut()],
            iPicWidth: w,
            iPicHeight: h,
            uiTimeStamp: (self.frame * 1000 / self.settings.fps.max(1) as u64) as i64,
            bPsnrY: false,
            bPsnrU: false,
            bPsnrV: false,
        };
        self.frame += 1;
        let f = self.vtbl.EncodeFrame.ok_or("openh264: no EncodeFrame")?;
        // SAFETY: the planes were checked above to hold `h` rows of their strides; OpenH264
        // reads them during the call and fills `info`, whose buffers stay valid until the next
        // call on this encoder.
        check("EncodeFrame", unsafe { f(self.enc, &raw const src, &raw mut *self.info) })?;
        let info = &*self.info;
        if info.eFrameType == sys::videoFrameTypeSkip || info.eFrameType == sys::videoFrameTypeInvalid {
            return Err("openh264 produced no output for a frame".into());
        }
        for layer in &info.sLayerInfo[..info.iLayerNum.clamp(0, 128) as usize] {
            if layer.iNalCount <= 0 || layer.pNalLengthInByte.is_null() || layer.pBsBuf.is_null() {
                continue;
            }
            // SAFETY: OpenH264 reports iNalCount lengths in pNalLengthInByte, their bytes one
            // after the other in pBsBuf, all valid until the next call on this encoder.
            let lens = unsafe { std::slice::from_raw_parts(layer.pNalLengthInByte, layer.iNalCount as usize) };
            let total: usize = lens.iter().map(|&l| l.max(0) as usize).sum();
            // SAFETY: as above: `total` bytes at pBsBuf.
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(layer.pBsBuf, total) });
        }
        Ok(info.eFrameType == sys::videoFrameTypeIDR)
    }
}

#[allow(unsafe_code)] // FFI: releasing the encoder
impl Drop for Wels {
    fn drop(&mut self) {
        if self.initialised
            && let Some(f) = self.vtbl.Uninitialize
        {
            // SAFETY: the encoder was initialised and is not used again.
            unsafe { f(self.enc) };
        }
        // SAFETY: `enc` came from WelsCreateSVCEncoder and is destroyed once, here.
        unsafe { sys::source::APILoader::WelsDestroySVCEncoder(self.enc) };
    }
}
