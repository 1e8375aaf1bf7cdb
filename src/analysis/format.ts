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
