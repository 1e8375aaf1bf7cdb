// One reconcile of one ModelCanary: re-read it, advance at most one step, write the route, then
// the status, and only then tell people. The order matters: a crash between the route write
// and the status write re-applies the same weight on the next pass instead of skipping a step.

import { KIND, watchIntervalMs, type ModelCanary } from '../api/modelcanary.ts';
import type { ModelCanaryStatus } from '../api/status.ts';
import { asSamples, type Counts, type Observation, type Sample, type VersionPair } from '../api/observation.ts';
import { checkAgainst, checkModelCanary } from '../api/validate.ts';
import { ModelCanaryStatus as StatusSchema, setCondition } from '../api/status.ts';
import { decide, watch, type Decision } from '../analysis/engine.ts';
import type { MetricsProvider } from '../metrics/provider.ts';
import { canaryKey, observeAll, versionSelectors } from '../metrics/observe.ts';
import type { TrafficRouter } from '../routing/router.ts';
import { analysisStateOf, isNewRollout, markOf, sinceMark, startingStatus, statusAfter } from './rollout-status.ts';

export const FINALIZER = 'modelcanary.io/restore-routes';

type Json = Record<string, unknown>;

/** The ModelCanary objects, in our own terms. */
export interface CanaryClient {
  get(namespace: string, name: string): Promise<Json | undefined>;
  patchStatus(namespace: string, name: string, status: ModelCanaryStatus): Promise<void>;
  setFinalizers(namespace: string, name: string, finalizers: string[]): Promise<void>;
}

export interface EventRecorder {
  record(canary: Json, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
}

export interface Logger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface ReconcileObserver {
  /** After the status write of a check: for the controller's own metrics. */
  checked?(canary: ModelCanary, decision: Decision, status: ModelCanaryStatus): void;
}

export interface ReconcileDeps {
  canaries: CanaryClient;
  routerFor(canary: ModelCanary): TrafficRouter;
  /** The canary's provider, or why there is none (a missing Secret): the check holds as unmeasurable. */
  providerFor(canary: ModelCanary): Promise<MetricsProvider | { problem: string }>;
  events: EventRecorder;
  log: Logger;
  now(): Date;
  observer?: ReconcileObserver;
}

export interface ReconcileResult {
  /** When to look again; undefined: only when the object changes. */
  requeueAfterMs?: number;
}

const TERMINAL = new Set(['Succeeded', 'RolledBack', 'Failed']);

export async function reconcile(namespace: string, name: string, deps: ReconcileDeps): Promise<ReconcileResult> {
  const raw = await deps.canaries.get(namespace, name);
  if (raw === undefined) return {};
  const metadata = (raw.metadata ?? {}) as { finalizers?: string[]; deletionTimestamp?: string; generation?: number };
  const finalizers = metadata.finalizers ?? [];
  const generation = metadata.generation ?? 0;
  const previous = ((raw.status ?? {}) as ModelCanaryStatus);
  const checked = checkModelCanary(raw);

  if (metadata.deletionTimestamp !== undefined) {
    if (!finalizers.includes(FINALIZER)) return {};
    if (checked.ok) {
      const restored = await deps.routerFor(checked.value).finalize();
      if (!restored.ok) {
        await deps.events.record(raw, 'Warning', 'RestoreFailed', restored.problem);
        deps.log.warn({ canary: `${namespace}/${name}`, problem: restored.problem }, 'could not restore the route');
        return { requeueAfterMs: 10_000 };
      }
    }
    await deps.canaries.setFinalizers(namespace, name, finalizers.filter((f) => f !== FINALIZER));
    return {};
  }

  if (!checked.ok) {
    const problems = checked.problems.map((p) => `${p.path}: ${p.message}`).join('; ');
    if (previous.observedGeneration === generation && previous.phase === 'Failed') return {};
    const conditions = setCondition(previous.conditions ?? [], { type: 'Valid', status: 'False', reason: 'InvalidSpec', message: problems, observedGeneration: generation }, deps.now());
    await deps.canaries.patchStatus(namespace, name, { ...previous, phase: 'Failed', observedGeneration: generation, conditions, message: `invalid spec: ${problems}` });
    await deps.events.record(raw, 'Warning', 'InvalidSpec', problems);
    deps.log.warn({ canary: `${namespace}/${name}`, problems }, 'invalid ModelCanary');
    return {};
  }
  const canary = checked.value;
  if (!finalizers.includes(FINALIZER)) {
    await deps.canaries.setFinalizers(namespace, name, [...finalizers, FINALIZER]);
    return { requeueAfterMs: 0 };
  }

  const router = deps.routerFor(canary);
  const pin = canary.spec.trafficRouting.istio?.pinHeader !== undefined;
  const now = deps.now();

  if (isNewRollout(canary.spec, previous)) {
    const current = await router.weights();
    if (!current.ok) return failRouting(raw, previous, generation, current.problem, deps);
    if (current.found.stable === 0) {
      const problem = `stable ${canary.spec.stable.version} serves no traffic on the route (canary ${canary.spec.canary.version} has ${current.found.canary} %): a rollout from it would send users back to a model they are not using; set spec.stable to the version that serves now`;
      return failRouting(raw, previous, generation, problem, deps);
    }
    const status = startingStatus(canary.spec, generation, previous, now);
    const refused = refusedStatus(status);
    if (refused !== undefined) return holdOnBadStatus(raw, previous, canary, refused, deps);
    const applied = await router.apply(status.canaryWeight ?? 0, pin);
    if (!applied.ok) return failRouting(raw, previous, generation, applied.problem, deps);
    await deps.canaries.patchStatus(namespace, name, status);
    await deps.events.record(raw, 'Normal', 'RolloutStarted', `canary ${canary.spec.canary.version} at ${status.canaryWeight ?? 0} %, stable ${canary.spec.stable.version}`);
    deps.log.info({ canary: canaryKey(canary), weight: status.canaryWeight }, 'rollout started');
    return { requeueAfterMs: canary.spec.analysis.interval };
  }

  if (TERMINAL.has(previous.phase ?? '')) {
    // Keep the final weights in place: a hand edit after the end is put back.
    if (previous.phase !== 'Failed') await router.apply(previous.canaryWeight ?? 0, false);
    return {};
  }

  if (canary.spec.suspend) {
    if (previous.phase !== 'Paused') {
      await deps.canaries.patchStatus(namespace, name, { ...previous, phase: 'Paused', observedGeneration: generation, message: `paused at ${previous.canaryWeight ?? 0} % (spec.suspend)` });
      await deps.events.record(raw, 'Normal', 'Paused', `paused at ${previous.canaryWeight ?? 0} %`);
    }
    return {};
  }

  const { analysis } = canary.spec;
  const last = previous.lastAnalysis === undefined ? 0 : Date.parse(previous.lastAnalysis.time);
  const due = last + analysis.interval - now.getTime();
  const watching = analysis.sequentialTest.enabled && watchIntervalMs(analysis) < analysis.interval;
  if (due > 0 && previous.phase !== 'Paused') {
    if (!watching) return { requeueAfterMs: due };
    const lastLook = Math.max(last, previous.watchMark === undefined ? 0 : Date.parse(previous.watchMark.time));
    const watchDue = lastLook + watchIntervalMs(analysis) - now.getTime();
    if (watchDue > 0) return { requeueAfterMs: Math.min(due, watchDue) };
    return watchBetweenChecks(raw, canary, previous, generation, router, deps, now, due);
  }

  // Evidence since the previous check, bounded so a long outage does not judge an hour at once.
  const sinceMs = Math.min(Math.max(now.getTime() - last, analysis.interval), 10 * analysis.interval);
  const provider = await deps.providerFor(canary);
  const observation =
    'problem' in provider
      ? unmeasurable(canary, provider.problem)
      : (await observeAll(provider, [canary], sinceMs, now)).get(canaryKey(canary));
  if (observation === undefined) return { requeueAfterMs: analysis.interval };
  // With watches, the sequential test is fed from counter differences since its last look.
  const totals = watching && !('problem' in provider) ? await readTotals(provider, canary, now) : undefined;
  const unseen = watching ? unseenSince(previous, totals) : undefined;
  const decision = decide(analysis, analysisStateOf(previous), { ...observation, sinceLastWatch: unseen && asSamples(unseen) });
  const terminal = decision.action === 'promote' || decision.action === 'rollback';

  // The status is computed and checked before the route moves: a status the API server
  // refuses after the route has moved would leave the two disagreeing, retried forever.
  const judged = statusAfter(decision, previous, generation, now);
  // Without watches no mark is kept: a stale one would count old requests again once they start.
  const status = { ...judged, watchMark: !watching ? undefined : totals === undefined ? previous.watchMark : markOf(totals, now) };
  const refused = refusedStatus(status);
  if (refused !== undefined) return holdOnBadStatus(raw, previous, canary, refused, deps);
  const applied = await router.apply(decision.weight, pin && !terminal);
  if (!applied.ok) return failRouting(raw, previous, generation, applied.problem, deps);
  await deps.canaries.patchStatus(namespace, name, status);

  if (applied.found.canary !== (previous.canaryWeight ?? applied.found.canary)) {
    await deps.events.record(raw, 'Warning', 'WeightChangedByHand', `the route held ${applied.found.canary} % on the canary, not ${previous.canaryWeight ?? 0} %; set back to ${decision.weight} %`);
  }
  const events: Partial<Record<Decision['action'], [string, 'Normal' | 'Warning']>> = {
    advance: ['StepAdvanced', 'Normal'],
    promote: ['Promoted', 'Normal'],
    rollback: ['RolledBack', 'Warning'],
  };
  const event = events[decision.action];
  if (event !== undefined) await deps.events.record(raw, event[1], event[0], decision.reason);
  if (decision.inconclusiveAlarm && (previous.inconclusiveChecks ?? 0) < canary.spec.analysis.inconclusiveLimit) {
    await deps.events.record(raw, 'Warning', 'NoEvidence', decision.reason);
  }
  deps.log.info({ canary: canaryKey(canary), action: decision.action, weight: decision.weight, reason: decision.reason }, 'check');
  deps.observer?.checked?.(canary, decision, status);
  return terminal ? {} : { requeueAfterMs: watching ? watchIntervalMs(analysis) : analysis.interval };
}

/**
 * Between checks: the sequential test looks at the requests counted since its last look, and
 * a rejection rolls back at once. The first look of a rollout only sets the mark.
 */
async function watchBetweenChecks(
  raw: Json,
  canary: ModelCanary,
  previous: ModelCanaryStatus,
  generation: number,
  router: TrafficRouter,
  deps: ReconcileDeps,
  now: Date,
  checkDue: number,
): Promise<ReconcileResult> {
  const again = { requeueAfterMs: Math.min(checkDue, watchIntervalMs(canary.spec.analysis)) };
  const provider = await deps.providerFor(canary);
  // Unmeasurable now: the next look (or check) counts from the old mark, so nothing is lost.
  const totals = 'problem' in provider ? undefined : await readTotals(provider, canary, now);
  if (totals === undefined) return again;
  const mark = markOf(totals, now);
  const fresh = previous.watchMark === undefined ? 'reset' : sinceMark(previous.watchMark, totals);
  const watched = fresh === 'reset' ? { state: analysisStateOf(previous) } : watch(canary.spec.analysis, analysisStateOf(previous), fresh);
  if (watched.rollback === undefined) {
    const status = { ...previous, evidence: watched.state.evidence, watchMark: mark };
    const refused = refusedStatus(status);
    if (refused !== undefined) return holdOnBadStatus(raw, previous, canary, refused, deps);
    await deps.canaries.patchStatus(canary.metadata.namespace ?? 'default', canary.metadata.name, status);
    return again;
  }
  const decision = watched.rollback;
  const status = { ...statusAfter(decision, previous, generation, now), watchMark: mark };
  const refused = refusedStatus(status);
  if (refused !== undefined) return holdOnBadStatus(raw, previous, canary, refused, deps);
  const applied = await router.apply(0, false);
  if (!applied.ok) return failRouting(raw, previous, generation, applied.problem, deps);
  await deps.canaries.patchStatus(canary.metadata.namespace ?? 'default', canary.metadata.name, status);
  await deps.events.record(raw, 'Warning', 'RolledBack', decision.reason);
  deps.log.info({ canary: canaryKey(canary), action: decision.action, weight: 0, reason: decision.reason }, 'watch');
  deps.observer?.checked?.(canary, decision, status);
  return {};
}

/** Each version's cumulative counters now; a version without series has served nothing yet. */
async function readTotals(provider: MetricsProvider, canary: ModelCanary, now: Date): Promise<VersionPair<Counts> | undefined> {
  const { stable, canary: canarySelector } = versionSelectors(canary);
  const answers = await provider.totals([stable, canarySelector], now);
  const counts = (key: string): Counts | undefined => {
    const sample = answers.get(key);
    if (sample?.kind === 'counts') return sample.counts;
    return sample?.kind === 'noData' ? { requests: 0, errors: 0 } : undefined;
  };
  const stableCounts = counts(stable.key);
  const canaryCounts = counts(canarySelector.key);
  return stableCounts === undefined || canaryCounts === undefined ? undefined : { stable: stableCounts, canary: canaryCounts };
}

/**
 * What the sequential test has not seen at a check: the counts since its last look. Without a
 * mark no watch has fed it, so the whole interval is new (undefined). Counters that cannot be
 * read or went down feed nothing now: a later look counts from the mark, nothing twice.
 */
function unseenSince(previous: ModelCanaryStatus, totals: VersionPair<Counts> | undefined): VersionPair<Counts> | undefined {
  if (previous.watchMark === undefined) return undefined;
  const none = { requests: 0, errors: 0 };
  if (totals === undefined) return { stable: none, canary: none };
  const fresh = sinceMark(previous.watchMark, totals);
  return fresh === 'reset' ? { stable: none, canary: none } : fresh;
}


/** Why the API server would refuse this status (the CRD has the same schema), or undefined. */
function refusedStatus(status: ModelCanaryStatus): string | undefined {
  const checked = checkAgainst(StatusSchema, status);
  return checked.ok ? undefined : checked.problems.map((p) => `status.${p.path}: ${p.message}`).join('; ');
}

/** A bug of ours, not the user's: say so where people look, keep the route where it is, and try again next interval. */
async function holdOnBadStatus(raw: Json, previous: ModelCanaryStatus, canary: ModelCanary, problem: string, deps: ReconcileDeps): Promise<ReconcileResult> {
  const weight = previous.canaryWeight ?? 0;
  const message = `modelcanary computed a status the API server would refuse (${problem}); the route stays at ${weight} % and the check is repeated next interval. This is a bug in modelcanary: please report it with this message.`;
  if (previous.message !== message.slice(0, 4096)) {
    await deps.canaries.patchStatus(canary.metadata.namespace ?? 'default', canary.metadata.name, { ...previous, message: message.slice(0, 4096) });
    await deps.events.record(raw, 'Warning', 'StatusRefused', message);
    deps.log.warn({ canary: canaryKey(canary), problem, weight }, 'computed status is invalid; holding');
  }
  return { requeueAfterMs: canary.spec.analysis.interval };
}

function unmeasurable(canary: ModelCanary, problem: string): Observation {
  const error: Sample = { kind: 'error', message: problem };
  const custom = Object.fromEntries(canary.spec.analysis.metrics.filter((m) => m.type === 'prometheus').map((m) => [m.name, { stable: error, canary: error }]));
  return { sinceLastCheck: { stable: error, canary: error }, custom };
}

async function failRouting(raw: Json, previous: ModelCanaryStatus, generation: number, problem: string, deps: ReconcileDeps): Promise<ReconcileResult> {
  const metadata = (raw.metadata ?? {}) as { name?: string; namespace?: string };
  const namespace = metadata.namespace ?? 'default';
  const name = metadata.name ?? '';
  const conditions = setCondition(previous.conditions ?? [], { type: 'RoutingReady', status: 'False', reason: 'RouteRefused', message: problem, observedGeneration: generation }, deps.now());
  if (previous.message !== problem) {
    await deps.canaries.patchStatus(namespace, name, { ...previous, phase: previous.phase ?? 'Pending', observedGeneration: generation, conditions, message: problem });
    await deps.events.record(raw, 'Warning', 'RouteRefused', problem);
    deps.log.warn({ canary: `${namespace}/${name}`, kind: KIND, problem }, 'route refused');
  }
  return { requeueAfterMs: 30_000 };
}
