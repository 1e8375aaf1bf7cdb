import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelcanary } from './helpers/cli.ts';

const CANARY = 'examples/scenarios/canary.yaml';


const scratch = mkdtempSync(join(tmpdir(), 'modelcanary-simulate-'));
after(() => {
  rmSync(scratch, { recursive: true, force: true });
});

test('simulate prints a timeline that ends in the outcome, and exits 0 whatever the outcome', async () => {
  const run = await modelcanary(['simulate', '--canary', CANARY, '--scenario', 'examples/scenarios/error-spike-at-10.yaml']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^scenario error-spike-at-10 · seed 1 · ModelCanary ml-serving\/fraud-detector$/m);
  assert.match(run.stdout, /^ +10s +0 % +rollback +rolled back at once: error-rate: the sequential test finds the canary's 5xx rate above stable's/m);
  assert.match(run.stdout, /^outcome: rolled back at 10s, canary weight 0 %$/m);
});

test('--json has the documented keys, and --seed changes the draw but not the verdict', async () => {
  const runs = await Promise.all([1, 2].map((seed) => modelcanary(['simulate', '--canary', CANARY, '--scenario', 'examples/scenarios/healthy.yaml', '--json', '--seed', String(seed)])));
  const [one, two] = runs.map((r): any => JSON.parse(r.stdout));
  for (const key of ['scenario', 'seed', 'outcome', 'endedAtSeconds', 'finalWeight', 'requests', 'errors', 'timeline']) assert.ok(key in one, key);
  assert.equal(one.scenario, 'healthy');
  assert.equal(one.outcome, 'promoted');
  assert.equal(one.finalWeight, 100);
  assert.deepEqual(Object.keys(one.requests), ['stable', 'canary']);
  assert.deepEqual(Object.keys(one.timeline[0]).slice(0, 4), ['atSeconds', 'phase', 'weight', 'action']);
  assert.equal(one.timeline[0].phase, 'Progressing');
  assert.equal(typeof one.timeline[0].reason, 'string');
  assert.equal(two.seed, 2);
  assert.notDeepEqual(one.requests, two.requests);
  assert.equal(two.outcome, 'promoted');
});

test('--svg writes a chart', async () => {
  const out = join(scratch, 'chart.svg');
  const run = await modelcanary(['simulate', '--canary', CANARY, '--scenario', 'examples/scenarios/latency-regression.yaml', '--svg', out]);
  assert.equal(run.code, 0, run.stderr);
  const svg = readFileSync(out, 'utf8');
  assert.match(svg, /^<svg|^<\?xml/);
  assert.match(svg, /latency-regression/);
});

test('an invalid scenario exits 1 naming the field', async () => {
  const bad = join(scratch, 'bad.yaml');
  writeFileSync(bad, 'name: x\ndurationSeconds: 60\nrequestsPerSecond: 5\nstable: {errorRate: 0.001, latencyMs: {p50: 40, p99: 30}}\ncanary: {errorRate: 2, latencyMs: {p50: 40, p99: 180}}\n');
  const run = await modelcanary(['simulate', '--canary', CANARY, '--scenario', bad]);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /bad\.yaml: canary\.errorRate: must be at most 1/);
  assert.match(run.stderr, /bad\.yaml: stable\.latencyMs\.p99: p99 must be greater than p50/);
});

test('an invalid canary exits 1, an unreadable file exits 2', async () => {
  const invalid = await modelcanary(['simulate', '--canary', 'examples/invalid/fraud-detector-mistakes.yaml', '--scenario', 'examples/scenarios/healthy.yaml']);
  assert.equal(invalid.code, 1);
  assert.match(invalid.stderr, /spec\.analysis\.failureThresold: unknown field/);
  const missing = await modelcanary(['simulate', '--canary', CANARY, '--scenario', join(scratch, 'nope.yaml')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.yaml: cannot read: no such file \(check the path\)/);
  const usage = await modelcanary(['simulate', '--canary', CANARY]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--canary and --scenario are required/);
});

test('custom PromQL metrics are said to be left out of the simulation', async () => {
  const run = await modelcanary(['simulate', '--canary', 'examples/chat-llm-vllm.yaml', '--scenario', 'examples/scenarios/healthy.yaml']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^not simulated \(custom PromQL, outlier ejections, LLM presets without the scenario's ttftMs or interTokenMs\): ttft-p95$/m);
  // The LLM presets of a chat model are left out against a scenario that gives no streaming latencies.
  const presets = await modelcanary(['simulate', '--canary', LLM_CANARY, '--scenario', 'examples/scenarios/healthy.yaml']);
  assert.match(presets.stdout, /^not simulated \(.*\): ttft-p95, itl-p95, e2e-p90$/m);
});

const LLM_CANARY = 'examples/chat-llm-presets.yaml';

test('an LLM whose time to first token regressed is rolled back on TTFT, with both versions\' bounds, while 5xx and inter-token latency pass', async () => {
  const run = await modelcanary(['simulate', '--canary', LLM_CANARY, '--scenario', 'examples/scenarios/llm/ttft-regression.yaml', '--json']);
  assert.equal(run.code, 0, run.stderr);
  const result = JSON.parse(run.stdout);
  assert.equal(result.outcome, 'rolledBack');
  assert.equal(result.finalWeight, 0);
  assert.deepEqual(result.skippedMetrics, []);
  const last = result.timeline.at(-1);
  assert.match(last.reason, /^rolled back at once: ttft-p95: /);
  const verdict = (name: string): { verdict: string; reason: string; interval?: { canary: { low: number } } } => last.verdicts.find((v: { name: string }) => v.name === name);
  assert.equal(verdict('ttft-p95').verdict, 'fail');
  assert.match(verdict('ttft-p95').reason, /canary TTFT p95 \d+ ms is above maxMs 1000 ms, which stable meets \(canary between 1000 ms and/);
  assert.ok((verdict('ttft-p95').interval?.canary.low ?? 0) >= 1000, "the canary's whole range is beyond 1 s");
  assert.notEqual(verdict('itl-p95').verdict, 'fail');
  assert.notEqual(verdict('error-rate').verdict, 'fail');
  // Within two checks at 10 %: users got slow first tokens for a minute at most.
  assert.ok(result.endedAtSeconds <= 90, `rolled back at ${result.endedAtSeconds} s`);

  const text = await modelcanary(['simulate', '--canary', LLM_CANARY, '--scenario', 'examples/scenarios/llm/ttft-regression.yaml']);
  assert.match(text.stdout, /^ {28}ttft-p95 fail: canary between 1000 ms and [\d.]+ m?s, stable between [\d.]+ ms and [\d.]+ ms \(95 %\)$/m);
});

// More seeds: test/scenarios.test.ts, in process.
test('a healthy LLM is promoted on TTFT, inter-token and end-to-end latency', async () => {
  const run = await modelcanary(['simulate', '--canary', LLM_CANARY, '--scenario', 'examples/scenarios/llm/healthy.yaml', '--json']);
  assert.equal(run.code, 0, run.stderr);
  const result = JSON.parse(run.stdout);
  assert.equal(result.outcome, 'promoted', result.timeline.at(-1)?.reason);
  assert.equal(result.finalWeight, 100);
  const judged = new Set(result.timeline.flatMap((e: { verdicts: { name: string }[] }) => e.verdicts.map((v) => v.name)));
  for (const name of ['ttft-p95', 'itl-p95', 'e2e-p90']) assert.ok(judged.has(name), `${name} was judged`);
});

test('simulate shows the interval behind each verdict, and says when stable breaks a bound too', async () => {
  const run = await modelcanary(['simulate', '--canary', CANARY, '--scenario', 'examples/scenarios/stable-breaks-error-bound.yaml']);
  assert.equal(run.code, 0, run.stderr);
  // Under each decision, one line per metric: its verdict and both versions' bounds at the confidence.
  assert.match(run.stdout, /^ {28}error-rate pass: canary between [\d.]+ % and [\d.]+ %, stable between [\d.]+ % and [\d.]+ % \(95 %\) · stable breaks this bound too$/m);
  assert.match(run.stdout, /^ {28}p99 inconclusive: canary above 100 ms, stable between 100 ms and 250 ms \(95 %\)$/m);
  assert.match(run.stdout, /^ +\d+m?\d*s? +10 % +hold +all checks passed \(\d of 4 at 10 %, judging \d intervals together; stable breaks a bound too: error-rate\)$/m);
  assert.match(run.stdout, /^outcome: promoted at /m);
  const json = await modelcanary(['simulate', '--canary', CANARY, '--scenario', 'examples/scenarios/stable-breaks-error-bound.yaml', '--json']);
  const verdict = JSON.parse(json.stdout).timeline[0].verdicts.find((v: { name: string }) => v.name === 'error-rate');
  assert.equal(verdict.interval.confidence, 0.95);
  assert.deepEqual(Object.keys(verdict.interval.canary), ['low', 'high']);
  assert.match(verdict.warning, /^stable breaks this bound too: max 2\.00 %/);
});
