// The gateway's upstream clusters, as istiod gives them to Envoy: one per service port and
// DestinationRule subset, named outbound|<port>|<subset>|<service FQDN> (the subset part empty
// for the service as a whole), each with the pods its subset selects, its own outlier
// detector, load balancer and circuit breakers.
//
// Load balancing: LEAST_REQUEST, istiod's default since 1.14 — two hosts drawn at random (with
// replacement, as Envoy's N-choices pick) and the one with fewer requests in flight taken;
// ROUND_ROBIN and RANDOM when the DestinationRule asks. Ejected hosts are left out unless
// fewer than the panic threshold are healthy (Istio: minHealthPercent, 0 by default, so never):
// then all hosts are used. No host left: the router answers 503 UH.
//
// Circuit breakers, cluster-wide and one request per connection (an HTTP/1.1 upstream): a
// request beyond http2MaxRequests in flight overflows; beyond tcp.maxConnections it waits for a
// connection, in order, unless http1MaxPendingRequests already wait: then it overflows too.

import type { ServedBy } from './telemetry.ts';
import { OutlierDetector, type OutlierStats } from './outliers.ts';
import { clusterPolicy, type ClusterPolicy } from './policy.ts';
import { destinationRuleView, subsetNames } from './routes.ts';

type Json = Record<string, unknown>;

/** One pod behind a service. */
export interface Endpoint {
  /** The pod's name. */
  id: string;
  url: string;
  /** Fully qualified service, e.g. fraud-detector.ml-serving.svc.cluster.local. */
  service: string;
  servicePort: number;
  labels: Readonly<Record<string, string>>;
  servedBy: ServedBy;
}

export function clusterName(port: number, subset: string | undefined, service: string): string {
  return `outbound|${port}|${subset ?? ''}|${service}`;
}

export type Admission = 'admitted' | 'overflow' | 'aborted';

export class UpstreamCluster {
  private policy: ClusterPolicy;
  private policyKey: string;
  private endpoints: readonly Endpoint[];
  private detector: OutlierDetector | undefined;
  private readonly inFlightByHost = new Map<string, number>();
  private inFlight = 0;
  private retriesInFlight = 0;
  private readonly waiting: ((admission: Admission) => void)[] = [];
  private nextRoundRobin = 0;

  readonly name: string;

  constructor(name: string, policy: ClusterPolicy, endpoints: readonly Endpoint[], now: number) {
    this.name = name;
    this.policy = policy;
    this.policyKey = JSON.stringify(policy);
    this.endpoints = endpoints;
    this.detector = policy.outlierDetection === undefined ? undefined : new OutlierDetector(policy.outlierDetection, endpoints.map((e) => e.id), now);
  }

  /**
   * A changed DestinationRule or pod set, as a CDS/EDS update. A new outlier configuration
   * starts a new detector (every host back in service) whose counters go on from the old
   * one's, as Envoy's stats outlive a cluster update.
   */
  update(policy: ClusterPolicy, endpoints: readonly Endpoint[], now: number): void {
    this.endpoints = endpoints;
    const key = JSON.stringify(policy);
    if (key !== this.policyKey) {
      const sameDetection = JSON.stringify(policy.outlierDetection) === JSON.stringify(this.policy.outlierDetection);
      this.policy = policy;
      this.policyKey = key;
      if (!sameDetection) {
        const counters = this.detector?.stats(now);
        this.detector = policy.outlierDetection === undefined ? undefined : new OutlierDetector(policy.outlierDetection, endpoints.map((e) => e.id), now, counters);
      }
    }
    this.detector?.setHosts(endpoints.map((e) => e.id));
  }

  /** The outlier stats, when the cluster has outlier detection. */
  outlierStats(now: number): OutlierStats | undefined {
    return this.detector?.stats(now);
  }

  /**
   * A host for the next attempt, or undefined when none is healthy. With `tried`, a pick
   * already tried is drawn again up to `reselections` times (previous_hosts), then kept.
   */
  pick(random: () => number, now: number, tried: ReadonlySet<string> = new Set(), reselections = 0): Endpoint | undefined {
    const healthy = this.endpoints.filter((e) => this.detector?.isEjected(e.id, now) !== true);
    const panic = this.endpoints.length > 0 && (100 * healthy.length) / this.endpoints.length < this.policy.panicThresholdPercent;
    const hosts = panic ? this.endpoints : healthy;
    if (hosts.length === 0) return undefined;
    let chosen = this.choose(hosts, random);
    for (let i = 0; i < reselections && tried.has(chosen.id); i++) chosen = this.choose(hosts, random);
    return chosen;
  }

  /** What became of an attempt on `host`: a status code, or 503 for a failed connection, 504 for a timeout. */
  report(host: Endpoint, code: number, now: number): void {
    this.detector?.report(host.id, code, now);
  }

  /**
   * A request slot on `host`, at once or once a connection frees (given up when `signal`
   * aborts: the route's timeout); after 'admitted', the caller calls `release` once done.
   */
  async admit(host: Endpoint, signal?: AbortSignal): Promise<Admission> {
    const { maxRequests, maxConnections, maxPendingRequests } = this.policy.connectionPool;
    if (this.inFlight >= maxRequests) return 'overflow';
    if (this.inFlight < maxConnections) {
      this.start(host);
      return 'admitted';
    }
    if (this.waiting.length >= maxPendingRequests) return 'overflow';
    return new Promise((resolve) => {
      const waiter = (admission: Admission): void => {
        signal?.removeEventListener('abort', giveUp);
        if (admission === 'admitted') this.start(host);
        resolve(admission);
      };
      const giveUp = (): void => {
        this.waiting.splice(this.waiting.indexOf(waiter), 1);
        resolve('aborted');
      };
      this.waiting.push(waiter);
      signal?.addEventListener('abort', giveUp, { once: true });
    });
  }

  release(host: Endpoint): void {
    this.inFlight--;
    this.inFlightByHost.set(host.id, (this.inFlightByHost.get(host.id) ?? 1) - 1);
    const next = this.waiting.shift();
    if (next === undefined) return;
    next(this.inFlight >= this.policy.connectionPool.maxRequests ? 'overflow' : 'admitted');
  }

  /** The retry circuit breaker: false when maxRetries retries are already outstanding. */
  startRetry(): boolean {
    if (this.retriesInFlight >= this.policy.connectionPool.maxRetries) return false;
    this.retriesInFlight++;
    return true;
  }

  endRetry(): void {
    this.retriesInFlight--;
  }

  private start(host: Endpoint): void {
    this.inFlight++;
    this.inFlightByHost.set(host.id, (this.inFlightByHost.get(host.id) ?? 0) + 1);
  }

  private choose(hosts: readonly Endpoint[], random: () => number): Endpoint {
    if (hosts.length === 1) return at(hosts, 0);
    const draw = (): number => Math.floor(random() * hosts.length);
    switch (this.policy.loadBalancer) {
      case 'ROUND_ROBIN':
        return at(hosts, this.nextRoundRobin++ % hosts.length);
      case 'RANDOM':
        return at(hosts, draw());
      case 'LEAST_REQUEST': {
        const first = at(hosts, draw());
        const second = at(hosts, draw());
        return (this.inFlightByHost.get(second.id) ?? 0) < (this.inFlightByHost.get(first.id) ?? 0) ? second : first;
      }
    }
  }
}

function at<T>(items: readonly T[], index: number): T {
  const item = items[index];
  if (item === undefined) throw new Error(`no item ${index} of ${items.length}`);
  return item;
}

/** Every cluster of the gateway, kept across DestinationRule changes so that counters and ejections last. */
export class Clusters {
  private readonly byName = new Map<string, UpstreamCluster>();
  private readonly endpoints: readonly Endpoint[];

  constructor(endpoints: readonly Endpoint[]) {
    this.endpoints = endpoints;
  }

  /** The cluster for a route's destination, created or brought up to date with the DestinationRules. */
  resolve(destinationRules: readonly Json[], service: string, subset: string | undefined, port: number | undefined, now: number): UpstreamCluster | undefined {
    const servicePort = this.endpoints.find((e) => e.service === service)?.servicePort;
    const view = destinationRuleView(destinationRules, service, subset);
    if (view === undefined) return undefined;
    const name = clusterName(port ?? servicePort ?? DEFAULT_SERVICE_PORT, subset, service);
    const policy = clusterPolicy(view.trafficPolicy, view.subsetTrafficPolicy);
    const endpoints = this.endpoints.filter((e) => e.service === service && Object.entries(view.labels).every(([k, v]) => e.labels[k] === v));
    return this.kept(name, policy, endpoints, now);
  }

  /**
   * The cluster of an InferencePool: the pods of its namespace that its selector's matchLabels
   * select, with no DestinationRule policy (its endpoint picker is not modelled).
   */
  resolvePool(namespace: string, name: string, matchLabels: Readonly<Record<string, string>>, port: number | undefined, now: number): UpstreamCluster {
    const endpoints = this.endpoints.filter((e) => e.servedBy.namespace === namespace && Object.entries(matchLabels).every(([k, v]) => e.labels[k] === v));
    const clusterKey = `inferencepool|${port ?? ''}|${namespace}|${name}`;
    return this.kept(clusterKey, clusterPolicy(undefined, undefined), endpoints, now);
  }

  /** The cluster of this name with this policy and these endpoints: the one kept, brought up to date as a CDS/EDS update would, or a new one. */
  private kept(name: string, policy: ClusterPolicy, endpoints: readonly Endpoint[], now: number): UpstreamCluster {
    const known = this.byName.get(name);
    if (known !== undefined) {
      known.update(policy, endpoints, now);
      return known;
    }
    const cluster = new UpstreamCluster(name, policy, endpoints, now);
    this.byName.set(name, cluster);
    return cluster;
  }

  /** Every cluster istiod would give the gateway: each service of the mesh as a whole and by each subset of its DestinationRules. */
  all(destinationRules: readonly Json[], now: number): UpstreamCluster[] {
    const services = [...new Set(this.endpoints.map((e) => e.service))];
    return services.flatMap((service) =>
      [undefined, ...subsetNames(destinationRules, service)].flatMap((subset) => {
        const cluster = this.resolve(destinationRules, service, subset, undefined, now);
        return cluster === undefined ? [] : [cluster];
      }),
    );
  }
}

/** The service port when a workload names none; it appears in cluster names. */
export const DEFAULT_SERVICE_PORT = 8080;
