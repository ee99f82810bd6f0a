// submit, status, jobs, cancel, nodes: thin HTTP clients of the gateway.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
// undici's, like the fetch that sends it (cli/client.ts).
import type { Command } from 'commander';
import { FormData } from 'undici';
import { systemClock } from '../../src/util/clock.js';
import { parseDurationSeconds, parseSizeMB, formatSeconds } from '../../src/util/units.js';
import { ApiClient, type ClientOptions } from '../client.js';
import { CliError, EXIT } from '../exit.js';

export interface SubmitOptions extends ClientOptions {
  image: string;
  file: string[];
  env: string[];
  estimate?: string;
  checkpoint?: string;
  cpus?: string;
  memory?: string;
  output: string[];
  timeout?: string;
  name?: string;
  label: string[];
  wait?: boolean;
  json?: boolean;
}

interface JobView {
  id: string;
  /** Absent from nodes of versions before names and labels. */
  name?: string | null;
  labels?: Record<string, string>;
  state: string;
  node: string | null;
  epoch: number;
  exitCode: number | null;
  spec: { estimateSeconds?: number; command: string[] };
  attempts: Array<{ node: string; epoch: number; fromCheckpoint: { seq: number; epoch: number } | null; restoreError?: string | null; reason: string | null; failure?: string | null }>;
  checkpoints: unknown[];
  createdAt: unknown;
  startedAt: unknown;
  finishedAt: unknown;
}

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

function usage(message: string): never {
  throw new CliError(message, EXIT.usage);
}

function parseOr<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    return usage(`${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function buildSpec(command: string[], o: SubmitOptions): Record<string, unknown> {
  if (command.length === 0) usage('give the command to run after --, e.g. workrs submit -- sh -c "echo hi"');
  const spec: Record<string, unknown> = { image: o.image, command };
  if (o.env.length > 0) {
    const env: Record<string, string> = {};
    for (const kv of o.env) {
      const eq = kv.indexOf('=');
      if (eq <= 0) usage(`--env ${kv}: expected KEY=VALUE`);
      env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    spec.env = env;
  }
  if (o.file.length > 0) {
    const names = o.file.map((f) => basename(f));
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup) usage(`--file: two files are named ${dup} (files land in /work by their base name)`);
    spec.files = names;
  }
  if (o.output.length > 0) spec.outputs = o.output;
  if (o.estimate !== undefined) spec.estimateSeconds = parseOr('--estimate', () => parseDurationSeconds(o.estimate ?? ''));
  if (o.checkpoint !== undefined) {
    const c = o.checkpoint.trim();
    spec.checkpoint = c === 'auto' || c === 'off' ? { mode: c } : { mode: 'interval', intervalSeconds: parseOr('--checkpoint', () => parseDurationSeconds(c)) };
  }
  if (o.cpus !== undefined) spec.cpus = parseOr('--cpus', () => {
    const n = Number(o.cpus);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`'${o.cpus}' is not a positive number`);
    return n;
  });
  if (o.memory !== undefined) spec.memoryMB = parseOr('--memory', () => parseSizeMB(o.memory ?? ''));
  if (o.timeout !== undefined) spec.timeoutSeconds = parseOr('--timeout', () => parseDurationSeconds(o.timeout ?? ''));
  // Name and labels are checked by the server (src/state/spec.ts), which says what is wrong with them.
  if (o.name !== undefined) spec.name = o.name;
  if (o.label.length > 0) spec.labels = parseLabels(o.label);
  return spec;
}

/** --label k=v, repeatable; a key given twice is a mistake, not an override. */
export function parseLabels(pairs: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const kv of pairs) {
    const eq = kv.indexOf('=');
    if (eq <= 0) usage(`--label ${kv}: expected KEY=VALUE`);
    const key = kv.slice(0, eq);
    if (Object.hasOwn(labels, key)) usage(`--label: ${key} is given twice`);
    Object.defineProperty(labels, key, { value: kv.slice(eq + 1), enumerable: true, writable: true, configurable: true });
  }
  return labels;
}

export async function submitCommand(command: string[], o: SubmitOptions): Promise<void> {
  const client = new ApiClient(o);
  const spec = buildSpec(command, o);
  // One key for this submission: a retry after a lost answer cannot create a second job.
  const key = randomUUID();
  const headers = { 'idempotency-key': key };
  const res = await retryUnavailable(() =>
    o.file.length === 0
      ? client.request<{ id: string; state: string }>('POST', '/v1/jobs', { json: spec, headers })
      : client.request<{ id: string; state: string }>('POST', '/v1/jobs', { form: uploadForm(spec, o.file), headers }),
  );
  if (o.json) process.stdout.write(`${JSON.stringify(res.body)}\n`);
  else process.stdout.write(`${res.body.id}\n`);
  if (o.wait) process.exitCode = (await waitForJob(client, res.body.id)).exit;
}

function uploadForm(spec: Record<string, unknown>, files: string[]): FormData {
  const form = new FormData();
  form.append('spec', JSON.stringify(spec));
  for (const f of files) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(f);
    } catch (err) {
      return usage(`--file ${f}: ${err instanceof Error ? err.message : String(err)}`);
    }
    form.append('file', new Blob([bytes]), basename(f));
  }
  return form;
}

/** Retries a request refused with 503 (an election under way) for up to 15 s. */
export async function retryUnavailable<T>(f: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      return await f();
    } catch (err) {
      if (!(err instanceof CliError) || err.exitCode !== EXIT.unreachable || Date.now() > deadline) throw err;
      await systemClock.sleep(300);
    }
  }
}

/** How often --wait repeats an unchanged running line, with its percent of the forecast. */
const PROGRESS_EVERY_MS = 10_000;

/** Follows the job until it is final: its exit code (docs/api.md); past `timeoutMs`, EXIT.timeout. */
/** Follows the job until it is final (progress on stderr): the exit code to end with, and the job as it ended (null on a timeout). */
async function waitForJob(client: ApiClient, ref: string, timeoutMs = Number.POSITIVE_INFINITY): Promise<{ exit: number; job: JobView | null }> {
  // A name or an id prefix names the job once: followed by its id from then on, so a
  // newer job of the same name cannot take its place midway.
  let id = ref;
  let last = '';
  let lastPrinted = 0;
  const started = Date.now();
  for (;;) {
    if (Date.now() - started > timeoutMs) {
      process.stderr.write(`timed out after ${formatSeconds(timeoutMs / 1000)}: job ${id} is ${last === '' ? 'not final' : last}\n`);
      return { exit: EXIT.timeout, job: null };
    }
    const job = (await retryUnavailable(() => client.request<JobView>('GET', `/v1/jobs/${encodeURIComponent(id)}`))).body;
    id = job.id;
    const elapsed = (Date.now() - started) / 1000;
    const attempt = job.attempts.at(-1);
    const resumed = attempt?.fromCheckpoint ? `, resumed from checkpoint ${attempt.fromCheckpoint.seq}${attempt.restoreError ? ' FAILED: restarted from scratch' : ''}` : '';
    const line = `${job.state}${job.node ? ` on ${job.node}` : ''} epoch ${job.epoch}${resumed}, ${job.checkpoints.length} checkpoints`;
    // Percent of the forecast: wall time since the job first started, against estimateSeconds.
    const ranFor = typeof job.startedAt === 'number' ? Math.max(0, (Date.now() - job.startedAt) / 1000) : 0;
    const pct = job.state === 'running' && job.spec.estimateSeconds ? `, ${Math.min(99, Math.round((100 * ranFor) / job.spec.estimateSeconds))}% of forecast` : '';
    if (line !== last || (job.state === 'running' && Date.now() - lastPrinted >= PROGRESS_EVERY_MS)) {
      process.stderr.write(`[${formatSeconds(elapsed)}] ${line}${pct}\n`);
      last = line;
      lastPrinted = Date.now();
    }
    if (TERMINAL.has(job.state)) {
      if (job.state === 'cancelled') return { exit: EXIT.failed, job };
      const failure = job.attempts.at(-1)?.failure;
      if (failure) process.stderr.write(`failed: ${failure}\n`);
      // Failed by its node after exit code 0 (outputs over the cap): not a success.
      if (job.state === 'failed' && !job.exitCode) return { exit: EXIT.failed, job };
      return { exit: job.exitCode ?? (job.state === 'succeeded' ? 0 : EXIT.failed), job };
    }
    await systemClock.sleep(500);
  }
}

/** `workrs wait JOB`: until the job is final, then exits as `submit --wait` does. */
export async function waitCommand(id: string, o: ClientOptions & { timeout?: string; json?: boolean }): Promise<void> {
  const timeoutMs = o.timeout === undefined ? Number.POSITIVE_INFINITY : 1000 * parseOr('--timeout', () => parseDurationSeconds(o.timeout ?? ''));
  const client = new ApiClient(o);
  const { exit, job } = await waitForJob(client, id, timeoutMs);
  if (o.json && job !== null) process.stdout.write(`${JSON.stringify(job, null, 2)}\n`);
  process.exitCode = exit;
}

export async function statusCommand(id: string, o: ClientOptions & { json?: boolean }): Promise<void> {
  const client = new ApiClient(o);
  const job = (await client.request<JobView>('GET', `/v1/jobs/${encodeURIComponent(id)}`)).body;
  if (o.json) {
    process.stdout.write(`${JSON.stringify(job, null, 2)}\n`);
    return;
  }
  const labels = Object.entries(job.labels ?? {});
  const lines = [
    `job       ${job.id}`,
    ...(job.name ? [`name      ${job.name}`] : []),
    ...(labels.length > 0 ? [`labels    ${labels.map(([k, v]) => `${k}=${v}`).join(' ')}`] : []),
    `state     ${job.state}${job.exitCode !== null ? ` (exit ${job.exitCode})` : ''}`,
    ...(job.attempts.at(-1)?.failure ? [`failure   ${job.attempts.at(-1)?.failure ?? ''}`] : []),
    `node      ${job.node ?? '-'} (epoch ${job.epoch})`,
    `command   ${job.spec.command.join(' ')}`,
    `attempts  ${job.attempts.length}`,
    ...job.attempts.map(
      (a) =>
        `  - ${a.node} epoch ${a.epoch}${a.fromCheckpoint ? ` from checkpoint ${a.fromCheckpoint.seq} of epoch ${a.fromCheckpoint.epoch}` : ''}${a.restoreError ? ` (restore failed, restarted from scratch: ${a.restoreError})` : ''}${a.reason ? `: ${a.reason}` : ''}${a.failure ? ` (failed: ${a.failure})` : ''}`,
    ),
    `checkpoints ${job.checkpoints.length}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** A row of GET /v1/jobs (src/state/views.ts JobSummary). */
interface JobRow {
  id: string;
  name?: string | null;
  state: string;
  node: string | null;
  commandLine: string;
  exitCode: number | null;
  createdAt: number;
}

/** How long ago, as `docker ps` says it: 45s, 12m, 3h, 2d. */
export function age(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** Rows per request: output starts at once, a request stays around 100 KB, and long lists take few requests (the API allows up to 1000). */
const JOBS_PAGE = 250;

/** Width of the NAME column; a longer name pushes the rest of its row right rather than being cut. */
const NAME_COLUMN = 16;

export async function jobsCommand(o: ClientOptions & { state?: string; label: string[]; json?: boolean; limit: string; all?: boolean }): Promise<void> {
  const client = new ApiClient(o);
  const wanted = o.all
    ? Number.POSITIVE_INFINITY
    : parseOr('--limit', () => {
        const n = Number(o.limit);
        if (!Number.isSafeInteger(n) || n < 1) throw new Error(`'${o.limit}' is not a whole number of jobs ≥ 1`);
        return n;
      });
  // Rows are printed page by page, so --all never holds the whole list; --json writes
  // the same text as JSON.stringify(rows, null, 2) would.
  let shown = 0;
  let after: string | null = null;
  do {
    const query = new URLSearchParams({ limit: String(Math.min(JOBS_PAGE, wanted - shown)) });
    if (o.state) query.set('state', o.state);
    for (const l of o.label) query.append('label', l);
    if (after !== null) query.set('after', after);
    const page: { jobs: JobRow[]; next: string | null } = (await client.request<{ jobs: JobRow[]; next: string | null }>('GET', `/v1/jobs?${query}`)).body;
    // The heading once the first page is in: a refused request prints no half a table.
    if (after === null) process.stdout.write(o.json ? '[' : `${'ID'.padEnd(38)} ${'NAME'.padEnd(NAME_COLUMN)} ${'STATE'.padEnd(10)} ${'EXIT'.padEnd(5)} ${'AGE'.padEnd(5)} ${'NODE'.padEnd(10)} COMMAND\n`);
    const now = Date.now();
    for (const j of page.jobs) {
      if (o.json) process.stdout.write(`${shown === 0 ? '' : ','}\n  ${JSON.stringify(j, null, 2).replace(/\n/g, '\n  ')}`);
      else process.stdout.write(`${j.id.padEnd(38)} ${(j.name ?? '-').padEnd(NAME_COLUMN)} ${j.state.padEnd(10)} ${(j.exitCode === null ? '-' : String(j.exitCode)).padEnd(5)} ${age(now - j.createdAt).padEnd(5)} ${(j.node ?? '-').padEnd(10)} ${j.commandLine}\n`);
      shown++;
    }
    after = page.next;
  } while (after !== null && shown < wanted);
  if (o.json) process.stdout.write(shown === 0 ? ']\n' : '\n]\n');
  if (after !== null) process.stderr.write(`${shown} jobs listed; more: use --all (or a larger --limit)\n`);
}

export async function cancelCommand(id: string, o: ClientOptions & { json?: boolean }): Promise<void> {
  const client = new ApiClient(o);
  const res = await client.request<{ id: string; state: string }>('DELETE', `/v1/jobs/${encodeURIComponent(id)}`);
  process.stdout.write(o.json ? `${JSON.stringify(res.body)}\n` : `${res.body.id} ${res.body.state}\n`);
}

export interface ClusterView {
  leader: string | null;
  term: number;
  commitIndex: number;
  /** Absent from builds before protocol versions (docs/upgrading.md). */
  clusterVersion?: number;
  divergence?: Array<{ node: string; index: number }>;
  nodes: Array<{
    id: string;
    api: string;
    peer: string;
    role: string;
    voter: boolean;
    state: string;
    lastSeenMs: number | null;
    slots: number;
    running: number;
    draining?: boolean;
    build?: { version: string; protocol: { min: number; max: number } } | null;
  }>;
}

export async function nodesCommand(o: ClientOptions & { json?: boolean }): Promise<void> {
  const client = new ApiClient(o);
  const c = (await client.request<ClusterView>('GET', '/v1/cluster')).body;
  if (o.json) {
    process.stdout.write(`${JSON.stringify(c, null, 2)}\n`);
    return;
  }
  process.stdout.write(`leader ${c.leader ?? '-'}  term ${c.term}  commit ${c.commitIndex}  cluster version ${c.clusterVersion ?? 1}\n`);
  process.stdout.write(`${'ID'.padEnd(10)} ${'ROLE'.padEnd(8)} ${'STATE'.padEnd(18)} ${'API'.padEnd(22)} ${'RUNNING'.padEnd(8)} ${'LAST SEEN'.padEnd(12)} BUILD\n`);
  for (const n of c.nodes) {
    const seen = n.lastSeenMs === null ? '-' : `${n.lastSeenMs} ms ago`;
    // The build the node announced to the leader; "-" when none was heard (or it is from before versions).
    const build = n.build ? `${n.build.version} (protocol ${n.build.protocol.min}-${n.build.protocol.max})` : '-';
    process.stdout.write(`${n.id.padEnd(10)} ${n.role.padEnd(8)} ${(n.draining ? `${n.state},draining` : n.state).padEnd(18)} ${(n.api || '-').padEnd(22)} ${`${n.running}/${n.slots}`.padEnd(8)} ${seen.padEnd(12)} ${build}\n`);
  }
  for (const d of c.divergence ?? []) process.stderr.write(`STATE DIVERGENCE: ${d.node}'s state at index ${d.index} differs from the leader's (docs/upgrading.md)\n`);
}

/** `nodes remove NODE`: its client options are those of `nodes` (the parent command). */
export async function nodesRemoveCommand(node: string, _opts: unknown, cmd: Command): Promise<void> {
  const o = cmd.optsWithGlobals<ClientOptions & { json?: boolean }>();
  const client = new ApiClient(o);
  const res = await retryUnavailable(() => client.request<{ id: string; state: string }>('DELETE', `/v1/cluster/nodes/${encodeURIComponent(node)}`));
  process.stdout.write(o.json ? `${JSON.stringify(res.body)}\n` : `${res.body.id} ${res.body.state}\n`);
}
