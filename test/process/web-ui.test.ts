// The web UI (GET /) in a real DOM (jsdom) against a real token-protected cluster of
// workrs processes: the page and its files load without the token and under a strict
// CSP; the page asks for the token, then lists jobs, submits one with an uploaded
// file, shows its page (fields, attempts, timeline, logs) and the cluster's nodes.
// The UI's pure helpers (command splitting, durations, the timeline's geometry) are
// checked on the script the executable serves.
import t from 'tap';
import { type DomElement, type DomFile, type DomWindow, JSDOM, VirtualConsole } from 'jsdom';
import { LocalCluster } from './harness.js';
import { waitFor } from '../helpers/wait.js';

const TOKEN = 'a-token-for-the-web-ui-test';

interface UiHelpers {
  splitCommand(text: string): string[];
  parseDuration(text: string): number | null;
  parseEnv(text: string): Record<string, string>;
  buildSpec(v: Record<string, string>, files: string[]): Record<string, unknown>;
  timeline(job: unknown, now: number, width: number): { attempts: Array<{ x0: number; x1: number; open: boolean; resumedFromX: number | null }>; checkpoints: Array<{ x: number }> };
}


/** jsdom has no fetch: lend it Node's, translating jsdom's FormData, File and AbortSignal. */
function lendFetch(window: DomWindow, requests: string[]): void {
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
    return fetch(url, { method: init.method, headers: init.headers, body, signal: controller.signal });
  };
  (window as unknown as { TextDecoder: unknown }).TextDecoder = TextDecoder;
}

t.test('the web UI drives a token-protected cluster', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3'], [], { token: TOKEN });
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  const leader = await c.leader();
  await c.allReady();
  const base = c.url('n2');

  // The static files need no token; the API still does.
  const page = await fetch(`${base}/`);
  t.equal(page.status, 200, 'GET / answers without the token');
  t.match(page.headers.get('content-type'), /^text\/html/);
  t.match(page.headers.get('content-security-policy'), /default-src 'self'/, 'under a CSP that allows only its own files');
  t.match(await page.text(), /<script src="\/ui\/app\.js">/);
  const script = await fetch(`${base}/ui/app.js`);
  t.match(script.headers.get('content-type'), /^text\/javascript/);
  t.equal((await fetch(`${base}/v1/jobs`)).status, 401, 'the API behind it still needs the token');

  const requests: string[] = [];
  const consoleErrors: string[] = [];
  const virtualConsole = new VirtualConsole();
  virtualConsole.on('jsdomError', (e) => consoleErrors.push(String(e.message)));
  virtualConsole.on('error', (e) => consoleErrors.push(String(e.message ?? e)));
  const dom = await JSDOM.fromURL(`${base}/`, {
    runScripts: 'dangerously',
    resources: 'usable',
    pretendToBeVisual: true,
    virtualConsole,
    beforeParse: (window) => lendFetch(window, requests),
  });
  const { window } = dom;
  t.teardown(() => window.close());
  const doc = window.document;
  const q = (sel: string): DomElement | null => doc.querySelector(sel);
  await waitFor('the UI script to run', async () => ((window as unknown as { WorkrsUI?: unknown }).WorkrsUI ? true : undefined), 10_000, 50);

  // Helpers, as served.
  const ui = (window as unknown as { WorkrsUI: UiHelpers }).WorkrsUI;
  t.same(ui.splitCommand(`python3 -c 'print("a b")' "x y" z\\ w`), ['python3', '-c', 'print("a b")', 'x y', 'z w'], 'commands split like a shell');
  t.throws(() => ui.splitCommand(`echo 'open`), /unterminated/);
  t.equal(ui.parseDuration('1.5m'), 90);
  t.equal(ui.parseDuration(''), null);
  t.throws(() => ui.parseDuration('soon'), /not a duration/);
  t.same(ui.parseEnv('A=1\n# note\n\nB=x=y'), { A: '1', B: 'x=y' });
  t.throws(() => ui.buildSpec({ image: '', command: '  ', env: '', outputs: '', estimate: '', checkpoint: 'auto', interval: '', memoryMB: '', cpus: '', timeout: '' }, []), /command is empty/);
  const g = ui.timeline({
    createdAt: 0, finishedAt: 100, epoch: 2,
    attempts: [{ node: 'a', epoch: 1, fromCheckpoint: null, restoreError: null, startedAt: 0, endedAt: 50 }, { node: 'b', epoch: 2, fromCheckpoint: { epoch: 1, seq: 1 }, restoreError: null, startedAt: 60, endedAt: 100 }],
    checkpoints: [{ seq: 1, epoch: 1, at: 25, bytes: 1, durationMs: 1, holders: ['a', 'b'] }],
  }, 1000, 200);
  t.same(g.attempts.map((a) => [a.x0, a.x1, a.open, a.resumedFromX]), [[0, 100, false, null], [120, 200, false, 50]], 'timeline geometry: bars, and the resumed attempt points at its checkpoint');
  t.same(g.checkpoints.map((p) => p.x), [50]);

  // No token yet: the job list's request is refused and the page asks for the token.
  await waitFor('the token form', async () => ((q('#token-form')?.hidden ?? true) ? undefined : true), 10_000, 50);
  t.ok(requests.some((r) => r.startsWith('GET /v1/jobs') && r.endsWith('without token')), 'it tried without a token first');
  const tokenInput = q('#token');
  if (tokenInput) tokenInput.value = TOKEN;
  q('#token-form')?.dispatchEvent(new window.Event('submit', { cancelable: true }));
  t.equal(window.localStorage.getItem('workrs.token'), TOKEN, 'the token is kept in the browser');
  await waitFor('the empty job list', async () => (q('main td.muted')?.textContent === 'no jobs' ? true : undefined), 10_000, 50);

  // Submit a job with an uploaded file through the form.
  window.location.hash = '#/submit';
  await waitFor('the submit form', async () => (q('#submit-form') ? true : undefined), 5000, 20);
  const set = (sel: string, value: string): void => {
    const el = q(sel);
    if (!el) throw new Error(`no ${sel} in the page`);
    el.value = value;
  };
  set('#f-command', `sh -c 'cat /work/input.txt'`);
  set('#f-env', 'FAKE_SECONDS=2\nGREETING=hello world');
  set('#f-estimate', '30s');
  set('#f-memory', '64');
  set('#f-checkpoint', 'off');
  const file = new window.File(['the input bytes\n'], 'input.txt', { type: 'text/plain' });
  Object.defineProperty(q('#f-files'), 'files', { value: [file] });
  q('#submit-form')?.dispatchEvent(new window.Event('submit', { cancelable: true }));
  const id = await waitFor('the job page after submitting', async () => /^#\/jobs\/(.+)$/.exec(window.location.hash)?.[1], 15_000, 50);
  t.notOk(q('#error')?.textContent, 'no error shown');

  // What the cluster received is what the form said.
  const job = await c.get<{ spec: Record<string, unknown> }>(leader, `/v1/jobs/${id}`);
  t.match(job.body.spec, {
    command: ['sh', '-c', 'cat /work/input.txt'],
    env: { FAKE_SECONDS: '2', GREETING: 'hello world' },
    files: ['input.txt'],
    estimateSeconds: 30,
    memoryMB: 64,
    checkpoint: { mode: 'off' },
  }, 'the spec built by the form');
  t.ok(requests.some((r) => r.startsWith('POST /v1/jobs') && r.endsWith('with token')), 'submitted with the token');

  // The job page follows the job to its end.
  await waitFor('the job page to show succeeded', async () => (q('main h1 .state')?.textContent === 'succeeded' ? true : undefined), 30_000, 100);
  t.equal(doc.querySelectorAll('svg.timeline rect.attempt').length, 1, 'one attempt bar on the timeline');
  t.match(q('#logs')?.textContent ?? '', /fake run of/, 'the logs pane shows the job output');
  t.match(q('dl.fields')?.textContent ?? '', /sh -c cat \/work\/input\.txt/);

  // The job list and the cluster page.
  window.location.hash = '#/';
  await waitFor('the job in the list', async () => (q(`tr[data-job="${id}"]`)?.textContent?.includes('succeeded') ? true : undefined), 10_000, 50);
  window.location.hash = '#/cluster';
  await waitFor('three alive nodes', async () => (doc.querySelectorAll('tr[data-node] .state-alive').length === 3 ? true : undefined), 10_000, 50);
  t.match(q('main p.muted')?.textContent ?? '', new RegExp(`leader ${leader}`));

  // A refused submission shows the API's message, and the form stays.
  window.location.hash = '#/submit';
  await waitFor('the submit form again', async () => (q('#submit-form') ? true : undefined), 5000, 20);
  set('#f-command', 'true');
  set('#f-memory', '1');
  q('#submit-form')?.dispatchEvent(new window.Event('submit', { cancelable: true }));
  await waitFor('the error', async () => (q('#error')?.textContent ? q('#error')?.textContent : undefined), 10_000, 50);
  t.match(q('#error')?.textContent ?? '', /memoryMB/, `the API's message is shown: ${q('#error')?.textContent}`);
  t.equal(window.location.hash, '#/submit', 'still on the form');

  t.same(consoleErrors, [], 'no script errors in the page');
  failed = false;
});
