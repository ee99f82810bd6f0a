// SIGTERM while clients keep asking: a node's graceful stop ends although its API is
// never idle. Node's HTTP server closes only idle keep-alive connections when it
// closes, and a client that asks again within the keep-alive timeout keeps its
// connection (and so the close) going for ever: a web UI left open polls every few
// seconds, and this is how a node once failed to stop in a rolling upgrade.
import t from 'tap';
import { startedCluster } from './harness.js';

t.test('a node stops gracefully on SIGTERM while clients poll its API over keep-alive connections', async (t) => {
  const { c, leader } = await startedCluster(t);
  const target = ['n1', 'n2', 'n3'].find((id) => id !== leader) ?? 'n2';
  let polling = true;
  let answered = 0;
  // Four clients back to back, so that some request is always in flight.
  const pollers = Array.from({ length: 4 }, async () => {
    while (polling) {
      const res = await c.request(target, '/v1/cluster?stale=1', {}, 2000).catch(() => null);
      if (res) {
        await res.body?.cancel();
        answered++;
      }
      if (!c.node(target).proc) await new Promise((r) => setTimeout(r, 50));
    }
  });
  await new Promise((r) => setTimeout(r, 1000));
  t.ok(answered > 0, `the clients are answered before the stop (${answered} answers)`);
  const started = Date.now();
  const code = await c.terminate(target, 30_000).catch((err: unknown) => (err instanceof Error ? err.message : String(err)));
  t.comment(`${target} exited ${Date.now() - started} ms after SIGTERM, ${answered} answers in all`);
  polling = false;
  await Promise.all(pollers);
  t.equal(code, 0, `${target} exited with 0 on SIGTERM`);
  // The others go on: one of them answers for the cluster.
  const other = ['n1', 'n2', 'n3'].find((id) => id !== target) ?? 'n1';
  t.equal((await c.get<unknown>(other, '/v1/cluster?stale=1')).status, 200, `${other} still answers`);
});
