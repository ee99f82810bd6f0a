// What the gateway's routes do on one node (GatewayBackend): submissions with their
// uploaded inputs, jobs, results and logs (proxied to the node running the job),
// images, the cluster view, joins and removals (forwarded to the leader), tokens.
// Reads wait for a linearizable barrier unless the caller accepts a stale answer.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import type { NodeId } from '../../raft/types.js';
import { ImageError } from '../images/errors.js';
import type { ClusterImages, ImportResult } from '../images/cluster-images.js';
import type { ImageView } from '../images/references.js';
import { NoLeaderError, refusalStatus } from '../node/errors.js';
import { handOffLeadership } from '../node/lifecycle.js';
import type { ClusterMember } from '../node/member.js';
import { validateCommand } from '../node/proposer.js';
import { addressProblem, joinVersionRefusal } from '../node/registration.js';
import { validateJobSpec, type NodeInfo } from '../state/commands.js';
import { compareIds, JOB_REF_MAX_CANDIDATES, JOB_REF_MIN_PREFIX } from '../state/machine.js';
import type { ApplyResult } from '../state/result.js';
import { resourcesAboveMaximum, type ResourceMaxima, wireSpec } from '../state/spec.js';
import type { StateCheck } from '../state/machine.js';
import type { NodeView } from '../state/views.js';
import type { BuildInfo } from '../version.js';
import { parseBuild } from '../node/frames.js';
import type { Clock } from '../util/clock.js';
import { extractTar } from '../util/tar-extract.js';
import type { ContainerRuntime } from '../worker/runtime.js';
import { RESULT_LOG } from '../worker/result-archive.js';
import { TooManyPendingError } from './backlog.js';
import { HttpError } from './http.js';
import { buildJobPage, type JobListQuery, type JobPage } from './job-list.js';
import type { LogOptions } from './log-since.js';
import { BUILD_HEADER, callNodeJson, LEADER_VIEW_HEADER, proxyLogs } from './peer-client.js';
import { newToken, type Principal } from './roles.js';
import type { GatewayBackend, TokenView } from './server.js';
import { parseTokenRequest, type TokenRequest } from './tokens.js';

/** How long a followed log of a pending job waits between looks at its state. */
const FOLLOW_POLL_MS = 250;
/** How long a follower waits for its leader's view of the nodes (GET /v1/cluster) before showing them without it. */
/** A node in GET /v1/cluster: its record, and what the leader heard from it. */
type ClusterNodeView = Omit<NodeView, 'state' | 'role'> & {
  state: NodeView['state'] | 'unregistered';
  role: 'voter' | 'learner';
  /** The build it announced to the leader in this term; null: none (not heard yet, or a build from before versions). */
  build: BuildInfo | null;
  /** Its newest state check as it reported it to the leader. */
  stateCheck: StateCheck | null;
};

type LeaderHeard = Pick<ClusterNodeView, 'lastSeenMs' | 'build' | 'stateCheck'>;

interface LeaderView {
  nodes: Map<string, LeaderHeard>;
  divergence: Array<{ node: string; index: number; at: number }>;
}

const LEADER_VIEW_TIMEOUT_MS = 1000;
/** A new leader registers its API address within a lease period: a forward waits this long for it. */
const LEADER_ADDRESS_WAIT_MS = 3000;
const LEADER_ADDRESS_POLL_MS = 100;

function rejectionToHttp(r: Extract<ApplyResult, { ok: false }>): HttpError {
  return new HttpError(refusalStatus(r.code), r.code, r.message);
}

export interface NodeBackendOptions {
  member: ClusterMember;
  images: ClusterImages;
  /** For the logs of jobs running here. */
  runtime: Pick<ContainerRuntime, 'logs'>;
  clock: Clock;
  /** Staging folder (result logs are unpacked there). */
  stagingDir: string;
  maxPendingJobs: number;
  jobMaxima: ResourceMaxima;
  /** This cluster's id (cluster-id.ts), given to a joining node. */
  clusterId: () => string;
  /** Bootstrap voters' peer addresses, given to a joining node with the node table. */
  bootstrapPeers: ReadonlyMap<NodeId, string>;
  /** Secure mode: how this node's calls reach node `expect` (any node when null); undefined in dev mode. */
  peerTls: (expect: string | null) => ConnectionOptions | undefined;
}

export class NodeBackend implements GatewayBackend {
  private readonly opts: NodeBackendOptions;
  private readonly member: ClusterMember;

  constructor(opts: NodeBackendOptions) {
    this.opts = opts;
    this.member = opts.member;
  }

  private get state(): ClusterMember['state'] {
    return this.member.state;
  }

  private get raft(): ClusterMember['raft'] {
    return this.member.raft;
  }

  private async barrier(stale: boolean): Promise<void> {
    if (!stale) await this.raft.readBarrier();
  }

  /**
   * The id of the job `ref` names (ClusterState.resolveJobRef: an id, a name, or a
   * unique id prefix), on this node's applied state: the caller passed a barrier
   * first for a linearizable answer. 404 JOB_NOT_FOUND; 409 AMBIGUOUS for a prefix of
   * several ids, naming them.
   */
  private jobId(ref: string): string {
    const found = this.state.resolveJobRef(ref);
    if (found === null) throw new HttpError(404, 'JOB_NOT_FOUND', `no job ${ref} (a job is named by its id, its name, or a prefix of its id of ${JOB_REF_MIN_PREFIX} characters or more)`);
    if ('candidates' in found) {
      const shown = found.candidates.length >= JOB_REF_MAX_CANDIDATES ? `${found.candidates.join(', ')}, …` : found.candidates.join(', ');
      throw new HttpError(409, 'AMBIGUOUS', `${ref} is the start of several job ids: ${shown}; give more of the id`, { candidates: found.candidates });
    }
    return found.id;
  }

  async submitJob(input: unknown, idempotencyKey: string | null, files: Map<string, string> = new Map()): Promise<{ id: string; state: string }> {
    const outcome = this.member.metrics.proposals;
    const checked = validateJobSpec(input);
    if (!checked.ok) {
      outcome.inc({ outcome: 'invalid' });
      throw new HttpError(400, 'INVALID_SPEC', checked.errors.map((e) => `${e.field}: ${e.message}`).join('; '), checked.errors);
    }
    // A node setting, so checked here before proposing, never in apply.
    const above = resourcesAboveMaximum(checked.spec, this.opts.jobMaxima);
    if (above.length > 0) {
      outcome.inc({ outcome: 'invalid' });
      throw new HttpError(400, 'RESOURCES_ABOVE_MAXIMUM', above.map((e) => `${e.field}: ${e.message}`).join('; '), above);
    }
    const declared = [...checked.spec.files].sort();
    const uploaded = [...files.keys()].sort();
    if (JSON.stringify(declared) !== JSON.stringify(uploaded)) {
      throw new HttpError(400, 'FILES_MISMATCH', `spec.files names [${declared.join(', ')}] but the upload carries [${uploaded.join(', ')}]`);
    }
    const id = idempotencyKey ? `j-${createHash('sha256').update(idempotencyKey).digest('hex').slice(0, 24)}` : `j-${randomUUID()}`;
    // The backlog cap, checked on this node's applied state before the inputs are
    // stored and anything is proposed; the state machine decides it again in log order
    // (maxPending in the command), so submissions racing through several nodes cannot
    // pass it. A retry of a job that exists already goes on to be answered as such.
    const cap = this.opts.maxPendingJobs;
    const pending = this.state.pendingCount();
    if (!this.state.jobs.has(id) && pending >= cap) {
      outcome.inc({ outcome: 'backlog_full' });
      throw new TooManyPendingError(`${pending} jobs are pending, the most this cluster accepts (maxPendingJobs ${cap})`);
    }
    const inputs = await this.storeInputs(files);
    const job = { id, spec: wireSpec(checked.spec), createdAt: this.opts.clock.now(), ...(files.size > 0 ? { inputs } : {}) };
    const r = await this.member.proposer.send({ type: 'submitJob', job, maxPending: cap });
    if (!r.ok) {
      if (r.code === 'TOO_MANY_PENDING') {
        outcome.inc({ outcome: 'backlog_full' });
        throw new TooManyPendingError(r.message);
      }
      if (r.code === 'JOB_EXISTS') {
        const existing = this.state.jobView(id);
        if (existing && JSON.stringify(existing.spec) !== JSON.stringify(checked.spec) && idempotencyKey) {
          throw new HttpError(409, 'IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used for a different job spec');
        }
        outcome.inc({ outcome: 'duplicate' });
        return { id, state: existing?.state ?? 'pending' };
      }
      throw rejectionToHttp(r);
    }
    outcome.inc({ outcome: 'accepted' });
    return { id, state: 'pending' };
  }

  /**
   * Stores uploaded files as blobs on k nodes before the job is acknowledged: an
   * acknowledged job must not depend on one box's disk.
   */
  private async storeInputs(files: Map<string, string>): Promise<Record<string, string>> {
    const inputs: Record<string, string> = {};
    for (const [name, path] of files) {
      const { blob, registered } = await this.member.blobs.putFile(path, 'input');
      if (!registered.ok) throw rejectionToHttp(registered);
      inputs[name] = blob.id;
    }
    return inputs;
  }

  async jobResult(ref: string): Promise<{ stream: Readable; bytes: number }> {
    await this.barrier(false);
    const id = this.jobId(ref);
    const job = this.state.jobs.get(id);
    if (!job) throw new HttpError(404, 'JOB_NOT_FOUND', `no job ${id}`);
    if (job.state === 'pending' || job.state === 'running') throw new HttpError(409, 'JOB_NOT_FINISHED', `job ${id} is ${job.state}: its result exists once it ends`);
    if (job.resultBlob === null) throw new HttpError(404, 'NO_RESULT', `job ${id} ended (${job.state}) without a result`);
    await this.member.blobs.ensure(job.resultBlob);
    const bytes = this.state.blobs.get(job.resultBlob)?.bytes ?? 0;
    return { stream: await this.member.blobs.readStream(job.resultBlob), bytes };
  }

  /**
   * The job's output. A finished job's comes from its result archive; a running job's
   * from the node running it (this one, or proxied once: `local` stops a second hop);
   * a pending job has none yet, and with `follow` the answer waits until it runs.
   */
  async jobLogs(ref: string, opts: LogOptions): Promise<Readable> {
    await this.barrier(false);
    const id = this.jobId(ref);
    for (;;) {
      const job = this.state.jobs.get(id);
      if (!job) throw new HttpError(404, 'JOB_NOT_FOUND', `no job ${id}`);
      // Output with no time per line (a result's log, what an attempt inherited from a
      // checkpoint) is shown, whole, only when `since` is at or before the job's first
      // start: then all of it is newer. Otherwise it is left out (docs/api.md).
      const untimedShown = opts.sinceMs === null || (job.startedAt !== null && opts.sinceMs <= job.startedAt);
      if (job.state !== 'pending' && job.state !== 'running') {
        if (job.resultBlob === null || !untimedShown) return Readable.from([]);
        return this.resultLog(job.resultBlob);
      }
      if (job.state === 'running' && job.node !== null) {
        if (job.node === this.member.id) {
          const since = opts.sinceMs === null ? {} : { sinceMs: opts.sinceMs, withInherited: untimedShown };
          try {
            return await this.opts.runtime.logs({ jobId: id, epoch: job.epoch }, { follow: opts.follow, ...since });
          } catch (err) {
            if (!opts.follow) throw new HttpError(503, 'LOGS_UNAVAILABLE', `job ${id} is not running here yet: ${err instanceof Error ? err.message : String(err)}`);
          }
        } else if (!opts.local) {
          const api = this.state.nodes.get(job.node)?.api;
          if (!api) throw new HttpError(503, 'LOGS_UNAVAILABLE', `job ${id} runs on ${job.node}, whose address is unknown`);
          return proxyLogs(id, job.node, api, { follow: opts.follow, sinceMs: opts.sinceMs }, this.opts.peerTls(job.node));
        } else {
          throw new HttpError(409, 'NOT_HERE', `job ${id} runs on ${job.node}, not on ${this.member.id}`);
        }
      }
      if (!opts.follow || opts.signal?.aborted) return Readable.from([]);
      await this.opts.clock.sleep(FOLLOW_POLL_MS);
    }
  }

  private async resultLog(blobId: string): Promise<Readable> {
    await this.member.blobs.ensure(blobId);
    const dir = await mkdtemp(join(this.opts.stagingDir, 'log-'));
    try {
      await extractTar(await this.member.blobs.readStream(blobId), dir, { rename: (name) => (name === RESULT_LOG ? name : null) });
      const out = createReadStream(join(dir, RESULT_LOG));
      out.on('close', () => void rm(dir, { recursive: true, force: true }));
      return out;
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  async importImage(tarPath: string, opts: { replace: boolean }): Promise<ImportResult> {
    try {
      return await this.opts.images.importTar(tarPath, opts);
    } catch (err) {
      // The client's mistake: answered with the image's own status and code, not logged as a failure.
      if (err instanceof ImageError) throw new HttpError(err.httpStatus, err.code, err.message);
      throw err;
    }
  }

  async listImages(stale: boolean): Promise<ImageView[]> {
    await this.barrier(stale);
    return this.opts.images.list();
  }

  async getJob(ref: string, stale: boolean): Promise<unknown> {
    await this.barrier(stale);
    const id = this.jobId(ref);
    const job = this.state.jobView(id);
    if (!job) throw new HttpError(404, 'JOB_NOT_FOUND', `no job ${id}`);
    return job;
  }

  async listJobs(query: JobListQuery, stale: boolean): Promise<JobPage> {
    await this.barrier(stale);
    return buildJobPage(this.state.jobsNewestFirst(query.after), query, (job) => this.state.jobSummary(job, query.withSpec));
  }

  async cancelJob(ref: string): Promise<{ id: string; state: string }> {
    // A full id needs no look-up (cancelJob answers JOB_NOT_FOUND itself); a name or a
    // prefix is resolved on a linearizable read first.
    let id = ref;
    if (!this.state.jobs.has(ref)) {
      await this.barrier(false);
      id = this.jobId(ref);
    }
    const r = await this.member.proposer.send({ type: 'cancelJob', jobId: id });
    if (!r.ok) throw rejectionToHttp(r);
    return { id, state: 'cancelled' };
  }

  async cluster(stale: boolean, askLeader = true): Promise<unknown> {
    await this.barrier(stale);
    const st = this.raft.status();
    const voters = new Set(st.conf.voters);
    const leading = st.role === 'leader';
    const leases = leading ? this.member.leases.lastSeen : undefined;
    // Only the leader knows when each node last renewed its lease, and what build and
    // state check it announced with it; a follower's records hold when a node last
    // registered or came back, which reads as a stale "last seen". A follower asks.
    const fromLeader = leading || !askLeader ? null : await this.leaderView(st.leader);
    const versions = this.member.versions;
    const now = this.opts.clock.now();
    const reported = (id: string): Pick<ClusterNodeView, 'build' | 'stateCheck'> =>
      leading ? { build: versions.buildOf(id) ?? null, stateCheck: versions.checkOf(id) } : (fromLeader?.nodes.get(id) ?? { build: null, stateCheck: null });
    const nodes: ClusterNodeView[] = this.state.nodesView(leases).map((n) => ({
      ...n,
      role: voters.has(n.id) ? 'voter' : 'learner',
      voter: voters.has(n.id),
      lastSeenMs: leading ? (n.lastSeenMs === null ? null : Math.max(0, now - n.lastSeenMs)) : (fromLeader?.nodes.get(n.id)?.lastSeenMs ?? null),
      ...reported(n.id),
    }));
    // Raft members that never registered (e.g. a bootstrap voter that has not started
    // yet, or died first): listed so that a missing voter is visible, state 'unregistered'.
    const members = [...st.conf.voters, ...st.conf.learners].filter((id) => !this.state.nodes.has(id)).sort(compareIds);
    for (const id of members) {
      const voter = voters.has(id);
      nodes.push({ id, api: '', peer: '', role: voter ? 'voter' : 'learner', voter, state: 'unregistered', lastSeenMs: null, slots: 0, running: 0, draining: false, ...reported(id) });
    }
    const divergence = leading ? versions.divergences.map(({ node, index, at }) => ({ node, index, at })) : (fromLeader?.divergence ?? []);
    return {
      leader: st.leader,
      term: st.term,
      commitIndex: st.commit,
      clusterVersion: this.state.clusterVersion,
      build: this.member.build,
      stateCheck: this.state.stateChecks.at(-1) ?? null,
      divergence,
      nodes,
    };
  }

  /**
   * The leader's view of the members (its GET /v1/cluster): per node how long ago it
   * last renewed, its build and newest state check, and the divergences found; null
   * when the leader does not answer within a second.
   */
  private async leaderView(leader: string | null): Promise<LeaderView | null> {
    const api = leader === null ? undefined : this.state.nodes.get(leader)?.api;
    if (!api) return null;
    const tls = this.opts.peerTls(leader);
    try {
      const res = await callNodeJson(api, '/v1/cluster?stale=1', { timeoutMs: LEADER_VIEW_TIMEOUT_MS, headers: { [LEADER_VIEW_HEADER]: '1' }, ...(tls ? { tls } : {}) });
      const body = res.body as { nodes?: unknown; divergence?: unknown } | null;
      if (res.status !== 200 || !Array.isArray(body?.nodes)) return null;
      const nodes = new Map<string, LeaderHeard>();
      for (const n of body.nodes as Array<Record<string, unknown>>) {
        if (typeof n.id !== 'string') continue;
        nodes.set(n.id, {
          lastSeenMs: typeof n.lastSeenMs === 'number' ? n.lastSeenMs : null,
          build: (n.build ?? null) as ClusterNodeView['build'],
          stateCheck: (n.stateCheck ?? null) as ClusterNodeView['stateCheck'],
        });
      }
      return { nodes, divergence: Array.isArray(body.divergence) ? (body.divergence as LeaderView['divergence']) : [] };
    } catch {
      return null;
    }
  }

  async joinNode(body: unknown, who: Principal, buildHeader?: string | string[]): Promise<unknown> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'BAD_REQUEST', 'expected a JSON object describing the node');
    const announced = joiningBuild(buildHeader);
    const info = { ...(body as Record<string, unknown>) };
    delete info.role; // a joining node is a learner; the leader decides promotions
    // The certificate a record names is revoked when the node leaves: only the node
    // itself may name it (the one it joins with), never an operator's request.
    if (who.kind === 'token') delete info.cert;
    if (who.kind === 'node' && who.id === info.id && info.cert !== undefined && info.cert !== who.serial) {
      throw new HttpError(400, 'CERT_MISMATCH', `node ${who.id} joins with certificate ${who.serial ?? '?'} but names ${String(info.cert)}`);
    }
    const node = info as unknown as NodeInfo;
    validateCommand({ type: 'nodeJoined', node });
    const badAddress = addressProblem(node);
    if (badAddress !== null) throw new HttpError(400, 'INVALID_ADDRESS', badAddress);
    // The build to check against the cluster's version (docs/upgrading.md): the one the
    // header announces; none when a node joins itself without one (a build from before
    // versions); not checked here for an operator's registration or a join a follower
    // forwarded without a header (the follower checked it): the lease refusal still
    // applies when that node renews.
    const build = announced ?? (who.kind === 'node' && who.id === node.id ? null : undefined);
    if (this.raft.status().role !== 'leader') {
      if (build === null) {
        const tooOld = joinVersionRefusal(node.id, null, this.state.clusterVersion);
        if (tooOld !== null) throw new HttpError(409, 'PROTOCOL_TOO_OLD', tooOld);
      }
      return this.forwardToLeader('POST', '/v1/cluster/nodes', info, announced === null ? {} : { [BUILD_HEADER]: JSON.stringify(announced) });
    }
    const refused = await this.member.admitNode(node, build);
    if (refused !== null) throw new HttpError(refused.status, refused.code, refused.message);
    const peers: Record<string, string> = {};
    for (const n of this.state.nodes.values()) if (n.state !== 'left') peers[n.id] = n.peer;
    for (const [id, addr] of this.opts.bootstrapPeers) peers[id] ??= addr;
    return { id: node.id, role: 'learner', peers, clusterId: this.opts.clusterId() };
  }

  async removeNode(id: string): Promise<unknown> {
    await this.raft.readBarrier();
    if (!this.state.nodes.has(id)) throw new HttpError(404, 'NODE_UNKNOWN', `no node ${id}`);
    if (this.raft.status().role !== 'leader') return this.forwardToLeader('DELETE', `/v1/cluster/nodes/${encodeURIComponent(id)}`, undefined);
    if (id === this.member.id) {
      // The leader removing itself would step down once the change commits, before its
      // nodeLeft could: it hands the leadership to another voter, which removes it.
      await handOffLeadership(this.raft, id, this.opts.clock);
      if (this.raft.status().role === 'leader') throw new HttpError(503, 'NO_LEADER', 'the leader could not hand off its leadership before removing itself; retry shortly');
      return this.forwardToLeader('DELETE', `/v1/cluster/nodes/${encodeURIComponent(id)}`, undefined);
    }
    const st = this.raft.status();
    if (st.conf.voters.includes(id) || st.conf.learners.includes(id)) await this.member.changeMembership({ type: 'removeNode', node: id });
    const r = await this.member.proposer.send({ type: 'nodeLeft', node: id });
    if (!r.ok) throw rejectionToHttp(r);
    return { id, state: 'left' };
  }

  /**
   * Drains `id` (no new jobs; its worker moves its jobs off, each from a last
   * checkpoint) or undoes it: setDraining, proposed from any node. Answers the node's
   * draining flag and the jobs still running there.
   */
  async drainNode(id: string, draining: boolean): Promise<{ id: string; draining: boolean; running: number }> {
    const r = await this.member.proposer.send({ type: 'setDraining', node: id, draining });
    if (!r.ok) throw rejectionToHttp(r);
    return { id, draining, running: this.state.runningOn(id).length };
  }

  private async forwardToLeader(method: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<unknown> {
    const { clock } = this.opts;
    const deadline = clock.monotonic() + LEADER_ADDRESS_WAIT_MS;
    let api: string | undefined;
    for (;;) {
      const leader = this.raft.status().leader;
      api = leader ? this.state.nodes.get(leader)?.api : undefined;
      if (api || clock.monotonic() > deadline) break;
      await clock.sleep(LEADER_ADDRESS_POLL_MS);
    }
    if (!api) throw new NoLeaderError();
    const tls = this.opts.peerTls(this.raft.status().leader);
    const res = await callNodeJson(api, path, { method, headers, timeoutMs: 20_000, ...(body === undefined ? {} : { body: JSON.stringify(body) }), ...(tls ? { tls } : {}) });
    const answer = (res.body ?? {}) as { error?: { code: string; message: string } };
    if (res.status < 200 || res.status >= 300) throw new HttpError(res.status, answer.error?.code ?? 'LEADER_ERROR', answer.error?.message ?? `the leader answered ${res.status}`);
    return answer;
  }

  // ---------------------------------------------------------------- API tokens

  async aclBootstrap(): Promise<TokenView> {
    return this.proposeToken('aclBootstrap', { role: 'admin', name: 'bootstrap', ttlSeconds: null });
  }

  async createToken(body: unknown): Promise<TokenView> {
    return this.proposeToken('tokenCreated', parseTokenRequest(body));
  }

  private async proposeToken(type: 'aclBootstrap' | 'tokenCreated', t: TokenRequest): Promise<TokenView> {
    const { id, token, hash } = newToken();
    const createdAt = this.opts.clock.now();
    const expiresAt = t.ttlSeconds === null ? null : createdAt + t.ttlSeconds * 1000;
    const r = await this.member.proposer.send({ type, token: { id, name: t.name, role: t.role, hash, createdAt, expiresAt } });
    if (!r.ok) throw rejectionToHttp(r);
    return { id, token, name: t.name, role: t.role, createdAt, expiresAt };
  }

  async listTokens(): Promise<TokenView[]> {
    await this.raft.readBarrier();
    return [...this.state.tokens.values()].map(({ id, name, role, createdAt, expiresAt }) => ({ id, name, role, createdAt, expiresAt }));
  }

  async revokeToken(id: string): Promise<unknown> {
    if (!/^[0-9a-f]{16}$/.test(id)) throw new HttpError(404, 'TOKEN_UNKNOWN', `no token ${id}`);
    const r = await this.member.proposer.send({ type: 'tokenRevoked', id });
    if (!r.ok) throw rejectionToHttp(r);
    return { id, revoked: true };
  }

  ready(): { ready: boolean; reason: string } {
    const st = this.raft.status();
    if (st.leader === null) return { ready: false, reason: 'no leader known' };
    if (st.applied < st.commit) return { ready: false, reason: `applying the log (${st.applied}/${st.commit})` };
    if (!this.member.registered) return { ready: false, reason: 'not yet registered with the cluster' };
    return { ready: true, reason: `leader ${st.leader}, applied ${st.applied}` };
  }

  metrics(): Promise<string> {
    return this.member.metrics.render();
  }
}

/** The build a joining node announced in BUILD_HEADER; null when none (a build from before versions). */
function joiningBuild(header: string | string[] | undefined): BuildInfo | null {
  if (header === undefined) return null;
  let value: unknown;
  try {
    value = JSON.parse(Array.isArray(header) ? (header[0] ?? '') : header);
  } catch {
    throw new HttpError(400, 'BAD_REQUEST', `the ${BUILD_HEADER} header is not JSON`);
  }
  const build = parseBuild(value);
  if (build === null) throw new HttpError(400, 'BAD_REQUEST', `the ${BUILD_HEADER} header is not a build ({version, commit, protocol: {min, max}})`);
  return build;
}
