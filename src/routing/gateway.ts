// The desired Gateway API HTTPRoute for a weight: the backendRef weights of one rule change,
// and nothing else does.

import type { VersionTarget } from '../api/modelcanary.ts';
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
    [CANARY_BACKEND_ANNOTATION]: stage === 'end' ? undefined : JSON.stringify({ name: target.spec.canary.destination.host, port: target.spec.canary.destination.port }),
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
  return isVersion(ref, { version: '-', destination: { host: previous.name, port: typeof previous.port === 'number' ? previous.port : undefined } }, target.namespace);
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
  if (!refs.some((r) => isVersion(r, target.spec.stable, target.namespace))) {
    return { ok: false, problem: `${label} has no backendRef for stable (Service ${target.spec.stable.destination.host} port ${target.spec.stable.destination.port ?? '?'}): check spec.stable.destination` };
  }
  const stray = refs.find((r) => isStray(r, target) && !isLeftover(r, target, route));
  if (stray !== undefined) {
    return { ok: false, problem: `${label} sends traffic to ${stray.kind ?? 'Service'} ${stray.name ?? '?'} port ${stray.port ?? '?'}, which is neither stable nor canary; modelcanary will not take traffic away from it` };
  }
  return { ok: true, index };
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
    const model = structuredClone(refs[stableIndex] ?? {});
    refs.splice(stableIndex + 1, 0, { ...model, name: target.spec.canary.destination.host, port: target.spec.canary.destination.port });
  }
  return { ...rule, backendRefs: assignWeights(refs, (entry) => isVersion(entry, target.spec.canary, target.namespace), weight) };
}

function isVersion(ref: BackendRef, version: VersionTarget, namespace: string): boolean {
  if ((ref.group ?? '') !== '' || (ref.kind ?? 'Service') !== 'Service') return false;
  if ((ref.namespace ?? namespace) !== namespace) return false;
  return ref.name === version.destination.host && (version.destination.port === undefined || ref.port === version.destination.port);
}

function rulesOf(route: Json): Rule[] {
  const spec = (route.spec ?? {}) as Json;
  return Array.isArray(spec.rules) ? (spec.rules as Rule[]) : [];
}
