// A simulated Istio mesh on loopback: model servers for each workload, and an ingress gateway
// that routes real HTTP requests by the VirtualServices and DestinationRules it watches in a
// Kubernetes API (the sandbox's or a real cluster's, through the real client-node informer),
// and exports Istio's standard metrics on its own /metrics port, as a gateway and its sidecars
// would.

import { createServer, request as httpRequest, Agent, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CustomObjectsApi, makeInformer, type Informer, type KubeConfig, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import { startModelServer, type Behaviour, type ModelServer } from './model-server.ts';
import { chooseRoute, fullyQualified, type MeshRequest } from './routes.ts';
import { MeshTelemetry, type ServedBy } from './telemetry.ts';

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
  behaviour: Behaviour;
}

/** One http route of a VirtualService as the gateway now applies it. */
export interface RouteWeights {
  name: string | undefined;
  destinations: { host: string; subset?: string | undefined; weight: number }[];
}

export interface RouteChange {
  namespace: string;
  name: string;
  routes: RouteWeights[];
}

export interface Mesh {
  /** The ingress gateway, e.g. http://127.0.0.1:40123; send the service's host in the Host header. */
  ingressUrl: string;
  /** host:port of the telemetry endpoint, for a Prometheus scrape config. */
  metricsTarget: string;
  /** The telemetry endpoint: Istio's standard metrics. */
  metricsUrl: string;
  workload(name: string): ModelServer;
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
  /** Uniform draws in [0, 1) for weights, latencies and errors; default Math.random. */
  random?: () => number;
}

interface Workload {
  spec: WorkloadSpec;
  server: ModelServer;
  servedBy: ServedBy;
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
  const telemetry = new MeshTelemetry();
  const workloads: Workload[] = [];
  const listeners: ((change: RouteChange) => void)[] = [];
  const stoppers: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stoppers.reverse()) await stop();
  };

  try {
    for (const spec of options.workloads) {
      const names = canonical(spec.labels, spec.name);
      const server = await startModelServer({ model: names.service, version: names.revision, behaviour: spec.behaviour, random });
      stoppers.push(() => server.stop());
      workloads.push({
        spec,
        server,
        servedBy: {
          workload: spec.name,
          namespace: spec.namespace,
          service: fullyQualified(spec.service, spec.namespace),
          app: spec.labels.app ?? 'unknown',
          version: spec.labels.version ?? 'unknown',
          canonicalService: names.service,
          canonicalRevision: names.revision,
        },
      });
    }

    const virtualServices = await watchIstio(options.kubeConfig, options.namespace, 'virtualservices', (object) => {
      const change = routeChange(object);
      for (const listener of listeners) listener(change);
    });
    stoppers.push(() => virtualServices.stop());
    const destinationRules = await watchIstio(options.kubeConfig, options.namespace, 'destinationrules');
    stoppers.push(() => destinationRules.stop());

    const upstream = new Agent({ keepAlive: true, maxSockets: 64 });
    stoppers.push(() => {
      upstream.destroy();
      return Promise.resolve();
    });
    const ingress = await listen(
      createServer((req, res) => {
        gateway(req, res, { virtualServices: virtualServices.list(), destinationRules: destinationRules.list(), workloads, telemetry, upstream, random });
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
        return found.server;
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

interface GatewayContext {
  virtualServices: Json[];
  destinationRules: Json[];
  workloads: readonly Workload[];
  telemetry: MeshTelemetry;
  upstream: Agent;
  random: () => number;
}

function gateway(req: IncomingMessage, res: ServerResponse, context: GatewayContext): void {
  const started = performance.now();
  const elapsed = (): number => performance.now() - started;
  const request: MeshRequest = {
    host: (req.headers.host ?? '').replace(/:\d+$/, ''),
    path: req.url ?? '/',
    method: req.method ?? 'GET',
    headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : v])),
  };
  const choice = chooseRoute(context.virtualServices, context.destinationRules, request, context.random);
  if (choice.kind === 'noRoute') {
    req.resume();
    res.writeHead(404, { 'content-type': 'text/plain' }).end(`${choice.reason}\n`);
    context.telemetry.record(undefined, 404, 'NR', elapsed());
    return;
  }
  const { service, labels } = choice.destination;
  const endpoints = context.workloads.filter((w) => w.servedBy.service === service && Object.entries(labels).every(([k, v]) => w.spec.labels[k] === v));
  const target = endpoints[Math.floor(context.random() * endpoints.length)];
  if (target === undefined) {
    req.resume();
    res.writeHead(503, { 'content-type': 'text/plain' }).end(`no healthy upstream for ${service}${choice.destination.subset === undefined ? '' : ` subset ${choice.destination.subset}`}\n`);
    context.telemetry.record(undefined, 503, 'UH', elapsed());
    return;
  }
  const forward = httpRequest(target.server.url + request.path, { method: request.method, headers: req.headers, agent: context.upstream }, (answer) => {
    const code = answer.statusCode ?? 502;
    res.writeHead(code, answer.headers);
    answer.pipe(res);
    answer.once('end', () => {
      context.telemetry.record(target.servedBy, code, '-', elapsed());
    });
  });
  forward.once('error', () => {
    if (!res.headersSent) res.writeHead(503, { 'content-type': 'text/plain' }).end('upstream connect error\n');
    else res.destroy();
    context.telemetry.record(target.servedBy, 503, 'UF', elapsed());
  });
  req.pipe(forward);
}

function routeChange(object: KubernetesObject): RouteChange {
  const spec = ((object as Json).spec ?? {}) as { http?: { name?: string; route?: { destination?: { host?: string; subset?: string }; weight?: number }[] }[] };
  return {
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

/** An informer on an Istio kind (cluster-wide, or in one namespace), restarted after a broken watch, as istiod keeps watching. */
async function watchIstio(kubeConfig: KubeConfig, namespace: string | undefined, plural: string, onChange?: (object: KubernetesObject) => void): Promise<Watched> {
  const api = kubeConfig.makeApiClient(CustomObjectsApi);
  const resource = { group: 'networking.istio.io', version: 'v1', plural };
  type List = { items: KubernetesObject[]; metadata: { resourceVersion?: string } };
  const state = { listed: false };
  const list = async (): Promise<List> => {
    const result = (namespace === undefined ? await api.listClusterCustomObject(resource) : await api.listNamespacedCustomObject({ ...resource, namespace })) as List;
    state.listed = true;
    return result;
  };
  const path = namespace === undefined ? `/apis/networking.istio.io/v1/${plural}` : `/apis/networking.istio.io/v1/namespaces/${namespace}/${plural}`;
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
      throw new Error(`the mesh could not list ${plural} (networking.istio.io/v1) within ${LIST_DEADLINE_MS / 1000} s`);
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
