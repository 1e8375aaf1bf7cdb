// What one controller replica costs at scale (the scale issue: 10,000 active ModelCanaries,
// interval 30 s, watchInterval 10 s, two built-in metrics each): the real controller process
// (`node bin/modelcanary.js run`) against the in-memory API server (src/sandbox) and a real
// Prometheus scraping Istio's standard metrics for every version (20 requests/s each, no errors,
// p99 under 250 ms), with counting proxies in front of both. Prints one JSON object on stdout;
// progress goes to stderr.
//
//   node bench/scale.ts --canaries N [--interval 30s] [--watch-interval 10s] [--measure 60s]
//                       [--scrape-interval 10s] [--log FILE] [--query-log FILE]
//
// How requests are counted, at the proxies, while every ModelCanary is Progressing, from one
// interval after the last one started (so that every rollout has had its first check):
// - API reads are GET requests: get, list and watch. A watch counts once, when it is opened;
//   the events it streams afterwards are not requests. Writes are POST, PUT, PATCH and DELETE.
//   Connections are the TCP connections the controller opened to the API proxy while measured
//   (connections kept alive from before count nothing).
// - Prometheus queries are requests to /api/v1/query and /api/v1/query_range, GET or POST.
// Counts are given per interval: count × interval / measured time.
//
// After the measurement: lateChecks is how many ModelCanaries then have a last check more than
// 5 s older than the interval (none at all counts too); firstRouteWriteMs is the median, over
// five edits spread over a watch interval, of the time from a new canary version (which
// restarts the rollout at its first step) to the VirtualService changing.
//
// What the harness itself costs shares the machine with the controller: the sandbox, both
// proxies and the exporter run in this process, Prometheus in its own. Their CPU is reported
// under `harness`, so that a controller starved by its harness can be told apart.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { parseDuration } from '../src/api/duration.ts';
import { GROUP, PLURAL, VERSION } from '../src/api/modelcanary.ts';
import { ISTIO_BUCKETS_MS } from '../src/api/observation.ts';
import { killAtExit, spareAtExit, startWatchdog, killWatchdog, whenExited, type Exit, describeExit } from '../src/sandbox/cleanup.ts';
import { prometheusMissing, startPrometheus, type RunningPrometheus } from '../src/sandbox/prometheus.ts';
import { kubeconfigFor, startSandbox } from '../src/sandbox/sandbox.ts';
import { startCountingProxy, type CountingProxy } from './counting-proxy.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NAMESPACE = 'scale';
/** Requests per second each version serves, all answered 2xx. */
const REQUESTS_PER_SECOND = 20;
/** ModelCanaries and their routes created at once, through the sandbox directly. */
const CREATE_CONCURRENCY = 16;
/** The controller's RSS is sampled this long after it starts, before any ModelCanary exists. */
const IDLE_AFTER_MS = 5_000;
/** A check is late when its last judgement is older than the interval plus this. */
const LATE_SLACK_MS = 5_000;
/** ModelCanaries whose canary is changed at the end, spread over a watch interval, to time the route write (the median is reported). */
const ROUTE_WRITE_SAMPLES = 5;
/** How long the controller may take to stop after SIGTERM before it is killed. */
const STOP_GRACE_MS = 10_000;

interface Options {
  canaries: number;
  intervalMs: number;
  watchIntervalMs: number;
  measureMs: number;
  scrapeIntervalMs: number;
  /** Where the controller logs, to keep; otherwise a file in the temporary folder. */
  logFile: string | undefined;
  /** Where each Prometheus query is logged (when it came, its instant, its first words). */
  queryLog: string | undefined;
}

const USAGE = 'usage: node bench/scale.ts --canaries N [--interval 30s] [--watch-interval 10s] [--measure 60s] [--scrape-interval 10s] [--log FILE] [--query-log FILE]';

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      canaries: { type: 'string' },
      interval: { type: 'string', default: '30s' },
      'watch-interval': { type: 'string', default: '10s' },
      measure: { type: 'string' },
      'scrape-interval': { type: 'string', default: '10s' },
      log: { type: 'string' },
      'query-log': { type: 'string' },
    },
  });
  const canaries = Number(values.canaries);
  if (!Number.isInteger(canaries) || canaries < 1) throw new Error(`--canaries must be a whole number of at least 1\n${USAGE}`);
  const duration = (flag: string, text: string): number => {
    const ms = parseDuration(text);
    if (ms === undefined || ms <= 0) throw new Error(`--${flag} must be a duration such as 30s, not ${text}\n${USAGE}`);
    return ms;
  };
  const intervalMs = duration('interval', values.interval);
  const watchIntervalMs = duration('watch-interval', values['watch-interval']);
  if (watchIntervalMs > intervalMs) throw new Error('--watch-interval must not be longer than --interval');
  return {
    canaries,
    intervalMs,
    watchIntervalMs,
    queryLog: values['query-log'],
    // Two intervals: every ModelCanary is checked at least once, whatever its phase in the interval.
    measureMs: values.measure === undefined ? 2 * intervalMs : duration('measure', values.measure),
    scrapeIntervalMs: duration('scrape-interval', values['scrape-interval']),
    logFile: values.log,
  };
}

// ── Progress and teardown ───────────────────────────────────────────────────────────────

const began = performance.now();

function say(text: string): void {
  process.stderr.write(`[scale +${((performance.now() - began) / 1000).toFixed(1)}s] ${text}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** Steps to undo, run last-added first, each once, even when one of them fails. */
class Teardown {
  private readonly steps: (() => Promise<void> | void)[] = [];
  private running: Promise<void> | undefined;

  add(step: () => Promise<void> | void): void {
    this.steps.push(step);
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (let step = this.steps.pop(); step !== undefined; step = this.steps.pop()) {
        try {
          await step();
        } catch (error) {
          say(`teardown: ${(error as Error).message}`);
        }
      }
    })();
    return this.running;
  }
}

/** Runs `work` over items with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

// ── The API server, directly and through the proxy ──────────────────────────────────────

type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';
const READS: ReadonlySet<string> = new Set<Verb>(['get', 'list', 'watch']);

/** Whether a key of classifyKube is a read. */
function isRead(key: string): boolean {
  return READS.has(key.split(' ')[0] ?? '');
}

/**
 * `<verb> <resource>[/<subresource>]` for a Kubernetes API request, as the API server's audit
 * log names it; discovery, /version, /openapi and health checks are `get discovery`.
 */
function classifyKube(method: string, url: URL): string {
  const segments = url.pathname.split('/').filter((s) => s !== '');
  const prefix = segments[0] === 'api' ? 2 : segments[0] === 'apis' ? 3 : undefined;
  if (prefix === undefined || segments.length <= prefix) return `${method === 'GET' ? 'get' : method.toLowerCase()} discovery`;
  let rest = segments.slice(prefix);
  const watchPath = rest[0] === 'watch';
  if (watchPath) rest = rest.slice(1);
  // namespaces/<ns>/<resource>/… is namespaced; namespaces and namespaces/<ns> are the Namespace kind.
  if (rest[0] === 'namespaces' && rest.length >= 3) rest = rest.slice(2);
  const [resource = '', name, subresource] = rest;
  const what = subresource === undefined ? resource : `${resource}/${subresource}`;
  const verb = ((): Verb => {
    switch (method) {
      case 'POST':
        return 'create';
      case 'PUT':
        return 'update';
      case 'PATCH':
        return 'patch';
      case 'DELETE':
        return name === undefined ? 'deletecollection' : 'delete';
      default: {
        const watch = watchPath || ['true', '1'].includes(url.searchParams.get('watch') ?? '');
        return watch ? 'watch' : name === undefined ? 'list' : 'get';
      }
    }
  })();
  return `${verb} ${what}`;
}

function classifyPrometheus(_method: string, url: URL): string | undefined {
  return url.pathname === '/api/v1/query' || url.pathname === '/api/v1/query_range' ? url.pathname : `other ${url.pathname}`;
}

const MODELCANARIES = `/apis/${GROUP}/${VERSION}/namespaces/${NAMESPACE}/${PLURAL}`;
const VIRTUALSERVICES = `/apis/networking.istio.io/v1/namespaces/${NAMESPACE}/virtualservices`;
const DESTINATIONRULES = `/apis/networking.istio.io/v1/namespaces/${NAMESPACE}/destinationrules`;

/** The few calls the harness makes to the sandbox itself, past the proxy, so that they are not counted. */
class Kube {
  private readonly base: string;

  constructor(base: string) {
    this.base = base;
  }

  async get(path: string): Promise<unknown> {
    return this.send('GET', path);
  }

  async create(path: string, body: object): Promise<void> {
    await this.send('POST', path, body, 'application/json');
  }

  async mergePatch(path: string, body: object): Promise<void> {
    await this.send('PATCH', path, body, 'application/merge-patch+json');
  }

  private async send(method: string, path: string, body?: object, contentType?: string): Promise<unknown> {
    const response = await fetch(`${this.base}${path}`, {
      method,
      headers: contentType === undefined ? {} : { 'content-type': contentType },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 400)}`);
    return JSON.parse(text) as unknown;
  }
}

const CanaryList = z.object({
  items: z.array(
    z.looseObject({
      metadata: z.looseObject({ name: z.string() }),
      status: z
        .looseObject({
          phase: z.string().optional(),
          message: z.string().optional(),
          lastAnalysis: z.looseObject({ judgedAt: z.string().optional() }).optional(),
        })
        .optional(),
    }),
  ),
});
type CanaryList = z.infer<typeof CanaryList>;

const VirtualService = z.looseObject({ spec: z.looseObject({ http: z.array(z.unknown()).optional() }) });

async function listCanaries(kube: Kube): Promise<CanaryList['items']> {
  return CanaryList.parse(await kube.get(MODELCANARIES)).items;
}

// ── What is rolled out ──────────────────────────────────────────────────────────────────

function modelName(i: number): string {
  return `model-${i}`;
}

/** The route and subsets of one model, shaped as test/helpers/fakes.ts meshFor; v3 is the canary of the route-write test. */
function meshOf(name: string): { virtualService: object; destinationRule: object } {
  const metadata = { name, namespace: NAMESPACE };
  return {
    virtualService: {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata,
      spec: { hosts: [name], http: [{ name: 'predict', route: [{ destination: { host: name, subset: 'v1' } }], timeout: '5s' }] },
    },
    destinationRule: {
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata,
      spec: { host: name, subsets: ['v1', 'v2', 'v3'].map((v) => ({ name: v, labels: { version: v } })) },
    },
  };
}

function modelCanaryOf(name: string, options: Options): object {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'ModelCanary',
    metadata: { name, namespace: NAMESPACE },
    spec: {
      model: name,
      stable: { version: 'v1', destination: { host: name, subset: 'v1' } },
      canary: { version: 'v2', destination: { host: name, subset: 'v2' } },
      trafficRouting: { istio: { virtualService: name } },
      analysis: {
        interval: `${options.intervalMs / 1000}s`,
        watchInterval: `${options.watchIntervalMs / 1000}s`,
        steps: [10, 30, 100],
        // Far more passing checks than the measurement lasts: every rollout stays Progressing.
        checksPerStep: 100,
        minRequests: 10,
        metrics: [
          { name: 'error-rate', type: 'errorRate', max: 0.05 },
          { name: 'p99', type: 'latency', quantile: 0.99, maxMs: 1000 },
        ],
      },
    },
  };
}

// ── Istio's telemetry, served to Prometheus ─────────────────────────────────────────────

interface Version {
  model: string;
  revision: string;
}

/** Share of requests at or under each bucket bound: p99 between 100 and 250 ms, well under the 1 s bound. */
function shareUnder(le: number): number {
  const shares: [number, number][] = [[5, 0.01], [10, 0.05], [25, 0.3], [50, 0.7], [100, 0.95], [250, 0.995], [500, 0.999]];
  if (le >= 1000) return 1;
  return shares.findLast(([bound]) => bound <= le)?.[1] ?? 0;
}

const MEAN_LATENCY_MS = 40;
/** Versions rendered per write: the text of 10,000 ModelCanaries is too big to build at once. */
const VERSIONS_PER_CHUNK = 500;

/**
 * An endpoint with Istio's standard request metrics for every version, as each version's
 * destination sidecars would export them (with the labels the controller's built-in queries
 * select on), counters growing at a steady rate of healthy requests.
 */
async function startIstioExporter(versions: readonly Version[]): Promise<{ target: string; stop(): Promise<void> }> {
  const started = Date.now();
  const labels = versions.map(
    (v) => `reporter="destination",destination_workload_namespace="${NAMESPACE}",destination_canonical_service="${v.model}",destination_canonical_revision="${v.revision}"`,
  );
  const chunks = Array.from({ length: Math.ceil(labels.length / VERSIONS_PER_CHUNK) }, (_, i) => labels.slice(i * VERSIONS_PER_CHUNK, (i + 1) * VERSIONS_PER_CHUNK));
  const bounds = ISTIO_BUCKETS_MS.map((le) => [String(le), shareUnder(le)] as const);

  const requestsText = (chunk: string[], served: number): string => chunk.map((l) => `istio_requests_total{${l},response_code="200"} ${served}\n`).join('');
  const latencyText = (chunk: string[], served: number): string =>
    chunk
      .map((l) => {
        const buckets = bounds.map(([le, share]) => `istio_request_duration_milliseconds_bucket{${l},le="${le}"} ${Math.floor(served * share)}\n`).join('');
        return `${buckets}istio_request_duration_milliseconds_bucket{${l},le="+Inf"} ${served}\nistio_request_duration_milliseconds_sum{${l}} ${served * MEAN_LATENCY_MS}\nistio_request_duration_milliseconds_count{${l}} ${served}\n`;
      })
      .join('');

  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    const served = Math.floor((REQUESTS_PER_SECOND * (Date.now() - started)) / 1000);
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    void (async () => {
      // A metric family's lines must stay together: every version's requests, then every version's histogram.
      const parts: (() => string)[] = [
        () => '# TYPE istio_requests_total counter\n',
        ...chunks.map((c) => () => requestsText(c, served)),
        () => '# TYPE istio_request_duration_milliseconds histogram\n',
        ...chunks.map((c) => () => latencyText(c, served)),
      ];
      for (const part of parts) {
        if (res.destroyed) return;
        if (!res.write(part())) await once(res, 'drain');
      }
      res.end();
    })();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    target: `127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}

const QueryAnswer = z.object({ status: z.literal('success'), data: z.object({ result: z.array(z.object({ value: z.tuple([z.number(), z.string()]) })) }) });

/** An instant query's first value, straight to Prometheus (not through the counting proxy). */
async function queryValue(prometheus: RunningPrometheus, query: string): Promise<number | undefined> {
  const response = await fetch(`${prometheus.url}/api/v1/query?${new URLSearchParams({ query }).toString()}`);
  const [first] = QueryAnswer.parse(await response.json()).data.result;
  return first === undefined ? undefined : Number(first.value[1]);
}

/** The preflight reads stable's counters, and a check's increase() needs two samples: wait for two good scrapes of every series. */
async function waitForScrapes(prometheus: RunningPrometheus, series: number, scrapeIntervalMs: number): Promise<void> {
  const deadline = Date.now() + 60_000 + 5 * scrapeIntervalMs;
  for (;;) {
    const scrapes = (await queryValue(prometheus, 'sum_over_time(up{job="mesh"}[1h])')) ?? 0;
    const stored = (await queryValue(prometheus, 'count(istio_requests_total)')) ?? 0;
    if (scrapes >= 2 && stored >= series) return;
    if (Date.now() > deadline) throw new Error(`Prometheus has ${scrapes} good scrapes and ${stored} of ${series} istio_requests_total series; the exporter may be too slow for the scrape timeout`);
    await sleep(1_000);
  }
}

/** Prometheus's own CPU seconds, from its /metrics. */
async function prometheusCpuSeconds(prometheus: RunningPrometheus): Promise<number> {
  const text = await (await fetch(`${prometheus.url}/metrics`)).text();
  return Number(/^process_cpu_seconds_total (\S+)$/m.exec(text)?.[1] ?? NaN);
}

// ── The controller process ──────────────────────────────────────────────────────────────

interface Controller {
  pid: number;
  logFile: string;
  /** Throws, with the end of its log, when the controller has exited. */
  assertAlive(): Promise<void>;
  stop(): Promise<void>;
}

async function spawnController(dir: string, kubeconfig: string, prometheusUrl: string, logFile: string): Promise<Controller> {
  const log = await open(logFile, 'w');
  // The operator's own MODELCANARY_* settings must not change what is measured.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('MODELCANARY_') && name !== 'KUBECONFIG'));
  const args = ['run', '--kubeconfig', kubeconfig, '--prometheus', prometheusUrl, '--namespace', NAMESPACE, '--metrics-addr', '127.0.0.1:0', '--log-level', 'warn'];
  const child: ChildProcess = spawn(process.execPath, [join(ROOT, 'bin/modelcanary.js'), ...args], { cwd: ROOT, env, stdio: ['ignore', log.fd, log.fd] });
  await log.close();
  const exited = whenExited(child);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`the controller did not start: ${describeExit(await exited)}`);
  // Killed even when this process dies of SIGKILL: the watchdog outlives it.
  const leftovers = { pids: [pid], dir };
  killAtExit(leftovers);
  const watchdog = startWatchdog('modelcanary-scale-watchdog', [pid], dir);
  let exit: Exit | undefined;
  void exited.then((e) => {
    exit = e;
  });

  return {
    pid,
    logFile,
    assertAlive: async () => {
      if (exit === undefined) return;
      const tail = (await readFile(logFile, 'utf8').catch(() => '')).slice(-4_000);
      throw new Error(`the controller exited (${describeExit(exit)}); the end of its log:\n${tail}`);
    },
    stop: async () => {
      if (exit === undefined) {
        const asked = performance.now();
        child.kill('SIGTERM');
        const grace = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
        const how = await exited;
        clearTimeout(grace);
        say(`controller stopped (${describeExit(how)}) ${((performance.now() - asked) / 1000).toFixed(1)} s after SIGTERM`);
      }
      killWatchdog(watchdog);
      spareAtExit(leftovers);
    },
  };
}

const CLOCK_TICKS = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User plus system CPU seconds of a process, from /proc/<pid>/stat. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses; the fields after its closing one are plain.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5); here, after pid and comm, at 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** A memory figure of /proc/<pid>/status (VmRSS now, VmHWM the peak), in MB. */
async function memoryMb(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

/** The controller's log lines counted by level and message, most frequent first. */
async function logSummary(logFile: string): Promise<string[]> {
  const counts = new Map<string, number>();
  for (const line of (await readFile(logFile, 'utf8')).split('\n')) {
    if (line.trim() === '') continue;
    let key = line.slice(0, 160);
    try {
      const entry = z.looseObject({ level: z.unknown(), msg: z.unknown() }).parse(JSON.parse(line));
      key = `${String(entry.level)} ${String(entry.msg)}`;
    } catch {
      // not JSON: counted by its text
    }
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([key, n]) => `${n} × ${key}`);
}

// ── The phases of the run ───────────────────────────────────────────────────────────────

function phaseCounts(items: CanaryList['items']): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) {
    const phase = item.status?.phase ?? '(none)';
    counts.set(phase, (counts.get(phase) ?? 0) + 1);
  }
  return counts;
}

/** Seconds until every ModelCanary is Progressing; throws, with what holds the others, at the deadline. */
async function waitForProgressing(kube: Kube, controller: Controller, options: Options, since: number): Promise<number> {
  const deadline = since + 120_000 + options.canaries * 100;
  // A list of every ModelCanary costs the sandbox (this process) time too; look less often when there are many.
  const every = 2_000 + options.canaries / 5;
  let lastReport = 0;
  for (;;) {
    await controller.assertAlive();
    const items = await listCanaries(kube);
    const phases = phaseCounts(items);
    const progressing = phases.get('Progressing') ?? 0;
    if (progressing === options.canaries) return (performance.now() - since) / 1000;
    if (performance.now() - lastReport > 10_000) {
      lastReport = performance.now();
      say(`${progressing}/${options.canaries} Progressing (${[...phases].map(([p, n]) => `${p} ${n}`).join(', ')})`);
    }
    if (performance.now() > deadline) {
      const stuck = items.find((i) => i.status?.phase !== 'Progressing');
      throw new Error(
        `after ${((performance.now() - since) / 1000).toFixed(0)} s only ${progressing} of ${options.canaries} ModelCanaries are Progressing (${[...phases].map(([p, n]) => `${p} ${n}`).join(', ')}); e.g. ${stuck?.metadata.name ?? '?'}: ${stuck?.status?.message ?? 'no status'}`,
      );
    }
    await sleep(every);
  }
}

interface Usage {
  at: number;
  controller: number;
  harness: number;
  prometheus: number;
}

async function usage(controller: Controller, prometheus: RunningPrometheus): Promise<Usage> {
  const [controllerCpu, prometheusCpu] = await Promise.all([cpuSeconds(controller.pid), prometheusCpuSeconds(prometheus)]);
  const own = process.cpuUsage();
  return { at: performance.now(), controller: controllerCpu, harness: (own.user + own.system) / 1e6, prometheus: prometheusCpu };
}

function sum(counts: Map<string, number>, include: (key: string) => boolean): number {
  let total = 0;
  for (const [key, n] of counts) if (include(key)) total += n;
  return total;
}

/** ModelCanaries whose last check is more than the slack overdue, now; one never checked counts too. */
function lateChecks(items: CanaryList['items'], intervalMs: number, now: number): number {
  return items.filter((item) => {
    const judgedAt = item.status?.lastAnalysis?.judgedAt;
    return judgedAt === undefined || now - Date.parse(judgedAt) > intervalMs + LATE_SLACK_MS;
  }).length;
}

/**
 * Milliseconds from an edit that forces a route write (a new canary version: the rollout restarts
 * and moves its first step to v3) to the VirtualService changing, polled every 20 ms; undefined
 * when it does not change within two intervals and a half minute.
 */
async function timeRouteWrite(kube: Kube, name: string, intervalMs: number): Promise<number | undefined> {
  const routes = async (): Promise<string> => JSON.stringify(VirtualService.parse(await kube.get(`${VIRTUALSERVICES}/${name}`)).spec.http);
  const before = await routes();
  const started = performance.now();
  await kube.mergePatch(`${MODELCANARIES}/${name}`, { spec: { canary: { version: 'v3', destination: { host: name, subset: 'v3' } } } });
  const deadline = started + 2 * intervalMs + 30_000;
  while (performance.now() < deadline) {
    if ((await routes()) !== before) return performance.now() - started;
    await sleep(20);
  }
  return undefined;
}

const round = (value: number, digits: number): number => Number(value.toFixed(digits));

/** What passed a proxy: requests by key, and the mean time to their answers' headers. */
interface Traffic {
  counts: Map<string, number>;
  meanMs: Map<string, number>;
}

function trafficOf(proxy: CountingProxy): Traffic {
  return { counts: proxy.counts(), meanMs: proxy.meanMs() };
}

/** The counts, most frequent first, each with the mean time to its answer. */
function breakdown(traffic: Traffic, show: (count: number) => number | string): string {
  return [...traffic.counts]
    .sort((a, b) => b[1] - a[1])
    .map(([key, n]) => `\n  ${String(show(n))} × ${key} (answered in ${(traffic.meanMs.get(key) ?? NaN).toFixed(1)} ms on average)`)
    .join('');
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? NaN) : ((sorted[middle - 1] ?? NaN) + (sorted[middle] ?? NaN)) / 2;
}

/** Everything the controller talks to, and the harness's own door to the sandbox. */
interface World {
  kube: Kube;
  apiProxy: CountingProxy;
  prometheus: RunningPrometheus;
  prometheusProxy: CountingProxy;
  names: string[];
  /** The ModelCanaries whose canary changes at the end; their models also serve v3. */
  edited: string[];
}

async function startWorld(options: Options, teardown: Teardown): Promise<World> {
  const names = Array.from({ length: options.canaries }, (_, i) => modelName(i));
  const edited = names.slice(0, ROUTE_WRITE_SAMPLES);
  const sandbox = await startSandbox({ namespaces: [NAMESPACE] });
  teardown.add(() => sandbox.stop());
  const apiProxy = await startCountingProxy(sandbox.url, classifyKube);
  teardown.add(() => apiProxy.stop());

  const versions: Version[] = [...names.flatMap((model) => ['v1', 'v2'].map((revision) => ({ model, revision }))), ...edited.map((model) => ({ model, revision: 'v3' }))];
  const exporter = await startIstioExporter(versions);
  teardown.add(() => exporter.stop());
  const prometheus = await startPrometheus({ scrapeTargets: [exporter.target], scrapeInterval: `${options.scrapeIntervalMs / 1000}s` });
  teardown.add(() => prometheus.stop());
  // --query-log: every query's instant and its first words, one line each, to see which questions repeat.
  const queryLog = options.queryLog === undefined ? undefined : await open(options.queryLog, 'w');
  teardown.add(() => queryLog?.close());
  const prometheusProxy = await startCountingProxy(
    prometheus.url,
    classifyPrometheus,
    queryLog === undefined
      ? undefined
      : (_key, body) => {
          const form = new URLSearchParams(body);
          void queryLog.write(`${(Date.now() / 1000).toFixed(1)} ${form.get('time') ?? '-'} ${(form.get('query') ?? '').slice(0, 60)}\n`);
        },
  );
  teardown.add(() => prometheusProxy.stop());
  say(`sandbox ${sandbox.url} (proxy ${apiProxy.url}), Prometheus ${prometheus.url} (proxy ${prometheusProxy.url}) scraping ${versions.length} versions every ${options.scrapeIntervalMs / 1000} s`);
  await waitForScrapes(prometheus, versions.length, options.scrapeIntervalMs);
  say('Prometheus has two scrapes of every version');

  const kube = new Kube(sandbox.url);
  const started = performance.now();
  await pool(names, CREATE_CONCURRENCY, async (name) => {
    const mesh = meshOf(name);
    await kube.create(VIRTUALSERVICES, mesh.virtualService);
    await kube.create(DESTINATIONRULES, mesh.destinationRule);
  });
  say(`${options.canaries} VirtualServices and DestinationRules created in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return { kube, apiProxy, prometheus, prometheusProxy, names, edited };
}

/** The controller, started through the proxies, and its RSS once it has settled with nothing to do. */
async function startIdleController(world: World, options: Options, teardown: Teardown): Promise<{ controller: Controller; idleRssMb: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'modelcanary-scale-'));
  teardown.add(() => rm(dir, { recursive: true, force: true }));
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, kubeconfigFor(world.apiProxy.url, NAMESPACE), { mode: 0o600 });
  const controller = await spawnController(dir, kubeconfig, world.prometheusProxy.url, options.logFile ?? join(dir, 'controller.log'));
  // Last-added, first undone: the controller stops before the servers it talks to.
  teardown.add(async () => {
    await controller.stop();
    // Gone already when an interrupt removed the temporary folder first (cleanup.ts's signal hook).
    if (!existsSync(controller.logFile)) return;
    const summary = await logSummary(controller.logFile);
    say(`controller log (${summary.length} distinct lines, level 40 = warn, 50 = error):${summary.slice(0, 12).map((l) => `\n  ${l}`).join('')}`);
  });
  await sleep(IDLE_AFTER_MS);
  await controller.assertAlive();
  const idleRssMb = await memoryMb(controller.pid, 'VmRSS');
  say(`controller pid ${controller.pid} idle at ${idleRssMb.toFixed(1)} MB RSS after ${(await cpuSeconds(controller.pid)).toFixed(2)} CPU seconds`);
  return { controller, idleRssMb };
}

/** Creates every ModelCanary and waits until all are Progressing; seconds from the first creation. */
async function startRollouts(world: World, controller: Controller, options: Options): Promise<number> {
  const before = await usage(controller, world.prometheus);
  const started = performance.now();
  await pool(world.names, CREATE_CONCURRENCY, (name) => world.kube.create(MODELCANARIES, modelCanaryOf(name, options)));
  say(`${options.canaries} ModelCanaries created in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const seconds = await waitForProgressing(world.kube, controller, options, started);
  const after = await usage(controller, world.prometheus);
  // Who was busy while they started: the controller, or the sandbox in this process (or Prometheus).
  const cpu = (key: keyof Omit<Usage, 'at'>): string => (after[key] - before[key]).toFixed(1);
  say(`all ${options.canaries} Progressing ${seconds.toFixed(1)} s after the first was created; CPU seconds meanwhile: controller ${cpu('controller')}, this process ${cpu('harness')}, Prometheus ${cpu('prometheus')}`);
  say(`API requests while they started:${breakdown(trafficOf(world.apiProxy), String)}`);
  say(`Prometheus requests while they started:${breakdown(trafficOf(world.prometheusProxy), String)}`);
  return seconds;
}

interface Measured {
  seconds: number;
  api: Traffic;
  prometheus: Traffic;
  connections: number;
  cpu: Omit<Usage, 'at'>;
  peakRssMb: number;
  lateChecks: number;
  loadavg1: number;
}

/**
 * The steady state: one interval for every rollout's first check (the first looks at each new
 * version are the start's cost, reported apart), counters reset, then `measureMs` of every
 * ModelCanary Progressing.
 */
async function measure(world: World, controller: Controller, options: Options): Promise<Measured> {
  say(`one interval (${options.intervalMs / 1000} s) for every first check, then measuring for ${options.measureMs / 1000} s`);
  for (const end = performance.now() + options.intervalMs; performance.now() < end; ) {
    await sleep(Math.min(1_000, end - performance.now()));
    await controller.assertAlive();
  }
  world.apiProxy.reset();
  world.prometheusProxy.reset();
  const before = await usage(controller, world.prometheus);
  for (const end = performance.now() + options.measureMs; performance.now() < end; ) {
    await sleep(Math.min(1_000, end - performance.now()));
    await controller.assertAlive();
  }
  const after = await usage(controller, world.prometheus);
  return {
    seconds: (after.at - before.at) / 1000,
    api: trafficOf(world.apiProxy),
    prometheus: trafficOf(world.prometheusProxy),
    connections: world.apiProxy.connections(),
    cpu: { controller: after.controller - before.controller, harness: after.harness - before.harness, prometheus: after.prometheus - before.prometheus },
    peakRssMb: await memoryMb(controller.pid, 'VmHWM'),
    lateChecks: lateChecks(await listCanaries(world.kube), options.intervalMs, Date.now()),
    loadavg1: loadavg()[0] ?? NaN,
  };
}

/**
 * The median time to the route write over edits spread across a watch interval: passes come in
 * waves (ModelCanaries created together are due together), and an edit that lands in one waits
 * behind it. One edit at a time, as an operator's would be.
 */
async function medianRouteWriteMs(world: World, options: Options): Promise<number | undefined> {
  const samples: (number | undefined)[] = [];
  const from = performance.now();
  for (const [i, name] of world.edited.entries()) {
    await sleep(from + (i * options.watchIntervalMs) / world.edited.length - performance.now());
    samples.push(await timeRouteWrite(world.kube, name, options.intervalMs));
  }
  say(`route written after a new canary version, in ms, for ${world.edited.join(', ')}: ${samples.map((ms) => (ms === undefined ? 'never' : Math.round(ms))).join(', ')}`);
  const ms = median(samples.map((sample) => sample ?? Infinity));
  return Number.isFinite(ms) ? ms : undefined;
}

/** The commit measured and the files changed since, read-only: figures move with every change to src/. */
function sourceState(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const changed = execFileSync('git', ['status', '--porcelain', '--', 'src', 'bin'], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter((l) => l.trim() !== '');
    return `commit ${commit}${changed.length === 0 ? '' : `, with uncommitted changes to ${changed.map((l) => l.slice(3)).join(', ')}`}`;
  } catch {
    return 'not a git checkout';
  }
}

async function run(options: Options, teardown: Teardown): Promise<object> {
  const missing = prometheusMissing(process.env.PATH);
  if (missing !== undefined) throw new Error(missing);
  say(`measuring the controller at ${sourceState()}`);
  const world = await startWorld(options, teardown);
  const { controller, idleRssMb } = await startIdleController(world, options, teardown);
  const startedWithinSeconds = await startRollouts(world, controller, options);
  const measured = await measure(world, controller, options);

  const perInterval = (n: number): number => (n * options.intervalMs) / 1000 / measured.seconds;
  const count = (n: number): number => round(perInterval(n), 1);
  const cpu = (seconds: number): number => round(perInterval(seconds), 3);
  say(`API requests per interval, by verb and resource:${breakdown(measured.api, count)}`);
  say(`Prometheus requests per interval:${breakdown(measured.prometheus, count)}`);
  say(`CPU seconds per interval: controller ${cpu(measured.cpu.controller)}, this process (sandbox, proxies, exporter) ${cpu(measured.cpu.harness)}, Prometheus ${cpu(measured.cpu.prometheus)}; load average ${measured.loadavg1.toFixed(2)} on ${cpus().length} CPUs`);
  const routeMs = await medianRouteWriteMs(world, options);

  return {
    canaries: options.canaries,
    intervalSeconds: options.intervalMs / 1000,
    watchIntervalSeconds: options.watchIntervalMs / 1000,
    measuredSeconds: round(measured.seconds, 1),
    prometheusQueriesPerInterval: count(sum(measured.prometheus.counts, (key) => key.startsWith('/api/v1/'))),
    apiReadsPerInterval: count(sum(measured.api.counts, isRead)),
    apiWritesPerInterval: count(sum(measured.api.counts, (key) => !isRead(key))),
    apiConnectionsPerInterval: count(measured.connections),
    controllerCpuSecondsPerInterval: cpu(measured.cpu.controller),
    peakRssMb: round(measured.peakRssMb, 1),
    idleRssMb: round(idleRssMb, 1),
    firstRouteWriteMs: routeMs === undefined ? null : Math.round(routeMs),
    lateChecks: measured.lateChecks,
    startedWithinSeconds: round(startedWithinSeconds, 1),
    machine: { cpus: cpus().length, loadavg1: round(measured.loadavg1, 2) },
    // Not the controller: what the harness cost on the same machine while it was measured.
    harness: { scrapeIntervalSeconds: options.scrapeIntervalMs / 1000, benchProcessCpuSecondsPerInterval: cpu(measured.cpu.harness), prometheusCpuSecondsPerInterval: cpu(measured.cpu.prometheus) },
  };
}

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    return 2;
  }
  const teardown = new Teardown();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      say(`${signal}: tearing down`);
      void teardown.run().finally(() => process.exit(130));
    });
  }
  try {
    const result = await run(options, teardown);
    await teardown.run();
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  } catch (error) {
    say(`failed: ${(error as Error).message}`);
    await teardown.run();
    return 1;
  }
}

process.exitCode = await main();
