// The controller's eyes, in our own terms: counts per version, and single values.

import type { Sample } from '../api/observation.ts';
import type { PresetQueries } from './promql.ts';

/** Exact label values that select one version's series in Istio's standard metrics. */
export interface VersionSelector {
  /** The caller's name for this version, e.g. "ml-serving/fraud-detector/canary". */
  key: string;
  labels: Readonly<Record<string, string>>;
}

/** Every method takes an optional AbortSignal: once it aborts, answers are errors, never late data. */
export interface MetricsProvider {
  /**
   * Each selected version's requests, 5xx answers and latency bucket counts over the window
   * ending at `at`. Selectors that share label names are answered by one query per metric
   * family, however many there are.
   */
  counts(selectors: readonly VersionSelector[], windowMs: number, at: Date, signal?: AbortSignal): Promise<Map<string, Sample>>;
  /**
   * Each selected version's cumulative counts at `at`: the current sums of its request, 5xx and
   * latency bucket counters, without a window. Two reads subtract to exactly the requests in
   * between, however short the gap (increase() over a window shorter than a few scrapes is not
   * reliable). A counter reset makes the difference negative; callers must check.
   */
  totals(selectors: readonly VersionSelector[], at: Date, signal?: AbortSignal): Promise<Map<string, Sample>>;
  /** One number from a PromQL query evaluated at `at`. */
  value(query: string, at: Date, signal?: AbortSignal): Promise<Sample>;
  /**
   * A preset's counts from its own exporter (vLLM, the endpoint picker): requests, errors and
   * bucket counts in milliseconds, or noData with `queries.missing`. Left out by providers that
   * cannot run PromQL; the preset is then an error that says so.
   */
  presetCounts?(queries: PresetQueries, at: Date, signal?: AbortSignal): Promise<Sample>;
}

/** Why a provider without PromQL (the demo's direct scrape) cannot answer an LLM preset. */
export const PRESETS_NEED_PROMQL =
  "LLM presets (ttft, interTokenLatency, e2eLatency, inferenceErrorRate) read the exporter's histograms through PromQL; this provider reads the mesh's counters directly (install prometheus: apt-get install -y prometheus)";

/** A provider with nothing to say: every answer is "no data". */
export class NopMetricsProvider implements MetricsProvider {
  counts(selectors: readonly VersionSelector[]): Promise<Map<string, Sample>> {
    return Promise.resolve(new Map(selectors.map((s) => [s.key, { kind: 'noData', reason: 'no metrics provider' }])));
  }

  totals(selectors: readonly VersionSelector[]): Promise<Map<string, Sample>> {
    return this.counts(selectors);
  }

  value(): Promise<Sample> {
    return Promise.resolve({ kind: 'noData', reason: 'no metrics provider' });
  }
}
