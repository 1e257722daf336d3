// `--tls off` (issue 13): the port serves plain http only, so the page on http from another
// machine (robot.test, mapped to 127.0.0.1 inside Chromium only) plays through MSE and offers
// no https link or certificate note that would lead nowhere. Screenshot in
// target/test-artifacts/remote-tls-off.png.
import { join } from 'node:path';
import { runTest, check, artifacts } from './lib.mjs';

const ARGS = ['--fps', '30', '--allowed-hosts', 'robot.test', '--tls', 'off', ...(process.env.PIEYES_ARGS || '').split(' ').filter(Boolean)];

await runTest(ARGS, async ({ daemon, page, errors }) => {
  const port = new URL(daemon.url).port;
  await page.goto(`http://robot.test:${port}/`);
  // Both hellos in, and frames painted: the page has had every chance to make its offer.
  await page.waitForFunction(() => window.pieyes && window.pieyes.eyes.every((e) => e.hello) &&
    window.pieyes.snapshot().every((e) => e.painted > 10), null, { timeout: 45000 });
  check(await page.evaluate(() => window.pieyes.path) === 'MSE', 'http: the page plays through MSE');
  check(await page.evaluate(() => window.pieyes.eyes.every((e) => e.hello.https === false)), 'the hello says the port serves no https');
  check(await page.isHidden('#https-hint') && await page.isHidden('#https-badge'), '--tls off: no https link and no certificate note');
  await page.screenshot({ path: join(artifacts, 'remote-tls-off.png') });
  check(errors.length === 0, `no page errors (${errors.join('; ')})`);
}, { chromiumArgs: ['--host-resolver-rules=MAP robot.test 127.0.0.1'] });
