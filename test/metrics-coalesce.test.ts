// N ModelCanaries due at one instant cost a constant number of built-in queries: passes that ask
// the same question in the same gather window share one provider call. A caller that gives up
// is answered at once and does not cancel the others' call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Sample } from '../src/api/observation.ts';
import { CoalescingProvider } from '../src/metrics/coalesce.ts';
import type { MetricsProvider, VersionSelector } from '../src/metrics/provider.ts';
import { World } from './helpers/fakes.ts';

/** Starts `n` rollouts and runs one check of each, every pass of a round at the same instant and at once. */
async function callsFor(n: number, coalesce: boolean): Promise<number> {
  const w = new World();
  const driven = w.metrics;
  if (coalesce) {
    const shared = new CoalescingProvider(driven, { gatherMs: 20 });
    w.deps.providerFor = () => Promise.resolve(shared);
  }
  driven.serve(w.clock.now(), 'v1', 1000);
  const names = Array.from({ length: n }, (_, i) => `m${i}`);
  for (const name of names) await w.add(name);
  await Promise.all(names.map((name) => w.settle(name)));
  w.clock.advance(30_000);
  w.traffic('v1', 'v2');
  const before = driven.calls;
  await Promise.all(names.map((name) => w.settle(name)));
  for (const name of names) assert.equal((await w.status(name)).canaryWeight, 30, `${name} advanced`);
  return driven.calls - before;
}

test('checks of 5 and of 50 ModelCanaries at one instant ask the provider the same number of times; uncoalesced, 10 times as often', async () => {
  const five = await callsFor(5, true);
  const fifty = await callsFor(50, true);
  assert.equal(fifty, five, `5 canaries: ${five} calls, 50 canaries: ${fifty} calls`);
  const plain = await callsFor(50, false);
  assert.ok(plain >= 10 * five, `uncoalesced, 50 canaries: ${plain} calls`);
});

test('a caller that gives up is answered at once with its reason; the others still get their answers', async () => {
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  let calls = 0;
  const slow: MetricsProvider = {
    counts: async (selectors: readonly VersionSelector[], _w: number, _at: Date, signal?: AbortSignal) => {
      calls++;
      await held;
      if (signal?.aborted === true) throw new Error('cancelled');
      return new Map<string, Sample>(selectors.map((s) => [s.key, { kind: 'counts', counts: { requests: 10, errors: 0 } }]));
    },
    totals: () => Promise.reject(new Error('unused')),
    value: () => Promise.reject(new Error('unused')),
  };
  const provider = new CoalescingProvider(slow, { gatherMs: 10 });
  const at = new Date('2026-11-26T12:00:00Z');
  const impatient = new AbortController();
  const a = provider.counts([{ key: 'a', labels: {} }], 30_000, at, impatient.signal);
  const b = provider.counts([{ key: 'b', labels: {} }], 30_000, at, AbortSignal.timeout(10_000));
  await new Promise((resolve) => setTimeout(resolve, 50));
  impatient.abort(new Error('deadline'));
  await assert.rejects(a, /deadline/);
  release();
  const answer = await b;
  assert.equal(answer.get('b')?.kind, 'counts');
  assert.equal(answer.has('a'), false, 'each caller gets only its own selectors');
  assert.equal(calls, 1);
});

test('the same custom query at the same instant is asked once; another instant is another question', async () => {
  const asked: string[] = [];
  const provider = new CoalescingProvider(
    {
      counts: () => Promise.reject(new Error('unused')),
      totals: () => Promise.reject(new Error('unused')),
      value: (query: string, at: Date) => {
        asked.push(`${query}@${at.toISOString()}`);
        return Promise.resolve({ kind: 'value', value: 1 } as Sample);
      },
    },
    { gatherMs: 10 },
  );
  const t = new Date('2026-11-26T12:00:00Z');
  await Promise.all([provider.value('q', t), provider.value('q', t), provider.value('q', new Date(t.getTime() + 1000)), provider.value('r', t)]);
  assert.deepEqual(asked.sort(), ['q@2026-11-26T12:00:00.000Z', 'q@2026-11-26T12:00:01.000Z', 'r@2026-11-26T12:00:00.000Z']);
});

/** Counts calls and the versions each asked for; answers every version with its own count. */
function countingTotals(): { provider: MetricsProvider; calls: string[][]; failing: Set<string> } {
  const calls: string[][] = [];
  const failing = new Set<string>();
  const answer = (selectors: readonly VersionSelector[]): Promise<Map<string, Sample>> => {
    calls.push(selectors.map((s) => `${s.key}${JSON.stringify(s.labels)}`));
    return Promise.resolve(
      new Map<string, Sample>(
        selectors.map((s) => [s.key, failing.has(s.key) ? { kind: 'error', message: 'Prometheus answered 503' } : { kind: 'counts', counts: { requests: Number(s.labels.n ?? 0), errors: 0 } }]),
      ),
    );
  };
  return { provider: { counts: answer, totals: answer, value: () => Promise.reject(new Error('unused')) }, calls, failing };
}

const at = (s: number): Date => new Date(Date.UTC(2026, 10, 26, 12, 0, s));
const versions = (n: number): VersionSelector[] => Array.from({ length: n }, (_, i) => ({ key: `ml/m${String(i)}/canary`, labels: { n: String(i) } }));

test('rollouts that read one instant one after another cost one call: the first fetches it for every version asked about lately', async () => {
  const { provider: inner, calls } = countingTotals();
  let now = at(0).getTime();
  const provider = new CoalescingProvider(inner, { gatherMs: 0, now: () => now });
  const all = versions(200);
  // The first round meets each version for the first time: one call each.
  for (const v of all) await provider.totals([v], at(0));
  assert.equal(calls.length, 200);
  // The next instant: passes come one by one over the grid cell; the first call asks for all 200.
  now = at(10).getTime();
  for (const [i, v] of all.entries()) {
    now = at(10).getTime() + i * 40;
    const answer = await provider.totals([v], at(10));
    assert.deepEqual(answer.get(v.key), { kind: 'counts', counts: { requests: i, errors: 0 } }, `${v.key} gets its own answer`);
  }
  assert.equal(calls.length, 201);
  assert.equal(calls[200]?.length, 200);
  // A version never seen before is asked for on its own, and only it.
  await provider.totals(versions(201).slice(200), at(10));
  assert.equal(calls.length, 202);
  assert.equal(calls[201]?.length, 1);
});

test('kept answers: never an error, never for other labels, never an old instant', async () => {
  const { provider: inner, calls, failing } = countingTotals();
  let now = at(0).getTime();
  const provider = new CoalescingProvider(inner, { gatherMs: 0, keepMs: 60_000, now: () => now });
  const [a, b] = versions(2) as [VersionSelector, VersionSelector];
  failing.add(a.key);
  assert.equal((await provider.totals([a, b], at(0))).get(a.key)?.kind, 'error');
  failing.clear();
  // The error was not kept: asked again, and answered.
  assert.equal((await provider.totals([a], at(0))).get(a.key)?.kind, 'counts');
  assert.equal(calls.length, 2);
  // b was kept; b with other labels (its spec edited) is another question.
  await provider.totals([b], at(0));
  assert.equal(calls.length, 2);
  const edited = { key: b.key, labels: { n: '77' } };
  assert.deepEqual((await provider.totals([edited], at(0))).get(b.key), { kind: 'counts', counts: { requests: 77, errors: 0 } });
  assert.equal(calls.length, 3);
  // Past keepMs the instant is asked again (and the memory let go).
  now = at(0).getTime() + 61_000;
  await provider.totals([a], at(0));
  assert.equal(calls.length, 4);
});

/** `n` rollouts checked one after another, 150 ms apart, within one grid cell: the provider calls of the second such round. */
async function spreadCallsFor(n: number, gridMs: number): Promise<number> {
  const w = new World();
  const driven = w.metrics;
  const shared = new CoalescingProvider(driven, { gatherMs: 0, now: () => w.clock.now().getTime() });
  w.deps.providerFor = () => Promise.resolve(shared);
  w.deps.readGridMs = gridMs;
  driven.serve(w.clock.now(), 'v1', 1000);
  const names = Array.from({ length: n }, (_, i) => `m${String(i)}`);
  for (const name of names) await w.add(name);
  for (const name of names) await w.settle(name);
  let roundStart = w.clock.now().getTime();
  const round = async (): Promise<number> => {
    // 40 s after the last round's start: every canary due, and the first check on a 10 s boundary.
    w.clock.advance(roundStart + 40_000 - w.clock.now().getTime());
    roundStart = w.clock.now().getTime();
    w.traffic('v1', 'v2');
    const before = driven.calls;
    for (const name of names) {
      await w.settle(name);
      w.clock.advance(150);
    }
    return driven.calls - before;
  };
  // The first round meets each canary version for the first time; the second is the steady state.
  await round();
  const calls = await round();
  for (const name of names) assert.equal((await w.status(name)).canaryWeight, 100, `${name} advanced twice`);
  return calls;
}

test('checks spread over one 10 s grid cell cost the same calls for 5 rollouts and for 50; on a 1 s grid they grow with the rollouts', async () => {
  const five = await spreadCallsFor(5, 10_000);
  const fifty = await spreadCallsFor(50, 10_000);
  assert.equal(fifty, five, `5 rollouts: ${five} calls, 50 rollouts: ${fifty} calls`);
  const fine = await spreadCallsFor(50, 1000);
  assert.ok(fine >= 5 * five, `on a 1 s grid, 50 rollouts: ${fine} calls`);
});

test('a pass that reads an instant while its call is on the way waits for that call instead of asking again', async () => {
  let release: () => void = () => undefined;
  let held: Promise<void> = Promise.resolve();
  const calls: number[] = [];
  const slow: MetricsProvider = {
    counts: () => Promise.reject(new Error('unused')),
    totals: async (selectors: readonly VersionSelector[]) => {
      calls.push(selectors.length);
      await held;
      return new Map<string, Sample>(selectors.map((s) => [s.key, { kind: 'counts', counts: { requests: 5, errors: 0 } }]));
    },
    value: () => Promise.reject(new Error('unused')),
  };
  let now = at(0).getTime();
  const provider = new CoalescingProvider(slow, { gatherMs: 0, now: () => now });
  const all = versions(3);
  await provider.totals(all, at(0));
  held = new Promise<void>((resolve) => (release = resolve));
  now = at(10).getTime();
  const first = provider.totals([all[0] as VersionSelector], at(10));
  await new Promise((resolve) => setTimeout(resolve, 20));
  const later = all.slice(1).map((v) => provider.totals([v], at(10)));
  release();
  for (const answer of await Promise.all([first, ...later])) assert.equal([...answer.values()][0]?.kind, 'counts');
  assert.deepEqual(calls, [3, 3]);
});

/** Counters that grow by `rate` requests a second (1 % of them 5xx), read at any instant; counts over a window are told apart. */
function counters(options: { resetAt?: number; bornAt?: number } = {}): { provider: MetricsProvider; asked: string[] } {
  const asked: string[] = [];
  const bounds = [100, 250, 1000];
  const reading = (key: string, t: number): Sample => {
    const seconds = (t - at(0).getTime()) / 1000;
    if (key.endsWith('canary') && options.bornAt !== undefined && seconds < options.bornAt) return { kind: 'noData', reason: 'no series yet' };
    const since = options.resetAt !== undefined && seconds >= options.resetAt ? seconds - options.resetAt : seconds;
    const requests = 100 * since;
    return { kind: 'counts', counts: { requests, errors: requests / 100, latency: { bounds, cumulative: [requests / 2, (requests * 9) / 10, requests, requests] } } };
  };
  const provider: MetricsProvider = {
    totals: (selectors: readonly VersionSelector[], when: Date) => {
      asked.push(`totals@${String((when.getTime() - at(0).getTime()) / 1000)}`);
      return Promise.resolve(new Map(selectors.map((s) => [s.key, reading(s.key, when.getTime())])));
    },
    counts: (selectors: readonly VersionSelector[], windowMs: number, when: Date) => {
      asked.push(`counts${String(windowMs / 1000)}@${String((when.getTime() - at(0).getTime()) / 1000)}`);
      return Promise.resolve(new Map<string, Sample>(selectors.map((s) => [s.key, { kind: 'counts', counts: { requests: -1, errors: -1 } }])));
    },
    value: () => Promise.reject(new Error('unused')),
  };
  return { provider, asked };
}

test('with deriveCounts a window is the difference of the totals at its ends, asked once for everyone; a reset or a new series asks for the window', async () => {
  const pair = (name: string): VersionSelector[] => [
    { key: `ml/${name}/stable`, labels: { v: `${name}-1` } },
    { key: `ml/${name}/canary`, labels: { v: `${name}-2` } },
  ];
  const plain = counters();
  const provider = new CoalescingProvider(plain.provider, { gatherMs: 0, deriveCounts: true, now: () => at(60).getTime() });
  const answers = await Promise.all(['a', 'b', 'c'].map((name) => provider.counts(pair(name), 30_000, at(60))));
  for (const answer of answers) {
    for (const sample of answer.values()) {
      assert.deepEqual(sample, { kind: 'counts', counts: { requests: 3000, errors: 30, latency: { bounds: [100, 250, 1000], cumulative: [1500, 2700, 3000, 3000] } } });
    }
  }
  assert.deepEqual(plain.asked.sort(), ['totals@30', 'totals@60']);

  const reset = counters({ resetAt: 45 });
  const afterReset = new CoalescingProvider(reset.provider, { gatherMs: 0, deriveCounts: true, now: () => at(60).getTime() });
  assert.deepEqual((await afterReset.counts(pair('a'), 30_000, at(60))).get('ml/a/stable'), { kind: 'counts', counts: { requests: -1, errors: -1 } });
  assert.ok(reset.asked.includes('counts30@60'), 'a counter that went down is asked for with increase()');

  const born = counters({ bornAt: 40 });
  const newSeries = new CoalescingProvider(born.provider, { gatherMs: 0, deriveCounts: true, now: () => at(60).getTime() });
  const fresh = await newSeries.counts(pair('a'), 30_000, at(60));
  assert.equal((fresh.get('ml/a/stable') as { counts: { requests: number } }).counts.requests, 3000, 'stable is derived');
  assert.equal((fresh.get('ml/a/canary') as { counts: { requests: number } }).counts.requests, -1, 'a canary without series at the start is asked for');
});

test('a start reading the next whole second asks for its own versions only, not for every rollout', async () => {
  const { provider: inner, calls } = countingTotals();
  const now = at(10).getTime() + 400;
  const provider = new CoalescingProvider(inner, { gatherMs: 0, now: () => now });
  await provider.totals(versions(100), at(10));
  const newcomer: VersionSelector = { key: 'ml/new/canary', labels: { n: '5' } };
  await provider.totals([newcomer], at(11));
  assert.deepEqual(calls.map((c) => c.length), [100, 1]);
});
