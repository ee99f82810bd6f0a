// The CLI client's words for what went wrong name the fix: a 5xx names the node that
// answered (not "cannot reach"), a 401 without a token says
// where the token goes, and with several --server nodes the next is asked only when a
// connection never reached one.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { ApiClient } from '../../cli/client.js';
import { CliError, EXIT } from '../../cli/exit.js';
import { freePorts } from '../helpers/ports.js';

async function serve(status: number, body: unknown): Promise<{ url: string; hits: () => number; server: Server }> {
  let hits = 0;
  const server = createServer((req, res) => {
    hits += 1;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits, server };
}

async function failure(client: ApiClient, method = 'GET'): Promise<CliError> {
  try {
    await client.request(method, '/v1/jobs', method === 'POST' ? { json: {} } : {});
  } catch (err) {
    if (err instanceof CliError) return err;
    throw err;
  } finally {
    await client.close();
  }
  throw new Error('the request did not fail');
}

t.test('a 5xx answer says the node answered and the cluster could not do it now', async (t) => {
  const s = await serve(503, { error: { code: 'NO_LEADER', message: 'no leader yet' } });
  t.teardown(() => s.server.close());
  const err = await failure(new ApiClient({ server: s.url, token: null }));
  t.equal(err.exitCode, EXIT.unreachable);
  t.equal(err.message, `${s.url} answered 503: no leader yet (NO_LEADER)`);
  t.notMatch(err.message, /cannot reach/);
});

t.test('a 401 without a token says how to pass one', async (t) => {
  const s = await serve(401, { error: { code: 'UNAUTHORIZED', message: 'a token is required' } });
  t.teardown(() => s.server.close());
  const err = await failure(new ApiClient({ server: s.url, token: null }));
  t.equal(err.exitCode, EXIT.usage);
  t.match(err.message, /--token-file FILE or WORKRS_TOKEN/);
});

t.test('several --server nodes: a refused connection moves on, an answer does not', async (t) => {
  const [closed = 0] = await freePorts(1);
  const down = `http://127.0.0.1:${closed}`;
  const busy = await serve(503, { error: { code: 'NO_LEADER', message: 'no leader yet' } });
  const ok = await serve(202, { id: 'j-1', state: 'pending' });
  t.teardown(() => {
    busy.server.close();
    ok.server.close();
  });
  const moved = new ApiClient({ server: `${down},${ok.url}`, token: null });
  t.same((await moved.request('POST', '/v1/jobs', { json: {} })).body, { id: 'j-1', state: 'pending' }, 'past the refused node');
  await moved.close();
  const stays = await failure(new ApiClient({ server: `${busy.url},${ok.url}`, token: null }), 'POST');
  t.match(stays.message, /answered 503/, 'a node that answered is not passed over: the submission may have been done');
  t.equal(ok.hits(), 1, 'the second node got the first submission only');
});
