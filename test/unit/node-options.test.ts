import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseBootstrap, parseHostPort, resolveNodeOptions } from '../../src/config/node-options.js';

const base = { id: 'n1', data: '/tmp/d1', bootstrap: 'n1=127.0.0.1:7801,n2=127.0.0.1:7802,n3=127.0.0.1:7803' };

t.test('host:port and bootstrap lists parse, including IPv6', async (t) => {
  t.same(parseHostPort('127.0.0.1:7701', 'api'), { host: '127.0.0.1', port: 7701 });
  t.same(parseHostPort('[::1]:80', 'api'), { host: '::1', port: 80 });
  t.same([...parseBootstrap('a=h:1, b=h:2').keys()], ['a', 'b']);
  t.throws(() => parseHostPort('nocolon', '--api'), /--api: expected host:port/);
  t.throws(() => parseBootstrap('a=h:1,a=h:2'), /listed twice/);
  t.throws(() => parseBootstrap('=h:1'), /expected id=host:port/);
});

t.test('flags win over the config file, which wins over defaults', async (t) => {
  const o = resolveNodeOptions({ ...base, slots: '4' }, { slots: 2, tickMs: 50 });
  t.equal(o.slots, 4);
  t.equal(o.tickMs, 50);
  t.equal(o.nodeTimeoutMs, 3000);
  t.equal(o.bootstrap.size, 3);
});

t.test('bad combinations are refused with a message naming the option', async (t) => {
  t.throws(() => resolveNodeOptions({ ...base, id: 'n9' }), /does not list this node \(n9\)/);
  t.throws(() => resolveNodeOptions({ ...base, join: 'http://127.0.0.1:7701' }), /exclude each other/);
  t.throws(() => resolveNodeOptions({ ...base, api: '0.0.0.0:7701' }), /loopback only/);
  t.throws(() => resolveNodeOptions({ ...base, runtime: 'podman' }), /--runtime/);
  t.throws(() => resolveNodeOptions(base, { nodeTimeout: 5 }), /unknown key 'nodeTimeout'/);
  t.throws(() => resolveNodeOptions({ ...base, leaseTimeoutMs: '5000' }), /must be shorter than nodeTimeoutMs/);
});

t.test('a secret file allows listening beyond loopback; a short secret is refused; --token-file is its deprecated alias', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'workrs-opt-'));
  const good = join(dir, 'secret');
  writeFileSync(good, 'a-long-enough-cluster-secret\n');
  const o = resolveNodeOptions({ ...base, api: '0.0.0.0:7701', secretFile: good });
  t.equal(o.secret?.toString(), 'a-long-enough-cluster-secret');
  t.same(o.warnings, []);
  const old = resolveNodeOptions({ ...base, api: '0.0.0.0:7701', tokenFile: good });
  t.equal(old.secret?.toString(), 'a-long-enough-cluster-secret');
  t.match(old.warnings.join(' '), /--token-file is deprecated/);
  t.throws(() => resolveNodeOptions({ ...base, secretFile: good, tokenFile: good }), /give one of them/);
  const bad = join(dir, 'short');
  writeFileSync(bad, 'short');
  t.throws(() => resolveNodeOptions({ ...base, secretFile: bad }), /at least 16 characters/);
  t.throws(() => resolveNodeOptions({ ...base, api: '0.0.0.0:7701' }), /dev mode, on loopback only/);
  t.throws(() => resolveNodeOptions({ ...base, peer: '128.0.0.1:7801' }), /dev mode, on loopback only/);
  t.equal(resolveNodeOptions({ ...base, api: '127.0.0.2:7701', peer: '127.1.2.3:7801' }).secret, null, 'any address of 127.0.0.0/8 is loopback');
});

t.test('--ca-fingerprint is normalised and needs a secret; a wrong one is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'workrs-opt-'));
  const secret = join(dir, 'secret');
  writeFileSync(secret, 'a-long-enough-cluster-secret\n');
  const hex = 'ab'.repeat(32);
  const colons = hex.toUpperCase().match(/../g)!.join(':');
  t.equal(resolveNodeOptions({ ...base, secretFile: secret, caFingerprint: `sha256:${colons}` }).pinnedCaFingerprint, hex);
  t.throws(() => resolveNodeOptions({ ...base, secretFile: secret, caFingerprint: 'abc' }), /64 hex digits/);
  t.throws(() => resolveNodeOptions({ ...base, caFingerprint: hex }), /need --secret-file/);
});

t.test('maxPendingJobs: 10000 by default, 1 to 1000000, from --max-pending-jobs or the config file', async (t) => {
  t.equal(resolveNodeOptions(base).maxPendingJobs, 10_000);
  t.equal(resolveNodeOptions({ ...base, maxPendingJobs: '5' }).maxPendingJobs, 5);
  t.equal(resolveNodeOptions(base, { maxPendingJobs: 7 }).maxPendingJobs, 7);
  for (const bad of ['0', '-1', '1.5', 'many', '1000001']) t.throws(() => resolveNodeOptions({ ...base, maxPendingJobs: bad }), /maxPendingJobs: expected an integer from 1 to 1000000/, bad);
});
