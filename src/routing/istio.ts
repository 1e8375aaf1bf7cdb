// The desired Istio VirtualService for a weight, computed from the live one. Only the weights
// (and destinations) of the managed http routes change, plus the optional pin route; every
// other field and route is left exactly as it was, so users keep their retries, timeouts,
// header matches, mirrors and TCP/TLS routes.

import type { VersionTarget } from '../api/modelcanary.ts';
import {
  annotationsOf,
  assignWeights,
  CANARY_BACKEND_ANNOTATION,
  ORIGINAL_ROUTES_ANNOTATION,
  PIN_SUFFIX,
  recordedCanary,
  sameObject,
  withAnnotations,
  type Plan,
  type RouteTarget,
  type RouteWeights,
  type Stage,
} from './plan.ts';

type Json = Record<string, unknown>;

interface RouteDestination {
  destination?: { host?: string; subset?: string; port?: { number?: number } };
  weight?: number;
}

interface HttpRoute {
  name?: string;
  route?: RouteDestination[];
  delegate?: { name?: string; namespace?: string };
  match?: Json[];
}

/**
 * The VirtualService with the canary at `weight` %, or the reason it cannot be managed.
 * `pin` keeps a route that sends requests carrying the pin header with the canary's version
 * to the canary, before the managed routes. Entries that are neither version are dropped when
 * they carry no traffic (a version that an earlier rollout left at 0) or when they are the
 * canary the controller recorded before (the canary changed mid-rollout: its share goes back
 * to stable); any other is refused.
 */
export function planVirtualService(live: Json, target: RouteTarget, weight: number, pin: boolean, stage: Stage = 'during'): Plan {
  const found = managedRoutes(live, target);
  if (!found.ok) return found;
  let desired = structuredClone(live);
  const http = httpRoutes(desired);
  let weights: RouteWeights | undefined;
  for (const index of found.indices) {
    const route = http[index];
    if (route === undefined) continue;
    weights ??= currentWeights(route, target);
    http[index] = withWeights(withoutLeftovers(route, target, live), target, weight);
  }
  desired = setPinRoutes(desired, target, found.indices, pin && stage !== 'end');
  desired = recordOriginals(desired, live, target, found.indices, stage);
  desired = withAnnotations(desired, { [CANARY_BACKEND_ANNOTATION]: stage === 'end' ? undefined : JSON.stringify(target.spec.canary.destination) });
  return { ok: true, object: desired, changed: !sameObject(desired, live), found: weights ?? { stable: 100, canary: 0 } };
}

/**
 * The VirtualService as it was before the rollout began (restore), all on stable (with a
 * target), or with only the controller's marks removed (keep). Restoring needs no spec: the
 * originals are recorded on the object, by route name.
 */
export function finalVirtualService(live: Json, target: RouteTarget | undefined, mode: 'restore' | 'stable' | 'keep'): Plan {
  const originals = annotationsOf(live)[ORIGINAL_ROUTES_ANNOTATION];
  let desired = structuredClone(live);
  if (mode === 'stable' && target !== undefined) {
    const plan = planVirtualService(live, target, 0, false, 'end');
    if (!plan.ok) return plan;
    desired = plan.object;
  } else if (mode !== 'keep' && originals !== undefined) {
    const http = httpRoutes(desired);
    for (const original of parseOriginals(originals)) {
      const index = http.findIndex((r) => r.name === original.name && !isPinRoute(r));
      if (index >= 0) http[index] = original;
    }
  }
  (desired.spec as Json).http = httpRoutes(desired).filter((r) => !isPinRoute(r));
  desired = withAnnotations(desired, { [ORIGINAL_ROUTES_ANNOTATION]: undefined, [CANARY_BACKEND_ANNOTATION]: undefined });
  return { ok: true, object: desired, changed: !sameObject(desired, live), found: { stable: 100, canary: 0 } };
}

function parseOriginals(text: string): HttpRoute[] {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? (value as HttpRoute[]) : [];
  } catch {
    return [];
  }
}

/** The managed http routes' indices, or why the VirtualService does not fit the ModelCanary. */
export function managedRoutes(vs: Json, target: RouteTarget): { ok: true; indices: number[] } | { ok: false; problem: string } {
  const rawName = ((vs.metadata ?? {}) as Json).name;
  const name = typeof rawName === 'string' ? rawName : '';
  for (const which of ['stable', 'canary'] as const) {
    const pool = target.spec[which].destination.inferencePool;
    if (pool !== undefined) {
      return { ok: false, problem: `spec.${which}.destination names InferencePool ${pool}, which VirtualService ${name} cannot route to: an InferencePool is a Gateway API backend; route with spec.trafficRouting.gatewayAPI and an HTTPRoute, or set destination.host (and subset)` };
    }
  }
  const http = httpRoutes(vs).map((route, index) => ({ route, index })).filter(({ route }) => !isPinRoute(route));
  const wanted = target.spec.trafficRouting.istio?.routes;
  let chosen: { route: HttpRoute; index: number }[];
  if (wanted === undefined) {
    if (http.length !== 1) {
      const names = http.map(({ route }) => route.name ?? '(unnamed)').join(', ');
      return { ok: false, problem: `VirtualService ${name} has ${http.length} http routes (${names || 'none'}): name the ones to manage in spec.trafficRouting.istio.routes` };
    }
    chosen = http;
  } else {
    chosen = [];
    for (const routeName of wanted) {
      const match = http.find(({ route }) => route.name === routeName);
      if (match === undefined) {
        const names = http.map(({ route }) => route.name ?? '(unnamed)').join(', ');
        return { ok: false, problem: `VirtualService ${name} has no http route named "${routeName}" (it has: ${names || 'none'})` };
      }
      chosen.push(match);
    }
  }
  for (const { route } of chosen) {
    const label = route.name === undefined ? 'its http route' : `http route "${route.name}"`;
    if (route.delegate !== undefined) {
      return { ok: false, problem: `${label} of VirtualService ${name} delegates to VirtualService ${route.delegate.name ?? '?'}: point spec.trafficRouting.istio.virtualService at that one` };
    }
    const destinations = route.route ?? [];
    const stable = destinations.filter((d) => isVersion(d, target.spec.stable, target.namespace));
    if (stable.length === 0) {
      return { ok: false, problem: `${label} of VirtualService ${name} has no destination for stable (${describe(target.spec.stable)}): check spec.stable.destination` };
    }
    const stray = destinations.find((d) => isStray(d, target) && !isLeftover(d, destinations, target, vs));
    if (stray !== undefined) {
      return {
        ok: false,
        problem: `${label} of VirtualService ${name} sends traffic to ${describeDestination(stray)}, which is neither stable (${describe(target.spec.stable)}) nor canary (${describe(target.spec.canary)}); modelcanary will not take traffic away from it`,
      };
    }
  }
  return { ok: true, indices: chosen.map(({ index }) => index) };
}

export function currentWeights(route: HttpRoute, target: RouteTarget): RouteWeights {
  const destinations = route.route ?? [];
  // Istio: a lone destination without a weight takes all the traffic.
  const weightOf = (d: RouteDestination): number => d.weight ?? (destinations.length === 1 ? 100 : 0);
  const sum = (version: VersionTarget): number => destinations.filter((d) => isVersion(d, version, target.namespace)).reduce((s, d) => s + weightOf(d), 0);
  return { stable: sum(target.spec.stable), canary: sum(target.spec.canary) };
}

function isStray(entry: RouteDestination, target: RouteTarget): boolean {
  return !isVersion(entry, target.spec.stable, target.namespace) && !isVersion(entry, target.spec.canary, target.namespace);
}

/** An entry that is neither version and may go: it carries no traffic, or it is the canary the controller recorded before. */
function isLeftover(entry: RouteDestination, all: readonly RouteDestination[], target: RouteTarget, vs: Json): boolean {
  if (!isStray(entry, target)) return false;
  const weight = entry.weight ?? (all.length === 1 ? 100 : 0);
  if (weight === 0) return true;
  const previous = recordedCanary(vs);
  if (typeof previous?.host !== 'string') return false;
  const destination = { host: previous.host, subset: typeof previous.subset === 'string' ? previous.subset : undefined, port: typeof previous.port === 'number' ? previous.port : undefined };
  return isVersion(entry, { version: '-', destination }, target.namespace);
}

function withoutLeftovers(route: HttpRoute, target: RouteTarget, vs: Json): HttpRoute {
  const all = route.route ?? [];
  return { ...route, route: all.filter((d) => !isLeftover(d, all, target, vs)) };
}

function withWeights(route: HttpRoute, target: RouteTarget, weight: number): HttpRoute {
  const destinations = [...(route.route ?? [])];
  const stableIndex = destinations.findIndex((d) => isVersion(d, target.spec.stable, target.namespace));
  if (!destinations.some((d) => isVersion(d, target.spec.canary, target.namespace))) {
    // Modelled on stable's entry: same host, port and header manipulation, canary's subset.
    const model = structuredClone(destinations[stableIndex] ?? {});
    const destination = { ...model.destination, host: target.spec.canary.destination.host };
    if (target.spec.canary.destination.subset === undefined) delete destination.subset;
    else destination.subset = target.spec.canary.destination.subset;
    if (target.spec.canary.destination.port !== undefined) destination.port = { number: target.spec.canary.destination.port };
    destinations.splice(stableIndex + 1, 0, { ...model, destination });
  }
  return { ...route, route: assignWeights(destinations, (entry) => isVersion(entry, target.spec.canary, target.namespace), weight) };
}

function setPinRoutes(vs: Json, target: RouteTarget, managed: number[], pin: boolean): Json {
  const header = target.spec.trafficRouting.istio?.pinHeader?.name;
  const http = httpRoutes(vs);
  const withoutPins = http.filter((r) => !isPinRoute(r));
  if (!pin || header === undefined) {
    (vs.spec as Json).http = withoutPins;
    return vs;
  }
  const pins = managed
    .map((i) => http[i])
    .filter((r): r is HttpRoute => r !== undefined)
    .map((route) => pinRoute(route, target, header));
  const first = withoutPins.findIndex((r) => r.name === http[managed[0] ?? -1]?.name);
  withoutPins.splice(Math.max(0, first), 0, ...pins);
  (vs.spec as Json).http = withoutPins;
  return vs;
}

/** A copy of a managed route, matching only requests that ask for the canary, sending them all there. */
function pinRoute(route: HttpRoute, target: RouteTarget, header: string): HttpRoute {
  const asks = { [header.toLowerCase()]: { exact: target.spec.canary.version } };
  const matches = route.match === undefined || route.match.length === 0 ? [{}] : route.match;
  const canary = (route.route ?? []).find((d) => isVersion(d, target.spec.canary, target.namespace));
  return {
    ...structuredClone(route),
    name: `${route.name ?? target.name}${PIN_SUFFIX}`,
    match: matches.map((m) => ({ ...m, headers: { ...((m.headers ?? {}) as Json), ...asks } })),
    route: [{ ...canary, weight: 100 }],
  };
}

/**
 * The managed routes as they were before the rollout, kept on the object for restore. At
 * 'begin' they are recorded anew from the live route, without leftovers and without the
 * canary (the route an earlier rollout ended with); 'during' records them only when missing;
 * 'end' drops them.
 */
function recordOriginals(desired: Json, live: Json, target: RouteTarget, managed: number[], stage: Stage): Json {
  if (stage === 'end') return withAnnotations(desired, { [ORIGINAL_ROUTES_ANNOTATION]: undefined });
  if (stage === 'during' && annotationsOf(live)[ORIGINAL_ROUTES_ANNOTATION] !== undefined) return desired;
  const originals = managed
    .map((i) => httpRoutes(live)[i])
    .filter((r): r is HttpRoute => r !== undefined)
    .map((route) => {
      const kept = withoutLeftovers(route, target, live).route ?? [];
      const stableOnly = kept.filter((d) => !isVersion(d, target.spec.canary, target.namespace));
      return stableOnly.length === kept.length ? { ...route, route: kept } : { ...route, route: assignWeights(stableOnly, () => false, 0) };
    });
  return withAnnotations(desired, { [ORIGINAL_ROUTES_ANNOTATION]: JSON.stringify(originals) });
}

function httpRoutes(vs: Json): HttpRoute[] {
  const spec = (vs.spec ?? {}) as Json;
  return Array.isArray(spec.http) ? (spec.http as HttpRoute[]) : [];
}

function isPinRoute(route: HttpRoute): boolean {
  return route.name?.endsWith(PIN_SUFFIX) === true;
}

function isVersion(entry: RouteDestination, version: VersionTarget, namespace: string): boolean {
  const d = entry.destination;
  if (d?.host === undefined) return false;
  const want = version.destination;
  if (want.host === undefined || !sameHost(d.host, want.host, namespace)) return false;
  if ((d.subset ?? undefined) !== want.subset) return false;
  return want.port === undefined || d.port?.number === undefined || d.port.number === want.port;
}

/** Istio resolves a short host in the VirtualService's namespace: fraud == fraud.ml-serving.svc.cluster.local. */
export function sameHost(a: string, b: string, namespace: string): boolean {
  const full = (h: string): string => {
    const parts = h.split('.');
    if (parts.length === 1) return `${h}.${namespace}.svc.cluster.local`;
    if (parts.length === 2) return `${h}.svc.cluster.local`;
    return h;
  };
  return full(a) === full(b);
}

function describe(version: VersionTarget): string {
  const d = version.destination;
  if (d.inferencePool !== undefined) return `InferencePool ${d.inferencePool}`;
  return [`host ${d.host ?? '?'}`, d.subset === undefined ? undefined : `subset ${d.subset}`, d.port === undefined ? undefined : `port ${d.port}`].filter(Boolean).join(', ');
}

function describeDestination(entry: RouteDestination): string {
  const d = entry.destination ?? {};
  return [`host ${d.host ?? '?'}`, d.subset === undefined ? undefined : `subset ${d.subset}`, d.port?.number === undefined ? undefined : `port ${d.port.number}`].filter(Boolean).join(', ');
}
