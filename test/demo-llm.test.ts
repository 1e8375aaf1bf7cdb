// End to end: `modelcanary demo --llm` headless, with the real Prometheus scraping simulated
// vLLM pods (their TTFT, inter-token and end-to-end histograms, named, labelled and bucketed as
// vLLM's) behind InferencePools, an HTTPRoute splitting traffic between the pools, and the real
// controller judging them. What a user would check: the chat model whose v2 streams as fast went
// 20 → 50 → 100 % and Succeeded; the one whose v3's first tokens come five times later was rolled
// back at 20 %, on time to first token, with confidence bounds, while its 5xx and inter-token
// latency gave no cause; the HTTPRoutes were left with their backendRefs' weights as the
// rollouts ended.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PROMETHEUS_MISSING } from './helpers/prometheus.ts';
import { runDemoHeadless, spawnDemo } from './helpers/demo.ts';

test('demo --llm: a chat model promoted on its streaming latencies, one with a TTFT regression rolled back on TTFT', { skip: PROMETHEUS_MISSING, timeout: 120_000 }, async () => {
  const demo = await runDemoHeadless(['--llm'], process.env, 90_000);
  try {
    const output = demo.output();
    assert.match(output, /^Both rollouts ended as expected\.$/m, output);
    assert.match(output, /behind InferencePools, split by HTTPRoutes and judged on time to first token by the real controller/);

    // The weights the simulated gateway applied from the HTTPRoutes, in order, and where the routes were left.
    assert.match(output, /^ +chat +Succeeded +as expected: v2 promoted after \d+ s\n +canary weights applied by the gateway: 20 % → 50 % → 100 %$/m);
    assert.match(output, /^ +chat-mini +RolledBack +as expected: v3 rolled back to v2 after \d+ s\n +canary weights applied by the gateway: 20 % → 0 %$/m);
    const weights = async (route: string): Promise<string> =>
      (await demo.kubectl(['-n', 'ml-serving', 'get', 'httproute', route, '-o', 'jsonpath={range .spec.rules[0].backendRefs[*]}{.kind}/{.name}={.weight} {end}'])).stdout.trim();
    assert.equal(await weights('chat'), 'InferencePool/chat-v1=0 InferencePool/chat-v2=100');
    assert.equal(await weights('chat-mini'), 'InferencePool/chat-mini-v2=100 InferencePool/chat-mini-v3=0');

    const canaries = JSON.parse((await demo.kubectl(['-n', 'ml-serving', 'get', 'modelcanaries', '-o', 'json'])).stdout) as {
      items: { metadata: { name: string }; status: { phase: string; lastAnalysis: { decision: string; reason: string; metrics: { name: string; verdict: string }[] } } }[];
    };
    const status = (name: string) => canaries.items.find((c) => c.metadata.name === name)?.status;
    assert.equal(status('chat')?.phase, 'Succeeded');
    const rolledBack = status('chat-mini');
    assert.equal(rolledBack?.phase, 'RolledBack');
    assert.equal(rolledBack.lastAnalysis.decision, 'rollback');
    // Rolled back on TTFT, with the numbers: the canary's p95 and both versions' bounds at 95 %.
    assert.match(rolledBack.lastAnalysis.reason, /ttft-p95: .*canary TTFT p95 \d+ ms is above maxMs 500 ms.*\(canary between \d+ ms and [\d.]+ m?s at 95 %, \d+ requests; stable \d+ ms, between \d+ ms and \d+ ms, \d+ requests\)/);
    const verdicts = Object.fromEntries(rolledBack.lastAnalysis.metrics.map((m) => [m.name, m.verdict]));
    assert.equal(verdicts['ttft-p95'], 'fail');
    assert.notEqual(verdicts['error-rate'], 'fail');
    assert.notEqual(verdicts['itl-p95'], 'fail');

    // The simulated vLLM pods export vLLM's series, which Prometheus scraped.
    const mesh = await (await fetch(demo.printed('mesh telemetry'))).text();
    assert.match(mesh, /^vllm:time_to_first_token_seconds_bucket\{le="0\.25",model_name="chat-mini-v3",engine="0"\} \d+$/m);
    assert.match(mesh, /^vllm:inter_token_latency_seconds_count\{model_name="chat-v2",engine="0"\} \d+$/m);
    assert.match(mesh, /^vllm:e2e_request_latency_seconds_bucket\{le="7680",model_name="chat-v1",engine="0"\} \d+$/m);
    const prometheus = /Prometheus +(http\S+)/.exec(output)?.[1] ?? '';
    const query = encodeURIComponent('count by (model_name) (vllm:time_to_first_token_seconds_count)');
    const answer = (await (await fetch(`${prometheus}/api/v1/query?query=${query}`)).json()) as { data: { result: { metric: { model_name: string } }[] } };
    assert.deepEqual(answer.data.result.map((r) => r.metric.model_name).sort(), ['chat-mini-v2', 'chat-mini-v3', 'chat-v1', 'chat-v2']);
  } finally {
    assert.equal(await demo.interrupt(), 0, demo.output());
  }
});

test('demo --llm refuses to run without Prometheus, and says why', async () => {
  const demo = spawnDemo(['--llm', '--without-prometheus']);
  assert.equal(await demo.exited, 2);
  assert.match(demo.output(), /--llm needs Prometheus: its checks read vLLM's histograms through PromQL \(drop --without-prometheus\)/);
});
