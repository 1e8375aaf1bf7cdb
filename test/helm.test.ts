// The Helm chart (charts/modelcanary) checked with the real helm, built from helm.sh/helm/v3 by
// test/kube/build.sh: `helm lint` and `helm template` over a table of values, every rendered object
// validated with kubernetes-models, its RBAC and Deployment held equal to deploy/'s, and the chart
// installed onto a real etcd + kube-apiserver (test/kube/envtest.ts), where the objects must exist
// and the ServiceAccount must be allowed exactly what the controller needs. Skipped, saying why,
// where helm or the envtest binaries are not built; on CI (CI=true) that is a failure instead.
import { KUBE_MODELS } from './helpers/kube-models.ts';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AuthorizationV1Api, CoreV1Api, KubernetesObjectApi, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { parse, parseAllDocuments } from 'yaml';
import { runController } from '../src/cli/run.ts';
import { EXIT } from '../src/cli/io.ts';
import { envtestMissing, startEnvtest, type Envtest } from './kube/envtest.ts';
import { ROOT } from './helpers/manifests.ts';
import { HELM, HELM_MISSING } from './helpers/helm.ts';

type Json = Record<string, any>;

const REPO = fileURLToPath(ROOT);
const CHART = join(REPO, 'charts', 'modelcanary');
const RELEASE = 'modelcanary';
const NAMESPACE = 'modelcanary-system';

// ── helm, as build.sh built it ─────────────────────────────────────────────────────────

/** Skip where nothing is built, but never on CI, where a missing binary must fail loudly. */
const SKIP_HELM = HELM_MISSING !== undefined && process.env.CI !== 'true' ? HELM_MISSING : undefined;
const ENVTEST_MISSING = HELM_MISSING ?? envtestMissing();
const SKIP_ENVTEST = ENVTEST_MISSING !== undefined && process.env.CI !== 'true' ? ENVTEST_MISSING : undefined;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

// helm keeps its own config, cache and data apart from the user's.
const HELM_HOME = await mkdtemp(join(tmpdir(), 'modelcanary-helm-'));
after(() => rm(HELM_HOME, { recursive: true, force: true }));

function helm(args: string[]): Promise<Run> {
  if (HELM_MISSING !== undefined) throw new Error(`CI=true and helm cannot run: ${HELM_MISSING}`);
  const env = { PATH: process.env.PATH ?? '', HOME: HELM_HOME, HELM_CACHE_HOME: join(HELM_HOME, 'cache'), HELM_CONFIG_HOME: join(HELM_HOME, 'config'), HELM_DATA_HOME: join(HELM_HOME, 'data') };
  return new Promise((resolve) => {
    execFile(HELM, args, { cwd: REPO, env, timeout: 30_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
  });
}

function documents(text: string): Json[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Json | null)
    .filter((o): o is Json => o !== null);
}

/** `helm template` of the chart as release modelcanary in modelcanary-system, with these flags. */
async function template(args: string[]): Promise<Json[]> {
  const run = await helm(['template', RELEASE, CHART, '--namespace', NAMESPACE, ...args]);
  assert.equal(run.code, 0, run.stderr);
  return documents(run.stdout);
}

// ── what deploy/ says ──────────────────────────────────────────────────────────────────

function deployFile(...path: string[]): Json[] {
  return documents(readFileSync(join(REPO, 'deploy', ...path), 'utf8'));
}

function find(objects: readonly Json[], kind: string, name: string, namespace?: string): Json {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name && (namespace === undefined || o.metadata.namespace === namespace));
  assert.ok(found !== undefined, `${kind} ${namespace === undefined ? '' : `${namespace}/`}${name} is rendered`);
  return found;
}

/** deploy/'s roles, rules only: the controller's ClusterRole, its two Roles and the users' aggregate ClusterRoles. */
const DEPLOY_RBAC = [...deployFile('rbac.yaml'), ...deployFile('aggregate-roles.yaml')];
const CONTROLLER_RULES = find(DEPLOY_RBAC, 'ClusterRole', 'modelcanary').rules as Json[];

// ── kubernetes-models for every kind the chart renders ─────────────────────────────────

const MODELS = KUBE_MODELS;

/** kubernetes-models has no prometheus-operator kinds: the ServiceMonitor's fields are checked by hand. */
function checkServiceMonitor(monitor: Json, objects: readonly Json[]): void {
  assert.equal(monitor.apiVersion, 'monitoring.coreos.com/v1');
  const service = objects.find((o) => o.kind === 'Service') ?? {};
  const selected = Object.entries(monitor.spec.selector.matchLabels as Record<string, string>).every(([k, v]) => service.metadata.labels[k] === v);
  assert.ok(selected, 'the ServiceMonitor selects the metrics Service');
  assert.deepEqual(monitor.spec.namespaceSelector, { matchNames: [service.metadata.namespace] });
  const [endpoint] = monitor.spec.endpoints;
  assert.ok((service.spec.ports as Json[]).some((p) => p.name === endpoint.port), `the endpoint names a port of the Service: ${endpoint.port}`);
  assert.equal(endpoint.path, '/metrics');
  assert.match(endpoint.interval, /^\d+(ms|s|m|h)$/);
  assert.equal(endpoint.honorLabels, true, 'the namespace and name labels are the ModelCanary\'s, not renamed to exported_namespace');
}

function validateAll(objects: readonly Json[], namespace: string): void {
  for (const object of objects) {
    const label = `${object.kind}/${object.metadata.name}`;
    if (object.kind === 'ServiceMonitor') checkServiceMonitor(object, objects);
    else {
      const Model = MODELS[object.kind];
      assert.ok(Model !== undefined, `a model for ${label}`);
      assert.doesNotThrow(() => {
        new Model(object as never).validate();
      }, label);
    }
    const clusterScoped = ['ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition'].includes(object.kind);
    if (clusterScoped) assert.equal(object.metadata.namespace, undefined, `${label} is cluster-scoped`);
    else if (!['Role', 'RoleBinding'].includes(object.kind)) assert.equal(object.metadata.namespace, namespace, `${label} is in the release namespace`);
    // The CRD is crds/modelcanary.yaml as generated; helm installs it but never templates it.
    if (object.kind !== 'CustomResourceDefinition') assert.equal(object.metadata.labels['app.kubernetes.io/managed-by'], 'Helm', `${label} says who manages it`);
  }
}

function containerArgs(objects: readonly Json[]): string[] {
  const deployment = objects.find((o) => o.kind === 'Deployment') ?? {};
  return deployment.spec.template.spec.containers[0].args as string[];
}

// ── the table: values, and what a user of them would notice ────────────────────────────

interface Variant {
  name: string;
  args: string[];
  check(objects: Json[]): void;
}

const VARIANTS: Variant[] = [
  {
    name: 'default values: the same install as deploy/, cluster-wide, with a PDB and a NetworkPolicy',
    args: ['--include-crds'],
    check: (objects) => {
      assert.deepEqual(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort(), [
        'ClusterRole/modelcanary',
        'ClusterRole/modelcanary-edit',
        'ClusterRole/modelcanary-view',
        'ClusterRoleBinding/modelcanary',
        'CustomResourceDefinition/modelcanaries.modelcanary.io',
        'Deployment/modelcanary',
        'NetworkPolicy/modelcanary-metrics',
        'PodDisruptionBudget/modelcanary',
        'Role/modelcanary-credentials',
        'Role/modelcanary-leader-election',
        'RoleBinding/modelcanary-credentials',
        'RoleBinding/modelcanary-leader-election',
        'Service/modelcanary-metrics',
        'ServiceAccount/modelcanary',
      ]);
      assert.deepEqual(containerArgs(objects), ['run', '--leader-elect', '--metrics-addr=:8080', '--prometheus=http://prometheus.istio-system:9090']);
      const pdb = find(objects, 'PodDisruptionBudget', 'modelcanary');
      assert.equal(pdb.spec.minAvailable, 1);
      const policy = find(objects, 'NetworkPolicy', 'modelcanary-metrics');
      assert.deepEqual(policy.spec.policyTypes, ['Ingress'], 'egress stays open');
      assert.deepEqual(policy.spec.ingress, [{ ports: [{ protocol: 'TCP', port: 'http-metrics' }], from: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }] }]);
      const deployment = find(objects, 'Deployment', 'modelcanary');
      for (const selector of [pdb.spec.selector, policy.spec.podSelector]) assert.deepEqual(selector, deployment.spec.selector, 'selects the controller pods');
    },
  },
  {
    name: 'scope=namespace: a Role and RoleBinding in each watched namespace, --namespace flags, no controller ClusterRole',
    args: ['--set', 'scope=namespace', '--set', 'watchNamespaces={team-a,team-b}'],
    check: (objects) => {
      for (const namespace of ['team-a', 'team-b']) {
        assert.deepEqual(find(objects, 'Role', 'modelcanary', namespace).rules, CONTROLLER_RULES, `deploy/'s controller rules, in ${namespace} only`);
        const binding = find(objects, 'RoleBinding', 'modelcanary', namespace);
        assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'modelcanary' });
        assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'modelcanary', namespace: NAMESPACE }]);
      }
      assert.deepEqual(objects.filter((o) => o.kind === 'ClusterRoleBinding'), [], 'nothing is granted cluster-wide');
      assert.deepEqual(objects.filter((o) => o.kind === 'ClusterRole').map((o) => o.metadata.name).sort(), ['modelcanary-edit', 'modelcanary-view'], 'only the users\' aggregate roles');
      assert.deepEqual(containerArgs(objects).filter((a) => a.startsWith('--namespace')), ['--namespace=team-a', '--namespace=team-b']);
      // Leases and the operator's credentials stay in the controller's own namespace.
      find(objects, 'Role', 'modelcanary-leader-election', NAMESPACE);
      find(objects, 'Role', 'modelcanary-credentials', NAMESPACE);
    },
  },
  {
    name: 'scope=namespace without watchNamespaces watches the release namespace',
    args: ['--set', 'scope=namespace'],
    check: (objects) => {
      assert.deepEqual(find(objects, 'Role', 'modelcanary', NAMESPACE).rules, CONTROLLER_RULES);
      assert.deepEqual(containerArgs(objects).filter((a) => a.startsWith('--namespace')), [`--namespace=${NAMESPACE}`]);
    },
  },
  {
    name: 'serviceMonitor.enabled: a ServiceMonitor for the metrics Service, with the labels Prometheus selects by',
    args: ['--set', 'serviceMonitor.enabled=true', '--set', 'serviceMonitor.labels.release=kube-prometheus-stack'],
    check: (objects) => {
      const monitor = find(objects, 'ServiceMonitor', 'modelcanary');
      assert.equal(monitor.metadata.labels.release, 'kube-prometheus-stack');
    },
  },
  {
    name: 'podDisruptionBudget.enabled=false: no PodDisruptionBudget',
    args: ['--set', 'podDisruptionBudget.enabled=false'],
    check: (objects) => {
      assert.deepEqual(objects.filter((o) => o.kind === 'PodDisruptionBudget'), []);
    },
  },
  {
    name: 'Prometheus providers and notification destinations: the address, the allowlist, named providers and destinations become the controller\'s flags',
    args: [
      '--set', 'prometheus.address=http://prometheus.monitoring:9090',
      '--set', 'prometheus.allow={http://thanos-query.monitoring:9090/,https://mimir.example/prometheus/}',
      '--set-json', 'metricsProviders=[{"name":"team-a","address":"https://mimir.example/prometheus/team-a","secret":"mimir-team-a"},{"name":"open","address":"http://prometheus.open:9090"}]',
      '--set-json', 'notifications.destinations=[{"name":"platform","format":"slack","secret":"slack-platform","severity":"warning","default":true},{"name":"bus","format":"webhook","secret":"ops/bus-hook"}]',
      '--set', 'notifications.allowWebhooks={https://hooks.example.com/}',
      '--set', 'notifications.dashboardUrl=https://grafana.example/d/mc?var-namespace={{namespace}}',
      '--set', 'replicas=3', '--set', 'image.tag=0.2.0', '--set', 'logLevel=debug', '--set', 'maxConcurrentRollouts=5',
    ],
    check: (objects) => {
      assert.deepEqual(containerArgs(objects), [
        'run',
        '--leader-elect',
        '--metrics-addr=:8080',
        '--prometheus=http://prometheus.monitoring:9090',
        '--allow-prometheus=http://thanos-query.monitoring:9090/',
        '--allow-prometheus=https://mimir.example/prometheus/',
        '--metrics-provider=team-a=https://mimir.example/prometheus/team-a,secret=mimir-team-a',
        '--metrics-provider=open=http://prometheus.open:9090',
        '--notify=platform=slack,secret=slack-platform,severity=warning,default',
        '--notify=bus=webhook,secret=ops/bus-hook',
        '--allow-webhook=https://hooks.example.com/',
        '--max-concurrent-rollouts=5',
        '--dashboard-url=https://grafana.example/d/mc?var-namespace={{namespace}}',
        '--log-level=debug',
      ]);
      const deployment = find(objects, 'Deployment', 'modelcanary');
      assert.equal(deployment.spec.replicas, 3);
      assert.equal(deployment.spec.template.spec.containers[0].image, 'ghcr.io/modelcanary/modelcanary:0.2.0');
    },
  },
  {
    name: 'networkPolicy.metricsFrom names the scrapers; tenantCredentials opts a namespace in; resources are the operator\'s',
    args: [
      '--set-json', 'networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]',
      '--set', 'tenantCredentials.namespaces={team-a}',
      '--set', 'resources.requests.cpu=100m', '--set', 'resources.limits.memory=1Gi',
    ],
    check: (objects) => {
      const policy = find(objects, 'NetworkPolicy', 'modelcanary-metrics');
      assert.deepEqual(policy.spec.ingress[0].from, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }]);
      assert.deepEqual(find(objects, 'ClusterRole', 'modelcanary-tenant-credentials').rules, find(deployFile('tenant-credentials', 'clusterrole.yaml'), 'ClusterRole', 'modelcanary-tenant-credentials').rules);
      const binding = find(objects, 'RoleBinding', 'modelcanary-tenant-credentials', 'team-a');
      assert.equal(binding.roleRef.kind, 'ClusterRole', 'bound per namespace, never cluster-wide');
      assert.ok(!objects.some((o) => o.kind === 'ClusterRoleBinding' && o.roleRef.name === 'modelcanary-tenant-credentials'));
      assert.deepEqual(find(objects, 'Deployment', 'modelcanary').spec.template.spec.containers[0].resources, { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '1Gi' } });
    },
  },
];

for (const variant of VARIANTS) {
  test(`helm lint and helm template, ${variant.name}`, { skip: SKIP_HELM }, async () => {
    const lint = await helm(['lint', CHART, '--strict', '--namespace', NAMESPACE, ...variant.args.filter((a) => a !== '--include-crds')]);
    assert.equal(lint.code, 0, `${lint.stdout}\n${lint.stderr}`);
    assert.match(lint.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    const objects = await template(variant.args);
    validateAll(objects, NAMESPACE);
    variant.check(objects);
  });
}

const REFUSED: { name: string; args: string[]; says: RegExp }[] = [
  { name: 'an unknown scope', args: ['--set', 'scope=cluster-wide'], says: /scope.*'cluster', 'namespace'/ },
  { name: 'two replicas without leader election', args: ['--set', 'leaderElection=false'], says: /replicas > 1 needs leaderElection: true/ },
  { name: 'a Prometheus address with credentials', args: ['--set', 'prometheus.address=http://user:secret@prometheus:9090'], says: /\/prometheus\/address/ },
  { name: 'an allowed address with a query', args: ['--set', 'prometheus.allow={http://prometheus:9090/?x=1}'], says: /\/prometheus\/allow\/0/ },
  { name: 'a provider without an address', args: ['--set-json', 'metricsProviders=[{"name":"team-a"}]'], says: /metricsProviders\/0.*address/ },
  { name: 'a misspelt value', args: ['--set', 'replica=3'], says: /additional properties 'replica' not allowed/ },
];

test('the chart refuses values the controller would refuse or that would hurt, saying which', { skip: SKIP_HELM }, async () => {
  for (const c of REFUSED) {
    const run = await helm(['template', RELEASE, CHART, '--namespace', NAMESPACE, ...c.args]);
    assert.notEqual(run.code, 0, `${c.name} is refused`);
    assert.match(run.stderr, c.says, c.name);
  }
});

test('the controller accepts every flag the chart renders (modelcanary run gets as far as loading the kubeconfig)', { skip: SKIP_HELM }, async () => {
  const variant = VARIANTS.find((v) => v.name.startsWith('Prometheus providers'));
  const namespaced = VARIANTS.find((v) => v.name.startsWith('scope=namespace:'));
  for (const args of [[], variant?.args ?? [], namespaced?.args ?? []]) {
    const [command, ...flags] = containerArgs(await template(args));
    assert.equal(command, 'run');
    let stderr = '';
    const io = { stdout: { write: () => true }, stderr: { write: (text: string) => (stderr += text) }, stdin: process.stdin, cwd: REPO };
    const code = await runController([...flags, '--kubeconfig', join(HELM_HOME, 'no-such-kubeconfig')], io, undefined, { POD_NAMESPACE: NAMESPACE });
    assert.equal(code, EXIT.unreadable, stderr);
    assert.match(stderr, /^modelcanary run: cannot load the kubeconfig [^\n]*\n$/, 'no flag or value was refused before that');
  }
});

test('the chart\'s RBAC equals deploy/\'s: the controller\'s ClusterRole and Roles, their bindings, and the users\' aggregate roles', { skip: SKIP_HELM }, async () => {
  const chart = await template([]);
  for (const object of DEPLOY_RBAC) {
    const namespace = object.kind === 'Role' || object.kind === 'RoleBinding' ? NAMESPACE : undefined;
    const rendered = find(chart, object.kind, object.metadata.name, namespace);
    const label = `${object.kind}/${object.metadata.name}`;
    if (object.rules !== undefined) assert.deepEqual(rendered.rules, object.rules, `${label}: the same rules`);
    if (object.roleRef !== undefined) {
      assert.deepEqual(rendered.roleRef, object.roleRef, `${label}: the same role`);
      assert.deepEqual(rendered.subjects, object.subjects, `${label}: the same ServiceAccount`);
    }
    const aggregation = (o: Json): Json => Object.fromEntries(Object.entries((o.metadata.labels ?? {}) as Json).filter(([k]) => k.startsWith('rbac.authorization.k8s.io/')));
    assert.deepEqual(aggregation(rendered), aggregation(object), `${label}: aggregated into the same built-in roles`);
  }
  const roles = (objects: readonly Json[]): string[] => objects.filter((o) => /Role/.test(o.kind)).map((o) => `${o.kind}/${o.metadata.name}`).sort();
  assert.deepEqual(roles(chart), roles(DEPLOY_RBAC), 'no role or binding beyond deploy/\'s');
});

test('the chart\'s Deployment and metrics Service are deploy/\'s, with the chart\'s labels', { skip: SKIP_HELM }, async () => {
  const chart = await template([]);
  const ours = find(chart, 'Deployment', 'modelcanary');
  const theirs = find(deployFile('deployment.yaml'), 'Deployment', 'modelcanary');
  assert.equal(ours.spec.replicas, theirs.spec.replicas);
  const pod = ours.spec.template.spec;
  const deployPod = theirs.spec.template.spec;
  for (const field of ['serviceAccountName', 'securityContext', 'terminationGracePeriodSeconds']) assert.deepEqual(pod[field], deployPod[field], field);
  const { image, imagePullPolicy, ...container } = pod.containers[0];
  const { image: _image, ...deployContainer } = deployPod.containers[0];
  assert.deepEqual(container, deployContainer, 'args, env, ports, probes, resources and securityContext');
  assert.equal(imagePullPolicy, 'IfNotPresent');
  const kustomization = parse(readFileSync(join(REPO, 'deploy', 'kustomization.yaml'), 'utf8')) as Json;
  const [kustomizeImage] = kustomization.images;
  assert.equal(image, `${kustomizeImage.newName}:${kustomizeImage.newTag}`, 'the same image: Chart.yaml appVersion is deploy/\'s tag');
  const spread = (p: Json): Json => {
    const [term] = p.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution;
    return { weight: term.weight, topologyKey: term.podAffinityTerm.topologyKey };
  };
  assert.deepEqual(spread(pod), spread(deployPod), 'replicas prefer different nodes');
  const [spreadTerm] = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution;
  assert.deepEqual(spreadTerm.podAffinityTerm.labelSelector, ours.spec.selector, 'spread from this release\'s own pods');
  const service = find(chart, 'Service', 'modelcanary-metrics');
  assert.deepEqual(service.spec.ports, find(deployFile('service.yaml'), 'Service', 'modelcanary-metrics').spec.ports);
  assert.deepEqual(service.spec.selector, ours.spec.selector.matchLabels);
});

test('the chart\'s CRD is crds/modelcanary.yaml, byte for byte', () => {
  const source = readFileSync(join(REPO, 'crds', 'modelcanary.yaml'), 'utf8');
  const copy = readFileSync(join(CHART, 'crds', 'modelcanary.yaml'), 'utf8');
  assert.ok(copy === source, 'charts/modelcanary/crds/modelcanary.yaml differs from crds/modelcanary.yaml: cp crds/modelcanary.yaml charts/modelcanary/crds/');
});

// ── installed onto the real API server ─────────────────────────────────────────────────

describe('helm install onto the real API server', { skip: SKIP_ENVTEST }, () => {
  let envtest: Envtest;

  before(
    async () => {
      if (ENVTEST_MISSING !== undefined) throw new Error(`CI=true and the envtest cannot run: ${ENVTEST_MISSING}`);
      // Without our CRD: the chart installs it.
      envtest = await startEnvtest({ installCrds: false });
      const core = envtest.kubeConfig.makeApiClient(CoreV1Api);
      for (const name of ['team-a', 'team-b', 'modelcanary-team']) await core.createNamespace({ body: { metadata: { name } } });
    },
    { timeout: 90_000 },
  );
  after(async () => {
    if (ENVTEST_MISSING === undefined) await envtest.stop();
  });

  const kube = (args: string[]): Promise<Run> => helm([...args, '--kubeconfig', envtest.kubeconfigFile]);

  async function onServer(objects: readonly Json[]): Promise<string[]> {
    const client = KubernetesObjectApi.makeApiClient(envtest.kubeConfig);
    const found: string[] = [];
    for (const object of objects) {
      const read = await client.read({ apiVersion: object.apiVersion, kind: object.kind, metadata: { name: object.metadata.name, namespace: object.metadata.namespace } }).catch(() => undefined);
      if (read !== undefined) found.push(`${object.kind}/${object.metadata.namespace ?? ''}/${object.metadata.name}`);
    }
    return found.sort();
  }

  function described(objects: readonly Json[]): string[] {
    return objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`).sort();
  }

  async function manifest(release: string, namespace: string): Promise<Json[]> {
    const run = await kube(['get', 'manifest', release, '--namespace', namespace]);
    assert.equal(run.code, 0, run.stderr);
    return documents(run.stdout);
  }

  async function allowed(serviceAccount: string, verb: string, group: string, resource: string, namespace?: string): Promise<boolean> {
    const [saNamespace, name] = serviceAccount.split('/');
    const review = await envtest.kubeConfig.makeApiClient(AuthorizationV1Api).createSubjectAccessReview({
      body: {
        spec: {
          user: `system:serviceaccount:${saNamespace}:${name}`,
          groups: ['system:serviceaccounts', `system:serviceaccounts:${saNamespace}`, 'system:authenticated'],
          resourceAttributes: { verb, group, resource, namespace },
        },
      },
    });
    return review.status?.allowed === true;
  }

  test('the default install: the CRD is Established, every object exists, and the ServiceAccount may do what the controller needs', async () => {
    const install = await kube(['install', RELEASE, CHART, '--namespace', NAMESPACE, '--create-namespace']);
    assert.equal(install.code, 0, install.stderr);
    assert.match(install.stdout, /STATUS: deployed/);
    assert.match(install.stdout, /It watches ModelCanaries in every namespace/, 'the NOTES say what it watches');

    const crd = await KubernetesObjectApi.makeApiClient(envtest.kubeConfig).read({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: 'modelcanaries.modelcanary.io' } });
    const established = ((crd as Json).status?.conditions ?? []).find((c: Json) => c.type === 'Established');
    assert.equal(established?.status, 'True', 'helm installed the CRD from the chart\'s crds/');

    const objects = await manifest(RELEASE, NAMESPACE);
    assert.equal(objects.length, 13);
    assert.deepEqual(await onServer(objects), described(objects), 'every object of the release is on the server');

    const sa = `${NAMESPACE}/modelcanary`;
    const needs: [string, string, string, string | undefined][] = [
      ['watch', 'modelcanary.io', 'modelcanaries', undefined],
      ['update', 'modelcanary.io', 'modelcanaries/status', 'ml-serving'],
      ['update', 'networking.istio.io', 'virtualservices', 'ml-serving'],
      ['update', 'gateway.networking.k8s.io', 'httproutes', 'ml-serving'],
      ['list', 'networking.istio.io', 'destinationrules', 'ml-serving'],
      ['create', '', 'events', 'ml-serving'],
      ['update', 'coordination.k8s.io', 'leases', NAMESPACE],
      ['get', '', 'secrets', NAMESPACE],
    ];
    for (const [verb, group, resource, namespace] of needs) assert.ok(await allowed(sa, verb, group, resource, namespace), `${verb} ${resource} in ${namespace ?? 'all namespaces'}`);
    const refused: [string, string, string, string | undefined][] = [
      ['get', '', 'secrets', 'ml-serving'],
      ['update', 'coordination.k8s.io', 'leases', 'ml-serving'],
      ['delete', 'networking.istio.io', 'virtualservices', 'ml-serving'],
      ['create', 'modelcanary.io', 'modelcanaries', 'ml-serving'],
    ];
    for (const [verb, group, resource, namespace] of refused) assert.ok(!(await allowed(sa, verb, group, resource, namespace)), `not ${verb} ${resource} in ${namespace ?? 'all namespaces'}`);

    // No controller-manager runs here to aggregate, so check that the built-in roles select ours.
    const rbac = envtest.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    for (const [builtIn, ours] of [['admin', 'modelcanary-edit'], ['edit', 'modelcanary-edit'], ['view', 'modelcanary-view']] as const) {
      const role = await rbac.readClusterRole({ name: builtIn });
      const labels = (await rbac.readClusterRole({ name: ours })).metadata?.labels ?? {};
      const selects = (role.aggregationRule?.clusterRoleSelectors ?? []).some((s) => Object.entries(s.matchLabels ?? {}).every(([k, v]) => labels[k] === v));
      assert.ok(selects, `the built-in ${builtIn} aggregates ${ours}`);
    }
  });

  test('a namespace-scoped install: rights only in the watched namespaces, nothing cluster-wide', async () => {
    const install = await kube(['install', 'team', CHART, '--namespace', 'modelcanary-team', '--set', 'scope=namespace', '--set', 'watchNamespaces={team-a,team-b}', '--set', 'rbac.aggregateToDefaultRoles=false']);
    assert.equal(install.code, 0, install.stderr);
    assert.match(install.stdout, /It watches ModelCanaries in: team-a, team-b/);
    const objects = await manifest('team', 'modelcanary-team');
    assert.deepEqual(await onServer(objects), described(objects));
    assert.deepEqual(objects.filter((o) => o.kind.startsWith('Cluster')), [], 'no cluster-wide object of its own');

    const sa = 'modelcanary-team/team-modelcanary';
    for (const namespace of ['team-a', 'team-b']) {
      assert.ok(await allowed(sa, 'watch', 'modelcanary.io', 'modelcanaries', namespace), `watch ModelCanaries in ${namespace}`);
      assert.ok(await allowed(sa, 'update', 'networking.istio.io', 'virtualservices', namespace), `update VirtualServices in ${namespace}`);
    }
    assert.ok(!(await allowed(sa, 'watch', 'modelcanary.io', 'modelcanaries', undefined)), 'not across the cluster');
    assert.ok(!(await allowed(sa, 'update', 'networking.istio.io', 'virtualservices', 'ml-serving')), 'not in a namespace it does not watch');
    assert.ok(await allowed(sa, 'update', 'coordination.k8s.io', 'leases', 'modelcanary-team'), 'its Lease, in its own namespace');
  });

  test('helm uninstall removes the release\'s objects and keeps the CRD (and so every ModelCanary)', async () => {
    const objects = await manifest('team', 'modelcanary-team');
    const uninstall = await kube(['uninstall', 'team', '--namespace', 'modelcanary-team']);
    assert.equal(uninstall.code, 0, uninstall.stderr);
    assert.deepEqual(await onServer(objects), [], 'nothing of the release is left');
    const crd = await KubernetesObjectApi.makeApiClient(envtest.kubeConfig)
      .read({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: 'modelcanaries.modelcanary.io' } })
      .catch(() => undefined);
    assert.ok(crd !== undefined, 'helm never deletes a CRD of crds/');
  });
});
