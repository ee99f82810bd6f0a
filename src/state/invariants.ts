// The invariants that tie the state machine's tables together, checked on every restore
// and by tests after every apply.
import type { LiveTables } from './live-tables.js';
import { imageReferences, isFinal } from './records.js';

/** Throws on the first broken invariant. Cheap enough for tests after every apply. */
export function checkInvariants(live: LiveTables): void {
  const { t, open, byOrder } = live;
  const broken = (what: string): never => {
    throw new Error(`state machine invariant broken: ${what}`);
  };
  for (const job of t.jobs.values()) {
    const attempts = t.attempts.get(job.id) ?? broken(`job ${job.id} has no attempts row`);
    const checkpoints = t.checkpoints.get(job.id) ?? broken(`job ${job.id} has no checkpoints row`);
    if (attempts.length !== job.epoch) broken(`job ${job.id} is at epoch ${job.epoch} with ${attempts.length} attempts`);
    attempts.forEach((a, i) => {
      if (a.epoch !== i + 1 || a.jobId !== job.id) broken(`attempt ${i} of job ${job.id} is ${a.jobId}/${a.epoch}`);
      if (i < attempts.length - 1 && a.end === null) broken(`job ${job.id} has an open attempt ${a.epoch} before its current one`);
    });
    const current = attempts[attempts.length - 1];
    const isOpen = current !== undefined && current.end === null;
    if (open.has(job.id) === isFinal(job.state)) broken(`job ${job.id} (${job.state}) is ${open.has(job.id) ? '' : 'not '}in the open set`);
    if (job.state === 'running') {
      if (current === undefined || !isOpen || current.node !== job.node) return broken(`running job ${job.id} has no open attempt on ${job.node}`);
      const node = t.nodes.get(current.node);
      if (node === undefined || (node.state !== 'alive' && node.state !== 'suspect')) broken(`job ${job.id} runs on ${current.node}, which is ${node?.state ?? 'unknown'}`);
    } else if (isOpen) {
      broken(`${job.state} job ${job.id} has an open attempt ${current.epoch}`);
    }
    if (job.state === 'pending' && job.node !== null) broken(`pending job ${job.id} has node ${job.node}`);
    if (isFinal(job.state) !== (job.finishedAt !== null)) broken(`job ${job.id} is ${job.state} with finishedAt ${job.finishedAt}`);
    const newest = checkpoints[checkpoints.length - 1];
    const want = newest === undefined ? null : `${newest.epoch}/${newest.seq}`;
    const got = job.latestCheckpoint === null ? null : `${job.latestCheckpoint.epoch}/${job.latestCheckpoint.seq}`;
    if (want !== got) broken(`job ${job.id}'s latest checkpoint is ${got}, its newest committed one ${want}`);
  }
  checkIndexes(live);
  if (t.attempts.size !== t.jobs.size || t.checkpoints.size !== t.jobs.size) broken('attempts/checkpoints rows do not match the jobs table');
  // jobsNewestFirst binary-searches byOrder by submission order.
  if (byOrder.length !== t.jobs.size) broken(`${byOrder.length} jobs in submission order, ${t.jobs.size} in the jobs table`);
  let previousOrder = -1;
  for (const [i, job] of [...t.jobs.values()].entries()) {
    if (byOrder[i] !== job) broken(`job ${job.id} is not at position ${i} of the submission order`);
    if (job.order <= previousOrder) broken(`job ${job.id} (order ${job.order}) comes after order ${previousOrder} in the jobs table`);
    previousOrder = job.order;
  }
  const imageOf = new Map<string, string>();
  for (const blob of t.blobs.values()) {
    if (blob.kind !== 'image') continue;
    for (const ref of imageReferences(blob.name)) {
      const other = imageOf.get(ref);
      if (other !== undefined && other !== blob.id) broken(`image reference ${ref} names blobs ${other} and ${blob.id}`);
      imageOf.set(ref, blob.id);
    }
  }
}

/** The derived indexes (pending set, open names, per-node running sets and usage) match the jobs table. */
function checkIndexes(live: LiveTables): void {
  const broken = (what: string): never => {
    throw new Error(`state machine invariant broken: ${what}`);
  };
  const pending = [...live.t.jobs.values()].filter((j) => j.state === 'pending').map((j) => j.id);
  if (pending.length !== live.pending.size || pending.some((id) => !live.pending.has(id))) broken(`the pending index holds ${live.pending.size} jobs, the table ${pending.length}`);
  // A name is unique among open jobs, and the index of open names is exactly theirs.
  const names = new Map<string, string>();
  for (const id of live.open) {
    const name = live.job(id).spec.name;
    if (name === null) continue;
    const other = names.get(name);
    if (other !== undefined) broken(`open jobs ${other} and ${id} are both named ${name}`);
    names.set(name, id);
  }
  if (names.size !== live.openNames.size || [...names].some(([name, id]) => live.openNames.get(name) !== id)) broken(`the open-names index holds ${live.openNames.size} names, the open jobs ${names.size}`);
  const usage = new Map<string, { running: number; memoryMB: number; ids: string[] }>();
  for (const job of live.t.jobs.values()) {
    if (job.state !== 'running' || job.node === null) continue;
    const u = usage.get(job.node) ?? { running: 0, memoryMB: 0, ids: [] };
    u.running += 1;
    u.memoryMB += job.spec.memoryMB ?? 0;
    u.ids.push(job.id);
    usage.set(job.node, u);
  }
  const indexed = live.usageByNode();
  if (indexed.size !== usage.size) broken(`the running index covers ${indexed.size} nodes, the table ${usage.size}`);
  for (const [node, u] of usage) {
    const got = indexed.get(node);
    if (got === undefined || got.running !== u.running || got.memoryMB !== u.memoryMB) broken(`node ${node}'s indexed usage ${JSON.stringify(got)} is not ${u.running} jobs, ${u.memoryMB} MB`);
    const ids = live.runningOn(node).map((j) => j.id);
    if (ids.join() !== u.ids.join()) broken(`node ${node}'s running index [${ids.join()}] is not [${u.ids.join()}]`);
  }
}
