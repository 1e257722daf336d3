// The viewer from another machine (issue 13), as a laptop on the robot's network sees it: the
// page opened by a name that is not localhost (robot.test, mapped to 127.0.0.1 inside
// Chromium only). Over plain http the page is not a secure context and plays both eyes through
// MSE; over https (the daemon's self-signed certificate, accepted) through WebCodecs. Both
// checked from pixels: the stamps on each eye advance and each shows its own eye. Steering over
// /control works on both; the https link and the certificate note are offered on http; with no
// decoder at all the layout still stands. Screenshots in target/test-artifacts/remote-*.png.
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { runTest, check, artifacts, binary } from './lib.mjs';

const FPS = 30;
// PIEYES_ARGS: more daemon flags (`--www ../../www` serves the page from disk while developing).
const ARGS = ['--fps', String(FPS), '--gop', '2', '--allowed-hosts', 'robot.test', ...(process.env.PIEYES_ARGS || '').split(' ').filter(Boolean)];
const CHROMIUM = ['--host-resolver-rules=MAP robot.test 127.0.0.1', '--ignore-certificate-errors'];

// Stamps read from each eye's canvas (what is on screen) and, on the MSE path, from each
// <video> itself (drawn to a scratch canvas).
const readStamps = (page) => page.evaluate(() => [...document.querySelectorAll('#eyes .eye')].map((fig) => {
  const c = fig.querySelector('canvas.video');
  const canvas = PieStamp.fromCanvas(c.getContext('2d'), c.width);
  const v = fig.querySelector('video');
  let video = null;
  if (v && v.videoWidth) {
    const s = document.createElement('canvas');
    s.width = v.videoWidth;
    s.height = PieStamp.bandHeight(v.videoWidth);
    const ctx = s.getContext('2d');
    ctx.drawImage(v, 0, 0);
    video = PieStamp.fromCanvas(ctx, s.width);
  }
  return { canvas, video };
}));

// Both eyes paint, their stamps advance within a deadline, each shows its own eye.
async function playsBothEyes(page, path, label) {
  await page.waitForFunction(() => window.pieyes && window.pieyes.snapshot().every((e) => e.painted > 30), null, { timeout: 45000 })
    .catch(async () => { throw new Error(`${label}: eyes did not paint 30 frames in 45 s: ` + JSON.stringify(await page.evaluate(() => window.pieyes && window.pieyes.snapshot()))); });
  check(await page.evaluate(() => window.pieyes.path) === path, `${label}: the page plays through ${path}`);
  const first = await readStamps(page);
  check(first.every((s, i) => s.canvas && s.canvas.eye === i), `${label}: each canvas shows its own eye (${first.map((s) => s.canvas && s.canvas.eye)})`);
  if (path === 'MSE') {
    check(first.every((s, i) => s.video && s.video.eye === i), `${label}: each <video> shows its own eye (${first.map((s) => s.video && s.video.eye)})`);
  }
  const a = first.map((s) => s.canvas.sequence);
  const later = await page.waitForFunction((a) => {
    const now = [...document.querySelectorAll('canvas.video')].map((c) => {
      const s = PieStamp.fromCanvas(c.getContext('2d'), c.width);
      return s ? s.sequence : -1;
    });
    return now.every((s, i) => s > a[i] + 10) && now;
  }, a, { timeout: 5000, polling: 50 }).then((h) => h.jsonValue(), () => null);
  check(Array.isArray(later), `${label}: the stamps on both eyes advance (sequence ${a} → ${later})`);
  const captions = await page.$$eval('#eyes figcaption .path', (els) => els.map((e) => e.textContent));
  check(captions.length === 2 && captions.every((t) => t === path), `${label}: each eye's caption says ${path} (${captions})`);
  const snap = await page.evaluate(() => window.pieyes.snapshot());
  for (const [i, e] of snap.entries()) {
    check(e.latencyP50 > 0 && e.latencyP50 < 1000, `${label}: eye ${i} capture→paint p50 ${e.latencyP50.toFixed(0)} ms p95 ${e.latencyP95.toFixed(0)} ms` +
      (e.mse ? ` (MSE lead ${e.mse.leadMs} ms, ${e.mse.jumps} jumps, ${e.mse.errors} errors, buffer ${e.mse.bufferedS} s)` : ''));
  }
  return snap;
}

// The captions and views of both eyes side by side, not on top of each other.
async function layoutStands(page, label) {
  const boxes = await page.$$eval('#eyes .eye', (els) => els.map((e) => {
    const r = e.getBoundingClientRect();
    const c = e.querySelector('figcaption').getBoundingClientRect();
    return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, cap: c.height };
  }));
  check(boxes[0].right <= boxes[1].left && boxes.every((b) => b.right - b.left > 200 && b.bottom - b.top > 200 && b.cap >= 16),
    `${label}: both eyes laid out side by side with captions (${boxes.map((b) => `${Math.round(b.left)}–${Math.round(b.right)}×${Math.round(b.bottom - b.top)}`).join(', ')})`);
}

async function steers(page, daemon, label) {
  const status = () => JSON.parse(execFileSync(binary(), ['ctl', '--control', daemon.control, 'status']).toString().slice(3));
  const x0 = status().state.eyes[0].x;
  await page.click('#eyes .eye[data-eye="0"] .view');
  await page.keyboard.press('ArrowRight');
  const deadline = Date.now() + 5000;
  let x = x0;
  while (Date.now() < deadline && !(x > x0)) {
    await page.waitForTimeout(50);
    x = status().state.eyes[0].x;
  }
  check(x > x0, `${label}: a key press steers over /control (x ${x0} → ${x})`);
  await page.click('#centre');
}

await runTest(ARGS, async ({ daemon, browser, page, errors }) => {
  const port = new URL(daemon.url).port;
  const http = `http://robot.test:${port}/`;
  const https = `https://robot.test:${port}/`;

  // ---- plain http from "another machine": MSE ----
  await page.goto(http);
  check(await page.evaluate(() => !window.isSecureContext && !('VideoDecoder' in window)), 'http://robot.test is not a secure context: no WebCodecs');
  await playsBothEyes(page, 'MSE', 'http');
  check(await page.isVisible('#https-hint'), 'http: the page offers https and explains the certificate warning');
  const link = await page.$eval('#https-hint .https-link', (a) => a.href);
  check(link === https, `http: the https link is ${link}`);
  await layoutStands(page, 'http');
  await steers(page, daemon, 'http');
  // Reconnecting: both eyes' sockets drop; each reconnects, its MSE player starts over at the
  // next keyframe and the stamps advance again.
  const before = await page.evaluate(() => window.pieyes.snapshot().map((e) => ({ painted: e.painted, opens: e.mse.opens })));
  await page.evaluate(() => { for (const e of window.pieyes.eyes) e.ws.close(); });
  const back = await page.waitForFunction((b) => {
    const now = window.pieyes.snapshot();
    return now.every((e, i) => e.mse.opens > b[i].opens && e.painted > b[i].painted + 15) && now.map((e, i) => e.painted - b[i].painted);
  }, before, { timeout: 30000 }).then((h) => h.jsonValue(), () => null);
  check(Array.isArray(back), `http: after the sockets drop both eyes start a new MediaSource and play again (${back} frames since)`);
  const again = await readStamps(page);
  check(again.every((s, i) => s.canvas && s.canvas.eye === i), 'http: after reconnecting each canvas shows its own eye');
  await page.screenshot({ path: join(artifacts, 'remote-http-mse.png') });
  await page.click('#https-hint-close');
  check(await page.isHidden('#https-hint') && await page.isVisible('#https-badge'), 'http: "Got it" leaves a small https link in the header');
  await page.reload();
  await page.waitForFunction(() => window.pieyes && window.pieyes.control.connected && window.pieyes.eyes.every((e) => e.hello), null, { timeout: 10000 });
  check(await page.isHidden('#https-hint') && await page.isVisible('#https-badge'), 'http: the note is said once (not again after a reload)');
  await layoutStands(page, 'http after the note');

  // ---- https with the self-signed certificate accepted: WebCodecs ----
  const secure = await browser.ctx.newPage();
  secure.on('pageerror', (e) => errors.push(String(e)));
  await secure.goto(https);
  check(await secure.evaluate(() => window.isSecureContext && 'VideoDecoder' in window), 'https://robot.test is a secure context with WebCodecs');
  await playsBothEyes(secure, 'WebCodecs', 'https');
  check(await secure.isHidden('#https-hint') && await secure.isHidden('#https-badge'), 'https: no https offer');
  await steers(secure, daemon, 'https');
  await secure.screenshot({ path: join(artifacts, 'remote-https-webcodecs.png') });
  await secure.close();

  // ---- no decoder at all (an old browser): no video, the layout and steering still stand ----
  const bare = await browser.ctx.newPage();
  await bare.addInitScript(() => {
    for (const k of ['VideoDecoder', 'EncodedVideoChunk', 'MediaSource', 'ManagedMediaSource']) delete window[k];
  });
  bare.on('pageerror', (e) => errors.push(String(e)));
  await bare.goto(http);
  await bare.waitForFunction(() => window.pieyes && window.pieyes.control.connected, null, { timeout: 10000 });
  check(await bare.evaluate(() => window.pieyes.path) === null && await bare.isVisible('#unsupported'), 'no decoder: the page says so');
  check(await bare.textContent('#conn') === 'connected', 'no decoder: the header says connected');
  await layoutStands(bare, 'no decoder');
  await steers(bare, daemon, 'no decoder');
  await bare.screenshot({ path: join(artifacts, 'remote-no-decoder.png') });
  await bare.close();
  check(errors.length === 0, 'no page errors ' + errors.join('; '));
}, { chromiumArgs: CHROMIUM });
