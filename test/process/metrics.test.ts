// GET /metrics of a real node (the executable, a 3-node dev-mode cluster): Prometheus
// text from prom-client with Node's process metrics, counters named *_total and present
// at 0 before their first increment, the build, whether a leader is known and how often
// it changed, and histograms of request durations by route and status and of Raft's
// disk writes and applies, which move once submissions go through.
import t from 'tap';
import { metricSamples } from '../helpers/prometheus.js';
import { startedCluster } from './harness.js';

t.test('a node exports its metrics the way Prometheus expects them', async (t) => {
  const { c, leader } = await startedCluster(t);
  const scrape = async (): Promise<{ text: string; values: Map<string, number> }> => {
    const r = await c.request(leader, '/metrics');
    t.equal(r.status, 200);
    t.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await r.text();
    return { text, values: metricSamples(text) };
  };
  const before = await scrape();

  const counters = [...before.text.matchAll(/^# TYPE (\S+) counter$/gm)].map((m) => m[1] ?? '');
  t.ok(counters.length >= 15, `${counters.length} counters`);
  for (const name of counters) t.ok(name.endsWith('_total'), `counter ${name} ends in _total`);
  for (const zero of [
    'workrs_gateway_requests_total{outcome="accepted"}',
    'workrs_gateway_requests_total{outcome="backlog_full"}',
    'workrs_restores_total{how="standby"}',
    'workrs_restores_total{how="cold"}',
    'workrs_worker_fences_total{what="frozen"}',
    'workrs_peer_frames_dropped_total{reason="malformed"}',
    'workrs_node_losses_total',
    'workrs_blob_repairs_total',
  ]) {
    t.equal(before.values.get(zero), 0, `${zero} is there at 0 before its first increment`);
  }
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
    t.ok(before.values.has(name), `Node's process metric ${name}`);
  }
  t.ok([...before.values.keys()].some((k) => /^workrs_build_info\{version="[^"]+",commit="[^"]+"\}$/.test(k)), 'workrs_build_info{version,commit}');
  t.equal(before.values.get('workrs_has_leader'), 1, 'a leader is known');
  t.ok((before.values.get('workrs_leader_changes_total') ?? 0) >= 1, 'the leader became known: a change');
  t.equal(before.values.get('workrs_jobs{state="succeeded"}'), 0, 'jobs by state, 0 for each state none is in');
  t.equal(before.values.get('workrs_checkpoint_frozen_seconds_count'), 0, 'the checkpoint histograms are there before the first checkpoint');

  for (let i = 0; i < 5; i++) t.equal((await c.post(leader, '/v1/jobs', { command: ['true'], env: { FAKE_SECONDS: '0.1' } })).status, 202);
  const after = await scrape();
  t.equal(after.values.get('workrs_gateway_requests_total{outcome="accepted"}'), 5, 'five submissions accepted');
  const posts = after.values.get('workrs_http_request_duration_seconds_count{method="POST",route="/v1/jobs",status="202"}') ?? 0;
  t.equal(posts, 5, 'the request histogram counts them by method, route and status');
  t.ok((after.values.get('workrs_http_request_duration_seconds_count{method="GET",route="/metrics",status="200"}') ?? 0) >= 1, 'and the scrape before');
  t.ok((after.values.get('workrs_raft_persist_seconds_count') ?? 0) > (before.values.get('workrs_raft_persist_seconds_count') ?? 0), "Raft's disk writes are timed");
  t.ok((after.values.get('workrs_raft_apply_seconds_count') ?? 0) > (before.values.get('workrs_raft_apply_seconds_count') ?? 0), 'applies are timed');
  t.ok([...after.values.keys()].every((k) => !k.includes('route="/v1/jobs/j-')), 'routes are patterns, never a job id');
});
