// The controller's hands: one narrow interface over the route objects we manage, with an
// exhaustive factory and a do-nothing twin. Every write is a replace conditional on the
// resourceVersion just read; a conflict means someone else wrote first, so we read again.

import type { ModelCanary } from '../api/modelcanary.ts';
import { finalHttpRoute, planHttpRoute } from './gateway.ts';
import { finalVirtualService, planVirtualService, sameHost } from './istio.ts';
import { annotationsOf, OWNER_ANNOTATION, sameObject, withAnnotations, type Plan, type RouteIntent, type RouteTarget, type RouteWeights } from './plan.ts';

type Json = Record<string, unknown>;

/** Reads and writes whole objects; the controller backs it with the Kubernetes API. */
export interface ObjectStore {
  /** The object, or undefined when it does not exist or its apiVersion is not served. */
  get(apiVersion: string, kind: string, namespace: string, name: string, signal?: AbortSignal): Promise<Json | undefined>;
  /** The objects of a kind in a namespace; empty when the kind is not served. */
  list(apiVersion: string, kind: string, namespace: string, signal?: AbortSignal): Promise<Json[]>;
  /** Replaces the object if its metadata.resourceVersion is still current; 'conflict' when it is not. */
  replace(object: Json, signal?: AbortSignal): Promise<'ok' | 'conflict'>;
}

export type RouterResult = { ok: true; written: boolean; found: RouteWeights } | { ok: false; problem: string; claimedBy?: string; missing?: true };

/** What the route holds now, and whether it already says what the intent wants. */
export type RouteState = { ok: true; found: RouteWeights; inSync: boolean } | { ok: false; problem: string; claimedBy?: string };

/** On delete: put back the routes as they were, send all traffic to stable, or leave the weights as they are. */
export type ReleaseMode = 'restore' | 'stable' | 'keep';

export interface TrafficRouter {
  /** The route as it is and as the intent would make it, without writing. */
  inspect(intent: RouteIntent, signal?: AbortSignal): Promise<RouteState>;
  /** Makes the route say what the intent wants, claiming it for this ModelCanary. `found` is what it held before. */
  apply(intent: RouteIntent, signal?: AbortSignal): Promise<RouterResult>;
  /**
   * Claims the route for this ModelCanary (annotation modelcanary.io/owner) without changing
   * anything else, so that of two ModelCanaries starting on one route exactly one wins before
   * either commits to a rollout.
   */
  claim(signal?: AbortSignal): Promise<RouterResult>;
  /** Gives the route up: restores it, or leaves all traffic on stable, or only removes the controller's marks; always drops the claim. */
  release(mode: ReleaseMode, signal?: AbortSignal): Promise<RouterResult>;
  /** What must hold before traffic moves, beyond the route itself (Istio: the DestinationRule subsets); undefined when it holds. */
  preflight(signal?: AbortSignal): Promise<string | undefined>;
}

/** For a ModelCanary that routes nothing (tests, dry runs): every call succeeds and writes nothing. */
export class NopRouter implements TrafficRouter {
  private weight = 0;

  inspect(intent: RouteIntent): Promise<RouteState> {
    return Promise.resolve({ ok: true, found: this.found(), inSync: intent.weight === this.weight });
  }

  apply(intent: RouteIntent): Promise<RouterResult> {
    const found = this.found();
    this.weight = intent.weight;
    return Promise.resolve({ ok: true, written: false, found });
  }

  release(): Promise<RouterResult> {
    return Promise.resolve({ ok: true, written: false, found: this.found() });
  }

  claim(): Promise<RouterResult> {
    return this.release();
  }

  preflight(): Promise<string | undefined> {
    return Promise.resolve(undefined);
  }

  private found(): RouteWeights {
    return { stable: 100 - this.weight, canary: this.weight };
  }
}

export type RouteKind = 'VirtualService' | 'HTTPRoute';

interface Kind {
  apiVersions: string[];
  kind: RouteKind;
  name: string;
  plan?: (live: Json, intent: RouteIntent) => Plan;
  final: (live: Json, mode: ReleaseMode) => Plan;
  preflight?: (store: ObjectStore, signal?: AbortSignal) => Promise<string | undefined>;
}

const API_VERSIONS: Record<RouteKind, string[]> = {
  // v1 since Istio 1.22; v1beta1 where v1 is not served.
  VirtualService: ['networking.istio.io/v1', 'networking.istio.io/v1beta1'],
  HTTPRoute: ['gateway.networking.k8s.io/v1'],
};

/** The route a ModelCanary names, its kind and name. */
export function routeOf(canary: ModelCanary): { kind: RouteKind; name: string } {
  const routing = canary.spec.trafficRouting;
  if (routing.istio !== undefined) return { kind: 'VirtualService', name: routing.istio.virtualService };
  if (routing.gatewayAPI !== undefined) return { kind: 'HTTPRoute', name: routing.gatewayAPI.httpRoute };
  throw new Error('spec.trafficRouting names no provider: set istio or gatewayAPI');
}

export function createRouter(canary: ModelCanary, store: ObjectStore, maxConflicts = 5): TrafficRouter {
  const target: RouteTarget = { spec: canary.spec, namespace: canary.metadata.namespace ?? 'default', name: canary.metadata.name };
  const route = routeOf(canary);
  const onDelete = canary.spec.trafficRouting.onDelete;
  let kind: Kind;
  switch (route.kind) {
    case 'VirtualService':
      kind = {
        apiVersions: API_VERSIONS.VirtualService,
        kind: route.kind,
        name: route.name,
        plan: (live, intent) => planVirtualService(live, target, intent.weight, intent.pin, intent.stage),
        final: (live, mode) => finalVirtualService(live, target, mode === 'restore' ? onDelete : mode),
        preflight: (objects, signal) => checkSubsets(objects, target, signal),
      };
      break;
    case 'HTTPRoute':
      kind = {
        apiVersions: API_VERSIONS.HTTPRoute,
        kind: route.kind,
        name: route.name,
        plan: (live, intent) => planHttpRoute(live, target, intent.weight, intent.stage),
        final: (live, mode) => finalHttpRoute(live, target, mode === 'restore' ? onDelete : mode),
      };
      break;
  }
  return new KubernetesRouter(store, kind, target.namespace, canary.metadata.name, maxConflicts);
}

/**
 * A router that can only release a route, for a ModelCanary whose spec is no longer valid:
 * restoring needs only what the controller recorded on the route itself.
 */
export function createReleaser(route: { kind: RouteKind; name: string }, namespace: string, owner: string, store: ObjectStore): TrafficRouter {
  const final = route.kind === 'VirtualService' ? finalVirtualService : finalHttpRoute;
  const kind: Kind = {
    apiVersions: API_VERSIONS[route.kind],
    kind: route.kind,
    name: route.name,
    final: (live, mode) => final(live, undefined, mode === 'keep' ? 'keep' : 'restore'),
  };
  return new KubernetesRouter(store, kind, namespace, owner, 5);
}

class KubernetesRouter implements TrafficRouter {
  private readonly store: ObjectStore;
  private readonly kind: Kind;
  private readonly namespace: string;
  private readonly owner: string;
  private readonly maxConflicts: number;

  constructor(store: ObjectStore, kind: Kind, namespace: string, owner: string, maxConflicts: number) {
    this.store = store;
    this.kind = kind;
    this.namespace = namespace;
    this.owner = owner;
    this.maxConflicts = maxConflicts;
  }

  async inspect(intent: RouteIntent, signal?: AbortSignal): Promise<RouteState> {
    const live = await this.read(signal);
    if (live === undefined) return { ok: false, problem: this.missing() };
    const plan = this.claimed(live, intent);
    return plan.ok ? { ok: true, found: plan.found, inSync: !plan.changed } : plan;
  }

  apply(intent: RouteIntent, signal?: AbortSignal): Promise<RouterResult> {
    return this.write((live) => this.claimed(live, intent), signal);
  }

  claim(signal?: AbortSignal): Promise<RouterResult> {
    return this.write((live) => {
      const claimed = this.claimed(live, { weight: 0, pin: false, stage: 'during' });
      if (!claimed.ok) return claimed;
      const object = withAnnotations(live, { [OWNER_ANNOTATION]: this.owner });
      return { ok: true, object, changed: !sameObject(object, live), found: claimed.found };
    }, signal);
  }

  async release(mode: ReleaseMode, signal?: AbortSignal): Promise<RouterResult> {
    const result = await this.write((live) => {
      const claimedBy = annotationsOf(live)[OWNER_ANNOTATION];
      // Not ours (any more): nothing to give back.
      if (claimedBy !== undefined && claimedBy !== this.owner) return { ok: true, object: live, changed: false, found: { stable: 100, canary: 0 } };
      const plan = this.kind.final(live, mode);
      // A route that no longer fits the spec can still be restored from what was recorded on it.
      const fallback = plan.ok || mode === 'keep' ? plan : this.kind.final(live, 'keep');
      if (!fallback.ok) return fallback;
      const object = withAnnotations(fallback.object, { [OWNER_ANNOTATION]: undefined });
      return { ...fallback, object, changed: !sameObject(object, live) };
    }, signal);
    // A route deleted before its ModelCanary has nothing to give back.
    return !result.ok && result.missing === true ? { ok: true, written: false, found: { stable: 100, canary: 0 } } : result;
  }

  async preflight(signal?: AbortSignal): Promise<string | undefined> {
    return this.kind.preflight === undefined ? undefined : this.kind.preflight(this.store, signal);
  }

  /** The plan for an intent, refused when another ModelCanary owns the route; the desired object carries our claim. */
  private claimed(live: Json, intent: RouteIntent): Plan & { claimedBy?: string } {
    const owner = annotationsOf(live)[OWNER_ANNOTATION];
    if (owner !== undefined && owner !== this.owner) {
      return {
        ok: false,
        claimedBy: owner,
        problem: `${this.kind.kind} ${this.namespace}/${this.kind.name} is managed by ModelCanary ${owner} (annotation ${OWNER_ANNOTATION}); one route has one owner: delete ${owner} first, or remove the annotation if that ModelCanary no longer exists`,
      };
    }
    if (this.kind.plan === undefined) return { ok: false, problem: 'this ModelCanary can only release its route: its spec is invalid' };
    const plan = this.kind.plan(live, intent);
    if (!plan.ok) return plan;
    const object = withAnnotations(plan.object, { [OWNER_ANNOTATION]: this.owner });
    return { ...plan, object, changed: !sameObject(object, live) };
  }

  /** Read, compute, write only on change; on a conflict someone else wrote first: read again. */
  private async write(plan: (live: Json) => Plan & { claimedBy?: string }, signal?: AbortSignal): Promise<RouterResult> {
    for (let attempt = 0; ; attempt++) {
      const live = await this.read(signal);
      if (live === undefined) return { ok: false, problem: this.missing(), missing: true };
      const desired = plan(live);
      if (!desired.ok) return desired;
      if (!desired.changed) return { ok: true, written: false, found: desired.found };
      signal?.throwIfAborted();
      if ((await this.store.replace(desired.object, signal)) === 'ok') return { ok: true, written: true, found: desired.found };
      if (attempt + 1 >= this.maxConflicts) return { ok: false, problem: `${this.kind.kind} ${this.kind.name} kept changing under us: ${this.maxConflicts} conflicting writes in a row` };
    }
  }

  private async read(signal?: AbortSignal): Promise<Json | undefined> {
    for (const apiVersion of this.kind.apiVersions) {
      const live = await this.store.get(apiVersion, this.kind.kind, this.namespace, this.kind.name, signal);
      if (live !== undefined) return live;
    }
    return undefined;
  }

  private missing(): string {
    return `${this.kind.kind} ${this.namespace}/${this.kind.name} does not exist (looked for ${this.kind.apiVersions.join(', ')})`;
  }
}

/** Istio: every subset a version names must be defined by a DestinationRule for its host, or the mesh answers 503 for it. */
async function checkSubsets(store: ObjectStore, target: RouteTarget, signal?: AbortSignal): Promise<string | undefined> {
  const wanted = [target.spec.stable, target.spec.canary].filter((v) => v.destination.subset !== undefined);
  if (wanted.length === 0) return undefined;
  let rules: Json[] = [];
  for (const apiVersion of ['networking.istio.io/v1', 'networking.istio.io/v1beta1']) {
    rules = await store.list(apiVersion, 'DestinationRule', target.namespace, signal);
    if (rules.length > 0) break;
  }
  for (const version of wanted) {
    const { host, subset } = version.destination;
    // An InferencePool has no subsets; the spec refuses one under Istio.
    if (host === undefined) continue;
    const forHost = rules.filter((r) => {
      const ruleHost = ((r.spec ?? {}) as Json).host;
      return typeof ruleHost === 'string' && sameHost(ruleHost, host, target.namespace);
    });
    const defined = forHost.some((r) => {
      const subsets = ((r.spec ?? {}) as Json).subsets;
      return Array.isArray(subsets) && subsets.some((s) => typeof s === 'object' && s !== null && (s as Json).name === subset);
    });
    if (defined) continue;
    const which = version === target.spec.stable ? 'stable' : 'canary';
    return forHost.length === 0
      ? `no DestinationRule in namespace ${target.namespace} has host ${host}: the ${which} subset ${subset ?? ''} (spec.${which}.destination.subset) must be defined by one, or the mesh answers 503 for it`
      : `no DestinationRule for host ${host} in namespace ${target.namespace} defines subset ${subset ?? ''} (spec.${which}.destination.subset): add it to the rule's subsets with the labels of the ${which} pods`;
  }
  return undefined;
}

/** Objects in memory, with resourceVersion preconditions: for `modelcanary route` and tests. */
export class MemoryObjectStore implements ObjectStore {
  private readonly objects = new Map<string, Json>();
  private version = 0;
  writes = 0;

  put(object: Json): void {
    const metadata = { ...((object.metadata ?? {}) as Json), resourceVersion: String(++this.version) };
    this.objects.set(this.key(object), structuredClone({ ...object, metadata }));
  }

  get(apiVersion: string, kind: string, namespace: string, name: string): Promise<Json | undefined> {
    const object = this.objects.get(`${apiVersion}/${kind}/${namespace}/${name}`);
    return Promise.resolve(object === undefined ? undefined : structuredClone(object));
  }

  list(apiVersion: string, kind: string, namespace: string): Promise<Json[]> {
    const prefix = `${apiVersion}/${kind}/${namespace}/`;
    return Promise.resolve([...this.objects.entries()].filter(([key]) => key.startsWith(prefix)).map(([, object]) => structuredClone(object)));
  }

  replace(object: Json): Promise<'ok' | 'conflict'> {
    const current = this.objects.get(this.key(object));
    const given = (object.metadata as Json | undefined)?.resourceVersion;
    if (current === undefined || (current.metadata as Json).resourceVersion !== given) return Promise.resolve('conflict');
    this.writes++;
    this.put(object);
    return Promise.resolve('ok');
  }

  private key(object: Json): string {
    const metadata = (object.metadata ?? {}) as Json;
    const text = (v: unknown): string => (typeof v === 'string' ? v : '');
    return `${text(object.apiVersion)}/${text(object.kind)}/${text(metadata.namespace) || 'default'}/${text(metadata.name)}`;
  }
}
