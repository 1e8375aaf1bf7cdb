// Rollout webhooks and webhook gates as a receiver sees them: the body (which a Flagger load
// tester reads unchanged), one POST per attempt with the same Idempotency-Key, retries for what
// may pass and none for a "no", a bounded wait, a prompt stop on cancel, problems that never
// quote the URL or more than 200 characters of an answer; and which URLs the operator's
// allowlist admits. Against a receiver on loopback; timings are checked with generous bounds.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { isUnder, redact } from '../src/metrics/endpoints.ts';
import { callHook, checkHookUrl, HOOK_API_VERSION, hookBody, type HookFacts, type HookPost, type HookRequest, type HookType } from '../src/notify/hook.ts';
import type { PostResult } from '../src/notify/http.ts';
import { startHookServer, type HookAnswer, type HookServer } from './helpers/hook-server.ts';

const FACTS: HookFacts = {
  type: 'rollout',
  name: 'load-test',
  canary: { namespace: 'ml-serving', name: 'recommender', model: 'recommender-model', stableVersion: 'v7', canaryVersion: 'v8', weight: 25, step: 2, steps: 4, phase: 'Progressing' },
  metadata: { type: 'cmd', cmd: 'hey -z 1m -q 10 -c 2 http://recommender-canary.ml-serving/' },
};

/** A path that carries a token, as some receivers' URLs do: it must never reach a problem. */
const TOKEN = 'tok3n-5ecret-0123456789abcdef';
const HOOK_PATH = `/hooks/${TOKEN}`;
const KEY = 'ml-serving/recommender/v8/2/load-test';

async function receiver(t: TestContext): Promise<HookServer> {
  const server = await startHookServer();
  t.after(() => server.stop());
  return server;
}

function hookRequest(url: string, overrides: Partial<HookRequest> = {}): HookRequest {
  return { url, body: hookBody(FACTS), timeoutMs: 5000, retries: 0, signal: new AbortController().signal, idempotencyKey: KEY, ...overrides };
}

const noWait = (): Promise<void> => Promise.resolve();

// ── The body ────────────────────────────────────────────────────────────────────────────

test('the body names the hook, the rollout and where it stands, and passes the metadata', () => {
  assert.deepEqual(hookBody(FACTS), {
    apiVersion: HOOK_API_VERSION,
    type: 'rollout',
    hook: 'load-test',
    name: 'recommender',
    namespace: 'ml-serving',
    phase: 'Progressing',
    model: 'recommender-model',
    stableVersion: 'v7',
    canaryVersion: 'v8',
    weight: 25,
    step: 2,
    steps: 4,
    metadata: { type: 'cmd', cmd: 'hey -z 1m -q 10 -c 2 http://recommender-canary.ml-serving/' },
  });
  assert.equal(HOOK_API_VERSION, 'modelcanary.io/webhook/v1');
});

const TYPES: HookType[] = ['preRollout', 'rollout', 'postRollout', 'rollback', 'gate'];

for (const type of TYPES) {
  test(`a ${type} body reads as Flagger's CanaryWebhookPayload: name, namespace, phase and string metadata at the top`, () => {
    const metadata = type === 'gate' ? undefined : { type: 'bash', cmd: 'curl -s http://recommender-canary/healthz | grep ok' };
    const sent = JSON.parse(JSON.stringify(hookBody({ ...FACTS, type, name: `${type}-hook`, metadata }))) as Record<string, unknown>;
    // What Flagger's load tester decodes (its /gate/* endpoints key on name and namespace).
    assert.equal(sent.name, 'recommender');
    assert.equal(sent.namespace, 'ml-serving');
    assert.equal(sent.phase, 'Progressing');
    assert.deepEqual(sent.metadata, metadata ?? {});
    assert.ok(Object.values(sent.metadata).every((v) => typeof v === 'string'), 'metadata is a map[string]string');
    assert.equal(sent.type, type);
    assert.equal(sent.hook, `${type}-hook`);
  });
}

// ── Calls and their answers ─────────────────────────────────────────────────────────────

interface AnswerCase {
  name: string;
  /** The n-th call gets the n-th answer; the last repeats. */
  answers: HookAnswer[];
  retries: number;
  expect: { ok: boolean; status: number; attempts: number; problem?: RegExp };
}

const ANSWER_CASES: AnswerCase[] = [
  { name: '200 is a yes at the first attempt', answers: [{ status: 200, body: 'ok' }], retries: 2, expect: { ok: true, status: 200, attempts: 1 } },
  { name: '204 is a yes', answers: [{ status: 204 }], retries: 0, expect: { ok: true, status: 204, attempts: 1 } },
  {
    name: '403 is a no, not retried',
    answers: [{ status: 403, body: 'gate closed by release manager' }],
    retries: 2,
    expect: { ok: false, status: 403, attempts: 1, problem: /^the webhook answered 403 \(Forbidden\): gate closed by release manager$/ },
  },
  {
    name: '400 is a no, not retried',
    answers: [{ status: 400, body: 'cmd not found' }],
    retries: 2,
    expect: { ok: false, status: 400, attempts: 1, problem: /^the webhook answered 400 \(Bad Request\): cmd not found$/ },
  },
  { name: '503 twice, then 200, with 2 retries: a yes at the third attempt', answers: [{ status: 503 }, { status: 503 }, { status: 200 }], retries: 2, expect: { ok: true, status: 200, attempts: 3 } },
  {
    name: '503 every time with 2 retries: three attempts, then a no that says 503',
    answers: [{ status: 503, body: 'upstream connect error' }],
    retries: 2,
    expect: { ok: false, status: 503, attempts: 3, problem: /^the webhook answered 503 \(Service Unavailable\): upstream connect error$/ },
  },
  { name: '429 then 200 with 1 retry', answers: [{ status: 429 }, { status: 200 }], retries: 1, expect: { ok: true, status: 200, attempts: 2 } },
  { name: '503 with no retries: one attempt', answers: [{ status: 503 }], retries: 0, expect: { ok: false, status: 503, attempts: 1, problem: /^the webhook answered 503 \(Service Unavailable\)$/ } },
  {
    name: 'a redirect is a no, not followed',
    answers: [{ status: 302, headers: { location: '/elsewhere' } }],
    retries: 2,
    expect: { ok: false, status: 302, attempts: 1, problem: /^the webhook answered 302 \(Found; redirects are not followed\)$/ },
  },
];

for (const c of ANSWER_CASES) {
  test(`a call: ${c.name}`, async (t) => {
    const server = await receiver(t);
    server.answer(HOOK_PATH, (_call, index) => c.answers[Math.min(index, c.answers.length - 1)] ?? { status: 200 });
    const result = await callHook(hookRequest(server.url(HOOK_PATH), { retries: c.retries, random: () => 0 }));

    assert.equal(result.ok, c.expect.ok);
    assert.equal(result.status, c.expect.status);
    assert.equal(result.attempts, c.expect.attempts);
    if (!result.ok) {
      assert.match(result.problem, c.expect.problem ?? /./);
      assert.ok(!result.problem.includes(TOKEN) && !result.problem.includes('127.0.0.1'), `the URL stays out of ${result.problem}`);
    }
    assert.equal(server.calls.length, c.expect.attempts, 'one request per attempt, and none elsewhere');
    for (const call of server.calls) {
      assert.equal(call.path, HOOK_PATH);
      assert.equal(call.headers['idempotency-key'], KEY, 'the same Idempotency-Key on every attempt');
      assert.match(call.headers['content-type'] ?? '', /^application\/json/);
      assert.deepEqual(call.body, hookBody(FACTS));
    }
  });
}

test('a no that quotes the URL back does not put its token in the problem', async (t) => {
  const server = await receiver(t);
  server.answer(HOOK_PATH, () => ({ status: 404, body: `Cannot POST ${HOOK_PATH} (${server.url(HOOK_PATH)}; token ${encodeURIComponent(TOKEN)})` }));
  const result = await callHook(hookRequest(server.url(HOOK_PATH)));
  assert.ok(!result.ok);
  assert.match(result.problem, /^the webhook answered 404 \(Not Found\): Cannot POST /);
  assert.ok(!result.problem.includes(TOKEN), result.problem);
  assert.ok(!result.problem.includes('127.0.0.1'), result.problem);
});

test('an answer is repeated without control or format characters, on one line', async (t) => {
  const server = await receiver(t);
  server.answer(HOOK_PATH, () => ({ status: 500, body: 'first line\r\nForged: line\u0000\u001b[31mred\u001b[0m \u202Egnp.exe\u200B' }));
  const result = await callHook(hookRequest(server.url(HOOK_PATH)));
  assert.ok(!result.ok);
  assert.doesNotMatch(result.problem, /[\p{Cc}\p{Cf}]/u);
  assert.match(result.problem, /: first line Forged: line \[31mred \[0m gnp\.exe$/);
});

test('a long answer is cut to 200 characters in the problem', async (t) => {
  const server = await receiver(t);
  server.answer(HOOK_PATH, () => ({ status: 500, body: 'x'.repeat(20_000) }));
  const result = await callHook(hookRequest(server.url(HOOK_PATH)));
  assert.ok(!result.ok);
  assert.equal(result.status, 500);
  assert.equal(result.problem, `the webhook answered 500 (Internal Server Error): ${'x'.repeat(200)}…`);
});

test('an answer of 1 MB is cut off, and the problem stays short', async (t) => {
  const server = await receiver(t);
  server.answer(HOOK_PATH, () => ({ status: 500, body: 'y'.repeat(1024 * 1024) }));
  const result = await callHook(hookRequest(server.url(HOOK_PATH)));
  assert.ok(!result.ok);
  assert.ok(result.problem.length < 300, result.problem);
  assert.ok(!result.problem.includes('y'.repeat(201)));
});

test('a hook that answers too late is a failure named by its timeout, given up on in bounded time', async (t) => {
  const server = await receiver(t);
  server.answer(HOOK_PATH, () => ({ status: 200, delayMs: 30_000 }));
  const started = Date.now();
  const result = await callHook(hookRequest(server.url(HOOK_PATH), { timeoutMs: 300 }));
  assert.deepEqual(result, { ok: false, problem: 'no answer from the webhook within 300 ms', attempts: 1 });
  assert.ok(Date.now() - started < 10_000, 'returned before 10 s');
});

test('a timeout is retried like any failure that may pass', async (t) => {
  const server = await receiver(t);
  server.answer(HOOK_PATH, (_call, index) => (index === 0 ? { status: 200, delayMs: 30_000 } : { status: 200 }));
  const result = await callHook(hookRequest(server.url(HOOK_PATH), { timeoutMs: 300, retries: 1 }));
  assert.deepEqual(result, { ok: true, status: 200, attempts: 2 });
});

test('a hook nobody listens for is a failure that says so, without the address, retried', async (t) => {
  const server = await startHookServer();
  const url = server.url(HOOK_PATH);
  await server.stop();
  const started = Date.now();
  const result = await callHook(hookRequest(url, { retries: 1, sleep: noWait }));
  assert.ok(!result.ok);
  assert.equal(result.attempts, 2);
  assert.equal(result.status, undefined);
  assert.match(result.problem, /^cannot reach the webhook: the connection was refused/);
  assert.ok(!result.problem.includes('127.0.0.1') && !result.problem.includes(TOKEN), result.problem);
  assert.ok(Date.now() - started < 10_000, 'returned before 10 s');
  t.diagnostic(result.problem);
});

// ── Cancellation ────────────────────────────────────────────────────────────────────────

test('a cancel during the wait between attempts returns at once', async (t) => {
  const server = await receiver(t);
  // Retry-After 5: the next attempt would come 5 s later.
  server.answer(HOOK_PATH, () => ({ status: 503, headers: { 'retry-after': '5' } }));
  const abort = new AbortController();
  const call = callHook(hookRequest(server.url(HOOK_PATH), { retries: 3, signal: abort.signal }));
  await server.waitForCalls(HOOK_PATH, 1, 5000);
  const abortedAt = Date.now();
  abort.abort();
  assert.deepEqual(await call, { ok: false, problem: 'cancelled', attempts: 1 });
  assert.ok(Date.now() - abortedAt < 3000, 'returned well before the 5 s wait was over');
  assert.equal(server.calls.length, 1);
});

test('a cancel while the hook is still answering returns at once', async (t) => {
  const server = await receiver(t);
  server.answer(HOOK_PATH, () => ({ status: 200, delayMs: 30_000 }));
  const abort = new AbortController();
  const call = callHook(hookRequest(server.url(HOOK_PATH), { timeoutMs: 60_000, retries: 3, signal: abort.signal }));
  await server.waitForCalls(HOOK_PATH, 1, 5000);
  const abortedAt = Date.now();
  abort.abort();
  assert.deepEqual(await call, { ok: false, problem: 'cancelled', attempts: 1 });
  assert.ok(Date.now() - abortedAt < 5000, 'returned well before the 30 s answer');
});

test('a call cancelled before it starts sends nothing', async (t) => {
  const server = await receiver(t);
  const result = await callHook(hookRequest(server.url(HOOK_PATH), { signal: AbortSignal.abort() }));
  assert.deepEqual(result, { ok: false, problem: 'cancelled', attempts: 0 });
  assert.equal(server.calls.length, 0);
});

// ── Pacing of retries (our own POST stand-in, so that the waits are read, not slept) ─────

function always(result: PostResult): HookPost {
  return () => Promise.resolve(result);
}

const BACKOFF_CASES: { name: string; random: number; retryAfterMs?: number; waits: number[] }[] = [
  { name: 'doubling from 250 ms, the least jitter', random: 0, waits: [125, 250, 500, 1000, 2000, 2500] },
  { name: 'doubling from 250 ms, the most jitter, never past 5 s', random: 0.999_999, waits: [250, 500, 1000, 2000, 4000, 5000] },
  { name: 'Retry-After is honoured up to 5 s', random: 0, retryAfterMs: 60_000, waits: [5000, 5000, 5000, 5000, 5000, 5000] },
  { name: 'a short Retry-After does not hurry the backoff', random: 0, retryAfterMs: 100, waits: [125, 250, 500, 1000, 2000, 2500] },
];

for (const c of BACKOFF_CASES) {
  test(`retries wait: ${c.name}`, async () => {
    const waits: number[] = [];
    const result = await callHook(
      hookRequest('http://hooks.internal/a', {
        retries: 6,
        random: () => c.random,
        sleep: (ms) => {
          waits.push(ms);
          return Promise.resolve();
        },
        post: always({ answered: true, status: 503, body: '', retryAfterMs: c.retryAfterMs }),
      }),
    );
    assert.equal(result.attempts, 7);
    assert.deepEqual(waits.map(Math.round), c.waits);
  });
}

test('a failure no retry can fix (a URL that is not one) is not retried', async () => {
  const problem = "the webhook's URL is not a usable http(s) URL (ERR_INVALID_URL); fix the Secret that holds it";
  const result = await callHook(hookRequest('http://hooks.internal/a', { retries: 3, sleep: noWait, post: always({ answered: false, retry: 'never', problem }) }));
  assert.deepEqual(result, { ok: false, problem, attempts: 1 });
});

// ── The operator's allowlist ────────────────────────────────────────────────────────────

const ALLOWED = ['http://hooks.internal/a', 'https://loadtester.flagger'];

const URL_CASES: { url: string; allowed?: string[]; expect: RegExp | undefined }[] = [
  { url: 'http://hooks.internal/a', expect: undefined },
  { url: 'http://hooks.internal/a/b', expect: undefined },
  { url: 'http://hooks.internal/a/b/', expect: undefined },
  { url: 'http://HOOKS.internal:80/a/b', expect: undefined },
  { url: 'https://loadtester.flagger/gate/check', expect: undefined },
  { url: 'http://hooks.internal/ab', expect: /^is not under an address the operator allowed/ },
  { url: 'http://hooks.internal/', expect: /^is not under/ },
  { url: 'http://other.internal/a/b', expect: /^is not under/ },
  { url: 'http://hooks.internal.evil.example/a/b', expect: /^is not under/ },
  { url: 'http://hooks.internal:8080/a/b', expect: /^is not under/ },
  { url: 'https://hooks.internal/a/b', expect: /^is not under/ },
  { url: 'http://loadtester.flagger/gate/check', expect: /^is not under/ },
  { url: 'http://user:pass@hooks.internal/a/b', expect: /^holds credentials/ },
  { url: 'http://token@hooks.internal/a/b', expect: /^holds credentials/ },
  { url: 'ftp://hooks.internal/a/b', expect: /^must be an http:\/\/ or https:\/\/ URL$/ },
  { url: 'file:///etc/passwd', expect: /^must be an http/ },
  { url: 'http://hooks.internal/a/b#frag', expect: /^has a fragment/ },
  { url: 'http://hooks.internal/a/b#', expect: /^has a fragment/ },
  { url: 'http://hooks.internal/a/b?token=x', expect: /^has a query/ },
  { url: 'hooks.internal/a/b', expect: /^is not a URL/ },
  { url: '', expect: /^is not a URL/ },
  { url: 'http://hooks.internal/a/b', allowed: [], expect: /^is not under .*; allowed: none$/ },
];

for (const c of URL_CASES) {
  test(`checkHookUrl ${JSON.stringify(c.url)} with ${c.allowed === undefined ? 'the allowlist' : JSON.stringify(c.allowed)}: ${c.expect === undefined ? 'allowed' : String(c.expect)}`, () => {
    const problem = checkHookUrl(c.url, c.allowed ?? ALLOWED);
    if (c.expect === undefined) assert.equal(problem, undefined);
    else assert.match(problem ?? '(allowed)', c.expect);
  });
}

test('a refused URL is not repeated in the problem, which names the fix and what is allowed', () => {
  const problem = checkHookUrl(`http://other.internal/${TOKEN}`, [...ALLOWED, 'http://ops:hunter2@hooks.internal/b']);
  assert.equal(
    problem,
    'is not under an address the operator allowed (modelcanary run --allow-webhook URL); allowed: http://hooks.internal/a, https://loadtester.flagger, http://[redacted]@hooks.internal/b',
  );
  for (const url of [`http://u:${TOKEN}@hooks.internal/a`, `http://hooks.internal/a?key=${TOKEN}`, `http://hooks.internal/a#${TOKEN}`]) {
    assert.ok(!(checkHookUrl(url, ALLOWED) ?? TOKEN).includes(TOKEN), url);
  }
});

test('checkHookUrl admits exactly what isUnder admits, and prints prefixes as redact does', () => {
  // src/notify may not import src/metrics, so hook.ts mirrors the two: this keeps them the same.
  const prefixes = ['http://hooks.internal/a', 'http://hooks.internal/a/', 'http://hooks.internal', 'https://loadtester.flagger:8443/x/y', 'http://127.0.0.1:9000/'];
  const urls = [
    'http://hooks.internal/a', 'http://hooks.internal/a/', 'http://hooks.internal/a/b', 'http://hooks.internal/ab', 'http://hooks.internal/', 'http://hooks.internal',
    'http://HOOKS.INTERNAL:80/a/b', 'https://loadtester.flagger:8443/x/y/z', 'https://loadtester.flagger/x/y', 'https://loadtester.flagger:8443/x/yz',
    'http://127.0.0.1:9000/hook', 'http://127.0.0.1:9001/hook', 'http://u:p@hooks.internal/a', 'http://hooks.internal/a?x=1', 'http://hooks.internal/a/%2e%2e/b',
  ];
  for (const prefix of prefixes) {
    for (const url of urls) assert.equal(checkHookUrl(url, [prefix]) === undefined, isUnder(url, prefix), `${url} under ${prefix}`);
  }
  assert.ok(checkHookUrl('http://elsewhere/', prefixes)?.endsWith(`allowed: ${prefixes.map(redact).join(', ')}`));
});
