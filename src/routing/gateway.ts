// The desired Gateway API HTTPRoute for a weight: the backendRef weights of one rule change,
// and nothing else does. A version is a Service backendRef or an InferencePool backendRef
// (the Gateway API Inference Extension's, group inference.networking.k8s.io); both split by weight.

import { describeBackend, INFERENCE_POOL_GROUP, type Destination, type VersionTarget } from '../api/modelcanary.ts';
import {
  annotationsOf,
  assignWeights,
  CANARY_BACKEND_ANNOTATION,
  ORIGINAL_ROUTES_ANNOTATION,
  recordedCanary,
  sameObject,
  withAnnotations,
  type Plan,
  type RouteTarget as Target,
  type RouteWeights,
  type Stage,
} from './plan.ts';

type Json = Record<string, unknown>;

interface BackendRef {
  group?: string;
  kind?: string;
  name?: string;
  namespace?: string;
  port?: number;
  weight?: number;
}

const SERVICE = { group: '', kind: 'Service' } as const;
const INFERENCE_POOL = { group: INFERENCE_POOL_GROUP, kind: 'InferencePool' } as const;

interface Rule {
  name?: string;
  backendRefs?: BackendRef[];
}

export function planHttpRoute(live: Json, target: Target, weight: number, stage: Stage = 'during'): Plan {
  const found = managedRule(live, target);
  if (!found.ok) return found;
  let desired = structuredClone(live);
  const rules = rulesOf(desired);
  const rule = rules[found.index] ?? {};
  const weights = currentWeights(rule, target);
  rules[found.index] = withWeights(withoutLeftovers(rule, target, live), target, weight);
  const recorded = annotationsOf(live)[ORIGINAL_ROUTES_ANNOTATION];
  const original = (): string => {
    const kept = (withoutLeftovers(rulesOf(live)[found.index] ?? {}, target, live).backendRefs ?? []).filter((r) => !isVersion(r, target.spec.canary, target.namespace));
    return JSON.stringify([{ index: found.index, rule: { ...rulesOf(live)[found.index], backendRefs: kept } }]);
  };
  desired = withAnnotations(desired, {
    [ORIGINAL_ROUTES_ANNOTATION]: stage === 'end' ? undefined : stage === 'begin' || recorded === undefined ? original() : recorded,
    [CANARY_BACKEND_ANNOTATION]: stage === 'end' ? undefined : JSON.stringify(canaryRecord(target.spec.canary.destination)),
  });
  return { ok: true, object: desired, changed: !sameObject(desired, live), found: weights };
}

/**
 * The HTTPRoute as it was before the rollout began (restore), all on stable (with a target),
 * or with only the controller's marks removed (keep). Restoring needs no spec: the original
 * rule is recorded on the object with its index.
 */
export function finalHttpRoute(live: Json, target: Target | undefined, mode: 'restore' | 'stable' | 'keep'): Plan {
  let desired = structuredClone(live);
  if (mode === 'stable' && target !== undefined) {
    const plan = planHttpRoute(live, target, 0, 'end');
    if (!plan.ok) return plan;
    desired = plan.object;
  } else if (mode !== 'keep') {
    const rules = rulesOf(desired);
    for (const { index, rule } of parseOriginals(annotationsOf(live)[ORIGINAL_ROUTES_ANNOTATION])) {
      if (index < rules.length) rules[index] = rule;
    }
  }
  desired = withAnnotations(desired, { [ORIGINAL_ROUTES_ANNOTATION]: undefined, [CANARY_BACKEND_ANNOTATION]: undefined });
  return { ok: true, object: desired, changed: !sameObject(desired, live), found: { stable: 100, canary: 0 } };
}

function parseOriginals(text: string | undefined): { index: number; rule: Rule }[] {
  if (text === undefined) return [];
  try {
    const value: unknown = JSON.parse(text);
    if (!Array.isArray(value)) return [];
    return value.filter((v): v is { index: number; rule: Rule } => typeof v === 'object' && v !== null && typeof (v as { index?: unknown }).index === 'number' && typeof (v as { rule?: unknown }).rule === 'object');
  } catch {
    return [];
  }
}

function isStray(ref: BackendRef, target: Target): boolean {
  return !isVersion(ref, target.spec.stable, target.namespace) && !isVersion(ref, target.spec.canary, target.namespace);
}

/** A backendRef that is neither version and may go: weight 0, or the canary the controller recorded before. */
function isLeftover(ref: BackendRef, target: Target, route: Json): boolean {
  if (!isStray(ref, target)) return false;
  if (ref.weight === 0) return true;
  const previous = recordedCanary(route);
  if (typeof previous?.name !== 'string') return false;
  const destination: Destination =
    previous.kind === INFERENCE_POOL.kind ? { inferencePool: previous.name } : { host: previous.name, port: typeof previous.port === 'number' ? previous.port : undefined };
  return isVersion(ref, { version: '-', destination }, target.namespace);
}

/** What the controller records of the canary it set weights for, to recognise its backendRef if the canary changes. */
function canaryRecord(destination: Destination): Record<string, unknown> {
  return destination.inferencePool === undefined ? { name: destination.host, port: destination.port } : { ...INFERENCE_POOL, name: destination.inferencePool };
}

function withoutLeftovers(rule: Rule, target: Target, route: Json): Rule {
  return { ...rule, backendRefs: (rule.backendRefs ?? []).filter((r) => !isLeftover(r, target, route)) };
}

function managedRule(route: Json, target: Target): { ok: true; index: number } | { ok: false; problem: string } {
  const rawName = ((route.metadata ?? {}) as Json).name;
  const name = typeof rawName === 'string' ? rawName : '';
  const rules = rulesOf(route);
  const settings = target.spec.trafficRouting.gatewayAPI;
  let index: number;
  if (settings?.ruleName !== undefined) {
    index = rules.findIndex((r) => r.name === settings.ruleName);
    if (index < 0) return { ok: false, problem: `HTTPRoute ${name} has no rule named "${settings.ruleName}" (it has: ${rules.map((r) => r.name ?? '(unnamed)').join(', ') || 'none'})` };
  } else if (settings?.ruleIndex !== undefined) {
    index = settings.ruleIndex;
    if (index >= rules.length) return { ok: false, problem: `HTTPRoute ${name} has ${rules.length} rules; spec.trafficRouting.gatewayAPI.ruleIndex ${index} is past the end` };
  } else {
    if (rules.length !== 1) return { ok: false, problem: `HTTPRoute ${name} has ${rules.length} rules: choose one with spec.trafficRouting.gatewayAPI.ruleName or ruleIndex` };
    index = 0;
  }
  const refs = rules[index]?.backendRefs ?? [];
  const label = `rule ${rules[index]?.name === undefined ? index : `"${rules[index]?.name ?? ''}"`} of HTTPRoute ${name}`;
  const mismatch = mismatched(refs, target, route);
  if (mismatch !== undefined) return { ok: false, problem: `${label} ${mismatch}` };
  if (!refs.some((r) => isVersion(r, target.spec.stable, target.namespace))) {
    const { destination } = target.spec.stable;
    const wanted = destination.inferencePool === undefined ? '' : ` (add {group: ${INFERENCE_POOL_GROUP}, kind: InferencePool, name: ${destination.inferencePool}} to the rule's backendRefs)`;
    return { ok: false, problem: `${label} has no backendRef for stable (${describeBackend(destination)}): check spec.stable.destination${wanted}` };
  }
  const stray = refs.find((r) => isStray(r, target) && !isLeftover(r, target, route));
  if (stray !== undefined) {
    return { ok: false, problem: `${label} sends traffic to ${describeRef(stray)}, which is neither stable nor canary; modelcanary will not take traffic away from it` };
  }
  return { ok: true, index };
}

/**
 * Why a backendRef that carries a version's name does not fit the spec, or undefined: it is of
 * another group or kind than the destination says (a Service where the spec names an
 * InferencePool, an InferencePool of the alpha API group), alone or beside the right one.
 * Weight-0 leftovers are not asked: they go.
 */
function mismatched(refs: readonly BackendRef[], target: Target, route: Json): string | undefined {
  for (const which of ['stable', 'canary'] as const) {
    const version = target.spec[which];
    const want = groupKindFor(version.destination);
    const field = version.destination.inferencePool === undefined ? 'host' : 'inferencePool';
    const wanted = `spec.${which}.destination.${field} names ${describeBackend(version.destination)}`;
    for (const ref of refs) {
      if (ref.name !== nameOf(version.destination) || (ref.namespace ?? target.namespace) !== target.namespace) continue;
      const have = groupKindOf(ref);
      if ((have.group === want.group && have.kind === want.kind) || isLeftover(ref, target, route)) continue;
      if (refs.some((r) => isVersion(r, version, target.namespace))) {
        return `mixes ${describeRef(ref)} with ${describeBackend(version.destination)} for ${which}: a version is one backend; remove the ${have.kind} backendRef (${wanted})`;
      }
      if (have.kind === want.kind) {
        return `has a backendRef to ${describeRef(ref)}, but ${wanted}, group ${want.group === '' ? '"" (core)' : want.group}${want.kind === INFERENCE_POOL.kind ? ' (InferencePool v1)' : ''}: set the backendRef's group to ${want.group === '' ? '""' : want.group}`;
      }
      const fix =
        want.kind === INFERENCE_POOL.kind
          ? `make the backendRef {group: ${INFERENCE_POOL_GROUP}, kind: InferencePool, name: ${ref.name ?? ''}}, or set spec.${which}.destination.host and port instead of inferencePool`
          : have.kind === INFERENCE_POOL.kind
            ? `set spec.${which}.destination.inferencePool: ${ref.name ?? ''} (without host and port), or make the backendRef a Service`
            : `make the backendRef a Service, or name another backend in spec.${which}.destination`;
      return `sends ${which}'s traffic to ${describeRef(ref)}, but ${wanted}: ${fix}`;
    }
  }
  return undefined;
}

/** A backendRef's group and kind, with the Gateway API's defaults ("" and Service) filled in. */
function groupKindOf(ref: BackendRef): { group: string; kind: string } {
  return { group: ref.group ?? SERVICE.group, kind: ref.kind ?? SERVICE.kind };
}

function groupKindFor(destination: Destination): { group: string; kind: string } {
  return destination.inferencePool === undefined ? SERVICE : INFERENCE_POOL;
}

function nameOf(destination: Destination): string | undefined {
  return destination.inferencePool ?? destination.host;
}

function describeRef(ref: BackendRef): string {
  const { group, kind } = groupKindOf(ref);
  if (group === SERVICE.group && kind === SERVICE.kind) return `Service ${ref.name ?? '?'} port ${ref.port ?? '?'}`;
  return `${kind} ${ref.name ?? '?'}${group === '' ? '' : ` (group ${group})`}`;
}

function currentWeights(rule: Rule, target: Target): RouteWeights {
  const refs = rule.backendRefs ?? [];
  // Gateway API: an omitted weight is 1.
  const sum = (version: VersionTarget): number => refs.filter((r) => isVersion(r, version, target.namespace)).reduce((s, r) => s + (r.weight ?? 1), 0);
  const stable = sum(target.spec.stable);
  const canary = sum(target.spec.canary);
  const total = stable + canary;
  if (total === 0) return { stable: 100, canary: 0 };
  const canaryPercent = Math.round((100 * canary) / total);
  return { stable: 100 - canaryPercent, canary: canaryPercent };
}

function withWeights(rule: Rule, target: Target, weight: number): Rule {
  const refs = [...(rule.backendRefs ?? [])];
  const stableIndex = refs.findIndex((r) => isVersion(r, target.spec.stable, target.namespace));
  if (!refs.some((r) => isVersion(r, target.spec.canary, target.namespace))) {
    refs.splice(stableIndex + 1, 0, backendRefFor(target.spec.canary.destination, refs[stableIndex] ?? {}));
  }
  return { ...rule, backendRefs: assignWeights(refs, (entry) => isVersion(entry, target.spec.canary, target.namespace), weight) };
}

/** A backendRef for a version, modelled on stable's: its filters and namespace are kept. */
function backendRefFor(destination: Destination, model: BackendRef): BackendRef {
  const ref = structuredClone(model);
  if (destination.inferencePool !== undefined) {
    // An InferencePool names its own ports (spec.targetPorts); a port on its backendRef is not the canary's.
    delete ref.port;
    return { ...ref, ...INFERENCE_POOL, name: destination.inferencePool };
  }
  const fromPool = groupKindOf(model).kind !== SERVICE.kind;
  return { ...ref, ...(fromPool ? SERVICE : {}), name: destination.host, port: destination.port };
}

function isVersion(ref: BackendRef, version: VersionTarget, namespace: string): boolean {
  const have = groupKindOf(ref);
  const want = groupKindFor(version.destination);
  if (have.group !== want.group || have.kind !== want.kind) return false;
  if ((ref.namespace ?? namespace) !== namespace) return false;
  if (ref.name === undefined || ref.name !== nameOf(version.destination)) return false;
  // A port on an InferencePool's backendRef is ignored by gateways: the pool's targetPorts rule.
  return version.destination.inferencePool !== undefined || version.destination.port === undefined || ref.port === version.destination.port;
}

function rulesOf(route: Json): Rule[] {
  const spec = (route.spec ?? {}) as Json;
  return Array.isArray(spec.rules) ? (spec.rules as Rule[]) : [];
}
