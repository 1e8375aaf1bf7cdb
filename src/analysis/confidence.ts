// How sure counts let a check be: confidence bounds for a 5xx ratio (Clopper–Pearson) and for a
// latency quantile (order statistics over bucket counts, bounded by bucket edges). Both are
// exact binomial statements: no normal approximation, no assumption about the latency's shape.
// docs/analysis.md explains them in words first.

import { countAbove, histogramQuantile, type Histogram } from './histogram.ts';

/**
 * Where a true value lies, each end at the stated confidence. `lowOpen` says the value is
 * strictly above `low` (a quantile above a bucket edge); `high` may be Infinity (no bound yet).
 */
export interface Bounds {
  low: number;
  high: number;
  lowOpen?: boolean;
}

/** The true value is above `bound`, as far as `bounds` can tell. */
export function isAbove(bounds: Bounds, bound: number): boolean {
  return bounds.low > bound || (bounds.lowOpen === true && bounds.low === bound);
}

/** The true value is at most `bound`, as far as `bounds` can tell. */
export function isAtMost(bounds: Bounds, bound: number): boolean {
  return bounds.high <= bound;
}

// ── The binomial distribution ───────────────────────────────────────────────────────────

const HALF_LOG_TWO_PI = 0.5 * Math.log(2 * Math.PI);

/** ln Γ(x) for x > 0: Stirling's series after shifting x to at least 8 (absolute error below 1e-11). */
export function logGamma(x: number): number {
  let shift = 0;
  let y = x;
  while (y < 8) {
    shift -= Math.log(y);
    y += 1;
  }
  const inverse = 1 / y;
  const inverse2 = inverse * inverse;
  const series = inverse * (1 / 12 - inverse2 * (1 / 360 - inverse2 * (1 / 1260 - inverse2 / 1680)));
  return shift + (y - 0.5) * Math.log(y) - y + HALF_LOG_TWO_PI + series;
}

function logPmf(k: number, n: number, p: number): number {
  return logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1) + k * Math.log(p) + (n - k) * Math.log1p(-p);
}

/**
 * P(X ≤ k) for X ~ Binomial(n, p). Sums the smaller tail outward from k, where the terms only
 * shrink, and stops once they no longer change the sum: O(√n) terms at worst.
 */
export function binomialCdf(k: number, n: number, p: number): number {
  if (k < 0) return 0;
  if (k >= n || p <= 0) return 1;
  if (p >= 1) return 0;
  const odds = p / (1 - p);
  if (k < n * p) {
    let term = Math.exp(logPmf(k, n, p));
    let sum = term;
    for (let i = k; i > 0 && term > sum * 1e-17; i--) {
      term *= i / ((n - i + 1) * odds);
      sum += term;
    }
    return Math.min(1, sum);
  }
  let term = Math.exp(logPmf(k + 1, n, p));
  let upper = term;
  for (let i = k + 1; i < n && term > upper * 1e-17; i++) {
    term *= ((n - i) / (i + 1)) * odds;
    upper += term;
  }
  return Math.max(0, 1 - upper);
}

/** The smallest k with P(X ≤ k) ≥ level, for X ~ Binomial(n, p). */
export function binomialQuantile(n: number, p: number, level: number): number {
  let low = 0;
  let high = n;
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    if (binomialCdf(middle, n, p) >= level) high = middle;
    else low = middle + 1;
  }
  return low;
}

// ── A ratio: Clopper–Pearson ────────────────────────────────────────────────────────────

/**
 * Clopper–Pearson bounds on a proportion from `events` of `trials`: the proportions that the
 * counts do not reject, one-sided at `confidence` each way. Exact, hence a little wide at small
 * counts, which is the side to err on before rolling back a model.
 */
export function ratioBounds(events: number, trials: number, confidence: number): Bounds {
  const n = Math.round(trials);
  const k = Math.min(n, Math.max(0, Math.round(events)));
  if (n <= 0) return { low: 0, high: 1 };
  const tail = 1 - confidence;
  // Lower: the p at which k or more events are just as rare as the tail; upper: k or fewer.
  const low = k === 0 ? 0 : solve((p) => 1 - binomialCdf(k - 1, n, p) >= tail);
  const high = k === n ? 1 : solve((p) => binomialCdf(k, n, p) < tail);
  return { low, high };
}

/** The p in [0, 1] where a condition monotone in p turns true, by bisection. */
function solve(isAtOrPast: (p: number) => boolean): number {
  let low = 0;
  let high = 1;
  for (let i = 0; i < 60; i++) {
    const middle = (low + high) / 2;
    if (isAtOrPast(middle)) high = middle;
    else low = middle;
  }
  return (low + high) / 2;
}

// ── A quantile: order statistics over bucket counts ─────────────────────────────────────

/**
 * Bounds on the q-quantile of the latency behind a histogram, without assuming its shape. The
 * count of requests slower than the true quantile is Binomial(n, 1 − q); so if more requests
 * than that distribution allows (at `confidence`) are slower than a bucket edge, the quantile
 * is above the edge, and if fewer, at most the edge. Only edges have exact counts, so both
 * bounds are bucket edges; `high` is Infinity while the slowest requests could all be beyond
 * the last finite bucket (too few requests: p99 needs about 300 before it has an upper bound
 * at 95 %).
 */
export function quantileBounds(q: number, histogram: Histogram, confidence: number): Bounds {
  // Counters scraped at slightly different moments can dip; flatten them as Prometheus does.
  let highest = 0;
  const flat: Histogram = { bounds: histogram.bounds, cumulative: histogram.cumulative.map((c) => (highest = Math.max(highest, c))) };
  const n = Math.round(flat.cumulative.at(-1) ?? 0);
  if (n <= 0) return { low: 0, high: Infinity };
  const slowShare = 1 - q;
  const above = (edge: number): number => Math.round(countAbove(flat, edge));
  // Above an edge when more than `most` requests are slower than it.
  const most = binomialQuantile(n, slowShare, confidence);
  // At most an edge when no more than `fewest` requests are slower than it (none: no bound).
  const tail = 1 - confidence;
  const atTail = binomialQuantile(n, slowShare, tail);
  const fewest = binomialCdf(atTail, n, slowShare) <= tail ? atTail : atTail - 1;
  let low = 0;
  let lowOpen = false;
  for (const edge of flat.bounds) {
    if (above(edge) > most) {
      low = edge;
      lowOpen = true;
    }
  }
  const high = fewest < 0 ? Infinity : (flat.bounds.find((edge) => above(edge) <= fewest) ?? Infinity);
  return { low, high, lowOpen };
}

/** A histogram's quantile as a point value (Prometheus's interpolation): the bounds of a point-estimate policy. */
export function pointQuantile(q: number, histogram: Histogram): Bounds {
  const value = histogramQuantile(q, histogram);
  return { low: value, high: value };
}
