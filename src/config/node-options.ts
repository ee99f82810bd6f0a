// The options of `workrs start`, from (highest first) flags, environment (WORKRS_*),
// a JSON config file (--config), and the defaults (DEFAULTS below). Parsed once, at
// the boundary, into a typed, validated NodeOptions.
import { readFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { WorkrsError } from '../errors.js';
import { COMMAND_LIMITS } from '../state/command-types.js';
import type { JobLimits } from '../worker/job-limits.js';
import { fingerprintOf, normalizeFingerprint } from '../tls/pki.js';
import { readSecretFile } from '../tls/secret.js';

export interface HostPort {
  host: string;
  port: number;
}

export interface NodeOptions {
  id: string;
  dataDir: string;
  api: HostPort;
  peer: HostPort;
  /** Initial voters and their peer addresses; empty when joining. */
  bootstrap: Map<string, HostPort>;
  /** API URL of a running node to join through, or null. */
  join: string | null;
  docker: string;
  runtime: 'docker' | 'fake';
  /** The join secret (secure mode: TLS, node certificates, API tokens); null = dev mode, loopback only. */
  secret: Buffer | null;
  /** The join secret before a rotation, accepted alongside it (--previous-secret-file). */
  previousSecret: Buffer | null;
  /** The cluster CA this node expects when it enrolls (--ca-fingerprint, or the fingerprint of --ca-file). */
  pinnedCaFingerprint: string | null;
  /** More names for this node's certificate (--tls-san): host names or addresses clients use. */
  tlsSans: string[];
  /** Warnings about the options to show at start (a deprecated flag). */
  warnings: string[];
  slots: number;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  /** Every node renews its lease with the leader this often. */
  leaseRenewMs: number;
  /** The leader marks a node lost after this long without a renewal. */
  nodeTimeoutMs: number;
  /** A worker that could not renew for this long stops its containers (shorter than nodeTimeoutMs). */
  leaseTimeoutMs: number;
  compactEveryEntries: number;
  /** How often the blob store deletes what the cluster no longer needs (old checkpoints…). */
  blobGcIntervalMs: number;
  /** Blobs stored or fetched within this long are kept regardless (a checkpoint not yet committed). */
  blobGcMinAgeMs: number;
  /** Final jobs are forgotten (job, attempts, checkpoints, then their blobs) this long after they finished; 0 keeps them for good. */
  jobRetentionSeconds: number;
  voters: 3 | 5;
  logLevel: string;
  /** POST /v1/images refuses a larger tar with 413. */
  maxImageBytes: number;
  /** What one job may consume on this node (--job-memory-mb … --max-result-mb; src/worker/job-limits.ts). */
  jobLimits: JobLimits;
  /** POST /v1/jobs through this node refuses a job with 429 while this many jobs are pending (src/api/backlog.ts). */
  maxPendingJobs: number;
  /** Docker: most takeovers this node prepares ahead (src/node/standby-restores.ts); 0 turns them off. */
  standbyRestores: number;
  /** The online checkpoint policy's prior mean time between failures of a box (src/policy/estimators.ts). */
  mtbfPriorSeconds: number;
  /** How many observed losses that prior is worth. */
  mtbfPriorWeight: number;
  /** The restart cost R assumed before any restore was measured. */
  restartPriorSeconds: number;
}

export class ConfigError extends WorkrsError {
  constructor(message: string) {
    super('BAD_CONFIG', 400, message);
    this.name = 'ConfigError';
  }
}

const ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;

/** A node id as --id and --bootstrap accept it; peer frames naming another are malformed. */
export function isNodeId(value: unknown): value is string {
  return typeof value === 'string' && ID.test(value);
}
/** Dev mode's addresses: the loopback network (127.0.0.0/8, so each node of one machine may have its own), ::1, localhost. */
function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function parseHostPort(value: string, what: string): HostPort {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})$/.exec(value.trim());
  const port = Number(m?.[2]);
  if (!m?.[1] || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`${what}: expected host:port, got '${value}'`);
  }
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}

export function parseBootstrap(value: string): Map<string, HostPort> {
  const out = new Map<string, HostPort>();
  for (const item of value.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = item.indexOf('=');
    const id = item.slice(0, eq);
    if (eq <= 0 || !ID.test(id)) throw new ConfigError(`--bootstrap: expected id=host:port, got '${item}'`);
    if (out.has(id)) throw new ConfigError(`--bootstrap: node ${id} is listed twice`);
    out.set(id, parseHostPort(item.slice(eq + 1), `--bootstrap ${id}`));
  }
  if (out.size === 0) throw new ConfigError('--bootstrap: no nodes listed');
  return out;
}

function readSecret(path: string, what: string): Buffer {
  try {
    return readSecretFile(path, what);
  } catch (err) {
    throw new ConfigError(err instanceof Error ? err.message : String(err));
  }
}

/** The CA a joining node expects: a fingerprint, the CA file's, or both when they agree. */
function pinnedFingerprintOf(fingerprint: string | undefined, caFile: string | undefined): string | null {
  let pinned: string | null = null;
  if (fingerprint !== undefined) {
    pinned = normalizeFingerprint(fingerprint);
    if (pinned === null) throw new ConfigError(`--ca-fingerprint: expected 64 hex digits (SHA-256), got '${fingerprint}'`);
  }
  if (caFile !== undefined) {
    let fromFile: string;
    try {
      fromFile = fingerprintOf(readFileSync(caFile, 'utf8'));
    } catch (err) {
      throw new ConfigError(`--ca-file ${caFile}: not a PEM certificate (${err instanceof Error ? err.message : String(err)})`);
    }
    if (pinned !== null && pinned !== fromFile) throw new ConfigError(`--ca-file ${caFile} is sha256:${fromFile}, not the --ca-fingerprint sha256:${pinned}`);
    pinned = fromFile;
  }
  return pinned;
}

/** Raw values as strings or numbers, by option name (camelCase, as commander gives them). */
export type RawOptions = Record<string, unknown>;

function str(raw: RawOptions, key: string): string | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  throw new ConfigError(`${key}: expected a string, got ${typeof v}`);
}

/** A number with at most two decimals (CPUs: 0.5, 1.25). */
function decimal(raw: RawOptions, key: string, min: number, max: number): number {
  const s = str(raw, key);
  const n = Number(s);
  if (s === undefined || s.trim() === '' || !Number.isFinite(n) || n < min || n > max || Math.round(n * 100) !== n * 100) {
    throw new ConfigError(`${key}: expected a number from ${min} to ${max} with at most two decimals, got '${s}'`);
  }
  return n;
}

function int(raw: RawOptions, key: string, min: number, max: number): number {
  const s = str(raw, key);
  const n = Number(s);
  if (s === undefined || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${key}: expected an integer from ${min} to ${max}, got '${s}'`);
  }
  return n;
}

export function loadConfigFile(path: string): RawOptions {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`--config ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`--config ${path}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`--config ${path}: expected a JSON object`);
  return parsed as RawOptions;
}

export const DEFAULTS: RawOptions = {
  api: '127.0.0.1:7701',
  peer: '127.0.0.1:7801',
  docker: 'unix:///var/run/docker.sock',
  runtime: 'docker',
  tickMs: 100,
  electionTicks: 10,
  heartbeatTicks: 2,
  leaseRenewMs: 500,
  nodeTimeoutMs: 3000,
  leaseTimeoutMs: 2000,
  // etcd's snapshot-count: a snapshot encodes the whole state on the event loop
  // (~11 µs per job here), so one every 10,000 entries stalled a busy node for
  // hundreds of ms every few seconds; the memory the entries hold is bounded by bytes
  // too (member.ts).
  compactEveryEntries: 100_000,
  blobGcIntervalMs: 60_000,
  blobGcMinAgeMs: 600_000,
  jobRetentionSeconds: 7 * 86_400,
  voters: 3,
  logLevel: 'warn',
  maxImageBytes: 2 * 1024 * 1024 * 1024,
  // maxJobMemoryMb and maxJobCpus default to this box's memory and CPUs, jobMemoryMb
  // and jobCpus to 1024 and 1 or the maximum if smaller (jobLimitsOf).
  jobPids: 4096,
  jobLogFileMb: 10,
  jobLogFiles: 3,
  maxResultMb: 1024,
  maxPendingJobs: 10_000,
  standbyRestores: 4,
  mtbfPriorSeconds: 86_400,
  mtbfPriorWeight: 1,
  restartPriorSeconds: 10,
};

const KNOWN = new Set([...Object.keys(DEFAULTS), 'id', 'data', 'bootstrap', 'join', 'secretFile', 'tokenFile', 'previousSecretFile', 'caFile', 'caFingerprint', 'tlsSan', 'slots', 'config', 'jobMemoryMb', 'jobCpus', 'maxJobMemoryMb', 'maxJobCpus']);

const MIB = 1024 * 1024;
/** Docker refuses a memory limit under 6 MB. */
const MIN_JOB_MEMORY_MB = 6;

/**
 * The per-job limits: the maxima default to this box (a job cannot use more than it
 * has), the defaults to 1 GiB and 1 CPU, or the maximum when that is smaller; a
 * default above the maximum is refused.
 */
function jobLimitsOf(raw: RawOptions): JobLimits {
  const boxMemoryMB = Math.max(MIN_JOB_MEMORY_MB, Math.floor(totalmem() / MIB));
  const maxMemoryMB = raw.maxJobMemoryMb === undefined ? boxMemoryMB : int(raw, 'maxJobMemoryMb', MIN_JOB_MEMORY_MB, 16 * 1024 * 1024);
  const maxCpus = raw.maxJobCpus === undefined ? Math.max(1, availableParallelism()) : decimal(raw, 'maxJobCpus', 0.01, 1024);
  const defaultMemoryMB = raw.jobMemoryMb === undefined ? Math.min(1024, maxMemoryMB) : int(raw, 'jobMemoryMb', MIN_JOB_MEMORY_MB, 16 * 1024 * 1024);
  const defaultCpus = raw.jobCpus === undefined ? Math.min(1, maxCpus) : decimal(raw, 'jobCpus', 0.01, 1024);
  if (defaultMemoryMB > maxMemoryMB) throw new ConfigError(`jobMemoryMb (${defaultMemoryMB}) must not exceed maxJobMemoryMb (${maxMemoryMB})`);
  if (defaultCpus > maxCpus) throw new ConfigError(`jobCpus (${defaultCpus}) must not exceed maxJobCpus (${maxCpus})`);
  return {
    defaultMemoryMB,
    defaultCpus,
    pidsLimit: int(raw, 'jobPids', 16, 4_194_304),
    maxMemoryMB,
    maxCpus,
    logFileMB: int(raw, 'jobLogFileMb', 1, 1024),
    logFiles: int(raw, 'jobLogFiles', 1, 100),
    maxResultBytes: int(raw, 'maxResultMb', 1, 1024 * 1024) * MIB,
  };
}

/**
 * Merges layers (later wins: defaults, config file, then the command line/env values
 * that were actually given) and validates them.
 */
export function resolveNodeOptions(given: RawOptions, file: RawOptions = {}): NodeOptions {
  for (const key of Object.keys(file)) {
    if (!KNOWN.has(key)) throw new ConfigError(`config file: unknown key '${key}' (known: ${[...KNOWN].sort().join(', ')})`);
  }
  const raw: RawOptions = { ...DEFAULTS, ...file };
  for (const [k, v] of Object.entries(given)) if (v !== undefined) raw[k] = v;

  const id = str(raw, 'id');
  if (!id || !ID.test(id)) throw new ConfigError(`--id: expected 1-64 characters of [a-zA-Z0-9_.-], got '${id ?? ''}'`);
  const dataDir = str(raw, 'data');
  if (!dataDir) throw new ConfigError('--data: the node needs a data folder');
  const api = parseHostPort(str(raw, 'api') ?? '', '--api');
  const peer = parseHostPort(str(raw, 'peer') ?? '', '--peer');
  const bootstrapRaw = str(raw, 'bootstrap');
  const join = str(raw, 'join') ?? null;
  const bootstrap = bootstrapRaw ? parseBootstrap(bootstrapRaw) : new Map<string, HostPort>();
  if (bootstrapRaw && join) throw new ConfigError('--bootstrap and --join exclude each other');
  if (bootstrap.size > 0 && !bootstrap.has(id)) throw new ConfigError(`--bootstrap does not list this node (${id})`);
  if (join !== null) {
    try {
      const u = new URL(join);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
    } catch {
      throw new ConfigError(`--join: expected the http URL of a running node, got '${join}'`);
    }
  }
  const runtime = str(raw, 'runtime');
  if (runtime !== 'docker' && runtime !== 'fake') throw new ConfigError(`--runtime: expected docker or fake, got '${runtime}'`);
  const warnings: string[] = [];
  let secretFile = str(raw, 'secretFile');
  const tokenFile = str(raw, 'tokenFile');
  if (tokenFile !== undefined) {
    if (secretFile !== undefined) throw new ConfigError('--token-file is the old name of --secret-file: give one of them');
    warnings.push('--token-file is deprecated: it is the join secret now, give it as --secret-file (API clients use tokens from `workrs tokens create`)');
    secretFile = tokenFile;
  }
  const secret = secretFile === undefined ? null : readSecret(secretFile, secretFile === tokenFile ? '--token-file' : '--secret-file');
  const previousFile = str(raw, 'previousSecretFile');
  const previousSecret = previousFile === undefined ? null : readSecret(previousFile, '--previous-secret-file');
  if (previousSecret !== null && secret === null) throw new ConfigError('--previous-secret-file needs --secret-file');
  if (secret === null) {
    for (const [what, hp] of [['--api', api], ['--peer', peer]] as const) {
      if (!isLoopbackHost(hp.host)) {
        throw new ConfigError(`${what} ${hp.host}: without --secret-file a node runs in dev mode, on loopback only (give a --secret-file to listen on ${hp.host} with TLS and API tokens)`);
      }
    }
  }
  const pinnedCaFingerprint = pinnedFingerprintOf(str(raw, 'caFingerprint'), str(raw, 'caFile'));
  if (pinnedCaFingerprint !== null && secret === null) throw new ConfigError('--ca-fingerprint and --ca-file pin the CA of a secure cluster: they need --secret-file');
  const tlsSans = (str(raw, 'tlsSan') ?? '').split(',').map((h) => h.trim()).filter(Boolean);
  for (const h of tlsSans) if (!/^[A-Za-z0-9.:_-]{1,253}$/.test(h)) throw new ConfigError(`--tls-san: '${h}' is not a host name or address`);
  const slots = raw.slots === undefined ? Math.max(1, availableParallelism()) : int(raw, 'slots', 0, COMMAND_LIMITS.maxSlots);
  const voters = int(raw, 'voters', 3, 5);
  if (voters !== 3 && voters !== 5) throw new ConfigError(`voters: expected 3 or 5, got ${voters}`);
  const opts: NodeOptions = {
    id,
    dataDir,
    api,
    peer,
    bootstrap,
    join,
    docker: str(raw, 'docker') ?? '',
    runtime,
    secret,
    previousSecret,
    pinnedCaFingerprint,
    tlsSans,
    warnings,
    slots,
    tickMs: int(raw, 'tickMs', 5, 10_000),
    electionTicks: int(raw, 'electionTicks', 2, 1000),
    heartbeatTicks: int(raw, 'heartbeatTicks', 1, 100),
    leaseRenewMs: int(raw, 'leaseRenewMs', 10, 600_000),
    nodeTimeoutMs: int(raw, 'nodeTimeoutMs', 50, 3_600_000),
    leaseTimeoutMs: int(raw, 'leaseTimeoutMs', 20, 3_600_000),
    compactEveryEntries: int(raw, 'compactEveryEntries', 10, 10_000_000),
    blobGcIntervalMs: int(raw, 'blobGcIntervalMs', 100, 86_400_000),
    blobGcMinAgeMs: int(raw, 'blobGcMinAgeMs', 0, 86_400_000),
    jobRetentionSeconds: int(raw, 'jobRetentionSeconds', 0, 10 * 365 * 86_400),
    voters,
    logLevel: str(raw, 'logLevel') ?? 'warn',
    maxImageBytes: int(raw, 'maxImageBytes', 1, Number.MAX_SAFE_INTEGER),
    jobLimits: jobLimitsOf(raw),
    maxPendingJobs: int(raw, 'maxPendingJobs', 1, 1_000_000),
    standbyRestores: int(raw, 'standbyRestores', 0, 1000),
    mtbfPriorSeconds: int(raw, 'mtbfPriorSeconds', 1, 10 * 365 * 86_400),
    mtbfPriorWeight: int(raw, 'mtbfPriorWeight', 1, 1_000_000),
    restartPriorSeconds: int(raw, 'restartPriorSeconds', 0, 86_400),
  };
  if (opts.heartbeatTicks >= opts.electionTicks) throw new ConfigError('heartbeatTicks must be smaller than electionTicks');
  if (opts.leaseTimeoutMs >= opts.nodeTimeoutMs) {
    // Self-fencing must happen before the leader reassigns: two copies never run past the lease.
    throw new ConfigError(`leaseTimeoutMs (${opts.leaseTimeoutMs}) must be shorter than nodeTimeoutMs (${opts.nodeTimeoutMs})`);
  }
  return opts;
}
