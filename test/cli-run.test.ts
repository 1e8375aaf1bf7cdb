import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinationV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { runController } from '../src/cli/run.ts';
import { sandboxHarness, type SandboxHarness } from './helpers/sandbox.ts';
import { modelcanary } from './helpers/cli.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

let harness: SandboxHarness;
before(async () => {
  harness = await sandboxHarness({ namespaces: ['ml-serving'] });
});
after(() => harness.stop());

test('modelcanary run serves /healthz, /readyz and /metrics, handles ModelCanaries, and stops on signal', async () => {
  let logs = '';
  const abort = new AbortController();
  const io = { stdout: { write: () => true }, stderr: { write: (t: string) => (logs += t) }, stdin: process.stdin, cwd: process.cwd() };
  const running = runController(['--kubeconfig', harness.kubeconfigFile, '--metrics-addr', '127.0.0.1:0', '--namespace', 'ml-serving', '--prometheus', 'http://127.0.0.1:1'], io, abort.signal, {});
  const started = async (): Promise<string> => {
    for (let i = 0; i < 200; i++) {
      const match = /"metrics":"([\d.]+:\d+)"/.exec(logs);
      if (match?.[1] !== undefined) return match[1];
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`no start line in ${logs}`);
  };
  const address = await started();
  assert.equal((await fetch(`http://${address}/healthz`)).status, 200);
  assert.equal((await fetch(`http://${address}/readyz`)).status, 200);
  const metrics = await (await fetch(`http://${address}/metrics`)).text();
  assert.match(metrics, /^modelcanary_info\{version="0\.1\.0"\} 1$/m);
  for (const name of ['modelcanary_phase', 'modelcanary_canary_weight', 'modelcanary_analysis_checks_total', 'modelcanary_rollouts_total', 'modelcanary_rollout_duration_seconds', 'modelcanary_reconcile_duration_seconds', 'modelcanary_reconcile_errors_total', 'modelcanary_prometheus_query_duration_seconds', 'modelcanary_analysis_metric_value']) {
    assert.match(metrics, new RegExp(`^# TYPE ${name} `, 'm'), name);
  }

  // A ModelCanary whose spec the controller refuses: a condition, with nothing else running.
  const api = harness.kubeConfig.makeApiClient(CustomObjectsApi);
  await api.createNamespacedCustomObject({
    group: 'modelcanary.io',
    version: 'v1alpha1',
    plural: 'modelcanaries',
    namespace: 'ml-serving',
    body: {
      apiVersion: 'modelcanary.io/v1alpha1',
      kind: 'ModelCanary',
      metadata: { name: 'same-versions' },
      spec: {
        model: 'm',
        stable: { version: 'v1', destination: { host: 'm', subset: 'v1' } },
        canary: { version: 'v1', destination: { host: 'm', subset: 'v1' } },
        trafficRouting: { istio: { virtualService: 'm' } },
        analysis: { metrics: [{ name: 'e', type: 'errorRate', max: 0.01 }] },
      },
    },
  });
  for (let i = 0; ; i++) {
    const object = (await api.getNamespacedCustomObject({ group: 'modelcanary.io', version: 'v1alpha1', plural: 'modelcanaries', namespace: 'ml-serving', name: 'same-versions' })) as {
      status?: { phase?: string; conditions?: { type: string; status: string }[] };
    };
    if (object.status?.phase === 'Pending' && object.status.conditions?.some((c) => c.type === 'Valid' && c.status === 'False') === true) break;
    assert.ok(i < 200, 'the controller did not mark the invalid ModelCanary');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  abort.abort();
  assert.equal(await running, 0);
  await assert.rejects(fetch(`http://${address}/healthz`));
});

test('modelcanary run against an API server it cannot reach is not ready, and says what to check', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'modelcanary-blind-')), 'kubeconfig');
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'gone', cluster: { server: 'http://127.0.0.1:1', 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [{ name: 'c', context: { cluster: 'gone', user: 'u' } }],
      'current-context': 'c',
    }),
  );
  let logs = '';
  const abort = new AbortController();
  const io = { stdout: { write: () => true }, stderr: { write: (t: string) => (logs += t) }, stdin: process.stdin, cwd: process.cwd() };
  const running = runController(['--kubeconfig', file, '--metrics-addr', '127.0.0.1:0', '--namespace', 'ml-serving'], io, abort.signal, {});
  for (let i = 0; !logs.includes('cannot list or watch ModelCanaries'); i++) {
    assert.ok(i < 200, `no warning in ${logs}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const address = /"metrics":"([\d.]+:\d+)"/.exec(logs)?.[1] ?? '';
  assert.equal((await fetch(`http://${address}/healthz`)).status, 200, 'alive');
  const ready = await fetch(`http://${address}/readyz`);
  assert.equal(ready.status, 503, 'not ready: it has listed nothing');
  assert.match(logs, /"hint":"is the API server address in the kubeconfig reachable from here\?"/);
  abort.abort();
  assert.equal(await running, 0);
});

test('modelcanary run refuses a bad flag with the fix', async () => {
  const level = await modelcanary(['run', '--log-level', 'loud']);
  assert.equal(level.code, 2);
  assert.match(level.stderr, /--log-level must be one of trace, debug, info, warn, error, fatal, silent, not loud/);
});

test('modelcanary run --leader-elect takes the Lease, leads, and hands it back on stop', async () => {
  let logs = '';
  const abort = new AbortController();
  const io = { stdout: { write: () => true }, stderr: { write: (t: string) => (logs += t) }, stdin: process.stdin, cwd: process.cwd() };
  const env = { POD_NAMESPACE: 'ml-serving', POD_NAME: 'modelcanary-0' };
  const running = runController(['--kubeconfig', harness.kubeconfigFile, '--metrics-addr', '127.0.0.1:0', '--leader-elect', '--log-level', 'info'], io, abort.signal, env);
  const leases = harness.kubeConfig.makeApiClient(CoordinationV1Api);
  for (let i = 0; !logs.includes('leading: reconciling'); i++) {
    assert.ok(i < 300, `never led: ${logs}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const lease = await leases.readNamespacedLease({ name: 'modelcanary-leader', namespace: 'ml-serving' });
  assert.equal(lease.spec?.holderIdentity, 'modelcanary-0');
  assert.equal(lease.spec.leaseDurationSeconds, 15);
  abort.abort();
  assert.equal(await running, 0);
  const released = await leases.readNamespacedLease({ name: 'modelcanary-leader', namespace: 'ml-serving' });
  assert.equal(released.spec?.holderIdentity, undefined, 'released on a graceful stop');
});
