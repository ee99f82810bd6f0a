// The web UI's roles (src/ui/*.js) in a real DOM (jsdom) against a scripted API:
// the page asks GET /v1/acl/self who the token is before any view; it shows the role
// and the CA fingerprint; the submit form and cancel exist for submit and admin only,
// the tokens page for admin only; a refused token brings the token form back with the
// node's reason and stops the view's polling; a dev-mode node is never asked for a
// token. test/process/web-ui.test.ts drives the same page against a real cluster.
import { createServer, type Server } from 'node:http';
import t from 'tap';
import { type DomElement, type DomWindow, JSDOM, VirtualConsole } from 'jsdom';
import { uiAsset, type UiFile } from '../../src/ui/assets.js';
import { waitFor } from '../helpers/wait.js';
import { pageQueries } from '../helpers/dom.js';

type Role = 'read' | 'submit' | 'admin';
const ROLES: Role[] = ['read', 'submit', 'admin'];
const FINGERPRINT = '3f'.repeat(8) + '0a'.repeat(8) + 'c4'.repeat(8) + '9e'.repeat(8);
const GROUPED = `sha256:${FINGERPRINT.match(/.{4}/g)?.join(' ')}`;

interface UiHelpers {
  can(self: unknown, action: string): boolean;
  formatFingerprint(text: string): string;
  buildTokenRequest(v: { role: string; name: string; ttl: string }): Record<string, unknown>;
  appendBounded(shown: string, cutChars: number, chunk: string, max?: number): { text: string; cutChars: number };
}

interface TokenRecord {
  id: string;
  name: string;
  role: Role;
  createdAt: number;
  expiresAt: number | null;
}

/** The API as the contract of issue 13 describes it, for the routes the UI calls. */
class FakeApi {
  readonly requests: string[] = [];
  readonly tokens = new Map<string, TokenRecord>();
  private minted = 0;

  constructor(readonly secure: boolean) {}

  mint(role: Role, name = `${role}-token`, ttlSeconds?: number): string {
    this.minted += 1;
    const id = this.minted.toString(16).padStart(16, '0');
    const token = `wrs_${id}_${'ab'.repeat(32)}`;
    this.tokens.set(token, { id, name, role, createdAt: Date.now(), expiresAt: ttlSeconds === undefined ? null : Date.now() + ttlSeconds * 1000 });
    return token;
  }

  revoke(id: string): boolean {
    for (const [token, rec] of this.tokens) {
      if (rec.id === id) return this.tokens.delete(token);
    }
    return false;
  }

  handle(method: string, path: string, authorization: string | undefined, body: unknown): { status: number; json: unknown } {
    this.requests.push(`${method} ${path}${authorization ? ' with token' : ''}`);
    const caller = this.authenticate(authorization);
    if ('status' in caller) return caller;
    const need = this.roleFor(method, path);
    if (ROLES.indexOf(caller.role) < ROLES.indexOf(need)) return refuse(403, 'FORBIDDEN', `this needs the ${need} role`);
    return this.answer(method, path, caller, body);
  }

  private authenticate(authorization: string | undefined): TokenRecord | { status: number; json: unknown } {
    if (!this.secure) return { id: '', name: '', role: 'admin', createdAt: 0, expiresAt: null };
    const m = /^Bearer (wrs_[0-9a-f]{16}_[0-9a-f]{64})$/.exec(authorization ?? '');
    if (!m?.[1]) return refuse(401, 'UNAUTHORIZED', 'an API token is needed: Authorization: Bearer <token>');
    return this.tokens.get(m[1]) ?? refuse(401, 'TOKEN_INVALID', 'the token is unknown, revoked or expired');
  }

  private roleFor(method: string, path: string): Role {
    if (path.startsWith('/v1/acl/tokens')) return 'admin';
    return method === 'GET' ? 'read' : 'submit';
  }

  private answer(method: string, path: string, caller: TokenRecord, body: unknown): { status: number; json: unknown } {
    const route = `${method} ${path.split('?')[0]}`;
    if (route === 'GET /v1/acl/self') {
      return ok(this.secure
        ? { kind: 'token', id: caller.id, name: caller.name, role: caller.role, expiresAt: caller.expiresAt, caFingerprint: FINGERPRINT, secure: true }
        : { kind: 'dev', role: 'admin', caFingerprint: null, secure: false });
    }
    if (route === 'GET /v1/jobs') return ok({ jobs: [{ id: 'j1', state: 'running', image: 'workrs/busybox:1', commandLine: 'sleep 60', node: 'n1', epoch: 1, checkpointCount: 0, createdAt: 1 }], next: null });
    if (route === 'GET /v1/jobs/j1') return ok(RUNNING_JOB);
    if (route === 'DELETE /v1/jobs/j1') return ok({ id: 'j1', state: 'cancelled' });
    if (route === 'POST /v1/jobs') return { status: 201, json: { id: 'j2' } };
    if (route === 'GET /v1/cluster') return ok({ leader: 'n1', term: 2, commitIndex: 9, nodes: [] });
    if (route === 'GET /v1/acl/tokens') return ok({ tokens: [...this.tokens.values()] });
    if (route === 'POST /v1/acl/tokens') {
      const req = body as { role: Role; name?: string; ttlSeconds?: number };
      const token = this.mint(req.role, req.name ?? '', req.ttlSeconds);
      return { status: 201, json: { ...this.tokens.get(token), token } };
    }
    const revoked = /^DELETE \/v1\/acl\/tokens\/([0-9a-f]{16})$/.exec(route);
    if (revoked?.[1]) return this.revoke(revoked[1]) ? ok({ id: revoked[1], revoked: true }) : refuse(404, 'TOKEN_UNKNOWN', 'no such token');
    return refuse(404, 'NOT_FOUND', `the fake API has no ${route}`);
  }
}

const RUNNING_JOB = {
  id: 'j1', state: 'running', node: 'n1', epoch: 0, exitCode: null, createdAt: 1, startedAt: null, finishedAt: null,
  spec: { image: 'workrs/busybox:1', command: ['sleep', '60'], files: [], estimateSeconds: null },
  policy: { mode: 'off' }, attempts: [], checkpoints: [],
};

function ok(json: unknown): { status: number; json: unknown } {
  return { status: 200, json };
}

function refuse(status: number, code: string, message: string): { status: number; json: unknown } {
  return { status, json: { error: { code, message } } };
}

/** The UI's static files over HTTP, as the node serves them (jsdom loads the scripts from /ui/lib.js, dom.js, app.js). */
async function serveUi(t: { teardown(f: () => void): void }): Promise<string> {
  const files: Record<string, UiFile> = { '/': 'index.html', '/ui/lib.js': 'lib.js', '/ui/dom.js': 'dom.js', '/ui/app.js': 'app.js', '/ui/app.css': 'app.css' };
  const server: Server = createServer((req, res) => {
    const file = files[req.url ?? ''];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file.endsWith('.js') ? 'text/javascript' : file.endsWith('.css') ? 'text/css' : 'text/html' }).end(uiAsset(file));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const a = server.address();
  if (!a || typeof a === 'string') throw new Error('no address');
  return `http://127.0.0.1:${a.port}`;
}

interface Page {
  window: DomWindow;
  q(sel: string): DomElement | null;
  count(sel: string): number;
  /** Waits until `sel` exists (or, with `gone`, until it does not). */
  see(sel: string, gone?: boolean): Promise<void>;
  submit(sel: string): void;
  click(sel: string): void;
  consoleErrors: string[];
}

/** The page in jsdom, its window.fetch answered by `api` (the page's token travels in the Authorization header). */
async function openPage(t: { teardown(f: () => void): void }, base: string, api: FakeApi, hash = ''): Promise<Page> {
  const consoleErrors: string[] = [];
  const virtualConsole = new VirtualConsole();
  virtualConsole.on('jsdomError', (e) => consoleErrors.push(String(e.message)));
  virtualConsole.on('error', (e) => consoleErrors.push(String(e.message ?? e)));
  // A closed window's requests never answer (as in a browser whose tab is gone): the
  // script's callbacks would otherwise run on a window without a document.
  let closed = false;
  const dom = await JSDOM.fromURL(`${base}/${hash}`, {
    runScripts: 'dangerously',
    resources: 'usable',
    pretendToBeVisual: true,
    virtualConsole,
    beforeParse: (window) => {
      const w = window as unknown as { fetch: unknown; confirm: unknown };
      w.fetch = async (path: string, init: { method?: string; headers?: Record<string, string>; body?: unknown } = {}) => {
        const body = typeof init.body === 'string' ? (JSON.parse(init.body) as unknown) : init.body;
        const a = api.handle(init.method ?? 'GET', path, init.headers?.Authorization, body);
        await new Promise((r) => setTimeout(r, 1));
        if (closed) return new Promise(() => undefined);
        return new Response(JSON.stringify(a.json), { status: a.status, headers: { 'content-type': 'application/json' } });
      };
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
  await waitFor('the UI script to run', () => ((window as unknown as { WorkrsUI?: unknown }).WorkrsUI ? true : undefined), 10_000, 20);
  return {
    window,
    q,
    count: (sel) => doc.querySelectorAll(sel).length,
    see: async (sel, gone = false) => {
      await waitFor(gone ? `${sel} to go` : sel, () => ((q(sel) === null) === gone ? true : undefined), 5000, 20);
    },
    submit: (sel) => void must(sel).dispatchEvent(new window.Event('submit', { cancelable: true })),
    click: (sel) => void must(sel).dispatchEvent(new window.Event('click', { cancelable: true })),
    consoleErrors,
  };
}

async function signIn(page: Page, token: string): Promise<void> {
  await waitFor('the token form', () => (page.q('#token-form')?.hidden === false ? true : undefined), 5000, 20);
  const input = page.q('#token');
  if (input) input.value = token;
  page.submit('#token-form');
}

t.test('the pure helpers: who may do what, fingerprints, token requests', async (t) => {
  const base = await serveUi(t);
  const page = await openPage(t, base, new FakeApi(false));
  const ui = (page.window as unknown as { WorkrsUI: UiHelpers }).WorkrsUI;
  const self = (role: string, secure = true): unknown => ({ role, secure });
  t.same(ROLES.map((r) => [ui.can(self(r), 'submit'), ui.can(self(r), 'cancel'), ui.can(self(r), 'tokens')]),
    [[false, false, false], [true, true, false], [true, true, true]], 'read: nothing; submit: submit and cancel; admin: also tokens');
  t.notOk(ui.can(self('admin', false), 'tokens'), 'a dev-mode node has no tokens to manage');
  t.ok(ui.can(self('admin', false), 'submit'), 'but submits');
  t.notOk(ui.can(null, 'submit'), 'nothing before the node said who we are');
  t.notOk(ui.can(self('root'), 'submit'), 'an unknown role may do nothing');
  t.throws(() => ui.can(self('admin'), 'reboot'), /unknown UI action/);
  t.equal(ui.formatFingerprint(FINGERPRINT), GROUPED, '16 groups of 4');
  t.equal(ui.formatFingerprint(`SHA256:${FINGERPRINT.toUpperCase().match(/../g)?.join(':')}`), GROUPED, "Node's AB:CD:… form, normalised");
  t.throws(() => ui.formatFingerprint('abcd'), /not a SHA-256 fingerprint/);
  t.same(ui.buildTokenRequest({ role: 'submit', name: ' camera-3 ', ttl: '1.5m' }), { role: 'submit', name: 'camera-3', ttlSeconds: 90 });
  t.same(ui.buildTokenRequest({ role: 'read', name: '', ttl: '' }), { role: 'read' }, 'no name, never expires');
  t.throws(() => ui.buildTokenRequest({ role: 'root', name: '', ttl: '' }), /role must be one of read, submit, admin/);
  t.throws(() => ui.buildTokenRequest({ role: 'read', name: 'x'.repeat(65), ttl: '' }), /at most 64/);
  t.throws(() => ui.buildTokenRequest({ role: 'read', name: '', ttl: '500ms' }), /at least 1 s/);
  // The log pane: bounded, cut at a line start, saying how much went.
  let pane = { text: '', cutChars: 0 };
  for (let i = 0; i < 100; i++) pane = ui.appendBounded(pane.text, pane.cutChars, `line ${i}\n`, 50);
  const lines = pane.text.split('\n');
  t.match(lines[0] ?? '', /^\[… [0-9.]+ [kK]?B? ?of earlier output not shown|^\[… \d+ B of earlier output not shown/, 'a first line says output was cut');
  t.equal(lines[1], `line ${Number(/^line (\d+)$/.exec(lines[1] ?? '')?.[1])}`, 'the pane then starts at a whole line');
  t.equal(lines.at(-2), 'line 99', 'and ends with the newest');
  t.ok(pane.text.length <= 2 * 50 + 120, `it stays bounded (${pane.text.length} characters)`);
  t.equal(pane.cutChars, 100 * 'line 00\n'.length - 10 * 1 - pane.text.split('\n').slice(1).join('\n').length, 'cutChars counts what went');
  t.same(ui.appendBounded('a\n', 0, 'b\n', 50), { text: 'a\nb\n', cutChars: 0 }, 'a short log is kept whole');
  t.same(page.consoleErrors, []);
});

for (const role of ROLES) {
  t.test(`a ${role} token sees exactly what its role can do`, async (t) => {
    const base = await serveUi(t);
    const api = new FakeApi(true);
    const token = api.mint(role);
    const page = await openPage(t, base, api);

    // Who we are comes first: no view asks the API anything before the token is known.
    await signIn(page, token);
    await page.see('#role');
    t.same(api.requests.slice(0, 2), ['GET /v1/acl/self', 'GET /v1/acl/self with token'], 'asked who it is without, then with the token');
    t.equal(page.q('#role')?.textContent, role, 'the role in the header');
    t.equal(page.q('#ca-fingerprint')?.textContent, GROUPED, 'the CA fingerprint in the header');
    t.equal(page.q('#dev-mode'), null);
    t.equal(page.q('#token-form')?.hidden, true, 'the token form is gone');

    const mayChange = role !== 'read';
    t.equal(page.q('nav a[data-nav="submit"]')?.hidden, !mayChange, `the Submit link is ${mayChange ? 'shown' : 'hidden'}`);
    t.equal(page.q('nav a[data-nav="tokens"]')?.hidden, role !== 'admin', `the Tokens link is ${role === 'admin' ? 'shown' : 'hidden'}`);
    await page.see('tr[data-job="j1"]');
    t.equal(page.count('main .toolbar a[href="#/submit"]'), mayChange ? 1 : 0, 'the job list offers submitting only to who may');

    page.window.location.hash = '#/jobs/j1';
    await page.see('main h1 .state');
    t.equal(page.count('#cancel'), mayChange ? 1 : 0, `cancel is ${mayChange ? 'offered' : 'absent'}`);
    if (mayChange) {
      page.click('#cancel');
      await waitFor('the cancel request', () => (api.requests.includes('DELETE /v1/jobs/j1 with token') ? true : undefined), 5000, 20);
    }

    page.window.location.hash = '#/submit';
    await page.see(mayChange ? '#submit-form' : '#not-allowed');
    t.equal(page.count('#submit-form'), mayChange ? 1 : 0, `the submit form is ${mayChange ? 'there' : 'absent'}`);
    if (!mayChange) t.match(page.q('#not-allowed')?.textContent ?? '', /role \(read\) cannot submit jobs: that needs the submit role/);

    page.window.location.hash = '#/tokens';
    if (role !== 'admin') {
      await page.see('#not-allowed');
      t.equal(page.count('#token-create-form'), 0, 'no tokens page');
      t.notOk(api.requests.some((r) => r.includes('/v1/acl/tokens')), 'and no request for tokens');
    } else {
      await page.see(`tr[data-token="${api.tokens.get(token)?.id}"]`);
      t.match(page.q(`tr[data-token="${api.tokens.get(token)?.id}"]`)?.textContent ?? '', /\(this browser\)/, 'its own token is marked');
      const set = (sel: string, value: string): void => {
        const el = page.q(sel);
        if (el) el.value = value;
      };
      set('#t-role', 'submit');
      set('#t-name', 'camera-3');
      set('#t-ttl', '30d');
      page.submit('#token-create-form');
      await page.see('#new-token');
      const created = [...api.tokens.entries()].find(([, rec]) => rec.name === 'camera-3');
      t.equal(page.q('#new-token')?.textContent, created?.[0], 'the new token is shown, once');
      t.equal(created?.[1].role, 'submit');
      t.ok(created?.[1].expiresAt, 'with the lifetime asked for');
      const row = `tr[data-token="${created?.[1].id}"]`;
      await page.see(row);
      t.match(page.q(row)?.textContent ?? '', /camera-3submit/, 'and listed');
      page.click(`${row} button`);
      await page.see(row, true);
      t.equal(api.tokens.has(created?.[0] ?? ''), false, 'revoked');
    }
    t.same(page.consoleErrors, [], 'no script errors');
  });
}

t.test('a refused token brings the token form back with the reason, and the view stops', async (t) => {
  const base = await serveUi(t);
  const api = new FakeApi(true);
  const page = await openPage(t, base, api);

  await waitFor('the token form', () => (page.q('#token-form')?.hidden === false ? true : undefined), 5000, 20);
  t.equal(page.q('#token-message')?.textContent, '', 'no reproach before any token was given');
  t.equal(page.q('#role'), null, 'no role before one is known');
  page.window.location.hash = '#/cluster';
  await new Promise((r) => setTimeout(r, 100));
  t.same(api.requests, ['GET /v1/acl/self'], 'no view asked the API anything, not even after a move to another page');

  await signIn(page, `wrs_${'0'.repeat(16)}_${'1'.repeat(64)}`);
  await waitFor('the reason', () => page.q('#token-message')?.textContent || undefined, 5000, 20);
  t.equal(page.q('#token-message')?.textContent, 'the token is unknown, revoked or expired (TOKEN_INVALID)', "the node's message");
  t.equal(page.q('#token-form')?.hidden, false, 'asked again');

  const token = api.mint('submit');
  page.window.location.hash = '#/';
  await signIn(page, token);
  await page.see('tr[data-job="j1"]');
  t.equal(page.q('#token-message')?.textContent, '', 'the reason goes with a good token');

  // Revoked behind the page's back: the next poll is refused.
  api.revoke(api.tokens.get(token)?.id ?? '');
  await waitFor('the token form again', () => (page.q('#token-form')?.hidden === false ? true : undefined), 5000, 20);
  t.match(page.q('#token-message')?.textContent ?? '', /TOKEN_INVALID/);
  t.equal(page.count('main *'), 0, 'the view is cleared');
  t.equal(page.q('nav a[data-nav="submit"]')?.hidden, true, 'role-bound links are hidden again');
  const seen = api.requests.length;
  await new Promise((r) => setTimeout(r, 2500));
  t.equal(api.requests.length, seen, 'the job list stopped polling');

  // "use another token" forgets the stored one.
  const admin = api.mint('admin');
  await signIn(page, admin);
  await page.see('#change-token');
  page.click('#change-token');
  t.equal(page.window.localStorage.getItem('workrs.token'), null, 'forgotten');
  t.equal(page.q('#token-form')?.hidden, false, 'and asked for another');
  t.same(page.consoleErrors, [], 'no script errors');
});

t.test('a dev-mode node: no token asked, "dev mode" instead of a fingerprint', async (t) => {
  const base = await serveUi(t);
  const api = new FakeApi(false);
  const page = await openPage(t, base, api, '#/submit');
  await page.see('#submit-form');
  t.equal(page.q('#token-form')?.hidden, true, 'no token form');
  t.equal(page.q('#dev-mode')?.textContent, 'dev mode: no TLS, no tokens');
  t.equal(page.q('#ca-fingerprint'), null, 'no fingerprint');
  t.equal(page.q('#change-token'), null, 'no token to change');
  t.equal(page.q('nav a[data-nav="submit"]')?.hidden, false, 'everything a job needs');
  t.equal(page.q('nav a[data-nav="tokens"]')?.hidden, true, 'but no tokens page');
  page.window.location.hash = '#/tokens';
  await page.see('#not-allowed');
  t.match(page.q('#not-allowed')?.textContent ?? '', /dev-mode node has no tokens/);
  t.notOk(api.requests.some((r) => r.endsWith('with token')), 'nothing sent a token');
  t.same(page.consoleErrors, [], 'no script errors');
});
