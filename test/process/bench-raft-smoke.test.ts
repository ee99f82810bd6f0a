// The smoke version of `make bench-raft` (bench/raft.ts): one repetition of 2 s with 16
// clients against a fresh 3-member etcd and a fresh 3-node Workrs, side by side, as
// the bench runs them. It asserts only that both systems answered writes; the
// numbers are printed, never judged (timing on these shared machines is noise).
import t from 'tap';
import { closedLoop } from '../../bench/raft-load.js';
import { EtcdCluster, WorkrsCluster, ensureEtcd, type System } from '../../bench/raft-systems.js';

const pids = (sys: System): number[] => sys.ids.map((id) => sys.pid(id)).filter((p): p is number => p !== null);

const bin = ensureEtcd();
for (const name of ['etcd', 'workrs'] as const) {
  t.test(`${name}: 16 clients for 2 s, every member up, writes acknowledged`, async (t) => {
    const sys: System = name === 'etcd' ? await EtcdCluster.start(bin) : await WorkrsCluster.start();
    t.teardown(() => sys.destroy());
    const leader = await sys.leader();
    const run = await closedLoop(sys.write(leader), pids(sys), 16, 0, 2);
    t.comment(`${name}: ${run.opsPerSecond.toFixed(0)} ops/s, p50 ${run.p50Ms.toFixed(1)} ms, p99 ${run.p99Ms.toFixed(1)} ms, CPU ${run.cpuMsPerOp.toFixed(2)} ms/op, failed ${run.errors}`);
    t.ok(run.opsPerSecond > 0, `${name} acknowledged writes (${(run.opsPerSecond * 2).toFixed(0)} in the counted 2 s)`);
    t.equal(pids(sys).length, 3, `all three ${name} members still run`);
  });
}
