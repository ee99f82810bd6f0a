// The online policy: the exact model on measured numbers (online.ts), and the leader's
// gathering of those numbers from the replicated history (scheduler/policy.ts).
import t from 'tap';
import { onlinePolicy, policyChanged } from '../../src/policy/online.js';
import { DEFAULT_PRIORS, planPolicies, workKept } from '../../src/scheduler/policy.js';
import type { Command } from '../../src/state/commands.js';
import { assign, checkpoint, join, Log, submit, T0 } from './state-fixtures.js';

const cost = (seconds: number, samples = 3) => ({ seconds, samples });

t.test('the exact model on the measured numbers: the worked example plans 4 checkpoints', async (t) => {
  const p = onlinePolicy({ remainingSeconds: 300, checkpoint: { ...cost(5), from: 'test' }, restart: cost(0), failure: { mtbfSeconds: 333.3, losses: 9, exposureSeconds: 3000 } });
  t.equal(p.mode, 'auto');
  t.equal(p.intervalSeconds, 60, 'n = 5 segments of 60 s');
  t.match(p.reason, /4 checkpoints over the remaining 300\.0 s, every 60\.0 s: expected 352\.8 s instead of 486\.\d s; C=5\.0 s/);
});

t.test('off when checkpoints do not pay; Daly without an estimate', async (t) => {
  const off = onlinePolicy({ remainingSeconds: 60, checkpoint: { ...cost(5), from: 'test' }, restart: cost(10), failure: { mtbfSeconds: 86_400, losses: 0, exposureSeconds: 0 } });
  t.same([off.mode, off.intervalSeconds], ['off', null]);
  t.match(off.reason, /do not pay/);
  const daly = onlinePolicy({ remainingSeconds: null, checkpoint: { ...cost(2), from: 'test' }, restart: cost(10), failure: { mtbfSeconds: 86_400, losses: 0, exposureSeconds: 0 } });
  t.equal(daly.mode, 'auto');
  t.ok(daly.intervalSeconds !== null && Math.abs(daly.intervalSeconds - 586.5) < 0.1, `Daly's interval for C=2 s, M=1 day (√(2·2·86400)·(1 + ⅓√(2/172800) + …) − 2): ${daly.intervalSeconds}`);
  t.ok(policyChanged({ mode: 'auto', intervalSeconds: 60, reason: '' }, { mode: 'auto', intervalSeconds: 67, reason: '' }));
  t.notOk(policyChanged({ mode: 'auto', intervalSeconds: 60, reason: 'a' }, { mode: 'auto', intervalSeconds: 63, reason: 'b' }), 'a 5% move is not worth a proposal');
});

function policies(commands: Command[]): Array<Extract<Command, { type: 'setPolicy' }>> {
  return commands.filter((c): c is Extract<Command, { type: 'setPolicy' }> => c.type === 'setPolicy');
}

t.test('the leader plans each running auto job once per checkpoint or attempt, on the remaining work', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(join('n2'));
  log.ok(submit('j1', { estimateSeconds: 3600, memoryMB: 100 }));
  log.ok(submit('j2', { estimateSeconds: 3600, checkpoint: { mode: 'interval', intervalSeconds: 10 } }));
  log.ok(assign('j1', 'n1', 1));
  log.ok(assign('j2', 'n2', 1));
  log.at = T0 + 1000;
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 1, node: 'n1' });
  const planned = new Map<string, string>();
  // A flaky cluster: M must come out far below the 1-day prior for checkpoints to pay.
  // A slow freeze prior (20 MB/s, a pausing capture) makes the shrinking plain below.
  const priors = { ...DEFAULT_PRIORS, dumpMBps: 20, failure: { mtbfSeconds: 600, weight: 1 } };
  const first = policies(planPolicies(log.state, T0 + 2000, priors, planned));
  t.same(first.map((c) => c.jobId), ['j1'], 'only the auto job, not the fixed-interval one');
  const p1 = first[0]!.policy;
  t.equal(p1.mode, 'auto');
  t.match(p1.reason, /predicted: 100 MB at 20 MB\/s/, 'the first C is predicted from the memory and the prior throughput');
  t.same(planPolicies(log.state, T0 + 3000, priors, planned), [], 'nothing new: no new plan');
  log.ok({ type: 'setPolicy', jobId: 'j1', policy: p1 });

  // A checkpoint 30 min into the run: re-planned on the 30 min left, with C measured.
  log.at = T0 + 1000 + 1_800_000;
  log.ok({ ...(checkpoint('j1', 1, 'n1', 1) as Extract<Command, { type: 'checkpointCommitted' }>), durationMs: 12_000, frozenMs: 2000 });
  const second = policies(planPolicies(log.state, log.at, priors, planned));
  t.equal(second.length, 1);
  t.match(second[0]!.policy.reason, /remaining 1812\.0 s/, 'remaining = estimate − the work the checkpoint holds: without the worker\'s ranMs, 1800 s from start to commit less the 12 s checkpoint');
  t.match(second[0]!.policy.reason, /C=3\.8 s \(1 checkpoints of this job\)/, 'C: the measured 2 s freeze (not the 12 s whole checkpoint), shrunk towards the predicted 5.5 s');
});

t.test('node losses in the history lower M', async (t) => {
  const log = new Log();
  for (const n of ['n1', 'n2', 'n3']) log.ok(join(n));
  log.ok(submit('j1', { estimateSeconds: 3600 }));
  for (let i = 0; i < 5; i++) {
    log.at = T0 + (i + 1) * 600_000;
    log.ok({ type: 'nodeLost', node: 'n3' });
    log.ok(join('n3'));
  }
  log.ok(assign('j1', 'n1', 1));
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 1, node: 'n1' });
  const [cmd] = policies(planPolicies(log.state, log.at, DEFAULT_PRIORS, new Map()));
  // 5 losses in 3 nodes × 50 min of up-time, prior 1 loss per day: M = (86400 + 9000) / 6 ≈ 15,900 s.
  t.match(cmd?.policy.reason ?? '', /M=159\d\d s \(5 losses in 2\.5 node-hours\)/);
});

t.test('the work kept follows the current attempt: its own checkpoints, what it resumed from, nothing after a failed restore', async (t) => {
  const log = new Log();
  for (const n of ['n1', 'n2', 'n3']) log.ok(join(n));
  log.ok(submit('j1', { estimateSeconds: 100 }));
  const kept = (): number => workKept(log.state, log.state.jobs.get('j1')!);
  const cp = (epoch: number, node: string, seq: number, ranMs: number): Command => ({ ...(checkpoint('j1', epoch, node, seq) as Extract<Command, { type: 'checkpointCommitted' }>), durationMs: 9000, frozenMs: 500, ranMs });

  log.ok(assign('j1', 'n1', 1));
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 1, node: 'n1' });
  t.equal(kept(), 0, 'a fresh start keeps nothing');
  log.at += 60_000; // the commit comes long after the freeze: the worker's ranMs counts, not the timestamps
  log.ok(cp(1, 'n1', 1, 20_000));
  t.equal(kept(), 20, 'its own checkpoint: 20 s of run');
  log.ok(cp(1, 'n1', 2, 30_000));
  t.equal(kept(), 30);
  log.ok({ type: 'nodeLost', node: 'n1' });
  log.ok(assign('j1', 'n2', 2, { seq: 2, epoch: 1 }));
  t.equal(kept(), 30, 'assigned to resume: what the checkpoint holds');
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 2, node: 'n2' });
  log.ok(cp(2, 'n2', 1, 15_000));
  t.equal(kept(), 45, 'a resumed attempt adds its run to what it resumed from');
  log.ok({ type: 'nodeLost', node: 'n2' });
  log.ok(assign('j1', 'n3', 3, { seq: 1, epoch: 1 }));
  t.equal(kept(), 20, 'resuming from an older checkpoint (the newest had no live holder): the newest does not count');
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 3, node: 'n3', restoreError: 'criu said no' });
  t.equal(kept(), 0, 'its restore failed: it started over');
});

t.test('a plan is due again once an attempt has started (its restore may have failed)', async (t) => {
  const log = new Log();
  for (const n of ['n1', 'n2']) log.ok(join(n));
  log.ok(submit('j1', { estimateSeconds: 100 }));
  const priors = { ...DEFAULT_PRIORS, failure: { mtbfSeconds: 60, weight: 1000 } };
  const planned = new Map<string, string>();
  log.ok(assign('j1', 'n1', 1));
  t.equal(policies(planPolicies(log.state, log.at, priors, planned)).length, 1, 'planned when assigned');
  t.equal(planned.size, 1);
  const before = planned.get('j1');
  log.ok({ type: 'jobStarted', jobId: 'j1', epoch: 1, node: 'n1' });
  planPolicies(log.state, log.at, priors, planned);
  t.not(planned.get('j1'), before, 'looked at again once started');
});
