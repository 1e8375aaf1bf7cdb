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
