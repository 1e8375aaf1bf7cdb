// What the engine is shown at each check: counts and values per version, in our own terms.
// The metrics provider (live or historical) and the simulator produce these; the engine
// judges them. They live in api because both sides speak them.

/** Istio's default bounds of istio_request_duration_milliseconds, in milliseconds. */
export const ISTIO_BUCKETS_MS: readonly number[] = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
];

/** Latency bucket counts as Istio exports them (istio_request_duration_milliseconds_bucket). */
export interface Histogram {
  /** Finite upper bounds in milliseconds, ascending. */
  bounds: readonly number[];
  /** Cumulative counts: cumulative[i] requests took at most bounds[i]; the last entry (+Inf) is the total. */
  cumulative: readonly number[];
}

export interface Counts {
  requests: number;
  /** Requests answered with a 5xx. */
  errors: number;
  /** Latency bucket counts, when the metric family was fetched. */
  latency?: Histogram | undefined;
}

/**
 * One version's evidence for one metric. "Could not measure" (error) and "nothing to measure"
 * (noData) are kept apart from values: neither is a verdict on the model.
 */
export type Sample =
  | { kind: 'counts'; counts: Counts }
  | { kind: 'value'; value: number }
  | { kind: 'noData'; reason: string }
  | { kind: 'error'; message: string };

export interface VersionPair<T> {
  stable: T;
  canary: T;
}

export interface Observation {
  /**
   * Each version's counts since the previous check, without overlap with it. Built-in metrics
   * are judged on them (plus counts carried from inconclusive checks), and the sequential test
   * needs every request exactly once, which overlapping windows would break.
   */
  sinceLastCheck: VersionPair<Sample>;
  /**
   * The part of sinceLastCheck that the sequential test has not seen yet, when watch() looked
   * at the rest between checks. Left out, it is all of sinceLastCheck.
   */
  sinceLastWatch?: VersionPair<Sample> | undefined;
  /** Per custom (prometheus) metric, each version's value over the metric's window. */
  custom: Record<string, VersionPair<Sample>>;
}

export function countsOf(sample: Sample): Counts | undefined {
  return sample.kind === 'counts' ? sample.counts : undefined;
}

/** Counts of both versions as the samples the engine is shown. */
export function asSamples(pair: VersionPair<Counts>): VersionPair<Sample> {
  return { stable: { kind: 'counts', counts: pair.stable }, canary: { kind: 'counts', counts: pair.canary } };
}

export function addCounts(a: Counts, b: Counts): Counts {
  const latency =
    a.latency === undefined ? b.latency : b.latency === undefined ? a.latency : { bounds: a.latency.bounds, cumulative: a.latency.cumulative.map((c, i) => c + (b.latency?.cumulative[i] ?? 0)) };
  return { requests: a.requests + b.requests, errors: a.errors + b.errors, latency };
}
