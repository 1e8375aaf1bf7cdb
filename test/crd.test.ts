import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { crdYaml, withReference } from '../src/cli/crds.ts';
import type { SchemaNode } from '../src/api/crd.ts';
import { ROOT } from './helpers/manifests.ts';

const committed = readFileSync(new URL('crds/modelcanary.yaml', ROOT), 'utf8');
const crd = parse(committed);
const version = crd.spec.versions[0];
const schema: SchemaNode = version.schema.openAPIV3Schema;

test('the committed CRD is what the generator writes (run npm run crds after changing src/api)', () => {
  assert.equal(committed, crdYaml());
});

test("the README's reference is what the generator writes (run npm run crds after changing src/api)", () => {
  const readme = readFileSync(new URL('README.md', ROOT), 'utf8');
  assert.equal(readme, withReference(readme));
});

test('the CRD is a valid apiextensions.k8s.io/v1 CustomResourceDefinition', () => {
  assert.doesNotThrow(() => {
    new CustomResourceDefinition(crd).validate();
  });
});

test('the CRD names the resource as tools expect', () => {
  assert.equal(crd.metadata.name, 'modelcanaries.modelcanary.io');
  assert.equal(crd.spec.group, 'modelcanary.io');
  assert.deepEqual(
    { kind: crd.spec.names.kind, plural: crd.spec.names.plural, shortNames: crd.spec.names.shortNames },
    { kind: 'ModelCanary', plural: 'modelcanaries', shortNames: ['mcan'] },
  );
  assert.equal(crd.spec.scope, 'Namespaced');
  assert.equal(version.name, 'v1alpha1');
  assert.deepEqual(version.subresources, { status: {} });
  const columns: { name: string; jsonPath: string; priority?: number }[] = version.additionalPrinterColumns;
  assert.deepEqual(
    columns.filter((c) => c.priority === undefined).map((c) => [c.name, c.jsonPath]),
    [
      ['Model', '.spec.model'],
      ['Stable', '.spec.stable.version'],
      ['Canary', '.spec.canary.version'],
      ['Step', '.status.stepLabel'],
      ['Weight', '.status.canaryWeight'],
      ['Phase', '.status.phase'],
      ['Age', '.metadata.creationTimestamp'],
    ],
  );
  assert.deepEqual(
    columns.filter((c) => c.priority === 1).map((c) => [c.name, c.jsonPath]),
    [
      ['Last Check', '.status.lastAnalysis.decision'],
      ['Message', '.status.message'],
    ],
    'kubectl get -o wide adds what the last check decided, and why',
  );
});

/** Every node of a schema with its path. */
function* nodes(node: SchemaNode, path: string): Generator<[string, SchemaNode]> {
  yield [path, node];
  for (const [name, child] of Object.entries(node.properties ?? {})) yield* nodes(child, `${path}.${name}`);
  if (node.items !== undefined) yield* nodes(node.items, `${path}[]`);
  if (typeof node.additionalProperties === 'object') yield* nodes(node.additionalProperties, `${path}{}`);
}

test('the schema is structural: every node has a type and no junctors or additionalProperties:false', () => {
  for (const [path, node] of nodes(schema, '')) {
    assert.ok(typeof node.type === 'string', `${path} has no type`);
    for (const key of ['oneOf', 'anyOf', 'allOf', 'not', '$ref', 'const', 'propertyNames', '$schema']) assert.ok(!(key in node), `${path} has ${key}`);
    assert.ok(node.additionalProperties !== false, `${path} has additionalProperties: false`);
    assert.ok(!(node.properties !== undefined && node.additionalProperties !== undefined), `${path} has both properties and additionalProperties`);
    for (const key of Object.keys(node)) assert.ok(!key.startsWith('x-') || key.startsWith('x-kubernetes-'), `${path} has the unknown extension ${key}`);
  }
});

test('every spec and status field has a description', () => {
  for (const root of ['spec', 'status']) {
    const top = schema.properties?.[root];
    assert.ok(top !== undefined);
    for (const [path, node] of nodes(top, root)) {
      if (path.endsWith('[]') || path.endsWith('{}')) continue;
      assert.ok((node.description ?? '').length > 10, `${path} has no description`);
    }
  }
});

test('the CRD carries the CEL rules on steps, versions and routing', () => {
  const spec = schema.properties?.spec;
  const rules = (node: SchemaNode | undefined): string[] => (node?.['x-kubernetes-validations'] ?? []).map((r) => r.rule);
  const steps = spec?.properties?.analysis?.properties?.steps;
  assert.ok(steps?.items !== undefined);
  assert.ok(rules(steps).includes('self.isSorted()'));
  assert.equal(steps['x-kubernetes-list-type'], 'set', 'sorted plus set means strictly increasing');
  assert.equal(steps.items.minimum, 1);
  assert.equal(steps.items.maximum, 100);
  assert.ok(rules(steps).includes('self[size(self) - 1] == 100'));
  assert.ok(rules(spec).includes('self.stable.version != self.canary.version'));
  assert.ok(rules(spec?.properties?.trafficRouting).includes('has(self.istio) != has(self.gatewayAPI)'));
});
