// The status a person reads and a restarted controller resumes from: the sequential test's
// evidence and the watch mark's bucket counters kept as one short string each, exactly; a
// status written by modelcanary 0.1 (long arrays) still read; every metric's numbers and bound
// in the last analysis, whatever decided; the step as kubectl prints it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import type { Analysis } from '../src/api/modelcanary.ts';
import { checkModelCanary } from '../src/api/validate.ts';
import { bucketsOf, bucketsText, evidenceOf, ModelCanaryStatus, testOf, type Evidence, type SequentialTestState } from '../src/api/status.ts';
import { logMixture } from '../src/analysis/sequential.ts';
import { decide, startState, watch, watchWorthKeeping } from '../src/analysis/engine.ts';
import { fromBucketCounts, ISTIO_BUCKETS_MS } from '../src/analysis/histogram.ts';
import { seeded } from '../src/analysis/random.ts';
import type { Counts, Observation } from '../src/api/observation.ts';
import { analysisStateOf, markOf, sinceMark, startingStatus, statusAfter } from '../src/controller/rollout-status.ts';
import { istioManifest, parsedAnalysis } from './helpers/manifests.ts';

/**
 * The status of a rollback as modelcanary 0.1 wrote it on a real API server (the demo's
 * recommender, read back with kubectl get -o json; conditions left out): evidence[].logRatios
 * and watchMark latency arrays.
 */
const LEGACY = {
  canaryVersion: 'v8',
  canaryWeight: 0,
  currentStep: 1,
  evidence: [
    { canaryEvents: 8, events: 'errors', logRatios: [1.2994999324256669, 2.299105587091023, 3.7516399745402924, 5.51687833819273, 7.2446089186192015, 8.734766177263285, 9.514547536896332], metric: 'error-rate', stableEvents: 1 },
    {
      boundMs: 50,
      canaryEvents: 55,
      events: 'slowRequests',
      logRatios: [-2.0585961542478106, -5.918970801185542, -16.66338523817505, -43.331257670435825, -100.25076153685723, -226.34758786012785, -541.8481072486504],
      metric: 'p95',
      quantile: 0.5,
      stableEvents: 452,
    },
    {
      boundMs: 100,
      canaryEvents: 0,
      events: 'slowRequests',
      logRatios: [-0.3118369262333287, -0.6139531021428433, -1.1917053862409013, -2.2561234973070214, -4.102957637898303, -7.668102615164495, -15.825159813630535],
      metric: 'p95',
      quantile: 0.95,
      stableEvents: 11,
    },
  ],
  failedChecks: 1,
  inconclusiveChecks: 0,
  lastAnalysis: {
    decision: 'rollback',
    judgedAt: '2026-11-26T23:10:47.044Z',
    metrics: [{ canary: 0.22580645161290322, name: 'error-rate', reason: 'the sequential test finds the canary\'s 5xx rate above stable\'s', stable: 0, verdict: 'fail' }],
    reason: 'rolled back at once: error-rate: the sequential test finds the canary\'s 5xx rate above stable\'s',
    time: '2026-11-26T23:10:46.000Z',
  },
  message: 'rolled back at once',
  observedGeneration: 1,
  passedChecks: 0,
  phase: 'RolledBack',
  route: { kind: 'VirtualService', name: 'recommender' },
  stableVersion: 'v7',
  stepStartedAt: '2026-11-26T23:10:47.044Z',
  watchMark: {
    canary: {
      errors: 8,
      latency: { bounds: [...ISTIO_BUCKETS_MS], cumulative: [0, 0, 0, 0, 2, 147, 204, 204, 204, 204, 204, 204, 204, 204, 204, 204, 204, 204, 204, 204] },
      requests: 204,
    },
    stable: {
      errors: 1,
      latency: { bounds: [...ISTIO_BUCKETS_MS], cumulative: [0, 0, 0, 0, 33, 1354, 2024, 2085, 2093, 2093, 2093, 2093, 2093, 2093, 2093, 2093, 2093, 2093, 2093, 2093] },
      requests: 2093,
    },
    time: '2026-11-26T23:10:46.000Z',
  },
};

function analysisWith(edit?: (analysis: Record<string, any>) => void): Analysis {
  return parsedAnalysis([
    { name: 'error-rate', type: 'errorRate', max: 0.02 },
    { name: 'p95', type: 'latency', quantile: 0.95, maxMs: 250, maxRatioToStable: 1.5 },
  ], edit);
}

/** Counts with `share` of the requests in the 250 ms bucket, the rest in the 50 ms one. */
function counts(requests: number, errors: number, share = 0): Counts {
  const perBucket = [...ISTIO_BUCKETS_MS, Infinity].map((b) => (b === 50 ? requests * (1 - share) : b === 250 ? requests * share : 0));
  return { requests, errors, latency: fromBucketCounts(ISTIO_BUCKETS_MS, perBucket) };
}

function observed(stable: Counts, canary: Counts): Observation {
  return { sinceLastCheck: { stable: { kind: 'counts', counts: stable }, canary: { kind: 'counts', counts: canary } }, custom: {} };
}

/** Through JSON and the status schema, as a status goes to the API server and comes back. */
function stored(status: unknown): ModelCanaryStatus {
  return ModelCanaryStatus.parse(JSON.parse(JSON.stringify(status)));
}

test('a test kept in status comes back bit for bit: log ratios of any size and sign, quantile and bound', () => {
  const random = seeded(21);
  const cases: SequentialTestState[] = [
    { metric: 'error-rate', events: 'errors', logRatios: [0, -0, 1e-300, -541.8481072486504, 9.514547536896332, Number.MIN_VALUE, 1 / 3], canaryEvents: 8, stableEvents: 1 },
    { metric: 'p95', events: 'slowRequests', quantile: 0.95, boundMs: 0.5, logRatios: [], canaryEvents: 0, stableEvents: 0 },
    { metric: 'p99', events: 'slowRequests', quantile: 0.999, boundMs: 3600000, logRatios: Array.from({ length: 7 }, () => (random.next() - 0.5) * 10 ** (random.next() * 12)), canaryEvents: 12345678, stableEvents: 3 },
  ];
  for (const c of cases) {
    const evidence = stored({ evidence: [evidenceOf(c)] }).evidence?.[0];
    assert.ok(evidence?.test !== undefined && evidence.test.startsWith('v1;'), 'versioned');
    assert.ok((evidence.test ?? '').length <= 120, `one short line: ${evidence.test}`);
    const back = testOf(evidence);
    assert.ok(back !== undefined);
    assert.deepEqual(back, { ...c, quantile: c.quantile, boundMs: c.boundMs });
    back.logRatios.forEach((x, i) => {
      assert.ok(Object.is(x, c.logRatios[i]), `${x} is ${String(c.logRatios[i])} exactly`);
    });
  }
});

test('bucket counters kept in status come back exactly, Istio bounds or not, fractional counts too', () => {
  const cases = [
    { bounds: [...ISTIO_BUCKETS_MS], cumulative: [0, 0, 0, 0, 33, 1354, 2024, 2085, 2093, 2093, 2093, 2093, 2093, 2093, 2093, 2093, 2093, 2093, 2093, 2093] },
    { bounds: [5, 10, 2.5e6], cumulative: [1000.0000001, 1016.7, 1016.7, 1016.7] },
    { bounds: [...ISTIO_BUCKETS_MS], cumulative: ISTIO_BUCKETS_MS.map(() => 0).concat(0) },
  ];
  for (const c of cases) {
    const text = bucketsText(c);
    assert.ok(text.length <= 80, text);
    assert.deepEqual(bucketsOf(text), c);
  }
  assert.equal(bucketsText(cases[0] ?? { bounds: [], cumulative: [] }), 'v1;istio;0*4,33,1354,2024,2085,2093*12');
  for (const bad of ['v2;istio;1*20', 'v1;istio;1*19', 'v1;1,2;3,4', 'v1;istio;x*20']) assert.equal(bucketsOf(bad), undefined, bad);
});

test('a status written by modelcanary 0.1 parses, and the controller goes on from it exactly as from the status it writes now', () => {
  const legacy = stored(LEGACY);
  const analysis = analysisWith();
  const state = analysisStateOf(legacy);
  assert.deepEqual(state.evidence.map((e) => testOf(e)?.logRatios), LEGACY.evidence.map((e) => e.logRatios), 'every log ratio read');
  // The same rollout, written in the new format: an identity decision (nothing new) rewrites it.
  const rewritten = stored(statusAfter(decide(analysis, state, observed(counts(0, 0), counts(0, 0))), legacy, 1, new Date(), new Date()));
  assert.ok(rewritten.evidence?.every((e) => e.test !== undefined && e.logRatios === undefined), 'written compact');
  const next = observed(counts(3000, 3, 0.04), counts(300, 9, 0.06));
  const fromLegacy = decide(analysis, state, next);
  const fromNew = decide(analysis, analysisStateOf(rewritten), next);
  assert.deepEqual(fromNew.state.evidence, fromLegacy.state.evidence);
  assert.equal(fromNew.reason, fromLegacy.reason);
  // The watch mark, either way: the same requests since.
  const totals = { stable: counts(2593, 2, 0.01), canary: { ...counts(254, 9), latency: { bounds: ISTIO_BUCKETS_MS, cumulative: [0, 0, 0, 0, 2, 197, 254, 254, 254, 254, 254, 254, 254, 254, 254, 254, 254, 254, 254, 254] } } };
  const newMark = stored({ watchMark: markOf({ stable: countsFromLegacy(LEGACY.watchMark.stable), canary: countsFromLegacy(LEGACY.watchMark.canary) }, new Date(LEGACY.watchMark.time)) }).watchMark;
  assert.ok(legacy.watchMark !== undefined && newMark !== undefined);
  assert.deepEqual(sinceMark(newMark, totals), sinceMark(legacy.watchMark, totals));
  assert.deepEqual(newMark.canary, { requests: 204, errors: 8, buckets: 'v1;istio;0*4,2,147,204*14' });
});

function countsFromLegacy(c: { requests: number; errors: number; latency: { bounds: number[]; cumulative: number[] } }): Counts {
  return { requests: c.requests, errors: c.errors, latency: c.latency };
}

test('kept compact, the status of a latency rollout is a fraction of what it was, as YAML lines', () => {
  const legacy = stored(LEGACY);
  const analysis = analysisWith();
  const now = stored({ ...statusAfter(decide(analysis, analysisStateOf(legacy), observed(counts(0, 0), counts(0, 0))), legacy, 1, new Date(), new Date()), watchMark: markOf(
    { stable: countsFromLegacy(LEGACY.watchMark.stable), canary: countsFromLegacy(LEGACY.watchMark.canary) },
    new Date(LEGACY.watchMark.time),
  ) });
  const lines = (x: unknown): number => stringify(x).trim().split('\n').length;
  assert.ok(lines({ evidence: legacy.evidence, watchMark: legacy.watchMark }) > 120);
  assert.ok(lines({ evidence: now.evidence, watchMark: now.watchMark }) <= 25, stringify({ evidence: now.evidence, watchMark: now.watchMark }));
});

test('a rollback between checks shows every metric with its numbers and its bound, and keeps the last check\'s verdict of the metrics it did not judge', () => {
  const analysis = analysisWith((a) => {
    a.steps = [10, 30, 100];
  });
  const started = startingStatus({}, { spec: { ...checkedSpec(analysis) }, generation: 1, route: { kind: 'VirtualService', name: 'fraud-detector' }, retry: undefined, now: new Date('2026-11-26T12:00:00Z') });
  assert.equal(started.stepLabel, '1/3');
  const checked = decide(analysis, analysisStateOf(started), observed(counts(9000, 9, 0.01), counts(1000, 1, 0.01)));
  const afterCheck = stored(statusAfter(checked, started, 1, new Date('2026-11-26T12:00:30Z'), new Date('2026-11-26T12:00:30Z')));
  assert.equal(afterCheck.stepLabel, checked.action === 'advance' ? '2/3' : '1/3');
  const watched = watch(analysis, analysisStateOf(afterCheck), { stable: counts(3000, 3, 0.01), canary: counts(330, 60, 0.01) });
  assert.ok(watched.rollback !== undefined);
  assert.deepEqual(watched.rollback.verdicts.map((v) => v.name), ['error-rate'], 'metrics and notifications count only what was judged');
  const rolledBack = stored(statusAfter(watched.rollback, afterCheck, 1, new Date('2026-11-26T12:00:40Z'), new Date('2026-11-26T12:00:40Z')));
  const metrics = rolledBack.lastAnalysis?.metrics ?? [];
  assert.deepEqual(metrics.map((m) => [m.name, m.verdict, m.bound]), [
    ['error-rate', 'fail', '≤ 2.00 %'],
    ['p95', afterCheck.lastAnalysis?.metrics.find((m) => m.name === 'p95')?.verdict, 'p95 ≤ 250 ms, ≤ 1.5× stable'],
  ]);
  for (const m of metrics) assert.ok(typeof m.stable === 'number' && typeof m.canary === 'number', `${m.name}: ${String(m.stable)} / ${String(m.canary)}`);
  assert.equal(metrics[0]?.canary, 0.1818, 'the numbers of the requests that tipped the evidence (60 of 330), to four digits');
  assert.match(metrics[1]?.reason ?? '', /not judged between checks.*at the last check: /);
  assert.equal(rolledBack.stepLabel, afterCheck.stepLabel, 'the step it was rolled back at');
});

function checkedSpec(analysis: Analysis): ReturnType<typeof specOf> {
  return { ...specOf(), analysis };
}

function specOf() {
  const result = checkModelCanary(istioManifest());
  assert.ok(result.ok);
  return result.value.spec;
}

test('a watch is worth a status write only when it moved the evidence: not for a look without events, however close to a rollback', () => {
  const analysis = analysisWith();
  // Evidence more than half-way (in log terms) to a rollback: 5xx on the canary only.
  const halfWay = Math.log(2 / analysis.sequentialTest.falseAlarmRate) / 2;
  const errors = (evidence: Evidence[]): number => logMixture(evidence.flatMap((e) => testOf(e) ?? []).find((t) => t.events === 'errors') ?? { logRatios: [], canaryEvents: 0, stableEvents: 0 });
  let state = startState();
  for (let i = 0; i < 20 && errors(state.evidence) < halfWay; i++) {
    const look = watch(analysis, state, { stable: counts(3000, 0), canary: counts(330, 1) });
    assert.equal(look.rollback, undefined);
    state = look.state;
  }
  assert.ok(errors(state.evidence) >= halfWay);
  const quiet = watch(analysis, state, { stable: counts(3000, 0), canary: counts(330, 0) });
  assert.equal(quiet.rollback, undefined);
  assert.equal(watchWorthKeeping(analysis, state.evidence, quiet.state.evidence), false, 'nothing counted: nothing to write');
  const more = watch(analysis, state, { stable: counts(3000, 0), canary: counts(330, 1) });
  if (more.rollback === undefined) assert.equal(watchWorthKeeping(analysis, state.evidence, more.state.evidence), true);
});
