// Two `modelcanary run --leader-elect` processes on the sandbox API server, with a slow
// Prometheus so that checks are in flight most of the time. The leader is killed (SIGKILL) in
// the middle of a check; the other replica takes the Lease when it expires and finishes the
// rollouts from their status: every rollout ends right and its weights only move forward.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CoordinationV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { FakePrometheus } from './helpers/fake-prometheus.ts';
import { meshFor, modelCanary } from './helpers/fakes.ts';
import { ROOT } from './helpers/manifests.ts';
import { sandboxHarness, until, weightHistory, type SandboxHarness } from './helpers/sandbox.ts';

type Json = Record<string, any>;

const NS = 'ml-serving';
const MCAN = { group: 'modelcanary.io', version: 'v1alpha1', plural: 'modelcanaries', namespace: NS };
const ISTIO = { group: 'networking.istio.io', version: 'v1', namespace: NS };

let harness: SandboxHarness;
const prometheus = new FakePrometheus();
const replicas = new Map<string, ChildProcess>();
let load: ReturnType<typeof setInterval>;
/** The bad canary turns bad only after the handover, so that the new leader is the one to catch it. */
let badNow = false;

before(async () => {
  harness = await sandboxHarness({ namespaces: [NS], watchHistory: 100_000 });
  await prometheus.start();
  load = setInterval(() => {
    for (const model of ['handover-good', 'handover-bad']) {
      prometheus.serve(NS, model, 'v1', 50, 0);
      prometheus.serve(NS, model, 'v2', 50, model === 'handover-bad' && badNow ? 10 : 0);
    }
  }, 200);
});
after(async () => {
  clearInterval(load);
  for (const child of replicas.values()) child.kill('SIGKILL');
  await prometheus.stop();
  await harness.stop();
});

function replica(name: string): ChildProcess {
  const child = spawn(
    process.execPath,
    [fileURLToPath(new URL('bin/modelcanary.js', ROOT)), 'run', '--kubeconfig', harness.kubeconfigFile, '--prometheus', prometheus.url, '--leader-elect', '--metrics-addr', '127.0.0.1:0', '--namespace', NS],
    { env: { ...process.env, POD_NAMESPACE: NS, POD_NAME: name }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr.resume();
  replicas.set(name, child);
  return child;
}



test('the leader killed mid-check: the other replica takes over and every rollout ends right, never a step back or skipped', async () => {
  const api = harness.kubeConfig.makeApiClient(CustomObjectsApi);
  const leases = harness.kubeConfig.makeApiClient(CoordinationV1Api);
  const steps = [10, 30, 60, 100];
  const from = new Map<string, string>();
  for (const name of ['handover-good', 'handover-bad']) {
    const mesh = meshFor(name);
    await api.createNamespacedCustomObject({ ...ISTIO, plural: 'virtualservices', body: mesh.virtualService });
    await api.createNamespacedCustomObject({ ...ISTIO, plural: 'destinationrules', body: mesh.destinationRule });
    const analysis = { interval: '1s', steps, checksPerStep: 3, minRequests: 20 };
    const created = (await api.createNamespacedCustomObject({ ...MCAN, body: modelCanary(name, analysis) })) as Json;
    from.set(name, String(created.metadata.resourceVersion));
  }
  // Every answer takes 0.7 s: checks are in flight most of the time.
  prometheus.latencyMs = 700;
  replica('replica-a');
  replica('replica-b');
  const holder = async (): Promise<string> => (await leases.readNamespacedLease({ name: 'modelcanary-leader', namespace: NS }).catch(() => undefined))?.spec?.holderIdentity ?? '';
  const leader = await until('a replica leads', holder, (h) => h !== '');
  const status = async (name: string): Promise<Json> => ((await api.getNamespacedCustomObject({ ...MCAN, name })) as Json).status ?? {};
  await until('handover-good is under way', () => status('handover-good'), (s) => s.canaryWeight >= 30);
  await until('a check is in flight', () => Promise.resolve(prometheus.pending), (n) => n > 0);
  replicas.get(leader)?.kill('SIGKILL');
  const atKill = await status('handover-good');
  assert.equal(atKill.phase, 'Progressing', 'killed mid-rollout');
  const killedAt = Date.now();
  badNow = true;
  const other = leader === 'replica-a' ? 'replica-b' : 'replica-a';
  await until('the other replica takes the Lease', holder, (h) => h === other, 40_000);
  const handover = (Date.now() - killedAt) / 1000;

  await until('handover-good succeeds', () => status('handover-good'), (s) => s.phase === 'Succeeded', 60_000);
  await until('handover-bad rolls back', () => status('handover-bad'), (s) => s.phase === 'RolledBack', 60_000);
  prometheus.latencyMs = 0;
  assert.deepEqual(await weightHistory(harness, NS, 'handover-good', from.get('handover-good') ?? ''), steps);
  const bad = await weightHistory(harness, NS, 'handover-bad', from.get('handover-bad') ?? '');
  assert.equal(bad.at(-1), 0, `handover-bad went ${bad.join(' → ')}`);
  assert.deepEqual(bad.slice(0, -1), steps.slice(0, bad.length - 1), `handover-bad went ${bad.join(' → ')}`);
  assert.ok(handover < 40, `handover took ${handover} s`);
});
