// From a ModelCanary to what the engine is shown: the selectors of its versions, its custom
// queries rendered per version, and the observation assembled from the provider's answers.

import type { Metric, ModelCanary } from '../api/modelcanary.ts';
import { INFERENCE_COUNTERS, isPresetType, latencyFamily, presetLabels, settledWindow, type PresetType } from '../api/presets.ts';
import type { Observation, Sample, VersionPair } from '../api/observation.ts';
import { PRESETS_NEED_PROMQL, type MetricsProvider, type VersionSelector } from './provider.ts';
import { escapeString, presetQueries, promDuration, renderTemplate } from './promql.ts';

type Which = 'stable' | 'canary';

/** The label matchers that select a version in Istio's standard metrics (DESIGN.md §2). */
export function versionLabels(canary: ModelCanary, which: Which): Record<string, string> {
  const target = canary.spec[which];
  return (
    target.metricLabels ?? {
      destination_workload_namespace: canary.metadata.namespace ?? 'default',
      destination_canonical_service: canary.spec.model,
      destination_canonical_revision: target.version,
    }
  );
}

export function canaryKey(canary: ModelCanary): string {
  return `${canary.metadata.namespace ?? 'default'}/${canary.metadata.name}`;
}

export function versionSelectors(canary: ModelCanary): VersionPair<VersionSelector> {
  const key = canaryKey(canary);
  return {
    stable: { key: `${key}/stable`, labels: versionLabels(canary, 'stable') },
    canary: { key: `${key}/canary`, labels: versionLabels(canary, 'canary') },
  };
}

/** A custom metric's query for one version, with its template variables filled in. */
export function customQuery(canary: ModelCanary, metricName: string, which: Which): string | undefined {
  const metric = canary.spec.analysis.metrics.find((m) => m.name === metricName);
  if (metric?.type !== 'prometheus') return undefined;
  return renderTemplate(metric.query, {
    model: canary.spec.model,
    version: canary.spec[which].version,
    namespace: canary.metadata.namespace ?? 'default',
    name: canary.metadata.name,
    stableVersion: canary.spec.stable.version,
    canaryVersion: canary.spec.canary.version,
    windowMs: metric.window ?? canary.spec.analysis.interval,
    labels: versionLabels(canary, which),
  });
}

/** The Envoy stats of enforced ejections, as Istio exports them when asked to (docs/outliers.md). */
export const EJECTIONS_METRIC = 'envoy_cluster_outlier_detection_ejections_enforced_total';
export const EJECTED_NOW_METRIC = 'envoy_cluster_outlier_detection_ejections_active';

/**
 * The regular expression for a version's Envoy cluster, `outbound|<port>|<subset>|<host FQDN>`,
 * as the calling proxy names it: any port when the destination has none, an empty subset when
 * it has none (a Service per version, as with Gateway API).
 */
export function clusterNamePattern(canary: ModelCanary, which: Which): string {
  const { destination } = canary.spec[which];
  const namespace = canary.metadata.namespace ?? 'default';
  // An InferencePool has no Service host: validation asks for clusterName then, so this is never its default.
  const name = destination.host ?? destination.inferencePool ?? '';
  const host = name.includes('.') ? name : `${name}.${namespace}.svc.cluster.local`;
  const literal = (text: string): string => text.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
  const port = destination.port === undefined ? '[0-9]+' : String(destination.port);
  return `outbound\\|${port}\\|${literal(destination.subset ?? '')}\\|${literal(host)}`;
}

/**
 * Ejections of a version's endpoints in the `windowMs` before the evaluation time, summed over
 * every reporting proxy: the enforced ejections counted in the window, or, when more, the most
 * endpoints ejected at once in it. increase() sees only changes between two samples inside the
 * window, so an ejection in its first scrape interval (a pod that breaks as the step begins)
 * is missed by the counter; the ejection lasts, and the gauge shows it.
 */
export function outlierQuery(canary: ModelCanary, metricName: string, which: Which, windowMs: number): string | undefined {
  const metric = canary.spec.analysis.metrics.find((m) => m.name === metricName);
  if (metric?.type !== 'outliers') return undefined;
  const selector = `{cluster_name=~"${escapeString(metric.clusterName?.[which] ?? clusterNamePattern(canary, which))}"}`;
  const window = promDuration(Math.max(windowMs, 1000));
  const counted = `sum(increase(${EJECTIONS_METRIC}${selector}[${window}]))`;
  const atOnce = `sum(max_over_time(${EJECTED_NOW_METRIC}${selector}[${window}]))`;
  return `(${counted} > ${atOnce}) or ${atOnce} or ${counted}`;
}

/**
 * Observations of many ModelCanaries at once: their built-in counts over `sinceMs` before
 * `at` in one batched call, and each custom query per version.
 */
export async function observeAll(provider: MetricsProvider, canaries: readonly ModelCanary[], sinceMs: number, at: Date, signal?: AbortSignal): Promise<Map<string, Observation>> {
  const selectors = canaries.flatMap((c): VersionSelector[] => {
    const pair = versionSelectors(c);
    return [pair.stable, pair.canary];
  });
  // Counts and custom queries go out together: a check waits for the slowest, not their sum.
  const [counts, customs] = await Promise.all([
    provider.counts(selectors, sinceMs, at, signal),
    Promise.all(
      canaries.map(async (canary): Promise<Observation['custom']> => {
        const metrics = customMetrics(canary);
        const values = await Promise.all(
          metrics.map(async (metric): Promise<[string, VersionPair<Sample>]> => {
            const one = (which: Which): Promise<Sample> => (isPresetMetric(metric) ? presetOf(provider, canary, metric, which, at, signal, sinceMs) : valueOf(provider, canary, metric.name, which, at, signal, sinceMs));
            const [stable, canaryValue] = await Promise.all([one('stable'), one('canary')]);
            return [metric.name, { stable, canary: canaryValue }];
          }),
        );
        return Object.fromEntries(values);
      }),
    ),
  ]);
  const missing: Sample = { kind: 'noData', reason: 'not fetched' };
  return new Map(
    canaries.map((canary, i): [string, Observation] => {
      const { stable, canary: canarySelector } = versionSelectors(canary);
      return [canaryKey(canary), { sinceLastCheck: { stable: counts.get(stable.key) ?? missing, canary: counts.get(canarySelector.key) ?? missing }, custom: customs[i] ?? {} }];
    }),
  );
}

/** The metrics answered one by one (custom queries, outliers, LLM presets), apart from the batched Istio counts. */
export function customMetrics(canary: ModelCanary): Metric[] {
  return canary.spec.analysis.metrics.filter((m) => m.type === 'prometheus' || m.type === 'outliers' || isPresetType(m.type));
}

type PresetMetric = Extract<Metric, { type: PresetType }>;

function isPresetMetric(metric: Metric): metric is PresetMetric {
  return isPresetType(metric.type);
}

/**
 * A preset's counts for one version over the check's window, from the exporter's own series
 * (src/api/presets.ts). With maxRequestDuration the window starts no earlier than that long
 * after the step began (`canary.status.stepStartedAt`): requests started before have finished.
 */
async function presetOf(provider: MetricsProvider, canary: ModelCanary, metric: PresetMetric, which: Which, at: Date, signal: AbortSignal | undefined, sinceMs: number): Promise<Sample> {
  if (provider.presetCounts === undefined) return { kind: 'error', message: PRESETS_NEED_PROMQL };
  const stepStarted = canary.status?.stepStartedAt === undefined ? undefined : new Date(canary.status.stepStartedAt);
  const settle = metric.type === 'inferenceErrorRate' ? undefined : metric.maxRequestDuration;
  const window = settledWindow(sinceMs, at, stepStarted, settle);
  if (window.kind === 'waiting') {
    return { kind: 'noData', reason: `waiting until ${window.until.toISOString()} (maxRequestDuration ${promDuration(settle ?? 0)} after the weight changed), when every request started before the change has finished: until then the histogram over-represents short requests` };
  }
  const { model } = canary.spec;
  const modelLabel = metric.type === 'inferenceErrorRate' ? INFERENCE_COUNTERS.modelLabel : latencyFamily(metric.type, metric.source).modelLabel;
  const labels = presetLabels(modelLabel, model, canary.spec[which].version, metric.labels?.[which]);
  // An error is said with the metric's name by its verdict ("ttft-p95: could not measure canary: …").
  return provider.presetCounts(presetQueries(metric, labels, window.ms), at, signal);
}

async function valueOf(provider: MetricsProvider, canary: ModelCanary, metricName: string, which: Which, at: Date, signal: AbortSignal | undefined, sinceMs: number): Promise<Sample> {
  let query: string | undefined;
  try {
    // Ejections are counted over the check's own window: what this step served, nothing before it.
    query = customQuery(canary, metricName, which) ?? outlierQuery(canary, metricName, which, sinceMs);
  } catch (error) {
    return { kind: 'error', message: (error as Error).message };
  }
  if (query === undefined) return { kind: 'error', message: `${metricName} is not a custom query` };
  // An error is said with the metric's name by its verdict ("ejections: could not measure canary's ejections: …").
  return provider.value(query, at, signal);
}
