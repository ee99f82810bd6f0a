// The node's Prometheus metrics (GET /metrics): the counters its parts bump, and
// the gauges read from Raft, the state and the transport when scraped.
import type { RaftStatus } from '../../raft/types.js';
import { Registry } from '../api/metrics.js';
import type { ClusterState } from '../state/machine.js';
import { JOB_STATES, type NodeState } from '../state/records.js';
import { COMMIT, VERSION } from '../version.js';

/** What the gauges read at scrape time. */
export interface GaugeSources {
  nodeId: string;
  raft: { status(): RaftStatus; readonly snapshotsInstalled: number; readonly compactions: number };
  state: () => ClusterState;
  /** Per peer, whether its link is up. */
  peerLinks: () => Record<string, { connected: boolean }>;
  /** Standby restores ready on this node (standby-restores.ts); absent without them. */
  standbysReady?: () => number;
}

const NODE_STATES: readonly NodeState[] = ['alive', 'suspect', 'lost', 'left'];

/** Buckets in seconds for things that take milliseconds to a minute (checkpoints, restores, requests). */
const SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Buckets in seconds for a disk sync or an apply: tenths of a millisecond to a second. */
const FAST_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
/** Buckets in bytes for a checkpoint bundle: 1 MB to 8 GB. */
const BYTES = [1e6, 4e6, 16e6, 64e6, 256e6, 1e9, 4e9, 8e9];

export class NodeMetrics {
  readonly registry = new Registry();
  readonly proposals = this.registry.counter('workrs_gateway_requests_total', 'Gateway write requests by outcome', { outcome: ['accepted', 'invalid', 'backlog_full', 'duplicate'] });
  readonly nodeLosses = this.registry.counter('workrs_node_losses_total', 'Nodes this leader declared lost');
  readonly gcDeletedBytes = this.registry.counter('workrs_blob_gc_deleted_bytes_total', 'Bytes of chunks the blob gc deleted (old checkpoints, fenced results, finished inputs)');
  readonly blobRepairs = this.registry.counter('workrs_blob_repairs_total', 'Copies of under-replicated blobs this node pushed to another node after their holders were lost');
  readonly reportsRejected = this.registry.counter('workrs_reports_rejected_total', "This node's worker reports the state machine refused (the epoch fence at work), by report and code", { report: [], code: [] });
  readonly fences = this.registry.counter('workrs_worker_fences_total', 'Attempts this worker froze at a lost lease, and thawed when it came back, by what', { what: ['frozen', 'thawed'] });
  readonly jobsForgotten = this.registry.counter('workrs_jobs_forgotten_total', 'Final jobs this leader forgot after jobRetentionSeconds');
  readonly blobsForgotten = this.registry.counter('workrs_blobs_forgotten_total', 'Blob records this leader forgot once no job needed them');
  readonly leaseAcksWithheld = this.registry.counter('workrs_lease_acks_withheld_total', 'Lease renewals this node, leading, did not grant: its quorum had not answered within an election timeout');
  readonly peerFramesDropped = this.registry.counter('workrs_peer_frames_dropped_total', 'Frames from peers dropped unacted on, by reason (malformed, out_of_range, wrong_sender, misaddressed, stranger)', {
    reason: ['malformed', 'out_of_range', 'wrong_sender', 'misaddressed', 'stranger'],
  });
  readonly standbysPrepared = this.registry.counter('workrs_standby_restores_prepared_total', 'Takeovers this node prepared ahead from a checkpoint it holds (a standby container), by outcome (ready, failed)', { outcome: ['ready', 'failed'] });
  readonly restores = this.registry.counter('workrs_restores_total', 'Attempts this node resumed from a checkpoint, by how (standby: a container prepared ahead; cold)', { how: ['standby', 'cold'] });
  readonly blobsUnderReplicated = this.registry.counter('workrs_blobs_under_replicated_total', 'Blobs this node stored with fewer than k copies because fewer nodes were alive (repair adds the rest)');
  readonly stateDivergences = this.registry.counter('workrs_state_divergences_total', "Leader: members' state checks whose hash differed from the leader's at the same index (docs/upgrading.md)");
  readonly leaderChanges = this.registry.counter('workrs_leader_changes_total', 'Times the leader this node knows changed (to another node or to none)');
  readonly checkpointFrozen = this.registry.histogram('workrs_checkpoint_frozen_seconds', "How long each checkpoint this node took froze its job (the job's C)", SECONDS);
  readonly checkpointDuration = this.registry.histogram('workrs_checkpoint_duration_seconds', 'Each checkpoint this node took, whole: capture and export of the bundle', SECONDS);
  readonly checkpointBytes = this.registry.histogram('workrs_checkpoint_bytes', 'The bundle of each checkpoint this node took', BYTES);
  readonly restoreDuration = this.registry.histogram('workrs_restore_duration_seconds', 'Each restore from a checkpoint on this node, by how (standby, cold)', SECONDS, ['how']);
  readonly raftPersist = this.registry.histogram('workrs_raft_persist_seconds', "Each write of Raft's state and entries to disk (a synced batch: the fsync latency)", FAST_SECONDS);
  readonly raftApply = this.registry.histogram('workrs_raft_apply_seconds', 'Each batch of committed entries applied to the state', FAST_SECONDS);
  readonly httpRequests = this.registry.histogram('workrs_http_request_duration_seconds', 'API requests served by this node, by method, route and status (until the answer or its first bytes for streams)', SECONDS, ['method', 'route', 'status']);

  /** Registers the gauges; once, when the parts they read exist. */
  addGauges(src: GaugeSources): void {
    const m = this.registry;
    const { raft } = src;
    m.gauge('workrs_info', 'Version of this node', () => [{ labels: { version: VERSION, node: src.nodeId }, value: 1 }], ['version', 'node']);
    m.gauge('workrs_build_info', 'The build of this executable: version and commit', () => [{ labels: { version: VERSION, commit: COMMIT }, value: 1 }], ['version', 'commit']);
    m.gauge('workrs_has_leader', '1 while this node knows a leader', () => (raft.status().leader === null ? 0 : 1));
    m.gauge('workrs_raft_term', 'Current Raft term', () => raft.status().term);
    m.gauge('workrs_raft_commit_index', 'Raft commit index', () => raft.status().commit);
    m.gauge('workrs_raft_applied_index', 'Raft applied index', () => raft.status().applied);
    m.gauge('workrs_raft_apply_lag', 'Committed entries not yet applied', () => {
      const st = raft.status();
      return st.commit - st.applied;
    });
    m.gauge('workrs_raft_snapshots_installed', 'Raft snapshots received from the leader and applied since start', () => raft.snapshotsInstalled);
    m.gauge('workrs_raft_compactions', 'Log compactions since start', () => raft.compactions);
    m.gauge('workrs_cluster_version', 'The protocol version the cluster runs at, as this node applied it', () => src.state().clusterVersion);
    m.gauge('workrs_raft_is_leader', '1 on the leader', () => (raft.status().role === 'leader' ? 1 : 0));
    m.gauge('workrs_jobs', 'Jobs by state', () => countBy(JOB_STATES, [...src.state().jobs.values()].map((j) => j.state)), ['state']);
    m.gauge('workrs_nodes', 'Nodes by state', () => countBy(NODE_STATES, [...src.state().nodes.values()].map((n) => n.state)), ['state']);
    const ready = src.standbysReady;
    if (ready) m.gauge('workrs_standby_restores_ready', 'Takeovers prepared on this node now: standby containers made from checkpoints it holds', ready);
    m.gauge('workrs_peer_connected', 'Peer links up', () => Object.entries(src.peerLinks()).map(([peer, s]) => ({ labels: { peer }, value: s.connected ? 1 : 0 })), ['peer']);
  }

  render(): Promise<string> {
    return this.registry.render();
  }
}

/** How many of `states` are each of `known` (0 for those none is in), and any other state met. */
function countBy(known: readonly string[], states: string[]): Array<{ labels: { state: string }; value: number }> {
  const counts = new Map<string, number>(known.map((k) => [k, 0]));
  for (const s of states) counts.set(s, (counts.get(s) ?? 0) + 1);
  return [...counts].map(([state, value]) => ({ labels: { state }, value }));
}
