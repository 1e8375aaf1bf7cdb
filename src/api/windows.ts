// Rollout windows: when a ModelCanary's steps may advance (spec.analysis.windows). A window
// is a cron schedule of starts in a time zone and how long each start keeps it open. Steps
// may advance when there is no allow window or `now` is inside one, and `now` is inside no
// deny window (a Friday-evening freeze inside working hours). `windowState` decides this
// from the windows and `now` alone, for the reconciler, status and the CLI.
//
// Daylight saving. A schedule names local wall-clock times, and cron v4 (4.4.0) on its own
// answers inconsistently where the local clock jumps: a start in the spring-forward gap
// fires at the first instant after the gap in Europe and America (02:30 → 03:00) but an hour
// later in Sydney (02:30 → 03:30); on the fall-back night a repeated 02:30 fires once when
// searched from before it, yet a search from inside the repeated hour returns the second
// 02:30, and in Sydney even a time earlier than the search started from. So cron is asked
// only about wall-clock time, on UTC's DST-free calendar, and the wall time is turned into an
// instant here, by two rules:
//   - a local time that does not exist starts at the first instant after the gap
//     ("30 2 * * *" in Europe/Berlin starts at 03:00 CEST on 29 March 2026);
//   - a local time that happens twice starts once, at its first occurrence ("30 2 * * *"
//     starts at 02:30 CEST on 25 October 2026 and not again at 02:30 CET). This holds for
//     every schedule alike, so "*/15 * * * *" does not start during the repeated hour.
// Durations are elapsed time: 8h from 00:00 on a day the clocks go forward ends at 09:00.

import { z } from 'zod';
import { CronTime } from 'cron';
import { annotate, type Violation } from './annotate.ts';
import { DURATION_PATTERN, formatDuration, parseDuration } from './duration.ts';
import { closest } from './suggest.ts';

const MINUTE = 60_000;
const DAY = 86_400_000;
/** How far ahead opensAt and closesAt are looked for: 366 days, so that a yearly start is always found. */
const SEARCH_MS = 366 * DAY;
/**
 * Moments examined in that search. Each costs a cron look-up for the window that changes
 * there, up to a millisecond for a daily schedule, so a search that meets no change stops
 * within about half a second: a year of a daily window, or months of windows that open and
 * close each day without the rule changing.
 */
const MAX_STEPS = 500;

// ── Schedule ────────────────────────────────────────────────────────────────────────────

const FIELDS = [
  { name: 'minute', low: 0, high: 59, names: [] },
  { name: 'hour', low: 0, high: 23, names: [] },
  { name: 'day-of-month', low: 1, high: 31, names: [] },
  { name: 'month', low: 1, high: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  { name: 'day-of-week', low: 0, high: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
] as const;
type Field = (typeof FIELDS)[number];

const HOW_TO_WRITE = 'write five fields: minute hour day-of-month month day-of-week, such as "0 9 * * 1-5"';
const HOW_TO_WRITE_A_FIELD = 'write a number, a range (1-5), a list (1,3,5), a step (*/15) or *';
/** Five space-separated fields; the API server checks this much, zod checks the rest. */
const FIVE_FIELDS = '^ *[^ ]+( +[^ ]+){4} *$';

function scheduleViolations(text: string): Violation[] {
  // An empty schedule is reported by the length check.
  if (text.trim() === '') return [];
  const fields = text.trim().split(/ +/);
  const problems = fields.length === 5 ? fields.flatMap((field, i) => fieldProblems(field, i)) : [fieldCountProblem(fields.length)];
  return problems.map((problem) => ({ path: [], message: `"${text}" is not a cron schedule: ${problem}` }));
}

function fieldCountProblem(count: number): string {
  // cron reads six fields as seconds first; windows open on whole minutes.
  if (count === 6) return `it has 6 fields, and a first field of seconds is not supported; ${HOW_TO_WRITE}`;
  return `it has ${count} ${count === 1 ? 'field' : 'fields'}; ${HOW_TO_WRITE}`;
}

/**
 * What is wrong with one field, in words. cron would accept a name in any field and reports
 * an out-of-range value without saying in which field, so names are checked here and each
 * field is parsed alone, with * in the others.
 */
function fieldProblems(text: string, index: number): string[] {
  const field = FIELDS[index];
  if (field === undefined) return [];
  const names = unknownNames(text, field);
  if (names.length > 0) return names;
  try {
    new CronTime(FIELDS.map((_, i) => (i === index ? text : '*')).join(' '), 'UTC');
    return [];
  } catch (error) {
    return [cronProblem(error instanceof Error ? error.message : String(error), text, field)];
  }
}

function unknownNames(text: string, field: Field): string[] {
  const known: readonly string[] = field.names;
  const words = (text.match(/[a-z]+/gi) ?? []).filter((word) => !known.includes(word.toLowerCase()));
  return words.map((word) => {
    if (known.length === 0) return `${field.name} "${text}" has "${word}" where a number belongs; ${field.name} takes numbers ${field.low}-${field.high}`;
    const guess = closest(word, known) ?? known.find((name) => word.toLowerCase().startsWith(name));
    const hint = guess === undefined ? `names are ${known.join(', ')}` : `did you mean ${guess}?`;
    return `${field.name} "${text}" has the unknown name "${word}" (${hint})`;
  });
}

function cronProblem(message: string, text: string, field: Field): string {
  const range = `(${field.low}-${field.high})`;
  if (message.includes('out of range')) return `${field.name} ${outOfRange(text, field) ?? text} is out of range ${range}`;
  if (message.includes('step of zero')) return `${field.name} "${text}" has a step of 0; a step counts from 1, such as */15`;
  if (message.includes('invalid range')) return `${field.name} "${text}" is a range that runs backwards; write the smaller number first, such as 1-5`;
  return `${field.name} "${text}" cannot be read; ${HOW_TO_WRITE_A_FIELD}`;
}

/** The first number of a field outside its range; the numbers after "/" are steps, not values. */
function outOfRange(text: string, field: Field): string | undefined {
  const values = text.replace(/\/\d+/g, '').match(/\d+/g) ?? [];
  return values.find((v) => Number(v) < field.low || Number(v) > field.high);
}

const schedule = annotate(z.string().min(1).max(128), {
  description:
    'When the window opens: a cron schedule of five fields, minute hour day-of-month month day-of-week, in timeZone, such as "0 9 * * 1-5" (09:00 Monday to Friday). Fields take numbers, ranges (1-5), lists (1,3,5), steps (*/15), * and the names jan-dec and sun-sat. When both day-of-month and day-of-week are restricted, a day matching either starts the window. A local time skipped by a daylight-saving change starts at the first instant after it; a local time that happens twice starts once, at its first occurrence.',
  rules: [
    {
      cel: `self.matches('${FIVE_FIELDS}')`,
      message: `must be a cron schedule of five fields: minute hour day-of-month month day-of-week, such as "0 9 * * 1-5"`,
      violations: scheduleViolations,
    },
  ],
});

// ── Time zone ───────────────────────────────────────────────────────────────────────────

/** The shape of an IANA name; it keeps out offsets such as +01:00, which Intl would take. */
const ZONE_SHAPE = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/;

function isKnownZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

function zoneViolations(name: string): Violation[] {
  // A name of the wrong shape is reported by the pattern.
  if (!ZONE_SHAPE.test(name) || isKnownZone(name)) return [];
  const guess = closest(name, [...Intl.supportedValuesOf('timeZone'), 'UTC']);
  const hint = guess === undefined ? 'write an IANA name such as Europe/Berlin, America/New_York or UTC' : `did you mean ${guess}?`;
  return [{ path: [], message: `unknown time zone "${name}" (${hint})` }];
}

const timeZone = annotate(z.string().min(1).max(64).regex(ZONE_SHAPE, 'must be an IANA time zone name, such as Europe/Berlin, America/New_York or UTC'), {
  description: 'The IANA time zone the schedule is read in, such as Europe/Berlin. Default UTC.',
  rules: [{ message: 'must be a time zone of the IANA database', violations: zoneViolations }],
});

// ── Duration ────────────────────────────────────────────────────────────────────────────

const DURATION_HINT = 'must be a duration such as 30m, 8h or 1h30m';
const MIN_DURATION = '1m';
const MAX_DURATION = '168h';

/** As modelcanary.ts's duration(): the pattern and bounds for both checkers, parsed to milliseconds. */
const duration = (() => {
  const minMs = parseDuration(MIN_DURATION) ?? 0;
  const maxMs = parseDuration(MAX_DURATION) ?? Infinity;
  const bounds = `between ${MIN_DURATION} and ${MAX_DURATION}`;
  return annotate(z.string({ error: DURATION_HINT }).min(2).max(32).regex(new RegExp(DURATION_PATTERN), `${DURATION_HINT} (units h, m, s, ms)`), {
    description: `How long the window stays open after each start of the schedule, in elapsed time: 8h that spans a daylight-saving change ends 8 real hours after the start, at 9 or 7 hours later on the local clock. A duration such as 30m, 8h or 1h30m, ${bounds}.`,
    rules: [
      {
        cel: `duration(self) >= duration('${MIN_DURATION}') && duration(self) <= duration('${MAX_DURATION}')`,
        message: `must be ${bounds}`,
        violations: (text: string) => {
          const ms = parseDuration(text);
          return ms === undefined || (ms >= minMs && ms <= maxMs) ? [] : [{ path: [], message: `must be ${bounds}` }];
        },
      },
    ],
  }).transform((text) => parseDuration(text) ?? 0);
})();

// ── The window ──────────────────────────────────────────────────────────────────────────

export const RolloutWindow = annotate(
  z.strictObject({
    schedule,
    duration,
    timeZone: timeZone.prefault('UTC'),
    mode: annotate(z.enum(['allow', 'deny']), {
      description:
        'allow: steps may advance only inside an allow window (inside any one, when there are several). deny: steps must not advance inside this window, even inside an allow window. Default allow.',
    }).prefault('allow'),
  }),
  {
    description:
      'A time when steps may (allow) or must not (deny) advance: it opens at each start of the schedule and stays open for the duration. Outside allow windows and inside deny windows the canary holds its weight; checks go on, and a failing canary is still rolled back.',
  },
);
export type RolloutWindow = z.output<typeof RolloutWindow>;

export const RolloutWindows = annotate(z.array(RolloutWindow).max(16), {
  description:
    'When steps may advance. With allow windows, only inside one of them; never inside a deny window. With no windows, at any time.',
  extensions: { 'x-kubernetes-list-type': 'atomic' },
});

/** A window in a few words for messages: allow "0 9 * * 1-5" for 8h (Europe/Berlin). */
export function describeWindow(w: RolloutWindow): string {
  return `${w.mode} ${describeTimes(w)}`;
}

function describeTimes(w: RolloutWindow): string {
  return `"${w.schedule}" for ${formatDuration(w.duration)} (${w.timeZone})`;
}

// ── Local time ──────────────────────────────────────────────────────────────────────────

/**
 * Local time in one zone. A wall time is the local date and time read as if it were UTC, in
 * milliseconds: a timeline without DST on which cron can search.
 */
interface ZoneClock {
  wall(instant: number): number;
  /** When a wall time happens, by the two DST rules at the top of this file. */
  instant(wall: number): number;
}

function zoneClock(timeZone: string): ZoneClock {
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  });
  const wall = (instant: number): number => {
    const parts = format.formatToParts(instant);
    const part = (type: Intl.DateTimeFormatPartTypes): number => Number(parts.find((p) => p.type === type)?.value);
    const seconds = Date.UTC(part('year'), part('month') - 1, part('day'), part('hour'), part('minute'), part('second'));
    return seconds + (((instant % 1000) + 1000) % 1000);
  };
  return { wall, instant: (w) => firstInstant(wall, w) };
}

/** The first instant whose local time is `w`; in a gap, the first instant after it. */
function firstInstant(wall: (instant: number) => number, w: number): number {
  // The offsets in force a day either side; with the largest first, the first fit is the earliest.
  const offsets = [...new Set([wall(w - DAY) - (w - DAY), wall(w + DAY) - (w + DAY)])].sort((a, b) => b - a);
  for (const offset of offsets) if (wall(w - offset) === w) return w - offset;
  // In a gap: before is ahead of the jump, after is past it; bisect to the second.
  let before = w - Math.max(...offsets);
  let after = w - Math.min(...offsets);
  while (after - before > 1000) {
    const middle = before + Math.floor((after - before) / 2000) * 1000;
    if (wall(middle) >= w) after = middle;
    else before = middle;
  }
  return after;
}

/** "2026-11-30T09:00:00+01:00 (Europe/Berlin)": the local time with its offset, and the zone. */
function formatAt(instant: number, timeZone: string): string {
  const wall = zoneClock(timeZone).wall(instant);
  const offset = Math.round((wall - instant) / MINUTE);
  const hhmm = `${String(Math.floor(Math.abs(offset) / 60)).padStart(2, '0')}:${String(Math.abs(offset) % 60).padStart(2, '0')}`;
  const suffix = offset === 0 ? 'Z' : `${offset < 0 ? '-' : '+'}${hhmm}`;
  return `${new Date(wall).toISOString().slice(0, 19)}${suffix} (${timeZone})`;
}

// ── Starts ──────────────────────────────────────────────────────────────────────────────

interface Schedule {
  window: RolloutWindow;
  cron: CronTime;
  clock: ZoneClock;
}

function compile(window: RolloutWindow): Schedule {
  return { window, cron: new CronTime(window.schedule, 'UTC'), clock: zoneClock(window.timeZone) };
}

/** The first start strictly after `after`, or undefined when cron finds none. */
function nextStart(s: Schedule, after: number): number | undefined {
  let wall = s.clock.wall(after);
  for (;;) {
    const next = nextWallStart(s.cron, wall);
    if (next === undefined) return undefined;
    const at = s.clock.instant(next);
    if (at > after) return at;
    // `after` is in the second pass of a repeated hour, and this local time started in the first.
    wall = next;
  }
}

/**
 * The first whole minute after `wall` that the schedule names. cron starts from the second
 * after the time it is handed and steps second by second, so it is handed hh:mm:59.
 * It gives up (throws) when it finds no start within 8 years of the real clock: the one
 * clock read on this path, which can matter only for a `now` years ahead.
 */
function nextWallStart(cron: CronTime, wall: number): number | undefined {
  try {
    return cron.getNextDateFrom(new Date(wall - (((wall % MINUTE) + MINUTE) % MINUTE) + 59_000), 'UTC').toMillis();
  } catch (error) {
    if (error instanceof Error && error.message.includes('No execution date was found')) return undefined;
    throw error;
  }
}

// ── State ───────────────────────────────────────────────────────────────────────────────

export type WindowState =
  | { open: true; closesAt: Date | undefined; reason: string }
  | { open: false; opensAt: Date | undefined; reason: string };

/** One window's state from some moment on: it holds until `until` (undefined: for as far as cron looks). */
interface Span {
  open: boolean;
  until: number | undefined;
}

/**
 * Open at u when a start s has s <= u < s + duration: the first start after u - duration is
 * such an s when it is not after u. Its end is where the state may change; a later start
 * that keeps the window open is found when the search gets there.
 */
function spanAt(s: Schedule, u: number): Span {
  const start = nextStart(s, u - s.window.duration);
  if (start === undefined) return { open: false, until: undefined };
  return start <= u ? { open: true, until: start + s.window.duration } : { open: false, until: start };
}

/** spanAt for times that only move forward, looking cron up again only when the state may have changed. */
function timeline(s: Schedule): (u: number) => Span {
  let known: Span | undefined;
  return (u) => {
    if (known === undefined || (known.until !== undefined && u >= known.until)) known = spanAt(s, u);
    return known;
  };
}

interface Timeline {
  window: RolloutWindow;
  at: (u: number) => Span;
}

/** The combined rule at one moment, with the windows that decide it and when it may next change. */
interface Moment {
  open: boolean;
  allowing: RolloutWindow | undefined;
  denying: RolloutWindow | undefined;
  until: number | undefined;
}

function momentAt(timelines: readonly Timeline[], u: number): Moment {
  const spans = timelines.map((t) => ({ window: t.window, span: t.at(u) }));
  const allowing = spans.find((x) => x.window.mode === 'allow' && x.span.open)?.window;
  const denying = spans.find((x) => x.window.mode === 'deny' && x.span.open)?.window;
  const anyAllow = spans.some((x) => x.window.mode === 'allow');
  const untils = spans.flatMap((x) => (x.span.until === undefined ? [] : [x.span.until]));
  return {
    open: (!anyAllow || allowing !== undefined) && denying === undefined,
    allowing,
    denying,
    until: untils.length === 0 ? undefined : Math.min(...untils),
  };
}

type Change = { at: number } | { at: undefined; searchedTo: number };

/** The first moment after `from` at which the combined rule flips, moment by moment within the search. */
function nextChange(timelines: readonly Timeline[], now: number, from: Moment): Change {
  const limit = now + SEARCH_MS;
  let moment = from;
  let u = now;
  for (let step = 0; step < MAX_STEPS; step++) {
    if (moment.until === undefined || moment.until > limit) return { at: undefined, searchedTo: limit };
    u = moment.until;
    moment = momentAt(timelines, u);
    if (moment.open !== from.open) return { at: u };
  }
  return { at: undefined, searchedTo: u };
}

/**
 * Whether steps may advance at `now`, when that next changes, and why, in words for status
 * and the CLI. Pure: `now` is handed in, and the windows are read as the schema parsed them.
 */
export function windowState(windows: readonly RolloutWindow[], now: Date): WindowState {
  if (windows.length === 0) return { open: true, closesAt: undefined, reason: 'no windows' };
  const timelines = windows.map((w) => ({ window: w, at: timeline(compile(w)) }));
  const t = now.getTime();
  const moment = momentAt(timelines, t);
  const change = nextChange(timelines, t, moment);
  const at = change.at === undefined ? undefined : new Date(change.at);
  const reason = reasonFor(windows, moment, change);
  return moment.open ? { open: true, closesAt: at, reason } : { open: false, opensAt: at, reason };
}

function reasonFor(windows: readonly RolloutWindow[], moment: Moment, change: Change): string {
  const firstAllow = windows.find((w) => w.mode === 'allow');
  const firstDeny = windows.find((w) => w.mode === 'deny');
  const causes: { text: string; zone: string }[] = [];
  if (moment.open) {
    if (moment.allowing !== undefined) causes.push({ text: `inside allow window ${describeTimes(moment.allowing)}`, zone: moment.allowing.timeZone });
    else if (firstDeny !== undefined) causes.push({ text: 'outside every deny window', zone: firstDeny.timeZone });
  } else {
    if (firstAllow !== undefined && moment.allowing === undefined) causes.push({ text: 'outside every allow window', zone: firstAllow.timeZone });
    if (moment.denying !== undefined) causes.push({ text: `inside deny window ${describeTimes(moment.denying)}`, zone: moment.denying.timeZone });
  }
  const zone = causes[0]?.zone ?? 'UTC';
  const next =
    change.at !== undefined
      ? `${moment.open ? 'closes' : 'opens'} at ${formatAt(change.at, zone)}`
      : `${moment.open ? 'stays open past' : 'does not open before'} ${formatAt(change.searchedTo, zone)}`;
  return `${causes.map((c) => c.text).join(' and ')}; ${next}`;
}
