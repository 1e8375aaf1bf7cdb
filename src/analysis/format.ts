// Numbers as the reasons print them: short, and the same in status, logs, Slack and simulate.

export function formatRatio(ratio: number): string {
  if (!Number.isFinite(ratio)) return String(ratio);
  const percent = ratio * 100;
  return `${percent >= 10 ? percent.toFixed(1) : percent >= 1 ? percent.toFixed(2) : percent.toPrecision(2)} %`;
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${ms >= 100 ? Math.round(ms) : Number(ms.toPrecision(3))} ms`;
}

export function formatValue(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)) return value.toExponential(2);
  return String(Number(value.toPrecision(4)));
}

/** A confidence level as people say it: 0.95 → "95 %". */
export function formatPercent(level: number): string {
  return `${Number((level * 100).toPrecision(4))} %`;
}

/**
 * Confidence bounds in words: "between 0.4 % and 11 %", "at most 1.9 %", "above 250 ms" (a
 * quantile above a bucket edge), "not yet bounded". `ceiling` is the largest possible value.
 */
export function describeBounds(bounds: { low: number; high: number; lowOpen?: boolean | undefined }, show: (x: number) => string, ceiling: number): string {
  const hasLow = bounds.low > 0 || bounds.lowOpen === true;
  const hasHigh = bounds.high < ceiling;
  const low = `${bounds.lowOpen === true ? 'above' : 'at least'} ${show(bounds.low)}`;
  if (hasLow && hasHigh) return `between ${show(bounds.low)} and ${show(bounds.high)}`;
  if (hasHigh) return `at most ${show(bounds.high)}`;
  return hasLow ? low : 'not yet bounded';
}
