import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countAbove, fromBucketCounts, histogramQuantile, ISTIO_BUCKETS_MS, type Histogram } from '../src/analysis/histogram.ts';

const h = (bounds: number[], cumulative: number[]): Histogram => ({ bounds, cumulative });

test('histogramQuantile interpolates inside the bucket as Prometheus does', () => {
  // Worked by hand from Prometheus's algorithm (promql/quantile.go).
  const cases: [string, number, Histogram, number][] = [
    ['median in the second bucket', 0.5, h([10, 20, 50], [20, 60, 90, 100]), 10 + 10 * ((50 - 20) / 40)],
    ['first bucket starts at 0', 0.1, h([10, 20], [20, 40, 40]), 10 * (4 / 20)],
    ['rank in +Inf answers the highest finite bound', 0.99, h([10, 20], [50, 90, 100]), 20],
    ['q = 1 lands in the last non-empty bucket', 1, h([10, 20, 50], [0, 10, 10, 10]), 20],
    ['q = 0 is the start of the first bucket', 0, h([10, 20], [5, 10, 10]), 0],
    ['a non-positive first bound is returned as is', 0.1, h([-5, 10], [10, 20, 20]), -5],
    ['no observations is NaN', 0.5, h([10, 20], [0, 0, 0]), NaN],
    ['q above 1 is +Inf', 1.5, h([10], [1, 1]), Infinity],
    ['q below 0 is -Inf', -0.5, h([10], [1, 1]), -Infinity],
    ['a dip in cumulative counts is flattened', 0.5, h([10, 20, 50], [20, 18, 60, 60]), 20 + 30 * ((30 - 20) / 40)],
  ];
  for (const [name, q, histogram, expected] of cases) {
    const actual = histogramQuantile(q, histogram);
    if (Number.isNaN(expected)) assert.ok(Number.isNaN(actual), name);
    else assert.ok(actual === expected || Math.abs(actual - expected) < 1e-9, `${name}: ${actual} ≠ ${expected}`);
  }
});

test('p99 over Istio buckets from per-bucket counts', () => {
  // 1000 requests: 900 in (50, 100], 95 in (100, 250], 5 in (250, 500].
  const perBucket = ISTIO_BUCKETS_MS.map((b) => (b === 100 ? 900 : b === 250 ? 95 : b === 500 ? 5 : 0));
  const histogram = fromBucketCounts(ISTIO_BUCKETS_MS, [...perBucket, 0]);
  // rank 990: 900 below 100 ms, so 90 of the 95 in (100, 250].
  assert.ok(Math.abs(histogramQuantile(0.99, histogram) - (100 + 150 * (90 / 95))) < 1e-9);
  assert.equal(countAbove(histogram, 250), 5);
  assert.equal(countAbove(histogram, 100), 100);
  assert.throws(() => countAbove(histogram, 300), /not a bucket bound/);
});
