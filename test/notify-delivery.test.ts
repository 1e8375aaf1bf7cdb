// Delivery as a destination sees it: one message per transition, at Slack's pace, retried after
// a 429 or an outage and given up on in time, refused at once when a person must fix the
// webhook; and the generic webhook's document. Against a Slack stand-in on loopback, with
// small paces and timeouts: timings are checked from below only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Notification } from '../src/api/status.ts';
import { DeliveryQueue, type DeliveryOptions, type DeliveryOutcome, type Outcome } from '../src/notify/delivery.ts';
import type { Delivery, Notifier } from '../src/notify/notifier.ts';
import { SlackNotifier } from '../src/notify/slack.ts';
import { WEBHOOK_API_VERSION, WebhookNotifier } from '../src/notify/webhook.ts';
import { FakeSlack, type FakeSlackAnswer } from './helpers/fake-slack.ts';

function promoted(canaryVersion = 'v2'): Notification {
  return {
    id: `ml-serving/fraud-detector/${canaryVersion}/promoted`,
    kind: 'promoted',
    severity: 'info',
    time: '2026-11-26T12:00:00Z',
    namespace: 'ml-serving',
    name: 'fraud-detector',
    model: 'fraud-detector',
    stableVersion: 'v1',
    canaryVersion,
    step: 4,
    steps: 4,
    weight: 100,
    phase: 'Succeeded',
    summary: `fraud-detector ${canaryVersion} promoted after 4 steps.`,
    reason: 'every metric met its bound at every step',
    metrics: [{ name: 'error-rate', verdict: 'pass', stable: '0.10 %', canary: '0.12 %', stableValue: 0.001, canaryValue: 0.0012, bound: '≤ 1 %', reason: '0.12 % ≤ 1 %' }],
  };
}

interface Rig {
  slack: FakeSlack;
  queue: DeliveryQueue;
  events: DeliveryOutcome[];
  send: (n: Notification) => Promise<Outcome>;
}

async function rig(t: { after(fn: () => Promise<void> | void): void }, options: Partial<DeliveryOptions> = {}, notifierTimeoutMs?: number): Promise<Rig> {
  const slack = new FakeSlack();
  await slack.start();
  const events: DeliveryOutcome[] = [];
  const queue = new DeliveryQueue(new SlackNotifier({ url: slack.url, timeoutMs: notifierTimeoutMs }), { paceMs: 50, firstBackoffMs: 50, random: () => 0.5, onOutcome: (e) => events.push(e), ...options });
  t.after(async () => {
    queue.stop();
    await slack.stop();
  });
  return { slack, queue, events, send: (n) => new Promise((resolve) => { queue.enqueue(n, resolve); }) };
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

/** The canary version a received Slack message is about, from its fallback text. */
function versionOf(body: unknown): string {
  return /fraud-detector (v\d+)/.exec(String((body as { text?: unknown }).text))?.[1] ?? '?';
}

test('a message Slack takes is delivered once', async (t) => {
  const { slack, events, send } = await rig(t);
  assert.deepEqual(await send(promoted()), { delivered: true });
  assert.equal(slack.received.length, 1);
  assert.equal(slack.accepted.length, 1);
  assert.deepEqual(events, ['delivered']);
});

test("a 429 pauses the whole webhook for Retry-After, then each message is delivered exactly once, in order", async (t) => {
  const { slack, events, send } = await rig(t);
  slack.script.push({ status: 429, body: 'rate_limited', retryAfter: 1 });
  const outcomes = await Promise.all([send(promoted('v2')), send(promoted('v3'))]);
  assert.deepEqual(outcomes, [{ delivered: true }, { delivered: true }]);
  assert.deepEqual(slack.accepted.map((r) => versionOf(r.body)), ['v2', 'v3']);
  assert.equal(slack.received.length, 3);
  const [limited, retry, next] = slack.received.map((r) => r.at);
  assert.ok(limited !== undefined && retry !== undefined && next !== undefined);
  assert.ok(retry - limited >= 900, `the retry waited for Retry-After (${retry - limited} ms)`);
  assert.ok(next - limited >= 900, `the next message waited too (${next - limited} ms)`);
  assert.deepEqual(events, ['retried', 'delivered', 'delivered']);
});

test('a refusal a person must fix settles at once, after one request, with the fix', async (t) => {
  const cases: [FakeSlackAnswer, RegExp][] = [
    [{ status: 400, body: 'invalid_payload' }, /^Slack answered 400 invalid_payload: .*please report it$/],
    [{ status: 403, body: 'invalid_token' }, /create a new incoming webhook and update the Secret/],
    [{ status: 404, body: 'channel_not_found' }, /^Slack answered 404 channel_not_found: the webhook's channel was deleted; create a new incoming webhook/],
    [{ status: 410, body: 'channel_is_archived' }, /^Slack answered 410 channel_is_archived: the webhook's channel is archived/],
  ];
  for (const [answer, fix] of cases) {
    const { slack, events, send } = await rig(t);
    slack.defaultAnswer = answer;
    const outcome = await send(promoted());
    assert.ok(!outcome.delivered);
    assert.match(outcome.problem, fix);
    assert.ok(!outcome.problem.includes(slack.url) && !outcome.problem.includes('XXXX'), 'never the webhook URL');
    await delay(200);
    assert.equal(slack.received.length, 1, `${fix}: exactly one request`);
    assert.deepEqual(events, ['rejected']);
  }
});

test('an outage (500 twice) is retried with backoff until Slack takes the message, once', async (t) => {
  const { slack, events, send } = await rig(t);
  slack.script.push({ status: 500, body: 'internal_error' }, { status: 503, body: 'service_unavailable' });
  assert.deepEqual(await send(promoted()), { delivered: true });
  assert.equal(slack.received.length, 3);
  assert.equal(slack.accepted.length, 1);
  const [first, second, third] = slack.received.map((r) => r.at);
  assert.ok(first !== undefined && second !== undefined && third !== undefined);
  assert.ok(second - first >= 40 && third - second >= 90, `backoff 50 ms, then 100 ms (${second - first}, ${third - second})`);
  assert.deepEqual(events, ['retried', 'retried', 'delivered']);
});

test('an answer slower than the timeout is abandoned and the message sent again', async (t) => {
  const { slack, events, send } = await rig(t, {}, 150);
  slack.script.push({ slowMs: 3000 });
  assert.deepEqual(await send(promoted()), { delivered: true });
  assert.equal(slack.received.length, 2);
  assert.deepEqual(events, ['retried', 'delivered']);
});

test('a notifier that ignores its signal is abandoned at the attempt deadline', async (t) => {
  let calls = 0;
  const hangsOnce: Notifier = {
    send: () => (++calls === 1 ? new Promise<Delivery>(() => undefined) : Promise.resolve({ ok: true })),
  };
  const events: DeliveryOutcome[] = [];
  const queue = new DeliveryQueue(hangsOnce, { paceMs: 10, firstBackoffMs: 10, attemptTimeoutMs: 100, onOutcome: (e) => events.push(e) });
  t.after(() => { queue.stop(); });
  const outcome = await new Promise<Outcome>((resolve) => { queue.enqueue(promoted(), resolve); });
  assert.deepEqual(outcome, { delivered: true });
  assert.equal(calls, 2);
  assert.deepEqual(events, ['retried', 'delivered']);
});

test('a message still refused after giveUpAfterMs is given up on, with the last problem', async (t) => {
  const { slack, events, send } = await rig(t, { giveUpAfterMs: 400 });
  slack.defaultAnswer = { status: 503, body: 'service_unavailable' };
  const outcome = await send(promoted());
  assert.ok(!outcome.delivered);
  assert.match(outcome.problem, /^gave up after \d+ attempts in \d+ms: Slack answered 503 service_unavailable$/);
  assert.ok(slack.received.length >= 2, 'retried before giving up');
  assert.equal(events.at(-1), 'gaveUp');
  const requests = slack.received.length;
  await delay(300);
  assert.equal(slack.received.length, requests, 'nothing more is sent');
});

test('messages handed in together go out one per paceMs', async (t) => {
  const { slack, send } = await rig(t, { paceMs: 200 });
  const outcomes = await Promise.all(['v2', 'v3', 'v4'].map((v) => send(promoted(v))));
  assert.ok(outcomes.every((o) => o.delivered));
  assert.deepEqual(slack.accepted.map((r) => versionOf(r.body)), ['v2', 'v3', 'v4']);
  const times = slack.received.map((r) => r.at);
  for (let i = 1; i < times.length; i++) {
    const gap = (times[i] ?? 0) - (times[i - 1] ?? 0);
    assert.ok(gap >= 150, `request ${i} came ${gap} ms after the one before`);
  }
});

test('stop() abandons the request in flight and settles nothing more; what waits stays owed', async (t) => {
  const { slack, queue, events } = await rig(t);
  slack.script.push({ slowMs: 5000 });
  const settled: Outcome[] = [];
  queue.enqueue(promoted('v2'), (o) => settled.push(o));
  queue.enqueue(promoted('v3'), (o) => settled.push(o));
  await until(() => slack.received.length === 1, 'the first request');
  queue.stop();
  queue.enqueue(promoted('v4'), (o) => settled.push(o));
  await delay(300);
  assert.deepEqual(settled, []);
  assert.deepEqual(events, []);
  assert.equal(slack.received.length, 1);
});

test('a full queue refuses a new message at once; a caller whose callback throws does not stop it', async (t) => {
  let release: (() => void) | undefined;
  const gated: Notifier = {
    send: () => new Promise<Delivery>((resolve) => { release = () => { resolve({ ok: true }); }; }),
  };
  const events: DeliveryOutcome[] = [];
  const queue = new DeliveryQueue(gated, { paceMs: 10, capacity: 2, onOutcome: (e) => events.push(e) });
  t.after(() => { queue.stop(); });
  const first = new Promise<Outcome>((resolve) => {
    queue.enqueue(promoted('v2'), (o) => {
      resolve(o);
      throw new Error('a careless caller');
    });
  });
  const second = new Promise<Outcome>((resolve) => { queue.enqueue(promoted('v3'), resolve); });
  const third = await new Promise<Outcome>((resolve) => { queue.enqueue(promoted('v4'), resolve); });
  assert.deepEqual(third, { delivered: false, problem: 'queue full: 2 notifications already wait for this destination' });
  const answerOne = async (what: string): Promise<void> => {
    await until(() => release !== undefined, what);
    const answer = release;
    release = undefined;
    answer?.();
  };
  await answerOne('the first send');
  assert.deepEqual(await first, { delivered: true });
  await answerOne('the second send');
  assert.deepEqual(await second, { delivered: true });
  assert.deepEqual(events, ['gaveUp', 'delivered', 'delivered']);
});

test('the generic webhook sends our own document with an Idempotency-Key, and reads answers by status', async (t) => {
  const receiver = new FakeSlack();
  receiver.checkBlocks = false;
  await receiver.start();
  t.after(() => receiver.stop());
  const links = { dashboard: 'https://grafana.example/d/canary?var-canary={{namespace}}/{{name}}' };
  const notifier = new WebhookNotifier({ url: receiver.url, links, timeoutMs: 200 });
  const n = promoted();
  assert.deepEqual(await notifier.send(n, new AbortController().signal), { ok: true });
  const [received] = receiver.received;
  assert.equal(received?.headers['idempotency-key'], n.id);
  assert.equal(received.headers['content-type'], 'application/json');
  assert.deepEqual(received.body, {
    apiVersion: WEBHOOK_API_VERSION,
    kind: 'ModelCanaryNotification',
    id: n.id,
    event: 'promoted',
    severity: 'info',
    time: '2026-11-26T12:00:00Z',
    modelCanary: { namespace: 'ml-serving', name: 'fraud-detector' },
    model: 'fraud-detector',
    stable: { version: 'v1' },
    canary: { version: 'v2', weight: 100 },
    step: { number: 4, of: 4 },
    phase: 'Succeeded',
    summary: 'fraud-detector v2 promoted after 4 steps.',
    reason: 'every metric met its bound at every step',
    metrics: [{ name: 'error-rate', verdict: 'pass', stable: '0.10 %', canary: '0.12 %', stableValue: 0.001, canaryValue: 0.0012, bound: '≤ 1 %', reason: '0.12 % ≤ 1 %' }],
    links: { dashboard: 'https://grafana.example/d/canary?var-canary=ml-serving/fraud-detector', kubectl: 'kubectl describe modelcanary fraud-detector -n ml-serving' },
  });

  type Want = { retry: 'later' | 'never'; problem: RegExp; retryAfterMs?: number };
  const cases: [FakeSlackAnswer, Want][] = [
    [{ status: 503, body: 'down', retryAfter: 2 }, { retry: 'later', problem: /^the webhook answered 503$/, retryAfterMs: 2000 }],
    [{ status: 429, body: '' }, { retry: 'later', problem: /^the webhook answered 429$/ }],
    [{ status: 408, body: '' }, { retry: 'later', problem: /^the webhook answered 408$/ }],
    [{ status: 404, body: receiver.url }, { retry: 'never', problem: /^the webhook answered 404: nothing receives notifications at that URL; check the URL in the Secret$/ }],
    [{ status: 401, body: '' }, { retry: 'never', problem: /refused the request; check the URL/ }],
    [{ status: 307, body: '' }, { retry: 'never', problem: /redirect, which is not followed/ }],
    [{ status: 422, body: 'nope' }, { retry: 'never', problem: /apiVersion modelcanary\.io\/notification\/v1/ }],
    [{ slowMs: 3000 }, { retry: 'later', problem: /^no answer from the webhook within 200 ms$/ }],
  ];
  for (const [answer, want] of cases) {
    receiver.script.push(answer);
    const delivery = await notifier.send(n, new AbortController().signal);
    assert.ok(!delivery.ok);
    assert.equal(delivery.retry, want.retry, delivery.problem);
    assert.match(delivery.problem, want.problem);
    if (want.retryAfterMs !== undefined) assert.equal(delivery.retryAfterMs, want.retryAfterMs);
    assert.ok(!delivery.problem.includes(receiver.url) && !delivery.problem.includes('XXXX'), 'never the webhook URL');
  }
});
