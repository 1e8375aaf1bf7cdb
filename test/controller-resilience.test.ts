// The controller loop on the sandbox API server with the real client-node and the real
// Prometheus client, against a Prometheus that hangs, flaps and empties on cue: a watch event
// lost for good is healed by the resync; a check past its deadline is cancelled and never
// lands; and under 409s, dropped watches and a misbehaving Prometheus every rollout still
// ends right, its weights only ever moving forward through the steps.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CustomObjectsApi } from '@kubernetes/client-node';
import type { ModelCanary } from '../src/api/modelcanary.ts';
import { Controller, type ControllerOptions } from '../src/controller/controller.ts';
import { KubeObjectStore } from '../src/controller/kube-store.ts';
import { KubeCanaryClient, KubeEventRecorder } from '../src/controller/kube-canaries.ts';
import { PrometheusClient } from '../src/metrics/prometheus-client.ts';
import { PrometheusMetricsProvider } from '../src/metrics/prometheus-provider.ts';
import { seeded } from '../src/analysis/random.ts';
import { FakePrometheus } from './helpers/fake-prometheus.ts';
import { meshFor, modelCanary } from './helpers/fakes.ts';
import { sandboxHarness, until, weightHistory, type SandboxHarness } from './helpers/sandbox.ts';

type Json = Record<string, any>;

const NS = 'ml-serving';
const MCAN = { group: 'modelcanary.io', version: 'v1alpha1', plural: 'modelcanaries', namespace: NS };
const ISTIO = { group: 'networking.istio.io', version: 'v1', namespace: NS };

let harness: SandboxHarness;
let api: CustomObjectsApi;
const prometheus = new FakePrometheus();
const models = new Set<string>();
const failing = new Set<string>();
let stopLoad: () => void = () => undefined;

before(async () => {
  harness = await sandboxHarness({ namespaces: [NS], watchHistory: 100_000 });
  api = harness.kubeConfig.makeApiClient(CustomObjectsApi);
  await prometheus.start();
  stopLoad = prometheus.load(NS, models, failing);
});
after(async () => {
  stopLoad();
  await prometheus.stop();
  await harness.stop();
});

function controller(options: Partial<ControllerOptions> = {}, timeoutMs = 2000): { controller: Controller; errors: string[] } {
  const errors: string[] = [];
  const store = new KubeObjectStore(harness.kubeConfig);
  const provider = new PrometheusMetricsProvider(new PrometheusClient({ address: prometheus.url, timeoutMs, retries: 1, backoffMs: 50 }));
  const c = new Controller(
    {
      canaries: new KubeCanaryClient(harness.kubeConfig),
      routes: store,
      providerFor: (_canary: ModelCanary) => Promise.resolve(provider),
      events: new KubeEventRecorder(harness.kubeConfig),
      log: { info: () => undefined, warn: () => undefined },
      now: () => new Date(),
      metricsBudgetMs: 5000,
    },
    { kubeConfig: harness.kubeConfig, namespaces: [NS], onError: (key, error) => errors.push(`${key}: ${String(error)}`), ...options },
  );
  return { controller: c, errors };
}

async function createModel(name: string, analysis: Json = {}): Promise<string> {
  models.add(name);
  const mesh = meshFor(name);
  await api.createNamespacedCustomObject({ ...ISTIO, plural: 'virtualservices', body: mesh.virtualService });
  await api.createNamespacedCustomObject({ ...ISTIO, plural: 'destinationrules', body: mesh.destinationRule });
  // Stable must have served before traffic moves (the preflight): let the load reach it.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const created = (await api.createNamespacedCustomObject({ ...MCAN, body: modelCanary(name, { interval: '1s', minRequests: 20, ...analysis }) })) as Json;
  return String(created.metadata.resourceVersion);
}

async function status(name: string): Promise<Json> {
  return ((await api.getNamespacedCustomObject({ ...MCAN, name })) as Json).status ?? {};
}



test('a ModelCanary whose watch event was lost for good is found by the resync', async () => {
  const { controller: c } = controller({ resyncMs: 1000 });
  await c.start();
  try {
    harness.sandbox.faults.loseWatchEvents('ModelCanary', 1);
    await createModel('unseen');
    const s = await until('the resync reconciles it', () => status('unseen'), (x) => x.phase !== undefined, 15_000);
    assert.ok(['Progressing', 'Succeeded', 'Pending'].includes(s.phase), s.phase);
  } finally {
    await c.stop();
  }
});

test('a check that outlives its deadline is cancelled: its queries are abandoned, no retry runs beside it, and nothing stale lands', async () => {
  prometheus.latencyMs = 0;
  await createModel('hung', { steps: [10, 50, 100] });
  const { controller: c, errors } = controller({ reconcileTimeoutMs: 600 }, 10_000);
  await c.start();
  try {
    await until('started', () => status('hung'), (s) => s.phase === 'Progressing');
    // Prometheus now answers after 3 s: every check is cut at 0.6 s.
    prometheus.latencyMs = 3000;
    const pendingSeen: number[] = [];
    const deadline = Date.now() + 4000;
    while (Date.now() < deadline) {
      pendingSeen.push(prometheus.pendingFor.get('hung') ?? 0);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(errors.some((e) => /passed its deadline of 600 ms/.test(e)), errors.join('; '));
    assert.ok(prometheus.abandoned > 0, 'the cancelled checks hung up on Prometheus');
    // One check's three queries at most, never two checks of this ModelCanary side by side.
    assert.ok(Math.max(...pendingSeen) <= 3, `queries in flight: ${Math.max(...pendingSeen)}`);
    const s = await status('hung');
    assert.equal(s.canaryWeight, 10, 'no cancelled check moved the weight');
    prometheus.latencyMs = 0;
    await until('promotes once Prometheus answers', () => status('hung'), (x) => x.phase === 'Succeeded');
  } finally {
    prometheus.latencyMs = 0;
    await c.stop();
  }
});

test('with 409s, dropped watches and a slow, flapping Prometheus, rollouts end right and their steps only move forward', async () => {
  failing.add('chaos-bad');
  const from = {
    good: await createModel('chaos-good', { checksPerStep: 2, steps: [10, 30, 60, 100] }),
    bad: await createModel('chaos-bad', { checksPerStep: 2, steps: [10, 30, 60, 100] }),
  };
  const { controller: c } = controller({ reconcileTimeoutMs: 1500 }, 800);
  const random = seeded(5);
  harness.sandbox.faults.failShareOfWrites(0.5, 409, () => random.next());
  harness.sandbox.faults.dropWatchesEvery(2000);
  prometheus.latencyMs = 400;
  prometheus.mode = 'flapping';
  await c.start();
  try {
    await until('chaos-good succeeds', () => status('chaos-good'), (s) => s.phase === 'Succeeded', 90_000);
    await until('chaos-bad rolls back', () => status('chaos-bad'), (s) => s.phase === 'RolledBack', 90_000);
  } finally {
    harness.sandbox.faults.reset();
    prometheus.mode = 'ok';
    prometheus.latencyMs = 0;
    await c.stop();
  }
  const good = await weightHistory(harness, NS, 'chaos-good', from.good);
  assert.deepEqual(good, [10, 30, 60, 100], `chaos-good went ${good.join(' → ')}`);
  const bad = await weightHistory(harness, NS, 'chaos-bad', from.bad);
  assert.equal(bad.at(-1), 0);
  const forward = bad.slice(0, -1);
  assert.deepEqual(forward, [10, 30, 60, 100].slice(0, forward.length), `chaos-bad went ${bad.join(' → ')}`);
});
