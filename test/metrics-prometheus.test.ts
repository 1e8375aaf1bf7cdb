// The metrics provider against the real Prometheus: backfilled Istio series with counts worked
// out by hand, batching measured in queries sent, the engine's quantile against Prometheus's
// own histogram_quantile, custom queries and their failures, a live scrape, and a stopped
// server. HTTP failures Prometheus itself cannot produce (HTML, garbage, slowness) come from
// a small local server, stubbing only the HTTP boundary.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkModelCanary } from '../src/api/validate.ts';
import type { ModelCanary } from '../src/api/modelcanary.ts';
import { histogramQuantile } from '../src/analysis/histogram.ts';
import { decide, startState } from '../src/analysis/engine.ts';
import { PrometheusClient } from '../src/metrics/prometheus-client.ts';
import { PrometheusMetricsProvider } from '../src/metrics/prometheus-provider.ts';
import { observeAll, versionSelectors } from '../src/metrics/observe.ts';
import { renderTemplate } from '../src/metrics/promql.ts';
import { PROMETHEUS_MISSING, prometheusWith, startPrometheus } from './helpers/prometheus.ts';
import { istioManifest } from './helpers/manifests.ts';

/** 2026-01-01T00:00:00Z, the start of the fixture; samples every 15 s for ten minutes. */
const T0 = 1767225600;
const STEP = 15;
const STEPS = 40;
const AT = new Date((T0 + 300) * 1000);
const BOUNDS = ['50', '100', '250', '500', '1000', '+Inf'];

interface Version {
  labels: string;
  /** Per 15 s: 2xx and 5xx answers, and cumulative bucket growth in the order of BOUNDS. */
  ok: number;
  failed: number;
  buckets: number[];
}

const fraud = (revision: string): string =>
  `reporter="destination",destination_workload_namespace="ml-serving",destination_canonical_service="fraud-detector",destination_canonical_revision="${revision}"`;
const VERSIONS: Version[] = [
  { labels: fraud('v1'), ok: 97, failed: 3, buckets: [60, 90, 98, 100, 100, 100] },
  { labels: fraud('v2'), ok: 9, failed: 1, buckets: [2, 5, 8, 9, 10, 10] },
  // A version selected by custom labels (metricLabels), in another label-name group.
  { labels: 'reporter="destination",destination_workload_namespace="llm",destination_workload="chat-b"', ok: 20, failed: 0, buckets: [10, 15, 18, 19, 20, 20] },
  // Someone else's service, which no selector asks for.
  { labels: fraud('v9').replace('fraud-detector', 'other'), ok: 1000, failed: 500, buckets: [0, 0, 0, 0, 0, 1500] },
];

function fixture(): string {
  const lines = ['# TYPE istio_requests counter'];
  for (const v of VERSIONS) {
    for (let s = 0; s <= STEPS; s++) lines.push(`istio_requests_total{${v.labels},response_code="200"} ${v.ok * s} ${T0 + s * STEP}`);
    for (let s = 0; s <= STEPS; s++) lines.push(`istio_requests_total{${v.labels},response_code="503"} ${v.failed * s} ${T0 + s * STEP}`);
  }
  lines.push('# TYPE istio_request_duration_milliseconds histogram');
  for (let s = 0; s <= STEPS; s++) {
    for (const v of VERSIONS) BOUNDS.forEach((le, i) => lines.push(`istio_request_duration_milliseconds_bucket{${v.labels},le="${le}"} ${(v.buckets[i] ?? 0) * s} ${T0 + s * STEP}`));
  }
  lines.push('# EOF');
  return `${lines.join('\n')}\n`;
}

function canary(edit: (m: Record<string, any>) => void = () => undefined): ModelCanary {
  const manifest = istioManifest();
  edit(manifest);
  const checked = checkModelCanary(manifest);
  assert.ok(checked.ok, JSON.stringify(checked.ok ? '' : checked.problems));
  return checked.value;
}

const fraudCanary = canary();
const chatCanary = canary((m) => {
  m.metadata = { name: 'chat', namespace: 'llm' };
  m.spec.model = 'chat';
  m.spec.stable.metricLabels = { destination_workload_namespace: 'llm', destination_workload: 'chat-a' };
  m.spec.canary.metricLabels = { destination_workload_namespace: 'llm', destination_workload: 'chat-b' };
});

const { client } = prometheusWith(fixture);

test('counts per version are exact, and one query per family answers every version', { skip: PROMETHEUS_MISSING }, async () => {
  const http = client();
  const provider = new PrometheusMetricsProvider(http);
  const selectors = [...Object.values(versionSelectors(fraudCanary)), ...Object.values(versionSelectors(chatCanary))];
  // [T0+240, T0+300] holds samples at both ends: increase() is exact, 4 × the growth per 15 s.
  const counts = await provider.counts(selectors, 60_000, AT);
  const of = (key: string): unknown => counts.get(key);
  assert.deepEqual(of('ml-serving/fraud-detector/stable'), {
    kind: 'counts',
    counts: { requests: 400, errors: 12, latency: { bounds: [50, 100, 250, 500, 1000], cumulative: [240, 360, 392, 400, 400, 400] } },
  });
  assert.deepEqual(of('ml-serving/fraud-detector/canary'), {
    kind: 'counts',
    counts: { requests: 40, errors: 4, latency: { bounds: [50, 100, 250, 500, 1000], cumulative: [8, 20, 32, 36, 40, 40] } },
  });
  assert.deepEqual((of('llm/chat/canary') as { counts: { requests: number } }).counts.requests, 80);
  assert.deepEqual(of('llm/chat/stable'), { kind: 'noData', reason: 'no istio_requests_total series for {destination_workload="chat-a",destination_workload_namespace="llm"} in the last 1m' });
  // Two groups of label names, three families each.
  assert.equal(http.sent, 6);
});

test('totals are the counters themselves: two reads subtract to exactly the requests in between', { skip: PROMETHEUS_MISSING }, async () => {
  const http = client();
  const provider = new PrometheusMetricsProvider(http);
  const { stable, canary } = versionSelectors(fraudCanary);
  // At T0+300 each counter has grown 20 times (samples every 15 s); 15 s later, once more.
  const first = await provider.totals([stable, canary], AT);
  const second = await provider.totals([stable, canary], new Date(AT.getTime() + 15_000));
  assert.deepEqual(first.get(canary.key), {
    kind: 'counts',
    counts: { requests: 200, errors: 20, latency: { bounds: [50, 100, 250, 500, 1000], cumulative: [40, 100, 160, 180, 200, 200] } },
  });
  const requests = (answer: Map<string, unknown>, key: string): number => (answer.get(key) as { counts: { requests: number } }).counts.requests;
  assert.equal(requests(second, stable.key) - requests(first, stable.key), 100);
  assert.equal(requests(second, canary.key) - requests(first, canary.key), 10);
  assert.equal(http.sent, 6, 'one query per family for both versions, per read');
});

test("the engine's p99 from bucket counts equals Prometheus's histogram_quantile", { skip: PROMETHEUS_MISSING }, async () => {
  const http = client();
  const provider = new PrometheusMetricsProvider(http);
  for (const windowMs of [60_000, 90_000, 300_000]) {
    const counts = await provider.counts([versionSelectors(fraudCanary).canary], windowMs, AT);
    const sample = counts.get('ml-serving/fraud-detector/canary');
    assert.ok(sample?.kind === 'counts' && sample.counts.latency !== undefined);
    for (const q of [0.5, 0.9, 0.99]) {
      const theirs = await http.query(
        `histogram_quantile(${q}, sum by (le) (increase(istio_request_duration_milliseconds_bucket{${fraud('v2')}}[${windowMs / 1000}s])))`,
        AT,
      );
      assert.ok(theirs.kind === 'vector');
      const expected = theirs.series[0]?.value ?? NaN;
      const ours = histogramQuantile(q, sample.counts.latency);
      assert.ok(Math.abs(ours - expected) < 1e-9, `q=${q} window=${windowMs}: ours ${ours}, Prometheus ${expected}`);
    }
  }
});

test('custom queries: values, no data, NaN, too many series, and errors that name the metric', { skip: PROMETHEUS_MISSING }, async () => {
  const provider = new PrometheusMetricsProvider(client());
  assert.deepEqual(await provider.value('sum(increase(istio_requests_total{destination_canonical_revision="v2"}[1m]))', AT), { kind: 'value', value: 40 });
  assert.deepEqual(await provider.value('scalar(vector(2.5))', AT), { kind: 'value', value: 2.5 });
  assert.equal((await provider.value('absent_series_name_xyz', AT)).kind, 'noData');
  assert.deepEqual(await provider.value('sum(increase(istio_requests_total{response_code="404"}[1m])) / 0 * 0', AT), { kind: 'noData', reason: 'the query returned no series' });
  assert.deepEqual(await provider.value('vector(0) / vector(0)', AT), { kind: 'noData', reason: 'the query returned NaN (no traffic in the window?)' });
  const many = await provider.value('istio_requests_total', AT);
  assert.ok(many.kind === 'error' && /returned \d+ series; a check needs one number/.test(many.message), JSON.stringify(many));
  // Prometheus's own refusals: 400 bad_data for a broken query, 422 execution for a query that fails when run.
  const broken = await provider.value('sum(rate(istio_requests_total[1m]', AT);
  assert.ok(broken.kind === 'error' && broken.message.startsWith('Prometheus answered 400 bad_data: '), JSON.stringify(broken));
  const manyToMany = await provider.value('istio_requests_total + on(reporter) istio_requests_total', AT);
  assert.ok(manyToMany.kind === 'error' && manyToMany.message.startsWith('Prometheus answered 422 execution: '), JSON.stringify(manyToMany));

  const withBrokenMetric = canary((m) => {
    m.spec.analysis.metrics = [{ name: 'ttft', type: 'prometheus', query: 'sum(rate(x{v="{{ version }}"}[{{ window }}]', max: 1 }];
  });
  const observation = (await observeAll(provider, [withBrokenMetric], 60_000, AT)).get('ml-serving/fraud-detector');
  const ttft = observation?.custom.ttft?.canary;
  assert.ok(ttft?.kind === 'error' && ttft.message.startsWith('Prometheus answered 400 bad_data'), JSON.stringify(ttft));
  const decision = decide(withBrokenMetric.spec.analysis, startState(), observation ?? { sinceLastCheck: { stable: ttft, canary: ttft }, custom: {} });
  assert.equal(decision.action, 'hold');
  assert.match(decision.reason, /ttft: could not measure canary: Prometheus answered 400 bad_data/, 'the verdict names the metric, once');
  assert.doesNotMatch(decision.reason, /ttft: .*ttft: /);
});

test('template values reach Prometheus exactly, whatever they hold', { skip: PROMETHEUS_MISSING }, async () => {
  const http = client();
  const hostile = ['a"} or vector(1) or x{a="', 'back\\slash', 'brace}{', 'new\nline', "it's", 'ünï ✓'];
  for (const model of hostile) {
    for (const template of ['label_replace(vector(1), "m", "{{ model }}", "", "")', "label_replace(vector(1), 'm', '{{ model }}', '', '')", 'label_replace(vector(1), "m", {{ model }}, "", "")']) {
      const query = renderTemplate(template, { model, version: 'v', namespace: 'n', name: 'x', stableVersion: 's', canaryVersion: 'c', windowMs: 1000, labels: {} });
      const result = await http.query(query, AT);
      assert.ok(result.kind === 'vector', `${query}: ${JSON.stringify(result)}`);
      assert.equal(result.series.length, 1, query);
      assert.equal(result.series[0]?.labels.m, model, query);
    }
  }
});

test('with Prometheus stopped the answer is an error, and the rollout holds', { skip: PROMETHEUS_MISSING }, async () => {
  const stopped = await startPrometheus({});
  await stopped.stop();
  const sleeps: number[] = [];
  const http = new PrometheusClient({ address: stopped.url, timeoutMs: 2000, sleep: (ms) => Promise.resolve(void sleeps.push(ms)) });
  const observation = (await observeAll(new PrometheusMetricsProvider(http), [fraudCanary], 60_000, AT)).get('ml-serving/fraud-detector');
  assert.ok(observation !== undefined);
  const stable = observation.sinceLastCheck.stable;
  assert.ok(stable.kind === 'error' && /cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED \(after 3 attempts\)/.test(stable.message), JSON.stringify(stable));
  // Three count families and two custom queries, each backing off 250 ms, then 500 ms.
  assert.deepEqual(sleeps.sort((a, b) => a - b), [250, 250, 250, 250, 250, 500, 500, 500, 500, 500]);
  const decision = decide(fraudCanary.spec.analysis, startState(), observation);
  assert.equal(decision.action, 'hold');
  assert.equal(decision.state.failedChecks, 0);
  assert.ok(decision.verdicts.every((v) => v.verdict === 'error'));
});

/** A server that answers as a broken proxy, a login page or an overloaded Prometheus would. */
async function fakeServer(answer: (path: string, hits: number) => { status: number; type: string; body: string; delayMs?: number }): Promise<{ url: string; hits: () => number; server: Server }> {
  let hits = 0;
  const server = createServer((request, response) => {
    hits++;
    const a = answer(request.url ?? '', hits);
    setTimeout(() => {
      response.writeHead(a.status, { 'content-type': a.type });
      response.end(a.body);
    }, a.delayMs ?? 0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits, server };
}

const noSleep = (): Promise<void> => Promise.resolve();
const vector = JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [T0, '7'] }] } });

test('an HTML page or garbage JSON is an error that says what came back, never what it said', async () => {
  const html = await fakeServer(() => ({ status: 200, type: 'text/html; charset=utf-8', body: '<html><body>internal-stats: db_password=hunter2</body></html>' }));
  const page = await new PrometheusClient({ address: html.url, sleep: noSleep }).query('up', AT);
  assert.ok(page.kind === 'error' && page.message.endsWith('answered HTTP 200 with text/html, not the Prometheus API'), JSON.stringify(page));
  assert.ok(!JSON.stringify(page).includes('hunter2'), 'the body of an answer that is not Prometheus is not echoed');
  const garbage = await fakeServer(() => ({ status: 200, type: 'application/json', body: '{"data": 42}' }));
  const odd = await new PrometheusClient({ address: garbage.url, sleep: noSleep }).query('up', AT);
  assert.ok(odd.kind === 'error' && odd.message.includes('JSON that is not a Prometheus query result'), JSON.stringify(odd));
  assert.equal(garbage.hits(), 1, '2xx answers are not retried');
});

test('slow answers time out; 503s are retried, 4xx are not', async () => {
  const slow = await fakeServer(() => ({ status: 200, type: 'application/json', body: vector, delayMs: 1500 }));
  const late = await new PrometheusClient({ address: slow.url, timeoutMs: 200, retries: 1, sleep: noSleep }).query('up', AT);
  assert.ok(late.kind === 'error' && late.message.includes('no answer from') && late.message.includes('within 200 ms'), JSON.stringify(late));
  assert.equal(slow.hits(), 2);

  const flaky = await fakeServer((_path, hits) => (hits < 3 ? { status: 503, type: 'text/plain', body: 'overloaded' } : { status: 200, type: 'application/json', body: vector }));
  assert.deepEqual(await new PrometheusClient({ address: flaky.url, sleep: noSleep }).query('up', AT), { kind: 'vector', series: [{ labels: {}, value: 7 }] });
  assert.equal(flaky.hits(), 3);

  const refused = await fakeServer(() => ({ status: 400, type: 'application/json', body: JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error' }) }));
  const bad = await new PrometheusClient({ address: refused.url, sleep: noSleep }).query('up(', AT);
  assert.deepEqual(bad, { kind: 'error', status: 400, errorType: 'bad_data', message: 'Prometheus answered 400 bad_data: parse error' });
  assert.equal(refused.hits(), 1);
});

test('credentials and extra headers are sent, and the address is shown without credentials', async () => {
  const seen: string[] = [];
  const server = createServer((request, response) => {
    seen.push(`${request.headers.authorization ?? ''} ${String(request.headers['x-scope-orgid'] ?? '')}`);
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(vector);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => new Promise((resolve) => server.close(resolve)));
  const port = (server.address() as AddressInfo).port;
  const basic = new PrometheusClient({ address: `http://reader:s3cret@127.0.0.1:${port}`, headers: { 'X-Scope-OrgID': 'ml-platform' } });
  await basic.query('up', AT);
  assert.equal(basic.address, `http://127.0.0.1:${port}`);
  await new PrometheusClient({ address: `http://127.0.0.1:${port}`, credentials: { kind: 'bearer', token: 't0k3n' } }).query('up', AT);
  assert.deepEqual(seen, [`Basic ${Buffer.from('reader:s3cret').toString('base64')} ml-platform`, 'Bearer t0k3n ']);
});

test('a live scrape: counts of a running exporter answer within the test', { skip: PROMETHEUS_MISSING }, async () => {
  // An Istio sidecar as a tiny exporter: stable serves 9 requests for every canary 1, growing as we go.
  let served = 0;
  const exporter = createServer((_request, response) => {
    served += 100;
    const lines = ['# TYPE istio_requests_total counter'];
    for (const [revision, share] of [['v1', 0.9], ['v2', 0.1]] as const) {
      lines.push(`istio_requests_total{${fraud(revision)},response_code="200"} ${served * share}`);
    }
    response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    response.end(`${lines.join('\n')}\n`);
  });
  await new Promise<void>((resolve) => exporter.listen(0, '127.0.0.1', resolve));
  after(() => new Promise((resolve) => exporter.close(resolve)));
  const live = await startPrometheus({ scrapeTargets: [`127.0.0.1:${(exporter.address() as AddressInfo).port}`], scrapeInterval: '1s' });
  after(() => live.stop());
  const provider = new PrometheusMetricsProvider(new PrometheusClient({ address: live.url, timeoutMs: 2000 }));
  const { stable, canary } = versionSelectors(fraudCanary);
  // Prometheus scrapes first about 5 s after it starts, then every second; poll, bounded.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const counts = await provider.counts([stable, canary], 10_000, new Date());
    const s = counts.get(stable.key);
    const c = counts.get(canary.key);
    if (s?.kind === 'counts' && c?.kind === 'counts' && c.counts.requests > 0) {
      // The split is the exporter's 9:1, within rounding of increase()'s extrapolation.
      const share = c.counts.requests / (s.counts.requests + c.counts.requests);
      assert.ok(Math.abs(share - 0.1) < 0.02, `canary share ${share}`);
      assert.equal(c.counts.errors, 0);
      return;
    }
    assert.ok(Date.now() < deadline, `no counts from the live scrape within 30 s: ${JSON.stringify([s, c])}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
});
