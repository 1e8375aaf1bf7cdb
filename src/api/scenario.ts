// The scenario file of `modelcanary simulate`: two simulated model versions and how they
// change over virtual time.

import { z } from 'zod';
import { annotate, rule } from './annotate.ts';

const errorRate = annotate(z.number().min(0).max(1), { description: 'Probability that a request ends in a 5xx.' });
const latencyMs = annotate(
  z.strictObject({
    p50: annotate(z.number().gt(0).max(3_600_000), { description: 'Median latency in milliseconds.' }),
    p99: annotate(z.number().gt(0).max(3_600_000), { description: '99th percentile latency in milliseconds.' }),
  }),
  {
    description: 'Log-normal latency through these two quantiles.',
    rules: [rule('self.p99 > self.p50', 'p99 must be greater than p50', (l: { p50: number; p99: number }) => l.p99 > l.p50, ['p99'])],
  },
);

// An LLM's streaming latencies, for the ttft, interTokenLatency and e2eLatency presets (docs/llm.md).
const quantiles = (what: string) =>
  annotate(
    z.strictObject({
      p50: annotate(z.number().gt(0).max(3_600_000), { description: `Median ${what} in milliseconds.` }),
      p99: annotate(z.number().gt(0).max(3_600_000), { description: `99th percentile ${what} in milliseconds.` }),
    }),
    {
      description: `Log-normal ${what} through these two quantiles.`,
      rules: [rule('self.p99 > self.p50', 'p99 must be greater than p50', (l: { p50: number; p99: number }) => l.p99 > l.p50, ['p99'])],
    },
  );
const ttftMs = quantiles('time to first token');
const interTokenMs = quantiles('inter-token latency');
const outputTokens = annotate(z.int().min(1).max(100_000), { description: 'Tokens each answer streams; end-to-end latency is the time to first token plus this many inter-token gaps.' });

export const ModelBehaviour = annotate(
  z.strictObject({ errorRate, latencyMs, ttftMs: ttftMs.optional(), interTokenMs: interTokenMs.optional(), outputTokens: outputTokens.optional() }),
  { description: 'How one version answers. ttftMs, interTokenMs and outputTokens make it an LLM, for the LLM presets.' },
);
export type ModelBehaviour = z.output<typeof ModelBehaviour>;

const partialLatency = annotate(
  z.strictObject({ p50: latencyMs.shape.p50.optional(), p99: latencyMs.shape.p99.optional() }),
  { description: 'Only the quantiles given change.' },
);
const partialQuantiles = annotate(z.strictObject({ p50: ttftMs.shape.p50.optional(), p99: ttftMs.shape.p99.optional() }), { description: 'Only the quantiles given change.' });
export const BehaviourChange = annotate(
  z.strictObject({
    errorRate: errorRate.optional(),
    latencyMs: partialLatency.optional(),
    ttftMs: partialQuantiles.optional(),
    interTokenMs: partialQuantiles.optional(),
    outputTokens: outputTokens.optional(),
  }),
  {
    description: 'Only the fields given change.',
  },
);
export type BehaviourChange = z.output<typeof BehaviourChange>;

const requestsPerSecond = annotate(z.number().min(0).max(1_000_000), { description: 'Total traffic, split between the versions by the current weights.' });

export const ScenarioChange = annotate(
  z.strictObject({
    atSeconds: annotate(z.number().min(0), { description: 'Virtual time of the change, in seconds since the start.' }),
    stable: BehaviourChange.optional(),
    canary: BehaviourChange.optional(),
    requestsPerSecond: requestsPerSecond.optional(),
  }),
  { description: 'A change applied at a virtual time.' },
);
export type ScenarioChange = z.output<typeof ScenarioChange>;

export const Scenario = annotate(
  z.strictObject({
    name: annotate(z.string().min(1).max(200), { description: 'Name of the scenario.' }),
    seed: annotate(z.int().min(0).max(2 ** 32 - 1), { description: 'Default seed; --seed overrides.' }).prefault(1),
    durationSeconds: annotate(z.number().gt(0).max(7 * 24 * 3600), { description: 'Virtual time limit, in seconds.' }),
    requestsPerSecond,
    stable: ModelBehaviour,
    canary: ModelBehaviour,
    changes: annotate(z.array(ScenarioChange).max(1000), { description: 'Changes applied at virtual times.' }).prefault([]),
  }),
  { description: 'A simulated pair of model versions.' },
);
export type Scenario = z.output<typeof Scenario>;
