// `modelcanary demo --kubeconfig` against a real etcd + kube-apiserver (npm run envtest), as a
// user runs it: the real binary, its exit status and its summary, kubectl watching the routes,
// and what is left on the server afterwards. The mesh, the load and Prometheus (when installed)
// run on loopback beside it. Skipped, saying why, where the envtest binaries are not built; on
// CI that fails.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ApiException, CoreV1Api, CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import { envtestMissing, startEnvtest, type Envtest } from './kube/envtest.ts';
import { modelcanary } from './helpers/cli.ts';
import { canaryWeights, spawnDemo, watchRoutes } from './helpers/demo.ts';
import { ROOT } from './helpers/manifests.ts';

const MISSING = envtestMissing();
const SKIP = MISSING !== undefined && process.env.CI !== 'true' ? MISSING : undefined;

const KINDS = [
  { group: 'modelcanary.io', version: 'v1alpha1', plural: 'modelcanaries' },
  { group: 'networking.istio.io', version: 'v1', plural: 'virtualservices' },
  { group: 'networking.istio.io', version: 'v1', plural: 'destinationrules' },
];

/** A server with every CRD installed and one without any, started together to share the wait. */
const servers: { full?: Envtest; bare?: Envtest } = {};

before(async () => {
  if (SKIP !== undefined) return;
  const [full, bare] = await Promise.allSettled([startEnvtest(), startEnvtest({ installCrds: false })]);
  if (full.status === 'fulfilled') servers.full = full.value;
  if (bare.status === 'fulfilled') servers.bare = bare.value;
  if (full.status === 'rejected') throw full.reason;
  if (bare.status === 'rejected') throw bare.reason;
});

after(async () => {
  await Promise.all([servers.full?.stop(), servers.bare?.stop()]);
});

function server(which: 'full' | 'bare'): Envtest {
  const envtest = servers[which];
  if (envtest === undefined) throw new Error(`the ${which} envtest did not start`);
  return envtest;
}

/** Whether the server serves a kind yet: a CRD just created is served once Established. */
async function serves(envtest: Envtest, group: string, version: string, plural: string): Promise<boolean> {
  try {
    const resources = await envtest.kubeConfig.makeApiClient(CustomObjectsApi).getAPIResources({ group, version });
    return resources.resources.some((r) => r.name === plural);
  } catch (error) {
    if (error instanceof ApiException && error.code === 404) return false;
    throw error;
  }
}

/** A request retried while the server answers 429, as it does while a just-installed CRD's storage initializes. */
async function patiently<T>(request: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      return await request();
    } catch (error) {
      if (!(error instanceof ApiException && error.code === 429) || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/** The namespaces the demo made (it labels them), and whether each is being deleted. */
async function demoNamespaces(envtest: Envtest): Promise<{ name: string; deleting: boolean }[]> {
  const namespaces = await envtest.kubeConfig.makeApiClient(CoreV1Api).listNamespace({ labelSelector: 'app.kubernetes.io/created-by=modelcanary-demo' });
  return namespaces.items.map((n) => ({ name: n.metadata?.name ?? '', deleting: n.metadata?.deletionTimestamp !== undefined }));
}

/** What the demo could have left: any ModelCanary, VirtualService or DestinationRule, and any Event in its namespaces. */
async function demoObjects(envtest: Envtest): Promise<string[]> {
  const api = envtest.kubeConfig.makeApiClient(CustomObjectsApi);
  const core = envtest.kubeConfig.makeApiClient(CoreV1Api);
  const objects: string[] = [];
  for (const kind of KINDS) {
    const list = (await patiently(() => api.listCustomObjectForAllNamespaces({ group: kind.group, version: kind.version, resourcePlural: kind.plural }))) as { items: KubernetesObject[] };
    for (const item of list.items) objects.push(`${kind.plural} ${item.metadata?.namespace ?? ''}/${item.metadata?.name ?? ''}`);
  }
  for (const namespace of await demoNamespaces(envtest)) {
    const events = await core.listNamespacedEvent({ namespace: namespace.name });
    for (const event of events.items) objects.push(`event ${event.metadata.namespace ?? ''}/${event.metadata.name ?? ''}`);
  }
  return objects;
}

test('demo --kubeconfig on the real API server: one model promoted, one rolled back, kubectl describe a page a person reads, and nothing of it left behind', { skip: SKIP, timeout: 150_000 }, async () => {
  const cluster = server('full');
  const demo = spawnDemo(['--kubeconfig', cluster.kubeconfigFile, '--timeout', '100s', '--keep']);
  const namespace = (await demo.waitFor(/^ +namespace +(modelcanary-demo-\S+)/m, 'the namespace line', 60_000))[1] ?? '';
  // kubectl, on the real server, sees what the controller wrote in the demo's namespace.
  const routes = watchRoutes(cluster.kubeconfigFile, namespace);
  await demo.waitFor(/Ctrl-C stops it all/, 'the rollouts ending', 120_000);
  const kubectl = async (args: string[]): Promise<string> => (await promisify(execFile)('kubectl', ['--kubeconfig', cluster.kubeconfigFile, '-n', namespace, ...args])).stdout;
  const described = new Map<string, string>();
  for (const name of ['fraud-detector', 'recommender', 'sentiment']) described.set(name, await kubectl(['describe', 'mcan', name]));
  const wide = await kubectl(['get', 'mcan', '-o', 'wide']);
  demo.kill('SIGINT');
  const code = await demo.exited;
  routes.stop();
  const output = demo.output();
  assert.equal(code, 0, output);

  assert.match(output, /^ +Kubernetes API +https:\/\/127\.0\.0\.1:\d+ +\(context envtest of /m);
  assert.match(output, /^ +fraud-detector +Succeeded +as expected: v2 promoted/m, output);
  assert.match(output, /^ +recommender +RolledBack +as expected: v8 rolled back to v7/m, output);
  assert.match(output, /canary weights applied by the gateway: 10 % → 30 % → 100 %/);
  assert.match(output, /canary weights applied by the gateway: 10 % → 30 % → 0 %/);
  assert.match(output, /^All 3 rollouts ended as expected\.$/m);
  assert.deepEqual(canaryWeights(routes.lines(), 'fraud-detector'), [10, 30, 100], routes.lines().join('\n'));
  assert.deepEqual(canaryWeights(routes.lines(), 'recommender'), [10, 30, 0], routes.lines().join('\n'));

  // What a person reads: the step and the last decision as columns; describe with the spec as
  // written (no defaults filled in), the outcome without the machinery of a running rollout
  // (evidence, watch mark, check counters, conditions about its progress), and every metric of
  // the last check with its numbers and its bound, the rollback between checks too.
  assert.match(wide, /^NAME +MODEL +STABLE +CANARY +STEP +WEIGHT +PHASE +AGE +LAST CHECK +MESSAGE$/m, wide);
  assert.match(wide, /^fraud-detector +fraud-detector +v1 +v2 +3\/3 +100 +Succeeded +\S+ +promote /m, wide);
  assert.match(wide, /^recommender +recommender +v7 +v8 +2\/3 +0 +RolledBack +\S+ +rollback /m, wide);
  for (const [name, text] of described) {
    const lines = text.trimEnd().split('\n');
    assert.ok(lines.length <= 130, `${name}: ${lines.length} lines\n${text}`);
    assert.doesNotMatch(text, /<nil>/, `${name}\n${text}`);
    const spec = text.slice(text.indexOf('\nSpec:'), text.indexOf('\nStatus:'));
    assert.doesNotMatch(spec, /Checks Per Step:|Confidence:|Suspend:|On Delete:/, `${name}: the spec as written\n${spec}`);
    const status = text.slice(text.indexOf('\nStatus:'), text.indexOf('\nEvents:'));
    assert.doesNotMatch(status, /^ +-?[\d.]+(e[+-]?\d+)?$/m, `${name}: no array printed one number a line\n${status}`);
    assert.doesNotMatch(status, /Evidence:|Watch Mark:|Passed Checks:|Failed Checks:/, `${name}: ended, nothing kept for a running rollout\n${status}`);
    assert.deepEqual([...status.matchAll(/^ {4}Type: +(\S+)$/gm)].map((m) => m[1]), ['Valid', 'RoutingReady', 'Progressing', 'Promoted'], `${name}\n${status}`);
    const last = status.slice(status.indexOf('Last Analysis:'), status.indexOf('\n  Message:'));
    // kubectl describe prints each entry's fields in order, Bound first: one entry per chunk.
    const entries = last.split(/\n(?= {6}Bound:)/);
    for (const metric of name === 'sentiment' ? ['error-rate', 'p95', 'ejections'] : ['error-rate', 'p95']) {
      const entry = entries.find((e) => new RegExp(`^ +Name: +${metric}$`, 'm').test(e)) ?? '';
      for (const field of [/^ +Bound: +\S/m, /^ +Canary: +[\d.e+-]+$/m, /^ +Stable: +[\d.e+-]+$/m]) assert.match(entry, field, `${name}: ${metric}\n${last}`);
    }
  }

  assert.match(output, new RegExp(`^Deleted namespace ${namespace} and everything the demo made in it\\.$`, 'm'));
  assert.deepEqual(await demoObjects(cluster), []);
  // envtest runs no namespace controller, so a deleted namespace stays Terminating.
  assert.deepEqual(await demoNamespaces(cluster), [{ name: namespace, deleting: true }]);
});

test('demo --kubeconfig stopped by SIGTERM mid-rollout exits 1 and still deletes what it made', { skip: SKIP, timeout: 90_000 }, async () => {
  const cluster = server('full');
  const earlier = await demoNamespaces(cluster);
  const demo = spawnDemo(['--kubeconfig', cluster.kubeconfigFile]);
  await demo.waitFor(/recommender +10 % +Progressing +rollout started/, 'the rollouts starting', 60_000);
  demo.kill('SIGTERM');
  assert.equal(await demo.exited, 1, demo.output());
  assert.match(demo.output(), /^Interrupted: stopping everything\.$/m);
  assert.deepEqual(await demoObjects(cluster), [], demo.output());
  const namespaces = await demoNamespaces(cluster);
  assert.equal(namespaces.length, earlier.length + 1);
  // The controller restored stable and removed the finalizers itself.
  assert.doesNotMatch(demo.output(), /removing the finalizers itself/);
  assert.ok(namespaces.every((n) => n.deleting), JSON.stringify(namespaces));
});

test('demo --kubeconfig on a cluster without the CRDs names them and how to install them, and exits 2', { skip: SKIP, timeout: 60_000 }, async () => {
  const bare = server('bare');
  const run = await modelcanary(['demo', '--kubeconfig', bare.kubeconfigFile]);
  assert.equal(run.code, 2, run.stdout + run.stderr);
  for (const crd of ['modelcanaries.modelcanary.io', 'virtualservices.networking.istio.io', 'destinationrules.networking.istio.io']) assert.match(run.stderr, new RegExp(`^ +${crd.replaceAll('.', '\\.')} `, 'm'));
  assert.match(run.stderr, /^ +kubectl apply -f crds\/modelcanary\.yaml$/m);
  assert.match(run.stderr, /kubectl apply -f https:\/\/raw\.githubusercontent\.com\/istio\/api\/\S+\/kubernetes\/customresourcedefinitions\.gen\.yaml/);
  assert.match(run.stderr, /istioctl install/);
  assert.equal(run.stdout, '');

  // The command it printed installs ours; asked again, it names only Istio's.
  await promisify(execFile)('kubectl', ['--kubeconfig', bare.kubeconfigFile, 'apply', '-f', 'crds/modelcanary.yaml'], { cwd: fileURLToPath(ROOT) });
  const deadline = Date.now() + 30_000;
  while (!(await serves(bare, 'modelcanary.io', 'v1alpha1', 'modelcanaries'))) {
    assert.ok(Date.now() < deadline, 'the ModelCanary CRD was not served within 30 s');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const again = await modelcanary(['demo', '--kubeconfig', bare.kubeconfigFile]);
  assert.equal(again.code, 2, again.stderr);
  assert.doesNotMatch(again.stderr, /modelcanaries\.modelcanary\.io|crds\/modelcanary\.yaml/);
  assert.match(again.stderr, /virtualservices\.networking\.istio\.io/);
  assert.match(again.stderr, /destinationrules\.networking\.istio\.io/);
  assert.deepEqual(await demoNamespaces(bare), [], 'a refused run creates nothing');
});
