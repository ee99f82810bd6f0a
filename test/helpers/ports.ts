import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Test files run side by side, each in its own process, and each closes the ports it
// probed before its nodes bind them: in that window another file's probe may get the
// same port from the OS, and two clusters then reach each other's nodes (a clean-clone
// run once saw a node enroll through another cluster's node). So every port handed out
// is written to a registry shared by the processes of this machine, and no process is
// given a port that another was given in the last HOLD_MS.
const REGISTRY = join(tmpdir(), 'workrs-test-ports.json');
const LOCK = `${REGISTRY}.lock`;
const HOLD_MS = 120_000;
/** A lock file older than this was left by a process that died holding it. */
const STALE_LOCK_MS = 5_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function withLock<T>(fn: () => T): Promise<T> {
  for (;;) {
    let fd: number;
    try {
      fd = openSync(LOCK, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        if (Date.now() - statSync(LOCK).mtimeMs > STALE_LOCK_MS) unlinkSync(LOCK);
      } catch {
        // gone meanwhile: try again
      }
      await sleep(5);
      continue;
    }
    try {
      return fn();
    } finally {
      closeSync(fd);
      unlinkSync(LOCK);
    }
  }
}

/** Port → when it was handed out (ms since the epoch), recent entries only. */
function readRegistry(now: number): Record<string, number> {
  let entries: Record<string, number> = {};
  try {
    entries = JSON.parse(readFileSync(REGISTRY, 'utf8')) as Record<string, number>;
  } catch {
    // none yet, or torn by a crash: start over
  }
  return Object.fromEntries(Object.entries(entries).filter(([, at]) => typeof at === 'number' && now - at < HOLD_MS));
}

function listenAny(): Promise<Server> {
  return new Promise<Server>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

function portOf(s: Server): number {
  const a = s.address();
  if (a === null || typeof a === 'string') throw new Error('no port');
  return a.port;
}

/**
 * Ports free on 127.0.0.1 right now (the OS picks them) that no other test process
 * was given in the last two minutes. A port can still be taken meanwhile by something
 * that does not ask here (an outgoing connection's source port), which fails a bind
 * loudly instead of joining two clusters.
 */
export async function freePorts(count: number): Promise<number[]> {
  const held: Server[] = [];
  try {
    for (;;) {
      const probes = await Promise.all(Array.from({ length: count - held.length }, listenAny));
      held.push(...probes);
      const taken = await withLock(() => {
        const now = Date.now();
        const registry = readRegistry(now);
        const given = held.filter((s) => registry[String(portOf(s))] !== undefined);
        if (given.length === 0) {
          for (const s of held) registry[String(portOf(s))] = now;
          writeFileSync(REGISTRY, JSON.stringify(registry));
        }
        return given;
      });
      if (taken.length === 0) return held.map(portOf);
      // Drop the ports another process was given; keep the rest open and probe again.
      for (const s of taken) {
        held.splice(held.indexOf(s), 1);
        s.close();
      }
    }
  } finally {
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  }
}
