// The outliers check: ejections of canary endpoints by Envoy's outlier detection, which hide a
// failing pod from every 5xx check (an ejected pod answers nothing). A table of verdicts, and
// the query against the real Prometheus with the cluster names Istio's proxies report.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkModelCanary } from '../src/api/validate.ts';
import type { Analysis, Metric, ModelCanary } from '../src/api/modelcanary.ts';
import type { Sample, VersionPair } from '../src/api/observation.ts';
import { judgeMetric } from '../src/analysis/verdicts.ts';
import { PrometheusClient } from '../src/metrics/prometheus-client.ts';
import { PrometheusMetricsProvider } from '../src/metrics/prometheus-provider.ts';
import { clusterNamePattern, observeAll, outlierQuery } from '../src/metrics/observe.ts';
import { PROMETHEUS_MISSING, startPrometheus, type RunningPrometheus } from './helpers/prometheus.ts';
import { istioManifest } from './helpers/manifests.ts';

function canaryWith(edit: (m: Record<string, any>) => void = () => undefined): ModelCanary {
  const manifest = istioManifest();
  manifest.spec.analysis.metrics = [{ name: 'error-rate', type: 'errorRate', max: 0.01 }, { name: 'ejections', type: 'outliers' }];
  edit(manifest);
  const checked = checkModelCanary(manifest);
  assert.ok(checked.ok, JSON.stringify(checked.ok ? '' : checked.problems));
  return checked.value;
}

const CANARY = canaryWith();
const ANALYSIS: Analysis = CANARY.spec.analysis;
const OUTLIERS = ANALYSIS.metrics[1] as Metric;
const value = (v: number): Sample => ({ kind: 'value', value: v });
const none: Sample = { kind: 'noData', reason: 'empty result' };

test('outliers: one verdict per situation', () => {
  const cases: { name: string; metric?: Metric; samples: VersionPair<Sample>; traffic?: VersionPair<number>; verdict: string; reason: RegExp; severe?: boolean }[] = [
    { name: 'no ejections anywhere', samples: { stable: value(0), canary: value(0) }, verdict: 'pass', reason: /ejected 0 times in the window, stable's 0: within maxEjections 0/ },
    { name: 'one canary ejection, none on stable: rolled back at once', samples: { stable: value(0), canary: value(1) }, verdict: 'fail', severe: true, reason: /ejected 1 time .*above maxEjections 0\. Envoy's outlier detection took canary endpoints out of service/ },
    { name: 'increase() extrapolates: 0.4 is no ejection', samples: { stable: value(0), canary: value(0.4) }, verdict: 'pass', reason: /ejected 0 times/ },
    { name: 'tolerated by maxEjections', metric: { ...OUTLIERS, maxEjections: 2 } as Metric, samples: { stable: value(0), canary: value(2) }, verdict: 'pass', reason: /within maxEjections 2/ },
    {
      name: 'stable ejects too: its share at the canary\'s traffic is allowed',
      samples: { stable: value(9), canary: value(1) },
      traffic: { stable: 900, canary: 100 },
      verdict: 'pass',
      reason: /within maxEjections 0 plus stable's share 1/,
    },
    { name: 'more than stable\'s share: a failed check, not a spike', samples: { stable: value(9), canary: value(4) }, traffic: { stable: 900, canary: 100 }, verdict: 'fail', severe: false, reason: /above maxEjections 0 plus stable's share at the canary's traffic, 1/ },
    { name: 'no stats at all: what to enable in Istio', samples: { stable: none, canary: none }, verdict: 'inconclusive', reason: /no outlier stats for either version.*proxyStatsMatcher\.inclusionRegexps.*outlier_detection/ },
    { name: 'no stats for the canary only', samples: { stable: value(0), canary: none }, verdict: 'inconclusive', reason: /no outlier stats for the canary/ },
    { name: 'Prometheus down', samples: { stable: { kind: 'error', message: 'connection refused' }, canary: value(0) }, verdict: 'error', reason: /could not measure stable's ejections: connection refused/ },
  ];
  for (const c of cases) {
    const verdict = judgeMetric(c.metric ?? OUTLIERS, c.samples, ANALYSIS, c.traffic ?? { stable: 1000, canary: 100 });
    assert.equal(verdict.verdict, c.verdict, `${c.name}: ${verdict.reason}`);
    assert.match(verdict.reason, c.reason, c.name);
    if (c.severe !== undefined) assert.equal(verdict.severe, c.severe, c.name);
  }
});

test('the cluster_name a version is found by: outbound|port|subset|host FQDN, or the user\'s own', () => {
  assert.equal(clusterNamePattern(CANARY, 'canary'), 'outbound\\|[0-9]+\\|v2\\|fraud-detector\\.ml-serving\\.svc\\.cluster\\.local');
  const withPort = canaryWith((m) => (m.spec.canary.destination = { host: 'fraud.example.com', subset: 'v2', port: 8080 }));
  assert.equal(clusterNamePattern(withPort, 'canary'), 'outbound\\|8080\\|v2\\|fraud\\.example\\.com');
  const own = canaryWith((m) => (m.spec.analysis.metrics[1].clusterName = { stable: 'outbound\\|80\\|\\|fraud-v1\\..*', canary: 'outbound\\|80\\|\\|fraud-v2\\..*' }));
  assert.match(outlierQuery(own, 'ejections', 'canary', 30_000) ?? '', /cluster_name=~"outbound\\\\\|80\\\\\|\\\\\|fraud-v2\\\\\.\.\*"/);
});

// ── against the real Prometheus ─────────────────────────────────────────────────────────

const T0 = 1767225600;
const AT = new Date((T0 + 300) * 1000);
const cluster = (subset: string): string => `outbound|8080|${subset}|fraud-detector.ml-serving.svc.cluster.local`;

function fixture(): string {
  const lines: string[] = [];
  // The canary's pod 3 was ejected just before the window began and is still out: the counter
  // does not move inside the window, the gauge shows it.
  lines.push('# TYPE envoy_cluster_outlier_detection_ejections_active gauge');
  for (let t = 0; t <= 600; t += 15) lines.push(`envoy_cluster_outlier_detection_ejections_active{cluster_name="${cluster('v3')}",pod="gw-a"} ${t >= 140 ? 1 : 0} ${T0 + t}`);
  lines.push('# TYPE envoy_cluster_outlier_detection_ejections_enforced_total counter');
  // Two gateway pods report each cluster; the canary's bad pod is ejected three times in the
  // last two minutes (once seen by one gateway, twice by the other). "v20" is another subset
  // whose name starts like v2's, and must not be counted.
  const series: [string, string, (t: number) => number][] = [
    [cluster('v1'), 'gw-a', () => 0],
    [cluster('v1'), 'gw-b', () => 0],
    [cluster('v2'), 'gw-a', (t) => (t >= 200 ? 1 : 0)],
    [cluster('v2'), 'gw-b', (t) => (t >= 240 ? 2 : t >= 210 ? 1 : 0)],
    [cluster('v20'), 'gw-a', (t) => Math.floor(t / 15)],
    [cluster('v3'), 'gw-a', (t) => (t >= 140 ? 1 : 0)],
  ];
  for (const [name, pod, at] of series) for (let t = 0; t <= 600; t += 15) lines.push(`envoy_cluster_outlier_detection_ejections_enforced_total{cluster_name="${name}",pod="${pod}"} ${at(t)} ${T0 + t}`);
  lines.push('# EOF');
  return `${lines.join('\n')}\n`;
}

let prometheus: RunningPrometheus | undefined;
before(async () => {
  if (PROMETHEUS_MISSING === undefined) prometheus = await startPrometheus({ openMetrics: fixture() });
});
after(() => prometheus?.stop());

test('on the real Prometheus: each version\'s ejections in the check\'s window, summed over the reporting proxies, and nothing of a look-alike subset', { skip: PROMETHEUS_MISSING }, async () => {
  assert.ok(prometheus !== undefined);
  const provider = new PrometheusMetricsProvider(new PrometheusClient({ address: prometheus.url, timeoutMs: 5000 }));
  const observed = (await observeAll(provider, [CANARY], 150_000, AT)).get('ml-serving/fraud-detector');
  const ejections = observed?.custom.ejections;
  assert.ok(ejections?.canary.kind === 'value' && ejections.stable.kind === 'value', JSON.stringify(ejections));
  assert.equal(Math.round(ejections.canary.value), 3);
  assert.equal(ejections.stable.value, 0);
  // Ejected as the window began: the counter shows nothing in the window, the gauge does.
  const v3 = canaryWith((m) => (m.spec.canary = { version: 'v3', destination: { host: 'fraud-detector', subset: 'v3' } }));
  const early = (await observeAll(provider, [v3], 150_000, AT)).get('ml-serving/fraud-detector')?.custom.ejections;
  assert.ok(early?.canary.kind === 'value', JSON.stringify(early));
  assert.equal(Math.round(early.canary.value), 1);
  // Without the stats (another namespace's ModelCanary): inconclusive, with the fix.
  const elsewhere = canaryWith((m) => (m.metadata.namespace = 'elsewhere'));
  const missing = (await observeAll(provider, [elsewhere], 150_000, AT)).get('elsewhere/fraud-detector')?.custom.ejections;
  assert.ok(missing !== undefined);
  const verdict = judgeMetric(OUTLIERS, missing, ANALYSIS, { stable: 1000, canary: 100 });
  assert.equal(verdict.verdict, 'inconclusive');
  assert.match(verdict.reason, /proxyStatsMatcher/);
});
