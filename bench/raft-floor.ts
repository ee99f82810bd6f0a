// The least a replicated write can cost in Workrs's stack (Node 20, node:http, ws,
// classic-level, msgpackr), measured with bench-raft's client (bench/raft-load.ts) and
// next to etcd 3.4 on the same machine, so that "match etcd" can be judged against
// what the stack itself allows.
//
// Variants, each a set of fresh `node` processes running this file with --role:
// - http: one HTTP server that reads the POST body, JSON.parse's it and answers 202
//   with {"id": "<counter>"}. Nothing persisted, nothing replicated.
// - replicated: the same server as a leader of two followers. The requests that arrive
//   in one event-loop turn are one group (setImmediate): each body is JSON.parse'd and
//   msgpack-encoded as an entry; the group goes as one ws message (a msgpack array
//   carrying the commit index, the first index and the entries) to each follower at
//   once, and into the leader's own LevelDB as one synced batch (one put per entry,
//   keyed by index). Each follower writes what it received in one synced batch and acks
//   its last durable index. An entry is committed, and its request answered, once two
//   of the three processes hold it durably (Raft's majority rule, which is what etcd's
//   leader applies too: its own log counts). Writes on a process do not overlap: what
//   arrives while a batch is being synced goes into the next batch.
// - replicated+apply: as replicated, and every process also decodes each committed
//   entry into a Map (a trivial state machine), which shows what applying costs.
// - etcd: a 3-member etcd cluster (bench/raft-systems.ts), PUT of 100-byte values.
//
// Why a floor: "replicated" does strictly less than any correct Raft write path must
// do (parse, persist with fsync on a majority, replicate, answer): no terms, no
// validation, no idempotency, no log matching, no state machine, no timers or
// heartbeats, no metrics or logging, entries never read back. Whatever Workrs does on
// top of it costs more CPU per write than this, so if this floor's CPU per op is above
// etcd's, no Workrs write path in this stack can match etcd's. (A floor for writes
// grouped per event-loop turn: holding a group back to make it larger would cost less
// CPU per op and add latency.)
//
// CPU per op is utime + stime of the variant's processes summed over the counted
// window (one process for http, three otherwise), as bench-raft counts it.
//
// Run: node_modules/.bin/tsx bench/raft-floor.ts [--reps 3] [--seconds 8] [--warmup 1]
//   [--clients 1,16,256] [--variants http,replicated,replicated+apply,etcd]
//   [--cpu-prof DIR (each replicated process writes V8 CPU profiles to DIR/leader, DIR/f1, DIR/f2)]
// bench/raft.ts can call floorSection() for the same table as markdown.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import os, { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ClassicLevel } from 'classic-level';
import { Packr, Unpackr } from 'msgpackr';
import WebSocket, { WebSocketServer } from 'ws';
import { loadAverage } from './machine.js';
import { closedLoop, type LoadRun, type Write } from './raft-load.js';
import type { EtcdCluster } from './raft-systems.js';
import { summarize, table, type Summary } from './stats.js';

const SELF = fileURLToPath(import.meta.url);
const root = resolve(dirname(SELF), '..');

export const VARIANTS = ['http', 'replicated', 'replicated+apply', 'etcd'] as const;
export type Variant = (typeof VARIANTS)[number];

// The codec settings Workrs uses on its peer links and in its log (src/transport/codec.ts,
// src/storage/codec.ts): plain maps and arrays, received binary fields copied out.
const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });
const unpackr = new Unpackr({ useRecords: false, moreTypes: false, bundleStrings: false, structuredClone: false, mapsAsObjects: true, copyBuffers: true });
/** msgpackr's result is a view of a slab it reuses: a buffer that outlives the call is copied. */
const pack = (value: unknown): Buffer => Buffer.from(packr.pack(value));

// ---------------------------------------------------------------- the server roles

type Db = ClassicLevel<Buffer, Buffer>;
type Op = { type: 'put'; key: Buffer; value: Buffer };

/** A fresh LevelDB in `dir`, with Workrs's raw-buffer encodings. */
async function openDb(dir: string): Promise<Db> {
  const db: Db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  return db;
}

/** Big-endian log index, so that keys sort in log order. */
function indexKey(index: number): Buffer {
  const key = Buffer.allocUnsafe(8);
  key.writeUInt32BE(Math.floor(index / 2 ** 32), 0);
  key.writeUInt32BE(index % 2 ** 32, 4);
  return key;
}

/**
 * Writes batches one at a time: `add` queues puts; whatever is queued while a synced
 * batch is in flight becomes the next batch. `onDurable(last)` follows each batch.
 */
class GroupWriter {
  private queued: Op[] = [];
  private queuedLast = 0;
  private draining: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly db: Db,
    private readonly onDurable: (last: number) => void,
  ) {}

  add(first: number, entries: readonly Buffer[]): void {
    if (this.stopped) return;
    entries.forEach((value, i) => this.queued.push({ type: 'put', key: indexKey(first + i), value }));
    this.queuedLast = first + entries.length - 1;
    this.draining ??= this.drain().finally(() => (this.draining = null));
  }

  /** Takes no more writes and waits for the one in flight, so that the database can close. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.queued = [];
    await this.draining;
  }

  private async drain(): Promise<void> {
    while (this.queued.length > 0) {
      const ops = this.queued;
      const last = this.queuedLast;
      this.queued = [];
      await this.db.batch(ops, { sync: true });
      if (!this.stopped) this.onDurable(last);
    }
  }
}

/** Decodes committed entries into a Map, the stand-in for a state machine ("+apply" variants). */
class Applier {
  private readonly pending = new Map<number, Buffer>();
  private readonly state = new Map<number, unknown>();
  private applied = 0;

  constructor(private readonly enabled: boolean) {}

  hold(first: number, entries: readonly Buffer[]): void {
    if (this.enabled) entries.forEach((e, i) => this.pending.set(first + i, e));
  }

  applyTo(commit: number): void {
    if (!this.enabled) return;
    for (; this.applied < commit; ) {
      this.applied += 1;
      const entry = this.pending.get(this.applied);
      if (entry === undefined) throw new Error(`entry ${this.applied} committed but never received`);
      this.pending.delete(this.applied);
      this.state.set(this.applied, unpackr.unpack(entry));
    }
  }
}

/** Calls `onBody` with each POST's body, JSON-parsed; answers 400 to a body that does not parse. */
function httpServer(onBody: (command: unknown, res: ServerResponse) => void): Server {
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let command: unknown;
      try {
        command = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400).end();
        return;
      }
      onBody(command, res);
    });
  });
}

function accepted(res: ServerResponse, index: number): void {
  const body = `{"id":"${index}"}`;
  res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
}

/** Tells the parent where the role listens, then lives until the parent closes its stdin. */
function ready(port: number, close: () => Promise<void>): void {
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  process.stdin.resume();
  // A normal exit, so that --cpu-prof writes its profile.
  process.stdin.on('end', () => void close().finally(() => process.exit(0)));
}

function listen(server: Server): Promise<number> {
  return new Promise((resolveFn) => server.listen(0, '127.0.0.1', () => resolveFn((server.address() as { port: number }).port)));
}

async function httpRole(): Promise<void> {
  let counter = 0;
  const server = httpServer((_command, res) => accepted(res, ++counter));
  ready(await listen(server), async () => void server.close());
}

async function leaderRole(dir: string, peers: readonly string[], apply: boolean): Promise<void> {
  const db = await openDb(dir);
  const links = await Promise.all(peers.map(connect));
  const matched = [0, ...links.map(() => 0)]; // durable index per process, this one first
  const applier = new Applier(apply);
  const waiting: Array<{ index: number; res: ServerResponse }> = []; // in index order
  let turn: Array<{ command: unknown; res: ServerResponse }> = [];
  let last = 0;
  let commit = 0;

  /** Raft's commit rule: the highest index a majority holds durably. */
  const advance = (): void => {
    const majority = [...matched].sort((a, b) => b - a)[Math.floor(matched.length / 2)] as number;
    if (majority <= commit) return;
    commit = majority;
    applier.applyTo(commit);
    const pending = waiting.findIndex((w) => w.index > commit);
    for (const w of waiting.splice(0, pending === -1 ? waiting.length : pending)) accepted(w.res, w.index);
  };
  const writer = new GroupWriter(db, (durable) => {
    matched[0] = durable;
    advance();
  });
  links.forEach((ws, i) =>
    ws.on('message', (data: Buffer) => {
      matched[i + 1] = Math.max(matched[i + 1] as number, unpackr.unpack(data) as number);
      advance();
    }),
  );

  /** One turn's requests: indexes, encoded entries, one message per follower, one batch. */
  const flush = (): void => {
    const group = turn;
    turn = [];
    const first = last + 1;
    const entries = group.map(({ command, res }) => {
      waiting.push({ index: ++last, res });
      return pack(command);
    });
    const message = pack([commit, first, entries]);
    for (const ws of links) ws.send(message);
    applier.hold(first, entries);
    writer.add(first, entries);
  };
  const server = httpServer((command, res) => {
    turn.push({ command, res });
    if (turn.length === 1) setImmediate(flush);
  });
  ready(await listen(server), async () => {
    server.close();
    for (const ws of links) ws.close();
    await writer.stop();
    await db.close();
  });
}

function connect(url: string): Promise<WebSocket> {
  return new Promise((resolveFn, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolveFn(ws));
    ws.once('error', reject);
  });
}

async function followerRole(dir: string, apply: boolean): Promise<void> {
  const db = await openDb(dir);
  const applier = new Applier(apply);
  let leaderCommit = 0;
  let durable = 0;
  let leader: WebSocket | null = null; // the one connection the leader opens
  const writer = new GroupWriter(db, (last) => {
    durable = last;
    applier.applyTo(Math.min(leaderCommit, durable));
    leader?.send(pack(last));
  });
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  wss.on('connection', (ws) => {
    leader = ws;
    ws.on('message', (data: Buffer) => {
      const [commit, first, entries] = unpackr.unpack(data) as [number, number, Buffer[]];
      leaderCommit = Math.max(leaderCommit, commit);
      applier.hold(first, entries);
      applier.applyTo(Math.min(leaderCommit, durable));
      writer.add(first, entries);
    });
  });
  await new Promise((r) => wss.once('listening', r));
  ready((wss.address() as { port: number }).port, async () => {
    wss.close();
    await writer.stop();
    await db.close();
  });
}

// ---------------------------------------------------------------- the bench side

/** Child processes started and not yet stopped: killed on SIGINT too. */
const children = new Set<ChildProcess>();

/** This file as `--role role`; resolves with the port it reports once it listens. */
function startRole(role: string, args: string[], nodeArgs: string[] = []): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', SELF, '--role', role, ...args], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  return new Promise((resolveFn, reject) => {
    const timer = setTimeout(() => reject(new Error(`${role} did not report its port within 30 s`)), 30_000);
    proc.once('exit', (code) => reject(new Error(`${role} exited with ${code} before it listened`)));
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).once('line', (line) => {
      clearTimeout(timer);
      resolveFn({ proc, port: (JSON.parse(line) as { port: number }).port });
    });
  });
}

/** Closes its stdin (a clean exit), SIGKILL if it is still there 10 s later. */
async function stopRole(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  const kill = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  proc.stdin?.end();
  await exited;
  clearTimeout(kill);
}

interface Running {
  write: Write;
  pids: number[];
  stop: () => Promise<void>;
}

/** The body Workrs's bench-raft submits: a ~150-byte JSON job spec. */
let spec = '';
let etcdBin = '';

/**
 * A fresh etcd cluster; a start that finds no leader is cleaned up and tried again, up
 * to 3 times (on this shared machine another bench's etcd can take a port in between).
 */
async function startEtcd(): Promise<EtcdCluster> {
  const systems = await import('./raft-systems.js');
  for (let attempt = 1; ; attempt++) {
    const before = new Set(systems.live);
    try {
      return await systems.EtcdCluster.start(etcdBin);
    } catch (err) {
      for (const sys of [...systems.live]) if (!before.has(sys)) await sys.destroy();
      if (attempt === 3) throw err;
      console.error(`etcd did not start (attempt ${attempt}): ${String(err)}`);
    }
  }
}

async function startVariant(variant: Variant, cpuProfDir: string | undefined): Promise<Running> {
  if (variant === 'etcd') {
    const etcd = await startEtcd();
    const leader = await etcd.leader();
    return { write: etcd.write(leader), pids: etcd.ids.map((id) => etcd.pid(id) ?? 0), stop: () => etcd.destroy() };
  }
  const dir = mkdtempSync(join(tmpdir(), 'workrs-bench-floor-'));
  const procs: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    for (const p of procs) await stopRole(p);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    let port: number;
    if (variant === 'http') {
      const h = await startRole('http', []);
      procs.push(h.proc);
      port = h.port;
    } else {
      const apply = variant === 'replicated+apply' ? ['--apply'] : [];
      // Profiles in a folder per role: DIR/leader, DIR/f1, DIR/f2.
      const prof = (id: string): string[] => (cpuProfDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${join(cpuProfDir, id)}`]);
      const followers = await Promise.all(['f1', 'f2'].map((id) => startRole('follower', ['--dir', join(dir, id), ...apply], prof(id))));
      procs.push(...followers.map((f) => f.proc));
      const peers = followers.map((f) => `ws://127.0.0.1:${f.port}`).join(',');
      const l = await startRole('leader', ['--dir', join(dir, 'leader'), '--peers', peers, ...apply], prof('leader'));
      procs.unshift(l.proc);
      port = l.port;
    }
    return { write: { url: `http://127.0.0.1:${port}/v1/jobs`, okStatus: 202, body: () => spec }, pids: procs.map((p) => p.pid ?? 0), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface FloorOptions {
  clients: readonly number[];
  reps: number;
  seconds: number;
  warmup: number;
  variants?: readonly Variant[];
  /** Where the replicated variants' processes write their CPU profiles (node --cpu-prof), a folder per role; none when unset. */
  cpuProfDir?: string;
  log?: (line: string) => void;
}

interface Measured {
  runs: Map<string, LoadRun[]>;
  /** The 1-minute load average at the end of each run: what else ran on the machine. */
  loads: number[];
}

async function measure(opts: FloorOptions): Promise<Measured> {
  const systems = await import('./raft-systems.js');
  const variants = opts.variants ?? VARIANTS;
  const log = opts.log ?? ((line: string) => console.log(line));
  spec = systems.jobSpec(3600);
  if (variants.includes('etcd')) etcdBin = systems.ensureEtcd();
  const runs = new Map<string, LoadRun[]>();
  const loads: number[] = [];
  for (let rep = 0; rep < opts.reps; rep++) {
    for (const [i, clients] of opts.clients.entries()) {
      // Each variant goes first in turn: whatever else loads the machine spreads over all.
      const shift = (rep + i) % variants.length;
      for (const variant of [...variants.slice(shift), ...variants.slice(0, shift)]) {
        const sys = await startVariant(variant, opts.cpuProfDir);
        let run: LoadRun;
        try {
          log(`${variant} clients ${clients} rep ${rep + 1}: pids ${sys.pids.join(' ')}`);
          run = await closedLoop(sys.write, sys.pids, clients, opts.warmup, opts.seconds);
        } finally {
          await sys.stop();
        }
        runs.set(`${variant}:${clients}`, [...(runs.get(`${variant}:${clients}`) ?? []), run]);
        loads.push(os.loadavg()[0] ?? NaN);
        log(`${variant.padEnd(16)} clients ${String(clients).padStart(3)} rep ${rep + 1}: ${run.opsPerSecond.toFixed(0)} ops/s, p50 ${run.p50Ms.toFixed(2)} ms, p99 ${run.p99Ms.toFixed(2)} ms, CPU ${run.cpuMsPerOp.toFixed(3)} ms/op, failed ${run.errors}, load ${loadAverage()}`);
      }
    }
  }
  return { runs, loads };
}

const fmt = (s: Summary | null, digits: number): string => {
  if (s === null) return '–';
  return s.n === 1 ? s.median.toFixed(digits) : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
};
const ratioTo = (a: Summary | null, b: Summary | null): string => (a && b && b.median !== 0 ? (a.median / b.median).toFixed(2) : '–');

function report({ runs, loads }: Measured, opts: FloorOptions): string {
  const variants = opts.variants ?? VARIANTS;
  const s = (v: Variant, c: number, k: 'opsPerSecond' | 'p50Ms' | 'p99Ms' | 'cpuMsPerOp'): Summary | null =>
    summarize((runs.get(`${v}:${c}`) ?? []).map((r) => r[k]).filter(Number.isFinite));
  const rows = opts.clients.flatMap((c) =>
    variants.map((v) => [
      v, String(c), fmt(s(v, c, 'opsPerSecond'), 0), fmt(s(v, c, 'p50Ms'), 2), fmt(s(v, c, 'p99Ms'), 2), fmt(s(v, c, 'cpuMsPerOp'), 3),
      ratioTo(s(v, c, 'opsPerSecond'), s('etcd', c, 'opsPerSecond')), ratioTo(s(v, c, 'p99Ms'), s('etcd', c, 'p99Ms')), ratioTo(s(v, c, 'cpuMsPerOp'), s('etcd', c, 'cpuMsPerOp')),
      String((runs.get(`${v}:${c}`) ?? []).reduce((n, r) => n + r.errors, 0)),
    ]),
  );
  return [
    '### The floor of a replicated write in this stack',
    '',
    `What the stack itself allows (bench/raft-floor.ts): node:http + ws + classic-level + msgpackr doing strictly less than any Raft write path must (parse, msgpack-encode, one synced LevelDB batch per event-loop turn on each process, one ws message per follower per turn, answer once 2 of 3 hold it), next to etcd, the same client as above. ${opts.reps} repetition(s) of ${opts.seconds} s after ${opts.warmup} s of warm-up, fresh processes per run, the variants alternating; 1-minute load average at the end of the runs ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} (2 cores). http: 1 process; the others: 3 processes summed. Cells: median (min–max).`,
    '',
    table(['variant', 'clients', 'ops/s', 'p50 ms', 'p99 ms', 'CPU ms per op', 'ops/s / etcd', 'p99 / etcd', 'CPU / etcd', 'failed'], rows),
  ].join('\n');
}

/** Measures the floor variants next to etcd; the markdown section for bench/RESULTS.md. */
export async function floorSection(opts: FloorOptions): Promise<string> {
  try {
    return report(await measure(opts), opts);
  } finally {
    for (const p of [...children]) await stopRole(p);
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const { values: flags } = parseArgs({
    options: {
      role: { type: 'string' }, dir: { type: 'string' }, peers: { type: 'string' }, apply: { type: 'boolean', default: false },
      clients: { type: 'string' }, reps: { type: 'string' }, seconds: { type: 'string' }, warmup: { type: 'string' }, variants: { type: 'string' }, 'cpu-prof': { type: 'string' },
    },
  });
  if (flags.role === 'http') return httpRole();
  if (flags.role === 'leader') return leaderRole(flags.dir ?? '', (flags.peers ?? '').split(',').filter(Boolean), flags.apply === true);
  if (flags.role === 'follower') return followerRole(flags.dir ?? '', flags.apply === true);
  if (flags.role !== undefined) throw new Error(`unknown role ${flags.role}`);
  const variants = (flags.variants ?? VARIANTS.join(',')).split(',').map((v) => {
    if (!(VARIANTS as readonly string[]).includes(v)) throw new Error(`unknown variant ${v}; one of ${VARIANTS.join(', ')}`);
    return v as Variant;
  });
  const clients = (flags.clients ?? '1,16,256').split(',').filter(Boolean).map(Number);
  const counts = { reps: Number(flags.reps ?? 3), seconds: Number(flags.seconds ?? 8), warmup: Number(flags.warmup ?? 1) };
  console.log(`\n${await floorSection({ clients, ...counts, variants, cpuProfDir: flags['cpu-prof'] })}`);
}

if (resolve(process.argv[1] ?? '') === SELF) {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const p of children) p.kill('SIGKILL');
      void import('./raft-systems.js')
        .then((systems) => Promise.all([...systems.live].map((sys) => sys.destroy())))
        .finally(() => process.exit(130));
    });
  }
  await main();
}
