// The simulated mesh: the gateway's routing decision as a table, then the running mesh routing
// real HTTP requests by VirtualServices it watches in the sandbox, and what its telemetry says.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from 'node:http';
import { KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';
import { chooseRoute, type MeshRequest } from '../src/sandbox/mesh/routes.ts';
import { planVirtualService } from '../src/routing/istio.ts';
import { checkModelCanary } from '../src/api/validate.ts';
import { istioManifest } from './helpers/manifests.ts';
import { startMesh, type RouteChange } from '../src/sandbox/mesh/mesh.ts';
import { startLoad } from '../src/sandbox/mesh/load.ts';
import { eventually, sandboxHarness } from './helpers/sandbox.ts';

const NS = 'ml-serving';

function virtualService(weights: [number, number], extra: object[] = []): KubernetesObject & Record<string, any> {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'fraud-detector', namespace: NS },
    spec: {
      hosts: ['fraud-detector'],
      http: [
        ...extra,
        {
          name: 'predict',
          match: [{ uri: { prefix: '/v1/' } }],
          route: [
            { destination: { host: 'fraud-detector', subset: 'v1' }, weight: weights[0] },
            { destination: { host: 'fraud-detector', subset: 'v2' }, weight: weights[1] },
          ],
        },
      ],
    },
  };
}

const destinationRule = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'DestinationRule',
  metadata: { name: 'fraud-detector', namespace: NS },
  spec: { host: 'fraud-detector', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] },
};

function req(partial: Partial<MeshRequest> = {}): MeshRequest {
  return { host: 'fraud-detector.ml-serving.svc.cluster.local', path: '/v1/models/fraud:predict', method: 'POST', headers: {}, ...partial };
}

test('the gateway picks routes as Istio does: host, match order, weights, subsets', () => {
  const pin = { name: 'pin', match: [{ headers: { 'x-model-version': { exact: 'v2' } } }], route: [{ destination: { host: 'fraud-detector', subset: 'v2' } }] };
  const vs = [virtualService([90, 10], [pin])];
  const rules = [destinationRule];
  const cases: { name: string; request: MeshRequest; random: number; expect: string }[] = [
    { name: 'a draw under 90 % goes to stable', request: req(), random: 0.5, expect: 'v1' },
    { name: 'a draw in the last 10 % goes to the canary', request: req(), random: 0.95, expect: 'v2' },
    { name: 'the pin header wins before the weights', request: req({ headers: { 'x-model-version': 'v2' } }), random: 0, expect: 'v2' },
    { name: 'a pin header for another version falls through to the weights', request: req({ headers: { 'x-model-version': 'v9' } }), random: 0, expect: 'v1' },
    { name: 'the namespace-qualified host matches the short name', request: req({ host: 'fraud-detector.ml-serving' }), random: 0, expect: 'v1' },
    { name: 'another namespace does not', request: req({ host: 'fraud-detector.other.svc.cluster.local' }), random: 0, expect: 'no VirtualService serves host' },
    { name: 'a path outside the prefix matches no route', request: req({ path: '/healthz' }), random: 0, expect: 'no http route' },
  ];
  for (const c of cases) {
    const choice = chooseRoute(vs, rules, c.request, () => c.random);
    const got = choice.kind === 'routed' ? (choice.destination.labels.version ?? '') : choice.reason;
    assert.ok(got.startsWith(c.expect), `${c.name}: got ${got}`);
  }
  const missingSubset = chooseRoute([virtualService([0, 100])], [], req(), () => 0);
  assert.deepEqual(missingSubset, { kind: 'noRoute', reason: 'no DestinationRule for fraud-detector.ml-serving.svc.cluster.local defines subset v2' });
});

test("the gateway honours the controller's own canary pin route", () => {
  const manifest = istioManifest();
  manifest.spec.trafficRouting.istio = { virtualService: 'fraud-detector', routes: ['predict'], pinHeader: { name: 'X-Model-Version' } };
  const checked = checkModelCanary(manifest);
  assert.ok(checked.ok);
  const plan = planVirtualService(virtualService([100, 0]), { spec: checked.value.spec, namespace: NS, name: 'fraud-detector' }, 10, true);
  assert.ok(plan.ok);
  const pick = (headers: Record<string, string>, draw: number): string => {
    const choice = chooseRoute([plan.object], [destinationRule], req({ headers }), () => draw);
    return choice.kind === 'routed' ? `${choice.route ?? ''}:${choice.destination.subset ?? ''}` : choice.reason;
  };
  assert.equal(pick({ 'x-model-version': 'v2' }, 0), 'predict-modelcanary-pin:v2', 'a request asking for the canary gets it');
  assert.equal(pick({}, 0), 'predict:v1', 'others are split by weight');
  assert.equal(pick({}, 0.95), 'predict:v2');
});

function post(url: string, host: string, headers: Record<string, string> = {}): Promise<{ status: number; version: string | undefined }> {
  return new Promise((resolve, reject) => {
    const r = request(`${url}/v1/models/fraud:predict`, { method: 'POST', headers: { ...headers, host } }, (res) => {
      res.resume();
      res.once('end', () => {
        resolve({ status: res.statusCode ?? 0, version: res.headers['x-model-version'] as string | undefined });
      });
    });
    r.once('error', reject);
    r.end('{}');
  });
}

test('the mesh routes real requests by the VirtualService it watches, and exports Istio metrics', async () => {
  const harness = await sandboxHarness({ namespaces: [NS] });
  const objects = KubernetesObjectApi.makeApiClient(harness.kubeConfig);
  await objects.create(virtualService([100, 0]));
  await objects.create(destinationRule);
  const mesh = await startMesh({
    kubeConfig: harness.kubeConfig,
    workloads: ['v1', 'v2'].map((version) => ({
      name: `fraud-detector-${version}`,
      namespace: NS,
      service: 'fraud-detector',
      labels: { app: 'fraud-detector', version },
      behaviour: { errorRate: 0, latencyMs: 2 },
    })),
  });
  const changes: RouteChange[] = [];
  mesh.onRouteChange((change) => changes.push(change));
  const host = 'fraud-detector.ml-serving.svc.cluster.local';
  try {
    for (let i = 0; i < 20; i++) assert.deepEqual(await post(mesh.ingressUrl, host), { status: 200, version: 'v1' });

    // The controller's kind of write: a merge patch of the weights.
    await objects.patch(virtualService([0, 100]), undefined, undefined, undefined, undefined, PatchStrategy.MergePatch);
    await eventually(() => changes.find((c) => c.routes.some((r) => r.destinations.some((d) => d.subset === 'v2' && d.weight === 100))), 'the gateway to see the new weights');
    mesh.workload('fraud-detector-v2').set({ errorRate: 1 });
    for (let i = 0; i < 10; i++) assert.deepEqual(await post(mesh.ingressUrl, host), { status: 500, version: 'v2' });
    assert.equal((await post(mesh.ingressUrl, 'nothing.ml-serving.svc.cluster.local')).status, 404);

    const text = await (await fetch(mesh.metricsUrl)).text();
    const count = (labels: string): number => {
      const line = text.split('\n').find((l) => l.startsWith('istio_requests_total{') && labels.split(',').every((m) => l.includes(m)));
      return line === undefined ? 0 : Number(line.split(' ').at(-1));
    };
    assert.equal(count('reporter="destination",destination_workload="fraud-detector-v1",destination_workload_namespace="ml-serving",response_code="200"'), 20);
    assert.equal(count('reporter="destination",destination_canonical_service="fraud-detector",destination_canonical_revision="v2",response_code="500"'), 10);
    assert.equal(count('reporter="source",destination_canonical_revision="v2",response_code="500"'), 10, 'the gateway reports each request too');
    assert.equal(count('reporter="source",destination_service="unknown",response_code="404",response_flags="NR"'), 1);
    const buckets = text.split('\n').filter((l) => l.startsWith('istio_request_duration_milliseconds_bucket{') && l.includes('destination_workload="fraud-detector-v1"') && l.includes('reporter="destination"'));
    assert.deepEqual(
      buckets.map((l) => /le="([^"]+)"/.exec(l)?.[1]),
      ['0.5', '1', '5', '10', '25', '50', '100', '250', '500', '1000', '2500', '5000', '10000', '30000', '60000', '300000', '600000', '1800000', '3600000', '+Inf'],
      "Istio's default buckets",
    );
    assert.equal(Number(buckets.at(-1)?.split(' ').at(-1)), 20);

    const load = startLoad({ url: mesh.ingressUrl, host, path: '/v1/models/fraud:predict', ratePerSecond: 200 });
    await eventually(() => ((load.stats().byVersion.v2?.failed ?? 0) >= 20 ? true : undefined), 'the load generator to send requests', 15_000);
    await load.stop();
    const stats = load.stats();
    assert.equal(stats.byVersion.v2?.ok ?? 0, 0);
    assert.equal(stats.sent, (stats.byVersion.v2?.failed ?? 0) + stats.unserved);
  } finally {
    await mesh.stop();
    await harness.stop();
  }
});

test('the gateway follows a VirtualService rewritten with kubectl, like any other client', async () => {
  const harness = await sandboxHarness({ namespaces: [NS] });
  const objects = KubernetesObjectApi.makeApiClient(harness.kubeConfig);
  await objects.create(destinationRule);
  const mesh = await startMesh({
    kubeConfig: harness.kubeConfig,
    workloads: ['v1', 'v2'].map((version) => ({ name: `fraud-detector-${version}`, namespace: NS, service: 'fraud-detector', labels: { app: 'fraud-detector', version }, behaviour: { errorRate: 0, latencyMs: 1 } })),
  });
  try {
    const host = 'fraud-detector.ml-serving.svc.cluster.local';
    assert.equal((await post(mesh.ingressUrl, host)).status, 404, 'no VirtualService yet');
    const applied = await harness.kubectl(['apply', '-f', '-'], JSON.stringify(virtualService([0, 100])));
    assert.equal(applied.code, 0, applied.stderr);
    await eventually(async () => ((await post(mesh.ingressUrl, host)).version === 'v2' ? true : undefined), 'requests to reach v2');
    const patched = await harness.kubectl(['-n', NS, 'patch', 'virtualservice', 'fraud-detector', '--type', 'json', '-p', '[{"op":"replace","path":"/spec/http/0/route/0/weight","value":100},{"op":"replace","path":"/spec/http/0/route/1/weight","value":0}]']);
    assert.equal(patched.code, 0, patched.stderr);
    await eventually(async () => ((await post(mesh.ingressUrl, host)).version === 'v1' ? true : undefined), 'requests to reach v1 again');
  } finally {
    await mesh.stop();
    await harness.stop();
  }
});
