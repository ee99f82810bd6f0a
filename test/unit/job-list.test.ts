// GET /v1/jobs (src/api/job-list.ts over ClusterState.jobsNewestFirst and jobSummary):
// rows without specs unless asked, newest first, pages bounded by a limit of at most
// 1000 and by bytes, and a cursor walk that sees each job exactly once while jobs are
// submitted and forgotten under it. Also the backlog cap the state machine applies
// (submitJob.maxPending).
import t from 'tap';
import { buildJobPage, decodeCursor, encodeCursor, parseJobListQuery, type JobListQuery } from '../../src/api/job-list.js';
import type { ClusterState } from '../../src/state/machine.js';
import { commandLine, COMMAND_LINE_MAX_CHARS } from '../../src/state/views.js';
import { assign, join, Log, submit, T0 } from './state-fixtures.js';

function query(q: string): JobListQuery {
  return parseJobListQuery(new URLSearchParams(q));
}

function page(state: ClusterState, q: JobListQuery, maxPageBytes?: number): { jobs: Array<Record<string, unknown>>; next: string | null } {
  const p = buildJobPage(state.jobsNewestFirst(q.after), q, (job) => state.jobSummary(job, q.withSpec), maxPageBytes);
  return { jobs: p.jobs as Array<Record<string, unknown>>, next: p.next };
}

function ids(rows: Array<Record<string, unknown>>): unknown[] {
  return rows.map((r) => r.id);
}

t.test('the query: limit 1 to 1000 (default 100), a known state, a cursor a page gave', async (t) => {
  t.same(query(''), { state: null, limit: 100, after: null, withSpec: false, labels: [] });
  t.same(query('limit=1000&state=pending&spec=1'), { state: 'pending', limit: 1000, after: null, withSpec: true, labels: [] });
  t.equal(query(`after=${encodeCursor(42)}`).after, 42);
  for (const bad of ['limit=1001', 'limit=5000', 'limit=0', 'limit=-1', 'limit=1.5', 'limit=', 'limit=abc', 'state=sleeping', 'after=42', 'after=', 'after=c1.', 'after=c1.zzzzzzzzzzzz', 'after=c1.0']) {
    t.throws(() => query(bad), { code: 'BAD_QUERY', httpStatus: 400 }, bad);
  }
  t.equal(decodeCursor(encodeCursor(Number.MAX_SAFE_INTEGER)), Number.MAX_SAFE_INTEGER);
});

t.test('rows are summaries: what a list shows, without the spec unless spec=1', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(submit('a', { image: 'app:1', command: ['sh', '-c', 'echo hi'], env: { BIG: 'x'.repeat(30_000) } }));
  log.ok(assign('a', 'n1', 1));
  const [row] = page(log.state, query('')).jobs;
  t.same(row, { id: 'a', name: null, labels: {}, state: 'running', image: 'app:1', commandLine: 'sh -c echo hi', node: 'n1', epoch: 1, checkpointCount: 0, exitCode: null, createdAt: T0, startedAt: null, finishedAt: null });
  t.ok(Buffer.byteLength(JSON.stringify(row)) < 1000, 'a row is small whatever the job environment');
  const [full] = page(log.state, query('spec=1')).jobs;
  t.match(full, { id: 'a', spec: { image: 'app:1', env: { BIG: 'x'.repeat(30_000) } } });
});

t.test('commandLine: the words joined, cut at the limit without splitting a surrogate pair', async (t) => {
  t.equal(commandLine(['sh', '-c', 'echo hi'], 200), 'sh -c echo hi');
  t.equal(commandLine(['', 'a'], 200), ' a', 'as join(" ") would');
  t.equal(commandLine(['abc', 'def'], 7), 'abc def');
  t.equal(commandLine(['abc', 'defg'], 7), 'abc def…');
  t.equal(commandLine(['x'.repeat(300_000)], COMMAND_LINE_MAX_CHARS), `${'x'.repeat(COMMAND_LINE_MAX_CHARS)}…`);
  t.equal(commandLine(['ab😀c'], 3), 'ab…', 'the pair is dropped whole');
});

t.test('a cursor walk sees every job once, newest first, while jobs are submitted and forgotten under it', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  const before: string[] = [];
  for (let i = 0; i < 23; i++) {
    before.push(`j${i}`);
    log.ok(submit(`j${i}`));
  }
  log.ok({ type: 'cancelJob', jobId: 'j3' });
  const seen: unknown[] = [];
  let after: string | null = null;
  let pages = 0;
  do {
    const p = page(log.state, query(`limit=5${after === null ? '' : `&after=${after}`}`));
    seen.push(...ids(p.jobs));
    after = p.next;
    pages++;
    // Under the walk: a new job, and a job of the next page forgotten by retention.
    log.ok(submit(`new${pages}`));
    if (pages === 2) log.ok({ type: 'forgetJobs', jobIds: ['j3'], finishedBefore: T0 });
  } while (after !== null);
  t.same(seen, before.filter((id) => id !== 'j3').reverse(), 'each job once, in order; none of the new ones; the forgotten one skipped');
  t.equal(pages, 5, 'the page that ends the walk says so: no empty page to fetch');
});

t.test('a page of one state looks past the others, and says next only when more match', async (t) => {
  const log = new Log();
  log.ok(join('n1', 100));
  for (let i = 0; i < 10; i++) log.ok(submit(`j${i}`));
  for (const id of ['j1', 'j4', 'j7']) log.ok(assign(id, 'n1', 1));
  const first = page(log.state, query('state=running&limit=2'));
  t.same(ids(first.jobs), ['j7', 'j4']);
  t.type(first.next, 'string');
  const second = page(log.state, query(`state=running&limit=2&after=${first.next}`));
  t.same(ids(second.jobs), ['j1']);
  t.equal(second.next, null);
  t.same(page(log.state, query('state=running&limit=3')).next, null, 'exactly the last match: no next');
});

t.test('a page also stops at its byte budget (rows with specs), with at least one row', async (t) => {
  const log = new Log();
  for (let i = 0; i < 6; i++) log.ok(submit(`j${i}`, { env: { BIG: 'y'.repeat(40_000) } }));
  const p = page(log.state, query('spec=1&limit=1000'), 100_000);
  t.same(ids(p.jobs), ['j5', 'j4'], 'two rows of ~40 KB fit in 100 KB');
  t.type(p.next, 'string');
  const one = page(log.state, query('spec=1'), 10);
  t.equal(one.jobs.length, 1, 'a row larger than the budget still makes a page');
});

t.test('the backlog cap: submitJob.maxPending refuses the job while that many are pending', async (t) => {
  const log = new Log();
  log.ok(join('n1', 1));
  const capped = (id: string) => log.apply({ ...submit(id), maxPending: 3 } as Parameters<Log['apply']>[0]);
  for (const id of ['a', 'b', 'c']) t.match(capped(id), { ok: true });
  t.match(capped('d'), { ok: false, code: 'TOO_MANY_PENDING', message: /3 jobs are pending.*maxPendingJobs 3/ });
  t.equal(log.state.jobs.has('d'), false);
  t.match(capped('a'), { ok: false, code: 'JOB_EXISTS' }, 'a retry of an existing job is answered as such, not refused');
  t.match(log.apply(submit('e')), { ok: true }, 'an entry without maxPending (from before it existed) has no cap');
  t.equal(log.state.pendingCount(), 4);
  log.ok(assign('a', 'n1', 1));
  t.equal(log.state.pendingCount(), 3, 'a running job is not pending');
  t.match(capped('d'), { ok: false, code: 'TOO_MANY_PENDING' });
  log.ok({ type: 'cancelJob', jobId: 'b' });
  t.match(capped('d'), { ok: true }, 'accepted once fewer are pending');
  t.match(log.apply({ ...submit('f'), maxPending: 0 } as Parameters<Log['apply']>[0]), { ok: false, code: 'INVALID_COMMAND' }, 'a cap is at least 1');
});
