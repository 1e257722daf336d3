// `make bench`, browser scenario: headless Chromium shows both eyes (2 × 960x1080 @ 30 fps)
// with the latency probe on; capture→paint per eye from the painted pixels, stereo skew,
// frames dropped. Merged into bench/results/latest.json (and its dated twin) as "browser".
import { readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, launch, root } from './lib.mjs';

const SECONDS = 20 * Number(process.env.PIEYES_BENCH_SCALE || 1);
const daemon = await startDaemon([]);
const browser = await launch();
let result;
try {
  const page = await browser.ctx.newPage();
  await page.goto(daemon.url + '?latency');
  await page.waitForFunction(() => window.pieyes && window.pieyes.snapshot().every((e) => e.painted > 60), null, { timeout: 60000 });
  await page.evaluate(() => window.pieyes.latency.reset());
  const before = await page.evaluate(() => window.pieyes.snapshot());
  await page.waitForTimeout(SECONDS * 1000);
  const stats = await page.evaluate(() => window.pieyes.latency.stats());
  const after = await page.evaluate(() => window.pieyes.snapshot());
  const r = (v) => Math.round(v * 10) / 10;
  result = {
    seconds: SECONDS,
    eyes: stats.eyes.map((e, i) => ({
      painted: e.n,
      capture_paint_p50_ms: r(e.p50), capture_paint_p95_ms: r(e.p95), capture_paint_p99_ms: r(e.p99), capture_paint_max_ms: r(e.max),
      frames_missing_on_screen: e.frameGaps, stamps_unreadable: e.unreadable,
      viewer_drops: after[i].drops - before[i].drops, fps: r(after[i].fps),
    })),
    stereo_skew_p50_ms: r(stats.skew.p50), stereo_skew_p95_ms: r(stats.skew.p95), stereo_skew_max_ms: r(stats.skew.max),
  };
} finally {
  await browser.close();
  daemon.stop();
}
const e = result.eyes;
const rows = [
  ['browser: capture→paint p50 / p95 / p99 (eye 0)', `${e[0].capture_paint_p50_ms} / ${e[0].capture_paint_p95_ms} / ${e[0].capture_paint_p99_ms} ms (target p95 ≤ 50)`],
  ['browser: capture→paint p50 / p95 / p99 (eye 1)', `${e[1].capture_paint_p50_ms} / ${e[1].capture_paint_p95_ms} / ${e[1].capture_paint_p99_ms} ms`],
  ['browser: stereo skew between displayed frames p50 / p95', `${result.stereo_skew_p50_ms} / ${result.stereo_skew_p95_ms} ms`],
  ['browser: frames not shown (gaps) / viewer drops, per eye', `${e[0].frames_missing_on_screen}, ${e[1].frames_missing_on_screen} / ${e[0].viewer_drops}, ${e[1].viewer_drops}`],
];
for (const [k, v] of rows) console.log('  ' + k.padEnd(58) + ' ' + v);
const dir = join(root, 'bench', 'results');
const latest = join(dir, 'latest.json');
const doc = JSON.parse(readFileSync(latest, 'utf8'));
doc.browser = result;
doc.table = (doc.table || []).concat(rows);
const text = JSON.stringify(doc);
writeFileSync(latest, text);
const dated = readdirSync(dir).filter((f) => f.endsWith(`-${doc.commit}.json`) && f.startsWith(doc.date.replace(/:/g, '')));
for (const f of dated) writeFileSync(join(dir, f), text);
console.log('browser figures merged into', latest);
