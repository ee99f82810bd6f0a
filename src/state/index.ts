// The replicated state machine of Workrs: commands, their validation, apply, views.
export * from './commands.js';
export * from './records.js';
export * from './result.js';
export * from './views.js';
export { ClusterState, type ClusterStateOptions, type NodeUsage, fits, compareIds, LIST_JOBS_DEFAULT_LIMIT, LIST_JOBS_MAX_LIMIT } from './machine.js';
export { SNAPSHOT_FORMAT_VERSION, SnapshotFormatError } from './snapshot.js';
export { DEFAULT_IMAGE, WORK_DIR, SPEC_LIMITS, normalizeOutputPath, cloneSpec } from './spec.js';
