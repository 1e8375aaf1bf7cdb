// The tenant isolation of issue 12, tried as a hostile namespace user would, against the real
// controller process on the sandbox API server. The user may create ModelCanaries (and Secrets,
// VirtualServices) in their namespace and nothing else. A recording server on loopback stands
// for the attacker's endpoint and for an internal service; it must never be reached, and no
// credential may reach any address the operator did not allow.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { FakePrometheus } from './helpers/fake-prometheus.ts';
import { meshFor, modelCanary } from './helpers/fakes.ts';
import { ROOT } from './helpers/manifests.ts';
import { modelcanary } from './helpers/cli.ts';
import { sandboxHarness, until, type SandboxHarness } from './helpers/sandbox.ts';

type Json = Record<string, any>;

const NS = 'tenant';
const MCAN = { group: 'modelcanary.io', version: 'v1alpha1', plural: 'modelcanaries', namespace: NS };
const ISTIO = { group: 'networking.istio.io', version: 'v1', namespace: NS };
const TOKENS = { deploy: 'the-ci-deploy-token', labelled: 'the-tenant-prometheus-token', operator: 'the-operator-mimir-token' };

let harness: SandboxHarness;
const prometheus = new FakePrometheus();
let attacker: Server;
let attackerUrl = '';
const attacks: { url: string; headers: Json }[] = [];
let controller: ChildProcess;
let logs = '';
let load: ReturnType<typeof setInterval>;
const models = ['exfil', 'exfil-labelled', 'ssrf', 'smuggle', 'userinfo', 'unlabelled', 'labelled', 'named', 'thief'];
const notifying = ['notify-slack', 'notify-webhook', 'notify-unlabelled', 'notify-nowhere'];

before(async () => {
  harness = await sandboxHarness({ namespaces: [NS, 'modelcanary-system'] });
  await prometheus.start();
  load = setInterval(() => {
    for (const model of [...models, ...notifying]) {
      prometheus.serve(NS, model, 'v1', 50);
      prometheus.serve(NS, model, 'v2', 50);
    }
  }, 200);
  attacker = createServer((request, response) => {
    attacks.push({ url: request.url ?? '', headers: request.headers });
    response.writeHead(200, { 'content-type': 'text/plain' });
    response.end('internal-stats: db_password=hunter2 and more secrets that must not be echoed anywhere');
  });
  await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
  attackerUrl = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}`;

  const core = harness.kubeConfig.makeApiClient(CoreV1Api);
  const secret = (namespace: string, name: string, token: string, labels: Record<string, string> = {}): Promise<unknown> =>
    core.createNamespacedSecret({ namespace, body: { metadata: { name, labels }, data: { token: Buffer.from(token).toString('base64') } } });
  await secret(NS, 'ci-deploy-sa-token', TOKENS.deploy);
  await secret(NS, 'prometheus-reader', TOKENS.labelled, { 'modelcanary.io/credentials': 'true' });
  await secret('modelcanary-system', 'mimir-ops', TOKENS.operator);
  const hook = (name: string, url: string, labels: Record<string, string> = {}): Promise<unknown> =>
    core.createNamespacedSecret({ namespace: NS, body: { metadata: { name, labels }, data: { url: Buffer.from(url).toString('base64') } } });
  await hook('hook-labelled', `${attackerUrl}/hook`, { 'modelcanary.io/credentials': 'true' });
  await hook('hook-unlabelled', `${attackerUrl}/hook`);

  controller = spawn(
    process.execPath,
    [
      fileURLToPath(new URL('bin/modelcanary.js', ROOT)),
      'run',
      '--kubeconfig',
      harness.kubeconfigFile,
      '--namespace',
      NS,
      '--metrics-addr',
      '127.0.0.1:0',
      '--prometheus',
      `${prometheus.url}/default`,
      '--allow-prometheus',
      prometheus.url,
      '--metrics-provider',
      `ops=${prometheus.url}/ops,secret=mimir-ops`,
    ],
    { env: { ...process.env, POD_NAMESPACE: 'modelcanary-system' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  controller.stderr?.on('data', (chunk: Buffer) => (logs += chunk.toString()));
});

after(async () => {
  clearInterval(load);
  controller.kill('SIGKILL');
  attacker.closeAllConnections();
  await new Promise((resolve) => attacker.close(resolve));
  await prometheus.stop();
  await harness.stop();
});

async function attempt(name: string, metricsProvider: Json | undefined, virtualService = name, notifications?: Json[]): Promise<void> {
  const api = harness.kubeConfig.makeApiClient(CustomObjectsApi);
  if (virtualService === name) {
    const mesh = meshFor(name);
    await api.createNamespacedCustomObject({ ...ISTIO, plural: 'virtualservices', body: { ...mesh.virtualService, metadata: { name, namespace: NS } } });
    await api.createNamespacedCustomObject({ ...ISTIO, plural: 'destinationrules', body: { ...mesh.destinationRule, metadata: { name, namespace: NS } } });
  }
  const body = modelCanary(name, { interval: '2s', minRequests: 10 }, { virtualService });
  body.metadata.namespace = NS;
  if (metricsProvider !== undefined) body.spec.metricsProvider = metricsProvider;
  if (notifications !== undefined) body.spec.notifications = notifications;
  await api.createNamespacedCustomObject({ ...MCAN, body });
}

async function status(name: string): Promise<Json> {
  const api = harness.kubeConfig.makeApiClient(CustomObjectsApi);
  return ((await api.getNamespacedCustomObject({ ...MCAN, name })) as Json).status ?? {};
}

function condition(s: Json, type: string): Json | undefined {
  return (s.conditions as Json[] | undefined)?.find((c) => c.type === type);
}

test('a ModelCanary author cannot send a Secret, or the controller, anywhere the operator did not allow', async () => {
  await attempt('exfil', { prometheus: { address: `${attackerUrl}/steal`, secretRef: { name: 'ci-deploy-sa-token' } } });
  await attempt('exfil-labelled', { prometheus: { address: `${attackerUrl}/steal`, secretRef: { name: 'prometheus-reader' } } });
  await attempt('ssrf', { prometheus: { address: `${attackerUrl}/internal/stats` } });
  await attempt('smuggle', { prometheus: { address: `${prometheus.url}/api/v1/query?query=up` } });
  await attempt('userinfo', { prometheus: { address: `HTTP://user:pass@${prometheus.url.slice('http://'.length)}` } });
  await attempt('unlabelled', { prometheus: { address: prometheus.url, secretRef: { name: 'ci-deploy-sa-token' } } });
  await attempt('labelled', { prometheus: { address: prometheus.url, secretRef: { name: 'prometheus-reader' } } });
  await attempt('named', { name: 'ops' });

  for (const name of ['exfil', 'exfil-labelled', 'ssrf']) {
    const s = await until(`${name} refused`, () => status(name), (x) => condition(x, 'Preflight')?.status === 'False');
    assert.equal(s.phase, 'Pending', name);
    assert.match(condition(s, 'Preflight')?.message ?? '', /is not allowed by this controller: it queries only addresses under .*, or name one of its providers in spec\.metricsProvider\.name \(ops\)/, name);
  }
  for (const [name, problem] of [
    ['smuggle', /spec\.metricsProvider\.prometheus\.address: must be a base URL without a query/],
    ['userinfo', /spec\.metricsProvider\.prometheus\.address: must not hold credentials/],
  ] as const) {
    const s = await until(`${name} refused`, () => status(name), (x) => condition(x, 'Valid')?.status === 'False');
    assert.match(condition(s, 'Valid')?.message ?? '', problem, name);
  }
  const unlabelled = await until('unlabelled refused', () => status('unlabelled'), (x) => condition(x, 'Preflight')?.status === 'False');
  assert.match(condition(unlabelled, 'Preflight')?.message ?? '', /Secret tenant\/ci-deploy-sa-token is not labelled modelcanary\.io\/credentials=true/);

  // What is allowed works: the labelled Secret goes to the allowed address, the operator's to its provider.
  await until('labelled starts', () => status('labelled'), (x) => x.phase === 'Progressing');
  // Once labelled holds its route, another ModelCanary naming it is refused.
  await attempt('thief', undefined, 'labelled');
  await until('named starts', () => status('named'), (x) => x.phase === 'Progressing');
  const thief = await until('thief refused', () => status('thief'), (x) => condition(x, 'RoutingReady')?.status === 'False');
  assert.match(condition(thief, 'RoutingReady')?.message ?? '', /VirtualService tenant\/labelled is managed by ModelCanary labelled/);

  assert.deepEqual(attacks, [], 'nothing reached the attacker or the internal service');
  assert.deepEqual([...prometheus.authorizations].sort(), [`Bearer ${TOKENS.labelled}`, `Bearer ${TOKENS.operator}`].sort(), 'only consented and operator credentials, only to allowed addresses');
  for (const token of Object.values(TOKENS)) assert.ok(!logs.includes(token), 'no credential in the logs');
  const everything = JSON.stringify(await Promise.all(models.map(status)));
  assert.ok(!everything.includes('hunter2'), 'no foreign answer echoed in status');
});

test('a ModelCanary author cannot make the controller post notifications anywhere the operator did not allow', async () => {
  const allowed = { prometheus: { address: prometheus.url } };
  await attempt('notify-slack', allowed, 'notify-slack', [{ secretRef: { name: 'hook-labelled' }, format: 'slack' }]);
  await attempt('notify-webhook', allowed, 'notify-webhook', [{ secretRef: { name: 'hook-labelled' }, format: 'webhook' }]);
  await attempt('notify-unlabelled', allowed, 'notify-unlabelled', [{ secretRef: { name: 'hook-unlabelled' }, format: 'webhook' }]);
  await attempt('notify-nowhere', allowed, 'notify-nowhere', [{ destination: 'ops-slack' }]);
  for (const [name, problem] of [
    ['notify-slack', /secretRef hook-labelled: the slack webhook in it is not at an allowed address \(it sends only under https:\/\/hooks\.slack\.com\)/],
    ['notify-webhook', /secretRef hook-labelled: the webhook webhook in it is not at an allowed address \(this controller allows none; an operator allows addresses with modelcanary run --allow-webhook\)/],
    ['notify-unlabelled', /Secret tenant\/hook-unlabelled is not labelled modelcanary\.io\/credentials=true/],
    ['notify-nowhere', /this controller has no destination named ops-slack \(it has none; an operator adds them with modelcanary run --notify\)/],
  ] as const) {
    const s = await until(`${name} told nobody, and went on`, () => status(name), (x) => condition(x, 'Notified')?.status === 'False' && x.phase === 'Progressing');
    assert.match(condition(s, 'Notified')?.message ?? '', problem, name);
    assert.ok(!(condition(s, 'Notified')?.message ?? '').includes(attackerUrl), 'the URL in the Secret is not echoed');
  }
  assert.deepEqual(attacks, [], 'nothing reached the attacker');
});

test('modelcanary run refuses credentials in its own addresses, and never prints them', async () => {
  const run = await modelcanary(['run', '--prometheus', 'http://admin:s3cret@prometheus:9090', '--metrics-addr', '127.0.0.1:0']);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /--prometheus: http:\/\/\[redacted\]@prometheus:9090 holds credentials; put them in a Secret and name it with --metrics-provider NAME=URL,secret=NAMESPACE\/NAME/);
  assert.ok(!run.stderr.includes('s3cret'));
  const named = await modelcanary(['run', '--metrics-provider', 'ops=HTTP://admin:s3cret@mimir:9009', '--metrics-addr', '127.0.0.1:0']);
  assert.equal(named.code, 2);
  assert.ok(!named.stderr.includes('s3cret'), named.stderr);
});
