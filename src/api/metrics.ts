// A minimal Prometheus registry: counters, gauges read at scrape time, histograms.
type Labels = Record<string, string>;

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  render(): string[];
}

export class Counter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    const cur = this.values.get(key) ?? { labels, value: 0 };
    cur.value += by;
    this.values.set(key, cur);
  }
  lines(name: string): string[] {
    return [...this.values.values()].map((v) => `${name}${labelText(v.labels)} ${v.value}`);
  }
}

export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(readonly buckets: number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(value: number): void {
    this.sum += value;
    this.count++;
    this.buckets.forEach((b, i) => {
      if (value <= b) this.counts[i] = (this.counts[i] ?? 0) + 1;
    });
  }
  lines(name: string): string[] {
    const out = this.buckets.map((b, i) => `${name}_bucket{le="${b}"} ${this.counts[i] ?? 0}`);
    out.push(`${name}_bucket{le="+Inf"} ${this.count}`, `${name}_sum ${this.sum}`, `${name}_count ${this.count}`);
    return out;
  }
}

export class Registry {
  private readonly families: Family[] = [];

  counter(name: string, help: string): Counter {
    const c = new Counter();
    this.families.push({ name, help, type: 'counter', render: () => c.lines(name) });
    return c;
  }

  /** A gauge computed when scraped: `read` returns one value or labelled values. */
  gauge(name: string, help: string, read: () => number | Array<{ labels: Labels; value: number }>): void {
    this.families.push({
      name,
      help,
      type: 'gauge',
      render: () => {
        const v = read();
        return typeof v === 'number' ? [`${name} ${v}`] : v.map((x) => `${name}${labelText(x.labels)} ${x.value}`);
      },
    });
  }

  histogram(name: string, help: string, buckets: number[]): Histogram {
    const h = new Histogram(buckets);
    this.families.push({ name, help, type: 'histogram', render: () => h.lines(name) });
    return h;
  }

  render(): string {
    const out: string[] = [];
    for (const f of this.families) out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.render());
    return `${out.join('\n')}\n`;
  }
}
