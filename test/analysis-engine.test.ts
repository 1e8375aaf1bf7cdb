import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Analysis } from '../src/api/modelcanary.ts';
import { decide, startState, watch, type AnalysisState, type Decision } from '../src/analysis/engine.ts';
import { fromBucketCounts, ISTIO_BUCKETS_MS } from '../src/analysis/histogram.ts';
import type { Counts, Observation, Sample } from '../src/api/observation.ts';
import { testOf } from '../src/api/status.ts';
import { parsedAnalysis } from './helpers/manifests.ts';

/** The analysis of the base manifest, with edits, parsed as the controller would. */
function analysisWith(edit?: (analysis: Record<string, any>) => void): Analysis {
  return parsedAnalysis([
    { name: 'error-rate', type: 'errorRate', max: 0.02 },
    { name: 'p99', type: 'latency', quantile: 0.99, maxMs: 500, maxRatioToStable: 1.5 },
  ], edit);
}

/** Counts with all latency in one bucket (bound in ms). */
function counts(requests: number, errors: number, latencyBucketMs = 100): Counts {
  const perBucket = [...ISTIO_BUCKETS_MS, Infinity].map((b) => (b === latencyBucketMs ? requests : 0));
  return { requests, errors, latency: fromBucketCounts(ISTIO_BUCKETS_MS, perBucket) };
}

function observation(stable: Counts | Sample, canary: Counts | Sample, custom: Observation['custom'] = {}): Observation {
  const sample = (c: Counts | Sample): Sample => ('kind' in c ? c : { kind: 'counts', counts: c });
  return { sinceLastCheck: { stable: sample(stable), canary: sample(canary) }, custom };
}

const healthy = observation(counts(9000, 9), counts(1000, 1));

function run(analysis: Analysis, observations: Observation[], state: AnalysisState = startState()): Decision[] {
  const decisions: Decision[] = [];
  for (const o of observations) {
    const d = decide(analysis, state, o);
    decisions.push(d);
    state = d.state;
  }
  return decisions;
}

test('passing checks walk the steps and promote at the last', () => {
  const analysis = analysisWith((a) => (a.steps = [10, 30, 60, 100]));
  const decisions = run(analysis, [healthy, healthy, healthy]);
  assert.deepEqual(decisions.map((d) => [d.action, d.weight]), [['advance', 30], ['advance', 60], ['promote', 100]]);
  assert.match(decisions[0]?.reason ?? '', /all checks passed at 10 %: advancing to 30 %/);
});

test('checksPerStep passing checks are needed before the weight moves', () => {
  const decisions = run(analysisWith((a) => (a.checksPerStep = 3)), [healthy, healthy, healthy]);
  assert.deepEqual(decisions.map((d) => d.action), ['hold', 'hold', 'advance']);
  assert.match(decisions[1]?.reason ?? '', /2 of 3 at 10 %/);
});

test('failed checks count over the rollout and roll back at failureThreshold', () => {
  const analysis = analysisWith((a) => {
    a.failureThreshold = 2;
    a.sequentialTest = { enabled: false };
  });
  const bad = observation(counts(9000, 9), counts(1000, 30)); // 3 %: above max 2 %, below the 3× spike
  const decisions = run(analysis, [bad, healthy, bad]);
  assert.deepEqual(decisions.map((d) => d.action), ['hold', 'advance', 'rollback']);
  assert.equal(decisions[2]?.weight, 0);
  assert.match(decisions[2].reason, /2 failed checks reached failureThreshold 2: error-rate: canary 5xx ratio 3\.0+ % is above max 2\.0+ %, which stable meets \(canary 30 of 1000, between 2\.17 % and 4\.05 % at 95 %; stable 0\.10 %, 9 of 9000/);
});

test('a spike far beyond both the bound and stable rolls back at once', () => {
  const analysis = analysisWith((a) => (a.sequentialTest = { enabled: false }));
  const [decision] = run(analysis, [observation(counts(9000, 9), counts(1000, 200))]);
  assert.equal(decision?.action, 'rollback');
  assert.match(decision.reason, /rolled back at once: error-rate: .*a spike: the canary's lower bound 17\.9 % is over 3× both max 2\.00 % and stable's upper bound 0\.17 %/);
  const latencySpike = run(analysis, [observation(counts(9000, 0, 100), counts(1000, 0, 5000))])[0];
  assert.equal(latencySpike?.action, 'rollback');
  assert.match(
    latencySpike.reason,
    /p99: canary p99 4975 ms is above maxMs 500 ms, which stable meets; .*\(canary between 2500 ms and 5000 ms at 95 %, 1000 requests; stable 99\.5 ms, .*\); a spike: the canary's lower bound 2500 ms is over 3× both its bound 150 ms and stable's upper bound 100 ms/,
  );
});

test('a spike needs evidence: 2 errors in 57 requests fail nothing at once', () => {
  // The case: a handful of requests is not a spike, however high the ratio looks.
  const analysis = analysisWith((a) => {
    a.minRequests = 0;
    a.sequentialTest = { enabled: false };
  });
  const [decision] = run(analysis, [observation(counts(540, 1), counts(57, 2))]);
  assert.equal(decision?.action, 'hold');
  assert.equal(decision.verdicts[0]?.verdict, 'inconclusive');
  assert.match(decision.reason, /canary 5xx ratio 3\.51 %: not enough to judge against max 2\.00 % \(canary 2 of 57, between 0\.63 % and 10\.6 % at 95 %/);
});

test('too few requests is inconclusive: it holds, never promotes, and adds up with the next check', () => {
  const analysis = analysisWith((a) => {
    a.inconclusiveLimit = 2;
    a.metrics = [{ name: 'error-rate', type: 'errorRate', max: 0.02 }];
  });
  const few = observation(counts(810, 0), counts(90, 0));
  const decisions = run(analysis, [few, few]);
  assert.deepEqual(decisions.map((d) => d.action), ['hold', 'advance']);
  assert.match(decisions[0]?.reason ?? '', /canary served 90 requests in the window, fewer than minRequests \(100\)/);
  assert.equal(decisions[0]?.inconclusiveAlarm, false);
  // 90 + 90 canary requests without a 5xx: enough together to be sure of at most 1.65 %, judged together.
  assert.match(decisions[1]?.reason ?? '', /all checks passed at 10 %: advancing to 30 % \(judging 2 intervals together\)/);
  assert.match(decisions[1]?.verdicts[0]?.reason ?? '', /canary 0 of 180, at most 1\.65 % at 95 %/);
});

test('no data and unmeasurable checks hold, raise the alarm after inconclusiveLimit, and are no failure of the model', () => {
  const analysis = analysisWith((a) => (a.inconclusiveLimit = 3));
  const down = observation({ kind: 'error', message: 'Prometheus: connect ECONNREFUSED' }, { kind: 'error', message: 'Prometheus: connect ECONNREFUSED' });
  const decisions = run(analysis, [down, down, down, down]);
  assert.deepEqual(decisions.map((d) => d.action), ['hold', 'hold', 'hold', 'hold']);
  assert.deepEqual(decisions.map((d) => d.inconclusiveAlarm), [false, false, true, true]);
  assert.equal(decisions.at(-1)?.state.failedChecks, 0);
  assert.match(decisions[0]?.reason ?? '', /could not measure canary: Prometheus: connect ECONNREFUSED/);
  assert.equal(decisions[0]?.verdicts[0]?.verdict, 'error');
  const empty = run(analysis, [observation({ kind: 'noData', reason: 'empty vector' }, { kind: 'noData', reason: 'empty vector' })])[0];
  assert.equal(empty?.verdicts[0]?.verdict, 'inconclusive');
});

test('Flagger-like policy: an inconclusive check counts as failed', () => {
  const analysis = analysisWith((a) => (a.failureThreshold = 1));
  const decision = decide(analysis, startState(), observation(counts(0, 0), counts(0, 0)), { inconclusiveIsFailure: true });
  assert.equal(decision.action, 'rollback');
});

test('the sequential test rolls back a doubled error rate that stays under the threshold', () => {
  const analysis = analysisWith();
  // 1 % vs 0.5 %: under max 2 %, never a threshold failure.
  const worse = observation(counts(9000, 45), counts(1000, 10));
  const decisions: Decision[] = [];
  let state = startState();
  for (let i = 0; i < 20 && decisions.at(-1)?.action !== 'rollback'; i++) {
    const d = decide(analysis, { ...state, stepIndex: 0 }, worse);
    decisions.push(d);
    state = d.state;
  }
  assert.equal(decisions.at(-1)?.action, 'rollback');
  assert.match(decisions.at(-1)?.reason ?? '', /the sequential test finds the canary's 5xx rate above stable's: likelihood ratio [\d.e+]+ ≥ 100/);
  assert.ok(decisions.length <= 12, `took ${decisions.length} checks`);
});

test('watch() between checks rolls back on sequential evidence, and decide() does not count those requests twice', () => {
  const analysis = analysisWith();
  const spike = { stable: counts(3000, 3), canary: counts(330, 60) };
  const watched = watch(analysis, startState(), spike);
  assert.equal(watched.rollback?.action, 'rollback');
  assert.match(watched.rollback.reason, /rolled back at once: error-rate: the sequential test/);
  const quiet = watch(analysis, startState(), { stable: counts(3000, 3), canary: counts(330, 0) });
  assert.equal(quiet.rollback, undefined);
  const before = quiet.state.evidence.find((e) => e.metric === 'error-rate');
  const after = decide(analysis, quiet.state, { ...healthy, sinceLastWatch: { stable: { kind: 'counts', counts: counts(0, 0) }, canary: { kind: 'counts', counts: counts(0, 0) } } })
    .state.evidence.find((e) => e.metric === 'error-rate');
  assert.deepEqual(after, before);
});

test('custom metrics: bounds, ratios to stable, and no data', () => {
  const analysis = analysisWith((a) => {
    a.metrics = [{ name: 'ttft', type: 'prometheus', query: 'x{v="{{ version }}"}', max: 2.5, maxRatioToStable: 1.2 }];
  });
  const value = (v: number): Sample => ({ kind: 'value', value: v });
  const check = (stable: Sample, canary: Sample): Decision => decide(analysis, startState(), observation(counts(9000, 0), counts(1000, 0), { ttft: { stable, canary } }));
  assert.equal(check(value(1.0), value(1.1)).action, 'advance');
  assert.match(check(value(1.0), value(1.5)).reason, /ttft: canary 1\.5, stable 1: 1\.5× stable, above maxRatioToStable 1\.2/);
  assert.match(check(value(2.4), value(2.7)).reason, /above max 2\.5/);
  // Stable breaks max too: the bound is left to the comparison with stable (within 1.2×), with a warning.
  const both = check(value(2.6), value(2.7));
  assert.equal(both.action, 'advance');
  assert.deepEqual(both.warnings.map((w) => w.metric), ['ttft']);
  assert.match(both.warnings[0]?.reason ?? '', /stable breaks this bound too: max 2\.5, stable 2\.6, canary 2\.7/);
  assert.equal(check(value(1), { kind: 'value', value: NaN }).verdicts[0]?.verdict, 'inconclusive');
  assert.equal(check({ kind: 'noData', reason: 'empty vector' }, value(1)).action, 'hold');
});

test("the evidence kept in status is whole requests, even from increase()'s fractional bucket counts", () => {
  // increase() extrapolates to the window's edges: 1.0167 × the counts, as Prometheus answers them.
  const scaled = (c: Counts): Counts => ({ ...c, latency: c.latency && { bounds: c.latency.bounds, cumulative: c.latency.cumulative.map((n) => n * 1.0167) } });
  const spread = (requests: number, slowShare: number): Counts => {
    const perBucket = [...ISTIO_BUCKETS_MS, Infinity].map((b) => (b === 50 ? requests * (1 - slowShare) : b === 250 ? requests * slowShare : 0));
    return { requests, errors: 0, latency: fromBucketCounts(ISTIO_BUCKETS_MS, perBucket) };
  };
  const decisions = run(analysisWith(), [0, 1, 2].map(() => observation(scaled(spread(5400, 0.03)), scaled(spread(600, 0.05)))));
  const evidence = decisions.flatMap((d) => d.state.evidence.flatMap((e) => testOf(e) ?? []));
  assert.ok(evidence.some((e) => e.events === 'slowRequests' && e.canaryEvents > 0), 'slow requests were counted');
  for (const e of evidence) {
    assert.ok(Number.isInteger(e.canaryEvents) && Number.isInteger(e.stableEvents), `${e.metric} ${e.events}: ${e.canaryEvents} / ${e.stableEvents}`);
  }
});
