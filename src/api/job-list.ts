// GET /v1/jobs: its query, its cursor and its pages. Rows are summaries (no spec unless
// `spec=1`), newest first by submission order; a page ends at `limit` rows or at
// JOB_LIST_MAX_PAGE_BYTES of JSON, and its `next` cursor continues the walk. Positions
// are log indexes, the same on every node, so a walk may change nodes midway, sees
// every job that existed when it started exactly once (unless retention forgets it
// first), and never sees a job submitted after it started.
import { LIST_JOBS_DEFAULT_LIMIT, LIST_JOBS_MAX_LIMIT } from '../state/machine.js';
import { JOB_STATES, type JobRecord, type JobState } from '../state/records.js';
import { LABEL_KEY_PATTERN, SPEC_LIMITS } from '../state/spec.js';
import { HttpError } from './http.js';

/** A page stops before its rows pass this many bytes of JSON (always at least one row): only rows with specs come near it. */
export const JOB_LIST_MAX_PAGE_BYTES = 4 * 1024 * 1024;

export interface JobListQuery {
  state: JobState | null;
  limit: number;
  /** The submission order (log index) of the last job of the previous page; null for the first page. */
  after: number | null;
  /** Rows carry the job's spec too. */
  withSpec: boolean;
  /** Only jobs with every one of these labels: `value` null means any value. */
  labels: LabelFilter[];
}

export interface LabelFilter {
  key: string;
  value: string | null;
}

/** `label=` parameters one list takes at most. */
export const MAX_LABEL_FILTERS = 16;

export interface JobPage {
  jobs: object[];
  /** Cursor of the next page (the `after` to send), or null: the walk is over. */
  next: string | null;
}

/** Cursors are opaque to clients; the version prefix lets their format change. */
const CURSOR = /^c1\.([0-9a-z]{1,11})$/;

export function encodeCursor(order: number): string {
  return `c1.${order.toString(36)}`;
}

/** The submission order a cursor stands for; 400 BAD_QUERY for anything a page did not give. */
export function decodeCursor(cursor: string): number {
  const m = CURSOR.exec(cursor);
  const order = m?.[1] === undefined ? Number.NaN : parseInt(m[1], 36);
  if (!Number.isSafeInteger(order) || order < 1) throw new HttpError(400, 'BAD_QUERY', "after must be a cursor from a page's next");
  return order;
}

function flag(params: URLSearchParams, name: string): boolean {
  const v = params.get(name);
  return v === '1' || v === 'true';
}

export function parseJobListQuery(params: URLSearchParams): JobListQuery {
  const state = params.get('state');
  if (state !== null && !(JOB_STATES as readonly string[]).includes(state)) {
    throw new HttpError(400, 'BAD_QUERY', `state must be one of ${JOB_STATES.join(', ')}`);
  }
  const limitRaw = params.get('limit');
  const limit = limitRaw === null ? LIST_JOBS_DEFAULT_LIMIT : Number(limitRaw);
  if (limitRaw === '' || !Number.isInteger(limit) || limit < 1 || limit > LIST_JOBS_MAX_LIMIT) {
    throw new HttpError(400, 'BAD_QUERY', `limit must be an integer from 1 to ${LIST_JOBS_MAX_LIMIT}; follow next for more`);
  }
  const after = params.get('after');
  return { state: state as JobState | null, limit, after: after === null ? null : decodeCursor(after), withSpec: flag(params, 'spec'), labels: parseLabelFilters(params.getAll('label')) };
}

/** `label=k=v` (that value) or `label=k` (any value), each a condition all jobs listed meet. */
export function parseLabelFilters(values: readonly string[]): LabelFilter[] {
  if (values.length > MAX_LABEL_FILTERS) throw new HttpError(400, 'BAD_QUERY', `at most ${MAX_LABEL_FILTERS} label filters, got ${values.length}`);
  return values.map((v) => {
    const eq = v.indexOf('=');
    const key = eq === -1 ? v : v.slice(0, eq);
    const value = eq === -1 ? null : v.slice(eq + 1);
    if (!LABEL_KEY_PATTERN.test(key)) throw new HttpError(400, 'BAD_QUERY', `label=${v.slice(0, 80)}: the key is not a label key (letters, digits and _ . / -, starting with a letter or digit, at most ${SPEC_LIMITS.labelKeyChars})`);
    if (value !== null && Buffer.byteLength(value) > SPEC_LIMITS.labelValueBytes) throw new HttpError(400, 'BAD_QUERY', `label=${key}=…: the value is longer than ${SPEC_LIMITS.labelValueBytes} bytes`);
    return { key, value };
  });
}

function hasLabels(job: Readonly<JobRecord>, filters: readonly LabelFilter[]): boolean {
  return filters.every(({ key, value }) => Object.hasOwn(job.spec.labels, key) && (value === null || job.spec.labels[key] === value));
}

/**
 * One page from `jobs` (newest first, starting after the query's cursor), filtered
 * by the query's state, each job made a row by `row`. `next` is null only when no
 * further job matches, so a client stops exactly at the end.
 */
export function buildJobPage(jobs: Iterable<Readonly<JobRecord>>, query: JobListQuery, row: (job: Readonly<JobRecord>) => object, maxPageBytes = JOB_LIST_MAX_PAGE_BYTES): JobPage {
  const rows: object[] = [];
  let bytes = 0;
  let lastOrder = 0;
  for (const job of jobs) {
    if (query.state !== null && job.state !== query.state) continue;
    if (query.labels.length > 0 && !hasLabels(job, query.labels)) continue;
    if (rows.length >= query.limit) return { jobs: rows, next: encodeCursor(lastOrder) };
    const r = row(job);
    const size = Buffer.byteLength(JSON.stringify(r)) + 1;
    if (rows.length > 0 && bytes + size > maxPageBytes) return { jobs: rows, next: encodeCursor(lastOrder) };
    rows.push(r);
    bytes += size;
    lastOrder = job.order;
  }
  return { jobs: rows, next: null };
}
