// The desired Gateway API HTTPRoute for a weight: the backendRef weights of one rule change,
// and nothing else does.

import type { VersionTarget } from '../api/modelcanary.ts';
import { assignWeights, ORIGINAL_ROUTES_ANNOTATION, type Plan, type RouteTarget as Target, type RouteWeights } from './plan.ts';

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

export function planHttpRoute(live: Json, target: Target, weight: number): Plan {
  const found = managedRule(live, target);
  if (!found.ok) return found;
  const desired = structuredClone(live);
  const rules = rulesOf(desired);
  const rule = rules[found.index] ?? {};
  const weights = currentWeights(rule, target);
  rules[found.index] = withWeights(rule, target, weight);
  const metadata = { ...((desired.metadata ?? {}) as Json) };
  const annotations = { ...((metadata.annotations ?? {}) as Record<string, string>) };
  annotations[ORIGINAL_ROUTES_ANNOTATION] ??= JSON.stringify([rulesOf(live)[found.index]]);
  desired.metadata = { ...metadata, annotations };
  return { ok: true, object: desired, changed: JSON.stringify(desired) !== JSON.stringify(live), found: weights };
}

export function finalHttpRoute(live: Json, target: Target, mode: 'restore' | 'stable'): Plan {
  const found = managedRule(live, target);
  if (!found.ok) return found;
  const { annotations, ...metadata } = (live.metadata ?? {}) as Json & { annotations?: Record<string, string> };
  const originals = annotations?.[ORIGINAL_ROUTES_ANNOTATION];
  const desired = structuredClone(live);
  const rules = rulesOf(desired);
  const [original] = originals === undefined ? [] : (JSON.parse(originals) as Rule[]);
  rules[found.index] = mode === 'restore' && original !== undefined ? original : withWeights(rules[found.index] ?? {}, target, 0);
  const kept = Object.fromEntries(Object.entries(annotations ?? {}).filter(([key]) => key !== ORIGINAL_ROUTES_ANNOTATION));
  desired.metadata = Object.keys(kept).length > 0 ? { ...metadata, annotations: kept } : metadata;
  return { ok: true, object: desired, changed: JSON.stringify(desired) !== JSON.stringify(live), found: currentWeights(rulesOf(live)[found.index] ?? {}, target) };
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
  const stray = refs.find((r) => !isVersion(r, target.spec.stable, target.namespace) && !isVersion(r, target.spec.canary, target.namespace));
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
