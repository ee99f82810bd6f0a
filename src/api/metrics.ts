// The node's Prometheus registry, on prom-client: counters, gauges read at scrape time,
// histograms, and Node's own process metrics (CPU, memory, event loop lag, handles).
// A counter whose label values are known is exported at 0 for each of them from the
// start, so a rate() over it works before its first increment.
import * as prom from 'prom-client';

export type Labels = Record<string, string>;

/** A counter; `inc` as prom-client's, with the labels first. */
export interface Counter {
  inc(labels?: Labels, by?: number): void;
}

export interface Histogram {
  observe(value: number, labels?: Labels): void;
}

/** Every combination of the known values of each label. */
function combinations(known: Record<string, readonly string[]>): Labels[] {
  let out: Labels[] = [{}];
  for (const [name, values] of Object.entries(known)) out = out.flatMap((l) => values.map((v) => ({ ...l, [name]: v })));
  return out;
}

export class Registry {
  private readonly reg = new prom.Registry();

  /**
   * Node's process and runtime metrics (process_*, nodejs_*), collected when scraped.
   * The event loop's delay is sampled every 100 ms, not prom-client's 10: an idle node
   * should wake seldom (its own tick is 100 ms).
   */
  withProcessMetrics(): this {
    prom.collectDefaultMetrics({ register: this.reg, eventLoopMonitoringPrecision: 100 });
    return this;
  }

  /**
   * `labels`: each label's name and the values known in advance (each combination starts
   * at 0); a label with values known only later (an error code) has an empty list, and
   * then nothing starts at 0.
   */
  counter(name: string, help: string, labels: Record<string, readonly string[]> = {}): Counter {
    if (!name.endsWith('_total')) throw new Error(`counter ${name}: Prometheus counters end in _total`);
    const c = new prom.Counter({ name, help, labelNames: Object.keys(labels), registers: [this.reg] });
    const open = Object.values(labels).some((v) => v.length === 0);
    if (Object.keys(labels).length === 0) c.inc(0);
    else if (!open) for (const l of combinations(labels)) c.inc(l, 0);
    return { inc: (l = {}, by = 1) => c.inc(l, by) };
  }

  /** A gauge computed when scraped: `read` returns one value or labelled values (with labels among `labelNames`). */
  gauge(name: string, help: string, read: () => number | Array<{ labels: Labels; value: number }>, labelNames: readonly string[] = []): void {
    new prom.Gauge({
      name,
      help,
      labelNames: [...labelNames],
      registers: [this.reg],
      collect() {
        this.reset();
        const v = read();
        if (typeof v === 'number') this.set(v);
        else for (const x of v) this.set(x.labels, x.value);
      },
    });
  }

  histogram(name: string, help: string, buckets: number[], labelNames: readonly string[] = []): Histogram {
    const h = new prom.Histogram({ name, help, buckets, labelNames: [...labelNames], registers: [this.reg] });
    return { observe: (value, labels) => (labels === undefined ? h.observe(value) : h.observe(labels, value)) };
  }

  /** The text exposition format. */
  render(): Promise<string> {
    return this.reg.metrics();
  }

  get contentType(): string {
    return this.reg.contentType;
  }
}
