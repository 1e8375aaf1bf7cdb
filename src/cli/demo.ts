// `modelcanary demo`: two real rollouts on this machine, with no cluster. The sandbox API
// server stands in for Kubernetes, the simulated mesh for Istio and the models, the real
// Prometheus (when installed) scrapes the mesh, and the same controller as `modelcanary run`
// does the work. Everything it starts stops with it.

import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CustomObjectsApi, KubeConfig, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { GROUP, PLURAL, VERSION, type ModelCanary } from '../api/modelcanary.ts';
import type { ModelCanaryStatus } from '../api/status.ts';
import { parseDuration } from '../api/duration.ts';
import { checkModelCanary } from '../api/validate.ts';
import { formatMs, formatRatio, formatValue } from '../analysis/format.ts';
import { ScrapingMetricsProvider } from '../metrics/scrape-provider.ts';
import { createLogger } from '../observability/logger.ts';
import { startSandbox } from '../sandbox/sandbox.ts';
import { startMesh, type Mesh, type RouteChange, type WorkloadSpec } from '../sandbox/mesh/mesh.ts';
import { startLoad, type Load } from '../sandbox/mesh/load.ts';
import { prometheusMissing, startPrometheus, type RunningPrometheus } from '../sandbox/prometheus.ts';
import { parseCommand } from './args.ts';
import { EXIT, type Io } from './io.ts';
import { startController, type RunningController } from './run.ts';

const USAGE = `Usage: modelcanary demo [--keep] [--timeout 2m] [--rate N] [--without-prometheus]

Two rollouts on this machine, no cluster needed: a healthy upgrade that is promoted
10 → 30 → 100 %, and one whose canary starts failing at 30 % and is rolled back. An embedded
Kubernetes API server, a simulated Istio mesh with model servers and load, the real
Prometheus scraping it (when installed), and the real controller.

Flags:
  --keep                  leave everything running after the rollouts end, until Ctrl-C
  --timeout DURATION      give up when the rollouts have not ended by then; default 2m
  --rate N                requests per second sent to each model; default 60
  --without-prometheus    read the mesh's counters directly even when Prometheus is installed

Exit status: 0 when both rollouts end as expected, 1 when not (or interrupted), 2 on bad flags.
`;

const NAMESPACE = 'ml-serving';
const MANIFESTS = new URL('../../examples/demo/', import.meta.url);
// Failed is not an end (a held rollout resumes once fixed), but the demo stops there: nothing will fix it.
const TERMINAL = new Set(['Succeeded', 'RolledBack', 'Failed']);

/** What each demo ModelCanary is for, and what the demo does to its models. */
interface Role {
  file: string;
  name: string;
  expect: 'Succeeded' | 'RolledBack';
  story: string;
  /** Make the canary fail once the gateway sends it this share of traffic. */
  breakAt?: { weight: number; errorRate: number };
}

const ROLES: readonly Role[] = [
  { file: 'fraud-detector.yaml', name: 'fraud-detector', expect: 'Succeeded', story: 'a healthy upgrade' },
  { file: 'recommender.yaml', name: 'recommender', expect: 'RolledBack', story: 'its canary starts failing (25 % 5xx) once it reaches 30 %', breakAt: { weight: 30, errorRate: 0.25 } },
];

const HEALTHY = { errorRate: 0.001, latencyMs: 40, latencySpread: 0.25 };

interface Cast {
  role: Role;
  /** Parsed, for the demo's own use; `manifest` is what is applied. */
  canary: ModelCanary;
  manifest: KubernetesObject;
  others: KubernetesObject[];
  /** The canary weights the gateway applied, in order, without repeats. */
  weights: number[];
  status: ModelCanaryStatus;
  startedAt?: number;
  endedAt?: number;
  broken: boolean;
  load?: Load;
}

export async function runDemo(args: string[], io: Io, signal?: AbortSignal, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const parsed = parseCommand(
    'demo',
    args,
    { keep: { type: 'boolean' }, timeout: { type: 'string' }, rate: { type: 'string' }, 'without-prometheus': { type: 'boolean' } },
    USAGE,
    io,
  );
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const timeoutMs = parseDuration(values.timeout ?? '2m');
  if (timeoutMs === undefined || timeoutMs <= 0) {
    io.stderr.write(`modelcanary demo: --timeout must be a duration such as 90s or 2m, not ${values.timeout ?? ''}\n`);
    return EXIT.unreadable;
  }
  const rate = Number(values.rate ?? '60');
  if (!Number.isFinite(rate) || rate < 1 || rate > 2000) {
    io.stderr.write(`modelcanary demo: --rate must be a number of requests per second from 1 to 2000, not ${values.rate ?? ''}\n`);
    return EXIT.unreadable;
  }

  const cast = await readCast();
  if (typeof cast === 'string') {
    io.stderr.write(`modelcanary demo: ${cast}\n`);
    return EXIT.unreadable;
  }

  // Ctrl-C (or the caller's signal) ends the run at any point; cleanup runs either way.
  const interrupted = new AbortController();
  const interrupt = (): void => {
    interrupted.abort();
  };
  signal?.addEventListener('abort', interrupt, { once: true });
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);

  const out = new Output(io);
  const stack: (() => Promise<void>)[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'modelcanary-demo-'));
  stack.push(() => rm(dir, { recursive: true, force: true }));
  try {
    out.line('modelcanary demo: two model rollouts on a simulated Istio mesh, judged by the real controller');
    out.line('');

    const sandbox = await startSandbox({ namespaces: [NAMESPACE] });
    stack.push(() => sandbox.stop());
    const kubeconfigFile = join(dir, 'kubeconfig');
    await writeFile(kubeconfigFile, sandbox.kubeconfig({ namespace: NAMESPACE }));
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(sandbox.kubeconfig({ namespace: NAMESPACE }));
    const objects = KubernetesObjectApi.makeApiClient(kubeConfig);
    for (const member of cast) for (const object of member.others) await objects.create(object);

    const mesh = await startMesh({ kubeConfig, workloads: cast.flatMap(workloadsOf) });
    stack.push(() => mesh.stop());
    mesh.onRouteChange((change) => {
      routeChanged(change, cast, mesh, out);
    });

    for (const member of cast) {
      const host = `${member.canary.spec.stable.destination.host}.${NAMESPACE}.svc.cluster.local`;
      member.load = startLoad({ url: mesh.ingressUrl, host, path: `/v1/models/${member.canary.spec.model}:predict`, ratePerSecond: rate });
      const load = member.load;
      stack.push(() => load.stop());
    }

    const metricsSource = await startMetrics(values['without-prometheus'] === true, mesh, env, stack, interrupted.signal);
    if (metricsSource === undefined) return interruptedExit(out);

    const logFile = join(dir, 'controller.log');
    const logStream = createWriteStream(logFile);
    stack.push(() => new Promise((resolve) => logStream.end(resolve)));
    const controller: RunningController = await startController({
      kubeConfig,
      namespaces: [NAMESPACE],
      metricsAddr: '127.0.0.1:0',
      defaultPrometheus: metricsSource.prometheus?.url ?? 'http://127.0.0.1:9',
      metricsProvider: metricsSource.direct,
      log: createLogger({ level: 'info', destination: logStream, pretty: false }),
    });
    stack.push(() => controller.stop());

    out.line(`  Kubernetes API (sandbox)  ${sandbox.url}`);
    out.line(
      metricsSource.prometheus === undefined
        ? `  Prometheus                ${metricsSource.without ?? 'none'}: reading the mesh's counters directly (apt-get install -y prometheus for the real thing)`
        : `  Prometheus                ${metricsSource.prometheus.url}  (scraping the mesh every 1 s)`,
    );
    out.line(`  ingress gateway           ${mesh.ingressUrl}  (${rate} requests/s to each model)`);
    out.line(`  mesh telemetry            ${mesh.metricsUrl}`);
    out.line(`  controller metrics        http://${controller.metricsAddress}/metrics`);
    out.line(`  controller log            ${logFile}`);
    out.line('');
    out.line(`  Inspect it while it runs${values.keep === true ? '' : ' (--keep leaves it running)'}:`);
    out.line(`    kubectl --kubeconfig ${kubeconfigFile} -n ${NAMESPACE} get modelcanaries,virtualservices`);
    out.line('');
    for (const member of cast) out.line(`  ${member.role.name.padEnd(15)} ${member.canary.spec.stable.version} → ${member.canary.spec.canary.version}   ${member.role.story}`);
    out.line('');

    const started = Date.now();
    out.clock = () => Date.now() - started;
    const canaries = kubeConfig.makeApiClient(CustomObjectsApi);
    for (const member of cast) await objects.create(member.manifest);

    const ended = await follow(cast, canaries, out, started + timeoutMs, interrupted.signal);
    out.finishLive();
    if (ended === 'interrupted') return interruptedExit(out);
    const asExpected = summarize(cast, ended === 'ended', timeoutMs, out);

    if (values.keep === true && !interrupted.signal.aborted) {
      out.line('');
      out.line('Everything keeps running (load, mesh, Prometheus, controller, API server). Ctrl-C stops it all.');
      await new Promise<void>((resolve) => {
        if (interrupted.signal.aborted) resolve();
        interrupted.signal.addEventListener('abort', () => {
          resolve();
        }, { once: true });
      });
    }
    return asExpected ? EXIT.ok : EXIT.invalid;
  } catch (error) {
    out.finishLive();
    io.stderr.write(`modelcanary demo: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT.unreadable;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    signal?.removeEventListener('abort', interrupt);
    for (const stop of stack.reverse()) await stop().catch(() => undefined);
  }
}

function interruptedExit(out: Output): number {
  out.finishLive();
  out.line('Interrupted: stopping everything.');
  return EXIT.invalid;
}

/** The demo ModelCanaries and their routes, from examples/demo. */
async function readCast(): Promise<Cast[] | string> {
  const cast: Cast[] = [];
  for (const role of ROLES) {
    const file = fileURLToPath(new URL(role.file, MANIFESTS));
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      return `cannot read ${file}: ${(error as Error).message}`;
    }
    const documents = parseAllDocuments(text).map((d) => d.toJS() as KubernetesObject);
    const manifest = documents.find((d) => d.kind === 'ModelCanary' && d.metadata?.name === role.name);
    const checked = checkModelCanary(structuredClone(manifest));
    if (!checked.ok) return `${file}: ModelCanary ${role.name} is not valid: ${checked.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`;
    cast.push({ role, canary: checked.value, manifest: manifest as KubernetesObject, others: documents.filter((d) => d !== manifest), weights: [], status: {}, broken: false });
  }
  return cast;
}

function workloadsOf(member: Cast): WorkloadSpec[] {
  const { spec } = member.canary;
  return [spec.stable, spec.canary].map((target) => ({
    name: `${spec.model}-${target.version}`,
    namespace: NAMESPACE,
    service: target.destination.host,
    labels: { app: spec.model, version: target.version },
    behaviour: HEALTHY,
  }));
}

/** The gateway applied a VirtualService: note the canary's weight, and break the canary on cue. */
function routeChanged(change: RouteChange, cast: Cast[], mesh: Mesh, out: Output): void {
  const member = cast.find((m) => m.canary.spec.trafficRouting.istio?.virtualService === change.name && change.namespace === NAMESPACE);
  if (member === undefined) return;
  const managed = member.canary.spec.trafficRouting.istio?.routes;
  const route = change.routes.find((r) => managed === undefined || r.name === undefined || managed.includes(r.name));
  const weight = route?.destinations.find((d) => d.subset === member.canary.spec.canary.destination.subset)?.weight ?? 0;
  if (member.weights.at(-1) !== weight) member.weights.push(weight);
  const breakAt = member.role.breakAt;
  if (breakAt !== undefined && !member.broken && weight >= breakAt.weight && weight < 100) {
    member.broken = true;
    const { model, canary } = member.canary.spec;
    mesh.workload(`${model}-${canary.version}`).set({ errorRate: breakAt.errorRate });
    out.event(`${member.role.name}: the gateway sends ${canary.version} ${weight} % of the traffic; the demo now makes ${formatRatio(breakAt.errorRate)} of its answers 5xx`);
  }
}

interface MetricsSource {
  prometheus?: RunningPrometheus | undefined;
  direct?: ScrapingMetricsProvider | undefined;
  /** Why there is no Prometheus. */
  without?: string | undefined;
}

/** Prometheus scraping the mesh when installed (waiting until it has), else the mesh's counters read directly. */
async function startMetrics(withoutPrometheus: boolean, mesh: Mesh, env: NodeJS.ProcessEnv, stack: (() => Promise<void>)[], signal: AbortSignal): Promise<MetricsSource | undefined> {
  const without = withoutPrometheus ? 'not used (--without-prometheus)' : prometheusMissing(env.PATH) === undefined ? undefined : 'not installed';
  if (without !== undefined) {
    const direct = new ScrapingMetricsProvider({ url: mesh.metricsUrl });
    direct.start();
    stack.push(() => {
      direct.stop();
      return Promise.resolve();
    });
    // Two scrapes make the first difference.
    await sleep(2_500, signal);
    return signal.aborted ? undefined : { direct, without };
  }
  const prometheus = await startPrometheus({ scrapeTargets: [mesh.metricsTarget] });
  stack.push(() => prometheus.stop());
  // Prometheus's first scrape comes about 5 s after it starts; a rollout judged before would hold for no data.
  const deadline = Date.now() + 30_000;
  while (!signal.aborted && Date.now() < deadline) {
    if (await hasMeshSamples(prometheus.url)) return { prometheus };
    await sleep(250, signal);
  }
  if (signal.aborted) return undefined;
  throw new Error(`Prometheus at ${prometheus.url} has not scraped the mesh at ${mesh.metricsUrl} within 30 s`);
}

async function hasMeshSamples(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent('count(istio_requests_total)')}`, { signal: AbortSignal.timeout(2_000) });
    const body = (await response.json()) as { data?: { result?: unknown[] } };
    return (body.data?.result?.length ?? 0) > 0;
  } catch {
    return false;
  }
}

/** Follows the ModelCanaries until every one has ended, the deadline passes, or the run is interrupted. */
async function follow(cast: Cast[], api: CustomObjectsApi, out: Output, deadline: number, signal: AbortSignal): Promise<'ended' | 'timeout' | 'interrupted'> {
  for (;;) {
    if (signal.aborted) return 'interrupted';
    const list = (await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NAMESPACE, plural: PLURAL }).catch(() => undefined)) as { items?: { metadata?: { name?: string }; status?: ModelCanaryStatus }[] } | undefined;
    for (const item of list?.items ?? []) {
      const member = cast.find((m) => m.role.name === item.metadata?.name);
      if (member === undefined) continue;
      const status = item.status ?? {};
      const before = member.status;
      member.status = status;
      if (status.phase !== undefined && member.startedAt === undefined) member.startedAt = Date.now();
      if (TERMINAL.has(status.phase ?? '') && member.endedAt === undefined) member.endedAt = Date.now();
      if (status.lastAnalysis?.time !== before.lastAnalysis?.time || status.phase !== before.phase || status.canaryWeight !== before.canaryWeight) out.progress(member, before);
    }
    out.live(cast);
    if (cast.every((m) => TERMINAL.has(m.status.phase ?? ''))) return 'ended';
    if (Date.now() > deadline) return 'timeout';
    await sleep(250, signal);
  }
}

function summarize(cast: Cast[], ended: boolean, timeoutMs: number, out: Output): boolean {
  out.line('');
  out.line('Summary');
  let allAsExpected = ended;
  for (const member of cast) {
    const { status, role } = member;
    const { stable, canary } = member.canary.spec;
    const phase = status.phase ?? 'Pending';
    const asExpected = phase === role.expect && (role.expect === 'Succeeded' ? member.weights.at(-1) === 100 : member.weights.at(-1) === 0);
    if (!asExpected) allAsExpected = false;
    const tally = member.load?.stats().byVersion[canary.version] ?? { ok: 0, failed: 0 };
    const took = member.startedAt !== undefined && member.endedAt !== undefined ? ` after ${Math.round((member.endedAt - member.startedAt) / 1000)} s` : '';
    const what =
      phase === 'Succeeded' ? `${canary.version} promoted${took}` : phase === 'RolledBack' ? `${canary.version} rolled back to ${stable.version}${took}` : `${phase} at ${status.canaryWeight ?? 0} %`;
    out.line(`  ${role.name.padEnd(15)} ${phase.padEnd(11)} ${asExpected ? 'as expected' : `expected ${role.expect}`}: ${what}`);
    out.line(`  ${''.padEnd(15)} canary weights applied by the gateway: ${member.weights.map((w) => `${w} %`).join(' → ') || 'none'}`);
    out.line(`  ${''.padEnd(15)} ${canary.version} served ${tally.ok + tally.failed} requests, ${tally.failed} failed`);
    if (status.lastAnalysis !== undefined) out.line(`  ${''.padEnd(15)} last check: ${status.lastAnalysis.decision}: ${status.lastAnalysis.reason}`);
  }
  out.line('');
  if (!ended) out.line(`Not every rollout ended within ${Math.round(timeoutMs / 1000)} s.`);
  out.line(allAsExpected ? 'Both rollouts ended as expected.' : 'The rollouts did not end as expected.');
  return allAsExpected;
}

/** Progress for people: redrawn lines on a terminal, one plain line per change otherwise. */
class Output {
  private readonly io: Io;
  private readonly tty: boolean;
  private drawn = 0;
  clock: () => number = () => 0;

  constructor(io: Io) {
    this.io = io;
    this.tty = (io.stdout as { isTTY?: boolean }).isTTY === true;
  }

  line(text: string): void {
    this.clearLive();
    this.io.stdout.write(`${text}\n`);
  }

  /** Something the demo did, with the time since the rollouts started. */
  event(text: string): void {
    this.line(`${stamp(this.clock())} ${text}`);
  }

  /** A check, a step or an end, as one line; on a terminal the live lines show the same. */
  progress(member: Cast, before: ModelCanaryStatus): void {
    const { status } = member;
    const weight = status.canaryWeight ?? 0;
    const moved = before.canaryWeight === undefined || before.canaryWeight === weight ? `${weight} %` : `${before.canaryWeight} % → ${weight} %`;
    const why = status.lastAnalysis === undefined || status.lastAnalysis.metrics.length === 0 ? 'rollout started' : `${status.lastAnalysis.decision}: ${verdictNumbers(member)}`;
    if (this.tty && status.lastAnalysis?.decision === 'hold') return;
    this.event(`${member.role.name.padEnd(15)} ${moved.padEnd(12)} ${(status.phase ?? '').padEnd(11)} ${why}`);
  }

  live(cast: Cast[]): void {
    if (!this.tty) return;
    this.clearLive();
    // A line wider than the terminal wraps, and the cursor would then go back too few lines.
    const width = (this.io.stdout as { columns?: number }).columns ?? 120;
    for (const member of cast) this.io.stdout.write(`${liveLine(member).slice(0, Math.max(20, width - 1))}\n`);
    this.drawn = cast.length;
  }

  finishLive(): void {
    this.drawn = 0;
  }

  private clearLive(): void {
    if (!this.tty || this.drawn === 0) return;
    this.io.stdout.write(`\u001b[${this.drawn}A\u001b[J`);
    this.drawn = 0;
  }
}

function liveLine(member: Cast): string {
  const weight = member.status.canaryWeight ?? 0;
  const filled = Math.round(weight / 5);
  const bar = `[${'█'.repeat(filled)}${'░'.repeat(20 - filled)}]`;
  return `  ${member.role.name.padEnd(15)} ${bar} ${String(weight).padStart(3)} %  ${(member.status.phase ?? 'Pending').padEnd(11)} ${verdictNumbers(member)}`;
}

/** The last check's verdicts in numbers: `error-rate pass 0.19 % (stable 0.10 %) · p99 pass 71 ms (stable 69 ms)`. */
function verdictNumbers(member: Cast): string {
  const analysis = member.status.lastAnalysis;
  if (analysis === undefined || analysis.metrics.length === 0) return 'waiting for the first check';
  // A rollback between checks has the sequential test's numbers in its reason, not per metric.
  if (analysis.metrics.every((m) => typeof m.canary !== 'number')) return analysis.reason;
  return analysis.metrics
    .map((m) => {
      const type = member.canary.spec.analysis.metrics.find((d) => d.name === m.name)?.type;
      const format = (value: number | null | undefined): string => (typeof value !== 'number' ? '–' : type === 'errorRate' ? formatRatio(value) : type === 'latency' ? formatMs(value) : formatValue(value));
      return `${m.name} ${m.verdict} ${format(m.canary)} (stable ${format(m.stable)})`;
    })
    .join(' · ');
}

function stamp(ms: number): string {
  return `[${String(Math.round(ms / 1000)).padStart(3)} s]`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

