// The web UI in a real browser (Debian's chromium through playwright-core, trusting
// the cluster CA) against a secure-mode three-node cluster running jobs in Docker: a
// submission with an uploaded file through the form, its log followed while it runs,
// its result downloaded by the browser itself and checked byte by byte; a job
// cancelled; a job whose box is destroyed, its resumed attempt and checkpoint in the
// timeline, and the loss on the cluster page; the leader in the header; the images
// page with an import; the job list walked page by page. The page's CSP is enforced
// (an injected inline script does not run), and no page of the session logs a console
// error or throws. Screenshots go to test-results/browser/.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Page } from 'playwright-core';
import type { JobView } from '../../src/state/views.js';
import { layerBytes, writeDockerSaveTar } from '../helpers/docker-save-fixture.js';
import { waitFor } from '../helpers/wait.js';
import { dockerCluster, removeClusterContainers } from '../docker/cluster-containers.js';
import type { LocalCluster } from '../process/harness.js';
import { navigate, startBrowser, type Session } from './chromium.js';

const IDS = ['n1', 'n2', 'n3'];

/** The page's text at `sel` (empty when absent). */
async function textOf(page: Page, sel: string): Promise<string> {
  return (await page.locator(sel).first().textContent({ timeout: 1000 }).catch(() => null)) ?? '';
}

async function untilText(page: Page, sel: string, want: RegExp, timeoutMs = 30_000): Promise<string> {
  return waitFor(`${sel} to match ${want}`, async () => {
    const text = await textOf(page, sel);
    return want.test(text) ? text : undefined;
  }, timeoutMs, 100);
}

/** The page on node `id`, signed in through its token form (unless this browser kept a token for that node's origin). */
async function signedIn(s: Session, c: LocalCluster, id: string, token: string): Promise<Page> {
  const page = await s.open(`${c.url(id)}/`, id);
  await page.locator('#role, #token-form:not([hidden])').first().waitFor();
  if (await page.locator('#role').count() > 0) return page;
  await page.fill('#token', token);
  await page.click('#token-form button[type=submit]');
  await page.locator('#role').waitFor();
  return page;
}

/** What `tar -xOf` prints of `member` in `tarFile`. */
function member(tarFile: string, name: string): Buffer {
  return execFileSync('tar', ['-xOf', tarFile, name]);
}

t.test('the web UI in chromium against a secure Docker cluster', async (t) => {
  const { c, passed } = await dockerCluster(t);
  const caPem = c.caPem();
  if (caPem === null) throw new Error('no CA yet');
  const s = await startBrowser(t, caPem);
  const admin = await c.createToken('admin', { name: 'browser' });
  const work = mkdtempSync(join(tmpdir(), 'workrs-browser-test-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));

  const page = await signedIn(s, c, 'n1', admin.token);
  const leader = await c.leader();
  await t.test('the header shows the role, the CA and the leader', async (t) => {
    t.equal(await textOf(page, '#role'), 'admin');
    t.match(await textOf(page, '#ca-fingerprint'), /^sha256:([0-9a-f]{4} ){15}[0-9a-f]{4}$/);
    t.equal(await untilText(page, '#leader', /^leader /, 10_000), `leader ${leader}`, 'the leader every node agrees on');
  });

  let uploadJob = '';
  await t.test('a submission with an uploaded file, its log followed live, its result downloaded', async (t) => {
    await page.click('nav a[data-nav="submit"]');
    await page.locator('#submit-form').waitFor();
    const input = Buffer.concat([Buffer.from(`the input ${randomBytes(8).toString('hex')}\n`), randomBytes(2048)]);
    await page.setInputFiles('#f-files', { name: 'input.bin', mimeType: 'application/octet-stream', buffer: input });
    await page.fill('#f-command', `sh -c 'head -n 1 input.bin; i=0; while [ $i -lt 12 ]; do i=$((i+1)); echo tick $i; sleep 0.5; done; cp input.bin out.bin'`);
    await page.fill('#f-outputs', 'out.bin');
    await page.selectOption('#f-checkpoint', 'off');
    await page.fill('#f-estimate', '10s');
    await page.click('#submit-form button[type=submit]');
    uploadJob = await waitFor('the job page', async () => /^#\/jobs\/(.+)$/.exec(new URL(page.url()).hash)?.[1], 15_000, 50);

    // Live: the log shows the first ticks while the job still runs.
    await untilText(page, '#logs', /tick 2\n/, 60_000);
    t.equal(await textOf(page, 'main h1 .state'), 'running', 'the log is followed while the job runs');
    t.notMatch(await textOf(page, '#logs'), /tick 12/, 'before its end');
    t.match(await textOf(page, '#logs'), /^the input [0-9a-f]{16}\n/, 'the uploaded file is in /work');
    await s.screenshot(page, 'job-live-logs');
    await untilText(page, 'main h1 .state', /^succeeded$/, 60_000);
    t.match(await untilText(page, '#logs', /tick 12\n$/, 10_000), /tick 1\n[^]*tick 12\n$/, 'the whole log');
    await s.screenshot(page, 'job-succeeded');

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-result')]);
    const saved = join(work, 'result.tar');
    await download.saveAs(saved);
    t.equal(download.suggestedFilename(), `${uploadJob}-result.tar`, 'saved under the name the node gave');
    const viaApi = Buffer.from(await (await c.request('n2', `/v1/jobs/${uploadJob}/result`)).arrayBuffer());
    t.ok(readFileSync(saved).equals(viaApi), `the downloaded tar is the API's, byte for byte (${viaApi.length} bytes)`);
    t.ok(member(saved, 'out.bin').equals(input), 'its declared output is the uploaded file');
    t.equal(member(saved, 'exit-code').toString().trim(), '0');
    t.match(member(saved, 'stdout.log').toString(), /tick 12\n$/);
  });

  await t.test('a refused download says why and leaves the page', async (t) => {
    // No such job, so no result: the node's refusal lands in the hidden frame. (The
    // page offers the button only for finished jobs; WorkrsDom is its script's own.)
    const before = page.url();
    await page.evaluate('WorkrsDom.downloadResult("no-such-job")');
    t.match(await untilText(page, '#error', /JOB_NOT_FOUND/, 10_000), /no-such-job/, "the node's reason is shown");
    t.equal(page.url(), before, 'the page stayed');
    // The browser logs the refused request itself: the one console error this test makes.
    const logged = s.problems.findIndex((p) => p.includes('status of 404') && p.includes('/v1/jobs/no-such-job/result'));
    t.ok(logged >= 0, 'the browser logged the 404 of the refused download');
    s.problems.splice(logged, 1);
  });

  await t.test('cancel', async (t) => {
    const sub = await c.post<{ id: string }>('n2', '/v1/jobs', { command: ['sleep', '600'], checkpoint: { mode: 'off' } });
    t.equal(sub.status, 202);
    await navigate(() => page.goto(`${c.url('n1')}/#/jobs/${sub.body.id}`));
    await untilText(page, 'main h1 .state', /^running$/, 60_000);
    page.once('dialog', (d) => void d.accept());
    await page.click('#cancel');
    await untilText(page, 'main h1 .state', /^cancelled$/, 30_000);
    t.equal((await c.get<JobView>('n3', `/v1/jobs/${sub.body.id}`)).body.state, 'cancelled', 'the cluster has it cancelled');
    t.equal(await page.locator('#download-result').isDisabled(), true, 'a cancelled job offers no result');
    await s.screenshot(page, 'job-cancelled');
  });

  await t.test('a job whose box is destroyed: the resumed attempt in the timeline, the loss on the cluster page', async (t) => {
    const script = 'echo START; i=0; while [ $i -lt 150 ]; do i=$((i+1)); echo $i; sleep 0.1; done; echo DONE';
    const sub = await c.post<{ id: string }>('n1', '/v1/jobs', { command: ['sh', '-c', script], checkpoint: { mode: 'interval', intervalSeconds: 2 } });
    t.equal(sub.status, 202);
    const id = sub.body.id;
    const first = await waitFor('a committed checkpoint', async () => {
      const j = (await c.get<JobView>('n1', `/v1/jobs/${id}`)).body;
      return j.checkpoints.length > 0 && j.node && j.state === 'running' ? j : undefined;
    }, 60_000, 100);
    const victim = first.node ?? '';
    const survivor = IDS.find((n) => n !== victim) ?? 'n1';
    const p = survivor === 'n1' ? page : await signedIn(s, c, survivor, admin.token);
    await navigate(() => p.goto(`${c.url(survivor)}/#/jobs/${id}`));
    await p.locator('svg.timeline circle.checkpoint').first().waitFor();
    await untilText(p, '#logs', /\n\d+\n$/, 10_000);
    await s.screenshot(p, 'job-before-loss');

    // A page on the destroyed box would only log its refused connections.
    if (victim === 'n1') await page.close();
    await c.kill(victim);
    await removeClusterContainers(c, victim);
    rmSync(c.node(victim).dataDir, { recursive: true, force: true });
    t.comment(`destroyed ${victim}, the box of job ${id}; watching from ${survivor}`);

    await untilText(p, 'main h1 .state', /^succeeded$/, 150_000);
    // The log followed through the survivor was cut when the box died: the node ends the
    // answer unfinished (not with a clean end that would claim the log was whole), which
    // the browser logs. The page then follows the resumed attempt's log.
    const cut = s.problems.findIndex((e) => e.includes('ERR_INCOMPLETE_CHUNKED_ENCODING') && e.includes(`/v1/jobs/${id}/logs?follow=1`));
    if (cut >= 0) s.problems.splice(cut, 1);
    await p.locator('svg.timeline path.resume').waitFor({ timeout: 5000 });
    t.equal(await p.locator('svg.timeline rect.attempt').count(), 2, 'two attempts in the timeline');
    const rows = await p.locator('main table').nth(0).locator('tbody tr').allTextContents();
    t.equal(rows.length, 2, 'two attempts in the table');
    t.match(rows[1] ?? '', new RegExp(`checkpoint 1\\.\\d+`), 'the second resumed from a checkpoint of the first');
    t.notMatch(rows[1] ?? '', new RegExp(`^2${victim}`), 'on another box');
    t.match(await untilText(p, '#logs', /DONE\n$/, 10_000), /^START\n1\n/, 'the log from the start to the end');
    await s.screenshot(p, 'job-resumed');

    await p.click('nav a[data-nav="cluster"]');
    await p.locator(`tr[data-node="${victim}"] .state-lost`).waitFor({ timeout: 60_000 });
    t.pass(`the cluster page shows ${victim} lost`);
    const newLeader = await c.leader(30_000);
    t.equal(await untilText(p, '#leader', new RegExp(`^leader ${newLeader}$`), 15_000), `leader ${newLeader}`, 'the header follows the leader');
    await s.screenshot(p, 'cluster-loss');
  });

  // The destroyed box may have been n1: go on through a node that is up.
  const live = IDS.find((n) => c.node(n).proc !== null) ?? 'n2';
  const q = live === 'n1' ? page : await signedIn(s, c, live, admin.token);

  await t.test('the images page lists the images and imports one', async (t) => {
    const tar = join(work, 'image.tar');
    await writeDockerSaveTar(tar, [{ tags: ['browser-test/hello:1'], layer: layerBytes('browser', 200_000) }]);
    await navigate(() => q.goto(`${c.url(live)}/#/images`));
    await q.locator('#image-import-form').waitFor();
    await q.setInputFiles('#i-file', tar);
    await q.click('#image-import-form button[type=submit]');
    t.match(await untilText(q, '#import-result', /Imported/, 60_000), /browser-test\/hello:1/);
    const listed = await c.get<{ images: Array<{ name: string | null; blob: string }> }>(live, '/v1/images');
    const blob = listed.body.images.find((i) => i.name === 'browser-test/hello:1')?.blob ?? '';
    t.ok(blob, 'the cluster has it');
    t.match(await textOf(q, `tr[data-image="${blob}"]`), /browser-test\/hello:1/, 'and the page lists it');
    await s.screenshot(q, 'images');
  });

  await t.test('the job list is walked page by page', async (t) => {
    const all = (await c.listAllJobs<{ id: string }>(live)) ?? [];
    t.ok(all.length >= 3, `${all.length} jobs`);
    const shown = async (): Promise<string[]> => q.locator('tr[data-job]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job') ?? ''));
    const pageShows = async (ids: string[]): Promise<void> => {
      await waitFor(`the page to show ${ids.join(', ')}`, async () => (JSON.stringify(await shown()) === JSON.stringify(ids) ? true : undefined), 10_000, 100);
    };
    await navigate(() => q.goto(`${c.url(live)}/#/?limit=2`));
    await pageShows(all.slice(0, 2).map((j) => j.id));
    t.equal(await q.locator('#page-newer').isDisabled(), true, 'no newer page than the first');
    await q.click('#page-older');
    await pageShows(all.slice(2, 4).map((j) => j.id));
    t.match(await textOf(q, '#page-where'), /^jobs 3–/, 'where the page is');
    await s.screenshot(q, 'jobs-page-2');
    await q.click('#page-newer');
    await pageShows(all.slice(0, 2).map((j) => j.id));
    for (let i = 2; i < all.length; i += 2) await q.click('#page-older').then(() => pageShows(all.slice(i, i + 2).map((j) => j.id)));
    await waitFor('the last page', async () => ((await q.locator('#page-older').isDisabled()) ? true : undefined), 10_000, 100);
    t.pass(`walked all ${all.length} jobs, 2 a page, to the last page`);
    await q.click('#page-newest');
    await pageShows(all.slice(0, 2).map((j) => j.id));
  });

  await t.test('no console error or uncaught exception in the whole session', async (t) => {
    t.same(s.problems, [], 'none');
  });

  await t.test('the CSP is enforced: an injected inline script does not run', async (t) => {
    await navigate(() => q.goto(`${c.url(live)}/#/cluster`));
    const csp = (await navigate(() => q.reload()))?.headers()['content-security-policy'] ?? '';
    t.match(csp, /script-src|default-src 'self'/, 'the page came with its CSP');
    await q.locator('tr[data-node]').first().waitFor();
    const seen = s.problems.length;
    // Page code, as text: it runs in the browser, not here.
    const outcome = (await q.evaluate(`(async () => {
      const violations = [];
      document.addEventListener('securitypolicyviolation', (e) => violations.push(e.effectiveDirective + ' ' + e.blockedURI));
      const script = document.createElement('script');
      script.textContent = 'window.injectedRan = true';
      document.body.append(script);
      const box = document.createElement('div');
      box.innerHTML = '<img src="data:," onload="window.handlerRan = true" onerror="window.handlerRan = true">';
      document.body.append(box);
      await new Promise((r) => setTimeout(r, 500));
      return { injectedRan: window.injectedRan === true, handlerRan: window.handlerRan === true, violations };
    })()`)) as { injectedRan: boolean; handlerRan: boolean; violations: string[] };
    t.equal(outcome.injectedRan, false, 'the inline script did not run');
    t.equal(outcome.handlerRan, false, 'nor an inline event handler');
    t.ok(outcome.violations.includes('script-src-elem inline'), `a securitypolicyviolation for the script (${outcome.violations.join('; ')})`);
    t.ok(outcome.violations.includes('script-src-attr inline'), 'and for the handler');
    const refusals = s.problems.slice(seen);
    t.ok(refusals.length > 0 && refusals.every((p) => /Content Security Policy/.test(p)), `the only console errors since are the refusals (${refusals.length})`);
  });
  passed();
});
