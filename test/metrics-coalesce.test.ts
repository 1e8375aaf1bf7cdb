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
    const shared = new CoalescingProvider(driven, 20);
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
  const provider = new CoalescingProvider(slow, 10);
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
    10,
  );
  const t = new Date('2026-11-26T12:00:00Z');
  await Promise.all([provider.value('q', t), provider.value('q', t), provider.value('q', new Date(t.getTime() + 1000)), provider.value('r', t)]);
  assert.deepEqual(asked.sort(), ['q@2026-11-26T12:00:00.000Z', 'q@2026-11-26T12:00:01.000Z', 'r@2026-11-26T12:00:00.000Z']);
});
