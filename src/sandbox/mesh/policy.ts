// What istiod configures the gateway's Envoy with for one destination: a DestinationRule's
// trafficPolicy (outlier detection, connection pool, load balancer) and a VirtualService
// route's retries and timeout, with istiod's defaults, and Envoy's retry decisions on them.
// Read from istio/istio pilot/pkg/networking/core/cluster_traffic_policy.go
// (applyOutlierDetection, applyConnectionPool, defaultLBAlgorithm), route/retry/retry.go
// (DefaultPolicy, ConvertPolicy) and route/route.go (setTimeout); and from envoyproxy/envoy
// source/common/router/retry_state_impl.cc.
//
// A field that istiod's validation would refuse (a malformed duration, a negative count) is
// ignored here, as if it had never reached the proxy.

import { STATUS_CODES } from 'node:http';
import { z } from 'zod';

/** What Istio sets Envoy's circuit-breaker limits to when the DestinationRule says nothing. */
export const UNLIMITED = 2 ** 32 - 1;

/** Envoy's own defaults for a cluster's outlier_detection (outlier_detection.proto). */
const ENVOY_OUTLIER_DEFAULTS = { consecutive5xx: 5, consecutiveGatewayFailure: 5, intervalMs: 10_000, baseEjectionMs: 30_000, maxEjectionPercent: 10, maxEjectionMs: 300_000 };
/** Envoy's healthy_panic_threshold when nothing sets it. */
const ENVOY_PANIC_THRESHOLD = 50;
/** Envoy's retry back-off: 25 ms, capped at 10× (retry_state_impl.cc). */
const ENVOY_RETRY_BASE_MS = 25;

export interface OutlierDetection {
  /** Consecutive 5xx (or local-origin failures) before a detection; 0: never. */
  consecutive5xx: number;
  /** Istio enforces 100 % when consecutive5xxErrors > 0, 0 % when it is 0 (Envoy's default 100 % when unset). */
  enforcing5xx: boolean;
  /** Consecutive 502/503/504 before a detection. */
  consecutiveGatewayFailure: number;
  /** Envoy's default is 0 % — detected and counted, never ejected — unless consecutiveGatewayErrors is set. */
  enforcingGatewayFailure: boolean;
  intervalMs: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
  maxEjectionPercent: number;
}

export interface ConnectionPool {
  /** tcp.maxConnections: here one request per connection, as HTTP/1.1 upstreams have. */
  maxConnections: number;
  /** http.http1MaxPendingRequests: requests waiting for a connection. */
  maxPendingRequests: number;
  /** http.http2MaxRequests: requests in flight to the cluster. */
  maxRequests: number;
  /** http.maxRetries: retries outstanding to the cluster at once. */
  maxRetries: number;
}

export type LoadBalancer = 'LEAST_REQUEST' | 'ROUND_ROBIN' | 'RANDOM';

export interface ClusterPolicy {
  outlierDetection: OutlierDetection | undefined;
  /** Envoy's healthy_panic_threshold, %: under it, the load balancer uses every host, ejected or not. */
  panicThresholdPercent: number;
  connectionPool: ConnectionPool;
  loadBalancer: LoadBalancer;
}

export interface RetryPolicy {
  /** Retries after the first attempt. */
  numRetries: number;
  retryOn: ReadonlySet<string>;
  retriableStatusCodes: readonly number[];
  perTryTimeoutMs: number | undefined;
  /** envoy.retry_host_predicates.previous_hosts: a retry prefers hosts not tried yet. */
  previousHosts: boolean;
  /** host_selection_retry_max_attempts: picks rejected by the predicate before the last pick is taken anyway. */
  hostSelectionMaxAttempts: number;
  backoffBaseMs: number;
}

export interface RoutePolicy {
  retry: RetryPolicy | undefined;
  /** The route's timeout over all attempts; undefined: none (Istio disables Envoy's 15 s default). */
  timeoutMs: number | undefined;
}

export interface PolicyOptions {
  /**
   * Istio's default retry policy retried 503 until EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY became
   * true by default; false (today's Istio) leaves 503 out.
   */
  retry503ByDefault?: boolean;
}

// ── Istio's fields, as they arrive from the API server ──────────────────────────────────

const UNIT_MS: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 1e-3, µs: 1e-3, ns: 1e-6 };

/** Go's duration grammar, which Istio's CRDs accept: "1s", "500ms", "1.5s", "1m30s". */
export function parseIstioDuration(text: string): number | undefined {
  const parts = [...text.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) return undefined;
  return parts.reduce((sum, [, amount, unit]) => sum + Number(amount) * (UNIT_MS[unit ?? ''] ?? Number.NaN), 0);
}

const Duration = z.string().transform((text, ctx) => {
  const ms = parseIstioDuration(text);
  if (ms === undefined || ms < 1) {
    ctx.addIssue({ code: 'custom', message: `not a duration of at least 1ms: ${text}` });
    return z.NEVER;
  }
  return ms;
});
const Count = z.number().int().nonnegative();
const Percent = z.number().int().min(0).max(100);

export const IstioOutlierDetection = z.looseObject({
  consecutive5xxErrors: Count.optional(),
  consecutiveGatewayErrors: Count.optional(),
  interval: Duration.optional(),
  baseEjectionTime: Duration.optional(),
  maxEjectionPercent: Percent.optional(),
  minHealthPercent: Percent.optional(),
});
export type IstioOutlierDetection = z.infer<typeof IstioOutlierDetection>;

export const IstioConnectionPool = z.looseObject({
  tcp: z.looseObject({ maxConnections: Count.optional() }).optional(),
  http: z.looseObject({ http1MaxPendingRequests: Count.optional(), http2MaxRequests: Count.optional(), maxRetries: Count.optional() }).optional(),
});
export type IstioConnectionPool = z.infer<typeof IstioConnectionPool>;

export const IstioLoadBalancer = z.looseObject({ simple: z.string().optional() });
export type IstioLoadBalancer = z.infer<typeof IstioLoadBalancer>;

export const IstioRetry = z.looseObject({
  attempts: z.number().int().optional(),
  perTryTimeout: Duration.optional(),
  retryOn: z.string().optional(),
  retryIgnorePreviousHosts: z.boolean().optional(),
  backoff: Duration.optional(),
});
export type IstioRetry = z.infer<typeof IstioRetry>;

/** The parts of a trafficPolicy the mesh applies; a subset's part replaces the top level's, part by part, as istiod merges them. */
interface TrafficPolicyParts {
  outlierDetection?: unknown;
  connectionPool?: unknown;
  loadBalancer?: unknown;
}

function parsed<T>(schema: z.ZodType<T>, value: unknown): T | undefined {
  if (value === undefined) return undefined;
  const result = schema.safeParse(value);
  return result.success ? result.data : undefined;
}

/** The cluster's settings from the DestinationRule's top-level trafficPolicy and, for a subset, the subset's own. */
export function clusterPolicy(topLevel: TrafficPolicyParts | undefined, subset: TrafficPolicyParts | undefined): ClusterPolicy {
  const part = (key: keyof TrafficPolicyParts): unknown => subset?.[key] ?? topLevel?.[key];
  const outlier = parsed(IstioOutlierDetection, part('outlierDetection'));
  const pool = parsed(IstioConnectionPool, part('connectionPool'));
  const balancer = parsed(IstioLoadBalancer, part('loadBalancer'));
  return {
    outlierDetection: outlier === undefined ? undefined : outlierDetection(outlier),
    // istiod sets the panic threshold to minHealthPercent (0 unless given: panic mode off)
    // whenever there is an outlierDetection; otherwise Envoy's default holds.
    panicThresholdPercent: outlier === undefined ? ENVOY_PANIC_THRESHOLD : (outlier.minHealthPercent ?? 0),
    connectionPool: connectionPool(pool),
    loadBalancer: loadBalancer(balancer),
  };
}

function outlierDetection(od: IstioOutlierDetection): OutlierDetection {
  const baseEjectionMs = od.baseEjectionTime ?? ENVOY_OUTLIER_DEFAULTS.baseEjectionMs;
  return {
    consecutive5xx: od.consecutive5xxErrors ?? ENVOY_OUTLIER_DEFAULTS.consecutive5xx,
    enforcing5xx: od.consecutive5xxErrors === undefined || od.consecutive5xxErrors > 0,
    consecutiveGatewayFailure: od.consecutiveGatewayErrors ?? ENVOY_OUTLIER_DEFAULTS.consecutiveGatewayFailure,
    enforcingGatewayFailure: od.consecutiveGatewayErrors !== undefined && od.consecutiveGatewayErrors > 0,
    intervalMs: od.interval ?? ENVOY_OUTLIER_DEFAULTS.intervalMs,
    baseEjectionMs,
    // Istio sets no max_ejection_time: Envoy takes 300 s, or the base time when that is longer.
    maxEjectionMs: Math.max(ENVOY_OUTLIER_DEFAULTS.maxEjectionMs, baseEjectionMs),
    // istiod passes maxEjectionPercent only when it is above 0.
    maxEjectionPercent: od.maxEjectionPercent !== undefined && od.maxEjectionPercent > 0 ? od.maxEjectionPercent : ENVOY_OUTLIER_DEFAULTS.maxEjectionPercent,
  };
}

function connectionPool(pool: IstioConnectionPool | undefined): ConnectionPool {
  // istiod applies a limit only when it is above 0.
  const limit = (value: number | undefined): number => (value !== undefined && value > 0 ? value : UNLIMITED);
  return {
    maxConnections: limit(pool?.tcp?.maxConnections),
    maxPendingRequests: limit(pool?.http?.http1MaxPendingRequests),
    maxRequests: limit(pool?.http?.http2MaxRequests),
    maxRetries: limit(pool?.http?.maxRetries),
  };
}

function loadBalancer(balancer: IstioLoadBalancer | undefined): LoadBalancer {
  switch (balancer?.simple) {
    case 'ROUND_ROBIN':
      return 'ROUND_ROBIN';
    case 'RANDOM':
      return 'RANDOM';
    // LEAST_CONN is LEAST_REQUEST's old name; anything else (consistentHash included, which the
    // mesh does not model) gets istiod's default since Istio 1.14.
    default:
      return 'LEAST_REQUEST';
  }
}

/** The route's retries and timeout as istiod translates an http route of a VirtualService. */
export function routePolicy(route: { retries?: unknown; timeout?: unknown }, options: PolicyOptions = {}): RoutePolicy {
  return { retry: retryPolicy(parsed(IstioRetry, route.retries), options), timeoutMs: parsed(Duration, route.timeout) };
}

function retryPolicy(retries: IstioRetry | undefined, options: PolicyOptions): RetryPolicy | undefined {
  const defaults: RetryPolicy = {
    numRetries: 2,
    retryOn: new Set(['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes']),
    retriableStatusCodes: options.retry503ByDefault === true ? [503] : [],
    perTryTimeoutMs: undefined,
    previousHosts: true,
    hostSelectionMaxAttempts: 5,
    backoffBaseMs: ENVOY_RETRY_BASE_MS,
  };
  // No retries field (or one istiod would refuse): istiod's default policy.
  if (retries === undefined) return defaults;
  if ((retries.attempts ?? 0) <= 0) return undefined;
  const policy: RetryPolicy = { ...defaults, numRetries: retries.attempts ?? 0 };
  if (retries.retryOn !== undefined && retries.retryOn !== '') {
    const { tokens, codes } = parseRetryOn(retries.retryOn);
    if (codes.length > 0) tokens.add('retriable-status-codes');
    policy.retryOn = tokens;
    policy.retriableStatusCodes = codes;
  }
  if (retries.perTryTimeout !== undefined) policy.perTryTimeoutMs = retries.perTryTimeout;
  if (retries.retryIgnorePreviousHosts !== undefined) policy.previousHosts = retries.retryIgnorePreviousHosts;
  if (retries.backoff !== undefined) policy.backoffBaseMs = retries.backoff;
  return policy;
}

/** Istio's retryOn: Envoy's retry_on tokens, and any HTTP status code among them as a retriable status code. */
function parseRetryOn(retryOn: string): { tokens: Set<string>; codes: number[] } {
  const tokens = new Set<string>();
  const codes: number[] = [];
  for (const part of retryOn.split(',').map((p) => p.trim())) {
    if (part === '') continue;
    if (/^\d+$/.test(part) && STATUS_CODES[Number(part)] !== undefined) codes.push(Number(part));
    else tokens.add(part);
  }
  return { tokens, codes };
}

// ── Envoy's retry decision ──────────────────────────────────────────────────────────────

/** How one attempt ended, as the router sees it. */
export type AttemptOutcome =
  | { kind: 'response'; code: number }
  /** No connection (refused), the connection closed before an answer, or the per-try timeout. */
  | { kind: 'reset'; reason: 'connectionFailure' | 'connectionTermination' | 'perTryTimeout' };

const GATEWAY_ERRORS = new Set([502, 503, 504]);

/** Whether Envoy's retry_on asks for another attempt after this outcome (retries left aside). */
export function wouldRetry(policy: RetryPolicy, outcome: AttemptOutcome): boolean {
  const on = policy.retryOn;
  if (outcome.kind === 'reset') {
    // Every reset counts as a 5xx and as a gateway error; connect-failure only for a refused
    // connection. A pool overflow is never retried and never gets here.
    if (on.has('5xx') || on.has('gateway-error') || on.has('reset')) return true;
    return outcome.reason === 'connectionFailure' && (on.has('connect-failure') || on.has('reset-before-request'));
  }
  const { code } = outcome;
  if (on.has('5xx') && code >= 500 && code < 600) return true;
  if (on.has('gateway-error') && GATEWAY_ERRORS.has(code)) return true;
  if (on.has('retriable-4xx') && code === 409) return true;
  // gRPC tokens (unavailable, cancelled, …) read a grpc-status the model servers never send.
  return on.has('retriable-status-codes') && policy.retriableStatusCodes.includes(code);
}

/**
 * Envoy's fully jittered exponential back-off before retry number `retry` (1, 2, …): a draw
 * below an interval that starts at the base and doubles up to 10× the base.
 */
export function backoffMs(policy: RetryPolicy, retry: number, random: () => number): number {
  const max = policy.backoffBaseMs * 10;
  let interval = policy.backoffBaseMs;
  for (let i = 1; i < retry; i++) interval = interval < max / 2 ? interval * 2 : max;
  return Math.min(Math.floor(random() * interval), max);
}
