// Real `workrs start` processes (the built dist/workrs) on loopback, each with its own
// data folder, for tests that kill -9 and restart them. Options put each node on an
// address of its own and run it under a command prefix (the Docker acceptance tests:
// each node in a network namespace of its own, see test/docker/netlab.ts).
//
// Clusters run in secure mode unless a test asks for dev mode (and says why): a join
// secret, HTTPS with the cluster's CA (trusted by this process's fetch once a node has
// written DATA/ca.pem), and requests made with an admin token from POST
// /v1/acl/bootstrap, or with the token a call names.
//
// Every answer obtained through request() (and get, post, readiness) is checked against
// the API's OpenAPI description (test/helpers/openapi-check.ts): an undocumented route or
// status, or a JSON body that does not match its schema, is recorded, and destroy()
// then throws, which fails the test whose teardown calls it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { freePorts } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';
import { trustCa } from '../helpers/trust.js';
import { openApiChecker } from '../helpers/openapi-check.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** WORKRS_BINARY: a copy of the binary, so a rebuild of dist/ cannot change it under a running test. */
export const BINARY = process.env.WORKRS_BINARY ?? join(root, 'dist', 'workrs');
/** How long after a node's exit its log file may still take in the output it wrote. */
const LOG_FLUSH_WAIT_MS = 5000;
/** `ended` of a node never started: it never ends. */
const NOT_STARTED = new Promise<never>(() => undefined);

export interface ProcNode {
  id: string;
  /** The address the node listens on and advertises, for the API and peers. */
  host: string;
  apiPort: number;
  peerPort: number;
  dataDir: string;
  logFile: string;
  proc: ChildProcess | null;
  /**
   * The exit code (or signal) of the process last started, once it has exited and its
   * output is in logFile; pending while it runs. (See start().)
   */
  ended: Promise<number | NodeJS.Signals>;
  args: string[];
}

export interface ClusterOptions {
  /** The address of each node (default 127.0.0.1). */
  host?: (id: string) => string;
  /** A command each node's binary runs under, e.g. nsenter into its network namespace. */
  prefix?: (id: string) => string[];
  /** What runs after the prefix (default BINARY), e.g. dist/workrs.cjs under `node --cpu-prof`. */
  binary?: string;
  /** 'secure' (default): --secret-file, HTTPS, API tokens. 'dev': no secret, plain HTTP, no auth, loopback only. */
  mode?: 'secure' | 'dev';
  /** Check every answer against the OpenAPI description (default true); off only for a test that sends what the API does not describe on purpose. */
  openapiCheck?: boolean;
}

export type Role = 'read' | 'submit' | 'admin';

export interface RequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | FormData | Uint8Array;
  /** The API token to send; default the admin token (bootstrapped on first use); null: none. */
  token?: string | null;
}

export class LocalCluster {
  readonly dir: string;
  readonly nodes = new Map<string, ProcNode>();
  private readonly options: ClusterOptions;

  private constructor(dir: string, options: ClusterOptions) {
    this.dir = dir;
    this.options = options;
  }

  static async create(ids: string[], extraArgs: string[] = [], options: ClusterOptions = {}): Promise<LocalCluster> {
    if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run 'make build' (make test does it)`);
    const c = new LocalCluster(mkdtempSync(join(tmpdir(), 'workrs-proc-')), options);
    if (c.secure) writeFileSync(c.secretFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const ports = await freePorts(ids.length * 2);
    ids.forEach((id, i) => {
      const apiPort = ports[2 * i] ?? 0;
      const peerPort = ports[2 * i + 1] ?? 0;
      c.nodes.set(id, { id, host: c.hostOf(id), apiPort, peerPort, dataDir: join(c.dir, id), logFile: join(c.dir, `${id}.log`), proc: null, ended: NOT_STARTED, args: [] });
    });
    const bootstrap = ids.map((id) => `${id}=${c.node(id).host}:${c.node(id).peerPort}`).join(',');
    for (const id of ids) c.node(id).args = [...c.baseArgs(id), '--bootstrap', bootstrap, ...extraArgs];
    return c;
  }

  /** A node that will join through `via` (not started). */
  async addJoiner(id: string, via: string, extraArgs: string[] = []): Promise<ProcNode> {
    const [apiPort = 0, peerPort = 0] = await freePorts(2);
    const n: ProcNode = { id, host: this.hostOf(id), apiPort, peerPort, dataDir: join(this.dir, id), logFile: join(this.dir, `${id}.log`), proc: null, ended: NOT_STARTED, args: [] };
    this.nodes.set(id, n);
    n.args = [...this.baseArgs(id), '--join', this.url(via), ...extraArgs];
    return n;
  }

  get secure(): boolean {
    return (this.options.mode ?? 'secure') === 'secure';
  }

  /** The join secret's file (secure mode). */
  get secretFile(): string {
    return join(this.dir, 'secret');
  }

  private admin: string | null = null;
  private caPemSeen: string | null = null;

  /** The cluster CA (secure mode): DATA/ca.pem of the first node that wrote it; null before any did. */
  caPem(): string | null {
    if (this.caPemSeen !== null) return this.caPemSeen;
    for (const n of this.nodes.values()) {
      const file = join(n.dataDir, 'ca.pem');
      if (!existsSync(file)) continue;
      this.caPemSeen = readFileSync(file, 'utf8');
      trustCa(this.caPemSeen);
      return this.caPemSeen;
    }
    return null;
  }

  /** A file holding the cluster CA, for CLI processes (--ca-file). */
  caFile(): string {
    const pem = this.caPem();
    if (pem === null) throw new Error('no node has written its ca.pem yet');
    const file = join(this.dir, 'ca.pem');
    writeFileSync(file, pem);
    return file;
  }

  private adminPending: Promise<string> | null = null;

  /** The admin token, made with POST /v1/acl/bootstrap on first use (secure mode); calls racing the first share it. */
  adminToken(): Promise<string> {
    if (this.admin !== null) return Promise.resolve(this.admin);
    this.adminPending ??= this.bootstrapAcl().finally(() => (this.adminPending = null));
    return this.adminPending;
  }

  private async bootstrapAcl(): Promise<string> {
    const live = [...this.nodes.values()].find((n) => n.proc);
    if (!live) throw new Error('no node is running to bootstrap the ACL on');
    const res = await this.request(live.id, '/v1/acl/bootstrap', { method: 'POST', token: null }, 15_000);
    const body = (await res.json()) as { token?: string; error?: unknown };
    if (res.status !== 200 || typeof body.token !== 'string') throw new Error(`acl bootstrap answered ${res.status}: ${JSON.stringify(body)}`);
    await this.untilKnownEverywhere(body.token);
    this.admin = body.token;
    return this.admin;
  }

  /**
   * Waits until every live node accepts `token`: a node knows a token once it has
   * applied its entry, which the others may do a few milliseconds after the node
   * that answered.
   */
  private async untilKnownEverywhere(token: string): Promise<void> {
    await waitFor('every live node to know the new token', async () => {
      const live = [...this.nodes.values()].filter((n) => n.proc);
      const codes = await Promise.all(live.map((n) => this.request(n.id, '/v1/acl/self', { token }).then((r) => r.status, () => 0)));
      return codes.every((c) => c === 200) ? true : undefined;
    }, 10_000, 20);
  }

  /** A new API token of `role` (made with the admin token). */
  async createToken(role: Role, opts: { name?: string; ttlSeconds?: number; via?: string } = {}): Promise<{ id: string; token: string }> {
    const via = opts.via ?? [...this.nodes.values()].find((n) => n.proc)?.id;
    if (via === undefined) throw new Error('no node is running');
    const r = await this.post<{ id: string; token: string }>(via, '/v1/acl/tokens', { role, ...(opts.name === undefined ? {} : { name: opts.name }), ...(opts.ttlSeconds === undefined ? {} : { ttlSeconds: opts.ttlSeconds }) });
    if (r.status !== 201) throw new Error(`creating a ${role} token answered ${r.status}: ${JSON.stringify(r.body)}`);
    if (opts.ttlSeconds === undefined || opts.ttlSeconds > 5) await this.untilKnownEverywhere(r.body.token);
    return r.body;
  }

  private hostOf(id: string): string {
    return this.options.host?.(id) ?? '127.0.0.1';
  }

  private baseArgs(id: string): string[] {
    const n = this.node(id);
    const secret = this.secure ? ['--secret-file', this.secretFile] : [];
    return ['start', '--id', id, '--data', n.dataDir, '--api', `${n.host}:${n.apiPort}`, '--peer', `${n.host}:${n.peerPort}`, '--runtime', 'fake', '--slots', '4', ...secret];
  }

  node(id: string): ProcNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  url(id: string): string {
    const n = this.node(id);
    return `${this.secure ? 'https' : 'http'}://${n.host}:${n.apiPort}`;
  }

  /** Starts `id`'s process; `binary` runs instead of the cluster's (e.g. another build on the same data folder). */
  start(id: string, binary?: string): void {
    const n = this.node(id);
    if (n.proc) throw new Error(`${id} is already running`);
    mkdirSync(dirname(n.logFile), { recursive: true });
    const log = createWriteStream(n.logFile, { flags: 'a' });
    const [cmd = BINARY, ...args] = [...(this.options.prefix?.(id) ?? []), binary ?? this.options.binary ?? BINARY, ...n.args];
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WORKRS_LOG_LEVEL: process.env.WORKRS_TEST_LOG_LEVEL ?? 'info' } });
    // Two streams into one file: neither may end it (the first to end would cut the
    // other's last lines); it ends once the process's pipes have closed.
    proc.stdout?.pipe(log, { end: false });
    proc.stderr?.pipe(log, { end: false });
    const written = new Promise<void>((resolve) => proc.once('close', () => log.end(resolve)));
    const exit = new Promise<number | NodeJS.Signals>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal ?? 'SIGKILL')));
    // A child the node started that outlives it holds its pipes open: then the exit
    // counts after LOG_FLUSH_WAIT_MS (what was written by then is in the file).
    n.ended = exit.then(async (code) => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([written, new Promise((r) => (timer = setTimeout(r, LOG_FLUSH_WAIT_MS)))]);
      clearTimeout(timer);
      return code;
    });
    proc.on('exit', () => {
      if (n.proc === proc) n.proc = null;
    });
    n.proc = proc;
  }

  startAll(): void {
    for (const id of this.nodes.keys()) this.start(id);
  }

  /** SIGKILL: the crash the system is built to survive. */
  async kill(id: string): Promise<void> {
    const n = this.node(id);
    const p = n.proc;
    if (!p) return;
    p.kill('SIGKILL');
    await n.ended;
    n.proc = null;
  }

  /**
   * The exit code (or signal) of `id`'s process, once it has exited (on its own, or
   * already) and its output is in its log file. Throws if it runs on after `timeoutMs`.
   */
  async exited(id: string, timeoutMs: number): Promise<number | NodeJS.Signals> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${id} did not exit within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.node(id).ended, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * SIGTERM, the graceful stop (the node checkpoints its jobs and hands off
   * leadership), and its exit; the exit code, or the signal that ended it. Throws if it
   * has not exited within `timeoutMs`.
   */
  async terminate(id: string, timeoutMs = 90_000): Promise<number | NodeJS.Signals> {
    const p = this.node(id).proc;
    if (!p) throw new Error(`${id} is not running`);
    p.kill('SIGTERM');
    return this.exited(id, timeoutMs).catch((err: unknown) => {
      throw new Error(`${id} did not exit within ${timeoutMs} ms of SIGTERM`, { cause: err });
    });
  }


  /**
   * The environment a CLI process (the binary run as `workrs submit`, ...) needs to
   * reach this cluster as `token`'s holder (default: the admin): WORKRS_TOKEN and
   * WORKRS_CA_FILE in secure mode, nothing in dev mode.
   */
  async cliEnv(token?: string): Promise<Record<string, string>> {
    if (!this.secure) return {};
    return { WORKRS_TOKEN: token ?? (await this.adminToken()), WORKRS_CA_FILE: this.caFile() };
  }

  /** Headers that authenticate as `token` (default: the admin token; null: nobody). Nothing in dev mode. */
  async authHeaders(token?: string | null): Promise<Record<string, string>> {
    if (!this.secure || token === null) return {};
    return { authorization: `Bearer ${token ?? (await this.adminToken())}` };
  }

  /** A request to a node's API, as the admin unless `init.token` says otherwise. */
  async request(id: string, path: string, init: RequestInit = {}, timeoutMs = 5000): Promise<Response> {
    if (this.secure) this.caPem();
    const auth = await this.authHeaders(init.token);
    const { token: _token, ...rest } = init;
    const res = await fetch(`${this.url(id)}${path}`, { ...rest, headers: { ...auth, ...init.headers }, signal: AbortSignal.timeout(timeoutMs) });
    await this.checkAnswer(init.method ?? 'GET', path, res);
    return res;
  }

  /** Answers that broke the OpenAPI description so far (see the top of this file): problem → an example. */
  readonly apiViolations = new Map<string, string>();

  /**
   * Checks an answer against the OpenAPI description and records what is wrong with
   * it; for tests that make a request themselves. Reads only a JSON body, from a clone.
   */
  async checkAnswer(method: string, path: string, res: Response): Promise<void> {
    if (this.options.openapiCheck === false) return;
    const v = await openApiChecker().check(method, path, res);
    if (v !== null && !this.apiViolations.has(v.problem)) this.apiViolations.set(v.problem, v.example);
  }

  async get<T>(id: string, path: string, token?: string | null): Promise<{ status: number; body: T }> {
    const res = await this.request(id, path, token === undefined ? {} : { token });
    return { status: res.status, body: (await res.json()) as T };
  }

  async post<T>(id: string, path: string, json: unknown, headers: Record<string, string> = {}, token?: string | null): Promise<{ status: number; body: T }> {
    const res = await this.request(id, path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(json), ...(token === undefined ? {} : { token }) }, 10_000);
    return { status: res.status, body: (await res.json()) as T };
  }

  /**
   * Every job a node lists, following the listing's cursor page by page (`query`:
   * more parameters, e.g. 'spec=1'); null when a page is not answered with 200.
   */
  async listAllJobs<T>(id: string, query = ''): Promise<T[] | null> {
    const jobs: T[] = [];
    let after: string | null = null;
    for (;;) {
      const params: string = ['limit=1000', ...(query ? [query] : []), ...(after === null ? [] : [`after=${encodeURIComponent(after)}`])].join('&');
      const r: { status: number; body: { jobs: T[]; next: string | null } } = await this.get<{ jobs: T[]; next: string | null }>(id, `/v1/jobs?${params}`);
      if (r.status !== 200) return null;
      jobs.push(...r.body.jobs);
      if (r.body.next === null) return jobs;
      after = r.body.next;
    }
  }

  /** Every live node answers /readyz with 200 (leader known, log applied, registered). */
  async allReady(timeoutMs = 20_000): Promise<void> {
    await waitFor('every live node ready', async () => {
      const live = [...this.nodes.values()].filter((n) => n.proc);
      if (this.secure && this.caPem() === null) return undefined;
      const readyz = async (id: string): Promise<number> => {
        const res = await fetch(`${this.url(id)}/readyz`);
        await this.checkAnswer('GET', '/readyz', res);
        return res.status;
      };
      const codes = await Promise.all(live.map((n) => readyz(n.id).catch(() => 0)));
      return codes.every((c) => c === 200) ? true : undefined;
    }, timeoutMs, 50);
  }

  /** The leader as every live node that answers agrees on it. */
  async leader(timeoutMs = 20_000): Promise<string> {
    return waitFor('a leader all live nodes agree on', async () => {
      const views = await Promise.all(
        [...this.nodes.values()].filter((n) => n.proc).map((n) => this.get<{ leader: string | null }>(n.id, '/v1/cluster?stale=1').then((r) => r.body.leader, () => null)),
      );
      const first = views[0];
      return first && views.every((v) => v === first) && this.nodes.get(first)?.proc ? first : undefined;
    }, timeoutMs, 50);
  }

  async stop(): Promise<void> {
    for (const id of this.nodes.keys()) await this.kill(id);
  }

  /**
   * Stops every node; on failure keeps the folder and prints the end of each node's log
   * (CI shows stderr). Throws when answers broke the OpenAPI description: called from a
   * test's teardown, that fails the test.
   */
  async destroy(failed: boolean): Promise<void> {
    await this.stop();
    const violations = [...this.apiViolations].map(([problem, example]) => `${problem}\n    e.g. ${example}`);
    this.apiViolations.clear();
    if (!failed && violations.length === 0) {
      rmSync(this.dir, { recursive: true, force: true });
      return;
    }
    for (const n of this.nodes.values()) {
      const lines = existsSync(n.logFile) ? readFileSync(n.logFile, 'utf8').split('\n').filter((l) => !l.includes('"level":20')) : [];
      process.stderr.write(`--- ${n.id} log (${n.logFile}), last lines:\n${lines.slice(-25).join('\n')}\n`);
    }
    if (violations.length > 0) {
      throw new Error(`answers of the API broke its OpenAPI description (src/api/openapi.json) in ${violations.length} way(s):\n${violations.join('\n')}`);
    }
  }
}

/**
 * A cluster of `ids`, started, with a leader and every node ready; stopped when `t`
 * ends, its folder kept (and the end of each node's log printed) if `t` failed.
 */
export async function startedCluster(t: Test, ids: string[] = ['n1', 'n2', 'n3'], extraArgs: string[] = [], options: ClusterOptions = {}): Promise<{ c: LocalCluster; leader: string }> {
  const c = await LocalCluster.create(ids, extraArgs, options);
  t.teardown(() => c.destroy(!t.passing()));
  c.startAll();
  const leader = await c.leader();
  await c.allReady();
  return { c, leader };
}
