// Bulk transfer between nodes on real sockets: each node is a PeerTransport on
// 127.0.0.1 whose onHttpRequest hands /bulk/ to a BlobPeer over its own store in a
// temp folder, and finds the others in a node table shared by the test. A fetch moves
// only missing chunks, refuses a corrupt one and takes it from another holder,
// requests without the token's HMAC (or replayed, or with another body) get 401, push
// makes the far node pull, and a pull names node ids, never addresses.
import http from 'node:http';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { PeerTransport } from '../../src/transport/peer-transport.js';
import { BlobStore } from '../../src/blobs/store.js';
import { BlobPeer, type FetchProgress } from '../../src/blobs/peer.js';
import { AUTH_HEADER, EMPTY_BODY_SHA256, bodySha256, signBulkRequest } from '../../src/blobs/bulk-auth.js';
import { BlobFetchError, BlobNotFoundError } from '../../src/blobs/errors.js';
import { sha256Hex, uniqueChunks } from '../../src/blobs/manifest.js';
import { checkpointVersions, collect, seededBytes, tempFolder } from './blob-fixtures.js';

const MiB = 1024 * 1024;
const TOKEN = Buffer.from('cluster secret for the blob tests');
const CONCURRENCY = 3;

interface TestNode {
  id: string;
  store: BlobStore;
  peer: BlobPeer;
  address: string;
  dir: string;
  maxParallelChunkRequests: () => number;
}

type Teardown = { teardown(fn: () => void | Promise<void>): void };
/** Node id → peer address: the replicated node table of a real node, shared by the nodes of one test. */
type NodeTable = Map<string, string>;

async function startNode(t: Teardown, table: NodeTable, id: string, token: Buffer | null = TOKEN, extra: { idleTimeoutMs?: number; maxNonces?: number } = {}): Promise<TestNode> {
  const dir = tempFolder(t, `workrs-bulk-${id}-`);
  const store = await BlobStore.open(join(dir, 'store'));
  const peer = new BlobPeer({ store, nodeId: id, token, concurrency: CONCURRENCY, addressOf: (node) => table.get(node) ?? null, ...extra });
  let inflight = 0;
  let maxInflight = 0;
  const transport = await PeerTransport.start({
    id,
    listen: { host: '127.0.0.1', port: 0 },
    token,
    onHttpRequest: (req, res) => {
      if (req.url?.startsWith('/bulk/chunk/') === true) {
        inflight += 1;
        maxInflight = Math.max(maxInflight, inflight);
        res.once('close', () => (inflight -= 1));
      }
      if (!peer.handle(req, res)) {
        res.statusCode = 404;
        res.end();
      }
    },
  });
  const address = `127.0.0.1:${transport.port}`;
  table.set(id, address);
  t.teardown(async () => {
    peer.close();
    await transport.close();
  });
  return { id, store, peer, address, dir, maxParallelChunkRequests: () => maxInflight };
}

function bundle(root: string, pages: Buffer, seq: number): string {
  mkdirSync(join(root, 'checkpoint'), { recursive: true });
  writeFileSync(join(root, 'checkpoint', 'pages-1.img'), pages);
  writeFileSync(join(root, 'checkpoint', 'inventory.img'), `inventory ${seq}`);
  writeFileSync(join(root, 'meta.json'), JSON.stringify({ seq }));
  return root;
}

const bytesOf = (chunks: { bytes: number }[]): number => chunks.reduce((n, c) => n + c.bytes, 0);

function corruptChunk(store: BlobStore, hash: string): void {
  const path = store.chunkPath(hash);
  const data = readFileSync(path);
  data[data.length >> 1] = (data[data.length >> 1] ?? 0) ^ 0x5a; // same size, wrong content
  writeFileSync(path, data);
}

/** A raw request to a node's peer port, with whatever auth header and body the test wants. */
function rawRequest(address: string, method: string, path: string, auth: string | null, body: Buffer | null = null): Promise<{ status: number; body: Buffer }> {
  const [host, port] = address.split(':');
  const headers: http.OutgoingHttpHeaders = auth === null ? {} : { [AUTH_HEADER]: auth };
  if (body !== null) headers['content-length'] = body.length;
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port: Number(port), method, path, headers }, (res) => {
      collect(res).then((answer) => resolve({ status: res.statusCode ?? 0, body: answer }), reject);
    });
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

let nonceCounter = 0;
/** A fresh nonce per call (deterministic: tests need unique, not unpredictable). */
function nonce(): string {
  nonceCounter += 1;
  return nonceCounter.toString(16).padStart(32, '0');
}

/** A header as node `from` signs a request for node `to`. */
function sign(token: Buffer | null, from: string, to: string, method: string, path: string, body: Buffer | null = null, tsMs = Date.now(), n = nonce()): string {
  return signBulkRequest(token, { from, to, method, path, bodySha256: body === null ? EMPTY_BODY_SHA256 : bodySha256(body) }, tsMs, n);
}

t.test('B fetches a checkpoint from A, then only the chunks the next checkpoint changed', async (t) => {
  const table: NodeTable = new Map();
  const [a, b] = await Promise.all([startNode(t, table, 'a'), startNode(t, table, 'b')]);
  const { v1, v2 } = checkpointVersions(16 * MiB, 21);
  const put1 = await a.store.putFolder(bundle(join(a.dir, 'cp1'), v1, 1), 'checkpoint');
  const holders = ['a'];

  const progress: FetchProgress[] = [];
  const r1 = await b.peer.fetch(put1.id, holders, { onProgress: (p) => progress.push(p) });
  const m1 = await a.store.manifest(put1.id);
  t.equal(r1.fetchedBytes, bytesOf(uniqueChunks(m1)), 'the first fetch moves every chunk');
  t.equal(r1.presentChunks, 0);
  t.equal(await b.store.has(put1.id), true, 'B holds v1, verified');
  const out = join(b.dir, 'restored1');
  await b.store.exportFolder(put1.id, out);
  t.equal(readFileSync(join(out, 'checkpoint', 'pages-1.img')).equals(v1), true, 'pages identical on B');
  t.same(progress[0], { fetchedBytes: 0, missingBytes: r1.fetchedBytes, fetchedChunks: 0, missingChunks: r1.fetchedChunks }, 'progress starts at zero');
  t.same(progress.at(-1), { fetchedBytes: r1.fetchedBytes, missingBytes: r1.fetchedBytes, fetchedChunks: r1.fetchedChunks, missingChunks: r1.fetchedChunks }, 'and ends at everything');
  t.ok(progress.every((p, i) => i === 0 || p.fetchedBytes > (progress[i - 1]?.fetchedBytes ?? 0)), 'progress grows with every chunk');
  t.ok(a.maxParallelChunkRequests() > 1 && a.maxParallelChunkRequests() <= CONCURRENCY, `chunk requests ran in parallel, at most ${CONCURRENCY} (saw ${a.maxParallelChunkRequests()})`);

  const put2 = await a.store.putFolder(bundle(join(a.dir, 'cp2'), v2, 2), 'checkpoint');
  const served = a.peer.stats().servedChunkBytes;
  const r2 = await b.peer.fetch(put2.id, holders);
  const m2 = await a.store.manifest(put2.id);
  const had = new Set(uniqueChunks(m1).map((c) => c.hash));
  const changedBytes = bytesOf(uniqueChunks(m2).filter((c) => !had.has(c.hash)));
  t.comment(`v2: ${r2.bytes} bytes; fetched ${r2.fetchedBytes} (${((r2.fetchedBytes / r2.bytes) * 100).toFixed(1)}%) in ${r2.fetchedChunks} chunks, ${r2.presentChunks} chunks already on B`);
  t.equal(r2.fetchedBytes, changedBytes, 'v2 moved exactly the chunks v1 did not have');
  t.equal(a.peer.stats().servedChunkBytes - served, changedBytes, 'and A sent no more than that');
  t.ok(r2.fetchedBytes < 0.25 * r2.bytes, 'a small fraction of the checkpoint');
  t.equal(await b.store.has(put2.id), true);

  const r3 = await b.peer.fetch(put2.id, holders);
  t.equal(r3.fetchedChunks, 0, 'fetching a blob already held moves nothing');
});

t.test('a corrupt chunk from a bad holder is refused and taken from the good one', async (t) => {
  const table: NodeTable = new Map();
  const [a, b, c] = await Promise.all([startNode(t, table, 'a'), startNode(t, table, 'b'), startNode(t, table, 'c')]);
  const data = seededBytes(4 * MiB, 22);
  const put = await a.store.putBuffer(data, 'result');
  await c.store.putBuffer(data, 'result');
  const chunks = (await a.store.manifest(put.id)).chunks;
  const [first, second] = chunks;
  if (first === undefined || second === undefined) throw new Error('blob has fewer than 2 chunks');
  corruptChunk(c.store, first.hash); // C serves wrong bytes for it
  rmSync(c.store.chunkPath(second.hash)); // and lacks this one

  // C is asked first.
  const r = await b.peer.fetch(put.id, ['c', 'a']);
  t.equal(r.refusedChunks, 1, 'the corrupt chunk was refused');
  t.equal(b.peer.stats().refusedChunks, 1);
  t.equal(await b.store.has(put.id), true, 'B holds the blob, every chunk verified');
  t.equal((await collect(await b.store.readStream(put.id))).equals(data), true, 'content identical');
  t.ok(a.peer.stats().servedChunks >= 2, 'A supplied what C could not');
});

t.test('a chunk no holder has intact fails the fetch with a clear error', async (t) => {
  const table: NodeTable = new Map();
  const [b, c] = await Promise.all([startNode(t, table, 'b'), startNode(t, table, 'c')]);
  const put = await c.store.putBuffer(seededBytes(3 * MiB, 23), 'result');
  const victim = (await c.store.manifest(put.id)).chunks[1];
  if (victim === undefined) throw new Error('blob has fewer than 2 chunks');
  corruptChunk(c.store, victim.hash);

  const err = await b.peer.fetch(put.id, ['c']).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof BlobFetchError, 'a BlobFetchError');
  t.match(String((err as Error).message), new RegExp(`chunk ${victim.hash} came from no holder \\(c \\(127\\.0\\.0\\.1:\\d+\\): chunk ${victim.hash}: received bytes hash to`));
  t.equal(await b.store.has(put.id), false, 'B does not claim the blob');
  // The fetch stops taking new chunks once one cannot complete; those already under way
  // (chunks 0 and 2, started with chunk 1) finish and stay for the next try.
  const total = (await b.store.manifest(put.id)).chunks.length;
  const missing = (await b.store.missingChunks(put.id)).map((m) => m.hash);
  t.ok(missing.includes(victim.hash), 'the refused chunk is missing on B');
  t.ok(missing.length <= total - 2, `chunks that arrived are kept (${total - missing.length} of ${total})`);

  const none = await b.peer.fetch('sha256:' + 'e'.repeat(64), ['c']).then(
    () => null,
    (e: unknown) => e,
  );
  t.match(String((none as Error).message), /no holder gave its manifest \(c \(.*\): HTTP 404: blob sha256:e+ is not in this node's store\)/);
});

t.test('requests without a valid HMAC of the token get 401', async (t) => {
  const table: NodeTable = new Map();
  const [a, d] = await Promise.all([startNode(t, table, 'a'), startNode(t, table, 'd', Buffer.from('some other cluster'))]);
  const put = await a.store.putBuffer(seededBytes(MiB, 24), 'input');
  const path = `/bulk/manifest/${encodeURIComponent(put.id)}`;
  const now = Date.now();

  const ok = await rawRequest(a.address, 'GET', path, sign(TOKEN, 'x', 'a', 'GET', path));
  t.equal(ok.status, 200, 'a correctly signed request is served');
  t.equal(`sha256:${sha256Hex(ok.body)}`, put.id, 'the manifest bytes hash to the id');

  const refused: [string, string | null][] = [
    ['no header', null],
    ['garbage header', 'hello'],
    ['another token', sign(Buffer.from('wrong'), 'x', 'a', 'GET', path)],
    ['no token (empty key)', sign(null, 'x', 'a', 'GET', path)],
    ['signed for another node', sign(TOKEN, 'x', 'd', 'GET', path)],
    ['another path', sign(TOKEN, 'x', 'a', 'GET', '/bulk/manifest/other')],
    ['another method', sign(TOKEN, 'x', 'a', 'POST', path)],
    ['timestamp 5 minutes old', sign(TOKEN, 'x', 'a', 'GET', path, null, now - 300_000)],
  ];
  for (const [what, header] of refused) {
    const r = await rawRequest(a.address, 'GET', path, header);
    t.equal(r.status, 401, `${what}: 401`);
  }
  const chunkPath = `/bulk/chunk/${(await a.store.manifest(put.id)).chunks[0]?.hash ?? ''}`;
  t.equal((await rawRequest(a.address, 'GET', chunkPath, null)).status, 401, 'chunks too');
  t.equal((await rawRequest(a.address, 'POST', '/bulk/pull', null)).status, 401, 'and pulls');
  t.equal(a.peer.stats().unauthorized, refused.length + 2);

  const badPath = '/bulk/nothing/here';
  t.equal((await rawRequest(a.address, 'GET', badPath, sign(TOKEN, 'x', 'a', 'GET', badPath))).status, 404, 'authenticated, unknown endpoint: 404');
  t.equal((await rawRequest(a.address, 'GET', '/bulk/pull', sign(TOKEN, 'x', 'a', 'GET', '/bulk/pull'))).status, 405, 'GET on pull: 405');

  await t.rejects(d.peer.fetch(put.id, ['a']), /HTTP 401: bulk request not authenticated: hmac does not verify/, 'a node with another token cannot fetch');
  t.equal(await d.store.has(put.id), false);
});

t.test('a request is served once: the same header again is refused, with the same body or another', async (t) => {
  const table: NodeTable = new Map();
  const [a, b] = await Promise.all([startNode(t, table, 'a'), startNode(t, table, 'b')]);
  const put = await a.store.putBuffer(seededBytes(MiB, 29), 'input');
  const path = `/bulk/manifest/${encodeURIComponent(put.id)}`;
  const header = sign(TOKEN, 'x', 'a', 'GET', path);
  t.equal((await rawRequest(a.address, 'GET', path, header)).status, 200, 'first use: served');
  const again = await rawRequest(a.address, 'GET', path, header);
  t.equal(again.status, 401, 'replayed: 401');
  t.match(again.body.toString(), /nonce already used/);

  // A pull signed with one body, sent with another: refused before anything is pulled.
  const signedBody = Buffer.from(JSON.stringify({ id: put.id, from: ['a'] }));
  const otherBody = Buffer.from(JSON.stringify({ id: 'sha256:' + 'f'.repeat(64), from: ['a'] }));
  const pullHeader = sign(TOKEN, 'a', 'b', 'POST', '/bulk/pull', signedBody);
  const tampered = await rawRequest(b.address, 'POST', '/bulk/pull', pullHeader, otherBody);
  t.equal(tampered.status, 401, 'another body under a signed header: 401');
  t.match(tampered.body.toString(), /not the one the request was signed with/);
  t.equal(b.peer.stats().fetchedChunks, 0, 'and nothing was fetched');
  t.equal((await rawRequest(b.address, 'POST', '/bulk/pull', pullHeader, signedBody)).status, 401, 'its nonce is spent: the signed body cannot follow');
  const fresh = await rawRequest(b.address, 'POST', '/bulk/pull', sign(TOKEN, 'a', 'b', 'POST', '/bulk/pull', signedBody), signedBody);
  t.equal(fresh.status, 200, 'a freshly signed pull is served');
  t.equal(await b.store.has(put.id), true);

  const getWithBody = Buffer.from('unexpected');
  t.equal((await rawRequest(a.address, 'GET', path, sign(TOKEN, 'x', 'a', 'GET', path), getWithBody)).status, 401, 'a GET signed for no body, sent with one: 401');
});

t.test('a pull names holder node ids; an address, or a node the table lacks, is refused and never contacted', async (t) => {
  const table: NodeTable = new Map();
  const [a, b] = await Promise.all([startNode(t, table, 'a'), startNode(t, table, 'b')]);
  const put = await a.store.putBuffer(seededBytes(MiB, 30), 'input');
  let contacted = 0;
  const bystander = http.createServer((_req, res) => {
    contacted += 1;
    res.end();
  });
  bystander.on('connection', () => (contacted += 1));
  await new Promise<void>((resolve) => bystander.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    bystander.closeAllConnections();
    bystander.close();
  });
  const elsewhere = `127.0.0.1:${(bystander.address() as { port: number }).port}`;

  const cases: [string, unknown, number, RegExp][] = [
    ['holders as node id → address', { id: put.id, from: { a: elsewhere } }, 400, /from must be a list of holder node ids/],
    ['a holder the table lacks', { id: put.id, from: ['stranger'] }, 404, /holder stranger is not in this node's node table/],
    ['an address in place of an id', { id: put.id, from: [elsewhere] }, 404, /not in this node's node table/],
    ['no holders', { id: put.id, from: [] }, 400, /1 to 64 holders/],
  ];
  for (const [what, pull, status, message] of cases) {
    const body = Buffer.from(JSON.stringify(pull));
    const r = await rawRequest(b.address, 'POST', '/bulk/pull', sign(TOKEN, 'a', 'b', 'POST', '/bulk/pull', body), body);
    t.equal(r.status, status, `${what}: ${status}`);
    t.match(r.body.toString(), message);
  }
  t.equal(contacted, 0, 'the address named in a request was never contacted');
  t.equal(await b.store.has(put.id), false);

  table.delete('a');
  await t.rejects(b.peer.fetch(put.id, ['a']), /a \(not in the node table\)/, 'a fetch from a node the table lacks fails for that holder');
  await t.rejects(a.peer.push(put.id, 'nobody'), /node nobody is not in the node table/, 'a push to one too');
});

t.test('the nonce cache is bounded: when full, requests are refused (503), not forgotten', async (t) => {
  const table: NodeTable = new Map();
  const a = await startNode(t, table, 'a', TOKEN, { maxNonces: 3 });
  const put = await a.store.putBuffer(seededBytes(MiB, 31), 'input');
  const path = `/bulk/manifest/${encodeURIComponent(put.id)}`;
  const headers = [0, 1, 2].map(() => sign(TOKEN, 'x', 'a', 'GET', path));
  for (const h of headers) t.equal((await rawRequest(a.address, 'GET', path, h)).status, 200);
  const full = await rawRequest(a.address, 'GET', path, sign(TOKEN, 'x', 'a', 'GET', path));
  t.equal(full.status, 503, 'a fourth fresh request within the window: 503');
  t.match(full.body.toString(), /REPLAY_CACHE_FULL/);
  t.equal((await rawRequest(a.address, 'GET', path, headers[0] ?? '')).status, 401, 'and the remembered ones still cannot be replayed');
  t.equal(a.peer.stats().busy, 1);
});

t.test('push: A asks B to pull, and the answer comes once B holds the blob', async (t) => {
  const table: NodeTable = new Map();
  const [a, b] = await Promise.all([startNode(t, table, 'a'), startNode(t, table, 'b')]);
  const data = seededBytes(3 * MiB, 25);
  const put = await a.store.putBuffer(data, 'checkpoint');
  const answer = await a.peer.push(put.id, 'b');
  t.same(answer, { id: put.id, bytes: data.length, fetchedChunks: put.newChunks, fetchedBytes: data.length });
  t.equal(await b.store.has(put.id), true, 'B holds it when push returns');
  t.equal((await collect(await b.store.readStream(put.id))).equals(data), true);

  const again = await a.peer.push(put.id, 'b');
  t.equal(again.fetchedBytes, 0, 'pushing again moves nothing');
  await t.rejects(a.peer.push('sha256:' + '0'.repeat(64), 'b'), BlobNotFoundError, 'a blob A lacks cannot be pushed');
});

t.test('two pushes of one blob at once: the far node pulls it once', async (t) => {
  const table: NodeTable = new Map();
  const [a, b] = await Promise.all([startNode(t, table, 'a'), startNode(t, table, 'b')]);
  const put = await a.store.putBuffer(seededBytes(3 * MiB, 27), 'image');
  const answers = await Promise.all([a.peer.push(put.id, 'b'), a.peer.push(put.id, 'b')]);
  t.equal(answers[0].id, put.id);
  t.equal(b.peer.stats().fetchedBytes, put.bytes, 'B moved the blob once');
  t.equal(a.peer.stats().servedChunkBytes, put.bytes, 'A served it once');
});

t.test('a holder that stalls mid-answer is given up after the idle timeout and the next one used', async (t) => {
  const table: NodeTable = new Map();
  const [a, b] = await Promise.all([startNode(t, table, 'a'), startNode(t, table, 'b', TOKEN, { idleTimeoutMs: 300 })]);
  const put = await a.store.putBuffer(seededBytes(2 * MiB, 28), 'result');
  const manifest = await a.store.manifestBytes(put.id);
  // A holder that gives the manifest, then announces each chunk and never sends it.
  const stalled = http.createServer((req, res) => {
    if (req.url?.startsWith('/bulk/manifest/') === true && manifest !== null) {
      res.end(manifest);
      return;
    }
    res.writeHead(200, { 'content-length': 1024 * 1024 });
    res.write('a few bytes, then silence');
  });
  await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    stalled.closeAllConnections();
    stalled.close();
  });
  table.set('stalled', `127.0.0.1:${(stalled.address() as { port: number }).port}`);
  const started = Date.now();
  const r = await b.peer.fetch(put.id, ['stalled', 'a']);
  t.equal(await b.store.has(put.id), true, 'B holds the blob');
  t.equal(r.fetchedBytes, put.bytes);
  t.ok(Date.now() - started < 5_000, `done in ${Date.now() - started} ms`);
  t.same(readdirSync(join(b.store.dir, 'tmp')), [], 'no temp file left from the stalled transfers');
});

t.test('no token configured: the empty key works between loopback nodes', async (t) => {
  const table: NodeTable = new Map();
  const [a, b] = await Promise.all([startNode(t, table, 'a', null), startNode(t, table, 'b', null)]);
  const put = await a.store.putBuffer(seededBytes(2 * MiB, 26), 'image');
  const r = await b.peer.fetch(put.id, ['a']);
  t.equal(r.fetchedBytes, put.bytes);
  const path = `/bulk/manifest/${encodeURIComponent(put.id)}`;
  t.equal((await rawRequest(a.address, 'GET', path, sign(TOKEN, 'x', 'a', 'GET', path))).status, 401, 'a request keyed with a token is refused');
});
