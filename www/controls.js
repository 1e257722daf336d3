// Steering from the page: drag a view to look around (the picture follows the pointer), wheel
// or pinch to zoom, keys, sliders, vergence, flips, pause and save — all as control-language
// commands over /control (README.md, "Control language"). With "link eyes" on (the default)
// gestures, keys and the sliders act on `both` eyes. The panel follows the commanded state the
// daemon reports (`event state {…}`), whoever changed it, except for a slider the user holds.
'use strict';

const SEND_EVERY_MS = 50; // gestures send at most this often
const GLIDE_MS = 80; // `over` of gesture and slider commands: smooth, and done before the next
const CENTRE_GLIDE_MS = 250;
const KEY_STEP = 0.1; // an arrow key looks this fraction of the view further
const ZOOM_STEP = 1.25; // + and − zoom by this factor
const WHEEL_ZOOM_PER_PX = 0.002; // zoom factor e^(−k·deltaY) per wheel step
const PINCH_WHEEL_ZOOM_PER_PX = 0.01; // a trackpad pinch arrives as a ctrl+wheel with small deltas
const HOLD_MS = 800; // a slider the user moved ignores the daemon's state this long after
const ZOOM_INTENT_MS = 600; // successive wheel steps build on the zoom asked for, not the last reported
const MAX_IN_FLIGHT = 6; // commands without a reply yet before gestures wait and accumulate

// A number for a command: plain decimal, at most 5 places (never "1e-7").
function cmdNum(v) {
  const s = v.toFixed(5).replace(/\.?0+$/, '');
  return s === '-0' ? '0' : s;
}

class Controls {
  constructor(control, eyes, layout) {
    this.control = control;
    this.eyes = eyes;
    this.layout = layout;
    this.state = null; // the last commanded state reported by the daemon
    this.events = []; // the last event lines (other than crop), newest last
    this.lastCrop = eyes.map(() => null); // fields of each eye's last `event crop`
    this.feedback = { text: '', ok: true, at: 0 };
    this.acc = new Map(); // target → commands waiting for the next send
    this.verge = null;
    this.timer = null;
    this.lastSend = 0;
    this.zoomIntent = new Map(); // target → { z, t }
    this.pointers = new Map(); // pointerId → { eye, x, y }
    this.pinch = null;
    this.activeEye = 0;
    this.sent = 0; // commands sent by gestures, keys and sliders (for tests)

    this.linkBox = document.getElementById('link');
    this.linkBox.addEventListener('change', () => this.setLinked(this.linkBox.checked));
    this.bindViews();
    this.bindKeys();
    this.bindSliders();
    this.bindButtons();
    this.setLinked(this.linkBox.checked);
    this.render();
  }

  get linked() {
    return this.linkBox.checked;
  }

  setLinked(on) {
    this.linkBox.checked = on;
    document.body.classList.toggle('linked', on);
    for (const s of this.sliders) if (s.target !== 'both' && s.axis !== 'verge') s.input.disabled = on;
    this.setActive(this.activeEye);
  }

  // The eye keys steer when the eyes are not linked (the last one touched).
  setActive(i) {
    this.activeEye = i;
    for (const e of this.eyes) e.figure.classList.toggle('active', !this.linked && e.index === i);
  }

  target(eyeIndex) {
    return this.linked ? 'both' : String(eyeIndex);
  }

  eyeState(i) {
    return this.state && this.state.eyes && this.state.eyes[i];
  }

  // ---- sending ---------------------------------------------------------------------------

  entry(t) {
    let a = this.acc.get(t);
    if (!a) {
      a = { dx: 0, dy: 0, look: null, zoom: null };
      this.acc.set(t, a);
    }
    return a;
  }

  queueMove(t, dx, dy) {
    if (!dx && !dy) return;
    const a = this.entry(t);
    a.dx += dx;
    a.dy += dy;
    this.schedule();
  }

  queueLook(t, x, y) {
    const a = this.entry(t);
    a.look = { x, y };
    a.dx = a.dy = 0;
    this.schedule();
  }

  queueZoom(t, z) {
    this.entry(t).zoom = z;
    this.zoomIntent.set(t, { z, t: performance.now() });
    this.schedule();
  }

  queueVerge(d) {
    this.verge = d;
    this.schedule();
  }

  // Leading and trailing throttle: the first change goes at once, then one send per period.
  schedule() {
    if (this.timer) return;
    const wait = Math.max(0, this.lastSend + SEND_EVERY_MS - performance.now());
    this.timer = setTimeout(() => this.flush(), wait);
  }

  flush() {
    this.timer = null;
    if (!this.control.connected) {
      this.acc.clear();
      this.verge = null;
      return;
    }
    if (this.control.inFlight > MAX_IN_FLIGHT) {
      this.timer = setTimeout(() => this.flush(), SEND_EVERY_MS); // behind: keep accumulating
      return;
    }
    const over = ` over ${GLIDE_MS}`;
    for (const [t, a] of this.acc) {
      if (a.zoom !== null) this.send(`zoom ${t} ${cmdNum(a.zoom)}${over}`);
      if (a.look) this.send(`look ${t} ${cmdNum(a.look.x)} ${cmdNum(a.look.y)}${over}`);
      if (a.dx || a.dy) this.send(`move ${t} ${cmdNum(a.dx)} ${cmdNum(a.dy)}${over}`);
    }
    if (this.verge !== null) this.send(`verge ${cmdNum(this.verge)}${over}`);
    this.acc.clear();
    this.verge = null;
    this.lastSend = performance.now();
  }

  // A gesture's command: only errors are worth showing.
  send(cmd) {
    this.sent++;
    this.control.send(cmd, (reply) => {
      if (!reply.startsWith('ok')) this.showFeedback(`${cmd.split(' ')[0]}: ${reply.replace(/^err \S+ /, '')}`, false);
    });
  }

  // A button's command: its reply is shown briefly either way.
  act(cmd, okText) {
    return this.control.command(cmd).then((reply) => {
      const ok = reply.startsWith('ok');
      const failed = () => `${cmd.split(' ')[0]} failed: ${reply.replace(/^err \S+ /, '')}`;
      this.showFeedback(ok ? (typeof okText === 'function' ? okText(reply) : okText || reply) : failed(), ok);
      return reply;
    });
  }

  showFeedback(text, ok) {
    const el = document.getElementById('feedback');
    el.textContent = (ok ? '✓ ' : '✗ ') + text;
    el.title = text;
    el.className = ok ? 'ok' : 'err';
    this.feedback = { text, ok, at: Date.now() };
    clearTimeout(this.feedbackTimer);
    this.feedbackTimer = setTimeout(() => { el.textContent = ''; el.className = ''; }, ok ? 2500 : 5000);
  }

  // ---- units -------------------------------------------------------------------------------

  // A displacement in CSS pixels on eye i's view → gaze units: the crop moves by the sensor
  // pixels the view shows per CSS pixel, and gaze ±1 spans (sensor − crop) / 2 each way.
  pxToGaze(i, dxPx, dyPx) {
    const s = this.eyeState(i), hello = this.eyes[i].hello, box = this.layout.boxes[i];
    if (!s || !hello || !box || box.w <= 0 || box.h <= 0) return { x: 0, y: 0 };
    const [, , cw, ch] = s.crop, [, , sw, sh] = hello.sensor;
    const rx = (sw - cw) / 2, ry = (sh - ch) / 2;
    return {
      x: rx >= 1 ? (dxPx * cw) / box.w / rx : 0,
      y: ry >= 1 ? (dyPx * ch) / box.h / ry : 0,
    };
  }

  maxZoom(i) {
    const s = this.eyeState(i);
    return (s && s.max_zoom) || 8;
  }

  // The zoom to build on: the one just asked for while a gesture lasts, else the reported one.
  currentZoom(t, i) {
    const it = this.zoomIntent.get(t);
    if (it && performance.now() - it.t < ZOOM_INTENT_MS) return it.z;
    const s = this.eyeState(i);
    return s ? s.zoom : 1;
  }

  zoomTo(i, z) {
    const t = this.target(i);
    this.queueZoom(t, Math.min(this.maxZoom(i), Math.max(1, z)));
  }

  zoomBy(i, factor) {
    this.zoomTo(i, this.currentZoom(this.target(i), i) * factor);
  }

  centre(i) {
    const t = this.target(i);
    this.acc.delete(t);
    this.zoomIntent.set(t, { z: 1, t: performance.now() });
    this.act(`zoom ${t} 1 over ${CENTRE_GLIDE_MS}`, 'centred');
    this.act(`look ${t} 0 0 over ${CENTRE_GLIDE_MS}`, 'centred');
  }

  // ---- the views: drag, wheel, pinch -------------------------------------------------------

  bindViews() {
    for (const eye of this.eyes) {
      const v = eye.view, i = eye.index;
      v.addEventListener('pointerdown', (ev) => this.pointerDown(i, ev));
      v.addEventListener('pointermove', (ev) => this.pointerMove(i, ev));
      for (const type of ['pointerup', 'pointercancel', 'lostpointercapture']) {
        v.addEventListener(type, (ev) => this.pointerUp(i, ev));
      }
      v.addEventListener('wheel', (ev) => this.wheel(i, ev), { passive: false });
    }
  }

  pointersOn(i) {
    return [...this.pointers.values()].filter((p) => p.eye === i);
  }

  pointerDown(i, ev) {
    if (this.layout.mode === 'vr') return; // a tap leaves VR (layout.js)
    if (this.layout.isInset(i)) {
      ev.preventDefault();
      this.layout.setMode('one', i); // the inset becomes the large eye
      return;
    }
    if (ev.pointerType === 'mouse' && ev.button !== 0) return;
    ev.preventDefault(); // no text selection or native drag; focus the view for the keys instead
    this.eyes[i].view.focus({ preventScroll: true });
    this.eyes[i].view.setPointerCapture(ev.pointerId);
    this.setActive(i);
    this.pointers.set(ev.pointerId, { eye: i, x: ev.clientX, y: ev.clientY });
    this.eyes[i].view.classList.add('dragging');
    const on = this.pointersOn(i);
    if (on.length === 2) {
      const d = Math.hypot(on[0].x - on[1].x, on[0].y - on[1].y);
      this.pinch = { eye: i, d0: Math.max(d, 1), z0: this.currentZoom(this.target(i), i) };
    }
  }

  pointerMove(i, ev) {
    const p = this.pointers.get(ev.pointerId);
    if (!p) return;
    const dx = ev.clientX - p.x, dy = ev.clientY - p.y;
    p.x = ev.clientX;
    p.y = ev.clientY;
    const on = this.pointersOn(i);
    if (on.length >= 2) {
      if (this.pinch && this.pinch.eye === i) {
        const d = Math.hypot(on[0].x - on[1].x, on[0].y - on[1].y);
        this.zoomTo(i, (this.pinch.z0 * d) / this.pinch.d0);
      }
      return;
    }
    // The picture follows the pointer: dragging right looks left.
    const g = this.pxToGaze(i, dx, dy);
    this.queueMove(this.target(i), -g.x, -g.y);
  }

  pointerUp(i, ev) {
    if (!this.pointers.delete(ev.pointerId)) return;
    if (this.pointersOn(i).length < 2 && this.pinch && this.pinch.eye === i) this.pinch = null;
    if (!this.pointersOn(i).length) this.eyes[i].view.classList.remove('dragging');
  }

  wheel(i, ev) {
    if (this.layout.mode === 'vr' || this.layout.isInset(i)) return;
    ev.preventDefault();
    this.setActive(i);
    const px = ev.deltaY * (ev.deltaMode === 1 ? 16 : ev.deltaMode === 2 ? 400 : 1);
    const k = ev.ctrlKey ? PINCH_WHEEL_ZOOM_PER_PX : WHEEL_ZOOM_PER_PX;
    this.zoomBy(i, Math.exp(-px * k));
  }

  // ---- keys ----------------------------------------------------------------------------------

  bindKeys() {
    window.addEventListener('keydown', (ev) => {
      if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      // Leave keys to whatever has focus and uses them: text fields, sliders (arrows), selects,
      // and Space/Enter on buttons and checkboxes.
      const el = ev.target;
      const type = el && el.tagName === 'INPUT' ? (el.type || 'text') : '';
      if (el && (el.isContentEditable || /^(SELECT|TEXTAREA)$/.test(el.tagName))) return;
      if (type && type !== 'checkbox' && type !== 'radio' && type !== 'button') return;
      if ((type || (el && el.tagName === 'BUTTON')) && (ev.key === ' ' || ev.key === 'Enter')) return;
      if (this.layout.mode === 'vr') return;
      const i = this.layout.mode === 'one' ? this.layout.large : this.activeEye;
      const box = this.layout.boxes[i] || { w: 0, h: 0 };
      const look = (sx, sy) => {
        const g = this.pxToGaze(i, sx * KEY_STEP * box.w, sy * KEY_STEP * box.h);
        this.queueMove(this.target(i), g.x, g.y);
      };
      switch (ev.key.length === 1 ? ev.key.toLowerCase() : ev.key) {
        case 'ArrowLeft': case 'a': look(-1, 0); break;
        case 'ArrowRight': case 'd': look(1, 0); break;
        case 'ArrowUp': case 'w': look(0, -1); break;
        case 'ArrowDown': case 's': look(0, 1); break;
        case '+': case '=': this.zoomBy(i, ZOOM_STEP); break;
        case '-': case '_': case '−': this.zoomBy(i, 1 / ZOOM_STEP); break;
        case '0': this.centre(i); break;
        case ' ': this.togglePause(); break;
        case 'l': this.setLinked(!this.linked); break;
        default: return;
      }
      ev.preventDefault();
    });
  }

  // ---- the panel -----------------------------------------------------------------------------

  bindSliders() {
    this.sliders = [];
    for (const group of document.querySelectorAll('#panel .group')) {
      for (const input of group.querySelectorAll('input[type=range]')) {
        const s = {
          input, group, target: group.dataset.target, axis: input.dataset.axis,
          out: group.querySelector(`output[data-for="${input.dataset.axis}"]`), held: false, heldUntil: 0,
        };
        this.sliders.push(s);
        input.addEventListener('pointerdown', () => { s.held = true; s.heldUntil = Infinity; });
        input.addEventListener('input', () => this.sliderInput(s));
        input.addEventListener('change', () => this.release(s));
      }
    }
    const releaseAll = () => { for (const s of this.sliders) if (s.held) this.release(s); };
    window.addEventListener('pointerup', releaseAll);
    window.addEventListener('pointercancel', releaseAll);
  }

  release(s) {
    s.held = false;
    s.heldUntil = performance.now() + HOLD_MS;
    clearTimeout(this.renderTimer);
    this.renderTimer = setTimeout(() => this.render(), HOLD_MS + 20);
  }

  sliderValue(group, axis) {
    const input = group.querySelector(`input[data-axis="${axis}"]`);
    return Number(input.value);
  }

  zoomFromSlider(v, maxZ) {
    return Math.pow(maxZ, v / 1000);
  }

  sliderInput(s) {
    if (!s.held) s.heldUntil = performance.now() + HOLD_MS;
    const v = Number(s.input.value);
    const ref = s.target === 'both' ? 0 : Number(s.target);
    if (s.axis === 'verge') {
      this.queueVerge(v);
    } else if (s.axis === 'zoom') {
      const z = this.zoomFromSlider(v, this.maxZoom(ref));
      this.queueZoom(s.target, z);
    } else {
      this.queueLook(s.target, this.sliderValue(s.group, 'x'), this.sliderValue(s.group, 'y'));
    }
    this.showSliderValue(s, s.axis === 'zoom' ? this.zoomFromSlider(v, this.maxZoom(ref)) : v);
  }

  showSliderValue(s, v) {
    s.out.textContent = s.axis === 'zoom' ? `${v.toFixed(2)}×` : s.axis === 'verge' ? v.toFixed(3) : v.toFixed(2);
  }

  bindButtons() {
    document.getElementById('pause').addEventListener('click', () => this.togglePause());
    document.getElementById('save').addEventListener('click', () =>
      this.act('save', (reply) => {
        const m = /path=(.*)$/.exec(reply);
        return 'saved as defaults' + (m ? ` (${m[1]})` : '');
      }));
    document.getElementById('calibrate').addEventListener('click', () => this.calibrate());
    document.getElementById('calib-apply').addEventListener('click', () =>
      this.act('calibrate apply', (reply) => {
        const f = parseFields(reply.slice(3));
        document.getElementById('calibration').hidden = true;
        return `eye 1 offset ${f.offset} applied and saved${f.clamped ? ' (clamped at the sensor edge: zoom in for room)' : ''}`;
      }));
    document.getElementById('centre').addEventListener('click', () =>
      this.centre(this.layout.mode === 'one' ? this.layout.large : this.activeEye));
    for (const group of document.querySelectorAll('#panel .group[data-target="0"], #panel .group[data-target="1"]')) {
      const i = Number(group.dataset.target);
      for (const b of group.querySelectorAll('button[data-flip]')) {
        b.addEventListener('click', () => this.toggleFlip(i, b.dataset.flip));
      }
    }
  }

  // `calibrate`: the daemon compares the two eyes' pictures and proposes eye 1's offset; the
  // result is shown with an Apply button, and the anaglyph overlay turns on to judge by eye.
  calibrate() {
    const box = document.getElementById('calibration'), out = document.getElementById('calib-result');
    const button = document.getElementById('calibrate');
    button.disabled = true;
    return this.act('calibrate', (reply) => {
      const f = parseFields(reply.slice(3));
      const dy = Number(f.dy), conf = Number(f.confidence);
      const where = Math.abs(dy) < 0.5 ? 'aligned' : `${Math.abs(dy).toFixed(1)} px ${dy > 0 ? 'low' : 'high'}`;
      this.calibration = { offset: f.offset, dy, rotation: Number(f.rotation), confidence: conf };
      out.textContent = `eye 1 ${where}, turned ${Number(f.rotation).toFixed(2)}°, confidence ${conf.toFixed(2)} → offset ${f.offset}`;
      box.hidden = false;
      return `calibrate: proposed offset ${f.offset} for eye 1`;
    }).finally(() => { button.disabled = false; });
  }

  togglePause() {
    const paused = this.state ? this.state.paused : false;
    this.act(paused ? 'resume' : 'pause', paused ? 'capture resumed' : 'capture paused');
  }

  // Flip is a property of one camera: eye N's buttons flip eye N alone, linked or not.
  toggleFlip(i, axis) {
    const s = this.eyeState(i);
    const cur = s ? s.flip : 'none';
    let h = cur.includes('h'), v = cur.includes('v');
    if (axis === 'h') h = !h;
    else v = !v;
    const name = (h ? 'h' : '') + (v ? 'v' : '') || 'none';
    this.act(`flip ${i} ${name}`, `eye ${i} flip ${name}`);
  }

  // ---- what the daemon reports ------------------------------------------------------------

  setState(state) {
    this.state = state;
    this.render();
  }

  onConnection(ok) {
    if (!ok) {
      this.acc.clear();
      this.showFeedback('not connected to the daemon; reconnecting…', false);
    }
  }

  onEvent(ev) {
    if (ev.kind === 'crop') {
      const i = Number(ev.fields.eye);
      if (i >= 0 && i < this.lastCrop.length) this.lastCrop[i] = ev.fields;
      this.renderReadouts();
      return;
    }
    this.events.push(ev.line);
    if (this.events.length > 20) this.events.shift();
    const f = ev.fields;
    const text = {
      viewer: () => `viewer ${f.joined ? 'joined' : 'left'} eye ${f.eye} (${f.viewers} watching)`,
      saved: () => `defaults saved to ${ev.line.slice(ev.line.indexOf('path=') + 5)}`, // a path may hold spaces
      flip: () => `eye ${f.eye} flipped ${f.flip}`,
      pause: () => 'capture paused',
      resume: () => 'capture resumed',
      health: () => `eye ${f.eye}: camera ${f.camera || '?'}, encoder ${f.encoder || '?'}`,
    }[ev.kind];
    const el = document.getElementById('event-line');
    el.textContent = `${new Date().toLocaleTimeString()} · ${text ? text() : ev.line}`;
  }

  render() {
    const st = this.state;
    const now = performance.now();
    if (st && st.eyes && st.eyes.length) {
      const eyes = st.eyes;
      const mean = (k) => eyes.reduce((a, e) => a + e[k], 0) / eyes.length;
      for (const s of this.sliders) {
        if (s.held || now < s.heldUntil) continue; // the user has it
        const e = s.target === 'both' ? null : eyes[Number(s.target)];
        if (s.target !== 'both' && !e) continue;
        let v;
        if (s.axis === 'verge') v = st.verge;
        else if (s.axis === 'zoom') v = e ? e.zoom : Math.exp(eyes.reduce((a, x) => a + Math.log(x.zoom), 0) / eyes.length);
        else v = e ? e[s.axis] : mean(s.axis);
        const maxZ = e ? e.max_zoom : Math.min(...eyes.map((x) => x.max_zoom));
        s.input.value = s.axis === 'zoom' ? String(maxZ > 1 ? Math.round((1000 * Math.log(v)) / Math.log(maxZ)) : 0) : String(v);
        this.showSliderValue(s, v);
      }
      for (const group of document.querySelectorAll('#panel .group[data-target="0"], #panel .group[data-target="1"]')) {
        const e = eyes[Number(group.dataset.target)];
        group.classList.toggle('absent', !e);
        for (const b of group.querySelectorAll('button[data-flip]')) {
          b.setAttribute('aria-pressed', String(!!e && e.flip.includes(b.dataset.flip)));
          b.disabled = !e;
        }
      }
      const pauseBtn = document.getElementById('pause');
      pauseBtn.textContent = st.paused ? 'Resume' : 'Pause';
      pauseBtn.classList.toggle('on', st.paused);
      document.getElementById('paused-badge').hidden = !st.paused;
      document.getElementById('eyes').classList.toggle('paused', st.paused);
      document.getElementById('state-line').textContent =
        `${st.paused ? 'paused' : 'capturing'} at ${st.fps} fps · vergence ${st.verge.toFixed(3)}`;
    }
    this.renderReadouts();
    // A slider let go of shows the daemon's value once its hold is over.
    const waiting = this.sliders.filter((s) => !s.held && now < s.heldUntil);
    if (waiting.length) {
      clearTimeout(this.renderTimer);
      this.renderTimer = setTimeout(() => this.render(), Math.max(...waiting.map((s) => s.heldUntil)) - now + 20);
    }
  }

  renderReadouts() {
    for (const group of document.querySelectorAll('#panel .group[data-target="0"], #panel .group[data-target="1"]')) {
      const i = Number(group.dataset.target);
      const e = this.eyeState(i);
      const out = group.querySelector('.readout');
      if (!e) {
        out.textContent = this.state ? 'no camera' : '';
        continue;
      }
      // The commanded crop, and whether frames are captured through it yet.
      const c = this.lastCrop[i];
      const [x, y, w, h] = e.crop;
      let seen = '';
      if (c) seen = c.crop === e.crop.join(',') ? ` · since #${c.seq}` : ' · moving…';
      out.textContent = `crop ${x},${y} ${w}×${h}${e.raw_crop ? ' (raw)' : ''}${seen}`;
    }
  }

  snapshot() {
    return {
      linked: this.linked, activeEye: this.activeEye, sent: this.sent, feedback: { ...this.feedback },
      calibration: this.calibration || null,
      sliders: this.sliders.map((s) => ({ id: s.input.id, target: s.target, axis: s.axis, value: Number(s.input.value), disabled: s.input.disabled })),
    };
  }
}
