// From a ModelCanary to what the engine is shown: the selectors of its versions, its custom
// queries rendered per version, and the observation assembled from the provider's answers.

import type { ModelCanary } from '../api/modelcanary.ts';
import type { Observation, Sample, VersionPair } from '../api/observation.ts';
import type { MetricsProvider, VersionSelector } from './provider.ts';
import { renderTemplate } from './promql.ts';

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
        const metrics = canary.spec.analysis.metrics.filter((m) => m.type === 'prometheus');
        const values = await Promise.all(
          metrics.map(async (metric): Promise<[string, VersionPair<Sample>]> => {
            const [stable, canaryValue] = await Promise.all([valueOf(provider, canary, metric.name, 'stable', at, signal), valueOf(provider, canary, metric.name, 'canary', at, signal)]);
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

async function valueOf(provider: MetricsProvider, canary: ModelCanary, metricName: string, which: Which, at: Date, signal: AbortSignal | undefined): Promise<Sample> {
  let query: string | undefined;
  try {
    query = customQuery(canary, metricName, which);
  } catch (error) {
    return { kind: 'error', message: `${metricName}: ${(error as Error).message}` };
  }
  if (query === undefined) return { kind: 'error', message: `${metricName} is not a custom query` };
  const sample = await provider.value(query, at, signal);
  return sample.kind === 'error' ? { ...sample, message: `${metricName}: ${sample.message}` } : sample;
}
