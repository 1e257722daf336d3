// `make bench`, browser scenario: headless Chromium shows both eyes (2 × 960x1080 @ 30 fps,
// 3 Mbit/s: the daemon's defaults) with the latency probe on; capture→paint per eye from the
// painted pixels, where it went (to the message event, decoder, drawImage), stereo skew, frames
// dropped. The minimal reference pipeline (PIEYES_FLOOR, ../shared/floor: its README) runs
// before and after each of PIEYES_BENCH_ROUNDS pieyes runs with the same size, rate and bitrate;
// pieyes' p95/p99 are given as ratios to the better of the floor runs around it, and the
// figures kept are the median round's. Merged into bench/results/latest.json (and its dated
// twin) as "browser".
//
// `--lossy`: the same page over a shaped link instead (run by tests/browser/lossy-link.sh
// inside its network namespaces, as root): the daemon in PIEYES_NETNS_SERVER at
// PIEYES_NETNS_ADDR, this script and Chromium in the client namespace; a loss burst
// (PIEYES_BURST_MS of 100 % loss) in the middle, and how long the page takes to recover.
// Merged as "browser_lossy"; no floor run. With PIEYES_LINK_RATE (bit/s; lossy-link.sh narrows
// the link to it) as "browser_lossy_<N>mbit" instead.
//
// Then (not `--lossy`) the three viewer paths against one daemon, merged as "browser_paths":
// see pathsRun. `--paths` runs only that part.
import { readFileSync, writeFileSync, readdirSync, existsSync, mkdtempSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, launch, root } from './lib.mjs';

const SECONDS = 20 * Number(process.env.PIEYES_BENCH_SCALE || 1);
const LOSSY = process.argv.includes('--lossy');
const extraArgs = (process.env.PIEYES_ARGS || '').split(' ').filter(Boolean); // e.g. `--www www` while developing
const r = (v) => Math.round(v * 10) / 10;
// pieyes runs against the minimal pipeline (PIEYES_BENCH_ROUNDS, default 3).
const ROUNDS = Math.max(1, Number(process.env.PIEYES_BENCH_ROUNDS || 3));

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

async function pieyesRun(args = []) {
  const daemon = await startDaemon([...extraArgs, ...args], LOSSY
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

// The three paths a viewer may take, one after the other against one daemon, in one browser:
// WebCodecs over http://localhost, WebCodecs over https (the daemon's own certificate,
// accepted), MSE over plain http from "another machine" (robot.test mapped to 127.0.0.1, not a
// secure context). Per path capture→paint from the painted pixels and the daemon's CPU while
// it streamed (utime+stime from /proc), so TLS's cost shows against plain http.
const PATH_SECONDS = Math.max(5, SECONDS / 2);
async function pathsRun() {
  const daemon = await startDaemon([...extraArgs, '--allowed-hosts', 'robot.test']);
  const browser = await launch(['--host-resolver-rules=MAP robot.test 127.0.0.1', '--ignore-certificate-errors']);
  const port = new URL(daemon.url).port;
  const ticks = () => {
    const f = readFileSync(`/proc/${daemon.proc.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime, clock ticks (USER_HZ = 100)
  };
  const paths = [
    ['webcodecs_http_localhost', `http://localhost:${port}/?latency`, 'WebCodecs'],
    ['webcodecs_https', `https://robot.test:${port}/?latency`, 'WebCodecs'],
    ['mse_http', `http://robot.test:${port}/?latency`, 'MSE'],
  ];
  const out = {};
  try {
    for (const [key, url, want] of paths) {
      const page = await browser.ctx.newPage();
      await page.goto(url);
      await page.waitForFunction(() => window.pieyes && window.pieyes.snapshot().every((e) => e.painted > 60), null, { timeout: 60000 });
      const path = await page.evaluate(() => window.pieyes.path);
      if (path !== want) throw new Error(`${url} played through ${path}, not ${want}`);
      await page.evaluate(() => window.pieyes.latency.reset());
      const t0 = Date.now(), c0 = ticks();
      await page.waitForTimeout(PATH_SECONDS * 1000);
      const cpu = ((ticks() - c0) / 100) / ((Date.now() - t0) / 1000);
      const stats = await page.evaluate(() => window.pieyes.latency.stats());
      const snap = await page.evaluate(() => window.pieyes.snapshot());
      const worst = (k) => r(Math.max(...stats.eyes.map((e) => e[k])));
      out[key] = {
        path, seconds: PATH_SECONDS, painted: stats.eyes.map((e) => e.n),
        capture_paint_p50_ms: worst('p50'), capture_paint_p95_ms: worst('p95'), capture_paint_p99_ms: worst('p99'),
        frames_missing_on_screen: stats.eyes.map((e) => e.frameGaps), daemon_cpu_percent: r(cpu * 100),
        mse: snap[0].mse,
      };
      await page.close();
    }
  } finally {
    await browser.close();
    daemon.stop();
  }
  const base = out.webcodecs_http_localhost;
  for (const v of Object.values(out)) {
    v.ratio_p50 = Math.round((v.capture_paint_p50_ms / base.capture_paint_p50_ms) * 100) / 100;
    v.ratio_p95 = Math.round((v.capture_paint_p95_ms / base.capture_paint_p95_ms) * 100) / 100;
  }
  return out;
}

const ONLY_PATHS = process.argv.includes('--paths');
// The daemon's CPU with TLS against without: VIEWERS WebSocket viewers per eye that read and
// discard the stream, all plain, then all over TLS, each for PATH_SECONDS on one daemon (no
// browser: its CPU would blur the difference). Encoding dominates the daemon's CPU, so the
// difference per viewer is what TLS costs.
const VIEWERS = 8;
async function tlsCpuRun() {
  const net = await import('node:net');
  const tls = await import('node:tls');
  const daemon = await startDaemon(extraArgs);
  const port = Number(new URL(daemon.url).port);
  const ticks = () => {
    const f = readFileSync(`/proc/${daemon.proc.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]);
  };
  const viewer = (secure, eye) => new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false };
    const s = secure ? tls.connect(opts) : net.connect(opts);
    s.once(secure ? 'secureConnect' : 'connect', () => {
      s.write(`GET /cam${eye} HTTP/1.1\r\nHost: localhost:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    });
    let bytes = 0;
    s.on('data', (d) => { bytes += d.length; if (bytes > 100000) resolve(s); });
    s.on('error', reject);
    setTimeout(() => reject(new Error('viewer got no stream in 20 s')), 20000);
  });
  const out = {};
  try {
    for (const secure of [false, true]) {
      const socks = await Promise.all(Array.from({ length: 2 * VIEWERS }, (_, i) => viewer(secure, i % 2)));
      const t0 = Date.now(), c0 = ticks();
      await new Promise((r) => setTimeout(r, PATH_SECONDS * 1000));
      out[secure ? 'tls' : 'plain'] = r((((ticks() - c0) / 100) / ((Date.now() - t0) / 1000)) * 100);
      for (const s of socks) s.destroy();
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    daemon.stop();
  }
  return { viewers_per_eye: VIEWERS, seconds: PATH_SECONDS, daemon_cpu_percent_plain: out.plain, daemon_cpu_percent_tls: out.tls,
    tls_cost_percent_per_viewer: r(((out.tls - out.plain) / (2 * VIEWERS)) * 100) / 100 };
}

let result = null;
let paths = null;
if (ONLY_PATHS) {
  paths = await pathsRun();
  paths.tls_cpu = await tlsCpuRun();
} else if (LOSSY) {
  result = await pieyesRun();
} else {
  // ROUNDS pieyes runs, each between two floor runs (floor, pieyes, floor, pieyes, floor …), so
  // a ratio compares runs a minute apart; on this shared machine the floor's own p95 has moved
  // 10× between runs. A round's ratio is against the better of the floor runs around it (a
  // disturbed floor run would flatter pieyes: the mean once gave 0.23×); the figure kept is the
  // median round's.
  const worst = (run, k) => Math.max(...run.eyes.map((e) => e[k]));
  const floors = [floorRun()];
  // One pieyes run (with `args`) and the floor run after it, measured against the better of
  // that floor run and the one before.
  const round = async (args = []) => {
    const pieyes = await pieyesRun(args);
    floors.push(floorRun());
    const [before, after] = floors.slice(-2);
    const floor = Object.fromEntries(Object.keys(before).filter((k) => k.endsWith('_ms'))
      .map((k) => [k, r(Math.min(before[k], after[k]))]));
    return {
      ...pieyes,
      floor: { ...floor, runs: [before, after] },
      ratio_p95: Math.round((worst(pieyes, 'capture_paint_p95_ms') / floor.capture_draw_p95_ms) * 100) / 100,
      ratio_p99: Math.round((worst(pieyes, 'capture_paint_p99_ms') / floor.capture_draw_p99_ms) * 100) / 100,
    };
  };
  const rounds = [];
  for (let i = 0; i < ROUNDS; i++) rounds.push(await round());
  const median = [...rounds].sort((x, y) => x.ratio_p95 - y.ratio_p95)[Math.floor(rounds.length / 2)];
  // One more round with `--deblock off`: what the loop filter costs end to end, in the encoder
  // and in the page's decoder.
  const plain = await round(['--deblock', 'off']);
  const deblockOff = {
    capture_paint_p50_ms: worst(plain, 'capture_paint_p50_ms'), capture_paint_p95_ms: worst(plain, 'capture_paint_p95_ms'),
    capture_paint_p99_ms: worst(plain, 'capture_paint_p99_ms'),
    capture_to_message_p50_ms: plain.eyes[0].capture_to_message_p50_ms, message_to_output_p50_ms: plain.eyes[0].message_to_output_p50_ms,
    ratio_p95: plain.ratio_p95, ratio_p99: plain.ratio_p99,
  };
  result = {
    ...median,
    deblock_off: deblockOff,
    rounds: rounds.map((x) => ({ ratio_p95: x.ratio_p95, ratio_p99: x.ratio_p99,
      pieyes_p95_ms: worst(x, 'capture_paint_p95_ms'), pieyes_p99_ms: worst(x, 'capture_paint_p99_ms'),
      floor_p95_ms: x.floor.capture_draw_p95_ms, floor_p99_ms: x.floor.capture_draw_p99_ms })),
  };
  paths = await pathsRun();
  paths.tls_cpu = await tlsCpuRun();
}

const LINK_MBIT = process.env.PIEYES_LINK_RATE ? Number(process.env.PIEYES_LINK_RATE) / 1e6 : null;
const key = !LOSSY ? 'browser' : LINK_MBIT ? `browser_lossy_${LINK_MBIT}mbit` : 'browser_lossy';
const tag = !LOSSY ? 'browser: ' : LINK_MBIT ? `lossy link at ${LINK_MBIT} Mbit/s: ` : 'lossy link: ';
const e = result ? result.eyes : null;
const rows = !result ? [] : [
  [`${tag}capture→paint p50 / p95 / p99 (eye 0)`, `${e[0].capture_paint_p50_ms} / ${e[0].capture_paint_p95_ms} / ${e[0].capture_paint_p99_ms} ms`],
  [`${tag}capture→paint p50 / p95 / p99 (eye 1)`, `${e[1].capture_paint_p50_ms} / ${e[1].capture_paint_p95_ms} / ${e[1].capture_paint_p99_ms} ms`],
  [`${tag}capture→message / →decoded / drawImage p50 (eye 0)`, `${e[0].capture_to_message_p50_ms} / ${e[0].message_to_output_p50_ms} / ${e[0].draw_p50_ms} ms`],
  [`${tag}stereo skew between displayed frames p50 / p95`, `${result.stereo_skew_p50_ms} / ${result.stereo_skew_p95_ms} ms`],
  [`${tag}frames not shown (gaps) / viewer drops, per eye`, `${e[0].frames_missing_on_screen}, ${e[1].frames_missing_on_screen} / ${e[0].viewer_drops}, ${e[1].viewer_drops}`],
];
if (!result) {
  // --paths: only the paths below
} else if (LOSSY) {
  const b = result.burst;
  rows.push([`${tag}after a ${b.ms} ms loss burst: first fresh frame / latency back, per eye`,
    `${b.first_fresh_frame_ms.join(', ')} / ${b.latency_back_ms.join(', ')} ms (worst capture→paint ${b.worst_latency_ms.join(', ')} ms)`]);
} else {
  const f = result.floor;
  rows.push(['browser: minimal pipeline capture→draw p50 / p95 / p99', `${f.capture_draw_p50_ms} / ${f.capture_draw_p95_ms} / ${f.capture_draw_p99_ms} ms (the better of a run before and after: p95 ${f.runs.map((x) => x.capture_draw_p95_ms).join(' / ')} ms)`]);
  rows.push([`browser: ratio to the minimal pipeline, p95 / p99 (worse eye), median of ${result.rounds.length} rounds`,
    `${result.ratio_p95} / ${result.ratio_p99} (goal ≤ 1.5 / ≤ 2; rounds: ${result.rounds.map((x) => `${x.ratio_p95} / ${x.ratio_p99}`).join(', ')})`]);
  const d = result.deblock_off;
  rows.push(['browser: --deblock off: capture→paint p50 / p95 / p99 (worse eye)', `${d.capture_paint_p50_ms} / ${d.capture_paint_p95_ms} / ${d.capture_paint_p99_ms} ms`]);
  rows.push(['browser: --deblock off: capture→message / →decoded p50 (eye 0)', `${d.capture_to_message_p50_ms} / ${d.message_to_output_p50_ms} ms`]);
  rows.push(['browser: --deblock off: ratio to the minimal pipeline, p95 / p99 (one round)', `${d.ratio_p95} / ${d.ratio_p99}`]);
}
const PATH_TAG = 'paths: ';
const pathRows = [];
if (paths) {
  const { tls_cpu: cpu, ...viewers } = paths;
  for (const [key, v] of Object.entries(viewers)) {
    pathRows.push([`${PATH_TAG}${key} capture→paint p50 / p95 / p99 (worse eye)`,
      `${v.capture_paint_p50_ms} / ${v.capture_paint_p95_ms} / ${v.capture_paint_p99_ms} ms (×${v.ratio_p50} / ×${v.ratio_p95} of http://localhost)`]);
  }
  for (const [key, v] of Object.entries(viewers)) pathRows.push([`${PATH_TAG}daemon CPU while ${key} streams`, `${v.daemon_cpu_percent} %`]);
  pathRows.push([`${PATH_TAG}daemon CPU, ${cpu.viewers_per_eye} viewers per eye plain / TLS`,
    `${cpu.daemon_cpu_percent_plain} / ${cpu.daemon_cpu_percent_tls} % (TLS ${Number(cpu.tls_cost_percent_per_viewer).toFixed(2)} % per viewer)`]);
}
for (const [k, v] of rows.concat(pathRows)) console.log('  ' + k.padEnd(66) + ' ' + v);
const dir = join(root, 'bench', 'results');
const latest = join(dir, 'latest.json');
const doc = existsSync(latest) ? JSON.parse(readFileSync(latest, 'utf8')) : {};
if (result) {
  doc[key] = result;
  doc.table = (doc.table || []).filter(([k]) => !k.startsWith(tag)).concat(rows);
}
if (paths) {
  doc.browser_paths = paths;
  doc.table = doc.table.filter(([k]) => !k.startsWith(PATH_TAG)).concat(pathRows);
}
const text = JSON.stringify(doc);
writeFileSync(latest, text);
const dated = doc.date ? readdirSync(dir).filter((f) => f.endsWith(`-${doc.commit}.json`) && f.startsWith(doc.date.replace(/:/g, ''))) : [];
for (const f of dated) writeFileSync(join(dir, f), text);
console.log(`${result ? key : 'browser_paths'} figures merged into`, latest);
