// The controller on a real etcd + kube-apiserver (npm run envtest): our CRD with its CEL rules,
// pruning and defaulting, the real Istio CRDs, the real status subresource and resourceVersion
// preconditions, real watches. Faults (409s, dropped watches) come from a proxy in front of
// the real server. Metrics come from a Prometheus API fed by the test (the real Prometheus is
// in the demo test). Skipped, saying why, where the binaries are not built; on CI that fails.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { ModelCanary } from '../src/api/modelcanary.ts';
import { Controller } from '../src/controller/controller.ts';
import { KubeObjectStore } from '../src/controller/kube-store.ts';
import { KubeCanaryClient, KubeEventRecorder } from '../src/controller/kube-canaries.ts';
import { PrometheusClient } from '../src/metrics/prometheus-client.ts';
import { PrometheusMetricsProvider } from '../src/metrics/prometheus-provider.ts';
import { seeded } from '../src/analysis/random.ts';
import { envtestMissing, startEnvtest, type Envtest } from './kube/envtest.ts';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.ts';
import { FakePrometheus } from './helpers/fake-prometheus.ts';
import { FakeSlack } from './helpers/fake-slack.ts';
import { meshFor, modelCanary } from './helpers/fakes.ts';
import { until, weightHistory } from './helpers/sandbox.ts';
import { ROOT } from './helpers/manifests.ts';
import { startController } from '../src/cli/run.ts';
import { fileURLToPath } from 'node:url';
import pino from 'pino';

type Json = Record<string, any>;

const MISSING = envtestMissing();
const SKIP = MISSING !== undefined && process.env.CI !== 'true' ? MISSING : undefined;
const NS = 'ml-serving';
const MCAN = { group: 'modelcanary.io', version: 'v1alpha1', plural: 'modelcanaries', namespace: NS };
const ISTIO = { group: 'networking.istio.io', version: 'v1', namespace: NS };

let envtest: Envtest;
let proxy: FaultProxy;
let api: CustomObjectsApi;
const prometheus = new FakePrometheus();
const models = new Set<string>();
const failing = new Set<string>();
let stopLoad: () => void = () => undefined;

before(async () => {
  if (SKIP !== undefined) return;
  envtest = await startEnvtest();
  proxy = await startFaultProxy(envtest.server, envtest.caCert);
  api = envtest.kubeConfig.makeApiClient(CustomObjectsApi);
  await envtest.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
  await prometheus.start();
  stopLoad = prometheus.load(NS, models, failing);
});

after(async () => {
  if (SKIP !== undefined) return;
  stopLoad();
  await prometheus.stop();
  await proxy.stop();
  await envtest.stop();
});

/** The controller, talking to the real server through the fault proxy. */
function controller(): { controller: Controller } {
  const kubeConfig = proxy.kubeConfig(envtest.token);
  const provider = new PrometheusMetricsProvider(new PrometheusClient({ address: prometheus.url, timeoutMs: 2000, retries: 1, backoffMs: 50 }));
  const c = new Controller(
    {
      canaries: new KubeCanaryClient(kubeConfig),
      routes: new KubeObjectStore(kubeConfig),
      providerFor: (_canary: ModelCanary) => Promise.resolve(provider),
      events: new KubeEventRecorder(kubeConfig),
      log: { info: () => undefined, warn: () => undefined },
      now: () => new Date(),
    },
    { kubeConfig, namespaces: [NS], reconcileTimeoutMs: 10_000 },
  );
  return { controller: c };
}

async function createModel(name: string, analysis: Json = {}, edit: (body: Json) => void = () => undefined): Promise<string> {
  models.add(name);
  const mesh = meshFor(name);
  await api.createNamespacedCustomObject({ ...ISTIO, plural: 'virtualservices', body: mesh.virtualService });
  await api.createNamespacedCustomObject({ ...ISTIO, plural: 'destinationrules', body: mesh.destinationRule });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const body = modelCanary(name, { interval: '1s', minRequests: 20, ...analysis });
  edit(body);
  const created = (await api.createNamespacedCustomObject({ ...MCAN, body })) as Json;
  return String(created.metadata.resourceVersion);
}

async function status(name: string): Promise<Json> {
  return ((await api.getNamespacedCustomObject({ ...MCAN, name })) as Json).status ?? {};
}

async function route(name: string): Promise<Json> {
  return (await api.getNamespacedCustomObject({ ...ISTIO, plural: 'virtualservices', name })) as Json;
}

async function weights(name: string): Promise<number[]> {
  return ((await route(name)).spec.http[0].route as Json[]).map((d) => d.weight ?? 100);
}

async function reasons(name: string): Promise<string[]> {
  const list = await envtest.kubeConfig.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` });
  return list.items.map((e) => e.reason ?? '');
}

test('on the real API server: a healthy canary promotes, a bad one rolls back, the route keeps what is not ours', { skip: SKIP }, async () => {
  const { controller: c } = controller();
  failing.add('real-bad');
  const from = await createModel('real-good', { steps: [10, 30, 100] });
  await createModel('real-bad');
  await c.start();
  try {
    await until('real-good succeeds', () => status('real-good'), (s) => s.phase === 'Succeeded', 60_000);
    await until('real-bad rolls back', () => status('real-bad'), (s) => s.phase === 'RolledBack', 60_000);
    await until('routes follow', async () => [await weights('real-good'), await weights('real-bad')], (w) => JSON.stringify(w) === '[[0,100],[100,0]]', 10_000);
    const good = await route('real-good');
    assert.equal(good.spec.http[0].timeout, '5s', 'the user\'s timeout is kept');
    assert.equal(good.metadata.annotations['modelcanary.io/owner'], 'real-good');
    assert.deepEqual(await weightHistory({ kubeConfig: proxy.kubeConfig(envtest.token) }, NS, 'real-good', from), [10, 30, 100]);
    assert.deepEqual(new Set(await reasons('real-good')), new Set(['RolloutStarted', 'StepAdvanced', 'Promoted']));
    assert.ok((await reasons('real-bad')).includes('RolledBack'));
  } finally {
    await c.stop();
  }
});

test('on the real API server: a new controller resumes mid-rollout, never a step back', { skip: SKIP }, async () => {
  const from = await createModel('real-resumed', { checksPerStep: 3, steps: [10, 30, 60, 100] });
  const first = controller();
  await first.controller.start();
  await until('reaches 30 %', () => status('real-resumed'), (s) => s.canaryWeight >= 30, 60_000);
  await first.controller.stop();
  const second = controller();
  await second.controller.start();
  try {
    await until('promotes', () => status('real-resumed'), (s) => s.phase === 'Succeeded', 60_000);
  } finally {
    await second.controller.stop();
  }
  assert.deepEqual(await weightHistory({ kubeConfig: proxy.kubeConfig(envtest.token) }, NS, 'real-resumed', from), [10, 30, 60, 100]);
});

test('on the real API server: an invalid spec the CRD cannot see is held with a condition, and the route is untouched', { skip: SKIP }, async () => {
  const { controller: c } = controller();
  await c.start();
  try {
    // Map keys are checked by zod only (a CEL rule over them has no cost bound the server accepts).
    await createModel('real-invalid', {}, (body) => (body.spec.canary.metricLabels = { 'not a label': 'x' }));
    const s = await until('held', () => status('real-invalid'), (x) => (x.conditions ?? []).some((k: Json) => k.type === 'Valid' && k.status === 'False'), 30_000);
    assert.equal(s.phase, 'Pending');
    assert.match(s.message, /spec\.canary\.metricLabels/);
    assert.deepEqual((await route('real-invalid')).spec.http[0].route, [{ destination: { host: 'real-invalid', subset: 'v1' } }]);
    assert.ok((await reasons('real-invalid')).includes('InvalidSpec'));
  } finally {
    await c.stop();
  }
});

test('on the real API server: deleting mid-rollout restores the route and lets the object go', { skip: SKIP }, async () => {
  const { controller: c } = controller();
  await c.start();
  try {
    await createModel('real-deleted', { checksPerStep: 50 });
    await until('at 10 %', () => weights('real-deleted'), (w) => w[1] === 10, 30_000);
    await api.deleteNamespacedCustomObject({ ...MCAN, name: 'real-deleted' });
    await until('gone', () => api.getNamespacedCustomObject({ ...MCAN, name: 'real-deleted' }).then(() => 'present', () => 'gone'), (x) => x === 'gone', 30_000);
    const restored = await route('real-deleted');
    assert.deepEqual(restored.spec.http[0].route, [{ destination: { host: 'real-deleted', subset: 'v1' } }]);
    assert.equal(restored.metadata.annotations, undefined);
  } finally {
    await c.stop();
  }
});

test('on the real API server behind a proxy failing half the writes with 409 and dropping watches: rollouts end right, steps only forward', { skip: SKIP }, async () => {
  failing.add('real-chaos-bad');
  const from = await createModel('real-chaos-good', { checksPerStep: 2, steps: [10, 30, 60, 100] });
  await createModel('real-chaos-bad', { checksPerStep: 2 });
  const { controller: c } = controller();
  const random = seeded(7);
  proxy.failShareOfWrites(0.5, () => random.next());
  proxy.dropWatchesEvery(2000);
  await c.start();
  try {
    await until('real-chaos-good succeeds', () => status('real-chaos-good'), (s) => s.phase === 'Succeeded', 90_000);
    await until('real-chaos-bad rolls back', () => status('real-chaos-bad'), (s) => s.phase === 'RolledBack', 90_000);
    // The route follows the status within a pass (a write lost to a 409 is retried): while the controller still runs.
    await until('routes follow', async () => [await weights('real-chaos-good'), await weights('real-chaos-bad')], (w) => JSON.stringify(w) === '[[0,100],[100,0]]', 30_000);
  } finally {
    proxy.reset();
    await c.stop();
  }
  assert.ok(proxy.failed() > 0, 'the proxy failed writes');
  assert.deepEqual(await weightHistory({ kubeConfig: proxy.kubeConfig(envtest.token) }, NS, 'real-chaos-good', from), [10, 30, 60, 100]);
});

// ── RBAC proven: the controller under deploy/'s ServiceAccount and rules, and nothing else ──

interface Rendered {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  rules?: Json[];
  [key: string]: unknown;
}

/** deploy/ rendered by the real kubectl kustomize: the objects the controller's permissions come from. */
async function renderedRbac(): Promise<Rendered[]> {
  const { execFileSync } = await import('node:child_process');
  const { parseAllDocuments } = await import('yaml');
  const text = execFileSync('kubectl', ['kustomize', fileURLToPath(new URL('deploy/', ROOT))], { encoding: 'utf8' });
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Rendered)
    .filter((o) => ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(o.kind))
    // The users' aggregate roles (deploy/aggregate-roles.yaml) grant the controller nothing.
    .filter((o) => !Object.keys(o.metadata.labels ?? {}).some((label) => label.startsWith('rbac.authorization.k8s.io/aggregate-to-')));
}

async function applyObjects(objects: readonly Rendered[]): Promise<void> {
  const { KubernetesObjectApi } = await import('@kubernetes/client-node');
  const client = KubernetesObjectApi.makeApiClient(envtest.kubeConfig);
  for (const object of objects) {
    try {
      await client.read(object);
      await client.replace(object);
    } catch {
      await client.create(object);
    }
  }
}

/** A token of the ServiceAccount modelcanary-system/modelcanary from the real TokenRequest API. */
async function serviceAccountToken(): Promise<string> {
  const core = envtest.kubeConfig.makeApiClient(CoreV1Api);
  const request = await core.createNamespacedServiceAccountToken({ name: 'modelcanary', namespace: 'modelcanary-system', body: { spec: { audiences: [], expirationSeconds: 3600 } } });
  return request.status?.token ?? '';
}

test('on the real API server, as the ServiceAccount bound exactly by deploy/: leader election, preflight, rollout, events, delete', { skip: SKIP }, async () => {
  await applyObjects(await renderedRbac());
  const token = await serviceAccountToken();
  assert.notEqual(token, '');
  const kubeConfig = proxy.kubeConfig(token);
  const logs: string[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
  const running = await startController({
    kubeConfig,
    namespaces: [],
    metricsAddr: '127.0.0.1:0',
    defaultPrometheus: prometheus.url,
    log,
    leaderElection: { namespace: 'modelcanary-system', identity: 'rbac-proof' },
  });
  try {
    const from = await createModel('real-rbac', { steps: [10, 100] });
    await until('real-rbac succeeds under the ServiceAccount', () => status('real-rbac'), (s) => s.phase === 'Succeeded', 60_000, () => logs.filter((l) => /"level":(40|50)/.test(l)).join('\n'));
    assert.deepEqual(await weightHistory({ kubeConfig: proxy.kubeConfig(envtest.token) }, NS, 'real-rbac', from), [10, 100]);
    assert.deepEqual(new Set(await reasons('real-rbac')), new Set(['RolloutStarted', 'Promoted']), 'events were created');
    await api.deleteNamespacedCustomObject({ ...MCAN, name: 'real-rbac' });
    await until('the finalizer is removed', () => api.getNamespacedCustomObject({ ...MCAN, name: 'real-rbac' }).then(() => 'present', () => 'gone'), (x) => x === 'gone', 30_000);
    assert.ok(!logs.some((l) => /forbidden/i.test(l)), logs.filter((l) => /forbidden/i.test(l)).join('\n'));
  } finally {
    await running.stop();
  }
});

test('on the real API server, without any one rule of deploy/\'s RBAC, the controller fails and says so', { skip: SKIP }, async () => {
  const rendered = await renderedRbac();
  const cases = rendered.flatMap((role) =>
    role.kind === 'ClusterRole' || role.kind === 'Role'
      ? (role.rules ?? []).map((rule, index) => ({ role, index, name: `${role.kind} ${role.metadata.name}: ${String(rule.apiGroups[0]) || 'core'}/${String(rule.resources[0])}` }))
      : [],
  );
  // Not exercised by this scenario, so not proven here: HTTPRoutes (an Istio model) and the
  // operator's credential Secrets (no named provider); both are exercised on the sandbox.
  const skipped = cases.filter((c) => /httproutes|secrets/.test(c.name)).map((c) => c.name);
  assert.deepEqual(skipped.length, 2, skipped.join(', '));
  await applyObjects(rendered);
  const token = await serviceAccountToken();
  try {
    for (const [n, c] of cases.filter((x) => !skipped.includes(x.name)).entries()) {
      const reduced = { ...c.role, rules: (c.role.rules ?? []).filter((_rule, i) => i !== c.index) };
      await applyObjects(rendered.map((o) => (o === c.role ? reduced : o)));
      const logs: string[] = [];
      const running = await startController({
        kubeConfig: proxy.kubeConfig(token),
        namespaces: [],
        metricsAddr: '127.0.0.1:0',
        defaultPrometheus: prometheus.url,
        log: pino({ level: 'info' }, { write: (line: string) => void logs.push(line) }),
        leaderElection: { namespace: 'modelcanary-system', identity: `rbac-without-${n}` },
      });
      const name = `rbac-without-${n}`;
      try {
        await createModel(name, { steps: [10, 100] });
        // The API server's own words name the resource: the failure is this rule's, not a leftover of the last case.
        const refused = new RegExp(`cannot [a-z]+ resource [\\\\"]+${String(c.role.rules?.[c.index]?.resources[0]).replace('/', '\\/')}[\\\\"]+`);
        await until(`${c.name}: removing it broke nothing, so it is not needed`, () => Promise.resolve(logs.filter((l) => refused.test(l)).length), (count) => count > 0, 30_000);
      } finally {
        await running.stop();
        const object = (await api.getNamespacedCustomObject({ ...MCAN, name }).catch(() => undefined)) as Json | undefined;
        if (object !== undefined) {
          object.metadata.finalizers = [];
          await api.replaceNamespacedCustomObject({ ...MCAN, name, body: object }).catch(() => undefined);
          await api.deleteNamespacedCustomObject({ ...MCAN, name }).catch(() => undefined);
        }
      }
    }
  } finally {
    await applyObjects(rendered);
  }
});

test('on the real API server: notifications through the operator\'s Secret and a team\'s consenting one, each once; an unconsented Secret is a condition, not a send', { skip: SKIP }, async () => {
  const core = envtest.kubeConfig.makeApiClient(CoreV1Api);
  const platform = new FakeSlack();
  const team = new FakeSlack();
  team.checkBlocks = false;
  await platform.start();
  await team.start();
  await core.createNamespace({ body: { metadata: { name: 'notify-ops' } } });
  const url = (value: string): Record<string, string> => ({ url: Buffer.from(value).toString('base64') });
  await core.createNamespacedSecret({ namespace: 'notify-ops', body: { metadata: { name: 'slack-platform' }, data: url(platform.url) } });
  await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'team-hook', labels: { 'modelcanary.io/credentials': 'true' } }, data: url(team.url) } });
  await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'deploy-hook' }, data: url(team.url) } });
  const running = await startController({
    kubeConfig: proxy.kubeConfig(envtest.token),
    namespaces: [NS],
    metricsAddr: '127.0.0.1:0',
    defaultPrometheus: prometheus.url,
    log: pino({ level: 'silent' }),
    notifications: {
      destinations: [{ name: 'platform', format: 'slack', url: { secret: { namespace: 'notify-ops', name: 'slack-platform' } }, least: 'info', isDefault: false }],
      allowedWebhooks: [new URL(team.url).origin],
      delivery: { paceMs: 50 },
    },
  });
  try {
    await createModel('real-notify', { steps: [10, 100] }, (body) => {
      body.spec.notifications = [{ destination: 'platform' }, { secretRef: { name: 'team-hook' }, format: 'webhook' }];
    });
    await createModel('real-unconsented', { steps: [10, 100] }, (body) => {
      body.spec.notifications = [{ secretRef: { name: 'deploy-hook' }, format: 'webhook' }];
    });
    await until('real-notify succeeds', () => status('real-notify'), (s) => s.phase === 'Succeeded', 60_000);
    await until('its notifications settle', () => status('real-notify'), (s) => s.outbox === undefined && s.conditions?.some((c: Json) => c.type === 'Notified'), 30_000);
    const notified = (await status('real-notify')).conditions.find((c: Json) => c.type === 'Notified');
    assert.equal(notified.status, 'True', notified.message);
    const headers = platform.accepted.map((r) => (r.body as { text: string }).text);
    assert.equal(headers.length, 2, headers.join('\n'));
    assert.match(headers[0] ?? '', /real-notify v2 canary started/);
    assert.match(headers[1] ?? '', /real-notify v2 promoted/);
    const bodies = team.accepted.map((r) => r.body as Json);
    assert.deepEqual(bodies.map((b) => [b.apiVersion, b.event, b.modelCanary.name]), [
      ['modelcanary.io/notification/v1', 'started', 'real-notify'],
      ['modelcanary.io/notification/v1', 'promoted', 'real-notify'],
    ]);
    assert.deepEqual(team.accepted.map((r) => r.headers['idempotency-key']), bodies.map((b) => b.id));

    await until('real-unconsented succeeds anyway', () => status('real-unconsented'), (s) => s.phase === 'Succeeded', 60_000);
    await until('and says why it told nobody', () => status('real-unconsented'), (s) => s.conditions?.find((c: Json) => c.type === 'Notified')?.status === 'False', 30_000);
    const refused = (await status('real-unconsented')).conditions.find((c: Json) => c.type === 'Notified');
    assert.match(refused.message, /Secret ml-serving\/deploy-hook is not labelled modelcanary.io\/credentials=true/);
    assert.ok(!team.accepted.some((r) => (r.body as Json).modelCanary.name === 'real-unconsented'), 'nothing was sent with a Secret that did not consent');
  } finally {
    await running.stop();
    await platform.stop();
    await team.stop();
  }
});
