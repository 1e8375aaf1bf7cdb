// What people are told about a transition, built when the transition is decided and written
// with it into status.outbox (see outbox.ts): the words and numbers are fixed at that moment,
// so a message sent after a restart says what happened then, not what holds now.

import type { Metric, ModelCanary } from '../api/modelcanary.ts';
import { MAX_OUTBOX, type MetricLine, type ModelCanaryStatus, type Notification, type NotificationKind, type Phase, type Severity } from '../api/status.ts';
import type { Decision } from '../analysis/engine.ts';
import type { MetricVerdict } from '../analysis/verdicts.ts';
import { formatMs, formatRatio, formatValue } from '../analysis/format.ts';

export interface Transition {
  kind: NotificationKind;
  /** The status as written with the transition. */
  status: ModelCanaryStatus;
  /** One sentence; built from the kind when left out. */
  summary?: string | undefined;
  reason?: string | undefined;
  decision?: Decision | undefined;
  now: Date;
}

/** The notification owed for `transition` of `canary`. */
export function notificationOf(canary: ModelCanary, transition: Transition): Notification {
  const { status, kind, now } = transition;
  const { spec, metadata } = canary;
  const namespace = metadata.namespace ?? 'default';
  const weight = status.canaryWeight ?? 0;
  const stepIndex = status.currentStep ?? 0;
  const phase: Phase = status.phase ?? 'Pending';
  return {
    id: `${metadata.uid ?? `${namespace}/${metadata.name}`}/${kind}/${now.toISOString()}`,
    kind,
    severity: severityOf(kind, phase),
    time: now.toISOString(),
    namespace,
    name: metadata.name,
    model: spec.model.slice(0, 253),
    stableVersion: spec.stable.version,
    canaryVersion: spec.canary.version,
    step: phase === 'Pending' ? 0 : Math.min(stepIndex + 1, spec.analysis.steps.length),
    steps: spec.analysis.steps.length,
    weight,
    phase,
    summary: clip(transition.summary ?? summaryOf(kind, spec.model, spec.stable.version, spec.canary.version, weight), 1024),
    reason: clip(transition.reason ?? transition.decision?.reason ?? status.message ?? '', 4096),
    metrics: (transition.decision?.verdicts ?? []).slice(0, 20).map((v) => lineOf(v, spec.analysis.metrics.find((m) => m.name === v.name))),
  };
}

/** For a ModelCanary whose spec cannot be read: what is known from its metadata and status. */
export function notificationOfInvalid(object: { metadata?: { namespace?: string; name?: string; uid?: string } }, status: ModelCanaryStatus, problems: string, now: Date): Notification {
  const namespace = object.metadata?.namespace ?? 'default';
  const name = object.metadata?.name ?? '';
  const phase = status.phase ?? 'Pending';
  return {
    id: `${object.metadata?.uid ?? `${namespace}/${name}`}/invalid/${now.toISOString()}`,
    kind: 'invalid',
    severity: severityOf('invalid', phase),
    time: now.toISOString(),
    namespace,
    name,
    model: name,
    stableVersion: status.stableVersion ?? '?',
    canaryVersion: status.canaryVersion ?? '?',
    step: 0,
    steps: 0,
    weight: status.canaryWeight ?? 0,
    phase,
    summary: phase === 'Failed' ? `held at ${status.canaryWeight ?? 0} % until the spec is fixed` : 'the spec is invalid: nothing will start until it is fixed',
    reason: clip(problems, 4096),
    metrics: [],
  };
}

/** info: progress; warning: someone should look; error: rolled back, or traffic held until a person acts. */
export function severityOf(kind: NotificationKind, phase: Phase): Severity {
  switch (kind) {
    case 'started':
    case 'retried':
    case 'canaryReplaced':
    case 'advanced':
    case 'promoted':
    case 'paused':
    case 'resumed':
      return 'info';
    case 'noEvidence':
    case 'gated':
      return 'warning';
    case 'aborted':
      return 'error';
    case 'held':
    case 'invalid':
      return phase === 'Failed' ? 'error' : 'warning';
    case 'rolledBack':
      return 'error';
  }
}

function summaryOf(kind: NotificationKind, model: string, stable: string, canary: string, weight: number): string {
  switch (kind) {
    case 'started':
      return `${model}: canary ${canary} takes ${weight} % of the traffic; stable ${stable} keeps the rest`;
    case 'retried':
      return `${model}: canary ${canary} is tried again, from ${weight} %`;
    case 'canaryReplaced':
      return `${model}: the canary is now ${canary}; the rollout starts again from ${weight} %`;
    case 'advanced':
      return `${model}: canary ${canary} passed its step and now takes ${weight} % of the traffic`;
    case 'promoted':
      return `${model}: canary ${canary} passed every step and now serves all traffic`;
    case 'rolledBack':
      return `${model}: canary ${canary} was rolled back; all traffic is on stable ${stable}`;
    case 'noEvidence':
      return `${model}: held at ${weight} % without evidence to judge canary ${canary}`;
    case 'held':
      return `${model}: held at ${weight} %; a person must act`;
    case 'invalid':
      return `${model}: the spec is invalid`;
    case 'paused':
      return `${model}: paused at ${weight} % (spec.suspend)`;
    case 'resumed':
      return `${model}: resumed at ${weight} %`;
    case 'gated':
      return `${model}: canary ${canary} passed its checks at ${weight} % and waits at a gate`;
    case 'aborted':
      return `${model}: the rollout of ${canary} was aborted; all traffic is on stable ${stable}`;
  }
}

function lineOf(verdict: MetricVerdict, metric: Metric | undefined): MetricLine {
  const show = (value: number | null | undefined): string => (value === undefined || value === null ? '-' : clip(formatMetricValue(verdict.type, value), 64));
  return {
    name: verdict.name,
    verdict: verdict.verdict,
    stable: show(verdict.stable),
    canary: show(verdict.canary),
    stableValue: verdict.stable ?? null,
    canaryValue: verdict.canary ?? null,
    bound: clip(metric === undefined ? '' : boundOf(metric), 256),
    reason: clip(verdict.reason, 1024),
  };
}

/** A metric's value as people read it: 1.20 %, 340 ms, 3 ejected. */
export function formatMetricValue(type: Metric['type'], value: number): string {
  switch (type) {
    case 'errorRate':
    case 'inferenceErrorRate':
      return formatRatio(value);
    case 'latency':
    case 'ttft':
    case 'interTokenLatency':
    case 'e2eLatency':
      return formatMs(value);
    case 'prometheus':
      return formatValue(value);
    case 'outliers':
      return `${formatValue(value)} ejected`;
  }
}

/** The bound a metric holds the canary to, as people say it: "≤ 1.00 %", "p99 ≤ 500 ms, ≤ 1.25× stable". */
export function boundOf(metric: Metric): string {
  const parts: string[] = [];
  switch (metric.type) {
    case 'errorRate':
    case 'inferenceErrorRate':
      parts.push(`≤ ${formatRatio(metric.max)}`);
      break;
    case 'latency':
    case 'ttft':
    case 'interTokenLatency':
    case 'e2eLatency': {
      const q = `p${formatValue(metric.quantile * 100)}`;
      if (metric.maxMs !== undefined) parts.push(`${q} ≤ ${formatMs(metric.maxMs)}`);
      if (metric.maxRatioToStable !== undefined) parts.push(`${parts.length === 0 ? `${q} ` : ''}≤ ${formatValue(metric.maxRatioToStable)}× stable`);
      break;
    }
    case 'prometheus':
      if (metric.min !== undefined) parts.push(`≥ ${formatValue(metric.min)}`);
      if (metric.max !== undefined) parts.push(`≤ ${formatValue(metric.max)}`);
      if (metric.minRatioToStable !== undefined) parts.push(`≥ ${formatValue(metric.minRatioToStable)}× stable`);
      if (metric.maxRatioToStable !== undefined) parts.push(`≤ ${formatValue(metric.maxRatioToStable)}× stable`);
      break;
    case 'outliers':
      parts.push(`≤ ${metric.maxEjections ?? 0} ejected + stable's share`);
      break;
  }
  return parts.join(', ');
}

/**
 * The bounds a metric held the canary to, given stable's value: the tighter of the absolute
 * bound and the ratio to stable, in the metric's unit (a ratio, milliseconds, the query's value).
 */
export function effectiveBounds(metric: Metric, stable: number | null | undefined): { max?: number | undefined; min?: number | undefined } {
  const times = (ratio: number | undefined): number | undefined => (ratio === undefined || stable === undefined || stable === null ? undefined : ratio * stable);
  const least = (...xs: (number | undefined)[]): number | undefined => {
    const known = xs.filter((x): x is number => x !== undefined);
    return known.length === 0 ? undefined : Math.min(...known);
  };
  const most = (...xs: (number | undefined)[]): number | undefined => {
    const known = xs.filter((x): x is number => x !== undefined);
    return known.length === 0 ? undefined : Math.max(...known);
  };
  switch (metric.type) {
    case 'errorRate':
    case 'inferenceErrorRate':
      return { max: metric.max };
    case 'latency':
    case 'ttft':
    case 'interTokenLatency':
    case 'e2eLatency':
      return { max: least(metric.maxMs, times(metric.maxRatioToStable)) };
    case 'prometheus':
      return { max: least(metric.max, times(metric.maxRatioToStable)), min: most(metric.min, times(metric.minRatioToStable)) };
    case 'outliers':
      return { max: metric.maxEjections ?? 0 };
  }
}

/**
 * The outbox with `owed` added. It holds at most MAX_OUTBOX: when full, the oldest info
 * notification goes first, then the oldest of any kind, so a rollback is never the one dropped
 * for a step that advanced.
 */
export function owe(outbox: readonly Notification[] | undefined, owed: Notification): { outbox: Notification[]; dropped: Notification[] } {
  const next = [...(outbox ?? []), owed];
  const dropped: Notification[] = [];
  while (next.length > MAX_OUTBOX) {
    const info = next.findIndex((n) => n.severity === 'info');
    dropped.push(...next.splice(info === -1 ? 0 : info, 1));
  }
  return { outbox: next, dropped };
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
