// The controller's own series as a dashboard or an alert reads them: counters that exist at 0
// before anything happened, a plan and versions to join on, and nothing left behind by a
// ModelCanary that was deleted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ControllerMetrics } from '../src/observability/metrics.ts';

function lines(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

test('a new ModelCanary\'s counters read 0 before anything happens; a deleted one leaves no series', async () => {
  const metrics = new ControllerMetrics('test');
  metrics.destinations(['platform']);
  metrics.recordRollout({ namespace: 'ml', name: 'm', model: 'chat', stable: 'v1', canary: 'v2', steps: [10, 30, 100], metrics: ['error-rate'], inconclusiveLimit: 3, phase: 'Progressing', weight: 10, stepIndex: 0, inconclusiveChecks: 3 });
  const before = await metrics.registry.metrics();
  assert.ok(lines(before, 'modelcanary_rollouts_total').some((l) => l.includes('outcome="rolledBack"') && l.endsWith(' 0')));
  assert.ok(lines(before, 'modelcanary_transitions_total').some((l) => l.includes('event="promoted"') && l.endsWith(' 0')));
  assert.ok(lines(before, 'modelcanary_analysis_checks_total').some((l) => l.includes('verdict="fail"') && l.endsWith(' 0')));
  assert.ok(lines(before, 'modelcanary_notifications_total').some((l) => l.includes('destination="platform"') && l.includes('outcome="rejected"') && l.endsWith(' 0')));
  assert.deepEqual(lines(before, 'modelcanary_step_weight').map((l) => l.split(' ').at(-1)), ['10', '30', '100']);
  assert.ok(lines(before, 'modelcanary_rollout_info').some((l) => l.includes('model="chat"') && l.includes('stable="v1"') && l.includes('canary="v2"')));
  assert.ok(lines(before, 'modelcanary_held_without_evidence').some((l) => l.endsWith(' 1')), 'three inconclusive checks of a limit of three');
  assert.ok(lines(before, 'process_resident_memory_bytes').length > 0 || lines(before, 'nodejs_heap_size_used_bytes').length > 0, 'Node\'s default metrics');

  // A new canary replaces the old series rather than adding to them.
  metrics.recordRollout({ namespace: 'ml', name: 'm', model: 'chat', stable: 'v2', canary: 'v3', steps: [50, 100], metrics: ['error-rate'], inconclusiveLimit: 3, phase: 'Progressing', weight: 50, stepIndex: 0, inconclusiveChecks: 0 });
  const replaced = await metrics.registry.metrics();
  assert.equal(lines(replaced, 'modelcanary_rollout_info').length, 1);
  assert.equal(lines(replaced, 'modelcanary_step_weight').length, 2);

  metrics.forget('ml', 'm');
  const after = await metrics.registry.metrics();
  const left = after.split('\n').filter((l) => l.includes('name="m"'));
  assert.deepEqual(left, [], 'nothing of the deleted ModelCanary is left');
});
