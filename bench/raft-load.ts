// `make bench-raft` (bench/raft.ts): the client side and the process meters, the same for
// etcd and Workrs. One Node HTTP/1.1 client with kept-alive connections (node:http
// Agent), a closed loop of C clients each sending its next write as soon as the answer
// to the last is in; CPU (utime + stime) and memory (VmRSS, VmHWM) of the server
// processes read from /proc.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';

/** A write as a system takes it: where, what, and which status means committed. */
export interface Write {
  /** The URL of one member's write route, e.g. http://127.0.0.1:2379/v3/kv/put. */
  url: string;
  /** The body of the n-th write of client `client` (etcd: a fresh key each time). */
  body: (client: number, n: number) => string;
  okStatus: number;
}

/** POST `body`; resolves with the status (0: no answer within `timeoutMs` or an error). */
export function post(agent: Agent, url: URL, body: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

const CLK_TCK = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (user + system) a process has used, in ms; NaN when it is gone. */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** Resident memory now (VmRSS) and its peak so far (VmHWM), in MiB; NaN when the process is gone. */
export function memoryMiB(pid: number): { rss: number; hwm: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  } catch {
    return { rss: NaN, hwm: NaN };
  }
}

export interface LoadRun {
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Server CPU ms per committed write: the members' utime + stime over the counted window, summed. */
  cpuMsPerOp: number;
  /** Answers other than okStatus (and no answers) over the whole run, warm-up included. */
  errors: number;
}

/**
 * `clients` closed-loop clients against `write` for `warmupS` + `seconds`; only writes
 * sent and answered inside the counted window count (latency and throughput); the
 * CPU of `pids` is read at the window's two ends.
 */
export async function closedLoop(write: Write, pids: readonly number[], clients: number, warmupS: number, seconds: number): Promise<LoadRun> {
  const url = new URL(write.url);
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const start = performance.now();
  const countFrom = start + warmupS * 1000;
  const end = countFrom + seconds * 1000;
  const latencies: number[] = [];
  let errors = 0;
  const cpuNow = (): number => pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  let cpuStart = NaN;
  const atWindow = setTimeout(() => (cpuStart = cpuNow()), warmupS * 1000);
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let n = 0; performance.now() < end; n++) {
        const t0 = performance.now();
        const status = await post(agent, url, write.body(client, n), 30_000);
        const t1 = performance.now();
        if (status !== write.okStatus) errors += 1;
        else if (t0 >= countFrom && t1 <= end) latencies.push(t1 - t0);
      }
    }),
  );
  const cpuEnd = cpuNow();
  clearTimeout(atWindow);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { opsPerSecond: latencies.length / seconds, p50Ms: at(0.5), p99Ms: at(0.99), cpuMsPerOp: latencies.length > 0 ? (cpuEnd - cpuStart) / latencies.length : NaN, errors };
}

/**
 * Time from `killedAt` (performance.now()) to the first write that succeeds: a probe
 * every `everyMs` to the next of `urls` in turn (the survivors; both systems pass a
 * write on to their leader), each without waiting for the ones before it, each given
 * up after 2 s. Null if none succeeded within `timeoutMs`.
 */
export async function firstWriteAfter(killedAt: number, urls: readonly string[], write: Write, everyMs = 10, timeoutMs = 30_000): Promise<number | null> {
  const agent = new Agent({ keepAlive: true });
  try {
    return await new Promise<number | null>((resolve) => {
      let done = false;
      let n = 0;
      const finish = (v: number | null): void => {
        if (done) return;
        done = true;
        clearInterval(timer);
        clearTimeout(giveUp);
        resolve(v);
      };
      const probe = (): void => {
        const url = new URL(urls[n % urls.length] as string);
        n += 1;
        void post(agent, url, write.body(9999, n), 2000).then((status) => {
          if (status === write.okStatus) finish(performance.now() - killedAt);
        });
      };
      const timer = setInterval(probe, everyMs);
      const giveUp = setTimeout(() => finish(null), timeoutMs);
      probe();
    });
  } finally {
    agent.destroy();
  }
}
