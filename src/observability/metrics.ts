// The controller's own metrics, in a registry of our own (never prom-client's global one).

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { NOTIFICATION_KINDS, PHASES, VERDICTS, type Phase } from '../api/status.ts';

export interface CheckRecord {
  namespace: string;
  name: string;
  phase: Phase;
  weight: number;
  metrics: { metric: string; verdict: string; stable?: number | null | undefined; canary?: number | null | undefined; bounds?: { max?: number | undefined; min?: number | undefined } }[];
  decision: 'hold' | 'advance' | 'promote' | 'rollback';
  /** Set when the check ended the rollout. */
  outcome?: 'promoted' | 'rolledBack' | undefined;
  /** Seconds since the rollout started, when it ended. */
  durationSeconds?: number | undefined;
}

/** A ModelCanary's rollout as its status stands after a write. */
export interface RolloutRecord {
  namespace: string;
  name: string;
  /** From the spec, when it could be read. */
  model?: string | undefined;
  stable?: string | undefined;
  canary?: string | undefined;
  steps?: readonly number[] | undefined;
  metrics?: readonly string[] | undefined;
  inconclusiveLimit?: number | undefined;
  phase: Phase;
  weight: number;
  /** Index of the step in force; undefined before the first. */
  stepIndex?: number | undefined;
  inconclusiveChecks: number;
}

const DECISIONS = ['hold', 'advance', 'promote', 'rollback'] as const;

/** The labels of a ModelCanary's rollout_info, step plan and per-metric series, as last exported. */
interface Plan {
  info: { model: string; stable: string; canary: string };
  steps: number;
  metrics: readonly string[];
}
/** Transitions whose counters exist from the start, so that a panel or an alert reads 0, not nothing. */
const FIRST_TRANSITIONS = ['started', 'advanced', 'promoted', 'rolledBack'] as const;

export class ControllerMetrics {
  readonly registry = new Registry();
  private readonly phase: Gauge;
  private readonly weight: Gauge;
  private readonly value: Gauge;
  private readonly checks: Counter;
  private readonly rollouts: Counter;
  private readonly rolloutDuration: Histogram;
  private readonly reconcileDuration: Histogram;
  private readonly reconcileErrors: Counter;
  private readonly queryDuration: Histogram;
  private readonly notifications: Counter;
  private readonly leader: Gauge;
  private readonly rolloutInfo: Gauge;
  private readonly step: Gauge;
  private readonly steps: Gauge;
  private readonly stepWeight: Gauge;
  private readonly bound: Gauge;
  private readonly decisions: Counter;
  private readonly transitions: Counter;
  private readonly inconclusive: Gauge;
  private readonly heldWithoutEvidence: Gauge;
  /** The label set of each ModelCanary's modelcanary_rollout_info and step plan, to drop when it changes. */
  private readonly known = new Map<string, Plan>();

  constructor(version: string) {
    const registers = [this.registry];
    new Gauge({ name: 'modelcanary_info', help: 'The running modelcanary controller.', labelNames: ['version'], registers }).set({ version }, 1);
    collectDefaultMetrics({ register: this.registry });
    this.leader = new Gauge({ name: 'modelcanary_leader', help: '1 while this replica writes (it holds the lease, or runs without leader election), else 0.', registers });
    this.rolloutInfo = new Gauge({ name: 'modelcanary_rollout_info', help: "Each ModelCanary's model and versions, always 1: join on namespace and name.", labelNames: ['namespace', 'name', 'model', 'stable', 'canary'], registers });
    this.step = new Gauge({ name: 'modelcanary_step', help: 'The step in force, from 1; 0 before the first.', labelNames: ['namespace', 'name'], registers });
    this.steps = new Gauge({ name: 'modelcanary_steps', help: 'How many steps the rollout has.', labelNames: ['namespace', 'name'], registers });
    this.stepWeight = new Gauge({ name: 'modelcanary_step_weight', help: 'The step plan: the canary weight (percent) of each step, from 1.', labelNames: ['namespace', 'name', 'step'], registers });
    this.bound = new Gauge({ name: 'modelcanary_analysis_metric_bound', help: 'The bound each analysis metric held the canary to at the last check (max or min), in the metric\'s unit.', labelNames: ['namespace', 'name', 'metric', 'bound'], registers });
    this.decisions = new Counter({ name: 'modelcanary_decisions_total', help: 'Checks, by what was decided: hold, advance, promote, rollback.', labelNames: ['namespace', 'name', 'decision'], registers });
    this.transitions = new Counter({ name: 'modelcanary_transitions_total', help: 'Transitions written, by event: started, advanced, promoted, rolledBack, noEvidence, held, invalid, paused, resumed, retried, canaryReplaced.', labelNames: ['namespace', 'name', 'event'], registers });
    this.inconclusive = new Gauge({ name: 'modelcanary_inconclusive_checks', help: 'Consecutive checks that could not judge (too little traffic, no data, Prometheus down).', labelNames: ['namespace', 'name'], registers });
    this.heldWithoutEvidence = new Gauge({ name: 'modelcanary_held_without_evidence', help: '1 while the rollout is held because inconclusiveLimit checks in a row could not judge, else 0.', labelNames: ['namespace', 'name'], registers });
    this.phase = new Gauge({ name: 'modelcanary_phase', help: 'Phase of each ModelCanary: 1 for the current phase, 0 for the others.', labelNames: ['namespace', 'name', 'phase'], registers });
    this.weight = new Gauge({ name: 'modelcanary_canary_weight', help: 'Percent of traffic on the canary.', labelNames: ['namespace', 'name'], registers });
    this.value = new Gauge({ name: 'modelcanary_analysis_metric_value', help: 'The last measured value of each analysis metric, per version.', labelNames: ['namespace', 'name', 'metric', 'version'], registers });
    this.checks = new Counter({ name: 'modelcanary_analysis_checks_total', help: 'Metric checks, by verdict.', labelNames: ['namespace', 'name', 'metric', 'verdict'], registers });
    this.rollouts = new Counter({ name: 'modelcanary_rollouts_total', help: 'Rollouts that ended, by outcome.', labelNames: ['namespace', 'name', 'outcome'], registers });
    this.rolloutDuration = new Histogram({ name: 'modelcanary_rollout_duration_seconds', help: 'Time from the start of a rollout to its promotion or rollback.', labelNames: ['outcome'], buckets: [60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400], registers });
    // Created empty: the first rollout to end is then an increase a panel can see, not a series that appears at 1.
    for (const outcome of ['promoted', 'rolledBack']) this.rolloutDuration.zero({ outcome });
    this.reconcileDuration = new Histogram({ name: 'modelcanary_reconcile_duration_seconds', help: 'Time one reconcile took.', buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers });
    this.reconcileErrors = new Counter({ name: 'modelcanary_reconcile_errors_total', help: 'Reconciles that failed and were retried.', labelNames: ['namespace', 'name'], registers });
    this.notifications = new Counter({
      name: 'modelcanary_notifications_total',
      help: 'Notification attempts per destination: delivered, retried (429, 5xx, timeout), rejected (a refusal a person must fix), gaveUp.',
      labelNames: ['destination', 'outcome'],
      registers,
    });
    this.queryDuration = new Histogram({ name: 'modelcanary_prometheus_query_duration_seconds', help: 'Time of each query to Prometheus, by outcome.', labelNames: ['outcome'], buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers });
  }

  notified(destination: string, outcome: string): void {
    this.notifications.inc({ destination, outcome });
  }

  /** After a check's status is written (STYLE.md rule 9: metrics only after the write). */
  recordCheck(check: CheckRecord): void {
    const who = { namespace: check.namespace, name: check.name };
    for (const phase of PHASES) this.phase.set({ ...who, phase }, phase === check.phase ? 1 : 0);
    this.weight.set(who, check.weight);
    this.decisions.inc({ ...who, decision: check.decision });
    for (const m of check.metrics) {
      this.checks.inc({ ...who, metric: m.metric, verdict: m.verdict });
      for (const bound of ['max', 'min'] as const) {
        const value = m.bounds?.[bound];
        if (value === undefined || !Number.isFinite(value)) this.bound.remove({ ...who, metric: m.metric, bound });
        else this.bound.set({ ...who, metric: m.metric, bound }, value);
      }
      for (const version of ['stable', 'canary'] as const) {
        const value = m[version];
        if (typeof value === 'number') this.value.set({ ...who, metric: m.metric, version }, value);
      }
    }
    if (check.outcome !== undefined) {
      this.rollouts.inc({ ...who, outcome: check.outcome });
      if (check.durationSeconds !== undefined) this.rolloutDuration.observe({ outcome: check.outcome }, check.durationSeconds);
    }
  }

  /** After every status write: where the rollout stands. Series a panel reads are created at 0 here. */
  recordRollout(r: RolloutRecord): void {
    const who = { namespace: r.namespace, name: r.name };
    const key = `${r.namespace}/${r.name}`;
    for (const p of PHASES) this.phase.set({ ...who, phase: p }, p === r.phase ? 1 : 0);
    this.weight.set(who, r.weight);
    this.step.set(who, r.phase === 'Pending' || r.stepIndex === undefined ? 0 : r.stepIndex + 1);
    this.inconclusive.set(who, r.inconclusiveChecks);
    this.heldWithoutEvidence.set(who, r.inconclusiveLimit !== undefined && r.inconclusiveChecks >= r.inconclusiveLimit ? 1 : 0);
    const previous = this.known.get(key);
    if (previous === undefined) {
      for (const outcome of ['promoted', 'rolledBack']) this.rollouts.inc({ ...who, outcome }, 0);
      for (const decision of DECISIONS) this.decisions.inc({ ...who, decision }, 0);
      for (const event of FIRST_TRANSITIONS) this.transitions.inc({ ...who, event }, 0);
      this.reconcileErrors.inc(who, 0);
    }
    if (r.model === undefined || r.steps === undefined) return;
    const plan: Plan = { info: { model: r.model, stable: r.stable ?? '', canary: r.canary ?? '' }, steps: r.steps.length, metrics: r.metrics ?? [] };
    if (previous !== undefined && JSON.stringify(previous) === JSON.stringify(plan)) return;
    if (previous !== undefined) {
      this.rolloutInfo.remove({ ...who, ...previous.info });
      for (let i = 1; i <= previous.steps; i++) this.stepWeight.remove({ ...who, step: String(i) });
    }
    this.rolloutInfo.set({ ...who, ...plan.info }, 1);
    this.steps.set(who, r.steps.length);
    r.steps.forEach((weight, i) => {
      this.stepWeight.set({ ...who, step: String(i + 1) }, weight);
    });
    for (const metric of plan.metrics) for (const verdict of VERDICTS) this.checks.inc({ ...who, metric, verdict }, 0);
    this.known.set(key, plan);
  }

  /** A ModelCanary that is gone: its series go too, so that no alert fires on what no longer exists. */
  forget(namespace: string, name: string): void {
    const who = { namespace, name };
    const key = `${namespace}/${name}`;
    const known = this.known.get(key);
    for (const phase of PHASES) this.phase.remove({ ...who, phase });
    for (const gauge of [this.weight, this.step, this.steps, this.inconclusive, this.heldWithoutEvidence]) gauge.remove(who);
    for (const outcome of ['promoted', 'rolledBack']) this.rollouts.remove({ ...who, outcome });
    for (const decision of DECISIONS) this.decisions.remove({ ...who, decision });
    for (const event of NOTIFICATION_KINDS) this.transitions.remove({ ...who, event });
    this.reconcileErrors.remove(who);
    if (known !== undefined) {
      this.rolloutInfo.remove({ ...who, ...known.info });
      for (let i = 1; i <= known.steps; i++) this.stepWeight.remove({ ...who, step: String(i) });
      for (const metric of known.metrics) {
        for (const verdict of VERDICTS) this.checks.remove({ ...who, metric, verdict });
        for (const version of ['stable', 'canary']) this.value.remove({ ...who, metric, version });
        for (const bound of ['max', 'min']) this.bound.remove({ ...who, metric, bound });
      }
    }
    this.known.delete(key);
  }

  /** The destinations the operator defined: their counters start at 0, so that the first refusal is an increase. */
  destinations(names: readonly string[]): void {
    for (const destination of names) for (const outcome of ['delivered', 'retried', 'rejected', 'gaveUp']) this.notifications.inc({ destination, outcome }, 0);
  }

  transitioned(namespace: string, name: string, event: string): void {
    this.transitions.inc({ namespace, name, event });
  }

  leading(isLeader: boolean): void {
    this.leader.set(isLeader ? 1 : 0);
  }

  reconciled(seconds: number): void {
    this.reconcileDuration.observe(seconds);
  }

  reconcileFailed(namespace: string, name: string): void {
    this.reconcileErrors.inc({ namespace, name });
  }

  queried(seconds: number, outcome: 'ok' | 'error'): void {
    this.queryDuration.observe({ outcome }, seconds);
  }
}
