// How long a container's processes were frozen while a call ran, read from the cgroup
// freezer that runc hands CRIU for the dump. With the capture hook (criu-hook.ts) no
// pause/unpause of ours brackets the freeze, and the job's own clock is not ours to
// read: the freezer's state, polled, is. cgroup v1: freezer.state is THAWED, FREEZING
// or FROZEN; v2: cgroup.events says `frozen 0|1` (CRIU may also stop the tasks without
// it; then the freeze is not seen and null comes back).
//
// CRIU freezes the cgroup twice in a dump, and between the two the cgroup is THAWED
// while CRIU holds the tasks stopped by ptrace: a 100 MB job whose own clock stopped
// for 1.59 s showed FROZEN 0.25 s, THAWED 0.53 s, FROZEN 0.79 s. So the freeze is the
// span from the first FROZEN to the last THAWED (1.57 s there), not the FROZEN time.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** A file that tells whether a cgroup is frozen, and how to read it. */
export interface Freezer {
  path: string;
  frozen: (text: string) => boolean;
}

/** The freezer of the cgroup that `/proc/<pid>/cgroup` text `cgroups` names (v1's freezer controller, else v2's unified group); null when none. */
export function freezerIn(cgroups: string): Freezer | null {
  const lines = cgroups.split('\n');
  const v1 = lines.map((l) => /^\d+:([^:]*):(\/.*)$/.exec(l)).find((m) => m?.[1]?.split(',').includes('freezer'));
  if (v1?.[2] !== undefined) return { path: `/sys/fs/cgroup/freezer${v1[2]}/freezer.state`, frozen: (t) => t.trim() !== 'THAWED' };
  const v2 = lines.map((l) => /^0::(\/.*)$/.exec(l)).find((m) => m !== null);
  if (v2?.[1] !== undefined) return { path: `/sys/fs/cgroup${v2[1]}/cgroup.events`, frozen: (t) => /^frozen 1$/m.test(t) };
  return null;
}

/** The freezer of process `pid`'s cgroup; null when there is none to read. */
export function freezerOf(pid: number): Freezer | null {
  try {
    return freezerIn(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
  } catch {
    return null;
  }
}

/**
 * Runs `during` while polling `freezer` (freezerOf) every `pollMs` (4 ms): the span
 * from the first time it was seen frozen to the last time it was seen thawed again (to
 * within a poll or two; a busy event loop reads later), or null when the freezer
 * cannot be read or was never seen frozen. `onThaw` is told each time it is seen
 * thawed after frozen.
 */
export async function timeFrozen<T>(freezer: Freezer | null, during: () => Promise<T>, opts: { pollMs?: number; onThaw?: () => void } = {}): Promise<{ value: T; frozenMs: number | null }> {
  const pollMs = opts.pollMs ?? 4;
  let firstFrozen: number | null = null;
  let lastThaw: number | null = null;
  let frozenNow = false;
  let readable = freezer !== null;
  const poll = (): void => {
    if (!freezer || !readable) return;
    let text: string;
    try {
      text = readFileSync(freezer.path, 'utf8');
    } catch {
      readable = false;
      return;
    }
    const now = performance.now();
    const frozen = freezer.frozen(text);
    const thawed = !frozen && frozenNow;
    if (frozen) firstFrozen ??= now;
    else if (thawed) lastThaw = now;
    frozenNow = frozen;
    if (thawed) opts.onThaw?.();
  };
  poll();
  const timer = setInterval(poll, pollMs);
  try {
    const value = await during();
    poll();
    if (!readable || firstFrozen === null) return { value, frozenMs: null };
    const end = frozenNow ? performance.now() : (lastThaw ?? firstFrozen);
    return { value, frozenMs: end - firstFrozen };
  } finally {
    clearInterval(timer);
  }
}
