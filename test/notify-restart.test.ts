// The outbox with real delivery: the reconciler on in-memory fakes, the real Outbox and
// delivery queues, the real Slack notifier, and a Slack stand-in on loopback. What a channel
// would see across a Slack outage and a controller restart: every message, once, in order,
// with a hostile model name shown and never acted on, and a rollout that never waited.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Outbox } from '../src/controller/outbox.ts';
import { World } from './helpers/fakes.ts';
import { FakeSlack } from './helpers/fake-slack.ts';

const SECOND = 1000;
const HOSTILE = '<!channel> fraud & <https://evil.example|click here>';

function outboxFor(w: World, slack: FakeSlack): Outbox {
  return new Outbox({
    destinations: [{ name: 'team', format: 'slack', url: { value: slack.url }, least: 'info', isDefault: true }],
    allowedWebhooks: [],
    readUrl: () => Promise.resolve({ ok: false, problem: 'no Secrets here' }),
    onSettled: () => undefined,
    delivery: { paceMs: 20, firstBackoffMs: 50, maxBackoffMs: 200 },
    log: { info: (_f, m) => w.logs.push(m), warn: (_f, m) => w.logs.push(m) },
  });
}

function headers(slack: FakeSlack): string[] {
  return slack.accepted.map((r) => ((r.body as { blocks: { type: string; text: { text: string } }[] }).blocks.find((b) => b.type === 'header')?.text.text ?? '?'));
}

test('Slack down, then the controller restarts: every notification arrives once, in order, and the rollout never waited', async () => {
  const slack = new FakeSlack();
  await slack.start();
  try {
    const w = new World();
    w.metrics.serve(w.clock.now(), 'v1', 1000);
    await w.add('m');
    w.canaries.edit('ml-serving', 'm', (o) => (o.spec.model = HOSTILE));
    slack.defaultAnswer = { status: 500, body: 'rollup_error' };
    const first = outboxFor(w, slack);
    w.deps.outbox = first;
    await w.settle('m');
    w.clock.advance(30 * SECOND);
    w.traffic('v1', 'v2');
    await w.settle('m');
    assert.equal((await w.status('m')).canaryWeight, 30, 'the rollout went on while Slack was down');
    assert.equal(((await w.status('m')).outbox ?? []).length, 2, 'both owed');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.ok(slack.received.length >= 2, 'delivery was tried');
    assert.equal(slack.accepted.length, 0);

    // The controller dies with both unsent; Slack comes back; a new controller starts.
    first.stop();
    slack.defaultAnswer = 'ok';
    const second = outboxFor(w, slack);
    w.deps.outbox = second;
    await w.pass('m');
    assert.ok(await second.idle(10_000), 'delivered');
    await w.pass('m');
    assert.equal((await w.status('m')).outbox, undefined, 'nothing owed once delivered');
    assert.equal(headers(slack).length, 2, headers(slack).join(' | '));
    assert.match(headers(slack)[0] ?? '', /started|10 %/);
    assert.match(headers(slack)[1] ?? '', /30 %|advanced|passed/);

    // Yet another restart sends nothing again.
    second.stop();
    const third = outboxFor(w, slack);
    w.deps.outbox = third;
    for (let i = 0; i < 3; i++) await w.pass('m');
    await third.idle(2_000);
    assert.equal(slack.accepted.length, 2);
    third.stop();

    const serialized = JSON.stringify(slack.accepted.map((r) => r.body));
    assert.ok(serialized.includes('&lt;!channel&gt;'), 'the model name is shown');
    assert.ok(!serialized.includes('<!channel>') && !serialized.includes('<https://evil'), 'and never pings or links');
  } finally {
    await slack.stop();
  }
});

test('a destination that refuses is named in the condition Notified, with what to fix', async () => {
  const slack = new FakeSlack();
  await slack.start();
  try {
    const w = new World();
    w.metrics.serve(w.clock.now(), 'v1', 1000);
    await w.add('m');
    slack.defaultAnswer = { status: 404, body: 'channel_not_found' };
    const outbox = outboxFor(w, slack);
    w.deps.outbox = outbox;
    await w.settle('m');
    assert.ok(await outbox.idle(5_000));
    await w.pass('m');
    const notified = ((await w.status('m')).conditions as { type: string; status: string; message: string }[]).find((c) => c.type === 'Notified');
    assert.equal(notified?.status, 'False');
    assert.match(notified.message, /^team: Slack answered 404 channel_not_found: .*create a new incoming webhook/);
    assert.ok(!notified.message.includes(slack.url), 'the webhook URL is a secret');
    assert.equal(slack.received.length, 1, 'a refusal is not retried');
    outbox.stop();
  } finally {
    await slack.stop();
  }
});
