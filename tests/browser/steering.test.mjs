// Who may steer, as a person sees it: a daemon started with --token shows the page as
// view-only; the token typed into the form unlocks steering. And the latency probe reads the
// stamps from the painted pixels.
import { join } from 'node:path';
import { runTest, check, artifacts } from './lib.mjs';
import { execFileSync } from 'node:child_process';
import { binary } from './lib.mjs';

const TOKEN = 'robot-head-7';
await runTest(['--size', '480x540', '--sensor', '1152x648', '--token', TOKEN], async ({ daemon, page }) => {
  const status = () => JSON.parse(execFileSync(binary(), ['ctl', '--control', daemon.control, 'status']).toString().slice(3));
  await page.goto(daemon.url + '?latency');
  await page.waitForFunction(() => window.pieyes && window.pieyes.snapshot().every((e) => e.painted > 10), null, { timeout: 30000 });
  await page.waitForSelector('#viewonly-badge:not([hidden])', { timeout: 10000 });
  check(await page.isVisible('#auth'), 'the page says it is view-only and offers the token form');
  const x0 = status().state.eyes[0].x;
  await page.click('#eyes .eye[data-eye="0"] .view');
  await page.keyboard.press('ArrowRight');
  await page.waitForTimeout(700);
  check(status().state.eyes[0].x === x0, 'a key press does not steer without the token');
  await page.screenshot({ path: join(artifacts, 'view-only.png') });
  await page.fill('#auth-token', 'wrong-token-1');
  await page.click('#auth-form button');
  await page.waitForTimeout(500);
  check(await page.isVisible('#viewonly-badge'), 'a wrong token leaves it view-only');
  await page.fill('#auth-token', TOKEN);
  await page.click('#auth-form button');
  await page.waitForSelector('#viewonly-badge', { state: 'hidden', timeout: 5000 });
  await page.click('#eyes .eye[data-eye="0"] .view');
  await page.keyboard.press('ArrowRight');
  let moved = false;
  for (let i = 0; i < 30 && !moved; i++) {
    await page.waitForTimeout(100);
    moved = status().state.eyes[0].x > x0;
  }
  check(moved, 'with the token the same key press steers');
  // A reload in the same tab remembers the token (sessionStorage), not beyond.
  await page.reload();
  await page.waitForFunction(() => window.pieyes && window.pieyes.control.connected && window.pieyes.control.authTried, null, { timeout: 10000 });
  await page.waitForTimeout(500);
  check(await page.isHidden('#viewonly-badge'), 'the tab keeps its token across a reload');

  // Latency probe (?latency): stamps read from the painted canvases.
  await page.waitForFunction(() => window.pieyes.latency.stats().eyes.every((e) => e.n > 40), null, { timeout: 30000 });
  const st = await page.evaluate(() => window.pieyes.latency.stats());
  for (const [i, e] of st.eyes.entries()) {
    check(e.p50 > 0 && e.p50 < 1000, `eye ${i}: capture→paint from painted pixels p50 ${e.p50.toFixed(1)} ms p95 ${e.p95.toFixed(1)} ms`);
    check(e.unreadable <= e.n / 10, `eye ${i}: stamps readable on painted frames (${e.unreadable} unreadable of ${e.n + e.unreadable})`);
  }
  check(st.skew.n > 20 && st.skew.p50 < 100, `stereo skew between the eyes' displayed frames p50 ${st.skew.p50.toFixed(1)} ms`);
});
