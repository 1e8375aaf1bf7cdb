// The simulated gateway's HTTPRoute routing (src/sandbox/mesh/httproutes.ts), as a table: which
// route, rule and backendRef a request goes to, by host, path and weight, and how an
// InferencePool backendRef is read. What `demo --llm` relies on to send the canary its share.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseHttpRoute, poolSelector } from '../src/sandbox/mesh/httproutes.ts';

const pool = (name: string, weight?: number): Record<string, unknown> => ({ group: 'inference.networking.k8s.io', kind: 'InferencePool', name, ...(weight === undefined ? {} : { weight }) });
const route = {
  metadata: { name: 'chat', namespace: 'ml-serving' },
  spec: {
    hostnames: ['chat.example.com'],
    rules: [
      { name: 'health', matches: [{ path: { type: 'Exact', value: '/health' } }], backendRefs: [{ name: 'chat-health', port: 8080 }] },
      { name: 'completions', matches: [{ path: { type: 'PathPrefix', value: '/v1/chat' } }], backendRefs: [pool('chat-v1', 80), pool('chat-v2', 20)] },
    ],
  },
};
const request = (host: string, path: string) => ({ host, path, method: 'POST', headers: {} });

const cases = [
  { what: 'a prefix match, drawn under the first weight', req: request('chat.example.com', '/v1/chat/completions'), draw: 0.79, expect: 'InferencePool ml-serving/chat-v1' },
  { what: 'a prefix match, drawn in the last 20 %', req: request('chat.example.com', '/v1/chat/completions'), draw: 0.8, expect: 'InferencePool ml-serving/chat-v2' },
  { what: 'an exact path to a Service', req: request('chat.example.com', '/health'), draw: 0.5, expect: 'Service ml-serving/chat-health:8080' },
  { what: 'a prefix is whole path segments', req: request('chat.example.com', '/v1/chatty'), draw: 0.5, expect: 'noRoute' },
  { what: 'another host', req: request('other.example.com', '/v1/chat/completions'), draw: 0.5, expect: 'noRoute' },
];

for (const c of cases) {
  test(`HTTPRoute routing: ${c.what}`, () => {
    const choice = chooseHttpRoute([route], c.req, () => c.draw);
    const got = choice.kind === 'noRoute' ? 'noRoute' : `${choice.backend.kind} ${choice.backend.namespace}/${choice.backend.name}${choice.backend.kind === 'Service' ? `:${choice.backend.port ?? ''}` : ''}`;
    assert.equal(got, c.expect);
  });
}

test('a weight of 0 is never drawn, and an InferencePool v1 is read by its matchLabels and first target port', () => {
  const rolledBack = { ...route, spec: { ...route.spec, rules: [{ backendRefs: [pool('chat-v1', 100), pool('chat-v2', 0)] }] } };
  for (const draw of [0, 0.5, 0.999]) {
    const choice = chooseHttpRoute([rolledBack], request('chat.example.com', '/'), () => draw);
    assert.ok(choice.kind === 'routed' && choice.backend.name === 'chat-v1');
  }
  assert.deepEqual(poolSelector({ spec: { selector: { matchLabels: { app: 'chat', version: 'v2' } }, targetPorts: [{ number: 8000 }] } }), { matchLabels: { app: 'chat', version: 'v2' }, port: 8000 });
  assert.equal(poolSelector({ spec: { targetPorts: [{ number: 8000 }] } }), undefined, 'a pool that selects nothing has no endpoints');
});
