// The demo on a machine without Prometheus: it says so and reads the mesh's counters itself,
// and the rollouts end as they do with Prometheus.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canaryWeights, runDemoHeadless, sampleValue } from './helpers/demo.ts';

test('the demo without Prometheus reads the mesh directly and ends the same way', { timeout: 240_000 }, async () => {
  // A PATH without prometheus, as on a machine that lacks it; the demo needs nothing else from PATH.
  const demo = await runDemoHeadless([], { ...process.env, PATH: '/nonexistent' });
  try {
    const output = demo.output();
    assert.match(output, /Prometheus +not installed: reading the mesh's counters directly \(apt-get install -y prometheus for the real thing\)/);
    assert.match(output, /Both rollouts ended as expected\./, output);
    const lines = demo.routeLines();
    assert.deepEqual(canaryWeights(lines, 'fraud-detector'), [10, 30, 100], lines.join('\n'));
    assert.deepEqual(canaryWeights(lines, 'recommender'), [10, 30, 0], lines.join('\n'));
    const metrics = await (await fetch(demo.printed('controller metrics'))).text();
    assert.equal(sampleValue(metrics, 'modelcanary_rollouts_total', { name: 'fraud-detector', outcome: 'promoted' }), 1);
    assert.equal(sampleValue(metrics, 'modelcanary_rollouts_total', { name: 'recommender', outcome: 'rolledBack' }), 1);
    assert.equal(sampleValue(metrics, 'modelcanary_prometheus_query_duration_seconds_count', {}), 0, 'no Prometheus was asked');
  } finally {
    assert.equal(await demo.interrupt(), 0, demo.output());
  }
});
