// The web UI (GET /) in a real DOM (jsdom) against a real secure-mode cluster of
// workrs processes (HTTPS with the cluster CA, which this process trusts through the
// harness; API tokens with roles): the page and its files load without a token and
// under a strict CSP; the page asks for a token, shows its role and the CA's
// fingerprint, and offers exactly what the role may do, for a read, a submit and an
// admin token: lists jobs, submits one with an uploaded file and follows it (fields,
// attempts, timeline, logs), cancels one, shows the cluster's nodes, and for an admin
// makes and revokes tokens. A revoked token brings the token form back. A dev-mode
// node's page never asks for a token. The UI's pure helpers (command splitting,
// durations, the timeline's geometry) are checked on the script the executable serves;
// test/unit/ui-roles.test.ts checks the role logic against a scripted API.
import { X509Certificate } from 'node:crypto';
import t, { type Test } from 'tap';
import { type DomElement, type DomFile, type DomWindow, JSDOM, VirtualConsole } from 'jsdom';
import { LocalCluster, type Role } from './harness.js';
import { waitFor } from '../helpers/wait.js';
import { pageQueries } from '../helpers/dom.js';

interface UiHelpers {
  splitCommand(text: string): string[];
  parseDuration(text: string): number | null;
  parseEnv(text: string): Record<string, string>;
  buildSpec(v: Record<string, string>, files: string[]): Record<string, unknown>;
  timeline(job: unknown, now: number, width: number): { attempts: Array<{ x0: number; x1: number; open: boolean; resumedFromX: number | null }>; checkpoints: Array<{ x: number }> };
  formatFingerprint(text: string): string;
}


/** Checks an answer the page got against the API's OpenAPI description (the harness's checkAnswer). */
type AnswerCheck = (method: string, path: string, res: Response) => Promise<void>;

/** jsdom has no fetch: lend it Node's, translating jsdom's FormData, File and AbortSignal; each answer goes through `check`. */
function lendFetch(window: DomWindow, requests: string[], check: AnswerCheck): void {
  const readFile = (f: DomFile): Promise<ArrayBuffer> =>
    new Promise((resolve, reject) => {
      const reader = new window.FileReader();
      reader.onload = () => resolve(reader.result as ArrayBuffer);
      reader.onerror = () => reject(reader.error);
      reader.readAsArrayBuffer(f);
    });
  (window as unknown as { fetch: unknown }).fetch = async (input: string, init: { method?: string; headers?: Record<string, string>; body?: unknown; signal?: AbortSignal } = {}) => {
    const url = new URL(input, window.location.href);
    requests.push(`${init.method ?? 'GET'} ${url.pathname}${url.search} ${init.headers?.Authorization ? 'with token' : 'without token'}`);
    let body: FormData | string | undefined;
    if (init.body instanceof window.FormData) {
      const form = new FormData();
      for (const [name, value] of (init.body as InstanceType<DomWindow['FormData']>).entries()) {
        if (typeof value === 'string') form.append(name, value);
        else form.append(name, new Blob([await readFile(value)]), value.name);
      }
      body = form;
    } else if (typeof init.body === 'string') {
      body = init.body;
    }
    const controller = new AbortController();
    if (init.signal) {
      if (init.signal.aborted) controller.abort();
      init.signal.addEventListener('abort', () => controller.abort());
    }
    const res = await fetch(url, { method: init.method, headers: init.headers, body, signal: controller.signal });
    await check(init.method ?? 'GET', `${url.pathname}${url.search}`, res);
    return res;
  };
  (window as unknown as { TextDecoder: unknown }).TextDecoder = TextDecoder;
}


interface Page {
  window: DomWindow;
  /** Every request the page made: `METHOD /path?query with token|without token`. */
  requests: string[];
  consoleErrors: string[];
  q(sel: string): DomElement | null;
  count(sel: string): number;
  /** Waits until `sel` is in the page (with `gone`: until it is not). */
  see(sel: string, timeoutMs?: number, gone?: boolean): Promise<void>;
  set(sel: string, value: string): void;
  submit(sel: string): void;
  click(sel: string): void;
}

/** The page at `url` in jsdom, its fetch lent from Node (which trusts the cluster CA: the harness set undici's global dispatcher). */
async function openPage(t: { teardown(f: () => void): void }, url: string, check: AnswerCheck): Promise<Page> {
  const requests: string[] = [];
  const consoleErrors: string[] = [];
  const virtualConsole = new VirtualConsole();
  virtualConsole.on('jsdomError', (e) => consoleErrors.push(String(e.message)));
  virtualConsole.on('error', (e) => consoleErrors.push(String(e.message ?? e)));
  let closed = false;
  const dom = await JSDOM.fromURL(url, {
    runScripts: 'dangerously',
    resources: 'usable',
    pretendToBeVisual: true,
    virtualConsole,
    beforeParse: (window) => {
      lendFetch(window, requests, check);
      // A closed window's requests never answer, as in a browser whose tab is gone: the
      // script's callbacks would otherwise run on a window without a document.
      const w = window as unknown as { fetch: (...args: unknown[]) => Promise<unknown>; confirm: () => boolean };
      const lent = w.fetch;
      const never = new Promise<never>(() => undefined);
      w.fetch = (...args) => lent(...args).then((r) => (closed ? never : r), (err: unknown) => (closed ? never : Promise.reject(err)));
      // jsdom has no dialogs: every confirmation is a yes.
      w.confirm = () => true;
    },
  });
  const { window } = dom;
  t.teardown(() => {
    closed = true;
    window.close();
  });
  const doc = window.document;
  const { q, must } = pageQueries(doc);
  await waitFor('the UI script to run', async () => ((window as unknown as { WorkrsUI?: unknown }).WorkrsUI ? true : undefined), 10_000, 50);
  return {
    window,
    requests,
    consoleErrors,
    q,
    count: (sel) => doc.querySelectorAll(sel).length,
    see: async (sel, timeoutMs = 10_000, gone = false) => {
      await waitFor(gone ? `${sel} to go` : sel, async () => ((q(sel) === null) === gone ? true : undefined), timeoutMs, 50);
    },
    set: (sel, value) => {
      must(sel).value = value;
    },
    submit: (sel) => void must(sel).dispatchEvent(new window.Event('submit', { cancelable: true })),
    click: (sel) => void must(sel).dispatchEvent(new window.Event('click', { cancelable: true })),
  };
}

async function tokenFormShown(page: Page): Promise<void> {
  await waitFor('the token form', async () => (page.q('#token-form')?.hidden === false ? true : undefined), 10_000, 50);
}

async function signIn(page: Page, token: string): Promise<void> {
  await tokenFormShown(page);
  page.set('#token', token);
  page.submit('#token-form');
  await page.see('#role');
}

/** "sha256:abcd ef01 …" → "abcdef01…" */
function hexOf(shown: string | null | undefined): string {
  return (shown ?? '').replace(/^sha256:/, '').replace(/ /g, '');
}

/** What each role's page offers (docs/security.md's role table, the rows the UI has controls for). */
const ROWS: Array<{ role: Role; submits: boolean; tokens: boolean }> = [
  { role: 'read', submits: false, tokens: false },
  { role: 'submit', submits: true, tokens: false },
  { role: 'admin', submits: true, tokens: true },
];

t.test('the web UI on a secure cluster offers each role what it may do', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  const leader = await c.leader();
  await c.allReady();
  const base = c.url('n2');

  // The static files need no token; the API still does.
  const page = await fetch(`${base}/`);
  t.equal(page.status, 200, 'GET / answers without a token');
  t.match(page.headers.get('content-type'), /^text\/html/);
  t.match(page.headers.get('content-security-policy'), /default-src 'self'/, 'under a CSP that allows only its own files');
  t.match(await page.text(), /<script src="\/ui\/lib\.js"><\/script>\s*<script src="\/ui\/dom\.js"><\/script>\s*<script src="\/ui\/app\.js">/, 'its three scripts, in order');
  for (const name of ['lib.js', 'dom.js', 'app.js']) {
    const script = await fetch(`${base}/ui/${name}`);
    t.equal(script.status, 200, `GET /ui/${name} answers without a token`);
    t.match(script.headers.get('content-type'), /^text\/javascript/);
  }
  t.equal((await c.request('n2', '/v1/jobs', { token: null })).status, 401, 'the API behind it still needs a token');

  // The fingerprint the page must show: the one the node serves with its CA, the CA's own.
  const caAnswer = await fetch(`${base}/v1/cluster/ca`);
  const fingerprint = caAnswer.headers.get('x-workrs-ca-fingerprint') ?? '';
  t.equal(fingerprint, new X509Certificate(await caAnswer.text()).fingerprint256.replace(/:/g, '').toLowerCase(), 'x-workrs-ca-fingerprint is the CA certificate\'s SHA-256');

  const tokens = {} as Record<Role, { id: string; token: string }>;
  for (const { role } of ROWS) tokens[role] = await c.createToken(role, { name: `ui-${role}` });

  for (const row of ROWS) {
    await t.test(`a ${row.role} token`, async (t) => {
      const p = await openPage(t, `${base}/`, (m, path, res) => c.checkAnswer(m, path, res));

      // No token stored on an HTTPS (secure-mode) node: the page asks for one at once, with no reproach yet.
      await tokenFormShown(p);
      t.same(p.requests, [], 'asked the API nothing: an HTTPS node answers nothing without a token');
      t.equal(p.q('#token-message')?.textContent, '');
      await signIn(p, tokens[row.role].token);
      t.equal(p.window.localStorage.getItem('workrs.token'), tokens[row.role].token, 'the token is kept in the browser');
      t.equal(p.q('#role')?.textContent, row.role, 'the header shows the role');
      const shown = p.q('#ca-fingerprint')?.textContent;
      t.match(shown, /^sha256:([0-9a-f]{4} ){15}[0-9a-f]{4}$/, 'the CA fingerprint in groups of 4');
      t.equal(hexOf(shown), fingerprint, 'the fingerprint of GET /v1/cluster/ca');
      t.equal(p.q('#dev-mode'), null);
      t.equal(p.q('nav a[data-nav="submit"]')?.hidden, !row.submits, `the Submit link is ${row.submits ? 'shown' : 'hidden'}`);
      t.equal(p.q('nav a[data-nav="tokens"]')?.hidden, !row.tokens, `the Tokens link is ${row.tokens ? 'shown' : 'hidden'}`);

      // A running job: listed for everyone, cancellable only by who may.
      const running = await c.post<{ id: string }>(leader, '/v1/jobs', { command: ['sleep', '600'], env: { FAKE_SECONDS: '600' } });
      t.equal(running.status, 202);
      const runningId = running.body.id;
      await p.see(`tr[data-job="${runningId}"]`);
      t.equal(p.count('main .toolbar a[href="#/submit"]'), row.submits ? 1 : 0, 'the job list offers submitting only to who may');
      p.window.location.hash = `#/jobs/${runningId}`;
      await waitFor('the running job', async () => (p.q('main h1 .state')?.textContent === 'running' ? true : undefined), 15_000, 50);
      t.equal(p.count('#cancel'), row.submits ? 1 : 0, `cancel is ${row.submits ? 'offered' : 'absent'}`);
      if (row.submits) {
        p.click('#cancel');
        await waitFor('the job cancelled', async () => (p.q('main h1 .state')?.textContent === 'cancelled' ? true : undefined), 15_000, 50);
        t.ok(p.requests.includes(`DELETE /v1/jobs/${runningId} with token`), 'cancelled through the API with the token');
      } else {
        await c.request(leader, `/v1/jobs/${runningId}`, { method: 'DELETE' });
      }

      p.window.location.hash = '#/submit';
      await p.see(row.submits ? '#submit-form' : '#not-allowed');
      t.equal(p.count('#submit-form'), row.submits ? 1 : 0, `the submit form is ${row.submits ? 'there' : 'absent'}`);
      if (row.submits) await submitThroughTheForm(t, c, p, leader);

      p.window.location.hash = '#/tokens';
      await p.see(row.tokens ? '#token-create-form' : '#not-allowed');
      if (row.tokens) await manageTokens(t, c, p, tokens);
      else t.notOk(p.requests.some((r) => r.includes('/v1/acl/tokens')), 'no tokens page, and no request for tokens');

      p.window.location.hash = '#/cluster';
      await waitFor('three alive nodes', async () => (p.count('tr[data-node] .state-alive') === 3 ? true : undefined), 10_000, 50);
      t.match(p.q('main p.muted')?.textContent ?? '', new RegExp(`leader ${leader}`));

      // Revoked behind the page's back: the next poll is refused and the page asks again.
      const revoked = await c.request('n1', `/v1/acl/tokens/${tokens[row.role].id}`, { method: 'DELETE' });
      t.equal(revoked.status, 200, 'the token is revoked');
      await tokenFormShown(p);
      t.equal(p.q('#token-message')?.textContent, 'the token is unknown, revoked or expired (TOKEN_INVALID)', "with the node's reason");
      t.equal(p.count('main *'), 0, 'the view is emptied');
      t.same(p.consoleErrors, [], 'no script errors in the page');
    });
  }

  // The UI's pure helpers, as the executable serves them.
  await t.test('the pure helpers', async (t) => {
    const p = await openPage(t, `${base}/`, (m, path, res) => c.checkAnswer(m, path, res));
    const ui = (p.window as unknown as { WorkrsUI: UiHelpers }).WorkrsUI;
    t.same(ui.splitCommand(`python3 -c 'print("a b")' "x y" z\\ w`), ['python3', '-c', 'print("a b")', 'x y', 'z w'], 'commands split like a shell');
    t.throws(() => ui.splitCommand(`echo 'open`), /unterminated/);
    t.equal(ui.parseDuration('1.5m'), 90);
    t.equal(ui.parseDuration(''), null);
    t.throws(() => ui.parseDuration('soon'), /not a duration/);
    t.same(ui.parseEnv('A=1\n# note\n\nB=x=y'), { A: '1', B: 'x=y' });
    t.throws(() => ui.buildSpec({ image: '', command: '  ', env: '', outputs: '', estimate: '', checkpoint: 'auto', interval: '', memoryMB: '', cpus: '', timeout: '' }, []), /command is empty/);
    const plain = { image: '', command: 'true', env: '', outputs: '', estimate: '', checkpoint: 'auto', interval: '', memoryMB: '', cpus: '', timeout: '' };
    t.match(ui.buildSpec({ ...plain, name: ' nightly ', labels: 'a=1, b = two\n\nc=' }, []), { name: 'nightly', labels: { a: '1', b: 'two', c: '' } }, 'name and labels from the form');
    t.notOk('name' in ui.buildSpec({ ...plain, name: '', labels: '' }, []), 'no name when none is given');
    t.throws(() => ui.buildSpec({ ...plain, labels: 'novalue' }, []), /not key=value/);
    t.throws(() => ui.buildSpec({ ...plain, labels: 'a=1\na=2' }, []), /given twice/);
    const g = ui.timeline({
      createdAt: 0, finishedAt: 100, epoch: 2,
      attempts: [{ node: 'a', epoch: 1, fromCheckpoint: null, restoreError: null, startedAt: 0, endedAt: 50 }, { node: 'b', epoch: 2, fromCheckpoint: { epoch: 1, seq: 1 }, restoreError: null, startedAt: 60, endedAt: 100 }],
      checkpoints: [{ seq: 1, epoch: 1, at: 25, bytes: 1, durationMs: 1, holders: ['a', 'b'] }],
    }, 1000, 200);
    t.same(g.attempts.map((a) => [a.x0, a.x1, a.open, a.resumedFromX]), [[0, 100, false, null], [120, 200, false, 50]], 'timeline geometry: bars, and the resumed attempt points at its checkpoint');
    t.same(g.checkpoints.map((pt) => pt.x), [50]);
    t.equal(ui.formatFingerprint(fingerprint.toUpperCase().match(/../g)?.join(':') ?? ''), `sha256:${fingerprint.match(/.{4}/g)?.join(' ')}`);
  });
  failed = false;
});

/** A job with an uploaded file through the form: the cluster gets the spec the form said, and the job page follows it to its end. */
async function submitThroughTheForm(t: Test, c: LocalCluster, p: Page, leader: string): Promise<void> {
  p.set('#f-command', `sh -c 'cat /work/input.txt'`);
  p.set('#f-env', 'FAKE_SECONDS=2\nGREETING=hello world');
  p.set('#f-estimate', '30s');
  p.set('#f-memory', '64');
  p.set('#f-checkpoint', 'off');
  const name = `form-${Date.now().toString(36)}`;
  p.set('#f-name', name);
  p.set('#f-labels', 'camera=3\nsite=north');
  const file = new p.window.File(['the input bytes\n'], 'input.txt', { type: 'text/plain' });
  Object.defineProperty(p.q('#f-files'), 'files', { value: [file] });
  p.submit('#submit-form');
  const id = await waitFor('the job page after submitting', async () => /^#\/jobs\/(.+)$/.exec(p.window.location.hash)?.[1], 15_000, 50);
  t.notOk(p.q('#error')?.textContent, 'no error shown');
  const job = await c.get<{ spec: Record<string, unknown> }>(leader, `/v1/jobs/${id}`);
  t.match(job.body.spec, {
    command: ['sh', '-c', 'cat /work/input.txt'],
    env: { FAKE_SECONDS: '2', GREETING: 'hello world' },
    files: ['input.txt'],
    estimateSeconds: 30,
    memoryMB: 64,
    checkpoint: { mode: 'off' },
    name,
    labels: { camera: '3', site: 'north' },
  }, 'the spec built by the form');
  t.ok(p.requests.some((r) => r.startsWith('POST /v1/jobs') && r.endsWith('with token')), 'submitted with the token');

  await waitFor('the job page to show succeeded', async () => (p.q('main h1 .state')?.textContent === 'succeeded' ? true : undefined), 30_000, 100);
  t.equal(p.count('svg.timeline rect.attempt'), 1, 'one attempt bar on the timeline');
  t.match(p.q('#logs')?.textContent ?? '', /fake run of/, 'the logs pane shows the job output');
  t.match(p.q('dl.fields')?.textContent ?? '', /sh -c cat \/work\/input\.txt/);
  t.match(p.q('dl.fields')?.textContent ?? '', new RegExp(`${name}.*camera=3 site=north`), 'the job page shows its name and labels');
  p.window.location.hash = '#/';
  await waitFor('the job in the list', async () => (p.q(`tr[data-job="${id}"]`)?.textContent?.includes('succeeded') ? true : undefined), 10_000, 50);
  t.match(p.q(`tr[data-job="${id}"]`)?.textContent ?? '', name, 'the list shows its name');

  // A refused submission shows the API's message, and the form stays.
  p.window.location.hash = '#/submit';
  await p.see('#submit-form');
  p.set('#f-command', 'true');
  p.set('#f-memory', '1');
  p.submit('#submit-form');
  await waitFor('the error', async () => p.q('#error')?.textContent || undefined, 10_000, 50);
  t.match(p.q('#error')?.textContent ?? '', /memoryMB/, `the API's message is shown: ${p.q('#error')?.textContent}`);
  t.equal(p.window.location.hash, '#/submit', 'still on the form');
}

/** The admin's tokens page: lists the tokens, makes one (shown once, and it works), revokes it (refused from then on). */
async function manageTokens(t: Test, c: LocalCluster, p: Page, tokens: Record<Role, { id: string }>): Promise<void> {
  const other = await c.createToken('submit', { name: 'made-elsewhere' });
  await p.see(`tr[data-token="${other.id}"]`, 10_000);
  t.match(p.q(`tr[data-token="${other.id}"]`)?.textContent ?? '', /made-elsewheresubmit/, 'a token made with the CLI or API is listed');
  t.match(p.q(`tr[data-token="${tokens.admin.id}"]`)?.textContent ?? '', /\(this browser\)/, "the page's own token is marked");
  p.set('#t-role', 'read');
  p.set('#t-name', 'camera-3');
  p.set('#t-ttl', '1h');
  p.submit('#token-create-form');
  await p.see('#new-token');
  const made = p.q('#new-token')?.textContent ?? '';
  t.match(made, /^wrs_[0-9a-f]{16}_[0-9a-f]{64}$/, 'the new token is shown');
  const self = await c.get<{ role: string; name: string; expiresAt: number }>('n3', '/v1/acl/self', made);
  t.equal(self.status, 200, 'and works on another node');
  t.match(self.body, { role: 'read', name: 'camera-3' }, 'with the role and name the form said');
  t.ok(self.body.expiresAt > Date.now() + 3_500_000 && self.body.expiresAt <= Date.now() + 3_600_000, 'and the lifetime');
  const id = /^wrs_([0-9a-f]{16})_/.exec(made)?.[1] ?? '';
  const row = `tr[data-token="${id}"]`;
  await p.see(row);
  t.notMatch(p.q(row)?.textContent ?? '', made.slice(-64), 'the list never shows a secret');
  p.click(`${row} button`);
  await p.see(row, 10_000, true);
  t.ok(p.requests.includes(`DELETE /v1/acl/tokens/${id} with token`), 'revoked through the API');
  // Revocation reaches the other nodes through the replicated log, within 2 s.
  const code = await waitFor('the revoked token refused on another node', async () => {
    const after = await c.get<{ error?: { code: string } }>('n3', '/v1/acl/self', made);
    return after.status === 401 ? after.body.error?.code : undefined;
  }, 2000, 50);
  t.equal(code, 'TOKEN_INVALID', 'the revoked token is refused');
}

// Dev mode on purpose: the page must not ask a node without tokens for one.
t.test('the web UI on a dev-mode node asks for no token', async (t) => {
  const c = await LocalCluster.create(['n1'], [], { mode: 'dev' });
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  await c.leader();
  await c.allReady();
  const p = await openPage(t, `${c.url('n1')}/#/submit`, (m, path, res) => c.checkAnswer(m, path, res));
  await p.see('#submit-form');
  t.equal(p.q('#token-form')?.hidden, true, 'no token form');
  t.equal(p.q('#dev-mode')?.textContent, 'dev mode: no TLS, no tokens', 'dev mode said in place of a fingerprint');
  t.equal(p.q('#ca-fingerprint'), null);
  t.equal(p.q('#role')?.textContent, 'admin');
  t.equal(p.q('nav a[data-nav="tokens"]')?.hidden, true, 'no tokens page: there are no tokens');
  p.set('#f-command', 'true');
  p.set('#f-env', 'FAKE_SECONDS=0.1');
  p.submit('#submit-form');
  await waitFor('the job page after submitting', async () => /^#\/jobs\/(.+)$/.exec(p.window.location.hash)?.[1], 15_000, 50);
  await waitFor('the job to succeed', async () => (p.q('main h1 .state')?.textContent === 'succeeded' ? true : undefined), 30_000, 100);
  t.notOk(p.requests.some((r) => r.endsWith('with token')), 'no request carried a token');
  t.same(p.consoleErrors, [], 'no script errors in the page');
  failed = false;
});
