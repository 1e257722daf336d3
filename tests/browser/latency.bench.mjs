// `make bench`, browser scenario: headless Chromium shows both eyes (2 × 960x1080 @ 30 fps,
// 3 Mbit/s: the daemon's defaults) with the latency probe on; capture→paint per eye from the
// painted pixels, where it went (to the message event, decoder, drawImage), stereo skew, frames
// dropped. The minimal reference pipeline (PIEYES_FLOOR, ../shared/floor: its README) runs right
// before and after with the same size, rate and bitrate; pieyes' p95/p99 are given as ratios
// to the mean of its two runs. Merged into bench/results/latest.json (and its dated twin) as
// "browser".
//
// `--lossy`: the same page over a shaped link instead (run by tests/browser/lossy-link.sh
// inside its network namespaces, as root): the daemon in PIEYES_NETNS_SERVER at
// PIEYES_NETNS_ADDR, this script and Chromium in the client namespace; a loss burst
// (PIEYES_BURST_MS of 100 % loss) in the middle, and how long the page takes to recover.
// Merged as "browser_lossy"; no floor run.
import { readFileSync, writeFileSync, readdirSync, existsSync, mkdtempSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, launch, root } from './lib.mjs';

const SECONDS = 20 * Number(process.env.PIEYES_BENCH_SCALE || 1);
const LOSSY = process.argv.includes('--lossy');
const extraArgs = (process.env.PIEYES_ARGS || '').split(' ').filter(Boolean); // e.g. `--www www` while developing
const r = (v) => Math.round(v * 10) / 10;

// The minimal pipeline, one run: its result file (per camera draw_p50/p95/p99, ms).
function floorRun() {
  const dir = process.env.PIEYES_FLOOR;
  if (!dir || !existsSync(join(dir, 'run.sh'))) throw new Error(`the minimal pipeline is not at PIEYES_FLOOR=${dir} (make bench sets it)`);
  const out = mkdtempSync(join(tmpdir(), 'pieyes-floor-'));
  // Its measure.js finds this directory's playwright-core through NODE_PATH.
  const env = { ...process.env, OUT: out, DURATION: String(SECONDS), NODE_PATH: join(root, 'tests', 'browser', 'node_modules') };
  const text = execFileSync(join(dir, 'run.sh'), { env, cwd: out, encoding: 'utf8' });
  const file = /details: (\S+)/.exec(text)[1];
  const cams = JSON.parse(readFileSync(file, 'utf8')).cams;
  const pick = (k) => r(Math.max(...cams.map((c) => c[k]))); // the worse camera, as for pieyes
  return { capture_draw_p50_ms: pick('draw_p50'), capture_draw_p95_ms: pick('draw_p95'), capture_draw_p99_ms: pick('draw_p99'),
    decode_p50_ms: pick('decodeCallToOutput_ms_p50'), result: file };
}

// Ask the page for the daemon's clock now (ms).
const daemonNowMs = (page) => page.evaluate(() => window.pieyes.control.daemonNowUs() / 1000);

async function pieyesRun() {
  const daemon = await startDaemon(extraArgs, LOSSY
    ? { listen: process.env.PIEYES_NETNS_ADDR, wrap: ['ip', 'netns', 'exec', process.env.PIEYES_NETNS_SERVER] }
    : {});
  // A page from 10.x is not a secure context (no WebCodecs): treat this one origin as secure,
  // as a page over https would be.
  const browser = await launch(LOSSY ? [`--unsafely-treat-insecure-origin-as-secure=${daemon.url.replace(/\/$/, '')}`] : []);
  try {
    const page = await browser.ctx.newPage();
    await page.goto(daemon.url + '?latency');
    await page.waitForFunction(() => window.pieyes && window.pieyes.snapshot().every((e) => e.painted > 60), null, { timeout: 60000 });
    await page.evaluate(() => window.pieyes.latency.reset());
    const before = await page.evaluate(() => window.pieyes.snapshot());
    let burst = null;
    if (LOSSY) {
      await page.waitForTimeout((SECONDS * 1000) / 2);
      const ms = Number(process.env.PIEYES_BURST_MS || 500);
      const start = await daemonNowMs(page);
      execFileSync(process.env.PIEYES_NETNS_BURST, ['burst', 'on']);
      await page.waitForTimeout(ms);
      execFileSync(process.env.PIEYES_NETNS_BURST, ['burst', 'off']);
      burst = { start, end: await daemonNowMs(page), ms };
      await page.waitForTimeout((SECONDS * 1000) / 2);
    } else {
      await page.waitForTimeout(SECONDS * 1000);
    }
    const stats = await page.evaluate(() => window.pieyes.latency.stats());
    const after = await page.evaluate(() => window.pieyes.snapshot());
    const result = {
      seconds: SECONDS,
      eyes: stats.eyes.map((e, i) => ({
        painted: e.n,
        capture_paint_p50_ms: r(e.p50), capture_paint_p95_ms: r(e.p95), capture_paint_p99_ms: r(e.p99), capture_paint_max_ms: r(e.max),
        capture_to_message_p50_ms: r(e.stages.toMessage.p50), capture_to_message_p99_ms: r(e.stages.toMessage.p99),
        message_to_output_p50_ms: r(e.stages.decode.p50), message_to_output_p99_ms: r(e.stages.decode.p99),
        draw_p50_ms: r(e.stages.draw.p50), draw_p99_ms: r(e.stages.draw.p99),
        frames_missing_on_screen: e.frameGaps, stamps_unreadable: e.unreadable,
        viewer_drops: after[i].drops - before[i].drops, keyframes_asked: after[i].keyframesAsked - before[i].keyframesAsked, fps: r(after[i].fps),
      })),
      stereo_skew_p50_ms: r(stats.skew.p50), stereo_skew_p95_ms: r(stats.skew.p95), stereo_skew_max_ms: r(stats.skew.max),
    };
    if (burst) result.burst = { ms: burst.ms, ...recovery(stats.eyes, burst) };
    return result;
  } finally {
    await browser.close();
    daemon.stop();
  }
}

// After the burst ends: when each eye first paints a frame captured after it, and when its
// capture→paint is back under twice the pre-burst p50 for 10 frames in a row.
function recovery(eyes, burst) {
  const out = { first_fresh_frame_ms: [], latency_back_ms: [], worst_latency_ms: [] };
  for (const e of eyes) {
    const pre = e.series.filter(([t]) => t < burst.start).map(([, l]) => l).sort((a, b) => a - b);
    const normal = 2 * (pre[Math.floor(pre.length / 2)] || 0);
    const post = e.series.filter(([t]) => t >= burst.start);
    const fresh = post.find(([t, l]) => t - l > burst.end);
    let run = 0, back = null;
    for (const [t, l] of post) {
      run = l < normal && t > burst.end ? run + 1 : 0;
      if (run === 10) { back = t; break; }
    }
    out.first_fresh_frame_ms.push(fresh ? r(fresh[0] - burst.end) : null);
    out.latency_back_ms.push(back === null ? null : r(back - burst.end));
    out.worst_latency_ms.push(r(Math.max(...post.map(([, l]) => l))));
  }
  return out;
}

let result;
if (LOSSY) {
  result = await pieyesRun();
} else {
  const floorBefore = floorRun();
  const pieyes = await pieyesRun();
  const floorAfter = floorRun();
  const floor = Object.fromEntries(Object.keys(floorBefore).filter((k) => k.endsWith('_ms'))
    .map((k) => [k, r((floorBefore[k] + floorAfter[k]) / 2)]));
  const worst = (k) => Math.max(...pieyes.eyes.map((e) => e[k]));
  result = {
    ...pieyes,
    floor: { ...floor, runs: [floorBefore, floorAfter] },
    ratio_p95: Math.round((worst('capture_paint_p95_ms') / floor.capture_draw_p95_ms) * 100) / 100,
    ratio_p99: Math.round((worst('capture_paint_p99_ms') / floor.capture_draw_p99_ms) * 100) / 100,
  };
}

const e = result.eyes;
const key = LOSSY ? 'browser_lossy' : 'browser';
const tag = LOSSY ? 'lossy link: ' : 'browser: ';
const rows = [
  [`${tag}capture→paint p50 / p95 / p99 (eye 0)`, `${e[0].capture_paint_p50_ms} / ${e[0].capture_paint_p95_ms} / ${e[0].capture_paint_p99_ms} ms`],
  [`${tag}capture→paint p50 / p95 / p99 (eye 1)`, `${e[1].capture_paint_p50_ms} / ${e[1].capture_paint_p95_ms} / ${e[1].capture_paint_p99_ms} ms`],
  [`${tag}capture→message / →decoded / drawImage p50 (eye 0)`, `${e[0].capture_to_message_p50_ms} / ${e[0].message_to_output_p50_ms} / ${e[0].draw_p50_ms} ms`],
  [`${tag}stereo skew between displayed frames p50 / p95`, `${result.stereo_skew_p50_ms} / ${result.stereo_skew_p95_ms} ms`],
  [`${tag}frames not shown (gaps) / viewer drops, per eye`, `${e[0].frames_missing_on_screen}, ${e[1].frames_missing_on_screen} / ${e[0].viewer_drops}, ${e[1].viewer_drops}`],
];
if (LOSSY) {
  const b = result.burst;
  rows.push([`${tag}after a ${b.ms} ms loss burst: first fresh frame / latency back, per eye`,
    `${b.first_fresh_frame_ms.join(', ')} / ${b.latency_back_ms.join(', ')} ms (worst capture→paint ${b.worst_latency_ms.join(', ')} ms)`]);
} else {
  const f = result.floor;
  rows.push(['browser: minimal pipeline capture→draw p50 / p95 / p99', `${f.capture_draw_p50_ms} / ${f.capture_draw_p95_ms} / ${f.capture_draw_p99_ms} ms (mean of a run before and after)`]);
  rows.push(['browser: ratio to the minimal pipeline, p95 / p99 (worse eye)', `${result.ratio_p95} / ${result.ratio_p99} (goal ≤ 1.5 / ≤ 2)`]);
}
for (const [k, v] of rows) console.log('  ' + k.padEnd(66) + ' ' + v);
const dir = join(root, 'bench', 'results');
const latest = join(dir, 'latest.json');
const doc = existsSync(latest) ? JSON.parse(readFileSync(latest, 'utf8')) : {};
doc[key] = result;
doc.table = (doc.table || []).filter(([k]) => !k.startsWith(tag)).concat(rows);
const text = JSON.stringify(doc);
writeFileSync(latest, text);
const dated = doc.date ? readdirSync(dir).filter((f) => f.endsWith(`-${doc.commit}.json`) && f.startsWith(doc.date.replace(/:/g, ''))) : [];
for (const f of dated) writeFileSync(join(dir, f), text);
console.log(`${key} figures merged into`, latest);
