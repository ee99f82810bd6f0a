// A token unknown to a node is asked again after the node caught up (src/api/roles.ts):
// the read barriers of callers arriving together are shared, each caller waiting for
// one begun after it asked; a wrong secret is refused without one.
import type { IncomingMessage } from 'node:http';
import t from 'tap';
import { authenticateCaughtUp, hashTokenSecret, newToken, sharedBarrier, type Credentials } from '../../src/api/roles.js';
import type { TokenRecord } from '../../src/state/records.js';

t.test('callers arriving during a barrier share the next one: at most two run however many ask', async (t) => {
  const started: Array<() => void> = [];
  const ask = sharedBarrier(() => new Promise<void>((resolve) => started.push(resolve)));
  const done: string[] = [];
  const first = ask().then(() => done.push('first'));
  const during = [ask(), ask(), ask()].map((p, i) => p.then(() => done.push(`during-${i}`)));
  t.equal(started.length, 1, 'one barrier runs');
  started[0]?.();
  await first;
  await new Promise((r) => setImmediate(r));
  t.same(done, ['first'], 'the callers that came during the first wait for a barrier begun after them');
  t.equal(started.length, 2, 'one more barrier for all of them');
  started[1]?.();
  await Promise.all(during);
  t.same(done.slice(1).sort(), ['during-0', 'during-1', 'during-2']);
});

function request(token: string): IncomingMessage {
  return { headers: { authorization: `Bearer ${token}` }, socket: {} } as unknown as IncomingMessage;
}

t.test('an unknown token id is looked up again after catching up; a wrong secret is refused at once', async (t) => {
  const made = newToken();
  const records = new Map<string, TokenRecord>();
  let catchUps = 0;
  const creds: Credentials = {
    nodeOf: () => null,
    token: (id) => records.get(id),
    now: () => 0,
    catchUp: () => {
      catchUps += 1;
      records.set(made.id, { id: made.id, hash: made.hash, role: 'read', name: 'late', createdAt: 0, expiresAt: null } as TokenRecord);
      return Promise.resolve();
    },
  };
  const who = await authenticateCaughtUp(request(made.token), creds);
  t.match(who, { kind: 'token', role: 'read', id: made.id }, 'known once caught up');
  t.equal(catchUps, 1);
  const wrong = `wrs_${made.id}_${'0'.repeat(64)}`;
  t.not(hashTokenSecret('0'.repeat(64)), made.hash);
  await t.rejects(authenticateCaughtUp(request(wrong), creds), { code: 'TOKEN_INVALID' }, 'a known id with a wrong secret');
  t.equal(catchUps, 1, 'refused without another catch-up');
  await t.rejects(authenticateCaughtUp(request(`wrs_${'1'.repeat(16)}_${'2'.repeat(64)}`), creds), { code: 'TOKEN_INVALID' }, 'still unknown after catching up');
  t.equal(catchUps, 2);
});
