import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulate } from '../src/analysis/simulator.ts';
import { EXPECTED, loadScenarios, recommended } from '../bench/scenarios.ts';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { Scenario } from '../src/api/scenario.ts';
import type { ModelCanarySpec } from '../src/api/modelcanary.ts';
import { checkAgainst, checkModelCanary } from '../src/api/validate.ts';

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

// The LLM scenarios (examples/scenarios/llm) with the chat model's presets (examples/chat-llm-presets.yaml):
// judged on TTFT, inter-token and end-to-end latency drawn over vLLM's own buckets.
function llmScenario(file: string): Scenario {
  const checked = checkAgainst(Scenario, parse(readFileSync(new URL(`../examples/scenarios/llm/${file}`, import.meta.url), 'utf8')));
  assert.ok(checked.ok, JSON.stringify(checked.ok ? '' : checked.problems));
  return checked.value;
}

function llmCanary(): ModelCanarySpec {
  const checked = checkModelCanary(parse(readFileSync(new URL('../examples/chat-llm-presets.yaml', import.meta.url), 'utf8')));
  assert.ok(checked.ok, JSON.stringify(checked.ok ? '' : checked.problems));
  return checked.value.spec;
}

test('an LLM: a healthy version is promoted and a TTFT regression rolled back on TTFT, over 8 seeds, never failing a healthy check', () => {
  const spec = llmCanary();
  for (const seed of SEEDS) {
    const healthy = simulate(spec, llmScenario('healthy.yaml'), { seed });
    assert.equal(healthy.outcome, 'promoted', `seed ${seed}: ${healthy.timeline.at(-1)?.reason ?? ''}`);
    assert.ok(healthy.timeline.every((e) => e.verdicts.every((v) => v.verdict !== 'fail')), `seed ${seed}: a healthy check failed`);
    const regressed = simulate(spec, llmScenario('ttft-regression.yaml'), { seed });
    assert.equal(regressed.outcome, 'rolledBack', `seed ${seed}`);
    const last = regressed.timeline.at(-1);
    assert.equal(last?.verdicts.find((v) => v.name === 'ttft-p95')?.verdict, 'fail', last?.reason);
    assert.equal(last.weight, 0);
    assert.ok(regressed.timeline.every((e) => e.weight <= 10), `seed ${seed}: the regression reached the next step`);
  }
});
