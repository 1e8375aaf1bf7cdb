// Monitoring: the alert rules of deploy/monitoring checked and unit-tested with the real promtool,
// their three copies (rules file, PrometheusRule, the chart's) held equal, the kustomize Component
// and the chart's monitoring values rendered with the real kubectl and helm, and what they render
// sent to a real kube-apiserver holding the prometheus-operator's CRDs (test/kube/build.sh copies
// them). grafana-operator's CRD cannot be had as a module, so GrafanaDashboards are checked by
// hand against its v1beta1 fields. Each tool missing here skips its tests, saying why; on CI
// (CI=true) that is a failure instead.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { envtestMissing, startEnvtest, type Envtest } from './kube/envtest.ts';
import { ROOT } from './helpers/manifests.ts';
import { HELM, HELM_MISSING } from './helpers/helm.ts';

type Json = Record<string, any>;

const REPO = fileURLToPath(ROOT);
const MONITORING = join(REPO, 'deploy', 'monitoring');
const CHART = join(REPO, 'charts', 'modelcanary');
const NAMESPACE = 'modelcanary-system';
const DASHBOARDS = ['rollout', 'fleet'] as const;
const ALERTS = [
  'ModelCanaryRolledBack',
  'ModelCanaryHeldWithoutEvidence',
  'ModelCanaryControllerDown',
  'ModelCanaryNoLeader',
  'ModelCanaryReconcileErrors',
  'ModelCanaryPrometheusUnreachable',
  'ModelCanaryNotificationsFailing',
];
/** The kinds deploy/monitoring and the chart's monitoring values add. */
const MONITORING_KINDS = new Set(['PrometheusRule', 'ServiceMonitor', 'PodMonitor', 'GrafanaDashboard', 'ConfigMap']);

// ── the tools, and when a missing one skips ───────────────────────────────────────────

function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, name)));
}

const PROMTOOL_MISSING = onPath('promtool') ? undefined : 'promtool is not installed: apt-get install -y prometheus (.ci/run does this)';
const KUBECTL_MISSING = onPath('kubectl') ? undefined : 'kubectl is not installed (.ci/run installs it)';
const ENVTEST_MISSING = envtestMissing() ?? KUBECTL_MISSING ?? HELM_MISSING;

/** Skip where a tool is missing, but never on CI, where the test runs and fails loudly. */
function skipUnlessCi(missing: string | undefined): string | undefined {
  return missing !== undefined && process.env.CI !== 'true' ? missing : undefined;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { cwd: REPO, env: options.env ?? process.env, timeout: 60_000, maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr: error !== null && stderr === '' ? error.message : stderr });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

function documents(text: string): Json[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Json | null)
    .filter((o): o is Json => o !== null);
}

function find(objects: readonly Json[], kind: string, name: string): Json {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found !== undefined, `${kind}/${name} is rendered`);
  return found;
}

function names(objects: readonly Json[]): string[] {
  return objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
}

// ── what the rules files say ──────────────────────────────────────────────────────────

const RULES_FILE = join(MONITORING, 'alerts.rules.yaml');
const CHART_RULES_FILE = join(CHART, 'files', 'alerts.rules.yaml');
const RULE_GROUPS = parse(readFileSync(RULES_FILE, 'utf8')).groups as Json[];
const RULES = RULE_GROUPS.flatMap((group) => group.rules as Json[]);

function rule(alert: string): Json {
  const found = RULES.find((r) => r.alert === alert);
  assert.ok(found !== undefined, `alerts.rules.yaml has ${alert}`);
  return found;
}

/** The regex of job names ModelCanaryControllerDown counts as the controller, anchored as PromQL anchors it. */
function controllerJobRegex(): RegExp {
  const pattern = /up\{job=~"([^"]+)"\}/.exec(rule('ModelCanaryControllerDown').expr as string)?.[1];
  assert.ok(pattern !== undefined, 'ModelCanaryControllerDown selects up by a job regex');
  return new RegExp(`^(?:${pattern})$`);
}

// ── what a monitor, a dashboard ConfigMap and a GrafanaDashboard must be ──────────────

/** The dashboards as the repository keeps them (dashboards/*.json), parsed. */
function dashboardJson(dashboard: string): unknown {
  return JSON.parse(readFileSync(join(REPO, 'dashboards', `modelcanary-${dashboard}.json`), 'utf8'));
}

/** A ConfigMap per dashboard, labelled for the sidecar, holding the whole dashboard. */
function checkDashboardConfigMaps(objects: readonly Json[], prefix: string): void {
  for (const dashboard of DASHBOARDS) {
    const configMap = find(objects, 'ConfigMap', `${prefix}-dashboard-${dashboard}`);
    assert.doesNotThrow(() => {
      new ConfigMap(configMap).validate();
    }, configMap.metadata.name);
    assert.equal(configMap.metadata.namespace, NAMESPACE);
    assert.equal(configMap.metadata.labels.grafana_dashboard, '1', 'the label Grafana\'s sidecar looks for, as a string');
    const key = `modelcanary-${dashboard}.json`;
    assert.deepEqual(Object.keys(configMap.data as Json), [key]);
    assert.deepEqual(JSON.parse(configMap.data[key] as string), dashboardJson(dashboard), `${configMap.metadata.name} holds dashboards/${key} whole`);
  }
}

/** GrafanaDashboard v1beta1's spec fields (grafana-operator v5, config/crd/bases/grafana.integreatly.org_grafanadashboards.yaml). */
const GRAFANA_DASHBOARD_FIELDS = new Set([
  'allowCrossNamespaceImport', 'configMapRef', 'contentCacheDuration', 'datasources', 'envFrom', 'envs', 'folder', 'folderRef', 'folderUID', 'grafanaCom', 'gzipJson',
  'instanceSelector', 'json', 'jsonnet', 'jsonnetLib', 'plugins', 'resyncPeriod', 'suspend', 'uid', 'url', 'urlAuthorization', 'variables',
]);

/** What grafana-operator's CRD would refuse or could not use: unknown fields, no instanceSelector, a ConfigMap key that is not there. */
function checkGrafanaDashboard(dashboard: Json, objects: readonly Json[]): void {
  const label = `GrafanaDashboard/${dashboard.metadata.name}`;
  assert.equal(dashboard.apiVersion, 'grafana.integreatly.org/v1beta1');
  assert.equal(dashboard.metadata.namespace, NAMESPACE);
  for (const field of Object.keys(dashboard.spec as Json)) assert.ok(GRAFANA_DASHBOARD_FIELDS.has(field), `${label}: spec.${field} is a GrafanaDashboard field`);
  const selector = dashboard.spec.instanceSelector as Json;
  assert.ok(Object.keys(selector.matchLabels ?? {}).length > 0, `${label} selects Grafana instances by label (instanceSelector is required)`);
  for (const value of Object.values(selector.matchLabels as Json)) assert.equal(typeof value, 'string');
  assert.equal(dashboard.spec.allowCrossNamespaceImport, true, 'Grafana usually runs in another namespace');
  assert.ok(dashboard.spec.folder === undefined || (dashboard.spec.folderRef === undefined && dashboard.spec.folderUID === undefined), 'folder excludes folderRef and folderUID');
  const ref = dashboard.spec.configMapRef as Json;
  assert.deepEqual(Object.keys(ref).sort(), ['key', 'name']);
  const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === ref.name && o.metadata.namespace === dashboard.metadata.namespace);
  assert.ok(configMap !== undefined, `${label} names a ConfigMap of its namespace: ${ref.name}`);
  assert.equal(typeof configMap.data[ref.key], 'string', `${label} names a key of ${ref.name}: ${ref.key}`);
}

/** The metrics' namespace label is the ModelCanary's: without honorLabels Prometheus renames it exported_namespace and puts the controller's there. */
function checkHonorsLabels(monitor: Json): void {
  const endpoints = (monitor.kind === 'ServiceMonitor' ? monitor.spec.endpoints : monitor.spec.podMetricsEndpoints) as Json[];
  for (const endpoint of endpoints) assert.equal(endpoint.honorLabels, true, `${monitor.kind}/${monitor.metadata.name} keeps the ModelCanary's namespace label (honorLabels)`);
}

/** A ServiceMonitor or PodMonitor that reaches the controller's metrics port; returns the job Prometheus will name. */
function checkMonitor(monitor: Json, objects: readonly Json[]): string {
  const label = `${monitor.kind}/${monitor.metadata.name}`;
  assert.equal(monitor.apiVersion, 'monitoring.coreos.com/v1');
  assert.deepEqual(monitor.spec.namespaceSelector, { matchNames: [NAMESPACE] });
  const matches = (labels: Json | undefined): boolean => Object.entries(monitor.spec.selector.matchLabels as Record<string, string>).every(([k, v]) => labels?.[k] === v);
  const deployment = objects.find((o) => o.kind === 'Deployment') ?? {};
  const containerPorts = (deployment.spec.template.spec.containers[0].ports as Json[]).map((p) => p.name as string);
  const endpoints = (monitor.kind === 'ServiceMonitor' ? monitor.spec.endpoints : monitor.spec.podMetricsEndpoints) as Json[];
  assert.equal(endpoints.length, 1);
  const [endpoint] = endpoints as [Json];
  assert.equal(endpoint.path, '/metrics');
  assert.match(endpoint.interval as string, /^\d+(ms|s|m|h)$/);
  if (monitor.kind === 'PodMonitor') {
    assert.ok(matches(deployment.spec.template.metadata.labels as Json), `${label} selects the controller pods`);
    assert.ok(containerPorts.includes(endpoint.port as string), `${label}: ${endpoint.port} is a container port`);
    return `${monitor.metadata.namespace}/${monitor.metadata.name}`;
  }
  const services = objects.filter((o) => o.kind === 'Service' && matches(o.metadata.labels as Json));
  assert.equal(services.length, 1, `${label} selects the metrics Service alone`);
  const [service] = services as [Json];
  const port = (service.spec.ports as Json[]).find((p) => p.name === endpoint.port);
  assert.ok(port !== undefined, `${label}: ${endpoint.port} is a port of ${service.metadata.name}`);
  assert.ok(containerPorts.includes(port.targetPort as string), `${service.metadata.name} sends it to the container's ${port.targetPort}`);
  return service.metadata.name as string;
}

// ── the rules, with promtool ──────────────────────────────────────────────────────────

describe('the alert rules', () => {
  test('promtool check rules: the rules file and the chart\'s copy are valid', { skip: skipUnlessCi(PROMTOOL_MISSING) }, async () => {
    const checked = await run('promtool', ['check', 'rules', RULES_FILE, CHART_RULES_FILE]);
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
    assert.equal(checked.stdout.match(new RegExp(`SUCCESS: ${RULES.length} rules found`, 'g'))?.length, 2, checked.stdout);
  });

  test('promtool test rules: every alert fires when it should and stays quiet in the cases beside it', { skip: skipUnlessCi(PROMTOOL_MISSING) }, async () => {
    const testFile = join(MONITORING, 'alerts.test.yaml');
    const tested = await run('promtool', ['test', 'rules', testFile]);
    assert.equal(tested.code, 0, tested.stdout + tested.stderr);
    assert.match(tested.stdout, /SUCCESS/);
    const evaluations = (parse(readFileSync(testFile, 'utf8')).tests as Json[]).flatMap((t) => t.alert_rule_test as Json[]);
    for (const alert of ALERTS) {
      const mine = evaluations.filter((e) => e.alertname === alert);
      assert.ok(mine.some((e) => (e.exp_alerts as Json[]).length > 0), `alerts.test.yaml has ${alert} firing`);
      assert.ok(mine.some((e) => (e.exp_alerts as Json[]).length === 0), `alerts.test.yaml has ${alert} quiet`);
    }
  });

  test('every alert says how urgent it is, which ModelCanary or controller, and what to do, without links', () => {
    assert.deepEqual(RULE_GROUPS.map((g) => g.name), ['modelcanary']);
    assert.deepEqual(RULES.map((r) => r.alert), ALERTS);
    for (const r of RULES) {
      assert.ok(['critical', 'warning'].includes(r.labels.severity as string), `${r.alert}: severity ${r.labels.severity}`);
      assert.deepEqual(Object.keys(r.annotations as Json).sort(), ['description', 'summary'], `${r.alert}: a summary and a description, no runbook_url`);
      const text = `${r.annotations.summary} ${r.annotations.description}`;
      assert.doesNotMatch(text, /https?:\/\//, `${r.alert} links nowhere`);
      assert.match(r.annotations.description as string, /kubectl /, `${r.alert} says what to run`);
      if (/by \(namespace, name\)/.test(r.expr as string)) {
        assert.match(r.annotations.summary as string, /ModelCanary \{\{ \$labels\.namespace \}\}\/\{\{ \$labels\.name \}\}/, `${r.alert} names the ModelCanary`);
        assert.match(r.annotations.description as string, /kubectl describe mcan\s+-n \{\{ \$labels\.namespace \}\} \{\{ \$labels\.name \}\}/, `${r.alert} says how to look at it`);
      }
    }
  });

  test('the PrometheusRule holds the rules file\'s groups, and the chart\'s copy is the rules file byte for byte', () => {
    const prometheusRule = parse(readFileSync(join(MONITORING, 'prometheusrule.yaml'), 'utf8')) as Json;
    assert.deepEqual(prometheusRule.spec.groups, RULE_GROUPS, 'deploy/monitoring/prometheusrule.yaml: its spec.groups must be alerts.rules.yaml\'s groups, indented under spec');
    const copy = readFileSync(CHART_RULES_FILE, 'utf8');
    assert.ok(copy === readFileSync(RULES_FILE, 'utf8'), 'charts/modelcanary/files/alerts.rules.yaml differs: cp deploy/monitoring/alerts.rules.yaml charts/modelcanary/files/');
  });

  test('the job regex of ModelCanaryControllerDown matches every job our manifests and README make, and no other', () => {
    const regex = controllerJobRegex();
    for (const job of ['modelcanary-metrics', 'prod-modelcanary-metrics', `${NAMESPACE}/modelcanary`, 'modelcanary']) assert.match(job, regex);
    for (const job of ['kubelet', 'prometheus', 'istio-mesh']) assert.doesNotMatch(job, regex);
  });

  test('the README\'s prometheus.yml for a Prometheus without the operator is valid, loads the rules, and its job counts as the controller', { skip: skipUnlessCi(PROMTOOL_MISSING) }, async () => {
    const readme = readFileSync(join(MONITORING, 'README.md'), 'utf8');
    const block = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '').find((b) => b.includes('scrape_configs:'));
    assert.ok(block !== undefined, 'README.md shows a prometheus.yml');
    const config = parse(block) as Json;
    const [job] = config.scrape_configs as [Json];
    assert.equal(job.honor_labels, true);
    assert.match(job.job_name as string, controllerJobRegex());
    // Debian's promtool is built without Kubernetes discovery: check the rest with a static target.
    assert.ok(job.kubernetes_sd_configs !== undefined, 'the README discovers the pods');
    const checkable = { ...config, rule_files: [RULES_FILE], scrape_configs: [{ ...job, kubernetes_sd_configs: undefined, static_configs: [{ targets: ['127.0.0.1:8080'] }] }] };
    const dir = await mkdtemp(join(tmpdir(), 'modelcanary-prometheus-'));
    try {
      await writeFile(join(dir, 'prometheus.yml'), stringify(checkable));
      const checked = await run('promtool', ['check', 'config', join(dir, 'prometheus.yml')]);
      assert.equal(checked.code, 0, checked.stdout + checked.stderr);
      assert.match(checked.stdout, new RegExp(`SUCCESS: ${RULES.length} rules found`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// ── the kustomize Component ───────────────────────────────────────────────────────────

/** `kubectl kustomize` of an overlay of deploy/ with the Component, as README.md shows one, and these patches. */
async function kustomize(patches: Json[] = []): Promise<Json[]> {
  if (KUBECTL_MISSING !== undefined) throw new Error(`CI=true and kubectl cannot run: ${KUBECTL_MISSING}`);
  // An overlay in a folder of its own: kustomize refuses a base that contains the overlay.
  const dir = await mkdtemp(join(tmpdir(), 'modelcanary-overlay-'));
  try {
    const overlay = { apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: [relative(dir, join(REPO, 'deploy'))], components: [relative(dir, MONITORING)], patches };
    await writeFile(join(dir, 'kustomization.yaml'), stringify(overlay));
    const rendered = await run('kubectl', ['kustomize', dir]);
    assert.equal(rendered.code, 0, rendered.stderr);
    return documents(rendered.stdout);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const README_PATCHES = {
  release: { target: { kind: 'PrometheusRule|ServiceMonitor' }, patch: stringify([{ op: 'add', path: '/metadata/labels/release', value: 'kube-prometheus-stack' }]) },
  grafana: { target: { kind: 'GrafanaDashboard' }, patch: stringify([{ op: 'replace', path: '/spec/instanceSelector/matchLabels', value: { dashboards: 'my-grafana' } }]) },
  job: { target: { kind: 'PrometheusRule', name: 'modelcanary' }, patch: stringify([{ op: 'replace', path: '/spec/groups/0/rules/2/expr', value: 'absent(up{job="my-scrape-job"} == 1)' }]) },
  noGrafanaOperator: { target: { kind: 'GrafanaDashboard' }, patch: stringify({ $patch: 'delete', apiVersion: 'grafana.integreatly.org/v1beta1', kind: 'GrafanaDashboard', metadata: { name: 'any' } }) },
};

describe('the kustomize Component deploy/monitoring', { skip: skipUnlessCi(KUBECTL_MISSING) }, () => {
  test('adds to deploy/ the dashboards\' ConfigMaps for the sidecar, the GrafanaDashboards, the ServiceMonitor and the PrometheusRule, and changes nothing of deploy/', async () => {
    const objects = await kustomize();
    const added = objects.filter((o) => MONITORING_KINDS.has(o.kind as string));
    assert.deepEqual(names(added), [
      'ConfigMap/modelcanary-dashboard-fleet',
      'ConfigMap/modelcanary-dashboard-rollout',
      'GrafanaDashboard/modelcanary-fleet',
      'GrafanaDashboard/modelcanary-rollout',
      'PrometheusRule/modelcanary',
      'ServiceMonitor/modelcanary',
    ]);
    for (const object of added) assert.equal(object.metadata.namespace, NAMESPACE, `${object.kind}/${object.metadata.name}`);
    checkDashboardConfigMaps(objects, 'modelcanary');
    for (const dashboard of added.filter((o) => o.kind === 'GrafanaDashboard')) checkGrafanaDashboard(dashboard, objects);
    assert.deepEqual(find(objects, 'GrafanaDashboard', 'modelcanary-rollout').spec.instanceSelector, { matchLabels: { dashboards: 'grafana' } }, 'the documented placeholder');
    const monitor = find(objects, 'ServiceMonitor', 'modelcanary');
    assert.match(checkMonitor(monitor, objects), controllerJobRegex());
    checkHonorsLabels(monitor);
    assert.deepEqual(find(objects, 'PrometheusRule', 'modelcanary').spec.groups, RULE_GROUPS);

    const plain = await run('kubectl', ['kustomize', join(REPO, 'deploy')]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(objects.filter((o) => !MONITORING_KINDS.has(o.kind as string)), documents(plain.stdout), 'deploy/\'s own objects are as without the Component');
  });

  test('the README\'s patches: the label Prometheus selects by, your Grafana, another job, and no grafana-operator', async () => {
    const objects = await kustomize([README_PATCHES.release, README_PATCHES.grafana, README_PATCHES.job]);
    assert.equal(find(objects, 'PrometheusRule', 'modelcanary').metadata.labels.release, 'kube-prometheus-stack');
    assert.equal(find(objects, 'ServiceMonitor', 'modelcanary').metadata.labels.release, 'kube-prometheus-stack');
    for (const dashboard of objects.filter((o) => o.kind === 'GrafanaDashboard')) assert.deepEqual(dashboard.spec.instanceSelector, { matchLabels: { dashboards: 'my-grafana' } });
    const patched = find(objects, 'PrometheusRule', 'modelcanary').spec.groups[0].rules as Json[];
    assert.deepEqual(patched.find((r) => r.alert === 'ModelCanaryControllerDown'), { ...rule('ModelCanaryControllerDown'), expr: 'absent(up{job="my-scrape-job"} == 1)' }, 'rules/2 is ModelCanaryControllerDown');

    const withoutOperator = await kustomize([README_PATCHES.noGrafanaOperator]);
    assert.deepEqual(withoutOperator.filter((o) => o.kind === 'GrafanaDashboard'), []);
    checkDashboardConfigMaps(withoutOperator, 'modelcanary');
  });
});

// ── the chart's monitoring values ─────────────────────────────────────────────────────

// helm keeps its own config, cache and data apart from the user's.
const HELM_HOME = await mkdtemp(join(tmpdir(), 'modelcanary-helm-'));
after(() => rm(HELM_HOME, { recursive: true, force: true }));

function helm(args: string[]): Promise<Run> {
  if (HELM_MISSING !== undefined) throw new Error(`CI=true and helm cannot run: ${HELM_MISSING}`);
  const env = { PATH: process.env.PATH ?? '', HOME: HELM_HOME, HELM_CACHE_HOME: join(HELM_HOME, 'cache'), HELM_CONFIG_HOME: join(HELM_HOME, 'config'), HELM_DATA_HOME: join(HELM_HOME, 'data') };
  return run(HELM, args, { env });
}

/** `helm lint --strict`, then `helm template` as release modelcanary in modelcanary-system. */
async function template(args: string[]): Promise<Json[]> {
  const lint = await helm(['lint', CHART, '--strict', '--namespace', NAMESPACE, ...args]);
  assert.equal(lint.code, 0, lint.stdout + lint.stderr);
  const rendered = await helm(['template', 'modelcanary', CHART, '--namespace', NAMESPACE, ...args]);
  assert.equal(rendered.code, 0, rendered.stderr);
  return documents(rendered.stdout);
}

const ALL_ON = [
  '--set', 'monitoring.prometheusRule.enabled=true',
  '--set', 'monitoring.prometheusRule.labels.release=kube-prometheus-stack',
  '--set', 'monitoring.dashboards.enabled=true',
  '--set', 'monitoring.dashboards.grafanaOperator.enabled=true',
  '--set', 'monitoring.dashboards.grafanaOperator.instanceSelector.matchLabels.dashboards=grafana',
  '--set', 'monitoring.podMonitor.enabled=true',
];

describe('the chart\'s monitoring values', { skip: skipUnlessCi(HELM_MISSING) }, () => {
  test('on: the rules file\'s PrometheusRule, the dashboards\' ConfigMaps and GrafanaDashboards, and a PodMonitor, named as deploy/monitoring names them', async () => {
    const objects = await template(ALL_ON);
    assert.deepEqual(names(objects.filter((o) => MONITORING_KINDS.has(o.kind as string))), [
      'ConfigMap/modelcanary-dashboard-fleet',
      'ConfigMap/modelcanary-dashboard-rollout',
      'GrafanaDashboard/modelcanary-fleet',
      'GrafanaDashboard/modelcanary-rollout',
      'PodMonitor/modelcanary',
      'PrometheusRule/modelcanary',
    ]);
    const prometheusRule = find(objects, 'PrometheusRule', 'modelcanary');
    assert.deepEqual(prometheusRule.spec.groups, RULE_GROUPS, 'the groups of files/alerts.rules.yaml, templates left to Prometheus');
    assert.equal(prometheusRule.metadata.labels.release, 'kube-prometheus-stack');
    assert.equal(prometheusRule.metadata.labels['app.kubernetes.io/managed-by'], 'Helm');
    checkDashboardConfigMaps(objects, 'modelcanary');
    for (const dashboard of objects.filter((o) => o.kind === 'GrafanaDashboard')) checkGrafanaDashboard(dashboard, objects);
    const monitor = find(objects, 'PodMonitor', 'modelcanary');
    assert.match(checkMonitor(monitor, objects), controllerJobRegex());
    checkHonorsLabels(monitor);
  });

  test('the chart\'s ServiceMonitor keeps the ModelCanary\'s namespace label', async () => {
    const objects = await template(['--set', 'serviceMonitor.enabled=true']);
    checkHonorsLabels(find(objects, 'ServiceMonitor', 'modelcanary'));
  });

  test('a release of another name, with the ServiceMonitor: its job still counts as the controller; the sidecar label and Grafana selector are the user\'s', async () => {
    const rendered = await helm([
      'template', 'prod', CHART, '--namespace', NAMESPACE,
      '--set', 'serviceMonitor.enabled=true',
      '--set', 'monitoring.prometheusRule.enabled=true',
      '--set', 'monitoring.dashboards.enabled=true',
      '--set', 'monitoring.dashboards.label=dashboards',
      '--set-string', 'monitoring.dashboards.labelValue=modelcanary',
      '--set', 'monitoring.dashboards.grafanaOperator.enabled=true',
      '--set-json', 'monitoring.dashboards.grafanaOperator.instanceSelector={"matchLabels":{"grafana":"main"}}',
    ]);
    assert.equal(rendered.code, 0, rendered.stderr);
    const objects = documents(rendered.stdout);
    assert.match(checkMonitor(find(objects, 'ServiceMonitor', 'prod-modelcanary'), objects), controllerJobRegex());
    assert.deepEqual(find(objects, 'PrometheusRule', 'prod-modelcanary').spec.groups, RULE_GROUPS);
    const configMap = find(objects, 'ConfigMap', 'prod-modelcanary-dashboard-rollout');
    assert.equal(configMap.metadata.labels.dashboards, 'modelcanary');
    assert.equal(configMap.metadata.labels.grafana_dashboard, undefined);
    assert.deepEqual(find(objects, 'GrafanaDashboard', 'prod-modelcanary-rollout').spec.instanceSelector, { matchLabels: { grafana: 'main' } });
  });

  test('off by default: none of the monitoring objects', async () => {
    const objects = await template([]);
    assert.deepEqual(objects.filter((o) => MONITORING_KINDS.has(o.kind as string)), []);
  });

  test('refuses monitoring values that cannot work, saying why', async () => {
    const cases: { name: string; args: string[]; error: RegExp }[] = [
      { name: 'a PodMonitor beside the ServiceMonitor scrapes twice', args: ['--set', 'serviceMonitor.enabled=true', '--set', 'monitoring.podMonitor.enabled=true'], error: /would both scrape the controller: enable one/ },
      { name: 'GrafanaDashboards without their ConfigMaps', args: ['--set', 'monitoring.dashboards.grafanaOperator.enabled=true'], error: /set monitoring\.dashboards\.enabled too/ },
      { name: 'GrafanaDashboards that select no Grafana', args: ['--set', 'monitoring.dashboards.enabled=true', '--set', 'monitoring.dashboards.grafanaOperator.enabled=true'], error: /instanceSelector must select your Grafana resources/ },
      { name: 'a misspelt value', args: ['--set', 'monitoring.prometheusRules.enabled=true'], error: /prometheusRules/ },
      { name: 'a label value that is not a string', args: ['--set', 'monitoring.dashboards.enabled=true', '--set', 'monitoring.dashboards.labelValue=1'], error: /labelValue/ },
    ];
    for (const c of cases) {
      const rendered = await helm(['template', 'modelcanary', CHART, '--namespace', NAMESPACE, ...c.args]);
      assert.notEqual(rendered.code, 0, c.name);
      assert.match(rendered.stderr, c.error, c.name);
    }
  });
});

// ── on a real API server, with the prometheus-operator's CRDs ─────────────────────────

describe('on a real kube-apiserver with the prometheus-operator CRDs', { skip: skipUnlessCi(ENVTEST_MISSING) }, () => {
  let envtest: Envtest | undefined;

  before(
    async () => {
      if (ENVTEST_MISSING !== undefined) throw new Error(`CI=true and the envtest cannot run: ${ENVTEST_MISSING}`);
      envtest = await startEnvtest();
      const created = await kubectl(['create', 'namespace', NAMESPACE]);
      assert.equal(created.code, 0, created.stderr);
    },
    { timeout: 90_000 },
  );

  after(async () => {
    await envtest?.stop();
  });

  function kubectl(args: string[], input?: string): Promise<Run> {
    assert.ok(envtest !== undefined, 'the envtest started');
    return run('kubectl', ['--kubeconfig', envtest.kubeconfigFile, '--cache-dir', join(envtest.dir, 'kubectl-cache'), ...args], input === undefined ? {} : { input });
  }

  /** kubectl apply --dry-run=server, with strict field validation: every field must be the CRD's. */
  async function accepted(objects: readonly Json[], from: string): Promise<void> {
    const list = objects.filter((o) => MONITORING_KINDS.has(o.kind as string) && o.kind !== 'GrafanaDashboard');
    const applied = await kubectl(['apply', '--dry-run=server', '-f', '-'], list.map((o) => stringify(o)).join('---\n'));
    assert.equal(applied.code, 0, `${from}: ${applied.stderr}`);
    assert.equal(applied.stderr, '', `${from}: the server warned`);
    for (const o of list) assert.match(applied.stdout, new RegExp(`^${o.kind.toLowerCase()}(\\.\\S+)?/${o.metadata.name} created \\(server dry run\\)$`, 'm'), `${from}: ${o.kind}/${o.metadata.name}`);
  }

  test('the Component\'s and the chart\'s PrometheusRule, ServiceMonitor, PodMonitor and dashboard ConfigMaps are accepted as they are', async () => {
    await accepted(await kustomize(), 'deploy/monitoring');
    await accepted(await template(ALL_ON), 'the chart, PodMonitor');
    await accepted(await template(['--set', 'serviceMonitor.enabled=true', '--set', 'monitoring.prometheusRule.enabled=true']), 'the chart, ServiceMonitor');
  });

  test('the CRDs do check: a mistyped duration and a misspelt field are refused, naming the field', async () => {
    const objects = await kustomize();
    const prometheusRule = structuredClone(find(objects, 'PrometheusRule', 'modelcanary'));
    prometheusRule.spec.groups[0].rules[1].for = '30 minutes';
    const refusedRule = await kubectl(['apply', '--dry-run=server', '-f', '-'], stringify(prometheusRule));
    assert.notEqual(refusedRule.code, 0);
    assert.match(refusedRule.stderr, /spec\.groups\[0\]\.rules\[1\]\.for/);
    const serviceMonitor = structuredClone(find(objects, 'ServiceMonitor', 'modelcanary'));
    serviceMonitor.spec.endpoints[0].honourLabels = true;
    const refusedMonitor = await kubectl(['apply', '--dry-run=server', '-f', '-'], stringify(serviceMonitor));
    assert.notEqual(refusedMonitor.code, 0);
    assert.match(refusedMonitor.stderr, /honourLabels/);
  });
});
