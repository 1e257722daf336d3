// View modes: both eyes side by side (the default), one eye large (the other as a small inset
// or hidden), and VR: both eyes edge to edge in fullscreen landscape for a phone in a headset.
// Each view is sized here to the picture's aspect ratio so the overlay canvas lies exactly on
// the video; the mode (not VR) is remembered in localStorage.
'use strict';

const VIEW_STORE = 'pieyes.view';
const WIDE_QUERY = '(min-width: 900px)'; // the controls sit beside the eyes (style.css)
const GAP = 8;

class Layout {
  constructor(eyes, overlays) {
    this.eyes = eyes;
    this.overlays = overlays;
    this.main = document.getElementById('eyes');
    this.hint = document.getElementById('vr-hint');
    this.wide = window.matchMedia(WIDE_QUERY);
    this.mode = 'sbs';
    this.large = 0;
    this.inset = true;
    this.before = null; // the mode VR returns to
    this.fullscreen = false;
    this.wakeLock = null;
    this.boxes = [];
    try {
      const v = JSON.parse(localStorage.getItem(VIEW_STORE) || '{}');
      if (v.mode === 'sbs' || v.mode === 'one') this.mode = v.mode;
      if (v.large === 0 || v.large === 1) this.large = v.large;
      if (typeof v.inset === 'boolean') this.inset = v.inset;
    } catch (e) { /* defaults */ }

    this.buttons = [...document.querySelectorAll('#modes button')];
    for (const b of this.buttons) {
      b.addEventListener('click', () => {
        if (b.dataset.mode === 'vr') this.enterVR();
        else this.setMode(b.dataset.mode, b.dataset.large === undefined ? this.large : Number(b.dataset.large));
      });
    }
    this.insetBox = document.getElementById('inset');
    this.insetBox.checked = this.inset;
    this.insetBox.addEventListener('change', () => {
      this.inset = this.insetBox.checked;
      this.remember();
      this.apply();
    });
    for (const e of eyes) e.onHelloHook = () => this.apply();

    let lastWidth = -1;
    new ResizeObserver(() => {
      if (this.main.clientWidth !== lastWidth) {
        lastWidth = this.main.clientWidth;
        this.apply();
      }
    }).observe(this.main);
    window.addEventListener('resize', () => this.apply());
    this.wide.addEventListener('change', () => this.apply());
    document.addEventListener('fullscreenchange', () => {
      if (document.fullscreenElement) {
        this.fullscreen = true;
      } else if (this.fullscreen) {
        this.fullscreen = false;
        if (this.mode === 'vr') this.exitVR(); // Esc (or the system's back gesture) left fullscreen
      }
      this.apply();
    });
    // In VR a tap anywhere, or Esc, leaves it.
    this.main.addEventListener('click', () => { if (this.mode === 'vr') this.exitVR(); });
    window.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && this.mode === 'vr') {
        ev.preventDefault();
        this.exitVR();
      }
    });
    this.apply();
  }

  remember() {
    try {
      localStorage.setItem(VIEW_STORE, JSON.stringify({ mode: this.mode, large: this.large, inset: this.inset }));
    } catch (e) { /* not remembered */ }
  }

  setMode(mode, large = this.large) {
    if (this.mode === 'vr') this.exitVR();
    this.mode = mode;
    this.large = large;
    this.remember();
    this.apply();
  }

  isInset(index) {
    return this.mode === 'one' && index !== this.large && this.inset;
  }

  enterVR() {
    if (this.mode === 'vr') return;
    this.before = { mode: this.mode, large: this.large };
    this.mode = 'vr';
    this.apply();
    this.hint.hidden = false;
    clearTimeout(this.hintTimer);
    this.hintTimer = setTimeout(() => { this.hint.hidden = true; }, 2500);
    const el = document.documentElement;
    if (el.requestFullscreen) {
      el.requestFullscreen({ navigationUI: 'hide' }).then(() => {
        if (this.mode !== 'vr') {
          document.exitFullscreen().catch(() => {}); // left VR before fullscreen came
          return;
        }
        if (screen.orientation && screen.orientation.lock) screen.orientation.lock('landscape').catch(() => {});
      }).catch(() => { /* not allowed here: VR layout in the window */ });
    }
    if (navigator.wakeLock) {
      navigator.wakeLock.request('screen').then((l) => { this.wakeLock = l; }).catch(() => {});
    }
  }

  exitVR() {
    if (this.mode !== 'vr') return;
    const b = this.before || { mode: 'sbs', large: this.large };
    this.mode = b.mode;
    this.large = b.large;
    this.hint.hidden = true;
    if (document.fullscreenElement && document.exitFullscreen) document.exitFullscreen().catch(() => {});
    try { screen.orientation.unlock(); } catch (e) { /* nothing locked */ }
    if (this.wakeLock) {
      this.wakeLock.release().catch(() => {});
      this.wakeLock = null;
    }
    this.apply();
  }

  // Position every eye for the current mode and window size.
  apply() {
    const vr = this.mode === 'vr';
    document.body.classList.toggle('vr', vr);
    this.main.className = 'mode-' + this.mode;
    for (const b of this.buttons) {
      const on = b.dataset.mode === this.mode && (this.mode !== 'one' || Number(b.dataset.large) === this.large);
      b.setAttribute('aria-pressed', String(on));
    }
    document.querySelector('.inset-opt').classList.toggle('dim', this.mode !== 'one');

    // Which eyes show, and how, first: the caption's height (fixed by style.css) is measured
    // on one that shows.
    const shown = this.mode === 'one' ? this.large : 0;
    this.eyes.forEach((e, i) => {
      e.figure.hidden = this.mode === 'one' && i !== this.large && !this.inset;
      e.figure.classList.toggle('inset', this.isInset(i));
      e.figure.classList.toggle('large', this.mode === 'one' && i === this.large);
    });
    const aspect = this.eyes[shown].aspect || 960 / 1080;
    const capH = vr ? 0 : this.eyes[shown].figure.querySelector('figcaption').offsetHeight;
    let W, H;
    if (vr) {
      W = window.innerWidth;
      H = window.innerHeight;
    } else {
      W = this.main.clientWidth;
      if (this.wide.matches) {
        const top = this.main.getBoundingClientRect().top + window.scrollY;
        H = window.innerHeight - top - capH - GAP;
      } else {
        H = window.innerHeight * 0.62;
      }
      H = Math.max(120, H);
    }
    const fit = (maxW, maxH) => {
      const w = Math.max(0, Math.min(maxW, maxH * aspect));
      return { w: Math.floor(w), h: Math.floor(w / aspect) };
    };
    const boxes = this.eyes.map(() => ({ x: 0, y: 0, w: 0, h: 0, hidden: false, inset: false }));
    if (this.mode === 'sbs') {
      const s = fit((W - GAP) / 2, H);
      const left = Math.floor((W - (2 * s.w + GAP)) / 2);
      boxes.forEach((b, i) => Object.assign(b, { x: left + i * (s.w + GAP), y: 0, w: s.w, h: s.h }));
    } else if (this.mode === 'one') {
      const s = fit(W, H);
      const left = Math.floor((W - s.w) / 2);
      boxes.forEach((b, i) => {
        if (i === this.large) {
          Object.assign(b, { x: left, y: 0, w: s.w, h: s.h });
        } else if (this.inset) {
          const w = Math.round(s.w * 0.28), h = Math.round(w / aspect), m = Math.max(6, Math.round(s.w * 0.02));
          Object.assign(b, { x: left + s.w - w - m, y: s.h - h - m, w, h, inset: true });
        } else {
          b.hidden = true;
        }
      });
    } else {
      // VR: each eye centred in its half of the screen, eye 0 (the left camera) on the left.
      const s = fit(W / 2, H);
      boxes.forEach((b, i) => Object.assign(b, {
        x: Math.floor(W / 4 + (i * W) / 2 - s.w / 2), y: Math.floor((H - s.h) / 2), w: s.w, h: s.h,
      }));
    }
    let bottom = 0;
    boxes.forEach((b, i) => {
      const fig = this.eyes[i].figure;
      fig.style.left = b.x + 'px';
      fig.style.top = b.y + 'px';
      fig.style.width = b.w + 'px';
      this.eyes[i].view.style.height = b.h + 'px';
      this.overlays.resize(i, b.hidden ? 0 : b.w, b.hidden ? 0 : b.h);
      if (!b.hidden && !b.inset) bottom = Math.max(bottom, b.y + b.h + capH);
    });
    this.main.style.height = vr ? '' : bottom + 'px';
    this.boxes = boxes;
  }

  snapshot() {
    return { mode: this.mode, large: this.large, inset: this.inset, fullscreen: !!document.fullscreenElement, boxes: this.boxes };
  }
}
