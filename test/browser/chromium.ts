// A real browser for the web UI's tests: Debian's chromium (make setup installs it;
// never a downloaded browser) driven by playwright-core. It trusts the test cluster's
// CA the way a user's browser would be told to: the CA goes into the NSS database of
// a HOME of its own (certutil, libnss3-tools), so TLS is verified for real, not
// switched off. Every page opened through `open` is watched: its console errors and
// uncaught exceptions are collected for the test to assert none.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SCREENSHOTS = join(root, 'test-results', 'browser');

export interface Session {
  browser: Browser;
  context: BrowserContext;
  /** Console errors and uncaught exceptions of every page opened so far, each as `page: text`. */
  problems: string[];
  /** A new page at `url`, watched. */
  open(url: string, name: string): Promise<Page>;
  /** A full-page screenshot into test-results/browser/NAME.png; returns the file. */
  screenshot(page: Page, name: string): Promise<string>;
}

/** certutil's NSS database in `home`, trusting `caPem` to issue server certificates. */
function trustInNss(home: string, caPem: string): void {
  const db = join(home, '.pki', 'nssdb');
  mkdirSync(db, { recursive: true });
  const caFile = join(home, 'cluster-ca.pem');
  writeFileSync(caFile, caPem);
  try {
    execFileSync('certutil', ['-d', `sql:${db}`, '-N', '--empty-password'], { stdio: 'pipe' });
    execFileSync('certutil', ['-d', `sql:${db}`, '-A', '-n', 'workrs test cluster CA', '-t', 'C,,', '-i', caFile], { stdio: 'pipe' });
  } catch (err) {
    throw new Error('certutil could not make the browser trust the cluster CA (is libnss3-tools installed? run make setup)', { cause: err });
  }
}

/**
 * `go()` (a goto or reload), again when Chromium aborted it with ERR_NETWORK_CHANGED
 * (at most 3 tries): Docker adds and removes a veth pair with every container another
 * test starts beside this one, and Chromium aborts what is in flight when the host's
 * interfaces change. Any other failure is thrown at once.
 */
export async function navigate<T>(go: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await go();
    } catch (err) {
      if (attempt >= 3 || !(err instanceof Error) || !err.message.includes('net::ERR_NETWORK_CHANGED')) throw err;
    }
  }
}

/**
 * Chromium, started trusting `caPem`, with one context that accepts downloads; closed
 * (and its HOME removed) when `t` ends. Throws, failing the test, when chromium is
 * not installed: browser tests never skip.
 */
export async function startBrowser(t: { teardown(fn: () => unknown): void }, caPem: string): Promise<Session> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run make setup (it installs Debian's chromium)`);
  const home = mkdtempSync(join(tmpdir(), 'workrs-browser-'));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  trustInNss(home, caPem);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], env: { ...process.env, HOME: home } });
  t.teardown(() => browser.close());
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const problems: string[] = [];
  mkdirSync(SCREENSHOTS, { recursive: true });
  return {
    browser,
    context,
    problems,
    async open(url, name) {
      const page = await context.newPage();
      page.on('console', (m) => {
        // Chromium aborts requests in flight when the host's interfaces change, and
        // Docker adds and removes a veth pair with every container another test starts:
        // that is the machine's doing, not the page's (its next poll asks again).
        if (m.type() === 'error' && !m.text().includes('net::ERR_NETWORK_CHANGED')) problems.push(`${name}: console: ${m.text()} (${m.location().url})`);
      });
      page.on('pageerror', (e) => problems.push(`${name}: uncaught: ${e.message}`));
      await navigate(() => page.goto(url));
      return page;
    },
    async screenshot(page, name) {
      const file = join(SCREENSHOTS, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
  };
}
