// The bulk-request signature on its own (src/blobs/bulk-auth.ts), with a scripted
// clock: what a receiver accepts once, what it refuses (replays, another body, path,
// method or receiver, a clock too far off), and how its nonce memory is bounded.
import t from 'tap';
import { BulkVerifier, EMPTY_BODY_SHA256, bodyMatches, bodySha256, signBulkRequest, type BulkRequestSubject } from '../../src/blobs/bulk-auth.js';

const TOKEN = Buffer.from('cluster secret for the bulk-auth tests');
const T0 = 1_700_000_000_000;
const SKEW_MS = 60_000;

let counter = 0;
/** Unique per call; a test needs distinct nonces, not unpredictable ones. */
function nonce(): string {
  counter += 1;
  return counter.toString(16).padStart(32, '0');
}

function subject(over: Partial<BulkRequestSubject> = {}): BulkRequestSubject {
  return { from: 'n1', to: 'n2', method: 'GET', path: '/bulk/chunk/abc?x=1', bodySha256: EMPTY_BODY_SHA256, ...over };
}

function verifier(over: { maxNonces?: number; nodeId?: string } = {}): BulkVerifier {
  return new BulkVerifier({ token: TOKEN, nodeId: over.nodeId ?? 'n2', maxSkewMs: SKEW_MS, ...(over.maxNonces === undefined ? {} : { maxNonces: over.maxNonces }) });
}

t.test('a signed request verifies once; the same header again is a replay', async (t) => {
  const v = verifier();
  const header = signBulkRequest(TOKEN, subject(), T0, nonce());
  t.same(v.verify(header, 'GET', '/bulk/chunk/abc?x=1', T0), { ok: true, nodeId: 'n1', bodySha256: EMPTY_BODY_SHA256 });
  t.match(v.verify(header, 'GET', '/bulk/chunk/abc?x=1', T0 + 10), { ok: false, code: 'UNAUTHORIZED', reason: /nonce already used/ });
  t.match(v.verify(header, 'GET', '/bulk/chunk/abc?x=1', T0 + SKEW_MS), { ok: false, reason: /nonce already used/ }, 'until the very end of its window');
  t.match(v.verify(header, 'GET', '/bulk/chunk/abc?x=1', T0 + SKEW_MS + 1), { ok: false, reason: /ms away/ }, 'and after it the clock refuses it');
  t.equal(v.verify(signBulkRequest(TOKEN, subject(), T0, nonce()), 'GET', '/bulk/chunk/abc?x=1', T0).ok, true, 'another nonce is another request');
});

t.test('the body: the digest is signed, and the bytes read must match it', async (t) => {
  const body = Buffer.from('{"id":"sha256:00","from":["n1"]}');
  const digest = bodySha256(body);
  const v = verifier();
  const header = signBulkRequest(TOKEN, subject({ method: 'POST', path: '/bulk/pull', bodySha256: digest }), T0, nonce());
  const check = v.verify(header, 'POST', '/bulk/pull', T0);
  t.ok(check.ok, 'the header verifies');
  if (!check.ok) return;
  t.equal(bodyMatches(check.bodySha256, body), true, 'the body it was signed with matches');
  t.equal(bodyMatches(check.bodySha256, Buffer.from('{"id":"sha256:00","from":["n3"]}')), false, 'another body does not');
  t.equal(bodyMatches(check.bodySha256, Buffer.alloc(0)), false, 'nor an empty one');
  t.equal(bodyMatches('not hex', body), false, 'a malformed digest matches nothing');

  // Swapping the digest in the header for that of another body breaks the MAC.
  const fields = signBulkRequest(TOKEN, subject({ method: 'POST', path: '/bulk/pull', bodySha256: digest }), T0, nonce()).split(':');
  fields[3] = bodySha256(Buffer.from('another body'));
  t.match(v.verify(fields.join(':'), 'POST', '/bulk/pull', T0), { ok: false, reason: /hmac does not verify/ });
  t.equal(bodyMatches(EMPTY_BODY_SHA256, Buffer.alloc(0)), true, 'a GET signs the empty body');
});

t.test('method, path with its query, sender and receiver are all bound', async (t) => {
  const v = verifier();
  const sign = (over: Partial<BulkRequestSubject>): string => signBulkRequest(TOKEN, subject(over), T0, nonce());
  t.match(v.verify(sign({}), 'GET', '/bulk/chunk/abd?x=1', T0), { ok: false, reason: /hmac does not verify/ }, 'another path');
  t.match(v.verify(sign({}), 'GET', '/bulk/chunk/abc?x=2', T0), { ok: false, reason: /hmac does not verify/ }, 'another query');
  t.match(v.verify(sign({}), 'POST', '/bulk/chunk/abc?x=1', T0), { ok: false, reason: /hmac does not verify/ }, 'another method');
  t.match(v.verify(sign({ to: 'n3' }), 'GET', '/bulk/chunk/abc?x=1', T0), { ok: false, reason: /signed for another node than n2/ }, 'signed for another receiver');
  const forged = sign({}).replace(/^n1:/, 'n9:');
  t.match(v.verify(forged, 'GET', '/bulk/chunk/abc?x=1', T0), { ok: false, reason: /hmac does not verify/ }, 'another sender');
  t.match(v.verify(signBulkRequest(Buffer.from('another token'), subject(), T0, nonce()), 'GET', '/bulk/chunk/abc?x=1', T0), { ok: false, reason: /hmac does not verify/ }, 'another token');
  t.equal(v.heldNonces, 0, 'no refused request takes a place in the nonce memory');
});

t.test('node ids with any character travel encoded and stay distinct', async (t) => {
  for (const from of ['node:with:colons', 'über|n2', '%41']) {
    const header = signBulkRequest(TOKEN, subject({ from }), T0, nonce());
    t.equal(header.split(':').length, 5, `${from}: five fields`);
    t.same(verifier().verify(header, 'GET', '/bulk/chunk/abc?x=1', T0), { ok: true, nodeId: from, bodySha256: EMPTY_BODY_SHA256 });
  }
  // The MAC input is a JSON array: moving a '|' from one id to the other changes it.
  const header = signBulkRequest(TOKEN, subject({ from: 'a|b', to: 'c' }), T0, nonce());
  const moved = header.replace(/^a%7Cb:/, 'a:');
  t.match(verifier({ nodeId: 'b|c' }).verify(moved, 'GET', '/bulk/chunk/abc?x=1', T0), { ok: false, reason: /hmac does not verify/ });
});

t.test('the clock: within maxSkewMs either way', async (t) => {
  const at = (ts: number, now: number) => verifier().verify(signBulkRequest(TOKEN, subject(), ts, nonce()), 'GET', '/bulk/chunk/abc?x=1', now);
  t.equal(at(T0, T0 + SKEW_MS).ok, true, 'at the edge of the window');
  t.match(at(T0, T0 + SKEW_MS + 1), { ok: false, reason: /60001 ms away/ });
  t.equal(at(T0 + SKEW_MS, T0).ok, true, 'a sender ahead by the window');
  t.match(at(T0 + SKEW_MS + 1, T0), { ok: false }, 'a timestamp further in the future');
});

t.test('malformed headers are refused with a reason, never thrown', async (t) => {
  const v = verifier();
  const good = signBulkRequest(TOKEN, subject(), T0, nonce());
  const [from, ts, n, digest, mac] = good.split(':');
  const cases: [string, string | undefined, RegExp][] = [
    ['absent', undefined, /no x-workrs-auth header/],
    ['empty', '', /no x-workrs-auth header/],
    ['the previous format', `n1:${T0}:${'a'.repeat(64)}`, /is not <from>:<ts>:<nonce>:<body sha256>:<hmac>/],
    ['too long', 'x'.repeat(2000), /longer than/],
    ['bad percent-encoding', [`%E0%A4%A`, ts, n, digest, mac].join(':'), /sender is not a percent-encoded node id/],
    ['empty sender', ['', ts, n, digest, mac].join(':'), /sender/],
    ['time not digits', [from, '12x', n, digest, mac].join(':'), /timestamp is not milliseconds/],
    ['short nonce', [from, ts, 'abc', digest, mac].join(':'), /nonce is not 32 hex digits/],
    ['upper-case digest', [from, ts, n, digest?.toUpperCase(), mac].join(':'), /body digest is not 64 hex digits/],
    ['short mac', [from, ts, n, digest, 'ab'].join(':'), /hmac is not 64 hex digits/],
  ];
  for (const [what, header, reason] of cases) t.match(v.verify(header, 'GET', '/bulk/chunk/abc?x=1', T0), { ok: false, code: 'UNAUTHORIZED', reason }, what);
  t.throws(() => signBulkRequest(TOKEN, subject(), T0, 'not a nonce'), /nonce must be 32 hex digits/, 'signing checks its own inputs');
});

t.test('the nonce memory is bounded: full means refused, and it empties as windows close', async (t) => {
  const v = verifier({ maxNonces: 3 });
  const path = '/bulk/chunk/abc?x=1';
  const headers = [0, 1, 2].map((i) => signBulkRequest(TOKEN, subject(), T0 + i * 1000, nonce()));
  headers.forEach((h, i) => t.equal(v.verify(h, 'GET', path, T0 + i * 1000).ok, true, `request ${i + 1} accepted`));
  t.equal(v.heldNonces, 3);
  const fourth = signBulkRequest(TOKEN, subject(), T0 + 3000, nonce());
  t.match(v.verify(fourth, 'GET', path, T0 + 3000), { ok: false, code: 'REPLAY_CACHE_FULL', reason: /3 bulk requests accepted/ }, 'full: refused, not forgotten');
  t.match(v.verify(headers[0], 'GET', path, T0 + 3000), { ok: false, code: 'UNAUTHORIZED', reason: /nonce already used/ }, 'the remembered ones are still replays');

  // The first request's window closes at T0 + SKEW_MS: its place frees, the others stay.
  t.equal(v.verify(fourth, 'GET', path, T0 + SKEW_MS + 1).ok, true, 'a place freed once the oldest window closed');
  t.equal(v.heldNonces, 3);
  t.match(v.verify(headers[1], 'GET', path, T0 + SKEW_MS + 1), { ok: false, reason: /nonce already used/ }, 'a request whose window is still open is still remembered');
  t.equal(v.verify(signBulkRequest(TOKEN, subject(), T0 + 10 * SKEW_MS, nonce()), 'GET', path, T0 + 10 * SKEW_MS).ok, true);
  t.equal(v.heldNonces, 1, 'long after, only the newest is held');
});

t.test('an entry from a sender whose clock runs ahead holds no other past 2 × maxSkewMs', async (t) => {
  const v = verifier({ maxNonces: 100 });
  const path = '/bulk/chunk/abc?x=1';
  // Accepted at T0 from a sender a window ahead (held until T0 + 2·skew), then one from a sender on time.
  t.equal(v.verify(signBulkRequest(TOKEN, subject(), T0 + SKEW_MS, nonce()), 'GET', path, T0).ok, true);
  t.equal(v.verify(signBulkRequest(TOKEN, subject(), T0, nonce()), 'GET', path, T0).ok, true);
  t.equal(v.verify(signBulkRequest(TOKEN, subject(), T0 + SKEW_MS + 5, nonce()), 'GET', path, T0 + SKEW_MS + 5).ok, true);
  t.equal(v.heldNonces, 3, 'the on-time entry waits behind the one still open');
  t.equal(v.verify(signBulkRequest(TOKEN, subject(), T0 + 2 * SKEW_MS + 1, nonce()), 'GET', path, T0 + 2 * SKEW_MS + 1).ok, true);
  t.equal(v.heldNonces, 2, 'both early ones gone by 2 × maxSkewMs after acceptance');
});
