// Where a Gateway API gateway sends one HTTP request, by the HTTPRoutes it watches: the first
// route whose hostnames match the Host header (none: every host), its first rule whose matches
// hold (none: every request), then one backendRef drawn by weight (default 1; 0 never). A
// backendRef is a Service (`name`, `port`) or an InferencePool of the Inference Extension
// (group inference.networking.k8s.io, kind InferencePool), in the route's namespace unless it
// names another.
//
// Covered: hostnames (exact, `*.` wildcards), path matches (PathPrefix, Exact, RegularExpression),
// header matches (Exact) and method. Simplified: routes are tried in the order listed, not by the
// Gateway API's precedence (longest hostname and path first), and parentRefs are ignored (every
// route is attached); filters, timeouts and retries are not applied. An InferencePool's endpoint
// picker is not modelled: the pool's pods (its selector's matchLabels) are balanced like a
// Service's. The demo's routes have one rule, so none of this changes where its requests go.

import type { MeshRequest } from './routes.ts';

type Json = Record<string, unknown>;

export const INFERENCE_POOL_GROUP = 'inference.networking.k8s.io';

export type Backend =
  | { kind: 'Service'; namespace: string; name: string; port: number | undefined }
  | { kind: 'InferencePool'; namespace: string; name: string };

export type HttpRouteChoice = { kind: 'routed'; httpRoute: string; backend: Backend } | { kind: 'noRoute'; reason: string };

export function chooseHttpRoute(httpRoutes: readonly Json[], request: MeshRequest, random: () => number): HttpRouteChoice {
  for (const route of httpRoutes) {
    const metadata = (route.metadata ?? {}) as { name?: string; namespace?: string };
    const spec = (route.spec ?? {}) as { hostnames?: string[]; rules?: Json[] };
    const hostnames = spec.hostnames ?? [];
    if (hostnames.length > 0 && !hostnames.some((h) => hostMatches(h, request.host))) continue;
    const rule = (spec.rules ?? []).find((r) => {
      const matches = (r.matches ?? []) as Json[];
      return matches.length === 0 || matches.some((m) => matchHolds(m, request));
    });
    if (rule === undefined) continue;
    const namespace = metadata.namespace ?? 'default';
    const refs = ((rule.backendRefs ?? []) as Json[]).map((ref) => ({ ref, weight: typeof ref.weight === 'number' ? ref.weight : 1 })).filter((r) => r.weight > 0);
    const total = refs.reduce((sum, r) => sum + r.weight, 0);
    if (total === 0) return { kind: 'noRoute', reason: `HTTPRoute ${namespace}/${metadata.name ?? ''}: the matching rule has no backendRef with weight` };
    let draw = random() * total;
    const chosen = refs.find((r) => (draw -= r.weight) < 0) ?? refs.at(-1);
    return { kind: 'routed', httpRoute: `${namespace}/${metadata.name ?? ''}`, backend: backendOf(chosen?.ref ?? {}, namespace) };
  }
  return { kind: 'noRoute', reason: `no HTTPRoute matches host ${request.host} and path ${request.path}` };
}

function backendOf(ref: Json, routeNamespace: string): Backend {
  const namespace = typeof ref.namespace === 'string' ? ref.namespace : routeNamespace;
  const name = typeof ref.name === 'string' ? ref.name : '';
  if (ref.group === INFERENCE_POOL_GROUP && ref.kind === 'InferencePool') return { kind: 'InferencePool', namespace, name };
  return { kind: 'Service', namespace, name, port: typeof ref.port === 'number' ? ref.port : undefined };
}

function hostMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return pattern === host;
}

function matchHolds(match: Json, request: MeshRequest): boolean {
  const path = match.path as { type?: string; value?: string } | undefined;
  const pathOnly = request.path.split('?')[0] ?? request.path;
  if (path !== undefined) {
    const value = path.value ?? '/';
    const type = path.type ?? 'PathPrefix';
    const holds =
      type === 'Exact'
        ? pathOnly === value
        : type === 'RegularExpression'
          ? new RegExp(`^(?:${value})$`).test(pathOnly)
          : value === '/' || pathOnly === value || pathOnly.startsWith(value.endsWith('/') ? value : `${value}/`);
    if (!holds) return false;
  }
  if (typeof match.method === 'string' && match.method !== request.method) return false;
  const headers = (match.headers ?? []) as { name?: string; value?: string; type?: string }[];
  return headers.every((h) => (h.type ?? 'Exact') === 'Exact' && request.headers[(h.name ?? '').toLowerCase()] === h.value);
}

/** The matchLabels of an InferencePool v1 (spec.selector.matchLabels), and its first target port. */
export function poolSelector(pool: Json | undefined): { matchLabels: Record<string, string>; port: number | undefined } | undefined {
  if (pool === undefined) return undefined;
  const spec = (pool.spec ?? {}) as { selector?: { matchLabels?: Record<string, string> }; targetPorts?: { number?: number }[] };
  const matchLabels = spec.selector?.matchLabels;
  if (matchLabels === undefined || Object.keys(matchLabels).length === 0) return undefined;
  return { matchLabels, port: spec.targetPorts?.[0]?.number };
}
