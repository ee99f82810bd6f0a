// Dedupe by (clientId, requestId): Raft may commit a retried proposal twice; the
// state machine applies it once and answers the copy with the first result.
import t from 'tap';
import type { Envelope } from '../../src/state/commands.js';
import { assign, join, Log, submit, T0 } from './state-fixtures.js';

t.test('a retried envelope (same client, same request id) is applied once and gets the same result', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  const env: Envelope = { v: 1, clientId: 'gw-n2', requestId: 1, at: T0, cmd: submit('j1') };
  const first = log.applyEnvelope(env);
  const retry = log.applyEnvelope(env);
  t.same(first, { ok: true, value: { jobId: 'j1', state: 'pending' } });
  t.same(retry, first, 'the copy gets the cached result, not JOB_EXISTS');
  t.equal(log.state.jobs.size, 1);
  t.equal(log.state.lastRequestId('gw-n2'), 1);
});

t.test('a retried rejection is answered with the same rejection', async (t) => {
  const log = new Log();
  const env: Envelope = { v: 1, clientId: 'gw', requestId: 4, at: T0, cmd: { type: 'cancelJob', jobId: 'nope' } };
  const first = log.applyEnvelope(env);
  t.match(first, { ok: false, code: 'JOB_NOT_FOUND' });
  log.ok(submit('nope'), { clientId: 'other' });
  t.same(log.applyEnvelope(env), first, 'not applied again, even though the job exists now');
  t.equal(log.state.jobs.get('nope')?.state, 'pending');
});

t.test('a retry that arrives after the same client’s next request is STALE_REQUEST and not applied', async (t) => {
  const log = new Log();
  log.ok(join('n1'));
  log.ok(submit('j1'), { clientId: 'sched' });
  const assignOnce: Envelope = { v: 1, clientId: 'gw', requestId: 1, at: T0, cmd: assign('j1', 'n1', 1) };
  log.applyEnvelope(assignOnce);
  log.applyEnvelope({ v: 1, clientId: 'gw', requestId: 2, at: T0, cmd: { type: 'cancelJob', jobId: 'j1' } });
  t.match(log.applyEnvelope(assignOnce), { ok: false, code: 'STALE_REQUEST' });
  t.equal(log.state.jobs.get('j1')?.state, 'cancelled');
});

t.test('request ids are per client: the same id from two clients is two requests', async (t) => {
  const log = new Log();
  log.ok(submit('a'), { clientId: 'gw-n1' });
  log.ok(submit('b'), { clientId: 'gw-n2' });
  t.equal(log.state.jobs.size, 2);
  t.equal(log.state.lastRequestId('gw-n1'), 1);
  t.equal(log.state.lastRequestId('gw-n2'), 1);
  t.equal(log.state.lastRequestId('never'), 0);
});

t.test('an invalid entry is not recorded in the dedupe table (it has no trustworthy client)', async (t) => {
  const log = new Log();
  const r = log.state.applyBytes(1, new Uint8Array([0x92, 0x01]));
  t.match(r, { ok: false, code: 'INVALID_COMMAND' });
  t.equal(log.state.lastRequestId(''), 0);
});
