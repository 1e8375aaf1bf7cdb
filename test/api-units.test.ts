import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, parseDuration } from '../src/api/duration.ts';
import { closest } from '../src/api/suggest.ts';
import { setCondition, type Condition } from '../src/api/status.ts';
import { placeholdersIn } from '../src/api/template.ts';

test('durations: parse and format round-trip', () => {
  const cases: [string, number | undefined][] = [
    ['30s', 30_000], ['1m30s', 90_000], ['500ms', 500], ['2h', 7_200_000], ['1h1m1s1ms', 3_661_001],
    ['', undefined], ['30', undefined], ['1.5s', undefined], ['30sec', undefined], ['1s1m', undefined], ['-1s', undefined],
  ];
  for (const [text, ms] of cases) {
    assert.equal(parseDuration(text), ms, text);
    if (ms !== undefined) assert.equal(parseDuration(formatDuration(ms)), ms, text);
  }
  assert.equal(formatDuration(90_000), '1m30s');
  assert.equal(formatDuration(0), '0s');
});

test('suggestions find the field a typo meant, and nothing for a stranger', () => {
  const known = ['interval', 'steps', 'failureThreshold', 'minRequests', 'metrics'];
  const cases: [string, string | undefined][] = [
    ['failureThresold', 'failureThreshold'], ['failurethreshold', 'failureThreshold'], ['minRequest', 'minRequests'],
    ['intreval', 'interval'], ['metric', 'metrics'], ['step', 'steps'], ['webhooks', undefined], ['x', undefined],
  ];
  for (const [typo, meant] of cases) assert.equal(closest(typo, known), meant, typo);
});

test('template placeholders are found with or without spaces', () => {
  assert.deepEqual(placeholdersIn('a{{model}} b{{ version }} c{{  window}} {{ model }}'), ['model', 'version', 'window']);
  assert.deepEqual(placeholdersIn('rate(x[5m])'), []);
});

test('setCondition keeps lastTransitionTime unless the status changes', () => {
  const t0 = new Date('2026-01-01T00:00:00Z');
  const t1 = new Date('2026-01-01T00:01:00Z');
  let conditions: Condition[] = setCondition([], { type: 'Valid', status: 'True', reason: 'SpecAccepted', message: 'ok' }, t0);
  conditions = setCondition(conditions, { type: 'Valid', status: 'True', reason: 'SpecAccepted', message: 'still ok' }, t1);
  assert.equal(conditions.length, 1);
  assert.equal(conditions.at(0)?.lastTransitionTime, t0.toISOString());
  assert.equal(conditions.at(0)?.message, 'still ok');
  conditions = setCondition(conditions, { type: 'Valid', status: 'False', reason: 'InvalidSpec', message: 'bad' }, t1);
  assert.equal(conditions.at(0)?.lastTransitionTime, t1.toISOString());
  conditions = setCondition(conditions, { type: 'Progressing', status: 'True', reason: 'StepAdvanced', message: '10 %' }, t1);
  assert.deepEqual(conditions.map((c) => c.type), ['Valid', 'Progressing']);
});
