// Checkpoint policy: the models of docs/checkpoint-model.md as pure functions (no I/O, no
// clock), their optimal plans, and a seeded simulation that checks the exact model.
export { checkModelInput, InvalidModelInputError, type ModelInput } from './input.js';
export { MAX_SEGMENTS, walkDownhill, type Minimum } from './search.js';
export { paperExpectedSeconds, paperOptimum } from './paper-model.js';
export { exactExpectedSeconds, exactOptimalIntervalSeconds, exactOptimum, segmentExpectedSeconds } from './exact-model.js';
export { dalyIntervalSeconds, youngIntervalSeconds } from './intervals.js';
export { plan, type ModelPlan, type Plan } from './plan.js';
export { SeededRandom } from './random.js';
export { simulateCompletion, simulateRun, type SimulationResult } from './simulate.js';
export { PROTOTYPE_CHECKPOINT_SECONDS, PROTOTYPE_FAILURE_RATES, PROTOTYPE_FIXED_CHECKPOINTS, PROTOTYPE_WORK_SECONDS, prototypeGrid, type GridCell, type GridPolicy } from './prototype-grid.js';
