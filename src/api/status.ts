// The status the controller writes. Dashboards and tools key on phase and canaryWeight.

import { z } from 'zod';
import { annotate } from './annotate.ts';

export const PHASES = ['Pending', 'Waiting', 'Progressing', 'Paused', 'Succeeded', 'RolledBack', 'Failed'] as const;
export const Phase = annotate(z.enum(PHASES), {
  description:
    'Pending: no traffic moved yet; waiting for the preflight (route, subsets, metrics), a gate, a rollout window or a problem named in the conditions. Waiting: ready to start, but the controller already runs as many rollouts as its operator allows (--max-concurrent-rollouts); it starts when one ends. Progressing: shifting traffic step by step. Paused: suspended by spec.suspend. Succeeded: the canary took all traffic and is what serves. RolledBack: the canary failed and stable has all traffic. Failed: traffic is split and held by a problem a person must fix (an invalid spec, a route the controller may not change); not final: the rollout resumes where it was once the problem is fixed.',
});
export type Phase = z.output<typeof Phase>;

export const VERDICTS = ['pass', 'fail', 'inconclusive', 'error'] as const;
export const Verdict = annotate(z.enum(VERDICTS), {
  description: 'pass; fail (measured bad); inconclusive (too little evidence: too few requests, no data, NaN); error (could not measure).',
});
export type Verdict = z.output<typeof Verdict>;

/** The kinds of condition the controller sets; each is True, False or Unknown. */
export const CONDITION_TYPES = ['Valid', 'Progressing', 'Promoted', 'MetricsAvailable', 'RoutingReady', 'Preflight', 'StableMeetsBounds', 'Notified', 'GateOpen', 'InWindow'] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

export const Condition = annotate(
  z.object({
    type: annotate(z.string().min(1).max(316), { description: 'Kind of condition, such as Valid, Progressing, Promoted or MetricsAvailable.' }),
    status: annotate(z.enum(['True', 'False', 'Unknown']), { description: 'True, False or Unknown.' }),
    reason: annotate(
      z
        .string()
        .min(1)
        .max(1024)
        .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/, 'must be a CamelCase word'),
      { description: 'Machine-readable CamelCase reason for the last transition.' },
    ),
    message: annotate(z.string().max(32768), { description: 'What happened, for people.' }),
    lastTransitionTime: annotate(z.iso.datetime({ offset: true }), { description: 'When status last changed.' }),
    observedGeneration: annotate(z.int().min(0), { description: 'The spec generation the condition was set for.' }).optional(),
  }),
  { description: 'A condition in the shape of metav1.Condition.' },
);
export type Condition = z.output<typeof Condition>;

export const MetricResult = annotate(
  z.object({
    name: annotate(z.string(), { description: 'Name of the metric.' }),
    verdict: Verdict,
    stable: annotate(z.number().nullable(), { description: "Stable's value, when measured, to four significant digits: a 5xx ratio, milliseconds, or the query's value." }).optional(),
    canary: annotate(z.number().nullable(), { description: "Canary's value, when measured." }).optional(),
    bound: annotate(z.string().max(256), { description: 'The bound the canary is held to, as people read it (≤ 1.00 %, p99 ≤ 500 ms, ≤ 1.25× stable).' }).optional(),
    reason: annotate(z.string().max(4096), { description: 'The numbers and the rule behind the verdict, with the confidence bounds of each version where the metric has them.' }),
  }),
  { description: 'The last verdict on one metric.' },
);
export type MetricResult = z.output<typeof MetricResult>;

export const LastAnalysis = annotate(
  z.object({
    time: annotate(z.iso.datetime({ offset: true }), { description: 'End of the analysed window: when the check read its metrics.' }),
    judgedAt: annotate(z.iso.datetime({ offset: true }), {
      description: 'When the decision was made (after the metrics arrived). The next check is due an interval after this, never sooner.',
    }).optional(),
    decision: annotate(z.string().max(64), { description: 'What the controller decided: hold, advance, promote or rollback.' }),
    reason: annotate(z.string().max(4096), { description: 'Why, in numbers.' }),
    metrics: annotate(z.array(MetricResult).max(20), { description: 'Per-metric verdicts.' }),
  }),
  { description: 'The most recent analysis.' },
);
export type LastAnalysis = z.output<typeof LastAnalysis>;

// ── Compact state ──────────────────────────────────────────────────────────────────────
//
// What a restarted controller needs to resume the sequential test (each test's log likelihood
// ratios) and the watch mark (each version's latency bucket counters) is kept in status, where
// it is written atomically with the decision it led to, but as one short string per test and
// per version rather than arrays that `kubectl describe` prints one number a line. The rule:
// a string starts with its format version ("v1;"); numbers keep every bit (log ratios as
// base64url of IEEE-754 doubles, counts and bounds as JavaScript's shortest round-trip
// decimals), so a decision after a restart is the one the controller would have made without
// it. Statuses written by modelcanary 0.1 (arrays: evidence[].logRatios, latency.bounds and
// latency.cumulative) stay declared here, so the API server keeps them, and are read as they
// are; they are never written again.

const FORMAT = 'v1';

/** One sequential test's state, as the engine works with it. */
export interface SequentialTestState {
  metric: string;
  /** What is counted: 5xx answers, or requests slower than boundMs. */
  events: 'errors' | 'slowRequests';
  quantile?: number | undefined;
  boundMs?: number | undefined;
  /** Log likelihood ratio of each alternative of the test. */
  logRatios: number[];
  canaryEvents: number;
  stableEvents: number;
}

const TEST_PATTERN = '^v1;(errors|slowRequests);[0-9.e+-]*;[0-9.e+-]*;[A-Za-z0-9_-]*$';

export const Evidence = annotate(
  z.object({
    metric: annotate(z.string(), { description: 'Name of the metric.' }),
    canaryEvents: annotate(z.int().min(0), { description: 'Events counted on the canary.' }),
    stableEvents: annotate(z.int().min(0), { description: 'Events counted on stable.' }),
    test: annotate(z.string().max(256).regex(new RegExp(TEST_PATTERN), 'must be v1;EVENTS;QUANTILE;BOUND_MS;LOG_RATIOS'), {
      description:
        'The test, for the controller: v1;EVENTS;QUANTILE;BOUND_MS;LOG_RATIOS. EVENTS is errors (5xx answers) or slowRequests (slower than BOUND_MS, a bucket bound chosen at QUANTILE of stable\'s latency; both empty for errors); LOG_RATIOS is the log likelihood ratio of each alternative of the test, as base64url of little-endian IEEE-754 doubles.',
    }).optional(),
    events: annotate(z.enum(['errors', 'slowRequests']), { description: 'Written by modelcanary 0.1 (now in test): what is counted.' }).optional(),
    quantile: annotate(z.number(), { description: 'Written by modelcanary 0.1 (now in test).' }).optional(),
    boundMs: annotate(z.number(), { description: 'Written by modelcanary 0.1 (now in test).' }).optional(),
    logRatios: annotate(z.array(z.number()).max(16), { description: 'Written by modelcanary 0.1 (now in test): log likelihood ratio of each alternative.' }).optional(),
  }),
  { description: "One sequential test's accumulated evidence." },
);
export type Evidence = z.output<typeof Evidence>;

/** The test as status keeps it. */
export function evidenceOf(test: SequentialTestState): Evidence {
  const bytes = new DataView(new ArrayBuffer(8 * test.logRatios.length));
  test.logRatios.forEach((x, i) => {
    bytes.setFloat64(8 * i, x, true);
  });
  const ratios = Buffer.from(bytes.buffer).toString('base64url');
  const number = (x: number | undefined): string => (x === undefined ? '' : String(x));
  return {
    metric: test.metric,
    canaryEvents: test.canaryEvents,
    stableEvents: test.stableEvents,
    test: [FORMAT, test.events, number(test.quantile), number(test.boundMs), ratios].join(';'),
  };
}

/** The test status kept, in either format; undefined when it cannot be read (then the test starts again). */
export function testOf(evidence: Evidence): SequentialTestState | undefined {
  const { metric, canaryEvents, stableEvents } = evidence;
  if (evidence.test === undefined) {
    if (evidence.events === undefined || evidence.logRatios === undefined) return undefined;
    return { metric, events: evidence.events, quantile: evidence.quantile, boundMs: evidence.boundMs, logRatios: [...evidence.logRatios], canaryEvents, stableEvents };
  }
  const [format, events, quantile, boundMs, ratios] = evidence.test.split(';');
  if (format !== FORMAT || (events !== 'errors' && events !== 'slowRequests') || ratios === undefined) return undefined;
  const bytes = Buffer.from(ratios, 'base64url');
  if (bytes.length % 8 !== 0) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const logRatios = Array.from({ length: bytes.length / 8 }, (_, i) => view.getFloat64(8 * i, true));
  const optional = (text: string | undefined): number | undefined => (text === undefined || text === '' ? undefined : Number(text));
  return { metric, events, quantile: optional(quantile), boundMs: optional(boundMs), logRatios, canaryEvents, stableEvents };
}

/** Latency bucket counters: finite upper bounds in milliseconds, and cumulative counts per bound, then the total. */
export interface BucketCounts {
  bounds: readonly number[];
  cumulative: readonly number[];
}

const BUCKETS_PATTERN = '^v1;(istio|[0-9.e+-]+(,[0-9.e+-]+)*);[0-9.e+*-]+(,[0-9.e+*-]+)*$';

/** Istio's default buckets (istio_request_duration_milliseconds), written as `istio`. */
const ISTIO_BOUNDS = '0.5,1,5,10,25,50,100,250,500,1000,2500,5000,10000,30000,60000,300000,600000,1800000,3600000';

/**
 * Buckets as status keeps them: v1;BOUNDS;COUNTS, with `istio` for Istio's default bounds and a
 * run of equal counts written once with its length (`2093*12`): a histogram's upper buckets
 * all hold the total.
 */
export function bucketsText(histogram: BucketCounts): string {
  const bounds = histogram.bounds.join(',');
  const runs: string[] = [];
  for (let i = 0; i < histogram.cumulative.length; ) {
    const value = histogram.cumulative[i] ?? 0;
    let n = 1;
    while (histogram.cumulative[i + n] === value) n++;
    runs.push(n === 1 ? String(value) : `${String(value)}*${String(n)}`);
    i += n;
  }
  return [FORMAT, bounds === ISTIO_BOUNDS ? 'istio' : bounds, runs.join(',')].join(';');
}

/** The buckets of bucketsText; undefined when the text cannot be read. */
export function bucketsOf(text: string): BucketCounts | undefined {
  const [format, boundsText, countsText] = text.split(';');
  if (format !== FORMAT || boundsText === undefined || countsText === undefined) return undefined;
  const bounds = (boundsText === 'istio' ? ISTIO_BOUNDS : boundsText).split(',').map(Number);
  const cumulative: number[] = [];
  for (const run of countsText.split(',')) {
    const [value, times] = run.split('*');
    const n = times === undefined ? 1 : Number(times);
    if (!Number.isInteger(n) || n < 1 || n > 1000) return undefined;
    for (let i = 0; i < n; i++) cumulative.push(Number(value));
  }
  const readable = [...bounds, ...cumulative].every(Number.isFinite) && cumulative.length === bounds.length + 1;
  return readable ? { bounds, cumulative } : undefined;
}

const VersionCounts = annotate(
  z.object({
    requests: annotate(z.int().min(0), { description: 'Requests served, as Istio counted them.' }),
    errors: annotate(z.int().min(0), { description: 'Requests answered with a 5xx.' }),
    buckets: annotate(z.string().max(1024).regex(new RegExp(BUCKETS_PATTERN), 'must be v1;BOUNDS;COUNTS'), {
      description:
        'Latency bucket counters, for the controller: v1;BOUNDS;COUNTS. BOUNDS are the bucket upper bounds in milliseconds (istio: Istio\'s default ones); COUNTS the cumulative count per bound, then the total, a run of equal counts written as COUNT*LENGTH.',
    }).optional(),
    latency: annotate(
      z.object({
        bounds: annotate(z.array(z.number()).max(64), { description: 'Bucket upper bounds in milliseconds.' }),
        cumulative: annotate(z.array(z.number()).max(65), { description: 'Cumulative counts per bound, then the total.' }),
      }),
      { description: 'Written by modelcanary 0.1 (now in buckets): latency bucket counts.' },
    ).optional(),
  }),
  { description: "One version's counts." },
);
export type VersionCounts = z.output<typeof VersionCounts>;

/** A version's latency buckets, in either format. */
export function latencyOf(counts: VersionCounts): BucketCounts | undefined {
  return counts.buckets !== undefined ? bucketsOf(counts.buckets) : counts.latency;
}

export const WatchMark = annotate(
  z.object({
    time: annotate(z.iso.datetime({ offset: true }), { description: 'When the counters were read.' }),
    stable: VersionCounts,
    canary: VersionCounts,
  }),
  {
    description:
      "Each version's cumulative counters (sums of istio_requests_total and its latency buckets) at the sequential test's last look, a check or a watch: the next look feeds it only the requests counted since.",
  },
);
export type WatchMark = z.output<typeof WatchMark>;

export const CarriedCounts = annotate(z.object({ stable: VersionCounts, canary: VersionCounts }), {
  description: 'Counts of checks that were inconclusive for too few requests, added to the next check at this step.',
});
export type CarriedCounts = z.output<typeof CarriedCounts>;

export const SEVERITIES = ['info', 'warning', 'error'] as const;
export const Severity = annotate(z.enum(SEVERITIES), { description: 'info (progress), warning (needs a look), error (failed, or held until a person acts).' });
export type Severity = z.output<typeof Severity>;

export const NOTIFICATION_KINDS = ['started', 'retried', 'canaryReplaced', 'advanced', 'promoted', 'rolledBack', 'noEvidence', 'held', 'invalid', 'paused', 'resumed', 'gated', 'aborted'] as const;
export const NotificationKind = annotate(z.enum(NOTIFICATION_KINDS), {
  description:
    'What happened: started, retried, canaryReplaced, advanced (a step), promoted, rolledBack, noEvidence (held without evidence past inconclusiveLimit), held (route refused, preflight failing), invalid (the spec), paused, resumed, gated (waiting for an approval or a webhook), aborted (by a person).',
});
export type NotificationKind = z.output<typeof NotificationKind>;

export const MetricLine = annotate(
  z.object({
    name: annotate(z.string().max(63), { description: 'Name of the metric.' }),
    verdict: Verdict,
    stable: annotate(z.string().max(64), { description: "Stable's value as people read it (1.2 %, 340 ms), or - when not measured." }),
    canary: annotate(z.string().max(64), { description: "Canary's value as people read it, or - when not measured." }),
    stableValue: annotate(z.number().nullable(), { description: "Stable's value as a number (a ratio, milliseconds, or the query's value)." }).optional(),
    canaryValue: annotate(z.number().nullable(), { description: "Canary's value as a number." }).optional(),
    bound: annotate(z.string().max(256), { description: 'The bound the canary is held to, as people read it (≤ 1 %, p99 ≤ 500 ms and ≤ 1.25× stable).' }),
    reason: annotate(z.string().max(1024), { description: 'The numbers and the rule behind the verdict.' }),
  }),
  { description: "One metric's verdict, as a notification shows it." },
);
export type MetricLine = z.output<typeof MetricLine>;

export const Notification = annotate(
  z.object({
    id: annotate(z.string().min(1).max(256), { description: 'Unique per transition: receivers may use it to drop a repeat.' }),
    kind: NotificationKind,
    severity: Severity,
    time: annotate(z.iso.datetime({ offset: true }), { description: 'When the transition was written.' }),
    namespace: annotate(z.string().max(63), { description: "The ModelCanary's namespace." }),
    name: annotate(z.string().max(253), { description: "The ModelCanary's name." }),
    model: annotate(z.string().max(253), { description: 'spec.model.' }),
    stableVersion: annotate(z.string().max(63), { description: 'The stable version.' }),
    canaryVersion: annotate(z.string().max(63), { description: 'The canary version.' }),
    step: annotate(z.int().min(0).max(21), { description: 'The step in force, from 1 (0: before the first).' }),
    steps: annotate(z.int().min(0).max(20), { description: 'How many steps the rollout has.' }),
    weight: annotate(z.int().min(0).max(100), { description: 'Percent of traffic on the canary after the transition.' }),
    phase: Phase,
    summary: annotate(z.string().max(1024), { description: 'What happened, in one sentence.' }),
    reason: annotate(z.string().max(4096), { description: 'Why, with the numbers and the rule that fired.' }),
    metrics: annotate(z.array(MetricLine).max(20), { description: 'Each metric of the check behind the transition.' }),
  }),
  { description: 'A notification owed for a transition.' },
);
export type Notification = z.output<typeof Notification>;


export const GateWait = annotate(
  z.object({
    name: annotate(z.string().max(63), { description: 'The gate (spec.analysis.gates[].name).' }),
    weight: annotate(z.int().min(1).max(100), { description: 'The weight the route moves to once the gate opens.' }),
    step: annotate(z.int().min(0).max(20), { description: 'Index into spec.analysis.steps of that weight.' }),
    approval: annotate(z.enum(['manual', 'webhook']), { description: 'manual: opened by `modelcanary approve`; webhook: opened when its URL answers 2xx.' }),
    canaryVersion: annotate(z.string().max(63), { description: 'The canary version the gate waits for.' }),
    since: annotate(z.iso.datetime({ offset: true }), { description: 'When the rollout reached the gate.' }),
    deadline: annotate(z.iso.datetime({ offset: true }), { description: 'When the gate times out (spec timeout), if it has one.' }).optional(),
    askedAt: annotate(z.iso.datetime({ offset: true }), { description: 'webhook: when the webhook was last asked.' }).optional(),
    answer: annotate(z.string().max(1024), { description: 'webhook: what it last answered, for people.' }).optional(),
  }),
  { description: 'The gate the rollout waits at: the checks go on (a bad canary is still rolled back), but the weight does not move on until it opens.' },
);
export type GateWait = z.output<typeof GateWait>;

export const OpenedGate = annotate(
  z.object({
    name: annotate(z.string().max(63), { description: 'The gate (spec.analysis.gates[].name).' }),
    weight: annotate(z.int().min(1).max(100), { description: 'The weight it let the route move to.' }),
    by: annotate(z.string().max(256), { description: 'Who opened it: "approved by <user>", "webhook answered 200", "timed out (onTimeout: advance)", "promoted by <user>".' }),
    at: annotate(z.iso.datetime({ offset: true }), { description: 'When it was opened.' }),
  }),
  { description: 'A gate opened during this rollout.' },
);
export type OpenedGate = z.output<typeof OpenedGate>;

export const WindowWait = annotate(
  z.object({
    since: annotate(z.iso.datetime({ offset: true }), { description: 'When a step was first held by the windows.' }),
    opensAt: annotate(z.iso.datetime({ offset: true }), { description: 'When the next window opens; absent when none opens within a year.' }).optional(),
    reason: annotate(z.string().max(1024), { description: 'Which window rule holds the step, for people.' }),
  }),
  { description: 'Set while spec.analysis.windows hold a step (or the start): the checks go on, and rollback is never delayed.' },
);
export type WindowWait = z.output<typeof WindowWait>;

export const HandledRequests = annotate(
  z.object({
    promote: annotate(z.string().max(1024), { description: 'The modelcanary.io/promote annotation value last acted on.' }).optional(),
    abort: annotate(z.string().max(1024), { description: 'The modelcanary.io/abort annotation value last acted on.' }).optional(),
    approve: annotate(z.string().max(1024), { description: 'The modelcanary.io/approve annotation value last acted on.' }).optional(),
  }),
  { description: 'Requests made through annotations (kubectl modelcanary promote, abort, approve), each acted on once: a new value is a new request.' },
);
export type HandledRequests = z.output<typeof HandledRequests>;

export const MAX_OUTBOX = 8;

export const ModelCanaryStatus = annotate(
  z.object({
    phase: Phase.optional(),
    observedGeneration: annotate(z.int().min(0), { description: 'The spec generation this status describes.' }).optional(),
    stableVersion: annotate(z.string().max(63), { description: 'The version that serves traffic as stable.' }).optional(),
    canaryVersion: annotate(z.string().max(63), { description: 'The version being rolled out.' }).optional(),
    canaryWeight: annotate(z.int().min(0).max(100), { description: 'Percent of traffic now sent to the canary.' }).optional(),
    currentStep: annotate(z.int().min(0).max(20), { description: 'Index into spec.analysis.steps of the weight in force.' }).optional(),
    stepLabel: annotate(z.string().max(8).regex(/^[0-9]+\/[0-9]+$/, 'must be STEP/STEPS'), {
      description: 'The step in force as people count it, for kubectl get: 2/3 is the second of three steps (currentStep + 1 of spec.analysis.steps).',
    }).optional(),
    failedChecks: annotate(z.int().min(0), { description: 'Failed checks counted toward spec.analysis.failureThreshold.' }).optional(),
    inconclusiveChecks: annotate(z.int().min(0), { description: 'Consecutive inconclusive or unmeasurable checks.' }).optional(),
    passedChecks: annotate(z.int().min(0), { description: 'Passing checks at the current step, toward spec.analysis.checksPerStep.' }).optional(),
    lastAnalysis: LastAnalysis.optional(),
    carriedCounts: CarriedCounts.optional(),
    carriedChecks: annotate(z.int().min(0).max(100000), { description: 'How many checks the carried counts cover, credited toward spec.analysis.checksPerStep when they pass.' }).optional(),
    evidence: annotate(z.array(Evidence).max(40), {
      description: "The sequential test's evidence, one entry per test (a latency metric has two), so that it survives a restart of the controller.",
    }).optional(),
    watchMark: WatchMark.optional(),
    stepStartedAt: annotate(z.iso.datetime({ offset: true }), {
      description: 'When the route last took the current weight. A check judges only requests served since, so no step is judged on evidence from the step before.',
    }).optional(),
    route: annotate(
      z.object({
        kind: annotate(z.enum(['VirtualService', 'HTTPRoute']), { description: 'Kind of the route object.' }),
        name: annotate(z.string().max(253), { description: 'Name of the route object, in the ModelCanary\'s namespace.' }),
      }),
      { description: 'The route this ModelCanary claimed (annotation modelcanary.io/owner on it), so that a delete can release it even when the spec has become invalid.' },
    ).optional(),
    retry: annotate(z.string().max(256), {
      description: 'The value of the modelcanary.io/retry annotation last acted on: setting the annotation to a new value restarts a rolled-back rollout of the same versions.',
    }).optional(),
    gate: GateWait.optional(),
    openedGates: annotate(z.array(OpenedGate).max(40), { description: 'Gates opened during this rollout, and by whom.' }).optional(),
    window: WindowWait.optional(),
    handled: HandledRequests.optional(),
    outbox: annotate(z.array(Notification).max(MAX_OUTBOX), {
      description:
        'Notifications owed for transitions already written and not yet delivered (or given up on): written with the transition, sent after it, removed once settled, so a restart between the write and the send loses none.',
    }).optional(),
    conditions: annotate(z.array(Condition).max(16), {
      description: 'Conditions: Valid, Preflight, Progressing, Promoted, MetricsAvailable, RoutingReady, StableMeetsBounds, Notified, GateOpen, InWindow. Preflight, MetricsAvailable, GateOpen and InWindow describe a rollout on its way: when it ends, those that are True are removed.',
      extensions: { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] },
    }).optional(),
    message: annotate(z.string().max(4096), { description: 'What is happening now, for people.' }).optional(),
  }),
  { description: 'What the controller observed and did.' },
);
export type ModelCanaryStatus = z.output<typeof ModelCanaryStatus>;

/**
 * The conditions with `next` set: replaces the condition of the same type and keeps its
 * lastTransitionTime when the status did not change, as metav1 conventions require.
 */
export function setCondition(conditions: readonly Condition[], next: Omit<Condition, 'lastTransitionTime'>, now: Date): Condition[] {
  const previous = conditions.find((c) => c.type === next.type);
  const lastTransitionTime = previous !== undefined && previous.status === next.status ? previous.lastTransitionTime : now.toISOString();
  const updated: Condition = { ...next, lastTransitionTime };
  return previous === undefined ? [...conditions, updated] : conditions.map((c) => (c.type === next.type ? updated : c));
}
