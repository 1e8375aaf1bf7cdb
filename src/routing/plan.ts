// What a router computes before it writes: the desired object, whether it differs from the
// live one, and the weights it found there.

import type { ModelCanarySpec } from '../api/modelcanary.ts';

/** What a route is managed for: a ModelCanary's spec, in its namespace. */
export interface RouteTarget {
  spec: ModelCanarySpec;
  namespace: string;
  /** The ModelCanary's name, for the pin route. */
  name: string;
}

export interface RouteWeights {
  stable: number;
  canary: number;
}

export type Plan = { ok: true; object: Record<string, unknown>; changed: boolean; found: RouteWeights } | { ok: false; problem: string };

/** The managed routes as they were before the controller first changed them, for finalize. */
export const ORIGINAL_ROUTES_ANNOTATION = 'modelcanary.io/original-routes';

/** Routes the controller adds (the canary pin) end with this, so they are recognised and removed. */
export const PIN_SUFFIX = '-modelcanary-pin';

/**
 * Stable's and the canary's weights on a route's entries, which have been checked to be one
 * or the other. Several entries of one version (unusual) share its weight: the first gets it,
 * the rest 0, so the total stays 100.
 */
export function assignWeights<T extends { weight?: number }>(entries: readonly T[], isCanary: (entry: T) => boolean, weight: number): T[] {
  let stableGiven = false;
  let canaryGiven = false;
  return entries.map((entry) => {
    if (isCanary(entry)) {
      const w = canaryGiven ? 0 : weight;
      canaryGiven = true;
      return { ...entry, weight: w };
    }
    const w = stableGiven ? 0 : 100 - weight;
    stableGiven = true;
    return { ...entry, weight: w };
  });
}

/** Names the ModelCanary (same namespace) that manages a route: one route, one owner. */
export const OWNER_ANNOTATION = 'modelcanary.io/owner';

/**
 * The canary destination the controller last set weights for, as JSON. When the canary changes
 * mid-rollout, the entry recorded here is the old canary's: its traffic goes back to stable and
 * the entry is removed. No other destination the controller did not add is ever taken away.
 */
export const CANARY_BACKEND_ANNOTATION = 'modelcanary.io/canary-backend';

/**
 * Where a rollout is: 'begin' records the managed routes anew as the originals to restore (a
 * rollout starts); 'during' keeps the recorded originals (recording them if absent); 'end'
 * drops the originals and the canary record (the rollout is over: the route stays as it is).
 */
export type Stage = 'begin' | 'during' | 'end';

/** What the controller wants a route to say. */
export interface RouteIntent {
  /** The canary's share of traffic, in percent. */
  weight: number;
  /** Keep the pin route (Istio: requests asking for the canary's version go to it). */
  pin: boolean;
  stage: Stage;
}

type Annotations = Record<string, string>;

export function annotationsOf(object: Record<string, unknown>): Annotations {
  const metadata = (object.metadata ?? {}) as Record<string, unknown>;
  const annotations = metadata.annotations;
  return typeof annotations === 'object' && annotations !== null ? { ...(annotations as Annotations) } : {};
}

/** The object with its annotations replaced: undefined values removed, no empty map left behind. */
export function withAnnotations(object: Record<string, unknown>, changes: Record<string, string | undefined>): Record<string, unknown> {
  const annotations = annotationsOf(object);
  for (const [key, value] of Object.entries(changes)) {
    if (value === undefined) Reflect.deleteProperty(annotations, key);
    else annotations[key] = value;
  }
  const { annotations: _old, ...metadata } = (object.metadata ?? {}) as Record<string, unknown>;
  return { ...object, metadata: Object.keys(annotations).length > 0 ? { ...metadata, annotations } : metadata };
}

/** The recorded previous canary, or undefined when none was recorded or the record is not ours to read. */
export function recordedCanary(object: Record<string, unknown>): { host?: unknown; subset?: unknown; port?: unknown; name?: unknown; kind?: unknown } | undefined {
  const text = annotationsOf(object)[CANARY_BACKEND_ANNOTATION];
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether two objects say the same, whatever the order of their keys. The API server stores a
 * custom resource as a map and writes its keys sorted, so the object read back never has the
 * order in which we built it: comparing text would see a change on every pass.
 */
export function sameObject(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) : v,
  );
}
