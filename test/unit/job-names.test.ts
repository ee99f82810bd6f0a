// Job names and labels: validated with bounds (hostile input is a list of field errors,
// never a crash), a name unique among pending and running jobs (decided in apply, in
// log order), references by id, name or id prefix (resolveJobRef), label filters of
// GET /v1/jobs, and snapshots from before names and labels still restore.
import { Packr } from 'msgpackr';
import t from 'tap';
import { buildJobPage, parseJobListQuery } from '../../src/api/job-list.js';
import { HttpError } from '../../src/api/http.js';
import { decodeEnvelopeBytes, encodeEnvelope } from '../../src/state/commands.js';
import { ClusterState } from '../../src/state/machine.js';
import { SPEC_LIMITS, validateJobSpec, wireSpec } from '../../src/state/spec.js';
import { assign, hex, join, Log, submit, T0 } from './state-fixtures.js';

function errorsOf(partial: Record<string, unknown>): string[] {
  const r = validateJobSpec({ command: ['true'], ...partial });
  return r.ok ? [] : r.errors.map((e) => e.field);
}

t.test('a name is a Docker/DNS-label-like word; labels are bounded keys and printable values, keys sorted', async (t) => {
  const ok = validateJobSpec({ command: ['true'], name: 'train-7.v2_a', labels: { team: 'vision', 'a/b': '', Z: 'x y' } });
  t.ok(ok.ok);
  if (ok.ok) {
    t.equal(ok.spec.name, 'train-7.v2_a');
    t.same(Object.keys(ok.spec.labels), ['Z', 'a/b', 'team'], 'sorted, so equal labels encode to equal bytes');
  }
  t.ok(validateJobSpec({ command: ['true'], name: 'a'.repeat(63) }).ok, '63 characters');
  for (const name of ['', '-a', '.a', 'a'.repeat(64), 'a b', 'a/b', 'é', 'a\0', 7, ['a'], { a: 1 }]) {
    t.same(errorsOf({ name }), ['name'], `name ${JSON.stringify(name)} refused`);
  }
  for (const labels of [[], 'x', 5, { '': 'v' }, { '-k': 'v' }, { ['k'.repeat(64)]: 'v' }, { __proto__x: 'v', 'k k': 'v' }, { k: 5 }, { k: null }, { k: 'a\nb' }, { k: '\u0085' }, { k: 'v'.repeat(SPEC_LIMITS.labelValueBytes + 1) }]) {
    t.ok(errorsOf({ labels }).some((f) => f.startsWith('labels')), `labels ${JSON.stringify(labels).slice(0, 60)} refused`);
  }
  const many = Object.fromEntries(Array.from({ length: SPEC_LIMITS.labels + 1 }, (_, i) => [`k${i}`, 'v']));
  t.same(errorsOf({ labels: many }), ['labels'], 'too many labels');
  t.same(errorsOf({ labels: JSON.parse('{"__proto__": "x"}') as unknown }), ['labels.__proto__'], '__proto__ is not a label key');
  t.same(errorsOf({ labels: { k: 'v'.repeat(SPEC_LIMITS.labelValueBytes) } }), [], 'a value of exactly the bound');
});

t.test('a name is unique among pending and running jobs, decided in apply; a final job frees it', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(submit('j1', { name: 'train' }));
  t.match(log.apply(submit('j2', { name: 'train' })), { ok: false, code: 'NAME_IN_USE', message: /j1/ });
  t.notOk(log.state.jobs.has('j2'), 'nothing recorded');
  log.ok(assign('j1', 'n1', 1));
  t.match(log.apply(submit('j2', { name: 'train' })), { ok: false, code: 'NAME_IN_USE' }, 'also while it runs');
  log.ok({ type: 'cancelJob', jobId: 'j1' });
  log.ok(submit('j3', { name: 'train' }));
  log.ok(submit('j4'));
  log.ok(submit('j5'), { at: T0 + 1 });
  t.match(log.apply(submit('j6', { name: 'train' })), { ok: false, code: 'NAME_IN_USE', message: /j3/ });

  // A restored state knows which names are taken.
  const restored = ClusterState.restore(log.state.snapshot());
  const again = new Log(restored);
  again.index = log.index;
  t.match(again.apply(submit('j7', { name: 'train' }), { clientId: 'gateway-n2' }), { ok: false, code: 'NAME_IN_USE' });
});

t.test('resolveJobRef: an id, then a name (the open job, else the newest), then a unique id prefix of 4 or more', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(submit('j-aaaa1111', { name: 'nightly' }));
  log.ok({ type: 'cancelJob', jobId: 'j-aaaa1111' });
  log.ok(submit('j-aaaa2222', { name: 'nightly' }));
  log.ok({ type: 'cancelJob', jobId: 'j-aaaa2222' });
  log.ok(submit('j-bbbb3333', { name: 'j-aaaa1111' }));
  const s = log.state;
  t.same(s.resolveJobRef('j-aaaa1111'), { id: 'j-aaaa1111' }, 'an exact id wins over a name');
  t.same(s.resolveJobRef('nightly'), { id: 'j-aaaa2222' }, 'no open job of the name: the newest of it');
  log.ok(submit('j-cccc4444', { name: 'nightly' }));
  t.same(s.resolveJobRef('nightly'), { id: 'j-cccc4444' }, 'the open job of the name');
  t.same(s.resolveJobRef('j-bbbb'), { id: 'j-bbbb3333' }, 'a unique prefix');
  t.same(s.resolveJobRef('bbbb33'), { id: 'j-bbbb3333' }, 'without j-');
  t.same(s.resolveJobRef('aaaa'), { candidates: ['j-aaaa2222', 'j-aaaa1111'] }, 'ambiguous: the candidates, newest first');
  t.equal(s.resolveJobRef('bbb'), null, 'fewer than 4 characters is no prefix');
  t.equal(s.resolveJobRef('zzzz'), null);
  for (let i = 0; i < 15; i++) log.ok(submit(`j-dddd${i}`));
  const many = s.resolveJobRef('j-dddd');
  t.ok(many !== null && 'candidates' in many && many.candidates.length === 10, 'at most 10 candidates named');
});

t.test('GET /v1/jobs?label=: k=v and k, all must match; bad filters are 400 BAD_QUERY', async (t) => {
  const log = new Log();
  log.ok(submit('j1', { labels: { team: 'vision', gpu: 'yes' } }));
  log.ok(submit('j2', { labels: { team: 'vision' } }));
  log.ok(submit('j3', { labels: { team: 'audio', gpu: 'no' } }));
  log.ok(submit('j4'));
  const ids = (q: string): string[] =>
    buildJobPage(log.state.jobsNewestFirst(), parseJobListQuery(new URLSearchParams(q)), (j) => log.state.jobSummary(j)).jobs.map((r) => (r as { id: string }).id);
  t.same(ids('label=team=vision'), ['j2', 'j1']);
  t.same(ids('label=team=vision&label=gpu'), ['j1']);
  t.same(ids('label=gpu'), ['j3', 'j1']);
  t.same(ids('label=gpu=maybe'), []);
  t.same(ids('label=team%3Dvision%3Dx'), [], 'the value is all after the first =');
  t.same(ids('label=team=vision&limit=1'), ['j2']);
  const page = buildJobPage(log.state.jobsNewestFirst(), parseJobListQuery(new URLSearchParams('label=team=vision&limit=1')), (j) => log.state.jobSummary(j));
  t.not(page.next, null, 'a next page while more match');
  t.match(log.state.jobSummary(log.state.jobs.get('j1')!), { name: null, labels: { gpu: 'yes', team: 'vision' } });
  for (const q of ['label=', 'label==v', 'label=-k', `label=k=${'v'.repeat(300)}`, Array.from({ length: 17 }, (_, i) => `label=k${i}`).join('&')]) {
    let err: unknown = null;
    try {
      parseJobListQuery(new URLSearchParams(q));
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof HttpError && err.httpStatus === 400 && err.code === 'BAD_QUERY', `400 BAD_QUERY for ${q.slice(0, 40)}`);
  }
});

t.test('a snapshot from before names, labels and draining restores with their neutral values, as a replay would have them', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(submit('j1'));
  log.ok(assign('j1', 'n1', 1));
  const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });
  const bytes = log.state.snapshot();
  const body = packr.unpack(bytes.subarray(1)) as { jobs: Array<{ spec: Record<string, unknown> }>; nodes: Array<Record<string, unknown>> };
  for (const job of body.jobs) {
    delete job.spec.name;
    delete job.spec.labels;
  }
  for (const node of body.nodes) delete node.draining;
  const payload = packr.pack(body);
  const old = new Uint8Array(1 + payload.length);
  old[0] = bytes[0]!;
  old.set(payload, 1);
  const restored = ClusterState.restore(old);
  t.equal(hex(restored.snapshot()), hex(bytes), 'the same bytes as the state it came from');
  t.match(restored.jobView('j1'), { name: null, labels: {} });
  t.equal(restored.nodes.get('n1')?.draining, false);
});

t.test('submitJob carries name and labels only when set: a node of a version before them applies the entry of a job without them', async (t) => {
  const keysInLog = (partial: Record<string, unknown>): { keys: string[]; back: unknown; spec: unknown } => {
    const r = validateJobSpec({ command: ['true'], ...partial });
    if (!r.ok) throw new Error('bad spec');
    const bytes = encodeEnvelope({ v: 1, clientId: 'gw', requestId: 1, at: T0, cmd: { type: 'submitJob', job: { id: 'j1', spec: wireSpec(r.spec), createdAt: T0 } } });
    const raw = new Packr({ useRecords: false }).unpack(bytes) as { cmd: { job: { spec: Record<string, unknown> } } };
    const decoded = decodeEnvelopeBytes(bytes);
    return { keys: Object.keys(raw.cmd.job.spec), back: decoded.cmd.type === 'submitJob' ? decoded.cmd.job.spec : null, spec: r.spec };
  };
  const plain = keysInLog({});
  t.same(plain.keys, ['image', 'command', 'env', 'files', 'outputs', 'estimateSeconds', 'checkpoint', 'cpus', 'memoryMB', 'timeoutSeconds'], 'the first version\'s fields only');
  t.same(plain.back, plain.spec, 'decoded whole');
  const named = keysInLog({ name: 'a', labels: { k: 'v' } });
  t.same(named.keys.slice(-2), ['name', 'labels']);
  t.same(named.back, named.spec);
  // Applied from its wire form (as a test or a proposer hands it over), the record is whole.
  const log = new Log();
  const r = validateJobSpec({ command: ['true'] });
  if (r.ok) log.ok({ type: 'submitJob', job: { id: 'j1', spec: wireSpec(r.spec), createdAt: T0 } });
  t.match(log.state.jobs.get('j1')?.spec, { name: null, labels: {} });
});

t.test('a snapshot with two open jobs of one name is refused on restore (the invariant)', async (t) => {
  const log = new Log();
  log.ok(submit('j1', { name: 'a' }));
  log.ok(submit('j2', { name: 'b' }));
  const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false });
  const bytes = log.state.snapshot();
  const body = packr.unpack(bytes.subarray(1)) as { jobs: Array<{ spec: { name: string } }> };
  body.jobs[1]!.spec.name = 'a';
  const payload = packr.pack(body);
  const bad = new Uint8Array(1 + payload.length);
  bad[0] = bytes[0]!;
  bad.set(payload, 1);
  t.throws(() => ClusterState.restore(bad), /open jobs j1 and j2 are both named a/);
});
