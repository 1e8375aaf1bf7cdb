import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualService } from '@kubernetes-models/istio/networking.istio.io/v1/VirtualService';
import { HTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute';
import { checkModelCanary } from '../src/api/validate.ts';
import type { ModelCanary } from '../src/api/modelcanary.ts';
import { planVirtualService, finalVirtualService } from '../src/routing/istio.ts';
import { finalHttpRoute, planHttpRoute } from '../src/routing/gateway.ts';
import { createRouter, MemoryObjectStore } from '../src/routing/router.ts';
import { CANARY_BACKEND_ANNOTATION, ORIGINAL_ROUTES_ANNOTATION, type RouteIntent, type RouteTarget } from '../src/routing/plan.ts';
import { seeded } from '../src/analysis/random.ts';
import { istioManifest } from './helpers/manifests.ts';

type Json = Record<string, any>;

function canary(edit: (m: Json) => void = () => undefined): ModelCanary {
  const manifest = istioManifest();
  manifest.spec.trafficRouting.istio.routes = ['predict'];
  edit(manifest);
  const checked = checkModelCanary(manifest);
  assert.ok(checked.ok, JSON.stringify(checked.ok ? '' : checked.problems));
  return checked.value;
}

const at = (weight: number): RouteIntent => ({ weight, pin: false, stage: 'during' });

const target = (c: ModelCanary): RouteTarget => ({ spec: c.spec, namespace: c.metadata.namespace ?? 'default', name: c.metadata.name });

const dest = (subset: string, extra: Json = {}): Json => ({ destination: { host: 'fraud-detector', subset, ...extra } });

/** A VirtualService as our users write them: several routes, matches, retries, timeouts, a mirror, TCP and TLS. */
function realistic(): Json {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'fraud-detector', namespace: 'ml-serving', labels: { team: 'risk' }, annotations: { 'argocd.argoproj.io/tracking-id': 'x' } },
    spec: {
      hosts: ['fraud-detector', 'fraud.example.com'],
      gateways: ['istio-ingress/public', 'mesh'],
      http: [
        { name: 'debug', match: [{ headers: { 'x-debug': { exact: '1' } } }], route: [dest('v1')] },
        {
          name: 'predict',
          match: [{ uri: { prefix: '/v1/predict' } }],
          route: [{ ...dest('v1', { port: { number: 8080 } }), weight: 100, headers: { request: { set: { 'x-served-by': 'mesh' } } } }],
          retries: { attempts: 3, perTryTimeout: '2s', retryOn: '5xx,reset' },
          timeout: '10s',
          mirror: { host: 'fraud-shadow' },
          mirrorPercentage: { value: 5 },
        },
        { name: 'chat', match: [{ uri: { prefix: '/v1/chat/completions' } }], route: [dest('v1')], timeout: '300s' },
      ],
      tcp: [{ match: [{ port: 9000 }], route: [{ destination: { host: 'fraud-detector', port: { number: 9000 } } }] }],
      tls: [{ match: [{ port: 443, sniHosts: ['fraud.example.com'] }], route: [{ destination: { host: 'fraud-detector', port: { number: 443 } } }] }],
    },
  };
}

function routeNamed(vs: Json, name: string): Json {
  return (vs.spec.http as Json[]).find((r) => r.name === name) ?? {};
}

test('the managed route gets integer weights summing to 100; everything else is untouched', () => {
  const live = realistic();
  for (const weight of [0, 10, 30, 100]) {
    const plan = planVirtualService(live, target(canary()), weight, false);
    assert.ok(plan.ok, plan.ok ? '' : plan.problem);
    const predict = routeNamed(plan.object, 'predict');
    assert.deepEqual(predict.route.map((d: Json) => [d.destination.subset, d.weight]), [['v1', 100 - weight], ['v2', weight]]);
    // The canary's entry is modelled on stable's: same host, port and header manipulation.
    assert.deepEqual(predict.route[1].destination, { host: 'fraud-detector', subset: 'v2', port: { number: 8080 } });
    assert.deepEqual(predict.route[1].headers, predict.route[0].headers);
    const { http: _http, ...restSpec } = (plan.object as Json).spec;
    const { http: _liveHttp, ...liveRest } = live.spec;
    assert.deepEqual(restSpec, liveRest);
    for (const name of ['debug', 'chat']) assert.deepEqual(routeNamed(plan.object, name), routeNamed(live, name));
    const { route: _r, ...predictRest } = predict;
    const { route: _lr, ...livePredictRest } = routeNamed(live, 'predict');
    assert.deepEqual(predictRest, livePredictRest);
    assert.equal((plan.object as Json).metadata.labels.team, 'risk');
    assert.doesNotThrow(() => {
      new VirtualService(plan.object).validate();
    });
  }
});

test('a VirtualService that does not fit is refused with the route and destination named', () => {
  const cases: { name: string; vs: (vs: Json) => void; canary?: (m: Json) => void; problem: RegExp }[] = [
    { name: 'no route of that name', vs: (vs) => (routeNamed(vs, 'predict').name = 'score'), problem: /VirtualService fraud-detector has no http route named "predict" \(it has: debug, score, chat\)/ },
    { name: 'several routes, none named in the spec', vs: () => undefined, canary: (m) => delete m.spec.trafficRouting.istio.routes, problem: /has 3 http routes \(debug, predict, chat\): name the ones to manage in spec\.trafficRouting\.istio\.routes/ },
    { name: 'a stray destination', vs: (vs) => routeNamed(vs, 'predict').route.push({ destination: { host: 'legacy-scorer' }, weight: 5 }), problem: /http route "predict" of VirtualService fraud-detector sends traffic to host legacy-scorer, which is neither stable/ },
    { name: 'no stable destination (host mismatch)', vs: (vs) => (routeNamed(vs, 'predict').route = [dest('v1', { host: 'fraud' })]), problem: /has no destination for stable \(host fraud-detector, subset v1\)/ },
    {
      name: 'a delegate',
      vs: (vs) => {
        const predict = routeNamed(vs, 'predict');
        predict.delegate = { name: 'fraud-routes', namespace: 'ml-serving' };
        delete predict.route;
      },
      problem: /delegates to VirtualService fraud-routes: point spec\.trafficRouting\.istio\.virtualService at that one/ },
  ];
  for (const c of cases) {
    const vs = realistic();
    c.vs(vs);
    const plan = planVirtualService(vs, target(canary(c.canary)), 10, false);
    assert.ok(!plan.ok, c.name);
    assert.match(plan.problem, c.problem, c.name);
  }
});

test('leftovers go: a version an earlier rollout left at 0, and the canary the controller recorded before; any other traffic stays', () => {
  // After v1 → v2 succeeded: v1 at 0, v2 at 100. The next rollout is stable v2, canary v3.
  const next = canary((m) => {
    m.spec.stable = { version: 'v2', destination: { host: 'fraud-detector', subset: 'v2' } };
    m.spec.canary = { version: 'v3', destination: { host: 'fraud-detector', subset: 'v3' } };
  });
  const after = realistic();
  routeNamed(after, 'predict').route = [{ ...dest('v1'), weight: 0 }, { ...dest('v2'), weight: 100 }];
  const begun = planVirtualService(after, target(next), 10, false, 'begin');
  assert.ok(begun.ok, begun.ok ? '' : begun.problem);
  assert.deepEqual(routeNamed(begun.object, 'predict').route.map((d: Json) => [d.destination.subset, d.weight]), [['v2', 90], ['v3', 10]]);
  const originals = JSON.parse((begun.object as Json).metadata.annotations[ORIGINAL_ROUTES_ANNOTATION]);
  assert.deepEqual(originals[0].route.map((d: Json) => [d.destination.subset, d.weight]), [['v2', 100]], 'the originals are the route this rollout started from');

  // Mid-rollout the canary changes from v2 to v3: v2 was recorded as the canary, so its share goes back to stable.
  const first = canary();
  const during = planVirtualService(realistic(), target(first), 50, false);
  assert.ok(during.ok);
  const changed = canary((m) => (m.spec.canary = { version: 'v3', destination: { host: 'fraud-detector', subset: 'v3' } }));
  const restarted = planVirtualService(during.object, target(changed), 10, false, 'begin');
  assert.ok(restarted.ok, restarted.ok ? '' : restarted.problem);
  assert.deepEqual(routeNamed(restarted.object, 'predict').route.map((d: Json) => [d.destination.subset, d.weight]), [['v1', 90], ['v3', 10]]);

  // A destination with traffic that the controller did not add is never taken away.
  const foreign = structuredClone(during.object) as Json;
  routeNamed(foreign, 'predict').route.push({ destination: { host: 'shadow' }, weight: 5 });
  const refused = planVirtualService(foreign, target(changed), 10, false, 'begin');
  assert.ok(!refused.ok);
  assert.match(refused.problem, /sends traffic to host shadow/);

  // At the end the controller's marks go, and the weights stay.
  const ended = planVirtualService(during.object, target(first), 100, false, 'end');
  assert.ok(ended.ok);
  assert.deepEqual((ended.object as Json).metadata.annotations, { 'argocd.argoproj.io/tracking-id': 'x' });
});

test('hosts match in their short and long forms, and an existing canary entry is reused', () => {
  const vs = realistic();
  routeNamed(vs, 'predict').route = [
    { destination: { host: 'fraud-detector.ml-serving.svc.cluster.local', subset: 'v1' }, weight: 70 },
    { destination: { host: 'fraud-detector.ml-serving', subset: 'v2' }, weight: 30 },
  ];
  const plan = planVirtualService(vs, target(canary()), 50, false);
  assert.ok(plan.ok);
  assert.deepEqual(plan.found, { stable: 70, canary: 30 });
  assert.deepEqual(routeNamed(plan.object, 'predict').route.map((d: Json) => d.weight), [50, 50]);
});

test('the pin route sends testers to the canary at any weight, before the managed route, and goes away', () => {
  const pinned = canary((m) => (m.spec.trafficRouting.istio.pinHeader = { name: 'X-Model-Version' }));
  const plan = planVirtualService(realistic(), target(pinned), 10, true);
  assert.ok(plan.ok);
  const names = ((plan.object as Json).spec.http as Json[]).map((r) => r.name);
  assert.deepEqual(names, ['debug', 'predict-modelcanary-pin', 'predict', 'chat']);
  const pin = routeNamed(plan.object, 'predict-modelcanary-pin');
  assert.deepEqual(pin.match, [{ uri: { prefix: '/v1/predict' }, headers: { 'x-model-version': { exact: 'v2' } } }]);
  assert.deepEqual(pin.route.map((d: Json) => [d.destination.subset, d.weight]), [['v2', 100]]);
  assert.equal(pin.timeout, '10s', 'testers get the same timeouts and retries');
  assert.doesNotThrow(() => {
    new VirtualService(plan.object).validate();
  });
  const unpinned = planVirtualService(plan.object, target(pinned), 100, false);
  assert.ok(unpinned.ok);
  assert.deepEqual(((unpinned.object as Json).spec.http as Json[]).map((r) => r.name), ['debug', 'predict', 'chat']);
});

test('finalize restores the routes as they were, or leaves all traffic on stable', () => {
  const live = realistic();
  const c = canary();
  const during = planVirtualService(live, target(c), 30, false);
  assert.ok(during.ok);
  assert.equal(JSON.parse((during.object as Json).metadata.annotations[ORIGINAL_ROUTES_ANNOTATION])[0].name, 'predict');
  const later = planVirtualService(during.object, target(c), 100, false);
  assert.ok(later.ok);
  assert.equal((later.object as Json).metadata.annotations[ORIGINAL_ROUTES_ANNOTATION], (during.object as Json).metadata.annotations[ORIGINAL_ROUTES_ANNOTATION], 'recorded once, at takeover');
  const restored = finalVirtualService(later.object, target(c), 'restore');
  assert.ok(restored.ok);
  assert.deepEqual(restored.object, live);
  const stable = finalVirtualService(later.object, target(canary((m) => (m.spec.trafficRouting.onDelete = 'stable'))), 'stable');
  assert.ok(stable.ok);
  assert.deepEqual(routeNamed(stable.object, 'predict').route.map((d: Json) => d.weight), [100, 0]);
  assert.equal((stable.object as Json).metadata.annotations[ORIGINAL_ROUTES_ANNOTATION], undefined);
});

test('property: for every weight 0–100 and random routes, weights sum to 100 and nothing else changes', () => {
  const random = seeded(11);
  const pick = <T>(xs: T[]): T => xs[Math.floor(random.next() * xs.length)] as T;
  for (let run = 0; run < 60; run++) {
    const vs = realistic();
    const predict = routeNamed(vs, 'predict');
    const start = Math.floor(random.next() * 101);
    predict.route = pick([[{ ...dest('v1'), weight: 100 - start }, { ...dest('v2'), weight: start }], [dest('v1')], [{ ...dest('v2'), weight: start }, { ...dest('v1'), weight: 100 - start }]]);
    if (random.next() < 0.5) predict.fault = { abort: { percentage: { value: random.next() * 10 }, httpStatus: 503 } };
    if (random.next() < 0.5) (vs.spec.http as Json[]).reverse();
    const c = canary((m) => random.next() < 0.5 && (m.spec.trafficRouting.istio.pinHeader = { name: 'x-model-version' }));
    for (let weight = 0; weight <= 100; weight++) {
      const pin = weight % 2 === 0;
      const plan = planVirtualService(vs, target(c), weight, pin);
      assert.ok(plan.ok);
      const managed = routeNamed(plan.object, 'predict');
      const weights = (managed.route as Json[]).map((d) => d.weight as number);
      assert.equal(weights.reduce((a, b) => a + b, 0), 100);
      assert.ok(weights.every((w) => Number.isInteger(w) && w >= 0));
      const strip = (o: Json): Json => {
        const copy = structuredClone(o);
        copy.spec.http = (copy.spec.http as Json[]).filter((r) => !String(r.name).endsWith('-modelcanary-pin')).map((r) => (r.name === 'predict' ? { ...r, route: undefined } : r));
        delete copy.metadata.annotations[ORIGINAL_ROUTES_ANNOTATION];
        delete copy.metadata.annotations[CANARY_BACKEND_ANNOTATION];
        return copy;
      };
      const before = structuredClone(vs);
      before.metadata.annotations[ORIGINAL_ROUTES_ANNOTATION] = 'x';
      assert.deepEqual(strip(plan.object), strip(before));
    }
  }
});

function httpRoute(): Json {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'recommender', namespace: 'ml-serving' },
    spec: {
      parentRefs: [{ name: 'ml-gateway', namespace: 'istio-ingress' }],
      hostnames: ['recommender.example.com'],
      rules: [
        { name: 'health', matches: [{ path: { type: 'Exact', value: '/healthz' } }], backendRefs: [{ name: 'recommender-v1', port: 8000 }] },
        {
          name: 'recommend',
          matches: [{ path: { type: 'PathPrefix', value: '/v1/recommend' } }],
          filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-env', value: 'prod' }] } }],
          timeouts: { request: '5s' },
          backendRefs: [{ name: 'recommender-v1', port: 8000 }],
        },
      ],
    },
  };
}

const gatewayCanary = (edit: (m: Json) => void = () => undefined): ModelCanary =>
  canary((m) => {
    m.metadata.name = 'recommender';
    m.spec.trafficRouting = { gatewayAPI: { httpRoute: 'recommender', ruleName: 'recommend' } };
    m.spec.stable.destination = { host: 'recommender-v1', port: 8000 };
    m.spec.canary.destination = { host: 'recommender-v2', port: 8000 };
    edit(m);
  });

test('HTTPRoute: the chosen rule gets backendRef weights; other rules, filters and timeouts stay', () => {
  const live = httpRoute();
  for (const weight of [0, 25, 100]) {
    const plan = planHttpRoute(live, target(gatewayCanary()), weight);
    assert.ok(plan.ok, plan.ok ? '' : plan.problem);
    const [health, recommend] = (plan.object as Json).spec.rules as Json[];
    assert.deepEqual(health, live.spec.rules[0]);
    assert.deepEqual(recommend?.backendRefs, [{ name: 'recommender-v1', port: 8000, weight: 100 - weight }, { name: 'recommender-v2', port: 8000, weight }]);
    assert.deepEqual(recommend.filters, live.spec.rules[1].filters);
    assert.deepEqual(recommend.timeouts, live.spec.rules[1].timeouts);
    assert.doesNotThrow(() => {
      new HTTPRoute(plan.object as never).validate();
    });
  }
  assert.deepEqual((planHttpRoute(live, target(gatewayCanary()), 10) as { found: unknown }).found, { stable: 100, canary: 0 }, 'an omitted weight is 1: all of it');
  const byIndex = planHttpRoute(live, target(gatewayCanary((m) => (m.spec.trafficRouting.gatewayAPI = { httpRoute: 'recommender', ruleIndex: 1 }))), 10);
  assert.ok(byIndex.ok);
  const none = planHttpRoute(live, target(gatewayCanary((m) => (m.spec.trafficRouting.gatewayAPI = { httpRoute: 'recommender' }))), 10);
  assert.ok(!none.ok && /HTTPRoute recommender has 2 rules: choose one with spec\.trafficRouting\.gatewayAPI\.ruleName or ruleIndex/.test(none.problem));
  const stray = httpRoute();
  stray.spec.rules[1].backendRefs.push({ name: 'legacy', port: 80 });
  const refused = planHttpRoute(stray, target(gatewayCanary()), 10);
  assert.ok(!refused.ok && /sends traffic to Service legacy port 80, which is neither stable nor canary/.test(refused.problem));
});

test('the router writes only on change, retries on conflict, and reports hand edits', async () => {
  const store = new MemoryObjectStore();
  store.put(realistic());
  const router = createRouter(canary(), store);
  assert.deepEqual(await router.inspect(at(10)), { ok: true, found: { stable: 100, canary: 0 }, inSync: false });
  const first = await router.apply(at(10));
  assert.deepEqual(first, { ok: true, written: true, found: { stable: 100, canary: 0 } });
  assert.deepEqual(await router.apply(at(10)), { ok: true, written: false, found: { stable: 90, canary: 10 } });
  assert.equal(store.writes, 1);

  // Someone sets 50/50 by hand: the next apply finds it (the controller reports it) and puts 10 back.
  const live = (await store.get('networking.istio.io/v1', 'VirtualService', 'ml-serving', 'fraud-detector')) as Json;
  routeNamed(live, 'predict').route[0].weight = 50;
  routeNamed(live, 'predict').route[1].weight = 50;
  assert.equal(await store.replace(live), 'ok');
  assert.deepEqual(await router.apply(at(10)), { ok: true, written: true, found: { stable: 50, canary: 50 } });

  // A concurrent writer wins the first two races: the router re-reads and still lands its weight.
  let races = 2;
  const racing = {
    get: store.get.bind(store),
    list: store.list.bind(store),
    replace: async (object: Json) => {
      if (races-- > 0) {
        const theirs = (await store.get('networking.istio.io/v1', 'VirtualService', 'ml-serving', 'fraud-detector')) as Json;
        theirs.metadata.labels = { ...theirs.metadata.labels, touched: String(races) };
        await store.replace(theirs);
      }
      return store.replace(object);
    },
  };
  const result = await createRouter(canary(), racing).apply(at(30));
  assert.ok(result.ok && result.written);
  const final = (await store.get('networking.istio.io/v1', 'VirtualService', 'ml-serving', 'fraud-detector')) as Json;
  assert.deepEqual(routeNamed(final, 'predict').route.map((d: Json) => d.weight), [70, 30]);
  assert.equal(final.metadata.labels.touched, '0', "the other writer's edit is kept");
});

test('the router falls back to networking.istio.io/v1beta1 and names what is missing', async () => {
  const store = new MemoryObjectStore();
  store.put({ ...realistic(), apiVersion: 'networking.istio.io/v1beta1' });
  assert.deepEqual(await createRouter(canary(), store).apply(at(30)), { ok: true, written: true, found: { stable: 100, canary: 0 } });
  const empty = createRouter(canary(), new MemoryObjectStore());
  assert.deepEqual(await empty.inspect(at(30)), { ok: false, problem: 'VirtualService ml-serving/fraud-detector does not exist (looked for networking.istio.io/v1, networking.istio.io/v1beta1)' });
});

// ── InferencePool backends (Gateway API Inference Extension) ─────────────────────────────

const POOL = { group: 'inference.networking.k8s.io', kind: 'InferencePool' };

/** A chat model split between two InferencePools, beside a health rule and another model's pool that are not ours. */
function poolRoute(): Json {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'chat', namespace: 'llm', labels: { team: 'genai' } },
    spec: {
      parentRefs: [{ name: 'inference-gateway', namespace: 'gateway' }],
      hostnames: ['chat.example.com'],
      rules: [
        { name: 'health', matches: [{ path: { type: 'Exact', value: '/healthz' } }], backendRefs: [{ group: '', kind: 'Service', name: 'chat-router', port: 8080, weight: 1 }] },
        {
          name: 'chat-completions',
          matches: [{ path: { type: 'PathPrefix', value: '/v1/chat/completions' } }],
          filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-gateway', value: 'inference' }] } }],
          timeouts: { request: '120s' },
          backendRefs: [{ ...POOL, name: 'chat-pool-v1' }],
        },
        { name: 'embeddings', matches: [{ path: { type: 'PathPrefix', value: '/v1/embeddings' } }], backendRefs: [{ ...POOL, name: 'embed-pool', weight: 100 }] },
      ],
    },
  };
}

const poolCanary = (edit: (m: Json) => void = () => undefined): ModelCanary =>
  canary((m) => {
    m.metadata = { name: 'chat', namespace: 'llm' };
    m.spec.model = 'chat';
    m.spec.trafficRouting = { gatewayAPI: { httpRoute: 'chat', ruleName: 'chat-completions' } };
    m.spec.stable = { version: 'llama-3-8b', destination: { inferencePool: 'chat-pool-v1' } };
    m.spec.canary = { version: 'llama-3-1-8b', destination: { inferencePool: 'chat-pool-v2' } };
    edit(m);
  });

const ruleOf = (route: Json, name: string): Json => (route.spec.rules as Json[]).find((r) => r.name === name) ?? {};
const refWeights = (route: Json, rule = 'chat-completions'): [string, number][] => (ruleOf(route, rule).backendRefs as Json[]).map((r) => [r.name, r.weight]);

test('InferencePool backends: every weight of a step plan and the rollback, valid HTTPRoutes, everything else kept', () => {
  const live = poolRoute();
  const c = poolCanary();
  const plan: { weight: number; stage: 'begin' | 'during' | 'end'; found: [number, number] }[] = [
    { weight: 0, stage: 'begin', found: [100, 0] },
    { weight: 10, stage: 'during', found: [100, 0] },
    { weight: 30, stage: 'during', found: [90, 10] },
    { weight: 100, stage: 'during', found: [70, 30] },
    // A failed check at 100 % (before promotion) rolls back: all to stable, the rollout over.
    { weight: 0, stage: 'end', found: [0, 100] },
  ];
  let current: Json = live;
  for (const step of plan) {
    const planned = planHttpRoute(current, target(c), step.weight, step.stage);
    assert.ok(planned.ok, planned.ok ? '' : planned.problem);
    const route = planned.object as Json;
    assert.deepEqual(planned.found, { stable: step.found[0], canary: step.found[1] }, `found at ${step.weight}`);
    assert.deepEqual(ruleOf(route, 'chat-completions').backendRefs, [
      { ...POOL, name: 'chat-pool-v1', weight: 100 - step.weight },
      { ...POOL, name: 'chat-pool-v2', weight: step.weight },
    ]);
    for (const kept of ['filters', 'matches', 'timeouts']) assert.deepEqual(ruleOf(route, 'chat-completions')[kept], ruleOf(live, 'chat-completions')[kept], kept);
    assert.deepEqual(ruleOf(route, 'health'), ruleOf(live, 'health'));
    assert.deepEqual(ruleOf(route, 'embeddings'), ruleOf(live, 'embeddings'), "another model's pool is not ours");
    assert.deepEqual({ ...route.spec, rules: undefined }, { ...live.spec, rules: undefined });
    assert.equal(route.metadata.labels.team, 'genai');
    const annotations = route.metadata.annotations ?? {};
    if (step.stage === 'end') {
      assert.equal(annotations[CANARY_BACKEND_ANNOTATION], undefined);
    } else {
      assert.deepEqual(JSON.parse(annotations[CANARY_BACKEND_ANNOTATION]), { ...POOL, name: 'chat-pool-v2' });
      assert.deepEqual(JSON.parse(annotations[ORIGINAL_ROUTES_ANNOTATION])[0].rule.backendRefs, [{ ...POOL, name: 'chat-pool-v1' }]);
    }
    assert.doesNotThrow(() => {
      new HTTPRoute(route as never).validate();
    });
    current = route;
  }
  // Deleting the ModelCanary mid-rollout restores the route exactly.
  const during = planHttpRoute(live, target(c), 30, 'begin');
  assert.ok(during.ok);
  const restored = finalHttpRoute(during.object, target(c), 'restore');
  assert.ok(restored.ok);
  assert.deepEqual(restored.object, live);
});

test('InferencePool backends: the router writes each weight through the store, only on change', async () => {
  const store = new MemoryObjectStore();
  store.put(poolRoute());
  const router = createRouter(poolCanary(), store);
  for (const weight of [10, 30, 100]) {
    assert.deepEqual(await router.apply({ weight, pin: false, stage: 'during' }).then((r) => r.ok && r.written), true);
    const live = (await store.get('gateway.networking.k8s.io/v1', 'HTTPRoute', 'llm', 'chat')) as Json;
    assert.deepEqual(refWeights(live), [['chat-pool-v1', 100 - weight], ['chat-pool-v2', weight]]);
  }
  assert.deepEqual(await router.apply({ weight: 100, pin: false, stage: 'during' }), { ok: true, written: false, found: { stable: 0, canary: 100 } });
  assert.equal(await router.preflight(), undefined);
});

test('InferencePool backends: a rule that does not fit is refused, naming the field and the fix', () => {
  const cases: { name: string; edit: (rule: Json) => void; canary?: (m: Json) => void; problem: RegExp }[] = [
    {
      name: 'a Service and an InferencePool for the same version',
      edit: (rule) => rule.backendRefs.push({ name: 'chat-pool-v1', port: 8000 }),
      problem: /rule "chat-completions" of HTTPRoute chat mixes Service chat-pool-v1 port 8000 with InferencePool chat-pool-v1 for stable: a version is one backend; remove the Service backendRef \(spec\.stable\.destination\.inferencePool names InferencePool chat-pool-v1\)/,
    },
    {
      name: 'a Service where the spec names an InferencePool',
      edit: (rule) => (rule.backendRefs = [{ name: 'chat-pool-v1', port: 8000 }]),
      problem: /sends stable's traffic to Service chat-pool-v1 port 8000, but spec\.stable\.destination\.inferencePool names InferencePool chat-pool-v1: make the backendRef \{group: inference\.networking\.k8s\.io, kind: InferencePool, name: chat-pool-v1\}, or set spec\.stable\.destination\.host and port instead of inferencePool/,
    },
    {
      name: 'an InferencePool of the alpha API group',
      edit: (rule) => (rule.backendRefs = [{ group: 'inference.networking.x-k8s.io', kind: 'InferencePool', name: 'chat-pool-v1' }]),
      problem: /has a backendRef to InferencePool chat-pool-v1 \(group inference\.networking\.x-k8s\.io\), but spec\.stable\.destination\.inferencePool names InferencePool chat-pool-v1, group inference\.networking\.k8s\.io \(InferencePool v1\): set the backendRef's group to inference\.networking\.k8s\.io/,
    },
    {
      name: 'an InferencePool where the spec names a Service',
      edit: (rule) => (rule.backendRefs = [{ ...POOL, name: 'chat-v1' }]),
      canary: (m) => {
        m.spec.stable.destination = { host: 'chat-v1', port: 8000 };
      },
      problem: /sends stable's traffic to InferencePool chat-v1 \(group inference\.networking\.k8s\.io\), but spec\.stable\.destination\.host names Service chat-v1 port 8000: set spec\.stable\.destination\.inferencePool: chat-v1 \(without host and port\), or make the backendRef a Service/,
    },
    {
      name: 'a stray InferencePool',
      edit: (rule) => rule.backendRefs.push({ ...POOL, name: 'chat-pool-experimental', weight: 5 }),
      problem: /sends traffic to InferencePool chat-pool-experimental \(group inference\.networking\.k8s\.io\), which is neither stable nor canary; modelcanary will not take traffic away from it/,
    },
    {
      name: 'no backendRef for the stable pool',
      edit: (rule) => (rule.backendRefs = [{ ...POOL, name: 'chat-pool-v0' }]),
      canary: (m) => (m.spec.stable.destination = { inferencePool: 'chat-pool-v0-1' }),
      problem: /has no backendRef for stable \(InferencePool chat-pool-v0-1\): check spec\.stable\.destination \(add \{group: inference\.networking\.k8s\.io, kind: InferencePool, name: chat-pool-v0-1\} to the rule's backendRefs\)/,
    },
  ];
  for (const c of cases) {
    const route = poolRoute();
    c.edit(ruleOf(route, 'chat-completions'));
    const plan = planHttpRoute(route, target(poolCanary(c.canary)), 10);
    assert.ok(!plan.ok, c.name);
    assert.match(plan.problem, c.problem, c.name);
  }
  // Istio routes to hosts: a spec that names an InferencePool there is refused even if validation was skipped.
  const istio = canary();
  istio.spec.canary.destination = { inferencePool: 'fraud-pool-v2' };
  const refused = planVirtualService(realistic(), target(istio), 10, false);
  assert.ok(!refused.ok && /spec\.canary\.destination names InferencePool fraud-pool-v2, which VirtualService fraud-detector cannot route to: .*route with spec\.trafficRouting\.gatewayAPI and an HTTPRoute, or set destination\.host/.test(refused.problem));
});

test('InferencePool backends: a canary pool replaced mid-rollout gives its share back; a Service stable can hand over to a pool', () => {
  const first = poolCanary();
  const during = planHttpRoute(poolRoute(), target(first), 30, 'begin');
  assert.ok(during.ok);
  const replaced = poolCanary((m) => (m.spec.canary = { version: 'qwen-2-7b', destination: { inferencePool: 'chat-pool-v3' } }));
  const restarted = planHttpRoute(during.object, target(replaced), 10, 'begin');
  assert.ok(restarted.ok, restarted.ok ? '' : restarted.problem);
  assert.deepEqual(refWeights(restarted.object), [['chat-pool-v1', 90], ['chat-pool-v3', 10]]);

  // From a Service to an InferencePool: the pool's backendRef is modelled on the Service's, without its port.
  const route = poolRoute();
  ruleOf(route, 'chat-completions').backendRefs = [{ name: 'chat-v1', port: 8000, filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { add: [{ name: 'x-backend', value: 'v' }] } }] }];
  const migrating = poolCanary((m) => (m.spec.stable.destination = { host: 'chat-v1', port: 8000 }));
  const moved = planHttpRoute(route, target(migrating), 30);
  assert.ok(moved.ok, moved.ok ? '' : moved.problem);
  const refs = ruleOf(moved.object, 'chat-completions').backendRefs as Json[];
  assert.deepEqual(refs.map((r) => [r.group, r.kind, r.name, r.port, r.weight]), [[undefined, undefined, 'chat-v1', 8000, 70], [POOL.group, POOL.kind, 'chat-pool-v2', undefined, 30]]);
  assert.deepEqual(refs[1]?.filters, refs[0]?.filters, "the backendRef's filters are kept");
  assert.doesNotThrow(() => {
    new HTTPRoute(moved.object as never).validate();
  });
});
