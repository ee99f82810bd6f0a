// A client with a submit token streams a 200 MB `spec` file part. Buffered whole under
// the 1 GiB file limit instead of the 1 MiB spec limit, such a part takes a node's
// memory from about 90 to over 600 MiB, and a 560 MB one ends it. So the spec is held
// to the JSON limit in either form: the answer is 413
// BODY_TOO_LARGE as soon as the part passes 1 MiB, the rest is never parsed, and the
// node's memory stays where it was.
import t from 'tap';
import { LocalCluster } from '../process/harness.js';
import { closing, multipartType, partHead } from '../helpers/multipart.js';
import { requestApi } from '../helpers/secure-clients.js';
import { assertClusterHealthy, rssMiB } from './health.js';

const BOUNDARY = 'large-spec-boundary-51c2';
const SPEC_BYTES = 200 * 1024 * 1024;
const CHUNK = Buffer.alloc(1024 * 1024, 0x20);
const MAX_RSS_MIB = 250;

interface Outcome {
  status: number | null;
  body: string;
  sentBytes: number;
  error: string | null;
}

/** Streams a submission whose spec file part is SPEC_BYTES of spaces; stops sending once the node answers or the connection breaks. */
function streamHugeSpec(c: LocalCluster, id: string, token: string): Promise<Outcome> {
  const head = Buffer.from(partHead({ name: 'spec', filename: 'job.json', contentType: 'application/json', body: '' }, BOUNDARY));
  const tail = Buffer.from(closing(BOUNDARY));
  return new Promise((resolve) => {
    const outcome: Outcome = { status: null, body: '', sentBytes: 0, error: null };
    let stopped = false;
    let wake: (() => void) | null = null;
    const stop = (): void => {
      stopped = true;
      wake?.();
    };
    const req = requestApi(c, id, {
      method: 'POST',
      path: '/v1/jobs',
      headers: { authorization: `Bearer ${token}`, 'content-type': multipartType(BOUNDARY), 'content-length': head.length + SPEC_BYTES + tail.length },
    });
    req.on('response', (res) => {
      outcome.status = res.statusCode ?? null;
      stop();
      res.setEncoding('utf8');
      res.on('data', (s: string) => (outcome.body += s));
      res.on('end', () => resolve(outcome));
      res.on('error', () => resolve(outcome));
    });
    req.on('error', (err) => {
      outcome.error = err.message;
      stop();
      // Without an answer this is the outcome; with one, its end resolves.
      if (outcome.status === null) resolve(outcome);
    });
    req.on('drain', () => wake?.());
    void (async () => {
      req.write(head);
      while (!stopped && outcome.sentBytes < SPEC_BYTES) {
        outcome.sentBytes += CHUNK.length;
        if (!req.write(CHUNK)) await new Promise<void>((r) => (wake = r));
        wake = null;
      }
      if (!stopped) req.end(tail);
    })();
  });
}

t.test('a 200 MB spec file part is refused with 413 past 1 MiB, without the node holding it', async (t) => {
  const c = await LocalCluster.create(['n1', 'n2', 'n3']);
  let failed = true;
  t.teardown(() => c.destroy(failed));
  c.startAll();
  await c.leader(30_000);
  await c.allReady(30_000);

  const { token: submitter } = await c.createToken('submit', { name: 'attacker' });
  const target = 'n2';
  const pid = c.node(target).proc?.pid ?? 0;
  const before = rssMiB(pid);
  let peak = before;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssMiB(pid));
    } catch {
      // The process is gone: the liveness check below reports it.
    }
  }, 50);
  const outcome = await streamHugeSpec(c, target, submitter);
  // Memory the node allocated for the part shows within moments; watch a little longer.
  await new Promise((r) => setTimeout(r, 1000));
  clearInterval(sampler);

  t.comment(`sent ${(outcome.sentBytes / 1024 / 1024).toFixed(0)} MiB; RSS ${before.toFixed(0)} → peak ${peak.toFixed(0)} MiB; ${outcome.status ?? outcome.error}`);
  t.equal(outcome.status, 413, 'answered 413');
  let code: string | undefined;
  try {
    code = (JSON.parse(outcome.body) as { error?: { code?: string } }).error?.code;
  } catch {
    code = undefined;
  }
  t.equal(code, 'BODY_TOO_LARGE', `the usual JSON error, code BODY_TOO_LARGE (got ${outcome.body.slice(0, 200)})`);
  t.ok(peak < MAX_RSS_MIB, `the node's RSS stayed under ${MAX_RSS_MIB} MiB (peak ${peak.toFixed(0)} MiB)`);
  t.ok(outcome.sentBytes < SPEC_BYTES, `the node answered before the client had sent everything (${(outcome.sentBytes / 1024 / 1024).toFixed(0)} MiB sent)`);

  await assertClusterHealthy(t, c);
  failed = !t.passing();
});
