//! What one eye's pipeline measured: frame counters, drops by cause, and the latency of each
//! stage as histograms. Filled by the daemon's pipeline, read by `status` and `/metrics`.

use crate::histogram::Histogram;

#[derive(Debug, Default, Clone)]
pub struct EyeStats {
    pub captured: u64,
    pub camera_failures: u64,
    /// Frames the camera never captured although a request was queued for them.
    pub camera_skipped: u64,
    pub encoded: u64,
    pub keyframes: u64,
    pub bytes: u64,
    pub encoder_errors: u64,
    /// Frames dropped before the encoder because it was still busy.
    pub encoder_drops: u64,
    /// Frames beyond the configured rate, not encoded (a camera that ignores the frame rate:
    /// libcamera 0.4's virtual camera fills requests as fast as they come).
    pub surplus: u64,
    /// Frames not delivered to a viewer (slow viewers skipped to a keyframe), all viewers.
    pub viewer_drops: u64,
    pub encode_cpu_us: u64,
    /// The encoder's CPU time per frame, µs (its work, apart from waiting for a core).
    pub encode_cpu: Histogram,
    /// Capture → the frame handed to the encoder (the camera's own delay plus the loop's), µs.
    pub capture_to_queued: Histogram,
    /// Handed to the encoder → access unit ready (waiting plus encoding), µs.
    pub queued_to_encoded: Histogram,
    /// Capture → access unit ready, µs.
    pub capture_to_encoded: Histogram,
    /// Capture → last byte written to a viewer's socket, µs (every viewer, every frame).
    pub capture_to_sent: Histogram,
    /// Measured over the last second.
    pub fps: f64,
    pub bitrate: f64,
    window_start_us: u64,
    window_frames: u64,
    window_bytes: u64,
}

impl EyeStats {
    /// Refresh fps/bitrate once a second.
    pub fn tick(&mut self, now_us: u64) {
        if self.window_start_us == 0 {
            self.window_start_us = now_us;
            return;
        }
        let dt = now_us.saturating_sub(self.window_start_us);
        if dt >= 1_000_000 {
            self.fps = (self.encoded - self.window_frames) as f64 * 1e6 / dt as f64;
            self.bitrate = (self.bytes - self.window_bytes) as f64 * 8e6 / dt as f64;
            self.window_start_us = now_us;
            self.window_frames = self.encoded;
            self.window_bytes = self.bytes;
        }
    }
}
