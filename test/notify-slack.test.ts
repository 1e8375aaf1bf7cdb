// What people see in Slack: the message for a transition, with its metrics table and the way to
// look closer; that nothing a user wrote can ping a channel or forge a link; that the largest
// notification still fits Slack's limits; and what each of Slack's answers comes to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Notification, NotificationKind, Severity } from '../src/api/status.ts';
import { checkBlockKitLimits, escapeMrkdwn, slackMessage, SlackNotifier, type Block, type SlackMessage } from '../src/notify/slack.ts';
import { FakeSlack, type FakeSlackAnswer } from './helpers/fake-slack.ts';

const LINKS = { dashboard: 'https://grafana.example/d/canary?var-namespace={{namespace}}&var-canary={{name}}&var-model={{model}}' };

function rollback(overrides: Partial<Notification> = {}): Notification {
  return {
    id: 'ml-serving/recommender/3/rolledBack',
    kind: 'rolledBack',
    severity: 'error',
    time: '2026-11-26T12:00:00Z',
    namespace: 'ml-serving',
    name: 'recommender',
    model: 'recommender',
    stableVersion: 'v7',
    canaryVersion: 'v8',
    step: 2,
    steps: 4,
    weight: 0,
    phase: 'RolledBack',
    summary: 'recommender v8 rolled back: error-rate failed at 25 % of traffic.',
    reason: 'error-rate: canary 2.4 % > bound 1 % (stable 0.10 %) over 12,400 requests; rolled back after 2 failed checks (failureThreshold 2).',
    metrics: [
      { name: 'error-rate', verdict: 'fail', stable: '0.10 %', canary: '2.4 %', stableValue: 0.001, canaryValue: 0.024, bound: '≤ 1 %', reason: 'canary 2.4 % > 1 %' },
      { name: 'latency-p99', verdict: 'pass', stable: '310 ms', canary: '325 ms', stableValue: 310, canaryValue: 325, bound: 'p99 ≤ 500 ms and ≤ 1.25× stable', reason: '325 ms ≤ 387.5 ms' },
    ],
    ...overrides,
  };
}

/** Every text a block shows. */
function texts(block: Block | undefined): string[] {
  if (block === undefined) return [];
  switch (block.type) {
    case 'header':
    case 'section':
      return [block.text.text];
    case 'context':
      return block.elements.map((e) => e.text);
  }
}

function allTexts(message: SlackMessage): string[] {
  return [message.text, ...message.blocks.flatMap(texts)];
}

test('a rollback shows what happened, why, each metric against its bound, and where to look', () => {
  const message = slackMessage(rollback(), LINKS);
  assert.deepEqual(checkBlockKitLimits(message), []);
  assert.ok(!('link_names' in message), 'names in the text never become mentions');
  const [header, summary, table, facts, links] = message.blocks;
  assert.deepEqual(texts(header), ['⛔ recommender v8 rolled back']);
  assert.deepEqual(texts(summary), [
    '*recommender v8 rolled back: error-rate failed at 25 % of traffic.*\n' +
      'error-rate: canary 2.4 % &gt; bound 1 % (stable 0.10 %) over 12,400 requests; rolled back after 2 failed checks (failureThreshold 2).',
  ]);
  assert.deepEqual(texts(table), [
    [
      '```',
      'metric       stable  canary  bound                            verdict',
      '-----------  ------  ------  -------------------------------  -------',
      'error-rate   0.10 %  2.4 %   ≤ 1 %                            fail',
      'latency-p99  310 ms  325 ms  p99 ≤ 500 ms and ≤ 1.25× stable  pass',
      '```',
    ].join('\n'),
  ]);
  assert.deepEqual(texts(facts), ['`ml-serving/recommender`', 'model recommender', 'stable v7 → canary v8', 'step 2 of 4', 'canary at 0 %', 'phase RolledBack']);
  assert.deepEqual(texts(links), [
    '<https://grafana.example/d/canary?var-namespace=ml-serving&amp;var-canary=recommender&amp;var-model=recommender|Dashboard>',
    '`kubectl describe modelcanary recommender -n ml-serving`',
  ]);
  assert.equal(message.text, '⛔ recommender v8 rolled back: recommender v8 rolled back: error-rate failed at 25 % of traffic.');
  assert.equal(message.blocks.length, 5);
});

test('the header names the model, the canary and what happened, with an emoji per kind and severity', () => {
  const cases: [NotificationKind, Severity, string][] = [
    ['started', 'info', '🚀 fraud-detector v2 canary started'],
    ['advanced', 'info', '⏩ fraud-detector v2 advanced to 25 %'],
    ['promoted', 'info', '✅ fraud-detector v2 promoted'],
    ['rolledBack', 'error', '⛔ fraud-detector v2 rolled back'],
    ['held', 'warning', '⚠️ fraud-detector v2 held'],
    ['held', 'error', '🛑 fraud-detector v2 held'],
    ['noEvidence', 'warning', '❔ fraud-detector v2 held without evidence'],
    ['invalid', 'error', '❌ fraud-detector v2 held: invalid spec'],
    ['paused', 'info', '⏸ fraud-detector v2 paused'],
    ['resumed', 'info', '▶️ fraud-detector v2 resumed'],
    ['canaryReplaced', 'info', '🔄 fraud-detector v2 replaces the canary'],
    ['retried', 'info', '🔁 fraud-detector v2 rollout retried'],
  ];
  for (const [kind, severity, want] of cases) {
    const message = slackMessage(rollback({ kind, severity, model: 'fraud-detector', canaryVersion: 'v2', weight: 25, metrics: [] }));
    assert.deepEqual(texts(message.blocks[0]), [want], `${kind}/${severity}`);
    assert.deepEqual(checkBlockKitLimits(message), [], `${kind}/${severity}`);
  }
  const quiet = slackMessage(rollback({ kind: 'paused', metrics: [] }));
  assert.ok(!quiet.blocks.some((b) => b.type === 'section' && b.text.text.startsWith('```')), 'no table without metrics');
  const noDashboard = slackMessage(rollback());
  assert.deepEqual(texts(noDashboard.blocks.at(-1)), ['`kubectl describe modelcanary recommender -n ml-serving`'], 'the kubectl command even without a dashboard');
});

test('escaping: only &, < and > become entities, and entities already written stay literal', () => {
  const cases: [string, string][] = [
    ['plain text, *bold* _it_', 'plain text, *bold* _it_'],
    ['a & b', 'a &amp; b'],
    ['<!channel>', '&lt;!channel&gt;'],
    ['<https://evil.example|click here>', '&lt;https://evil.example|click here&gt;'],
    ['&lt;!here&gt;', '&amp;lt;!here&amp;gt;'],
    ['p99 ≤ 500 ms', 'p99 ≤ 500 ms'],
  ];
  for (const [raw, want] of cases) assert.equal(escapeMrkdwn(raw), want, raw);
});

test('a hostile model name, versions, summary, reason and metric appear only escaped: no mention, no forged link', () => {
  const hostile = '<!channel> <https://evil.example|click here> & co';
  const n = rollback({
    model: hostile,
    stableVersion: '<!here>',
    canaryVersion: '<@U024BE7LH>',
    summary: hostile,
    reason: `${hostile}\n<!subteam^S0123|@oncall>`,
    metrics: [{ name: hostile, verdict: 'fail', stable: '<!everyone>', canary: hostile, bound: hostile, reason: hostile }],
  });
  const json = JSON.stringify(slackMessage(n, LINKS));
  const ours = /<https:\/\/grafana\.example\/d\/canary\?[^<>|]*\|Dashboard>/;
  assert.match(json, ours, 'our own dashboard link is the one link');
  const rest = json.replace(ours, '');
  assert.ok(!rest.includes('<!'), 'no raw <!');
  assert.ok(!rest.includes('<http'), 'no raw <http');
  assert.ok(!rest.includes('<@'), 'no raw <@');
  assert.doesNotMatch(rest, /[<>]/, 'no raw < or > anywhere else');
  assert.ok(json.includes('&lt;!channel&gt; &lt;https://evil.example|click here&gt; &amp; co'), 'shown, escaped');
  assert.ok(json.includes('var-model=%3C!channel%3E%20%3Chttps%3A%2F%2Fevil.example%7Cclick%20here%3E%20%26%20co'), 'URL-encoded in the link');
  assert.ok(!json.includes('link_names'));
  assert.deepEqual(checkBlockKitLimits(JSON.parse(json)), []);
});

test('the largest notification (60 metrics, a 10,000-character reason, the longest names) still meets every limit', () => {
  const n = rollback({
    model: `m${'&'.repeat(252)}`,
    stableVersion: 'v'.repeat(63),
    canaryVersion: '<'.repeat(63),
    name: 'n'.repeat(253),
    namespace: 'x'.repeat(63),
    summary: 'S&'.repeat(512),
    reason: '<&>'.repeat(3334),
    metrics: Array.from({ length: 60 }, (_, i) => ({
      name: `metric-${String(i).padStart(2, '0')}-${'&'.repeat(50)}`,
      verdict: 'fail' as const,
      stable: '&'.repeat(64),
      canary: '<'.repeat(64),
      bound: '>'.repeat(256),
      reason: 'r'.repeat(1024),
    })),
  });
  const message = slackMessage(n, LINKS);
  assert.deepEqual(checkBlockKitLimits(message), []);
  const header = texts(message.blocks[0])[0] ?? '';
  assert.ok(header.length <= 150 && header.endsWith('… rolled back'), header);
  for (const text of allTexts(message)) assert.doesNotMatch(text, /&(?!amp;|lt;|gt;)/, 'never cut inside an escape');
  const reason = texts(message.blocks[1])[0] ?? '';
  assert.ok(reason.endsWith('…'), 'the reason is cut, visibly');
  const table = texts(message.blocks[2])[0] ?? '';
  const more = /_… and (\d+) more_$/.exec(table);
  assert.ok(more !== null, 'the table says how many metrics it leaves out');
  const rows = table.split('\n').filter((line) => line.startsWith('metric-')).length;
  assert.ok(rows >= 5, `shows the first metrics (${rows})`);
  assert.equal(rows + Number(more[1]), 60);
  assert.ok(table.includes('metric-00-'), 'starting with the first');
});

test('Slack answers: ok delivers; 429 and 5xx are retried later; a refusal names the fix; the webhook URL is never repeated', async (t) => {
  const slack = new FakeSlack();
  await slack.start();
  t.after(() => slack.stop());
  type Want = { ok: true } | { retry: 'later' | 'never'; problem: RegExp; retryAfterMs?: number };
  const cases: [string, FakeSlackAnswer, Want][] = [
    ['ok', 'ok', { ok: true }],
    ['429', { status: 429, body: 'rate_limited', retryAfter: 7 }, { retry: 'later', problem: /^Slack answered 429 rate_limited: too many messages for this webhook$/, retryAfterMs: 7000 }],
    ['500', { status: 500, body: 'internal_error' }, { retry: 'later', problem: /^Slack answered 500 internal_error$/ }],
    ['503 with a page', { status: 503, body: '<html>upstream https://hooks.example/secret failed</html>' }, { retry: 'later', problem: /^Slack answered 503$/ }],
    ['400 invalid_payload', { status: 400, body: 'invalid_payload' }, { retry: 'never', problem: /^Slack answered 400 invalid_payload: .*a bug in modelcanary, please report it$/ }],
    ['403 invalid_token', { status: 403, body: 'invalid_token' }, { retry: 'never', problem: /^Slack answered 403 invalid_token: the webhook was revoked .*create a new incoming webhook and update the Secret/ }],
    ['403 action_prohibited', { status: 403, body: 'action_prohibited' }, { retry: 'never', problem: /workspace admin restricts/ }],
    ['403 general', { status: 403, body: 'posting_to_general_channel_denied' }, { retry: 'never', problem: /only admins may post/ }],
    [
      '404 channel_not_found',
      { status: 404, body: 'channel_not_found' },
      { retry: 'never', problem: /^Slack answered 404 channel_not_found: the webhook's channel was deleted; create a new incoming webhook and update the Secret that holds it$/ },
    ],
    ['404 no_service', { status: 404, body: 'no_service' }, { retry: 'never', problem: /removed or disabled; create a new incoming webhook/ }],
    ['410 channel_is_archived', { status: 410, body: 'channel_is_archived' }, { retry: 'never', problem: /^Slack answered 410 channel_is_archived: the webhook's channel is archived; unarchive it/ }],
    ['404 with a page', { status: 404, body: 'Not Found: /services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX' }, { retry: 'never', problem: /^Slack answered 404: Slack knows no such webhook/ }],
    ['302', { status: 302, body: '' }, { retry: 'never', problem: /redirect, which is not followed/ }],
    ['slow', { slowMs: 3000 }, { retry: 'later', problem: /^no answer from Slack within 200 ms$/ }],
  ];
  const notifier = new SlackNotifier({ url: slack.url, links: LINKS, timeoutMs: 200 });
  for (const [name, answer, want] of cases) {
    slack.script.push(answer);
    const delivery = await notifier.send(rollback(), new AbortController().signal);
    if ('ok' in want) {
      assert.deepEqual(delivery, { ok: true }, name);
      continue;
    }
    assert.ok(!delivery.ok, name);
    assert.equal(delivery.retry, want.retry, name);
    assert.match(delivery.problem, want.problem, name);
    if (want.retryAfterMs !== undefined) assert.equal(delivery.retryAfterMs, want.retryAfterMs, name);
    assert.ok(!delivery.problem.includes(slack.url) && !delivery.problem.includes('XXXX') && !delivery.problem.includes('secret'), `${name}: ${delivery.problem}`);
  }
  assert.equal(slack.received.length, cases.length, 'one request per send: no redirects followed, nothing retried here');
});

test('an unreachable or unusable webhook: retried when it may pass, never when the URL is wrong, and the URL is not in the problem', async () => {
  const refused = await new SlackNotifier({ url: 'http://127.0.0.1:1/services/T000/B000/secret-token' }).send(rollback(), new AbortController().signal);
  assert.ok(!refused.ok);
  assert.equal(refused.retry, 'later');
  assert.match(refused.problem, /^cannot reach Slack: the connection was refused \(nothing listens at that address and port\)$/);
  const garbled = await new SlackNotifier({ url: 'hooks.slack.com/services/T000/B000/secret-token' }).send(rollback(), new AbortController().signal);
  assert.ok(!garbled.ok);
  assert.equal(garbled.retry, 'never');
  assert.match(garbled.problem, /not a usable http\(s\) URL/);
  for (const delivery of [refused, garbled]) assert.ok(!delivery.problem.includes('secret-token'));
});

test('the fake Slack takes the largest and the most hostile messages, and refuses what breaks the limits', async (t) => {
  const slack = new FakeSlack();
  await slack.start();
  t.after(() => slack.stop());
  const notifier = new SlackNotifier({ url: slack.url, links: LINKS });
  const largest = rollback({ reason: 'x'.repeat(10_000), metrics: Array.from({ length: 60 }, (_, i) => ({ name: `m${i}`, verdict: 'pass' as const, stable: '1', canary: '1', bound: '≤ 2', reason: '' })) });
  const hostile = rollback({ model: '<!channel> <https://evil.example|click here> & co' });
  for (const n of [largest, hostile]) assert.deepEqual(await notifier.send(n, new AbortController().signal), { ok: true });
  assert.equal(slack.accepted.length, 2);

  const tooLong = { text: 'x', blocks: [{ type: 'header', text: { type: 'plain_text', text: 'h'.repeat(151) } }] };
  const response = await fetch(slack.url, { method: 'POST', body: JSON.stringify(tooLong), headers: { 'content-type': 'application/json' } });
  assert.equal(response.status, 400);
  assert.equal(await response.text(), 'invalid_blocks');
  assert.deepEqual(slack.refused, [['blocks[0].text.text: 151 characters, more than 150']]);
  assert.deepEqual(checkBlockKitLimits({ blocks: [] }), ['text: a message needs a fallback text']);
  assert.deepEqual(checkBlockKitLimits({ text: 't', blocks: Array.from({ length: 51 }, () => ({ type: 'divider' })) }), ['blocks: 51 blocks, more than 50']);
  assert.deepEqual(checkBlockKitLimits({ text: 't', blocks: [{ type: 'context', elements: Array.from({ length: 11 }, () => ({ type: 'mrkdwn', text: 'e' })) }] }), [
    'blocks[0].elements: 11 elements, more than 10',
  ]);
  assert.deepEqual(checkBlockKitLimits({ text: 't', blocks: [{ type: 'section', text: { type: 'mrkdwn', text: 's'.repeat(3001) } }] }), ['blocks[0].text.text: 3001 characters, more than 3000']);
});
