// Latency probe: reads the synthetic camera's stamp from each painted frame (the pixels on
// the canvas, not the wire header) and measures capture→paint per eye and the stereo skew
// between the two eyes' displayed frames. On with the "latency probe" chip or `?latency` in
// the URL; `window.pieyes.latency.stats()` gives the figures (the headless bench reads them).
'use strict';

class LatencyProbe {
  constructor(eyes, control) {
    this.eyes = eyes;
    this.control = control;
    this.box = document.getElementById('latency-probe');
    this.enabled = /[?&]latency\b/.test(location.search);
    if (this.box) {
      this.box.checked = this.enabled;
      this.box.addEventListener('change', () => this.setEnabled(this.box.checked));
    }
    for (const e of eyes) {
      const prev = e.onPaintHook;
      e.onPaintHook = (eye, frame) => {
        if (prev) prev(eye, frame);
        if (this.enabled) this.sample(eye);
      };
    }
    this.reset();
  }

  setEnabled(on) {
    this.enabled = on;
    if (on) this.reset();
  }

  reset() {
    this.lat = this.eyes.map(() => []);
    this.unreadable = this.eyes.map(() => 0);
    this.lastSeq = this.eyes.map(() => null);
    this.gaps = this.eyes.map(() => 0);
    this.paintedAt = this.eyes.map(() => new Map()); // sequence → paint time (ms)
    this.skew = [];
  }

  sample(eye) {
    const now = performance.now();
    const s = PieStamp.fromCanvas(eye.ctx, eye.canvas.width);
    const i = eye.index;
    if (!s || s.eye !== i) {
      this.unreadable[i]++;
      return;
    }
    this.lat[i].push((this.control.daemonNowUs() - s.captureUs) / 1000);
    if (this.lastSeq[i] !== null && s.sequence > this.lastSeq[i] + 1) this.gaps[i] += s.sequence - this.lastSeq[i] - 1;
    this.lastSeq[i] = s.sequence;
    this.paintedAt[i].set(s.sequence, now);
    const other = this.paintedAt[1 - i];
    if (other && other.has(s.sequence)) this.skew.push(Math.abs(now - other.get(s.sequence)));
    if (this.paintedAt[i].size > 600) this.paintedAt[i].delete(this.paintedAt[i].keys().next().value);
  }

  static summary(values) {
    const s = values.slice().sort((a, b) => a - b);
    const q = (p) => (s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN);
    return { n: s.length, p50: q(50), p95: q(95), p99: q(99), max: s.length ? s[s.length - 1] : NaN };
  }

  stats() {
    return {
      eyes: this.eyes.map((e, i) => ({
        ...LatencyProbe.summary(this.lat[i]), unreadable: this.unreadable[i], frameGaps: this.gaps[i],
      })),
      skew: LatencyProbe.summary(this.skew),
    };
  }
}
