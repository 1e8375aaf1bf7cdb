// What the proxies of a real mesh export, on one endpoint:
//
// - Istio's standard metrics with the standard label set. The ingress gateway counts each
//   request once, with what the caller finally got (after retries) and Envoy's response flags
//   (reporter="source"); the sidecar of each pod counts every attempt that reached it, each
//   retry with its own code (reporter="destination"). Labels the gateway cannot know are filled
//   as Istio's stats filter fills them (istio/proxy istio_stats.cc): with no upstream host (no
//   healthy host), only the service is known; with a host that never answered (timeout,
//   overflow, refused connection), what its endpoint metadata carries — workload, namespace,
//   canonical service and revision, not app, version or principal.
// - The gateway's Envoy outlier stats per cluster, as Istio exports them when
//   proxyStatsMatcher includes ".*outlier_detection.*": envoy_cluster_outlier_detection_<stat>
//   {cluster_name="outbound|<port>|<subset>|<host>"}, counters without a _total added, at 0 from
//   the moment the cluster has outlier detection.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ISTIO_BUCKETS_MS } from '../../api/observation.ts';
import type { OutlierStats } from './outliers.ts';

const LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_cluster',
  'request_protocol',
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
] as const;

type Labels = Record<(typeof LABELS)[number], string>;
type DestinationLabels = Pick<
  Labels,
  | 'destination_workload'
  | 'destination_workload_namespace'
  | 'destination_principal'
  | 'destination_app'
  | 'destination_version'
  | 'destination_service'
  | 'destination_service_name'
  | 'destination_service_namespace'
  | 'destination_canonical_service'
  | 'destination_canonical_revision'
  | 'destination_cluster'
>;

/** The workload that served a request, in the terms of Istio's labels. */
export interface ServedBy {
  workload: string;
  namespace: string;
  /** Fully qualified service, e.g. fraud-detector.models.svc.cluster.local. */
  service: string;
  app: string;
  version: string;
  canonicalService: string;
  canonicalRevision: string;
}

/** What the gateway knows of the upstream when it reports a request. */
export type Peer =
  /** No host was picked: no route (no service either), or no healthy host of `service`. */
  | { kind: 'none'; service: string | undefined }
  /** A host was picked and never answered: Envoy has its endpoint metadata only. */
  | { kind: 'endpoint'; servedBy: ServedBy }
  /** A host answered, and Istio's metadata exchange told the gateway who it is. */
  | { kind: 'answered'; servedBy: ServedBy };

/** The cluster's outlier stats, by cluster name. */
export type OutlierSource = () => Iterable<readonly [string, OutlierStats]>;

const OUTLIER_STATS: Readonly<Record<keyof OutlierStats, string>> = {
  ejections_active: 'Number of currently ejected hosts.',
  ejections_enforced_total: 'Number of enforced ejections due to any outlier type.',
  ejections_overflow: 'Number of ejections aborted due to the max ejection %.',
  ejections_detected_consecutive_5xx: 'Number of detected consecutive 5xx ejections (even if unenforced).',
  ejections_enforced_consecutive_5xx: 'Number of enforced consecutive 5xx ejections.',
  ejections_detected_consecutive_gateway_failure: 'Number of detected consecutive gateway failure ejections (even if unenforced).',
  ejections_enforced_consecutive_gateway_failure: 'Number of enforced consecutive gateway failure ejections.',
};

const GATEWAY = {
  source_workload: 'istio-ingressgateway',
  source_workload_namespace: 'istio-system',
  source_principal: 'spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account',
  source_app: 'istio-ingressgateway',
  source_version: 'unknown',
  source_canonical_service: 'istio-ingressgateway',
  source_canonical_revision: 'latest',
  source_cluster: 'Kubernetes',
};

export class MeshTelemetry {
  readonly registry = new Registry();
  private readonly requests: Counter<(typeof LABELS)[number]>;
  private readonly duration: Histogram<(typeof LABELS)[number]>;
  private outliers: OutlierSource = () => [];

  constructor() {
    const registers = [this.registry];
    this.requests = new Counter({ name: 'istio_requests_total', help: 'Requests, as counted by the Istio proxies of the simulated mesh.', labelNames: LABELS, registers });
    this.duration = new Histogram({
      name: 'istio_request_duration_milliseconds',
      help: 'Request duration in milliseconds, as measured by the Istio proxies of the simulated mesh.',
      labelNames: LABELS,
      buckets: [...ISTIO_BUCKETS_MS],
      registers,
    });
    for (const [stat, help] of Object.entries(OUTLIER_STATS) as [keyof OutlierStats, string][]) {
      const name = `envoy_cluster_outlier_detection_${stat}`;
      // Read at each scrape: the detector's own numbers, whatever happened since.
      const metric: Gauge<'cluster_name'> | Counter<'cluster_name'> =
        stat === 'ejections_active'
          ? new Gauge({ name, help, labelNames: ['cluster_name'], registers, collect: () => { this.collectOutliers(metric, stat); } })
          : new Counter({ name, help, labelNames: ['cluster_name'], registers, collect: () => { this.collectOutliers(metric, stat); } });
    }
  }

  /** Where the outlier stats come from: the gateway's clusters. */
  exportOutliers(source: OutlierSource): void {
    this.outliers = source;
  }

  /** One request as the gateway saw it end (reporter="source"). */
  recordSource(peer: Peer, responseCode: number, responseFlags: string, durationMs: number): void {
    const labels: Labels = {
      reporter: 'source',
      ...GATEWAY,
      ...sourceView(peer),
      request_protocol: 'http',
      response_code: String(responseCode),
      grpc_response_status: '',
      response_flags: responseFlags,
      connection_security_policy: 'unknown',
    };
    this.requests.inc(labels);
    this.duration.observe(labels, durationMs);
  }

  /** One attempt as the serving pod's sidecar saw it (reporter="destination"). */
  recordDestination(servedBy: ServedBy, responseCode: number, responseFlags: string, durationMs: number): void {
    const labels: Labels = {
      reporter: 'destination',
      ...GATEWAY,
      ...destinationLabels(servedBy),
      request_protocol: 'http',
      response_code: String(responseCode),
      grpc_response_status: '',
      response_flags: responseFlags,
      connection_security_policy: 'mutual_tls',
    };
    this.requests.inc(labels);
    this.duration.observe(labels, durationMs);
  }

  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  private collectOutliers(metric: Gauge<'cluster_name'> | Counter<'cluster_name'>, stat: keyof OutlierStats): void {
    metric.reset();
    for (const [cluster, stats] of this.outliers()) {
      if (metric instanceof Gauge) metric.set({ cluster_name: cluster }, stats[stat]);
      else metric.inc({ cluster_name: cluster }, stats[stat]);
    }
  }
}

function destinationLabels(servedBy: ServedBy): DestinationLabels {
  return {
    destination_workload: servedBy.workload,
    destination_workload_namespace: servedBy.namespace,
    destination_principal: `spiffe://cluster.local/ns/${servedBy.namespace}/sa/default`,
    destination_app: servedBy.app,
    destination_version: servedBy.version,
    destination_service: servedBy.service,
    destination_service_name: servedBy.service.split('.')[0] ?? servedBy.service,
    destination_service_namespace: servedBy.namespace,
    destination_canonical_service: servedBy.canonicalService,
    destination_canonical_revision: servedBy.canonicalRevision,
    destination_cluster: 'Kubernetes',
  };
}

/** The destination labels of a reporter="source" record. */
function sourceView(peer: Peer): DestinationLabels {
  switch (peer.kind) {
    case 'answered':
      return destinationLabels(peer.servedBy);
    case 'endpoint': {
      const known = destinationLabels(peer.servedBy);
      return { ...known, destination_principal: 'unknown', destination_app: 'unknown', destination_version: 'unknown' };
    }
    case 'none':
      return {
        destination_workload: 'unknown',
        destination_workload_namespace: 'unknown',
        destination_principal: 'unknown',
        destination_app: 'unknown',
        destination_version: 'unknown',
        destination_service: peer.service ?? 'unknown',
        destination_service_name: peer.service?.split('.')[0] ?? 'unknown',
        destination_service_namespace: 'unknown',
        destination_canonical_service: 'unknown',
        // What Istio's stats filter writes when it knows no peer.
        destination_canonical_revision: 'latest',
        destination_cluster: 'unknown',
      };
  }
}
