// One reconcile pass of one ModelCanary: read it and its route, let `choosePass` decide what to
// do, and carry that out in one order. The status is written first, conditional on the
// resourceVersion read at the start of the pass: it is the commit point, so a pass that raced
// another writer (a user's edit, a stale pass, a second replica) changes nothing and is
// re-decided. The route is written after and only ever follows the status; a crash between the
// two leaves a status ahead of the route, which the next pass converges. Events, logs and
// metrics come last, so a failed write never double-counts.

import { z } from 'zod';
import { KIND, NotificationTarget, watchIntervalMs, type ModelCanary } from '../api/modelcanary.ts';
import { ModelCanaryStatus as StatusSchema, setCondition, type Condition, type ModelCanaryStatus, type Notification, type NotificationKind, type Phase } from '../api/status.ts';
import { asSamples, type Counts, type Observation, type Sample, type VersionPair } from '../api/observation.ts';
import { checkAgainst, checkModelCanary } from '../api/validate.ts';
import { decide, watch, watchWorthKeeping, type Decision } from '../analysis/engine.ts';
import type { MetricsProvider } from '../metrics/provider.ts';
import { canaryKey, customMetrics, observeAll, versionSelectors } from '../metrics/observe.ts';
import { renderMatchers } from '../metrics/promql.ts';
import type { RouteIntent } from '../routing/plan.ts';
import { createReleaser, createRouter, routeOf, type ObjectStore, type ReleaseMode, type TrafficRouter } from '../routing/router.ts';
import { apiErrorMessage } from './kube-errors.ts';
import { choosePass, gridFor, intentOf, lookIntervalMs, isEnded, requestsOf, RETRY_ANNOTATION, type Pass, type RequestKind, type StartReason } from './pass.ts';
import { actor, readRequest, SUSPENDED_BY_ANNOTATION } from '../api/actions.ts';
import type { Gate } from '../api/modelcanary.ts';
import { closedGate, gateNamed, gateWait, restrain, windowWait } from './gates.ts';
import { NO_WEBHOOKS, webhookCall, type WebhookCaller } from './webhooks.ts';
import { UNLIMITED_SLOTS, type Slots } from './slots.ts';
import type { HookType } from '../notify/hook.ts';
import { analysisStateOf, endedStatus, markOf, sinceMark, startingStatus, statusAfter } from './rollout-status.ts';
import { notificationOf, notificationOfInvalid, owe, type Transition } from './notifications.ts';
import type { NotificationOutbox } from './outbox.ts';

export const FINALIZER = 'modelcanary.io/restore-routes';

type Json = Record<string, unknown>;

/** The ModelCanary objects, in our own terms. Writes are conditional on the object's metadata.resourceVersion. */
export interface CanaryClient {
  get(namespace: string, name: string, signal?: AbortSignal): Promise<Json | undefined>;
  /** Replaces the status of `object` as it was read; 'conflict' when it changed since. */
  replaceStatus(object: Json, status: ModelCanaryStatus, signal?: AbortSignal): Promise<Json | 'conflict'>;
  /** Sets the finalizers of `object` as it was read; 'conflict' when it changed since. */
  setFinalizers(object: Json, finalizers: string[], signal?: AbortSignal): Promise<Json | 'conflict'>;
}

export interface EventRecorder {
  record(canary: Json, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
}

export interface Logger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/** For the controller's own metrics; each is told only after the status write it describes. */
export interface ReconcileObserver {
  /** After the status write of a check; `previous` is the status the check started from. */
  checked?(canary: ModelCanary, decision: Decision, status: ModelCanaryStatus, previous: ModelCanaryStatus): void;
  /** After every status write: where the rollout stands (`canary` undefined when its spec cannot be read). */
  written?(namespace: string, name: string, canary: ModelCanary | undefined, status: ModelCanaryStatus): void;
  /** After the write of a transition people are told of (started, advanced, promoted, rolledBack, …). */
  transitioned?(namespace: string, name: string, event: NotificationKind): void;
  /** After the finalizer is removed: the ModelCanary is gone. */
  forgotten?(namespace: string, name: string): void;
}

export interface ReconcileDeps {
  canaries: CanaryClient;
  /** The route objects (VirtualServices, HTTPRoutes, DestinationRules). */
  routes: ObjectStore;
  /** The canary's provider, or why there is none (a missing Secret): the check holds as unmeasurable. */
  providerFor(canary: ModelCanary): Promise<MetricsProvider | { problem: string }>;
  events: EventRecorder;
  log: Logger;
  now(): Date;
  observer?: ReconcileObserver;
  /** The longest a check waits for its metrics; past it the check holds as unmeasurable. Default 30 s. */
  metricsBudgetMs?: number;
  /** Where owed notifications go after their transition is written; without it none are owed. */
  outbox?: NotificationOutbox | undefined;
  /** Calls spec.analysis.webhooks and webhook gates; default: none allowed. */
  webhooks?: WebhookCaller | undefined;
  /** The operator's cap on rollouts in progress at once; default: none. */
  slots?: Slots | undefined;
  /**
   * Metrics are read at instants on a grid of this step (ms), never coarser than a rollout's
   * own look interval: rollouts that read in the same grid cell ask the same question, which a
   * coalescing provider answers once for all of them. Default 1 s.
   */
  readGridMs?: number;
}

export interface ReconcileResult {
  /** When to look again; undefined: only when the object changes (or at the next resync). */
  requeueAfterMs?: number;
}

/** What a pass works with, read once at its start. */
interface PassContext {
  object: Json;
  key: string;
  namespace: string;
  name: string;
  generation: number;
  finalizers: string[];
  status: ModelCanaryStatus;
  deps: ReconcileDeps;
  signal: AbortSignal | undefined;
  /** spec.notifications, read even from a spec that is otherwise invalid; undefined: the operator's defaults. */
  targets: NotificationTarget[] | undefined;
  /** The spec, when it is valid. */
  canary: ModelCanary | undefined;
  /** The values of the request annotations (promote, abort, approve), where set. */
  requests: Partial<Record<RequestKind, string>>;
}

const AGAIN = { requeueAfterMs: 0 };

export async function reconcile(namespace: string, name: string, deps: ReconcileDeps, signal?: AbortSignal): Promise<ReconcileResult> {
  const object = await deps.canaries.get(namespace, name, signal);
  if (object === undefined) return {};
  const metadata = (object.metadata ?? {}) as { finalizers?: string[]; deletionTimestamp?: string; generation?: number; annotations?: Record<string, string> };
  const ctx: PassContext = {
    object,
    key: `${namespace}/${name}`,
    namespace,
    name,
    generation: metadata.generation ?? 0,
    finalizers: metadata.finalizers ?? [],
    status: readStatus(object.status),
    deps,
    signal,
    targets: notificationTargets(object),
    canary: undefined,
    requests: requestsOf(metadata.annotations),
  };
  const owed = ctx.status.outbox ?? [];
  if (owed.length > 0) {
    const settled = deps.outbox?.settled(owed.map((n) => n.id)) ?? new Map(owed.map((n) => [n.id, []]));
    if (settled.size > 0) return tidyOutbox(ctx, owed, settled);
    deps.outbox?.post(ctx.targets, owed);
  }
  // The spec is judged on its own: a status written by an older controller must not make it invalid.
  const checked = checkModelCanary({ ...object, status: undefined });
  const canary = checked.ok ? checked.value : undefined;
  ctx.canary = canary;
  const router = canary === undefined ? undefined : createRouter(canary, deps.routes);
  const deleting = metadata.deletionTimestamp !== undefined;
  const route =
    canary === undefined || router === undefined || deleting || ctx.status.lastAnalysis === undefined ? undefined : await router.inspect(intentOf(canary.spec, ctx.status), signal);
  const pass = choosePass({
    now: deps.now(),
    generation: ctx.generation,
    deleting,
    hasFinalizer: ctx.finalizers.includes(FINALIZER),
    retry: metadata.annotations?.[RETRY_ANNOTATION],
    requests: ctx.requests,
    spec: checked.ok ? { ok: true, value: checked.value.spec } : { ok: false, problems: checked.problems.map((p) => `${p.path}: ${p.message}`).join('; ') },
    status: ctx.status,
    route,
    readGridMs: deps.readGridMs,
  });
  return carryOut(pass, ctx, canary, router, metadata.annotations?.[RETRY_ANNOTATION]);
}

async function carryOut(pass: Pass, ctx: PassContext, canary: ModelCanary | undefined, router: TrafficRouter | undefined, retry: string | undefined): Promise<ReconcileResult> {
  switch (pass.kind) {
    case 'forget':
    case 'done':
      return {};
    case 'finalize':
      return finalize(ctx, canary, router, pass.mode);
    case 'holdInvalid':
      return holdInvalid(ctx, pass.problems, pass.phase);
    case 'addFinalizer':
      // Written or not (someone else wrote first), the next pass starts from a fresh read.
      await fenced(ctx, () => ctx.deps.canaries.setFinalizers(ctx.object, [...ctx.finalizers, FINALIZER], ctx.signal));
      return AGAIN;
    case 'wait':
      return { requeueAfterMs: pass.ms };
  }
  // Every other pass has a valid spec, and so a router.
  if (canary === undefined || router === undefined) return {};
  switch (pass.kind) {
    case 'start':
      return start(ctx, canary, router, pass.reason, retry);
    case 'refuseRoute':
      return hold(ctx, canary, pass.phase, { type: 'RoutingReady', reason: pass.claimedBy === undefined ? 'RouteRefused' : 'RouteClaimed', message: pass.problem }, 30_000);
    case 'recover':
      return recover(ctx, canary, pass.phase);
    case 'converge':
      return converge(ctx, canary, router);
    case 'pause':
      return setPhase(ctx, canary, 'Paused', `paused at ${ctx.status.canaryWeight ?? 0} %${suspendedBy(ctx)} (spec.suspend)`, 'Paused');
    case 'resume':
      return setPhase(ctx, canary, 'Progressing', `resumed at ${ctx.status.canaryWeight ?? 0} %${suspendedBy(ctx)}`, 'Resumed');
    case 'watch':
      return watchBetweenChecks(ctx, canary, router, pass.checkDueMs);
    case 'check':
      return check(ctx, canary, router, pass.windowStart);
    case 'act':
      return act(ctx, canary, router, pass.request, pass.value);
    case 'askGate':
      return askGate(ctx, canary, router);
    case 'gateTimeout':
      return gateTimeout(ctx, canary, router);
  }
}

/** " by alice" when `kubectl modelcanary pause|resume` said who; nothing for a hand edit of spec.suspend. */
function suspendedBy(ctx: PassContext): string {
  const annotations = (ctx.object.metadata as { annotations?: Record<string, string> } | undefined)?.annotations;
  const request = readRequest(annotations?.[SUSPENDED_BY_ANNOTATION]);
  return request?.by === undefined ? '' : ` by ${actor(request)}`;
}

// ── Writes ────────────────────────────────────────────────────────────────────────────

/**
 * A write conditional on what the pass read. False when the object changed since: the pass
 * stops and is decided again from a fresh read. Nothing is written once the pass's deadline passed.
 */
async function fenced(ctx: PassContext, write: () => Promise<Json | 'conflict'>): Promise<boolean> {
  ctx.signal?.throwIfAborted();
  const written = await write();
  if (written !== 'conflict') return true;
  ctx.deps.log.info({ canary: ctx.key }, 'the ModelCanary changed since this pass read it; deciding again');
  return false;
}

/** Writes the status; once it is written, the notifications it owes are handed to delivery. */
async function commit(ctx: PassContext, status: ModelCanaryStatus): Promise<boolean> {
  const written = await fenced(ctx, () => ctx.deps.canaries.replaceStatus(ctx.object, status, ctx.signal));
  if (!written) return false;
  if ((status.outbox?.length ?? 0) > 0) ctx.deps.outbox?.post(ctx.targets, status.outbox ?? []);
  const observer = ctx.deps.observer;
  observer?.written?.(ctx.namespace, ctx.name, ctx.canary, status);
  for (const event of transitionsOf.get(status) ?? []) observer?.transitioned?.(ctx.namespace, ctx.name, event);
  return true;
}

/** The transitions a status about to be written carries, for the metrics once it is written. */
const transitionsOf = new WeakMap<ModelCanaryStatus, NotificationKind[]>();

/** `status` owing one more notification, when any destination wants it. */
function announce(ctx: PassContext, status: ModelCanaryStatus, notification: Notification): ModelCanaryStatus {
  let next = status;
  if (ctx.deps.outbox?.wants(ctx.targets, notification.severity) === true) {
    const { outbox, dropped } = owe(status.outbox, notification);
    for (const lost of dropped) ctx.deps.log.warn({ canary: ctx.key, notification: lost.kind, time: lost.time }, 'too many notifications owed: dropped the oldest');
    next = { ...status, outbox };
  }
  transitionsOf.set(next, [...(transitionsOf.get(status) ?? []), notification.kind]);
  return next;
}

function announced(ctx: PassContext, canary: ModelCanary, status: ModelCanaryStatus, transition: Omit<Transition, 'status' | 'now'>): ModelCanaryStatus {
  return announce(ctx, status, notificationOf(canary, { ...transition, status, now: ctx.deps.now() }));
}

/** Settled notifications leave the status; what could not be delivered is said in the condition Notified. */
async function tidyOutbox(ctx: PassContext, owed: readonly Notification[], settled: Map<string, string[]>): Promise<ReconcileResult> {
  const problems = [...new Set([...settled.values()].flat())];
  const conditions =
    ctx.deps.outbox === undefined
      ? (ctx.status.conditions ?? [])
      : problems.length > 0
        ? condition(ctx, ctx.status.conditions ?? [], 'Notified', 'False', 'NotDelivered', problems.join('; '))
        : condition(ctx, ctx.status.conditions ?? [], 'Notified', 'True', 'Delivered', 'the last notifications were delivered');
  const outbox = owed.filter((n) => !settled.has(n.id));
  await commit(ctx, { ...ctx.status, outbox: outbox.length === 0 ? undefined : outbox, conditions });
  return AGAIN;
}

/** Events are told after the state is written; one that cannot be recorded is logged, never retried into a second decision. */
async function tell(ctx: PassContext, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
  try {
    await ctx.deps.events.record(ctx.object, type, reason, message);
  } catch (error) {
    ctx.deps.log.warn({ canary: ctx.key, reason, error: apiErrorMessage(error) }, 'could not record an event');
  }
}

function condition(ctx: PassContext, conditions: readonly Condition[], type: string, status: Condition['status'], reason: string, message: string): Condition[] {
  return setCondition(conditions, { type, status, reason, message: message.slice(0, 32768), observedGeneration: ctx.generation }, ctx.deps.now());
}

// ── Passes ────────────────────────────────────────────────────────────────────────────

async function finalize(ctx: PassContext, canary: ModelCanary | undefined, router: TrafficRouter | undefined, mode: ReleaseMode): Promise<ReconcileResult> {
  const claimed = ctx.status.route ?? (canary === undefined ? undefined : routeOf(canary));
  const releaser = router ?? (claimed === undefined ? undefined : createReleaser(claimed, ctx.namespace, ctx.name, ctx.deps.routes));
  if (releaser !== undefined) {
    const released = await releaser.release(mode, ctx.signal);
    if (!released.ok) {
      await tell(ctx, 'Warning', 'RestoreFailed', released.problem);
      ctx.deps.log.warn({ canary: ctx.key, problem: released.problem }, 'could not release the route');
      return { requeueAfterMs: 10_000 };
    }
  }
  if (!(await fenced(ctx, () => ctx.deps.canaries.setFinalizers(ctx.object, ctx.finalizers.filter((f) => f !== FINALIZER), ctx.signal)))) return AGAIN;
  ctx.deps.observer?.forgotten?.(ctx.namespace, ctx.name);
  const [reason, message] = releaser === undefined ? ['Released', 'deleted before it managed a route: nothing to restore'] : releasedWords(ctx.status, canary, claimed, mode);
  await tell(ctx, 'Normal', reason, message);
  ctx.deps.log.info({ canary: ctx.key, mode }, message);
  return {};
}

/** The event of a delete that gave the route back: what became of the route, in words. */
function releasedWords(status: ModelCanaryStatus, canary: ModelCanary | undefined, claimed: { kind: string; name: string } | undefined, mode: ReleaseMode): [string, string] {
  const what = claimed === undefined ? 'its route' : `${claimed.kind} ${claimed.name}`;
  const weight = status.canaryWeight ?? 0;
  const phase = status.phase;
  if (mode === 'keep' && (phase === undefined || phase === 'Pending' || phase === 'Waiting')) {
    return ['RouteKept', `deleted before its rollout started: ${what} keeps its weights; the claim on it, if any, is released`];
  }
  if (mode === 'keep') return ['RouteKept', `deleted after the rollout (${phase}): ${what} keeps its weights (canary ${status.canaryVersion ?? '?'} at ${weight} %); the claim on it is released`];
  if (canary?.spec.trafficRouting.onDelete === 'stable') {
    return ['RouteRestored', `deleted mid-rollout at ${weight} %: all of ${what}'s traffic is back on stable ${canary.spec.stable.version} (onDelete: stable)`];
  }
  return ['RouteRestored', `deleted mid-rollout at ${weight} %: ${what} is restored as it was before the rollout`];
}

async function holdInvalid(ctx: PassContext, problems: string, phase: Phase): Promise<ReconcileResult> {
  const weight = ctx.status.canaryWeight;
  const message = (phase === 'Failed' ? `held at ${weight ?? 0} % until the spec is fixed: ${problems}` : `invalid spec: ${problems}`).slice(0, 4096);
  const valid = ctx.status.conditions?.find((c) => c.type === 'Valid');
  if (ctx.status.phase === phase && valid?.status === 'False' && valid.message === problems.slice(0, 32768) && ctx.status.observedGeneration === ctx.generation) return {};
  const conditions = condition(ctx, ctx.status.conditions ?? [], 'Valid', 'False', 'InvalidSpec', problems);
  let status: ModelCanaryStatus = { ...ctx.status, phase, observedGeneration: ctx.generation, conditions, message };
  // People hear when the spec turns invalid (or the hold becomes a Failed one), not at every edit that keeps it so.
  if (valid?.status !== 'False' || ctx.status.phase !== phase) status = announce(ctx, status, notificationOfInvalid(ctx.object, status, problems, ctx.deps.now()));
  if (!(await commit(ctx, status))) return AGAIN;
  await tell(ctx, 'Warning', 'InvalidSpec', message);
  ctx.deps.log.warn({ canary: ctx.key, problems }, 'invalid ModelCanary: holding');
  return {};
}

/** The pass with the False condition of a check that passes now removed from what it writes next. */
function withoutRefusal(ctx: PassContext, type: string): PassContext {
  const conditions = ctx.status.conditions ?? [];
  const kept = conditions.filter((c) => !(c.type === type && c.status === 'False'));
  return kept.length === conditions.length ? ctx : { ...ctx, status: { ...ctx.status, conditions: kept } };
}

/** A condition that keeps the rollout where it is, written once per distinct message. */
async function hold(
  ctx: PassContext,
  canary: ModelCanary,
  phase: Phase,
  reasonFor: { type: string; reason: string; message: string },
  retryMs: number,
  waits?: Pick<ModelCanaryStatus, 'gate' | 'window'>,
): Promise<ReconcileResult> {
  const { type, reason, message } = reasonFor;
  const existing = ctx.status.conditions?.find((c) => c.type === type);
  // A gate or window the rollout now waits for is news to show, even with the same condition.
  const waitsMoved = waits !== undefined && (ctx.status.gate?.name !== waits.gate?.name || ctx.status.window?.opensAt !== waits.window?.opensAt);
  if (!waitsMoved && existing?.status === 'False' && existing.message === message && ctx.status.phase === phase) return { requeueAfterMs: retryMs };
  const conditions = condition(ctx, ctx.status.conditions ?? [], type, 'False', reason, message);
  const prefix = phase === 'Failed' ? `held at ${ctx.status.canaryWeight ?? 0} %: ` : phase === 'Pending' || phase === 'Waiting' ? 'waiting to start: ' : '';
  let status: ModelCanaryStatus = { ...ctx.status, ...waits, phase, observedGeneration: ctx.generation, conditions, message: `${prefix}${message}`.slice(0, 4096) };
  // Once per cause: a message that changes with each attempt (an address that times out, then refuses) is not news.
  if (existing?.status !== 'False' || existing.reason !== reason || ctx.status.phase !== phase) {
    const summary = phase === 'Pending' || phase === 'Waiting' ? `${canary.spec.model}: canary ${canary.spec.canary.version} waits to start (${reason})` : `${canary.spec.model}: held at ${ctx.status.canaryWeight ?? 0} % until a person acts (${reason})`;
    status = announced(ctx, canary, status, { kind: 'held', summary, reason: message });
  }
  if (!(await commit(ctx, status))) return AGAIN;
  await tell(ctx, 'Warning', reason, message);
  ctx.deps.log.warn({ canary: ctx.key, kind: KIND, reason, problem: message }, 'holding');
  return { requeueAfterMs: retryMs };
}

async function start(ctx: PassContext, canary: ModelCanary, router: TrafficRouter, why: StartReason, retry: string | undefined): Promise<ReconcileResult> {
  const { spec } = canary;
  // The checks run in order, so a hold further on means the ones before it pass now: `past`
  // holds without their refusals from an earlier pass (the route fixed, the metrics answering).
  let past = ctx;
  const weight = spec.analysis.steps[0] ?? 0;
  const intent: RouteIntent = { weight, pin: spec.trafficRouting.istio?.pinHeader !== undefined, stage: 'begin' };
  const waiting: Phase = ctx.status.phase === 'Progressing' || ctx.status.phase === 'Paused' || ctx.status.phase === 'Failed' ? 'Failed' : 'Pending';
  const retryMs = Math.min(Math.max(spec.analysis.interval, 5_000), 30_000);
  const route = await router.inspect(intent, ctx.signal);
  if (!route.ok) return hold(ctx, canary, waiting, { type: 'RoutingReady', reason: route.claimedBy === undefined ? 'RouteRefused' : 'RouteClaimed', message: route.problem }, retryMs);
  past = withoutRefusal(past, 'RoutingReady');
  if (route.found.stable === 0) {
    const message = `stable ${spec.stable.version} serves no traffic on the route (canary ${spec.canary.version} has ${route.found.canary} %): a rollout from it would send users back to a model they are not using; set spec.stable to the version that serves now`;
    return hold(past, canary, waiting, { type: 'Preflight', reason: 'StableNotServing', message }, retryMs);
  }
  const subsets = await router.preflight(ctx.signal);
  if (subsets !== undefined) return hold(past, canary, waiting, { type: 'Preflight', reason: 'SubsetMissing', message: subsets }, retryMs);
  const metrics = await metricsPreflight(ctx, canary);
  if (metrics !== undefined) return hold(past, canary, waiting, { type: 'Preflight', reason: 'MetricsUnavailable', message: metrics }, retryMs);
  past = withoutRefusal(past, 'Preflight');
  const cleared = await clearedToStart(past, canary, waiting, weight, retryMs);
  if (!cleared.cleared) return cleared.result;

  // The claim comes before the commitment: of two ModelCanaries starting on one route, the one
  // that loses the claim never writes a rollout it cannot carry out.
  const claimed = await router.claim(ctx.signal);
  if (!claimed.ok) return hold(past, canary, waiting, { type: 'RoutingReady', reason: claimed.claimedBy === undefined ? 'RouteRefused' : 'RouteClaimed', message: claimed.problem }, retryMs);
  const starting = startingStatus(ctx.status, { spec, generation: ctx.generation, route: routeOf(canary), retry, now: ctx.deps.now() });
  // Requests made before this rollout began are not requests of it: they are marked acted on.
  const requests = { ...ctx.status.handled, ...ctx.requests };
  const handled = Object.keys(requests).length > 0 ? requests : undefined;
  const opened = cleared.opened.length > 0 ? cleared.opened : undefined;
  const conditions = waitConditions(ctx, starting.conditions ?? [], { gate: undefined, window: undefined });
  const status = announced(ctx, canary, { ...starting, conditions, handled, openedGates: opened, outbox: ctx.status.outbox }, { kind: why === 'canaryChanged' ? 'canaryReplaced' : why === 'retry' ? 'retried' : 'started' });
  if (!(await commit(ctx, status))) return AGAIN;
  const applied = await router.apply(intent, ctx.signal);
  if (!applied.ok) {
    await tell(ctx, 'Warning', 'RouteRefused', applied.problem);
    return AGAIN;
  }
  if (why === 'canaryChanged') {
    await tell(ctx, 'Normal', 'CanaryReplaced', `canary changed from ${ctx.status.canaryVersion ?? '?'} (at ${ctx.status.canaryWeight ?? 0} %) to ${spec.canary.version}: ${ctx.status.canaryVersion ?? 'the old canary'}'s traffic went back to stable; the rollout restarts from the first step`);
  }
  const started = `${why === 'retry' ? 'retrying: ' : ''}canary ${spec.canary.version} at ${weight} %, stable ${spec.stable.version}`;
  await tell(ctx, 'Normal', why === 'retry' ? 'RolloutRetried' : 'RolloutStarted', started);
  for (const gate of cleared.opened) await tell(ctx, 'Normal', 'GateOpened', `gate ${gate.name} before ${gate.weight} %: ${gate.by}`);
  ctx.deps.log.info({ canary: ctx.key, weight, reason: why }, 'rollout started');
  await callWebhooks(ctx, canary, 'rollout', status, status.stepStartedAt ?? '');
  return { requeueAfterMs: lookIntervalMs(canary.spec.analysis) };
}

type OpenedGates = NonNullable<ModelCanaryStatus['openedGates']>;

/**
 * What must allow a start besides the preflight, in order: the rollout windows, the gates
 * before the first step, a slot under the operator's cap, and the preRollout webhooks. An
 * approval is acted on only by the start it allows, so one given while the rollout still
 * waits for something else is not lost.
 */
async function clearedToStart(ctx: PassContext, canary: ModelCanary, waiting: Phase, weight: number, retryMs: number): Promise<{ cleared: true; opened: OpenedGates } | { cleared: false; result: ReconcileResult }> {
  const held = async (result: Promise<ReconcileResult>): Promise<{ cleared: false; result: ReconcileResult }> => ({ cleared: false, result: await result });
  const { spec } = canary;
  const now = ctx.deps.now();
  const window = windowWait(spec, ctx.status, now);
  if (window !== undefined) {
    const until = window.opensAt === undefined ? retryMs : Math.max(Math.min(Date.parse(window.opensAt) - now.getTime(), 60_000), 1000);
    return held(hold(ctx, canary, waiting, { type: 'InWindow', reason: 'OutsideWindow', message: `no traffic moves outside the rollout windows: ${window.reason}` }, until, { window, gate: undefined }));
  }
  const opened: OpenedGates = [];
  for (let gate = closedGate(spec, opened, weight); gate !== undefined; gate = closedGate(spec, opened, weight)) {
    const by = await gateAnswer(ctx, canary, gate, weight, 'start');
    if (by === undefined) {
      const wait = gateWait(gate, weight, 0, spec.canary.version, ctx.status, now);
      return held(hold(ctx, canary, waiting, gateCondition(gate, weight), retryMs, { gate: wait, window: undefined }));
    }
    opened.push({ name: gate.name, weight, by, at: now.toISOString() });
  }
  const admission = (ctx.deps.slots ?? UNLIMITED_SLOTS).admit(ctx.key);
  if (!admission.admitted) {
    const message = `${admission.active} rollouts are in progress, the most this controller runs at once (--max-concurrent-rollouts ${admission.max}); this one is number ${admission.position} in line`;
    return held(hold(ctx, canary, 'Waiting', { type: 'Progressing', reason: 'WaitingForSlot', message }, retryMs, { gate: undefined, window: undefined }));
  }
  const problems = await callWebhooks(ctx, canary, 'preRollout', { ...ctx.status, canaryWeight: 0, currentStep: 0, phase: 'Pending' }, `${spec.canary.version}/${ctx.generation}`);
  if (problems.length > 0) return held(hold(ctx, canary, waiting, { type: 'Preflight', reason: 'PreRolloutFailed', message: `a preRollout webhook said no: ${problems.join('; ')}` }, retryMs, { gate: undefined, window: undefined }));
  return { cleared: true, opened };
}

/** Whether `gate` is open now for the move to `weight`, and by whom: an approval annotation, or its webhook's 2xx. */
async function gateAnswer(ctx: PassContext, canary: ModelCanary, gate: Gate, weight: number, occasion: string): Promise<string | undefined> {
  if (gate.approval === 'manual') {
    const request = readRequest(ctx.requests.approve);
    if (request === undefined || ctx.requests.approve === ctx.status.handled?.approve) return undefined;
    if (request.gate !== undefined && request.gate !== gate.name) return undefined;
    return `approved by ${actor(request)}`;
  }
  if (gate.url === undefined) return undefined;
  const answer = await (ctx.deps.webhooks ?? NO_WEBHOOKS).call(webhookCall(canary, ctx.status, 'gate', { name: gate.name, url: gate.url }, `${weight}/${occasion}`), budget(ctx));
  ctx.signal?.throwIfAborted();
  return answer.ok ? 'its webhook answered 2xx' : undefined;
}

function gateCondition(gate: Gate, weight: number): { type: string; reason: string; message: string } {
  return gate.approval === 'manual'
    ? { type: 'GateOpen', reason: 'AwaitingApproval', message: `gate ${gate.name} waits for a person before ${weight} %: kubectl modelcanary approve` }
    : { type: 'GateOpen', reason: 'AwaitingWebhook', message: `gate ${gate.name} waits for its webhook to answer 2xx before ${weight} %` };
}

/**
 * Calls the webhooks of one type, in order, each within its timeout and retries; their problems,
 * one per webhook that failed. A failure is reported where people look; only a preRollout one
 * changes what the rollout does (it does not start).
 */
async function callWebhooks(ctx: PassContext, canary: ModelCanary, type: HookType, status: ModelCanaryStatus, occasion: string): Promise<string[]> {
  const hooks = (canary.spec.analysis.webhooks ?? []).filter((h) => h.type === type);
  const problems: string[] = [];
  for (const hook of hooks) {
    const answer = await (ctx.deps.webhooks ?? NO_WEBHOOKS).call(webhookCall(canary, status, type, hook, occasion), ctx.signal ?? AbortSignal.timeout(hook.timeout * (hook.retries + 1) + 30_000));
    if (answer.ok) continue;
    const problem = `webhook ${hook.name} (${type}): ${answer.problem}`;
    problems.push(problem);
    ctx.deps.log.warn({ canary: ctx.key, webhook: hook.name, type, problem: answer.problem }, 'webhook failed');
    if (type !== 'preRollout') await tell(ctx, 'Warning', 'WebhookFailed', problem);
  }
  return problems;
}

/** No traffic moves before stable's requests can be measured: a rollout judged on nothing would be promoted blind. */
async function metricsPreflight(ctx: PassContext, canary: ModelCanary): Promise<string | undefined> {
  const provider = await ctx.deps.providerFor(canary);
  if ('problem' in provider) return provider.problem;
  const { stable, canary: canarySelector } = versionSelectors(canary);
  // The canary is asked about too, though only stable must answer: a shared provider then knows it,
  // and fetches it with everyone's at the next instants (src/metrics/coalesce.ts).
  // Not on the grid: a start must not be refused on data up to a grid step old (a version first
  // scraped a few seconds ago). The next whole second, so that starts in the same second share
  // a query, and read nothing older than now.
  const now = new Date(Math.ceil(ctx.deps.now().getTime() / 1000) * 1000);
  let answers: Map<string, Sample>;
  try {
    answers = await provider.totals([stable, canarySelector], now, budget(ctx));
  } catch (error) {
    // Past the pass's own deadline nothing is written; a slow provider is a hold the user sees.
    ctx.signal?.throwIfAborted();
    const limit = ctx.deps.metricsBudgetMs ?? 30_000;
    const within = limit < 1000 ? `${limit} ms` : `${Math.round(limit / 1000)} s`;
    return `the metrics provider did not answer within ${within} (${error instanceof Error ? error.message : String(error)}); the start is tried again`;
  }
  ctx.signal?.throwIfAborted();
  const answer = answers.get(stable.key);
  switch (answer?.kind) {
    case 'counts':
    case 'value':
      return undefined;
    case 'noData':
      return `the metrics provider has no requests of stable ${canary.spec.stable.version} ({${renderMatchers(stable.labels)}}): check spec.stable.metricLabels (or the version's destination_canonical_revision label) and that this Prometheus scrapes Istio's telemetry`;
    case 'error':
      return `the metrics provider does not answer: ${answer.message}`;
    case undefined:
      return 'the metrics provider gave no answer for stable';
  }
}

async function recover(ctx: PassContext, canary: ModelCanary, phase: Phase): Promise<ReconcileResult> {
  let conditions = condition(ctx, ctx.status.conditions ?? [], 'Valid', 'True', 'SpecAccepted', 'the spec is valid');
  const route = routeOf(canary);
  conditions = condition(ctx, conditions, 'RoutingReady', 'True', 'RouteClaimed', `${route.kind} ${route.name} is managed by this ModelCanary`);
  const message = `resumed at ${ctx.status.canaryWeight ?? 0} % (${phase})`;
  let status: ModelCanaryStatus = { ...ctx.status, phase, observedGeneration: ctx.generation, conditions, message };
  if (ctx.status.phase === 'Failed') status = announced(ctx, canary, status, { kind: 'resumed', summary: `${canary.spec.model}: ${message}`, reason: 'the problem that held the rollout is fixed' });
  if (!(await commit(ctx, status))) return AGAIN;
  if (ctx.status.phase === 'Failed') await tell(ctx, 'Normal', 'Resumed', message);
  return AGAIN;
}

/** The route does not say what the status says (a crash between the two writes, or a hand edit): make it. */
async function converge(ctx: PassContext, canary: ModelCanary, router: TrafficRouter): Promise<ReconcileResult> {
  const intent = intentOf(canary.spec, ctx.status);
  ctx.signal?.throwIfAborted();
  const applied = await router.apply(intent, ctx.signal);
  if (!applied.ok) return { requeueAfterMs: 1000 };
  if (applied.found.canary !== intent.weight) {
    await tell(ctx, 'Warning', 'RouteDrifted', `the route held ${applied.found.canary} % on the canary, not ${intent.weight} % as the rollout says (changed by hand, or a write cut short); set to ${intent.weight} %`);
    // The weight takes effect now: the next check judges only what was served since.
    if (!isEnded(ctx.status) && !(await commit(ctx, { ...ctx.status, stepStartedAt: ctx.deps.now().toISOString() }))) return AGAIN;
  }
  return isEnded(ctx.status) ? {} : AGAIN;
}

async function setPhase(ctx: PassContext, canary: ModelCanary, phase: Phase, message: string, reason: string): Promise<ReconcileResult> {
  const status = announced(ctx, canary, { ...ctx.status, phase, observedGeneration: ctx.generation, message }, { kind: phase === 'Paused' ? 'paused' : 'resumed', reason: message });
  if (!(await commit(ctx, status))) return AGAIN;
  await tell(ctx, 'Normal', reason, message);
  return phase === 'Paused' ? {} : AGAIN;
}

/**
 * Between checks: the sequential test looks at the requests counted since its last look, and
 * a rejection rolls back at once. The first look of a rollout only sets the mark.
 */
async function watchBetweenChecks(ctx: PassContext, canary: ModelCanary, router: TrafficRouter, checkDue: number): Promise<ReconcileResult> {
  const again = { requeueAfterMs: Math.min(checkDue, watchIntervalMs(canary.spec.analysis)) };
  const previous = ctx.status;
  const provider = await ctx.deps.providerFor(canary);
  const now = readingInstant(ctx, canary);
  // Unmeasurable now: the next look (or check) counts from the old mark, so nothing is lost.
  const totals = 'problem' in provider ? undefined : await readTotals(provider, canary, now, previous, budget(ctx));
  ctx.signal?.throwIfAborted();
  if (totals === undefined) return again;
  const mark = markOf(totals, now);
  const fresh = previous.watchMark === undefined ? 'reset' : sinceMark(previous.watchMark, totals);
  // Nothing served since the last look: nothing to feed the test, nothing to write.
  if (fresh !== 'reset' && fresh.stable.requests === 0 && fresh.canary.requests === 0) return again;
  const watched = fresh === 'reset' ? { state: analysisStateOf(previous) } : watch(canary.spec.analysis, analysisStateOf(previous), fresh);
  if (watched.rollback === undefined) {
    // Far from a rollback, a look is not written: the next one reads from the kept mark (see watchWorthKeeping).
    if (fresh !== 'reset' && !watchWorthKeeping(canary.spec.analysis, previous.evidence ?? [], watched.state.evidence)) return again;
    const status = { ...previous, evidence: watched.state.evidence, watchMark: mark };
    const refused = refusedStatus(status);
    if (refused !== undefined) return holdOnBadStatus(ctx, canary, refused);
    return (await commit(ctx, status)) ? again : AGAIN;
  }
  const decision = watched.rollback;
  const judgedAt = ctx.deps.now();
  const status = { ...statusAfter(decision, previous, ctx.generation, now, judgedAt), watchMark: mark };
  return judged(ctx, canary, router, decision, status);
}

async function check(ctx: PassContext, canary: ModelCanary, router: TrafficRouter, windowStart: Date): Promise<ReconcileResult> {
  const { analysis } = canary.spec;
  const previous = ctx.status;
  const windowEnd = readingInstant(ctx, canary);
  // Evidence since the window start, bounded so a long outage does not judge an hour at once; in
  // whole grid steps (never reaching back before the start), so that checks at one instant share
  // one window and their queries.
  const sinceMs = Math.min(windowLength(windowEnd.getTime() - windowStart.getTime(), gridFor(ctx.deps.readGridMs, canary.spec.analysis)), 10 * analysis.interval);
  const watching = analysis.sequentialTest.enabled && watchIntervalMs(analysis) < analysis.interval;
  const provider = await ctx.deps.providerFor(canary);
  const limit = budget(ctx);
  const [observation, totals] =
    'problem' in provider
      ? [unmeasurable(canary, provider.problem), undefined]
      : await Promise.all([
          // With the status: an LLM preset's maxRequestDuration counts from status.stepStartedAt.
          observeAll(provider, [{ ...canary, status: previous }], sinceMs, windowEnd, limit).then((all) => all.get(canaryKey(canary))),
          watching ? readTotals(provider, canary, windowEnd, previous, limit) : Promise.resolve(undefined),
        ]);
  // Past the pass's deadline the evidence is stale: drop it, write nothing.
  ctx.signal?.throwIfAborted();
  if (observation === undefined) return { requeueAfterMs: analysis.interval };
  // With watches, the sequential test is fed from counter differences since its last look.
  const unseen = watching ? unseenSince(previous, totals) : undefined;
  const judgedAt = ctx.deps.now();
  const restrained = restrain(decide(analysis, analysisStateOf(previous), { ...observation, sinceLastWatch: unseen && asSamples(unseen) }), canary.spec, previous, judgedAt);
  const decision = restrained.decision;
  // Without watches no mark is kept: a stale one would count old requests again once they start.
  const after = statusAfter(decision, previous, ctx.generation, windowEnd, judgedAt);
  const ended = decision.action === 'promote' || decision.action === 'rollback';
  const status: ModelCanaryStatus = {
    ...after,
    watchMark: !watching ? undefined : totals === undefined ? previous.watchMark : markOf(totals, windowEnd),
    gate: ended ? undefined : restrained.gate,
    window: ended ? undefined : restrained.window,
    conditions: waitConditions(ctx, after.conditions ?? [], restrained),
  };
  const result = await judged(ctx, canary, router, decision, status, restrained.gate !== undefined && previous.gate?.name !== restrained.gate.name ? 'gated' : undefined);
  if (!ended) await callWebhooks(ctx, canary, 'rollout', status, windowEnd.toISOString());
  // A webhook gate just reached is asked at once, not an interval later.
  const unasked = restrained.gate?.approval === 'webhook' && restrained.gate.askedAt === undefined;
  return unasked && result.requeueAfterMs !== undefined ? AGAIN : result;
}

/** GateOpen and InWindow say what holds the step, and turn True when it moves on. */
function waitConditions(ctx: PassContext, conditions: Condition[], waits: { gate: ModelCanaryStatus['gate']; window: ModelCanaryStatus['window'] }): Condition[] {
  let next = conditions;
  const gate = waits.gate;
  if (gate !== undefined) {
    const spec = ctx.canary === undefined ? undefined : gateNamed(ctx.canary.spec, gate.name);
    const held = spec === undefined ? { reason: 'AwaitingApproval', message: `gate ${gate.name}` } : gateCondition(spec, gate.weight);
    next = condition(ctx, next, 'GateOpen', 'False', held.reason, held.message);
  } else if (next.some((c) => c.type === 'GateOpen' && c.status === 'False')) next = condition(ctx, next, 'GateOpen', 'True', 'Opened', 'no gate holds the rollout');
  if (waits.window !== undefined) next = condition(ctx, next, 'InWindow', 'False', 'OutsideWindow', waits.window.reason);
  else if (next.some((c) => c.type === 'InWindow' && c.status === 'False')) next = condition(ctx, next, 'InWindow', 'True', 'InsideWindow', 'the rollout windows allow steps now');
  return next;
}

/** A decision made: its status is written (the commit point), then the route follows, then people are told. */
async function judged(ctx: PassContext, canary: ModelCanary, router: TrafficRouter, decision: Decision, decided: ModelCanaryStatus, told?: NotificationKind): Promise<ReconcileResult> {
  const previous = ctx.status;
  const terminal = decision.action === 'promote' || decision.action === 'rollback';
  const status = terminal ? endedStatus(decided) : decided;
  // The status is checked before anything is written: a status the API server refuses after
  // the route has moved would leave the two disagreeing, retried forever.
  const refused = refusedStatus(status);
  if (refused !== undefined) return holdOnBadStatus(ctx, canary, refused);
  const kinds = { advance: 'advanced', promote: 'promoted', rollback: 'rolledBack', hold: undefined } as const;
  const alarmed = decision.inconclusiveAlarm && (previous.inconclusiveChecks ?? 0) < canary.spec.analysis.inconclusiveLimit;
  const kind = told ?? kinds[decision.action] ?? (alarmed ? 'noEvidence' : undefined);
  const owing = kind === undefined ? status : announced(ctx, canary, { ...status, outbox: previous.outbox }, { kind, decision });
  if (!(await commit(ctx, owing))) return AGAIN;
  const applied = await router.apply(intentOf(canary.spec, status), ctx.signal);
  // The decision stands; the route catches up on the next pass (converge), which comes soon
  // even after the end, where nothing else would bring the ModelCanary back.
  const routeBehind = !applied.ok;
  if (!applied.ok) await tell(ctx, 'Warning', 'RouteRefused', applied.problem);
  else if (applied.found.canary !== (previous.canaryWeight ?? applied.found.canary)) {
    await tell(ctx, 'Warning', 'WeightChangedByHand', `the route held ${applied.found.canary} % on the canary, not ${previous.canaryWeight ?? 0} %; set to ${decision.weight} %`);
  }
  const events: Partial<Record<Decision['action'], [string, 'Normal' | 'Warning']>> = {
    advance: ['StepAdvanced', 'Normal'],
    promote: ['Promoted', 'Normal'],
    rollback: ['RolledBack', 'Warning'],
  };
  const event = events[decision.action];
  if (event !== undefined) await tell(ctx, event[1], event[0], decision.reason);
  if (alarmed) {
    await tell(ctx, 'Warning', 'NoEvidence', decision.reason);
  }
  // Said when it starts, not at every check: the condition StableMeetsBounds stays while it lasts.
  const warnedBefore = previous.conditions?.some((c) => c.type === 'StableMeetsBounds' && c.status === 'False') === true;
  if (decision.warnings.length > 0 && !warnedBefore) {
    await tell(ctx, 'Warning', 'StableBreaksBound', decision.warnings.map((w) => `${w.metric}: ${w.reason}`).join('; '));
  }
  ctx.deps.log.info({ canary: ctx.key, action: decision.action, weight: decision.weight, reason: decision.reason }, 'check');
  ctx.deps.observer?.checked?.(canary, decision, status, previous);
  if (terminal) await callWebhooks(ctx, canary, decision.action === 'promote' ? 'postRollout' : 'rollback', status, status.lastAnalysis?.judgedAt ?? '');
  if (routeBehind) return { requeueAfterMs: 1000 };
  return terminal ? {} : { requeueAfterMs: lookIntervalMs(canary.spec.analysis) };
}

// ── Requests and gates ────────────────────────────────────────────────────────────────

/** A decision a person (or a gate) made rather than a check: the last check's numbers stay in the status. */
function madeByHand(ctx: PassContext, action: Decision['action'], weight: number, stepIndex: number, reason: string): { decision: Decision; status: ModelCanaryStatus } {
  const previous = ctx.status;
  const state = { ...analysisStateOf(previous), stepIndex, passedChecks: 0, carried: undefined, carriedChecks: undefined };
  const decision: Decision = { action, weight, state, verdicts: [], reason, inconclusiveAlarm: false, warnings: [] };
  const now = ctx.deps.now();
  const after = statusAfter(decision, previous, ctx.generation, now, now);
  // Nothing was measured: what the last check said about the metrics still holds.
  const kept = (previous.conditions ?? []).filter((c) => c.type === 'MetricsAvailable' || c.type === 'StableMeetsBounds');
  const conditions = (after.conditions ?? []).filter((c) => c.type !== 'MetricsAvailable' && c.type !== 'StableMeetsBounds').concat(kept);
  const lastAnalysis = after.lastAnalysis === undefined ? undefined : { ...after.lastAnalysis, metrics: previous.lastAnalysis?.metrics ?? [] };
  return { decision, status: { ...after, conditions, lastAnalysis, gate: undefined, window: undefined } };
}

/** A promote, abort or approve annotation with a value not acted on yet. */
async function act(ctx: PassContext, canary: ModelCanary, router: TrafficRouter, kind: RequestKind, value: string): Promise<ReconcileResult> {
  const request = readRequest(value);
  const who = actor(request);
  const handled = { ...ctx.status.handled, [kind]: value };
  const phase = ctx.status.phase;
  const split = phase === 'Progressing' || phase === 'Paused' || phase === 'Failed';
  const { steps } = canary.spec.analysis;
  const step = ctx.status.currentStep ?? 0;
  const refuse = async (why: string): Promise<ReconcileResult> => {
    if (!(await commit(ctx, { ...ctx.status, handled }))) return AGAIN;
    await tell(ctx, 'Warning', 'RequestIgnored', `${kind} by ${who} ignored: ${why}`);
    return AGAIN;
  };
  if (kind === 'abort') {
    if (!split) return refuse(`the rollout is ${phase ?? 'not started'}: nothing to abort`);
    const made = madeByHand(ctx, 'rollback', 0, step, `aborted by ${who} at ${ctx.status.canaryWeight ?? 0} %: all traffic is back on stable ${canary.spec.stable.version}`);
    const status = { ...made.status, handled, conditions: condition(ctx, made.status.conditions ?? [], 'Progressing', 'False', 'Aborted', made.decision.reason) };
    return judged(ctx, canary, router, made.decision, status, 'aborted');
  }
  if (phase !== 'Progressing') return refuse(phase === 'Paused' ? 'the rollout is paused: resume it first' : `the rollout is ${phase ?? 'not started'}`);
  if (kind === 'promote') {
    const full = request?.full === true;
    const next = full ? steps.length - 1 : Math.min(step + 1, steps.length - 1);
    const weight = steps[next] ?? 100;
    const action = next >= steps.length - 1 ? 'promote' : 'advance';
    const from = ctx.status.canaryWeight ?? 0;
    const reason = full
      ? `promoted by ${who} without analysis (--full): the canary takes all traffic from ${from} %`
      : `${action === 'promote' ? 'promoted' : `advanced to ${weight} %`} by ${who}, skipping the rest of the analysis at ${from} %`;
    const made = madeByHand(ctx, action, weight, next, reason);
    // The gates the promote passes over count as opened by it.
    const at = ctx.deps.now().toISOString();
    const opened = (canary.spec.analysis.gates ?? []).flatMap((g) => {
      const passed = g.before.find((w) => w > from && w <= weight);
      return passed === undefined ? [] : [{ name: g.name, weight: passed, by: `promoted by ${who}`, at }];
    });
    const conditions = opened.length > 0 ? condition(ctx, made.status.conditions ?? [], 'GateOpen', 'True', 'Opened', `opened by ${who}'s promote`) : made.status.conditions;
    return judged(ctx, canary, router, made.decision, { ...made.status, handled, conditions, openedGates: [...(ctx.status.openedGates ?? []), ...opened] });
  }
  const gate = ctx.status.gate;
  if (gate === undefined || gate.approval !== 'manual') return refuse(gate === undefined ? 'no gate waits for approval' : `gate ${gate.name} waits for its webhook, not a person`);
  if (request?.gate !== undefined && request.gate !== gate.name) return refuse(`the rollout waits at gate ${gate.name}, not ${request.gate}`);
  return openGate(ctx, canary, router, `approved by ${who}`, handled);
}

/** The gate the rollout waits at opens: the route moves to the weight it guarded, unless another gate or the windows still hold it. */
async function openGate(ctx: PassContext, canary: ModelCanary, router: TrafficRouter, by: string, handled = ctx.status.handled): Promise<ReconcileResult> {
  const gate = ctx.status.gate;
  if (gate === undefined) return AGAIN;
  const now = ctx.deps.now();
  const openedGates = [...(ctx.status.openedGates ?? []), { name: gate.name, weight: gate.weight, by, at: now.toISOString() }];
  const opened = `gate ${gate.name} before ${gate.weight} %: ${by}`;
  const next = closedGate(canary.spec, openedGates, gate.weight);
  const window = windowWait(canary.spec, ctx.status, now);
  if (next !== undefined || window !== undefined) {
    const waits = { gate: next === undefined ? undefined : gateWait(next, gate.weight, gate.step, gate.canaryVersion, ctx.status, now), window };
    const status = { ...ctx.status, handled, openedGates, gate: waits.gate, window: waits.window, conditions: waitConditions(ctx, ctx.status.conditions ?? [], waits), message: `${opened}; still held` };
    if (!(await commit(ctx, status))) return AGAIN;
    await tell(ctx, 'Normal', 'GateOpened', opened);
    return AGAIN;
  }
  const action = gate.step >= canary.spec.analysis.steps.length - 1 ? 'promote' : 'advance';
  const made = madeByHand(ctx, action, gate.weight, gate.step, `${opened}; ${action === 'promote' ? 'promoting' : `advancing to ${gate.weight} %`}`);
  const conditions = condition(ctx, made.status.conditions ?? [], 'GateOpen', 'True', 'Opened', opened);
  return judged(ctx, canary, router, made.decision, { ...made.status, handled, openedGates, conditions });
}

/** A webhook gate is asked again; a 2xx opens it, anything else is shown and asked again next interval. */
async function askGate(ctx: PassContext, canary: ModelCanary, router: TrafficRouter): Promise<ReconcileResult> {
  const gate = ctx.status.gate;
  const spec = gate === undefined ? undefined : gateNamed(canary.spec, gate.name);
  if (gate === undefined || spec?.url === undefined) return commit(ctx, { ...ctx.status, gate: undefined }).then(() => AGAIN);
  const answer = await (ctx.deps.webhooks ?? NO_WEBHOOKS).call(webhookCall(canary, ctx.status, 'gate', { name: gate.name, url: spec.url }, `${gate.weight}/${gate.since}`), budget(ctx));
  ctx.signal?.throwIfAborted();
  if (answer.ok) return openGate(ctx, canary, router, 'its webhook answered 2xx');
  const asked = { ...gate, askedAt: ctx.deps.now().toISOString(), answer: answer.problem.slice(0, 1024) };
  const conditions = condition(ctx, ctx.status.conditions ?? [], 'GateOpen', 'False', 'AwaitingWebhook', `gate ${gate.name} before ${gate.weight} %: ${answer.problem}`);
  if (!(await commit(ctx, { ...ctx.status, gate: asked, conditions }))) return AGAIN;
  return { requeueAfterMs: canary.spec.analysis.interval };
}

/** A gate stayed closed past its timeout: its onTimeout decides. */
async function gateTimeout(ctx: PassContext, canary: ModelCanary, router: TrafficRouter): Promise<ReconcileResult> {
  const gate = ctx.status.gate;
  const spec = gate === undefined ? undefined : gateNamed(canary.spec, gate.name);
  if (gate === undefined) return AGAIN;
  const waited = `gate ${gate.name} was not opened before its timeout (${gate.deadline ?? '?'})`;
  if (spec?.onTimeout === 'advance') return openGate(ctx, canary, router, `timed out (onTimeout: advance)`);
  const made = madeByHand(ctx, 'rollback', 0, ctx.status.currentStep ?? 0, `${waited}: rolled back (onTimeout: rollback)`);
  return judged(ctx, canary, router, made.decision, { ...made.status, conditions: condition(ctx, made.status.conditions ?? [], 'GateOpen', 'False', 'TimedOut', waited) });
}

// ── Helpers ───────────────────────────────────────────────────────────────────────────

/**
 * When metrics are read: now, down to the grid (see ReconcileDeps.readGridMs). Passes that run in
 * the same grid cell ask the same question, which a coalescing provider answers once for all.
 */
function readingInstant(ctx: PassContext, canary: ModelCanary): Date {
  const grid = gridFor(ctx.deps.readGridMs, canary.spec.analysis);
  return new Date(Math.floor(ctx.deps.now().getTime() / grid) * grid);
}

/** A window of whole grid steps inside the span (whole seconds when the span is shorter than a step), at least 1 s. */
function windowLength(spanMs: number, gridMs: number): number {
  const steps = Math.floor(spanMs / gridMs) * gridMs;
  return steps > 0 ? steps : Math.max(1000, Math.floor(spanMs / 1000) * 1000);
}

/** The metrics of one pass get a bounded time: past it they are "could not measure", and the check holds. */
function budget(ctx: PassContext): AbortSignal {
  const limit = AbortSignal.timeout(ctx.deps.metricsBudgetMs ?? 30_000);
  return ctx.signal === undefined ? limit : AbortSignal.any([ctx.signal, limit]);
}

/** The status as the API server keeps it; one it would not accept now (an older controller's) is read as far as it goes. */
function readStatus(raw: unknown): ModelCanaryStatus {
  const parsed = StatusSchema.safeParse(raw ?? {});
  if (parsed.success) return parsed.data;
  const loose = StatusSchema.partial().safeParse(raw ?? {});
  return loose.success ? loose.data : {};
}

/**
 * Each version's cumulative counters now. A version without series has served nothing yet, but
 * only if it had served nothing at the last look: series that existed and are gone are "could
 * not measure" (a scrape gap, a Prometheus restart), not zero, so the mark is kept.
 */
async function readTotals(provider: MetricsProvider, canary: ModelCanary, now: Date, previous: ModelCanaryStatus, signal: AbortSignal): Promise<VersionPair<Counts> | undefined> {
  const { stable, canary: canarySelector } = versionSelectors(canary);
  const answers = await provider.totals([stable, canarySelector], now, signal);
  const counts = (key: string, before: number): Counts | undefined => {
    const sample = answers.get(key);
    if (sample?.kind === 'counts') return sample.counts;
    return sample?.kind === 'noData' && before === 0 ? { requests: 0, errors: 0 } : undefined;
  };
  const mark = previous.watchMark;
  const stableCounts = counts(stable.key, mark?.stable.requests ?? 0);
  const canaryCounts = counts(canarySelector.key, mark?.canary.requests ?? 0);
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
async function holdOnBadStatus(ctx: PassContext, canary: ModelCanary, problem: string): Promise<ReconcileResult> {
  const weight = ctx.status.canaryWeight ?? 0;
  const message = `modelcanary computed a status the API server would refuse (${problem}); the route stays at ${weight} % and the check is repeated next interval. This is a bug in modelcanary: please report it with this message.`.slice(0, 4096);
  if (ctx.status.message !== message) {
    if (!(await commit(ctx, { ...ctx.status, message }))) return AGAIN;
    await tell(ctx, 'Warning', 'StatusRefused', message);
    ctx.deps.log.warn({ canary: canaryKey(canary), problem, weight }, 'computed status is invalid; holding');
  }
  return { requeueAfterMs: canary.spec.analysis.interval };
}

function unmeasurable(canary: ModelCanary, problem: string): Observation {
  const error: Sample = { kind: 'error', message: problem };
  const custom = Object.fromEntries(customMetrics(canary).map((m) => [m.name, { stable: error, canary: error }]));
  return { sinceLastCheck: { stable: error, canary: error }, custom };
}

/** spec.notifications as far as it can be read: a spec invalid elsewhere still says where to tell people. */
function notificationTargets(object: Json): NotificationTarget[] | undefined {
  const spec = object.spec as { notifications?: unknown } | undefined;
  if (spec?.notifications === undefined) return undefined;
  const parsed = z.array(NotificationTarget).safeParse(spec.notifications);
  return parsed.success ? parsed.data : undefined;
}
