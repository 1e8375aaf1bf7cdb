// An anytime-valid comparison of canary with stable on counts of bad events (5xx answers, or
// requests slower than a latency bound). See docs/analysis.md for the method and its guarantee.
//
// Conditional on an interval having k bad events, each came from the canary with probability
// θ = ρw / (ρw + 1 − w), where w is the canary's share of the interval's requests and ρ the
// ratio of the canary's bad-event rate to stable's. For each alternative ρ in a grid above the
// tolerated ratio ρ₀, the likelihood ratio of ρ against ρ₀ is a non-negative supermartingale
// under "canary no worse than ρ₀ × stable"; so is any average of them (the mixture). Ville's
// inequality then bounds the chance that the mixture ever reaches 1/α by α, however often it
// is checked: the false-alarm rate holds for continuous monitoring, unlike a t-test repeated
// every interval.

/** Alternatives, as multiples of the tolerated ratio: small ones give power, large ones speed. */
export const RATIO_GRID: readonly number[] = [1.25, 1.5, 2, 3, 5, 10, 30];

export interface SequentialEvidence {
  /** Log likelihood ratio accumulated for each alternative of RATIO_GRID. */
  logRatios: number[];
  /** Bad events seen so far, for the reason text. */
  canaryEvents: number;
  stableEvents: number;
}

export function noEvidence(): SequentialEvidence {
  return { logRatios: RATIO_GRID.map(() => 0), canaryEvents: 0, stableEvents: 0 };
}

export interface IntervalCounts {
  canaryRequests: number;
  stableRequests: number;
  canaryEvents: number;
  stableEvents: number;
}

/** The evidence after one more interval. Intervals where one version had no traffic say nothing. */
export function update(evidence: SequentialEvidence, counts: IntervalCounts, toleratedRatio: number): SequentialEvidence {
  const { canaryRequests, stableRequests, canaryEvents, stableEvents } = counts;
  if (canaryRequests <= 0 || stableRequests <= 0 || canaryEvents + stableEvents === 0) return evidence;
  const share = canaryRequests / (canaryRequests + stableRequests);
  const canaryProbability = (ratio: number): number => (ratio * share) / (ratio * share + 1 - share);
  const null0 = canaryProbability(toleratedRatio);
  const logRatios = evidence.logRatios.map((sum, i) => {
    const alternative = canaryProbability(toleratedRatio * (RATIO_GRID[i] ?? 1));
    return sum + canaryEvents * Math.log(alternative / null0) + stableEvents * Math.log((1 - alternative) / (1 - null0));
  });
  return { logRatios, canaryEvents: evidence.canaryEvents + canaryEvents, stableEvents: evidence.stableEvents + stableEvents };
}

/** Log of the mixture likelihood ratio (equal weights over the grid); kept in logs so strong evidence cannot overflow. */
export function logMixture(evidence: SequentialEvidence): number {
  const n = evidence.logRatios.length;
  if (n === 0) return 0;
  const largest = Math.max(...evidence.logRatios);
  const sum = evidence.logRatios.reduce((acc, l) => acc + Math.exp(l - largest), 0);
  return largest + Math.log(sum / n);
}

/** True once the mixture reaches 1/α: the canary's rate is above the tolerated ratio to stable's. */
export function rejects(evidence: SequentialEvidence, falseAlarmRate: number): boolean {
  return logMixture(evidence) >= -Math.log(falseAlarmRate);
}
