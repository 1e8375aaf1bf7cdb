import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PROMETHEUS_MISSING, startPrometheus, type RunningPrometheus } from './helpers/prometheus.ts';
import { modelcanary } from './helpers/cli.ts';

// Last week's incident, replayed: v2 served clean traffic for five minutes, then 5xx.
const T0 = 1767225600;
const LABELS = (revision: string): string =>
  `reporter="destination",destination_workload_namespace="ml-serving",destination_canonical_service="fraud-detector",destination_canonical_revision="${revision}"`;

function incident(): string {
  const lines = ['# TYPE istio_requests counter'];
  for (const [revision, perStep] of [['v1', 270], ['v2', 30]] as const) {
    for (let s = 0; s <= 40; s++) lines.push(`istio_requests_total{${LABELS(revision)},response_code="200"} ${perStep * s} ${T0 + 15 * s}`);
    for (let s = 0; s <= 40; s++) lines.push(`istio_requests_total{${LABELS(revision)},response_code="500"} ${revision === 'v2' ? 6 * Math.max(0, s - 20) : 0} ${T0 + 15 * s}`);
  }
  lines.push('# TYPE istio_request_duration_milliseconds histogram');
  for (let s = 0; s <= 40; s++) {
    for (const [revision, perStep] of [['v1', 270], ['v2', 30]] as const) {
      for (const le of ['100', '250', '+Inf']) lines.push(`istio_request_duration_milliseconds_bucket{${LABELS(revision)},le="${le}"} ${(le === '100' ? 0.9 * perStep : perStep) * s} ${T0 + 15 * s}`);
    }
  }
  lines.push('# EOF');
  return `${lines.join('\n')}\n`;
}

let prometheus: RunningPrometheus | undefined;
before(async () => {
  if (PROMETHEUS_MISSING === undefined) prometheus = await startPrometheus({ openMetrics: incident() });
});
after(() => prometheus?.stop());


// The recommended settings of the scenarios: four 30 s checks per step, so the incident comes
// before promotion would have.
const CANARY = 'examples/scenarios/canary.yaml';
const range = ['--start', '2026-01-01T00:00:00Z', '--end', String(T0 + 600)];

test('backtest says when and why the controller would have rolled back', { skip: PROMETHEUS_MISSING }, async () => {
  const run = await modelcanary(['backtest', '--canary', CANARY, '--prometheus', prometheus?.url ?? '', ...range, '--json']);
  assert.equal(run.code, 0, run.stderr);
  interface Check {
    at: string;
    decision: string;
    reason: string;
    metrics: { name: string; stable: number | null; canary: number | null; verdict: string; reason: string }[];
  }
  const { checks, summary } = JSON.parse(run.stdout) as { checks: Check[]; summary: Record<string, string> };
  assert.equal(checks.length, 20);
  const [first, second] = checks;
  const incident = checks[10];
  const last = checks.at(-1);
  assert.ok(first !== undefined && second !== undefined && incident !== undefined && last !== undefined);
  assert.deepEqual(Object.keys(first), ['at', 'decision', 'reason', 'metrics']);
  assert.deepEqual(Object.keys(first.metrics[0] ?? {}), ['name', 'stable', 'canary', 'verdict', 'reason']);
  // v2 served 60 requests per 30 s check, under minRequests (100), so checks carry their
  // requests forward; and 0 errors in 120 requests is not yet enough to be sure of being under
  // max 2 % (at most 2.47 % at 95 %): the step advances once the carried requests
  // make the bound tight enough, and each interval judged counts toward checksPerStep.
  assert.deepEqual(
    checks.slice(0, 11).map((c) => c.decision),
    ['hold', 'hold', 'hold', 'hold', 'advance', 'hold', 'hold', 'hold', 'hold', 'advance', 'rollback'],
  );
  assert.match(first.reason, /canary served 60 requests in the window, fewer than minRequests \(100\)/);
  assert.equal(second.metrics[0]?.verdict, 'inconclusive');
  assert.equal(second.metrics[0].canary, 0);
  assert.match(second.metrics[0].reason, /not enough to judge against max 2\.00 % \(canary 0 of 120, at most 2\.47 % at 95 %/);
  assert.equal(incident.metrics[0]?.verdict, 'fail');
  assert.equal(summary.outcome, 'rolledBack');
  assert.equal(summary.decidedAt, '2026-01-01T00:05:30.000Z');
  assert.match(summary.reason ?? '', /^rolled back at once: error-rate: the sequential test finds the canary's 5xx rate above stable's/);
  assert.equal(last.decision, 'ended');
});

test('backtest prints a readable timeline and summary', { skip: PROMETHEUS_MISSING }, async () => {
  const run = await modelcanary(['backtest', '--canary', CANARY, '--prometheus', prometheus?.url ?? '', ...range]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^backtest of ModelCanary ml-serving\/fraud-detector, a check every 30s$/m);
  assert.match(run.stdout, /^2026-01-01T00:05:30\.000Z {2}rollback {2}rolled back at once: error-rate:/m);
  assert.match(run.stdout, /^summary: would have rolled back at 2026-01-01T00:05:30\.000Z because /m);
});

test('backtest refuses bad arguments with the field to fix', async () => {
  const run = await modelcanary(['backtest', '--canary', 'examples/fraud-detector-istio.yaml', '--prometheus', 'localhost', '--start', 'yesterday', '--end', '1767225600']);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /--start: "yesterday" is not an RFC 3339 time or Unix seconds/);
  assert.match(run.stderr, /--prometheus: "localhost" is not a URL/);
  const missing = await modelcanary(['backtest', '--canary', 'examples/fraud-detector-istio.yaml']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /--prometheus, --start, --end required/);
});
