import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { VirtualService } from '@kubernetes-models/istio/networking.istio.io/v1/VirtualService';
import { HTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute';
import { ROOT } from './helpers/manifests.ts';
import { modelcanary } from './helpers/cli.ts';

const root = fileURLToPath(ROOT);
const scratch = mkdtempSync(join(tmpdir(), 'modelcanary-route-'));
after(() => {
  rmSync(scratch, { recursive: true, force: true });
});

test('route prints the VirtualService at the weight, valid for Istio, retries and timeout kept', async () => {
  const run = await modelcanary(['route', '--canary', 'examples/fraud-detector-istio.yaml', '--route', 'examples/fraud-detector-istio.yaml', '--weight', '30']);
  assert.equal(run.code, 0, run.stderr);
  const vs = parse(run.stdout);
  assert.doesNotThrow(() => {
    new VirtualService(vs).validate();
  });
  const [predict] = vs.spec.http;
  assert.deepEqual(predict.route.map((d: { destination: { subset: string }; weight: number }) => [d.destination.subset, d.weight]), [['v1', 70], ['v2', 30]]);
  assert.deepEqual(predict.retries, { attempts: 2, perTryTimeout: '2s', retryOn: '5xx,reset' });
  assert.equal(predict.timeout, '5s');
});

test('route -o json for an HTTPRoute, and --pin for the canary pin', async () => {
  const gateway = await modelcanary(['route', '--canary', 'examples/recommender-gateway-api.yaml', '--route', 'examples/recommender-gateway-api.yaml', '--weight', '10', '-o', 'json']);
  assert.equal(gateway.code, 0, gateway.stderr);
  const route = JSON.parse(gateway.stdout);
  assert.doesNotThrow(() => {
    new HTTPRoute(route).validate();
  });
  assert.deepEqual(route.spec.rules[0].backendRefs.map((r: { name: string; weight: number }) => [r.name, r.weight]), [['recommender-20241102', 90], ['recommender-20241119', 10]]);
  const pinned = await modelcanary(['route', '--canary', 'examples/chat-llm-vllm.yaml', '--route', join(scratch, 'chat-vs.yaml'), '--weight', '5', '--pin']);
  assert.equal(pinned.code, 2, 'no such file yet');
  writeFileSync(
    join(scratch, 'chat-vs.yaml'),
    'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: chat-llm}\nspec:\n  hosts: [chat-llm]\n  http:\n    - name: chat-completions\n      match: [{uri: {prefix: /v1/chat/completions}}]\n      timeout: 300s\n      route: [{destination: {host: chat-llm, subset: llama-3-8b}}]\n',
  );
  const run = await modelcanary(['route', '--canary', 'examples/chat-llm-vllm.yaml', '--route', join(scratch, 'chat-vs.yaml'), '--weight', '5', '--pin']);
  assert.equal(run.code, 0, run.stderr);
  const vs = parse(run.stdout);
  assert.deepEqual(vs.spec.http.map((r: { name: string }) => r.name), ['chat-completions-modelcanary-pin', 'chat-completions']);
  assert.deepEqual(vs.spec.http[0].match[0].headers, { 'x-model-version': { exact: 'llama-3-1-8b-q4' } });
  assert.doesNotMatch(run.stdout, /[&*]a\d/, 'plain YAML for a diff or a GitOps repository: no anchors or aliases');
});

test('route exits 1 naming what does not fit, 2 on an unreadable file', async () => {
  const stray = join(scratch, 'stray.yaml');
  writeFileSync(stray, readFileSync(join(root, 'examples/fraud-detector-istio.yaml'), 'utf8').replace('          weight: 100', '          weight: 90\n        - destination: {host: legacy-scorer}\n          weight: 10'));
  const run = await modelcanary(['route', '--canary', 'examples/fraud-detector-istio.yaml', '--route', stray, '--weight', '30']);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /http route "predict" of VirtualService fraud-detector sends traffic to host legacy-scorer, which is neither stable/);
  const wrongKind = await modelcanary(['route', '--canary', 'examples/fraud-detector-istio.yaml', '--route', 'examples/recommender-gateway-api.yaml', '--weight', '30']);
  assert.equal(wrongKind.code, 1);
  assert.match(wrongKind.stderr, /no VirtualService in this file; spec\.trafficRouting of ModelCanary fraud-detector uses istio/);
  const badWeight = await modelcanary(['route', '--canary', 'examples/fraud-detector-istio.yaml', '--route', stray, '--weight', '130']);
  assert.equal(badWeight.code, 1);
  const missing = await modelcanary(['route', '--canary', 'examples/fraud-detector-istio.yaml', '--route', join(scratch, 'none.yaml'), '--weight', '30']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /none\.yaml: cannot read: no such file \(check the path\)/);
});

test('route and validate with InferencePool versions: the weights of the pools move, the timeout stays, missing pools are noted', async () => {
  const example = 'examples/chat-inferencepool.yaml';
  const valid = await modelcanary(['validate', example]);
  assert.equal(valid.code, 0, valid.stdout);
  assert.match(valid.stdout, /chat-inferencepool\.yaml: ModelCanary\/chat: valid/);

  const run = await modelcanary(['route', '--canary', example, '--route', example, '--weight', '30']);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, '', 'both pools are in the file');
  const route = parse(run.stdout);
  assert.doesNotThrow(() => {
    new HTTPRoute(route).validate();
  });
  const [rule] = route.spec.rules;
  assert.deepEqual(rule.backendRefs, [
    { group: 'inference.networking.k8s.io', kind: 'InferencePool', name: 'chat-pool-v1', weight: 70 },
    { group: 'inference.networking.k8s.io', kind: 'InferencePool', name: 'chat-pool-v2', weight: 30 },
  ]);
  assert.deepEqual(rule.timeouts, { request: '120s' });

  // The canary's pool left out of the file, and stable's written in the alpha API: said, not refused.
  const text = readFileSync(join(root, example), 'utf8');
  const [canaryAndRoute = '', stablePool = ''] = text.split(/\n---\n(?=apiVersion: inference)/);
  const partial = join(scratch, 'one-pool.yaml');
  writeFileSync(partial, `${canaryAndRoute}\n---\n${stablePool.replace('apiVersion: inference.networking.k8s.io/v1', 'apiVersion: inference.networking.x-k8s.io/v1alpha2')}`);
  const noted = await modelcanary(['route', '--canary', partial, '--route', partial, '--weight', '10']);
  assert.equal(noted.code, 0, noted.stderr);
  assert.match(noted.stderr, /note: InferencePool chat-pool-v1 \(spec\.stable\.destination\.inferencePool\) is inference\.networking\.x-k8s\.io\/v1alpha2, but the backendRefs written name InferencePool v1 \(group inference\.networking\.k8s\.io\)/);
  assert.match(noted.stderr, /note: InferencePool chat-pool-v2 \(spec\.canary\.destination\.inferencePool\) is not among the InferencePools in these files/);

  // An InferencePool under Istio is refused by validation, with the field named.
  const istio = join(scratch, 'istio-pool.yaml');
  writeFileSync(istio, readFileSync(join(root, 'examples/fraud-detector-istio.yaml'), 'utf8').replace('destination: {host: fraud-detector, subset: v2, port: 8080}', 'destination: {inferencePool: fraud-detector-v2}'));
  const refused = await modelcanary(['validate', istio]);
  assert.equal(refused.code, 1, refused.stdout);
  assert.match(refused.stdout, /spec\.canary\.destination\.inferencePool: inferencePool is for gatewayAPI: an Istio VirtualService routes to a host/);
});
