// The LLM presets against the real Prometheus: backfilled vLLM and endpoint-picker series with
// the exporters' own names, labels and buckets (src/api/presets.ts names the source files), read
// through observeAll and judged by the engine. What a user would notice: a TTFT regression
// fails with confidence bounds and a healthy canary passes; the engine's TTFT quantile is
// Prometheus's histogram_quantile; vLLM 0.11, which emits the inter-token histogram under its
// old and new names, is not counted twice; the endpoint picker's errors and its pre-1.1 names
// are read; missing series say which exporter and labels were expected; and long requests are
// not judged until those started before the step have finished.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkModelCanary } from '../src/api/validate.ts';
import type { ModelCanary } from '../src/api/modelcanary.ts';
import type { Sample } from '../src/api/observation.ts';
import { histogramQuantile } from '../src/analysis/histogram.ts';
import { decide, startState } from '../src/analysis/engine.ts';
import { PrometheusMetricsProvider } from '../src/metrics/prometheus-provider.ts';
import { observeAll } from '../src/metrics/observe.ts';
import { PROMETHEUS_MISSING, prometheusWith } from './helpers/prometheus.ts';

const T0 = 1767225600;
const STEP = 15;
const STEPS = 40;
const AT = new Date((T0 + 300) * 1000);

// Bucket bounds in seconds, as the exporters declare them (vllm/v1/metrics/loggers.py; the
// endpoint picker's generalLatencyBuckets in pkg/epp/metrics/metrics.go).
const VLLM_TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0];
const VLLM_ITL = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];
const EPP_LATENCY = [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600];

/** Cumulative growth per 15 s at each bound: the count at the first bound ≥ each key, carried up. */
function growth(bounds: readonly number[], at: Readonly<Record<number, number>>, total: number): number[] {
  let last = 0;
  return bounds.map((b) => (last = at[b] ?? last)).concat(total);
}

interface Family {
  name: string;
  bounds: readonly number[];
  series: { labels: string; perStep: number[] }[];
}

const vllm = (model: string): string => `model_name="${model}",engine="0"`;
const epp = (target: string): string => `model_name="chat",target_model_name="${target}"`;

const HISTOGRAMS: Family[] = [
  {
    name: 'vllm:time_to_first_token_seconds',
    bounds: VLLM_TTFT,
    series: [
      { labels: vllm('chat-v1'), perStep: growth(VLLM_TTFT, { 0.1: 20, 0.25: 70, 0.5: 95, 0.75: 99, 1.0: 100 }, 100) },
      { labels: vllm('chat-v2'), perStep: growth(VLLM_TTFT, { 0.1: 5, 0.25: 18, 0.5: 24, 0.75: 25 }, 25) },
      // A TTFT regression: most first tokens take over a second.
      { labels: vllm('chat-v3'), perStep: growth(VLLM_TTFT, { 0.5: 2, 0.75: 8, 1.0: 15, 2.5: 25 }, 25) },
    ],
  },
  // vLLM before 0.11: only the old name.
  { name: 'vllm:time_per_output_token_seconds', bounds: VLLM_ITL, series: [{ labels: vllm('chat-v1'), perStep: growth(VLLM_ITL, { 0.025: 300, 0.05: 900, 0.075: 990, 0.1: 1000 }, 1000) }] },
  // vLLM 0.11 emits both names with the same counts (chat-v2 below and above).
  { name: 'vllm:inter_token_latency_seconds', bounds: VLLM_ITL, series: [{ labels: vllm('chat-v2'), perStep: growth(VLLM_ITL, { 0.025: 70, 0.05: 220, 0.075: 248, 0.1: 250 }, 250) }] },
  { name: 'vllm:time_per_output_token_seconds', bounds: VLLM_ITL, series: [{ labels: vllm('chat-v2'), perStep: growth(VLLM_ITL, { 0.025: 70, 0.05: 220, 0.075: 248, 0.1: 250 }, 250) }] },
  // The endpoint picker before v1.1 (inference_model_*) for stable, from v1.1 for the canary.
  { name: 'inference_model_request_duration_seconds', bounds: EPP_LATENCY, series: [{ labels: epp('chat-v1'), perStep: growth(EPP_LATENCY, { 1.0: 10, 2: 60, 4: 95, 8: 100 }, 100) }] },
  { name: 'inference_objective_request_duration_seconds', bounds: EPP_LATENCY, series: [{ labels: epp('chat-v2'), perStep: growth(EPP_LATENCY, { 1.0: 3, 2: 15, 4: 24, 8: 25 }, 25) }] },
];

const COUNTERS: { name: string; labels: string; perStep: number }[] = [
  { name: 'inference_objective_request_total', labels: `${epp('chat-v1')},priority="0"`, perStep: 100 },
  { name: 'inference_objective_request_error_total', labels: `${epp('chat-v1')},error_code="500"`, perStep: 1 },
  { name: 'inference_objective_request_total', labels: `${epp('chat-v2')},priority="0"`, perStep: 25 },
  // A fifth of the canary's requests fail at the endpoint picker.
  { name: 'inference_objective_request_error_total', labels: `${epp('chat-v2')},error_code="503"`, perStep: 5 },
];

function fixture(): string {
  const lines: string[] = [];
  for (const family of HISTOGRAMS) {
    lines.push(`# TYPE ${family.name} histogram`);
    for (let s = 0; s <= STEPS; s++) {
      for (const series of family.series) {
        family.bounds.forEach((le, i) => lines.push(`${family.name}_bucket{${series.labels},le="${le}"} ${(series.perStep[i] ?? 0) * s} ${T0 + s * STEP}`));
        lines.push(`${family.name}_bucket{${series.labels},le="+Inf"} ${(series.perStep.at(-1) ?? 0) * s} ${T0 + s * STEP}`);
      }
    }
  }
  for (const name of new Set(COUNTERS.map((c) => c.name))) {
    lines.push(`# TYPE ${name.replace(/_total$/, '')} counter`);
    for (const c of COUNTERS.filter((x) => x.name === name)) for (let s = 0; s <= STEPS; s++) lines.push(`${name}{${c.labels}} ${c.perStep * s} ${T0 + s * STEP}`);
  }
  lines.push('# EOF');
  return `${lines.join('\n')}\n`;
}

function chat(canaryVersion: string, metrics: Record<string, unknown>[], status?: Record<string, unknown>): ModelCanary {
  const checked = checkModelCanary({
    apiVersion: 'modelcanary.io/v1alpha1',
    kind: 'ModelCanary',
    metadata: { name: 'chat', namespace: 'llm' },
    spec: {
      model: 'chat',
      stable: { version: 'v1', destination: { host: 'chat', subset: 'v1' } },
      canary: { version: canaryVersion, destination: { host: 'chat', subset: canaryVersion } },
      trafficRouting: { istio: { virtualService: 'chat' } },
      analysis: { interval: '1m', minRequests: 50, metrics },
    },
  });
  assert.ok(checked.ok, JSON.stringify(checked.ok ? '' : checked.problems));
  return status === undefined ? checked.value : { ...checked.value, status };
}

const TTFT = { name: 'ttft-p95', type: 'ttft', quantile: 0.95, maxMs: 1000, maxRatioToStable: 1.5 };

const { client } = prometheusWith(fixture);

async function observe(canary: ModelCanary, sinceMs = 60_000): Promise<Record<string, { stable: Sample; canary: Sample }>> {
  const observation = (await observeAll(new PrometheusMetricsProvider(client()), [canary], sinceMs, AT)).get('llm/chat');
  assert.ok(observation !== undefined);
  return observation.custom;
}

const CLEAN_COUNTS: Sample = { kind: 'counts', counts: { requests: 1000, errors: 0 } };
const CLEAN = { stable: CLEAN_COUNTS, canary: CLEAN_COUNTS };

/** The engine's decision on a check whose Istio counts are plentiful and clean: only the presets can tell. */
async function judge(canary: ModelCanary): Promise<ReturnType<typeof decide>> {
  return decide(canary.spec.analysis, startState(), { sinceLastCheck: CLEAN, custom: await observe(canary) });
}

test('ttft from vLLM: a regression fails on its confidence bounds, a healthy canary passes, and the quantile is Prometheus\'s own', { skip: PROMETHEUS_MISSING }, async () => {
  const regressed = await judge(chat('v3', [TTFT]));
  const verdict = regressed.verdicts[0];
  assert.equal(verdict?.verdict, 'fail', verdict?.reason);
  assert.match(verdict.reason, /^canary TTFT p95 2313 ms is above maxMs 1000 ms, which stable meets/);
  assert.match(verdict.reason, /100 requests; stable 500 ms, between 250 ms and 750 ms, 400 requests/);
  assert.ok(verdict.interval !== undefined && verdict.interval.canary.low >= 1000, 'the whole range of the canary lies beyond the bound');
  // The sequential test fixed its bounds on this check; fed the next check's requests, it rejects: rolled back at once.
  const canary = chat('v3', [TTFT]);
  const next = decide(canary.spec.analysis, regressed.state, { sinceLastCheck: CLEAN, custom: await observe(canary) });
  assert.equal(next.action, 'rollback');
  assert.match(next.reason, /^rolled back at once: ttft-p95: the sequential test finds the canary's share of requests slower than 250 ms above stable's/);

  const healthy = await judge(chat('v2', [TTFT]));
  assert.equal(healthy.verdicts[0]?.verdict, 'pass', healthy.verdicts[0]?.reason);
  assert.equal(healthy.action, 'advance');

  // The engine's quantile from the fetched counts equals histogram_quantile on the same increase(), in ms.
  const custom = await observe(chat('v3', [TTFT]));
  const sample = custom['ttft-p95']?.canary;
  assert.ok(sample?.kind === 'counts' && sample.counts.latency !== undefined);
  assert.deepEqual(sample.counts.latency.bounds.slice(0, 4), [1, 5, 10, 20], 'bounds in milliseconds');
  assert.equal(sample.counts.requests, 100);
  for (const q of [0.5, 0.95, 0.99]) {
    const theirs = await client().query(`histogram_quantile(${q}, sum by (le) (increase(vllm:time_to_first_token_seconds_bucket{model_name="chat-v3"}[1m]))) * 1000`, AT);
    assert.ok(theirs.kind === 'vector');
    const expected = theirs.series[0]?.value ?? NaN;
    assert.ok(Math.abs(histogramQuantile(q, sample.counts.latency) - expected) < 1e-6, `q=${q}: Prometheus says ${expected}`);
  }
});

test('inter-token latency: vLLM before 0.11 (old name only) and 0.11 (both names, same counts) are each counted once', { skip: PROMETHEUS_MISSING }, async () => {
  const custom = await observe(chat('v2', [{ name: 'itl-p99', type: 'interTokenLatency', quantile: 0.99, maxMs: 200 }]));
  const counts = (s: Sample | undefined): number => (s?.kind === 'counts' ? s.counts.requests : NaN);
  assert.equal(counts(custom['itl-p99']?.stable), 4000, 'chat-v1: vllm:time_per_output_token_seconds alone');
  assert.equal(counts(custom['itl-p99']?.canary), 1000, 'chat-v2: vllm:inter_token_latency_seconds, not both');
  const decision = decide(chat('v2', [{ name: 'itl-p99', type: 'interTokenLatency', quantile: 0.99, maxMs: 200 }]).spec.analysis, startState(), {
    sinceLastCheck: CLEAN,
    custom,
  });
  const [verdict] = decision.verdicts;
  assert.equal(verdict?.verdict, 'pass', verdict?.reason);
  assert.match(verdict.reason, /canary inter-token p99 .* 1000 token gaps/);
});

test('the endpoint picker: its error counter fails a canary, and e2e latency is read under its names before and from v1.1', { skip: PROMETHEUS_MISSING }, async () => {
  const canary = chat('v2', [
    { name: 'epp-errors', type: 'inferenceErrorRate', max: 0.02 },
    { name: 'e2e-p90', type: 'e2eLatency', source: 'endpointPicker', quantile: 0.9, maxRatioToStable: 1.5 },
  ]);
  const custom = await observe(canary);
  assert.deepEqual(custom['epp-errors'], {
    stable: { kind: 'counts', counts: { requests: 400, errors: 4, latency: undefined } },
    canary: { kind: 'counts', counts: { requests: 100, errors: 20, latency: undefined } },
  });
  const e2e = custom['e2e-p90'];
  assert.ok(e2e?.stable.kind === 'counts' && e2e.canary.kind === 'counts');
  assert.equal(e2e.stable.counts.requests, 400, 'inference_model_request_duration_seconds (before v1.1)');
  assert.equal(e2e.canary.counts.requests, 100, 'inference_objective_request_duration_seconds');
  const decision = await judge(canary);
  const errors = decision.verdicts.find((v) => v.name === 'epp-errors');
  assert.equal(errors?.verdict, 'fail');
  assert.equal(decision.action, 'rollback', 'a fifth of the requests failing is a spike: rolled back at once');
  assert.match(errors.reason, /canary error ratio at the endpoint picker 20\.0 % is above max 2\.00 %, and worse than stable \(canary 20 of 100, between 13\.7 % and 27\.7 % at 95 %/);
  assert.match(errors.reason, /^the sequential test finds the canary's error rate at the endpoint picker above stable's/);
});

test('missing series say which exporter and labels were expected; labels select a version otherwise', { skip: PROMETHEUS_MISSING }, async () => {
  const decision = await judge(chat('v9', [TTFT]));
  const verdict = decision.verdicts[0];
  assert.equal(verdict?.verdict, 'inconclusive');
  assert.equal(
    verdict.reason,
    'no data for canary: no vllm:time_to_first_token_seconds_bucket{model_name="chat-v9"} series in the last 1m: is vLLM\'s /metrics scraped, and does vLLM serve this version as model_name="chat-v9" (--served-model-name)? Set the metric\'s labels to select it otherwise',
  );
  const epp = await judge(chat('v9', [{ name: 'epp-errors', type: 'inferenceErrorRate', max: 0.02 }]));
  assert.match(epp.verdicts[0]?.reason ?? '', /no inference_objective_request_total\{target_model_name="chat-v9"\} series in the last 1m \(nor the inference_model_\* of releases before v1\.1\): is the endpoint picker's \/metrics scraped/);
  // The same version under a served model name of its own.
  const relabelled = await judge(chat('v9', [{ ...TTFT, labels: { stable: { model_name: 'chat-v1' }, canary: { model_name: 'chat-v3', engine: '0' } } }]));
  assert.equal(relabelled.verdicts[0]?.verdict, 'fail', relabelled.verdicts[0]?.reason);
});

test('long requests: nothing is judged until maxRequestDuration after the weight changed, then only what finished since', { skip: PROMETHEUS_MISSING }, async () => {
  const metric = { ...TTFT, maxRequestDuration: '2m' };
  const early = await observe(chat('v3', [metric], { stepStartedAt: new Date(AT.getTime() - 60_000).toISOString() }), 60_000);
  assert.deepEqual(early['ttft-p95']?.canary, {
    kind: 'noData',
    reason: `waiting until ${new Date(AT.getTime() + 60_000).toISOString()} (maxRequestDuration 2m after the weight changed), when every request started before the change has finished: until then the histogram over-represents short requests`,
  });
  // The step began 2m30s ago: of the 5m asked for, only the last 30 s count.
  const later = await observe(chat('v3', [metric], { stepStartedAt: new Date(AT.getTime() - 150_000).toISOString() }), 300_000);
  const sample = later['ttft-p95']?.canary;
  assert.ok(sample?.kind === 'counts');
  assert.equal(sample.counts.requests, 50, '30 s of 25 requests per 15 s');
});
