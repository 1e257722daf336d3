// The player for pages without WebCodecs (plain http:// from another machine: browsers give
// `VideoDecoder` to secure contexts only; or an older browser): each access unit becomes a
// fragmented-MP4 fragment (fmp4.js) appended to a Media Source Extensions `SourceBuffer`.
// A <video> plays it at the live edge; every frame it presents is drawn onto the eye's canvas
// (requestVideoFrameCallback), so the overlays, the stamp reader and the latency probe see
// the same pixels as on the WebCodecs path. Plays somewhat behind WebCodecs: the media
// pipeline holds frames before it presents them (README "Opening pieyes from another machine"
// has figures). Live-edge control in the spirit of JMuxer's and hls.js's low-latency modes:
// the playhead kept at the newest frame, a little faster when behind and slower when past it,
// a jump when half a second behind, played media trimmed, a keyframe asked after an error.
'use strict';

// The live-edge policy (MsePlayer.TUNE; the page's console may change it to experiment).
const MSE_TUNE = {
  // Newest frame ahead of the playhead: what we aim for. Zero: the playhead runs with the
  // newest frame, so each one is shown the moment it is decoded (a frame whose time has just
  // passed is still shown, as the latest); the padded durations keep it from running dry.
  targetLeadS: 0,
  catchUpS: 0.1, // more than this ahead: play faster until back at the target
  jumpS: 0.5, // more than this: jump to just before the newest frame
  keepS: 1, // played media kept behind the playhead before trimming
  // Each sample lasts at least this long (see PieFmp4.Muxer): gaps up to twice it between the
  // frames that reach the page are not discontinuities, and the playhead never runs dry
  // between frames; each frame is still replaced by the next one when that one's time comes.
  minDurationUs: 500000,
};

class MsePlayer {
  static get TUNE() {
    return MSE_TUNE;
  }

  static mediaSource() {
    return window.ManagedMediaSource || window.MediaSource || null;
  }

  static supported() {
    const MS = MsePlayer.mediaSource();
    return !!MS && MS.isTypeSupported('video/mp4; codecs="avc1.42E01F"');
  }

  // `eye`: the Eye it plays for; `eye.show(source, captureUs)` draws a presented frame.
  constructor(eye) {
    this.eye = eye;
    const v = document.createElement('video');
    v.className = 'video-mse';
    v.muted = true;
    v.playsInline = true;
    v.disableRemotePlayback = true; // lets ManagedMediaSource (Safari on iPhone) attach
    v.setAttribute('aria-hidden', 'true');
    // Under the canvas, in the view: a video out of sight may not be played or presented.
    eye.view.insertBefore(v, eye.view.firstChild);
    this.video = v;
    v.addEventListener('error', () => {
      if (this.url && v.currentSrc === this.url) this.fail('video error: ' + (v.error ? v.error.message || v.error.code : '?'));
    });
    this.errors = 0;
    this.jumps = 0;
    this.trims = 0;
    this.presented = 0;
    this.appends = 0;
    this.lastMediaTime = null;
    this.ms = null;
    this.open();
    this.watchFrames();
  }

  // A fresh MediaSource: after an error, a new codec, or a reconnect.
  open() {
    this.close();
    const MS = MsePlayer.mediaSource();
    const ms = new MS();
    this.ms = ms;
    this.opens = (this.opens || 0) + 1;
    this.sb = null;
    this.codec = null;
    this.queue = [];
    this.muxer = new PieFmp4.Muxer({ minDurationUs: MSE_TUNE.minDurationUs });
    this.keyTimes = []; // media times (s) of the keyframes appended
    this.lastTimeS = null; // media time of the newest frame appended: the live edge
    this.waitKey = true;
    this.url = URL.createObjectURL(ms);
    ms.addEventListener('sourceopen', () => this.pump(), { once: true });
    this.video.src = this.url;
  }

  close() {
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
    this.ms = null;
    this.sb = null;
    this.video.removeAttribute('src');
    this.video.load();
  }

  // The daemon's stream restarts (a reconnect, a new hello): start over at its next keyframe.
  reset() {
    this.open();
  }

  // Something broke: start over and ask for a keyframe rather than wait up to a GOP.
  fail(why) {
    this.errors++;
    console.warn('eye', this.eye.index, 'MSE:', why);
    this.open();
    this.eye.askKeyframe();
  }

  // One parsed message from the eye's socket. False while it waits for a keyframe.
  push(h) {
    if (this.waitKey && !h.key) return false;
    const hello = this.eye.hello || {};
    const r = this.muxer.push(h.payload, h.captureUs, h.key, hello.width || this.eye.canvas.width, hello.height || this.eye.canvas.height);
    if (r.init) {
      if (this.codec && r.codec !== this.codec) {
        // Another profile or level: a SourceBuffer of its own (changeType is not everywhere).
        this.open();
        return this.push(h);
      }
      this.codec = r.codec;
      this.queue.push(r.init);
    }
    if (!r.fragment) return !this.waitKey;
    this.waitKey = false;
    this.queue.push(r.fragment);
    this.lastTimeS = r.timeS;
    if (h.key) {
      this.keyTimes.push(r.timeS);
      if (this.keyTimes.length > 8) this.keyTimes.shift();
    }
    this.pump();
    return true;
  }

  pump() {
    const ms = this.ms;
    if (!ms || ms.readyState !== 'open' || !this.codec) return;
    if (!this.sb) {
      try {
        this.sb = ms.addSourceBuffer(`video/mp4; codecs="${this.codec}"`);
      } catch (e) {
        this.fail('addSourceBuffer: ' + e.message);
        return;
      }
      this.sb.mode = 'segments';
      this.sb.addEventListener('updateend', () => {
        this.steer();
        this.pump();
      });
      this.sb.addEventListener('error', () => this.fail('SourceBuffer error'));
    }
    if (this.sb.updating || !this.queue.length) return;
    if (this.trimDue()) return; // pump again on its updateend
    // Everything waiting in one append: fewer round trips when the page was busy.
    const parts = this.queue;
    this.queue = [];
    const data = parts.length === 1 ? parts[0] : PieFmp4.concat(parts);
    try {
      this.sb.appendBuffer(data);
      this.appends++;
    } catch (e) {
      this.fail('appendBuffer: ' + e.name); // QuotaExceededError, or the source closed under us
    }
  }

  // Drop what has been played, keeping the keyframe the current picture depends on (removing
  // it would remove every frame up to the next keyframe with it).
  trimDue() {
    const b = this.sb.buffered;
    if (!b.length) return false;
    const now = this.video.currentTime;
    let cut = 0;
    for (const k of this.keyTimes) if (k <= now - MSE_TUNE.keepS) cut = k;
    if (cut - b.start(0) < MSE_TUNE.keepS) return false;
    try {
      this.sb.remove(0, cut);
      this.trims++;
      return true;
    } catch (e) {
      return false;
    }
  }

  // After each append: keep the playhead a minimal lead behind the newest frame.
  steer() {
    const v = this.video, b = this.sb && this.sb.buffered;
    if (!b || !b.length || this.lastTimeS === null) return;
    const last = b.length - 1;
    if (b.end(last) < this.lastTimeS) {
      // The newest frame did not make it into the buffer: the SourceBuffer saw a
      // discontinuity (a long gap) and drops frames until a keyframe. Ask for one now.
      this.discontinuities = (this.discontinuities || 0) + 1;
      this.eye.askKeyframe();
      return;
    }
    if (v.currentTime < b.start(last)) {
      v.currentTime = b.start(last); // the first frames, or after a gap: start where media is
    }
    const lead = this.lastTimeS - v.currentTime;
    const t = MSE_TUNE;
    if (lead > t.jumpS) {
      v.currentTime = this.lastTimeS - t.targetLeadS; // decoded from the keyframe before it
      this.jumps++;
    }
    // Behind: faster; well past the newest frame (it came late): slower.
    const rate = lead > t.catchUpS ? 1.25 : lead > t.targetLeadS + 0.01 ? 1.1 : lead < t.targetLeadS - 0.05 ? 0.8 : 1;
    if (v.playbackRate !== rate) v.playbackRate = rate;
    if (v.paused) v.play().catch(() => { /* a muted video may play; a new source cancels this one */ });
  }

  // Each frame the <video> presents goes onto the eye's canvas, with its capture time. One
  // callback chain per player (re-armed by each callback; a new source keeps it).
  watchFrames() {
    const v = this.video;
    const onFrame = (mediaTime) => {
      if (mediaTime === this.lastMediaTime) return;
      this.lastMediaTime = mediaTime;
      const captureUs = this.muxer.captureUsAt(mediaTime);
      if (captureUs === null || !v.videoWidth) return;
      this.presented++;
      this.eye.show(v, captureUs);
    };
    if ('requestVideoFrameCallback' in HTMLVideoElement.prototype) {
      const cb = (now, meta) => {
        v.requestVideoFrameCallback(cb);
        onFrame(meta.mediaTime);
      };
      v.requestVideoFrameCallback(cb);
    } else {
      const loop = () => {
        requestAnimationFrame(loop);
        if (v.readyState >= 2) onFrame(v.currentTime);
      };
      requestAnimationFrame(loop);
    }
  }

  // Figures for the snapshot: how far behind the newest frame the playhead is, and what it did.
  stats() {
    const b = this.sb && this.sb.buffered;
    const v = this.video;
    return {
      leadMs: this.lastTimeS !== null ? Math.round((this.lastTimeS - v.currentTime) * 1000) : null,
      discontinuities: this.discontinuities || 0,
      bufferedS: b && b.length ? Math.round((b.end(b.length - 1) - b.start(0)) * 10) / 10 : 0,
      rate: v.playbackRate, paused: v.paused, presented: this.presented,
      jumps: this.jumps, trims: this.trims, errors: this.errors, opens: this.opens, appends: this.appends, queued: this.queue.length,
      updating: !!(this.sb && this.sb.updating), source: this.ms ? this.ms.readyState : null, ready: v.readyState,
      ranges: b ? Array.from({ length: b.length }, (_, i) => [Math.round(b.start(i) * 1000), Math.round(b.end(i) * 1000)]) : [],
      at: Math.round(v.currentTime * 1000),
    };
  }
}
