// Reading a /metrics answer in tests and benches: Prometheus' text format, a sample per line.

/** Every sample of a Prometheus text: `name{labels}` as written → its value. */
export function metricSamples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** One sample's value (`name{labels}` as written), 0 when absent. */
export function metricValue(text: string, name: string): number {
  return metricSamples(text).get(name) ?? 0;
}
