// The quorum arithmetic on its own (raft/quorum.ts) and the one id order (raft/ids.ts).
import t from 'tap';
import { compareNodeIds, sortedIds } from '../../raft/ids.js';
import { committedIndex, hasMajority, majority, voteResult } from '../../raft/quorum.js';

t.test('a majority is more than half', async (t) => {
  t.same([1, 2, 3, 4, 5].map(majority), [1, 2, 2, 3, 3]);
});

t.test('the committed index is the largest index a majority holds', async (t) => {
  const match: Record<string, number> = { a: 7, b: 3, c: 5, d: 9, e: 1 };
  const at = (id: string): number => match[id] ?? 0;
  t.equal(committedIndex(['a'], at), 7, 'one voter: its own match');
  t.equal(committedIndex(['a', 'b'], at), 3, 'two voters: both');
  t.equal(committedIndex(['a', 'b', 'c'], at), 5);
  t.equal(committedIndex(['a', 'b', 'c', 'd'], at), 5, 'four voters: three of them');
  t.equal(committedIndex(['a', 'b', 'c', 'd', 'e'], at), 5);
  t.equal(committedIndex([], at), 0, 'no voters: nothing commits');
});

t.test('an election is won by a majority of grants and lost once a majority is out of reach', async (t) => {
  const voters = new Set(['a', 'b', 'c', 'd']);
  t.equal(voteResult(voters, new Map([['a', true]])), 'pending');
  t.equal(voteResult(voters, new Map([['a', true], ['b', true]])), 'pending', 'two of four is not a majority');
  t.equal(voteResult(voters, new Map([['a', true], ['b', true], ['c', true]])), 'won');
  t.equal(voteResult(voters, new Map([['a', true], ['b', false]])), 'pending');
  t.equal(voteResult(voters, new Map([['a', true], ['b', false], ['c', false]])), 'lost', 'two rejections of four leave no majority');
  t.equal(voteResult(voters, new Map([['a', true], ['x', true], ['y', true]])), 'pending', 'answers from non-voters do not count');
  t.ok(hasMajority(voters, (id) => id !== 'd'));
  t.notOk(hasMajority(voters, (id) => id === 'a' || id === 'b'));
});

t.test('ids sort one way: by code units, as Array.prototype.sort sorts strings', async (t) => {
  const ids = ['n10', 'n2', 'N3', 'n1', 'é', 'z'];
  t.same(sortedIds(ids), [...ids].sort());
  t.same([...ids].sort(compareNodeIds), [...ids].sort());
  t.equal(compareNodeIds('a', 'a'), 0);
});
