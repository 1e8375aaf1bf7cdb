// One reconcile of one ModelCanary: re-read it, advance at most one step, write the route, then
// the status, and only then tell people. The order matters: a crash between the route write
// and the status write re-applies the same weight on the next pass instead of skipping a step.

import { KIND, type ModelCanary } from '../api/modelcanary.ts';
import type { ModelCanaryStatus } from '../api/status.ts';
import type { Observation, Sample } from '../api/observation.ts';
import { checkAgainst, checkModelCanary } from '../api/validate.ts';
import { ModelCanaryStatus as StatusSchema, setCondition } from '../api/status.ts';
import { decide, type Decision } from '../analysis/engine.ts';
import type { MetricsProvider } from '../metrics/provider.ts';
import { canaryKey, observeAll } from '../metrics/observe.ts';
import type { TrafficRouter } from '../routing/router.ts';
import { analysisStateOf, isNewRollout, startingStatus, statusAfter } from './rollout-status.ts';

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

  const last = previous.lastAnalysis === undefined ? 0 : Date.parse(previous.lastAnalysis.time);
  const due = last + canary.spec.analysis.interval - now.getTime();
  if (due > 0 && previous.phase !== 'Paused') return { requeueAfterMs: due };

  // Evidence since the previous check, bounded so a long outage does not judge an hour at once.
  const sinceMs = Math.min(Math.max(now.getTime() - last, canary.spec.analysis.interval), 10 * canary.spec.analysis.interval);
  const provider = await deps.providerFor(canary);
  const observation =
    'problem' in provider
      ? unmeasurable(canary, provider.problem)
      : (await observeAll(provider, [canary], sinceMs, now)).get(canaryKey(canary));
  if (observation === undefined) return { requeueAfterMs: canary.spec.analysis.interval };
  const decision = decide(canary.spec.analysis, analysisStateOf(previous), observation);
  const terminal = decision.action === 'promote' || decision.action === 'rollback';

  // The status is computed and checked before the route moves: a status the API server
  // refuses after the route has moved would leave the two disagreeing, retried forever.
  const status = statusAfter(decision, previous, generation, now);
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
  return terminal ? {} : { requeueAfterMs: canary.spec.analysis.interval };
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
