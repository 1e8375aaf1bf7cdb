// Whole rollouts in the simulator, per scenario over many seeds, for the recommended policy
// and a Flagger-like threshold rule side by side.

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
  meanExcessCanaryErrors: number;
}

export function runRollouts(seeds: number): Row[] {
  const rows: Row[] = [];
  for (const scenario of loadScenarios()) {
    for (const policy of [recommended(), thresholdOnly()] as Policy[]) {
      const results = Array.from({ length: seeds }, (_, i) => simulate(policy.spec, scenario, { ...policy.options, seed: i + 1 }));
      const decided = results.filter((r) => r.outcome !== 'timeout').map((r) => r.endedAtSeconds).sort((a, b) => a - b);
      rows.push({
        scenario: scenario.name,
        expected: EXPECTED[scenario.name] ?? '?',
        policy: policy.name,
        promoted: results.filter((r) => r.outcome === 'promoted').length / seeds,
        rolledBack: results.filter((r) => r.outcome === 'rolledBack').length / seeds,
        undecided: results.filter((r) => r.outcome === 'timeout').length / seeds,
        medianSecondsToDecision: decided.length === 0 ? NaN : (decided[Math.floor(decided.length / 2)] ?? NaN),
        meanExcessCanaryErrors: results.reduce((sum, r) => sum + r.excessCanaryErrors, 0) / seeds,
      });
    }
  }
  return rows;
}

const percent = (x: number): string => `${Math.round(x * 100)} %`;

export function rolloutTable(rows: Row[], seeds: number): string {
  const lines = [
    `${seeds} seeds per scenario and policy; time in virtual seconds; excess = canary 5xx beyond stable's rate, mean per rollout.`,
    '',
    '| scenario | should | policy | promoted | rolled back | no decision | median time to decision | excess canary 5xx |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${r.expected} | ${r.policy} | ${percent(r.promoted)} | ${percent(r.rolledBack)} | ${percent(r.undecided)} | ${Number.isNaN(r.medianSecondsToDecision) ? '–' : `${r.medianSecondsToDecision} s`} | ${r.meanExcessCanaryErrors.toFixed(1)} |`,
    ),
  ];
  return lines.join('\n');
}

/** The issue's targets, each with its figure, so a reader sees at once what holds. */
export function targets(rows: Row[]): string[] {
  const of = (policy: string, expected: string): Row[] => rows.filter((r) => r.policy === policy && r.expected === expected);
  const badPromoted = Math.max(...of('recommended', 'rollback').map((r) => r.promoted));
  const goodRolledBack = Math.max(...of('recommended', 'promote').map((r) => r.rolledBack));
  const excess = (policy: string): number => of(policy, 'rollback').reduce((s, r) => s + r.meanExcessCanaryErrors, 0);
  const healthy = (policy: string): number => rows.find((r) => r.policy === policy && r.scenario === 'healthy')?.medianSecondsToDecision ?? NaN;
  const mark = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  return [
    `no bad canary promoted: worst ${percent(badPromoted)} (${mark(badPromoted === 0)})`,
    `healthy canaries rolled back in at most 1 % of seeds: worst ${percent(goodRolledBack)} (${mark(goodRolledBack <= 0.01)})`,
    `excess errors from bad canaries at most a fifth of the threshold rule's: ${excess('recommended').toFixed(1)} vs ${excess('threshold-only').toFixed(1)} (${mark(excess('recommended') <= excess('threshold-only') / 5)})`,
    `healthy promotion no slower than the threshold rule: ${healthy('recommended')} s vs ${healthy('threshold-only')} s (${mark(healthy('recommended') <= healthy('threshold-only'))})`,
  ];
}
