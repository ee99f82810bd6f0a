// The cluster id: the same for every bootstrap node whatever the order of the list,
// different for another list; kept in the data folder.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { clusterIdFromBootstrap, isClusterId, readClusterId, writeClusterId } from '../../src/node/cluster-id.js';

t.test('derived from the bootstrap list, independent of its order', async (t) => {
  const a = clusterIdFromBootstrap(new Map([['n1', '127.0.0.1:7801'], ['n2', '127.0.0.1:7802'], ['n3', '127.0.0.1:7803']]));
  const b = clusterIdFromBootstrap(new Map([['n3', '127.0.0.1:7803'], ['n1', '127.0.0.1:7801'], ['n2', '127.0.0.1:7802']]));
  const other = clusterIdFromBootstrap(new Map([['n1', '127.0.0.1:9801'], ['n2', '127.0.0.1:9802'], ['n3', '127.0.0.1:9803']]));
  t.equal(a, b);
  t.not(a, other, 'another cluster (other addresses) gets another id');
  t.ok(isClusterId(a));
});

t.test('kept in the data folder; a damaged file reads as none', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'workrs-cid-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.equal(readClusterId(dir), null);
  writeClusterId(dir, '0123456789abcdef');
  t.equal(readClusterId(dir), '0123456789abcdef');
  writeFileSync(join(dir, 'cluster-id'), 'garbage');
  t.equal(readClusterId(dir), null);
});
