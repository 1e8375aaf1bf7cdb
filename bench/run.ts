// Benchmarks, printed as tables: the cost of validating a ModelCanary, which the controller
// pays on every reconcile of every resource, and of generating the CRD; and the sequential
// test's false-alarm rate and detection speed on simulated counts (seeded, so repeatable).
// Run with `npm run bench`; figures depend on the machine, so each run prints its own.

import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseAllDocuments } from 'yaml';
import { checkModelCanary } from '../src/api/validate.ts';
import { modelCanaryCrd } from '../src/api/crd.ts';
import { sequentialTable } from './sequential.ts';
import { rolloutTable, runRollouts, targets } from './rollouts.ts';
import { prometheusTable } from './prometheus.ts';
import { loadScenarios, recommended } from './scenarios.ts';
import { simulate } from '../src/analysis/simulator.ts';

const examples = ['fraud-detector-istio.yaml', 'chat-llm-vllm.yaml', 'recommender-gateway-api.yaml'].flatMap((file) =>
  parseAllDocuments(readFileSync(new URL(`../examples/${file}`, import.meta.url), 'utf8'))
    .map((d) => d.toJS() as { kind?: string })
    .filter((m) => m.kind === 'ModelCanary'),
);
const invalid = parseAllDocuments(readFileSync(new URL('../examples/invalid/fraud-detector-mistakes.yaml', import.meta.url), 'utf8')).map(
  (d) => d.toJS() as unknown,
);

/** Median time per call over `rounds` rounds of `calls` calls, after a warm-up round. */
function measure(calls: number, rounds: number, work: () => void): number {
  const perCall: number[] = [];
  for (let round = 0; round <= rounds; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) work();
    const elapsed = Number(process.hrtime.bigint() - start) / 1e3 / calls;
    if (round > 0) perCall.push(elapsed);
  }
  perCall.sort((a, b) => a - b);
  return perCall[Math.floor(perCall.length / 2)] ?? NaN;
}

// A rollout that never leaves its first step, so that the whole hour is simulated.
const policy = recommended();
const hourSpec = { ...policy.spec, analysis: { ...policy.spec.analysis, checksPerStep: 1000 } };
const healthy = loadScenarios().find((s) => s.name === 'healthy');
if (healthy === undefined) throw new Error('examples/scenarios/healthy.yaml is missing');
const hourScenario = { ...healthy, requestsPerSecond: 1000, durationSeconds: 3600 };

const rows: [string, number][] = [
  ['validate a valid ModelCanary (3 examples, each)', measure(2_000, 7, () => { for (const m of examples) checkModelCanary(m); }) / examples.length],
  ['validate an invalid ModelCanary (5 problems)', measure(2_000, 7, () => { for (const m of invalid) checkModelCanary(m); })],
  ['generate the CRD', measure(20, 7, () => modelCanaryCrd())],
  ['simulate one hour at 1000 requests/s (120 checks, 240 watches)', measure(3, 5, () => simulate(hourSpec, hourScenario, { seed: 1 }))],
];

process.stdout.write(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}\n\n`);
process.stdout.write('| what | median µs per call | per second |\n| --- | ---: | ---: |\n');
for (const [what, micros] of rows) process.stdout.write(`| ${what} | ${micros.toFixed(1)} | ${Math.round(1e6 / micros).toLocaleString('en')} |\n`);

process.stdout.write(`\nSequential test (bench/sequential.ts):\n\n${sequentialTable()}\n`);

const SEEDS = 50;
const started = performance.now();
const rollouts = runRollouts(SEEDS);
const seconds = (performance.now() - started) / 1000;
process.stdout.write(`\nWhole rollouts in the simulator (bench/rollouts.ts, ${(rollouts.length * SEEDS).toLocaleString('en')} simulated rollouts in ${seconds.toFixed(1)} s):\n\n${rolloutTable(rollouts, SEEDS)}\n\nTargets:\n${targets(rollouts).map((t) => (t.startsWith(' ') ? t : `- ${t}`)).join('\n')}\n`);

process.stdout.write(`\nBatching against the real Prometheus (bench/prometheus.ts):\n\n${await prometheusTable()}\n`);
