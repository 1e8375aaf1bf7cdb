// A rollout in virtual time against two simulated model versions. Traffic is split by the
// engine's own decisions, and each interval's counts are drawn in aggregate (binomial 5xx,
// multinomial latency over the histogram buckets), so an hour at 1000 requests/s takes
// milliseconds. The decisions come from the same `decide` the controller calls.

import { watchIntervalMs, type Analysis, type ModelCanarySpec } from '../api/modelcanary.ts';
import type { Phase } from '../api/status.ts';
import type { BehaviourChange, ModelBehaviour, Scenario } from '../api/scenario.ts';
import { decide, startState, watch, weightAt, type Action, type Decision, type EngineOptions } from './engine.ts';
import { fromBucketCounts, histogramQuantile, ISTIO_BUCKETS_MS, type Histogram } from './histogram.ts';
import { addCounts, asSamples, type Counts, type VersionPair } from '../api/observation.ts';
import { isPresetType, latencyFamily, SECONDS_TO_MS, type PresetType } from '../api/presets.ts';
import { binomial, multinomial, poisson, seeded, type Random } from './random.ts';
import type { MetricVerdict } from './verdicts.ts';

export type Outcome = 'promoted' | 'rolledBack' | 'timeout';

export interface TimelineEntry {
  atSeconds: number;
  phase: Phase;
  /** Canary weight after the decision. */
  weight: number;
  action: Action;
  reason: string;
  /** What this interval measured, for charts: 5xx ratio and p99 per version (NaN without traffic). */
  measured: VersionPair<{ requests: number; errorRate: number; p99Ms: number }>;
  verdicts: MetricVerdict[];
}

export interface SimulationResult {
  scenario: string;
  seed: number;
  /** Seconds between checks, and the canary weight before the first decision. */
  intervalSeconds: number;
  startWeight: number;
  outcome: Outcome;
  endedAtSeconds: number;
  finalWeight: number;
  requests: VersionPair<number>;
  errors: VersionPair<number>;
  /** Canary 5xx beyond what stable's error rate would have given the same requests. */
  excessCanaryErrors: number;
  timeline: TimelineEntry[];
  /** Metrics of the spec the simulator cannot produce (custom PromQL, ejections, LLM presets the scenario gives no streaming latencies for), left out of the analysis. */
  skippedMetrics: string[];
}

export interface SimulationOptions extends EngineOptions {
  seed?: number;
}

const Z99 = 2.3263478740408408;

export function simulate(spec: ModelCanarySpec, scenario: Scenario, options: SimulationOptions = {}): SimulationResult {
  const seed = options.seed ?? scenario.seed;
  const random = seeded(seed);
  // Custom PromQL and ejections need a real query or a pod model: the simulator has neither. An
  // LLM preset needs the scenario to say how the versions stream (ttftMs, interTokenMs).
  const simulated = (m: Analysis['metrics'][number]): boolean =>
    m.type !== 'prometheus' && m.type !== 'outliers' && (!isPresetType(m.type) || (streams(scenario.stable, m.type) && streams(scenario.canary, m.type)));
  const presets = spec.analysis.metrics.filter((m): m is PresetMetric => isPresetType(m.type) && simulated(m));
  const skippedMetrics = spec.analysis.metrics.filter((m) => !simulated(m)).map((m) => m.name);
  const analysis: Analysis = { ...spec.analysis, metrics: spec.analysis.metrics.filter(simulated) };
  const intervalSeconds = analysis.interval / 1000;
  const watchSeconds = watchIntervalMs(analysis) / 1000;
  const changes = scenario.changes.toSorted((a, b) => a.atSeconds - b.atSeconds);
  const world = { stable: scenario.stable, canary: scenario.canary, requestsPerSecond: scenario.requestsPerSecond };
  let applied = 0;
  let state = startState();
  const timeline: TimelineEntry[] = [];
  const totals = { requests: { stable: 0, canary: 0 }, errors: { stable: 0, canary: 0 }, excess: 0 };
  let now = 0;

  /** The presets' counts since the last check: only checks read them, as in the live controller. */
  let presetCounts = new Map<string, VersionPair<Counts>>();
  /** Draws the requests of [from, to), splitting where scheduled changes take effect. */
  const drawSpan = (from: number, to: number, weight: number): VersionPair<Counts> => {
    const span = emptyPair();
    for (let start = from; start < to; ) {
      while (applied < changes.length && (changes[applied]?.atSeconds ?? Infinity) <= start) applyChange(world, changes[applied++]);
      const end = Math.min(to, changes[applied]?.atSeconds ?? Infinity);
      const drawn = drawSegment(random, world, weight, end - start);
      for (const metric of presets) {
        const more = { stable: drawPreset(random, metric, world.stable, drawn.stable), canary: drawPreset(random, metric, world.canary, drawn.canary) };
        const before = presetCounts.get(metric.name);
        presetCounts.set(metric.name, before === undefined ? more : { stable: addCounts(before.stable, more.stable), canary: addCounts(before.canary, more.canary) });
      }
      addInto(span, drawn);
      totals.excess += drawn.canary.requests * world.stable.errorRate;
      start = end;
    }
    for (const version of ['stable', 'canary'] as const) {
      totals.requests[version] += span[version].requests;
      totals.errors[version] += span[version].errors;
    }
    return span;
  };
  const record = (at: number, decision: Decision, interval: VersionPair<Counts>): boolean => {
    const phase: Phase = decision.action === 'promote' ? 'Succeeded' : decision.action === 'rollback' ? 'RolledBack' : 'Progressing';
    timeline.push({ atSeconds: round(at), phase, weight: decision.weight, action: decision.action, reason: decision.reason, measured: measure(interval), verdicts: decision.verdicts });
    return decision.action === 'promote' || decision.action === 'rollback';
  };

  let ended = false;
  while (!ended && now + intervalSeconds <= scenario.durationSeconds + 1e-9) {
    const weight = weightAt(analysis, state);
    const checkAt = now + intervalSeconds;
    const interval = emptyPair();
    let unseen = emptyPair();
    // Between checks the sequential test looks every watchInterval; the check judges the whole interval.
    for (;;) {
      const until = Math.min(checkAt, now + watchSeconds);
      const drawn = drawSpan(now, until, weight);
      addInto(interval, drawn);
      addInto(unseen, drawn);
      now = until;
      if (now >= checkAt - 1e-9) break;
      const watched = watch(analysis, state, unseen);
      state = watched.state;
      unseen = emptyPair();
      if (watched.rollback !== undefined) {
        ended = record(now, watched.rollback, interval);
        break;
      }
    }
    if (ended) break;
    now = checkAt;
    const custom = Object.fromEntries([...presetCounts].map(([name, pair]) => [name, asSamples(pair)]));
    presetCounts = new Map();
    const decision = decide(analysis, state, { sinceLastCheck: asSamples(interval), sinceLastWatch: asSamples(unseen), custom }, options);
    state = decision.state;
    ended = record(now, decision, interval);
  }

  const last = timeline.at(-1);
  const outcome: Outcome = last?.action === 'promote' ? 'promoted' : last?.action === 'rollback' ? 'rolledBack' : 'timeout';
  return {
    scenario: scenario.name,
    seed,
    intervalSeconds,
    startWeight: weightAt(analysis, startState()),
    outcome,
    endedAtSeconds: outcome === 'timeout' ? round(now) : (last?.atSeconds ?? 0),
    finalWeight: last?.weight ?? weightAt(analysis, state),
    requests: totals.requests,
    errors: totals.errors,
    excessCanaryErrors: Math.max(0, round(totals.errors.canary - totals.excess)),
    timeline,
    skippedMetrics,
  };
}


function drawSegment(random: Random, world: { stable: ModelBehaviour; canary: ModelBehaviour; requestsPerSecond: number }, weight: number, seconds: number): VersionPair<Counts> {
  const total = poisson(random, world.requestsPerSecond * seconds);
  const canaryRequests = binomial(random, total, weight / 100);
  return {
    stable: drawVersion(random, world.stable, total - canaryRequests),
    canary: drawVersion(random, world.canary, canaryRequests),
  };
}

function drawVersion(random: Random, model: ModelBehaviour, requests: number): Counts {
  const errors = binomial(random, requests, model.errorRate);
  const perBucket = multinomial(random, requests, bucketProbabilities(model.latencyMs.p50, model.latencyMs.p99, ISTIO_BUCKETS_MS));
  return { requests, errors, latency: fromBucketCounts(ISTIO_BUCKETS_MS, perBucket) };
}

/** Probability of each bucket (and of +Inf) for a log-normal latency through p50 and p99. */
function bucketProbabilities(p50: number, p99: number, bounds: readonly number[]): number[] {
  const mu = Math.log(p50);
  const sigma = (Math.log(p99) - mu) / Z99;
  let below = 0;
  const probabilities = bounds.map((bound) => {
    const cdf = normalCdf((Math.log(bound) - mu) / sigma);
    const p = Math.max(0, cdf - below);
    below = Math.max(below, cdf);
    return p;
  });
  return [...probabilities, Math.max(0, 1 - below)];
}

/** Φ(x), by the complementary error function of Numerical Recipes (erfc, relative error < 1.2e-7). */
export function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * z);
  const erfc =
    t *
    Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - erfc / 2 : erfc / 2;
}

function applyChange(world: { stable: ModelBehaviour; canary: ModelBehaviour; requestsPerSecond: number }, change: Scenario['changes'][number] | undefined): void {
  if (change === undefined) return;
  if (change.requestsPerSecond !== undefined) world.requestsPerSecond = change.requestsPerSecond;
  if (change.stable !== undefined) world.stable = changed(world.stable, change.stable);
  if (change.canary !== undefined) world.canary = changed(world.canary, change.canary);
}

function changed(model: ModelBehaviour, change: BehaviourChange): ModelBehaviour {
  const quantiles = (was: { p50: number; p99: number } | undefined, now: { p50?: number | undefined; p99?: number | undefined } | undefined) =>
    was === undefined ? undefined : { p50: now?.p50 ?? was.p50, p99: now?.p99 ?? was.p99 };
  return {
    errorRate: change.errorRate ?? model.errorRate,
    latencyMs: { p50: change.latencyMs?.p50 ?? model.latencyMs.p50, p99: change.latencyMs?.p99 ?? model.latencyMs.p99 },
    ttftMs: quantiles(model.ttftMs, change.ttftMs),
    interTokenMs: quantiles(model.interTokenMs, change.interTokenMs),
    outputTokens: change.outputTokens ?? model.outputTokens,
  };
}

// ── LLM presets ─────────────────────────────────────────────────────────────────────────

type PresetMetric = Extract<Analysis['metrics'][number], { type: PresetType }>;

/** Tokens an answer streams when the scenario does not say. */
const DEFAULT_OUTPUT_TOKENS = 200;

/** Whether a version's behaviour has what a preset needs. */
function streams(model: ModelBehaviour, type: PresetType): boolean {
  switch (type) {
    case 'inferenceErrorRate':
      return true;
    case 'ttft':
      return model.ttftMs !== undefined;
    case 'interTokenLatency':
      return model.interTokenMs !== undefined;
    case 'e2eLatency':
      return model.ttftMs !== undefined && model.interTokenMs !== undefined;
  }
}

/**
 * One version's counts of a preset for the requests just drawn, over the exporter's own buckets:
 * the endpoint picker's errors are Istio's; TTFT is one observation per request; vLLM's
 * inter-token latency one per token gap (the endpoint picker's TPOT one per request); and
 * end-to-end latency is log-normal through the time to first token plus the median gap times the
 * tokens after the first (an answer's gaps average out, so their spread adds little).
 */
function drawPreset(random: Random, metric: PresetMetric, model: ModelBehaviour, drawn: Counts): Counts {
  if (metric.type === 'inferenceErrorRate') return { requests: drawn.requests, errors: drawn.errors };
  const family = latencyFamily(metric.type, metric.source);
  const bounds = family.bucketsS.map((b) => b * SECONDS_TO_MS);
  const ttft = model.ttftMs ?? { p50: 1, p99: 2 };
  const gap = model.interTokenMs ?? { p50: 1, p99: 2 };
  const after = (model.outputTokens ?? DEFAULT_OUTPUT_TOKENS) - 1;
  const [n, p50, p99] =
    metric.type === 'ttft'
      ? [drawn.requests, ttft.p50, ttft.p99]
      : metric.type === 'interTokenLatency'
        ? [family.observes === 'tokens' ? drawn.requests * after : drawn.requests, gap.p50, gap.p99]
        : [drawn.requests, ttft.p50 + after * gap.p50, ttft.p99 + after * gap.p50];
  const latency = fromBucketCounts(bounds, multinomial(random, n, bucketProbabilities(p50, p99, bounds)));
  return { requests: n, errors: 0, latency };
}

function measure(interval: VersionPair<Counts>): TimelineEntry['measured'] {
  const one = (c: Counts): { requests: number; errorRate: number; p99Ms: number } => ({
    requests: c.requests,
    errorRate: c.requests > 0 ? c.errors / c.requests : NaN,
    p99Ms: c.latency === undefined ? NaN : histogramQuantile(0.99, c.latency),
  });
  return { stable: one(interval.stable), canary: one(interval.canary) };
}

function emptyHistogram(): Histogram {
  return { bounds: ISTIO_BUCKETS_MS, cumulative: new Array<number>(ISTIO_BUCKETS_MS.length + 1).fill(0) };
}

function emptyPair(): VersionPair<Counts> {
  return { stable: { requests: 0, errors: 0, latency: emptyHistogram() }, canary: { requests: 0, errors: 0, latency: emptyHistogram() } };
}

function addInto(target: VersionPair<Counts>, more: VersionPair<Counts>): void {
  for (const version of ['stable', 'canary'] as const) {
    const t = target[version];
    const m = more[version];
    t.requests += m.requests;
    t.errors += m.errors;
    const tl = t.latency ?? emptyHistogram();
    t.latency = { bounds: tl.bounds, cumulative: tl.cumulative.map((c, i) => c + (m.latency?.cumulative[i] ?? 0)) };
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
