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
    // Per eye, where capture→paint went: to the message event, in the decoder, in drawImage.
    this.stages = this.eyes.map(() => ({ toMessage: [], decode: [], draw: [] }));
    this.series = this.eyes.map(() => []); // [daemon clock ms, capture→paint ms] per paint, the last 3000
  }

  sample(eye) {
    const now = performance.now();
    const s = PieStamp.fromCanvas(eye.ctx, eye.canvas.width);
    const i = eye.index;
    if (!s || s.eye !== i) {
      this.unreadable[i]++;
      return;
    }
    const daemonMs = this.control.daemonNowUs() / 1000;
    const toDaemonMs = daemonMs - now; // page clock → daemon clock, ms
    this.lat[i].push(daemonMs - s.captureUs / 1000);
    this.series[i].push([daemonMs, daemonMs - s.captureUs / 1000]);
    if (this.series[i].length > 3000) this.series[i].shift();
    const p = eye.lastPaint;
    if (p && p.recvMs !== null && p.seq === s.sequence) {
      const st = this.stages[i];
      st.toMessage.push(p.recvMs + toDaemonMs - s.captureUs / 1000);
      st.decode.push(p.outMs - p.recvMs);
      st.draw.push(p.drawnMs - p.outMs);
    }
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
        series: this.series[i],
        stages: Object.fromEntries(Object.entries(this.stages[i]).map(([k, v]) => [k, LatencyProbe.summary(v)])),
      })),
      skew: LatencyProbe.summary(this.skew),
    };
  }
}
