// The viewer's Calibrate button against a synthetic rig whose eye 1 is mounted 24 px low
// (`--synthetic-misalign 24`): the button shows the proposed offset and turns the anaglyph
// overlay on, Apply & save sets and saves it (checked over the Unix socket), and the anaglyph's
// mean difference between the eyes drops. Screenshots before and after:
// target/test-artifacts/calibrate-{before,after}.png.
import { join } from 'node:path';
import { runTest, check, artifacts, ctlLine } from './lib.mjs';

const MISALIGN = 24;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

await runTest(['--size', '480x540', '--sensor', '1152x648', '--synthetic-misalign', String(MISALIGN)], async ({ daemon, page, errors }) => {
  const ctl = (cmd) => ctlLine(daemon.control, cmd, 10000);
  const status = async () => JSON.parse((await ctl('status')).slice(3));
  async function until(what, fn, timeout = 15000) {
    const end = Date.now() + timeout;
    let last;
    while (Date.now() < end) {
      last = await fn();
      if (last) return last;
      await sleep(100);
    }
    throw new Error(`FAILED: timed out waiting for ${what}`);
  }

  await page.goto(daemon.url);
  await page.evaluate(() => localStorage.clear());
  await page.reload();
  await page.waitForFunction(() => window.pieyes && window.pieyes.state() &&
    window.pieyes.snapshot().every((e) => e.painted > 5), null, { timeout: 30000 });

  // Room for a vertical offset: at zoom 1 the crop fills the sensor's height.
  check((await ctl('zoom both 1.5')).startsWith('ok '), 'zoom both 1.5');
  await until('both eyes at zoom 1.5', async () => (await status()).eyes.every((e) => e.crop[3] === 432));

  // ---- Calibrate: the proposal, and the anaglyph turns on ------------------------------------
  await page.click('#calibrate');
  await page.waitForSelector('#calibration:not([hidden])', { timeout: 15000 });
  const proposal = await page.evaluate(() => window.pieyes.controls.snapshot().calibration);
  const [, dy] = proposal.offset.split(',').map(Number);
  check(Math.abs(dy - MISALIGN) <= 2, `the page shows the proposed offset ${proposal.offset} (misaligned ${MISALIGN} px): ${await page.textContent('#calib-result')}`);
  check(await page.isChecked('input[data-overlay="anaglyph"]'), 'calibrating turned the anaglyph overlay on');
  const misfit = async () => {
    const runs = (await page.evaluate(() => window.pieyes.overlays.snapshot().anaglyph.runs));
    await page.waitForFunction((r) => window.pieyes.overlays.snapshot().anaglyph.runs > r + 3, runs, { timeout: 10000 });
    return page.evaluate(() => window.pieyes.overlays.snapshot().anaglyph.misfit);
  };
  const before = await misfit();
  await page.screenshot({ path: join(artifacts, 'calibrate-before.png') });

  // ---- Apply & save --------------------------------------------------------------------------
  await page.click('#calib-apply');
  await page.waitForFunction(() => /applied and saved/.test(document.getElementById('feedback').textContent), null, { timeout: 10000 });
  check(await page.isHidden('#calibration'), 'the proposal is gone once applied: ' + await page.textContent('#feedback'));
  const st = await until('eye 1 captured with the offset', async () => {
    const s = await status();
    return s.eyes[1].crop[1] - s.eyes[0].crop[1] === dy && s;
  });
  check(st.state.eyes[1].offset[1] === dy, `the daemon holds eye 1's offset ${st.state.eyes[1].offset}`);
  // Both eyes on screen from frames captured with the offset (status' sequence is the newest
  // captured frame, whose crop it reports), then a fresh anaglyph of them.
  const since = st.eyes.map((e) => e.sequence);
  await page.waitForFunction((s) => window.pieyes.snapshot().every((e, i) => e.paintedSeq !== null && e.paintedSeq >= s[i]),
    since, { timeout: 15000 });
  const after = await misfit();
  await page.screenshot({ path: join(artifacts, 'calibrate-after.png') });
  // The synthetic eyes also differ by their stereo parallax, so aligned is not zero: about
  // 69 → 55 here, steady to ±0.3 from run to run.
  check(after < before * 0.9, `the anaglyph's mean difference between the eyes dropped: ${before.toFixed(1)} → ${after.toFixed(1)}`);
  const again = await ctl('calibrate');
  check(/ dy=-?[01](\.\d+)? /.test(again), `calibrate again: aligned (${again})`);
  check(errors.length === 0, 'no page errors ' + errors.join('; '));
});
