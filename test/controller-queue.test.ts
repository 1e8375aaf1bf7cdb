// The work queue: at most `workers` passes at once, whatever is due, and a person's edit goes
// before the passes that timers brought. Driven on in-memory fakes (no informer).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KubeConfig } from '@kubernetes/client-node';
import { Controller } from '../src/controller/controller.ts';
import { World } from './helpers/fakes.ts';

test('twenty due ModelCanaries run two at a time with two workers, and an urgent one goes before those still waiting', async () => {
  const w = new World();
  w.metrics.serve(w.clock.now(), 'v1', 1000);
  const names = Array.from({ length: 20 }, (_, i) => `m${i}`);
  for (const name of [...names, 'edited']) await w.add(name);
  const order: string[] = [];
  const controller = new Controller(w.deps, { kubeConfig: new KubeConfig(), workers: 2, resyncMs: 0, onReconciled: (key) => order.push(key.split('/')[1] ?? '') });
  // Every metrics answer waits until the test lets it through, so passes pile up.
  let open: () => void = () => undefined;
  w.metrics.gate = new Promise((resolve) => (open = resolve));
  for (const name of names) controller.enqueue(`ml-serving/${name}`, 0);
  controller.enqueue('ml-serving/edited', 0, true);
  await new Promise((resolve) => setTimeout(resolve, 200));
  open();
  w.metrics.gate = undefined;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && !names.every((n) => order.includes(n))) await new Promise((resolve) => setTimeout(resolve, 20));
  await controller.stop();
  assert.ok(w.metrics.maxInFlight <= 2, `${w.metrics.maxInFlight} passes asked for metrics at once`);
  assert.ok(names.every((n) => order.includes(n)), `passes run: ${order.join(', ')}`);
  // The urgent one was queued after all twenty: it still runs before all but the two already running.
  assert.ok(order.indexOf('edited') <= 3, `edited ran at ${order.indexOf('edited')}: ${order.join(', ')}`);
});
