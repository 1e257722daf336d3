// pieyes viewer: both eyes over WebSocket, decoded with WebCodecs and drawn the moment a frame
// is decoded; without WebCodecs (plain http from another machine) through Media Source
// Extensions instead (mse.js). Wire format: README.md, "Wire format". No build step, no
// dependencies. The control connection is control.js, steering controls.js, overlays
// overlays.js and the view modes layout.js; this file decodes the eyes and wires the page together.
'use strict';

const HEADER_LEN = 32;

// ---- helpers ---------------------------------------------------------------------------

// Codec string (RFC 6381) from the SPS in an Annex-B access unit: avc1.PPCCLL.
function codecFromAnnexB(b) {
  for (let i = 0; i + 4 < b.length; i++) {
    if (b[i] === 0 && b[i + 1] === 0 && b[i + 2] === 1 && (b[i + 3] & 0x1f) === 7 && i + 6 < b.length) {
      const hex = (v) => v.toString(16).padStart(2, '0').toUpperCase();
      return 'avc1.' + hex(b[i + 4]) + hex(b[i + 5]) + hex(b[i + 6]);
    }
  }
  return null;
}

function parseHeader(buf) {
  const v = new DataView(buf);
  if (buf.byteLength < HEADER_LEN || v.getUint8(0) !== 1) return null;
  const hl = v.getUint8(3);
  return {
    eye: v.getUint8(1),
    key: (v.getUint8(2) & 1) !== 0,
    seq: v.getUint32(4, true),
    captureUs: Number(v.getBigUint64(8, true)),
    crop: [v.getUint16(16, true), v.getUint16(18, true), v.getUint16(20, true), v.getUint16(22, true)],
    encodedUs: Number(v.getBigUint64(24, true)),
    payload: new Uint8Array(buf, hl),
  };
}

// How this page plays video: 'WebCodecs' (secure contexts: https, localhost), 'MSE' (Media
// Source Extensions, also on plain http; `?mse` in the URL picks it to compare), or null.
function playPath() {
  const webcodecs = 'VideoDecoder' in window && 'EncodedVideoChunk' in window;
  const mse = typeof MsePlayer !== 'undefined' && MsePlayer.supported();
  if (mse && (!webcodecs || /[?&]mse\b/.test(location.search))) return 'MSE';
  return webcodecs ? 'WebCodecs' : null;
}

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// ---- one eye -----------------------------------------------------------------------------

class Eye {
  constructor(index, figure, control, path) {
    this.index = index;
    this.path = path;
    this.figure = figure;
    this.view = figure.querySelector('.view');
    this.canvas = figure.querySelector('canvas.video');
    this.ctx = this.canvas.getContext('2d', { alpha: false, desynchronized: true });
    this.statsEl = figure.querySelector('.stats');
    this.control = control;
    this.decoder = null;
    this.codec = null;
    this.waitKey = true;
    this.backoff = 250;
    this.server = null; // this eye's entry in the last status
    this.hello = null;
    this.onHelloHook = null; // (eye) => …, after a hello (the picture's size may have changed)
    this.onPaintHook = null; // (eye, frame) => …, after a frame is painted, before it is closed
    const label = document.createElement('span');
    label.className = 'path';
    label.textContent = path || 'no decoder';
    label.title = path === 'MSE' ? 'Media Source Extensions: plays on plain http, a few frames behind WebCodecs'
      : path ? 'WebCodecs: decoded and drawn the moment a frame arrives' : 'this browser has neither WebCodecs nor Media Source Extensions';
    figure.querySelector('figcaption b').after(' ', label);
    this.mse = path === 'MSE' ? new MsePlayer(this) : null;
    this.reset();
    if (!path) this.statsEl.textContent = 'no video decoder in this browser';
    this.connect();
  }

  reset() {
    this.painted = 0;
    this.received = 0;
    this.bytes = 0;
    this.drops = 0;
    this.decodeErrors = 0;
    this.latencies = [];
    this.lastSeq = null;
    this.lastHeader = null;
    this.lastPaint = null; // { seq, captureUs, latencyMs, recvMs, outMs, drawnMs } of the frame on screen
    this.seqOf = new Map(); // capture time → { seq, recvMs }, for frames in the decoder
    this.windowStart = performance.now();
    this.windowPainted = 0;
    this.windowBytes = 0;
    this.fps = 0;
    this.bps = 0;
  }

  connect() {
    // With `--token-scope view` the daemon wants the token to stream (a kept one is sent).
    const token = sessionStorage.getItem('pieyes-token');
    const ws = new WebSocket(wsUrl('/cam' + this.index) + (token ? '?token=' + encodeURIComponent(token) : ''));
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => { this.backoff = 250; };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') this.onText(JSON.parse(ev.data));
      else this.onVideo(ev.data);
    };
    ws.onclose = () => {
      this.figure.classList.add('stale');
      this.closeDecoder();
      if (this.mse) this.mse.reset();
      this.statsEl.textContent = 'disconnected, reconnecting…';
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 3000);
    };
  }

  // Lost our place in the stream: ask the daemon for a keyframe now rather than wait for the
  // next periodic one (up to a GOP away). Like RTCP's picture loss indication; the daemon
  // forces at most one IDR per 500 ms per eye whoever asks, and so do we.
  askKeyframe() {
    const now = performance.now();
    if (this.ws && this.ws.readyState === WebSocket.OPEN && !(now - this.lastAskMs < 500)) {
      this.lastAskMs = now;
      this.keyframesAsked = (this.keyframesAsked || 0) + 1;
      this.ws.send('keyframe');
    }
  }

  onText(msg) {
    if (msg.type === 'hello') this.onHello(msg);
    else if (msg.type === 'status') this.onCameraStatus(msg);
  }

  // The daemon says this eye's camera or encoder is stalled or failing (or well again).
  onCameraStatus(s) {
    this.health = s;
    let el = this.figure.querySelector('.camera-state');
    if (!el) {
      el = document.createElement('span');
      el.className = 'camera-state';
      this.figure.querySelector('figcaption').append(' ', el);
    }
    const bad = [s.camera !== 'ok' ? `camera ${s.camera}` : '', s.encoder !== 'ok' ? `encoder ${s.encoder}` : ''].filter(Boolean);
    el.textContent = bad.length ? '⚠ ' + bad.join(', ') : '';
    this.figure.classList.toggle('stale', bad.length > 0);
  }

  onHello(h) {
    if (this.canvas.width !== h.width || this.canvas.height !== h.height) {
      this.canvas.width = h.width;
      this.canvas.height = h.height;
    }
    this.hello = h;
    this.waitKey = true;
    if (this.mse) this.mse.reset();
    if (this.onHelloHook) this.onHelloHook(this);
  }

  // Width / height of the picture.
  get aspect() {
    return this.canvas.width / this.canvas.height;
  }

  closeDecoder() {
    if (this.decoder && this.decoder.state !== 'closed') this.decoder.close();
    this.decoder = null;
    this.waitKey = true;
    this.seqOf.clear();
  }

  makeDecoder(codec) {
    this.decoder = new VideoDecoder({
      output: (frame) => this.paint(frame),
      error: (e) => {
        this.decodeErrors++;
        console.warn('eye', this.index, 'decoder error', e);
        this.decoder = null; // a closed decoder; the next keyframe makes a new one
        this.waitKey = true;
        this.seqOf.clear();
        this.askKeyframe();
      },
    });
    this.decoder.configure({ codec, optimizeForLatency: true });
    this.codec = codec;
  }

  onVideo(buf) {
    const recvMs = performance.now();
    const h = parseHeader(buf);
    if (!h) return;
    this.received++;
    this.bytes += buf.byteLength;
    this.windowBytes += buf.byteLength;
    if (this.lastSeq !== null && h.seq !== this.lastSeq + 1 && !this.waitKey) this.drops += Math.max(0, h.seq - this.lastSeq - 1);
    this.lastSeq = h.seq;
    if (this.mse) {
      this.seqOf.set(h.captureUs, { seq: h.seq, recvMs });
      if (this.seqOf.size > 64) this.seqOf.delete(this.seqOf.keys().next().value);
      const was = this.mse.errors + this.mse.presented;
      this.waitKey = !this.mse.push(h);
      if (this.waitKey && was > 0) this.askKeyframe(); // lost its place: ask, as below
      else this.lastHeader = h;
      return;
    }
    if (!this.path) return;
    if (this.waitKey && !h.key) {
      // Skipped and still waiting: ask again (askKeyframe allows one per 500 ms). The keyframe
      // asked for last time may have come and been skipped past already; without a new ask
      // this eye would stay frozen until the next periodic keyframe, a GOP away.
      if (this.decoder) this.askKeyframe();
      return;
    }
    if (h.key) {
      const codec = codecFromAnnexB(h.payload);
      // After a skip, frames still queued in the decoder are stale: a new decoder drops them,
      // so the keyframe is not decoded behind them (and skipped past again).
      const stale = this.waitKey && this.decoder && this.decoder.decodeQueueSize > 0;
      if (codec && (!this.decoder || codec !== this.codec || stale)) {
        this.closeDecoder();
        this.makeDecoder(codec);
      }
      this.waitKey = false;
    }
    if (!this.decoder) return;
    // Never let decode work pile up: skip to the next keyframe instead of falling behind.
    if (this.decoder.decodeQueueSize > 3 && !h.key) {
      this.drops++;
      this.waitKey = true;
      this.askKeyframe();
      return;
    }
    this.lastHeader = h;
    if (this.seqOf.size > 64) this.seqOf.clear();
    this.seqOf.set(h.captureUs, { seq: h.seq, recvMs });
    this.decoder.decode(new EncodedVideoChunk({ type: h.key ? 'key' : 'delta', timestamp: h.captureUs, data: h.payload }));
  }

  paint(frame) {
    this.show(frame, frame.timestamp);
    frame.close();
  }

  // Draw a decoded picture (a VideoFrame, or the MSE path's <video>) captured at `captureUs`.
  show(source, captureUs) {
    const outMs = performance.now();
    this.ctx.drawImage(source, 0, 0, this.canvas.width, this.canvas.height);
    const drawnMs = performance.now();
    const lat = (this.control.daemonNowUs() - captureUs) / 1000;
    const sent = this.seqOf.get(captureUs);
    this.seqOf.delete(captureUs);
    // Where the time went (page clock, ms): message received, decoder output, drawn.
    this.lastPaint = {
      seq: sent ? sent.seq : null, captureUs, latencyMs: lat,
      recvMs: sent ? sent.recvMs : null, outMs, drawnMs,
    };
    if (this.onPaintHook) this.onPaintHook(this, source);
    this.figure.classList.remove('stale');
    this.painted++;
    this.windowPainted++;
    this.latencies.push(lat);
    if (this.latencies.length > 300) this.latencies.shift();
  }

  // Once a second: rates over the last window and the stats line. A busy page runs late
  // timers back to back; a window that short would read as "0 fps", so it stays open.
  tick() {
    const now = performance.now();
    const dt = (now - this.windowStart) / 1000;
    if (dt < 0.5) return;
    this.fps = this.windowPainted / dt;
    this.bps = (this.windowBytes * 8) / dt;
    this.windowStart = now;
    this.windowPainted = 0;
    this.windowBytes = 0;
    if (!this.painted) return;
    const s = this.latencies.slice().sort((a, b) => a - b);
    const serverDrops = this.server ? this.server.drops : 0;
    this.statsEl.textContent =
      `${this.fps.toFixed(1)} fps · ${(this.bps / 1e6).toFixed(2)} Mb/s · dropped ${this.drops}` +
      ` (server ${serverDrops}) · latency ${percentile(s, 50).toFixed(0)}/${percentile(s, 95).toFixed(0)} ms p50/p95` +
      (this.mse ? ` · buffer ${this.mse.stats().leadMs} ms` : '') +
      (this.lastHeader ? ` · #${this.lastHeader.seq}` : '');
  }

  // A snapshot for tests and the latency bench.
  snapshot() {
    const s = this.latencies.slice().sort((a, b) => a - b);
    return {
      path: this.path, mse: this.mse ? this.mse.stats() : null,
      painted: this.painted, received: this.received, drops: this.drops, decodeErrors: this.decodeErrors, keyframesAsked: this.keyframesAsked || 0,
      waitingKeyframe: this.waitKey, decodeQueue: this.decoder ? this.decoder.decodeQueueSize : null,
      fps: this.fps, bps: this.bps, codec: this.mse ? this.mse.codec : this.codec,
      latencyP50: percentile(s, 50), latencyP95: percentile(s, 95),
      lastSeq: this.lastHeader ? this.lastHeader.seq : null,
      paintedSeq: this.lastPaint ? this.lastPaint.seq : null, // the camera sequence on screen
      // The daemon's side of this eye, from the last status: frames it dropped and why.
      server: this.server ? { drops: this.server.drops, encoderDrops: this.server.encoder_drops, encodeMs: this.server.encode_ms } : null,
    };
  }
}

// ---- page --------------------------------------------------------------------------------

function setConn(ok) {
  const el = document.getElementById('conn');
  el.textContent = ok ? 'connected' : 'disconnected';
  el.className = 'badge ' + (ok ? 'ok' : 'bad');
}

// Steering rights: with `--token`, this page is view-only until the token is sent (`auth`).
// The token may come from the page's URL fragment (#token=…) or the form; it is kept for
// this tab only (sessionStorage) and sent again after a reconnect.
function setupAuth(control) {
  const fromHash = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (fromHash) {
    sessionStorage.setItem('pieyes-token', decodeURIComponent(fromHash[1]));
    history.replaceState(null, '', location.pathname + location.search); // keep it out of the address bar
  }
  const show = () => {
    const locked = control.tokenRequired && !control.maySteer;
    document.getElementById('auth').hidden = !locked;
    document.getElementById('viewonly-badge').hidden = !locked;
  };
  control.onAuthChange = show;
  document.getElementById('auth-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = document.getElementById('auth-token').value.trim();
    if (t) control.authenticate(t);
  });
  show();
}

// On plain http (not localhost) the page plays through MSE: offer the https link, and say once
// what the browser's certificate warning will mean; after "Got it", a small link in the header.
// Only when the daemon serves https (the hello says; not with `--tls off`).
function offerHttps(layout) {
  if (location.protocol !== 'http:' || window.isSecureContext) return;
  const url = 'https://' + location.host + location.pathname + location.search;
  for (const a of document.querySelectorAll('.https-link')) {
    a.href = url;
    if (!a.textContent) a.textContent = url;
  }
  const banner = document.getElementById('https-hint');
  const badge = document.getElementById('https-badge');
  let seen = false;
  try { seen = localStorage.getItem('pieyes.https-hint') === 'seen'; } catch (e) { /* shown */ }
  banner.hidden = seen;
  badge.hidden = !seen;
  document.getElementById('https-hint-close').addEventListener('click', () => {
    try { localStorage.setItem('pieyes.https-hint', 'seen'); } catch (e) { /* shown again next time */ }
    banner.hidden = true;
    badge.hidden = false;
    layout.apply();
  });
  layout.apply();
}

function main() {
  const path = playPath();
  if (!path) document.getElementById('unsupported').hidden = false;
  const eyes = [];
  let controls = null;
  const control = new Control({
    onConnection: (ok) => {
      setConn(ok);
      if (controls) controls.onConnection(ok);
    },
    onState: (state) => {
      controls.setState(state);
      control.onState(state);
    },
    onEvent: (ev) => controls.onEvent(ev),
    onStatus: (status) => {
      for (const e of eyes) e.server = status.eyes && status.eyes[e.index];
      document.getElementById('clock').textContent =
        `daemon up ${status.uptime_s.toFixed(0)} s · clock offset ±${(control.rttUs / 2000).toFixed(1)} ms`;
    },
  });
  document.querySelectorAll('#eyes .eye').forEach((fig) => eyes.push(new Eye(Number(fig.dataset.eye), fig, control, path)));
  const overlays = new Overlays(eyes, control);
  const layout = new Layout(eyes, overlays);
  let offered = false;
  for (const e of eyes) {
    const hook = e.onHelloHook;
    e.onHelloHook = (eye) => {
      if (hook) hook(eye);
      if (!offered && eye.hello.https) {
        offered = true;
        offerHttps(layout);
      }
    };
  }
  controls = new Controls(control, eyes, layout);
  setInterval(() => {
    for (const e of eyes) e.tick();
    control.pollStatus();
  }, 1000);
  setInterval(() => { if (control.connected) control.syncClock(); }, 1000);
  const latency = new LatencyProbe(eyes, control);
  setupAuth(control);
  window.pieyes = {
    path, eyes, control, controls, layout, overlays, latency,
    snapshot: () => eyes.map((e) => e.snapshot()),
    state: () => controls.state, // the last commanded state the daemon reported
    events: () => controls.events.slice(), // the last event lines received
  };
}

main();
