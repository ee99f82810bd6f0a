// The lease bound in the case it exists for (partitioned-leader.ts): a leader cut off
// with a worker while it still believes it leads keeps acknowledging that worker's
// renewals; the majority's new leader reassigns the worker's job only after every
// lease the old leader could have granted has ended, and never while the old attempt
// executes. The same run with the bound waived, or with quorum contact credited at
// answers' arrival instead of the send time of the heartbeat answered, must fail.
import t from 'tap';
import { judge, runPartitionedLeader, type PartitionedLeaderRun } from './partitioned-leader.js';

const SEEDS = [1, 2, 3];

function summary(r: PartitionedLeaderRun): string {
  return (
    `seed ${r.seed} ${r.variant}: ${r.oldLeader} (old leader) + ${r.worker} cut off at ${r.partitionAtMs} ms; ${r.newLeader} elected at ${r.electedAtMs}; ` +
    `${r.acksAfterPartition} acks after the partition, the last at ${r.lastAckAtMs}; worker fenced at ${r.workerFencedAtMs}; ` +
    `worker lost at ${r.workerLostAtMs}, job reassigned at ${r.reassignedAtMs}, running on ${r.resumedOn} at ${r.resumedAtMs}`
  );
}

const safeRuns: PartitionedLeaderRun[] = [];

for (const seed of SEEDS) {
  t.test(`seed ${seed}: the cut-off leader acks as long as it can; the job moves only after the bound, never running twice`, async (t) => {
    const r = await runPartitionedLeader({ seed, variant: 'safe' });
    safeRuns.push(r);
    t.comment(summary(r));
    const failures = judge(r);
    t.same(failures, [], failures.length > 0 ? `${failures.join('\n')}\n${r.trace.slice(-40).join('\n')}` : 'every check holds');
    t.ok(r.acksAfterPartition > 0 && r.lastAckAtMs !== null && r.electedAtMs !== null, 'the old leader went on acknowledging after the partition');
    t.ok(r.lastAckAtMs !== null && r.workerFencedAtMs !== null && r.workerFencedAtMs >= r.lastAckAtMs, "the worker ran its job on the old leader's acks, then froze it");
  });
}

t.test("the runs show why the bound counts from the election plus the contact window, not from the election", async (t) => {
  const late = safeRuns.filter((r) => r.lastAckAtMs !== null && r.electedAtMs !== null && r.lastAckAtMs > r.electedAtMs);
  t.ok(late.length > 0, `in ${late.length} of ${safeRuns.length} runs the old leader acknowledged a renewal after the new leader took office`);
});

for (const variant of ['reassign-before-lease-bound', 'credit-answer-arrival'] as const) {
  t.test(`${variant}: the same run fails its checks`, async (t) => {
    const caught: string[] = [];
    for (const seed of SEEDS) {
      const r = await runPartitionedLeader({ seed, variant });
      t.comment(summary(r));
      const failures = judge(r);
      if (failures.length > 0) caught.push(`seed ${seed}: ${failures.join('; ')}`);
    }
    t.equal(caught.length, SEEDS.length, `caught on every seed:\n${caught.join('\n')}`);
    t.ok(caught.some((c) => c.includes('two attempts at once')), 'and two attempts of the job did execute at once');
  });
}
