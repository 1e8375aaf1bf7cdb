import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { formatDuration, parseDuration } from '../api/duration.ts';
import { KIND, type ModelCanary } from '../api/modelcanary.ts';
import { checkKind, checkModelCanary } from '../api/validate.ts';
import { decide, startState, type Action, type AnalysisState } from '../analysis/engine.ts';
import type { MetricVerdict } from '../analysis/verdicts.ts';
import { PrometheusClient, type Credentials, type QueryResult } from '../metrics/prometheus-client.ts';
import { PrometheusMetricsProvider } from '../metrics/prometheus-provider.ts';
import { canaryKey, observeAll } from '../metrics/observe.ts';
import { isRecord, readProblem, readYamlFile } from './files.ts';
import { codeWords, EXIT, type Io } from './io.ts';
import { parseCommand } from './args.ts';

const USAGE = `Usage: modelcanary backtest --canary FILE (--since DURATION | --start T [--end T]) [--prometheus URL]
                            [--token-file FILE] [--step DURATION] [--all] [--json]

Replays the ModelCanary's analysis against the traffic Prometheus recorded: at every step
(default: the analysis interval) it fetches the window ending there, judges each metric, and
says what the controller would have decided. It stops at the first promotion or rollback, as
the rollout would have; --all goes on to the end of the range (later checks are marked ended).
Checks only: the between-check watches of the live controller need windows shorter than a
scrape interval, which history cannot give.

Options:
  --canary FILE        the ModelCanary manifest (the first ModelCanary in the file)
  --since DURATION     replay the last DURATION, up to now: 2h, 30m, 1h30m
  --start T, --end T   the range: RFC 3339 (2026-11-14T14:00:00Z), Unix seconds, now, or a
                       duration before now (-1h, -10m); --end defaults to now
  --prometheus URL     default: the spec's metricsProvider.prometheus.address; needed when the
                       spec names an operator's provider (metricsProvider.name) or none. For a
                       Prometheus inside a cluster: kubectl port-forward -n NS svc/NAME 9090, then
                       --prometheus http://localhost:9090. Basic auth: https://USER:PASSWORD@HOST
  --token-file FILE    a bearer token for Prometheus; the spec's headers are always sent, but
                       its secretRef names a Kubernetes Secret, which backtest does not read
  --step DURATION      time between checks, at least 1s; default: spec.analysis.interval
  --all                replay the whole range, past the decision
  --json               the checks and a summary as JSON

Exit status: 0 promoted or undecided in the range, 1 it would have rolled back, or the canary is
invalid, 2 bad usage, a file that cannot be read, or Prometheus cannot be reached or is not
Prometheus (it stops at the first such query, naming the address).
`;

interface Check {
  at: string;
  decision: Action | 'ended';
  reason: string;
  metrics: { name: string; stable: number | null; canary: number | null; verdict: string; reason: string }[];
}

/** A query that could not reach Prometheus, or reached something that is not its API: there is no point in asking again. */
type Unreachable = { kind: 'network'; message: string } | { kind: 'http'; status: number; message: string };

/** The client, noting the first answer that says Prometheus cannot be queried at this address. */
class WatchedClient extends PrometheusClient {
  unreachable: Unreachable | undefined;

  override async query(promql: string, at: Date, signal?: AbortSignal): Promise<QueryResult> {
    const result = await super.query(promql, at, signal);
    if (result.kind === 'error' && this.unreachable === undefined) this.unreachable = unreachableFrom(result);
    return result;
  }
}

/**
 * Failures of the address rather than of the query: no answer (a network error, a timeout), or
 * an HTTP answer that is not the Prometheus API (a 404 page, a proxy's 401 or 502). An answer
 * of the API with an errorType (bad_data: a broken custom query) is the query's own problem.
 */
function unreachableFrom(result: Extract<QueryResult, { kind: 'error' }>): Unreachable | undefined {
  if (result.status === undefined) return { kind: 'network', message: result.message };
  const notTheApi = result.errorType === undefined && /not the Prometheus API|not a Prometheus query result/.test(result.message);
  if (notTheApi || result.status === 401 || result.status === 403) return { kind: 'http', status: result.status, message: result.message };
  return undefined;
}

interface Flags {
  canary?: string | undefined;
  prometheus?: string | undefined;
  'token-file'?: string | undefined;
}

export async function runBacktest(args: string[], io: Io): Promise<number> {
  const parsed = parseCommand(
    'backtest',
    relativeTimesAttached(args),
    {
      canary: { type: 'string' },
      prometheus: { type: 'string' },
      'token-file': { type: 'string' },
      start: { type: 'string' },
      end: { type: 'string' },
      since: { type: 'string' },
      step: { type: 'string' },
      all: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    USAGE,
    io,
  );
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const usage = (problems: string[]): number => {
    io.stderr.write(`${problems.map((p) => `modelcanary backtest: ${p}`).join('\n')}\n`);
    return EXIT.unreadable;
  };
  if (parsed.positionals.length > 0) return usage([`takes no arguments, not ${parsed.positionals.join(' ')}; see modelcanary backtest --help`]);
  if (values.canary === undefined) return usage(['--canary FILE is required; see modelcanary backtest --help']);
  const range = parseRange(values, Date.now());
  const problems = 'problems' in range ? [...range.problems] : [];
  const stepMs = values.step === undefined ? undefined : parseDuration(values.step);
  if (values.step !== undefined && (stepMs === undefined || stepMs < 1000)) problems.push(`--step: "${values.step}" must be a duration of at least 1s, such as 30s`);
  const addressProblem = values.prometheus === undefined ? undefined : urlProblem(values.prometheus);
  if (addressProblem !== undefined) problems.push(addressProblem);
  if (problems.length > 0 || 'problems' in range) return usage(problems);

  const loaded = await loadCanary(values.canary, io);
  if (typeof loaded === 'number') return loaded;
  const canary = loaded;
  const target = await prometheusFor(canary, values, io);
  if ('problem' in target) return usage([target.problem]);

  const step = stepMs ?? canary.spec.analysis.interval;
  if (range.end - range.start < step) return usage([`the range from ${iso(range.start)} to ${iso(range.end)} is shorter than one check (${formatDuration(step)}); widen it or pass a shorter --step`]);
  const settings = canary.spec.metricsProvider?.prometheus;
  const client = new WatchedClient({ address: target.address, timeoutMs: settings?.timeout, headers: settings?.headers, credentials: target.credentials, retries: 1 });
  const replayed = await replay(canary, client, range.start, range.end, step, values.all === true);
  if (replayed.unreachable !== undefined) {
    io.stderr.write(`modelcanary backtest: ${unreachableProblem(replayed.unreachable, client.address, target.source, canary)}\n`);
    return EXIT.unreadable;
  }
  const { checks } = replayed;
  const ended = checks.find((c) => c.decision === 'promote' || c.decision === 'rollback');
  const summary = {
    canary: canaryKey(canary),
    prometheus: client.address,
    start: iso(range.start),
    end: iso(range.end),
    step: formatDuration(step),
    checks: checks.length,
    verdicts: tally(checks.filter((c) => c.decision !== 'ended')),
    outcome: ended === undefined ? 'undecided' : ended.decision === 'promote' ? 'promoted' : 'rolledBack',
    decidedAt: ended?.at ?? null,
    reason: ended?.reason ?? null,
    queriesSent: client.sent,
  };
  io.stdout.write(values.json === true ? `${JSON.stringify({ checks, summary }, null, 2)}\n` : text(checks, summary, values.all === true));
  return summary.outcome === 'rolledBack' ? EXIT.invalid : EXIT.ok;
}

/**
 * `--start -1h` as `--start=-1h`: parseArgs takes a value that starts with a dash for a flag of
 * its own, and a time before now is written with one.
 */
function relativeTimesAttached(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const next = args[i + 1];
    if ((arg === '--start' || arg === '--end') && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** The first ModelCanary of the file, checked; or the exit code, with the problems printed. */
async function loadCanary(path: string, io: Io): Promise<ModelCanary | number> {
  const file = await readYamlFile(path, io);
  if (!file.ok) {
    io.stderr.write(`${file.messages.join('\n')}\n`);
    return EXIT.unreadable;
  }
  for (const value of file.values) {
    if (!isRecord(value) || typeof value.kind !== 'string') continue;
    const kind = checkKind(value.apiVersion, value.kind);
    if (kind.is === 'other') continue;
    const checked = kind.is === 'mistaken' ? { ok: false as const, problems: [kind.problem] } : checkModelCanary(value);
    if (checked.ok) return checked.value;
    io.stderr.write(`${checked.problems.map((p) => `${path}: ${p.path}: ${p.message}`).join('\n')}\n`);
    return EXIT.invalid;
  }
  io.stderr.write(`${path}: no ${KIND} in this file\n`);
  return EXIT.invalid;
}

/** The range to replay, in milliseconds since the epoch, with relative times counted back from `now`. */
function parseRange(values: { start?: string | undefined; end?: string | undefined; since?: string | undefined }, now: number): { start: number; end: number } | { problems: string[] } {
  const problems: string[] = [];
  const forms = 'an RFC 3339 time (2026-11-14T14:00:00Z), Unix seconds, now, or a duration before now such as -1h';
  if (values.since !== undefined && values.start !== undefined) problems.push('give --since or --start, not both');
  if (values.since === undefined && values.start === undefined) problems.push('--since DURATION or --start T is required; see modelcanary backtest --help');
  const end = values.end === undefined ? now : parseTime(values.end, now);
  if (end === undefined) problems.push(`--end: "${values.end ?? ''}" is not ${forms}`);
  let start: number | undefined;
  if (values.since !== undefined) {
    const since = parseDuration(values.since);
    if (since === undefined || since <= 0) problems.push(`--since: "${values.since}" is not a duration such as 2h, 30m or 1h30m`);
    else start = (end ?? now) - since;
  } else if (values.start !== undefined) {
    start = parseTime(values.start, now);
    if (start === undefined) problems.push(`--start: "${values.start}" is not ${forms}`);
  }
  if (problems.length > 0 || start === undefined || end === undefined) return { problems };
  if (end <= start) return { problems: [`--end (${iso(end)}) must be after the start (${iso(start)})`] };
  return { start, end };
}

interface Target {
  address: string;
  credentials: Credentials | undefined;
  /** Where the address came from, for the fix in a message. */
  source: 'flag' | 'spec';
}

/** The Prometheus to ask, and how: --prometheus, else the spec's own address; credentials from --token-file. */
async function prometheusFor(canary: ModelCanary, flags: Flags, io: Io): Promise<Target | { problem: string }> {
  const provider = canary.spec.metricsProvider;
  let address = flags.prometheus;
  const source = address === undefined ? 'spec' : 'flag';
  if (address === undefined) {
    if (provider?.name !== undefined) {
      return { problem: `spec.metricsProvider.name is "${provider.name}", a provider the operator defined for the controller (modelcanary run --metrics-provider), which backtest cannot look up: pass --prometheus URL` };
    }
    address = provider?.prometheus?.address;
    if (address === undefined) return { problem: 'the spec names no Prometheus (the controller then uses its own --prometheus): pass --prometheus URL, such as http://localhost:9090' };
  }
  const problem = urlProblem(address);
  if (problem !== undefined) return { problem };
  const tokenFile = flags['token-file'];
  if (tokenFile === undefined) return { address, credentials: undefined, source };
  let token: string;
  try {
    token = (await readFile(resolve(io.cwd, tokenFile), 'utf8')).trim();
  } catch (error) {
    return { problem: `--token-file ${tokenFile}: cannot read: ${readProblem(error)}` };
  }
  if (token === '') return { problem: `--token-file ${tokenFile}: the file is empty` };
  return { address, credentials: { kind: 'bearer', token }, source };
}

function urlProblem(address: string): string | undefined {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    return `--prometheus: "${address}" is not a URL, such as http://localhost:9090`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `--prometheus: "${address}" must be an http:// or https:// URL, such as http://localhost:9090`;
  return undefined;
}

/** Why Prometheus cannot be queried, in one line with the fix. */
function unreachableProblem(failure: Unreachable, address: string, source: Target['source'], canary: ModelCanary): string {
  const change = source === 'spec' ? `the address is the spec's (metricsProvider.prometheus.address); pass --prometheus URL for one reachable from here${portForward(address)}` : 'check --prometheus';
  if (failure.kind === 'http') {
    if (failure.status === 401 || failure.status === 403) {
      const secret = canary.spec.metricsProvider?.prometheus?.secretRef;
      const credentials = secret === undefined ? 'pass --token-file FILE' : `the spec's credentials are in the Secret ${canary.metadata.namespace ?? 'default'}/${secret.name}, which backtest does not read: pass --token-file FILE with its token`;
      return `Prometheus at ${address} refused the query (HTTP ${failure.status}): it needs credentials; ${credentials}`;
    }
    return `${failure.message}: is it Prometheus's base URL? ${change}`;
  }
  const code = /^cannot reach \S+: ([A-Z_]+)/.exec(failure.message)?.[1];
  const timedOut = /^no answer from \S+ within (\d+) ms/.exec(failure.message)?.[1];
  const why = codeWords(code) ?? (timedOut === undefined ? failure.message.replace(/ \(after \d+ attempts\)$/, '') : `no answer within ${Number(timedOut) / 1000} s`);
  return `cannot reach Prometheus at ${address}: ${why}; ${change}`;
}

/** For an address inside a cluster (http://prometheus.istio-system:9090), the kubectl line that brings it here. */
function portForward(address: string): string {
  const url = new URL(address);
  const inCluster = /^([a-z0-9-]+)\.([a-z0-9-]+)(\.svc(\.cluster\.local)?)?$/.exec(url.hostname);
  if (inCluster === null) return '';
  const port = url.port === '' ? (url.protocol === 'https:' ? '443' : '80') : url.port;
  return ` (for this one: kubectl port-forward -n ${inCluster[2] ?? ''} svc/${inCluster[1] ?? ''} ${port === '80' || port === '443' ? `9090:${port}` : port}, then --prometheus http://localhost:${port === '80' || port === '443' ? '9090' : port})`;
}

async function replay(canary: ModelCanary, client: WatchedClient, start: number, end: number, step: number, all: boolean): Promise<{ checks: Check[]; unreachable?: Unreachable }> {
  const provider = new PrometheusMetricsProvider(client);
  const analysis = canary.spec.analysis;
  const checks: Check[] = [];
  let state: AnalysisState = startState();
  let ended: Check | undefined;
  for (let t = start + step; t <= end; t += step) {
    const at = new Date(t);
    const observation = (await observeAll(provider, [canary], step, at)).get(canaryKey(canary));
    if (client.unreachable !== undefined) return { checks, unreachable: client.unreachable };
    if (observation === undefined) break;
    const decision = decide(analysis, state, observation);
    const metrics = decision.verdicts.map(metricEntry);
    if (ended !== undefined) {
      // After the rollout would have ended, the traffic is still judged, but nothing more is decided.
      checks.push({ at: at.toISOString(), decision: 'ended', reason: `after the ${ended.decision === 'promote' ? 'promotion' : 'rollback'} at ${ended.at}: judged, nothing decided`, metrics });
      continue;
    }
    state = decision.state;
    const check: Check = { at: at.toISOString(), decision: decision.action, reason: decision.reason, metrics };
    checks.push(check);
    if (decision.action === 'promote' || decision.action === 'rollback') {
      ended = check;
      if (!all) break;
    }
  }
  return { checks };
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

function text(checks: Check[], summary: { canary: string; outcome: string; decidedAt: string | null; reason: string | null; checks: number; verdicts: Record<string, number>; queriesSent: number; step: string; end: string }, all: boolean): string {
  const lines = [`backtest of ${KIND} ${summary.canary}, a check every ${summary.step}`, ''];
  for (const check of checks) {
    lines.push(`${check.at}  ${check.decision.padEnd(8)}  ${check.reason}`);
    for (const m of check.metrics) lines.push(`    ${m.name.padEnd(16)} ${m.verdict.padEnd(12)} ${m.reason}`);
  }
  const verdicts = Object.entries(summary.verdicts).map(([k, n]) => `${n} ${k}`).join(', ');
  const outcome =
    summary.decidedAt === null ? 'no decision in this range' : `would have ${summary.outcome === 'promoted' ? 'promoted' : 'rolled back'} at ${summary.decidedAt} because ${summary.reason ?? ''}`;
  const stopped = summary.decidedAt !== null && !all && summary.decidedAt !== summary.end ? ' (replay stopped there; --all goes on to the end of the range)' : '';
  lines.push('', `summary: ${outcome}`, `${summary.checks} checks${stopped}; metric verdicts: ${verdicts}; ${summary.queriesSent} queries sent`);
  return `${lines.join('\n')}\n`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * A time as the flags take it, in milliseconds since the epoch, or undefined: RFC 3339, Unix
 * seconds, `now`, or a duration before `now` (-1h, -10m, now-1h30m).
 */
export function parseTime(text: string, now: number = Date.now()): number | undefined {
  if (text === 'now') return now;
  const before = /^(?:now)?-(.+)$/.exec(text)?.[1];
  if (before !== undefined) {
    const ms = parseDuration(before);
    return ms === undefined ? undefined : now - ms;
  }
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}
