// The decision at each check of a rollout: a pure function of the analysis settings, the
// state carried from the previous check, and what was observed. The controller, `simulate`
// and `backtest` all call this; none of them decides anything themselves.

import type { Analysis, Metric } from '../api/modelcanary.ts';
import { evidenceOf, testOf, type Evidence, type SequentialTestState } from '../api/status.ts';
import { boundAtOrAbove, countAbove, histogramQuantile, total } from './histogram.ts';
import { addCounts, asSamples, countsOf, type Counts, type Observation, type Sample, type VersionPair } from '../api/observation.ts';
import { logMixture, noEvidence, RATIO_GRID, rejects, update } from './sequential.ts';
import { judgeMetric, type MetricVerdict } from './verdicts.ts';
import { formatValue } from './format.ts';
import { isPresetType } from '../api/presets.ts';

export interface AnalysisState {
  /** Index into analysis.steps of the weight in force. */
  stepIndex: number;
  /** Passing checks at this step. */
  passedChecks: number;
  /** Failed checks over the whole rollout (cumulative: see docs/analysis.md). */
  failedChecks: number;
  /** Consecutive checks that could not judge. */
  inconclusiveChecks: number;
  /** Counts of inconclusive checks at this step, judged together with the next check's. */
  carried?: VersionPair<Counts> | undefined;
  /**
   * How many checks' intervals `carried` holds. A passing check counts each interval it judged
   * toward checksPerStep. Left out (a store that does not keep it), one is assumed: never more
   * credit than the evidence covers.
   */
  carriedChecks?: number | undefined;
  /** The sequential tests' evidence, as status keeps it (see Evidence); read and written by the engine only. */
  evidence: Evidence[];
}

export type Action = 'hold' | 'advance' | 'promote' | 'rollback';

export interface Decision {
  action: Action;
  /** The canary weight to set. */
  weight: number;
  state: AnalysisState;
  verdicts: MetricVerdict[];
  /** Why, with the numbers and the rule. */
  reason: string;
  /** The check has been unable to judge for inconclusiveLimit checks in a row: tell people. */
  inconclusiveAlarm: boolean;
  /**
   * What people must be told although it fails nothing: today, a metric whose absolute bound
   * stable breaks too ("stable breaks this bound too", with the numbers). One entry per metric;
   * the controller raises a Warning event and a condition from them.
   */
  warnings: DecisionWarning[];
  /** The analysis the decision was made under: where status finds each metric's bound and the number of steps. Left out by decisions made by hand. */
  analysis?: Analysis | undefined;
  /**
   * Decided between checks (a watch): the metrics it did not judge, with their values over the
   * requests it looked at, so that status shows every metric's numbers. Not verdicts: metrics and
   * notifications count only `verdicts`.
   */
  unjudged?: MetricVerdict[] | undefined;
}

export interface DecisionWarning {
  metric: string;
  reason: string;
}

export interface EngineOptions {
  /**
   * Count an inconclusive or unmeasurable check as a failure, as Flagger does. Only for
   * comparing policies (bench, simulate); ModelCanary has no such setting, on purpose.
   */
  inconclusiveIsFailure?: boolean;
  /**
   * Judge thresholds on point values, as Flagger does: no confidence bounds and no
   * stable-breaks-too rule. Only for comparing policies (bench); ModelCanary has no such setting.
   */
  pointEstimates?: boolean;
}

/** The state when a rollout starts: the first step's weight, nothing counted. */
export function startState(): AnalysisState {
  return { stepIndex: 0, passedChecks: 0, failedChecks: 0, inconclusiveChecks: 0, evidence: [] };
}

export function weightAt(analysis: Analysis, state: AnalysisState): number {
  return analysis.steps[state.stepIndex] ?? 100;
}

const NOT_FETCHED: Sample = { kind: 'noData', reason: 'not fetched' };

export function decide(analysis: Analysis, state: AnalysisState, observation: Observation, options: EngineOptions = {}): Decision {
  const fresh = observation.sinceLastCheck;
  const freshCounts = bothCounts(fresh);
  const judged = freshCounts === undefined ? fresh : asSamples(state.carried === undefined ? freshCounts : sum(state.carried, freshCounts));
  const traffic: VersionPair<number | undefined> = { stable: countsOf(judged.stable)?.requests, canary: countsOf(judged.canary)?.requests };
  const thresholdVerdicts = analysis.metrics.map((metric) =>
    judgeMetric(metric, metric.type === 'prometheus' || metric.type === 'outliers' || isPresetType(metric.type) ? (observation.custom[metric.name] ?? { stable: NOT_FETCHED, canary: NOT_FETCHED }) : judged, analysis, traffic, {
      pointEstimates: options.pointEstimates,
    }),
  );
  // The intervals this check judges: its own, and those of the inconclusive checks carried into it.
  const judgedChecks = freshCounts === undefined || state.carried === undefined ? 1 : 1 + (state.carriedChecks ?? 1);
  // Requests the sequential test has not seen yet: the whole interval, unless watch() looked at part of it.
  const unseen = observation.sinceLastWatch === undefined ? freshCounts : bothCounts(observation.sinceLastWatch);
  const sequential = feedSequentialTests(analysis, state.evidence, unseen, countsOf(judged.stable), observation.custom);
  const evidence = sequential.evidence;
  const verdicts = thresholdVerdicts.map((verdict) => {
    const rejection = sequential.rejections.get(verdict.name);
    return rejection === undefined ? verdict : { ...verdict, verdict: 'fail' as const, severe: true, reason: `${rejection}; ${verdict.reason}` };
  });
  const weight = weightAt(analysis, state);
  const counted: AnalysisState = { ...state, evidence, carried: undefined, carriedChecks: undefined };
  const warnings = verdicts.flatMap((v) => (v.warning === undefined ? [] : [{ metric: v.name, reason: v.warning }]));
  const decision = (action: Action, next: AnalysisState, reason: string, nextWeight = weight, inconclusiveAlarm = false): Decision => ({
    action,
    weight: nextWeight,
    state: next,
    verdicts,
    reason,
    inconclusiveAlarm,
    warnings,
    analysis,
  });

  const severe = verdicts.find((v) => v.severe);
  if (severe !== undefined) {
    return decision('rollback', { ...counted, failedChecks: counted.failedChecks + 1 }, `rolled back at once: ${severe.name}: ${severe.reason}`, 0);
  }

  const failed = verdicts.filter((v) => v.verdict === 'fail' || (options.inconclusiveIsFailure === true && v.verdict !== 'pass'));
  if (failed.length > 0) {
    const failedChecks = counted.failedChecks + 1;
    const why = failed.map((v) => `${v.name}: ${v.reason}`).join('; ');
    const next = { ...counted, failedChecks, passedChecks: 0, inconclusiveChecks: 0 };
    if (failedChecks >= analysis.failureThreshold) return decision('rollback', next, `${failedChecks} failed checks reached failureThreshold ${analysis.failureThreshold}: ${why}`, 0);
    return decision('hold', next, `check failed (${failedChecks} of ${analysis.failureThreshold} before rollback), holding at ${weight} %: ${why}`);
  }

  const unsure = verdicts.filter((v) => v.verdict !== 'pass');
  if (unsure.length > 0) {
    const inconclusiveChecks = counted.inconclusiveChecks + 1;
    const why = unsure.map((v) => `${v.name}: ${v.reason}`).join('; ');
    const alarm = inconclusiveChecks >= analysis.inconclusiveLimit;
    const bound = alarm ? `, ${inconclusiveChecks} checks in a row without a verdict (inconclusiveLimit ${analysis.inconclusiveLimit})` : '';
    // Keep this check's requests for the next one, so that low traffic adds up to a verdict.
    const judgedCounts = bothCounts(judged);
    const carry = judgedCounts === undefined ? { carried: state.carried, carriedChecks: state.carriedChecks } : { carried: judgedCounts, carriedChecks: judgedChecks };
    return decision('hold', { ...counted, inconclusiveChecks, ...carry }, `holding at ${weight} %: not enough evidence${bound}: ${why}`, weight, alarm);
  }

  // A pass on carried requests vouches for every interval it judged, not just the last one.
  const passedChecks = counted.passedChecks + judgedChecks;
  const passed = { ...counted, passedChecks, inconclusiveChecks: 0 };
  const notes = [
    ...(judgedChecks > 1 ? [`judging ${judgedChecks} intervals together`] : []),
    ...(warnings.length > 0 ? [`stable breaks a bound too: ${warnings.map((w) => w.metric).join(', ')}`] : []),
  ].join('; ');
  if (passedChecks < analysis.checksPerStep) {
    return decision('hold', passed, `all checks passed (${passedChecks} of ${analysis.checksPerStep} at ${weight} %${notes === '' ? '' : `, ${notes}`})`);
  }
  const nextIndex = state.stepIndex + 1;
  const nextWeight = analysis.steps[nextIndex] ?? 100;
  const next = { ...passed, stepIndex: nextIndex, passedChecks: 0 };
  const noted = notes === '' ? '' : ` (${notes})`;
  if (nextIndex >= analysis.steps.length - 1) return decision('promote', next, `all checks passed at ${weight} %: promoting${noted}`, 100);
  return decision('advance', next, `all checks passed at ${weight} %: advancing to ${nextWeight} %${noted}`, nextWeight);
}

function bothCounts(pair: VersionPair<Sample>): VersionPair<Counts> | undefined {
  const stable = countsOf(pair.stable);
  const canary = countsOf(pair.canary);
  return stable === undefined || canary === undefined ? undefined : { stable, canary };
}


function sum(a: VersionPair<Counts>, b: VersionPair<Counts>): VersionPair<Counts> {
  return { stable: addCounts(a.stable, b.stable), canary: addCounts(a.canary, b.canary) };
}

/**
 * Between checks: feeds the requests since the last look into the sequential tests, and rolls
 * back at once if one of them rejects. Nothing else is judged here: thresholds need the whole
 * interval's requests, the sequential test's guarantee holds however often it looks.
 */
export function watch(analysis: Analysis, state: AnalysisState, counts: VersionPair<Counts>): { state: AnalysisState; rollback?: Decision } {
  const sequential = feedSequentialTests(analysis, state.evidence, counts, counts.stable);
  const next = { ...state, evidence: sequential.evidence };
  if (sequential.rejections.size === 0) return { state: next };
  // The values shown are those of the requests since the last look: what tipped the evidence.
  const looked = analysis.metrics.map((metric) => ({ metric, rejection: sequential.rejections.get(metric.name), stable: lookValue(metric, counts.stable), canary: lookValue(metric, counts.canary) }));
  const verdicts: MetricVerdict[] = looked.flatMap(({ metric, rejection, stable, canary }) =>
    rejection === undefined ? [] : [{ name: metric.name, type: metric.type, verdict: 'fail' as const, severe: true, reason: rejection, stable, canary }],
  );
  const unjudged: MetricVerdict[] = looked.flatMap(({ metric, rejection, stable, canary }) =>
    rejection !== undefined ? [] : [{ name: metric.name, type: metric.type, verdict: 'inconclusive' as const, severe: false, reason: NOT_JUDGED, stable, canary }],
  );
  const reason = `rolled back at once: ${verdicts.map((v) => `${v.name}: ${v.reason}`).join('; ')}`;
  const failed = { ...next, failedChecks: next.failedChecks + 1 };
  return { state: failed, rollback: { action: 'rollback', weight: 0, state: failed, verdicts, reason, inconclusiveAlarm: false, warnings: [], analysis, unjudged } };
}

const NOT_JUDGED = 'not judged between checks (the sequential test finds nothing against it); the values are of the requests since the last look';

/**
 * Whether a watch's evidence is worth a status write. A look that leaves every test far from
 * rejecting (its likelihood ratio below the square root of the rejection threshold) need not be
 * kept: the next look reads from the last kept mark and sees the same requests in one batch, so
 * nothing is lost or counted twice, and a healthy rollout writes at its checks, not at every
 * watch. Kept: a latency bound chosen in this look, and evidence half-way (in log terms) or more
 * to a rollback.
 */
export function watchWorthKeeping(analysis: Analysis, before: readonly Evidence[], after: readonly Evidence[]): boolean {
  const alpha = analysis.sequentialTest.falseAlarmRate / 2;
  const halfWay = Math.log(1 / alpha) / 2;
  const earlier = readTests(before);
  return readTests(after).some((e) => {
    const was = earlier.find((b) => b.metric === e.metric && b.quantile === e.quantile);
    // A look that counted no event leaves the evidence as it was: the next look sees its requests anyway.
    const changed = was === undefined || was.canaryEvents !== e.canaryEvents || was.stableEvents !== e.stableEvents;
    return was?.boundMs !== e.boundMs || (changed && logMixture(e) >= halfWay);
  });
}

/** The tests status kept, in either of its formats; one that cannot be read starts again. */
function readTests(evidence: readonly Evidence[]): SequentialTestState[] {
  return evidence.flatMap((e) => testOf(e) ?? []);
}

/** A version's value of `metric` over one look's counts: its 5xx ratio, or its latency quantile. */
function lookValue(metric: Metric | undefined, counts: Counts): number | undefined {
  if (metric?.type === 'errorRate') return counts.requests > 0 ? counts.errors / counts.requests : undefined;
  if (metric?.type === 'latency' && counts.latency !== undefined && total(counts.latency) > 0) return histogramQuantile(metric.quantile, counts.latency);
  return undefined;
}

/**
 * Adds requests to each metric's sequential tests and says which metrics' tests reject. A
 * rejection rolls back at once: the false-alarm rate is already bounded over the whole
 * rollout, so waiting for more failed checks would only serve more users a worse model.
 */
function feedSequentialTests(
  analysis: Analysis,
  stored: readonly Evidence[],
  fresh: VersionPair<Counts> | undefined,
  stableJudged: Counts | undefined,
  /** At a check: the presets' counts since the last check, which only checks read (watches leave their tests as they are). */
  presets?: Observation['custom'],
): { evidence: Evidence[]; rejections: Map<string, string> } {
  const settings = analysis.sequentialTest;
  const rejections = new Map<string, string>();
  const previous = readTests(stored);
  if (!settings.enabled) return { evidence: previous.map(evidenceOf), rejections };
  const evidence: Evidence[] = [];
  for (const metric of analysis.metrics) {
    const tests = testsOf(metric);
    // Latency runs two tests (body and tail of the distribution), each at half the false-alarm rate.
    const alpha = settings.falseAlarmRate / tests.length;
    const own = isPresetType(metric.type) ? bothCounts(presets?.[metric.name] ?? { stable: NOT_FETCHED, canary: NOT_FETCHED }) : fresh;
    for (const test of tests) {
      const before = previous.find((e) => e.metric === metric.name && e.quantile === test.quantile) ?? test;
      const after = own === undefined ? before : accumulate(before, own, own === fresh ? stableJudged : own.stable, settings.toleratedRatio);
      evidence.push(evidenceOf(after));
      if (!rejections.has(metric.name) && rejects(after, alpha)) rejections.set(metric.name, rejectionReason(after, alpha, settings.toleratedRatio, metric.type));
    }
  }
  return { evidence, rejections };
}

function rejectionReason(evidence: SequentialTestState, alpha: number, toleratedRatio: number, type: Metric['type']): string {
  const errors = type === 'inferenceErrorRate' ? 'error rate at the endpoint picker' : '5xx rate';
  const what = evidence.events === 'errors' ? errors : `share of ${type === 'interTokenLatency' ? 'observations' : 'requests'} slower than ${formatValue(evidence.boundMs ?? NaN)} ms`;
  const than = toleratedRatio === 1 ? "stable's" : `${toleratedRatio}× stable's`;
  return `the sequential test finds the canary's ${what} above ${than}: likelihood ratio ${formatValue(Math.exp(logMixture(evidence)))} ≥ ${formatValue(1 / alpha)} (canary ${evidence.canaryEvents} vs stable ${evidence.stableEvents} events so far)`;
}

/** The tests a metric starts with: errors for errorRate; for latency, requests slower than stable's median and than stable's checked quantile. */
function testsOf(metric: Metric): SequentialTestState[] {
  const { logRatios, canaryEvents, stableEvents } = noEvidence();
  const empty = { metric: metric.name, logRatios, canaryEvents, stableEvents };
  if (metric.type === 'errorRate' || metric.type === 'inferenceErrorRate') return [{ ...empty, events: 'errors' }];
  if (metric.type === 'latency' || metric.type === 'ttft' || metric.type === 'interTokenLatency' || metric.type === 'e2eLatency') {
    const quantiles = metric.quantile === 0.5 ? [0.5] : [0.5, metric.quantile];
    return quantiles.map((quantile) => ({ ...empty, events: 'slowRequests', quantile }));
  }
  return [];
}

/**
 * Adds one interval to a test's evidence. For latency the bad event is "slower than a bucket
 * bound"; the bound is fixed the first time stable's quantile is known, and only used from the
 * next check on, so that it never depends on the counts it judges (the guarantee needs that).
 * Events are rounded: counts from Prometheus's increase() are extrapolated, so fractional, and
 * the test counts whole requests.
 */
function accumulate(evidence: SequentialTestState, fresh: VersionPair<Counts>, stableJudged: Counts | undefined, toleratedRatio: number): SequentialTestState {
  if (evidence.events === 'errors') {
    return merge(evidence, fresh.stable.requests, fresh.canary.requests, Math.round(fresh.stable.errors), Math.round(fresh.canary.errors), toleratedRatio);
  }
  const stableHistogram = fresh.stable.latency;
  const canaryHistogram = fresh.canary.latency;
  if (stableHistogram === undefined || canaryHistogram === undefined) return evidence;
  if (evidence.boundMs === undefined) {
    const quantile = histogramQuantile(evidence.quantile ?? 0.5, stableJudged?.latency ?? stableHistogram);
    return Number.isFinite(quantile) ? { ...evidence, boundMs: boundAtOrAbove(stableHistogram.bounds, quantile) } : evidence;
  }
  const bound = evidence.boundMs;
  if (!stableHistogram.bounds.includes(bound) || !canaryHistogram.bounds.includes(bound)) return evidence;
  const slow = (histogram: typeof stableHistogram): number => Math.round(countAbove(histogram, bound));
  return merge(evidence, fresh.stable.requests, fresh.canary.requests, slow(stableHistogram), slow(canaryHistogram), toleratedRatio);
}

function merge(evidence: SequentialTestState, stableRequests: number, canaryRequests: number, stableEvents: number, canaryEvents: number, toleratedRatio: number): SequentialTestState {
  const logRatios = evidence.logRatios.length === RATIO_GRID.length ? evidence.logRatios : noEvidence().logRatios;
  const next = update({ logRatios, canaryEvents: evidence.canaryEvents, stableEvents: evidence.stableEvents }, { stableRequests, canaryRequests, stableEvents, canaryEvents }, toleratedRatio);
  return { ...evidence, ...next };
}
