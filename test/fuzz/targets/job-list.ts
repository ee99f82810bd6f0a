// GET /v1/jobs paging (src/api/job-list.ts) on hostile queries and random job tables.
// A query either parses into bounds the page builder relies on or is 400 BAD_QUERY,
// never another error. A cursor walk over a random table (submits, cancels, jobs
// forgotten, some submitted midway) with a random limit, state filter and byte budget
// returns exactly the jobs that matched when it began and still exist, newest first,
// each once, every page within its limit.
import fc from 'fast-check';
import { buildJobPage, decodeCursor, encodeCursor, parseJobListQuery, type JobListQuery } from '../../../src/api/job-list.js';
import { HttpError } from '../../../src/api/http.js';
import { JOB_STATES, type JobState } from '../../../src/state/records.js';
import { Log, submit, T0 } from '../../unit/state-fixtures.js';
import type { FuzzTarget } from '../target.js';

const queryText = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.record({
    limit: fc.oneof(fc.integer({ min: -5, max: 1005 }).map(String), fc.string({ maxLength: 6 })),
    state: fc.oneof(fc.constantFrom(...JOB_STATES), fc.string({ maxLength: 8 })),
    after: fc.oneof(fc.integer({ min: -3, max: 2 ** 40 }).map((n) => (n >= 1 ? encodeCursor(n) : String(n))), fc.string({ maxLength: 14 })),
  }).map((q) => new URLSearchParams(q).toString()),
);

const table = fc.record({
  // Per job: what happens to it after its submission.
  jobs: fc.array(fc.constantFrom('stay', 'cancel', 'forget'), { minLength: 0, maxLength: 40 }),
  limit: fc.integer({ min: 1, max: 12 }),
  state: fc.option(fc.constantFrom<JobState>('pending', 'cancelled'), { nil: null }),
  maxPageBytes: fc.integer({ min: 1, max: 3000 }),
  midway: fc.integer({ min: 0, max: 5 }),
});

function checkQuery(text: string): void {
  let q: JobListQuery;
  try {
    q = parseJobListQuery(new URLSearchParams(text));
  } catch (err) {
    if (err instanceof HttpError && err.httpStatus === 400 && err.code === 'BAD_QUERY') return;
    throw err;
  }
  if (!Number.isInteger(q.limit) || q.limit < 1 || q.limit > 1000) throw new Error(`limit ${q.limit} passed the parser`);
  if (q.state !== null && !JOB_STATES.includes(q.state)) throw new Error(`state ${q.state} passed the parser`);
  if (q.after !== null && (!Number.isSafeInteger(q.after) || q.after < 1 || decodeCursor(encodeCursor(q.after)) !== q.after)) throw new Error(`cursor ${q.after} passed the parser`);
}

function checkWalk(t: { jobs: string[]; limit: number; state: JobState | null; maxPageBytes: number; midway: number }): void {
  const log = new Log();
  t.jobs.forEach((_, i) => log.ok(submit(`j${i}`)));
  t.jobs.forEach((fate, i) => {
    if (fate !== 'stay') log.ok({ type: 'cancelJob', jobId: `j${i}` });
  });
  const forget = t.jobs.flatMap((fate, i) => (fate === 'forget' ? [`j${i}`] : []));
  if (forget.length > 0) log.ok({ type: 'forgetJobs', jobIds: forget, finishedBefore: T0 });
  const expected = [...log.state.jobs.values()].filter((j) => t.state === null || j.state === t.state).map((j) => j.id).reverse();

  const seen: string[] = [];
  let after: number | null = null;
  for (let pages = 0; ; pages++) {
    if (pages > expected.length + 1) throw new Error('the walk does not end');
    const query: JobListQuery = { state: t.state, limit: t.limit, after, withSpec: false, labels: [] };
    const page = buildJobPage(log.state.jobsNewestFirst(after), query, (job) => log.state.jobSummary(job), t.maxPageBytes);
    if (page.jobs.length > t.limit) throw new Error(`a page of ${page.jobs.length} rows for limit ${t.limit}`);
    seen.push(...page.jobs.map((r) => (r as { id: string }).id));
    if (pages < t.midway) log.ok(submit(`new${pages}`));
    if (page.next === null) break;
    if (page.jobs.length === 0) throw new Error('an empty page with a next cursor');
    after = decodeCursor(page.next);
  }
  if (JSON.stringify(seen) !== JSON.stringify(expected)) throw new Error(`walked ${seen.join(',')}, expected ${expected.join(',')}`);
}

export const target: FuzzTarget = {
  name: 'job-list',
  property() {
    return fc.property(queryText, table, (text, t) => {
      checkQuery(text);
      checkWalk(t);
    });
  },
};
