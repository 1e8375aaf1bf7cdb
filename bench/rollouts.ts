// Whole rollouts in the simulator, per scenario over many seeds, for the recommended policy
// and a Flagger-like threshold rule side by side.

import type { Analysis } from '../src/api/modelcanary.ts';
import type { Scenario } from '../src/api/scenario.ts';
import { simulate } from '../src/analysis/simulator.ts';
import { EXPECTED, loadScenarios, recommended, thresholdOnly, type Policy } from './scenarios.ts';

export interface Row {
  scenario: string;
  expected: string;
  policy: string;
  promoted: number;
  rolledBack: number;
  undecided: number;
  medianSecondsToDecision: number;
  /** Over the promoted rollouts only; NaN when none was promoted. */
  medianSecondsToPromote: number;
  meanExcessCanaryErrors: number;
  /** Canary requests per check at the first step, at the scenario's mean traffic. */
  canaryRequestsPerFirstCheck: number;
}

export function runRollouts(seeds: number): Row[] {
  const rows: Row[] = [];
  for (const scenario of loadScenarios()) {
    for (const policy of [recommended(), thresholdOnly()] as Policy[]) {
      const results = Array.from({ length: seeds }, (_, i) => simulate(policy.spec, scenario, { ...policy.options, seed: i + 1 }));
      const decided = results.filter((r) => r.outcome !== 'timeout').map((r) => r.endedAtSeconds);
      const promoted = results.filter((r) => r.outcome === 'promoted').map((r) => r.endedAtSeconds);
      const { analysis } = policy.spec;
      rows.push({
        scenario: scenario.name,
        expected: EXPECTED[scenario.name] ?? '?',
        policy: policy.name,
        promoted: promoted.length / seeds,
        rolledBack: results.filter((r) => r.outcome === 'rolledBack').length / seeds,
        undecided: results.filter((r) => r.outcome === 'timeout').length / seeds,
        medianSecondsToDecision: median(decided),
        medianSecondsToPromote: median(promoted),
        meanExcessCanaryErrors: results.reduce((sum, r) => sum + r.excessCanaryErrors, 0) / seeds,
        canaryRequestsPerFirstCheck: (meanRequestsPerSecond(scenario) * analysis.interval * (analysis.steps[0] ?? 0)) / 100 / 1000,
      });
    }
  }
  return rows;
}

function median(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  return sorted.length === 0 ? NaN : (sorted[Math.floor(sorted.length / 2)] ?? NaN);
}

/** Mean traffic over the scenario's duration, following its changes of requestsPerSecond. */
function meanRequestsPerSecond(scenario: Scenario): number {
  let rate = scenario.requestsPerSecond;
  let at = 0;
  let requests = 0;
  for (const change of scenario.changes.toSorted((a, b) => a.atSeconds - b.atSeconds)) {
    if (change.requestsPerSecond === undefined || change.atSeconds >= scenario.durationSeconds) continue;
    requests += rate * (change.atSeconds - at);
    at = change.atSeconds;
    rate = change.requestsPerSecond;
  }
  requests += rate * (scenario.durationSeconds - at);
  return requests / scenario.durationSeconds;
}

/**
 * The fewest requests with which a check can pass at all at the policy's confidence: a latency
 * quantile q has an upper bound only from n with qⁿ ≤ 1 − confidence, and a 5xx ratio with no
 * errors is within max only from n with (1 − max)ⁿ ≤ 1 − confidence.
 */
export function fewestToPass(analysis: Analysis): { requests: number; metric: string } {
  const tail = Math.log(1 - analysis.confidence);
  const needs = analysis.metrics.map((m) => ({
    metric: m.name,
    requests: Math.ceil(m.type === 'latency' ? tail / Math.log(m.quantile) : m.type === 'errorRate' && m.max > 0 ? tail / Math.log1p(-m.max) : 0),
  }));
  return needs.reduce((most, n) => (n.requests > most.requests ? n : most), { requests: 0, metric: 'none' });
}

const percent = (x: number): string => `${Math.round(x * 100)} %`;
const seconds = (x: number): string => (Number.isNaN(x) ? '–' : `${x} s`);

export function rolloutTable(rows: Row[], seeds: number): string {
  const lines = [
    `${seeds} seeds per scenario and policy; time in virtual seconds; excess = canary 5xx beyond stable's rate, mean per rollout.`,
    '',
    '| scenario | should | policy | promoted | rolled back | no decision | median time to decision | excess canary 5xx |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${r.expected} | ${r.policy} | ${percent(r.promoted)} | ${percent(r.rolledBack)} | ${percent(r.undecided)} | ${seconds(r.medianSecondsToDecision)} | ${r.meanExcessCanaryErrors.toFixed(1)} |`,
    ),
  ];
  return lines.join('\n');
}

/** The issue's targets, each with its figure, so a reader sees at once what holds and where not. */
export function targets(rows: Row[]): string[] {
  const of = (policy: string, expected: string): Row[] => rows.filter((r) => r.policy === policy && r.expected === expected);
  const worst = (list: Row[], field: 'promoted' | 'rolledBack'): string => {
    const top = list.reduce<Row | undefined>((w, r) => (w === undefined || r[field] > w[field] ? r : w), undefined);
    return top === undefined ? 'none' : `${percent(top[field])}${top[field] > 0 ? ` (${top.scenario})` : ''}`;
  };
  const bad = of('recommended', 'rollback');
  const good = of('recommended', 'promote');
  const badPromoted = Math.max(...bad.map((r) => r.promoted));
  const goodRolledBack = Math.max(...good.map((r) => r.rolledBack));
  const excess = (policy: string): number => of(policy, 'rollback').reduce((s, r) => s + r.meanExcessCanaryErrors, 0);
  const mark = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  const { analysis } = recommended().spec;
  const fewest = fewestToPass(analysis);
  const speed = good.map((r) => {
    const threshold = rows.find((t) => t.policy === 'threshold-only' && t.scenario === r.scenario);
    const ours = r.medianSecondsToPromote;
    const theirs = threshold?.medianSecondsToPromote ?? NaN;
    const figures = `${r.scenario}: ${seconds(ours)} vs ${seconds(theirs)}`;
    if (Number.isNaN(theirs)) return `  - ${figures} (the threshold rule promotes none)`;
    if (ours <= theirs) return `  - ${figures} (met)`;
    const thin = r.canaryRequestsPerFirstCheck < fewest.requests;
    const traffic = `${Math.round(r.canaryRequestsPerFirstCheck)} canary requests per check at the first step, fewer than the ${fewest.requests} from which ${fewest.metric} can pass at ${analysis.confidence * 100} % confidence`;
    return `  - ${figures} (${thin ? `slower, too little traffic: ${traffic}` : 'MISSED'})`;
  });
  return [
    `no bad canary promoted: worst ${worst(bad, 'promoted')} (${mark(badPromoted === 0)})`,
    `healthy canaries rolled back in at most 1 % of seeds: worst ${worst(good, 'rolledBack')} (${mark(goodRolledBack <= 0.01)})`,
    `excess errors from bad canaries at most a fifth of the threshold rule's: ${excess('recommended').toFixed(1)} vs ${excess('threshold-only').toFixed(1)} (${mark(excess('recommended') <= excess('threshold-only') / 5)})`,
    'median time to promote a healthy canary no slower than the threshold rule (its promoted rollouts only), per scenario:',
    ...speed,
  ];
}
