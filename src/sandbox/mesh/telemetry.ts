// Istio's standard metrics, as the proxies of a real mesh export them: every request is
// counted twice, once by the ingress gateway (reporter="source") and once by the sidecar of
// the workload that served it (reporter="destination"), with the standard label set.

import { Counter, Histogram, Registry } from 'prom-client';
import { ISTIO_BUCKETS_MS } from '../../api/observation.ts';

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
  }

  /**
   * One request through the gateway. `servedBy` is undefined when no workload was reached
   * (no route: 404 NR; no endpoint: 503 UH), and then only the gateway reports it.
   */
  record(servedBy: ServedBy | undefined, responseCode: number, responseFlags: string, durationMs: number): void {
    const destination = servedBy === undefined ? unknownDestination() : destinationLabels(servedBy);
    const common = { ...GATEWAY, ...destination, request_protocol: 'http', response_code: String(responseCode), grpc_response_status: '', response_flags: responseFlags };
    const source: Labels = { ...common, reporter: 'source', connection_security_policy: 'unknown' };
    this.requests.inc(source);
    this.duration.observe(source, durationMs);
    if (servedBy === undefined) return;
    const atDestination: Labels = { ...common, reporter: 'destination', connection_security_policy: 'mutual_tls' };
    this.requests.inc(atDestination);
    this.duration.observe(atDestination, durationMs);
  }

  exposition(): Promise<string> {
    return this.registry.metrics();
  }
}

function destinationLabels(servedBy: ServedBy): Omit<Labels, keyof typeof GATEWAY | 'reporter' | 'request_protocol' | 'response_code' | 'grpc_response_status' | 'response_flags' | 'connection_security_policy'> {
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

function unknownDestination(): ReturnType<typeof destinationLabels> {
  return {
    destination_workload: 'unknown',
    destination_workload_namespace: 'unknown',
    destination_principal: 'unknown',
    destination_app: 'unknown',
    destination_version: 'unknown',
    destination_service: 'unknown',
    destination_service_name: 'unknown',
    destination_service_namespace: 'unknown',
    destination_canonical_service: 'unknown',
    destination_canonical_revision: 'unknown',
    destination_cluster: 'unknown',
  };
}
