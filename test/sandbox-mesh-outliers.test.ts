// The simulated mesh as Envoy and Istio configure it: outlier detection (a table of what a
// detector does at given times), retry policies as istiod translates them, and then the running
// mesh with a canary of three pods, one of them broken — ejected, let back, ejected for longer,
// its failures hidden from the caller by retries and shown by the pods' sidecars.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from 'node:http';
import { KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { parseExposition, type ExpositionSample } from '../src/metrics/exposition.ts';
import { OutlierDetector, type OutlierStats } from '../src/sandbox/mesh/outliers.ts';
import { clusterPolicy, routePolicy, wouldRetry, type AttemptOutcome } from '../src/sandbox/mesh/policy.ts';
import { UpstreamCluster, type Endpoint } from '../src/sandbox/mesh/cluster.ts';
import { startMesh, type WorkloadSpec } from '../src/sandbox/mesh/mesh.ts';
import { startLoad } from '../src/sandbox/mesh/load.ts';
import { eventually, sandboxHarness, until } from './helpers/sandbox.ts';

const NS = 'ml-serving';

/** A detector from a DestinationRule's outlierDetection, as istiod translates it. */
function detector(outlierDetection: object, hosts: string[]): OutlierDetector {
  const config = clusterPolicy({ outlierDetection }, undefined).outlierDetection;
  assert.ok(config !== undefined);
  return new OutlierDetector(config, hosts, 0);
}

type Step = { at: number; host: string; codes: number[] } | { at: number; expect: Partial<OutlierStats> & { ejected?: string[] } };

test('outlier detection: what Envoy does, step by step', () => {
  const hosts = ['a', 'b', 'c'];
  const fives = (n: number): number[] => Array.from({ length: n }, () => 500);
  const cases: { name: string; od: object; hosts?: string[]; steps: Step[] }[] = [
    {
      name: 'the fifth consecutive 5xx ejects; a success in between starts the count again',
      od: { consecutive5xxErrors: 5, interval: '1s', baseEjectionTime: '2s', maxEjectionPercent: 50 },
      steps: [
        { at: 10, host: 'c', codes: [...fives(4), 200, ...fives(4)] },
        { at: 20, expect: { ejections_active: 0, ejections_detected_consecutive_5xx: 0, ejected: [] } },
        { at: 30, host: 'c', codes: [500] },
        { at: 40, expect: { ejections_active: 1, ejections_enforced_total: 1, ejections_detected_consecutive_5xx: 1, ejections_enforced_consecutive_5xx: 1, ejected: ['c'] } },
      ],
    },
    {
      name: 'back at the first sweep after base × 1, ejected again for base × 2, then for base × 3',
      od: { consecutive5xxErrors: 5, interval: '1s', baseEjectionTime: '2s', maxEjectionPercent: 50 },
      steps: [
        { at: 500, host: 'c', codes: fives(5) },
        { at: 2999, expect: { ejected: ['c'] } },
        { at: 3000, expect: { ejections_active: 0, ejected: [] } }, // sweep at 3 s: 2.5 s ≥ 2 s
        { at: 3100, host: 'c', codes: fives(5) },
        { at: 7000, expect: { ejected: ['c'] } }, // 3.9 s < 4 s
        { at: 8000, expect: { ejected: [], ejections_enforced_total: 2 } },
        { at: 8200, host: 'c', codes: fives(5) },
        { at: 14000, expect: { ejected: ['c'] } }, // 5.8 s < 6 s
        { at: 15000, expect: { ejected: [], ejections_enforced_total: 3 } },
      ],
    },
    {
      name: 'a host that stays healthy an interval after its return earns back one base time per sweep',
      od: { consecutive5xxErrors: 5, interval: '1s', baseEjectionTime: '2s', maxEjectionPercent: 50 },
      steps: [
        { at: 500, host: 'c', codes: fives(5) },
        { at: 3100, host: 'c', codes: fives(5) }, // multiplier 2
        { at: 8000, expect: { ejected: [] } }, // returned at 8 s
        { at: 9000, expect: { ejected: [] } }, // 9 s: multiplier 1; 10 s: 0
        { at: 10_500, host: 'c', codes: fives(5) }, // multiplier 1 again: 2 s
        { at: 12_000, expect: { ejected: ['c'] } },
        { at: 13_000, expect: { ejected: [], ejections_enforced_total: 3 } },
      ],
    },
    {
      name: 'max_ejection_percent is not rounded: 1 of 3 hosts is 33.3 %, over 33',
      od: { consecutive5xxErrors: 5, maxEjectionPercent: 33 },
      steps: [
        { at: 10, host: 'c', codes: fives(10) },
        { at: 20, expect: { ejections_active: 0, ejections_overflow: 2, ejections_detected_consecutive_5xx: 2, ejections_enforced_total: 0, ejected: [] } },
      ],
    },
    {
      name: 'Istio\'s default 10 % ejects no host of three (Envoy 1.28+ checks the first ejection too)',
      od: { consecutive5xxErrors: 5 },
      steps: [
        { at: 10, host: 'c', codes: fives(5) },
        { at: 20, expect: { ejections_overflow: 1, ejections_active: 0, ejected: [] } },
      ],
    },
    {
      name: 'with 34 %, one host of three goes, the second overflows',
      od: { consecutive5xxErrors: 5, maxEjectionPercent: 34 },
      steps: [
        { at: 10, host: 'c', codes: fives(5) },
        { at: 20, host: 'b', codes: fives(5) },
        { at: 30, expect: { ejections_active: 1, ejections_overflow: 1, ejected: ['c'] } },
      ],
    },
    {
      name: 'a single pod is ejected only with maxEjectionPercent 100',
      od: { consecutive5xxErrors: 5, maxEjectionPercent: 100 },
      hosts: ['only'],
      steps: [
        { at: 10, host: 'only', codes: fives(5) },
        { at: 20, expect: { ejections_active: 1, ejected: ['only'] } },
      ],
    },
    {
      name: 'consecutive 503s are gateway failures too: detected, but not enforced unless consecutiveGatewayErrors is set',
      od: { consecutive5xxErrors: 0, maxEjectionPercent: 50 },
      steps: [
        { at: 10, host: 'c', codes: [503, 503, 503, 503, 503, 500, 500, 500, 500, 500] },
        { at: 20, expect: { ejections_detected_consecutive_gateway_failure: 1, ejections_detected_consecutive_5xx: 0, ejections_active: 0, ejected: [] } },
      ],
    },
    {
      name: 'consecutiveGatewayErrors ejects on 502/503/504 only',
      od: { consecutive5xxErrors: 0, consecutiveGatewayErrors: 3, maxEjectionPercent: 50 },
      steps: [
        { at: 10, host: 'c', codes: [503, 504, 500, 502, 503] },
        { at: 20, expect: { ejected: [] } },
        { at: 30, host: 'c', codes: [502] },
        { at: 40, expect: { ejected: ['c'], ejections_enforced_consecutive_gateway_failure: 1, ejections_enforced_total: 1 } },
      ],
    },
  ];
  for (const c of cases) {
    const d = detector(c.od, c.hosts ?? hosts);
    for (const step of c.steps) {
      if ('codes' in step) {
        for (const code of step.codes) d.report(step.host, code, step.at);
        continue;
      }
      const { ejected, ...stats } = step.expect;
      const got = d.stats(step.at);
      for (const [key, value] of Object.entries(stats)) assert.equal(got[key as keyof OutlierStats], value, `${c.name}: ${key} at ${step.at} ms`);
      if (ejected !== undefined) assert.deepEqual((c.hosts ?? hosts).filter((h) => d.isEjected(h, step.at)), ejected, `${c.name}: ejected at ${step.at} ms`);
    }
  }
});

test('a cluster picks among hosts in service; panic mode only below minHealthPercent; counters outlive a DestinationRule change', () => {
  const servedBy = { workload: 'm-v2', namespace: NS, service: fqdn('m'), app: 'm', version: 'v2', canonicalService: 'm', canonicalRevision: 'v2' };
  const pods: Endpoint[] = ['m-v2-0', 'm-v2-1'].map((id) => ({ id, url: 'http://127.0.0.1:9', service: fqdn('m'), servicePort: 8080, labels: {}, servedBy }));
  const [a, b] = pods as [Endpoint, Endpoint];
  const od = { consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '10s', maxEjectionPercent: 100 };
  const picks = (c: UpstreamCluster, now: number): string[] => [0, 0.3, 0.6, 0.9].map((r) => c.pick(() => r, now)?.id ?? 'none');
  const cases: { name: string; policy: object; expect: string[] }[] = [
    { name: 'both ejected, panic mode off (Istio): no host', policy: { outlierDetection: od }, expect: ['none', 'none', 'none', 'none'] },
    { name: 'both ejected, minHealthPercent 50: every host again', policy: { outlierDetection: { ...od, minHealthPercent: 50 } }, expect: ['m-v2-0', 'm-v2-0', 'm-v2-1', 'm-v2-1'] },
  ];
  for (const c of cases) {
    const cluster = new UpstreamCluster('outbound|8080|v2|m', clusterPolicy(c.policy, undefined), pods, 0);
    cluster.report(a, 500, 10);
    assert.deepEqual(picks(cluster, 20), ['m-v2-1', 'm-v2-1', 'm-v2-1', 'm-v2-1'], `${c.name}: the ejected host is left out`);
    cluster.report(b, 500, 30);
    assert.deepEqual(picks(cluster, 40), c.expect, c.name);
  }
  const cluster = new UpstreamCluster('outbound|8080|v2|m', clusterPolicy({ outlierDetection: od }, undefined), pods, 0);
  cluster.report(a, 500, 10);
  cluster.update(clusterPolicy({ outlierDetection: { ...od, baseEjectionTime: '20s' } }, undefined), pods, 20);
  const after = cluster.outlierStats(20);
  assert.equal(after?.ejections_active, 0, 'a new detector: the host is back in service');
  assert.equal(after.ejections_enforced_total, 1, 'and the counter goes on');
  cluster.update(clusterPolicy({}, undefined), pods, 30);
  assert.equal(cluster.outlierStats(30), undefined, 'no outlier detection, no stats');
});

test("retry policies as istiod writes them: Istio's default retries neither 500 nor 503", () => {
  const response = (code: number): AttemptOutcome => ({ kind: 'response', code });
  const refused: AttemptOutcome = { kind: 'reset', reason: 'connectionFailure' };
  const closed: AttemptOutcome = { kind: 'reset', reason: 'connectionTermination' };
  const perTry: AttemptOutcome = { kind: 'reset', reason: 'perTryTimeout' };
  const cases: { name: string; route: object; retry503ByDefault?: boolean; retries: number | undefined; retried: AttemptOutcome[]; notRetried: AttemptOutcome[] }[] = [
    { name: 'no retries field: the default policy, 2 retries on connection failures', route: {}, retries: 2, retried: [refused], notRetried: [response(500), response(503), closed, perTry, response(409)] },
    { name: 'the default before EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY', route: {}, retry503ByDefault: true, retries: 2, retried: [refused, response(503)], notRetried: [response(500), response(502)] },
    { name: 'attempts 0 turns retries off', route: { retries: { attempts: 0 } }, retries: undefined, retried: [], notRetried: [] },
    { name: 'retryOn without attempts: off as well', route: { retries: { retryOn: '5xx' } }, retries: undefined, retried: [], notRetried: [] },
    { name: '5xx,reset,connect-failure', route: { retries: { attempts: 3, retryOn: '5xx,reset,connect-failure' } }, retries: 3, retried: [response(500), response(503), refused, closed, perTry], notRetried: [response(404), response(409)] },
    { name: 'gateway-error', route: { retries: { attempts: 1, retryOn: 'gateway-error' } }, retries: 1, retried: [response(502), response(504), closed], notRetried: [response(500)] },
    { name: 'a status code in retryOn', route: { retries: { attempts: 2, retryOn: 'connect-failure,500' } }, retries: 2, retried: [response(500), refused], notRetried: [response(503), closed] },
    { name: 'retriable-4xx is 409', route: { retries: { attempts: 2, retryOn: 'retriable-4xx' } }, retries: 2, retried: [response(409)], notRetried: [response(404), response(500)] },
  ];
  for (const c of cases) {
    const policy = routePolicy(c.route, { retry503ByDefault: c.retry503ByDefault });
    assert.equal(policy.retry?.numRetries, c.retries, c.name);
    for (const outcome of c.retried) assert.ok(policy.retry !== undefined && wouldRetry(policy.retry, outcome), `${c.name}: retries ${JSON.stringify(outcome)}`);
    for (const outcome of c.notRetried) assert.ok(policy.retry === undefined || !wouldRetry(policy.retry, outcome), `${c.name}: does not retry ${JSON.stringify(outcome)}`);
  }
  assert.equal(routePolicy({}).timeoutMs, undefined, 'no route timeout unless given');
  assert.equal(routePolicy({ timeout: '1.5s', retries: { attempts: 1, perTryTimeout: '200ms' } }).timeoutMs, 1500);
  assert.equal(routePolicy({ retries: { attempts: 1, perTryTimeout: '200ms' } }).retry?.perTryTimeoutMs, 200);
});

// ── The running mesh ────────────────────────────────────────────────────────────────────

function workloads(service: string, badPod: { version: string; pods: number } | undefined): WorkloadSpec[] {
  return ['v1', 'v2'].map((version) => {
    const pods = version === badPod?.version ? badPod.pods : 3;
    return {
      name: `${service}-${version}`,
      namespace: NS,
      service,
      labels: { app: service, version },
      behaviour: { errorRate: 0, latencyMs: 3 },
      pods,
      podBehaviours: version === badPod?.version ? [...Array.from({ length: pods - 1 }, () => ({})), { errorRate: 1 }] : [],
    };
  });
}

/** `extra` goes into the http route: retries, timeout. */
function virtualService(service: string, weights: [number, number], extra: object = {}): KubernetesObject {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: service, namespace: NS },
    spec: {
      hosts: [service],
      http: [
        {
          name: 'predict',
          ...extra,
          route: [
            { destination: { host: service, subset: 'v1' }, weight: weights[0] },
            { destination: { host: service, subset: 'v2' }, weight: weights[1] },
          ],
        },
      ],
    },
  } as KubernetesObject;
}

const OUTLIER_DETECTION = { consecutive5xxErrors: 5, interval: '1s', baseEjectionTime: '2s', maxEjectionPercent: 50 };

function destinationRule(service: string, v2Policy?: object): KubernetesObject {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name: service, namespace: NS },
    spec: {
      host: service,
      trafficPolicy: { outlierDetection: OUTLIER_DETECTION },
      subsets: [
        { name: 'v1', labels: { version: 'v1' } },
        { name: 'v2', labels: { version: 'v2' }, ...(v2Policy === undefined ? {} : { trafficPolicy: v2Policy }) },
      ],
    },
  } as KubernetesObject;
}

const fqdn = (service: string): string => `${service}.${NS}.svc.cluster.local`;
const cluster = (service: string, subset: string): string => `outbound|8080|${subset}|${fqdn(service)}`;

async function scrape(url: string): Promise<ExpositionSample[]> {
  return parseExposition(await (await fetch(url)).text());
}

/** The sum of a metric's samples whose labels include `labels`. */
function total(samples: readonly ExpositionSample[], name: string, labels: Record<string, string | RegExp>): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => (typeof v === 'string' ? s.labels[k] === v : v.test(s.labels[k] ?? ''))))
    .reduce((sum, s) => sum + s.value, 0);
}

const stat = (samples: readonly ExpositionSample[], name: string, clusterName: string): number | undefined =>
  samples.find((s) => s.name === `envoy_cluster_outlier_detection_${name}` && s.labels.cluster_name === clusterName)?.value;

test('one bad pod of three: ejected, let back, ejected for longer; retries hide it from the caller, the sidecars show it', async () => {
  const harness = await sandboxHarness({ namespaces: [NS] });
  const objects = KubernetesObjectApi.makeApiClient(harness.kubeConfig);
  const RETRIES = { attempts: 3, retryOn: '5xx,reset,connect-failure' };
  // retried: retries on 5xx; plain: Istio's default policy, which does not retry a 500;
  // capped: v2's own policy lets no host of three be ejected (20 % < 1/3).
  await objects.create(virtualService('retried', [50, 50], { retries: RETRIES }));
  await objects.create(destinationRule('retried'));
  await objects.create(virtualService('plain', [50, 50]));
  await objects.create(destinationRule('plain'));
  await objects.create(virtualService('capped', [50, 50]));
  await objects.create(destinationRule('capped', { outlierDetection: { ...OUTLIER_DETECTION, maxEjectionPercent: 20 } }));
  const bad = { version: 'v2', pods: 3 };
  const mesh = await startMesh({ kubeConfig: harness.kubeConfig, namespace: NS, workloads: [...workloads('retried', bad), ...workloads('plain', bad), ...workloads('capped', bad)] });
  try {
    // Before any request: every cluster with outlier detection has its stats, at 0.
    const first = await scrape(mesh.metricsUrl);
    for (const service of ['retried', 'plain', 'capped']) {
      for (const subset of ['', 'v1', 'v2']) assert.equal(stat(first, 'ejections_enforced_total', cluster(service, subset)), 0, `${service} ${subset || 'whole service'}: 0 from the start`);
    }

    const loads = ['retried', 'plain', 'capped'].map((service) => startLoad({ url: mesh.ingressUrl, host: fqdn(service), path: '/v1/models/m:predict', ratePerSecond: 50 }));
    // Sample what a Prometheus would: the time each new ejection of retried's v2 is first seen,
    // and whether its bad pod was seen ejected, then back.
    const seen: { enforced: number; at: number }[] = [];
    const active: number[] = [];
    await until(
      'three ejections of the bad pod of retried v2',
      async () => {
        const samples = await scrape(mesh.metricsUrl);
        const enforced = stat(samples, 'ejections_enforced_total', cluster('retried', 'v2')) ?? 0;
        if (enforced > (seen.at(-1)?.enforced ?? 0)) seen.push({ enforced, at: performance.now() });
        const now = stat(samples, 'ejections_active', cluster('retried', 'v2')) ?? 0;
        if (active.at(-1) !== now) active.push(now);
        return enforced;
      },
      (enforced) => enforced >= 3,
      25_000,
    );
    await Promise.all(loads.map((l) => l.stop()));
    const samples = await scrape(mesh.metricsUrl);
    const rq = (labels: Record<string, string | RegExp>): number => total(samples, 'istio_requests_total', labels);

    // retried: the bad pod goes and comes back; each time it is out longer (2 s, then 4 s, at 1 s sweeps).
    assert.match(active.join(','), /1,0,1/, 'retried v2: ejected, back, ejected again');
    const [one, two, three] = seen;
    assert.ok(one !== undefined && two !== undefined && three !== undefined);
    // On a busy machine sweeps run late, which stretches either gap; only a lower bound is firm:
    // the first ejection lasts 2 s and the second 4 s before the pod can be ejected again.
    assert.ok(three.at - one.at >= 5_000, `two ejections of 2 s and then 4 s lie between the first and the third: ${JSON.stringify(seen)}`);
    assert.equal(stat(samples, 'ejections_enforced_consecutive_5xx', cluster('retried', 'v2')), stat(samples, 'ejections_enforced_total', cluster('retried', 'v2')));
    assert.equal(stat(samples, 'ejections_overflow', cluster('retried', 'v2')), 0);
    for (const name of ['ejections_enforced_total', 'ejections_active', 'ejections_overflow', 'ejections_detected_consecutive_5xx']) {
      assert.equal(stat(samples, name, cluster('retried', 'v1')), 0, `retried v1, healthy: ${name} 0`);
    }
    const retriedV2 = { destination_service: fqdn('retried'), destination_canonical_revision: 'v2' };
    const badPod = mesh.workload('retried-v2').pod(2);
    assert.equal(badPod.pod, 'retried-v2-2');
    assert.ok(badPod.served().failed >= 15, `the bad pod failed at least 5 times per ejection: ${badPod.served().failed}`);
    assert.equal(rq({ ...retriedV2, reporter: 'destination', response_code: '500' }), badPod.served().failed, "the sidecars count each of the bad pod's 500s");
    assert.equal(mesh.workload('retried-v2').pod(0).served().failed, 0);
    const sourceTotal = rq({ ...retriedV2, reporter: 'source' });
    const source5xx = rq({ ...retriedV2, reporter: 'source', response_code: /^5/ });
    assert.ok(sourceTotal > 100, `the gateway reports the canary's requests: ${sourceTotal}`);
    assert.ok(source5xx / sourceTotal <= 0.01, `retries hide the bad pod from the caller: ${source5xx} of ${sourceTotal}`);
    assert.ok(rq({ ...retriedV2, reporter: 'destination' }) > sourceTotal, 'retried attempts are counted by the sidecars, not by the gateway');

    // plain: nothing retries a 500, so the caller gets every one the bad pod answered before each ejection.
    const plainV2 = { destination_service: fqdn('plain'), destination_canonical_revision: 'v2', response_code: '500' };
    const plainFailures = mesh.workload('plain-v2').pod(2).served().failed;
    assert.ok((stat(samples, 'ejections_enforced_total', cluster('plain', 'v2')) ?? 0) >= 1);
    assert.ok(plainFailures >= 5);
    assert.equal(rq({ ...plainV2, reporter: 'source', response_flags: '-' }), plainFailures, 'the caller sees each 500');
    assert.equal(rq({ ...plainV2, reporter: 'destination' }), plainFailures);

    // capped: no host may go, so each detection overflows and the pod keeps serving errors.
    const cappedV2 = cluster('capped', 'v2');
    assert.equal(stat(samples, 'ejections_enforced_total', cappedV2), 0);
    assert.equal(stat(samples, 'ejections_active', cappedV2), 0);
    const overflow = stat(samples, 'ejections_overflow', cappedV2) ?? 0;
    assert.ok(overflow >= 3, `capped v2 overflows: ${overflow}`);
    assert.equal(stat(samples, 'ejections_detected_consecutive_5xx', cappedV2), overflow);
    assert.equal(stat(samples, 'ejections_overflow', cluster('capped', 'v1')), 0, "the subset's policy replaces the top level's for v2 only");

    const text = await (await fetch(mesh.metricsUrl)).text();
    assert.match(text, /# TYPE envoy_cluster_outlier_detection_ejections_enforced_total counter/);
    assert.match(text, /# TYPE envoy_cluster_outlier_detection_ejections_active gauge/);
    assert.match(text, /# TYPE envoy_cluster_outlier_detection_ejections_overflow counter/);
  } finally {
    await mesh.stop();
    await harness.stop();
  }
});

function post(url: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = request(`${url}/v1/models/m:predict`, { method: 'POST', headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.once('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    r.once('error', reject);
    r.end('{}');
  });
}

test('the gateway answers as Envoy does: no healthy upstream, timeouts, exhausted retries', async () => {
  const harness = await sandboxHarness({ namespaces: [NS] });
  const objects = KubernetesObjectApi.makeApiClient(harness.kubeConfig);
  // single: one pod, always failing, that outlier detection may eject (100 %).
  await objects.create(virtualService('single', [0, 100]));
  await objects.create(destinationRule('single', { outlierDetection: { consecutive5xxErrors: 2, interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 100 } }));
  // slow: a route timeout shorter than the pods' answers; flaky: every pod answers 503.
  await objects.create(virtualService('slow', [0, 100], { timeout: '50ms' }));
  await objects.create(destinationRule('slow'));
  // Round robin, so that each retry lands on another pod (least request only prefers one).
  await objects.create(virtualService('flaky', [0, 100], { retries: { attempts: 2, retryOn: 'gateway-error' } }));
  await objects.create(destinationRule('flaky', { loadBalancer: { simple: 'ROUND_ROBIN' } }));
  const mesh = await startMesh({
    kubeConfig: harness.kubeConfig,
    namespace: NS,
    workloads: [
      ...workloads('single', { version: 'v2', pods: 1 }),
      ...workloads('slow', undefined).map((w) => ({ ...w, behaviour: { errorRate: 0, latencyMs: 400, latencySpread: 0 } })),
      ...workloads('flaky', undefined).map((w) => ({ ...w, behaviour: { errorRate: 1, errorCode: 503, latencyMs: 1 } })),
    ],
  });
  try {
    const single = fqdn('single');
    assert.deepEqual([(await post(mesh.ingressUrl, single)).status, (await post(mesh.ingressUrl, single)).status], [500, 500]);
    await eventually(async () => ((await post(mesh.ingressUrl, single)).body === 'no healthy upstream\n' ? true : undefined), 'the only pod to be ejected');
    const slow = await post(mesh.ingressUrl, fqdn('slow'));
    assert.deepEqual(slow, { status: 504, body: 'upstream request timeout\n' });
    const flaky = await post(mesh.ingressUrl, fqdn('flaky'));
    assert.equal(flaky.status, 503);

    const samples = await scrape(mesh.metricsUrl);
    const rq = (labels: Record<string, string>): number => total(samples, 'istio_requests_total', labels);
    assert.ok(
      rq({ reporter: 'source', response_code: '503', response_flags: 'UH', destination_service: single, destination_service_name: 'single', destination_workload: 'unknown', destination_canonical_revision: 'latest' }) >= 1,
      'no healthy upstream: the gateway knows the service, not the workload',
    );
    assert.equal(rq({ reporter: 'destination', destination_service: single, response_code: '503' }), 0, 'no pod saw those');
    assert.equal(rq({ reporter: 'source', destination_service: fqdn('slow'), response_code: '504', response_flags: 'UT', destination_workload: 'slow-v2', destination_app: 'unknown' }), 1);
    assert.equal(rq({ reporter: 'destination', destination_service: fqdn('slow'), response_code: '0', response_flags: 'DC' }), 1, 'the pod saw its caller go');
    assert.equal(rq({ reporter: 'source', destination_service: fqdn('flaky'), response_code: '503', response_flags: 'URX' }), 1, 'retries exhausted');
    assert.equal(rq({ reporter: 'destination', destination_service: fqdn('flaky'), response_code: '503' }), 3, 'three attempts, three pods');
    assert.deepEqual(
      mesh.workload('flaky-v2').pods.map((p) => p.served().failed),
      [1, 1, 1],
      'each retry went to a pod not tried yet',
    );
  } finally {
    await mesh.stop();
    await harness.stop();
  }
});
