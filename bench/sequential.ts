// The sequential test alone, on simulated counts: how often it raises a false alarm when the
// canary equals stable, and how many canary requests it needs to catch a worse one. Each
// rollout: 60 intervals of 30 000 requests, canary weight 10 % → 30 % → 50 % every 20
// intervals, the test checked after every interval.

import { noEvidence, rejects, update } from '../src/analysis/sequential.ts';
import { binomial, seeded } from '../src/analysis/random.ts';

interface Outcome {
  rejected: boolean;
  canaryRequests: number;
}

function rollout(seed: number, stableRate: number, canaryRate: number, alpha: number): Outcome {
  const random = seeded(seed);
  let evidence = noEvidence();
  let served = 0;
  for (let i = 0; i < 60; i++) {
    const weight = i < 20 ? 10 : i < 40 ? 30 : 50;
    const canaryRequests = 300 * weight;
    const stableRequests = 300 * (100 - weight);
    evidence = update(
      evidence,
      { canaryRequests, stableRequests, canaryEvents: binomial(random, canaryRequests, canaryRate), stableEvents: binomial(random, stableRequests, stableRate) },
      1,
    );
    served += canaryRequests;
    if (rejects(evidence, alpha)) return { rejected: true, canaryRequests: served };
  }
  return { rejected: false, canaryRequests: served };
}

export function sequentialTable(): string {
  const cases: [string, number, number, number, number][] = [
    ['equal (1 %), α = 0.05', 0.01, 0.01, 0.05, 2000],
    ['equal (1 %), α = 0.01', 0.01, 0.01, 0.01, 2000],
    ['equal (0.1 %), α = 0.01', 0.001, 0.001, 0.01, 2000],
    ['0.5 % → 1 %, α = 0.01', 0.005, 0.01, 0.01, 500],
    ['0.1 % → 5 %, α = 0.01', 0.001, 0.05, 0.01, 500],
  ];
  const rows = cases.map(([name, stable, canary, alpha, runs]) => {
    const outcomes = Array.from({ length: runs }, (_, k) => rollout(k + 1, stable, canary, alpha));
    const hits = outcomes.filter((o) => o.rejected).map((o) => o.canaryRequests).sort((a, b) => a - b);
    const median = hits.length === 0 ? '–' : String(hits[Math.floor(hits.length / 2)]);
    return `| ${name} | ${runs} | ${((100 * hits.length) / runs).toFixed(1)} % | ${median} |`;
  });
  return ['| stable → canary error rate | rollouts | rejected | median canary requests at rejection |', '| --- | ---: | ---: | ---: |', ...rows].join('\n');
}
