// The sandbox through the real kubectl, as a user at a terminal would use it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse, parseAllDocuments } from 'yaml';
import { ROOT } from './helpers/manifests.ts';
import { sandboxHarness, type SandboxHarness } from './helpers/sandbox.ts';

const EXAMPLE = 'examples/fraud-detector-istio.yaml';

let harness: SandboxHarness;

before(async () => {
  harness = await sandboxHarness();
});
after(async () => {
  await harness.stop();
});

test('kubectl creates a namespace, applies the Istio example and lists the ModelCanary with its printer columns', async () => {
  const namespace = await harness.kubectl(['create', 'namespace', 'ml-serving']);
  assert.equal(namespace.code, 0, namespace.stderr);
  assert.match(namespace.stdout, /namespace\/ml-serving created/);

  const applied = await harness.kubectl(['apply', '-f', EXAMPLE]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /modelcanary\.modelcanary\.io\/fraud-detector created/);
  assert.match(applied.stdout, /virtualservice\.networking\.istio\.io\/fraud-detector created/);
  assert.match(applied.stdout, /destinationrule\.networking\.istio\.io\/fraud-detector created/);

  const listed = await harness.kubectl(['get', 'mcan', '-n', 'ml-serving']);
  assert.equal(listed.code, 0, listed.stderr);
  const [header, row, ...rest] = listed.stdout.trimEnd().split('\n');
  assert.deepEqual(header?.split(/\s+/), ['NAME', 'MODEL', 'STABLE', 'CANARY', 'STEP', 'WEIGHT', 'PHASE', 'AGE']);
  assert.match(row ?? '', /^fraud-detector\s+fraud-detector\s+v1\s+v2\s+\d+s$/);
  assert.deepEqual(rest, []);
});

test('kubectl get -o yaml returns what was applied, and a changed manifest is applied as a patch', async () => {
  const applied = parseAllDocuments(readFileSync(new URL(EXAMPLE, ROOT), 'utf8')).map((d) => d.toJS() as Record<string, any>);
  const virtualService = applied.find((d) => d.kind === 'VirtualService');
  const got = await harness.kubectl(['get', 'virtualservice', 'fraud-detector', '-n', 'ml-serving', '-o', 'yaml']);
  assert.equal(got.code, 0, got.stderr);
  const served = parse(got.stdout) as Record<string, any>;
  assert.equal(served.apiVersion, 'networking.istio.io/v1');
  assert.equal(served.kind, 'VirtualService');
  assert.deepEqual(served.spec, virtualService?.spec);
  assert.match(served.metadata.resourceVersion, /^\d+$/);

  const changed = readFileSync(new URL(EXAMPLE, ROOT), 'utf8').replace('attempts: 2', 'attempts: 4');
  const reapplied = await harness.kubectl(['apply', '-f', '-'], changed);
  assert.equal(reapplied.code, 0, reapplied.stderr);
  assert.match(reapplied.stdout, /virtualservice\.networking\.istio\.io\/fraud-detector configured/);
  assert.match(reapplied.stdout, /modelcanary\.modelcanary\.io\/fraud-detector unchanged/);
  const attempts = await harness.kubectl(['get', 'vs', 'fraud-detector', '-n', 'ml-serving', '-o', 'jsonpath={.spec.http[0].retries.attempts}']);
  assert.equal(attempts.stdout, '4');

  const status = await harness.kubectl(['patch', 'mcan', 'fraud-detector', '-n', 'ml-serving', '--subresource=status', '--type=merge', '-p', '{"status":{"phase":"Progressing","canaryWeight":30}}']);
  assert.equal(status.code, 0, status.stderr);
  const row = await harness.kubectl(['get', 'mcan', 'fraud-detector', '-n', 'ml-serving', '--no-headers']);
  assert.match(row.stdout, /^fraud-detector\s+fraud-detector\s+v1\s+v2\s+30\s+Progressing\s+\d+s$/m);
});

test('kubectl apply of a manifest with mistakes shows the server\'s errors by field', async () => {
  const unknownField = await harness.kubectl(['apply', '-f', 'examples/invalid/fraud-detector-mistakes.yaml', '--dry-run=server']);
  assert.notEqual(unknownField.code, 0);
  assert.match(unknownField.stderr, /strict decoding error: unknown field "spec\.analysis\.failureThresold"/);

  const manifest = readFileSync(new URL(EXAMPLE, ROOT), 'utf8').replace('name: fraud-detector\n  namespace', 'name: other\n  namespace').replace('steps: [10, 30, 100]', 'steps: [10, 300]');
  const invalid = await harness.kubectl(['apply', '-f', '-'], manifest);
  assert.notEqual(invalid.code, 0);
  assert.match(invalid.stderr, /The ModelCanary "other" is invalid: spec\.analysis\.steps\[1\]: Invalid value: 300: spec\.analysis\.steps\[1\] in body should be less than or equal to 100/);
});

test('kubectl delete removes the objects, and deleting the namespace empties it', async () => {
  const deleted = await harness.kubectl(['delete', 'virtualservice', 'fraud-detector', '-n', 'ml-serving']);
  assert.equal(deleted.code, 0, deleted.stderr);
  assert.match(deleted.stdout, /virtualservice\.networking\.istio\.io "fraud-detector" deleted/);
  const gone = await harness.kubectl(['get', 'vs', 'fraud-detector', '-n', 'ml-serving']);
  assert.notEqual(gone.code, 0);
  assert.match(gone.stderr, /NotFound.*virtualservices\.networking\.istio\.io "fraud-detector" not found/);

  const namespace = await harness.kubectl(['delete', 'namespace', 'ml-serving']);
  assert.equal(namespace.code, 0, namespace.stderr);
  const left = await harness.kubectl(['get', 'mcan,dr', '-A', '-o', 'name']);
  assert.equal(left.code, 0, left.stderr);
  assert.equal(left.stdout, '');
});
