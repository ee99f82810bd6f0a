// How the gateway's answers end their connection (src/api/http.ts): an answer given
// while the request's body is unread says Connection: close and the socket closes
// after it, lingering at most LINGER_MS for what the client still sends; an answer
// after the whole body was read keeps the connection alive. readBody's 413 for a
// chunked body reaches the client although it is still sending.
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect } from 'node:net';
import { once } from 'node:events';
import t from 'tap';
import { HttpError, LINGER_MS, readJson, sendError, sendJson } from '../../src/api/http.js';

const MAX_JSON = 1000;

async function serve(t: { teardown(f: () => void): void }): Promise<number> {
  const server: Server = createServer((req, res) => {
    const refuse = req.url === '/refuse';
    (refuse ? Promise.reject(new HttpError(401, 'UNAUTHORIZED', 'no token')) : readJson(req, MAX_JSON)).then(
      (body) => sendJson(res, 200, { body }),
      (err: unknown) => sendError(res, err),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const a = server.address();
  if (!a || typeof a === 'string') throw new Error('no address');
  return a.port;
}

/** Posts `chunks` (chunked encoding), stopping once the answer is there; its status, headers and JSON. */
function post(port: number, path: string, chunks: Buffer[]): Promise<{ status: number; headers: IncomingHttpHeaders; body: { error?: { code: string } } }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path, headers: { 'content-type': 'application/json' } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(Buffer.concat(parts).toString('utf8')) as { error?: { code: string } } }));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

t.test('a chunked body past the limit gets its 413, and the connection closes', async (t) => {
  const port = await serve(t);
  const r = await post(port, '/', Array.from({ length: 40 }, () => Buffer.alloc(10_000, 0x20)));
  t.equal(r.status, 413);
  t.equal(r.body.error?.code, 'BODY_TOO_LARGE');
  t.equal(r.headers.connection, 'close', 'the body was not read to its end: Connection: close');
});

t.test('an answer after the whole body keeps the connection alive', async (t) => {
  const port = await serve(t);
  const r = await post(port, '/', [Buffer.from('{"a":'), Buffer.from('1}')]);
  t.equal(r.status, 200);
  t.same(r.body, { body: { a: 1 } });
  t.not(r.headers.connection, 'close');
});

t.test('a client that trickles its body after a refusal is cut off within LINGER_MS', async (t) => {
  const port = await serve(t);
  // allowHalfOpen: the client ignores the node's end and goes on sending, as an attacker would.
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => {
    // Being reset is one way of being cut off.
  });
  await once(socket, 'connect');
  let answer = '';
  socket.setEncoding('utf8');
  socket.on('data', (s: string) => (answer += s));
  const started = Date.now();
  socket.write('POST /refuse HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n');
  const trickle = setInterval(() => {
    if (!socket.destroyed && socket.writable) socket.write('x'.repeat(100));
  }, 100);
  const closed = new Promise<number>((r) => socket.on('close', () => r(Date.now() - started)));
  let timer: NodeJS.Timeout | undefined;
  const closedAfterMs = await Promise.race([closed, new Promise<null>((r) => (timer = setTimeout(() => r(null), LINGER_MS + 10_000)))]);
  clearTimeout(timer);
  clearInterval(trickle);
  socket.destroy();
  t.match(answer, /^HTTP\/1\.1 401 /);
  t.match(answer, /\r\nconnection: close\r\n/i);
  t.ok(closedAfterMs !== null, `the socket closed ${closedAfterMs ?? 'never'} ms after the request (linger ${LINGER_MS} ms)`);
});
