// What one reconcile pass does, chosen as a value: a pure function of the object's metadata,
// its spec (checked), its status, the route as it is, and the time. The reconciler reads those,
// asks `choosePass`, and carries the answer out in one place, in one order: status first (the
// commit point, fenced on the resourceVersion read), then the route (which follows status),
// then events, logs and metrics. A pass that loses the race for the status write changes
// nothing and is re-decided from a fresh read.

import { watchIntervalMs, type Analysis, type ModelCanarySpec } from '../api/modelcanary.ts';
import type { ModelCanaryStatus, Phase } from '../api/status.ts';
import type { RouteIntent } from '../routing/plan.ts';
import type { ReleaseMode, RouteState } from '../routing/router.ts';
import { ACTION_ANNOTATIONS } from '../api/actions.ts';

/** Setting this annotation to a new value restarts a rolled-back rollout of the same versions. */
export const RETRY_ANNOTATION = ACTION_ANNOTATIONS.retry;

/** The requests people make of a running rollout, in the order they are acted on: an abort first. */
export const REQUESTS = ['abort', 'promote', 'approve'] as const;
export type RequestKind = (typeof REQUESTS)[number];

/** The values of the request annotations that are set. */
export function requestsOf(annotations: Readonly<Record<string, string>> | undefined): Partial<Record<RequestKind, string>> {
  const set: Partial<Record<RequestKind, string>> = {};
  for (const request of REQUESTS) {
    const value = annotations?.[ACTION_ANNOTATIONS[request]];
    if (value !== undefined) set[request] = value;
  }
  return set;
}

export interface PassInput {
  now: Date;
  generation: number;
  deleting: boolean;
  hasFinalizer: boolean;
  /** The value of the retry annotation, if set. */
  retry: string | undefined;
  /** The values of the promote, abort and approve annotations, where set. */
  requests: Partial<Record<RequestKind, string>>;
  spec: { ok: true; value: ModelCanarySpec } | { ok: false; problems: string };
  status: ModelCanaryStatus;
  /** The route against `intentOf(spec, status)`; undefined when there is no rollout to hold the route to. */
  route: RouteState | undefined;
  /** The controller's grid of reading instants (ReconcileDeps.readGridMs); default 1 s. */
  readGridMs?: number | undefined;
}

export type StartReason = 'new' | 'canaryChanged' | 'retry';

export type Pass =
  | { kind: 'finalize'; mode: ReleaseMode }
  | { kind: 'forget' }
  | { kind: 'holdInvalid'; problems: string; phase: Phase }
  | { kind: 'addFinalizer' }
  | { kind: 'start'; reason: StartReason }
  | { kind: 'refuseRoute'; problem: string; claimedBy?: string | undefined; phase: Phase }
  | { kind: 'recover'; phase: Phase }
  | { kind: 'converge' }
  | { kind: 'pause' }
  | { kind: 'resume' }
  | { kind: 'act'; request: RequestKind; value: string }
  | { kind: 'askGate' }
  | { kind: 'gateTimeout' }
  | { kind: 'wait'; ms: number }
  | { kind: 'watch'; checkDueMs: number }
  | { kind: 'check'; windowStart: Date }
  | { kind: 'done' };

const ENDED: ReadonlySet<string> = new Set<Phase>(['Succeeded', 'RolledBack']);

export function isEnded(status: ModelCanaryStatus): boolean {
  return ENDED.has(status.phase ?? '');
}

/** Traffic has been moved by this rollout and not yet brought to an end. */
function isSplit(status: ModelCanaryStatus): boolean {
  return status.phase === 'Progressing' || status.phase === 'Paused' || status.phase === 'Failed';
}

/** The phase a rollout held by a problem goes back to once it is fixed: what its last decision made it. */
export function resumedPhase(status: ModelCanaryStatus, suspend: boolean): Phase {
  switch (status.lastAnalysis?.decision) {
    case undefined:
      return 'Pending';
    case 'promote':
      return 'Succeeded';
    case 'rollback':
      return 'RolledBack';
    default:
      return suspend ? 'Paused' : 'Progressing';
  }
}

/** What the route must say for this status: the weight in force, the pin while the rollout runs, no marks once it ended. */
export function intentOf(spec: ModelCanarySpec, status: ModelCanaryStatus): RouteIntent {
  const ended = isEnded(status);
  return { weight: status.canaryWeight ?? 0, pin: !ended && spec.trafficRouting.istio?.pinHeader !== undefined, stage: ended ? 'end' : 'during' };
}

/** Why a rollout must (re)start from the first step, or undefined when the status already tracks this one. */
export function startReason(spec: ModelCanarySpec, status: ModelCanaryStatus, retry: string | undefined): StartReason | undefined {
  if (status.lastAnalysis === undefined || status.stableVersion !== spec.stable.version) return 'new';
  if (status.canaryVersion !== spec.canary.version) return isSplit(status) ? 'canaryChanged' : 'new';
  if (status.phase === 'RolledBack' && retry !== undefined && retry !== status.retry) return 'retry';
  return undefined;
}

export function choosePass(input: PassInput): Pass {
  const { status, now } = input;
  if (input.deleting) {
    if (!input.hasFinalizer) return { kind: 'forget' };
    // Mid-rollout a delete gives users back the route they had; after the end (or before
    // anything moved) the route stays as the rollout left it.
    return { kind: 'finalize', mode: isSplit(status) ? 'restore' : 'keep' };
  }
  if (!input.spec.ok) {
    const phase: Phase = status.phase === undefined ? 'Pending' : isSplit(status) ? 'Failed' : status.phase;
    return { kind: 'holdInvalid', problems: input.spec.problems, phase };
  }
  const spec = input.spec.value;
  if (!input.hasFinalizer) return { kind: 'addFinalizer' };

  const reason = startReason(spec, status, input.retry);
  if (reason !== undefined) return { kind: 'start', reason };

  const route = input.route;
  if (route !== undefined && !route.ok) {
    return { kind: 'refuseRoute', problem: route.problem, claimedBy: route.claimedBy, phase: isSplit(status) ? 'Failed' : (status.phase ?? 'Pending') };
  }
  const held = (status.conditions ?? []).some((c) => (c.type === 'Valid' || c.type === 'RoutingReady') && c.status === 'False');
  if (status.phase === 'Failed' || held) return { kind: 'recover', phase: resumedPhase(status, spec.suspend) };
  if (route !== undefined && !route.inSync) return { kind: 'converge' };
  const request = newRequest(status, input.requests);
  if (request !== undefined) return request;
  if (isEnded(status)) return { kind: 'done' };

  if (spec.suspend) return status.phase === 'Paused' ? { kind: 'done' } : { kind: 'pause' };
  if (status.phase === 'Paused') return { kind: 'resume' };
  return timing(spec, status, now, gridFor(input.readGridMs, spec.analysis));
}

/** The first request not acted on yet: each annotation value is acted on once (status.handled). */
export function newRequest(status: ModelCanaryStatus, requests: Partial<Record<RequestKind, string>>): Pass | undefined {
  for (const request of REQUESTS) {
    const value = requests[request];
    if (value !== undefined && value !== '' && value !== status.handled?.[request]) return { kind: 'act', request, value };
  }
  return undefined;
}

/**
 * When the next check or watch is due. A check judges the requests since the later of the last
 * check's window and the moment the route took its weight, and comes an interval after the
 * later of the last judgement and that moment: a slow check never makes the next one come at
 * once, nor lets a step be judged on evidence from the step before.
 */
function timing(spec: ModelCanarySpec, status: ModelCanaryStatus, now: Date, gridMs: number): Pass {
  const { analysis } = spec;
  const at = (text: string | undefined): number => (text === undefined ? 0 : Date.parse(text));
  const stepStarted = at(status.stepStartedAt);
  const windowEnd = at(status.lastAnalysis?.time);
  const judged = Math.max(at(status.lastAnalysis?.judgedAt ?? status.lastAnalysis?.time), stepStarted);
  // A gate's deadline and its webhook's next question come before the checks' timing.
  const gate = status.gate;
  let gateDue = Infinity;
  if (gate !== undefined) {
    const deadline = gate.deadline === undefined ? Infinity : Date.parse(gate.deadline) - now.getTime();
    if (deadline <= 0) return { kind: 'gateTimeout' };
    const askDue = gate.approval === 'webhook' ? at(gate.askedAt) + analysis.interval - now.getTime() : Infinity;
    if (askDue <= 0) return { kind: 'askGate' };
    gateDue = Math.min(deadline, askDue);
  }
  // A window starts on the grid, at or after its start (never on the step before), so a check is
  // due a whole interval after that grid instant: the first check of a step waits up to one grid
  // step rather than judge a short window.
  const windowStart = Math.max(windowEnd, stepStarted);
  const checkDue = Math.max(judged, Math.ceil(windowStart / gridMs) * gridMs) + analysis.interval - now.getTime();
  if (checkDue <= 0) return { kind: 'check', windowStart: new Date(windowStart) };
  const watching = analysis.sequentialTest.enabled && watchIntervalMs(analysis) < analysis.interval;
  if (!watching) return { kind: 'wait', ms: Math.min(checkDue, gateDue) };
  const lastLook = Math.max(judged, at(status.watchMark?.time));
  const watchDue = lastLook + watchIntervalMs(analysis) - now.getTime();
  return watchDue > 0 ? { kind: 'wait', ms: Math.min(checkDue, watchDue, gateDue) } : { kind: 'watch', checkDueMs: checkDue };
}

/** How often a rollout is looked at: every watch interval with the sequential test, else every interval. */
export function lookIntervalMs(analysis: Analysis): number {
  return analysis.sequentialTest.enabled ? Math.min(watchIntervalMs(analysis), analysis.interval) : analysis.interval;
}

/** The grid a rollout's metrics are read on: the controller's, in whole seconds, never coarser than its own look interval. */
export function gridFor(controllerGridMs: number | undefined, analysis: Analysis): number {
  const wanted = Math.min(controllerGridMs ?? 1000, lookIntervalMs(analysis));
  return Math.max(1000, Math.floor(wanted / 1000) * 1000);
}
