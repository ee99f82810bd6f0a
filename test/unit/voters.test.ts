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
  t.equal(planVoterChange(input({ voters: ['n1', 'n2', 'n3', 'n4'], lostIds: ['n1'] })), null);
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
