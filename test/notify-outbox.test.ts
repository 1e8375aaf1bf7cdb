// Notifications as the reconciler owes them: written into status.outbox with their transition,
// handed to delivery only after that write, removed once settled. Each test is something a
// person in the channel would notice: a message twice, a message missing after a restart, a
// rollback without its numbers, a flood of "held" messages, a channel that silently fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { owe } from '../src/controller/notifications.ts';
import { parseDestination } from '../src/controller/outbox.ts';
import type { Notification } from '../src/api/status.ts';
import { RecordingOutbox, World } from './helpers/fakes.ts';

type Json = Record<string, any>;
const SECOND = 1000;

function listening(outbox = new RecordingOutbox()): { w: World; outbox: RecordingOutbox } {
  const w = new World();
  w.deps.outbox = outbox;
  w.metrics.serve(w.clock.now(), 'v1', 1000);
  return { w, outbox };
}

async function check(w: World, canaryErrors = 0): Promise<void> {
  w.clock.advance(30 * SECOND);
  w.traffic('v1', 'v2', 1000, canaryErrors);
  await w.settle('m');
}

test('a rollout is announced once per transition, and what was delivered leaves the status', async () => {
  const { w, outbox } = listening();
  await w.add('m');
  await w.settle('m');
  await check(w);
  await check(w);
  for (let i = 0; i < 3; i++) await w.pass('m');
  const s = await w.status('m');
  assert.equal(s.phase, 'Succeeded');
  assert.deepEqual(outbox.kinds(), ['started', 'advanced', 'promoted']);
  assert.equal(new Set(outbox.sent.map((n) => n.id)).size, 3);
  assert.equal(s.outbox, undefined, 'nothing is owed any more');
  assert.equal(s.conditions.find((c: Json) => c.type === 'Notified')?.status, 'True');
  const promoted = outbox.sent[2] as Notification;
  assert.deepEqual([promoted.severity, promoted.weight, promoted.step, promoted.steps, promoted.stableVersion, promoted.canaryVersion], ['info', 100, 3, 3, 'v1', 'v2']);
  assert.match(promoted.summary, /v2 passed every step and now serves all traffic/);
});

test('a rollback says which metric, both versions\' numbers, the bound and the rule', async () => {
  const { w, outbox } = listening();
  await w.add('m');
  await w.settle('m');
  await check(w, 400);
  assert.equal((await w.status('m')).phase, 'RolledBack');
  const rolledBack = outbox.sent.find((n) => n.kind === 'rolledBack');
  assert.ok(rolledBack !== undefined, JSON.stringify(outbox.kinds()));
  assert.equal(rolledBack.severity, 'error');
  assert.equal(rolledBack.weight, 0);
  const line = rolledBack.metrics.find((m) => m.name === 'error-rate');
  assert.deepEqual([line?.verdict, line?.stable, line?.canary, line?.bound], ['fail', '0.0 %', '40.0 %', '≤ 1.00 %']);
  assert.match(rolledBack.reason, /error-rate/);
  assert.match(line?.reason ?? '', /40/);
});

test('a controller that dies between the status write and the send sends it after the restart, once; after delivery nothing is sent again', async () => {
  const { w, outbox: dying } = listening();
  dying.deliverAtOnce = false;
  await w.add('m');
  await w.settle('m');
  assert.deepEqual(dying.kinds(), ['started'], 'handed over after the write');
  const owed = (await w.status('m')).outbox as Notification[];
  assert.equal(owed.length, 1, 'owed in the status until settled');

  // The process dies before its queue sent anything; a new one (or a new leader) starts.
  const restarted = new RecordingOutbox();
  w.deps.outbox = restarted;
  await w.settle('m');
  assert.deepEqual(restarted.sent.map((n) => n.id), [owed[0]?.id], 'the same notification, not a new one');
  await w.pass('m'); // as the outbox asks once it settled
  assert.equal((await w.status('m')).outbox, undefined);

  const again = new RecordingOutbox();
  w.deps.outbox = again;
  for (let i = 0; i < 3; i++) await w.pass('m');
  assert.deepEqual(again.sent, [], 'a delivered notification is not owed after another restart');
});

test('a status write that loses a race sends nothing; the pass decided again sends one', async () => {
  const { w, outbox } = listening();
  await w.add('m');
  await w.settle('m');
  w.clock.advance(30 * SECOND);
  w.traffic('v1', 'v2');
  let raced = false;
  w.canaries.beforeWrite = () => {
    if (raced) return;
    raced = true;
    w.canaries.edit('ml-serving', 'm', (o) => (o.metadata.labels = { team: 'fraud' }));
  };
  await w.settle('m');
  assert.ok(raced);
  assert.deepEqual(outbox.kinds(), ['started', 'advanced']);
});

test('nothing is owed where nobody listens; an error still is where only errors are wanted', async () => {
  const { w, outbox } = listening();
  outbox.least = 'error';
  await w.add('m');
  await w.settle('m');
  assert.equal((await w.status('m')).outbox, undefined, 'no status entry for a notification nobody wants');
  await check(w, 400);
  assert.deepEqual(outbox.kinds(), ['rolledBack']);
});

test('a destination that refuses is a condition on the ModelCanary, and the rollout goes on', async () => {
  const { w, outbox } = listening();
  outbox.deliverAtOnce = false;
  await w.add('m');
  await w.settle('m');
  outbox.deliver(['team-slack: Slack answered 404 channel_not_found: the channel was deleted']);
  await w.settle('m');
  const s = await w.status('m');
  const notified = s.conditions.find((c: Json) => c.type === 'Notified');
  assert.deepEqual([notified?.status, notified?.reason], ['False', 'NotDelivered']);
  assert.match(notified?.message ?? '', /channel_not_found/);
  assert.equal(s.outbox, undefined, 'given up on: not owed any more');
  await check(w);
  assert.equal((await w.status('m')).canaryWeight, 30, 'the rollout did not wait for Slack');
  outbox.deliver();
  await w.settle('m');
  assert.equal((await w.status('m')).conditions.find((c: Json) => c.type === 'Notified')?.status, 'True');
});

test('a hold is announced once per cause, not at every edit that keeps it; fixing it is announced too', async () => {
  const { w, outbox } = listening();
  await w.add('m');
  await w.settle('m');
  await check(w);
  w.canaries.edit('ml-serving', 'm', (o) => (o.spec.analysis.interval = '30'));
  await w.settle('m');
  w.canaries.edit('ml-serving', 'm', (o) => (o.spec.analysis.interval = '31'));
  await w.settle('m');
  w.canaries.edit('ml-serving', 'm', (o) => (o.spec.analysis.interval = '30s'));
  await w.settle('m');
  assert.deepEqual(outbox.kinds(), ['started', 'advanced', 'invalid', 'resumed']);
  const invalid = outbox.sent[2] as Notification;
  assert.equal(invalid.severity, 'error', 'traffic is split and held until a person acts');
  assert.match(invalid.reason, /spec\.analysis\.interval/);
});

test('a full outbox drops the oldest progress news first, never a rollback', () => {
  const n = (kind: Notification['kind'], severity: Notification['severity'], i: number): Notification =>
    ({ id: `id-${i}`, kind, severity, time: new Date(i * 1000).toISOString(), namespace: 'ns', name: 'm', model: 'm', stableVersion: 'v1', canaryVersion: 'v2', step: 1, steps: 3, weight: 10, phase: 'Progressing', summary: '', reason: '', metrics: [] });
  let outbox: Notification[] = [n('rolledBack', 'error', 0)];
  const dropped: Notification[] = [];
  for (let i = 1; i <= 10; i++) {
    const next = owe(outbox, n('advanced', 'info', i));
    outbox = next.outbox;
    dropped.push(...next.dropped);
  }
  assert.equal(outbox.length, 8);
  assert.equal(outbox[0]?.kind, 'rolledBack');
  assert.deepEqual(dropped.map((d) => d.id), ['id-1', 'id-2', 'id-3']);
});

test('--notify: what an operator writes, and what each mistake is told', () => {
  const cases: [string, Json | RegExp][] = [
    ['platform=slack,secret=slack-platform', { name: 'platform', format: 'slack', url: { secret: { namespace: 'modelcanary-system', name: 'slack-platform' } }, least: 'info', isDefault: false }],
    ['bus=webhook,secret=ops/bus,severity=error,default', { name: 'bus', format: 'webhook', url: { secret: { namespace: 'ops', name: 'bus' } }, least: 'error', isDefault: true }],
    ['platform=slack', /name the Secret that holds the webhook URL \(key "url"\)/],
    ['platform=teams,secret=x', /--notify "platform=teams": write NAME=slack\|webhook,secret=/],
    ['https://hooks.slack.com/services/T/B/SECRET', /--notify \(a URL\): write NAME=/],
    ['platform=slack,url=https://hooks.slack.com/services/T/B/SECRET', /a webhook URL is a credential and does not go in a flag/],
    ['platform=slack,secret=x,severity=loud', /unknown option "severity=loud"/],
  ];
  for (const [text, expected] of cases) {
    const parsed = parseDestination(text, 'modelcanary-system');
    if (expected instanceof RegExp) {
      assert.ok('problem' in parsed, text);
      assert.match(parsed.problem, expected, text);
      assert.ok(!parsed.problem.includes('SECRET'), `${text}: a URL is never repeated`);
    } else assert.deepEqual(parsed, expected, text);
  }
});
