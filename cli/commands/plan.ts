// workrs plan: the checkpoint models of docs/checkpoint-model.md evaluated offline, with no
// cluster: how many checkpoints to take, how often, and what that saves. --json prints
// src/policy's plan() as one JSON object (an expected time too large for a double is
// null: JSON has no Infinity).
import { InvalidModelInputError, MAX_SEGMENTS, plan, type ModelInput, type Plan } from '../../src/policy/index.js';
import { formatSeconds, parseDurationSeconds } from '../../src/util/units.js';
import { CliError, EXIT } from '../exit.js';

export interface PlanOptions {
  estimate: string;
  mtbf: string;
  checkpointCost: string;
  restoreCost?: string;
  json?: boolean;
}

const FLAGS: Record<keyof ModelInput, string> = {
  workSeconds: '--estimate',
  mtbfSeconds: '--mtbf',
  checkpointSeconds: '--checkpoint-cost',
  restartSeconds: '--restore-cost',
};

function duration(flag: string, text: string): number {
  try {
    return parseDurationSeconds(text);
  } catch (err) {
    throw new CliError(`${flag}: ${err instanceof Error ? err.message : String(err)}`, EXIT.usage, { cause: err });
  }
}

/** "352.8 s", "60 s", "0.0003 s"; after an hour also the long form, "7425.3 s (2h4m)"; "∞" when it overflows. */
function seconds(x: number): string {
  if (!Number.isFinite(x)) return '∞';
  const text = `${Number(x >= 10 ? x.toFixed(1) : x.toPrecision(3))} s`;
  return x >= 3600 ? `${text} (${formatSeconds(x)})` : text;
}

function checkpointsText(k: number): string {
  return k === 1 ? '1 checkpoint' : `${k} checkpoints`;
}

/** The one-line advice, from the exact model (it counts R and failures during checkpoints). */
export function recommendation(p: Plan): string {
  const { exact, noCheckpointSeconds: none } = p;
  if (!Number.isFinite(exact.expectedSeconds)) {
    return 'no plan finishes in expectation: the job is far longer than the mean time between failures (split it, or run it on more reliable boxes)';
  }
  if (exact.checkpoints === 0) return `take no checkpoints: they do not pay here (expected ${seconds(none)} without)`;
  const capped = exact.checkpoints + 1 === MAX_SEGMENTS ? ' (the most this planner considers: checkpoints that cost nothing are best taken continuously)' : '';
  return `take ${checkpointsText(exact.checkpoints)}, one every ${seconds(exact.intervalSeconds)}: expected ${seconds(exact.expectedSeconds)} instead of ${seconds(none)} without${capped}`;
}

export function planTable(input: ModelInput, p: Plan): string {
  const rows: string[][] = [
    ['MODEL', 'CHECKPOINTS', 'INTERVAL', 'EXPECTED'],
    ['exact', String(p.exact.checkpoints), seconds(p.exact.intervalSeconds), seconds(p.exact.expectedSeconds)],
    ['paper', String(p.paper.checkpoints), seconds(p.paper.intervalSeconds), seconds(p.paper.expectedSeconds)],
    ['none', '0', '-', seconds(p.noCheckpointSeconds)],
    ['Young (1974)', '-', seconds(p.young.intervalSeconds), '-'],
    ['Daly (2006)', '-', seconds(p.daly.intervalSeconds), '-'],
  ];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[0] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ');
  const given = `W = ${seconds(input.workSeconds)}, M = ${seconds(input.mtbfSeconds)}, C = ${seconds(input.checkpointSeconds)}, R = ${seconds(input.restartSeconds)}`;
  const legend = "exact: restart cost R, failures at any time; paper: the prototype's model (no R, no failure during a checkpoint); none: exact, no checkpoint";
  return [given, ...rows.map(line), legend, recommendation(p)].join('\n');
}

export function planCommand(o: PlanOptions): void {
  const input: ModelInput = {
    workSeconds: duration('--estimate', o.estimate),
    mtbfSeconds: duration('--mtbf', o.mtbf),
    checkpointSeconds: duration('--checkpoint-cost', o.checkpointCost),
    restartSeconds: o.restoreCost === undefined ? 0 : duration('--restore-cost', o.restoreCost),
  };
  let result: Plan;
  try {
    result = plan(input);
  } catch (err) {
    if (err instanceof InvalidModelInputError) throw new CliError(`${FLAGS[err.field]}: ${err.message}`, EXIT.usage, { cause: err });
    throw err;
  }
  process.stdout.write(o.json ? `${JSON.stringify(result)}\n` : `${planTable(input, result)}\n`);
}
