// The Prometheus harness against the real server: backfilled fixtures answer PromQL with values
// worked out by hand (Prometheus 2.42's increase() extrapolation included), a live exporter is
// scraped, and stop() leaves nothing listening. Later metrics tests build on these behaviours.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PROMETHEUS_MISSING, startPrometheus, type RunningPrometheus } from './helpers/prometheus.ts';

/** 2026-01-01T00:00:00Z in seconds, the start of every fixture here. */
const T0 = 1767225600;
const STEP = 15;
/** Samples at T0, T0+15 s, …, T0+600 s: ten minutes. */
const STEPS = 40;

const ISTIO_LABELS =
  'reporter="destination",destination_workload_namespace="ml",destination_canonical_service="m",destination_canonical_revision="v1"';

/** The counter grows by 30 every 15 s (2 requests/s) from 1000. */
function requestsAt(step: number): number {
  return 1000 + 30 * step;
}

/** Cumulative bucket growth per 15 s for a few of Istio's default bucket bounds (ms). */
const BUCKET_GROWTH: [string, number][] = [
  ['10', 30],
  ['25', 60],
  ['50', 80],
  ['100', 90],
  ['250', 98],
  ['500', 100],
  ['1000', 100],
  ['+Inf', 100],
];
/** Growth of _sum per 15 s: each bucket's requests at its midpoint (30·5 + 30·17.5 + 20·37.5 + 10·75 + 8·175 + 2·375). */
const SUM_GROWTH = 4325;

function fixture(): string {
  const lines = ['# TYPE istio_requests counter'];
  for (let step = 0; step <= STEPS; step++) {
    lines.push(`istio_requests_total{${ISTIO_LABELS},response_code="200"} ${requestsAt(step)} ${T0 + step * STEP}`);
  }
  lines.push('# TYPE istio_request_duration_milliseconds histogram');
  // One timestamp at a time, so each series stays in ascending time order as promtool needs.
  for (let step = 0; step <= STEPS; step++) {
    const t = T0 + step * STEP;
    for (const [le, growth] of BUCKET_GROWTH) {
      lines.push(`istio_request_duration_milliseconds_bucket{${ISTIO_LABELS},le="${le}"} ${growth * step} ${t}`);
    }
    lines.push(`istio_request_duration_milliseconds_sum{${ISTIO_LABELS}} ${SUM_GROWTH * step} ${t}`);
    lines.push(`istio_request_duration_milliseconds_count{${ISTIO_LABELS}} ${100 * step} ${t}`);
  }
  lines.push('# EOF');
  return lines.join('\n') + '\n';
}

interface Sample {
  metric: Record<string, string>;
  value: number;
}

/** An instant query over the HTTP API; `time` in seconds, or Prometheus's now. */
async function query(prometheus: RunningPrometheus, promql: string, time?: number): Promise<Sample[]> {
  const params = new URLSearchParams({ query: promql });
  if (time !== undefined) params.set('time', String(time));
  const response = await fetch(`${prometheus.url}/api/v1/query?${params.toString()}`);
  const body = (await response.json()) as { status: string; error?: string; data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } };
  assert.equal(body.status, 'success', `${promql}: ${body.error ?? ''}`);
  assert.equal(body.data?.resultType, 'vector', promql);
  return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
}

async function only(prometheus: RunningPrometheus, promql: string, time?: number): Promise<number> {
  const result = await query(prometheus, promql, time);
  assert.equal(result.length, 1, `${promql} at ${time ?? 'now'}: ${JSON.stringify(result)}`);
  return (result[0] as Sample).value;
}

test('backfilled Istio counters and histograms answer PromQL exactly', { skip: PROMETHEUS_MISSING }, async () => {
  const prometheus = await startPrometheus({ openMetrics: fixture() });
  after(() => prometheus.stop());

  // A raw sample at its own timestamp.
  assert.equal(await only(prometheus, 'istio_requests_total', T0 + 300), requestsAt(20));

  // Window [T0+240, T0+300] holds samples at both ends, 60 s apart: no extrapolation, 4 × 30.
  assert.equal(await only(prometheus, 'increase(istio_requests_total[1m])', T0 + 300), 120);

  // 30 s after the last sample, window [T0+570, T0+630] holds T0+570, T0+585, T0+600: 60 more
  // requests over 30 s. Prometheus extrapolates to a window edge only when the gap is under
  // 1.1 × the average sample spacing (16.5 s); the 30 s gap at the end is longer, so it
  // extends by half the spacing instead: 60 × (30 + 0 + 7.5) / 30 = 75.
  assert.equal(await only(prometheus, 'increase(istio_requests_total[1m])', T0 + 630), 75);

  // Over [T0+300, T0+600] each bucket grows 20 × its step: le=250 by 1960, le=500 and +Inf by
  // 2000. The 0.99 rank is 1980, inside le=500: 250 + (500 − 250) × (1980 − 1960) / 40 = 375.
  const p99 = 'histogram_quantile(0.99, sum by (le) (increase(istio_request_duration_milliseconds_bucket[5m])))';
  assert.equal(await only(prometheus, p99, T0 + 600), 375);

  // The mean from _sum and _count: 20 × 4325 / (20 × 100).
  const mean = 'increase(istio_request_duration_milliseconds_sum[5m]) / increase(istio_request_duration_milliseconds_count[5m])';
  assert.equal(await only(prometheus, mean, T0 + 600), 43.25);
});

test('a live exporter is scraped at its loopback address', { skip: PROMETHEUS_MISSING }, async () => {
  let requests = 5;
  const served = new Set<number>();
  const exporter = createServer((_request, response) => {
    served.add(requests);
    response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    response.end(
      '# HELP istio_requests_total Requests.\n' +
        '# TYPE istio_requests_total counter\n' +
        `istio_requests_total{${ISTIO_LABELS},response_code="200"} ${requests}\n`,
    );
  });
  await new Promise<void>((resolve) => exporter.listen(0, '127.0.0.1', resolve));
  after(() => new Promise((resolve) => exporter.close(resolve)));
  const target = `127.0.0.1:${(exporter.address() as AddressInfo).port}`;

  const prometheus = await startPrometheus({ scrapeTargets: [target], scrapeInterval: '1s' });
  after(() => prometheus.stop());

  // The first scrape comes ~5 s after start (see the harness); later ones every second.
  const scraped = async (accept: (value: number) => boolean): Promise<Sample> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const [sample] = await query(prometheus, 'istio_requests_total');
      if (sample !== undefined && accept(sample.value)) return sample;
      assert.ok(Date.now() < deadline, `no accepted istio_requests_total from ${target} within 30 s; last: ${JSON.stringify(sample)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };

  const first = await scraped(() => true);
  assert.ok(served.has(first.value), `${first.value} was never served (served: ${[...served].join(', ')})`);
  assert.equal(first.metric.job, 'mesh');
  assert.equal(first.metric.instance, target);
  assert.equal(first.metric.destination_canonical_revision, 'v1');

  requests += 10;
  const later = await scraped((value) => value === requests);
  assert.equal(later.value, 15);
});

test('stop() ends the server and removes its files', { skip: PROMETHEUS_MISSING }, async () => {
  const prometheus = await startPrometheus({});
  after(() => prometheus.stop());
  assert.equal((await fetch(`${prometheus.url}/-/ready`)).status, 200);

  await prometheus.stop();
  await assert.rejects(fetch(`${prometheus.url}/-/ready`), (error: any) => {
    assert.equal(error.cause?.code, 'ECONNREFUSED');
    return true;
  });
  assert.equal(existsSync(prometheus.dataDir), false);
  await prometheus.stop();
});
