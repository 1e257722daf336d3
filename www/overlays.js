// Overlays, drawn in the browser on a transparent canvas over each eye's video canvas (the
// daemon does no work for them): centre reticle, crosshair, 3×3 grid, the capture timestamp
// focus peaking and the anaglyph (eye 0 red, eye 1 cyan, over both views: the stereo pair's
// vertical alignment at a glance). Each is a toggle remembered in localStorage. Static overlays are redrawn
// only when the layout or a toggle changes, the timestamp at most ~10 times a second, and
// peaking is computed ~4 times a second from a small copy of the picture just painted.
'use strict';

const OVERLAY_NAMES = ['reticle', 'crosshair', 'grid', 'timestamp', 'peaking', 'anaglyph'];
const OVERLAY_STORE = 'pieyes.overlays';
const TIMESTAMP_EVERY_MS = 100;
const PEAKING_EVERY_MS = 250;
const PEAKING_WIDTH = 320; // the downscaled copy peaking works on, px
const PEAKING_MIN_EDGE = 120; // |Sobel| (0…2040) a luma edge needs to count as sharp
const ANAGLYPH_EVERY_MS = 100;
const ANAGLYPH_WIDTH = 480; // the composite's width, px
const RETICLE_COLOUR = '#ffd23f'; // stands out from a scene's own circles and lines

// CLOCK_MONOTONIC µs → h:mm:ss.mmm (time since the daemon's host booted).
function formatMonotonic(us) {
  const ms = Math.floor(us / 1000);
  const pad = (v, n) => String(v).padStart(n, '0');
  const h = Math.floor(ms / 3600000), m = Math.floor(ms / 60000) % 60, s = Math.floor(ms / 1000) % 60;
  return `${h}:${pad(m, 2)}:${pad(s, 2)}.${pad(ms % 1000, 3)}`;
}

class Overlays {
  constructor(eyes, control) {
    this.eyes = eyes;
    this.control = control;
    this.on = this.load();
    this.layers = eyes.map((e) => {
      const canvas = e.figure.querySelector('canvas.overlay');
      const small = document.createElement('canvas'); // not in the page: peaking's input
      const peak = document.createElement('canvas'); // and its output
      return {
        canvas, ctx: canvas.getContext('2d'), w: 0, h: 0, dpr: 1,
        dirty: true, newFrame: false, lastDraw: 0,
        small, smallCtx: small.getContext('2d', { willReadFrequently: true }),
        peak, peakCtx: peak.getContext('2d'), peakAt: 0, peakReady: false, peakPixels: 0, peakRuns: 0,
        text: '',
      };
    });
    for (const e of eyes) e.onPaintHook = (eye) => this.onPaint(eye);
    // The anaglyph: both eyes' pictures downscaled, eye 0's luma as red, eye 1's as green and
    // blue. Where the eyes agree it is grey; a vertical misalignment shows as red and cyan
    // fringes above and below every horizontal edge.
    this.ana = {
      canvas: document.createElement('canvas'), at: 0, ready: false, runs: 0, misfit: null,
      src: [0, 1].map(() => { const c = document.createElement('canvas'); return { c, ctx: c.getContext('2d', { willReadFrequently: true }) }; }),
    };
    this.ana.ctx = this.ana.canvas.getContext('2d');
    // Calibrating turns the anaglyph on: the result is then checked by eye.
    const calibrate = document.getElementById('calibrate');
    if (calibrate) calibrate.addEventListener('click', () => this.set('anaglyph', true));
    this.toggles = [...document.querySelectorAll('#overlay-toggles input[data-overlay]')];
    for (const input of this.toggles) {
      input.checked = !!this.on[input.dataset.overlay];
      input.addEventListener('change', () => this.set(input.dataset.overlay, input.checked));
    }
    const loop = () => {
      this.frame();
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  }

  load() {
    const on = { reticle: true, crosshair: false, grid: false, timestamp: false, peaking: false, anaglyph: false };
    try {
      const saved = JSON.parse(localStorage.getItem(OVERLAY_STORE) || '{}');
      for (const k of OVERLAY_NAMES) if (typeof saved[k] === 'boolean') on[k] = saved[k];
    } catch (e) { /* private mode or garbage: defaults */ }
    return on;
  }

  set(name, value) {
    if (!OVERLAY_NAMES.includes(name)) return;
    this.on[name] = !!value;
    for (const input of this.toggles) if (input.dataset.overlay === name) input.checked = !!value;
    try { localStorage.setItem(OVERLAY_STORE, JSON.stringify(this.on)); } catch (e) { /* not remembered */ }
    for (const l of this.layers) {
      l.dirty = true;
      if (name === 'peaking' && !value) l.peakReady = false;
    }
    if (name === 'anaglyph' && !value) this.ana.ready = false;
  }

  // The layout gives each eye's view size in CSS pixels (0 when hidden).
  resize(index, cssW, cssH) {
    const l = this.layers[index];
    const dpr = Math.min(window.devicePixelRatio || 1, 2);
    const pw = Math.round(cssW * dpr), ph = Math.round(cssH * dpr);
    if (l.canvas.width !== pw || l.canvas.height !== ph) {
      l.canvas.width = pw;
      l.canvas.height = ph;
    }
    l.w = cssW;
    l.h = cssH;
    l.dpr = dpr;
    l.dirty = true;
  }

  onPaint(eye) {
    const l = this.layers[eye.index];
    l.newFrame = true;
    const now = performance.now();
    if (this.on.peaking && l.w > 0 && now - l.peakAt >= PEAKING_EVERY_MS) {
      l.peakAt = now;
      this.peaking(l, eye.canvas);
    }
  }

  // Focus peaking: luma of a downscaled copy, Sobel gradient, the strongest edges marked. The
  // copy comes from the eye's canvas, already RGB: drawing the VideoFrame again would convert
  // the whole frame from YUV a second time (~5 ms instead of ~1 for the whole run).
  peaking(l, source) {
    const fw = source.width, fh = source.height;
    const sw = Math.min(PEAKING_WIDTH, fw), sh = Math.max(1, Math.round((sw * fh) / fw));
    if (l.small.width !== sw || l.small.height !== sh) {
      l.small.width = l.peak.width = sw;
      l.small.height = l.peak.height = sh;
    }
    l.smallCtx.drawImage(source, 0, 0, sw, sh);
    const rgba = l.smallCtx.getImageData(0, 0, sw, sh).data;
    const n = sw * sh;
    const y = new Uint8Array(n);
    for (let i = 0, j = 0; i < n; i++, j += 4) y[i] = (rgba[j] * 77 + rgba[j + 1] * 150 + rgba[j + 2] * 29) >> 8;
    const mag = new Uint16Array(n);
    const hist = new Uint32Array(256);
    for (let r = 1; r < sh - 1; r++) {
      for (let c = 1, i = r * sw + 1; c < sw - 1; c++, i++) {
        const a = y[i - sw - 1], b = y[i - sw], d = y[i - sw + 1];
        const e = y[i - 1], f = y[i + 1];
        const g = y[i + sw - 1], h = y[i + sw], k = y[i + sw + 1];
        const gx = d + 2 * f + k - a - 2 * e - g;
        const gy = g + 2 * h + k - a - 2 * b - d;
        const m = Math.abs(gx) + Math.abs(gy);
        mag[i] = m;
        hist[m >> 3]++;
      }
    }
    // Mark the top 8 % of edges, and only edges that are sharp in absolute terms.
    let threshold = PEAKING_MIN_EDGE, acc = 0;
    for (let b = 255; b >= 0; b--) {
      acc += hist[b];
      if (acc > n * 0.08) {
        threshold = Math.max(PEAKING_MIN_EDGE, b << 3);
        break;
      }
    }
    const out = l.peakCtx.createImageData(sw, sh);
    const o = out.data;
    let marked = 0;
    for (let i = 0; i < n; i++) {
      if (mag[i] >= threshold) {
        const j = i * 4;
        o[j] = 255; o[j + 1] = 40; o[j + 2] = 220; o[j + 3] = 255;
        marked++;
      }
    }
    l.peakCtx.putImageData(out, 0, 0);
    l.peakReady = true;
    l.peakPixels = marked;
    l.peakRuns++;
    l.dirty = true;
  }

  // Compose the anaglyph from the two eyes' canvases (already RGB, as peaking does).
  anaglyph() {
    const a = this.ana;
    const [c0, c1] = this.eyes.map((e) => e.canvas);
    if (!c0 || !c1 || !c0.width || !c1.width) return;
    const sw = Math.min(ANAGLYPH_WIDTH, c0.width), sh = Math.max(1, Math.round((sw * c0.height) / c0.width));
    if (a.canvas.width !== sw || a.canvas.height !== sh) {
      a.canvas.width = sw; a.canvas.height = sh;
      for (const s of a.src) { s.c.width = sw; s.c.height = sh; }
    }
    const px = [c0, c1].map((c, i) => {
      a.src[i].ctx.drawImage(c, 0, 0, sw, sh);
      return a.src[i].ctx.getImageData(0, 0, sw, sh).data;
    });
    const out = a.ctx.createImageData(sw, sh);
    const o = out.data;
    let diff = 0;
    for (let j = 0; j < o.length; j += 4) {
      const y0 = (px[0][j] * 77 + px[0][j + 1] * 150 + px[0][j + 2] * 29) >> 8;
      const y1 = (px[1][j] * 77 + px[1][j + 1] * 150 + px[1][j + 2] * 29) >> 8;
      o[j] = y0; o[j + 1] = y1; o[j + 2] = y1; o[j + 3] = 255;
      diff += Math.abs(y0 - y1);
    }
    a.ctx.putImageData(out, 0, 0);
    a.misfit = diff / (sw * sh); // mean |eye 0 − eye 1| luma (tests, and a number to watch)
    a.ready = true;
    a.runs++;
    for (const l of this.layers) l.dirty = true;
  }

  frame() {
    const now = performance.now();
    if (this.on.anaglyph && now - this.ana.at >= ANAGLYPH_EVERY_MS) {
      this.ana.at = now;
      this.anaglyph();
    }
    for (let i = 0; i < this.layers.length; i++) {
      const l = this.layers[i];
      const stampDue = this.on.timestamp && l.newFrame && now - l.lastDraw >= TIMESTAMP_EVERY_MS;
      if (!l.dirty && !stampDue) continue;
      if (l.w <= 0 || l.h <= 0) continue;
      this.draw(l, this.eyes[i]);
      l.dirty = false;
      l.newFrame = false;
      l.lastDraw = now;
    }
  }

  draw(l, eye) {
    const { ctx, w, h } = l;
    ctx.setTransform(l.dpr, 0, 0, l.dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    if (this.on.peaking && l.peakReady) {
      ctx.imageSmoothingEnabled = true;
      ctx.globalAlpha = 0.9;
      ctx.drawImage(l.peak, 0, 0, w, h);
      ctx.globalAlpha = 1;
    }
    const lines = (path, width = 1, dash = [], colour = 'rgba(255,255,255,0.85)') => {
      ctx.beginPath();
      path();
      ctx.setLineDash(dash);
      ctx.lineWidth = width + 2;
      ctx.strokeStyle = 'rgba(0,0,0,0.5)';
      ctx.stroke();
      ctx.lineWidth = width;
      ctx.strokeStyle = colour;
      ctx.stroke();
      ctx.setLineDash([]);
    };
    const px = (v) => Math.round(v) + 0.5; // crisp 1 px lines
    if (this.on.anaglyph && this.ana.ready) {
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(this.ana.canvas, 0, 0, w, h);
      // Level guides every tenth of the height: a misaligned pair's fringes cross them.
      lines(() => {
        for (let k = 1; k < 10; k++) { ctx.moveTo(0, px((h * k) / 10)); ctx.lineTo(w, px((h * k) / 10)); }
      }, 1, [2, 6], 'rgba(255,255,255,0.5)');
    }
    if (this.on.grid) {
      lines(() => {
        for (const f of [1 / 3, 2 / 3]) {
          ctx.moveTo(px(w * f), 0); ctx.lineTo(px(w * f), h);
          ctx.moveTo(0, px(h * f)); ctx.lineTo(w, px(h * f));
        }
      }, 1, [6, 4]);
    }
    if (this.on.crosshair) {
      lines(() => {
        ctx.moveTo(px(w / 2), 0); ctx.lineTo(px(w / 2), h);
        ctx.moveTo(0, px(h / 2)); ctx.lineTo(w, px(h / 2));
      });
    }
    if (this.on.reticle) {
      const cx = w / 2, cy = h / 2, r = Math.max(8, Math.min(w, h) * 0.06), gap = r * 0.45;
      lines(() => {
        ctx.moveTo(cx + r, cy);
        ctx.arc(cx, cy, r, 0, 2 * Math.PI);
        for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {
          ctx.moveTo(cx + dx * gap, cy + dy * gap);
          ctx.lineTo(cx + dx * r * 1.6, cy + dy * r * 1.6);
        }
      }, 2, [], RETICLE_COLOUR);
      ctx.fillStyle = RETICLE_COLOUR;
      ctx.fillRect(cx - 1.5, cy - 1.5, 3, 3);
    }
    if (this.on.timestamp) this.drawTimestamp(l, eye);
  }

  drawTimestamp(l, eye) {
    const { ctx, w, h } = l;
    const p = eye.lastPaint;
    const first = p ? `${formatMonotonic(p.captureUs)}${p.seq !== null ? ' #' + p.seq : ''}` : 'no frame yet';
    const second = p ? `latency ${p.latencyMs.toFixed(0)} ms` : '';
    l.text = first + (second ? ' · ' + second : '');
    const size = Math.round(Math.max(10, Math.min(14, w / 34)));
    ctx.font = `${size}px ui-monospace, monospace`;
    ctx.textBaseline = 'top';
    const pad = Math.round(size * 0.45), lh = Math.round(size * 1.3);
    const tw = Math.max(ctx.measureText(first).width, ctx.measureText(second).width);
    const boxH = pad * 2 + lh * (second ? 2 : 1);
    const x = 6, y = h - boxH - 6;
    ctx.fillStyle = 'rgba(0,0,0,0.6)';
    ctx.fillRect(x, y, tw + pad * 2, boxH);
    ctx.fillStyle = '#fff';
    ctx.fillText(first, x + pad, y + pad);
    if (second) ctx.fillText(second, x + pad, y + pad + lh);
  }

  snapshot() {
    return {
      on: { ...this.on },
      layers: this.layers.map((l) => ({
        w: l.w, h: l.h, canvas: [l.canvas.width, l.canvas.height], text: l.text,
        peakRuns: l.peakRuns, peakPixels: l.peakPixels,
      })),
      anaglyph: { runs: this.ana.runs, misfit: this.ana.misfit },
    };
  }
}
