// The CEL rules of the generated CRD, compiled and run by a real CEL implementation (cel-js)
// with the functions Kubernetes adds, the way the API server runs them: `self` typed from the
// schema, on the spec as written (the CRD declares no defaults), integers as int and numbers as double. The table of invalid
// edits checks that the API server and `modelcanary validate` refuse the same manifests.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Environment, type ParseResult } from '@marcbachmann/cel-js';
import { modelCanaryCrd, type CelValidation, type SchemaNode } from '../src/api/crd.ts';
import { checkModelCanary } from '../src/api/validate.ts';
import { exampleManifests } from './helpers/manifests.ts';
import { baseManifest, edited, invalidCases, validEdits } from './helpers/crd-cases.ts';

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
  visit(SPEC_SCHEMA, spec, 'spec');
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

test('the CRD declares no defaults, and the rules that need one name it: the API server stores the spec as written', () => {
  const defaults: string[] = [];
  const walk = (node: SchemaNode, path: string): void => {
    if (node.default !== undefined) defaults.push(path);
    for (const [name, child] of Object.entries(node.properties ?? {})) walk(child, `${path}.${name}`);
    if (node.items !== undefined) walk(node.items, `${path}[]`);
  };
  walk(SPEC_SCHEMA, 'spec');
  assert.deepEqual(defaults, []);
  assert.match(SPEC_SCHEMA.properties?.analysis?.properties?.interval?.description ?? '', /Default: 30s\./, 'kubectl explain shows the default');
  // The base manifest leaves interval, steps and the gates' weights out; the rules over them use the defaults.
  const absent = (spec: { analysis: Record<string, unknown> }): void => {
    assert.equal(spec.analysis.interval, undefined);
    assert.equal(spec.analysis.steps, undefined);
  };
  absent(baseManifest().spec);
  const failures = (edit: (spec: any) => void): string[] => celCheck(edited(edit).spec).failures;
  assert.deepEqual(failures((s) => (s.analysis.watchInterval = '30s')), [], 'watchInterval may equal the default interval');
  assert.deepEqual(failures((s) => (s.analysis.watchInterval = '31s')), ['spec.analysis.watchInterval: must not be longer than interval']);
  assert.deepEqual(failures((s) => (s.analysis.gates = [{ name: 'sre', approval: 'manual' }])), [], 'a gate guards 100 by default, one of the default steps');
  assert.deepEqual(failures((s) => (s.analysis.gates = [{ name: 'sre', approval: 'manual', before: [10, 30] }])), []);
  assert.deepEqual(failures((s) => (s.analysis.gates = [{ name: 'sre', approval: 'manual', before: [20] }])), ['spec.analysis: every weight a gate guards (gates[].before) must be one of steps']);
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
