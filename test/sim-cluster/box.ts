import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import type { InitialState, NodeId, Snapshot } from '../../raft/types.js';
import { ClusterBlobs } from '../../src/blobs/replicated.js';
import { ClusterMember, type MemberOptions } from '../../src/node/member.js';
import type { NodeInfo } from '../../src/state/commands.js';
import { decodeEnvelopeBytes, type Envelope } from '../../src/state/commands.js';
import type { ApplyResult } from '../../src/state/result.js';
import type { RaftStorage, ReadyWrite } from '../../src/storage/raft-storage.js';
import { MemoryRaftStorage } from '../../src/storage/memory-storage.js';
import type { ManualClock } from '../../src/util/manual-clock.js';
import { FakeRuntime, type FakeRunEvent } from '../../src/worker/fake-runtime.js';
import type { RunKey } from '../../src/worker/runtime.js';
import type { Random } from '../sim/random.js';
import type { SimNetwork } from './net.js';
import { NodeClock } from './node-clock.js';
import { type BlobFabric, type BlobWorld, SimBlobDisk, SimBlobTransfer, type TransferTiming } from './sim-blobs.js';

const silent = pino({ level: 'silent' });

/** SIM_CLUSTER_LOG=warn|info|debug: the members' logs go into the trace (debugging a replay). */
function memberLogger(node: NodeId, note: ((line: string) => void) | undefined): pino.Logger {
  const level = process.env.SIM_CLUSTER_LOG;
  if (!level || !note) return silent;
  return pino({ level, timestamp: false, base: { node } }, { write: (line: string) => note(`log ${line.trim()}`) });
}

/** What a box reports to the run: applies (the checker's view of the log), run events, deaths. */
export interface BoxObserver {
  applied(node: NodeId, index: number, data: Uint8Array, env: Envelope | null, result: ApplyResult): void;
  runEvent(node: NodeId, e: FakeRunEvent): void;
  down(node: NodeId): void;
  fatal(node: NodeId, err: Error): void;
}

export interface BoxShared {
  clock: ManualClock;
  net: SimNetwork;
  blobs: BlobWorld;
  fabric: BlobFabric;
  transferTiming: TransferTiming;
  observer: BoxObserver;
  /** Scratch folders of this run (checkpoint bundles, staging). */
  workRoot: string;
  options: MemberOptions;
  /** Adds a line to the run's trace. */
  note?: (line: string) => void;
  /** Each box's Raft storage becomes durable this long after a write (undefined: at once). */
  syncDelayMs: number | undefined;
}

/**
 * The fake runtime of one incarnation. Its result archives are staged in memory (a
 * real one writes a tar file, which would wait on the disk), and once its process
 * died it reports nothing more: its runs died with the box.
 */
class SimRuntime extends FakeRuntime {
  constructor(
    clock: NodeClock,
    onEvent: (e: FakeRunEvent) => void,
    checkpointDir: string,
    private readonly world: BlobWorld,
    private readonly node: NodeId,
  ) {
    super({ clock, onEvent, checkpointDir });
  }

  override async exportResult(key: RunKey, exitCode: number, _outputs: readonly string[], tarPath: string): Promise<{ missing: string[]; failure: string | null }> {
    this.world.stageResult(tarPath, JSON.stringify({ jobId: key.jobId, epoch: key.epoch, exitCode, node: this.node }));
    return { missing: [], failure: null };
  }
}

interface Incarnation {
  n: number;
  clock: NodeClock;
  member: ClusterMember;
  alive: boolean;
}

/**
 * One simulated machine: a disk that survives crashes (its Raft storage and its blob
 * disk) and, while it is up, one process incarnation running a ClusterMember with the
 * fake runtime. A crash kills the incarnation at once: its clock stops, its unsynced
 * Raft writes are lost, its containers die, its connections are reset; whatever its
 * code was awaiting never resumes. A restart builds a new incarnation from the disk.
 */
export class Box {
  readonly storage: MemoryRaftStorage;
  readonly disk: SimBlobDisk;
  private current: Incarnation | null = null;
  private incarnations = 0;
  /** Started at least once (a joiner is not, until it joins). */
  started = false;
  crashes = 0;

  constructor(
    readonly id: NodeId,
    readonly info: NodeInfo,
    initial: InitialState | null,
    private readonly shared: BoxShared,
    private readonly random: Random,
    private readonly wallOffsetMs: number,
  ) {
    this.storage = new MemoryRaftStorage(initial ?? undefined, shared.syncDelayMs === undefined ? {} : { syncDelayMs: shared.syncDelayMs, clock: shared.clock });
    this.disk = new SimBlobDisk(shared.blobs, () => shared.clock.monotonic());
  }

  get up(): boolean {
    return this.current !== null;
  }

  get member(): ClusterMember | null {
    return this.current?.member ?? null;
  }

  /** The network's view: 0 while down. */
  incarnation(): number {
    return this.current?.n ?? 0;
  }

  receive(from: NodeId, frame: unknown): void {
    this.current?.member.receive(from, frame);
  }

  boot(): void {
    if (this.current !== null) return;
    this.started = true;
    const n = ++this.incarnations;
    const { shared, id } = this;
    const clock = new NodeClock(shared.clock, this.wallOffsetMs, this.random.int(0, 1_000_000));
    const workDir = join(shared.workRoot, id, `i${n}`);
    mkdirSync(join(workDir, 'checkpoints'), { recursive: true });
    const inc: Incarnation = { n, clock, member: null as unknown as ClusterMember, alive: true };
    const runtime = new SimRuntime(clock, (e) => inc.alive && shared.observer.runEvent(id, e), join(workDir, 'checkpoints'), shared.blobs, id);
    const rng = this.random.fork();
    const member = new ClusterMember({
      id,
      clock,
      logger: memberLogger(id, shared.note),
      random: () => rng.next(),
      storage: this.storageOf(inc),
      initial: this.storage.initialState(),
      link: { send: (to, frame) => inc.alive && shared.net.send(id, n, to, frame) },
      runtime,
      checkpoints: runtime,
      blobs: (cluster) =>
        new ClusterBlobs({
          cluster,
          store: this.disk,
          transfer: new SimBlobTransfer(id, clock, shared.fabric, rng.fork(), shared.transferTiming),
          replicas: 2,
          gcMinAgeMs: shared.options.blobGcMinAgeMs,
          clock,
          logger: silent,
        }),
      self: this.info,
      options: { ...shared.options, workDir },
      onFatal: (err: Error) => {
        if (inc.alive) shared.observer.fatal(id, err);
      },
    });
    inc.member = member;
    // The checker's view of the log: every entry this member applies, with its result.
    const apply = member.apply.bind(member);
    member.apply = (index: number, data: Uint8Array, ...rest: unknown[]): unknown => {
      const result = (apply as (...a: unknown[]) => unknown)(index, data, ...rest) as ApplyResult;
      if (inc.alive) {
        let env: Envelope | null = null;
        try {
          env = decodeEnvelopeBytes(data);
        } catch {
          env = null;
        }
        // A state check's hash goes with its result: the checker's same-result rule then
        // holds every member's whole state at that index equal (docs/upgrading.md).
        const check = env?.cmd.type === 'checkState' ? member.state.stateChecks.at(-1) : undefined;
        const seen: ApplyResult = check?.index === index && result.ok ? { ok: true, value: { ...result.value, stateHash: check.hash } } : result;
        shared.observer.applied(id, index, data, env, seen);
      }
      return result;
    };
    this.current = inc;
    member.start();
  }

  crash(): void {
    const inc = this.current;
    if (inc === null) return;
    inc.alive = false;
    inc.clock.kill();
    this.storage.crash();
    this.current = null;
    this.crashes += 1;
    this.shared.observer.down(this.id);
  }

  /** Raft storage for one incarnation: once it died, its writes go nowhere and never complete. */
  private storageOf(inc: Incarnation): RaftStorage {
    const never = new Promise<void>(() => undefined);
    const storage = this.storage;
    return {
      load: () => storage.load(),
      save: (rd: ReadyWrite) => (inc.alive ? storage.save(rd) : never),
      saveSnapshot: (s: Snapshot) => (inc.alive ? storage.saveSnapshot(s) : never),
      close: () => Promise.resolve(),
    };
  }
}
