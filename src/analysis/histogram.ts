// Latency histograms as Istio exports them (istio_request_duration_milliseconds_bucket):
// cumulative counts per upper bound, the last one +Inf.

import { ISTIO_BUCKETS_MS, type Histogram } from '../api/observation.ts';

export { ISTIO_BUCKETS_MS, type Histogram };

export function total(histogram: Histogram): number {
  return histogram.cumulative.at(-1) ?? 0;
}

/**
 * The q-quantile of a histogram, interpolated linearly inside its bucket exactly as
 * Prometheus's histogram_quantile does: NaN without observations; the lowest bucket starts at
 * 0 (unless its bound is not positive); a rank in the +Inf bucket answers the highest finite
 * bound.
 */
export function histogramQuantile(q: number, histogram: Histogram): number {
  if (Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  const { bounds } = histogram;
  const cumulative = monotonic(histogram.cumulative);
  const count = cumulative.at(-1) ?? 0;
  if (bounds.length === 0 || count === 0) return NaN;
  const rank = q * count;
  let b = cumulative.findIndex((c) => c >= rank);
  if (b < 0) b = cumulative.length - 1;
  if (b === bounds.length) return bounds.at(-1) ?? NaN;
  const upper = bounds[b] ?? NaN;
  if (b === 0 && upper <= 0) return upper;
  const start = b === 0 ? 0 : (bounds[b - 1] ?? 0);
  const below = b === 0 ? 0 : (cumulative[b - 1] ?? 0);
  const inBucket = (cumulative[b] ?? 0) - below;
  return start + (upper - start) * ((rank - below) / inBucket);
}

/** Requests slower than `bound`, which must be one of the histogram's bounds. */
export function countAbove(histogram: Histogram, bound: number): number {
  const index = histogram.bounds.indexOf(bound);
  if (index < 0) throw new RangeError(`${bound} ms is not a bucket bound of this histogram`);
  return total(histogram) - (histogram.cumulative[index] ?? 0);
}

/** The smallest bucket bound at or above `ms`, or the largest bound when none is. */
export function boundAtOrAbove(bounds: readonly number[], ms: number): number {
  return bounds.find((b) => b >= ms) ?? bounds.at(-1) ?? ms;
}

/** Per-bucket counts (as a simulator draws them) to cumulative ones. */
export function fromBucketCounts(bounds: readonly number[], perBucket: readonly number[]): Histogram {
  let running = 0;
  return { bounds, cumulative: perBucket.map((n) => (running += n)) };
}

/** Scrapes of counters taken at slightly different moments can dip; Prometheus flattens such dips. */
function monotonic(cumulative: readonly number[]): number[] {
  let highest = 0;
  return cumulative.map((c) => (highest = Math.max(highest, c)));
}
