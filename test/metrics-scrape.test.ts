// The metrics provider without Prometheus: a real exporter (a prom-client Registry with Istio's
// two families behind a local HTTP server) scraped at instants set by an injected clock, so
// that every count below is exactly the requests made between two scrapes.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Histogram, Registry } from 'prom-client';
import { ISTIO_BUCKETS_MS, type Counts, type Histogram as HistogramCounts, type Sample } from '../src/api/observation.ts';
import { histogramQuantile } from '../src/analysis/histogram.ts';
import { parseExposition } from '../src/metrics/exposition.ts';
import { ScrapingMetricsProvider } from '../src/metrics/scrape-provider.ts';
import type { MetricsProvider, VersionSelector } from '../src/metrics/provider.ts';

const LABELS = ['reporter', 'destination_workload_namespace', 'destination_canonical_service', 'destination_canonical_revision', 'response_code'] as const;
type Labels = Record<(typeof LABELS)[number], string>;

/** 2026-01-01T00:00:00Z. */
const T0 = Date.UTC(2026, 0, 1);

interface Exporter {
  url: string;
  registry: Registry;
  server: Server;
  /** `n` requests answered `code` by `revision`, each taking `ms`, as one proxy reports them. */
  serve: (revision: string, n: number, options?: { code?: string; ms?: number; reporter?: string }) => void;
}

async function startExporter(): Promise<Exporter> {
  const registry = new Registry();
  const registers = [registry];
  const requests = new Counter({ name: 'istio_requests_total', help: 'Requests.', labelNames: LABELS, registers });
  const duration = new Histogram({ name: 'istio_request_duration_milliseconds', help: 'Request duration.', labelNames: LABELS, buckets: [...ISTIO_BUCKETS_MS], registers });
  const server = createServer((_request, response) => {
    void registry.metrics().then((text) => {
      response.writeHead(200, { 'content-type': registry.contentType });
      response.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => new Promise((resolve) => server.close(resolve)));
  const serve: Exporter['serve'] = (revision, n, { code = '200', ms = 42, reporter = 'destination' } = {}) => {
    const labels: Labels = { reporter, destination_workload_namespace: 'ml-serving', destination_canonical_service: 'fraud-detector', destination_canonical_revision: revision, response_code: code };
    requests.inc(labels, n);
    for (let i = 0; i < n; i++) duration.observe(labels, ms);
  };
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`, registry, server, serve };
}

/** A clock the test moves by hand. */
function manualClock(): { now: () => Date; set: (ms: number) => void } {
  let time = T0;
  return { now: () => new Date(time), set: (ms) => (time = ms) };
}

const version = (revision: string): VersionSelector => ({
  key: `ml-serving/fraud-detector/${revision}`,
  labels: { destination_workload_namespace: 'ml-serving', destination_canonical_service: 'fraud-detector', destination_canonical_revision: revision },
});

const pick = ({ requests, errors }: Counts): Pick<Counts, 'requests' | 'errors'> => ({ requests, errors });

/** The counts of a sample that must be counts, with the latency histogram every version exports. */
function countsOf(sample: Sample | undefined): Counts & { latency: HistogramCounts } {
  assert.equal(sample?.kind, 'counts', JSON.stringify(sample));
  const { latency } = sample.counts;
  assert.ok(latency !== undefined, 'a latency histogram');
  return { ...sample.counts, latency };
}

test('parseExposition reads samples, escapes, special values and timestamps, and skips comments', () => {
  const cases: [string, string, { name: string; labels: Record<string, string>; value: number }[]][] = [
    ['a bare sample', 'up 1', [{ name: 'up', labels: {}, value: 1 }]],
    ['comments and blank lines', '# HELP up Is it up.\n# TYPE up gauge\n\n  \nup 1\n', [{ name: 'up', labels: {}, value: 1 }]],
    ['labels, a trailing comma, a timestamp', 'rpc_total{code="200",method="get",} 1027 1395066363000', [{ name: 'rpc_total', labels: { code: '200', method: 'get' }, value: 1027 }]],
    ['blanks inside braces', 'rpc_total{ code = "200" , method="get" } 3', [{ name: 'rpc_total', labels: { code: '200', method: 'get' }, value: 3 }]],
    ['escaped backslash, quote and newline', String.raw`m{path="C:\\dir\\",q="say \"hi\"",text="two\nlines"} 1`, [{ name: 'm', labels: { path: 'C:\\dir\\', q: 'say "hi"', text: 'two\nlines' }, value: 1 }]],
    ['a closing brace and a comma inside a value', 'm{v="},{"} 2', [{ name: 'm', labels: { v: '},{' }, value: 2 }]],
    ['+Inf, -Inf, NaN and exponents', 'a +Inf\nb -Inf\nc NaN\nd 1.5e-3\ne -0.25', [
      { name: 'a', labels: {}, value: Infinity },
      { name: 'b', labels: {}, value: -Infinity },
      { name: 'c', labels: {}, value: NaN },
      { name: 'd', labels: {}, value: 0.0015 },
      { name: 'e', labels: {}, value: -0.25 },
    ]],
    ['the le label of +Inf is a string', 'h_bucket{le="+Inf"} 7', [{ name: 'h_bucket', labels: { le: '+Inf' }, value: 7 }]],
    ['CRLF line ends', 'a 1\r\nb 2\r\n', [{ name: 'a', labels: {}, value: 1 }, { name: 'b', labels: {}, value: 2 }]],
  ];
  for (const [name, text, expected] of cases) assert.deepEqual(parseExposition(text), expected, name);
});

test('a malformed line is refused with its number and what is wrong', () => {
  const cases: [string, string, RegExp][] = [
    ['a value that is not a number', 'up 1\n# TYPE x counter\nx_total abc', /line 3: invalid value "abc"/],
    ['no value', 'up', /line 1: missing value/],
    ['an unterminated label value', 'up 1\nm{a="b} 1', /line 2: unterminated value of label a/],
    ['an unknown escape', 'm{a="\\t"} 1', /line 1: invalid escape sequence in the value of label a/],
    ['an unterminated label set', 'm{a="b" 1', /line 1: expected "," or "}" after label a/],
    ['a duplicate label', 'm{a="1",a="2"} 1', /line 1: duplicate label a/],
    ['an unquoted label value', 'm{a=1} 1', /line 1: expected a quoted value for label a/],
    ['a bad timestamp', 'm 1 yesterday', /line 1: invalid timestamp "yesterday"/],
    ['text after the timestamp', 'm 1 2 3', /line 1: unexpected text after the timestamp/],
    ['no metric name', '{a="b"} 1', /line 1: expected a metric name/],
  ];
  for (const [name, text, message] of cases) assert.throws(() => parseExposition(text), message, name);
});

test("parseExposition round-trips prom-client's output, escaped label values included", async () => {
  const registry = new Registry();
  const counter = new Counter({ name: 'odd_total', help: 'Help with a \\ backslash\nand a newline.', labelNames: ['v'], registers: [registry] });
  const odd = 'a "quoted" \\ back\\slash\nnew line, {braces}';
  counter.inc({ v: odd }, 3);
  counter.inc({ v: 'plain' });
  const histogram = new Histogram({ name: 'latency_ms', help: 'Latency.', buckets: [1, 10], registers: [registry] });
  histogram.observe(5);
  assert.deepEqual(parseExposition(await registry.metrics()), [
    { name: 'odd_total', labels: { v: odd }, value: 3 },
    { name: 'odd_total', labels: { v: 'plain' }, value: 1 },
    { name: 'latency_ms_bucket', labels: { le: '1' }, value: 0 },
    { name: 'latency_ms_bucket', labels: { le: '10' }, value: 1 },
    { name: 'latency_ms_bucket', labels: { le: '+Inf' }, value: 1 },
    { name: 'latency_ms_sum', labels: {}, value: 5 },
    { name: 'latency_ms_count', labels: {}, value: 1 },
  ]);
});

test('counts over a window are exactly the requests between its two scrapes, as the destination proxy saw them', async () => {
  const exporter = await startExporter();
  const clock = manualClock();
  const provider = new ScrapingMetricsProvider({ url: exporter.url, now: clock.now });
  const stable = version('v1');
  const canary = version('v2');

  exporter.serve('v1', 500); // before the window: never counted
  await provider.scrapeNow();
  clock.set(T0 + 30_000);
  exporter.serve('v1', 70, { ms: 20 });
  await provider.scrapeNow();
  clock.set(T0 + 60_000);
  exporter.serve('v1', 95, { ms: 80 });
  exporter.serve('v1', 3, { code: '503', ms: 400 });
  exporter.serve('v1', 2, { code: '404', ms: 3 }); // a request, not a server error
  exporter.serve('v1', 1000, { code: '503', reporter: 'source' }); // the gateway's view of the same requests
  // The canary's series appear only now, inside the window: counted from 0.
  exporter.serve('v2', 9, { ms: 150 });
  exporter.serve('v2', 1, { code: '500', ms: 150 });
  await provider.scrapeNow();

  const last30s = await provider.counts([stable, canary], 30_000, clock.now());
  assert.deepEqual(pick(countsOf(last30s.get(stable.key))), { requests: 100, errors: 3 });
  assert.deepEqual(pick(countsOf(last30s.get(canary.key))), { requests: 10, errors: 1 });

  // A query at an instant between scrapes ends at the newest scrape before it.
  const earlier = await provider.counts([stable], 30_000, new Date(T0 + 59_000));
  assert.deepEqual(pick(countsOf(earlier.get(stable.key))), { requests: 70, errors: 0 });

  // A window longer than the history is measured from the oldest scrape.
  const lastHour = await provider.counts([stable], 3_600_000, clock.now());
  assert.deepEqual(pick(countsOf(lastHour.get(stable.key))), { requests: 170, errors: 3 });
});

test('totals are the counters at the newest scrape, for differences between two looks', async () => {
  const exporter = await startExporter();
  const clock = manualClock();
  const provider = new ScrapingMetricsProvider({ url: exporter.url, now: clock.now });
  const stable = version('v1');
  const canary = version('v2');
  const before = await provider.totals([stable], clock.now());
  assert.equal(before.get(stable.key)?.kind, 'error', 'no scrape yet');
  exporter.serve('v1', 40, { ms: 20 });
  exporter.serve('v1', 2, { code: '503', ms: 20 });
  await provider.scrapeNow();
  clock.set(T0 + 5_000);
  exporter.serve('v1', 8, { ms: 20 });
  await provider.scrapeNow();
  const totals = await provider.totals([stable, canary], clock.now());
  assert.deepEqual(pick(countsOf(totals.get(stable.key))), { requests: 50, errors: 2 });
  assert.equal(totals.get(canary.key)?.kind, 'noData', 'a version without series has served nothing yet');
});

test("the latency histogram is the engine's quantile input: Istio's bounds ascending, the last count the total", async () => {
  const exporter = await startExporter();
  const clock = manualClock();
  const provider = new ScrapingMetricsProvider({ url: exporter.url, now: clock.now });
  const stable = version('v1');
  exporter.serve('v1', 10, { ms: 7 });
  await provider.scrapeNow();
  clock.set(T0 + 60_000);
  // 100 requests: 90 in (25, 50], 10 in (250, 500].
  exporter.serve('v1', 90, { ms: 30 });
  exporter.serve('v1', 10, { ms: 300 });
  await provider.scrapeNow();

  const { requests, latency } = countsOf((await provider.counts([stable], 60_000, clock.now())).get(stable.key));
  assert.deepEqual(latency.bounds, ISTIO_BUCKETS_MS);
  assert.deepEqual(latency.cumulative, [...ISTIO_BUCKETS_MS.map((b) => (b < 50 ? 0 : b < 500 ? 90 : 100)), 100]);
  assert.equal(latency.cumulative.at(-1), requests);
  assert.equal(histogramQuantile(0.5, latency), 25 + 25 * (50 / 90));
  assert.equal(histogramQuantile(0.95, latency), 250 + 250 * (5 / 10));
});

test('a counter reset counts the new value, as increase() does', async () => {
  const exporter = await startExporter();
  const clock = manualClock();
  const provider = new ScrapingMetricsProvider({ url: exporter.url, now: clock.now });
  const stable = version('v1');
  exporter.serve('v1', 500);
  await provider.scrapeNow();
  clock.set(T0 + 30_000);
  exporter.registry.resetMetrics(); // the proxy restarted
  exporter.serve('v1', 12);
  await provider.scrapeNow();
  assert.equal(countsOf((await provider.counts([stable], 30_000, clock.now())).get(stable.key)).requests, 12);
});

test('no data, with the reason, for a version with no series and before a second scrape', async () => {
  const exporter = await startExporter();
  const clock = manualClock();
  const provider = new ScrapingMetricsProvider({ url: exporter.url, now: clock.now });
  const stable = version('v1');
  const unknown = version('v7');
  exporter.serve('v1', 5);
  exporter.serve('v7', 5, { reporter: 'source' }); // only the gateway saw it: it never reached v7
  await provider.scrapeNow();
  assert.deepEqual(await provider.counts([stable], 30_000, clock.now()), new Map([[stable.key, { kind: 'noData', reason: 'only one scrape so far' }]]));

  clock.set(T0 + 30_000);
  await provider.scrapeNow();
  const answers = await provider.counts([stable, unknown], 30_000, clock.now());
  assert.equal(countsOf(answers.get(stable.key)).requests, 0);
  const none = answers.get(unknown.key);
  assert.equal(none?.kind, 'noData');
  assert.match(none.reason, /no istio_requests_total series for \{.*destination_canonical_revision="v7".*\}/);
});

test('an endpoint that is down is an error, never a count', async () => {
  const exporter = await startExporter();
  const clock = manualClock();
  const stable = version('v1');

  const closed = await startExporter();
  await new Promise((resolve) => closed.server.close(resolve));
  const never = new ScrapingMetricsProvider({ url: closed.url, now: clock.now });
  await never.scrapeNow();
  const first = (await never.counts([stable], 30_000, clock.now())).get(stable.key);
  assert.equal(first?.kind, 'error');
  assert.match(first.message, new RegExp(`no scrape of ${closed.url} yet; scrape of ${closed.url} failed: .*ECONNREFUSED`));

  const provider = new ScrapingMetricsProvider({ url: exporter.url, now: clock.now });
  exporter.serve('v1', 5);
  await provider.scrapeNow();
  clock.set(T0 + 30_000);
  exporter.serve('v1', 5);
  await provider.scrapeNow();
  exporter.server.closeAllConnections();
  await new Promise((resolve) => exporter.server.close(resolve));
  clock.set(T0 + 60_000);
  await provider.scrapeNow();
  const down = (await provider.counts([stable], 30_000, clock.now())).get(stable.key);
  assert.equal(down?.kind, 'error');
  assert.match(down.message, /failed/);
  // The history is kept: a window that ended before the failure is still answered.
  assert.equal(countsOf((await provider.counts([stable], 30_000, new Date(T0 + 30_000))).get(stable.key)).requests, 5);
});

test('an exporter answering garbage or an HTTP error is an error naming the cause', async () => {
  const clock = manualClock();
  const stable = version('v1');
  const cases: [string, () => Promise<string>, RegExp][] = [
    ['garbage', () => Promise.resolve('<html>oops</html>'), /exposition line 1: expected a metric name/],
    ['a thrown error', () => Promise.reject(new Error('HTTP 503 Service Unavailable')), /HTTP 503/],
  ];
  for (const [name, fetchText, message] of cases) {
    const provider = new ScrapingMetricsProvider({ url: 'http://exporter/metrics', now: clock.now, fetchText });
    await provider.scrapeNow();
    const sample = (await provider.counts([stable], 30_000, clock.now())).get(stable.key);
    assert.equal(sample?.kind, 'error', name);
    assert.match(sample.message, message, name);
  }
});

test('start() scrapes at once, history older than retainMs is dropped', async () => {
  const clock = manualClock();
  const stable = version('v1');
  let served = 0;
  const fetchText = (): Promise<string> => {
    served += 10;
    return Promise.resolve(`istio_requests_total{reporter="destination",destination_workload_namespace="ml-serving",destination_canonical_service="fraud-detector",destination_canonical_revision="v1",response_code="200"} ${served}\n`);
  };
  const provider = new ScrapingMetricsProvider({ url: 'http://exporter/metrics', now: clock.now, fetchText, intervalMs: 3_600_000, retainMs: 60_000 });
  provider.start();
  provider.stop();
  await provider.scrapeNow(); // queued behind the scrape start() began
  assert.equal(served, 20, 'start() scraped once at once');
  for (const seconds of [30, 90]) {
    clock.set(T0 + seconds * 1000);
    await provider.scrapeNow();
  }
  // Scrapes of 10 and 20 at 0 s, 30 at 30 s, 40 at 90 s: those at 0 s are past retainMs, so an hour reaches back only to 30 s.
  const sample = (await provider.counts([stable], 3_600_000, clock.now())).get(stable.key);
  assert.deepEqual(sample, { kind: 'counts', counts: { requests: 10, errors: 0, latency: undefined } });
});

test('custom PromQL queries are refused with what to install', async () => {
  const provider: MetricsProvider = new ScrapingMetricsProvider({ url: 'http://exporter/metrics' });
  assert.deepEqual(await provider.value('sum(rate(model_inference_errors_total[5m]))', new Date(T0)), {
    kind: 'error',
    message: "custom PromQL queries need Prometheus; this provider reads the mesh's counters directly (install prometheus: apt-get install -y prometheus)",
  });
});
