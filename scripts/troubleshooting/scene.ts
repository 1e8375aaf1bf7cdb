// One scene of docs/troubleshooting.md on this machine, composed as `modelcanary demo` composes
// its own: the embedded API server in place of Kubernetes, the simulated Istio mesh with the
// fraud detector's pods and steady load, the real Prometheus scraping the mesh (when the scene
// needs one), and the controller of `modelcanary run`. A scene runs the commands a person would
// type against it (kubectl, modelcanary, curl) and waits, within a deadline, for the state a
// section shows. Everything a scene starts, close() stops, last started first.

import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, KubeConfig, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { z } from 'zod';
import { GROUP, PLURAL, VERSION } from '../../src/api/modelcanary.ts';
import { main } from '../../src/cli/main.ts';
import { startController } from '../../src/cli/run.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { freeLoopbackPort } from '../../src/sandbox/cleanup.ts';
import { startLoad } from '../../src/sandbox/mesh/load.ts';
import { startMesh, type WorkloadSpec } from '../../src/sandbox/mesh/mesh.ts';
import { startPrometheus } from '../../src/sandbox/prometheus.ts';
import { startSandbox } from '../../src/sandbox/sandbox.ts';

export const NAMESPACE = 'ml-serving';
export const MODEL = 'fraud-detector';
const HOST = `${MODEL}.${NAMESPACE}.svc.cluster.local`;
const HEALTHY = { errorRate: 0.001, latencyMs: 40, latencySpread: 0.25 };
/** Requests per second to the model: enough for Prometheus to see both versions within a scrape or two. */
const RATE = 30;
const POLL_MS = 200;
const COMMAND_MS = 30_000;
/** Prometheus scrapes about 5 s after it starts (src/sandbox/prometheus.ts); then every second. */
const SCRAPED_MS = 30_000;

export interface SceneOptions {
  /** The labels of stable's and the canary's pods, as their Deployments would set them. */
  stableLabels?: Record<string, string>;
  canaryLabels?: Record<string, string>;
  /** Start a real Prometheus scraping the mesh; without it, the scene's Prometheus address refuses connections. */
  prometheus: boolean;
  signal: AbortSignal;
}

export interface Scene {
  /** The scene's own folder: its kubeconfig, the manifests it writes, the controller's log. */
  dir: string;
  /** The address the ModelCanaries name and the controller allows: the real Prometheus, or a closed loopback port. */
  prometheusUrl: string;
  /** Creates the objects, as `kubectl create -f` would. */
  create(objects: readonly KubernetesObject[]): Promise<void>;
  /** Writes the objects as one YAML file in dir, for the commands that read files. */
  write(file: string, objects: readonly KubernetesObject[]): Promise<void>;
  /** Runs a command as a person would type it (kubectl, modelcanary, curl) and returns `$ command` and its output. */
  run(argv: readonly string[]): Promise<string>;
  /** Polls the ModelCanary until `ready` holds for it, for at most `ms`. */
  waitFor(what: string, ready: (canary: CanaryState) => boolean, ms: number): Promise<CanaryState>;
  /** Waits until an event with this reason names the ModelCanary. */
  waitForEvent(reason: string, ms: number): Promise<void>;
  /** Waits until Prometheus has scraped requests served by pods of each of these revisions. */
  waitForRevisions(revisions: readonly string[]): Promise<void>;
  /** Stops Prometheus, as if it had gone down; its address then refuses connections. */
  stopPrometheus(): Promise<void>;
  close(): Promise<void>;
}

// What the scenes read of a ModelCanary: parsed where it enters, loose so the rest survives.
const Condition = z.looseObject({ type: z.string(), status: z.string(), reason: z.string().optional(), message: z.string().optional() });
const CanaryState = z.looseObject({
  status: z
    .looseObject({
      phase: z.string().optional(),
      canaryWeight: z.number().optional(),
      message: z.string().optional(),
      conditions: z.array(Condition).optional(),
      lastAnalysis: z.looseObject({ decision: z.string(), reason: z.string().optional() }).optional(),
    })
    .optional(),
});
export type CanaryState = z.infer<typeof CanaryState>;

const EventList = z.looseObject({ items: z.array(z.looseObject({ reason: z.string().optional() })) });
const RevisionAnswer = z.looseObject({
  data: z.looseObject({ result: z.array(z.looseObject({ metric: z.record(z.string(), z.string()) })) }),
});

/** The condition of this type when it is False, else undefined. */
export function falseCondition(canary: CanaryState, type: string): z.infer<typeof Condition> | undefined {
  return canary.status?.conditions?.find((c) => c.type === type && c.status === 'False');
}

export async function openScene(options: SceneOptions): Promise<Scene> {
  const stack: (() => Promise<void>)[] = [];
  const close = async (): Promise<void> => {
    for (const stop of stack.splice(0).reverse()) await stop().catch(() => undefined);
  };
  try {
    return await compose(options, stack, close);
  } catch (error) {
    await close();
    throw error;
  }
}

async function compose(options: SceneOptions, stack: (() => Promise<void>)[], close: () => Promise<void>): Promise<Scene> {
  const { signal } = options;
  const dir = await mkdtemp(join(tmpdir(), 'modelcanary-troubleshooting-'));
  stack.push(() => rm(dir, { recursive: true, force: true }));

  const sandbox = await startSandbox({ namespaces: [NAMESPACE] });
  stack.push(() => sandbox.stop());
  const kubeconfigFile = join(dir, 'kubeconfig');
  await writeFile(kubeconfigFile, sandbox.kubeconfig({ namespace: NAMESPACE }), { mode: 0o600 });
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(sandbox.kubeconfig({ namespace: NAMESPACE }));
  const objects = KubernetesObjectApi.makeApiClient(kubeConfig);
  const canaries = kubeConfig.makeApiClient(CustomObjectsApi);
  const core = kubeConfig.makeApiClient(CoreV1Api);

  const workloads: WorkloadSpec[] = [
    { name: `${MODEL}-v1`, namespace: NAMESPACE, service: MODEL, labels: { app: MODEL, ...(options.stableLabels ?? { version: 'v1' }) }, behaviour: HEALTHY },
    { name: `${MODEL}-v2`, namespace: NAMESPACE, service: MODEL, labels: { app: MODEL, ...(options.canaryLabels ?? { version: 'v2' }) }, behaviour: HEALTHY },
  ];
  const mesh = await startMesh({ kubeConfig, namespace: NAMESPACE, workloads });
  stack.push(() => mesh.stop());
  const load = startLoad({ url: mesh.ingressUrl, host: HOST, path: `/v1/models/${MODEL}:predict`, ratePerSecond: RATE });
  stack.push(() => load.stop());

  let stopPrometheus: () => Promise<void> = () => Promise.resolve();
  let prometheusUrl: string;
  if (options.prometheus) {
    const prometheus = await startPrometheus({ scrapeTargets: [mesh.metricsTarget] });
    stack.push(() => prometheus.stop());
    stopPrometheus = () => prometheus.stop();
    prometheusUrl = prometheus.url;
  } else {
    prometheusUrl = `http://127.0.0.1:${await freeLoopbackPort()}`;
  }

  const logFile = join(dir, 'controller.log');
  const logStream = createWriteStream(logFile);
  stack.push(() => new Promise((resolve) => logStream.end(resolve)));
  const controller = await startController({
    kubeConfig,
    namespaces: [NAMESPACE],
    metricsAddr: '127.0.0.1:0',
    defaultPrometheus: prometheusUrl,
    // As `modelcanary run` with no --notify and no --allow-webhook.
    notifications: { destinations: [], allowedWebhooks: [] },
    log: createLogger({ level: 'info', destination: logStream, pretty: false }),
    // `--metrics-grid 1s`, as the demo: a step's first check comes one interval after it began.
    readGridMs: 1000,
  });
  stack.push(() => controller.stop());

  const read = async (): Promise<CanaryState | undefined> => {
    const object: unknown = await canaries.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NAMESPACE, plural: PLURAL, name: MODEL }).catch(() => undefined);
    return object === undefined ? undefined : CanaryState.parse(object);
  };

  /** Polls `probe` until it gives a value, failing with what was last seen and the controller's log once `ms` pass. */
  const poll = async <T>(what: string, probe: () => Promise<T | undefined>, ms: number, seen: () => Promise<string>): Promise<T> => {
    const deadline = Date.now() + ms;
    for (;;) {
      signal.throwIfAborted();
      const value = await probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline) {
        const log = await readFile(logFile, 'utf8').catch(() => '');
        throw new Error(`${what}: not within ${ms / 1000} s; last seen: ${await seen()}\ncontroller log (last lines):\n${log.split('\n').slice(-15).join('\n')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  };

  const env = { ...process.env, KUBECONFIG: kubeconfigFile, KUBECACHEDIR: join(dir, 'kube-cache'), NO_COLOR: '1' };

  return {
    dir,
    prometheusUrl,
    create: async (list) => {
      for (const object of list) await objects.create(object);
    },
    write: (file, list) => writeFile(join(dir, file), list.map((object) => stringify(object)).join('---\n')),
    run: async (argv) => {
      const ours = argv[0] === 'modelcanary';
      const output = ours ? await modelcanary(argv.slice(1), dir, env) : await spawned(argv, dir, env, signal);
      return `$ ${ours ? 'npx ' : ''}${argv.map(shellQuoted).join(' ')}\n${output.trimEnd()}`;
    },
    waitFor: (what, ready, ms) =>
      poll(what, async () => {
        const canary = await read();
        return canary !== undefined && ready(canary) ? canary : undefined;
      }, ms, async () => JSON.stringify((await read())?.status ?? null)),
    waitForEvent: async (reason, ms) => {
      const reasons = async (): Promise<string[]> => {
        const list: unknown = await core.listNamespacedEvent({ namespace: NAMESPACE, fieldSelector: `involvedObject.name=${MODEL}` }).catch(() => ({ items: [] }));
        return EventList.parse(list).items.map((e) => e.reason ?? '');
      };
      await poll(`an event ${reason}`, async () => ((await reasons()).includes(reason) ? true : undefined), ms, async () => (await reasons()).join(', '));
    },
    waitForRevisions: async (revisions) => {
      const scraped = async (): Promise<string[]> => {
        const query = `count by (destination_canonical_revision) (istio_requests_total{destination_canonical_service="${MODEL}"})`;
        const answer: unknown = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(query)}`, { signal: AbortSignal.timeout(2_000) })
          .then((response) => response.json())
          .catch(() => undefined);
        const parsed = RevisionAnswer.safeParse(answer);
        return parsed.success ? parsed.data.data.result.map((r) => r.metric.destination_canonical_revision ?? '') : [];
      };
      await poll(`Prometheus scraping revisions ${revisions.join(', ')}`, async () => {
        const found = await scraped();
        return revisions.every((r) => found.includes(r)) ? true : undefined;
      }, SCRAPED_MS, async () => (await scraped()).join(', '));
    },
    stopPrometheus: () => stopPrometheus(),
    close,
  };
}

/** An argument as a shell would need it written. */
function shellQuoted(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}

/** `modelcanary ARGS` in this process, as bin/modelcanary.js runs it; its stdout and stderr in the order written. */
async function modelcanary(args: readonly string[], cwd: string, env: Record<string, string | undefined>): Promise<string> {
  let output = '';
  const sink = {
    write: (text: string): boolean => {
      output += text;
      return true;
    },
  };
  await main([...args], { stdout: sink, stderr: sink, stdin: (async function* () {})(), cwd }, env);
  return output;
}

/** A program on PATH, with its stdout and stderr as it wrote them, killed if it takes longer than COMMAND_MS. */
function spawned(argv: readonly string[], cwd: string, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<string> {
  const [command = '', ...args] = argv;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: COMMAND_MS, signal });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.once('error', reject);
    child.once('close', () => {
      resolve(output);
    });
  });
}
