// The watch mark: counters read at one look of the sequential test, subtracted at the next.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { markOf, sinceMark } from '../src/controller/rollout-status.ts';
import type { Counts } from '../src/api/observation.ts';

const at = new Date('2026-11-21T12:00:00Z');
const counts = (requests: number, errors: number, cumulative?: number[]): Counts => ({
  requests,
  errors,
  latency: cumulative === undefined ? undefined : { bounds: [50, 100], cumulative },
});

test('the requests since the mark are the differences of the counters, buckets included', () => {
  const mark = markOf({ stable: counts(1000.0000001, 3, [900, 990, 1000]), canary: counts(100, 1, [80, 99, 100]) }, at);
  assert.equal(mark.stable.requests, 1000, 'whole requests in status');
  assert.deepEqual(sinceMark(mark, { stable: counts(1900, 5, [1700, 1880, 1900]), canary: counts(200, 11, [150, 195, 200]) }), {
    stable: counts(900, 2, [800, 890, 900]),
    canary: counts(100, 10, [70, 96, 100]),
  });
});

test('a counter that went down (a restarted proxy, a stale series) is a reset, never a negative count', () => {
  const mark = markOf({ stable: counts(1000, 3, [900, 990, 1000]), canary: counts(100, 1, [80, 99, 100]) }, at);
  const cases: { name: string; stable: Counts; canary: Counts }[] = [
    { name: 'requests', stable: counts(10, 3, [900, 990, 1000]), canary: counts(120, 1, [90, 119, 120]) },
    { name: 'errors', stable: counts(1100, 3, [1000, 1090, 1100]), canary: counts(120, 0, [90, 119, 120]) },
    { name: 'a bucket', stable: counts(1100, 3, [800, 1090, 1100]), canary: counts(120, 1, [90, 119, 120]) },
  ];
  for (const c of cases) assert.equal(sinceMark(mark, { stable: c.stable, canary: c.canary }), 'reset', c.name);
});

test('latency is left out when the buckets changed between looks, the counts stay', () => {
  const mark = markOf({ stable: counts(1000, 3, [900, 990, 1000]), canary: counts(100, 1) }, at);
  const fresh = sinceMark(mark, { stable: { requests: 1100, errors: 3, latency: { bounds: [10, 50, 100], cumulative: [1, 2, 3, 4] } }, canary: counts(110, 1) });
  assert.notEqual(fresh, 'reset');
  assert.deepEqual(fresh === 'reset' ? undefined : fresh.stable, { requests: 100, errors: 0 });
});
