// The CEL rules of the generated CRD, compiled and run by a real CEL implementation (cel-js)
// with the functions Kubernetes adds, the way the API server runs them: `self` typed from the
// schema, defaults applied first, integers as int and numbers as double. The table of invalid
// edits checks that the API server and `modelcanary validate` refuse the same manifests.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Environment, type ParseResult } from '@marcbachmann/cel-js';
import { modelCanaryCrd, type CelValidation, type SchemaNode } from '../src/api/crd.ts';
import { checkModelCanary } from '../src/api/validate.ts';
import { exampleManifests, istioManifest } from './helpers/manifests.ts';

// ── A Kubernetes-flavoured CEL environment ─────────────────────────────────────────────

type Comparable = bigint | number | string;

/**
 * cel-js has standard CEL (duration(), matches(), has(), size(), all, exists_one); Kubernetes
 * adds libraries of which the rules use isSorted() (k8s lists: non-decreasing). JS RegExp
 * stands in for RE2: the rules' patterns avoid classes such as \s whose meaning differs.
 */
function kubernetesEnvironment(): Environment {
  return new Environment()
    .registerFunction('list<A>.isSorted(): bool', (list: Comparable[]) => list.every((v, i) => i === 0 || (list[i - 1] ?? v) <= v));
}

/** A schema node that carries rules, with `self` declared as the API server declares it. */
interface RuleSite {
  path: string;
  node: SchemaNode;
  rules: CelValidation[];
  env: Environment;
  programs: Map<CelValidation, ParseResult>;
}

/**
 * Declares a CEL type for every schema node the way the API server does (object with
 * properties → object type, additionalProperties → map, array → list, integer → int,
 * number → double), and an environment per node that has rules.
 */
function ruleSites(spec: SchemaNode): Map<SchemaNode, RuleSite> {
  const base = kubernetesEnvironment();
  const found: { path: string; node: SchemaNode; type: string }[] = [];
  const declare = (node: SchemaNode, path: string): string => {
    const type = celTypeOf(node, path);
    if (node['x-kubernetes-validations'] !== undefined) found.push({ path, node, type });
    return type;
  };
  const celTypeOf = (node: SchemaNode, path: string): string => {
    if (node['x-kubernetes-preserve-unknown-fields'] === true) return 'dyn';
    if (node.format !== undefined && ['date-time', 'date', 'duration', 'byte'].includes(node.format)) {
      assert.fail(`${path}: format ${node.format} has its own CEL type, which this test does not model yet`);
    }
    switch (node.type) {
      case 'string':
        return 'string';
      case 'integer':
        return 'int';
      case 'number':
        return 'double';
      case 'boolean':
        return 'bool';
      case 'array':
        assert.ok(node.items !== undefined, `${path}: an array without items`);
        return `list<${declare(node.items, `${path}[]`)}>`;
      case 'object': {
        if (node.properties !== undefined) {
          const fields = Object.fromEntries(Object.entries(node.properties).map(([name, child]) => [name, declare(child, `${path}.${name}`)]));
          base.registerType(path, { fields });
          return path;
        }
        if (typeof node.additionalProperties === 'object') return `map<string, ${declare(node.additionalProperties, `${path}{}`)}>`;
        return 'map<string, dyn>';
      }
      default:
        return assert.fail(`${path}: no CEL type for schema type ${String(node.type)}`);
    }
  };
  declare(spec, 'spec');

  // Cloning freezes `base`, so every type is registered before the first site is made.
  return new Map(
    found.map(({ path, node, type }) => [
      node,
      { path, node, rules: node['x-kubernetes-validations'] ?? [], env: base.clone().registerVariable('self', type), programs: new Map() },
    ]),
  );
}

// ── Field names in has() ──────────────────────────────────────────────────────────────

interface AstLike {
  op: string;
  args: unknown;
}

function isAst(value: unknown): value is AstLike {
  return typeof value === 'object' && value !== null && 'op' in value && 'args' in value;
}

function* astNodes(value: unknown): Generator<AstLike> {
  if (Array.isArray(value)) {
    for (const item of value) yield* astNodes(item);
  } else if (isAst(value)) {
    yield value;
    yield* astNodes(value.args);
  }
}

/** The field path of `self.a.b`, or undefined when the selection does not start at self. */
function selfPath(node: AstLike): string[] | undefined {
  if (node.op === 'id') return node.args === 'self' ? [] : undefined;
  if (node.op !== '.' || !Array.isArray(node.args)) return undefined;
  const [operand, field] = node.args as [unknown, unknown];
  const above = isAst(operand) ? selfPath(operand) : undefined;
  return above === undefined || typeof field !== 'string' ? undefined : [...above, field];
}

/**
 * Fields of self that the schema does not declare. The API server's type check refuses
 * `has(self.maxMS)`; cel-js type-checks has() on an object type without looking the field up.
 */
function undeclaredFields(site: RuleSite, program: ParseResult): string[] {
  const missing: string[] = [];
  for (const node of astNodes(program.ast)) {
    const path = node.op === '.' ? selfPath(node) : undefined;
    if (path === undefined) continue;
    let schema: SchemaNode | undefined = site.node;
    for (const field of path) {
      schema = schema?.properties !== undefined ? schema.properties[field] : typeof schema?.additionalProperties === 'object' ? schema.additionalProperties : undefined;
    }
    if (schema === undefined) missing.push(`self.${path.join('.')}`);
  }
  return missing;
}

// ── Running the rules on a manifest ────────────────────────────────────────────────────

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Fills missing properties that have a default, as the API server does before validating. */
function withDefaults(node: SchemaNode, data: unknown): unknown {
  if (Array.isArray(data)) return node.items === undefined ? data : data.map((item) => withDefaults(node.items ?? {}, item));
  if (!isRecord(data)) return data;
  const out: Record<string, unknown> = { ...data };
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    if (out[name] === undefined && child.default !== undefined) out[name] = structuredClone(child.default);
    if (out[name] !== undefined) out[name] = withDefaults(child, out[name]);
  }
  const values = node.additionalProperties;
  if (typeof values === 'object') for (const [key, value] of Object.entries(data)) out[key] = withDefaults(values, value);
  return out;
}

/** The CEL value of JSON data under a schema: `integer` is int even as 2.0, `number` is double even as 2. */
function celValue(node: SchemaNode, data: unknown): unknown {
  if (node.type === 'integer' && typeof data === 'number' && Number.isInteger(data)) return BigInt(data);
  if (Array.isArray(data)) return data.map((item) => celValue(node.items ?? {}, item));
  if (!isRecord(data)) return data;
  const values = node.additionalProperties;
  if (typeof values === 'object') return new Map(Object.entries(data).map(([key, value]) => [key, celValue(values, value)]));
  // Unknown fields are pruned before the rules run.
  const known = Object.entries(node.properties ?? {}).filter(([name]) => data[name] !== undefined);
  return new Map(known.map(([name, child]) => [name, celValue(child, data[name])]));
}

interface CelOutcome {
  /** `path: message` for each rule that does not hold (or fails to evaluate). */
  failures: string[];
  /** The rules that were evaluated at least once. */
  evaluated: Set<CelValidation>;
}

/** Runs every CEL rule of the CRD on a manifest's spec, walking the schema with the data. */
function celCheck(spec: unknown): CelOutcome {
  const outcome: CelOutcome = { failures: [], evaluated: new Set() };
  const visit = (node: SchemaNode, data: unknown, path: string): void => {
    if (data === undefined || data === null) return;
    const site = SITES.get(node);
    if (site !== undefined) {
      const self = celValue(node, data);
      for (const rule of site.rules) {
        outcome.evaluated.add(rule);
        const failure = evaluate(site, rule, self);
        if (failure !== undefined) outcome.failures.push(failure === false ? `${path}${rule.fieldPath ?? ''}: ${rule.message}` : `${path}: evaluation error in ${rule.rule}: ${failure}`);
      }
    }
    if (Array.isArray(data)) {
      if (node.items !== undefined) for (const [i, item] of data.entries()) visit(node.items, item, `${path}[${i}]`);
      return;
    }
    if (!isRecord(data)) return;
    for (const [name, child] of Object.entries(node.properties ?? {})) visit(child, data[name], `${path}.${name}`);
    const values = node.additionalProperties;
    if (typeof values === 'object') for (const [key, value] of Object.entries(data)) visit(values, value, `${path}[${JSON.stringify(key)}]`);
  };
  visit(SPEC_SCHEMA, withDefaults(SPEC_SCHEMA, spec), 'spec');
  return outcome;
}

/** undefined when the rule holds, false when it does not, the error text when it cannot be evaluated. */
function evaluate(site: RuleSite, rule: CelValidation, self: unknown): false | string | undefined {
  try {
    let program = site.programs.get(rule);
    if (program === undefined) {
      program = site.env.parse(rule.rule);
      site.programs.set(rule, program);
    }
    const result: unknown = program({ self });
    if (typeof result !== 'boolean') return `returned ${String(result)}, not a bool`;
    return result ? undefined : false;
  } catch (error) {
    return error instanceof Error ? (error.message.split('\n')[0] ?? error.message) : String(error);
  }
}

function zodProblems(manifest: unknown): string[] {
  const checked = checkModelCanary(manifest);
  return checked.ok ? [] : checked.problems.map((p) => `${p.path}: ${p.message}`);
}

// ── The CRD under test ─────────────────────────────────────────────────────────────────

function generatedSpecSchema(): SchemaNode {
  const crd = modelCanaryCrd() as { spec: { versions: { schema: { openAPIV3Schema: SchemaNode } }[] } };
  const spec = crd.spec.versions[0]?.schema.openAPIV3Schema.properties?.spec;
  assert.ok(spec !== undefined, 'the generated CRD has no spec schema');
  return spec;
}

const SPEC_SCHEMA = generatedSpecSchema();
const SITES = ruleSites(SPEC_SCHEMA);
const ALL_RULES = [...SITES.values()].flatMap((site) => site.rules.map((rule) => ({ site, rule })));

// ── Manifests ──────────────────────────────────────────────────────────────────────────

/** Valid, with analysis.interval, analysis.steps and the query timeout left to their defaults. */
function baseManifest(): any {
  const manifest = istioManifest();
  manifest.spec.metricsProvider = { prometheus: { address: 'http://prometheus.istio-system:9090' } };
  return manifest;
}

/** Each version its own Service with a port, as Gateway API backendRefs need. */
function useGatewayApi(spec: any): void {
  spec.trafficRouting = { gatewayAPI: { httpRoute: 'fraud-detector' } };
  spec.stable.destination = { host: 'fraud-detector-v1', port: 8080 };
  spec.canary.destination = { host: 'fraud-detector-v2', port: 8080 };
}

function edited(edit: (spec: any) => void): any {
  const manifest = baseManifest();
  edit(manifest.spec);
  return manifest;
}

interface InvalidCase {
  name: string;
  edit: (spec: any) => void;
  /** Text of the CEL failure, `path: message`. */
  cel: string;
  /** Text of the problem `modelcanary validate` reports, `path: message`. */
  zod: string;
}

const invalidCases: InvalidCase[] = [
  {
    name: 'canary version equal to stable',
    edit: (s) => (s.canary.version = 'v1'),
    cel: 'spec.canary.version: must differ from stable.version',
    zod: 'spec.canary.version: must differ from stable.version',
  },
  {
    name: 'same host and subset under Istio',
    edit: (s) => (s.canary.destination.subset = 'v1'),
    cel: 'spec.canary.destination: must differ from stable.destination',
    zod: 'spec.canary.destination: must differ from stable.destination',
  },
  {
    name: 'same host and no subsets under Istio',
    edit: (s) => {
      delete s.stable.destination.subset;
      delete s.canary.destination.subset;
    },
    cel: 'spec.canary.destination: must differ from stable.destination',
    zod: 'spec.canary.destination: must differ from stable.destination',
  },
  {
    name: 'both istio and gatewayAPI',
    edit: (s) => (s.trafficRouting.gatewayAPI = { httpRoute: 'fraud-detector' }),
    cel: 'spec.trafficRouting: set exactly one of istio and gatewayAPI',
    zod: 'spec.trafficRouting: set exactly one of istio and gatewayAPI',
  },
  {
    name: 'neither istio nor gatewayAPI',
    edit: (s) => (s.trafficRouting = {}),
    cel: 'spec.trafficRouting: set exactly one of istio and gatewayAPI',
    zod: 'spec.trafficRouting: set exactly one of istio and gatewayAPI',
  },
  {
    name: 'gatewayAPI with a subset',
    edit: (s) => {
      useGatewayApi(s);
      s.canary.destination.subset = 'v2';
    },
    cel: 'spec.canary.destination.subset: subset is for Istio',
    zod: 'spec.canary.destination.subset: subset is for Istio',
  },
  {
    name: 'gatewayAPI without a port',
    edit: (s) => {
      useGatewayApi(s);
      delete s.stable.destination.port;
    },
    cel: 'spec.stable.destination.port: port is required with gatewayAPI',
    zod: 'spec.stable.destination.port: port is required with gatewayAPI',
  },
  {
    name: 'gatewayAPI with ruleName and ruleIndex',
    edit: (s) => {
      useGatewayApi(s);
      Object.assign(s.trafficRouting.gatewayAPI, { ruleName: 'predict', ruleIndex: 0 });
    },
    cel: 'spec.trafficRouting.gatewayAPI.ruleIndex: set at most one of ruleName and ruleIndex',
    zod: 'spec.trafficRouting.gatewayAPI.ruleIndex: set at most one of ruleName and ruleIndex',
  },
  {
    // isSorted() allows equal neighbours: x-kubernetes-list-type set refuses duplicates before CEL runs.
    name: 'steps not increasing',
    edit: (s) => (s.analysis.steps = [30, 10, 100]),
    cel: 'spec.analysis.steps: must be strictly increasing',
    zod: 'spec.analysis.steps[1]: must be greater than the step before it (30)',
  },
  {
    name: 'steps not ending at 100',
    edit: (s) => (s.analysis.steps = [10, 30, 90]),
    cel: 'spec.analysis.steps: must end at 100',
    zod: 'spec.analysis.steps: must end at 100',
  },
  {
    name: 'latency without maxMs or maxRatioToStable',
    edit: (s) => delete s.analysis.metrics[1].maxMs,
    cel: 'spec.analysis.metrics[1]: latency metrics need maxMs, maxRatioToStable or both',
    zod: 'spec.analysis.metrics[1]: latency metrics need maxMs, maxRatioToStable or both',
  },
  {
    name: 'latency with a query',
    edit: (s) => (s.analysis.metrics[1].query = 'up'),
    cel: 'spec.analysis.metrics[1]: latency metrics take only name, type, quantile, maxMs, maxRatioToStable',
    zod: 'spec.analysis.metrics[1].query: unknown field',
  },
  {
    name: 'latency without a quantile',
    edit: (s) => delete s.analysis.metrics[1].quantile,
    cel: 'spec.analysis.metrics[1]: latency metrics need quantile',
    zod: 'spec.analysis.metrics[1].quantile: is required',
  },
  {
    name: 'latency maxRatioToStable below 1',
    edit: (s) => (s.analysis.metrics[1].maxRatioToStable = 0.9),
    cel: 'spec.analysis.metrics[1].maxRatioToStable: latency: maxRatioToStable must be at least 1 and at most 1000',
    zod: 'spec.analysis.metrics[1].maxRatioToStable: must be at least 1',
  },
  {
    name: 'errorRate with a quantile',
    edit: (s) => (s.analysis.metrics[0].quantile = 0.99),
    cel: 'spec.analysis.metrics[0]: errorRate metrics take only name, type, max',
    zod: 'spec.analysis.metrics[0].quantile: unknown field',
  },
  {
    name: 'errorRate without max',
    edit: (s) => delete s.analysis.metrics[0].max,
    cel: 'spec.analysis.metrics[0]: errorRate metrics need max',
    zod: 'spec.analysis.metrics[0].max: is required',
  },
  {
    name: 'errorRate max 1.5',
    edit: (s) => (s.analysis.metrics[0].max = 1.5),
    cel: 'spec.analysis.metrics[0].max: errorRate: max must be at least 0 and at most 1',
    zod: 'spec.analysis.metrics[0].max: must be at most 1',
  },
  {
    // A whole number in YAML is still a CEL double under `type: number`.
    name: 'errorRate max 2, written as a whole number',
    edit: (s) => (s.analysis.metrics[0].max = 2),
    cel: 'spec.analysis.metrics[0].max: errorRate: max must be at least 0 and at most 1',
    zod: 'spec.analysis.metrics[0].max: must be at most 1',
  },
  {
    name: 'prometheus metric with no bounds',
    edit: (s) => delete s.analysis.metrics[2].max,
    cel: 'spec.analysis.metrics[2]: prometheus metrics need at least one of min, max, maxRatioToStable and minRatioToStable',
    zod: 'spec.analysis.metrics[2]: prometheus metrics need at least one of min, max, maxRatioToStable and minRatioToStable',
  },
  {
    name: 'prometheus min greater than max',
    edit: (s) => (s.analysis.metrics[2].min = 3),
    cel: 'spec.analysis.metrics[2].min: min must not be greater than max',
    zod: 'spec.analysis.metrics[2].min: min must not be greater than max',
  },
  {
    name: 'prometheus metric with a quantile',
    edit: (s) => (s.analysis.metrics[2].quantile = 0.5),
    cel: 'spec.analysis.metrics[2]: prometheus metrics take only',
    zod: 'spec.analysis.metrics[2].quantile: unknown field',
  },
  {
    name: 'prometheus maxRatioToStable of 0',
    edit: (s) => (s.analysis.metrics[2].maxRatioToStable = 0),
    cel: 'spec.analysis.metrics[2].maxRatioToStable: prometheus: maxRatioToStable must be greater than 0 and at most 1000',
    zod: 'spec.analysis.metrics[2].maxRatioToStable: must be greater than 0',
  },
  {
    name: 'prometheus query with an unknown template variable',
    edit: (s) => (s.analysis.metrics[2].query = 'vllm_ttft{model="{{ modle }}"}'),
    cel: 'spec.analysis.metrics[2].query: must use only known template variables',
    zod: 'spec.analysis.metrics[2].query: unknown template variable "modle" (did you mean model?)',
  },
  {
    name: 'prometheus query with an unclosed placeholder',
    edit: (s) => (s.analysis.metrics[2].query = 'vllm_ttft{model="{{ model"}'),
    cel: 'spec.analysis.metrics[2].query: must use only known template variables',
    zod: 'spec.analysis.metrics[2].query: has a "{{" that does not open a template variable',
  },
  {
    name: 'prometheus query with a no-break space in a placeholder',
    edit: (s) => (s.analysis.metrics[2].query = 'vllm_ttft{model="{{\u00a0model }}"}'),
    cel: 'spec.analysis.metrics[2].query: must use only known template variables',
    zod: 'spec.analysis.metrics[2].query: unknown template variable',
  },
  {
    name: 'watchInterval longer than the interval',
    edit: (s) => (s.analysis.watchInterval = '45s'),
    cel: 'spec.analysis.watchInterval: must not be longer than interval',
    zod: 'spec.analysis.watchInterval: must not be longer than interval',
  },
  {
    name: 'interval 2h',
    edit: (s) => (s.analysis.interval = '2h'),
    cel: 'spec.analysis.interval: must be between 1s and 1h',
    zod: 'spec.analysis.interval: must be between 1s and 1h',
  },
  {
    name: 'metric window 25h',
    edit: (s) => (s.analysis.metrics[2].window = '25h'),
    cel: 'spec.analysis.metrics[2].window: must be between 1s and 24h',
    zod: 'spec.analysis.metrics[2].window: must be between 1s and 24h',
  },
  {
    name: 'query timeout 50ms',
    edit: (s) => (s.metricsProvider.prometheus.timeout = '50ms'),
    cel: 'spec.metricsProvider.prometheus.timeout: must be between 100ms and 5m',
    zod: 'spec.metricsProvider.prometheus.timeout: must be between 100ms and 5m',
  },
  {
    name: 'Prometheus address with credentials',
    edit: (s) => (s.metricsProvider.prometheus.address = 'http://u:p@host'),
    cel: 'spec.metricsProvider.prometheus.address: must not hold credentials',
    zod: 'spec.metricsProvider.prometheus.address: must not hold credentials',
  },
  {
    name: 'empty metricLabels',
    edit: (s) => (s.canary.metricLabels = {}),
    cel: 'spec.canary.metricLabels: must hold at least one entry, or be left out',
    zod: 'spec.canary.metricLabels: must hold at least one entry, or be left out',
  },
  {
    name: 'empty Prometheus headers',
    edit: (s) => (s.metricsProvider.prometheus.headers = {}),
    cel: 'spec.metricsProvider.prometheus.headers: must hold at least one entry, or be left out',
    zod: 'spec.metricsProvider.prometheus.headers: must hold at least one entry, or be left out',
  },
];

const validEdits: { name: string; edit: (spec: any) => void }[] = [
  { name: 'gatewayAPI with ports and no subsets', edit: useGatewayApi },
  {
    name: 'gatewayAPI with ruleIndex 0 and metric labels',
    edit: (s) => {
      useGatewayApi(s);
      s.trafficRouting.gatewayAPI.ruleIndex = 0;
      s.canary.metricLabels = { destination_workload: 'fraud-detector-v2' };
    },
  },
  { name: 'different hosts under Istio, one without a subset', edit: (s) => (s.canary.destination = { host: 'fraud-detector-v2' }) },
  {
    name: 'latency with only maxRatioToStable',
    edit: (s) => {
      delete s.analysis.metrics[1].maxMs;
      s.analysis.metrics[1].maxRatioToStable = 1.25;
    },
  },
  {
    name: 'errorRate max 1 and 0, written as whole numbers',
    edit: (s) => {
      s.analysis.metrics = [...s.analysis.metrics, { name: 'no-errors', type: 'errorRate', max: 0 }, { name: 'any-errors', type: 'errorRate', max: 1 }];
    },
  },
  {
    name: 'prometheus min equal to max',
    edit: (s) => {
      s.analysis.metrics[2].min = 2.5;
    },
  },
  {
    name: 'prometheus with only minRatioToStable',
    edit: (s) => {
      delete s.analysis.metrics[2].max;
      s.analysis.metrics[2].minRatioToStable = 0.95;
    },
  },
  {
    name: 'a query using every template variable, spaced or not',
    edit: (s) =>
      (s.analysis.metrics[2].query =
        'x{m="{{model}}",v="{{ version }}",n="{{ namespace }}",o="{{ name }}",s="{{ stableVersion }}",c="{{canaryVersion}}",{{ labels }}}[{{ window }}]'),
  },
  { name: 'two steps', edit: (s) => (s.analysis.steps = [50, 100]) },
  {
    name: 'interval and window at their bounds',
    edit: (s) => {
      s.analysis.interval = '1h';
      s.analysis.metrics[2].window = '1s';
    },
  },
  { name: 'timeouts written with several units', edit: (s) => (s.metricsProvider.prometheus.timeout = '4m59s999ms') },
  { name: 'an @ after the host is not a credential', edit: (s) => (s.metricsProvider.prometheus.address = 'http://prometheus:9090/api/@team') },
];

// ── Tests ──────────────────────────────────────────────────────────────────────────────

test('the evaluator has the Kubernetes CEL functions the rules use, with their meaning', () => {
  const env = kubernetesEnvironment();
  const cases: [string, boolean][] = [
    ["duration('1m30s') == duration('90s')", true],
    ["duration('500ms') < duration('1s')", true],
    ["duration('2h') <= duration('1h')", false],
    ['[10, 30, 30, 100].isSorted()', true],
    ['[30, 10, 100].isSorted()', false],
    ["['a', 'b'].isSorted()", true],
    ["'prometheus'.matches('meth')", true],
    ['[1, 2, 3].exists_one(x, x == 2)', true],
  ];
  for (const [expression, expected] of cases) assert.equal(env.evaluate(expression), expected, expression);
});

test('every CEL rule in the generated CRD compiles against the type of the field it is on', () => {
  assert.ok(ALL_RULES.length >= 20, `only ${ALL_RULES.length} rules found: is the schema walk missing some?`);
  const problems: string[] = [];
  for (const { site, rule } of ALL_RULES) {
    const checked = site.env.check(rule.rule);
    if (!checked.valid) {
      problems.push(`${site.path}: ${rule.rule}: ${checked.error?.message.split('\n')[0] ?? 'invalid'}`);
      continue;
    }
    if (checked.type !== 'bool') problems.push(`${site.path}: ${rule.rule}: returns ${String(checked.type)}, not bool`);
    for (const field of undeclaredFields(site, site.env.parse(rule.rule))) problems.push(`${site.path}: ${rule.rule}: ${field} is not a field of the schema`);
    if (rule.fieldPath !== undefined) {
      let schema: SchemaNode | undefined = site.node;
      for (const field of rule.fieldPath.split('.').slice(1)) schema = schema?.properties?.[field];
      if (schema === undefined) problems.push(`${site.path}: ${rule.rule}: fieldPath ${rule.fieldPath} is not a field of the schema`);
    }
  }
  assert.deepEqual(problems, []);
});

test('every ModelCanary in examples/ passes every CEL rule', () => {
  const examples = exampleManifests();
  assert.ok(examples.length >= 3, 'the examples hold at least three ModelCanaries');
  for (const { file, manifest } of examples) {
    assert.deepEqual(celCheck(manifest.spec).failures, [], file);
    assert.deepEqual(zodProblems(manifest), [], file);
  }
});

test('the examples and the base manifest reach every CEL rule', () => {
  const evaluated = new Set<CelValidation>();
  for (const spec of [...exampleManifests().map((e) => e.manifest.spec), baseManifest().spec]) {
    for (const rule of celCheck(spec).evaluated) evaluated.add(rule);
  }
  const unreached = ALL_RULES.filter(({ rule }) => !evaluated.has(rule)).map(({ site, rule }) => `${site.path}: ${rule.rule}`);
  assert.deepEqual(unreached, []);
});

test('defaults are filled in before the rules run, as the API server does', () => {
  const evaluated = celCheck(baseManifest().spec).evaluated;
  const reached = new Set(ALL_RULES.filter(({ rule }) => evaluated.has(rule)).map(({ site }) => site.path));
  for (const defaulted of ['spec.analysis.interval', 'spec.analysis.steps', 'spec.metricsProvider.prometheus.timeout']) {
    assert.ok(reached.has(defaulted), `the base manifest leaves ${defaulted} out; its default must be checked`);
  }
});

test('the base manifest is valid for both checkers', () => {
  const manifest = baseManifest();
  assert.deepEqual(celCheck(manifest.spec).failures, []);
  assert.deepEqual(zodProblems(manifest), []);
});

for (const c of invalidCases) {
  test(`CEL and validate both refuse: ${c.name}`, () => {
    const manifest = edited(c.edit);
    const cel = celCheck(manifest.spec).failures;
    assert.ok(
      cel.some((f) => f.startsWith(c.cel)),
      `expected a CEL failure starting "${c.cel}", got:\n  ${cel.join('\n  ') || '(none)'}`,
    );
    assert.deepEqual(
      cel.filter((f) => f.includes('evaluation error')),
      [],
      'a rule must fail cleanly, not with an evaluation error',
    );
    const zod = zodProblems(manifest);
    assert.ok(
      zod.some((p) => p.startsWith(c.zod)),
      `expected a validate problem starting "${c.zod}", got:\n  ${zod.join('\n  ') || '(none)'}`,
    );
  });
}

for (const c of validEdits) {
  test(`CEL and validate both accept: ${c.name}`, () => {
    const manifest = edited(c.edit);
    assert.deepEqual(celCheck(manifest.spec).failures, []);
    assert.deepEqual(zodProblems(manifest), []);
  });
}
