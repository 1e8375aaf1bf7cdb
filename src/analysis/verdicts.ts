// One metric, one check: pass, fail, inconclusive or error, with the numbers and the rule.

import type { Analysis, Metric } from '../api/modelcanary.ts';
import type { Verdict } from '../api/status.ts';
import { histogramQuantile } from './histogram.ts';
import type { Counts, Sample, VersionPair } from '../api/observation.ts';
import { formatMs, formatRatio, formatValue } from './format.ts';

export interface MetricVerdict {
  name: string;
  type: Metric['type'];
  verdict: Verdict;
  stable?: number | undefined;
  canary?: number | undefined;
  /** A spike far beyond both the bound and stable: roll back now, whatever the threshold. */
  severe: boolean;
  reason: string;
}

/** Judges one metric on its window. `traffic` is each version's request count since the last check. */
export function judgeMetric(metric: Metric, samples: VersionPair<Sample>, analysis: Analysis, traffic: VersionPair<number | undefined>): MetricVerdict {
  const base = { name: metric.name, type: metric.type, severe: false };
  const unmeasured = unmeasurable(samples);
  if (unmeasured !== undefined) return { ...base, ...unmeasured };
  switch (metric.type) {
    case 'errorRate':
      return { ...base, ...judgeErrorRate(metric, samples, analysis) };
    case 'latency':
      return { ...base, ...judgeLatency(metric, samples, analysis) };
    case 'prometheus':
      return { ...base, ...judgePrometheus(metric, samples, analysis, traffic) };
  }
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

function tooFewRequests(counts: VersionPair<Counts>, minRequests: number): Judgement | undefined {
  for (const version of ['canary', 'stable'] as const) {
    const served = counts[version].requests;
    if (served < minRequests || served === 0) {
      return { verdict: 'inconclusive', reason: `${version} served ${served} requests in the window, fewer than minRequests (${minRequests})` };
    }
  }
  return undefined;
}

function bothCounts(samples: VersionPair<Sample>): VersionPair<Counts> | Judgement {
  const { stable, canary } = samples;
  if (stable.kind !== 'counts' || canary.kind !== 'counts') return { verdict: 'error', reason: 'expected request counts for both versions' };
  return { stable: stable.counts, canary: canary.counts };
}

function judgeErrorRate(metric: Extract<Metric, { type: 'errorRate' }>, samples: VersionPair<Sample>, analysis: Analysis): Judgement {
  const counts = bothCounts(samples);
  if ('verdict' in counts) return counts;
  const few = tooFewRequests(counts, analysis.minRequests);
  if (few !== undefined) return few;
  const stable = counts.stable.errors / counts.stable.requests;
  const canary = counts.canary.errors / counts.canary.requests;
  const numbers = `canary ${counts.canary.errors}/${counts.canary.requests}, stable ${counts.stable.errors}/${counts.stable.requests}`;
  if (canary > metric.max) {
    const severe = canary >= analysis.spikeFactor * metric.max && canary >= analysis.spikeFactor * stable;
    const rule = severe ? `, over ${analysis.spikeFactor}× both max and stable: a spike` : '';
    return { verdict: 'fail', stable, canary, severe, reason: `canary 5xx ratio ${formatRatio(canary)} is above max ${formatRatio(metric.max)} (stable ${formatRatio(stable)}; ${numbers})${rule}` };
  }
  return { verdict: 'pass', stable, canary, reason: `canary 5xx ratio ${formatRatio(canary)} ≤ max ${formatRatio(metric.max)} (stable ${formatRatio(stable)}; ${numbers})` };
}

function judgeLatency(metric: Extract<Metric, { type: 'latency' }>, samples: VersionPair<Sample>, analysis: Analysis): Judgement {
  const counts = bothCounts(samples);
  if ('verdict' in counts) return counts;
  const few = tooFewRequests(counts, analysis.minRequests);
  if (few !== undefined) return few;
  const { latency: stableHistogram } = counts.stable;
  const { latency: canaryHistogram } = counts.canary;
  if (stableHistogram === undefined || canaryHistogram === undefined) return { verdict: 'inconclusive', reason: 'no latency histogram' };
  const label = `p${formatValue(metric.quantile * 100)}`;
  const stable = histogramQuantile(metric.quantile, stableHistogram);
  const canary = histogramQuantile(metric.quantile, canaryHistogram);
  if (Number.isNaN(canary)) return { verdict: 'inconclusive', reason: `canary ${label} is NaN (no observations in its histogram)` };
  const limits: { bound: number; rule: string }[] = [];
  if (metric.maxMs !== undefined) limits.push({ bound: metric.maxMs, rule: `maxMs ${formatMs(metric.maxMs)}` });
  if (metric.maxRatioToStable !== undefined) {
    if (!(stable > 0)) {
      if (limits.length === 0) return { verdict: 'inconclusive', stable, canary, reason: `stable ${label} is ${formatMs(stable)}: nothing to compare the canary with` };
    } else {
      limits.push({ bound: metric.maxRatioToStable * stable, rule: `${metric.maxRatioToStable}× stable's ${formatMs(stable)}` });
    }
  }
  const numbers = `canary ${label} ${formatMs(canary)}, stable ${formatMs(stable)}`;
  const broken = limits.find((l) => canary > l.bound);
  if (broken !== undefined) {
    const tightest = Math.min(...limits.map((l) => l.bound));
    const severe = canary >= analysis.spikeFactor * tightest && (!(stable > 0) || canary >= analysis.spikeFactor * stable);
    const rule = severe ? `, over ${analysis.spikeFactor}× both its bound and stable: a spike` : '';
    return { verdict: 'fail', stable, canary, severe, reason: `${numbers}: above ${broken.rule}${rule}` };
  }
  return { verdict: 'pass', stable, canary, reason: `${numbers}: within ${limits.map((l) => l.rule).join(' and ')}` };
}

function judgePrometheus(
  metric: Extract<Metric, { type: 'prometheus' }>,
  samples: VersionPair<Sample>,
  analysis: Analysis,
  traffic: VersionPair<number | undefined>,
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
  let severe = false;
  if (metric.max !== undefined && canary > metric.max) {
    failures.push(`above max ${formatValue(metric.max)}`);
    severe = metric.max > 0 && canary >= analysis.spikeFactor * metric.max && stable > 0 && canary >= analysis.spikeFactor * stable;
  }
  if (metric.min !== undefined && canary < metric.min) failures.push(`below min ${formatValue(metric.min)}`);
  const ratioRules = metric.maxRatioToStable !== undefined || metric.minRatioToStable !== undefined;
  const comparable = Number.isFinite(stable) && stable !== 0;
  if (ratioRules && comparable) {
    const ratio = canary / stable;
    if (metric.maxRatioToStable !== undefined && ratio > metric.maxRatioToStable) failures.push(`${formatValue(ratio)}× stable, above maxRatioToStable ${metric.maxRatioToStable}`);
    if (metric.minRatioToStable !== undefined && ratio < metric.minRatioToStable) failures.push(`${formatValue(ratio)}× stable, below minRatioToStable ${metric.minRatioToStable}`);
  }
  if (failures.length > 0) return { verdict: 'fail', stable, canary, severe, reason: `${numbers}: ${failures.join('; ')}` };
  const onlyRatios = metric.min === undefined && metric.max === undefined;
  if (ratioRules && !comparable && onlyRatios) return { verdict: 'inconclusive', stable, canary, reason: `stable value is ${formatValue(stable)}: nothing to compare the canary with` };
  return { verdict: 'pass', stable, canary, reason: `${numbers}: within bounds` };
}
