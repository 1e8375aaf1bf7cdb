// One metric, one check: pass, fail, inconclusive or error, with the numbers, the rule and how
// sure the counts let the engine be. A bound fails the canary only when the canary is to blame:
// its counts put it beyond the bound at the analysis's confidence, and either stable is within
// the bound or the canary is worse than stable. docs/analysis.md has the rules in words.

import type { Analysis, Metric } from '../api/modelcanary.ts';
import type { Verdict } from '../api/status.ts';
import type { Counts, Histogram, Sample, VersionPair } from '../api/observation.ts';
import { histogramQuantile } from './histogram.ts';
import { latencyFamily, type LlmLatencyType } from '../api/presets.ts';
import { isAbove, isAtMost, pointQuantile, quantileBounds, ratioBounds, type Bounds } from './confidence.ts';
import { describeBounds, formatMs, formatPercent, formatRatio, formatValue } from './format.ts';

/** The bounds a verdict was drawn from, each end at `confidence`: a 5xx ratio, or a quantile in ms. */
export interface VerdictInterval {
  confidence: number;
  canary: Bounds;
  stable: Bounds;
}

export interface MetricVerdict {
  name: string;
  type: Metric['type'];
  verdict: Verdict;
  stable?: number | undefined;
  canary?: number | undefined;
  /** A spike far beyond both the bound and stable: roll back now, whatever the threshold. */
  severe: boolean;
  reason: string;
  /** errorRate and latency: the confidence bounds behind the verdict. */
  interval?: VerdictInterval | undefined;
  /** What people must hear although the canary is not failed for it: stable breaks this bound too. */
  warning?: string | undefined;
}

export interface JudgeOptions {
  /** Judge each bound on the point value alone, as Flagger does: no bounds, no stable-breaks-too rule. For comparing policies. */
  pointEstimates?: boolean | undefined;
}

/** Judges one metric on its window. `traffic` is each version's request count since the last check. */
export function judgeMetric(
  metric: Metric,
  samples: VersionPair<Sample>,
  analysis: Analysis,
  traffic: VersionPair<number | undefined>,
  options: JudgeOptions = {},
): MetricVerdict {
  const base = { name: metric.name, type: metric.type, severe: false };
  // Missing outlier stats have a cause of their own, and a fix to name.
  if (metric.type === 'outliers') return { ...base, ...judgeOutliers(metric, samples, traffic) };
  const unmeasured = unmeasurable(samples);
  if (unmeasured !== undefined) return { ...base, ...unmeasured };
  switch (metric.type) {
    case 'errorRate':
      return { ...base, ...judgeErrorRate(metric, samples, analysis, options, '5xx ratio') };
    case 'inferenceErrorRate':
      return { ...base, ...judgeErrorRate(metric, samples, analysis, options, "error ratio at the endpoint picker") };
    case 'latency':
      return { ...base, ...judgeLatency(metric, samples, analysis, options, { subject: '', observations: 'requests' }) };
    case 'ttft':
    case 'interTokenLatency':
    case 'e2eLatency':
      return { ...base, ...judgeLatency(metric, samples, analysis, options, presetWording(metric)) };
    case 'prometheus':
      return { ...base, ...judgePrometheus(metric, samples, analysis, traffic, options) };
  }
}

/** What a person adds to Istio so that its proxies export the outlier stats. */
export const OUTLIER_STATS_HINT =
  'Istio does not export Envoy\'s outlier stats by default: add ".*outlier_detection.*" to meshConfig.defaultConfig.proxyStatsMatcher.inclusionRegexps (mesh-wide), or to the proxy.istio.io/config annotation of the calling pods (the ingress gateway), e.g. proxy.istio.io/config: \'{"proxyStatsMatcher":{"inclusionRegexps":[".*outlier_detection.*"]}}\'; and give the DestinationRule an outlierDetection (docs/outliers.md)';

// ── outliers (ejections, which a 5xx ratio cannot see) ──────────────────────────────────

function judgeOutliers(metric: Extract<Metric, { type: 'outliers' }>, samples: VersionPair<Sample>, traffic: VersionPair<number | undefined>): Judgement {
  for (const version of ['canary', 'stable'] as const) {
    const sample = samples[version];
    if (sample.kind === 'error') return { verdict: 'error', reason: `could not measure ${version}'s ejections: ${sample.message}` };
  }
  const { stable: stableSample, canary: canarySample } = samples;
  if (stableSample.kind !== 'value' || canarySample.kind !== 'value') {
    const missing = stableSample.kind !== 'value' && canarySample.kind !== 'value' ? 'either version' : stableSample.kind !== 'value' ? 'stable' : 'the canary';
    return { verdict: 'inconclusive', reason: `no outlier stats for ${missing} (envoy_cluster_outlier_detection_ejections_enforced_total by cluster_name): ${OUTLIER_STATS_HINT}` };
  }
  // increase() extrapolates: whole ejections are what happened.
  const canary = Math.round(canarySample.value);
  const stable = Math.round(stableSample.value);
  const canaryRequests = traffic.canary;
  const stableRequests = traffic.stable;
  // Stable's share: its ejections per request, at the canary's traffic.
  const share = stable === 0 || stableRequests === undefined || stableRequests === 0 || canaryRequests === undefined ? 0 : (stable / stableRequests) * canaryRequests;
  const tolerated = metric.maxEjections ?? 0;
  const allowed = tolerated + share;
  const numbers = `canary endpoints ejected ${canary} ${canary === 1 ? 'time' : 'times'} in the window, stable's ${stable}`;
  if (canary > allowed) {
    const bound = share === 0 ? `maxEjections ${tolerated}` : `maxEjections ${tolerated} plus stable's share at the canary's traffic, ${formatValue(share)}`;
    // Envoy saw a canary pod fail again and again while no stable pod did: an outlier, rolled back at once.
    return {
      verdict: 'fail',
      stable,
      canary,
      severe: stable === 0,
      reason: `${numbers}: above ${bound}. Envoy's outlier detection took canary endpoints out of service after consecutive 5xx; while ejected they answer nothing, so the 5xx ratio does not show them`,
    };
  }
  return { verdict: 'pass', stable, canary, reason: `${numbers}: within maxEjections ${tolerated}${share === 0 ? '' : ` plus stable's share ${formatValue(share)}`}` };
}

type Judgement = Omit<MetricVerdict, 'name' | 'type' | 'severe'> & { severe?: boolean };

function unmeasurable(samples: VersionPair<Sample>): Judgement | undefined {
  for (const version of ['canary', 'stable'] as const) {
    const sample = samples[version];
    if (sample.kind === 'error') return { verdict: 'error', reason: `could not measure ${version}: ${sample.message}` };
  }
  for (const version of ['canary', 'stable'] as const) {
    const sample = samples[version];
    if (sample.kind === 'noData') return { verdict: 'inconclusive', reason: `no data for ${version}: ${sample.reason}` };
  }
  return undefined;
}

function tooFewRequests(counts: VersionPair<Counts>, minRequests: number, observed = (n: number): string => `served ${n} requests`): Judgement | undefined {
  for (const version of ['canary', 'stable'] as const) {
    const served = counts[version].requests;
    if (served < minRequests || served === 0) {
      return { verdict: 'inconclusive', reason: `${version} ${observed(served)} in the window, fewer than minRequests (${minRequests})` };
    }
  }
  return undefined;
}

function bothCounts(samples: VersionPair<Sample>): VersionPair<Counts> | Judgement {
  const { stable, canary } = samples;
  if (stable.kind !== 'counts' || canary.kind !== 'counts') return { verdict: 'error', reason: 'expected request counts for both versions' };
  return { stable: stable.counts, canary: canary.counts };
}

// ── One bound ───────────────────────────────────────────────────────────────────────────

/** What the counts say about one bound of one metric. */
type BoundOutcome =
  | { kind: 'within'; text: string }
  | { kind: 'beyond'; text: string; failsAbove: number }
  | { kind: 'unsure'; text: string }
  | { kind: 'stableBreaksToo'; text: string; warning: string };

interface Evidence {
  canary: Bounds;
  stable: Bounds;
  /** Point values: a bound of 0 ("no 5xx at all") is met only by seeing none, never by a range. */
  canaryValue: number;
  stableValue: number;
  /** What is bounded ("5xx ratio", "p99"), how a value is written, and the largest it can be. */
  label: string;
  show: (x: number) => string;
  ceiling: number;
}

/**
 * An absolute upper bound (errorRate max, latency maxMs). Passes when the canary is within it;
 * fails when the canary is beyond it and to blame: stable within it, or the canary worse than
 * stable (its lower bound above stable's upper bound); passes with a warning when stable breaks
 * it too and the canary is not worse; else not sure. Finer comparisons with stable are the
 * sequential test's, whose false-alarm rate holds however often it looks; a fixed-sample test
 * repeated at every check of a long hold would not.
 */
function absoluteBound(bound: number, rule: string, evidence: Evidence, confidence: number, point: boolean): BoundOutcome {
  const { canary, stable } = evidence;
  if (point) return canary.low > bound ? { kind: 'beyond', text: `above ${rule}`, failsAbove: bound } : { kind: 'within', text: `within ${rule}` };
  const within = (bounds: Bounds, value: number): boolean => isAtMost(bounds, bound) || (bound <= 0 && value <= 0);
  if (within(canary, evidence.canaryValue)) return { kind: 'within', text: `within ${rule}` };
  const stableBreaks = isAbove(stable, bound);
  const canaryBeyond = isAbove(canary, bound);
  if (!stableBreaks && !canaryBeyond) return { kind: 'unsure', text: `not enough to judge against ${rule}` };
  const worse = isAbove(canary, stable.high);
  if (stableBreaks) {
    if (worse) return { kind: 'beyond', text: `above ${rule}, which stable breaks too, and worse than stable`, failsAbove: bound };
    const { label, show, ceiling } = evidence;
    const numbers = `stable's ${label} ${describeBounds(stable, show, ceiling)} at ${formatPercent(confidence)}, the canary's ${describeBounds(canary, show, ceiling)}`;
    return {
      kind: 'stableBreaksToo',
      text: `stable breaks ${rule} too and the canary is not worse: not failed on it`,
      warning: `stable breaks this bound too: ${rule} (${numbers}); the canary is not worse than stable, so the bound does not fail it`,
    };
  }
  if (within(stable, evidence.stableValue)) return { kind: 'beyond', text: `above ${rule}, which stable meets`, failsAbove: bound };
  if (worse) return { kind: 'beyond', text: `above ${rule}, and worse than stable`, failsAbove: bound };
  return { kind: 'unsure', text: `above ${rule}, but stable may break it too and the canary is not shown worse: not enough to judge` };
}

interface Combined {
  verdict: Verdict;
  text: string;
  /** The lowest value the failed bounds start at, for the spike rule. */
  failsAbove?: number;
  warning?: string;
}

/** "canary p99 612 ms is above maxMs 500 ms", or "canary p99 357 ms: not enough to judge against …". */
function sentence(subject: string, outcome: string): string {
  return /^(above|within) /.test(outcome) ? `${subject} is ${outcome}` : `${subject}: ${outcome}`;
}

function combine(outcomes: BoundOutcome[]): Combined {
  const failed = outcomes.filter((o) => o.kind === 'beyond');
  if (failed.length > 0) return { verdict: 'fail', text: failed.map((o) => o.text).join('; '), failsAbove: Math.min(...failed.map((o) => o.failsAbove)) };
  const text = outcomes.map((o) => o.text).join('; ');
  const warnings = outcomes.flatMap((o) => (o.kind === 'stableBreaksToo' ? [o.warning] : []));
  const warning = warnings.length === 0 ? undefined : warnings.join('; ');
  const verdict: Verdict = outcomes.some((o) => o.kind === 'unsure') ? 'inconclusive' : 'pass';
  return warning === undefined ? { verdict, text } : { verdict, text, warning };
}

/**
 * Severe: the canary's lower bound is spikeFactor times both the bound it failed and stable's
 * upper bound. With point values (a Flagger-like policy) the bounds are the values themselves.
 */
function spike(analysis: Analysis, evidence: Evidence, failsAbove: number, what: string): { severe: boolean; text: string } {
  const { canary, stable, show } = evidence;
  const factor = analysis.spikeFactor;
  const severe = canary.low >= factor * failsAbove && Number.isFinite(stable.high) && canary.low >= factor * stable.high;
  if (!severe) return { severe, text: '' };
  return { severe, text: `; a spike: the canary's ${canary.low === canary.high ? 'value' : 'lower bound'} ${show(canary.low)} is over ${factor}× both ${what} ${show(failsAbove)} and stable's ${stable.low === stable.high ? 'value' : 'upper bound'} ${show(stable.high)}` };
}

// ── errorRate ───────────────────────────────────────────────────────────────────────────

/** How a latency preset's quantile is named in reasons, and what its histogram counts. */
function presetWording(metric: Extract<Metric, { type: LlmLatencyType }>): LatencyWording {
  const family = latencyFamily(metric.type, metric.source);
  const subject = metric.type === 'ttft' ? 'TTFT ' : metric.type === 'e2eLatency' ? 'end-to-end ' : metric.source === 'endpointPicker' ? 'time-per-output-token ' : 'inter-token ';
  return { subject, observations: family.observes === 'tokens' ? 'token gaps' : 'requests' };
}

function judgeErrorRate(metric: { max: number }, samples: VersionPair<Sample>, analysis: Analysis, options: JudgeOptions, what: string): Judgement {
  const counts = bothCounts(samples);
  if ('verdict' in counts) return counts;
  const few = tooFewRequests(counts, analysis.minRequests);
  if (few !== undefined) return few;
  const { confidence } = analysis;
  const point = options.pointEstimates === true;
  const stable = counts.stable.errors / counts.stable.requests;
  const canary = counts.canary.errors / counts.canary.requests;
  const bounds = (c: Counts, value: number): Bounds => (point ? { low: value, high: value } : ratioBounds(c.errors, c.requests, confidence));
  const evidence: Evidence = {
    canary: bounds(counts.canary, canary),
    stable: bounds(counts.stable, stable),
    canaryValue: canary,
    stableValue: stable,
    label: '5xx ratio',
    show: formatRatio,
    ceiling: 1,
  };
  const of = (c: Counts): string => `${formatValue(c.errors)} of ${formatValue(c.requests)}`;
  const sure = (b: Bounds, first: boolean): string => (point ? '' : `, ${describeBounds(b, formatRatio, 1)}${first ? ` at ${formatPercent(confidence)}` : ''}`);
  const numbers = `canary ${of(counts.canary)}${sure(evidence.canary, true)}; stable ${formatRatio(stable)}, ${of(counts.stable)}${sure(evidence.stable, false)}`;
  const outcome = combine([absoluteBound(metric.max, `max ${formatRatio(metric.max)}`, evidence, confidence, point)]);
  const interval = point ? undefined : { confidence, canary: evidence.canary, stable: evidence.stable };
  const said = (spiked = ''): string => `${sentence(`canary ${what} ${formatRatio(canary)}`, outcome.text)} (${numbers})${spiked}`;
  if (outcome.verdict === 'fail') {
    const { severe, text } = spike(analysis, evidence, outcome.failsAbove ?? metric.max, 'max');
    return { verdict: 'fail', stable, canary, severe, interval, reason: said(text) };
  }
  return { verdict: outcome.verdict, stable, canary, interval, warning: outcome.warning, reason: said() };
}

// ── latency ─────────────────────────────────────────────────────────────────────────────

interface LatencyWording {
  /** Before the quantile in reasons: "TTFT " makes "canary TTFT p95 612 ms". */
  subject: string;
  /** What one observation of the histogram is. */
  observations: 'requests' | 'token gaps';
}

interface LatencyRule {
  quantile: number;
  maxMs?: number | undefined;
  maxRatioToStable?: number | undefined;
}

function judgeLatency(metric: LatencyRule, samples: VersionPair<Sample>, analysis: Analysis, options: JudgeOptions, wording: LatencyWording): Judgement {
  const counts = bothCounts(samples);
  if ('verdict' in counts) return counts;
  const few = tooFewRequests(counts, analysis.minRequests, wording.subject === '' ? undefined : (n) => `had ${n} ${wording.observations} measured`);
  if (few !== undefined) return few;
  const { latency: stableHistogram } = counts.stable;
  const { latency: canaryHistogram } = counts.canary;
  if (stableHistogram === undefined || canaryHistogram === undefined) return { verdict: 'inconclusive', reason: 'no latency histogram' };
  const { confidence } = analysis;
  const point = options.pointEstimates === true;
  const label = `${wording.subject}p${formatValue(metric.quantile * 100)}`;
  const stable = histogramQuantile(metric.quantile, stableHistogram);
  const canary = histogramQuantile(metric.quantile, canaryHistogram);
  if (Number.isNaN(canary)) return { verdict: 'inconclusive', reason: `canary ${label} is NaN (no observations in its histogram)` };
  const bounds = (h: Histogram): Bounds => (point ? pointQuantile(metric.quantile, h) : quantileBounds(metric.quantile, h, confidence));
  const edges = canaryHistogram.bounds;
  const evidence: Evidence = {
    canary: bounds(canaryHistogram),
    stable: bounds(stableHistogram),
    canaryValue: canary,
    stableValue: stable,
    label,
    show: formatMs,
    ceiling: Infinity,
  };
  const requests = (c: Counts): string => `${formatValue(c.requests)} ${wording.observations}`;
  const sure = (b: Bounds, first: boolean): string => (point ? '' : `${describeBounds(b, formatMs, Infinity)}${first ? ` at ${formatPercent(confidence)}` : ''}, `);
  const numbers = `canary ${sure(evidence.canary, true)}${requests(counts.canary)}; stable ${formatMs(stable)}, ${sure(evidence.stable, false)}${requests(counts.stable)}`;

  const outcomes: BoundOutcome[] = [];
  if (metric.maxMs !== undefined) outcomes.push(absoluteBound(metric.maxMs, `maxMs ${formatMs(metric.maxMs)}`, evidence, confidence, point));
  if (metric.maxRatioToStable !== undefined) {
    const ratio = ratioToStable(metric.maxRatioToStable, label, evidence, edges, point, stable);
    if (ratio === undefined) {
      if (outcomes.length === 0) return { verdict: 'inconclusive', stable, canary, reason: `stable ${label} is ${formatMs(stable)}: nothing to compare the canary with` };
    } else {
      outcomes.push(ratio);
    }
  }
  const outcome = combine(outcomes);
  const interval = point ? undefined : { confidence, canary: evidence.canary, stable: evidence.stable };
  const said = (spiked = ''): string => `${sentence(`canary ${label} ${formatMs(canary)}`, outcome.text)} (${numbers})${spiked}`;
  if (outcome.verdict === 'fail') {
    const { severe, text } = spike(analysis, evidence, outcome.failsAbove ?? Infinity, 'its bound');
    return { verdict: 'fail', stable, canary, severe, interval, reason: said(text) };
  }
  return { verdict: outcome.verdict, stable, canary, interval, warning: outcome.warning, reason: said() };
}

/**
 * "At most ratio × stable's quantile". Bucket counts cannot tell a quantile apart within its
 * bucket (Istio's edges are 2–2.5× apart), so the rule is judged at bucket resolution: fail
 * when the canary is above ratio × stable's upper bound, pass when it is at most the edge at or
 * above that, else not sure. Finer regressions are the sequential test's (its tail test).
 */
function ratioToStable(ratio: number, label: string, evidence: Evidence, edges: readonly number[], point: boolean, stablePoint: number): BoundOutcome | undefined {
  const { canary, stable } = evidence;
  const rule = `${ratio}× stable's ${label}`;
  if (point) {
    if (!(stablePoint > 0)) return undefined;
    const bound = ratio * stablePoint;
    const text = `${ratio}× stable's ${formatMs(stablePoint)}`;
    return canary.low > bound ? { kind: 'beyond', text: `above ${text}`, failsAbove: bound } : { kind: 'within', text: `within ${text}` };
  }
  if (!Number.isFinite(stable.high)) return { kind: 'unsure', text: `not enough to judge against ${rule}: stable's ${label} has no upper bound yet` };
  const failsAbove = ratio * stable.high;
  if (isAbove(canary, failsAbove)) return { kind: 'beyond', text: `above ${rule}, ${formatMs(failsAbove)} at stable's upper bound`, failsAbove };
  // Beyond the last finite edge there is no coarser resolution to round up to: the product itself.
  const passAt = edges.find((e) => e >= failsAbove) ?? failsAbove;
  if (isAtMost(canary, passAt)) return { kind: 'within', text: `within ${rule}, at most ${formatMs(passAt)} at bucket resolution` };
  return { kind: 'unsure', text: `not enough to judge against ${rule}` };
}

// ── prometheus (values, not counts) ─────────────────────────────────────────────────────

function judgePrometheus(
  metric: Extract<Metric, { type: 'prometheus' }>,
  samples: VersionPair<Sample>,
  analysis: Analysis,
  traffic: VersionPair<number | undefined>,
  options: JudgeOptions,
): Judgement {
  const { stable: stableSample, canary: canarySample } = samples;
  if (stableSample.kind !== 'value' || canarySample.kind !== 'value') return { verdict: 'error', reason: 'expected a value for both versions' };
  const stable = stableSample.value;
  const canary = canarySample.value;
  for (const version of ['canary', 'stable'] as const) {
    const served = traffic[version];
    if (served !== undefined && served < analysis.minRequests) {
      return { verdict: 'inconclusive', stable, canary, reason: `${version} served ${served} requests since the last check, fewer than minRequests (${analysis.minRequests})` };
    }
  }
  if (!Number.isFinite(canary)) return { verdict: 'inconclusive', stable, canary, reason: `canary value is ${String(canary)}` };
  const numbers = `canary ${formatValue(canary)}, stable ${formatValue(stable)}`;
  const failures: string[] = [];
  const warnings: string[] = [];
  // A value carries no counts, so no confidence: a bound that stable breaks too is left to the
  // ratio bounds (if any) rather than held against the canary alone.
  const stableToo = (breaks: boolean, rule: string): boolean => {
    if (options.pointEstimates === true || !breaks) return false;
    warnings.push(`stable breaks this bound too: ${rule}, stable ${formatValue(stable)}, canary ${formatValue(canary)}; left to the comparison with stable`);
    return true;
  };
  let severe = false;
  if (metric.max !== undefined && canary > metric.max && !stableToo(stable > metric.max, `max ${formatValue(metric.max)}`)) {
    failures.push(`above max ${formatValue(metric.max)}`);
    severe = metric.max > 0 && canary >= analysis.spikeFactor * metric.max && stable > 0 && canary >= analysis.spikeFactor * stable;
  }
  if (metric.min !== undefined && canary < metric.min && !stableToo(stable < metric.min, `min ${formatValue(metric.min)}`)) failures.push(`below min ${formatValue(metric.min)}`);
  const ratioRules = metric.maxRatioToStable !== undefined || metric.minRatioToStable !== undefined;
  const comparable = Number.isFinite(stable) && stable !== 0;
  if (ratioRules && comparable) {
    const ratio = canary / stable;
    if (metric.maxRatioToStable !== undefined && ratio > metric.maxRatioToStable) failures.push(`${formatValue(ratio)}× stable, above maxRatioToStable ${metric.maxRatioToStable}`);
    if (metric.minRatioToStable !== undefined && ratio < metric.minRatioToStable) failures.push(`${formatValue(ratio)}× stable, below minRatioToStable ${metric.minRatioToStable}`);
  }
  if (failures.length > 0) return { verdict: 'fail', stable, canary, severe, reason: `${numbers}: ${failures.join('; ')}` };
  const warning = warnings.length === 0 ? undefined : warnings.join('; ');
  const onlyRatios = metric.min === undefined && metric.max === undefined;
  if (ratioRules && !comparable && onlyRatios) return { verdict: 'inconclusive', stable, canary, reason: `stable value is ${formatValue(stable)}: nothing to compare the canary with` };
  return { verdict: 'pass', stable, canary, warning, reason: warning === undefined ? `${numbers}: within bounds` : `${numbers}: ${warning}` };
}

/** A verdict's bounds in a line: "canary at most 1.98 %, stable between 0.004 % and 0.35 % (95 %)". */
export function intervalText(verdict: MetricVerdict): string | undefined {
  const { interval } = verdict;
  if (interval === undefined) return undefined;
  const [show, ceiling] = verdict.type === 'errorRate' || verdict.type === 'inferenceErrorRate' ? [formatRatio, 1] : [formatMs, Infinity];
  return `canary ${describeBounds(interval.canary, show, ceiling)}, stable ${describeBounds(interval.stable, show, ceiling)} (${formatPercent(interval.confidence)})`;
}
