import { formatDuration, parseDuration } from '../api/duration.ts';
import { KIND, type ModelCanary } from '../api/modelcanary.ts';
import { checkModelCanary } from '../api/validate.ts';
import { decide, startState, type Action, type AnalysisState } from '../analysis/engine.ts';
import type { MetricVerdict } from '../analysis/verdicts.ts';
import { PrometheusClient } from '../metrics/prometheus-client.ts';
import { PrometheusMetricsProvider } from '../metrics/prometheus-provider.ts';
import { canaryKey, observeAll } from '../metrics/observe.ts';
import { isRecord, readYamlFile } from './files.ts';
import { EXIT, type Io } from './io.ts';
import { parseCommand } from './args.ts';

const USAGE = `Usage: modelcanary backtest --canary FILE --prometheus URL --start T --end T [--step DURATION] [--json]

Replays the ModelCanary's analysis against the traffic Prometheus recorded between --start
and --end (RFC 3339, or Unix seconds): at every step (default: the analysis interval) it
fetches the window ending there, judges each metric, and says what the controller would
have decided. Checks only: the between-check watches of the live controller need windows
shorter than a scrape interval, which history cannot give.
Exit status: 0 when it ran, 1 on an invalid canary or arguments, 2 when a file cannot be read.
`;

interface Check {
  at: string;
  decision: Action | 'ended';
  reason: string;
  metrics: { name: string; stable: number | null; canary: number | null; verdict: string; reason: string }[];
}

export async function runBacktest(args: string[], io: Io): Promise<number> {
  const parsed = parseCommand(
    'backtest',
    args,
    {
      canary: { type: 'string' },
      prometheus: { type: 'string' },
      start: { type: 'string' },
      end: { type: 'string' },
      step: { type: 'string' },
      json: { type: 'boolean' },
    },
    USAGE,
    io,
  );
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const missing = (['canary', 'prometheus', 'start', 'end'] as const).filter((k) => values[k] === undefined);
  if (missing.length > 0) {
    io.stderr.write(`modelcanary backtest: ${missing.map((k) => `--${k}`).join(', ')} required\n\n${USAGE}`);
    return EXIT.invalid;
  }
  const start = parseTime(values.start ?? '');
  const end = parseTime(values.end ?? '');
  const problems: string[] = [];
  if (start === undefined) problems.push(`--start: "${values.start ?? ''}" is not an RFC 3339 time or Unix seconds`);
  if (end === undefined) problems.push(`--end: "${values.end ?? ''}" is not an RFC 3339 time or Unix seconds`);
  if (start !== undefined && end !== undefined && end <= start) problems.push('--end must be after --start');
  let address: URL | undefined;
  try {
    address = new URL(values.prometheus ?? '');
  } catch {
    problems.push(`--prometheus: "${values.prometheus ?? ''}" is not a URL, such as http://localhost:9090`);
  }
  const stepMs = values.step === undefined ? undefined : parseDuration(values.step);
  if (values.step !== undefined && (stepMs === undefined || stepMs < 1000)) problems.push(`--step: "${values.step}" must be a duration of at least 1s, such as 30s`);

  const file = await readYamlFile(values.canary ?? '', io);
  if (!file.ok) {
    io.stderr.write(`${file.messages.join('\n')}\n`);
    return EXIT.unreadable;
  }
  const document = file.documents.map((d) => d.toJS() as unknown).find((d) => isRecord(d) && d.kind === KIND);
  const checked = document === undefined ? undefined : checkModelCanary(document);
  if (checked === undefined) problems.push(`${values.canary ?? ''}: no ${KIND} in this file`);
  else if (!checked.ok) problems.push(...checked.problems.map((p) => `${values.canary ?? ''}: ${p.path}: ${p.message}`));
  if (problems.length > 0 || start === undefined || end === undefined || address === undefined || checked?.ok !== true) {
    io.stderr.write(`${problems.join('\n')}\n`);
    return EXIT.invalid;
  }

  const canary = checked.value;
  const step = stepMs ?? canary.spec.analysis.interval;
  const client = new PrometheusClient({
    address: address.toString(),
    timeoutMs: canary.spec.metricsProvider?.prometheus?.timeout,
    headers: canary.spec.metricsProvider?.prometheus?.headers,
  });
  const checks = await replay(canary, new PrometheusMetricsProvider(client), start, end, step);
  const ended = checks.find((c) => c.decision === 'promote' || c.decision === 'rollback');
  const summary = {
    canary: canaryKey(canary),
    prometheus: client.address,
    start: new Date(start).toISOString(),
    end: new Date(end).toISOString(),
    step: formatDuration(step),
    checks: checks.length,
    verdicts: tally(checks.filter((c) => c.decision !== 'ended')),
    outcome: ended === undefined ? 'undecided' : ended.decision === 'promote' ? 'promoted' : 'rolledBack',
    decidedAt: ended?.at ?? null,
    reason: ended?.reason ?? null,
    queriesSent: client.sent,
  };
  io.stdout.write(values.json === true ? `${JSON.stringify({ checks, summary }, null, 2)}\n` : text(checks, summary));
  return EXIT.ok;
}

async function replay(canary: ModelCanary, provider: PrometheusMetricsProvider, start: number, end: number, step: number): Promise<Check[]> {
  const analysis = canary.spec.analysis;
  const checks: Check[] = [];
  let state: AnalysisState = startState();
  let over = false;
  for (let t = start + step; t <= end; t += step) {
    const at = new Date(t);
    const observation = (await observeAll(provider, [canary], step, at)).get(canaryKey(canary));
    if (observation === undefined) break;
    // After the rollout would have ended, the traffic is still judged, but nothing more is decided.
    const decision = decide(analysis, state, observation);
    if (!over) state = decision.state;
    checks.push({ at: at.toISOString(), decision: over ? 'ended' : decision.action, reason: decision.reason, metrics: decision.verdicts.map(metricEntry) });
    over ||= decision.action === 'promote' || decision.action === 'rollback';
  }
  return checks;
}

function metricEntry(v: MetricVerdict): Check['metrics'][number] {
  const finite = (x: number | undefined): number | null => (x === undefined || !Number.isFinite(x) ? null : x);
  return { name: v.name, stable: finite(v.stable), canary: finite(v.canary), verdict: v.verdict, reason: v.reason };
}

function tally(checks: Check[]): Record<string, number> {
  const counts: Record<string, number> = { pass: 0, fail: 0, inconclusive: 0, error: 0 };
  for (const c of checks) for (const m of c.metrics) counts[m.verdict] = (counts[m.verdict] ?? 0) + 1;
  return counts;
}

function text(checks: Check[], summary: { canary: string; outcome: string; decidedAt: string | null; reason: string | null; checks: number; verdicts: Record<string, number>; queriesSent: number; step: string }): string {
  const lines = [`backtest of ${KIND} ${summary.canary}, a check every ${summary.step}`, ''];
  for (const check of checks) {
    lines.push(`${check.at}  ${check.decision.padEnd(8)}  ${check.reason}`);
    for (const m of check.metrics) lines.push(`    ${m.name.padEnd(16)} ${m.verdict.padEnd(12)} ${m.reason}`);
  }
  const verdicts = Object.entries(summary.verdicts).map(([k, n]) => `${n} ${k}`).join(', ');
  const outcome =
    summary.decidedAt === null ? 'no decision in this range' : `would have ${summary.outcome === 'promoted' ? 'promoted' : 'rolled back'} at ${summary.decidedAt} because ${summary.reason ?? ''}`;
  lines.push('', `summary: ${outcome}`, `${summary.checks} checks; metric verdicts: ${verdicts}; ${summary.queriesSent} queries sent`);
  return `${lines.join('\n')}\n`;
}

/** RFC 3339, or Unix seconds; milliseconds since the epoch, or undefined. */
export function parseTime(text: string): number | undefined {
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}
