// The controller end to end on the sandbox API server, with the real client-node: rollouts that
// promote and roll back, a restart in the middle, an invalid spec, and a delete that restores
// the route. Metrics come from a fake provider (the real Prometheus joins in the demo).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { addCounts, type Counts, type Sample } from '../src/api/observation.ts';
import type { ModelCanary } from '../src/api/modelcanary.ts';
import type { MetricsProvider, VersionSelector } from '../src/metrics/provider.ts';
import { fromBucketCounts, ISTIO_BUCKETS_MS } from '../src/analysis/histogram.ts';
import { Controller } from '../src/controller/controller.ts';
import { KubeObjectStore } from '../src/controller/kube-store.ts';
import { KubeCanaryClient, KubeEventRecorder } from '../src/controller/kube-canaries.ts';
import { sandboxHarness, until as poll, type SandboxHarness } from './helpers/sandbox.ts';
import { seeded } from '../src/analysis/random.ts';

type Json = Record<string, any>;

/** Healthy versions answer 0.1 % 5xx; a canary listed in `failing` answers 20 %. Each look sees 2000 new requests. */
class FakeProvider implements MetricsProvider {
  readonly failing = new Set<string>();
  /** Canaries whose counts are impossible (negative errors), as from a broken provider. */
  readonly impossible = new Set<string>();
  private readonly cumulative = new Map<string, Counts>();

  private look(s: VersionSelector): Counts {
    const name = s.key.split('/')[1] ?? '';
    const canary = s.key.endsWith('/canary');
    const requests = 2000;
    const perBucket = [...ISTIO_BUCKETS_MS, Infinity].map((b) => (b === 100 ? requests : 0));
    const errors = canary && this.impossible.has(name) ? -5 : canary && this.failing.has(name) ? 400 : 2;
    return { requests, errors, latency: fromBucketCounts(ISTIO_BUCKETS_MS, perBucket) };
  }

  counts(selectors: readonly VersionSelector[]): Promise<Map<string, Sample>> {
    return Promise.resolve(new Map(selectors.map((s) => [s.key, { kind: 'counts', counts: this.look(s) }])));
  }

  totals(selectors: readonly VersionSelector[]): Promise<Map<string, Sample>> {
    return Promise.resolve(
      new Map(
        selectors.map((s) => {
          const before = this.cumulative.get(s.key);
          const now = before === undefined ? this.look(s) : addCounts(before, this.look(s));
          this.cumulative.set(s.key, now);
          return [s.key, { kind: 'counts', counts: now }];
        }),
      ),
    );
  }

  value(): Promise<Sample> {
    return Promise.resolve({ kind: 'noData', reason: 'not used' });
  }
}

const NS = 'ml-serving';
const MCAN = { group: 'modelcanary.io', version: 'v1alpha1', plural: 'modelcanaries', namespace: NS };
const VS = { group: 'networking.istio.io', version: 'v1', plural: 'virtualservices', namespace: NS };

let harness: SandboxHarness;
let api: CustomObjectsApi;
const provider = new FakeProvider();
const errors: string[] = [];
/** Passes that lost the race for a write and were decided again. */
let redecided = 0;

function controller(): Controller {
  const store = new KubeObjectStore(harness.kubeConfig);
  return new Controller(
    {
      canaries: new KubeCanaryClient(harness.kubeConfig),
      routes: store,
      providerFor: (_canary: ModelCanary) => Promise.resolve(provider),
      events: new KubeEventRecorder(harness.kubeConfig),
      log: {
        info: (_fields: object, message: string) => {
          if (message.includes('deciding again')) redecided++;
        },
        warn: () => undefined,
      },
      now: () => new Date(),
    },
    { kubeConfig: harness.kubeConfig, namespaces: [NS], reconcileTimeoutMs: 5000, onError: (key, error) => errors.push(`${key}: ${String(error).slice(0, 120)}`) },
  );
}

before(async () => {
  harness = await sandboxHarness({ namespaces: [NS] });
  api = harness.kubeConfig.makeApiClient(CustomObjectsApi);
});
after(() => harness.stop());

async function createPair(name: string, analysis: Json = {}, canaryVersion = 'v2'): Promise<void> {
  await api.createNamespacedCustomObject({
    ...VS,
    body: {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name },
      spec: { hosts: [name], http: [{ name: 'predict', route: [{ destination: { host: name, subset: 'v1' } }], timeout: '5s' }] },
    },
  });
  await api.createNamespacedCustomObject({
    ...VS,
    plural: 'destinationrules',
    body: {
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: { name },
      spec: { host: name, subsets: ['v1', canaryVersion].map((v) => ({ name: v, labels: { version: v } })) },
    },
  });
  await api.createNamespacedCustomObject({
    ...MCAN,
    body: {
      apiVersion: 'modelcanary.io/v1alpha1',
      kind: 'ModelCanary',
      metadata: { name },
      spec: {
        model: name,
        stable: { version: 'v1', destination: { host: name, subset: 'v1' } },
        canary: { version: canaryVersion, destination: { host: name, subset: canaryVersion } },
        trafficRouting: { istio: { virtualService: name } },
        analysis: { interval: '1s', steps: [10, 30, 100], metrics: [{ name: 'error-rate', type: 'errorRate', max: 0.01 }], ...analysis },
      },
    },
  });
}

async function weights(name: string): Promise<number[]> {
  const vs = (await api.getNamespacedCustomObject({ ...VS, name })) as Json;
  return (vs.spec.http as Json[]).find((r) => r.name === 'predict')?.route.map((d: Json) => d.weight ?? 100);
}

async function status(name: string): Promise<Json> {
  return ((await api.getNamespacedCustomObject({ ...MCAN, name })) as Json).status ?? {};
}

/** Polls until `accept` holds, bounded; no timing assert. */
function until<T>(what: string, read: () => Promise<T>, accept: (value: T) => boolean, ms = 30_000): Promise<T> {
  return poll(what, read, accept, ms, () => `(errors: ${errors.join('; ')})`);
}

/** The route follows the status within a pass (status is written first): wait for it, bounded. */
async function routeSettles(name: string, expected: number[]): Promise<void> {
  await until(`${name}: the route follows the status`, () => weights(name), (w) => JSON.stringify(w) === JSON.stringify(expected), 10_000);
}

async function reasons(name: string): Promise<string[]> {
  const core = harness.kubeConfig.makeApiClient(CoreV1Api);
  const list = await core.listNamespacedEvent({ namespace: NS });
  return list.items.filter((e) => e.involvedObject.name === name).map((e) => e.reason ?? '');
}

test('the controller\'s own status writes start no pass: a new rollout costs two (the finalizer, the start), then none until a check is due', async () => {
  const passes: string[] = [];
  const quiet = new Controller(
    {
      canaries: new KubeCanaryClient(harness.kubeConfig),
      routes: new KubeObjectStore(harness.kubeConfig),
      providerFor: (_canary: ModelCanary) => Promise.resolve(provider),
      events: new KubeEventRecorder(harness.kubeConfig),
      log: { info: () => undefined, warn: () => undefined },
      now: () => new Date(),
    },
    { kubeConfig: harness.kubeConfig, namespaces: [NS], reconcileTimeoutMs: 5000, onReconciled: (key) => passes.push(key) },
  );
  await quiet.start();
  try {
    await createPair('quiet', { interval: '5m', sequentialTest: { enabled: false } });
    await until('quiet starts', () => status('quiet'), (s) => s.phase === 'Progressing');
    await routeSettles('quiet', [90, 10]);
    // Long enough for an echo of each write to have come back and been handled.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    assert.deepEqual(passes.filter((k) => k === `${NS}/quiet`).length, 2, passes.join(', '));
    // A person's edit (here an annotation) still starts a pass at once.
    await api.patchNamespacedCustomObject({ ...MCAN, name: 'quiet', body: { metadata: { annotations: { note: 'x' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    await until('an edit starts a pass', () => Promise.resolve(passes.filter((k) => k === `${NS}/quiet`).length), (n) => n === 3, 10_000);
  } finally {
    await quiet.stop();
  }
});

test('a healthy canary goes 10 → 30 → 100 and ends Succeeded; a bad one ends RolledBack at 100/0', async () => {
  const c = controller();
  await c.start();
  try {
    provider.failing.add('bad-model');
    await createPair('good-model');
    await createPair('bad-model');
    const seen = new Set<string>();
    const good = await until('good-model succeeds', async () => {
      const s = await status('good-model');
      seen.add(String(s.canaryWeight));
      return s;
    }, (s) => s.phase === 'Succeeded');
    await routeSettles('good-model', [0, 100]);
    assert.ok(seen.has('30'), `weights seen: ${[...seen].join(', ')}`);
    assert.equal(good.canaryWeight, 100);
    assert.equal(good.conditions.find((x: Json) => x.type === 'Promoted')?.status, 'True');
    assert.match(good.lastAnalysis.reason, /all checks passed at 30 %: promoting/);

    const bad = await until('bad-model rolls back', () => status('bad-model'), (s) => s.phase === 'RolledBack');
    await routeSettles('bad-model', [100, 0]);
    assert.match(bad.message, /error-rate: .*canary 5xx ratio 20\.0 % is above max 1\.00 %.*between 18\.5 % and 21\.5 % at 95 %/);
    assert.deepEqual(new Set(await reasons('good-model')), new Set(['RolloutStarted', 'StepAdvanced', 'Promoted']));
    assert.ok((await reasons('bad-model')).includes('RolledBack'));
    // The route kept what the controller does not own.
    const vs = (await api.getNamespacedCustomObject({ ...VS, name: 'good-model' })) as Json;
    assert.equal(vs.spec.http[0].timeout, '5s');
  } finally {
    await c.stop();
  }
});

test('a new controller continues a rollout where the last one stopped, never back a step', async () => {
  const first = controller();
  await first.start();
  await createPair('resumed', { checksPerStep: 3 });
  await until('reaches 30 %', () => status('resumed'), (s) => s.canaryWeight === 30);
  await first.stop();
  const atStop = await status('resumed');
  const second = controller();
  await second.start();
  try {
    const weightsSeen: number[] = [];
    await until('resumed promotes', async () => {
      const s = await status('resumed');
      weightsSeen.push(s.canaryWeight);
      return s;
    }, (s) => s.phase === 'Succeeded');
    assert.ok(weightsSeen.every((w) => w >= 30), `went back a step: ${weightsSeen.join(', ')}`);
    assert.equal(atStop.currentStep, 1);
  } finally {
    await second.stop();
  }
});

test('an invalid spec gets a condition and an event, and the route is left alone', async () => {
  const c = controller();
  await c.start();
  try {
    // The CRD schema takes it (its CEL rules are the API server's, not the sandbox's); the controller must not.
    await createPair('broken', {}, 'v1');
    const s = await until('invalid condition', () => status('broken'), (x) => (x.conditions ?? []).some((k: Json) => k.type === 'Valid' && k.status === 'False'));
    assert.match(s.conditions.find((k: Json) => k.type === 'Valid').message, /spec\.canary\.version: must differ from stable\.version/);
    assert.ok((await reasons('broken')).includes('InvalidSpec'));
    assert.equal(s.phase, 'Pending', 'nothing moved: the rollout waits for a valid spec');
    const vs = (await api.getNamespacedCustomObject({ ...VS, name: 'broken' })) as Json;
    assert.deepEqual(vs.spec.http[0].route, [{ destination: { host: 'broken', subset: 'v1' } }], 'route untouched');
  } finally {
    await c.stop();
  }
});

test('a status the API server would refuse is never written: the route stays, the message and an event say why, and the rollout goes on after', async () => {
  const c = controller();
  await c.start();
  try {
    provider.impossible.add('wedged');
    await createPair('wedged');
    const held = await until('the refusal is reported', () => status('wedged'), (s) => /would refuse/.test(String(s.message)));
    assert.match(held.message, /status\.evidence\[0\]\.canaryEvents: .*the route stays at 10 %/);
    assert.ok((await reasons('wedged')).includes('StatusRefused'));
    assert.deepEqual(await weights('wedged'), [90, 10], 'the route did not move');
    assert.equal(held.canaryWeight, 10);

    provider.impossible.delete('wedged');
    await until('wedged promotes once the counts are sane', () => status('wedged'), (s) => s.phase === 'Succeeded');
    await routeSettles('wedged', [0, 100]);
  } finally {
    await c.stop();
  }
});

test('between checks the sequential test rolls a bad canary back without waiting for the check, and leaves a good one be', async () => {
  const c = controller();
  await c.start();
  try {
    // Checks every 5 minutes, watches every second: only a watch can act within this test.
    provider.failing.add('watched-bad');
    await createPair('watched-good', { interval: '5m', watchInterval: '1s' });
    await createPair('watched-bad', { interval: '5m', watchInterval: '1s' });
    const bad = await until('watched-bad rolls back', () => status('watched-bad'), (s) => s.phase === 'RolledBack');
    await routeSettles('watched-bad', [100, 0]);
    assert.match(bad.lastAnalysis.reason, /rolled back at once: error-rate: the sequential test finds the canary's 5xx rate above stable's/);
    assert.ok((await reasons('watched-bad')).includes('RolledBack'));

    const good = await until('watched-good has its first mark', () => status('watched-good'), (s) => s.watchMark !== undefined);
    assert.equal(good.phase, 'Progressing');
    assert.equal(good.canaryWeight, 10, 'no check is due yet: the weight stays');
    const version = async (): Promise<string> => ((await api.getNamespacedCustomObject({ ...MCAN, name: 'watched-good' })) as Json).metadata.resourceVersion;
    const before = await version();
    // Three more looks, each far from a rollback: none of them is written.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    assert.equal(await version(), before, 'healthy looks write nothing');
    assert.deepEqual(await weights('watched-good'), [90, 10]);
  } finally {
    await c.stop();
  }
});

test('deleting a ModelCanary restores the route as it was', async () => {
  const c = controller();
  await c.start();
  try {
    await createPair('deleted', { checksPerStep: 50 });
    await until('takes over at 10 %', () => weights('deleted'), (w) => w[1] === 10);
    await api.deleteNamespacedCustomObject({ ...MCAN, name: 'deleted' });
    await until('route restored', () => weights('deleted'), (w) => w.length === 1 && w[0] === 100);
    const vs = (await api.getNamespacedCustomObject({ ...VS, name: 'deleted' })) as Json;
    assert.deepEqual(vs.spec.http[0].route, [{ destination: { host: 'deleted', subset: 'v1' } }]);
    assert.equal(vs.metadata.annotations?.['modelcanary.io/original-routes'], undefined);
    await until('object gone', () => api.getNamespacedCustomObject({ ...MCAN, name: 'deleted' }).then(() => 'present', () => 'gone'), (x) => x === 'gone');
  } finally {
    await c.stop();
  }
});

test('with writes failing with 409 and watches dropped every few seconds, rollouts still end right', async () => {
  provider.failing.add('chaos-bad');
  // The test's own objects go in before the faults: the controller is what must cope.
  await createPair('chaos-good', { checksPerStep: 2 });
  await createPair('chaos-bad', { checksPerStep: 2 });
  const c = controller();
  await c.start();
  // Half of all writes (status, routes, events, finalizers) fail with 409, from a seeded draw.
  const random = seeded(3);
  harness.sandbox.faults.failShareOfWrites(0.5, 409, () => random.next());
  harness.sandbox.faults.dropWatchesEvery(2000);
  try {
    await until('chaos-good succeeds', () => status('chaos-good'), (s) => s.phase === 'Succeeded', 60_000);
    await until('chaos-bad rolls back', () => status('chaos-bad'), (s) => s.phase === 'RolledBack', 60_000);
    // The route follows the status within a pass: while the controller still runs.
    await routeSettles('chaos-good', [0, 100]);
    await routeSettles('chaos-bad', [100, 0]);
  } finally {
    harness.sandbox.faults.reset();
    await c.stop();
  }
  assert.ok(redecided > 0, 'conflicts were injected, and the passes that lost them decided again');
});

test('suspend pauses a rollout where it is; resuming carries on; kubectl shows the columns', async () => {
  const c = controller();
  await c.start();
  try {
    await createPair('paused', { checksPerStep: 2 });
    await until('reaches 30 %', () => status('paused'), (s) => s.canaryWeight === 30);
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    await api.patchNamespacedCustomObject({ ...MCAN, name: 'paused', body: { spec: { suspend: true } } }, merge);
    await until('paused', () => status('paused'), (s) => s.phase === 'Paused');
    const held = await status('paused');
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const still = await status('paused');
    assert.equal(still.phase, 'Paused');
    assert.equal(still.canaryWeight, held.canaryWeight, 'no step while paused');
    assert.deepEqual(await weights('paused'), [100 - Number(held.canaryWeight), Number(held.canaryWeight)]);
    const table = await harness.kubectl(['get', 'mcan', 'paused', '-n', NS]);
    assert.match(table.stdout, /^NAME\s+MODEL\s+STABLE\s+CANARY\s+STEP\s+WEIGHT\s+PHASE\s+AGE$/m);
    assert.match(table.stdout, /^paused\s+paused\s+v1\s+v2\s+\d\/3\s+\d+\s+Paused\s+\S+$/m);
    await api.patchNamespacedCustomObject({ ...MCAN, name: 'paused', body: { spec: { suspend: false } } }, merge);
    await until('resumes and promotes', () => status('paused'), (s) => s.phase === 'Succeeded');
  } finally {
    await c.stop();
  }
});
