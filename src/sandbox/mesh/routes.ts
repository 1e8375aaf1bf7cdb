// Where an Istio ingress gateway sends one HTTP request, decided from the VirtualServices and
// DestinationRules as Envoy would apply them: the first VirtualService whose hosts match the
// Host header, its first http route whose match conditions hold, then one destination drawn
// by weight, and the DestinationRule subset's labels to pick the workload.
//
// Covered: hosts (FQDN, `name.ns`, short names relative to the VirtualService's namespace, `*.`
// wildcards), match on uri (exact, prefix, regex), headers (exact, prefix, regex) and method;
// route weights (one destination without a weight takes all); subsets; a destination's port.
// Not modelled, so such a condition never matches here: queryParams, sourceLabels, port,
// authority, withoutHeaders. The chosen route comes back whole: its retries and timeout are
// applied by the gateway (policy.ts). Gateways, rewrites, fault injection and mirrors are ignored.

type Json = Record<string, unknown>;

export interface MeshRequest {
  /** The Host header, without the port. */
  host: string;
  path: string;
  method: string;
  /** Lower-case header names. */
  headers: Readonly<Record<string, string | undefined>>;
}

export interface Destination {
  /** Fully qualified service name, e.g. fraud-detector.models.svc.cluster.local. */
  service: string;
  subset?: string | undefined;
  /** The destination's port.number, when it names one. */
  port?: number | undefined;
  /** The subset's labels from its DestinationRule; empty without a subset. */
  labels: Readonly<Record<string, string>>;
}

export type RouteChoice =
  /** `http` is the VirtualService's http route itself, for its retries and timeout. */
  | { kind: 'routed'; virtualService: string; route: string | undefined; destination: Destination; http: Readonly<Json> }
  | { kind: 'noRoute'; reason: string };

/** `name`, `name.ns` and `name.ns.svc` completed to `name.ns.svc.cluster.local`. */
export function fullyQualified(host: string, namespace: string): string {
  const parts = host.split('.');
  if (host.startsWith('*')) return host;
  if (parts.length === 1) return `${host}.${namespace}.svc.cluster.local`;
  if (parts.length === 2) return `${host}.svc.cluster.local`;
  if (parts.length === 3 && parts[2] === 'svc') return `${host}.cluster.local`;
  return host;
}

function hostMatches(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1));
  return pattern === host;
}

function namespaceOf(object: Json): string {
  return ((object.metadata ?? {}) as { namespace?: string }).namespace ?? 'default';
}

function nameOf(object: Json): string {
  return ((object.metadata ?? {}) as { name?: string }).name ?? '';
}

type StringMatch = { exact?: string; prefix?: string; regex?: string } & Json;

function stringMatches(condition: StringMatch, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (typeof condition.exact === 'string') return value === condition.exact;
  if (typeof condition.prefix === 'string') return value.startsWith(condition.prefix);
  if (typeof condition.regex === 'string') {
    try {
      // Envoy's RE2 matches the whole value.
      return new RegExp(`^(?:${condition.regex})$`).test(value);
    } catch {
      return false;
    }
  }
  return false;
}

const MODELLED_CONDITIONS = new Set(['name', 'uri', 'headers', 'method']);

function conditionHolds(match: Json, request: MeshRequest): boolean {
  for (const key of Object.keys(match)) if (!MODELLED_CONDITIONS.has(key)) return false;
  if (match.uri !== undefined && !stringMatches(match.uri as StringMatch, request.path.split('?')[0])) return false;
  if (match.method !== undefined && !stringMatches(match.method as StringMatch, request.method)) return false;
  for (const [name, condition] of Object.entries((match.headers ?? {}) as Record<string, StringMatch>)) {
    if (!stringMatches(condition, request.headers[name.toLowerCase()])) return false;
  }
  return true;
}

interface RouteDestination {
  host?: string;
  subset?: string;
  port?: { number?: number };
}

interface HttpRoute {
  name?: string;
  match?: Json[];
  route?: { destination?: RouteDestination; weight?: number }[];
}

/** One destination of a route, drawn by weight with `random()` in [0, 1). */
function drawDestination(route: HttpRoute, random: () => number): RouteDestination | undefined {
  const destinations = route.route ?? [];
  if (destinations.length === 1) return destinations[0]?.destination;
  const total = destinations.reduce((sum, d) => sum + (d.weight ?? 0), 0);
  if (total <= 0) return undefined;
  let draw = random() * total;
  for (const d of destinations) {
    draw -= d.weight ?? 0;
    if (draw < 0) return d.destination;
  }
  return destinations.findLast((d) => (d.weight ?? 0) > 0)?.destination;
}

export function chooseRoute(virtualServices: readonly Json[], destinationRules: readonly Json[], request: MeshRequest, random: () => number): RouteChoice {
  // As a sidecar does, `name.ns` and `name.ns.svc` stand for the service's full name.
  const given = request.host.toLowerCase();
  const host = given.includes('.') ? fullyQualified(given, '') : given;
  for (const vs of virtualServices) {
    const namespace = namespaceOf(vs);
    const spec = (vs.spec ?? {}) as { hosts?: string[]; http?: HttpRoute[] };
    if (!(spec.hosts ?? []).some((h) => hostMatches(fullyQualified(h.toLowerCase(), namespace), host))) continue;
    for (const route of spec.http ?? []) {
      const matches = route.match ?? [];
      if (matches.length > 0 && !matches.some((m) => conditionHolds(m, request))) continue;
      const picked = drawDestination(route, random);
      if (picked?.host === undefined) return { kind: 'noRoute', reason: `route ${route.name ?? '(unnamed)'} of VirtualService ${namespace}/${nameOf(vs)} has no destination with weight` };
      const service = fullyQualified(picked.host, namespace);
      const labels = picked.subset === undefined ? {} : destinationRuleView(destinationRules, service, picked.subset)?.labels;
      if (labels === undefined) return { kind: 'noRoute', reason: `no DestinationRule for ${service} defines subset ${picked.subset ?? ''}` };
      const port = typeof picked.port?.number === 'number' ? picked.port.number : undefined;
      return { kind: 'routed', virtualService: `${namespace}/${nameOf(vs)}`, route: route.name, destination: { service, subset: picked.subset, port, labels }, http: route as Json };
    }
    return { kind: 'noRoute', reason: `no http route of VirtualService ${namespace}/${nameOf(vs)} matches ${request.method} ${request.path}` };
  }
  return { kind: 'noRoute', reason: `no VirtualService serves host ${host}` };
}

interface DestinationRuleSpec {
  host?: string;
  trafficPolicy?: Json;
  subsets?: { name?: string; labels?: Record<string, string>; trafficPolicy?: Json }[];
}

function rulesFor(destinationRules: readonly Json[], service: string): DestinationRuleSpec[] {
  return destinationRules.flatMap((rule) => {
    const spec = (rule.spec ?? {}) as DestinationRuleSpec;
    return spec.host !== undefined && fullyQualified(spec.host, namespaceOf(rule)) === service ? [spec] : [];
  });
}

/** What the DestinationRules say of a service, or of one of its subsets: undefined when no rule defines that subset. */
export function destinationRuleView(
  destinationRules: readonly Json[],
  service: string,
  subset: string | undefined,
): { labels: Readonly<Record<string, string>>; trafficPolicy: Json | undefined; subsetTrafficPolicy: Json | undefined } | undefined {
  const rules = rulesFor(destinationRules, service);
  if (subset === undefined) return { labels: {}, trafficPolicy: rules[0]?.trafficPolicy, subsetTrafficPolicy: undefined };
  for (const spec of rules) {
    const found = spec.subsets?.find((s) => s.name === subset);
    if (found !== undefined) return { labels: found.labels ?? {}, trafficPolicy: spec.trafficPolicy, subsetTrafficPolicy: found.trafficPolicy };
  }
  return undefined;
}

/** The subsets the DestinationRules of a service define. */
export function subsetNames(destinationRules: readonly Json[], service: string): string[] {
  return [...new Set(rulesFor(destinationRules, service).flatMap((spec) => (spec.subsets ?? []).flatMap((s) => (s.name === undefined ? [] : [s.name]))))];
}
