// The table of invalid and valid edits of a ModelCanary, shared by the cel-js check
// (crd-cel.test.ts) and the real server (envtest.test.ts).
import { istioManifest } from './manifests.ts';

// ── Manifests ──────────────────────────────────────────────────────────────────────────

/** Valid, with analysis.interval, analysis.steps and the query timeout left to their defaults. */
export function baseManifest(): any {
  const manifest = istioManifest();
  manifest.spec.metricsProvider = { prometheus: { address: 'http://prometheus.istio-system:9090' } };
  return manifest;
}

/** Each version its own Service with a port, as Gateway API backendRefs need. */
export function useGatewayApi(spec: any): void {
  spec.trafficRouting = { gatewayAPI: { httpRoute: 'fraud-detector' } };
  spec.stable.destination = { host: 'fraud-detector-v1', port: 8080 };
  spec.canary.destination = { host: 'fraud-detector-v2', port: 8080 };
}

/** Each version behind its own InferencePool (Gateway API Inference Extension), as an HTTPRoute splits LLM traffic. */
export function useInferencePools(spec: any): void {
  spec.trafficRouting = { gatewayAPI: { httpRoute: 'fraud-detector' } };
  spec.stable.destination = { inferencePool: 'fraud-detector-pool-v1' };
  spec.canary.destination = { inferencePool: 'fraud-detector-pool-v2' };
}

export function edited(edit: (spec: any) => void): any {
  const manifest = baseManifest();
  edit(manifest.spec);
  return manifest;
}

export interface InvalidCase {
  name: string;
  edit: (spec: any) => void;
  /** Text of the CEL failure, `path: message`. */
  cel: string;
  /** Text of the problem `modelcanary validate` reports, `path: message`. */
  zod: string;
}

export const invalidCases: InvalidCase[] = [
  {
    name: 'canary version equal to stable',
    edit: (s) => (s.canary.version = 'v1'),
    cel: 'spec.canary.version: must differ from stable.version',
    zod: 'spec.canary.version: must differ from stable.version',
  },
  {
    name: 'same host and subset under Istio',
    edit: (s) => (s.canary.destination.subset = 'v1'),
    cel: 'spec.canary.destination: must differ from stable.destination',
    zod: 'spec.canary.destination: must differ from stable.destination',
  },
  {
    name: 'same host and no subsets under Istio',
    edit: (s) => {
      delete s.stable.destination.subset;
      delete s.canary.destination.subset;
    },
    cel: 'spec.canary.destination: must differ from stable.destination',
    zod: 'spec.canary.destination: must differ from stable.destination',
  },
  {
    name: 'both istio and gatewayAPI',
    edit: (s) => (s.trafficRouting.gatewayAPI = { httpRoute: 'fraud-detector' }),
    cel: 'spec.trafficRouting: set exactly one of istio and gatewayAPI',
    zod: 'spec.trafficRouting: set exactly one of istio and gatewayAPI',
  },
  {
    name: 'neither istio nor gatewayAPI',
    edit: (s) => (s.trafficRouting = {}),
    cel: 'spec.trafficRouting: set exactly one of istio and gatewayAPI',
    zod: 'spec.trafficRouting: set exactly one of istio and gatewayAPI',
  },
  {
    name: 'gatewayAPI with a subset',
    edit: (s) => {
      useGatewayApi(s);
      s.canary.destination.subset = 'v2';
    },
    cel: 'spec.canary.destination.subset: subset is for Istio',
    zod: 'spec.canary.destination.subset: subset is for Istio',
  },
  {
    name: 'gatewayAPI without a port',
    edit: (s) => {
      useGatewayApi(s);
      delete s.stable.destination.port;
    },
    cel: 'spec.stable.destination.port: port is required with gatewayAPI',
    zod: 'spec.stable.destination.port: port is required with gatewayAPI',
  },
  {
    name: 'gatewayAPI with ruleName and ruleIndex',
    edit: (s) => {
      useGatewayApi(s);
      Object.assign(s.trafficRouting.gatewayAPI, { ruleName: 'predict', ruleIndex: 0 });
    },
    cel: 'spec.trafficRouting.gatewayAPI.ruleIndex: set at most one of ruleName and ruleIndex',
    zod: 'spec.trafficRouting.gatewayAPI.ruleIndex: set at most one of ruleName and ruleIndex',
  },
  {
    name: 'both host and inferencePool',
    edit: (s) => {
      useInferencePools(s);
      s.canary.destination.host = 'fraud-detector-v2';
    },
    cel: 'spec.canary.destination: set exactly one of host (a Service) and inferencePool',
    zod: 'spec.canary.destination: set exactly one of host (a Service) and inferencePool',
  },
  {
    name: 'neither host nor inferencePool',
    edit: (s) => (s.stable.destination = { subset: 'v1' }),
    cel: 'spec.stable.destination: set exactly one of host (a Service) and inferencePool',
    zod: 'spec.stable.destination: set exactly one of host (a Service) and inferencePool',
  },
  {
    name: 'inferencePool with a port',
    edit: (s) => {
      useInferencePools(s);
      s.canary.destination.port = 8000;
    },
    cel: 'spec.canary.destination.port: port is for a Service (host): an InferencePool names its own ports',
    zod: 'spec.canary.destination.port: port is for a Service (host): an InferencePool names its own ports',
  },
  {
    name: 'inferencePool under Istio',
    edit: (s) => (s.canary.destination = { inferencePool: 'fraud-detector-pool-v2' }),
    cel: 'spec.canary.destination.inferencePool: inferencePool is for gatewayAPI',
    zod: 'spec.canary.destination.inferencePool: inferencePool is for gatewayAPI',
  },
  {
    name: 'the same InferencePool for both versions',
    edit: (s) => {
      useInferencePools(s);
      s.canary.destination.inferencePool = 'fraud-detector-pool-v1';
    },
    cel: 'spec.canary.destination: must differ from stable.destination: give each version its own Service (host and port) or InferencePool',
    zod: 'spec.canary.destination: must differ from stable.destination: give each version its own Service (host and port) or InferencePool',
  },
  {
    name: 'the same Service and port for both versions under gatewayAPI',
    edit: (s) => {
      useGatewayApi(s);
      s.canary.destination.host = 'fraud-detector-v1';
    },
    cel: 'spec.canary.destination: must differ from stable.destination',
    zod: 'spec.canary.destination: must differ from stable.destination',
  },
  {
    name: 'an outliers metric without clusterName on InferencePools',
    edit: (s) => {
      useInferencePools(s);
      s.analysis.metrics.push({ name: 'ejections', type: 'outliers' });
    },
    cel: 'spec.analysis.metrics: an outliers metric needs clusterName when a version is an InferencePool',
    zod: 'spec.analysis.metrics[3].clusterName: an outliers metric needs clusterName when a version is an InferencePool',
  },
  {
    // isSorted() allows equal neighbours: x-kubernetes-list-type set refuses duplicates before CEL runs.
    name: 'steps not increasing',
    edit: (s) => (s.analysis.steps = [30, 10, 100]),
    cel: 'spec.analysis.steps: must be strictly increasing',
    zod: 'spec.analysis.steps[1]: must be greater than the step before it (30)',
  },
  {
    name: 'steps not ending at 100',
    edit: (s) => (s.analysis.steps = [10, 30, 90]),
    cel: 'spec.analysis.steps: must end at 100',
    zod: 'spec.analysis.steps: must end at 100',
  },
  {
    name: 'latency without maxMs or maxRatioToStable',
    edit: (s) => delete s.analysis.metrics[1].maxMs,
    cel: 'spec.analysis.metrics[1]: latency metrics need maxMs, maxRatioToStable or both',
    zod: 'spec.analysis.metrics[1]: latency metrics need maxMs, maxRatioToStable or both',
  },
  {
    name: 'latency with a query',
    edit: (s) => (s.analysis.metrics[1].query = 'up'),
    cel: 'spec.analysis.metrics[1]: latency metrics take only name, type, quantile, maxMs, maxRatioToStable',
    zod: 'spec.analysis.metrics[1].query: unknown field',
  },
  {
    name: 'latency without a quantile',
    edit: (s) => delete s.analysis.metrics[1].quantile,
    cel: 'spec.analysis.metrics[1]: latency metrics need quantile',
    zod: 'spec.analysis.metrics[1].quantile: is required',
  },
  {
    name: 'latency maxRatioToStable below 1',
    edit: (s) => (s.analysis.metrics[1].maxRatioToStable = 0.9),
    cel: 'spec.analysis.metrics[1].maxRatioToStable: latency: maxRatioToStable must be at least 1 and at most 1000',
    zod: 'spec.analysis.metrics[1].maxRatioToStable: must be at least 1',
  },
  {
    name: 'errorRate with a quantile',
    edit: (s) => (s.analysis.metrics[0].quantile = 0.99),
    cel: 'spec.analysis.metrics[0]: errorRate metrics take only name, type, max',
    zod: 'spec.analysis.metrics[0].quantile: unknown field',
  },
  {
    name: 'errorRate without max',
    edit: (s) => delete s.analysis.metrics[0].max,
    cel: 'spec.analysis.metrics[0]: errorRate metrics need max',
    zod: 'spec.analysis.metrics[0].max: is required',
  },
  {
    name: 'errorRate max 1.5',
    edit: (s) => (s.analysis.metrics[0].max = 1.5),
    cel: 'spec.analysis.metrics[0].max: errorRate: max must be at least 0 and at most 1',
    zod: 'spec.analysis.metrics[0].max: must be at most 1',
  },
  {
    // A whole number in YAML is still a CEL double under `type: number`.
    name: 'errorRate max 2, written as a whole number',
    edit: (s) => (s.analysis.metrics[0].max = 2),
    cel: 'spec.analysis.metrics[0].max: errorRate: max must be at least 0 and at most 1',
    zod: 'spec.analysis.metrics[0].max: must be at most 1',
  },
  {
    name: 'prometheus metric with no bounds',
    edit: (s) => delete s.analysis.metrics[2].max,
    cel: 'spec.analysis.metrics[2]: prometheus metrics need at least one of min, max, maxRatioToStable and minRatioToStable',
    zod: 'spec.analysis.metrics[2]: prometheus metrics need at least one of min, max, maxRatioToStable and minRatioToStable',
  },
  {
    name: 'prometheus min greater than max',
    edit: (s) => (s.analysis.metrics[2].min = 3),
    cel: 'spec.analysis.metrics[2].min: min must not be greater than max',
    zod: 'spec.analysis.metrics[2].min: min must not be greater than max',
  },
  {
    name: 'webhook gate without a url',
    edit: (s) => (s.analysis.gates = [{ name: 'ci', approval: 'webhook' }]),
    cel: 'spec.analysis.gates[0].url: url is needed with approval: webhook, and only then',
    zod: 'spec.analysis.gates[0].url: url is needed with approval: webhook, and only then',
  },
  {
    name: 'gate before a weight that is not a step',
    edit: (s) => (s.analysis.gates = [{ name: 'sre', approval: 'manual', before: [50] }]),
    cel: 'spec.analysis: every weight a gate guards (gates[].before) must be one of steps',
    zod: 'spec.analysis.gates[0].before[0]: 50 is not one of steps (10, 30, 100): a gate guards a step\'s weight',
  },
  {
    name: 'webhook url with credentials',
    edit: (s) => (s.analysis.webhooks = [{ name: 'load', type: 'rollout', url: 'http://user:pw@loadtester/' }]),
    cel: 'spec.analysis.webhooks[0].url: must not hold credentials or a fragment (#): a webhook that needs a token gets it from its own network policy or path',
    zod: 'spec.analysis.webhooks[0].url: must not hold credentials or a fragment (#): a webhook that needs a token gets it from its own network policy or path',
  },
  {
    name: 'rollout window with six fields',
    edit: (s) => (s.analysis.windows = [{ schedule: '0 0 9 * * 1-5', duration: '8h' }]),
    cel: 'spec.analysis.windows[0].schedule: must be a cron schedule of five fields: minute hour day-of-month month day-of-week, such as "0 9 * * 1-5"',
    zod: 'spec.analysis.windows[0].schedule: "0 0 9 * * 1-5" is not a cron schedule: it has 6 fields, and a first field of seconds is not supported; write five fields: minute hour day-of-month month day-of-week, such as "0 9 * * 1-5"',
  },
  {
    name: 'prometheus metric with a quantile',
    edit: (s) => (s.analysis.metrics[2].quantile = 0.5),
    cel: 'spec.analysis.metrics[2]: prometheus metrics take only',
    zod: 'spec.analysis.metrics[2].quantile: unknown field',
  },
  {
    name: 'prometheus maxRatioToStable of 0',
    edit: (s) => (s.analysis.metrics[2].maxRatioToStable = 0),
    cel: 'spec.analysis.metrics[2].maxRatioToStable: prometheus: maxRatioToStable must be greater than 0 and at most 1000',
    zod: 'spec.analysis.metrics[2].maxRatioToStable: must be greater than 0',
  },
  {
    name: 'prometheus query with an unknown template variable',
    edit: (s) => (s.analysis.metrics[2].query = 'vllm_ttft{model="{{ modle }}"}'),
    cel: 'spec.analysis.metrics[2].query: must use only known template variables',
    zod: 'spec.analysis.metrics[2].query: unknown template variable "modle" (did you mean model?)',
  },
  {
    name: 'prometheus query with an unclosed placeholder',
    edit: (s) => (s.analysis.metrics[2].query = 'vllm_ttft{model="{{ model"}'),
    cel: 'spec.analysis.metrics[2].query: must use only known template variables',
    zod: 'spec.analysis.metrics[2].query: has a "{{" that does not open a template variable',
  },
  {
    name: 'prometheus query with a no-break space in a placeholder',
    edit: (s) => (s.analysis.metrics[2].query = 'vllm_ttft{model="{{\u00a0model }}"}'),
    cel: 'spec.analysis.metrics[2].query: must use only known template variables',
    zod: 'spec.analysis.metrics[2].query: unknown template variable',
  },
  {
    name: 'watchInterval longer than the interval',
    edit: (s) => (s.analysis.watchInterval = '45s'),
    cel: 'spec.analysis.watchInterval: must not be longer than interval',
    zod: 'spec.analysis.watchInterval: must not be longer than interval',
  },
  {
    name: 'interval 2h',
    edit: (s) => (s.analysis.interval = '2h'),
    cel: 'spec.analysis.interval: must be between 1s and 1h',
    zod: 'spec.analysis.interval: must be between 1s and 1h',
  },
  {
    name: 'metric window 25h',
    edit: (s) => (s.analysis.metrics[2].window = '25h'),
    cel: 'spec.analysis.metrics[2].window: must be between 1s and 24h',
    zod: 'spec.analysis.metrics[2].window: must be between 1s and 24h',
  },
  {
    name: 'query timeout 50ms',
    edit: (s) => (s.metricsProvider.prometheus.timeout = '50ms'),
    cel: 'spec.metricsProvider.prometheus.timeout: must be between 100ms and 5m',
    zod: 'spec.metricsProvider.prometheus.timeout: must be between 100ms and 5m',
  },
  {
    name: 'Prometheus address with credentials',
    edit: (s) => (s.metricsProvider.prometheus.address = 'http://u:p@host'),
    cel: 'spec.metricsProvider.prometheus.address: must not hold credentials',
    zod: 'spec.metricsProvider.prometheus.address: must not hold credentials',
  },
  {
    name: 'Prometheus address with credentials, scheme in capitals',
    edit: (s) => (s.metricsProvider.prometheus.address = 'HTTP://user:pass@prom:9090'),
    cel: 'spec.metricsProvider.prometheus.address: must not hold credentials',
    zod: 'spec.metricsProvider.prometheus.address: must not hold credentials',
  },
  {
    name: 'Prometheus address with a query string',
    edit: (s) => (s.metricsProvider.prometheus.address = 'http://attacker:8080/steal?'),
    cel: 'spec.metricsProvider.prometheus.address: must be a base URL without a query',
    zod: 'spec.metricsProvider.prometheus.address: must be a base URL without a query',
  },
  {
    name: 'both a named provider and an address',
    edit: (s) => (s.metricsProvider.name = 'team-a'),
    cel: 'spec.metricsProvider: set exactly one of name and prometheus',
    zod: 'spec.metricsProvider: set exactly one of name and prometheus',
  },
  {
    name: 'empty metricLabels',
    edit: (s) => (s.canary.metricLabels = {}),
    cel: 'spec.canary.metricLabels: must hold at least one entry, or be left out',
    zod: 'spec.canary.metricLabels: must hold at least one entry, or be left out',
  },
  {
    name: 'empty Prometheus headers',
    edit: (s) => (s.metricsProvider.prometheus.headers = {}),
    cel: 'spec.metricsProvider.prometheus.headers: must hold at least one entry, or be left out',
    zod: 'spec.metricsProvider.prometheus.headers: must hold at least one entry, or be left out',
  },
  {
    name: 'a notification target with both a destination and a Secret',
    edit: (s) => (s.notifications = [{ destination: 'platform', secretRef: { name: 'team-slack' } }]),
    cel: 'spec.notifications[0]: set exactly one of destination and secretRef',
    zod: 'spec.notifications[0]: set exactly one of destination and secretRef',
  },
  {
    name: 'a format on an operator destination',
    edit: (s) => (s.notifications = [{ destination: 'platform', format: 'webhook' }]),
    cel: 'spec.notifications[0].format: format is for secretRef; a destination the operator defined has its own',
    zod: 'spec.notifications[0].format: format is for secretRef; a destination the operator defined has its own',
  },
];

export const validEdits: { name: string; edit: (spec: any) => void }[] = [
  { name: 'a named metrics provider', edit: (s) => (s.metricsProvider = { name: 'team-a' }) },
  {
    name: 'notifications to an operator destination and to a team\'s own webhook',
    edit: (s) => (s.notifications = [{ destination: 'platform', severity: 'error' }, { secretRef: { name: 'team-slack' }, format: 'slack', severity: 'info' }]),
  },
  { name: 'no notifications at all', edit: (s) => (s.notifications = []) },
  { name: 'gatewayAPI with ports and no subsets', edit: useGatewayApi },
  {
    name: 'gatewayAPI with ruleIndex 0 and metric labels',
    edit: (s) => {
      useGatewayApi(s);
      s.trafficRouting.gatewayAPI.ruleIndex = 0;
      s.canary.metricLabels = { destination_workload: 'fraud-detector-v2' };
    },
  },
  { name: 'different hosts under Istio, one without a subset', edit: (s) => (s.canary.destination = { host: 'fraud-detector-v2' }) },
  { name: 'InferencePools under gatewayAPI', edit: useInferencePools },
  {
    name: 'a Service for stable and an InferencePool for the canary under gatewayAPI',
    edit: (s) => {
      useGatewayApi(s);
      s.canary.destination = { inferencePool: 'fraud-detector-pool-v2' };
    },
  },
  {
    name: 'an outliers metric with clusterName on InferencePools',
    edit: (s) => {
      useInferencePools(s);
      s.analysis.metrics.push({ name: 'ejections', type: 'outliers', clusterName: { stable: 'outbound\\|8000\\|\\|pool-v1.*', canary: 'outbound\\|8000\\|\\|pool-v2.*' } });
    },
  },
  {
    name: 'latency with only maxRatioToStable',
    edit: (s) => {
      delete s.analysis.metrics[1].maxMs;
      s.analysis.metrics[1].maxRatioToStable = 1.25;
    },
  },
  {
    name: 'errorRate max 1 and 0, written as whole numbers',
    edit: (s) => {
      s.analysis.metrics = [...s.analysis.metrics, { name: 'no-errors', type: 'errorRate', max: 0 }, { name: 'any-errors', type: 'errorRate', max: 1 }];
    },
  },
  {
    name: 'prometheus min equal to max',
    edit: (s) => {
      s.analysis.metrics[2].min = 2.5;
    },
  },
  {
    name: 'prometheus with only minRatioToStable',
    edit: (s) => {
      delete s.analysis.metrics[2].max;
      s.analysis.metrics[2].minRatioToStable = 0.95;
    },
  },
  {
    name: 'a query using every template variable, spaced or not',
    edit: (s) =>
      (s.analysis.metrics[2].query =
        'x{m="{{model}}",v="{{ version }}",n="{{ namespace }}",o="{{ name }}",s="{{ stableVersion }}",c="{{canaryVersion}}",{{ labels }}}[{{ window }}]'),
  },
  { name: 'two steps', edit: (s) => (s.analysis.steps = [50, 100]) },
  {
    name: 'interval and window at their bounds',
    edit: (s) => {
      s.analysis.interval = '1h';
      s.analysis.metrics[2].window = '1s';
    },
  },
  { name: 'timeouts written with several units', edit: (s) => (s.metricsProvider.prometheus.timeout = '4m59s999ms') },
  { name: 'an @ after the host is not a credential', edit: (s) => (s.metricsProvider.prometheus.address = 'http://prometheus:9090/api/@team') },
];

