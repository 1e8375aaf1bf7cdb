// Rollout windows as a user meets them: whether steps may advance at a given moment, when
// that changes and why, across both daylight-saving changes of 2026 in Europe/Berlin (29 March,
// 25 October) and America/New_York (8 March, 1 November); and the messages a bad window gets.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { Environment } from '@marcbachmann/cel-js';
import type { SchemaNode } from '../src/api/crd.ts';
import { checkAgainst } from '../src/api/validate.ts';
import { describeWindow, RolloutWindow, windowState } from '../src/api/windows.ts';

const window = (schedule: string, duration: string, rest: { timeZone?: string; mode?: 'allow' | 'deny' } = {}): RolloutWindow =>
  RolloutWindow.parse({ schedule, duration, ...rest });

const BERLIN = { timeZone: 'Europe/Berlin' };
const NEW_YORK = { timeZone: 'America/New_York' };
const SYDNEY = { timeZone: 'Australia/Sydney' };
const WORKING_HOURS = window('0 9 * * 1-5', '8h', BERLIN);
/** Friday 15:00 to Monday 09:00, Berlin time. */
const WEEKEND_FREEZE = window('0 15 * * 5', '66h', { ...BERLIN, mode: 'deny' });

interface StateCase {
  name: string;
  windows: RolloutWindow[];
  now: string;
  open: boolean;
  /** closesAt when open, opensAt when closed. */
  next: string | undefined;
  /** Part of the reason, or all of it. */
  reason?: string;
}

const cases: StateCase[] = [
  { name: 'no windows: always open', windows: [], now: '2026-12-02T10:00:00Z', open: true, next: undefined, reason: 'no windows' },
  {
    name: 'inside an allow window',
    windows: [WORKING_HOURS],
    now: '2026-12-02T10:00:00+01:00',
    open: true,
    next: '2026-12-02T17:00:00+01:00',
    reason: 'inside allow window "0 9 * * 1-5" for 8h (Europe/Berlin); closes at 2026-12-02T17:00:00+01:00 (Europe/Berlin)',
  },
  {
    name: 'outside an allow window, after hours',
    windows: [WORKING_HOURS],
    now: '2026-12-02T18:00:00+01:00',
    open: false,
    next: '2026-12-03T09:00:00+01:00',
    reason: 'outside every allow window; opens at 2026-12-03T09:00:00+01:00 (Europe/Berlin)',
  },
  { name: 'outside an allow window, at the weekend', windows: [WORKING_HOURS], now: '2026-12-05T12:00:00+01:00', open: false, next: '2026-12-07T09:00:00+01:00' },

  // A Friday-afternoon freeze inside working hours.
  { name: 'freeze: Friday before it, closing when it starts', windows: [WORKING_HOURS, WEEKEND_FREEZE], now: '2026-12-04T14:00:00+01:00', open: true, next: '2026-12-04T15:00:00+01:00' },
  {
    name: 'freeze: Friday inside it and inside working hours',
    windows: [WORKING_HOURS, WEEKEND_FREEZE],
    now: '2026-12-04T16:00:00+01:00',
    open: false,
    next: '2026-12-07T09:00:00+01:00',
    reason: 'inside deny window "0 15 * * 5" for 66h (Europe/Berlin); opens at 2026-12-07T09:00:00+01:00 (Europe/Berlin)',
  },
  {
    name: 'freeze: Saturday, outside working hours too',
    windows: [WORKING_HOURS, WEEKEND_FREEZE],
    now: '2026-12-05T12:00:00+01:00',
    open: false,
    next: '2026-12-07T09:00:00+01:00',
    reason: 'outside every allow window and inside deny window "0 15 * * 5" for 66h (Europe/Berlin)',
  },
  { name: 'freeze: Monday 09:00, as it ends and working hours start', windows: [WORKING_HOURS, WEEKEND_FREEZE], now: '2026-12-07T09:00:00+01:00', open: true, next: '2026-12-07T17:00:00+01:00' },

  // Deny windows alone.
  {
    name: 'deny only: outside it',
    windows: [window('0 18 * * 5', '64h', { ...BERLIN, mode: 'deny' })],
    now: '2026-12-02T12:00:00+01:00',
    open: true,
    next: '2026-12-04T18:00:00+01:00',
    reason: 'outside every deny window; closes at 2026-12-04T18:00:00+01:00 (Europe/Berlin)',
  },
  { name: 'deny only: inside it', windows: [window('0 18 * * 5', '64h', { ...BERLIN, mode: 'deny' })], now: '2026-12-05T12:00:00+01:00', open: false, next: '2026-12-07T10:00:00+01:00' },

  // Several allow windows: open while any is, closing at the end of their union.
  { name: 'overlapping allow windows close at the end of the later', windows: [window('0 9 * * *', '4h'), window('0 12 * * *', '4h')], now: '2026-12-02T10:00:00Z', open: true, next: '2026-12-02T16:00:00Z' },
  { name: 'touching allow windows close at the end of the later', windows: [window('0 9 * * *', '3h'), window('0 12 * * *', '4h')], now: '2026-12-02T10:00:00Z', open: true, next: '2026-12-02T16:00:00Z' },

  // The edges: a window is open from a start, inclusive, to start + duration, exclusive.
  { name: 'edge: a start exactly now', windows: [window('0 9 * * *', '1h')], now: '2026-12-02T09:00:00Z', open: true, next: '2026-12-02T10:00:00Z' },
  { name: 'edge: a start exactly one duration ago', windows: [window('0 9 * * *', '1h')], now: '2026-12-02T10:00:00Z', open: false, next: '2026-12-03T09:00:00Z' },
  { name: 'edge: the last millisecond inside', windows: [window('0 9 * * *', '1h')], now: '2026-12-02T09:59:59.999Z', open: true, next: '2026-12-02T10:00:00Z' },
  { name: 'edge: the last millisecond before', windows: [window('0 9 * * *', '1h')], now: '2026-12-02T08:59:59.999Z', open: false, next: '2026-12-02T09:00:00Z' },

  // Nothing to find within the year searched.
  {
    name: 'a schedule that never fires',
    windows: [window('0 0 30 2 *', '1h')],
    now: '2026-12-01T12:00:00Z',
    open: false,
    next: undefined,
    reason: 'outside every allow window; does not open before 2027-12-02T12:00:00Z (UTC)',
  },
  { name: 'a window that never closes', windows: [window('0 0 * * *', '24h')], now: '2026-12-01T12:00:00Z', open: true, next: undefined, reason: 'stays open past' },
  { name: 'a deny window that covers every allow window', windows: [window('0 9 * * *', '1h'), window('0 0 * * *', '24h', { mode: 'deny' })], now: '2026-12-01T12:00:00Z', open: false, next: undefined, reason: 'does not open before' },

  // Europe/Berlin, 29 March 2026: 02:00 CET jumps to 03:00 CEST, so 02:30 does not happen.
  {
    name: 'Berlin spring: a start in the gap happens as it ends',
    windows: [window('30 2 * * *', '1h', BERLIN)],
    now: '2026-03-29T01:59:00+01:00',
    open: false,
    next: '2026-03-29T03:00:00+02:00',
    reason: 'opens at 2026-03-29T03:00:00+02:00 (Europe/Berlin)',
  },
  { name: 'Berlin spring: and lasts its duration in real time', windows: [window('30 2 * * *', '1h', BERLIN)], now: '2026-03-29T03:10:00+02:00', open: true, next: '2026-03-29T04:00:00+02:00' },
  { name: 'Berlin spring: the day after, at 02:30 again', windows: [window('30 2 * * *', '1h', BERLIN)], now: '2026-03-30T02:45:00+02:00', open: true, next: '2026-03-30T03:30:00+02:00' },
  { name: 'Berlin spring: 8h from midnight ends at 09:00 on the short day', windows: [window('0 0 * * *', '8h', BERLIN)], now: '2026-03-29T08:30:00+02:00', open: true, next: '2026-03-29T09:00:00+02:00' },

  // Europe/Berlin, 25 October 2026: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice.
  { name: 'Berlin autumn: a repeated time starts at its first occurrence', windows: [window('30 2 * * *', '30m', BERLIN)], now: '2026-10-25T02:40:00+02:00', open: true, next: '2026-10-25T02:00:00+01:00' },
  { name: 'Berlin autumn: and not at its second', windows: [window('30 2 * * *', '30m', BERLIN)], now: '2026-10-25T02:30:00+01:00', open: false, next: '2026-10-26T02:30:00+01:00' },
  { name: 'Berlin autumn: an hour from the first 02:30 ends at the second', windows: [window('30 2 * * *', '1h', BERLIN)], now: '2026-10-25T02:15:00+01:00', open: true, next: '2026-10-25T02:30:00+01:00' },
  {
    name: 'Berlin autumn: a 24h Sunday freeze ends at 23:00 on the long day',
    windows: [window('0 0 * * 0', '24h', { ...BERLIN, mode: 'deny' })],
    now: '2026-10-25T22:30:00+01:00',
    open: false,
    next: '2026-10-25T23:00:00+01:00',
  },

  // America/New_York, 8 March 2026: 02:00 EST jumps to 03:00 EDT.
  { name: 'New York spring: a start in the gap happens as it ends', windows: [window('30 2 * * *', '1h', NEW_YORK)], now: '2026-03-08T01:59:00-05:00', open: false, next: '2026-03-08T03:00:00-04:00' },
  { name: 'New York spring: and lasts its duration in real time', windows: [window('30 2 * * *', '1h', NEW_YORK)], now: '2026-03-08T03:30:00-04:00', open: true, next: '2026-03-08T04:00:00-04:00' },
  { name: 'New York spring: working hours follow the local clock', windows: [window('0 9 * * 1-5', '8h', NEW_YORK)], now: '2026-03-09T08:00:00-04:00', open: false, next: '2026-03-09T09:00:00-04:00' },

  // America/New_York, 1 November 2026: 02:00 EDT falls back to 01:00 EST, so 01:30 happens twice.
  { name: 'New York autumn: open from the first 01:30', windows: [window('30 1 * * *', '1h', NEW_YORK)], now: '2026-11-01T01:45:00-04:00', open: true, next: '2026-11-01T01:30:00-05:00' },
  { name: 'New York autumn: the second 01:30 starts nothing', windows: [window('30 1 * * *', '1h', NEW_YORK)], now: '2026-11-01T01:30:00-05:00', open: false, next: '2026-11-02T01:30:00-05:00' },
  { name: 'New York autumn: nor does the time after it', windows: [window('30 1 * * *', '1h', NEW_YORK)], now: '2026-11-01T01:45:00-05:00', open: false, next: '2026-11-02T01:30:00-05:00' },

  // Australia/Sydney, where cron alone moves a start in the gap an hour late and answers a
  // search from the repeated hour with a time before it: the same two rules hold.
  { name: 'Sydney spring (4 October): a start in the gap happens as it ends', windows: [window('30 2 * * *', '1h', SYDNEY)], now: '2026-10-04T01:59:00+10:00', open: false, next: '2026-10-04T03:00:00+11:00' },
  { name: 'Sydney autumn (5 April): the repeated hour starts nothing', windows: [window('30 2 * * *', '30m', SYDNEY)], now: '2026-04-05T02:15:00+10:00', open: false, next: '2026-04-06T02:30:00+10:00' },
];

for (const c of cases) {
  test(`window state: ${c.name}`, () => {
    const state = windowState(c.windows, new Date(c.now));
    assert.equal(state.open, c.open, state.reason);
    const next = state.open ? state.closesAt : state.opensAt;
    assert.equal(next?.toISOString(), c.next === undefined ? undefined : new Date(c.next).toISOString(), state.reason);
    if (c.reason !== undefined) assert.ok(state.reason.includes(c.reason), `expected "${c.reason}" in "${state.reason}"`);
  });
}

test('window state reads no clock: the same moment gives the same answer', () => {
  const now = new Date('2026-12-04T16:00:00+01:00');
  assert.deepEqual(windowState([WORKING_HOURS, WEEKEND_FREEZE], now), windowState([WORKING_HOURS, WEEKEND_FREEZE], new Date(now)));
});

// ── Validation ─────────────────────────────────────────────────────────────────────────

const VALID = { schedule: '0 9 * * 1-5', duration: '8h' };

const invalid: { name: string; input: Record<string, unknown>; path: string; message: string }[] = [
  { name: 'hour out of range', input: { schedule: '0 25 * * *' }, path: 'schedule', message: '"0 25 * * *" is not a cron schedule: hour 25 is out of range (0-23)' },
  { name: 'minute out of range', input: { schedule: '61 * * * *' }, path: 'schedule', message: 'minute 61 is out of range (0-59)' },
  { name: 'day out of range in a range', input: { schedule: '0 9 30-32 * *' }, path: 'schedule', message: 'day-of-month 32 is out of range (1-31)' },
  {
    name: 'six fields',
    input: { schedule: '0 0 9 * * 1' },
    path: 'schedule',
    message: 'it has 6 fields, and a first field of seconds is not supported; write five fields: minute hour day-of-month month day-of-week, such as "0 9 * * 1-5"',
  },
  { name: 'four fields', input: { schedule: '0 9 * *' }, path: 'schedule', message: 'it has 4 fields; write five fields' },
  { name: 'a misspelt day name', input: { schedule: '0 9 * * mon-fry' }, path: 'schedule', message: 'day-of-week "mon-fry" has the unknown name "fry" (did you mean fri?)' },
  { name: 'a day written out', input: { schedule: '0 9 * * monday' }, path: 'schedule', message: 'has the unknown name "monday" (did you mean mon?)' },
  { name: 'a word for an hour', input: { schedule: '0 noon * * *' }, path: 'schedule', message: 'hour "noon" has "noon" where a number belongs' },
  { name: 'a backwards range', input: { schedule: '0 9 * * 5-1' }, path: 'schedule', message: 'day-of-week "5-1" is a range that runs backwards' },
  { name: 'a step of zero', input: { schedule: '*/0 * * * *' }, path: 'schedule', message: 'minute "*/0" has a step of 0' },
  { name: 'a question mark', input: { schedule: '0 9 ? * *' }, path: 'schedule', message: 'day-of-month "?" cannot be read; write a number, a range (1-5)' },
  { name: 'a misspelt time zone', input: { timeZone: 'Europe/Berln' }, path: 'timeZone', message: 'unknown time zone "Europe/Berln" (did you mean Europe/Berlin?)' },
  { name: 'an unknown time zone', input: { timeZone: 'Mars/Olympus_Mons' }, path: 'timeZone', message: 'unknown time zone "Mars/Olympus_Mons" (write an IANA name such as Europe/Berlin' },
  { name: 'an offset for a time zone', input: { timeZone: '+01:00' }, path: 'timeZone', message: 'must be an IANA time zone name' },
  { name: 'a duration too short', input: { duration: '30s' }, path: 'duration', message: 'must be between 1m and 168h' },
  { name: 'a duration too long', input: { duration: '169h' }, path: 'duration', message: 'must be between 1m and 168h' },
  { name: 'a duration in words', input: { duration: '8 hours' }, path: 'duration', message: 'must be a duration such as 30m, 8h or 1h30m' },
  { name: 'an unknown mode', input: { mode: 'block' }, path: 'mode', message: 'must be one of "allow", "deny"' },
  { name: 'a misspelt field', input: { timezone: 'UTC' }, path: 'timezone', message: 'unknown field (did you mean timeZone?)' },
];

for (const c of invalid) {
  test(`validation: ${c.name}`, () => {
    const checked = checkAgainst(RolloutWindow, { ...VALID, ...c.input });
    assert.equal(checked.ok, false);
    assert.ok(
      checked.problems.some((p) => p.path === c.path && p.message.includes(c.message)),
      `expected ${c.path}: "${c.message}", got:\n  ${checked.problems.map((p) => `${p.path}: ${p.message}`).join('\n  ')}`,
    );
    assert.deepEqual(checked.problems.filter((p) => p.path !== c.path), [], 'only the wrong field is reported');
  });
}

test('validation: defaults, names and durations of a valid window', () => {
  assert.deepEqual(RolloutWindow.parse(VALID), { schedule: '0 9 * * 1-5', duration: 8 * 3_600_000, timeZone: 'UTC', mode: 'allow' });
  for (const schedule of ['0 9 * * MON-FRI', '*/15 8-18 * jan,dec 1-5', '0 0 1 * *', '0 0 * * 7', ' 0 9 * * 1 ']) {
    assert.equal(RolloutWindow.safeParse({ ...VALID, schedule }).success, true, schedule);
  }
  for (const timeZone of ['UTC', 'Europe/Berlin', 'America/Argentina/Buenos_Aires', 'Etc/GMT+5']) {
    assert.equal(RolloutWindow.safeParse({ ...VALID, timeZone }).success, true, timeZone);
  }
});

test('describeWindow names the mode, schedule, duration and zone', () => {
  assert.equal(describeWindow(WORKING_HOURS), 'allow "0 9 * * 1-5" for 8h (Europe/Berlin)');
  assert.equal(describeWindow(window('0 18 * * 5', '1h30m', { mode: 'deny' })), 'deny "0 18 * * 5" for 1h30m (UTC)');
});

// ── The API server's share ─────────────────────────────────────────────────────────────

/** The CEL rules the CRD would carry for a field of the window, compiled by cel-js. */
function celRule(field: 'schedule' | 'duration'): (self: string) => boolean {
  const schema = z.toJSONSchema(RolloutWindow, { io: 'input', target: 'openapi-3.0', unrepresentable: 'throw' }) as SchemaNode;
  const rule = schema.properties?.[field]?.['x-kubernetes-validations']?.[0]?.rule;
  assert.ok(rule !== undefined, `${field} has no CEL rule`);
  const program = new Environment().registerVariable('self', 'string').parse(rule);
  return (self) => program({ self }) === true;
}

test('CEL: the API server refuses what zod refuses for the number of fields and the duration', () => {
  const cel = { schedule: celRule('schedule'), duration: celRule('duration') };
  const samples: { field: 'schedule' | 'duration'; value: string; valid: boolean }[] = [
    { field: 'schedule', value: '0 9 * * 1-5', valid: true },
    { field: 'schedule', value: '*/15 8-18 * jan,dec mon-fri', valid: true },
    { field: 'schedule', value: '0 9 * *', valid: false },
    { field: 'schedule', value: '0 0 9 * * 1', valid: false },
    { field: 'duration', value: '1m', valid: true },
    { field: 'duration', value: '168h', valid: true },
    { field: 'duration', value: '59s', valid: false },
    { field: 'duration', value: '168h1m', valid: false },
  ];
  for (const s of samples) {
    assert.equal(cel[s.field](s.value), s.valid, `CEL on ${s.field} ${s.value}`);
    assert.equal(RolloutWindow.safeParse({ ...VALID, [s.field]: s.value }).success, s.valid, `zod on ${s.field} ${s.value}`);
  }
});
