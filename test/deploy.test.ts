import { KUBE_MODELS } from './helpers/kube-models.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './helpers/manifests.ts';

type Json = Record<string, any>;

function kubectlMissing(): string | undefined {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'kubectl is not installed';
  }
}

const MODELS = KUBE_MODELS;

/** ClusterRoles Kubernetes aggregates into its built-in user roles: for people, not the controller. */
function aggregated(role: Json): boolean {
  return Object.keys((role.metadata.labels ?? {}) as Json).some((label) => label.startsWith('rbac.authorization.k8s.io/aggregate-to-'));
}

function rendered(): Json[] {
  const text = execFileSync('kubectl', ['kustomize', 'deploy/'], { cwd: fileURLToPath(ROOT), encoding: 'utf8' });
  return parseAllDocuments(text).map((d) => d.toJS() as Json);
}

test('kubectl kustomize deploy/ renders objects that are valid for Kubernetes', { skip: kubectlMissing() }, () => {
  const objects = rendered();
  assert.deepEqual(objects.map((o) => o.kind).sort(), ['ClusterRole', 'ClusterRole', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'Deployment', 'Namespace', 'NetworkPolicy', 'PodDisruptionBudget', 'Role', 'Role', 'RoleBinding', 'RoleBinding', 'Service', 'ServiceAccount']);
  for (const object of objects) {
    const Model = MODELS[object.kind];
    assert.ok(Model !== undefined, object.kind);
    assert.doesNotThrow(() => {
      new Model(object as never).validate();
    }, `${object.kind}/${object.metadata.name}`);
    const clusterScoped = ['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition'].includes(object.kind);
    if (!clusterScoped) assert.equal(object.metadata.namespace, 'modelcanary-system', `${object.kind} is in the controller's namespace`);
  }
});

test('the Deployment runs two leader-elected replicas, probed, limited and locked down', { skip: kubectlMissing() }, () => {
  const deployment = rendered().find((o) => o.kind === 'Deployment') ?? {};
  const pod = deployment.spec.template.spec;
  const [container] = pod.containers;
  assert.equal(deployment.spec.replicas, 2);
  assert.equal(container.image, 'ghcr.io/modelcanary/modelcanary:0.1.0');
  assert.deepEqual(container.args.slice(0, 2), ['run', '--leader-elect']);
  assert.equal(container.livenessProbe.httpGet.path, '/healthz');
  assert.equal(container.readinessProbe.httpGet.path, '/readyz');
  assert.ok(container.resources.requests.cpu && container.resources.limits.memory);
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(pod.securityContext.runAsUser, 1000, 'the image user (Dockerfile USER 1000)');
  assert.equal(container.securityContext.readOnlyRootFilesystem, true);
  assert.equal(container.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(container.securityContext.capabilities.drop, ['ALL']);
  assert.equal(pod.serviceAccountName, 'modelcanary');
  const [spread] = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution;
  assert.equal(pod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution, undefined, 'preferred only: two replicas still run on a one-node cluster');
  assert.equal(spread.podAffinityTerm.topologyKey, 'kubernetes.io/hostname', 'the replicas prefer different nodes');
  assert.deepEqual(spread.podAffinityTerm.labelSelector.matchLabels, deployment.spec.selector.matchLabels, 'spread from each other');
});

test('a PodDisruptionBudget keeps one replica through a drain; the NetworkPolicy lets only Prometheus reach the metrics port', { skip: kubectlMissing() }, () => {
  const objects = rendered();
  const deployment = objects.find((o) => o.kind === 'Deployment') ?? {};
  const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
  const selects = (selector: Json): boolean => Object.entries(selector.matchLabels as Record<string, string>).every(([k, v]) => podLabels[k] === v);

  const pdb = objects.find((o) => o.kind === 'PodDisruptionBudget') ?? {};
  assert.equal(pdb.spec.minAvailable, 1);
  assert.ok(selects(pdb.spec.selector), 'the budget covers the controller pods');

  const policy = objects.find((o) => o.kind === 'NetworkPolicy') ?? {};
  assert.ok(selects(policy.spec.podSelector), 'the policy covers the controller pods');
  assert.deepEqual(policy.spec.policyTypes, ['Ingress'], 'egress stays open: the API server, Prometheus, Slack and webhooks');
  const [container] = deployment.spec.template.spec.containers;
  const metricsPort = (container.ports as Json[]).find((p) => p.containerPort === 8080);
  assert.deepEqual(policy.spec.ingress.map((rule: Json) => rule.ports), [[{ protocol: 'TCP', port: metricsPort?.name }]], 'ingress only to the metrics port');
  assert.deepEqual(policy.spec.ingress[0].from, [{ namespaceSelector: {}, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }], 'only from Prometheus pods');
});

test('aggregate ClusterRoles let holders of edit/admin manage ModelCanaries and holders of view read them, and bind no one', { skip: kubectlMissing() }, () => {
  const objects = rendered();
  const roles = objects.filter((o) => o.kind === 'ClusterRole' && aggregated(o));
  const byName = new Map(roles.map((r) => [r.metadata.name as string, r]));
  assert.deepEqual([...byName.keys()].sort(), ['modelcanary-edit', 'modelcanary-view']);
  const aggregateTo = (role: Json | undefined): string[] =>
    Object.entries((role?.metadata.labels ?? {}) as Record<string, string>)
      .filter(([k, v]) => k.startsWith('rbac.authorization.k8s.io/aggregate-to-') && v === 'true')
      .map(([k]) => k.slice('rbac.authorization.k8s.io/aggregate-to-'.length))
      .sort();
  assert.deepEqual(aggregateTo(byName.get('modelcanary-edit')), ['admin', 'edit']);
  assert.deepEqual(aggregateTo(byName.get('modelcanary-view')), ['view']);
  const grants = (role: Json | undefined): string[] => ((role?.rules ?? []) as Json[]).flatMap((rule) => (rule.resources as string[]).map((res) => `${rule.apiGroups.join(',')}/${res}: ${(rule.verbs as string[]).join(',')}`)).sort();
  assert.deepEqual(grants(byName.get('modelcanary-edit')), [
    'modelcanary.io/modelcanaries/status: get,list,watch',
    'modelcanary.io/modelcanaries: get,list,watch,create,update,patch,delete,deletecollection',
  ]);
  assert.deepEqual(grants(byName.get('modelcanary-view')), ['modelcanary.io/modelcanaries/status: get,list,watch', 'modelcanary.io/modelcanaries: get,list,watch']);
  const bound = objects.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding').map((b) => b.roleRef.name as string);
  for (const name of byName.keys()) assert.ok(!bound.includes(name), `${name} reaches people through edit/view, not a binding of ours`);
});

test('RBAC grants only named verbs on the resources the controller uses', { skip: kubectlMissing() }, () => {
  const roles = rendered().filter((o) => (o.kind === 'ClusterRole' || o.kind === 'Role') && !aggregated(o));
  const grants = roles.flatMap((r) => (r.rules as Json[]).flatMap((rule) => (rule.resources as string[]).map((res) => `${rule.apiGroups[0] || 'core'}/${res}: ${(rule.verbs as string[]).join(',')}`)));
  for (const g of grants) assert.ok(!g.includes('*'), `no wildcards: ${g}`);
  assert.ok(grants.every((g) => !/\bdelete\b/.test(g)), 'the controller deletes nothing');
  assert.deepEqual(grants.sort(), [
    'coordination.k8s.io/leases: get,create,update',
    'core/events: create',
    'core/secrets: get',
    'gateway.networking.k8s.io/httproutes: get,update',
    'modelcanary.io/modelcanaries/status: update',
    'modelcanary.io/modelcanaries: get,list,watch,update',
    'networking.istio.io/destinationrules: list',
    'networking.istio.io/virtualservices: get,update',
  ]);
  const leases = roles.find((r) => r.kind === 'Role' && r.metadata.name === 'modelcanary-leader-election');
  assert.equal(leases?.metadata.namespace, 'modelcanary-system', 'leases only in the controller namespace');
});

test('no Secret outside the controller\'s namespace is readable by default; tenant credentials are an opt-in per namespace', { skip: kubectlMissing() }, () => {
  const objects = rendered();
  const readsSecrets = (role: Json): boolean => (role.rules as Json[]).some((rule) => (rule.resources as string[]).includes('secrets'));
  const clusterWide = objects.filter((o) => o.kind === 'ClusterRole' && readsSecrets(o));
  assert.deepEqual(clusterWide.map((o) => o.metadata.name), [], 'no ClusterRole of the default install reads Secrets');
  const secretRoles = objects.filter((o) => o.kind === 'Role' && readsSecrets(o));
  assert.deepEqual(secretRoles.map((o) => `${o.metadata.namespace}/${o.metadata.name}`), ['modelcanary-system/modelcanary-credentials']);
  const bindings = objects.filter((o) => o.kind === 'ClusterRoleBinding');
  for (const binding of bindings) assert.notEqual(binding.roleRef.name, 'modelcanary-tenant-credentials', 'the opt-in is never bound cluster-wide by the install');
});
