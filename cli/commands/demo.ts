// `workrs demo`: a local three-node cluster on this box's Docker engine, a counting
// job checkpointed every few seconds, the destruction of the box running it (workrs
// killed -9, its containers killed, its data folder deleted), and the job resuming
// elsewhere from its last replicated checkpoint. Narrated on stderr.
//
// The cluster runs in secure mode, as a real one would: a join secret only the nodes
// hold, HTTPS with the cluster's own CA (trusted from a node's DATA/ca.pem), the first
// admin token from `acl bootstrap`, and the job submitted with a submit-role token.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectDocker } from '../../src/worker/docker-endpoint.js';
import { clusterIdFromBootstrap } from '../../src/node/cluster-id.js';
import { systemClock } from '../../src/util/clock.js';
import { fingerprintOf } from '../../src/tls/pki.js';
import { ApiClient } from '../client.js';
import { CliError, EXIT } from '../exit.js';
import type { NewToken } from './acl.js';
import { retryUnavailable } from './jobs.js';

interface JobView {
  state: string;
  node: string | null;
  epoch: number;
  exitCode: number | null;
  attempts: Array<{ node: string; epoch: number; fromCheckpoint: { seq: number; epoch: number } | null; startedAt: number | null }>;
  checkpoints: Array<{ seq: number; epoch: number; at: number; bytes: number; durationMs: number; logOffset: number; holders: string[] }>;
}

const say = (msg: string): void => {
  process.stderr.write(`demo: ${msg}\n`);
};

async function readAll(body: AsyncIterable<unknown>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new CliError(`demo: timed out waiting for ${what}`, EXIT.failed);
    await systemClock.sleep(200);
  }
}

export async function demoCommand(opts: { nodes: string; keep?: boolean }): Promise<void> {
  const count = Number(opts.nodes);
  if (!Number.isInteger(count) || count < 3 || count > 7) throw new CliError('--nodes: from 3 to 7', EXIT.usage);
  const dir = mkdtempSync(join(tmpdir(), 'workrs-demo-'));
  const ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
  const apiPort = (i: number): number => 7900 + i;
  const peerPort = (i: number): number => 7950 + i;
  const bootstrap = ids.slice(0, 3).map((id, i) => `${id}=127.0.0.1:${peerPort(i)}`).join(',');
  const clusterId = clusterIdFromBootstrap(new Map(ids.slice(0, 3).map((id, i) => [id, `127.0.0.1:${peerPort(i)}`])));
  const procs = new Map<string, ChildProcess>();
  const docker = connectDocker();
  const cleanup = async (): Promise<void> => {
    for (const p of procs.values()) p.kill('SIGKILL');
    // Only this demo cluster's: a real node n1 on the same engine keeps its jobs.
    for (const info of await docker.listContainers({ all: true, filters: { label: [`workrs.cluster=${clusterId}`] } })) {
      await docker.getContainer(info.Id).remove({ force: true }).catch(() => undefined);
    }
    if (!opts.keep) rmSync(dir, { recursive: true, force: true });
  };

  try {
    const secretFile = join(dir, 'secret');
    writeFileSync(secretFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    say(`join secret: 32 random bytes in ${secretFile} (mode 0600), given to every node with --secret-file; nodes prove they hold it, it never crosses the network and is no API credential`);
    say(`starting ${count} nodes in ${dir} (API https://127.0.0.1:${apiPort(0)}-${apiPort(count - 1)}, Docker runtime)`);
    ids.forEach((id, i) => {
      const args = ['start', '--id', id, '--data', join(dir, id), '--api', `127.0.0.1:${apiPort(i)}`, '--peer', `127.0.0.1:${peerPort(i)}`, '--runtime', 'docker', '--slots', '2', '--secret-file', secretFile];
      args.push(...(i < 3 ? ['--bootstrap', bootstrap] : ['--join', `https://127.0.0.1:${apiPort(0)}`]));
      procs.set(id, spawn(process.execPath, args, { stdio: 'ignore' }));
    });
    const api = (i: number): string => `https://127.0.0.1:${apiPort(i)}`;

    // n1 writes DATA/ca.pem once the cluster CA exists; the demo keeps its own copy, as
    // an operator would, since n1's folder may be the one destroyed below.
    const nodeCa = join(dir, ids[0] ?? 'n1', 'ca.pem');
    // Until it parses: a missing file or one being written throws, and until() tries again.
    const ca = await until(`${nodeCa} (the cluster CA)`, async () => new X509Certificate(readFileSync(nodeCa, 'utf8')), 30_000);
    const caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, ca.toString());
    say(`TLS: API, peer links and transfers use certificates from the cluster CA sha256:${fingerprintOf(ca.toString())}; plain HTTP gets no answer; try curl --cacert ${caFile} ${api(0)}/readyz`);

    const client = (i: number, token: string | null): ApiClient => new ApiClient({ server: api(i), caFile, token });
    const anonymous = ids.map((_, i) => client(i, null));
    await until('every node ready (over HTTPS, trusting that CA)', async () => {
      const codes = await Promise.all(anonymous.map((c) => c.request('GET', '/readyz', { accept: [503] }).then((r) => r.status)));
      return codes.every((c) => c === 200) ? true : undefined;
    }, 60_000);

    const first = anonymous[0] ?? client(0, null);
    const admin = (await retryUnavailable(() => first.request<NewToken>('POST', '/v1/acl/bootstrap'))).body;
    const asAdmin = client(0, admin.token);
    const newToken = async (role: 'read' | 'submit', name: string): Promise<NewToken> =>
      (await asAdmin.request<NewToken>('POST', '/v1/acl/tokens', { json: { role, name, ttlSeconds: 3600 } })).body;
    const submitToken = await newToken('submit', 'demo-submit');
    const readToken = await newToken('read', 'demo-watch');
    say(`tokens: workrs acl bootstrap gave the first admin token (${admin.id}), once per cluster; with it, workrs tokens create made a submit token (${submitToken.id}) and a read token (${readToken.id}), 1 h each`);
    const submitter = client(0, submitToken.token);
    const refused = await submitter.request<{ error?: { code: string } }>('POST', '/v1/acl/tokens', { json: { role: 'admin' }, accept: [403] });
    if (refused.status !== 403) throw new CliError(`demo: a submit token asking for an admin token got ${refused.status}, not 403`, EXIT.failed);
    say(`the submit token asking for an admin token: ${refused.status} ${refused.body.error?.code ?? ''} (submit may read, submit and cancel jobs, nothing more)`);

    const leader = (await submitter.request<{ leader: string | null }>('GET', '/v1/cluster')).body.leader;
    say(`cluster up: leader ${leader ?? '-'}`);

    const total = 300;
    const script = `echo START; i=0; while [ $i -lt ${total} ]; do i=$((i+1)); echo $i; echo $i >> /work/progress; sleep 0.1; done; test "$(wc -l < /work/progress)" -eq ${total}`;
    const spec = { command: ['sh', '-c', script], estimateSeconds: total / 10, checkpoint: { mode: 'interval', intervalSeconds: 3 } };
    const { id } = (await retryUnavailable(() => submitter.request<{ id: string }>('POST', '/v1/jobs', { json: spec }))).body;
    say(`submitted job ${id} with the submit token: counts to ${total} in memory (${total / 10} s), checkpoint every 3 s`);

    const watcher = client(0, readToken.token);
    const before = await until('two committed checkpoints', async () => {
      const j = (await watcher.request<JobView>('GET', `/v1/jobs/${id}`)).body;
      return j.checkpoints.length >= 2 && j.node ? j : undefined;
    }, 90_000);
    const victim = before.node ?? '';
    const last = before.checkpoints.at(-1);
    const startedAt = before.attempts.at(-1)?.startedAt ?? Date.now();
    const workBeforeKillS = (Date.now() - startedAt) / 1000;
    say(`job running on ${victim}; checkpoint ${last?.seq} committed (${last?.bytes} bytes, ${last?.durationMs} ms, held by ${last?.holders.join(' and ')})`);

    say(`destroying ${victim}'s box: kill -9 workrs, kill its containers, delete its data folder`);
    procs.get(victim)?.kill('SIGKILL');
    for (const info of await docker.listContainers({ all: true, filters: { label: [`workrs.cluster=${clusterId}`, `workrs.node=${victim}`] } })) {
      await docker.getContainer(info.Id).remove({ force: true }).catch(() => undefined);
    }
    rmSync(join(dir, victim), { recursive: true, force: true });
    const killedAt = Date.now();

    // Watched from another node with the read token: the victim may have been n1.
    const otherWatcher = client(ids.findIndex((n) => n !== victim), readToken.token);
    const resumed = await until('the job to resume elsewhere', async () => {
      const j = (await otherWatcher.request<JobView>('GET', `/v1/jobs/${id}`)).body;
      const a = j.attempts.at(-1);
      return a && a.node !== victim && a.startedAt ? { j, a } : undefined;
    }, 60_000);
    const from = resumed.a.fromCheckpoint;
    say(`${resumed.a.node} took over (epoch ${resumed.a.epoch}) ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill, ${from ? `resuming from checkpoint ${from.seq} of epoch ${from.epoch}` : 'from scratch (no checkpoint)'}`);

    const done = await until('the job to finish', async () => {
      const j = (await otherWatcher.request<JobView>('GET', `/v1/jobs/${id}`)).body;
      return j.state === 'succeeded' || j.state === 'failed' ? j : undefined;
    }, 120_000);
    say(`job ${done.state} with exit code ${done.exitCode} after ${done.attempts.length} attempts; its progress file had exactly ${total} lines, or the job would have failed`);
    if (done.state !== 'succeeded') throw new CliError('demo: the job did not succeed', EXIT.failed);
    const log = await readAll(await otherWatcher.stream(`/v1/jobs/${id}/logs`));
    const lines = log.split('\n');
    const starts = lines.filter((l) => l === 'START').length;
    const counts = lines.filter((l) => /^\d+$/.test(l)).map(Number);
    const inOrder = counts.length === total && counts.every((n, i) => n === i + 1);
    const resumedFrom = from ? done.checkpoints.find((c) => c.seq === from.seq && c.epoch === from.epoch) : undefined;
    if (resumedFrom) {
      // The log up to the checkpoint is the work it saved: counts a restart would redo.
      const savedCounts = Buffer.from(log).subarray(0, resumedFrom.logOffset).toString().split('\n').filter((l) => /^\d+$/.test(l)).length;
      say(`work saved: the checkpoint held the count at ${savedCounts} of ${total} (${((100 * savedCounts) / total).toFixed(0)}% of the job, ~${(savedCounts / 10).toFixed(1)} s of its ${workBeforeKillS.toFixed(1)} s run before the kill); a restart from scratch would have redone all of it`);
    }
    say(`its log (workrs logs ${id}): START ${starts} time${starts === 1 ? '' : 's'}, counts 1..${total} ${inOrder ? 'each once, in order' : 'NOT each once'}: the second attempt's output continues the checkpoint's`);
    if (starts !== 1 || !inOrder) throw new CliError('demo: the job log is not what one uninterrupted run would print', EXIT.failed);
    say(`result archive (stdout.log, exit-code): workrs result ${id} -o DIR`);
  } finally {
    await cleanup();
  }
}
