import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulate } from '../src/analysis/simulator.ts';
import { EXPECTED, loadScenarios, recommended } from '../bench/scenarios.ts';

// Each scenario of examples/scenarios, run with the recommended settings over several seeds:
// the outcome a user of the controller must get. (npm run bench runs 50 seeds and compares
// with a Flagger-like rule.)
const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];
const OUTCOME = { promote: 'promoted', rollback: 'rolledBack', none: 'timeout' } as const;
const policy = recommended();

for (const scenario of loadScenarios()) {
  const expected = EXPECTED[scenario.name];
  test(`scenario ${scenario.name}: ${expected ?? 'unknown'} over ${SEEDS.length} seeds`, () => {
    assert.ok(expected !== undefined, `bench/scenarios.ts has no expected outcome for ${scenario.name}`);
    for (const seed of SEEDS) {
      const result = simulate(policy.spec, scenario, { seed });
      assert.equal(result.outcome, OUTCOME[expected], `seed ${seed}: ${result.timeline.at(-1)?.reason ?? 'no decision'}`);
      if (expected === 'rollback') assert.equal(result.finalWeight, 0);
      if (expected === 'promote') assert.equal(result.finalWeight, 100);
    }
  });
}

test('the suite covers the scenarios the design asks for', () => {
  assert.deepEqual(loadScenarios().map((s) => s.name).sort(), [
    'broken-at-trickle',
    'bursty',
    'error-spike-at-10',
    'errors-after-30',
    'healthy',
    'heavy-tail-near-bound',
    'latency-regression',
    'low-traffic',
    'no-data',
    'noisy-stable',
    'small-error-regression',
    'stable-breaks-error-bound',
    'tail-regression',
    'trickle',
  ]);
});

function scenario(name: string): ReturnType<typeof loadScenarios>[number] {
  const found = loadScenarios().find((s) => s.name === name);
  assert.ok(found !== undefined, `no scenario ${name}`);
  return found;
}

test('a bound that stable breaks too does not fail the canary: it is promoted, and every pass says so', () => {
  for (const seed of SEEDS.slice(0, 4)) {
    const result = simulate(policy.spec, scenario('stable-breaks-error-bound'), { seed });
    assert.equal(result.outcome, 'promoted');
    const passes = result.timeline.filter((e) => e.verdicts.find((v) => v.name === 'error-rate')?.verdict === 'pass');
    assert.ok(passes.length > 0);
    for (const entry of passes) {
      assert.match(entry.verdicts.find((v) => v.name === 'error-rate')?.warning ?? '', /^stable breaks this bound too: max 2\.00 % \(stable's 5xx ratio between [\d.]+ % and [\d.]+ % at 95 %/);
    }
  }
});

test('at trickle traffic no check fails a healthy canary, and every verdict carries its interval', () => {
  for (const seed of SEEDS.slice(0, 4)) {
    const result = simulate(policy.spec, scenario('trickle'), { seed });
    assert.equal(result.outcome, 'promoted');
    const verdicts = result.timeline.flatMap((e) => e.verdicts);
    assert.ok(verdicts.every((v) => v.verdict !== 'fail'), `seed ${seed}: a check failed`);
    for (const v of verdicts.filter((v) => v.verdict === 'pass' || v.verdict === 'inconclusive')) {
      if (v.reason.includes('minRequests')) continue;
      assert.equal(v.interval?.confidence, 0.95, `${v.name}: ${v.reason}`);
    }
  }
});

test('a bad canary is caught before it reaches the next step', () => {
  const spike = loadScenarios().find((s) => s.name === 'error-spike-at-10');
  assert.ok(spike !== undefined);
  for (const seed of SEEDS) {
    const result = simulate(policy.spec, spike, { seed });
    assert.ok(result.timeline.every((e) => e.action !== 'advance'), `seed ${seed} advanced`);
  }
});

test('the same seed gives the same rollout; another seed, another one', () => {
  const [scenario] = loadScenarios();
  assert.ok(scenario !== undefined);
  assert.deepEqual(simulate(policy.spec, scenario, { seed: 9 }), simulate(policy.spec, scenario, { seed: 9 }));
  assert.notDeepEqual(simulate(policy.spec, scenario, { seed: 9 }).requests, simulate(policy.spec, scenario, { seed: 10 }).requests);
});
