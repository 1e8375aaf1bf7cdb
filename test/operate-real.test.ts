// The operator's commands end to end on a real etcd + kube-apiserver (npm run envtest), with
// the controller running: promote, promote --full, abort, retry, pause/resume and approve, each
// run as a user runs it (the CLI with a kubeconfig, and once through the real kubectl as a
// plugin); a gate by approval, and one by a webhook on loopback that says no, then yes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { ModelCanary } from '../src/api/modelcanary.ts';
import { Controller } from '../src/controller/controller.ts';
import { KubeObjectStore } from '../src/controller/kube-store.ts';
import { KubeCanaryClient, KubeEventRecorder } from '../src/controller/kube-canaries.ts';
import { HttpWebhookCaller } from '../src/controller/webhooks.ts';
import { PrometheusClient } from '../src/metrics/prometheus-client.ts';
import { PrometheusMetricsProvider } from '../src/metrics/prometheus-provider.ts';
import { runOperate, type OperateCommand } from '../src/cli/operate.ts';
import { envtestMissing, startEnvtest, type Envtest } from './kube/envtest.ts';
import { FakePrometheus } from './helpers/fake-prometheus.ts';
import { startHookServer, type HookServer } from './helpers/hook-server.ts';
import { meshFor, modelCanary } from './helpers/fakes.ts';
import { until } from './helpers/sandbox.ts';
import { ROOT } from './helpers/manifests.ts';
import { fileURLToPath } from 'node:url';

const ROOT_DIR = fileURLToPath(ROOT);

type Json = Record<string, any>;

const MISSING = envtestMissing();
const SKIP = MISSING !== undefined && process.env.CI !== 'true' ? MISSING : undefined;
const NS = 'ops';
const MCAN = { group: 'modelcanary.io', version: 'v1alpha1', plural: 'modelcanaries', namespace: NS };
const ISTIO = { group: 'networking.istio.io', version: 'v1', namespace: NS };

let envtest: Envtest;
let api: CustomObjectsApi;
let hooks: HookServer;
let controller: Controller;
const prometheus = new FakePrometheus();
const models = new Set<string>();
let stopLoad: () => void = () => undefined;

before(async () => {
  if (SKIP !== undefined) return;
  envtest = await startEnvtest();
  api = envtest.kubeConfig.makeApiClient(CustomObjectsApi);
  await envtest.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
  await prometheus.start();
  stopLoad = prometheus.load(NS, models, new Set());
  hooks = await startHookServer();
  const kubeConfig = envtest.kubeConfig;
  const provider = new PrometheusMetricsProvider(new PrometheusClient({ address: prometheus.url, timeoutMs: 2000, retries: 1, backoffMs: 50 }));
  controller = new Controller(
    {
      canaries: new KubeCanaryClient(kubeConfig),
      routes: new KubeObjectStore(kubeConfig),
      providerFor: (_canary: ModelCanary) => Promise.resolve(provider),
      events: new KubeEventRecorder(kubeConfig),
      log: { info: () => undefined, warn: () => undefined },
      now: () => new Date(),
      webhooks: new HttpWebhookCaller([hooks.url('/')]),
    },
    { kubeConfig, namespaces: [NS], reconcileTimeoutMs: 10_000 },
  );
  await controller.start();
});

after(async () => {
  if (SKIP !== undefined) return;
  await controller.stop();
  stopLoad();
  await hooks.stop();
  await prometheus.stop();
  await envtest.stop();
});

async function createModel(name: string, analysis: Json): Promise<void> {
  models.add(name);
  const mesh = meshFor(name);
  for (const object of [mesh.virtualService, mesh.destinationRule]) object.metadata.namespace = NS;
  await api.createNamespacedCustomObject({ ...ISTIO, plural: 'virtualservices', body: mesh.virtualService });
  await api.createNamespacedCustomObject({ ...ISTIO, plural: 'destinationrules', body: mesh.destinationRule });
  const body = modelCanary(name, { interval: '1s', minRequests: 20, ...analysis });
  body.metadata.namespace = NS;
  await api.createNamespacedCustomObject({ ...MCAN, body });
}

async function status(name: string): Promise<Json> {
  return ((await api.getNamespacedCustomObject({ ...MCAN, name })) as Json).status ?? {};
}

async function canaryWeight(name: string): Promise<number> {
  const vs = (await api.getNamespacedCustomObject({ ...ISTIO, plural: 'virtualservices', name })) as Json;
  return (vs.spec.http[0].route as Json[]).find((d) => d.destination.subset === 'v2')?.weight ?? 0;
}

async function events(name: string): Promise<string[]> {
  const list = await envtest.kubeConfig.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` });
  return list.items.map((e) => `${e.reason ?? ''}: ${e.message ?? ''}`);
}

/** The command as a user runs it, in this process: its exit code and what it printed. */
async function cli(command: OperateCommand, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io = { stdout: { write: (t: string) => (out += t) }, stderr: { write: (t: string) => (err += t) }, stdin: (async function* () {})(), cwd: ROOT_DIR };
  const code = await runOperate(command, [...args, '-n', NS], io, { KUBECONFIG: envtest.kubeconfigFile });
  return { code, out, err };
}

test('promote, then promote --full: one step at once, then straight to 100 %, each event naming the user', { skip: SKIP }, async () => {
  await createModel('op-promote', { steps: [10, 30, 60, 100], checksPerStep: 100 });
  await until('starts', () => status('op-promote'), (s) => s.phase === 'Progressing');
  const promoted = await cli('promote', 'op-promote', '--wait');
  assert.equal(promoted.code, 0, promoted.err);
  assert.match(promoted.out, /promotion to the next step requested by envtest-admin/);
  assert.equal(await canaryWeight('op-promote'), 30);
  const full = await cli('promote', 'op-promote', '--full', '--wait');
  assert.equal(full.code, 0, full.err);
  assert.match(full.out, /^Succeeded, canary at 100 %/m);
  assert.equal(await canaryWeight('op-promote'), 100);
  const told = await events('op-promote');
  assert.ok(told.some((e) => /^StepAdvanced: advanced to 30 % by envtest-admin/.test(e)), told.join('\n'));
  assert.ok(told.some((e) => /^Promoted: promoted by envtest-admin without analysis/.test(e)), told.join('\n'));
  const again = await cli('promote', 'op-promote');
  assert.equal(again.code, 1);
  assert.match(again.err, /^modelcanary promote: nothing to promote: the rollout is Succeeded\n$/);
});

test('abort, then retry; pause and resume', { skip: SKIP }, async () => {
  await createModel('op-abort', { checksPerStep: 100 });
  await until('starts', () => status('op-abort'), (s) => s.phase === 'Progressing');
  const aborted = await cli('abort', 'op-abort', '--wait');
  assert.equal(aborted.code, 0, aborted.err);
  const s = await status('op-abort');
  assert.deepEqual([s.phase, await canaryWeight('op-abort')], ['RolledBack', 0]);
  assert.match(s.message, /aborted by envtest-admin at 10 %/);
  const retried = await cli('retry', 'op-abort', '--wait');
  assert.equal(retried.code, 0, retried.err);
  assert.deepEqual([(await status('op-abort')).phase, await canaryWeight('op-abort')], ['Progressing', 10]);

  assert.equal((await cli('pause', 'op-abort', '--wait')).code, 0);
  assert.equal((await status('op-abort')).phase, 'Paused');
  assert.ok((await events('op-abort')).some((e) => /^Paused: paused at 10 % by envtest-admin/.test(e)));
  const paused = await cli('pause', 'op-abort');
  assert.deepEqual([paused.code, paused.err], [1, 'modelcanary pause: already paused (spec.suspend is true)\n']);
  assert.equal((await cli('resume', 'op-abort', '--wait')).code, 0);
  assert.equal((await status('op-abort')).phase, 'Progressing');
});

test('a manual gate waits for approve; a webhook gate opens when its webhook says yes', { skip: SKIP }, async () => {
  await createModel('op-gate', { gates: [{ name: 'sre', approval: 'manual', before: [30] }] });
  await until('waits at the gate', () => status('op-gate'), (s) => s.gate?.name === 'sre', 30_000);
  assert.equal(await canaryWeight('op-gate'), 10);
  const wrong = await cli('approve', 'op-gate', '--gate', 'qa');
  assert.deepEqual([wrong.code, wrong.err], [1, 'modelcanary approve: the rollout waits at gate sre, not qa\n']);
  const approved = await cli('approve', 'op-gate', '--wait');
  assert.equal(approved.code, 0, approved.err);
  assert.ok((await canaryWeight('op-gate')) >= 30);
  assert.deepEqual((await status('op-gate')).openedGates?.map((g: Json) => g.by), ['approved by envtest-admin']);

  let asked = 0;
  hooks.answer('/gate', () => (++asked < 3 ? { status: 403, body: 'not yet' } : { status: 200 }));
  await createModel('op-hook', { gates: [{ name: 'ci', approval: 'webhook', url: hooks.url('/gate'), before: [30] }] });
  await until('asks, is told no', () => status('op-hook'), (s) => s.gate?.answer?.includes('403') === true, 30_000);
  await until('opens on yes', () => canaryWeight('op-hook'), (w) => w >= 30, 30_000);
  assert.ok(asked >= 3);
  const body = hooks.calls.find((c) => c.path === '/gate')?.body as Json;
  assert.deepEqual([body.type, body.name, body.namespace, body.hook], ['gate', 'op-hook', NS, 'ci']);
});

test('kubectl modelcanary: the real kubectl finds the plugin and runs it with the namespace flag', { skip: SKIP }, async () => {
  const bin = mkdtempSync(join(tmpdir(), 'kubectl-plugin-'));
  try {
    symlinkSync(join(ROOT_DIR, 'bin', 'kubectl-modelcanary.js'), join(bin, 'kubectl-modelcanary'));
    const env = { ...process.env, PATH: `${bin}:${join(ROOT_DIR, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`, KUBECONFIG: envtest.kubeconfigFile, NO_COLOR: '1' };
    const list = await promisify(execFile)('kubectl', ['plugin', 'list'], { env }).catch((error: unknown) => error as { stdout: string });
    assert.match(list.stdout, /kubectl-modelcanary/);
    const shown = await promisify(execFile)('kubectl', ['modelcanary', 'status', 'op-promote', '-n', NS], { env });
    assert.match(shown.stdout, /op-promote/);
    assert.match(shown.stdout, /Succeeded/);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});
