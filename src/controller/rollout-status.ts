// The rollout's state lives in the ModelCanary's status and nowhere else: these functions turn
// status into the engine's state and a decision back into status, so a restarted controller
// resumes exactly where the last one wrote.

import type { ModelCanarySpec } from '../api/modelcanary.ts';
import { bucketsText, latencyOf, setCondition, type Condition, type MetricResult, type ModelCanaryStatus, type Phase, type VersionCounts, type WatchMark } from '../api/status.ts';
import type { Counts, VersionPair } from '../api/observation.ts';
import type { AnalysisState, Decision } from '../analysis/engine.ts';
import type { MetricVerdict } from '../analysis/verdicts.ts';
import { boundOf } from './notifications.ts';

export function analysisStateOf(status: ModelCanaryStatus): AnalysisState {
  return {
    stepIndex: status.currentStep ?? 0,
    passedChecks: status.passedChecks ?? 0,
    failedChecks: status.failedChecks ?? 0,
    inconclusiveChecks: status.inconclusiveChecks ?? 0,
    carried: status.carriedCounts === undefined ? undefined : { stable: countsOf(status.carriedCounts.stable), canary: countsOf(status.carriedCounts.canary) },
    carriedChecks: status.carriedChecks,
    evidence: status.evidence ?? [],
  };
}

export interface StartFacts {
  spec: ModelCanarySpec;
  generation: number;
  route: { kind: 'VirtualService' | 'HTTPRoute'; name: string };
  /** The retry annotation's value acted on, if any. */
  retry: string | undefined;
  now: Date;
}

/** The status of a rollout that starts now at the first step: nothing judged, nothing counted. */
export function startingStatus(previous: ModelCanaryStatus, facts: StartFacts): ModelCanaryStatus {
  const { spec, generation, now } = facts;
  const weight = spec.analysis.steps[0] ?? 0;
  let conditions = previous.conditions ?? [];
  const set = (type: string, status: Condition['status'], reason: string, message: string): void => {
    conditions = setCondition(conditions, { type, status, reason, message, observedGeneration: generation }, now);
  };
  set('Valid', 'True', 'SpecAccepted', 'the spec is valid');
  set('Preflight', 'True', 'Passed', 'the route, the subsets and the metrics all answer');
  set('RoutingReady', 'True', 'RouteClaimed', `${facts.route.kind} ${facts.route.name} is managed by this ModelCanary`);
  set('Progressing', 'True', 'RolloutStarted', `canary ${spec.canary.version} at ${weight} %`);
  conditions = conditions.filter((c) => c.type !== 'Promoted');
  const time = now.toISOString();
  return {
    phase: spec.suspend ? 'Paused' : 'Progressing',
    observedGeneration: generation,
    stableVersion: spec.stable.version,
    canaryVersion: spec.canary.version,
    canaryWeight: weight,
    currentStep: 0,
    stepLabel: stepLabel(0, spec.analysis.steps.length),
    passedChecks: 0,
    failedChecks: 0,
    inconclusiveChecks: 0,
    evidence: [],
    conditions,
    message: `rollout of ${spec.canary.version} started at ${weight} %`,
    lastAnalysis: { time, judgedAt: time, decision: 'start', reason: `canary ${spec.canary.version} at ${weight} %`, metrics: [] },
    stepStartedAt: time,
    route: facts.route,
    retry: facts.retry ?? previous.retry,
  };
}

const PHASE_OF: Record<Decision['action'], Phase> = { hold: 'Progressing', advance: 'Progressing', promote: 'Succeeded', rollback: 'RolledBack' };

/**
 * The status after a decision. `windowEnd` is when the evidence was read; `judgedAt` when the
 * decision was made; a new weight takes effect from `judgedAt` (the route is written right after).
 */
export function statusAfter(decision: Decision, previous: ModelCanaryStatus, generation: number, windowEnd: Date, judgedAt: Date): ModelCanaryStatus {
  const now = judgedAt;
  const state = decision.state;
  let conditions: Condition[] = previous.conditions ?? [];
  const set = (type: string, status: Condition['status'], reason: string, message: string): void => {
    conditions = setCondition(conditions, { type, status, reason, message, observedGeneration: generation }, now);
  };
  const alarm = decision.inconclusiveAlarm;
  set('MetricsAvailable', alarm ? 'False' : 'True', alarm ? 'NoEvidence' : 'Measured', alarm ? decision.reason : 'the last checks could judge the canary');
  // A bound stable breaks too does not fail the canary, but people must know the bound is not met.
  const warnings = decision.warnings;
  if (warnings.length > 0) set('StableMeetsBounds', 'False', 'StableBreaksBound', warnings.map((w) => `${w.metric}: ${w.reason}`).join('; ').slice(0, 32768));
  else if (conditions.some((c) => c.type === 'StableMeetsBounds')) set('StableMeetsBounds', 'True', 'BoundsMet', 'stable meets every bound the canary is judged by');
  if (decision.action === 'promote') {
    set('Progressing', 'False', 'Promoted', decision.reason);
    set('Promoted', 'True', 'ChecksPassed', decision.reason);
  } else if (decision.action === 'rollback') {
    const summary = rollbackSummary(decision, previous);
    set('Progressing', 'False', 'RolledBack', summary);
    set('Promoted', 'False', 'RolledBack', summary);
  }
  return {
    ...previous,
    phase: PHASE_OF[decision.action],
    observedGeneration: generation,
    canaryWeight: decision.weight,
    currentStep: state.stepIndex,
    stepLabel: stepLabel(state.stepIndex, decision.analysis?.steps.length ?? stepsOf(previous.stepLabel)),
    passedChecks: state.passedChecks,
    failedChecks: state.failedChecks,
    inconclusiveChecks: state.inconclusiveChecks,
    carriedCounts: state.carried === undefined ? undefined : { stable: roundCounts(state.carried.stable), canary: roundCounts(state.carried.canary) },
    carriedChecks: state.carried === undefined ? undefined : state.carriedChecks,
    evidence: state.evidence,
    conditions,
    message: decision.reason.slice(0, 4096),
    stepStartedAt: decision.weight === previous.canaryWeight ? previous.stepStartedAt : judgedAt.toISOString(),
    lastAnalysis: {
      time: windowEnd.toISOString(),
      judgedAt: judgedAt.toISOString(),
      decision: decision.action,
      reason: decision.reason.slice(0, 4096),
      metrics: metricResults(decision, previous),
    },
  };
}

/**
 * A rollback in one line for its conditions: the whole reason (often a paragraph with every
 * number) is status.message and lastAnalysis.reason already; said twice more in Progressing and
 * Promoted, it was most of what `kubectl describe` printed.
 */
function rollbackSummary(decision: Decision, previous: ModelCanaryStatus): string {
  if (decision.reason.length <= SHORT_REASON) return decision.reason;
  const failed = decision.verdicts.filter((v) => v.verdict === 'fail').map((v) => v.name);
  const what = failed.length > 0 ? `: ${failed.join(', ')} failed` : '';
  return `${previous.canaryVersion ?? 'the canary'} rolled back to ${previous.stableVersion ?? 'stable'} at ${String(previous.canaryWeight ?? 0)} %${what}; status.message says why`;
}

const SHORT_REASON = 120;

/**
 * Conditions about a rollout on its way. Once it has ended, a True one describes nothing (the
 * next rollout sets it again); a False one may be why it ended (a gate that timed out), so it stays.
 */
const RUNNING_CONDITIONS: ReadonlySet<string> = new Set(['Preflight', 'MetricsAvailable', 'GateOpen', 'InWindow']);

/**
 * The status of a rollout that has just ended (promoted or rolled back), without what only a
 * running rollout needs: the sequential test's evidence, the watch mark, carried counts, the
 * step's check counters, gate and window waits, and the True conditions about its progress.
 * What stays is the outcome and the last check's numbers, which is what `kubectl describe`
 * should show. A restart needs none of it: an ended rollout waits for a new canary version or
 * a retry, and both start from nothing.
 */
export function endedStatus(status: ModelCanaryStatus): ModelCanaryStatus {
  const { evidence: _e, watchMark: _w, carriedCounts: _c, carriedChecks: _cc, passedChecks: _p, failedChecks: _f, inconclusiveChecks: _i, gate: _g, window: _win, ...kept } = status;
  return { ...kept, conditions: (status.conditions ?? []).filter((c) => !(RUNNING_CONDITIONS.has(c.type) && c.status === 'True')) };
}

/**
 * Each metric's line of the last analysis: its values, its bound and its verdict. A decision
 * between checks (a watch) judged only the metrics that failed; the others show the values of
 * the requests it looked at and keep the verdict of the last check, so that every metric has
 * its numbers whatever decided.
 */
function metricResults(decision: Decision, previous: ModelCanaryStatus): MetricResult[] {
  const metrics = decision.analysis?.metrics ?? [];
  const earlier = previous.lastAnalysis?.metrics ?? [];
  const result = (v: MetricVerdict): MetricResult => {
    const metric = metrics.find((m) => m.name === v.name);
    const bound = metric === undefined ? earlier.find((e) => e.name === v.name)?.bound : boundOf(metric);
    // The confidence bounds are in the reason, in words; as fields they were nine lines a metric.
    return { name: v.name, verdict: v.verdict, stable: readable(v.stable), canary: readable(v.canary), bound: bound?.slice(0, 256), reason: v.reason.slice(0, 4096) };
  };
  const judged = decision.verdicts.map(result);
  const unjudged = (decision.unjudged ?? []).map((v) => {
    const last = earlier.find((e) => e.name === v.name);
    const shown = result(v);
    if (last === undefined) return shown;
    return {
      ...shown,
      verdict: last.verdict,
      stable: shown.stable ?? last.stable ?? null,
      canary: shown.canary ?? last.canary ?? null,
      reason: `${v.reason}; at the last check: ${last.reason}`.slice(0, 4096),
    };
  });
  const order = metrics.map((m) => m.name);
  const rank = (r: MetricResult): number => (order.includes(r.name) ? order.indexOf(r.name) : order.length);
  return [...judged, ...unjudged].sort((a, b) => rank(a) - rank(b));
}

/** The step as people count it: the second of three is 2/3. */
function stepLabel(stepIndex: number, steps: number | undefined): string | undefined {
  return steps === undefined || steps <= 0 ? undefined : `${String(Math.min(stepIndex + 1, steps))}/${String(steps)}`;
}

/** The number of steps a label says (decisions made by hand carry no analysis). */
function stepsOf(label: string | undefined): number | undefined {
  const steps = Number(label?.split('/')[1]);
  return Number.isInteger(steps) && steps > 0 ? steps : undefined;
}

/** A measured value for people and dashboards: four significant digits (whole numbers from 1,000 up); null when there is none. */
function readable(x: number | undefined): number | null {
  if (x === undefined || !Number.isFinite(x)) return null;
  return Math.abs(x) >= 1000 ? Math.round(x) : Number(x.toPrecision(4));
}

/** Counts as status keeps them: whole requests and errors, the latency buckets in one line (see bucketsText). */
function roundCounts(c: Counts): VersionCounts {
  const counts = { requests: Math.round(c.requests), errors: Math.round(c.errors) };
  return c.latency === undefined ? counts : { ...counts, buckets: bucketsText(c.latency) };
}

/** Counts status kept, in either of its formats. */
function countsOf(c: VersionCounts): Counts {
  const latency = latencyOf(c);
  return latency === undefined ? { requests: c.requests, errors: c.errors } : { requests: c.requests, errors: c.errors, latency };
}

/** The counters read at a look of the sequential test, to subtract at the next one. */
export function markOf(totals: VersionPair<Counts>, now: Date): WatchMark {
  return { time: now.toISOString(), stable: roundCounts(totals.stable), canary: roundCounts(totals.canary) };
}

/**
 * The requests counted since the mark, per version; 'reset' when a counter went down (a proxy
 * restarted, a series went stale), so that the difference is not a count of anything.
 */
export function sinceMark(mark: WatchMark, totals: VersionPair<Counts>): VersionPair<Counts> | 'reset' {
  const stable = difference(totals.stable, mark.stable);
  const canary = difference(totals.canary, mark.canary);
  return stable === undefined || canary === undefined ? 'reset' : { stable, canary };
}

function difference(now: Counts, kept: VersionCounts): Counts | undefined {
  const before = countsOf(kept);
  const requests = Math.round(now.requests) - before.requests;
  const errors = Math.round(now.errors) - before.errors;
  if (requests < 0 || errors < 0) return undefined;
  const sameBounds = now.latency !== undefined && before.latency !== undefined && now.latency.bounds.join() === before.latency.bounds.join();
  if (!sameBounds || now.latency === undefined || before.latency === undefined) return { requests, errors };
  const earlier = before.latency.cumulative;
  const cumulative = now.latency.cumulative.map((c, i) => c - (earlier[i] ?? 0));
  if (cumulative.some((c) => c < 0)) return undefined;
  return { requests, errors, latency: { bounds: now.latency.bounds, cumulative } };
}
