// The viewer as a person sees it: load the page in headless Chromium, check both canvases
// show live decoded video (the stamp read back from the painted pixels), the page paints the
// frames it receives at about the configured fps, and save a screenshot to look at.
import { join } from 'node:path';
import { runTest, check, artifacts } from './lib.mjs';

const FPS = 30;
// A 10 s GOP: after a hiccup the picture must come back long before the next periodic keyframe.
// 640x720 per eye, not the default 960x1080: two encoders and Chromium's two software decoders
// at the default size fill this 2-core machine (CI saw 18.6 fps reach the page), and then what
// is judged is the machine, not the page.
await runTest(['--fps', String(FPS), '--gop', '10', '--size', '640x720'], async ({ daemon, page, errors }) => {
  await page.goto(daemon.url);
  await page.waitForFunction(() => window.pieyes && window.pieyes.snapshot().every((e) => e.painted > 30), null, { timeout: 30000 });
  // Frames received and painted over 3 s, per eye (the page's own stats line shows the last
  // second only, which a single skip to a keyframe on this shared 2-core machine can empty).
  const s0 = await page.evaluate(() => window.pieyes.snapshot());
  const t0 = Date.now();
  await page.waitForTimeout(3000);
  const s1 = await page.evaluate(() => window.pieyes.snapshot());
  const secs = (Date.now() - t0) / 1000;
  const rate = s1.map((e, i) => (e.painted - s0[i].painted) / secs);
  const got = s1.map((e, i) => (e.received - s0[i].received) / secs);

  // Pixels: read each canvas's stamp the way a latency probe would.
  const stamps = await page.evaluate(() =>
    [...document.querySelectorAll('canvas.video')].map((c) => PieStamp.fromCanvas(c.getContext('2d'), c.width)));
  check(stamps.length === 2 && stamps.every((s) => s !== null), 'both canvases carry a readable stamp: ' + JSON.stringify(stamps));
  check(stamps[0].eye === 0 && stamps[1].eye === 1, 'left canvas is eye 0, right is eye 1');
  // Both eyes move on: each canvas shows a later frame within 3 s (an eye that froze until the
  // next periodic keyframe, 10 s away, fails this).
  const a = stamps.map((s) => s.sequence);
  const later = await page.waitForFunction((a) => {
    const now = [...document.querySelectorAll('canvas.video')].map((c) => {
      const s = PieStamp.fromCanvas(c.getContext('2d'), c.width);
      return s ? s.sequence : -1;
    });
    return now.every((s, i) => s > a[i]) && now;
  }, a, { timeout: 3000, polling: 50 }).then((h) => h.jsonValue(), async () =>
    'not in 3 s: ' + JSON.stringify(await page.evaluate(() => window.pieyes.snapshot())));
  check(Array.isArray(later), `video is live (sequence ${a} → ${later})`);

  const snap = await page.evaluate(() => window.pieyes.snapshot());
  for (const [i, e] of snap.entries()) {
    check(e.codec && e.codec.startsWith('avc1.42'), `eye ${i} decodes ${e.codec}`);
    // The page's part: it paints what reaches it. How many frames reach it is the daemon's part
    // (its encoder drops frames when two encoders and Chromium's two decoders share a busy
    // 2-core machine; the eyes suite judges the daemon's rate alone), so it is judged loosely.
    const why = `(${rate[i].toFixed(1)} painted, ${got[i].toFixed(1)} received per s; last stats window ` +
      `${e.fps.toFixed(1)}, ${e.drops} dropped, ${e.keyframesAsked} keyframes asked; daemon ${JSON.stringify(e.server)})`;
    check(rate[i] >= got[i] * 0.9 - 1 && rate[i] < FPS * 1.15, `eye ${i} paints the frames it receives over 3 s ${why}`);
    check(got[i] > FPS * 0.4 && got[i] < FPS * 1.15, `eye ${i} receives a live ${FPS} fps stream ${why}`);
    check(e.decodeErrors === 0, `eye ${i} had no decoder errors`);
    check(e.latencyP50 > 0 && e.latencyP50 < 500, `eye ${i} latency estimate is sane (${e.latencyP50.toFixed(1)} ms p50)`);
  }
  const statsText = await page.$$eval('.stats', (els) => els.map((e) => e.textContent));
  check(statsText.every((t) => /fps/.test(t) && /latency/.test(t)), 'stats lines are shown: ' + statsText.join(' | '));

  // A hiccup as a busy laptop has one: the page's main thread blocked for 1.5 s. The frames
  // that queued up meanwhile overflow the decoder, the viewer skips and asks for a keyframe,
  // and both eyes paint again well before the next periodic keyframe (10 s away).
  const before = await page.evaluate(() => window.pieyes.snapshot());
  await page.evaluate(() => { const t = performance.now(); while (performance.now() - t < 1500); });
  const unblocked = Date.now();
  await page.waitForFunction(
    (b) => window.pieyes.snapshot().every((e, i) => e.painted > b[i].painted + 15), before, { timeout: 5000 });
  const recovered = Date.now() - unblocked;
  const after = await page.evaluate(() => window.pieyes.snapshot());
  const asked = after.map((e, i) => e.keyframesAsked - before[i].keyframesAsked);
  check(asked.some((n) => n > 0), `after the hiccup the viewer asked for keyframes (${asked})`);
  check(recovered < 3000, `both eyes painted 15 more frames ${recovered} ms after it, not a GOP later`);
  check(errors.length === 0, 'no page errors ' + errors.join('; '));
  const shot = join(artifacts, 'viewer.png');
  await page.screenshot({ path: shot });
  console.log('screenshot:', shot);
});
