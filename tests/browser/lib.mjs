// Helpers for the browser tests: start the daemon, launch Debian's Chromium headless with a
// fresh profile, and read the viewer's state.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const artifacts = join(root, 'target', 'test-artifacts');
mkdirSync(artifacts, { recursive: true });

export function binary() {
  return process.env.PIEYES_BIN || join(root, 'target', 'release', 'pieyes');
}

// Start pieyes on an ephemeral port; resolves with { url, control, proc, log() }. `listen`: the
// address; `wrap`: a command in front of the binary (`ip netns exec NS` for the lossy-link bench).
export function startDaemon(args = [], { listen = '127.0.0.1', wrap = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'pieyes-browser-'));
  const control = join(dir, 'ctl.sock');
  const argv = [binary(), '--listen', listen + ':0', '--camera', 'synthetic', '--control', control, '--state', join(dir, 'state.conf'), ...args];
  const proc = spawn(wrap.length ? wrap[0] : argv[0], [...wrap.slice(1), ...(wrap.length ? argv : argv.slice(1))], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('daemon did not start:\n' + log)), 20000);
    proc.stderr.on('data', (d) => {
      log += d;
      const m = /listening on (http:\/\/[^/]+\/)/.exec(log);
      if (m && timer) {
        clearTimeout(timer);
        resolve({
          url: m[1], control, proc, log: () => log,
          stop() { proc.kill('SIGTERM'); rmSync(dir, { recursive: true, force: true }); },
        });
      }
    });
    proc.on('exit', (code) => reject(new Error(`daemon exited ${code}:\n${log}`)));
  });
}

export async function launch(extraArgs = []) {
  const profile = mkdtempSync(join(tmpdir(), 'pieyes-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...extraArgs],
  });
  return { ctx, close: async () => { await ctx.close(); rmSync(profile, { recursive: true, force: true }); } };
}

// One command over the daemon's Unix control socket: its reply line (rejected after timeoutMs).
export function ctlLine(controlPath, cmd, timeoutMs) {
  return new Promise((resolve, reject) => {
    const s = connect(controlPath);
    let buf = '';
    const t = setTimeout(() => { s.destroy(); reject(new Error('no reply to ' + cmd)); }, timeoutMs);
    s.on('data', (d) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) {
        clearTimeout(t);
        s.end();
        resolve(buf.slice(0, i));
      }
    });
    s.on('error', (e) => { clearTimeout(t); reject(e); });
    s.write(cmd + '\n');
  });
}

export function check(cond, msg) {
  if (!cond) throw new Error('FAILED: ' + msg);
  console.log('ok -', msg);
}

// Run one browser test file: start the daemon with `args`, launch Chromium (with
// `chromiumArgs` besides the usual flags), open a page
// (collecting page errors), run `body({ daemon, browser, page, errors })`, and always clean up;
// a failure prints its message and the daemon log's tail, and the process exits 1.
export async function runTest(args, body, { budgetMs = 300000, chromiumArgs = [] } = {}) {
  const watchdog = setTimeout(() => {
    console.error(`FAILED: took longer than ${budgetMs / 1000} s`);
    process.exit(1);
  }, budgetMs);
  const daemon = await startDaemon(args);
  const browser = await launch(chromiumArgs);
  let failed = false;
  try {
    const page = await browser.ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await body({ daemon, browser, page, errors });
  } catch (e) {
    failed = true;
    console.error(e.message);
    console.error('--- daemon log (tail) ---\n' + daemon.log().split('\n').slice(-40).join('\n'));
  } finally {
    await browser.close();
    daemon.stop();
    clearTimeout(watchdog);
  }
  process.exit(failed ? 1 : 0);
}
