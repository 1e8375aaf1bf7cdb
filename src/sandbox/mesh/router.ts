// One request through the gateway's router, as Envoy's router filter runs it: pick a host of
// the cluster, take a connection, send the attempt; when the outcome is one the route's retry
// policy names, try again — on a host not tried yet, after a jittered back-off — while retries
// are left and the route's timeout allows. The answer is the last upstream response, or
// Envoy's own reply with its response flags, in the order Envoy sets them:
//
//   503 UH   no healthy host (all ejected, panic mode off)           never retried
//   503 UO   a circuit breaker overflowed (connections, requests)    never retried
//   503 UF   the connection was refused; UC: closed before an answer
//   504 UT   the route's timeout, or the per-try timeout on the last attempt
//   URX      added when the outcome asked for a retry and none was left
//
// Every attempt that reached a pod is reported by that pod's sidecar with its own code; one
// cut short by a timeout with code 0 and flag DC, as a sidecar reports a vanished client.

import { request as httpRequest, type Agent, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { Endpoint, UpstreamCluster } from './cluster.ts';
import { backoffMs, wouldRetry, type AttemptOutcome, type RoutePolicy } from './policy.ts';
import type { MeshTelemetry, Peer } from './telemetry.ts';

/** The downstream request, its body read whole: Envoy buffers it to retry. */
export interface ForwardedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface RouterContext {
  agent: Agent;
  random: () => number;
  /** Monotonic milliseconds. */
  clock: () => number;
  telemetry: MeshTelemetry;
}

/** What the gateway answers. */
export type Answer =
  /** Stream `response` back, then call `finish` (the pod's sidecar reports, the connection frees). */
  | { kind: 'upstream'; response: IncomingMessage; endpoint: Endpoint; flags: readonly string[]; finish: () => void }
  | { kind: 'local'; code: number; body: string; flags: readonly string[]; peer: Peer };

type Sent =
  | { kind: 'response'; response: IncomingMessage }
  | { kind: 'reset'; reason: 'connectionFailure' | 'connectionTermination' }
  | { kind: 'perTryTimeout' }
  /** The route's timeout fired during the attempt. */
  | { kind: 'timeout' };

type RetryDecision = 'retry' | 'no' | 'limit' | 'overflow';

const RESET_TEXT = { connectionFailure: 'connection failure', connectionTermination: 'connection termination' } as const;
const RESET_FLAG = { connectionFailure: 'UF', connectionTermination: 'UC' } as const;

export async function forward(request: ForwardedRequest, cluster: UpstreamCluster, service: string, policy: RoutePolicy, context: RouterContext): Promise<Answer> {
  const routeTimeout = new AbortController();
  const timer = policy.timeoutMs === undefined ? undefined : setTimeout(() => { routeTimeout.abort(); }, policy.timeoutMs);
  const retry = policy.retry;
  const flags: string[] = [];
  const tried = new Set<string>();
  const state = { retriesLeft: retry?.numRetries ?? 0, retriesTaken: 0, holdingRetry: false, backoffMs: 0 };

  // Envoy's shouldRetry: the retry taken last is over once its outcome is known.
  const decide = (outcome: AttemptOutcome): RetryDecision => {
    if (state.holdingRetry) {
      cluster.endRetry();
      state.holdingRetry = false;
    }
    if (retry === undefined || !wouldRetry(retry, outcome)) return 'no';
    if (state.retriesLeft === 0) return 'limit';
    state.retriesLeft--;
    if (!cluster.startRetry()) return 'overflow';
    state.holdingRetry = true;
    state.backoffMs = backoffMs(retry, ++state.retriesTaken, context.random);
    return 'retry';
  };
  const local = (code: number, body: string, flag: string, peer: Peer): Answer => ({ kind: 'local', code, body, flags: [...flags, flag], peer });
  const timedOut = (endpoint: Endpoint): Answer => local(504, 'upstream request timeout', 'UT', { kind: 'endpoint', servedBy: endpoint.servedBy });

  try {
    for (;;) {
      const endpoint = cluster.pick(context.random, context.clock(), tried, retry?.previousHosts === true ? retry.hostSelectionMaxAttempts : 0);
      if (endpoint === undefined) return local(503, 'no healthy upstream', 'UH', { kind: 'none', service });
      const admission = await cluster.admit(endpoint, routeTimeout.signal);
      if (admission === 'overflow') return local(503, 'upstream connect error or disconnect/reset before headers. reset reason: overflow', 'UO', { kind: 'endpoint', servedBy: endpoint.servedBy });
      if (admission === 'aborted') return timedOut(endpoint);
      tried.add(endpoint.id);

      const started = context.clock();
      const sent = await send(request, endpoint, retry?.perTryTimeoutMs, routeTimeout.signal, context.agent);
      const now = context.clock();
      const release = (code: number, flag: string): void => {
        cluster.release(endpoint);
        context.telemetry.recordDestination(endpoint.servedBy, code, flag, context.clock() - started);
      };
      let decision: RetryDecision;
      switch (sent.kind) {
        case 'response': {
          const code = sent.response.statusCode ?? 502;
          cluster.report(endpoint, code, now);
          decision = decide({ kind: 'response', code });
          if (decision !== 'retry') {
            if (decision !== 'no') flags.push(decision === 'limit' ? 'URX' : 'UO');
            return { kind: 'upstream', response: sent.response, endpoint, flags, finish: () => { release(code, '-'); } };
          }
          sent.response.resume();
          sent.response.once('end', () => { release(code, '-'); });
          break;
        }
        case 'reset': {
          // A refused connection counts as a 503 for outlier detection; no pod saw the request.
          cluster.report(endpoint, 503, now);
          cluster.release(endpoint);
          decision = decide({ kind: 'reset', reason: sent.reason });
          if (decision !== 'retry') {
            if (decision !== 'no') flags.push(decision === 'limit' ? 'URX' : 'UO');
            return local(503, `upstream connect error or disconnect/reset before headers. reset reason: ${RESET_TEXT[sent.reason]}`, RESET_FLAG[sent.reason], { kind: 'endpoint', servedBy: endpoint.servedBy });
          }
          break;
        }
        case 'perTryTimeout': {
          cluster.report(endpoint, 504, now);
          release(0, 'DC');
          decision = decide({ kind: 'reset', reason: 'perTryTimeout' });
          if (decision !== 'retry') {
            if (decision !== 'no') flags.push(decision === 'limit' ? 'URX' : 'UO');
            return timedOut(endpoint);
          }
          break;
        }
        case 'timeout':
          cluster.report(endpoint, 504, now);
          release(0, 'DC');
          return timedOut(endpoint);
      }
      if (!(await pause(state.backoffMs, routeTimeout.signal))) return timedOut(endpoint);
    }
  } finally {
    clearTimeout(timer);
    if (state.holdingRetry) cluster.endRetry();
  }
}

/** One attempt, until its response headers, a reset, or a timeout. */
function send(request: ForwardedRequest, endpoint: Endpoint, perTryTimeoutMs: number | undefined, routeTimeout: AbortSignal, agent: Agent): Promise<Sent> {
  return new Promise((resolve) => {
    let settled = false;
    let perTry: ReturnType<typeof setTimeout> | undefined;
    const settle = (sent: Sent): void => {
      if (settled) return;
      settled = true;
      clearTimeout(perTry);
      routeTimeout.removeEventListener('abort', onRouteTimeout);
      resolve(sent);
    };
    const upstream = httpRequest(endpoint.url + request.path, { method: request.method, headers: request.headers, agent }, (response) => {
      settle({ kind: 'response', response });
    });
    upstream.once('error', (error: NodeJS.ErrnoException) => {
      settle({ kind: 'reset', reason: error.code === 'ECONNREFUSED' ? 'connectionFailure' : 'connectionTermination' });
    });
    const cut = (sent: Sent): void => {
      settle(sent);
      upstream.destroy();
    };
    const onRouteTimeout = (): void => {
      cut({ kind: 'timeout' });
    };
    if (perTryTimeoutMs !== undefined) perTry = setTimeout(() => { cut({ kind: 'perTryTimeout' }); }, perTryTimeoutMs);
    routeTimeout.addEventListener('abort', onRouteTimeout, { once: true });
    if (routeTimeout.aborted) onRouteTimeout();
    upstream.end(request.body);
  });
}

/** Waits `ms`; false when the route's timeout fires first. */
function pause(ms: number, routeTimeout: AbortSignal): Promise<boolean> {
  if (routeTimeout.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      routeTimeout.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    routeTimeout.addEventListener('abort', onAbort, { once: true });
  });
}
