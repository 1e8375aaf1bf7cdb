// What `modelcanary status` and `modelcanary list` show, as pure functions of what was read and
// of the time: status.ts reads and redraws, this lays out. Objects arrive as the API server
// sent them and are parsed here, field by field, so that one odd field costs one line, not the
// view. Foreign text (messages, reasons, events) is stripped of control characters: an event
// must not be able to move the cursor or recolour the terminal.

import { z } from 'zod';
import type { Metric, ModelCanarySpec } from '../api/modelcanary.ts';
import { ModelCanaryStatus, type Condition, type GateWait, type Phase } from '../api/status.ts';
import { boundOf, formatMetricValue } from '../controller/notifications.ts';

export type RouteWeight = { canary: number; stable: number } | { problem: string };

export interface StatusEvent {
  type: string;
  reason: string;
  message: string;
  time: string | undefined;
  count: number;
}

export interface StatusView {
  /** The ModelCanary as the API server returned it. */
  object: Record<string, unknown>;
  /** The parsed spec, when it is valid. */
  spec?: ModelCanarySpec | undefined;
  /** What is wrong with the spec, when it is not valid. */
  specProblems?: string | undefined;
  /** The weights found on the route, or why they could not be read. */
  routeWeight?: RouteWeight | undefined;
  /** The ModelCanary's events, newest last. */
  events: StatusEvent[];
  /** Why the events could not be read (RBAC, typically). */
  eventsProblem?: string | undefined;
  /** Why what is shown may be out of date: a watch that lost the API server and is retrying. */
  stale?: string | undefined;
}

export interface RenderOptions {
  now: Date;
  color: boolean;
  /** Lines are cut, and tables shrunk, to this many columns: a terminal's width, or Infinity. */
  width: number;
  /**
   * false: times as clock times instead of ages ("at 09:00:12", not "12 s ago"), so that the
   * text changes only when the rollout does, not as time passes. Default true.
   */
  ages?: boolean;
}

const ENDED: ReadonlySet<Phase | undefined> = new Set<Phase | undefined>(['Succeeded', 'RolledBack']);
const LAST_EVENTS = 5;
const BAR_WIDTH = 20;
const LABEL_WIDTH = 14;

// ── What is read from the raw object ────────────────────────────────────────────────────

const text = z.string().optional().catch(undefined);
const Metadata = z
  .looseObject({ name: z.string().catch('?'), namespace: text, creationTimestamp: text, generation: z.number().optional().catch(undefined) })
  .catch({ name: '?' });
const Version = z.looseObject({ version: text }).optional().catch(undefined);
/** The spec's fields the view shows even when the spec as a whole is invalid. */
const LooseSpec = z
  .looseObject({ model: text, stable: Version, canary: Version, analysis: z.looseObject({ steps: z.array(z.number()).optional().catch(undefined) }).optional().catch(undefined) })
  .catch({});

interface Read {
  name: string;
  namespace: string | undefined;
  created: string | undefined;
  generation: number | undefined;
  model: string | undefined;
  stableVersion: string | undefined;
  canaryVersion: string | undefined;
  /** The spec's canary version when it differs from the one the status rolls out. */
  nextCanary: string | undefined;
  steps: number[] | undefined;
  status: ModelCanaryStatus;
  statusProblem: string | undefined;
}

function read(object: Record<string, unknown>, spec?: ModelCanarySpec): Read {
  const metadata = Metadata.parse(object.metadata);
  const loose = LooseSpec.parse(object.spec);
  const { status, problem } = readStatus(object.status);
  const specCanary = spec?.canary.version ?? loose.canary?.version;
  const canaryVersion = status.canaryVersion ?? specCanary;
  return {
    name: metadata.name,
    namespace: metadata.namespace,
    created: metadata.creationTimestamp,
    generation: metadata.generation,
    model: spec?.model ?? loose.model,
    stableVersion: status.stableVersion ?? spec?.stable.version ?? loose.stable?.version,
    canaryVersion,
    nextCanary: specCanary !== undefined && specCanary !== canaryVersion ? specCanary : undefined,
    steps: spec?.analysis.steps ?? loose.analysis?.steps,
    status,
    statusProblem: problem,
  };
}

function readStatus(raw: unknown): { status: ModelCanaryStatus; problem?: string } {
  if (raw === undefined || raw === null) return { status: {} };
  const parsed = ModelCanaryStatus.safeParse(raw);
  if (parsed.success) return { status: parsed.data };
  const issue = parsed.error.issues[0];
  return { status: {}, problem: `status.${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'does not parse'}` };
}

/** Whether the rollout the status describes has ended and the controller has seen the spec as it is. */
export function rolloutEnded(object: Record<string, unknown>): boolean {
  const { status, generation, nextCanary } = read(object);
  if (!ENDED.has(status.phase)) return false;
  if (nextCanary !== undefined) return false;
  return status.observedGeneration === undefined || generation === undefined || status.observedGeneration >= generation;
}

// ── Times ───────────────────────────────────────────────────────────────────────────────

/** A span of time as people say it: 18 s, 1 min 30 s, 3 h 10 min, 2 d 4 h. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m} min` : `${m} min ${s % 60} s`;
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 === 0 ? `${h} h` : `${h} h ${m % 60} min`;
  const d = Math.floor(h / 24);
  return h % 24 === 0 ? `${d} d` : `${d} d ${h % 24} h`;
}

const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const two = (n: number): string => String(n).padStart(2, '0');
const dateOf = (d: Date): string => `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;

/** Moments as people read them: ages against `now`, or clock times in local time. */
class Times {
  private readonly now: number;
  /** false: clock times only, nothing that changes as time passes. */
  readonly ages: boolean;

  constructor(now: Date, ages: boolean) {
    this.now = now.getTime();
    this.ages = ages;
  }

  /** A past moment: "12 s ago", or "at 2026-05-04 09:00:12". */
  ago(ms: number): string {
    return this.ages ? `${formatDuration(this.now - ms)} ago` : `at ${this.full(ms)}`;
  }

  /** A coming moment: "in 18 s", or "at 2026-05-04 09:00:12". */
  in(ms: number): string {
    return this.ages ? `in ${formatDuration(ms - this.now)}` : `at ${this.full(ms)}`;
  }

  /** A moment with its clock time: "at 15:02, in 48 min", or "at 2026-05-04 15:02:00". */
  at(ms: number): string {
    if (!this.ages) return `at ${this.full(ms)}`;
    return `at ${this.clock(ms)}, ${ms >= this.now ? this.in(ms) : this.ago(ms)}`;
  }

  /** How long since a moment: "waiting 12 min", or "since 2026-05-04 14:02:10". */
  since(ms: number): string {
    return this.ages ? `waiting ${formatDuration(this.now - ms)}` : `since ${this.full(ms)}`;
  }

  /** An age for a table cell: "12 s", or the clock time. */
  age(ms: number): string {
    return this.ages ? formatDuration(this.now - ms) : this.full(ms);
  }

  /** Local clock time, as short as is clear: 15:02 today, Mon 09:00 this week, else with the date. */
  clock(ms: number): string {
    const d = new Date(ms);
    const hm = `${two(d.getHours())}:${two(d.getMinutes())}`;
    const today = new Date(this.now);
    if (dateOf(d) === dateOf(today)) return hm;
    const days = Math.abs(ms - this.now) / 86_400_000;
    return days < 6 ? `${WEEKDAYS[d.getDay()] ?? ''} ${hm}` : `${WEEKDAYS[d.getDay()] ?? ''} ${dateOf(d)} ${hm}`;
  }

  private full(ms: number): string {
    const d = new Date(ms);
    return `${dateOf(d)} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  }
}

const parseTime = (iso: string | undefined): number | undefined => {
  if (iso === undefined) return undefined;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : ms;
};

// ── What the rollout waits for ──────────────────────────────────────────────────────────

/**
 * What the rollout waits for, in one line a person can act on; undefined once it has ended.
 * `target` names the ModelCanary in the commands suggested (kubectl modelcanary approve NAME).
 */
export function waitingFor(spec: ModelCanarySpec | undefined, status: ModelCanaryStatus, now: Date, target?: { name: string; namespace?: string | undefined }): string | undefined {
  return waitingLine(spec, status, new Times(now, true), now, target);
}

/** What -o json and -o yaml add to the object: the weights on the route, and what the rollout waits for. */
export function summaryOf(view: StatusView, now: Date): { route: RouteWeight | null; waitingFor: string | null } {
  const { status, name, namespace } = read(view.object, view.spec);
  return { route: view.routeWeight ?? null, waitingFor: waitingFor(view.spec, status, now, { name, namespace }) ?? null };
}

function waitingLine(spec: ModelCanarySpec | undefined, status: ModelCanaryStatus, times: Times, now: Date, target?: { name: string; namespace?: string | undefined }): string | undefined {
  const command = (verb: string): string => `kubectl modelcanary ${verb} ${clean(target?.name ?? 'NAME')}${target?.namespace === undefined ? '' : ` -n ${clean(target.namespace)}`}`;
  const firstFalse = (status.conditions ?? []).find((c) => c.status === 'False');
  const phase = status.phase;
  switch (phase) {
    case 'Succeeded':
    case 'RolledBack':
      return undefined;
    case undefined:
      return 'the controller to pick it up: no status yet (is modelcanary run running, and watching this namespace?)';
    case 'Waiting':
      return 'a free slot: the controller already runs as many rollouts as its --max-concurrent-rollouts allows; this one starts when one ends';
    case 'Paused':
      return `spec.suspend — run: ${command('resume')}`;
    case 'Failed':
      return clean(firstFalse?.message ?? status.message ?? 'a person to fix the problem named in the conditions');
    case 'Pending':
    case 'Progressing':
      break;
  }
  if (status.gate !== undefined) return gateLine(status.gate, times, command('approve'));
  if (status.window !== undefined) {
    const opensAt = parseTime(status.window.opensAt);
    const opens = opensAt === undefined ? undefined : times.ages ? `opens at ${times.clock(opensAt)} (${times.in(opensAt)})` : `opens ${times.in(opensAt)}`;
    const when = opens ?? 'no window opens within a year';
    return `the rollout window: ${when} — ${clean(status.window.reason)}`;
  }
  if (phase === 'Pending') return clean(firstFalse?.message ?? status.message ?? 'the preflight: the route, the subsets and the metrics must answer');
  if (spec === undefined) return 'the next check (when: unknown while the spec is invalid)';
  const judged = Math.max(parseTime(status.lastAnalysis?.judgedAt ?? status.lastAnalysis?.time) ?? 0, parseTime(status.stepStartedAt) ?? 0);
  const due = judged + spec.analysis.interval;
  return due <= now.getTime() && times.ages ? 'a check is due now' : `next check ${times.in(due)}`;
}

function gateLine(gate: GateWait, times: Times, approve: string): string {
  const since = parseTime(gate.since);
  const deadline = parseTime(gate.deadline);
  const timing = [since === undefined ? undefined : times.since(since), deadline === undefined ? undefined : `times out ${times.at(deadline)}`].filter((t) => t !== undefined).join('; ');
  const when = timing === '' ? '' : ` (${timing})`;
  if (gate.approval === 'manual') return `approval of gate ${clean(gate.name)} before ${gate.weight} %${when} — run: ${approve}`;
  const askedAt = parseTime(gate.askedAt);
  const answer = gate.answer === undefined ? 'not asked yet' : `last answer: ${clean(gate.answer)}${askedAt === undefined ? '' : `, ${times.ago(askedAt)}`}`;
  return `gate ${clean(gate.name)}'s webhook before ${gate.weight} % (${answer})${when}`;
}

// ── Lines, spans and colour ─────────────────────────────────────────────────────────────

type Paint = 'green' | 'red' | 'yellow' | 'cyan' | 'bold' | 'dim';
interface Span {
  text: string;
  paint?: Paint | undefined;
}
type Line = Span[];

const CODES: Record<Paint, string> = { green: '32', red: '31', yellow: '33', cyan: '36', bold: '1', dim: '2' };

/** Code points: what a terminal shows as one column for the text this view prints. */
const chars = (s: string): string[] => Array.from(s);
const width = (s: string): number => chars(s).length;

/** Foreign text on one line, without control characters (escapes, newlines). */
function clean(s: string): string {
  return chars(s)
    .map((ch) => {
      const code = ch.codePointAt(0) ?? 0;
      return code < 0x20 || (code >= 0x7f && code < 0xa0) ? ' ' : ch;
    })
    .join('');
}

function clip(s: string, max: number): string {
  if (width(s) <= max) return s;
  return max <= 0 ? '' : `${chars(s).slice(0, max - 1).join('')}…`;
}

/** Words onto lines of at most `max` columns; a word longer than a line is split. */
function wrap(s: string, max: number): string[] {
  if (!Number.isFinite(max) || width(s) <= max) return [s];
  const lines: string[] = [];
  let line = '';
  for (const word of s.split(' ')) {
    let rest = word;
    while (width(rest) > max) {
      if (line !== '') lines.push(line);
      line = '';
      lines.push(chars(rest).slice(0, max).join(''));
      rest = chars(rest).slice(max).join('');
    }
    if (line === '') line = rest;
    else if (width(line) + 1 + width(rest) <= max) line = `${line} ${rest}`;
    else {
      lines.push(line);
      line = rest;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

function emit(lines: Line[], options: RenderOptions): string {
  return lines.map((line) => paint(cut(line, options.width), options.color)).join('\n') + '\n';
}

function cut(line: Line, max: number): Line {
  const out: Line = [];
  let room = max;
  for (const span of line) {
    if (room <= 0) break;
    const text = width(span.text) <= room ? span.text : clip(span.text, room);
    out.push({ ...span, text });
    room -= width(text);
  }
  while (out.length > 0 && (out.at(-1)?.text.trim() ?? '') === '') out.pop();
  const last = out.at(-1);
  if (last !== undefined) out[out.length - 1] = { ...last, text: last.text.trimEnd() };
  return out;
}

function paint(line: Line, color: boolean): string {
  return line.map((s) => (color && s.paint !== undefined && s.text !== '' ? `\x1b[${CODES[s.paint]}m${s.text}\x1b[0m` : s.text)).join('');
}

/** A label and a text value, the value wrapped under itself when it is longer than the line. */
function field(label: string, value: string, max: number, paintWith?: Paint): Line[] {
  const pieces = wrap(value, Math.max(max - LABEL_WIDTH, 20));
  return pieces.map((piece, i) => [{ text: (i === 0 ? label : '').padEnd(LABEL_WIDTH) }, { text: piece, paint: paintWith }]);
}

interface Column {
  title: string;
  /** When the table is wider than the line, columns shrink in this order (lowest first); never when unset. */
  shrink?: number;
  /** A shrunk column wraps its text onto more lines instead of cutting it. */
  wrap?: boolean;
  /** It shrinks to no less than this. */
  min?: number;
}

const INDENT = '  ';
const GAP = '  ';

function table(columns: Column[], rows: Span[][], max: number): Line[] {
  const widths = columns.map((c, i) => Math.max(width(c.title), ...rows.map((r) => width(r[i]?.text ?? ''))));
  const total = (): number => INDENT.length + widths.reduce((a, b) => a + b, 0) + GAP.length * (widths.length - 1);
  const order = columns.flatMap((c, i) => (c.shrink === undefined ? [] : [{ c, i }])).sort((a, b) => (a.c.shrink ?? 0) - (b.c.shrink ?? 0));
  for (const { c, i } of order) {
    const over = total() - max;
    if (over <= 0) break;
    const current = widths[i] ?? 0;
    widths[i] = Math.max(Math.min(current, c.min ?? 8), current - over);
  }
  const lineOf = (cells: Span[][], k: number): Line => {
    const line: Line = [{ text: INDENT }];
    cells.forEach((cell, i) => {
      const last = i === cells.length - 1;
      const span = cell[k] ?? { text: '' };
      line.push({ ...span, text: last ? span.text : span.text.padEnd(widths[i] ?? 0) });
      if (!last) line.push({ text: GAP });
    });
    return line;
  };
  const header = lineOf(columns.map((c) => [{ text: c.title, paint: 'dim' as const }]), 0);
  const body = rows.flatMap((row) => {
    const cells = columns.map((c, i) => {
      const span = row[i] ?? { text: '' };
      const w = widths[i] ?? 0;
      const pieces = c.wrap === true ? wrap(span.text, w) : [clip(span.text, w)];
      return pieces.map((text) => ({ ...span, text }));
    });
    const height = Math.max(...cells.map((c) => c.length));
    return Array.from({ length: height }, (_, k) => lineOf(cells, k));
  });
  return [header, ...body];
}

// ── The status view ─────────────────────────────────────────────────────────────────────

function phasePaint(phase: Phase | undefined): Paint | undefined {
  switch (phase) {
    case 'Succeeded':
      return 'green';
    case 'RolledBack':
    case 'Failed':
      return 'red';
    case 'Paused':
    case 'Waiting':
    case 'Pending':
      return 'yellow';
    case 'Progressing':
      return 'cyan';
    case undefined:
      return undefined;
  }
}

function decisionPaint(decision: string): Paint | undefined {
  if (decision === 'promote' || decision === 'advance') return 'green';
  if (decision === 'rollback' || decision === 'abort') return 'red';
  return decision === 'hold' ? 'yellow' : undefined;
}

function verdictPaint(verdict: string): Paint {
  return verdict === 'pass' ? 'green' : verdict === 'fail' ? 'red' : 'yellow';
}

/** A metric's value in its unit, as the reasons print it: 0.12 %, 340 ms, 2.5, 1 ejected. */
function valueText(metric: Metric | undefined, value: number | null | undefined): string {
  if (value === undefined || value === null || !Number.isFinite(value)) return '-';
  return formatMetricValue(metric?.type ?? 'prometheus', value);
}

/** The step in force, from 1; 0 before any traffic moved. */
function stepOf(status: ModelCanaryStatus, steps: number[] | undefined): number {
  if (status.phase === undefined || status.phase === 'Pending' || status.phase === 'Waiting') return 0;
  const step = (status.currentStep ?? 0) + 1;
  return steps === undefined ? step : Math.min(step, steps.length);
}

function bar(weight: number, color: boolean): string {
  const filled = Math.round((Math.min(Math.max(weight, 0), 100) / 100) * BAR_WIDTH);
  const [full, empty] = color ? ['█', '░'] : ['#', '-'];
  return `[${full.repeat(filled)}${empty.repeat(BAR_WIDTH - filled)}]`;
}

function routeLine(route: RouteWeight, statusWeight: number, said: ReadonlySet<string>): { text: string; paint?: Paint } {
  if ('problem' in route) return { text: said.has(route.problem) ? 'cannot tell: the problem above' : `cannot tell: ${clean(route.problem)}`, paint: 'red' };
  if (route.canary === statusWeight) return { text: `${route.canary} % canary` };
  return { text: `${route.canary} % canary — behind the status (${statusWeight} %)`, paint: 'yellow' };
}

export function renderStatus(view: StatusView, options: RenderOptions): string {
  const max = options.width;
  const times = new Times(options.now, options.ages !== false);
  const r = read(view.object, view.spec);
  const { status } = r;
  const weight = status.canaryWeight ?? 0;
  const lines: Line[] = [];

  if (view.stale !== undefined) lines.push(...field('Out of date:', clean(view.stale), max, 'yellow'), []);
  lines.push([{ text: 'Name:'.padEnd(LABEL_WIDTH) }, { text: clean(r.name), paint: 'bold' }]);
  if (r.namespace !== undefined) lines.push([{ text: 'Namespace:'.padEnd(LABEL_WIDTH) }, { text: clean(r.namespace) }]);
  lines.push([{ text: 'Phase:'.padEnd(LABEL_WIDTH) }, { text: status.phase ?? 'none yet', paint: phasePaint(status.phase) }]);
  // The message of a check is its reason, shown once under Last check; a hold's message ends
  // with its False condition's, shown once under Message, and referred to after.
  const held = (status.conditions ?? []).filter((c) => c.status === 'False' && c.message !== '' && status.message?.endsWith(c.message) === true).map((c) => c.message);
  const said = new Set([status.message, ...held, status.lastAnalysis?.reason].filter((t): t is string => t !== undefined && t !== ''));
  if (status.message !== undefined && status.message !== '' && status.message !== status.lastAnalysis?.reason) lines.push(...field('Message:', clean(status.message), max));
  if (r.statusProblem !== undefined) lines.push(...field('Status:', `unreadable: ${clean(r.statusProblem)}`, max, 'red'));
  if (view.spec === undefined) lines.push(...field('Spec:', `invalid: ${clean(view.specProblems ?? 'see the Valid condition')}; nothing moves until it is fixed`, max, 'red'));
  if (r.model !== undefined) lines.push([{ text: 'Model:'.padEnd(LABEL_WIDTH) }, { text: clean(r.model) }]);
  const versions = `${clean(r.stableVersion ?? '?')} (stable) → ${clean(r.canaryVersion ?? '?')} (canary)`;
  lines.push(...field('Versions:', r.nextCanary === undefined ? versions : `${versions}; the spec now names canary ${clean(r.nextCanary)}, not yet picked up`, max));
  const stepCount = r.steps === undefined ? '?' : String(r.steps.length);
  const ladder = r.steps === undefined ? [] : [{ text: `  (steps ${r.steps.join(', ')})`, paint: 'dim' as const }];
  lines.push([{ text: 'Step:'.padEnd(LABEL_WIDTH) }, { text: `${stepOf(status, r.steps)}/${stepCount} ` }, { text: bar(weight, options.color), paint: phasePaint(status.phase) }, { text: ` ${weight} % canary` }, ...ladder]);
  if (view.routeWeight !== undefined) {
    const route = routeLine(view.routeWeight, weight, said);
    lines.push(...field('Route:', route.text, max, route.paint));
  }
  for (const gate of status.openedGates ?? []) {
    const at = parseTime(gate.at);
    lines.push(...field('Gate opened:', `${clean(gate.name)} before ${gate.weight} %: ${clean(gate.by)}${at === undefined ? '' : `, ${times.ago(at)}`}`, max));
  }
  lines.push(...lastCheck(status, view.spec, times, max));
  const waiting = waitingLine(view.spec, status, times, options.now, { name: r.name, namespace: r.namespace });
  if (waiting !== undefined) lines.push(...field('Waiting for:', held.some((h) => clean(h) === waiting) ? 'the problem above to be fixed' : waiting, max, 'bold'));

  const unmet = (status.conditions ?? []).filter((c) => c.status === 'False');
  const told = unmet.map((c) => (said.has(c.message) ? { ...c, message: '(as above)' } : c));
  if (unmet.length > 0) lines.push([], [{ text: 'Conditions that are False:' }], ...conditionTable(told, max));
  lines.push(...eventLines(view, times, max));
  return emit(lines, options);
}

function lastCheck(status: ModelCanaryStatus, spec: ModelCanarySpec | undefined, times: Times, max: number): Line[] {
  const last = status.lastAnalysis;
  if (last === undefined) return [[{ text: 'Last check:'.padEnd(LABEL_WIDTH) }, { text: 'none yet' }]];
  const at = parseTime(last.judgedAt ?? last.time);
  const lines: Line[] = [[{ text: 'Last check:'.padEnd(LABEL_WIDTH) }, { text: at === undefined ? '' : `${times.ago(at)}: ` }, { text: clean(last.decision), paint: decisionPaint(last.decision) }]];
  if (last.reason !== '') lines.push(...field('', clean(last.reason), max));
  if (last.metrics.length === 0) return lines;
  const metricOf = (name: string): Metric | undefined => spec?.analysis.metrics.find((m) => m.name === name);
  const rows = last.metrics.map((m): Span[] => {
    const metric = metricOf(m.name);
    return [{ text: clean(m.name) }, { text: valueText(metric, m.stable) }, { text: valueText(metric, m.canary) }, { text: metric === undefined ? '-' : boundOf(metric) }, { text: m.verdict, paint: verdictPaint(m.verdict) }];
  });
  const columns: Column[] = [{ title: 'METRIC', shrink: 2, min: 10 }, { title: 'STABLE' }, { title: 'CANARY' }, { title: 'BOUND', shrink: 1, wrap: true, min: 10 }, { title: 'VERDICT' }];
  return [...lines, ...table(columns, rows, max)];
}

function conditionTable(conditions: Condition[], max: number): Line[] {
  const rows = conditions.map((c): Span[] => [{ text: clean(c.type) }, { text: clean(c.reason), paint: 'yellow' }, { text: clean(c.message) }]);
  return table([{ title: 'TYPE', shrink: 3, min: 8 }, { title: 'REASON', shrink: 2, min: 8 }, { title: 'MESSAGE', shrink: 1, wrap: true, min: 20 }], rows, max);
}

function eventLines(view: StatusView, times: Times, max: number): Line[] {
  if (view.eventsProblem !== undefined) return [[], ...field('Events:', `cannot list: ${clean(view.eventsProblem)}`, max, 'yellow')];
  const shown = view.events.slice(-LAST_EVENTS);
  if (shown.length === 0) return [[], [{ text: 'Events:'.padEnd(LABEL_WIDTH) }, { text: 'none' }]];
  const rows = shown.map((e): Span[] => {
    const at = parseTime(e.time);
    const warning = e.type === 'Warning';
    const count = e.count > 1 ? ` (x${e.count})` : '';
    return [{ text: warning ? '!' : '', paint: 'yellow' }, { text: `${at === undefined ? '-' : times.age(at)}${count}` }, { text: clean(e.reason), paint: warning ? 'yellow' : undefined }, { text: clean(e.message) }];
  });
  const more = view.events.length > shown.length ? ` (last ${LAST_EVENTS} of ${view.events.length})` : '';
  return [[], [{ text: `Events${more}:` }], ...table([{ title: '' }, { title: 'AGE' }, { title: 'REASON', shrink: 2, min: 8 }, { title: 'MESSAGE', shrink: 1, wrap: true, min: 20 }], rows, max)];
}

// ── The list ────────────────────────────────────────────────────────────────────────────

export interface ListOptions {
  now: Date;
  color: boolean;
  allNamespaces: boolean;
  /** The namespace listed, for the line shown when it holds none. */
  namespace?: string | undefined;
}

export function renderList(objects: Record<string, unknown>[], options: ListOptions): string {
  if (objects.length === 0) return options.allNamespaces || options.namespace === undefined ? 'No ModelCanaries found.\n' : `No ModelCanaries found in namespace ${clean(options.namespace)}.\n`;
  const times = new Times(options.now, true);
  const rows = objects.map((object): Span[] => {
    const r = read(object);
    const { status } = r;
    const created = parseTime(r.created);
    const cells: Span[] = [
      { text: clean(r.name) },
      { text: clean(r.model ?? '-') },
      { text: clean(r.stableVersion ?? '-') },
      { text: clean(r.canaryVersion ?? '-') },
      { text: `${stepOf(status, r.steps)}/${r.steps === undefined ? '?' : r.steps.length}` },
      { text: `${status.canaryWeight ?? 0} %` },
      { text: status.phase ?? '-', paint: phasePaint(status.phase) },
      { text: clean(status.lastAnalysis?.decision ?? '-'), paint: status.lastAnalysis === undefined ? undefined : decisionPaint(status.lastAnalysis.decision) },
      { text: created === undefined ? '-' : times.age(created) },
    ];
    return options.allNamespaces ? [{ text: clean(r.namespace ?? '-') }, ...cells] : cells;
  });
  const titles = ['NAME', 'MODEL', 'STABLE', 'CANARY', 'STEP', 'WEIGHT', 'PHASE', 'LAST CHECK', 'AGE'];
  const columns = (options.allNamespaces ? ['NAMESPACE', ...titles] : titles).map((title) => ({ title }));
  // kubectl's tables start at the margin and have no dimmed header.
  const lines = table(columns, rows, Infinity).map((line, i) => line.slice(1).map((s) => (i === 0 ? { text: s.text } : s)));
  return emit(lines, { now: options.now, color: options.color, width: Infinity });
}
