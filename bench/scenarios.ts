// The scenario suite (examples/scenarios) and the two policies it is run with: the
// recommended settings, and a rule that mirrors Flagger's (absolute thresholds, failed
// checks counted over the rollout, no minimum sample, no data counted as a failure).

import { readFileSync, readdirSync } from 'node:fs';
import { parse } from 'yaml';
import type { ModelCanarySpec } from '../src/api/modelcanary.ts';
import { Scenario } from '../src/api/scenario.ts';
import { checkAgainst, checkModelCanary } from '../src/api/validate.ts';
import type { EngineOptions } from '../src/analysis/engine.ts';

const DIR = new URL('../examples/scenarios/', import.meta.url);

/** What a correct controller does with each scenario. */
export const EXPECTED: Record<string, 'promote' | 'rollback' | 'none'> = {
  healthy: 'promote',
  'error-spike-at-10': 'rollback',
  'errors-after-30': 'rollback',
  'latency-regression': 'rollback',
  'small-error-regression': 'rollback',
  'low-traffic': 'promote',
  'noisy-stable': 'promote',
  'no-data': 'none',
  trickle: 'promote',
  'broken-at-trickle': 'rollback',
  'heavy-tail-near-bound': 'promote',
  'stable-breaks-error-bound': 'promote',
  'tail-regression': 'rollback',
  bursty: 'promote',
};

export interface Policy {
  name: string;
  spec: ModelCanarySpec;
  options: EngineOptions;
}

function parsed<T>(result: { ok: true; value: T } | { ok: false; problems: { path: string; message: string }[] }, file: string): T {
  if (!result.ok) throw new Error(`${file}: ${result.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
  return result.value;
}

export function loadScenarios(): Scenario[] {
  return readdirSync(DIR)
    .filter((file) => file.endsWith('.yaml') && file !== 'canary.yaml')
    .sort()
    .map((file) => parsed(checkAgainst(Scenario, parse(readFileSync(new URL(file, DIR), 'utf8'))), file));
}

export function recommended(): Policy {
  const spec = parsed(checkModelCanary(parse(readFileSync(new URL('canary.yaml', DIR), 'utf8'))), 'canary.yaml').spec;
  return { name: 'recommended', spec, options: {} };
}

/** The same thresholds and steps, judged as Flagger judges them. */
export function thresholdOnly(): Policy {
  const { spec } = recommended();
  return {
    name: 'threshold-only',
    spec: { ...spec, analysis: { ...spec.analysis, minRequests: 0, spikeFactor: 100, sequentialTest: { ...spec.analysis.sequentialTest, enabled: false } } },
    options: { inconclusiveIsFailure: true, pointEstimates: true },
  };
}
