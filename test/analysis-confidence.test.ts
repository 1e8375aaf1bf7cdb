import { test } from 'node:test';
import assert from 'node:assert/strict';
import { binomialCdf, binomialQuantile, isAbove, isAtMost, quantileBounds, ratioBounds } from '../src/analysis/confidence.ts';
import { describeBounds, formatMs, formatRatio } from '../src/analysis/format.ts';
import { fromBucketCounts, ISTIO_BUCKETS_MS } from '../src/analysis/histogram.ts';
import { binomial, multinomial, seeded } from '../src/analysis/random.ts';
import { decide, startState, type Decision } from '../src/analysis/engine.ts';
import { checkModelCanary } from '../src/api/validate.ts';
import type { Analysis } from '../src/api/modelcanary.ts';
import type { Counts, Observation } from '../src/api/observation.ts';
import { istioManifest, parsedAnalysis } from './helpers/manifests.ts';

// The statistics behind the verdicts (src/analysis/confidence.ts) and the rules built on them:
// bounds that hold at their stated confidence, and checks that fail a canary only when the
// counts show it beyond its bound and to blame.

function bruteCdf(k: number, n: number, p: number): number {
  let sum = 0;
  let choose = 1;
  for (let i = 0; i <= Math.min(k, n); i++) {
    if (i > 0) choose = (choose * (n - i + 1)) / i;
    sum += choose * p ** i * (1 - p) ** (n - i);
  }
  return sum;
}

test('the binomial distribution function matches a direct sum, in both tails and in the middle', () => {
  for (const [n, p] of [[10, 0.3], [57, 0.02], [150, 0.01], [300, 0.5], [1000, 0.001], [40, 0.9]] as const) {
    for (let k = -1; k <= n; k++) {
      const expected = k < 0 ? 0 : bruteCdf(k, n, p);
      assert.ok(Math.abs(binomialCdf(k, n, p) - expected) < 1e-10, `n=${n} p=${p} k=${k}`);
    }
  }
  assert.equal(binomialQuantile(150, 0.01, 0.95), 4);
  assert.ok(binomialCdf(3, 150, 0.01) < 0.95 && binomialCdf(4, 150, 0.01) >= 0.95);
});

test('Clopper–Pearson bounds: the closed forms at the edges, and the worked cases', () => {
  const cases: [string, number, number, number, number][] = [
    // name, events, trials, low, high (one-sided 95 % each)
    ['no 5xx in 150', 0, 150, 0, 1 - 0.05 ** (1 / 150)],
    ['all 5 of 5', 5, 5, 0.05 ** (1 / 5), 1],
    ['no requests', 0, 0, 0, 1],
  ];
  for (const [name, k, n, low, high] of cases) {
    const b = ratioBounds(k, n, 0.95);
    assert.ok(Math.abs(b.low - low) < 1e-9 && Math.abs(b.high - high) < 1e-9, `${name}: ${JSON.stringify(b)}`);
  }
  // The example: 1 5xx in 71 requests is no evidence of more than 1 %, nor of less.
  const oneIn71 = ratioBounds(1, 71, 0.95);
  assert.ok(oneIn71.low < 0.01 && oneIn71.high > 0.01, JSON.stringify(oneIn71));
  // Fractional counts from increase() are rounded to whole requests.
  assert.deepEqual(ratioBounds(1.02, 70.6, 0.95), oneIn71);
});

test('ratio bounds hold at their confidence: each side is wrong in at most about 5 % of draws', () => {
  const random = seeded(11);
  for (const [n, p] of [[57, 0.02], [150, 0.001], [1350, 0.03], [400, 0.2]] as const) {
    let tooHigh = 0;
    let tooLow = 0;
    const draws = 2000;
    for (let i = 0; i < draws; i++) {
      const b = ratioBounds(binomial(random, n, p), n, 0.95);
      if (b.low > p) tooHigh++;
      if (b.high < p) tooLow++;
    }
    // Exact bounds are conservative: at most 5 %, with room for sampling noise.
    assert.ok(tooHigh / draws <= 0.065 && tooLow / draws <= 0.065, `n=${n} p=${p}: ${tooHigh} and ${tooLow} of ${draws}`);
  }
});

/** A latency distribution over Istio's buckets: 2 % of requests slower than 250 ms, 0.5 % slower than 500 ms. Its p99 lies in (250, 500]. */
const SHAPE = ISTIO_BUCKETS_MS.map((b) => (b === 50 ? 0.9 : b === 250 ? 0.08 : b === 500 ? 0.015 : b === 1000 ? 0.005 : 0));

function drawHistogram(random: ReturnType<typeof seeded>, n: number): ReturnType<typeof fromBucketCounts> {
  return fromBucketCounts(ISTIO_BUCKETS_MS, multinomial(random, n, [...SHAPE, 0]));
}

test('quantile bounds are bucket edges that hold at their confidence, without assuming a shape', () => {
  const random = seeded(5);
  for (const n of [57, 300, 2000, 20_000]) {
    let wrong = 0;
    const draws = 1000;
    for (let i = 0; i < draws; i++) {
      const b = quantileBounds(0.99, drawHistogram(random, n), 0.95);
      assert.ok(b.low === 0 || ISTIO_BUCKETS_MS.includes(b.low), `low ${b.low}`);
      assert.ok(b.high === Infinity || ISTIO_BUCKETS_MS.includes(b.high), `high ${b.high}`);
      // True: p99 is above 250 ms and at most 500 ms. A bound that says otherwise is wrong.
      if (isAbove(b, 500) || isAtMost(b, 250)) wrong++;
    }
    assert.ok(wrong / draws <= 0.1, `n=${n}: ${wrong} of ${draws} wrong`);
  }
  // With enough requests the bounds close in on the bucket that holds the true p99.
  assert.deepEqual(quantileBounds(0.99, drawHistogram(random, 50_000), 0.95), { low: 250, high: 500, lowOpen: true });
});

test('a p99 has no upper bound at 95 % before 299 requests, whatever they show', () => {
  const allFast = (n: number): ReturnType<typeof fromBucketCounts> => fromBucketCounts(ISTIO_BUCKETS_MS, [...ISTIO_BUCKETS_MS, Infinity].map((b) => (b === 50 ? n : 0)));
  assert.equal(quantileBounds(0.99, allFast(298), 0.95).high, Infinity); // 0.99^298 > 0.05
  assert.equal(quantileBounds(0.99, allFast(299), 0.95).high, 50);
  assert.equal(quantileBounds(0.99, allFast(0), 0.95).high, Infinity);
});

test('bounds read as people say them', () => {
  const cases: [string, Parameters<typeof describeBounds>[0], (x: number) => string, number, string][] = [
    ['both ends', { low: 0.0043, high: 0.117 }, formatRatio, 1, 'between 0.43 % and 11.7 %'],
    ['no errors', { low: 0, high: 0.0198 }, formatRatio, 1, 'at most 1.98 %'],
    ['all errors', { low: 0.55, high: 1 }, formatRatio, 1, 'at least 55.0 %'],
    ['a quantile above an edge, not yet bounded above', { low: 250, high: Infinity, lowOpen: true }, formatMs, Infinity, 'above 250 ms'],
    ['a quantile between edges', { low: 250, high: 2500, lowOpen: true }, formatMs, Infinity, 'between 250 ms and 2500 ms'],
    ['nothing known', { low: 0, high: Infinity }, formatMs, Infinity, 'not yet bounded'],
  ];
  for (const [name, bounds, show, ceiling, text] of cases) assert.equal(describeBounds(bounds, show, ceiling), text, name);
});

// ── The rules of a check, on counts ─────────────────────────────────────────────────────

function analysisWith(edit: (analysis: Record<string, any>) => void = () => undefined): Analysis {
  const metrics = [
    { name: 'error-rate', type: 'errorRate', max: 0.02 },
    { name: 'p99', type: 'latency', quantile: 0.99, maxMs: 500 },
  ];
  return parsedAnalysis(metrics, (a) => {
    a.sequentialTest = { enabled: false };
    edit(a);
  });
}

/** Counts with `slowShare` of requests in (250, 500] ms and `slowerShare` in (500, 1000], the rest in (25, 50]. */
function counts(requests: number, errors: number, slowShare = 0, slowerShare = 0): Counts {
  const perBucket = [...ISTIO_BUCKETS_MS, Infinity].map((b) =>
    b === 50 ? requests * (1 - slowShare - slowerShare) : b === 500 ? requests * slowShare : b === 1000 ? requests * slowerShare : 0,
  );
  return { requests, errors, latency: fromBucketCounts(ISTIO_BUCKETS_MS, perBucket) };
}

function check(analysis: Analysis, stable: Counts, canary: Counts): Decision {
  const observation: Observation = { sinceLastCheck: { stable: { kind: 'counts', counts: stable }, canary: { kind: 'counts', counts: canary } }, custom: {} };
  return decide(analysis, startState(), observation);
}

test('an absolute bound fails the canary only when it is beyond it and to blame', () => {
  const analysis = analysisWith((a) => (a.metrics = [{ name: 'error-rate', type: 'errorRate', max: 0.02 }]));
  const cases: { name: string; stable: Counts; canary: Counts; verdict: string; reason: RegExp; warned: boolean }[] = [
    { name: 'within, surely', stable: counts(9000, 9), canary: counts(1000, 2), verdict: 'pass', reason: /within max 2\.00 %/, warned: false },
    { name: 'too few to say', stable: counts(9000, 9), canary: counts(150, 3), verdict: 'inconclusive', reason: /not enough to judge against max 2\.00 %/, warned: false },
    { name: 'beyond, stable within', stable: counts(9000, 9), canary: counts(1000, 40), verdict: 'fail', reason: /above max 2\.00 %, which stable meets/, warned: false },
    { name: 'stable breaks it too, canary no worse', stable: counts(9000, 270), canary: counts(1000, 33), verdict: 'pass', reason: /stable breaks max 2\.00 % too and the canary is not worse: not failed on it/, warned: true },
    { name: 'stable breaks it too, canary far worse', stable: counts(9000, 270), canary: counts(1000, 90), verdict: 'fail', reason: /which stable breaks too, and worse than stable/, warned: false },
    { name: 'beyond, and stable may break it too', stable: counts(900, 22), canary: counts(1000, 33), verdict: 'inconclusive', reason: /stable may break it too/, warned: false },
  ];
  for (const c of cases) {
    const decision = check(analysis, c.stable, c.canary);
    const verdict = decision.verdicts[0];
    assert.equal(verdict?.verdict, c.verdict, `${c.name}: ${verdict?.reason ?? ''}`);
    assert.match(verdict.reason, c.reason, c.name);
    assert.equal(decision.warnings.length > 0, c.warned, c.name);
  }
});

test('max: 0 is met by seeing no 5xx at all, which no range can show', () => {
  const analysis = analysisWith((a) => (a.metrics = [{ name: 'error-rate', type: 'errorRate', max: 0 }]));
  assert.equal(check(analysis, counts(9000, 0), counts(1000, 0)).verdicts[0]?.verdict, 'pass');
  assert.equal(check(analysis, counts(9000, 0), counts(1000, 1)).verdicts[0]?.verdict, 'fail');
});

test('the warning names the metric and says, in numbers, that stable breaks the bound too', () => {
  const decision = check(analysisWith(), counts(9000, 270, 0.003, 0.015), counts(1000, 33, 0.003, 0.015));
  assert.deepEqual(decision.warnings.map((w) => w.metric), ['error-rate', 'p99']);
  assert.match(decision.warnings[0]?.reason ?? '', /^stable breaks this bound too: max 2\.00 % \(stable's 5xx ratio between 2\.\d+ % and 3\.\d+ % at 95 %, the canary's between [\d.]+ % and [\d.]+ %\); the canary is not worse than stable, so the bound does not fail it$/);
  assert.match(decision.warnings[1]?.reason ?? '', /^stable breaks this bound too: maxMs 500 ms \(stable's p99 between 500 ms and 1000 ms at 95 %/);
  assert.equal(decision.action, 'advance');
  assert.match(decision.reason, /stable breaks a bound too: error-rate, p99/);
});

test('a latency bound is judged by the requests beyond the bucket edges around it', () => {
  const analysis = analysisWith((a) => (a.metrics = [{ name: 'p99', type: 'latency', quantile: 0.99, maxMs: 400 }]));
  // 0.2 % slower than 250 ms: p99 at most 250 ms, so within 400 ms.
  assert.equal(check(analysis, counts(9000, 0, 0.002), counts(3000, 0, 0.002)).verdicts[0]?.verdict, 'pass');
  // 3 % slower than 500 ms, stable 0.1 %: p99 above 500 ms, beyond 400 ms, which stable meets.
  const slow = check(analysis, counts(9000, 0, 0.001), counts(3000, 0, 0, 0.03)).verdicts[0];
  assert.equal(slow?.verdict, 'fail');
  assert.match(slow.reason, /canary p99 [\d.]+ ms is above maxMs 400 ms, which stable meets \(canary between 500 ms and 1000 ms at 95 %, 3000 requests;/);
  // 57 requests: the p99 cannot be placed on either side of the bound.
  const thin = check(analysisWith((a) => (a.minRequests = 0)), counts(540, 0, 0.01), counts(57, 0, 0.02)).verdicts[1];
  assert.equal(thin?.verdict, 'inconclusive');
  assert.match(thin.reason, /canary p99 375 ms: not enough to judge against maxMs 500 ms \(canary above 25 ms at 95 %, 57 requests;/);
});

test('the confidence is a setting: 0.95 by default, and a lower one decides on less evidence', () => {
  assert.equal(analysisWith().confidence, 0.95);
  const thin = [counts(2700, 0), counts(120, 0)] as const;
  const errorsOnly = (confidence?: number): Analysis =>
    analysisWith((a) => {
      a.metrics = [{ name: 'error-rate', type: 'errorRate', max: 0.02 }];
      if (confidence !== undefined) a.confidence = confidence;
    });
  assert.equal(check(errorsOnly(), ...thin).verdicts[0]?.verdict, 'inconclusive'); // at most 2.47 %
  assert.equal(check(errorsOnly(0.9), ...thin).verdicts[0]?.verdict, 'pass'); // at most 1.90 %
  for (const bad of [0.4, 1]) {
    const manifest = istioManifest();
    manifest.spec.analysis.confidence = bad;
    assert.equal(checkModelCanary(manifest).ok, false, `confidence ${bad}`);
  }
});

test('a pass on carried requests counts every interval it judged toward checksPerStep', () => {
  const analysis = analysisWith((a) => (a.checksPerStep = 4));
  const few: Observation = { sinceLastCheck: { stable: { kind: 'counts', counts: counts(1350, 1) }, canary: { kind: 'counts', counts: counts(150, 0) } }, custom: {} };
  let state = startState();
  const decisions: Decision[] = [];
  for (let i = 0; i < 4; i++) {
    const d = decide(analysis, state, few);
    decisions.push(d);
    state = d.state;
  }
  // 150 requests cannot bound a p99; 300 can. Two pairs of intervals make the four checks of the step.
  assert.deepEqual(decisions.map((d) => d.action), ['hold', 'hold', 'hold', 'advance']);
  assert.match(decisions[1]?.reason ?? '', /all checks passed \(2 of 4 at 10 %, judging 2 intervals together\)/);
  assert.match(decisions[3]?.reason ?? '', /all checks passed at 10 %: advancing to 30 % \(judging 2 intervals together\)/);
  // A store that keeps the carried counts but not how many checks they hold is credited for two, never more.
  const first = decisions[0];
  assert.ok(first !== undefined);
  const forgetful = decide(analysis, { ...first.state, carriedChecks: undefined }, few);
  assert.equal(forgetful.state.passedChecks, 2);
});
