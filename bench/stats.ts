// Summaries for the benchmarks: median and range of repeated measurements, and the
// ratio of two medians measured side by side (docs/development.md, Benchmarks:
// absolute times drift on these shared machines, ratios measured in one run hold).

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
}

export function summarize(values: readonly number[]): Summary | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { n: sorted.length, median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number };
}

/** "1.23 s (1.10–1.51)" from milliseconds; "–" when nothing was measured. */
export function seconds(s: Summary | null): string {
  if (s === null) return '–';
  const f = (ms: number): string => (ms / 1000).toFixed(2);
  return s.n === 1 ? `${f(s.median)} s` : `${f(s.median)} s (${f(s.min)}–${f(s.max)})`;
}

/** Ratio of medians, "1.8×". */
export function ratio(a: Summary | null, b: Summary | null): string {
  if (a === null || b === null || b.median === 0) return '–';
  return `${(a.median / b.median).toFixed(2)}×`;
}

export function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`;
}

/** A markdown table. */
export function table(head: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}
