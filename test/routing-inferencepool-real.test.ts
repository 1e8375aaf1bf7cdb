// The router on a real etcd + kube-apiserver with the Gateway API and InferencePool v1 CRDs
// (npm run envtest): the example's two InferencePools and its HTTPRoute are created, the router
// writes each weight of a rollout through the Kubernetes API, and what the server stored is
// read back, so the real CRDs' validation and defaulting judge every write. Skipped, saying
// why, where the binaries are not built (`bash test/kube/build.sh`); on CI that fails.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { checkModelCanary } from '../src/api/validate.ts';
import { KubeObjectStore } from '../src/controller/kube-store.ts';
import { createRouter } from '../src/routing/router.ts';
import { CANARY_BACKEND_ANNOTATION, ORIGINAL_ROUTES_ANNOTATION, type Stage } from '../src/routing/plan.ts';
import { envtestMissing, kubeBinaries, startEnvtest, type Envtest } from './kube/envtest.ts';
import { ROOT } from './helpers/manifests.ts';

type Json = Record<string, any>;

const MISSING = envtestMissing();
const SKIP = MISSING !== undefined && process.env.CI !== 'true' ? MISSING : undefined;
const NS = 'llm';
const HTTP_ROUTES = { group: 'gateway.networking.k8s.io', version: 'v1', namespace: NS, plural: 'httproutes' };
const POOLS = { group: 'inference.networking.k8s.io', version: 'v1', namespace: NS, plural: 'inferencepools' };
const CANARIES = { group: 'modelcanary.io', version: 'v1alpha1', namespace: NS, plural: 'modelcanaries' };
const POOL = { group: 'inference.networking.k8s.io', kind: 'InferencePool' };

const example = parseAllDocuments(readFileSync(new URL('examples/chat-inferencepool.yaml', ROOT), 'utf8')).map((d) => d.toJS() as Json);
const ofKind = (kind: string): Json[] => example.filter((o) => o.kind === kind);

let envtest: Envtest;
let api: CustomObjectsApi;

/** The CRDs this test needs, out of the thirty the envtest would install: half the start-up time. */
function neededCrds(): V1CustomResourceDefinition[] {
  const files = [new URL('crds/modelcanary.yaml', ROOT), ...['gateway-api-gateway.networking.k8s.io_httproutes.yaml', 'inference-extension-inference.networking.k8s.io_inferencepools.yaml'].map((f) => join(kubeBinaries().dir, 'crds', f))];
  return files.flatMap((file) => parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as V1CustomResourceDefinition).filter((d) => (d as Json | null)?.kind === 'CustomResourceDefinition'));
}

async function installCrds(crds: V1CustomResourceDefinition[]): Promise<void> {
  const extensions = envtest.kubeConfig.makeApiClient(ApiextensionsV1Api);
  await Promise.all(crds.map((body) => extensions.createCustomResourceDefinition({ body })));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { items } = await extensions.listCustomResourceDefinition();
    const established = items.filter((crd) => crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') === true);
    if (established.length === crds.length) return;
    if (Date.now() > deadline) throw new Error(`CRDs not Established in 20 s: ${items.map((c) => c.metadata?.name ?? '?').join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

before(
  async () => {
    if (SKIP !== undefined) return;
    if (MISSING !== undefined) throw new Error(`CI=true and the envtest cannot run: ${MISSING}`);
    envtest = await startEnvtest({ installCrds: false });
    await installCrds(neededCrds());
    api = envtest.kubeConfig.makeApiClient(CustomObjectsApi);
    await envtest.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
  },
  { timeout: 90_000 },
);

after(async () => {
  if (SKIP === undefined) await envtest.stop();
});

async function storedRoute(): Promise<Json> {
  return (await api.getNamespacedCustomObject({ ...HTTP_ROUTES, name: 'chat' })) as Json;
}

test('on the real API server: the router writes every weight to an HTTPRoute of InferencePools, and the server keeps the rest', { skip: SKIP, timeout: 30_000 }, async () => {
  const [canaryManifest] = ofKind('ModelCanary');
  const [httpRoute] = ofKind('HTTPRoute');
  const pools = ofKind('InferencePool');
  assert.ok(canaryManifest !== undefined && httpRoute !== undefined && pools.length === 2);
  for (const pool of pools) await api.createNamespacedCustomObject({ ...POOLS, body: pool });
  const served = (await api.listNamespacedCustomObject(POOLS)) as { items: Json[] };
  assert.deepEqual(served.items.map((p) => [p.apiVersion, p.metadata.name]).sort(), [['inference.networking.k8s.io/v1', 'chat-pool-v1'], ['inference.networking.k8s.io/v1', 'chat-pool-v2']]);
  // Our CRD's rules accept a ModelCanary whose versions are InferencePools.
  await api.createNamespacedCustomObject({ ...CANARIES, body: canaryManifest });
  await api.createNamespacedCustomObject({ ...HTTP_ROUTES, body: httpRoute });
  const original = await storedRoute();

  const checked = checkModelCanary(canaryManifest);
  assert.ok(checked.ok);
  const router = createRouter(checked.value, new KubeObjectStore(envtest.kubeConfig));
  const steps: { weight: number; stage: Stage }[] = [
    { weight: 10, stage: 'begin' },
    { weight: 30, stage: 'during' },
    { weight: 100, stage: 'during' },
    // Rolled back: all traffic to stable, the rollout over.
    { weight: 0, stage: 'end' },
  ];
  for (const step of steps) {
    const result = await router.apply({ weight: step.weight, pin: false, stage: step.stage });
    assert.ok(result.ok && result.written, JSON.stringify(result));
    const stored = await storedRoute();
    const rule = stored.spec.rules[0] as Json;
    assert.deepEqual(rule.backendRefs, [
      { ...POOL, name: 'chat-pool-v1', weight: 100 - step.weight },
      { ...POOL, name: 'chat-pool-v2', weight: step.weight },
    ]);
    assert.deepEqual({ ...rule, backendRefs: undefined }, { ...original.spec.rules[0], backendRefs: undefined }, 'the timeout and matches are kept');
    assert.equal(rule.timeouts.request, '120s');
    assert.deepEqual({ ...stored.spec, rules: undefined }, { ...original.spec, rules: undefined });
    const annotations = stored.metadata.annotations ?? {};
    assert.equal(annotations['modelcanary.io/owner'], 'chat');
    assert.equal(annotations[CANARY_BACKEND_ANNOTATION] === undefined, step.stage === 'end');
  }

  // A new rollout, then the ModelCanary deleted mid-way: the route is restored as it was.
  assert.ok((await router.apply({ weight: 30, pin: false, stage: 'begin' })).ok);
  assert.notEqual((await storedRoute()).metadata.annotations[ORIGINAL_ROUTES_ANNOTATION], undefined);
  const released = await router.release('restore');
  assert.ok(released.ok && released.written, JSON.stringify(released));
  const restored = await storedRoute();
  assert.deepEqual(restored.spec.rules[0].backendRefs, [{ ...POOL, name: 'chat-pool-v1', weight: 100 }]);
  assert.equal(restored.metadata.annotations?.['modelcanary.io/owner'], undefined);
});
