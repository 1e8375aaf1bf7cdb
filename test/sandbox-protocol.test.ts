// The sandbox's HTTP protocol, spoken directly: what client libraries other than client-node,
// and kubectl's less common paths, rely on.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startSandbox, type Sandbox } from '../src/sandbox/sandbox.ts';
import { istioManifest } from './helpers/manifests.ts';

let sandbox: Sandbox;

before(async () => {
  sandbox = await startSandbox({ namespaces: ['ml-serving'], bookmarkIntervalMs: 50 });
});
after(async () => {
  await sandbox.stop();
});

const MCANS = '/apis/modelcanary.io/v1alpha1/namespaces/ml-serving/modelcanaries';

async function call(path: string, init: { method?: string; body?: unknown; contentType?: string; accept?: string } = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = { Accept: init.accept ?? 'application/json' };
  if (init.body !== undefined) headers['Content-Type'] = init.contentType ?? 'application/json';
  const response = await fetch(`${sandbox.url}${path}`, {
    method: init.method ?? 'GET',
    headers,
    ...(init.body === undefined ? {} : { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) }),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, body, headers: response.headers };
}

function canary(name: string): Record<string, any> {
  const manifest = istioManifest();
  manifest.metadata = { name };
  return manifest;
}

test('discovery lists groups, preferred versions, and resources with short names, categories, verbs and subresources', async () => {
  const core = await call('/api');
  assert.deepEqual(core.body.versions, ['v1']);
  const groups = await call('/apis');
  const istio = groups.body.groups.find((g: any) => g.name === 'networking.istio.io');
  assert.equal(istio.preferredVersion.version, 'v1');
  assert.deepEqual(
    istio.versions.map((v: any) => v.version),
    ['v1', 'v1beta1', 'v1alpha3'],
  );
  const resources = await call('/apis/modelcanary.io/v1alpha1');
  assert.equal(resources.body.kind, 'APIResourceList');
  const mcan = resources.body.resources.find((r: any) => r.name === 'modelcanaries');
  assert.deepEqual(
    { namespaced: mcan.namespaced, kind: mcan.kind, shortNames: mcan.shortNames, categories: mcan.categories },
    { namespaced: true, kind: 'ModelCanary', shortNames: ['mcan'], categories: ['modelcanary'] },
  );
  assert.ok(['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'].every((v) => mcan.verbs.includes(v)));
  assert.ok(resources.body.resources.some((r: any) => r.name === 'modelcanaries/status'));
  const version = await call('/version');
  assert.equal(version.body.major, '1');

  const unknown = await call('/apis/example.com/v1/things');
  assert.equal(unknown.status, 404);
  assert.deepEqual([unknown.body.kind, unknown.body.status, unknown.body.reason, unknown.body.code], ['Status', 'Failure', 'NotFound', 404]);
});

test('a CRD posted to the API is served at once, and stops being served when it is deleted', async () => {
  const crd = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'widgets.example.com' },
    spec: {
      group: 'example.com',
      names: { kind: 'Widget', plural: 'widgets', singular: 'widget' },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', required: ['size'], properties: { size: { type: 'integer', minimum: 1 } } } } } },
        },
      ],
    },
  };
  const created = await call('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { method: 'POST', body: crd });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.status.conditions.find((c: any) => c.type === 'Established').status, 'True');
  const widgets = '/apis/example.com/v1/namespaces/ml-serving/widgets';
  const widget = await call(widgets, { method: 'POST', body: { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 0 } } });
  assert.equal(widget.status, 422);
  assert.match(widget.body.message, /spec\.size in body should be greater than or equal to 1/);
  assert.equal((await call(widgets, { method: 'POST', body: { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 2 } } })).status, 201);

  const table = await call(widgets, { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' });
  assert.deepEqual(
    table.body.columnDefinitions.map((c: any) => c.name),
    ['Name', 'Age'],
  );

  assert.equal((await call('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com', { method: 'DELETE' })).status, 200);
  assert.equal((await call(widgets)).status, 404);
  assert.equal((await call('/apis/example.com/v1')).status, 404);
});

test('Table: the CRD printer columns for ModelCanary, priority columns marked, and default columns for built-in kinds', async () => {
  await call(MCANS, { method: 'POST', body: canary('table-a') });
  const table = await call(MCANS, { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' });
  assert.equal(table.status, 200);
  assert.equal(table.body.kind, 'Table');
  assert.equal(table.body.apiVersion, 'meta.k8s.io/v1');
  assert.deepEqual(
    table.body.columnDefinitions.map((c: any) => [c.name, c.priority]),
    [
      ['Name', 0],
      ['Model', 0],
      ['Stable', 0],
      ['Canary', 0],
      ['Step', 0],
      ['Weight', 0],
      ['Phase', 0],
      ['Age', 0],
      ['Last Check', 1],
      ['Message', 1],
    ],
  );
  const row = table.body.rows.find((r: any) => r.cells[0] === 'table-a');
  assert.deepEqual(row.cells.slice(0, 7), ['table-a', 'fraud-detector', 'v1', 'v2', null, null, null]);
  assert.match(row.cells[7], /^\d+s$/);
  assert.equal(row.object.kind, 'PartialObjectMetadata');

  const namespaces = await call('/api/v1/namespaces', { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' });
  assert.deepEqual(
    namespaces.body.columnDefinitions.map((c: any) => c.name),
    ['Name', 'Status', 'Age'],
  );
  assert.deepEqual(
    namespaces.body.rows.map((r: any) => r.cells.slice(0, 2)),
    [
      ['default', 'Active'],
      ['kube-node-lease', 'Active'],
      ['kube-public', 'Active'],
      ['kube-system', 'Active'],
      ['ml-serving', 'Active'],
    ],
  );
});

test('patch formats: JSON patch with a failing test is 422, strategic merge on a custom resource is 415, on a ConfigMap it merges', async () => {
  await call(MCANS, { method: 'POST', body: canary('patch-a') });
  const failedTest = await call(`${MCANS}/patch-a`, {
    method: 'PATCH',
    contentType: 'application/json-patch+json',
    body: [
      { op: 'test', path: '/spec/model', value: 'other' },
      { op: 'replace', path: '/spec/model', value: 'x' },
    ],
  });
  assert.equal(failedTest.status, 422);
  const applied = await call(`${MCANS}/patch-a`, {
    method: 'PATCH',
    contentType: 'application/json-patch+json',
    body: [
      { op: 'test', path: '/spec/model', value: 'fraud-detector' },
      { op: 'add', path: '/spec/analysis/steps', value: [5, 50, 100] },
      { op: 'remove', path: '/spec/analysis/metrics/2' },
    ],
  });
  assert.equal(applied.status, 200, JSON.stringify(applied.body));
  assert.deepEqual(applied.body.spec.analysis.steps, [5, 50, 100]);
  assert.equal(applied.body.spec.analysis.metrics.length, 2);

  const strategic = await call(`${MCANS}/patch-a`, { method: 'PATCH', contentType: 'application/strategic-merge-patch+json', body: { spec: {} } });
  assert.equal(strategic.status, 415);

  const configMaps = '/api/v1/namespaces/ml-serving/configmaps';
  await call(configMaps, { method: 'POST', body: { metadata: { name: 'settings' }, data: { a: '1', b: '2' } } });
  const merged = await call(`${configMaps}/settings`, { method: 'PATCH', contentType: 'application/strategic-merge-patch+json', body: { data: { b: null, c: '3' } } });
  assert.deepEqual(merged.body.data, { a: '1', c: '3' });
  const list = await call(configMaps);
  assert.equal(list.body.kind, 'ConfigMapList');
  assert.equal(list.body.items[0].kind, undefined, 'items of built-in lists carry no kind, as from a real server');
});

test('unknown fields are dropped with a Warning header; a Secret turns stringData into base64 data', async () => {
  const body = canary('warned-a');
  body.spec.analysis.failureThresold = 2;
  const created = await call(MCANS, { method: 'POST', body });
  assert.equal(created.status, 201);
  assert.match(created.headers.get('warning') ?? '', /^299 - "unknown field \\"spec\.analysis\.failureThresold\\""$/);

  const secret = await call('/api/v1/namespaces/ml-serving/secrets', { method: 'POST', body: { metadata: { name: 'slack' }, stringData: { webhook: 'https://hooks.example/x' } } });
  assert.equal(secret.status, 201);
  assert.equal(secret.body.stringData, undefined);
  assert.equal(Buffer.from(secret.body.data.webhook, 'base64').toString('utf8'), 'https://hooks.example/x');
  assert.equal(secret.body.type, 'Opaque');
});

test('lists page with limit and continue', async () => {
  for (const name of ['page-a', 'page-b', 'page-c']) {
    await call('/api/v1/namespaces/ml-serving/configmaps', { method: 'POST', body: { metadata: { name, labels: { paged: 'yes' } } } });
  }
  const names: string[] = [];
  let token = '';
  for (let page = 0; page < 5; page++) {
    const list = await call(`/api/v1/namespaces/ml-serving/configmaps?labelSelector=paged%3Dyes&limit=2${token === '' ? '' : `&continue=${token}`}`);
    names.push(...list.body.items.map((i: any) => i.metadata.name));
    token = list.body.metadata.continue ?? '';
    if (token === '') break;
  }
  assert.deepEqual(names, ['page-a', 'page-b', 'page-c']);
});

test('a watch sends bookmarks when allowed, ends at timeoutSeconds, and a reset drop breaks the connection', async () => {
  const response = await fetch(`${sandbox.url}${MCANS}?watch=1&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion=0`);
  assert.equal(response.status, 200);
  const text = await response.text();
  const types = text
    .trim()
    .split('\n')
    .map((line) => (JSON.parse(line) as { type: string }).type);
  assert.ok(types.includes('ADDED'));
  assert.ok(types.includes('BOOKMARK'));

  const broken = fetch(`${sandbox.url}${MCANS}?watch=true`).then(async (r) => r.text());
  const deadline = Date.now() + 5000;
  while (sandbox.openWatches() === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(sandbox.faults.dropWatches('reset') >= 1);
  await assert.rejects(broken);
});
