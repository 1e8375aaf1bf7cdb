// A simulated Istio mesh on loopback: a model server for each pod of each workload, and an
// ingress gateway that routes real HTTP requests by the VirtualServices and DestinationRules it
// watches in a Kubernetes API (the sandbox's or a real cluster's, through the real client-node
// informer) — with the DestinationRules' outlier detection, circuit breakers and load balancer
// and the routes' retries and timeouts — and exports Istio's standard metrics and the gateway's
// outlier stats on its own /metrics port, as a gateway and its sidecars would; pods that
// stream like an LLM (behaviour.llm) add vLLM's TTFT, inter-token and end-to-end histograms.

import { createServer, Agent, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CustomObjectsApi, makeInformer, type Informer, type KubeConfig, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import { Clusters, DEFAULT_SERVICE_PORT, type Endpoint } from './cluster.ts';
import { startModelServer, type Behaviour, type ModelServer } from './model-server.ts';
import { routePolicy, type PolicyOptions } from './policy.ts';
import { forward, type Answer, type RouterContext } from './router.ts';
import { chooseRoute, fullyQualified, type MeshRequest } from './routes.ts';
import { MeshTelemetry, type ServedBy } from './telemetry.ts';
import { VllmTelemetry } from './vllm.ts';
import { chooseHttpRoute, INFERENCE_POOL_GROUP, poolSelector } from './httproutes.ts';

type Json = Record<string, unknown>;

const LIST_DEADLINE_MS = 30_000;

export interface WorkloadSpec {
  /** The Deployment's name, e.g. fraud-detector-v2 (Istio's destination_workload). */
  name: string;
  namespace: string;
  /** The Service in front of it, by short name, as VirtualServices and DestinationRules name it. */
  service: string;
  /** Pod labels: DestinationRule subsets select on them, and Istio derives canonical names from them. */
  labels: Readonly<Record<string, string>>;
  /** How every pod answers. */
  behaviour: Behaviour;
  /** Replicas, each its own endpoint (pod `<name>-<i>`); default 1. */
  pods?: number;
  /** Pod i's own departures from `behaviour`, e.g. `[{}, {}, { errorRate: 1 }]` for one bad pod of three. */
  podBehaviours?: readonly Partial<Behaviour>[];
  /** The Service's port, in Envoy's cluster names (outbound|<port>|<subset>|<host>); default 8080. */
  servicePort?: number;
  /** An LLM's pods (behaviour.llm) run vLLM with this --served-model-name, its model_name label; default `<name>`. */
  servedModelName?: string;
}

/** A workload's pods while the mesh runs. */
export interface MeshWorkload {
  name: string;
  pods: readonly ModelServer[];
  /** Pod `index`; throws when there is none. */
  pod(index: number): ModelServer;
  /** Changes the behaviour of every pod. */
  set(behaviour: Partial<Behaviour>): void;
}

/** One http route of a VirtualService as the gateway now applies it. */
export interface RouteWeights {
  name: string | undefined;
  destinations: { host: string; subset?: string | undefined; weight: number }[];
}

export interface RouteChange {
  /** A VirtualService, or with `gatewayApi` an HTTPRoute (its rules as routes, its backendRefs' names as hosts). */
  kind: 'VirtualService' | 'HTTPRoute';
  namespace: string;
  name: string;
  routes: RouteWeights[];
}

export interface Mesh {
  /** The ingress gateway, e.g. http://127.0.0.1:40123; send the service's host in the Host header. */
  ingressUrl: string;
  /** host:port of the telemetry endpoint, for a Prometheus scrape config. */
  metricsTarget: string;
  /** The telemetry endpoint: Istio's standard metrics, the gateway's Envoy outlier stats, and vLLM's histograms of LLM pods. */
  metricsUrl: string;
  workload(name: string): MeshWorkload;
  /** Called after the gateway starts applying a new or changed VirtualService. */
  onRouteChange(listener: (change: RouteChange) => void): void;
  stop(): Promise<void>;
}

export interface MeshOptions {
  kubeConfig: KubeConfig;
  workloads: readonly WorkloadSpec[];
  /**
   * Watch VirtualServices and DestinationRules only in this namespace; default: all, as istiod
   * does. On a shared cluster another namespace's VirtualService with `hosts: ["*"]` would
   * otherwise take the demo's requests.
   */
  namespace?: string | undefined;
  /** Uniform draws in [0, 1) for weights, latencies, errors, load balancing and retry back-off; default Math.random. */
  random?: () => number;
  /** Monotonic milliseconds, for outlier detection; default performance.now. */
  clock?: () => number;
  /** Istio's default retry policy with 503 among its codes, as before EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY; default false. */
  retry503ByDefault?: PolicyOptions['retry503ByDefault'];
  /**
   * Also route by Gateway API HTTPRoutes, to Services and to InferencePools (httproutes.ts), as
   * Istio's gateway does; a request no VirtualService takes is tried against them. Default
   * false: a cluster without the Gateway API or InferencePool CRDs could not be watched.
   */
  gatewayApi?: boolean;
}

interface Workload {
  spec: WorkloadSpec;
  pods: ModelServer[];
}

/** Istio's canonical service and revision: its own labels first, then the Kubernetes recommended ones, then app/version. */
function canonical(labels: Readonly<Record<string, string>>, fallbackName: string): { service: string; revision: string } {
  return {
    service: labels['service.istio.io/canonical-name'] ?? labels['app.kubernetes.io/name'] ?? labels.app ?? fallbackName,
    revision: labels['service.istio.io/canonical-revision'] ?? labels['app.kubernetes.io/version'] ?? labels.version ?? 'latest',
  };
}

export async function startMesh(options: MeshOptions): Promise<Mesh> {
  const random = options.random ?? Math.random;
  const clock = options.clock ?? (() => performance.now());
  const telemetry = new MeshTelemetry();
  const vllm = new VllmTelemetry(telemetry.registry);
  const workloads: Workload[] = [];
  const endpoints: Endpoint[] = [];
  const listeners: ((change: RouteChange) => void)[] = [];
  const stoppers: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stoppers.reverse()) await stop();
  };

  try {
    for (const spec of options.workloads) {
      const names = canonical(spec.labels, spec.name);
      const servedBy: ServedBy = {
        workload: spec.name,
        namespace: spec.namespace,
        service: fullyQualified(spec.service, spec.namespace),
        app: spec.labels.app ?? 'unknown',
        version: spec.labels.version ?? 'unknown',
        canonicalService: names.service,
        canonicalRevision: names.revision,
      };
      const pods: ModelServer[] = [];
      for (let i = 0; i < (spec.pods ?? 1); i++) {
        const servedModelName = spec.servedModelName ?? spec.name;
        const pod = await startModelServer({
          model: names.service,
          version: names.revision,
          pod: `${spec.name}-${i}`,
          behaviour: { ...spec.behaviour, ...spec.podBehaviours?.[i] },
          random,
          onLlmAnswer: (timing) => {
            vllm.record(servedModelName, timing);
          },
        });
        stoppers.push(() => pod.stop());
        pods.push(pod);
        endpoints.push({ id: pod.pod, url: pod.url, service: servedBy.service, servicePort: spec.servicePort ?? DEFAULT_SERVICE_PORT, labels: spec.labels, servedBy });
      }
      workloads.push({ spec, pods });
    }

    const virtualServices = await watchIstio(options.kubeConfig, options.namespace, 'virtualservices', (object) => {
      const change = routeChange(object);
      for (const listener of listeners) listener(change);
    });
    stoppers.push(() => virtualServices.stop());
    const destinationRules = await watchIstio(options.kubeConfig, options.namespace, 'destinationrules');
    stoppers.push(() => destinationRules.stop());
    let gatewayApi: GatewayApiRoutes | undefined;
    if (options.gatewayApi === true) {
      const httpRoutes = await watchIstio(options.kubeConfig, options.namespace, 'httproutes', (object) => {
        const change = httpRouteChange(object);
        for (const listener of listeners) listener(change);
      }, 'gateway.networking.k8s.io');
      stoppers.push(() => httpRoutes.stop());
      const pools = await watchIstio(options.kubeConfig, options.namespace, 'inferencepools', undefined, INFERENCE_POOL_GROUP);
      stoppers.push(() => pools.stop());
      gatewayApi = { httpRoutes, pools };
    }

    const clusters = new Clusters(endpoints);
    telemetry.exportOutliers(() => {
      const now = clock();
      return clusters.all(destinationRules.list(), now).flatMap((cluster) => {
        const stats = cluster.outlierStats(now);
        return stats === undefined ? [] : [[cluster.name, stats] as const];
      });
    });
    const upstream = new Agent({ keepAlive: true, maxSockets: 64 });
    stoppers.push(() => {
      upstream.destroy();
      return Promise.resolve();
    });
    const router: RouterContext = { agent: upstream, random, clock, telemetry };
    const policyOptions: PolicyOptions = { retry503ByDefault: options.retry503ByDefault };
    const ingress = await listen(
      createServer((req, res) => {
        const routes = gatewayApi === undefined ? undefined : { httpRoutes: gatewayApi.httpRoutes.list(), pools: gatewayApi.pools.list() };
        gateway(req, res, { virtualServices: virtualServices.list(), destinationRules: destinationRules.list(), gatewayApi: routes, clusters, router, policyOptions }).catch(() => {
          res.destroy();
        });
      }),
    );
    stoppers.push(() => close(ingress));
    const metrics = await listen(
      createServer((req, res) => {
        if (req.url !== '/metrics') {
          res.writeHead(404).end('see /metrics\n');
          return;
        }
        void telemetry.exposition().then((text) => {
          res.writeHead(200, { 'content-type': telemetry.registry.contentType }).end(text);
        });
      }),
    );
    stoppers.push(() => close(metrics));

    const metricsTarget = `127.0.0.1:${(metrics.address() as AddressInfo).port}`;
    let stopped: Promise<void> | undefined;
    return {
      ingressUrl: `http://127.0.0.1:${(ingress.address() as AddressInfo).port}`,
      metricsTarget,
      metricsUrl: `http://${metricsTarget}/metrics`,
      workload: (name) => {
        const found = workloads.find((w) => w.spec.name === name);
        if (found === undefined) throw new Error(`no workload ${name} in the mesh; it has ${workloads.map((w) => w.spec.name).join(', ')}`);
        return meshWorkload(found);
      },
      onRouteChange: (listener) => {
        listeners.push(listener);
      },
      stop: () => (stopped ??= stopAll()),
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

function meshWorkload(workload: Workload): MeshWorkload {
  return {
    name: workload.spec.name,
    pods: workload.pods,
    pod: (index) => {
      const pod = workload.pods[index];
      if (pod === undefined) throw new Error(`workload ${workload.spec.name} has no pod ${index}; it has ${workload.pods.length}`);
      return pod;
    },
    set: (behaviour) => {
      for (const pod of workload.pods) pod.set(behaviour);
    },
  };
}

interface GatewayApiRoutes {
  httpRoutes: Watched;
  pools: Watched;
}

interface GatewayContext {
  virtualServices: Json[];
  destinationRules: Json[];
  /** With MeshOptions.gatewayApi: the HTTPRoutes and InferencePools. */
  gatewayApi?: { httpRoutes: Json[]; pools: Json[] } | undefined;
  clusters: Clusters;
  router: RouterContext;
  policyOptions: PolicyOptions;
}

async function gateway(req: IncomingMessage, res: ServerResponse, context: GatewayContext): Promise<void> {
  const { telemetry, clock } = context.router;
  const started = clock();
  const elapsed = (): number => clock() - started;
  const request: MeshRequest = {
    host: (req.headers.host ?? '').replace(/:\d+$/, ''),
    path: req.url ?? '/',
    method: req.method ?? 'GET',
    headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : v])),
  };
  const choice = chooseRoute(context.virtualServices, context.destinationRules, request, context.router.random);
  if (choice.kind === 'noRoute' && context.gatewayApi !== undefined) {
    await gatewayApiRoute(req, res, request, context, context.gatewayApi, elapsed);
    return;
  }
  if (choice.kind === 'noRoute') {
    req.resume();
    res.writeHead(404, { 'content-type': 'text/plain' }).end(`${choice.reason}\n`);
    telemetry.recordSource({ kind: 'none', service: undefined }, 404, 'NR', elapsed());
    return;
  }
  const { service, subset, port } = choice.destination;
  const body = await readBody(req);
  if (body === undefined) return;
  const cluster = context.clusters.resolve(context.destinationRules, service, subset, port, clock());
  const answer: Answer =
    cluster === undefined
      ? { kind: 'local', code: 503, body: 'no healthy upstream', flags: ['UH'], peer: { kind: 'none', service } }
      : await forward({ method: request.method, path: request.path, headers: req.headers, body }, cluster, service, routePolicy(choice.http, context.policyOptions), context.router);
  deliver(res, answer, telemetry, elapsed);
}

/** The answer to the caller, and the gateway's report of it once it has ended. */
function deliver(res: ServerResponse, answer: Answer, telemetry: MeshTelemetry, elapsed: () => number): void {
  const flags = answer.flags.length === 0 ? '-' : answer.flags.join(',');
  if (answer.kind === 'local') {
    res.writeHead(answer.code, { 'content-type': 'text/plain' }).end(`${answer.body}\n`);
    telemetry.recordSource(answer.peer, answer.code, flags, elapsed());
    return;
  }
  const { response, endpoint } = answer;
  const code = response.statusCode ?? 502;
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    answer.finish();
    telemetry.recordSource({ kind: 'answered', servedBy: endpoint.servedBy }, code, flags, elapsed());
  };
  res.writeHead(code, response.headers);
  response.pipe(res);
  response.once('end', finish);
  // A caller that goes away mid-answer: the upstream response is dropped, and still reported.
  res.once('close', () => {
    if (finished) return;
    response.destroy();
    finish();
  });
}

/** A request no VirtualService took, routed by the HTTPRoutes: to a Service, or to an InferencePool's pods. */
async function gatewayApiRoute(
  req: IncomingMessage,
  res: ServerResponse,
  request: MeshRequest,
  context: GatewayContext,
  routes: { httpRoutes: Json[]; pools: Json[] },
  elapsed: () => number,
): Promise<void> {
  const { telemetry, clock } = context.router;
  const choice = chooseHttpRoute(routes.httpRoutes, request, context.router.random);
  if (choice.kind === 'noRoute') {
    req.resume();
    res.writeHead(404, { 'content-type': 'text/plain' }).end(`${choice.reason}\n`);
    telemetry.recordSource({ kind: 'none', service: undefined }, 404, 'NR', elapsed());
    return;
  }
  const { backend } = choice;
  const service = backend.kind === 'Service' ? fullyQualified(backend.name, backend.namespace) : `${backend.name}.${backend.namespace}.inferencepool`;
  const body = await readBody(req);
  if (body === undefined) return;
  let cluster;
  if (backend.kind === 'Service') {
    cluster = context.clusters.resolve(context.destinationRules, service, undefined, backend.port, clock());
  } else {
    const pool = routes.pools.find((p) => (p.metadata as { name?: string; namespace?: string } | undefined)?.name === backend.name && (p.metadata as { namespace?: string }).namespace === backend.namespace);
    const selector = poolSelector(pool);
    cluster = selector === undefined ? undefined : context.clusters.resolvePool(backend.namespace, backend.name, selector.matchLabels, selector.port, clock());
  }
  const answer: Answer =
    cluster === undefined
      ? { kind: 'local', code: 503, body: backend.kind === 'InferencePool' ? `no InferencePool ${backend.namespace}/${backend.name} with a selector` : 'no healthy upstream', flags: ['UH'], peer: { kind: 'none', service } }
      : await forward({ method: request.method, path: request.path, headers: req.headers, body }, cluster, service, routePolicy({}, context.policyOptions), context.router);
  deliver(res, answer, telemetry, elapsed);
}

/** An HTTPRoute as the routes it holds: each rule, its backendRefs by name and weight (default 1, as a share). */
function httpRouteChange(object: KubernetesObject): RouteChange {
  const spec = ((object as Json).spec ?? {}) as { rules?: { name?: string; backendRefs?: { name?: string; weight?: number }[] }[] };
  return {
    kind: 'HTTPRoute',
    namespace: object.metadata?.namespace ?? 'default',
    name: object.metadata?.name ?? '',
    routes: (spec.rules ?? []).map((rule) => {
      const refs = rule.backendRefs ?? [];
      const total = refs.reduce((sum, r) => sum + (r.weight ?? 1), 0);
      return { name: rule.name, destinations: refs.map((r) => ({ host: r.name ?? '', weight: total === 0 ? 0 : Math.round((100 * (r.weight ?? 1)) / total) })) };
    }),
  };
}

/** The request body, whole (Envoy buffers it to be able to retry); undefined when the caller went away. */
async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of req) chunks.push(chunk as Buffer);
  } catch {
    return undefined;
  }
  return Buffer.concat(chunks);
}

function routeChange(object: KubernetesObject): RouteChange {
  const spec = ((object as Json).spec ?? {}) as { http?: { name?: string; route?: { destination?: { host?: string; subset?: string }; weight?: number }[] }[] };
  return {
    kind: 'VirtualService',
    namespace: object.metadata?.namespace ?? 'default',
    name: object.metadata?.name ?? '',
    routes: (spec.http ?? []).map((route) => {
      const destinations = route.route ?? [];
      return {
        name: route.name,
        destinations: destinations.map((d) => ({ host: d.destination?.host ?? '', subset: d.destination?.subset, weight: d.weight ?? (destinations.length === 1 ? 100 : 0) })),
      };
    }),
  };
}

interface Watched {
  list(): Json[];
  stop(): Promise<void>;
}

/** An informer on an Istio kind (or another group's v1 kind: HTTPRoutes, InferencePools), cluster-wide or in one namespace, restarted after a broken watch, as istiod keeps watching. */
async function watchIstio(kubeConfig: KubeConfig, namespace: string | undefined, plural: string, onChange?: (object: KubernetesObject) => void, group = 'networking.istio.io'): Promise<Watched> {
  const api = kubeConfig.makeApiClient(CustomObjectsApi);
  const resource = { group, version: 'v1', plural };
  type List = { items: KubernetesObject[]; metadata: { resourceVersion?: string } };
  const state = { listed: false };
  const list = async (): Promise<List> => {
    const result = (namespace === undefined ? await api.listClusterCustomObject(resource) : await api.listNamespacedCustomObject({ ...resource, namespace })) as List;
    state.listed = true;
    return result;
  };
  const path = namespace === undefined ? `/apis/${group}/v1/${plural}` : `/apis/${group}/v1/namespaces/${namespace}/${plural}`;
  const informer: Informer<KubernetesObject> & ObjectCache<KubernetesObject> = makeInformer(kubeConfig, path, list);
  let stopped = false;
  informer.on('error', () => {
    if (stopped) return;
    // Checked again when the timer fires: a watch started after stop() would outlive the mesh.
    setTimeout(() => {
      if (!stopped) void informer.start().catch(() => undefined);
    }, 1000).unref();
  });
  if (onChange !== undefined) {
    informer.on('add', onChange);
    informer.on('update', onChange);
  }
  await informer.start();
  // A refused first list (a real server answers 429 while a new CRD's storage initializes) is
  // retried by the error handler; the gateway must know the routes before it serves.
  const deadline = Date.now() + LIST_DEADLINE_MS;
  while (!state.listed) {
    if (Date.now() > deadline) {
      stopped = true;
      await informer.stop();
      throw new Error(`the mesh could not list ${plural} (${group}/v1) within ${LIST_DEADLINE_MS / 1000} s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    list: () => informer.list() as Json[],
    stop: async () => {
      stopped = true;
      await informer.stop();
    },
  };
}

async function listen(server: Server): Promise<Server> {
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve();
    });
  });
  return server;
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => {
      resolve();
    });
    server.closeAllConnections();
  });
}
