// Operating a rollout, one pass at a time on in-memory fakes with a manual clock: promote,
// promote --full, abort, retry, pause/resume, approve; gates by approval and by webhook
// (approve, deny, timeout); rollout windows that open and close; preRollout webhooks; the cap
// on concurrent rollouts. Each request is an annotation the controller acts on once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requestValue } from '../src/api/actions.ts';
import type { WebhookAnswer, WebhookCall, WebhookCaller } from '../src/controller/webhooks.ts';
import { RolloutSlots } from '../src/controller/slots.ts';
import { World } from './helpers/fakes.ts';

type Json = Record<string, any>;
const SECOND = 1000;
const MINUTE = 60 * SECOND;

/** Webhooks answered by name, every call recorded. */
class ScriptedWebhooks implements WebhookCaller {
  readonly calls: WebhookCall[] = [];
  readonly answers = new Map<string, WebhookAnswer>();

  call(call: WebhookCall): Promise<WebhookAnswer> {
    this.calls.push(call);
    return Promise.resolve(this.answers.get(call.body.hook) ?? { ok: true });
  }

  of(type: string): string[] {
    return this.calls.filter((c) => c.body.type === type).map((c) => c.body.hook);
  }
}

async function world(analysis: Json = {}, name = 'm'): Promise<World & { hooks: ScriptedWebhooks }> {
  const w = Object.assign(new World(), { hooks: new ScriptedWebhooks() });
  w.deps.webhooks = w.hooks;
  w.metrics.serve(w.clock.now(), 'v1', 1000);
  await w.add(name, analysis);
  await w.settle(name);
  return w;
}

async function healthyCheck(w: World, name = 'm'): Promise<void> {
  w.clock.advance(30 * SECOND);
  w.traffic('v1', 'v2');
  await w.settle(name);
}

function ask(w: World, annotation: string, request: Json, name = 'm'): void {
  w.canaries.edit('ml-serving', name, (o) => {
    o.metadata.annotations = { ...o.metadata.annotations, [`modelcanary.io/${annotation}`]: requestValue({ id: `${annotation}-${Math.random()}`, ...request }) };
  });
}

const canaryWeight = async (w: World, name = 'm'): Promise<number> => (await w.weights(name)).find(([v]) => v === 'v2')?.[1] ?? 0;

test('promote moves to the next step at once; --full goes straight to 100 %; each says who asked and is acted on once', async () => {
  const w = await world({ steps: [10, 30, 60, 100] });
  ask(w, 'promote', { by: 'alice' });
  await w.settle('m');
  let s = await w.status('m');
  assert.deepEqual([s.phase, s.canaryWeight, await canaryWeight(w)], ['Progressing', 30, 30]);
  assert.match(w.events.messages('StepAdvanced').at(-1) ?? '', /advanced to 30 % by alice/);
  // The same annotation value again is not a new request.
  w.clock.advance(SECOND);
  await w.settle('m');
  assert.equal((await w.status('m')).canaryWeight, 30);

  ask(w, 'promote', { by: 'bob', full: true });
  await w.settle('m');
  s = await w.status('m');
  assert.deepEqual([s.phase, s.canaryWeight, await canaryWeight(w)], ['Succeeded', 100, 100]);
  assert.match(s.lastAnalysis.reason, /promoted by bob without analysis \(--full\)/);
  assert.match(w.events.messages('Promoted').at(-1) ?? '', /bob/);
});

test('abort sends all traffic back to stable with the reason "aborted by", fires the rollback webhook, and retry starts again', async () => {
  const w = await world({ webhooks: [{ name: 'cleanup', type: 'rollback', url: 'http://hooks.test/rollback' }] });
  await healthyCheck(w);
  assert.equal((await w.status('m')).canaryWeight, 30);
  ask(w, 'abort', { by: 'carol' });
  await w.settle('m');
  const s = await w.status('m');
  assert.deepEqual([s.phase, s.canaryWeight, await canaryWeight(w)], ['RolledBack', 0, 0]);
  assert.match(s.message, /aborted by carol at 30 %/);
  assert.equal(s.conditions.find((c: Json) => c.type === 'Progressing').reason, 'Aborted');
  assert.ok(s.lastAnalysis.metrics.length > 0, 'the last check\'s numbers stay');
  assert.deepEqual(w.hooks.of('rollback'), ['cleanup']);

  ask(w, 'retry', { by: 'carol' });
  await w.settle('m');
  assert.deepEqual([(await w.status('m')).phase, await canaryWeight(w)], ['Progressing', 10]);
});

test('a request that makes no sense now is acknowledged with a warning and changes nothing', async () => {
  const w = await world();
  ask(w, 'approve', { by: 'dave' });
  await w.settle('m');
  assert.match(w.events.messages('RequestIgnored').at(-1) ?? '', /approve by dave ignored: no gate waits for approval/);
  assert.equal((await w.status('m')).canaryWeight, 10);
});

test('pause and resume name who did it', async () => {
  const w = await world();
  w.canaries.edit('ml-serving', 'm', (o) => {
    o.spec.suspend = true;
    o.metadata.annotations = { 'modelcanary.io/suspended-by': requestValue({ id: '1', by: 'erin' }) };
  });
  await w.settle('m');
  assert.equal((await w.status('m')).phase, 'Paused');
  assert.match(w.events.messages('Paused').at(-1) ?? '', /paused at 10 % by erin/);
  // Paused, a promote is refused: resume first.
  ask(w, 'promote', { by: 'erin' });
  await w.settle('m');
  assert.match(w.events.messages('RequestIgnored').at(-1) ?? '', /resume it first/);
  w.canaries.edit('ml-serving', 'm', (o) => {
    o.spec.suspend = false;
  });
  await w.settle('m');
  assert.equal((await w.status('m')).phase, 'Progressing');
});

test('a manual gate before promotion holds 30 % while the checks pass, until approved; a bad canary at the gate is still rolled back', async () => {
  const w = await world({ gates: [{ name: 'sre', approval: 'manual', before: [100] }] });
  await healthyCheck(w);
  await healthyCheck(w);
  let s = await w.status('m');
  assert.deepEqual([s.phase, s.canaryWeight, s.gate?.name, s.gate?.weight], ['Progressing', 30, 'sre', 100]);
  assert.equal(s.conditions.find((c: Json) => c.type === 'GateOpen')?.reason, 'AwaitingApproval');
  assert.match(s.message, /held: waiting for approval of gate sre/);
  await healthyCheck(w);
  assert.equal((await w.status('m')).canaryWeight, 30, 'more passing checks do not open it');

  ask(w, 'approve', { by: 'frank' });
  await w.settle('m');
  s = await w.status('m');
  assert.deepEqual([s.phase, s.canaryWeight, await canaryWeight(w)], ['Succeeded', 100, 100]);
  assert.deepEqual(s.openedGates.map((g: Json) => [g.name, g.weight, g.by]), [['sre', 100, 'approved by frank']]);

  const bad = await world({ gates: [{ name: 'sre', approval: 'manual', before: [100] }] }, 'b');
  await healthyCheck(bad, 'b');
  await healthyCheck(bad, 'b');
  assert.equal((await bad.status('b')).gate?.name, 'sre');
  for (let i = 0; i < 3; i++) {
    bad.clock.advance(30 * SECOND);
    bad.traffic('v1', 'v2', 1000, 300);
    await bad.settle('b');
  }
  assert.equal((await bad.status('b')).phase, 'RolledBack');
});

test('a webhook gate opens on 2xx, stays shut while it says no, and a timeout rolls back (or advances, if so set)', async () => {
  const w = await world({ gates: [{ name: 'ci', approval: 'webhook', url: 'http://hooks.test/gate', before: [30] }] });
  w.hooks.answers.set('ci', { ok: false, problem: 'the webhook answered 403 (Forbidden): not yet' });
  await healthyCheck(w);
  let s = await w.status('m');
  assert.deepEqual([s.canaryWeight, s.gate?.name, s.gate?.answer], [10, 'ci', 'the webhook answered 403 (Forbidden): not yet']);
  w.hooks.answers.set('ci', { ok: true });
  w.clock.advance(30 * SECOND);
  w.traffic('v1', 'v2');
  await w.settle('m');
  s = await w.status('m');
  assert.deepEqual([s.canaryWeight, s.gate, await canaryWeight(w)], [30, undefined, 30]);
  assert.ok(w.hooks.calls.every((c) => c.body.type === 'gate' && c.body.name === 'm' && c.body.namespace === 'ml-serving'));

  for (const [onTimeout, phase, weight] of [['rollback', 'RolledBack', 0], ['advance', 'Progressing', 30]] as const) {
    const t = await world({ gates: [{ name: 'ci', approval: 'webhook', url: 'http://hooks.test/gate', before: [30], timeout: '5m', onTimeout }] }, `t-${onTimeout}`);
    t.hooks.answers.set('ci', { ok: false, problem: 'the webhook answered 500' });
    await healthyCheck(t, `t-${onTimeout}`);
    assert.equal((await t.status(`t-${onTimeout}`)).gate?.name, 'ci');
    t.clock.advance(6 * MINUTE);
    await t.settle(`t-${onTimeout}`);
    const ts = await t.status(`t-${onTimeout}`);
    assert.deepEqual([ts.phase, ts.canaryWeight], [phase, weight], onTimeout);
  }
});

test('a rollout window: outside it the step holds (the start too), inside it the rollout moves, and a rollback never waits', async () => {
  // The manual clock starts on Thursday 2026-11-26 at 12:00 UTC; the window is 13:00-14:00 UTC daily.
  const windows = [{ schedule: '0 13 * * *', duration: '1h', timeZone: 'UTC' }];
  const w = await world({ windows });
  let s = await w.status('m');
  assert.deepEqual([s.phase, s.canaryWeight ?? 0], ['Pending', 0], 'no traffic moves before the window');
  assert.equal(s.window?.opensAt, '2026-11-26T13:00:00.000Z');
  w.clock.advance(61 * MINUTE);
  await w.settle('m');
  assert.equal((await w.status('m')).canaryWeight, 10, 'the window opened: the rollout starts');
  await healthyCheck(w);
  assert.equal((await w.status('m')).canaryWeight, 30);
  w.clock.advance(60 * MINUTE); // 14:31: closed
  w.traffic('v1', 'v2');
  await w.settle('m');
  s = await w.status('m');
  assert.deepEqual([s.canaryWeight, s.window?.opensAt], [30, '2026-11-27T13:00:00.000Z']);
  assert.equal(s.conditions.find((c: Json) => c.type === 'InWindow')?.status, 'False');
  // A bad canary outside the window is rolled back at once.
  for (let i = 0; i < 3 && (await w.status('m')).phase !== 'RolledBack'; i++) {
    w.clock.advance(30 * SECOND);
    w.traffic('v1', 'v2', 1000, 300);
    await w.settle('m');
  }
  assert.equal((await w.status('m')).phase, 'RolledBack');
});

test('a preRollout webhook that says no keeps the rollout from starting; rollout and postRollout webhooks are called', async () => {
  const hooks = [
    { name: 'smoke', type: 'preRollout', url: 'http://hooks.test/smoke' },
    { name: 'load', type: 'rollout', url: 'http://hooks.test/load', metadata: { type: 'cmd', cmd: 'hey -z 1m http://m/' } },
    { name: 'done', type: 'postRollout', url: 'http://hooks.test/done' },
  ];
  const w = Object.assign(new World(), { hooks: new ScriptedWebhooks() });
  w.deps.webhooks = w.hooks;
  w.hooks.answers.set('smoke', { ok: false, problem: 'the webhook answered 500' });
  w.metrics.serve(w.clock.now(), 'v1', 1000);
  await w.add('m', { webhooks: hooks });
  await w.settle('m');
  let s = await w.status('m');
  assert.deepEqual([s.phase, s.conditions.find((c: Json) => c.type === 'Preflight')?.reason], ['Pending', 'PreRolloutFailed']);
  w.hooks.answers.delete('smoke');
  w.clock.advance(30 * SECOND);
  await w.settle('m');
  assert.equal((await w.status('m')).canaryWeight, 10);
  await healthyCheck(w);
  await healthyCheck(w);
  s = await w.status('m');
  assert.equal(s.phase, 'Succeeded');
  assert.ok(w.hooks.of('rollout').length >= 2, 'load is asked for at the start and at each step');
  assert.equal(w.hooks.calls.find((c) => c.body.hook === 'load')?.body.metadata.cmd, 'hey -z 1m http://m/');
  assert.deepEqual(w.hooks.of('postRollout'), ['done']);
});

test('with --max-concurrent-rollouts 1, a second rollout waits (phase Waiting) and starts when the first ends', async () => {
  const w = Object.assign(new World(), { hooks: new ScriptedWebhooks() });
  const census = async (): Promise<Json[]> =>
    Promise.all(['a', 'b'].map(async (name) => ({ name, status: await w.status(name) })));
  let snapshot: Json[] = [];
  w.deps.slots = new RolloutSlots(
    1,
    () =>
      snapshot.map(({ name, status }) => ({
        key: `ml-serving/${name}`,
        active: ['Progressing', 'Paused', 'Failed'].includes(status.phase),
        waitingSince: status.phase === 'Waiting' ? status.conditions.find((c: Json) => c.type === 'Progressing')?.lastTransitionTime : undefined,
      })),
    () => w.clock.now().getTime(),
  );
  w.metrics.serve(w.clock.now(), 'v1', 1000);
  await w.add('a');
  await w.add('b');
  await w.settle('a');
  snapshot = await census();
  await w.settle('b');
  let b = await w.status('b');
  assert.equal(b.phase, 'Waiting');
  assert.match(b.message, /--max-concurrent-rollouts 1/);
  for (let i = 0; i < 2; i++) await healthyCheck(w, 'a');
  assert.equal((await w.status('a')).phase, 'Succeeded');
  snapshot = await census();
  w.clock.advance(61 * SECOND);
  await w.settle('b');
  b = await w.status('b');
  assert.deepEqual([b.phase, b.canaryWeight], ['Progressing', 10]);
});
