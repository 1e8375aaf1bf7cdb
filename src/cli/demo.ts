// `modelcanary demo`: two real rollouts on this machine, with no cluster. The sandbox API
// server stands in for Kubernetes, the simulated mesh for Istio and the models, the real
// Prometheus (when installed) scrapes the mesh, and the same controller as `modelcanary run`
// does the work. Everything it starts stops with it.
//
// With --kubeconfig a real cluster (envtest, kind, minikube) takes the sandbox's place: the
// controller, the ModelCanaries and the routes the gateway follows live there, in a namespace
// of the demo's own that it empties and deletes when it ends; the mesh, the load and
// Prometheus still run here on loopback.

import { createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiException, CoreV1Api, CustomObjectsApi, KubeConfig, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { GROUP, KIND, PLURAL, VERSION, type ModelCanary } from '../api/modelcanary.ts';
import type { ModelCanaryStatus } from '../api/status.ts';
import { parseDuration } from '../api/duration.ts';
import { checkModelCanary } from '../api/validate.ts';
import { formatRatio } from '../analysis/format.ts';
import { formatMetricValue } from '../controller/notifications.ts';
import { apiErrorMessage } from '../controller/kube-errors.ts';
import { withSignal } from '../controller/kube-options.ts';
import { ScrapingMetricsProvider } from '../metrics/scrape-provider.ts';
import { createLogger } from '../observability/logger.ts';
import { startSandbox } from '../sandbox/sandbox.ts';
import { startMesh, type Mesh, type RouteChange, type WorkloadSpec } from '../sandbox/mesh/mesh.ts';
import type { Behaviour } from '../sandbox/mesh/model-server.ts';
import { startLoad, type Load } from '../sandbox/mesh/load.ts';
import { prometheusMissing, startPrometheus, type RunningPrometheus } from '../sandbox/prometheus.ts';
import { freeLoopbackPort } from '../sandbox/cleanup.ts';
import { parseCommand } from './args.ts';
import { EXIT, type Io } from './io.ts';
import { startController, type RunningController } from './run.ts';
import { redact } from '../metrics/endpoints.ts';
import { pause as sleep } from './pause.ts';

const USAGE = `Usage: modelcanary demo [--llm] [--kubeconfig FILE] [--keep] [--timeout 2m] [--rate N] [--without-prometheus] [--slack-webhook URL]

Three rollouts on this machine, no cluster needed: a healthy upgrade that is promoted
10 → 30 → 100 %, one whose canary starts failing at 30 % and is rolled back, and one whose
canary has a broken pod that the mesh's outlier detection and retries hide from its 5xx
ratio, rolled back on Envoy's ejections (this one needs Prometheus; without it the demo runs
the first two). An embedded Kubernetes API server, a simulated Istio mesh with model servers
and load, the real Prometheus scraping it (when installed), and the real controller.

With --kubeconfig, the same rollouts on a real cluster (envtest, kind, minikube): the
controller, the ModelCanaries and the routes live there, in a namespace the demo creates
(modelcanary-demo-…) and deletes when it ends; the mesh, the load and Prometheus still run on
this machine. The cluster needs the ModelCanary and the Istio CRDs; the demo says how to
install them when they are missing.

Flags:
  --llm                   two chat models on simulated vLLM pods instead, judged on time to
                          first token and inter-token latency from vLLM's histograms: one
                          promoted, one whose first tokens come 5× later rolled back (needs
                          Prometheus; 120 requests/s by default)
  --kubeconfig FILE       run against this cluster instead of the embedded API server
  --keep                  leave everything running after the rollouts end, until Ctrl-C
  --timeout DURATION      give up when the rollouts have not ended by then; default 2m
  --rate N                requests per second sent to each model; default 60
  --without-prometheus    read the mesh's counters directly even when Prometheus is installed
  --slack-webhook URL     announce the rollouts in this Slack incoming webhook's channel
                          (also a generic JSON receiver with --webhook-format webhook)
  --webhook-format F      slack (default) or webhook: the body sent to --slack-webhook

Exit status: 0 when every rollout ends as expected, 1 when not (or interrupted, or what it
created in the cluster could not be deleted), 2 on bad flags, an unreachable cluster or
missing CRDs.
`;

/** The sandbox's namespace, as in examples/demo; on a cluster the demo makes its own. */
const NAMESPACE = 'ml-serving';
const MANIFESTS = new URL('../../examples/demo/', import.meta.url);
const CRD_FILE = fileURLToPath(new URL('../../crds/modelcanary.yaml', import.meta.url));
/** Marks the namespaces the demo creates, so that one left by a killed run is easy to find. */
const CREATED_BY = { 'app.kubernetes.io/created-by': 'modelcanary-demo' };
const ISTIO = { group: 'networking.istio.io', version: 'v1' };
const ISTIO_CRDS = 'https://raw.githubusercontent.com/istio/api/v1.32.0/kubernetes/customresourcedefinitions.gen.yaml';
/** Every kind the demo creates on a cluster, and the CRD that serves it. */
const KINDS = [
  { kind: KIND, crd: `${PLURAL}.${GROUP}`, group: GROUP, version: VERSION, plural: PLURAL },
  { kind: 'VirtualService', crd: 'virtualservices.networking.istio.io', ...ISTIO, plural: 'virtualservices' },
  { kind: 'DestinationRule', crd: 'destinationrules.networking.istio.io', ...ISTIO, plural: 'destinationrules' },
] as const;
type Kind = (typeof KINDS)[number];
/** How long the controller gets to remove the ModelCanaries' finalizers (restoring stable mid-rollout) at the end. */
const FINALIZE_MS = 30_000;
const CLUSTER_REQUEST_MS = 15_000;
/** How long the gateway gets to apply the route an ended rollout left before the summary. */
const ROUTE_GRACE_MS = 10_000;
// Failed is not an end (a held rollout resumes once fixed), but the demo stops there: nothing will fix it.
const TERMINAL = new Set(['Succeeded', 'RolledBack', 'Failed']);

/** What each demo ModelCanary is for, and what the demo does to its models. */
interface Role {
  file: string;
  name: string;
  expect: 'Succeeded' | 'RolledBack';
  story: string;
  /** Make the canary fail (every pod, or only `pod`) once the gateway sends it this share of traffic. */
  breakAt?: { weight: number; errorRate: number; pod?: number };
  /** Pods per version; default 1. */
  pods?: number;
  /** The behaviour of every pod of both versions; default HEALTHY. */
  behaviour?: Behaviour;
  /** Judged on Prometheus queries the mesh's own counters cannot answer: left out without Prometheus. */
  needsPrometheus?: boolean;
  /** The canary's own behaviour, when it differs from stable's from the start (an LLM regression). */
  canaryBehaviour?: Behaviour;
  /** The Host the load is sent with, when the route is not a Service's (an HTTPRoute's hostname). */
  host?: string;
}

const ROLES: readonly Role[] = [
  { file: 'fraud-detector.yaml', name: 'fraud-detector', expect: 'Succeeded', story: 'a healthy upgrade' },
  { file: 'recommender.yaml', name: 'recommender', expect: 'RolledBack', story: 'its canary starts failing (25 % 5xx) once it reaches 30 %', breakAt: { weight: 30, errorRate: 0.25 } },
  {
    file: 'sentiment.yaml',
    name: 'sentiment',
    expect: 'RolledBack',
    story: 'one of its canary\'s 3 pods breaks at 30 %; outlier detection and retries hide it',
    pods: 3,
    breakAt: { weight: 30, errorRate: 1, pod: 2 },
    behaviour: { errorRate: 0.01, latencyMs: 40, latencySpread: 0.25 },
    needsPrometheus: true,
  },
];

const HEALTHY = { errorRate: 0.001, latencyMs: 40, latencySpread: 0.25 };

/** vLLM pods answering a chat completion: a first token after about 120 ms, then 30 tokens 3 ms apart. */
const STREAMING: Behaviour = { errorRate: 0.001, latencyMs: 0, llm: { ttftMs: 120, ttftSpread: 0.3, interTokenMs: 3, interTokenSpread: 0.25, outputTokens: 30 } };

/** `demo --llm`: a chat model promoted on its streaming latencies, and one rolled back on a TTFT regression. */
const LLM_ROLES: readonly Role[] = [
  { file: 'chat-llm.yaml', name: 'chat', expect: 'Succeeded', story: 'streams as fast as v1', behaviour: STREAMING, needsPrometheus: true, host: 'chat.example.com' },
  {
    file: 'chat-llm-mini.yaml',
    name: 'chat-mini',
    expect: 'RolledBack',
    host: 'chat-mini.example.com',
    story: 'answers as well, but its first token comes 5× later',
    behaviour: STREAMING,
    canaryBehaviour: { ...STREAMING, llm: { ttftMs: 600, ttftSpread: 0.3, interTokenMs: 3, interTokenSpread: 0.25, outputTokens: 30 } },
    needsPrometheus: true,
  },
];

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
    {
      kubeconfig: { type: 'string' },
      llm: { type: 'boolean' },
      keep: { type: 'boolean' },
      timeout: { type: 'string' },
      rate: { type: 'string' },
      'without-prometheus': { type: 'boolean' },
      'slack-webhook': { type: 'string' },
      'webhook-format': { type: 'string' },
    },
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
  const llm = values.llm === true;
  const rate = Number(values.rate ?? (llm ? '120' : '60'));
  if (!Number.isFinite(rate) || rate < 1 || rate > 2000) {
    io.stderr.write(`modelcanary demo: --rate must be a number of requests per second from 1 to 2000, not ${values.rate ?? ''}\n`);
    return EXIT.unreadable;
  }
  const webhook = values['slack-webhook'];
  const format = values['webhook-format'] ?? 'slack';
  if (webhook !== undefined && !/^https?:\/\/[^\s]+$/.test(webhook)) {
    io.stderr.write('modelcanary demo: --slack-webhook must be an http:// or https:// URL, such as https://hooks.slack.com/services/T000/B000/XXXX\n');
    return EXIT.unreadable;
  }
  if (format !== 'slack' && format !== 'webhook') {
    io.stderr.write(`modelcanary demo: --webhook-format must be slack or webhook, not ${format}\n`);
    return EXIT.unreadable;
  }
  const kubeconfigFile = values.kubeconfig === undefined ? undefined : resolvePath(io.cwd, values.kubeconfig);
  if (llm && (values['without-prometheus'] === true || prometheusMissing(env.PATH) !== undefined)) {
    io.stderr.write(`modelcanary demo: --llm needs Prometheus: its checks read vLLM's histograms through PromQL (${values['without-prometheus'] === true ? 'drop --without-prometheus' : 'apt-get install -y prometheus'})\n`);
    return EXIT.unreadable;
  }

  // Ctrl-C (or the caller's signal) ends the run at any point; cleanup runs either way. The
  // handlers stay until the cleanup is done, so that only a second Ctrl-C cuts it short.
  const interrupted = new AbortController();
  const interrupt = (): void => {
    interrupted.abort();
  };
  signal?.addEventListener('abort', interrupt, { once: true });
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);

  const out = new Output(io);
  const stack: (() => Promise<void>)[] = [];
  const leftBehind: string[] = [];
  let code: number;
  try {
    code = await play({ io, env, out, stack, leftBehind, interrupted: interrupted.signal, kubeconfigFile, timeoutMs, rate, llm, keep: values.keep === true, withoutPrometheus: values['without-prometheus'] === true, webhook: webhook === undefined ? undefined : { url: webhook, format } });
  } catch (error) {
    out.finishLive();
    io.stderr.write(`modelcanary demo: ${error instanceof Error ? error.message : String(error)}\n`);
    code = EXIT.unreadable;
  }
  for (const stop of stack.reverse()) await stop().catch(() => undefined);
  process.off('SIGINT', interrupt);
  process.off('SIGTERM', interrupt);
  signal?.removeEventListener('abort', interrupt);
  if (leftBehind.length === 0) return code;
  for (const problem of leftBehind) io.stderr.write(`modelcanary demo: ${problem}\n`);
  return code === EXIT.ok ? EXIT.invalid : code;
}

interface Play {
  io: Io;
  env: NodeJS.ProcessEnv;
  out: Output;
  /** What to stop or delete at the end, in reverse order. */
  stack: (() => Promise<void>)[];
  /** What the cleanup could not delete, with how to delete it. */
  leftBehind: string[];
  interrupted: AbortSignal;
  kubeconfigFile: string | undefined;
  timeoutMs: number;
  rate: number;
  /** The LLM demo's cast (LLM_ROLES) instead of the classic models'. */
  llm: boolean;
  keep: boolean;
  withoutPrometheus: boolean;
  webhook: { url: string; format: 'slack' | 'webhook' } | undefined;
}

async function play(p: Play): Promise<number> {
  const { out, stack, rate } = p;
  const dir = await mkdtemp(join(tmpdir(), 'modelcanary-demo-'));
  stack.push(() => rm(dir, { recursive: true, force: true }));

  const stage = p.kubeconfigFile === undefined ? await sandboxStage(dir, stack) : await clusterStage(p.kubeconfigFile, p.io, out, stack, p.leftBehind);
  if (typeof stage === 'number') return stage;
  const { kubeConfig, namespace } = stage;
  const prometheusAvailable = !p.withoutPrometheus && prometheusMissing(p.env.PATH) === undefined;
  const cast = await readCast(namespace, prometheusAvailable, p.llm ? LLM_ROLES : ROLES);
  if (typeof cast === 'string') {
    p.io.stderr.write(`modelcanary demo: ${cast}\n`);
    return EXIT.unreadable;
  }
  await stage.rehearse?.(cast.flatMap((member) => [...member.others, member.manifest]));

  out.line(
    p.llm
      ? 'modelcanary demo: two chat model rollouts on simulated vLLM pods behind InferencePools, split by HTTPRoutes and judged on time to first token by the real controller'
      : `modelcanary demo: ${cast.length === 2 ? 'two' : 'three'} model rollouts on a simulated Istio mesh, judged by the real controller`,
  );
  out.line('');
  for (const member of cast) for (const object of member.others) await stage.create(object);

  const mesh = await startMesh({ kubeConfig, namespace, workloads: cast.flatMap((member) => workloadsOf(member, namespace)), gatewayApi: p.llm });
  stack.push(() => mesh.stop());
  mesh.onRouteChange((change) => {
    routeChanged(change, cast, namespace, mesh, out);
  });

  for (const member of cast) {
    const host = member.role.host ?? `${member.canary.spec.stable.destination.host ?? ''}.${namespace}.svc.cluster.local`;
    const path = member.role.behaviour?.llm === undefined ? `/v1/models/${member.canary.spec.model}:predict` : '/v1/chat/completions';
    member.load = startLoad({ url: mesh.ingressUrl, host, path, ratePerSecond: rate });
    const load = member.load;
    stack.push(() => load.stop());
  }

  // Prometheus scrapes the controller too, so that the dashboards and alerts of dashboards/ and
  // deploy/monitoring/ have everything they read: the controller's port is chosen first.
  const controllerAddress = `127.0.0.1:${await freeLoopbackPort()}`;
  const metricsSource = await startMetrics(p.withoutPrometheus, mesh, cast, namespace, p.env, stack, p.interrupted, controllerAddress);
  if (metricsSource === undefined) return interruptedExit(out);

  const logFile = join(dir, 'controller.log');
  const logStream = createWriteStream(logFile);
  stack.push(() => new Promise((resolve) => logStream.end(resolve)));
  const controller: RunningController = await startController({
    kubeConfig,
    namespaces: [namespace],
    metricsAddr: controllerAddress,
    defaultPrometheus: metricsSource.prometheus?.url ?? 'http://127.0.0.1:9',
    metricsProvider: metricsSource.direct,
    notifications:
      p.webhook === undefined ? undefined : { destinations: [{ name: 'demo', format: p.webhook.format, url: { value: p.webhook.url }, least: 'info', isDefault: true }] },
    log: createLogger({ level: 'info', destination: logStream, pretty: false }),
    // A handful of rollouts share nothing worth a coarse grid: read at whole seconds, as
    // `modelcanary run --metrics-grid 1s` would, so a check's window loses at most a second.
    readGridMs: 1000,
  });
  stack.push(() => controller.stop());
  // Runs before the controller stops: it is the controller that removes the finalizers.
  if (stage.retire !== undefined) stack.push(stage.retire);

  for (const line of stage.where) out.line(line);
  out.line(
    metricsSource.prometheus === undefined
      ? `  Prometheus                ${metricsSource.without ?? 'none'}: reading the mesh's counters directly (apt-get install -y prometheus for the real thing)`
      : `  Prometheus                ${metricsSource.prometheus.url}  (scraping the mesh every 1 s)`,
  );
  out.line(`  ingress gateway           ${mesh.ingressUrl}  (${rate} requests/s to each model)`);
  out.line(`  mesh telemetry            ${mesh.metricsUrl}`);
  out.line(`  controller metrics        http://${controller.metricsAddress}/metrics`);
  out.line(`  controller log            ${logFile}`);
  if (p.webhook !== undefined) out.line(`  notifications             ${p.webhook.format === 'slack' ? 'Slack' : 'JSON webhook'} ${redact(p.webhook.url).replace(/(\/services\/[^/]+\/)[^/]+\/[^/]+$/, '$1…')}`);
  out.line('');
  out.line(`  Inspect it while it runs${p.keep ? '' : ' (--keep leaves it running)'}:`);
  out.line(`    kubectl --kubeconfig ${stage.kubeconfigFile} -n ${namespace} get modelcanaries,${p.llm ? 'httproutes,inferencepools' : 'virtualservices'}`);
  out.line(`    npx modelcanary status ${cast[0]?.role.name ?? 'NAME'} --kubeconfig ${stage.kubeconfigFile} -n ${namespace} --watch`);
  out.line('');
  for (const member of cast) out.line(`  ${member.role.name.padEnd(15)} ${member.canary.spec.stable.version} → ${member.canary.spec.canary.version}   ${member.role.story}`);
  out.line('');

  const started = Date.now();
  out.clock = () => Date.now() - started;
  const canaries = kubeConfig.makeApiClient(CustomObjectsApi);
  for (const member of cast) await stage.create(member.manifest);

  const ended = await follow(cast, canaries, namespace, out, started + p.timeoutMs, p.interrupted);
  out.finishLive();
  // The last news (a promotion, a rollback) is still on its way at the end: let it arrive.
  if (p.webhook !== undefined && !(await controller.notificationsSettled(15_000))) out.line('Some notifications were not delivered in 15 s; the controller log says why.');
  if (ended === 'interrupted') return interruptedExit(out);
  const asExpected = summarize(cast, ended === 'ended', p.timeoutMs, out, mesh);

  if (p.keep && !p.interrupted.aborted) {
    out.line('');
    out.line(`Everything keeps running (${stage.keeps}). Ctrl-C stops it all.`);
    await new Promise<void>((resolve) => {
      if (p.interrupted.aborted) resolve();
      p.interrupted.addEventListener('abort', () => {
        resolve();
      }, { once: true });
    });
  }
  return asExpected ? EXIT.ok : EXIT.invalid;
}

function interruptedExit(out: Output): number {
  out.finishLive();
  out.line('Interrupted: stopping everything.');
  return EXIT.invalid;
}

/** Where the demo's objects live: the embedded API server, or a real cluster (--kubeconfig). */
interface Stage {
  kubeConfig: KubeConfig;
  /** For the kubectl line the demo prints. */
  kubeconfigFile: string;
  namespace: string;
  /** Header lines saying where it is. */
  where: string[];
  /** What --keep leaves running. */
  keeps: string;
  create(object: KubernetesObject): Promise<void>;
  /** Tries the creates without keeping anything, so that a refusal comes before anything starts. */
  rehearse?: (objects: KubernetesObject[]) => Promise<void>;
  /** Ends the ModelCanaries while the controller still runs, so that it removes their finalizers. */
  retire?: () => Promise<void>;
}

async function sandboxStage(dir: string, stack: (() => Promise<void>)[]): Promise<Stage> {
  const sandbox = await startSandbox({ namespaces: [NAMESPACE] });
  stack.push(() => sandbox.stop());
  const kubeconfigFile = join(dir, 'kubeconfig');
  await writeFile(kubeconfigFile, sandbox.kubeconfig({ namespace: NAMESPACE }));
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(sandbox.kubeconfig({ namespace: NAMESPACE }));
  const objects = KubernetesObjectApi.makeApiClient(kubeConfig);
  return {
    kubeConfig,
    kubeconfigFile,
    namespace: NAMESPACE,
    where: [`  Kubernetes API (sandbox)  ${sandbox.url}`],
    keeps: 'load, mesh, Prometheus, controller, API server',
    create: async (object) => {
      await objects.create(object);
    },
  };
}

/**
 * A real cluster: checks that it answers and serves the kinds the demo needs (saying how to
 * install what is missing, exit 2), then makes the demo's namespace. What it creates there is
 * deleted at the end: the ModelCanaries first, while the controller runs (retire), then the
 * rest once everything has stopped, then the namespace, whose deletion is not waited for (a
 * cluster without a controller-manager, such as envtest, never finishes it).
 */
async function clusterStage(file: string, io: Io, out: Output, stack: (() => Promise<void>)[], leftBehind: string[]): Promise<Stage | number> {
  const kubeConfig = new KubeConfig();
  try {
    kubeConfig.loadFromFile(file);
  } catch (error) {
    io.stderr.write(`modelcanary demo: cannot load the kubeconfig ${file}: ${(error as Error).message}\n`);
    return EXIT.unreadable;
  }
  const server = kubeConfig.getCurrentCluster()?.server;
  if (server === undefined) {
    io.stderr.write(`modelcanary demo: the kubeconfig ${file} has no current context with a cluster; set one with kubectl config use-context\n`);
    return EXIT.unreadable;
  }
  const api = kubeConfig.makeApiClient(CustomObjectsApi);
  const core = kubeConfig.makeApiClient(CoreV1Api);

  let missing: Kind[];
  try {
    missing = await missingKinds(api);
  } catch (error) {
    io.stderr.write(`modelcanary demo: cannot ask the Kubernetes API at ${server} (${file}) what it serves: ${networkAware(error)}\n`);
    return EXIT.unreadable;
  }
  if (missing.length > 0) {
    io.stderr.write(missingCrdsMessage(missing, server, io.cwd));
    return EXIT.unreadable;
  }

  let namespace: string;
  try {
    const created = await core.createNamespace({ body: { metadata: { generateName: 'modelcanary-demo-', labels: CREATED_BY } } }, withSignal(AbortSignal.timeout(CLUSTER_REQUEST_MS)));
    namespace = created.metadata?.name ?? '';
  } catch (error) {
    io.stderr.write(`modelcanary demo: cannot create a namespace for the demo on ${server}: ${apiErrorMessage(error)}\n`);
    return EXIT.unreadable;
  }
  const deleteAll = `kubectl --kubeconfig ${file} delete namespace ${namespace}`;
  let emptied = false;
  stack.push(async () => {
    try {
      await core.deleteNamespace({ name: namespace }, withSignal(AbortSignal.timeout(CLUSTER_REQUEST_MS)));
    } catch (error) {
      if (!(error instanceof ApiException && error.code === 404)) leftBehind.push(`could not delete namespace ${namespace}: ${apiErrorMessage(error)}; delete it with: ${deleteAll}`);
      return;
    }
    if (emptied) out.line(`Deleted namespace ${namespace} and everything the demo made in it.`);
  });
  stack.push(async () => {
    const problems = await emptyNamespace(api, core, namespace);
    for (const problem of problems) leftBehind.push(`${problem}; delete what is left with: ${deleteAll}`);
    emptied = problems.length === 0;
  });

  const context = kubeConfig.getCurrentContext();
  return {
    kubeConfig,
    kubeconfigFile: file,
    namespace,
    where: [`  Kubernetes API            ${server}  (context ${context} of ${file})`, `  namespace                 ${namespace}  (made for this run; deleted when it ends)`],
    keeps: `load, mesh, Prometheus, controller, and the demo's objects in ${namespace}`,
    create: (object) => createStrictly(api, namespace, object, false),
    rehearse: async (objects) => {
      for (const object of objects) await createStrictly(api, namespace, object, true);
    },
    retire: async () => {
      const problem = await retireCanaries(api, namespace);
      if (problem !== undefined) io.stderr.write(`modelcanary demo: ${problem}\n`);
    },
  };
}

/** The API's answer, or why there was none: fetch's own message ("fetch failed") names no reason. */
function networkAware(error: unknown): string {
  const cause: unknown = error instanceof Error && !(error instanceof ApiException) ? error.cause : undefined;
  return cause instanceof Error ? `${apiErrorMessage(error)}: ${cause.message}` : apiErrorMessage(error);
}

/** The kinds the cluster does not serve, asked through discovery (which every authenticated user may read). */
async function missingKinds(api: CustomObjectsApi): Promise<Kind[]> {
  const served = new Map<string, Set<string>>();
  for (const { group, version } of KINDS) {
    const groupVersion = `${group}/${version}`;
    if (served.has(groupVersion)) continue;
    try {
      const resources = await api.getAPIResources({ group, version }, withSignal(AbortSignal.timeout(CLUSTER_REQUEST_MS)));
      served.set(groupVersion, new Set(resources.resources.map((r) => r.name)));
    } catch (error) {
      if (!(error instanceof ApiException && error.code === 404)) throw error;
      served.set(groupVersion, new Set());
    }
  }
  return KINDS.filter((k) => served.get(`${k.group}/${k.version}`)?.has(k.plural) !== true);
}

function missingCrdsMessage(missing: readonly Kind[], server: string, cwd: string): string {
  const lines = [`modelcanary demo: the cluster at ${server} does not serve what the demo needs; these CRDs are missing:`];
  for (const kind of missing) lines.push(`  ${kind.crd}  (${kind.kind}, ${kind.group}/${kind.version})`);
  lines.push('Install them, then run the demo again:');
  if (missing.some((k) => k.group === GROUP)) {
    const path = relative(cwd, CRD_FILE);
    lines.push(`  kubectl apply -f ${path.startsWith('..') || isAbsolute(path) ? CRD_FILE : path}`);
  }
  if (missing.some((k) => k.group === ISTIO.group)) {
    // The istio.io/api release that test/kube/crdsrc pins, so the demo is proven against these.
    lines.push(`  kubectl apply -f ${ISTIO_CRDS}`);
    lines.push('    (the Istio CRDs from istio.io/api; `istioctl install` installs them too, with Istio itself)');
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Creates one of the demo's objects with strict field validation, so that a CRD older than this
 * modelcanary refuses the fields it does not know instead of dropping them.
 */
async function createStrictly(api: CustomObjectsApi, namespace: string, object: KubernetesObject, dryRun: boolean): Promise<void> {
  const kind = KINDS.find((k) => k.kind === object.kind && `${k.group}/${k.version}` === object.apiVersion);
  const name = `${object.kind ?? 'object'} ${namespace}/${object.metadata?.name ?? ''}`;
  if (kind === undefined) throw new Error(`the demo does not create ${object.apiVersion ?? ''} ${name}`);
  try {
    await patiently(() => api.createNamespacedCustomObject({ group: kind.group, version: kind.version, namespace, plural: kind.plural, body: object, fieldValidation: 'Strict', dryRun: dryRun ? 'All' : undefined }, withSignal(AbortSignal.timeout(CLUSTER_REQUEST_MS))));
  } catch (error) {
    const message = apiErrorMessage(error);
    const stale = kind.kind === KIND && /unknown field/.test(message) ? `; the cluster's ModelCanary CRD is older than this modelcanary: kubectl apply -f ${CRD_FILE}` : '';
    throw new Error(`the cluster refused ${name}: ${message}${stale}`, { cause: error });
  }
}

/**
 * A request retried while the server answers 429: a CRD installed moments ago is Established
 * and discoverable before its storage is ready ("storage is (re)initializing"), which is just
 * when a user who followed the install hint runs the demo again.
 */
async function patiently<T>(request: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + CLUSTER_REQUEST_MS;
  for (;;) {
    try {
      return await request();
    } catch (error) {
      if (!(error instanceof ApiException && error.code === 429) || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

/** Deletes the ModelCanaries and waits for the controller to remove their finalizers (restoring stable mid-rollout); a problem if it does not. */
async function retireCanaries(api: CustomObjectsApi, namespace: string): Promise<string | undefined> {
  const resource = { group: GROUP, version: VERSION, plural: PLURAL, namespace };
  const deadline = Date.now() + FINALIZE_MS;
  try {
    await patiently(() => api.deleteCollectionNamespacedCustomObject(resource, withSignal(AbortSignal.timeout(CLUSTER_REQUEST_MS))));
    for (;;) {
      const list = (await api.listNamespacedCustomObject(resource, withSignal(AbortSignal.timeout(CLUSTER_REQUEST_MS)))) as { items?: KubernetesObject[] };
      const left = (list.items ?? []).map((item) => item.metadata?.name ?? '');
      if (left.length === 0) return undefined;
      if (Date.now() > deadline) return `the controller did not finish deleting ModelCanary ${left.join(', ')} within ${FINALIZE_MS / 1000} s (see its log); removing the finalizers itself`;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } catch (error) {
    return `deleting the ModelCanaries in ${namespace}: ${apiErrorMessage(error)}`;
  }
}

/** Everything the demo and the controller made in the namespace, after both stopped; the problems met. */
async function emptyNamespace(api: CustomObjectsApi, core: CoreV1Api, namespace: string): Promise<string[]> {
  const problems: string[] = [];
  const options = (): ReturnType<typeof withSignal> => withSignal(AbortSignal.timeout(CLUSTER_REQUEST_MS));
  for (const kind of KINDS) {
    const resource = { group: kind.group, version: kind.version, plural: kind.plural, namespace };
    try {
      // A ModelCanary still here kept its finalizer (the controller did not get to it); nobody else will remove it.
      const list = (await patiently(() => api.listNamespacedCustomObject(resource, options()))) as { items?: KubernetesObject[] };
      for (const item of list.items ?? []) {
        if ((item.metadata?.finalizers ?? []).length === 0) continue;
        await patiently(() => api.patchNamespacedCustomObject({ ...resource, name: item.metadata?.name ?? '', body: [{ op: 'replace', path: '/metadata/finalizers', value: [] }] }, options()));
      }
      await patiently(() => api.deleteCollectionNamespacedCustomObject(resource, options()));
    } catch (error) {
      problems.push(`could not delete the ${kind.plural} in ${namespace}: ${apiErrorMessage(error)}`);
    }
  }
  try {
    await core.deleteCollectionNamespacedEvent({ namespace }, options());
  } catch (error) {
    problems.push(`could not delete the events in ${namespace}: ${apiErrorMessage(error)}`);
  }
  return problems;
}

/** The demo ModelCanaries and their routes, from examples/demo, moved into `namespace`. */
async function readCast(namespace: string, prometheusAvailable: boolean, roles: readonly Role[]): Promise<Cast[] | string> {
  const cast: Cast[] = [];
  for (const role of roles.filter((r) => prometheusAvailable || r.needsPrometheus !== true)) {
    const file = fileURLToPath(new URL(role.file, MANIFESTS));
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      return `cannot read ${file}: ${(error as Error).message}`;
    }
    const documents = parseAllDocuments(text).map((d) => d.toJS() as KubernetesObject);
    for (const document of documents) (document.metadata ??= {}).namespace = namespace;
    const manifest = documents.find((d) => d.kind === 'ModelCanary' && d.metadata?.name === role.name);
    const checked = checkModelCanary(structuredClone(manifest));
    if (!checked.ok) return `${file}: ModelCanary ${role.name} is not valid: ${checked.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`;
    cast.push({ role, canary: checked.value, manifest: manifest as KubernetesObject, others: documents.filter((d) => d !== manifest), weights: [], status: {}, broken: false });
  }
  return cast;
}

function workloadsOf(member: Cast, namespace: string): WorkloadSpec[] {
  const { spec } = member.canary;
  return [spec.stable, spec.canary].map((target) => ({
    name: `${spec.model}-${target.version}`,
    namespace,
    service: target.destination.host ?? target.destination.inferencePool ?? '',
    labels: { app: spec.model, version: target.version },
    behaviour: (target === spec.canary ? member.role.canaryBehaviour : undefined) ?? member.role.behaviour ?? HEALTHY,
    pods: member.role.pods,
    // vLLM's --served-model-name, as the LLM presets select it by default (model_name="<model>-<version>").
    servedModelName: `${spec.model}-${target.version}`,
  }));
}

/** The gateway applied a VirtualService: note the canary's weight, and break the canary on cue. */
function routeChanged(change: RouteChange, cast: Cast[], namespace: string, mesh: Mesh, out: Output): void {
  if (change.namespace !== namespace) return;
  const member = cast.find((m) =>
    change.kind === 'HTTPRoute' ? m.canary.spec.trafficRouting.gatewayAPI?.httpRoute === change.name : m.canary.spec.trafficRouting.istio?.virtualService === change.name,
  );
  if (member === undefined) return;
  const { trafficRouting, canary: canaryTarget } = member.canary.spec;
  const managed = change.kind === 'HTTPRoute' ? (trafficRouting.gatewayAPI?.ruleName === undefined ? undefined : [trafficRouting.gatewayAPI.ruleName]) : trafficRouting.istio?.routes;
  const route = change.routes.find((r) => managed === undefined || r.name === undefined || managed.includes(r.name));
  // An HTTPRoute's backendRefs are told apart by name (a Service's or an InferencePool's), a VirtualService's destinations by subset.
  const canaryBackend = canaryTarget.destination.inferencePool ?? canaryTarget.destination.host;
  const weight = route?.destinations.find((d) => (change.kind === 'HTTPRoute' ? d.host === canaryBackend : d.subset === canaryTarget.destination.subset))?.weight ?? 0;
  // The route as created (all on stable) is no step of the rollout; a gateway that first lists
  // it late (a CRD's storage still initializing) reports it after the listener is in place.
  if (member.weights.length === 0 && weight === 0) return;
  if (member.weights.at(-1) !== weight) member.weights.push(weight);
  const breakAt = member.role.breakAt;
  if (breakAt === undefined || member.broken || weight < breakAt.weight || weight === 100) return;
  member.broken = true;
  const { model, canary } = member.canary.spec;
  const workload = mesh.workload(`${model}-${canary.version}`);
  const what = formatRatio(breakAt.errorRate);
  if (breakAt.pod === undefined) {
    workload.set({ errorRate: breakAt.errorRate });
    out.event(`${member.role.name}: the gateway sends ${canary.version} ${weight} % of the traffic; the demo now makes ${what} of its answers 5xx`);
  } else {
    workload.pod(breakAt.pod).set({ errorRate: breakAt.errorRate });
    const answers = breakAt.errorRate === 1 ? 'every answer a 500' : `${what} of its answers 5xx`;
    out.event(`${member.role.name}: the gateway sends ${canary.version} ${weight} % of the traffic; the demo breaks pod ${breakAt.pod + 1} of its ${workload.pods.length}: ${answers}`);
  }
}

interface MetricsSource {
  prometheus?: RunningPrometheus | undefined;
  direct?: ScrapingMetricsProvider | undefined;
  /** Why there is no Prometheus. */
  without?: string | undefined;
}

/** Prometheus scraping the mesh when installed (waiting until it has), else the mesh's counters read directly. */
async function startMetrics(
  withoutPrometheus: boolean,
  mesh: Mesh,
  cast: Cast[],
  namespace: string,
  env: NodeJS.ProcessEnv,
  stack: (() => Promise<void>)[],
  signal: AbortSignal,
  controllerAddress: string,
): Promise<MetricsSource | undefined> {
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
  const rules = fileURLToPath(new URL('../../deploy/monitoring/alerts.rules.yaml', import.meta.url));
  const prometheus = await startPrometheus({ scrapeTargets: [mesh.metricsTarget], scrapeJobs: { modelcanary: [controllerAddress] }, ruleFiles: existsSync(rules) ? [rules] : undefined });
  stack.push(() => prometheus.stop());
  // Prometheus's first scrape comes about 5 s after it starts, and the controller's preflight
  // holds a rollout until stable's requests are measured: wait for every stable version's.
  const deadline = Date.now() + 30_000;
  while (!signal.aborted && Date.now() < deadline) {
    if (await hasStableSamples(prometheus.url, cast, namespace)) return { prometheus };
    await sleep(250, signal);
  }
  if (signal.aborted) return undefined;
  throw new Error(`Prometheus at ${prometheus.url} has not scraped the mesh at ${mesh.metricsUrl} within 30 s`);
}

/** Whether Prometheus has requests of every stable version, by the labels the controller's preflight asks for. */
async function hasStableSamples(url: string, cast: Cast[], namespace: string): Promise<boolean> {
  for (const member of cast) {
    const { model, stable } = member.canary.spec;
    const query = `count(istio_requests_total{destination_workload_namespace=${JSON.stringify(namespace)},destination_canonical_service=${JSON.stringify(model)},destination_canonical_revision=${JSON.stringify(stable.version)}})`;
    try {
      const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(query)}`, { signal: AbortSignal.timeout(2_000) });
      const body = (await response.json()) as { data?: { result?: unknown[] } };
      if ((body.data?.result?.length ?? 0) === 0) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/** Follows the ModelCanaries until every one has ended, the deadline passes, or the run is interrupted. */
async function follow(cast: Cast[], api: CustomObjectsApi, namespace: string, out: Output, deadline: number, signal: AbortSignal): Promise<'ended' | 'timeout' | 'interrupted'> {
  let allEndedAt: number | undefined;
  for (;;) {
    if (signal.aborted) return 'interrupted';
    const list = (await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL }).catch(() => undefined)) as { items?: { metadata?: { name?: string }; status?: ModelCanaryStatus }[] } | undefined;
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
    if (cast.every((m) => TERMINAL.has(m.status.phase ?? ''))) {
      // The controller writes the status before the route: give the gateway the moment it
      // takes to apply the route the status names, so the summary shows where traffic went.
      allEndedAt ??= Date.now();
      if (cast.every((m) => (m.weights.at(-1) ?? 0) === (m.status.canaryWeight ?? 0)) || Date.now() > allEndedAt + ROUTE_GRACE_MS) return 'ended';
    }
    if (Date.now() > deadline) return 'timeout';
    await sleep(250, signal);
  }
}

function summarize(cast: Cast[], ended: boolean, timeoutMs: number, out: Output, mesh: Mesh): boolean {
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
    const brokenPod = role.breakAt?.pod;
    if (brokenPod !== undefined && member.broken) {
      const pod = mesh.workload(`${member.canary.spec.model}-${canary.version}`).pod(brokenPod).served();
      out.line(`  ${''.padEnd(15)} hidden: its broken pod answered ${pod.failed} requests with 500 before Envoy ejected it, and retries answered them from the other pods`);
    }
    if (status.lastAnalysis !== undefined) out.line(`  ${''.padEnd(15)} last check: ${status.lastAnalysis.decision}: ${status.lastAnalysis.reason}`);
  }
  out.line('');
  if (!ended) out.line(`Not every rollout ended within ${Math.round(timeoutMs / 1000)} s.`);
  out.line(allAsExpected ? `${cast.length === 2 ? 'Both rollouts' : `All ${cast.length} rollouts`} ended as expected.` : 'The rollouts did not end as expected.');
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
      const format = (value: number | null | undefined): string => (typeof value !== 'number' || type === undefined ? '–' : formatMetricValue(type, value));
      return `${m.name} ${m.verdict} ${format(m.canary)} (stable ${format(m.stable)})`;
    })
    .join(' · ');
}

function stamp(ms: number): string {
  return `[${String(Math.round(ms / 1000)).padStart(3)} s]`;
}
