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
