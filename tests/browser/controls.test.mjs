// The viewer's controls, driven as a person would in headless Chromium: dragging a view, the
// mouse wheel, a pinch and the keyboard each move the eyes — checked through the daemon
// (`status` over the Unix control socket: the commanded state and the applied crop) and
// through the stamps read back from the painted canvas pixels (the crop each frame was really
// captured through). A change made by another controller over the Unix socket shows up on the
// page's sliders; flip, pause and save work; overlays and view modes are screenshotted to
// target/test-artifacts/controls-*.png. Every wait polls a condition with a timeout.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { runTest, check, artifacts, binary, ctlLine } from './lib.mjs';

let daemon; // set when the test starts (the helpers below use it)
let browser;
let statePath;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One command over the Unix socket, its reply line.
function ctl(cmd) {
  return ctlLine(daemon.control, cmd, 5000);
}

async function status() {
  const r = await ctl('status');
  if (!r.startsWith('ok ')) throw new Error('status: ' + r);
  return JSON.parse(r.slice(3));
}

// `pieyes ctl …`, the command-line client another process would use.
function cli(...args) {
  return new Promise((resolve, reject) => {
    execFile(binary(), ['ctl', '--control', daemon.control, ...args], { timeout: 10000 }, (err, stdout) => {
      if (err) reject(new Error(`pieyes ctl ${args.join(' ')}: ${err.message} ${stdout}`));
      else resolve(stdout.trim());
    });
  });
}

// Poll `fn` until it returns something truthy; fail with the last value seen. `fn` may also return { stage, … } to say why not yet (shown if it times out).
async function until(what, fn, timeout = 15000, every = 100) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last && !last.stage) return last;
    } catch (e) {
      last = String(e);
    }
    await sleep(every);
  }
  throw new Error(`FAILED: timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

const near = (a, b, tol) => Math.abs(a - b) <= tol;
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

await runTest(['--fps', '30'], async (ctx) => {
  ({ daemon, browser } = ctx);
  statePath = join(dirname(daemon.control), 'state.conf'); // lib.mjs passes --state there
  const { page, errors } = ctx;
  await page.goto(daemon.url);
  await page.evaluate(() => localStorage.clear());
  await page.reload();
  const ready = () => page.waitForFunction(() => window.pieyes && window.pieyes.state() &&
    window.pieyes.snapshot().every((e) => e.painted > 5), null, { timeout: 30000 });
  await ready();

  // ---- helpers on the page -----------------------------------------------------------------
  const stamps = () => page.evaluate(() => [0, 1].map((i) => {
    const c = document.querySelector(`.eye[data-eye="${i}"] canvas.video`);
    return PieStamp.fromCanvas(c.getContext('2d'), c.width);
  }));
  const pageState = () => page.evaluate(() => window.pieyes.state());
  const viewBox = (i) => page.locator(`.eye[data-eye="${i}"] .view`).boundingBox();
  const sliders = () => page.evaluate(() =>
    Object.fromEntries([...document.querySelectorAll('#panel input[type=range]')].map((s) => [s.id, Number(s.value)])));
  // The daemon's commanded state satisfies `want`, its applied crops are the commanded ones,
  // and the stamps read from the painted canvases show the same crops (the crop each frame on
  // screen was captured through). All in one poll: a gesture may still be sending.
  async function settled(what, want) {
    let reached = false, applied = false;
    const st = await until(`${what}`, async () => {
      const s = await status();
      if (!want(s.state)) return { stage: 'commanded', state: s.state.eyes };
      reached = true;
      const crops = s.state.eyes.map((e) => e.crop);
      if (!s.eyes.every((e, i) => same(e.crop, crops[i]))) return { stage: 'applied', crops, applied: s.eyes.map((e) => e.crop) };
      applied = true;
      const painted = await stamps();
      if (!painted.every((x, i) => x && same(x.crop, crops[i]))) return { stage: 'painted', crops, painted: painted.map((x) => x && x.crop) };
      return s;
    }).catch((e) => {
      throw new Error(e.message + ` (commanded reached: ${reached}, applied: ${applied})`);
    });
    const crops = st.state.eyes.map((e) => e.crop);
    check(true, `${what}: commanded ${st.state.eyes.map((e) => `(${e.x}, ${e.y}, ×${e.zoom})`).join(' ')}, applied and painted crops ${JSON.stringify(crops)}`);
    return st.state;
  }

  // ---- the control connection: watch, clock sync, status polling ---------------------------
  const first = await pageState();
  check(first.eyes.length === 2 && first.eyes[0].zoom === 1, 'the page got the commanded state from `watch`');
  await until('the status line (status polling)', () => page.evaluate(() => /daemon up \d+ s/.test(document.getElementById('clock').textContent)));
  check(await page.evaluate(() => Number.isFinite(window.pieyes.control.rttUs)), 'the clock sync measured a round trip');
  const vb0 = await viewBox(0);
  check(vb0.width > 300 && near(vb0.width / vb0.height, 960 / 1080, 0.01), `eye 0's view keeps the picture's aspect (${vb0.width}x${vb0.height})`);

  // ---- drag: the picture follows the pointer ------------------------------------------------
  {
    const b = await viewBox(0);
    const D = 120;
    await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2);
    await page.mouse.down();
    await page.mouse.move(b.x + b.width / 2 - D, b.y + b.height / 2, { steps: 12 });
    await page.mouse.up();
    // Dragging left by D px looks right by D px of the view: D × 1152/width sensor pixels,
    // which is D × 1152/width / 576 in gaze units at zoom 1.
    const want = (D * 1152) / b.width / 576;
    const st = await settled('drag left on eye 0 (linked)', (s) => s.eyes.every((e) => near(e.x, want, 0.02)));
    check(st.eyes[0].crop[0] > 576, `the crop moved right on the sensor (x ${st.eyes[0].crop[0]} > 576)`);
    const shift = st.eyes[0].crop[0] - 576, px = (D * 1152) / b.width;
    check(near(shift, px, 8), `the picture followed the pointer: ${D} px on screen = ${px.toFixed(0)} sensor px, crop moved ${shift}`);
  }

  // ---- wheel: zoom ---------------------------------------------------------------------------
  {
    const b = await viewBox(1);
    await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2);
    await page.mouse.wheel(0, -300);
    const st = await settled('wheel up on eye 1 zooms both', (s) => s.eyes.every((e) => e.zoom > 1.5));
    check(st.eyes[1].crop[2] < 1152 * 0.7, `the crop shrank (w ${st.eyes[1].crop[2]})`);
  }

  // ---- keyboard -----------------------------------------------------------------------------
  {
    const before = (await status()).state.eyes[0];
    await page.keyboard.press('ArrowRight');
    let st = await settled('ArrowRight looks right', (s) => s.eyes[0].x > before.x + 0.03);
    await page.keyboard.press('s');
    st = await settled('S looks down', (s) => s.eyes[0].y > before.y + 0.05);
    const z = st.eyes[0].zoom;
    await page.keyboard.press('+');
    st = await settled('+ zooms in', (s) => near(s.eyes[0].zoom, z * 1.25, 0.02));
    await page.keyboard.press('-');
    await page.keyboard.press('-');
    st = await settled('− zooms out', (s) => s.eyes[0].zoom < z * 0.9);
    await page.keyboard.press('0');
    st = await settled('0 re-centres', (s) => s.eyes.every((e) => e.x === 0 && e.y === 0 && e.zoom === 1));
    check(st.eyes.every((e) => same(e.crop, [576, 0, 1152, 1296])), 'centred at zoom 1 is the full view');
  }

  // ---- pinch (two touch points through the DevTools protocol) -------------------------------
  {
    const b = await viewBox(0);
    const cdp = await browser.ctx.newCDPSession(page);
    const cx = b.x + b.width / 2, cy = b.y + b.height / 2;
    const touch = (type, d) => cdp.send('Input.dispatchTouchEvent', {
      type, touchPoints: type === 'touchEnd' ? [] : [{ x: cx - d, y: cy, id: 1 }, { x: cx + d, y: cy, id: 2 }],
    });
    await touch('touchStart', 40);
    for (let d = 50; d <= 120; d += 10) await touch('touchMove', d);
    await touch('touchEnd', 0);
    await cdp.detach();
    // Fingers 80 px apart → 240 px apart: 3× zoom.
    await settled('a two-finger pinch zooms', (s) => s.eyes.every((e) => near(e.zoom, 3, 0.3)));
    await page.keyboard.press('0');
    await settled('0 re-centres again', (s) => s.eyes.every((e) => e.x === 0 && e.zoom === 1));
  }

  // ---- another controller over the Unix socket: the sliders follow ---------------------------
  {
    const reply = await cli('look', 'both', '-0.5', '0');
    check(reply.startsWith('ok '), '`pieyes ctl look both -0.5 0`: ' + reply);
    await until('the sliders to show x = -0.5', async () => {
      const s = await sliders();
      return near(s['both-x'], -0.5, 0.001) && near(s['eye0-x'], -0.5, 0.001) && near(s['eye1-x'], -0.5, 0.001) && s;
    });
    check(true, 'the joint and per-eye X sliders moved to -0.5');
    await cli('zoom', '1', '2');
    const s = await until('eye 1 zoom slider to show 2×', async () => {
      const v = await page.evaluate(() => [Number(document.getElementById('eye1-zoom').value),
        document.querySelector('.group[data-target="1"] output[data-for="zoom"]').textContent]);
      return v[0] === Math.round((1000 * Math.log(2)) / Math.log(8)) && v;
    });
    check(s[1] === '2.00×', 'eye 1 zoom slider shows ' + s[1]);
    await cli('verge', '0.1');
    await until('the vergence slider to show 0.1', async () => near((await sliders()).verge, 0.1, 0.001));
    check(true, 'the vergence slider follows `verge 0.1`');
    await cli('verge', '0');
    await cli('zoom', '1', '1');

    // While the user holds a slider, the daemon's state does not move it; after, it does.
    const sb = await page.locator('#both-x').boundingBox();
    await page.mouse.move(sb.x + sb.width / 2, sb.y + sb.height / 2);
    await page.mouse.down();
    await settled('pressing the middle of the X slider looks at x = 0', (st) => st.eyes.every((e) => near(e.x, 0, 0.02)));
    await cli('look', 'both', '0.7', '0');
    await until('the page to receive the new state', async () => (await pageState()).eyes[0].x === 0.7);
    check(near((await sliders())['both-x'], 0, 0.02), 'a held slider is not moved by the daemon');
    await page.mouse.up();
    await until('the released slider to show the commanded 0.7', async () => near((await sliders())['both-x'], 0.7, 0.001));
    check(true, 'the released slider follows the daemon again');
  }

  // ---- slider steering and unlinked eyes -----------------------------------------------------
  {
    await page.locator('#both-zoom').fill('333'); // 8^(1/3) = 2×
    await settled('the joint zoom slider', (s) => s.eyes.every((e) => near(e.zoom, 2, 0.02)));
    await page.locator('#link').uncheck();
    check(!(await page.locator('#eye1-x').isDisabled()), 'unlinked: the per-eye sliders are enabled');
    const before = (await status()).state.eyes;
    const b = await viewBox(1);
    await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2);
    await page.mouse.down();
    await page.mouse.move(b.x + b.width / 2 + 80, b.y + b.height / 2 + 40, { steps: 8 });
    await page.mouse.up();
    const st = await settled('unlinked drag on eye 1 moves eye 1 only',
      (s) => s.eyes[1].x < before[1].x - 0.05 && s.eyes[1].y < before[1].y - 0.05);
    check(st.eyes[0].x === before[0].x && st.eyes[0].y === before[0].y, 'eye 0 stayed where it was');
    await page.keyboard.press('ArrowLeft');
    await settled('unlinked keys steer the eye touched last (1)', (s) => s.eyes[1].x < st.eyes[1].x - 0.01 && s.eyes[0].x === before[0].x);
    await page.locator('#eye0-y').fill('-0.5');
    await settled('eye 0\'s own Y slider', (s) => near(s.eyes[0].y, -0.5, 0.001) && s.eyes[1].y !== -0.5);
    await page.locator('#link').check();
    check(await page.locator('#eye1-x').isDisabled(), 'linked again: the per-eye sliders are disabled');
    await page.locator('#centre').click();
    await settled('the Centre button', (s) => s.eyes.every((e) => e.x === 0 && e.y === 0 && e.zoom === 1));
  }

  // ---- flip ----------------------------------------------------------------------------------
  {
    const btn = page.locator('.group[data-target="1"] button[data-flip="h"]');
    await btn.click();
    await until('status: eye 1 flipped h', async () => {
      const s = await status();
      return s.eyes[1].flip === 'h' && s.eyes[0].flip === 'none';
    });
    await until('the flip button to be pressed', async () => (await btn.getAttribute('aria-pressed')) === 'true');
    await until('the page to get `event flip`', () => page.evaluate(() => window.pieyes.events().includes('event flip eye=1 flip=h')));
    const n = (await page.evaluate(() => window.pieyes.snapshot()))[1].painted;
    await until('eye 1 to keep painting after the flip', async () => (await page.evaluate(() => window.pieyes.snapshot()))[1].painted > n + 10);
    check(true, 'flip toggle: eye 1 flipped h (eye 0 not), the event arrived, video goes on');
    await btn.click();
    await until('eye 1 flipped back', async () => (await status()).eyes[1].flip === 'none');
    check(true, 'flip toggle again: none');
  }

  // ---- pause / resume --------------------------------------------------------------------------
  {
    await page.locator('#pause').click();
    await until('status: paused', async () => (await status()).paused === true);
    await until('the page to show paused', () => page.evaluate(() =>
      document.getElementById('pause').textContent === 'Resume' && !document.getElementById('paused-badge').hidden));
    await until('the page to get `event pause`', () => page.evaluate(() => window.pieyes.events().includes('event pause')));
    // No new frames: neither captured (status) nor painted (the stamp on the canvas) for a
    // while, once what was already on its way has arrived.
    const still = async () => [(await status()).eyes.map((e) => e.captured), (await stamps()).map((s) => s && s.sequence)];
    let b;
    await until('the picture to stand still', async () => {
      const a = await still();
      await sleep(700);
      b = await still();
      return same(a, b) && b[1].every((v) => v !== null) ? b : { stage: 'moving', a, b };
    });
    check(true, `paused: nothing captured or painted for 0.7 s (captured ${b[0]}, on screen #${b[1]})`);
    b = b[1];
    await page.locator('#pause').click();
    await until('status: resumed', async () => (await status()).paused === false);
    await until('new frames after resume', async () => {
      const c = (await stamps()).map((s) => s && s.sequence);
      return c.every((v, i) => v !== null && v > b[i]);
    });
    check(true, 'resume: frames flow again');
  }

  // ---- save ----------------------------------------------------------------------------------
  {
    await cli('look', 'both', '0.25', '0');
    await cli('zoom', 'both', '2');
    await until('the page to know zoom 2', async () => (await pageState()).eyes[0].zoom === 2);
    await page.locator('#save').click();
    const fb = await until('save feedback', () => page.evaluate(() => {
      const f = document.getElementById('feedback');
      return f.className === 'ok' && /saved/.test(f.textContent) && f.textContent;
    }));
    check(true, 'save feedback: ' + fb);
    await until('the state file', () => existsSync(statePath));
    const saved = readFileSync(statePath, 'utf8');
    const lines = saved.split('\n').filter((l) => /^eye[01]\.(look|zoom) /.test(l));
    check(lines.includes('eye0.look = 0.25 0') && lines.includes('eye1.zoom = 2'), 'save wrote the state file: ' + lines.join('; '));
    await until('the page to get `event saved`', () => page.evaluate(() => window.pieyes.events().some((e) => e.startsWith('event saved path='))));
    check(true, 'the page got `event saved`');
  }

  // ---- viewer joined / left events -------------------------------------------------------------
  {
    await page.evaluate((url) => new Promise((resolve) => {
      const ws = new WebSocket(url.replace('http', 'ws') + 'cam1');
      ws.onmessage = () => { ws.close(); resolve(); };
    }), daemon.url);
    await until('viewer joined and left events', () => page.evaluate(() => {
      const ev = window.pieyes.events();
      return ev.includes('event viewer eye=1 joined viewers=2') && ev.includes('event viewer eye=1 left viewers=1');
    }));
    check(true, 'the page got `event viewer … joined` and `… left`');
  }

  // ---- view modes -----------------------------------------------------------------------------
  await cli('look', 'both', '0', '0');
  await cli('zoom', 'both', '1');
  const fits = async (w, h) => page.evaluate(([w, h]) =>
    document.documentElement.scrollWidth <= w && (h === 0 || document.documentElement.scrollHeight <= h), [w, h]);
  {
    check(await fits(1280, 800), 'side by side at 1280x800: no scrolling');
    const shot = join(artifacts, 'controls-side-by-side.png');
    await page.screenshot({ path: shot });
    console.log('screenshot:', shot);

    await page.locator('#modes button[data-large="1"]').click();
    let l = await page.evaluate(() => window.pieyes.layout.snapshot());
    const [small, big] = l.boxes;
    check(l.mode === 'one' && l.large === 1 && big.w > 600 && small.inset && small.w < big.w * 0.35, `one eye large: eye 1 ${big.w}x${big.h}, eye 0 inset ${small.w}x${small.h}`);
    check(small.x >= big.x && small.x + small.w <= big.x + big.w && small.y + small.h <= big.y + big.h, 'the inset lies inside the large view');
    await until('the inset to paint', async () => (await stamps())[0] !== null);
    check(await fits(1280, 800), 'one eye large at 1280x800: no scrolling');
    const shot2 = join(artifacts, 'controls-one-eye.png');
    await page.screenshot({ path: shot2 });
    console.log('screenshot:', shot2);
    const ib = await viewBox(0);
    await page.mouse.click(ib.x + ib.width / 2, ib.y + ib.height / 2);
    l = await page.evaluate(() => window.pieyes.layout.snapshot());
    check(l.mode === 'one' && l.large === 0 && l.boxes[1].inset, 'a click on the inset makes it the large eye');
    await page.locator('#inset').uncheck();
    check(await page.locator('.eye[data-eye="1"]').isHidden(), 'without the inset the other eye is hidden');
    await page.locator('#inset').check();
    await page.locator('#modes button[data-mode="sbs"]').click();
    check((await page.evaluate(() => window.pieyes.layout.snapshot())).mode === 'sbs', 'back to side by side');
  }

  // VR on a phone held landscape: both eyes edge to edge, no chrome.
  {
    await page.setViewportSize({ width: 915, height: 412 });
    await page.locator('#modes button[data-mode="vr"]').click();
    await until('VR mode', () => page.evaluate(() => document.body.classList.contains('vr')));
    // Fullscreen, if the browser grants it, resizes the page: wait for the layout to match.
    const l = await until('the VR layout', () => page.evaluate(() => {
      const l = { ...window.pieyes.layout.snapshot(), W: innerWidth, H: innerHeight };
      const [a, b] = l.boxes;
      const ok = a.h === l.H && b.h === l.H && Math.abs(a.x + a.w / 2 - l.W / 4) <= 1 && Math.abs(b.x + b.w / 2 - (3 * l.W) / 4) <= 1;
      return ok ? l : { stage: 'layout', l };
    }));
    const [a, b] = l.boxes;
    check(!(await page.locator('header').isVisible()) && !(await page.locator('#panel').isVisible()), 'VR: no header, no panel');
    check(a.h === l.H && b.h === l.H && near(a.x + a.w / 2, l.W / 4, 1) && near(b.x + b.w / 2, (3 * l.W) / 4, 1),
      `VR: each eye fills the height, centred in its half (${JSON.stringify(l.boxes.map((x) => [x.x, x.y, x.w, x.h]))} in ${l.W}x${l.H})`);
    const r = await page.locator('.eye[data-eye="1"] canvas.video').boundingBox();
    check(r.x + r.width <= l.W + 0.5 && r.y >= -0.5 && r.y + r.height <= l.H + 0.5, 'VR: eye 1 is on screen');
    await until('the eyes paint in VR', async () => (await stamps()).every((s) => s !== null));
    const shot = join(artifacts, 'controls-vr.png');
    await page.screenshot({ path: shot });
    console.log('screenshot:', shot, l.fullscreen ? '(fullscreen)' : '(fullscreen not granted headless)');
    await page.keyboard.press('Escape');
    await until('Esc to leave VR', () => page.evaluate(() => !document.body.classList.contains('vr') && window.pieyes.layout.mode === 'sbs'));
    check(true, 'Esc leaves VR, back to side by side');
    await page.locator('#modes button[data-mode="vr"]').click();
    await until('VR mode again', () => page.evaluate(() => document.body.classList.contains('vr')));
    await page.mouse.click(300, 200);
    await until('a tap to leave VR', () => page.evaluate(() => !document.body.classList.contains('vr')));
    check(true, 'a tap leaves VR');
  }

  // A phone held upright.
  {
    await page.setViewportSize({ width: 412, height: 915 });
    await until('the layout to follow the viewport', async () => (await viewBox(1)).x + (await viewBox(1)).width <= 412);
    check(await fits(412, 0), 'phone 412x915: nothing wider than the screen');
    const shot = join(artifacts, 'controls-phone.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log('screenshot:', shot);
    await page.setViewportSize({ width: 1280, height: 800 });
  }

  // ---- overlays ---------------------------------------------------------------------------------
  {
    for (const name of ['reticle', 'crosshair', 'grid', 'timestamp', 'peaking']) {
      await page.locator(`#overlay-toggles input[data-overlay="${name}"]`).check();
    }
    const ov = await until('the timestamp and focus peaking to be drawn', () => page.evaluate(() => {
      const o = window.pieyes.overlays.snapshot();
      return o.layers.every((l) => l.peakRuns > 0 && l.peakPixels > 0 && /#\d+ · latency \d+ ms/.test(l.text)) && o;
    }));
    check(true, 'overlay timestamp: ' + ov.layers.map((l) => l.text).join(' | '));
    const [runs, painted] = await page.evaluate(() => [window.pieyes.overlays.snapshot().layers[0].peakRuns, window.pieyes.snapshot()[0].painted]);
    await sleep(3000);
    const [runs2, painted2] = await page.evaluate(() => [window.pieyes.overlays.snapshot().layers[0].peakRuns, window.pieyes.snapshot()[0].painted]);
    check(runs2 - runs >= 1 && runs2 - runs <= 14, `focus peaking runs a few times a second, not per frame (${runs2 - runs} runs for ${painted2 - painted} frames in 3 s)`);
    const centre = await page.evaluate(() => {
      const c = document.querySelector('.eye[data-eye="0"] canvas.overlay');
      const d = c.getContext('2d').getImageData(Math.floor(c.width / 2) - 2, Math.floor(c.height / 2) - 2, 5, 5).data;
      let opaque = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 128) opaque++;
      return opaque;
    });
    check(centre > 5, `the overlay canvas draws at the centre (${centre} opaque px of 25)`);
    const stamp = (await stamps())[0];
    check(stamp !== null, 'the overlays do not touch the video canvas (its stamp still reads)');
    const shot = join(artifacts, 'controls-overlays.png');
    await page.screenshot({ path: shot });
    console.log('screenshot:', shot);
    await page.reload();
    await ready();
    const kept = await page.evaluate(() => ['reticle', 'crosshair', 'grid', 'timestamp', 'peaking']
      .every((n) => document.querySelector(`#overlay-toggles input[data-overlay="${n}"]`).checked));
    check(kept, 'overlay toggles are remembered across a reload (localStorage)');
  }

  check(errors.length === 0, 'no page errors ' + errors.join('; '));
});
