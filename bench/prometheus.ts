// Batching against a real Prometheus: 1,000 ModelCanaries × 2 versions, their Istio series
// backfilled (requests by 2xx/5xx, and the 20 latency buckets), one interval's evidence
// fetched batched and canary by canary.

import { checkModelCanary } from '../src/api/validate.ts';
import type { ModelCanary } from '../src/api/modelcanary.ts';
import { ISTIO_BUCKETS_MS } from '../src/analysis/histogram.ts';
import { PrometheusClient } from '../src/metrics/prometheus-client.ts';
import { PrometheusMetricsProvider } from '../src/metrics/prometheus-provider.ts';
import { observeAll } from '../src/metrics/observe.ts';
import { PROMETHEUS_MISSING, startPrometheus } from '../test/helpers/prometheus.ts';

const CANARIES = 1000;
const T0 = 1767225600;
const SAMPLES = 5; // one minute at a 15 s scrape interval

function manifest(i: number): ModelCanary {
  const checked = checkModelCanary({
    apiVersion: 'modelcanary.io/v1alpha1',
    kind: 'ModelCanary',
    metadata: { name: `model-${i}`, namespace: `team-${i % 20}` },
    spec: {
      model: `model-${i}`,
      stable: { version: 'v1', destination: { host: `model-${i}`, subset: 'v1' } },
      canary: { version: 'v2', destination: { host: `model-${i}`, subset: 'v2' } },
      trafficRouting: { istio: { virtualService: `model-${i}` } },
      analysis: { interval: '1m', metrics: [{ name: 'error-rate', type: 'errorRate', max: 0.01 }, { name: 'p99', type: 'latency', quantile: 0.99, maxMs: 500 }] },
    },
  });
  if (!checked.ok) throw new Error(JSON.stringify(checked.problems));
  return checked.value;
}

function fixture(canaries: ModelCanary[]): string {
  const lines = ['# TYPE istio_requests counter'];
  const versions = canaries.flatMap((c) =>
    (['v1', 'v2'] as const).map(
      (v) => `reporter="destination",destination_workload_namespace="${c.metadata.namespace ?? ''}",destination_canonical_service="${c.spec.model}",destination_canonical_revision="${v}"`,
    ),
  );
  for (const labels of versions) {
    for (const code of ['200', '503']) for (let s = 0; s < SAMPLES; s++) lines.push(`istio_requests_total{${labels},response_code="${code}"} ${(code === '200' ? 99 : 1) * s} ${T0 + 15 * s}`);
  }
  lines.push('# TYPE istio_request_duration_milliseconds histogram');
  for (let s = 0; s < SAMPLES; s++) {
    for (const labels of versions) {
      for (const le of [...ISTIO_BUCKETS_MS.map(String), '+Inf']) lines.push(`istio_request_duration_milliseconds_bucket{${labels},le="${le}"} ${(Number(le) >= 100 || le === '+Inf' ? 100 : 50) * s} ${T0 + 15 * s}`);
    }
  }
  lines.push('# EOF');
  return `${lines.join('\n')}\n`;
}

/** Runs `work` over items with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await work(items[next++] as T);
  }));
}

export async function prometheusTable(): Promise<string> {
  if (PROMETHEUS_MISSING !== undefined) return `skipped: ${PROMETHEUS_MISSING}`;
  const canaries = Array.from({ length: CANARIES }, (_, i) => manifest(i));
  const started = performance.now();
  const prometheus = await startPrometheus({ openMetrics: fixture(canaries) });
  const setup = (performance.now() - started) / 1000;
  try {
    const at = new Date((T0 + 60) * 1000);
    const measure = async (fetch: (provider: PrometheusMetricsProvider) => Promise<unknown>): Promise<{ queries: number; seconds: number }> => {
      const client = new PrometheusClient({ address: prometheus.url, timeoutMs: 60_000 });
      const provider = new PrometheusMetricsProvider(client);
      const t = performance.now();
      await fetch(provider);
      return { queries: client.sent, seconds: (performance.now() - t) / 1000 };
    };
    // Warm Prometheus's caches once, so neither approach pays for the first touch of the blocks.
    await measure((p) => observeAll(p, canaries, 60_000, at));
    const batched = await measure(async (p) => {
      const observations = await observeAll(p, canaries, 60_000, at);
      const answered = [...observations.values()].filter((o) => o.sinceLastCheck.canary.kind === 'counts').length;
      if (answered !== CANARIES) throw new Error(`batched fetch answered ${answered} of ${CANARIES} canaries`);
    });
    const perCanary = await measure((p) => pool(canaries, 8, (c) => observeAll(p, [c], 60_000, at)));
    return [
      `${CANARIES} ModelCanaries × 2 versions; ${CANARIES * 2 * 22} series backfilled and Prometheus started in ${setup.toFixed(1)} s.`,
      '',
      '| one interval\'s evidence | queries sent | time |',
      '| --- | ---: | ---: |',
      `| batched (one query per metric family) | ${batched.queries} | ${batched.seconds.toFixed(2)} s |`,
      `| canary by canary (8 in flight) | ${perCanary.queries} | ${perCanary.seconds.toFixed(2)} s |`,
    ].join('\n');
  } finally {
    await prometheus.stop();
  }
}
