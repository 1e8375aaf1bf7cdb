import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkModelCanary } from '../src/api/validate.ts';
import { exampleManifests, istioManifest } from './helpers/manifests.ts';

type Edit = (m: Record<string, any>) => void;

const gatewayApi: Edit = (m) => {
  m.spec.trafficRouting = { gatewayAPI: { httpRoute: 'fraud-detector' } };
  m.spec.stable.destination = { host: 'fraud-v1', port: 8080 };
  m.spec.canary.destination = { host: 'fraud-v2', port: 8080 };
};

/** Each case: one edit of a valid manifest, and every problem `validate` must report, exactly. */
const invalid: { name: string; edit: Edit; problems: [string, string][] }[] = [
  { name: 'step above 100', edit: (m) => (m.spec.analysis.steps = [10, 30, 100, 150]), problems: [['spec.analysis.steps[3]', 'must be at most 100'], ['spec.analysis.steps', 'must end at 100: the last step promotes the canary']] },
  { name: 'step of 0', edit: (m) => (m.spec.analysis.steps = [0, 50, 100]), problems: [['spec.analysis.steps[0]', 'must be at least 1']] },
  { name: 'steps not increasing', edit: (m) => (m.spec.analysis.steps = [10, 50, 30, 100]), problems: [['spec.analysis.steps[2]', 'must be greater than the step before it (50)']] },
  { name: 'steps not ending at 100', edit: (m) => (m.spec.analysis.steps = [10, 30, 60]), problems: [['spec.analysis.steps', 'must end at 100: the last step promotes the canary']] },
  { name: 'fractional step', edit: (m) => (m.spec.analysis.steps = [12.5, 100]), problems: [['spec.analysis.steps[0]', 'must be a whole number, not 12.5']] },
  { name: 'empty steps', edit: (m) => (m.spec.analysis.steps = []), problems: [['spec.analysis.steps', 'must have at least 2 items'], ['spec.analysis.steps', 'must end at 100: the last step promotes the canary']] },
  { name: 'a single step of 100', edit: (m) => (m.spec.analysis.steps = [100]), problems: [['spec.analysis.steps', 'must have at least 2 items']] },
  { name: 'misspelt failureThreshold', edit: (m) => (m.spec.analysis.failureThresold = 3), problems: [['spec.analysis.failureThresold', 'unknown field (did you mean failureThreshold?)']] },
  { name: 'unknown field far from any', edit: (m) => (m.spec.rollbackWebhook = 'x'), problems: [['spec.rollbackWebhook', 'unknown field; known fields: model, stable, canary, trafficRouting, analysis, metricsProvider, notifications, suspend']] },
  { name: 'misspelt metric field', edit: (m) => (m.spec.analysis.metrics[1].quantil = 0.9), problems: [['spec.analysis.metrics[1].quantil', 'unknown field (did you mean quantile?)']] },
  { name: 'misspelt metric type', edit: (m) => (m.spec.analysis.metrics[1].type = 'latencey'), problems: [['spec.analysis.metrics[1].type', 'must be one of "errorRate", "latency", "prometheus", "outliers", "ttft", "interTokenLatency", "e2eLatency", "inferenceErrorRate" (did you mean latency?)']] },
  { name: 'metric without type', edit: (m) => delete m.spec.analysis.metrics[0].type, problems: [['spec.analysis.metrics[0].type', 'is required: one of errorRate, latency, prometheus, outliers, ttft, interTokenLatency, e2eLatency, inferenceErrorRate']] },
  { name: 'error rate above 1', edit: (m) => (m.spec.analysis.metrics[0].max = 1.5), problems: [['spec.analysis.metrics[0].max', 'must be at most 1']] },
  { name: 'error rate as a percent string', edit: (m) => (m.spec.analysis.metrics[0].max = '1%'), problems: [['spec.analysis.metrics[0].max', 'must be a number, not "1%"']] },
  { name: 'quantile of 99', edit: (m) => (m.spec.analysis.metrics[1].quantile = 99), problems: [['spec.analysis.metrics[1].quantile', 'must be less than 1']] },
  { name: 'latency without any bound', edit: (m) => delete m.spec.analysis.metrics[1].maxMs, problems: [['spec.analysis.metrics[1]', 'latency metrics need maxMs, maxRatioToStable or both']] },
  { name: 'latency ratio below 1', edit: (m) => (m.spec.analysis.metrics[1].maxRatioToStable = 0.8), problems: [['spec.analysis.metrics[1].maxRatioToStable', 'must be at least 1']] },
  { name: 'query field on an errorRate metric', edit: (m) => (m.spec.analysis.metrics[0].query = 'up'), problems: [['spec.analysis.metrics[0].query', 'unknown field; known fields: name, type, max']] },
  { name: 'prometheus metric without bounds', edit: (m) => delete m.spec.analysis.metrics[2].max, problems: [['spec.analysis.metrics[2]', 'prometheus metrics need at least one of min, max, maxRatioToStable and minRatioToStable']] },
  { name: 'prometheus min above max', edit: (m) => (m.spec.analysis.metrics[2].min = 3), problems: [['spec.analysis.metrics[2].min', 'min must not be greater than max']] },
  { name: 'unknown template variable', edit: (m) => (m.spec.analysis.metrics[2].query = 'ttft{model="{{ modle }}"}'), problems: [['spec.analysis.metrics[2].query', 'unknown template variable "modle" (did you mean model?)']] },
  { name: 'empty query', edit: (m) => (m.spec.analysis.metrics[2].query = ''), problems: [['spec.analysis.metrics[2].query', 'must not be empty']] },
  { name: 'duplicate metric names', edit: (m) => (m.spec.analysis.metrics[1].name = 'error-rate'), problems: [['spec.analysis.metrics[1].name', '"error-rate" is already the name of another metric']] },
  { name: 'metric name with capitals', edit: (m) => (m.spec.analysis.metrics[1].name = 'P99'), problems: [['spec.analysis.metrics[1].name', 'must be a DNS label: lower-case letters, digits and "-", starting and ending with a letter or digit']] },
  { name: 'no metrics', edit: (m) => (m.spec.analysis.metrics = []), problems: [['spec.analysis.metrics', 'must have at least 1 item']] },
  { name: 'interval without unit', edit: (m) => (m.spec.analysis.interval = '30'), problems: [['spec.analysis.interval', 'must be a duration such as 30s, 1m30s or 500ms (units h, m, s, ms)']] },
  { name: 'watchInterval longer than interval', edit: (m) => (m.spec.analysis.watchInterval = '1m'), problems: [['spec.analysis.watchInterval', 'must not be longer than interval']] },
  { name: 'interval too long', edit: (m) => (m.spec.analysis.interval = '2h'), problems: [['spec.analysis.interval', 'must be between 1s and 1h']] },
  { name: 'metric window too short', edit: (m) => (m.spec.analysis.metrics[2].window = '500ms'), problems: [['spec.analysis.metrics[2].window', 'must be between 1s and 24h']] },
  { name: 'window on a built-in metric', edit: (m) => (m.spec.analysis.metrics[0].window = '1m'), problems: [['spec.analysis.metrics[0].window', 'unknown field; known fields: name, type, max']] },
  { name: 'failureThreshold of 0', edit: (m) => (m.spec.analysis.failureThreshold = 0), problems: [['spec.analysis.failureThreshold', 'must be at least 1']] },
  { name: 'negative minRequests', edit: (m) => (m.spec.analysis.minRequests = -5), problems: [['spec.analysis.minRequests', 'must be at least 0']] },
  { name: 'same version twice', edit: (m) => (m.spec.canary.version = 'v1'), problems: [['spec.canary.version', 'must differ from stable.version: a canary is a new version']] },
  { name: 'same destination twice', edit: (m) => (m.spec.canary.destination.subset = 'v1'), problems: [['spec.canary.destination', 'must differ from stable.destination: give each version its own subset (or host)']] },
  { name: 'version with a space', edit: (m) => (m.spec.canary.version = 'v2 beta'), problems: [['spec.canary.version', 'must be a Kubernetes label value: letters, digits, "-", "_" and ".", starting and ending with a letter or digit']] },
  { name: 'missing canary', edit: (m) => delete m.spec.canary, problems: [['spec.canary', 'is required']] },
  { name: 'missing destination host', edit: (m) => delete m.spec.stable.destination.host, problems: [['spec.stable.destination', 'set exactly one of host (a Service) and inferencePool (an InferencePool, with gatewayAPI)']] },
  { name: 'port out of range', edit: (m) => (m.spec.stable.destination.port = 70000), problems: [['spec.stable.destination.port', 'must be at most 65535']] },
  { name: 'two routing providers', edit: (m) => (m.spec.trafficRouting.gatewayAPI = { httpRoute: 'r' }), problems: [['spec.trafficRouting', 'set exactly one of istio and gatewayAPI']] },
  { name: 'no routing provider', edit: (m) => (m.spec.trafficRouting = {}), problems: [['spec.trafficRouting', 'set exactly one of istio and gatewayAPI']] },
  { name: 'Gateway API with a subset', edit: (m) => { gatewayApi(m); m.spec.canary.destination.subset = 'v2'; }, problems: [['spec.canary.destination.subset', 'subset is for Istio; with gatewayAPI each version is its own Service, named by host']] },
  { name: 'Gateway API without a port', edit: (m) => { gatewayApi(m); delete m.spec.stable.destination.port; }, problems: [['spec.stable.destination.port', 'port is required with gatewayAPI: HTTPRoute backendRefs to a Service need one']] },
  { name: 'Gateway API rule by name and index', edit: (m) => { gatewayApi(m); m.spec.trafficRouting.gatewayAPI.ruleName = 'a'; m.spec.trafficRouting.gatewayAPI.ruleIndex = 0; }, problems: [['spec.trafficRouting.gatewayAPI.ruleIndex', 'set at most one of ruleName and ruleIndex']] },
  { name: 'VirtualService name with capitals', edit: (m) => (m.spec.trafficRouting.istio.virtualService = 'Fraud'), problems: [['spec.trafficRouting.istio.virtualService', 'must be a Kubernetes object name: lower-case letters, digits, "-" and ".", starting and ending with a letter or digit']] },
  { name: 'bad metric label name', edit: (m) => (m.spec.canary.metricLabels = { 'app.kubernetes.io/version': 'v2' }), problems: [['spec.canary.metricLabels["app.kubernetes.io/version"]', 'must be a Prometheus label name: letters, digits and "_", not starting with a digit']] },
  { name: 'empty metric labels', edit: (m) => (m.spec.canary.metricLabels = {}), problems: [['spec.canary.metricLabels', 'must hold at least one entry, or be left out']] },
  { name: 'Prometheus address not http', edit: (m) => (m.spec.metricsProvider = { prometheus: { address: 'prometheus:9090' } }), problems: [['spec.metricsProvider.prometheus.address', 'must be an http:// or https:// URL, such as http://prometheus.istio-system:9090']] },
  { name: 'Prometheus address with credentials', edit: (m) => (m.spec.metricsProvider = { prometheus: { address: 'http://admin:secret@prometheus:9090' } }), problems: [['spec.metricsProvider.prometheus.address', 'must not hold credentials: put them in a Secret and set secretRef']] },
  { name: 'query timeout too long', edit: (m) => (m.spec.metricsProvider = { prometheus: { address: 'http://p:9090', timeout: '10m' } }), problems: [['spec.metricsProvider.prometheus.timeout', 'must be between 100ms and 5m']] },
  { name: 'suspend as a string', edit: (m) => (m.spec.suspend = 'yes'), problems: [['spec.suspend', 'must be true or false, not "yes"']] },
  { name: 'wrong apiVersion', edit: (m) => (m.apiVersion = 'modelcanary.io/v1'), problems: [['apiVersion', 'must be "modelcanary.io/v1alpha1", not "modelcanary.io/v1"']] },
  { name: 'no name', edit: (m) => delete m.metadata.name, problems: [['metadata.name', 'is required']] },
  { name: 'spec as a list', edit: (m) => (m.spec = []), problems: [['spec', 'must be a mapping, not a list']] },
];

for (const c of invalid) {
  test(`invalid: ${c.name}`, () => {
    const manifest = istioManifest();
    c.edit(manifest);
    const result = checkModelCanary(manifest);
    assert.ok(!result.ok, 'the manifest must be rejected');
    assert.deepEqual(
      result.problems.map((p) => [p.path, p.message]).sort(),
      [...c.problems].sort(),
    );
  });
}

test('the base manifest and every example are valid', () => {
  for (const { file, manifest } of [{ file: 'base', manifest: istioManifest() }, ...exampleManifests()]) {
    const result = checkModelCanary(manifest);
    assert.ok(result.ok, `${file}: ${result.ok ? '' : JSON.stringify(result.problems)}`);
  }
  assert.ok(exampleManifests().length >= 3, 'at least three examples');
});

test('defaults fill what a manifest leaves out', () => {
  const manifest = istioManifest();
  manifest.spec.metricsProvider = { prometheus: { address: 'http://prometheus:9090' } };
  const result = checkModelCanary(manifest);
  assert.ok(result.ok);
  const { analysis, suspend, metricsProvider } = result.value.spec;
  assert.equal(analysis.interval, 30_000);
  assert.deepEqual(analysis.steps, [10, 30, 100]);
  assert.equal(analysis.failureThreshold, 3);
  assert.equal(analysis.minRequests, 100);
  assert.equal(suspend, false);
  assert.equal(metricsProvider?.prometheus?.timeout, 10_000);
});

test('durations are parsed to milliseconds', () => {
  const cases: [string, number][] = [['30s', 30_000], ['1m30s', 90_000], ['1s500ms', 1500], ['1h', 3_600_000], ['2m', 120_000], ['1m500ms', 60_500]];
  for (const [text, ms] of cases) {
    const manifest = istioManifest();
    manifest.spec.analysis.interval = text;
    const result = checkModelCanary(manifest);
    assert.ok(result.ok, text);
    assert.equal(result.value.spec.analysis.interval, ms, text);
  }
});

test('a manifest with several mistakes gets every one of them', () => {
  const manifest = istioManifest();
  manifest.spec.analysis.steps = [10, 30, 200];
  manifest.spec.analysis.failureThresold = 2;
  manifest.spec.analysis.metrics[0].max = 5;
  manifest.spec.stable.destination.port = 0;
  const result = checkModelCanary(manifest);
  assert.ok(!result.ok);
  const paths = result.problems.map((p) => p.path);
  for (const path of ['spec.analysis.steps[2]', 'spec.analysis.failureThresold', 'spec.analysis.metrics[0].max', 'spec.stable.destination.port']) {
    assert.ok(paths.includes(path), `${path} in ${paths.join(', ')}`);
  }
});
