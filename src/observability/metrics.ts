// The controller's own metrics, in a registry of our own (never prom-client's global one).

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { PHASES, type Phase } from '../api/status.ts';

export interface CheckRecord {
  namespace: string;
  name: string;
  phase: Phase;
  weight: number;
  metrics: { metric: string; verdict: string; stable?: number | null | undefined; canary?: number | null | undefined }[];
  /** Set when the check ended the rollout. */
  outcome?: 'promoted' | 'rolledBack' | undefined;
  /** Seconds since the rollout started, when it ended. */
  durationSeconds?: number | undefined;
}

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

  constructor(version: string) {
    const registers = [this.registry];
    new Gauge({ name: 'modelcanary_info', help: 'The running modelcanary controller.', labelNames: ['version'], registers }).set({ version }, 1);
    this.phase = new Gauge({ name: 'modelcanary_phase', help: 'Phase of each ModelCanary: 1 for the current phase, 0 for the others.', labelNames: ['namespace', 'name', 'phase'], registers });
    this.weight = new Gauge({ name: 'modelcanary_canary_weight', help: 'Percent of traffic on the canary.', labelNames: ['namespace', 'name'], registers });
    this.value = new Gauge({ name: 'modelcanary_analysis_metric_value', help: 'The last measured value of each analysis metric, per version.', labelNames: ['namespace', 'name', 'metric', 'version'], registers });
    this.checks = new Counter({ name: 'modelcanary_analysis_checks_total', help: 'Metric checks, by verdict.', labelNames: ['namespace', 'name', 'metric', 'verdict'], registers });
    this.rollouts = new Counter({ name: 'modelcanary_rollouts_total', help: 'Rollouts that ended, by outcome.', labelNames: ['namespace', 'name', 'outcome'], registers });
    this.rolloutDuration = new Histogram({ name: 'modelcanary_rollout_duration_seconds', help: 'Time from the start of a rollout to its promotion or rollback.', labelNames: ['outcome'], buckets: [60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400], registers });
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
    for (const m of check.metrics) {
      this.checks.inc({ ...who, metric: m.metric, verdict: m.verdict });
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

  recordPhase(namespace: string, name: string, phase: Phase, weight: number): void {
    for (const p of PHASES) this.phase.set({ namespace, name, phase: p }, p === phase ? 1 : 0);
    this.weight.set({ namespace, name }, weight);
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
