// The voter plan (src/scheduler/voters.ts): one membership change or none.
import t from 'tap';
import { CAUGHT_UP_ENTRIES, planVoterChange, type VoterInput } from '../../src/scheduler/voters.js';

function input(over: Partial<VoterInput> & { lostIds?: string[]; aliveIds?: string[] }): VoterInput {
  const lostIds = new Set(over.lostIds ?? []);
  const aliveIds = new Set(over.aliveIds ?? ['n1', 'n2', 'n3', 'n4']);
  return {
    self: 'n1',
    voters: ['n1', 'n2', 'n3'],
    learners: [],
    commit: 1000,
    progress: {},
    target: 3,
    alive: (id) => aliveIds.has(id),
    lost: (id) => lostIds.has(id),
    ...over,
  };
}

t.test('a full, healthy set of voters: no change', async (t) => {
  t.equal(planVoterChange(input({ learners: ['n4'], progress: { n4: { match: 1000, recentActive: true } } })), null);
});

t.test('a lost voter and a caught-up learner: the learner is promoted first', async (t) => {
  const change = planVoterChange(input({ lostIds: ['n3'], learners: ['n4'], progress: { n4: { match: 1000, recentActive: true } } }));
  t.same(change, { type: 'addVoter', node: 'n4' });
});

t.test('once the replacement is a voter, the lost voter is demoted', async (t) => {
  const change = planVoterChange(input({ voters: ['n1', 'n2', 'n3', 'n4'], lostIds: ['n3'] }));
  t.same(change, { type: 'addLearner', node: 'n3' });
});

t.test('a lost voter with no spare node stays a voter', async (t) => {
  t.equal(planVoterChange(input({ lostIds: ['n3'] })), null);
});

t.test('the leader never counts itself lost', async (t) => {
  t.equal(planVoterChange(input({ lostIds: ['n1'], learners: ['n4'], progress: { n4: { match: 1000, recentActive: true } } })), null);
});

const active = (ids: string[]): VoterInput['progress'] => Object.fromEntries(ids.map((id) => [id, { match: 1000, recentActive: true }]));

t.test('more healthy voters than the target: the highest id is demoted, one per round', async (t) => {
  const voters = ['n1', 'n2', 'n3', 'n4', 'n5'];
  const all = { voters, aliveIds: voters, progress: active(voters) };
  t.same(planVoterChange(input(all)), { type: 'addLearner', node: 'n5' });
  t.same(planVoterChange(input({ ...all, voters: ['n1', 'n2', 'n3', 'n4'] })), { type: 'addLearner', node: 'n4' }, 'the next round, the next one');
  t.equal(planVoterChange(input({ ...all, voters: ['n1', 'n2', 'n3'], learners: ['n4', 'n5'] })), null, 'at the target it stops, and no learner is promoted back');
});

t.test('a surplus voter that leads is never demoted: the next highest id is', async (t) => {
  const voters = ['n1', 'n2', 'n3', 'n4'];
  t.same(planVoterChange(input({ self: 'n4', voters, aliveIds: voters, progress: active(voters) })), { type: 'addLearner', node: 'n3' });
});

t.test('a surplus voter that is not alive or not recently active goes before the highest id', async (t) => {
  const voters = ['n1', 'n2', 'n3', 'n4', 'n5'];
  t.same(planVoterChange(input({ voters, aliveIds: ['n1', 'n3', 'n4', 'n5'], progress: active(voters) })), { type: 'addLearner', node: 'n2' }, 'n2 not alive');
  t.same(planVoterChange(input({ voters, aliveIds: voters, progress: active(['n1', 'n2', 'n4', 'n5']) })), { type: 'addLearner', node: 'n3' }, 'n3 silent');
});

t.test('a lost voter goes before a healthy surplus one', async (t) => {
  const voters = ['n1', 'n2', 'n3', 'n4', 'n5'];
  t.same(planVoterChange(input({ voters, lostIds: ['n2'], aliveIds: voters, progress: active(voters) })), { type: 'addLearner', node: 'n2' });
});

t.test('target 5: a 20-voter bootstrap shrinks to 5 voters and stays there', async (t) => {
  const ids = Array.from({ length: 20 }, (_, i) => `n${String(i + 1).padStart(2, '0')}`);
  let voters = [...ids];
  const learners: string[] = [];
  for (let round = 0; round < 40; round++) {
    const change = planVoterChange(input({ self: 'n07', voters, learners, target: 5, aliveIds: ids, progress: active(ids) }));
    if (change === null) break;
    t.equal(change.type, 'addLearner', `round ${round}: only demotions`);
    voters = voters.filter((v) => v !== change.node);
    learners.push(change.node);
  }
  t.same(voters, ['n01', 'n02', 'n03', 'n04', 'n07'], 'the leader and the four lowest ids keep voting');
});

t.test('a learner more than CAUGHT_UP_ENTRIES behind, inactive or not alive is not promoted', async (t) => {
  const base = { lostIds: ['n3'], learners: ['n4'] };
  t.equal(planVoterChange(input({ ...base, progress: { n4: { match: 1000 - CAUGHT_UP_ENTRIES - 1, recentActive: true } } })), null, 'behind');
  t.same(planVoterChange(input({ ...base, progress: { n4: { match: 1000 - CAUGHT_UP_ENTRIES, recentActive: true } } })), { type: 'addVoter', node: 'n4' }, 'exactly at the bound');
  t.equal(planVoterChange(input({ ...base, progress: { n4: { match: 1000, recentActive: false } } })), null, 'inactive');
  t.equal(planVoterChange(input({ ...base, aliveIds: ['n1', 'n2'], progress: { n4: { match: 1000, recentActive: true } } })), null, 'not alive');
});

t.test('missing voters (a cluster growing to its target): the lowest id caught-up learner', async (t) => {
  const progress = { n5: { match: 1000, recentActive: true }, n4: { match: 990, recentActive: true } };
  const change = planVoterChange(input({ voters: ['n1', 'n2'], learners: ['n5', 'n4'], aliveIds: ['n1', 'n2', 'n4', 'n5'], progress }));
  t.same(change, { type: 'addVoter', node: 'n4' });
});
