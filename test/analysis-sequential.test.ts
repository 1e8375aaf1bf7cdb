import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logMixture, noEvidence, rejects, update, type SequentialEvidence } from '../src/analysis/sequential.ts';
import { binomial, multinomial, seeded } from '../src/analysis/random.ts';

/**
 * One rollout's worth of intervals at the given error rates, checked after every interval as
 * the controller checks; returns the interval of the first rejection, or undefined.
 */
function monitor(seed: number, stableRate: number, canaryRate: number, intervals: number, alpha: number): number | undefined {
  const random = seeded(seed);
  let evidence: SequentialEvidence = noEvidence();
  for (let i = 0; i < intervals; i++) {
    const weight = i < 20 ? 10 : i < 40 ? 30 : 50;
    const canaryRequests = 300 * weight;
    const stableRequests = 300 * (100 - weight);
    evidence = update(
      evidence,
      {
        canaryRequests,
        stableRequests,
        canaryEvents: binomial(random, canaryRequests, canaryRate),
        stableEvents: binomial(random, stableRequests, stableRate),
      },
      1,
    );
    if (rejects(evidence, alpha)) return i;
  }
  return undefined;
}

test('with equal error rates, the test rarely rejects even when checked every interval', () => {
  const alpha = 0.05;
  const runs = 400;
  let alarms = 0;
  for (let seed = 1; seed <= runs; seed++) if (monitor(seed, 0.01, 0.01, 60, alpha) !== undefined) alarms++;
  // Ville's inequality bounds the rate by alpha; with 400 runs, 2 × alpha leaves room for sampling noise.
  assert.ok(alarms / runs <= 2 * alpha, `${alarms} false alarms in ${runs} rollouts`);
});

test('a canary with twice the error rate is caught in most rollouts, a far worse one within a few intervals', () => {
  let caught = 0;
  for (let seed = 1; seed <= 100; seed++) if (monitor(seed, 0.005, 0.01, 60, 0.01) !== undefined) caught++;
  assert.ok(caught >= 90, `caught ${caught} of 100`);
  const firstRejection = monitor(7, 0.001, 0.05, 60, 0.01);
  assert.ok(firstRejection !== undefined && firstRejection <= 2, `first rejection at interval ${String(firstRejection)}`);
});

test('a better canary builds no evidence against itself', () => {
  let evidence = noEvidence();
  for (let i = 0; i < 50; i++) evidence = update(evidence, { canaryRequests: 1000, stableRequests: 9000, canaryEvents: 1, stableEvents: 90 }, 1);
  assert.ok(logMixture(evidence) < Math.log(1e-3));
});

test('intervals without traffic on one side, or without events, leave the evidence as it was', () => {
  const start = noEvidence();
  assert.equal(update(start, { canaryRequests: 0, stableRequests: 100, canaryEvents: 0, stableEvents: 3 }, 1), start);
  assert.equal(update(start, { canaryRequests: 100, stableRequests: 100, canaryEvents: 0, stableEvents: 0 }, 1), start);
  assert.equal(logMixture(start), 0);
});

test('overwhelming evidence does not overflow', () => {
  let evidence = noEvidence();
  for (let i = 0; i < 100; i++) evidence = update(evidence, { canaryRequests: 1000, stableRequests: 1000, canaryEvents: 500, stableEvents: 1 }, 1);
  assert.ok(Number.isFinite(logMixture(evidence)));
  assert.ok(rejects(evidence, 1e-9));
});

test('binomial draws have the right mean and variance in both regimes, and multinomial splits exactly', () => {
  const random = seeded(42);
  for (const [n, p] of [[1000, 0.002], [30_000, 0.01], [50, 0.3], [10, 0.9]] as const) {
    const draws = Array.from({ length: 20_000 }, () => binomial(random, n, p));
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    const variance = draws.reduce((a, b) => a + (b - mean) ** 2, 0) / draws.length;
    assert.ok(Math.abs(mean - n * p) < 0.05 * n * p + 0.05, `n=${n} p=${p}: mean ${mean}`);
    assert.ok(Math.abs(variance - n * p * (1 - p)) < 0.1 * n * p * (1 - p), `n=${n} p=${p}: variance ${variance}`);
  }
  const split = multinomial(random, 10_000, [0.5, 0.3, 0.2, 0]);
  assert.equal(split.reduce((a, b) => a + b, 0), 10_000);
  assert.equal(split[3], 0);
});
