import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api } from '@kubernetes/client-node';
import { readCredentials } from '../src/controller/credentials.ts';
import { sandboxHarness, type SandboxHarness } from './helpers/sandbox.ts';

let harness: SandboxHarness;
before(async () => {
  harness = await sandboxHarness({ namespaces: ['ml-serving'] });
  const core = harness.kubeConfig.makeApiClient(CoreV1Api);
  const secret = (name: string, data: Record<string, string>, consent = true): Promise<unknown> =>
    core.createNamespacedSecret({
      namespace: 'ml-serving',
      body: {
        metadata: { name, labels: consent ? { 'modelcanary.io/credentials': 'true' } : {} },
        data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      },
    });
  await secret('mimir-token', { token: 'abc123\n' });
  await secret('prom-basic', { username: 'reader', password: 's3cret' });
  await secret('empty', { other: 'x' });
  await secret('ci-deploy-sa-token', { token: 'the-deploy-token' }, false);
});
after(() => harness.stop());

test('secretRef credentials: a token is bearer, username and password are basic, anything else is named', async () => {
  assert.deepEqual(await readCredentials(harness.kubeConfig, 'ml-serving', 'mimir-token'), { ok: true, credentials: { kind: 'bearer', token: 'abc123' } });
  assert.deepEqual(await readCredentials(harness.kubeConfig, 'ml-serving', 'prom-basic'), { ok: true, credentials: { kind: 'basic', username: 'reader', password: 's3cret' } });
  assert.deepEqual(await readCredentials(harness.kubeConfig, 'ml-serving', 'empty'), { ok: false, problem: 'Secret ml-serving/empty has neither a "token" key nor "username" and "password" keys' });
  assert.deepEqual(await readCredentials(harness.kubeConfig, 'ml-serving', 'missing'), { ok: false, problem: 'Secret ml-serving/missing (spec.metricsProvider.prometheus.secretRef) does not exist' });
});

test('a Secret without the consent label is not read for a ModelCanary, only for the operator', async () => {
  assert.deepEqual(await readCredentials(harness.kubeConfig, 'ml-serving', 'ci-deploy-sa-token'), {
    ok: false,
    problem: 'Secret ml-serving/ci-deploy-sa-token is not labelled modelcanary.io/credentials=true: the controller reads only Secrets meant for it (kubectl label secret ci-deploy-sa-token -n ml-serving modelcanary.io/credentials=true)',
  });
  assert.deepEqual(await readCredentials(harness.kubeConfig, 'ml-serving', 'ci-deploy-sa-token', false), { ok: true, credentials: { kind: 'bearer', token: 'the-deploy-token' } });
});
