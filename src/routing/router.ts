// The controller's hands: one narrow interface over the route objects we manage, with an
// exhaustive factory and a do-nothing twin.

import type { ModelCanary } from '../api/modelcanary.ts';
import { finalHttpRoute, planHttpRoute } from './gateway.ts';
import { finalVirtualService, planVirtualService } from './istio.ts';
import type { Plan, RouteTarget, RouteWeights } from './plan.ts';

type Json = Record<string, unknown>;

/** Reads and writes whole objects; the controller backs it with the Kubernetes API. */
export interface ObjectStore {
  /** The object, or undefined when it does not exist or its apiVersion is not served. */
  get(apiVersion: string, kind: string, namespace: string, name: string): Promise<Json | undefined>;
  /** Replaces the object if its metadata.resourceVersion is still current; 'conflict' when it is not. */
  replace(object: Json): Promise<'ok' | 'conflict'>;
}

export type RouterResult = { ok: true; written: boolean; found: RouteWeights } | { ok: false; problem: string };

export interface TrafficRouter {
  /** Why the route cannot be managed, or undefined when it can. */
  check(): Promise<string | undefined>;
  /** The weights the route holds now, without writing. */
  weights(): Promise<RouterResult>;
  /**
   * Sets the canary's weight, with the pin route while `pin`. `found` is what the route held
   * before: when it differs from the last weight set, someone changed it by hand.
   */
  apply(weight: number, pin: boolean): Promise<RouterResult>;
  /** Restores the route (or leaves all traffic on stable, per spec.trafficRouting.onDelete). */
  finalize(): Promise<RouterResult>;
}

/** For a ModelCanary that routes nothing (tests, dry runs): every call succeeds and writes nothing. */
export class NopRouter implements TrafficRouter {
  private weight = 0;

  check(): Promise<string | undefined> {
    return Promise.resolve(undefined);
  }

  weights(): Promise<RouterResult> {
    return Promise.resolve({ ok: true, written: false, found: { stable: 100 - this.weight, canary: this.weight } });
  }

  apply(weight: number): Promise<RouterResult> {
    const found = { stable: 100 - this.weight, canary: this.weight };
    this.weight = weight;
    return Promise.resolve({ ok: true, written: false, found });
  }

  finalize(): Promise<RouterResult> {
    return this.apply(0);
  }
}

interface Kind {
  apiVersions: string[];
  kind: string;
  name: string;
  plan: (live: Json, weight: number, pin: boolean) => Plan;
  final: (live: Json) => Plan;
}

export function createRouter(canary: ModelCanary, store: ObjectStore, maxConflicts = 5): TrafficRouter {
  const target: RouteTarget = { spec: canary.spec, namespace: canary.metadata.namespace ?? 'default', name: canary.metadata.name };
  const routing = canary.spec.trafficRouting;
  const provider = routing.istio !== undefined ? 'istio' : routing.gatewayAPI !== undefined ? 'gatewayAPI' : undefined;
  let kind: Kind;
  switch (provider) {
    case 'istio':
      kind = {
        // v1 since Istio 1.22; v1beta1 where v1 is not served.
        apiVersions: ['networking.istio.io/v1', 'networking.istio.io/v1beta1'],
        kind: 'VirtualService',
        name: routing.istio?.virtualService ?? '',
        plan: (live, weight, pin) => planVirtualService(live, target, weight, pin),
        final: (live) => finalVirtualService(live, target, routing.onDelete),
      };
      break;
    case 'gatewayAPI':
      kind = {
        apiVersions: ['gateway.networking.k8s.io/v1'],
        kind: 'HTTPRoute',
        name: routing.gatewayAPI?.httpRoute ?? '',
        plan: (live, weight) => planHttpRoute(live, target, weight),
        final: (live) => finalHttpRoute(live, target, routing.onDelete),
      };
      break;
    case undefined:
      throw new Error('spec.trafficRouting names no provider: set istio or gatewayAPI');
  }
  return new KubernetesRouter(store, kind, target.namespace, maxConflicts);
}

class KubernetesRouter implements TrafficRouter {
  private readonly store: ObjectStore;
  private readonly kind: Kind;
  private readonly namespace: string;
  private readonly maxConflicts: number;

  constructor(store: ObjectStore, kind: Kind, namespace: string, maxConflicts: number) {
    this.store = store;
    this.kind = kind;
    this.namespace = namespace;
    this.maxConflicts = maxConflicts;
  }

  async check(): Promise<string | undefined> {
    const live = await this.read();
    if (live === undefined) return this.missing();
    const plan = this.kind.plan(live, 0, false);
    return plan.ok ? undefined : plan.problem;
  }

  async weights(): Promise<RouterResult> {
    const live = await this.read();
    if (live === undefined) return { ok: false, problem: this.missing() };
    const plan = this.kind.plan(live, 0, false);
    return plan.ok ? { ok: true, written: false, found: plan.found } : plan;
  }

  apply(weight: number, pin: boolean): Promise<RouterResult> {
    return this.write((live) => this.kind.plan(live, weight, pin));
  }

  finalize(): Promise<RouterResult> {
    return this.write((live) => this.kind.final(live));
  }

  /** Read, compute, write only on change; on a conflict someone else wrote first: read again. */
  private async write(plan: (live: Json) => Plan): Promise<RouterResult> {
    for (let attempt = 0; ; attempt++) {
      const live = await this.read();
      if (live === undefined) return { ok: false, problem: this.missing() };
      const desired = plan(live);
      if (!desired.ok) return desired;
      if (!desired.changed) return { ok: true, written: false, found: desired.found };
      if ((await this.store.replace(desired.object)) === 'ok') return { ok: true, written: true, found: desired.found };
      if (attempt + 1 >= this.maxConflicts) return { ok: false, problem: `${this.kind.kind} ${this.kind.name} kept changing under us: ${this.maxConflicts} conflicting writes in a row` };
    }
  }

  private async read(): Promise<Json | undefined> {
    for (const apiVersion of this.kind.apiVersions) {
      const live = await this.store.get(apiVersion, this.kind.kind, this.namespace, this.kind.name);
      if (live !== undefined) return live;
    }
    return undefined;
  }

  private missing(): string {
    return `${this.kind.kind} ${this.namespace}/${this.kind.name} does not exist (looked for ${this.kind.apiVersions.join(', ')})`;
  }
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
