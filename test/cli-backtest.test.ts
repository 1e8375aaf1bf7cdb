import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROMETHEUS_MISSING, startPrometheus, type RunningPrometheus } from './helpers/prometheus.ts';
import { modelcanary } from './helpers/cli.ts';
import { parseTime } from '../src/cli/backtest.ts';

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
const scratch = mkdtempSync(join(tmpdir(), 'modelcanary-backtest-'));
before(async () => {
  if (PROMETHEUS_MISSING === undefined) prometheus = await startPrometheus({ openMetrics: incident() });
});
after(async () => {
  await prometheus?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** The scenarios' canary with its own metricsProvider, as a team would write it. */
function canaryWith(name: string, provider: string): string {
  const path = join(scratch, name);
  writeFileSync(path, `${readFileSync(CANARY, 'utf8').trimEnd()}\n  metricsProvider:\n${provider}`);
  return path;
}

/** A port on loopback that nothing listens on: bound, then closed, so a connection is refused at once. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => {
        resolve(port);
      });
    });
  });
}


// The recommended settings of the scenarios: four 30 s checks per step, so the incident comes
// before promotion would have.
const CANARY = 'examples/scenarios/canary.yaml';
const range = ['--start', '2026-01-01T00:00:00Z', '--end', String(T0 + 600)];

test('backtest says when and why the controller would have rolled back, exit 1, and --all replays the rest', { skip: PROMETHEUS_MISSING }, async () => {
  const run = await modelcanary(['backtest', '--canary', CANARY, '--prometheus', prometheus?.url ?? '', ...range, '--json', '--all']);
  assert.equal(run.code, 1, run.stderr);
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
  assert.match(last.reason, /^after the rollback at 2026-01-01T00:05:30\.000Z: judged, nothing decided$/);

  // Without --all the replay ends where the rollout would have.
  const stopped = await modelcanary(['backtest', '--canary', CANARY, '--prometheus', prometheus?.url ?? '', ...range, '--json']);
  assert.equal(stopped.code, 1, stopped.stderr);
  const replayed = JSON.parse(stopped.stdout) as { checks: Check[]; summary: Record<string, string> };
  assert.equal(replayed.checks.length, 11);
  assert.equal(replayed.checks.at(-1)?.decision, 'rollback');
  assert.equal(replayed.summary.decidedAt, '2026-01-01T00:05:30.000Z');
});

test('backtest prints a readable timeline that ends at the decision, and a summary', { skip: PROMETHEUS_MISSING }, async () => {
  const run = await modelcanary(['backtest', '--canary', CANARY, '--prometheus', prometheus?.url ?? '', ...range]);
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stdout, /^backtest of ModelCanary ml-serving\/fraud-detector, a check every 30s$/m);
  assert.match(run.stdout, /^2026-01-01T00:05:30\.000Z {2}rollback {2}rolled back at once: error-rate:/m);
  assert.doesNotMatch(run.stdout, /^\S+ {2}ended /m, 'nothing is replayed after the decision');
  assert.match(run.stdout, /^summary: would have rolled back at 2026-01-01T00:05:30\.000Z because /m);
  assert.match(run.stdout, /^11 checks \(replay stopped there; --all goes on to the end of the range\);/m);
});

test("backtest reads the spec's Prometheus address when --prometheus is not given", { skip: PROMETHEUS_MISSING }, async () => {
  const own = canaryWith('own-address.yaml', `    prometheus: {address: ${prometheus?.url ?? ''}}\n`);
  const run = await modelcanary(['backtest', '--canary', own, ...range, '--json']);
  assert.equal(run.code, 1, run.stderr);
  const { summary } = JSON.parse(run.stdout) as { summary: Record<string, string> };
  assert.equal(summary.prometheus, prometheus?.url);
  assert.equal(summary.outcome, 'rolledBack');
});

test('backtest takes times relative to now: --start -1h --end now, and --since', { skip: PROMETHEUS_MISSING }, async () => {
  for (const args of [['--start', '-1h', '--end', 'now'], ['--since', '1h'], ['--start=now-1h30m', '--end', '-30m']]) {
    const run = await modelcanary(['backtest', '--canary', CANARY, '--prometheus', prometheus?.url ?? '', ...args, '--step', '10m', '--json']);
    assert.equal(run.code, 0, `${args.join(' ')}: ${run.stderr}`);
    const { summary } = JSON.parse(run.stdout) as { summary: { start: string; end: string; checks: number; outcome: string } };
    // Both ends come from the same "now": the range is exactly an hour, six checks of 10 minutes.
    assert.equal(Date.parse(summary.end) - Date.parse(summary.start), 3_600_000, args.join(' '));
    assert.equal(summary.checks, 6);
    assert.equal(summary.outcome, 'undecided', 'no traffic was recorded in the last hour');
  }
});

test('the times backtest takes, absolute and relative', () => {
  const now = Date.parse('2026-11-14T15:00:00Z');
  const cases: [string, string | undefined][] = [
    ['2026-11-14T14:00:00Z', '2026-11-14T14:00:00.000Z'],
    ['2026-11-14T16:00:00+02:00', '2026-11-14T14:00:00.000Z'],
    ['1763128800', '2025-11-14T14:00:00.000Z'],
    ['now', '2026-11-14T15:00:00.000Z'],
    ['-1h', '2026-11-14T14:00:00.000Z'],
    ['-10m', '2026-11-14T14:50:00.000Z'],
    ['now-1h30m', '2026-11-14T13:30:00.000Z'],
    ['yesterday', undefined],
    ['-1 hour', undefined],
    ['2026-11-14', undefined],
  ];
  for (const [text, expected] of cases) {
    const ms = parseTime(text, now);
    assert.equal(ms === undefined ? undefined : new Date(ms).toISOString(), expected, text);
  }
});

test('backtest stops at the first query Prometheus cannot answer: one line naming the address, exit 2', async () => {
  const port = await closedPort();
  const run = await modelcanary(['backtest', '--canary', CANARY, '--prometheus', `http://127.0.0.1:${port}`, '--since', '3h']);
  assert.equal(run.code, 2);
  assert.equal(run.stdout, '');
  assert.equal(
    run.stderr,
    `modelcanary backtest: cannot reach Prometheus at http://127.0.0.1:${port}: the connection was refused (nothing listens at that address and port); check --prometheus\n`,
  );
  // The spec's own address, unreachable from here, gets the port-forward that brings it here.
  const own = canaryWith('cluster-address.yaml', `    prometheus: {address: 'http://127.0.0.1:${port}'}\n`);
  const fromSpec = await modelcanary(['backtest', '--canary', own, '--since', '3h']);
  assert.equal(fromSpec.code, 2);
  assert.match(fromSpec.stderr, new RegExp(`^modelcanary backtest: cannot reach Prometheus at http://127\\.0\\.0\\.1:${port}: .*the address is the spec's \\(metricsProvider\\.prometheus\\.address\\); pass --prometheus URL for one reachable from here\n$`));
});

/** A Prometheus behind a proxy that wants a bearer token: 401 without it, an empty answer with it. */
async function guarded(token: string): Promise<{ url: string; server: Server }> {
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      if (request.headers.authorization !== `Bearer ${token}`) {
        response.writeHead(401, { 'content-type': 'text/plain' }).end('Unauthorized');
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [] } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

test("a Prometheus that wants the credentials of the spec's Secret: one line saying so, and --token-file supplies them", async () => {
  const prom = await guarded('s3cret');
  try {
    const own = canaryWith('secret.yaml', `    prometheus: {address: '${prom.url}', secretRef: {name: prometheus-reader}}\n`);
    const refused = await modelcanary(['backtest', '--canary', own, '--start', '2026-01-01T00:00:00Z', '--end', '2026-01-01T00:05:00Z']);
    assert.equal(refused.code, 2);
    assert.equal(
      refused.stderr,
      `modelcanary backtest: Prometheus at ${prom.url} refused the query (HTTP 401): it needs credentials; the spec's credentials are in the Secret ml-serving/prometheus-reader, which backtest does not read: pass --token-file FILE with its token\n`,
    );
    const token = join(scratch, 'token');
    writeFileSync(token, 's3cret\n');
    const run = await modelcanary(['backtest', '--canary', own, '--start', '2026-01-01T00:00:00Z', '--end', '2026-01-01T00:05:00Z', '--token-file', token]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^summary: no decision in this range$/m);
  } finally {
    prom.server.close();
  }
});

test('backtest needs --prometheus when the spec names an operator\'s provider or none', async () => {
  const named = canaryWith('named.yaml', '    name: team-thanos\n');
  const run = await modelcanary(['backtest', '--canary', named, '--since', '1h']);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /^modelcanary backtest: spec\.metricsProvider\.name is "team-thanos", a provider the operator defined .*: pass --prometheus URL\n$/);
  const none = await modelcanary(['backtest', '--canary', CANARY, '--since', '1h']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^modelcanary backtest: the spec names no Prometheus .*: pass --prometheus URL/);
});

test('backtest refuses bad arguments with the field to fix, exit 2', async () => {
  const run = await modelcanary(['backtest', '--canary', 'examples/fraud-detector-istio.yaml', '--prometheus', 'localhost', '--start', 'yesterday', '--end', '1767225600']);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /^modelcanary backtest: --start: "yesterday" is not an RFC 3339 time \(2026-11-14T14:00:00Z\), Unix seconds, now, or a duration before now such as -1h$/m);
  assert.match(run.stderr, /^modelcanary backtest: --prometheus: "localhost" is not a URL/m);
  const missing = await modelcanary(['backtest', '--canary', 'examples/fraud-detector-istio.yaml']);
  assert.equal(missing.code, 2);
  assert.equal(missing.stderr, 'modelcanary backtest: --since DURATION or --start T is required; see modelcanary backtest --help\n');
  const both = await modelcanary(['backtest', '--canary', CANARY, '--since', '1h', '--start', '-2h']);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /give --since or --start, not both/);
  const misspelt = canaryWith('misspelt.yaml', '    name: x\n');
  writeFileSync(misspelt, readFileSync(misspelt, 'utf8').replace('kind: ModelCanary', 'kind: ModelCanery'));
  const typo = await modelcanary(['backtest', '--canary', misspelt, '--since', '1h', '--prometheus', 'http://127.0.0.1:9']);
  assert.equal(typo.code, 1, 'an invalid canary is judged bad');
  assert.equal(typo.stderr, `${misspelt}: kind: "ModelCanery": did you mean ModelCanary?\n`);
});
