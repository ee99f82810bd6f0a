// Protocol versions (docs/upgrading.md): the cluster version in the replicated state and
// its raise, snapshot formats by version, commands a build does not know (never a
// no-op), the gates on proposing, and the leader's view of the members' builds and
// state checks (src/node/cluster-versions.ts).
import { execFileSync } from 'node:child_process';
import pino from 'pino';
import t from 'tap';
import { ClusterVersions, type Divergence } from '../../src/node/cluster-versions.js';
import { parsePeerFrame } from '../../src/node/frames.js';
import { Proposer } from '../../src/node/proposer.js';
import { admitForwarded } from '../../src/node/registration.js';
import { encodeEnvelope } from '../../src/state/commands.js';
import { ClusterState } from '../../src/state/machine.js';
import { UnsupportedProtocolError } from '../../src/state/versions.js';
import { BUILD, PROTOCOL } from '../../src/version.js';
import { join, Log, submit } from './state-fixtures.js';

const quiet = pino({ level: 'silent' });
const digestOf = (s: ClusterState): string => s.stateChecks.at(-1)?.hash ?? '';

function busy(): Log {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(join('n2'));
  log.ok(submit('j1'));
  log.ok({ type: 'assignJob', jobId: 'j1', node: 'n1', epoch: 1, fromCheckpoint: null, reason: 'new job' });
  log.ok(submit('j2', { name: 'named', labels: { team: 'a' } }));
  return log;
}

t.test('the cluster version starts at 1, is raised by setClusterVersion, never lowered, and decides the snapshot format', async (t) => {
  const log = busy();
  t.equal(log.state.clusterVersion, 1);
  t.equal(log.state.snapshot()[0], 1, 'format 1 while the cluster runs at 1: a member of an older build still reads it');
  t.same(log.ok({ type: 'setClusterVersion', version: 2 }), { from: 1, to: 2 });
  t.equal(log.state.clusterVersion, 2);
  t.match(log.apply({ type: 'setClusterVersion', version: 2 }), { ok: false, code: 'VERSION_NOT_RAISED' }, 'not raised again');
  const bytes = log.state.snapshot();
  t.equal(bytes[0], 2, 'format 2 once raised');
  t.equal(ClusterState.restore(bytes).clusterVersion, 2, 'the version survives a snapshot');
  const old = busy().state.snapshot();
  t.equal(ClusterState.restore(old).clusterVersion, 1, 'a format 1 snapshot (an older build wrote it) reads as version 1');
});

t.test('a version this build does not speak stops the node at that entry: thrown, never a no-op', async (t) => {
  const log = busy();
  const before = log.state.appliedIndex;
  t.throws(() => log.apply({ type: 'setClusterVersion', version: PROTOCOL.max + 1 }), UnsupportedProtocolError);
  t.throws(() => busy().apply({ type: 'setClusterVersion', version: PROTOCOL.max + 1 }), new RegExp(`entry 6 raises the cluster version to ${PROTOCOL.max + 1}: .*this build speaks versions 1–${PROTOCOL.max}`));
  t.equal(log.state.clusterVersion, 1);
  t.equal(log.state.appliedIndex, before + 1, 'the entry counts as reached (the driver stops the node there)');
});

t.test("an entry of a command this build does not know is a fatal error naming the entry and both versions; an invalid one stays a no-op", async (t) => {
  const state = busy().state;
  const at = state.appliedIndex;
  const data = encodeEnvelope({ v: 1, clientId: 'gw-x', requestId: 1, at: 0, cmd: { type: 'dropTables' } as never });
  t.throws(() => state.applyBytes(at + 1, data), /entry \d+ holds a command this build does not know: command type "dropTables".*protocol versions 1–\d.*runs at 1/);
  t.equal(state.appliedIndex, at, 'nothing applied');
  const newField = encodeEnvelope({ v: 1, clientId: 'gw-x', requestId: 1, at: 0, cmd: { type: 'cancelJob', jobId: 'j1', force: true } as never });
  t.throws(() => state.applyBytes(at + 1, newField), UnsupportedProtocolError, 'a field it does not know too');
  const invalid = encodeEnvelope({ v: 1, clientId: 'gw-x', requestId: 1, at: 0, cmd: { type: 'cancelJob', jobId: '' } });
  t.match(state.applyBytes(at + 1, invalid), { ok: false, code: 'INVALID_COMMAND' });
});

t.test('a snapshot of a cluster at a version above the build is refused on restore', async (t) => {
  const log = busy();
  log.ok({ type: 'setClusterVersion', version: 2 });
  const bytes = log.state.snapshot();
  // Patch the version inside the (msgpack) payload: a newer cluster's snapshot in format 2.
  const { Packr } = await import('msgpackr');
  const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });
  const body = packr.unpack(bytes.subarray(1)) as Record<string, unknown>;
  body.clusterVersion = PROTOCOL.max + 1;
  const patched = Uint8Array.from([2, ...packr.pack(body)]);
  t.throws(() => ClusterState.restore(patched), new RegExp(`the state snapshot at index \\d+: the cluster runs at protocol version ${PROTOCOL.max + 1}`));
});

t.test('checkState: every replica hashes the same state at the same index, replayed or restored; a corrupted one differs', async (t) => {
  const log = busy();
  log.ok({ type: 'setClusterVersion', version: 2 });
  const midway = ClusterState.restore(log.state.snapshot());
  const restoredAt = midway.appliedIndex;
  log.ok(submit('j3'));
  log.ok({ type: 'checkState' });
  const replayed = new ClusterState();
  for (const e of log.entries) replayed.applyBytes(e.index, e.data);
  for (const e of log.entries) if (e.index > restoredAt) midway.applyBytes(e.index, e.data);
  const check = log.state.stateChecks.at(-1);
  t.equal(check?.index, log.index, 'the check is at its own entry');
  t.match(check?.hash, /^[0-9a-f]{64}$/);
  t.equal(digestOf(replayed), digestOf(log.state), 'a replica that replayed the log');
  t.equal(digestOf(midway), digestOf(log.state), 'a replica that restored a snapshot midway');
  t.ok(replayed.corruptForTest().length > 0);
  log.ok({ type: 'checkState' });
  replayed.applyBytes(log.index, log.entries.at(-1)!.data);
  t.not(digestOf(replayed), digestOf(log.state), 'the corrupted replica hashes differently');
});

t.test('the leader raises only when every member announced a build that speaks the new version', async (t) => {
  const v = new ClusterVersions({ self: 'n1', selfBuild: BUILD, logger: quiet, now: () => 0, ownChecks: () => [] });
  const build2 = { version: '0.2.0', commit: 'abc', protocol: { min: 1, max: 2 } };
  t.equal(v.raiseTarget(['n1', 'n2', 'n3'], 1), null, 'nobody heard from');
  t.ok(v.onRenewal('n2', build2, null, 1));
  t.equal(v.raiseTarget(['n1', 'n2', 'n3'], 1), null, 'n3 not heard from');
  t.ok(v.onRenewal('n3', null, null, 1), 'a build from before versions is welcome at version 1');
  t.equal(v.raiseTarget(['n1', 'n2', 'n3'], 1), null, 'n3 speaks only version 1');
  t.ok(v.onRenewal('n3', build2, null, 1), 'n3 upgraded');
  t.equal(v.raiseTarget(['n1', 'n2', 'n3'], 1), Math.min(2, PROTOCOL.max));
  t.equal(v.raiseTarget(['n1', 'n2', 'n3'], 2), null, 'already there');
  v.startTerm();
  t.equal(v.raiseTarget(['n1', 'n2', 'n3'], 1), null, 'a new term hears every member again');
  t.notOk(v.onRenewal('n3', null, null, 2), 'at version 2, a build that announces none is refused');
  t.notOk(v.onRenewal('n3', { ...build2, protocol: { min: 1, max: 1 } }, null, 2), 'and one that speaks only 1');
});

t.test('a refused member is logged once per thing it says, and what is kept stays one entry per member', async (t) => {
  const errors: string[] = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => errors.push((JSON.parse(line) as { node: string }).node) });
  const v = new ClusterVersions({ self: 'n1', selfBuild: BUILD, logger, now: () => 0, ownChecks: () => [] });
  const old = null;
  t.notOk(v.onRenewal('n2', old, null, 2));
  t.notOk(v.onRenewal('n2', old, null, 2));
  t.same(errors, ['n2'], 'the same refusal is logged once');
  // A member announcing a different unusable range at every renewal: each change is logged, nothing piles up.
  for (let max = 1; max <= 50; max++) t.notOk(v.onRenewal('n3', { version: 'x', commit: 'y', protocol: { min: 0, max: max % 2 } }, null, 2));
  t.equal(errors.filter((n) => n === 'n3').length, 50);
  t.equal((v as unknown as { refusedLogged: Map<string, string> }).refusedLogged.size, 2, 'one remembered refusal per member');
});

t.test("the leader compares each member's state check with its own at the same index, once, and reports a mismatch", async (t) => {
  const own = [
    { index: 10, hash: 'a'.repeat(64) },
    { index: 20, hash: 'b'.repeat(64) },
  ];
  const found: Divergence[] = [];
  const v = new ClusterVersions({ self: 'n1', selfBuild: BUILD, logger: quiet, now: () => 5, ownChecks: () => own, onDivergence: (d) => found.push(d) });
  v.onRenewal('n2', BUILD, { index: 10, hash: 'a'.repeat(64) }, 1);
  v.onRenewal('n3', BUILD, { index: 30, hash: 'c'.repeat(64) }, 1);
  t.same(found, [], 'equal, or not applied by the leader yet');
  v.onRenewal('n3', BUILD, { index: 20, hash: 'c'.repeat(64) }, 1);
  v.onRenewal('n3', BUILD, { index: 20, hash: 'c'.repeat(64) }, 1);
  t.same(found, [{ node: 'n3', index: 20, at: 5, leaderHash: 'b'.repeat(64), nodeHash: 'c'.repeat(64) }], 'one report per mismatch');
  t.same(v.divergences, found);
  t.same(v.checkOf('n3'), { index: 20, hash: 'c'.repeat(64) });
  t.same(v.checkOf('n1'), own[1]);
});

t.test('gates: a command newer than the cluster is not proposed, and the leader proposes its own commands only', async (t) => {
  let version = 1;
  const proposed: Uint8Array[] = [];
  const p = new Proposer({ propose: async (data) => (proposed.push(data), { ok: true, value: {} }) }, 'gw', 'n1', undefined, Math.random, () => version);
  await t.rejects(p.once({ type: 'checkState' }), { code: 'VERSION_GATED', message: /checkState needs protocol version 2; the cluster runs at 1/ });
  t.equal(proposed.length, 0);
  await p.once({ type: 'setClusterVersion', version: 2 });
  version = 2;
  await p.once({ type: 'checkState' });
  t.equal(proposed.length, 2);
  const env = (cmd: object): Uint8Array => encodeEnvelope({ v: 1, clientId: 'gw-n2', requestId: 1, at: 0, cmd } as never);
  t.match(admitForwarded('n2', env({ type: 'setClusterVersion', version: 2 }), 1), /leader's own command/);
  t.match(admitForwarded('n2', env({ type: 'checkState' }), 2), /leader's own command/);
  t.equal(admitForwarded('n2', env({ type: 'cancelJob', jobId: 'j1' }), 1), null);
  t.match(admitForwarded('n2', env({ type: 'dropTables' }), 1), /not a command: a command this build does not know/);
});

t.test('lease frames carry a build and a state check; older fields stay valid, malformed ones drop the frame', async (t) => {
  const check = { index: 4, hash: 'd'.repeat(64) };
  t.same(parsePeerFrame({ k: 'lease', at: 5 }), { ok: true, frame: { k: 'lease', at: 5 } }, 'an older build');
  t.same(parsePeerFrame({ k: 'lease', at: 5, build: BUILD, check, later: 1 }), { ok: true, frame: { k: 'lease', at: 5, build: BUILD, check } });
  t.match(parsePeerFrame({ k: 'lease', at: 5, build: { ...BUILD, protocol: { min: 3, max: 2 } } }), { ok: false, reason: 'malformed' });
  t.match(parsePeerFrame({ k: 'lease', at: 5, check: { index: 4, hash: 'nope' } }), { ok: false, reason: 'malformed' });
});

t.test('WORKRS_TEST_PROTOCOL_MAX=1 makes a build that does not know the commands of version 2', async (t) => {
  const script = [
    "import { decodeEnvelope } from './src/state/commands.ts';",
    "import { PROTOCOL } from './src/version.ts';",
    'let out = `range ${PROTOCOL.min}-${PROTOCOL.max}`;',
    "try { decodeEnvelope({ v: 1, clientId: 'c', requestId: 1, at: 0, cmd: { type: 'setClusterVersion', version: 2 } }); out += ' known'; } catch (err) { out += ` ${err.name}: ${err.message}`; }",
    'console.log(out);',
  ].join('\n');
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { ...process.env, WORKRS_TEST_PROTOCOL_MAX: '1' }, encoding: 'utf8' });
  t.match(out, /range 1-1 UnknownCommandError: a command this build does not know: command type "setClusterVersion" of protocol version 2/);
});
